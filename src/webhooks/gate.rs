//! Who may call a provider's webhooks: the secrets a request may be signed
//! with, and the one case where an unsigned request is accepted (the demo,
//! from this machine).

use actix_web::HttpRequest;
use secrecy::{ExposeSecret, SecretString};

use super::WebhookSettings;
use crate::calls::Calls;
use crate::domain::{PhoneNumber, Provider};
use crate::error::ApiError;

/// How a request was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The signature checked out.
    Signed,
    /// No secret is configured, the demo runs and the request came from this
    /// machine: accepted, and logged loudly.
    UnsignedDemo,
}

/// The webhooks' view of configuration: the global secrets and whether the
/// demo is running. Registered once; every webhook handler takes it.
#[derive(Clone)]
pub struct Gate {
    settings: WebhookSettings,
    demo: bool,
}

impl Gate {
    pub fn new(settings: WebhookSettings, demo_running: bool) -> Self {
        Gate {
            settings,
            demo: demo_running,
        }
    }

    /// Lets the request in when a candidate secret passes `check`: the
    /// provider's global secret and, when the parsed envelope names a called
    /// number whose tenant has its own, that tenant's. `called` must come
    /// from the same envelope the handler then acts on.
    pub async fn verify(
        &self,
        calls: &Calls,
        provider: Provider,
        req: &HttpRequest,
        called: Option<&PhoneNumber>,
        check: impl Fn(&[u8]) -> Result<(), String>,
    ) -> Result<Verification, ApiError> {
        let (global, var) = self.settings.global(provider);
        let mut secrets: Vec<SecretString> = global.into_iter().cloned().collect();
        if let Some(called) = called
            && let Ok(Some(tenant)) = calls.tenant(called).await
            && let Some(credential) = tenant.webhook_secret(provider)
        {
            match credential.resolve("webhook secret") {
                Ok(secret) => secrets.push(secret),
                Err(e) => {
                    tracing::error!(tenant = %tenant.id, error = %e, "tenant webhook secret unusable")
                }
            }
        }
        if secrets.is_empty() {
            return self.unsigned(req, provider, var);
        }
        let mut last = String::from("no secret");
        for secret in &secrets {
            match check(secret.expose_secret().as_bytes()) {
                Ok(()) => return Ok(Verification::Signed),
                Err(e) => last = e,
            }
        }
        Err(refused(provider, &last))
    }

    /// Verifies the request for the envelope it parsed into, then hands the
    /// envelope over. A body that did not parse names no tenant: it is
    /// verified against the global secret alone, then refused with its 400.
    pub async fn admit<T>(
        &self,
        calls: &Calls,
        provider: Provider,
        req: &HttpRequest,
        parsed: Result<T, ApiError>,
        called: impl FnOnce(&T) -> Option<PhoneNumber>,
        check: impl Fn(&[u8]) -> Result<(), String>,
    ) -> Result<T, ApiError> {
        let called = parsed.as_ref().ok().and_then(called);
        self.verify(calls, provider, req, called.as_ref(), check)
            .await?;
        parsed
    }

    /// Without a configured secret, only the demo on a loopback address
    /// accepts unsigned requests; anything else is refused.
    fn unsigned(
        &self,
        req: &HttpRequest,
        provider: Provider,
        secret_var: &str,
    ) -> Result<Verification, ApiError> {
        let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
        if self.demo && loopback {
            tracing::warn!(
                %provider,
                "UNSIGNED {provider} webhook accepted: demo mode on loopback with no {secret_var} set; \
                 set {secret_var} before exposing warmline"
            );
            Ok(Verification::UnsignedDemo)
        } else {
            Err(refused(
                provider,
                &format!(
                    "{secret_var} is not configured, so {provider} webhooks cannot be verified"
                ),
            ))
        }
    }
}

/// The one answer to every authentication failure. It must not differ by
/// called number or by which check failed — that would tell an attacker
/// which numbers have tenants with secrets of their own — so the reason goes
/// to the log only.
pub const REFUSED: &str = "the webhook could not be authenticated; warmline's log says why";

fn refused(provider: Provider, reason: &str) -> ApiError {
    tracing::warn!(%provider, reason, "webhook refused");
    ApiError::Unauthorized(REFUSED.into())
}
