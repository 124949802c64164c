//! The provider edge: each voice platform's webhooks, verified on their raw
//! bytes and turned into domain calls. Nothing below this module knows which
//! provider asked; nothing here knows an upstream's wire format.

pub mod elevenlabs;
pub mod retell;
pub mod signature;
pub mod vapi;

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse};
use secrecy::SecretString;

use crate::domain::{CallEvent, PhoneNumber};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::writebehind::{Durability, Outcome};

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

/// The secrets a request may be signed with: the provider's global secret,
/// and — when the (not yet verified) payload names a called number whose
/// tenant has its own — that tenant's. The payload is only trusted once one
/// of them verifies it.
pub async fn candidate_secrets(
    state: &AppState,
    provider: crate::domain::Provider,
    global: &Option<SecretString>,
    called: Option<PhoneNumber>,
) -> Vec<SecretString> {
    let mut out: Vec<SecretString> = global.iter().cloned().collect();
    if let Some(called) = called
        && let Ok(Some(tenant)) = state.calls.tenants.resolve(&called).await
        && let Ok(cfg) =
            serde_json::from_value::<crate::upstreams::TenantConfig>(tenant.config.clone())
        && let Some(secrets) = cfg.webhook_secrets
    {
        let cred = match provider {
            crate::domain::Provider::Retell => secrets.retell,
            crate::domain::Provider::Vapi => secrets.vapi,
            crate::domain::Provider::ElevenLabs => secrets.elevenlabs,
        };
        match cred.map(|c| c.resolve("webhook secret")) {
            Some(Ok(secret)) => out.push(SecretString::from(secret)),
            Some(Err(e)) => {
                tracing::error!(tenant = %tenant.id, error = %e, "tenant webhook secret unusable")
            }
            None => {}
        }
    }
    out
}

/// Accepts the request when any candidate secret verifies it; otherwise a
/// 401 naming why the last one did not.
pub fn verified_by_any<E: std::fmt::Display>(
    what: &str,
    secrets: &[SecretString],
    verify: impl Fn(&[u8]) -> Result<(), E>,
) -> Result<Verification, ApiError> {
    use secrecy::ExposeSecret;
    let mut last = String::from("no secret");
    for secret in secrets {
        match verify(secret.expose_secret().as_bytes()) {
            Ok(()) => return Ok(Verification::Signed),
            Err(e) => last = e.to_string(),
        }
    }
    Err(ApiError::Unauthorized(format!("{what}: {last}")))
}

/// The called number a payload names, read leniently before verification
/// (only to pick the tenant's secret).
pub fn called_in(body: &[u8], paths: &[&[&str]]) -> Option<PhoneNumber> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    paths.iter().find_map(|path| {
        let mut cur = &v;
        for p in *path {
            cur = cur.get(*p)?;
        }
        PhoneNumber::parse(cur.as_str()?).ok()
    })
}

/// The `outcome` label of a failed webhook.
pub fn error_label(e: &ApiError) -> &'static str {
    match e {
        ApiError::Unauthorized(_) => "unauthorized",
        ApiError::BadRequest(_) => "bad_request",
        ApiError::PayloadTooLarge { .. } => "too_large",
        _ => "error",
    }
}

/// A number the payload must carry; a 400 naming the field otherwise.
pub fn required_phone(raw: &str, field: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|e| ApiError::BadRequest(format!("`{field}`: {e}")))
}

/// A number the payload may carry; withheld or unparseable numbers are
/// simply unknown (callers do hide their numbers).
pub fn optional_phone(raw: Option<&str>) -> Option<PhoneNumber> {
    raw.and_then(|r| PhoneNumber::parse(r).ok())
}

/// Acknowledges an event the platform sent but warmline does not use:
/// 2xx so the platform does not retry, counted so it is visible.
pub fn ignored(provider: &'static str, event: &str) -> HttpResponse {
    metrics::counter!("warmline_webhook_ignored_total", "provider" => provider, "event" => event.to_owned())
        .increment(1);
    HttpResponse::Ok().json(serde_json::json!({ "received": true, "ignored": true }))
}

/// Makes the event durable, then acknowledges it. If it cannot be made
/// durable the answer is a 503, so the platform retries: warmline never
/// acknowledges what it could lose.
pub async fn ack_event(state: &AppState, mut event: CallEvent) -> Result<HttpResponse, ApiError> {
    // The call log links to this trace.
    event.trace_id = crate::telemetry::current_trace_id();
    match state.calls.call_event(event).await {
        Ok((durability, outcome)) => Ok(HttpResponse::Ok().json(serde_json::json!({
            "received": true,
            "durable_in": match durability {
                Durability::Database => "database",
                Durability::SpillJournal => "spill_journal",
            },
            "duplicate": outcome == Outcome::Duplicate,
        }))),
        Err(e) => Err(ApiError::Unavailable(format!(
            "event not stored, retry: {e}"
        ))),
    }
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

/// The raw request body, read up to [`MAX_BODY_BYTES`](crate::startup::MAX_BODY_BYTES):
/// signatures are checked on these exact bytes, and an oversized body is a
/// 413 with a JSON error before it is buffered.
pub struct RawBody(pub bytes::Bytes);

impl actix_web::FromRequest for RawBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        use futures_util::StreamExt;
        let limit = crate::startup::MAX_BODY_BYTES;
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut stream = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(RawBody(body.freeze()))
        })
    }
}
