//! Who may call a provider's webhooks: the secrets a request may be signed
//! with, and the one case where an unsigned request is accepted (the demo,
//! from this machine).

use actix_web::HttpRequest;
use secrecy::ExposeSecret;

use super::WebhookSettings;
use crate::calls::Calls;
use crate::domain::{PhoneNumber, Provider, TenantId};
use crate::error::ApiError;
use std::sync::Arc;

use crate::support::RecentLatency;
use crate::support::attribution::{AnswerSink, Answered};
use crate::support::latency;

/// How a request was let in, and for whom it may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The provider's global secret checked out: the operator's own
    /// platform account, which may act for any tenant.
    SignedGlobally,
    /// A tenant's own secret checked out: the request acts for that tenant
    /// only — its sessions, its calls, its callers.
    SignedFor(TenantId),
    /// No secret is configured, the demo runs and the request came from this
    /// machine for the demo number: accepted, and logged loudly. It acts
    /// for the demo tenant only.
    UnsignedDemo(TenantId),
}

impl Verification {
    /// The one tenant the request may act for, when it is limited to one.
    pub fn scope(&self) -> Option<&TenantId> {
        match self {
            Verification::SignedFor(t) | Verification::UnsignedDemo(t) => Some(t),
            Verification::SignedGlobally => None,
        }
    }
}

/// The webhooks' view of configuration: the global secrets and where an
/// unsigned request may be accepted. Registered once; every webhook handler
/// takes it.
#[derive(Clone)]
pub struct Gate {
    settings: WebhookSettings,
    /// The demo tenant's number while the demo runs: the only number an
    /// unsigned request may act for.
    demo: Option<(PhoneNumber, TenantId)>,
    /// Whether warmline listens on a loopback address only.
    listens_on_loopback: bool,
    /// Every webhook's latency, by provider, for the admin's summary bar.
    latency: RecentLatency,
    /// Where each answer's time and cache lookups are counted by tenant-day.
    answers: Arc<dyn AnswerSink>,
}

/// How a webhook ended, for its latency figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// Answered with an error (bad input, an internal failure).
    Failed,
    /// Refused before it was answered: its credentials did not verify.
    Refused,
}

/// Headers a reverse proxy or tunnel adds: behind one, every request looks
/// like it comes from this machine, so "loopback" proves nothing.
const PROXY_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "cf-connecting-ip",
    "true-client-ip",
    "x-client-ip",
];

impl Gate {
    pub fn new(
        settings: WebhookSettings,
        demo: Option<(PhoneNumber, TenantId)>,
        listens_on_loopback: bool,
        latency: RecentLatency,
        answers: Arc<dyn AnswerSink>,
    ) -> Self {
        super::labels::register_zero();
        Gate {
            settings,
            demo,
            listens_on_loopback,
            latency,
            answers,
        }
    }

    /// Counts one webhook: its platform's recent latency, and its
    /// tenant-day's answer times and cache lookups. A refused request
    /// (unauthenticated) is no answer: it is counted apart and never
    /// attributed to the tenant whose number it named.
    pub fn answered(&self, provider: &'static str, outcome: Answer, answered: &Answered) {
        match outcome {
            Answer::Refused => self
                .latency
                .record(latency::REFUSED, answered.elapsed, false),
            Answer::Ok | Answer::Failed => {
                self.latency
                    .record(provider, answered.elapsed, outcome == Answer::Ok);
                self.answers.answered(answered);
            }
        }
    }

    /// How Vapi's requests are authenticated.
    pub fn vapi_auth(&self) -> &super::vapi_auth::VapiAuth {
        &self.settings.vapi_auth
    }

