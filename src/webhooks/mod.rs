//! The provider edge: each voice platform's webhooks, verified on their raw
//! bytes, parsed once into a typed envelope, and turned into calls on the
//! [`Calls`] service. The envelope that names the called number is the one
//! that picks the secret and the one that is acted on. Nothing below this
//! module knows which provider asked; nothing here knows an upstream's wire
//! format, a table or the admin.
//!
//! Handlers take only what they use: the call service and the [`Gate`]
//! (webhook secrets and whether the unsigned demo is allowed).

mod body;
pub mod elevenlabs;
mod gate;
mod labels;
pub mod parsers;
pub mod retell;
mod settings;
pub mod signature;
pub mod vapi;
pub mod vapi_auth;
mod variables;

pub use body::{EventBody, MAX_BODY_BYTES, RawBody};
pub use gate::{Gate, REFUSED, Verification};
pub use settings::WebhookSettings;

use std::borrow::Cow;
use std::future::Future;
use std::time::Instant;

use actix_web::HttpResponse;

use crate::calls::{Calls, Durability, Outcome};
use crate::domain::{CallEvent, PhoneNumber};
use crate::error::ApiError;

/// Every webhook route, for the HTTP layer's route table.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    retell::configure(cfg);
    vapi::configure(cfg);
    elevenlabs::configure(cfg);
}

/// The `outcome` label of a failed webhook.
fn error_label(e: &ApiError) -> &'static str {
    match e {
        ApiError::Unauthorized(_) => "unauthorized",
        ApiError::BadRequest(_) => "bad_request",
        ApiError::PayloadTooLarge { .. } => "too_large",
        _ => "error",
    }
}

/// A webhook answered: the response, the event it turned out to be, and how
/// it ended (`ok`, or `ignored` for an event warmline does not use).
struct Handled {
    response: HttpResponse,
    event: Cow<'static, str>,
    outcome: &'static str,
}

impl Handled {
    fn ok(response: HttpResponse, event: impl Into<Cow<'static, str>>) -> Self {
        Handled {
            response,
            event: event.into(),
            outcome: "ok",
        }
    }
}

/// Runs one webhook and counts and times it, under the event it turned out
/// to be, or `unparsed` when it failed before that was known.
async fn observed(
    gate: &Gate,
    provider: &'static str,
    unparsed: &'static str,
    work: impl Future<Output = Result<Handled, ApiError>>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let (result, mut answered) = crate::support::attribution::scope(work).await;
    answered.elapsed = started.elapsed();
    let outcome = match &result {
        Ok(_) => gate::Answer::Ok,
        Err(ApiError::Unauthorized(_)) => gate::Answer::Refused,
        Err(_) => gate::Answer::Failed,
    };
    gate.answered(provider, outcome, &answered);
    match result {
        Ok(h) => {
            record(provider, &h.event, h.outcome, started);
            Ok(h.response)
        }
        Err(e) => {
            record(provider, unparsed, error_label(&e), started);
            Err(e)
        }
    }
}

/// A platform's event delivery: a call event warmline keeps, or one it
/// acknowledges and ignores. `called` picks the tenant's secret either way.
enum Delivery {
    Call(Box<CallEvent>),
    Ignored {
        event: String,
        called: Option<PhoneNumber>,
    },
}

impl Delivery {
    fn called(&self) -> Option<PhoneNumber> {
        match self {
            Delivery::Call(e) => e.details.called.clone(),
            Delivery::Ignored { called, .. } => called.clone(),
        }
    }

    /// The platform's name for the event.
    fn name(&self) -> String {
        match self {
            Delivery::Call(e) => e.event.clone(),
            Delivery::Ignored { event, .. } => event.clone(),
        }
    }

    /// Acknowledges the delivery: durably for a call event, at once (and
    /// counted) for one warmline ignores. `event` names it in the metrics.
    async fn acknowledge(
        self,
        calls: &Calls,
        provider: &'static str,
        event: String,
    ) -> Result<Handled, ApiError> {
        Ok(match self {
            Delivery::Call(e) => Handled::ok(ack_event(calls, *e).await?, event),
            Delivery::Ignored { event: name, .. } => Handled {
                response: ignored(provider, &name),
                event: event.into(),
                outcome: "ignored",
            },
        })
    }
}

/// The string at `path` in a JSON payload, if it is one.
fn text<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

/// A number the payload must carry; a 400 naming the field otherwise.
fn required_phone(raw: &str, field: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|e| ApiError::BadRequest(format!("`{field}`: {e}")))
}

/// A number the payload may carry; withheld or unparseable numbers are
/// simply unknown (callers do hide their numbers).
fn optional_phone(raw: Option<&str>) -> Option<PhoneNumber> {
    raw.and_then(|r| PhoneNumber::parse(r).ok())
}

/// Acknowledges an event the platform sent but warmline does not use:
/// 2xx so the platform does not retry, counted so it is visible.
fn ignored(provider: &'static str, event: &str) -> HttpResponse {
    let event = labels::event_label(provider, event);
    metrics::counter!("warmline_webhook_ignored_total", "provider" => provider, "event" => event)
        .increment(1);
    HttpResponse::Ok().json(serde_json::json!({ "received": true, "ignored": true }))
}

/// Makes the event durable, then acknowledges it. If it cannot be made
/// durable the answer is a 503, so the platform retries: warmline never
/// acknowledges what it could lose.
async fn ack_event(calls: &Calls, mut event: CallEvent) -> Result<HttpResponse, ApiError> {
    // The call log links to this trace.
    event.details.trace_id = crate::telemetry::current_trace_id();
    let (durability, outcome) = calls.call_event(event).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "received": true,
        "durable_in": match durability {
            Durability::Database => "database",
            Durability::SpillJournal => "spill_journal",
        },
        "duplicate": outcome == Outcome::Duplicate,
    })))
}

/// Counts and times one webhook.
fn record(provider: &'static str, event: &str, outcome: &'static str, started: Instant) {
    let (count, time) = series(provider, labels::event_label(provider, event), outcome);
    count.increment(1);
    time.record(started.elapsed().as_secs_f64());
}

/// A webhook's counter and histogram for one label set, registered with
/// the recorder the first time and kept: the labels come from fixed lists,
/// and every webhook records them.
fn series(
    provider: &'static str,
    event: &'static str,
    outcome: &'static str,
) -> (metrics::Counter, metrics::Histogram) {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    type Series =
        HashMap<(&'static str, &'static str, &'static str), (metrics::Counter, metrics::Histogram)>;
    static SERIES: OnceLock<RwLock<Series>> = OnceLock::new();
    let all = SERIES.get_or_init(Default::default);
    let key = (provider, event, outcome);
    if let Some(s) = all.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return s.clone();
    }
    let s = (
        metrics::counter!(
            "warmline_webhook_requests_total",
            "provider" => provider, "event" => event, "outcome" => outcome
        ),
        metrics::histogram!(
            "warmline_webhook_duration_seconds",
            "provider" => provider, "event" => event
        ),
    );
    all.write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, s.clone());
    s
}
