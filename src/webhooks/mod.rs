//! The provider edge: each voice platform's webhooks, verified on their raw
//! bytes and turned into domain calls. Nothing below this module knows which
//! provider asked; nothing here knows an upstream's wire format.

pub mod retell;
pub mod signature;

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse};
use secrecy::SecretString;

use crate::error::ApiError;
use crate::startup::AppState;

/// Who may call a provider's webhooks.
pub enum Verification {
    /// The signature checked out.
    Signed,
    /// No secret is configured, the demo runs and the request came from this
    /// machine: accepted, and logged loudly.
    UnsignedDemo,
}

/// Without a configured secret, only the demo on a loopback address accepts
/// unsigned requests; anything else is refused.
pub fn unsigned_allowed(
    state: &AppState,
    req: &HttpRequest,
    provider: &str,
    secret_var: &str,
) -> Result<Verification, ApiError> {
    let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    if state.demo.is_some() && loopback {
        tracing::warn!(
            provider,
            "UNSIGNED {provider} webhook accepted: demo mode on loopback with no {secret_var} set; \
             set {secret_var} before exposing warmline"
        );
        Ok(Verification::UnsignedDemo)
    } else {
        Err(ApiError::Unauthorized(format!(
            "{secret_var} is not configured, so {provider} webhooks cannot be verified"
        )))
    }
}

/// The secret of a provider, if configured.
pub fn secret(s: &Option<SecretString>) -> Option<&SecretString> {
    s.as_ref()
}

/// Counts and times one webhook.
pub fn record(provider: &'static str, event: &str, outcome: &'static str, started: Instant) {
    let event = event.to_owned();
    metrics::counter!(
        "warmline_webhook_requests_total",
        "provider" => provider, "event" => event.clone(), "outcome" => outcome
    )
    .increment(1);
    metrics::histogram!(
        "warmline_webhook_duration_seconds",
        "provider" => provider, "event" => event
    )
    .record(started.elapsed().as_secs_f64());
}

/// The JSON body of a 2xx answer.
pub fn ok_json(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok().json(body)
}