    /// The body limits: `(inbound and tools, call events)`.
    pub fn body_limits(&self) -> (usize, usize) {
        (self.settings.body_limit, self.settings.event_body_limit)
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
        let mut last = None;
        // The global secret first (the common case: the operator's own
        // platform account), checked in place; the tenant's own only when
        // it did not verify.
        if let Some(global) = global {
            match check(global.expose_secret().as_bytes()) {
                Ok(()) => return Ok(Verification::SignedGlobally),
                Err(e) => last = Some(e),
            }
        }
        if let Some(called) = called
            && let Ok(Some(tenant)) = calls.tenant(called).await
            && let Some(credential) = tenant.webhook_secret(provider)
        {
            match credential.resolve("webhook secret") {
                Ok(secret) => match check(secret.expose_secret().as_bytes()) {
                    Ok(()) => return Ok(Verification::SignedFor(tenant.id.clone())),
                    Err(e) => last = Some(e),
                },
                Err(e) => {
                    tracing::error!(tenant = %tenant.id, error = %e, "tenant webhook secret unusable")
                }
            }
        }
        match last {
            None => self.unsigned(req, provider, var, called),
            Some(why) => Err(refused(provider, called, &why)),
        }
    }

    /// Verifies the request for the envelope it parsed into, then hands the
    /// envelope over with how it was let in. A body that did not parse names
    /// no tenant: it is verified against the global secret alone, then
    /// refused with its 400.
    pub async fn admit<T>(
        &self,
        calls: &Calls,
        provider: Provider,
        req: &HttpRequest,
        parsed: Result<T, ApiError>,
        called: impl FnOnce(&T) -> Option<PhoneNumber>,
        check: impl Fn(&[u8]) -> Result<(), String>,
    ) -> Result<(T, Verification), ApiError> {
        let called = parsed.as_ref().ok().and_then(called);
        let verification = self
            .verify(calls, provider, req, called.as_ref(), check)
            .await?;
        Ok((parsed?, verification))
    }

    /// Without a configured secret, an unsigned request is accepted only
    /// for the demo tenant's own number, from this machine, with warmline
    /// listening on loopback and no proxy in between — decided per request,
    /// so a real tenant imported while the demo runs is never served
    /// unsigned.
    fn unsigned(
        &self,
        req: &HttpRequest,
        provider: Provider,
        secret_var: &str,
        called: Option<&PhoneNumber>,
    ) -> Result<Verification, ApiError> {
        let why_not = match &self.demo {
            None => Some("the demo is not running"),
            Some((demo, _)) if called != Some(demo) => {
                Some("the request is not for the demo number")
            }
            Some(_) if !self.listens_on_loopback => Some("warmline listens beyond loopback"),
            Some(_) if !req.peer_addr().is_some_and(|a| a.ip().is_loopback()) => {
                Some("the request did not come from this machine")
            }
            Some(_) if PROXY_HEADERS.iter().any(|h| req.headers().contains_key(*h)) => {
                Some("the request came through a proxy")
            }
            Some(_) => None,
        };
        match (why_not, &self.demo) {
            (None, Some((_, tenant))) => {
                tracing::warn!(
                    %provider,
                    "UNSIGNED {provider} webhook accepted for the demo number: no {secret_var} set; \
                     set {secret_var} before exposing warmline"
                );
                Ok(Verification::UnsignedDemo(tenant.clone()))
            }
            (why, _) => Err(refused(
                provider,
                called,
                &format!(
                    "{secret_var} is not configured and {}, so the webhook cannot be verified",
                    why.unwrap_or("the demo is not running")
                ),
            )),
        }
    }
}

/// The one answer to every authentication failure. It must not differ by
/// called number or by which check failed — that would tell an attacker
/// which numbers have tenants with secrets of their own — so the reason goes
/// to the log only.
pub const REFUSED: &str = "the webhook could not be authenticated; warmline's log says why";

fn refused(provider: Provider, called: Option<&PhoneNumber>, reason: &str) -> ApiError {
    let called = called.map(PhoneNumber::masked);
    tracing::warn!(%provider, called, reason, "webhook refused");
    ApiError::Unauthorized(REFUSED.into())
}
