//! The bots' API: the caller context for any bot, not only voice agents — a
//! WhatsApp clinic bot (Evolution API, Twilio) reading who is writing, what
//! they said before and which slots are free, and appending what was said.
//!
//! - `POST /api/v1/context` — `{"caller", "called" | "instance"}` → the
//!   customer's context as typed JSON (the dynamic variables' fields);
//! - `POST /api/v1/messages` — `{"caller", "called" | "instance", "role",
//!   "text", "at"?, "id"?}` → appended to the conversation log, durably.
//!
//! Each request names its business by the number the customer wrote to
//! (`called`) or the WhatsApp instance (`instance`), both resolved from
//! memory, and is authenticated with one of that business's API keys
//! (`Authorization: Bearer …`, named in the tenant file by environment
//! variable and kept only hashed): another business's key is no key.
//! Handlers take only the call service. Nothing here knows a voice
//! platform, a table or an upstream.

mod context;
mod messages;

use std::future::Future;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::calls::Calls;
use crate::domain::PhoneNumber;
use crate::error::ApiError;
use crate::tenants::Tenant;

/// Every route of the bots' API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for route in ["context", "messages"] {
        for outcome in OUTCOMES {
            metrics::counter!("warmline_api_requests_total", "route" => route, "outcome" => outcome)
                .increment(0);
        }
    }
    cfg.service(context::context).service(messages::messages);
}

const OUTCOMES: [&str; 5] = [
    "ok",
    "unauthorized",
    "bad_request",
    "unknown_tenant",
    "unavailable",
];

/// Why a request was refused with 401: the client is told one sentence
/// either way (whether a number or instance is anyone's is not given away
/// to a stranger), the metrics tell them apart.
enum Refusal {
    UnknownTenant,
    WrongKey,
}

/// A failed request: the error the client gets and its outcome label.
struct Failure {
    error: ApiError,
    outcome: &'static str,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        let outcome = match &error {
            ApiError::BadRequest(_) | ApiError::PayloadTooLarge { .. } => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            _ => "unavailable",
        };
        Failure { error, outcome }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure {
            error: ApiError::Unauthorized(
                "the API key is not valid for this business (check the key, and `called` or `instance`)"
                    .into(),
            ),
            outcome: match r {
                Refusal::UnknownTenant => "unknown_tenant",
                Refusal::WrongKey => "unauthorized",
            },
        }
    }
}

/// Runs one API request, counted and timed under its route. Its database
/// queries are counted (see `Store::request_queries`): the context of a
/// cached customer makes none.
async fn observed(
    route: &'static str,
    work: impl Future<Output = Result<HttpResponse, Failure>>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let (result, _) = crate::support::attribution::scope(work).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(f) => f.outcome,
    };
    metrics::counter!("warmline_api_requests_total", "route" => route, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("warmline_api_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    result.map_err(|f| f.error)
}

/// Who a request is about: the customer, and the business by the number
/// they wrote to or by its WhatsApp instance.
#[derive(Deserialize)]
struct Target {
    caller: Option<String>,
    called: Option<String>,
    instance: Option<String>,
}

/// The customer's number, and the business, authenticated.
async fn resolve(
    calls: &Calls,
    req: &HttpRequest,
    target: &Target,
) -> Result<(PhoneNumber, std::sync::Arc<Tenant>), Failure> {
    let key = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer <API key>`".into())
        })?;
    let caller = match &target.caller {
        Some(raw) => {
            PhoneNumber::parse(raw).map_err(|e| ApiError::BadRequest(format!("`caller`: {e}")))?
        }
        None => return Err(ApiError::BadRequest("missing `caller`".into()).into()),
    };
    let tenant = match (&target.called, &target.instance) {
        (Some(called), None) => {
            let called = PhoneNumber::parse(called)
                .map_err(|e| ApiError::BadRequest(format!("`called`: {e}")))?;
            calls.tenant(&called).await.map_err(ApiError::from)?
        }
        (None, Some(instance)) if !instance.trim().is_empty() && instance.len() <= 128 => calls
            .tenant_by_instance(instance)
            .await
            .map_err(ApiError::from)?,
        (None, Some(_)) => {
            return Err(ApiError::BadRequest("`instance`: 1 to 128 characters".into()).into());
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give the business as `called` (the number written to) or `instance` (the WhatsApp instance), one of them".into(),
            )
            .into());
        }
    };
    let tenant = tenant.ok_or(Refusal::UnknownTenant)?;
    if !calls.accepts_api_key(&tenant, key) {
        tracing::warn!(tenant = %tenant.id, "bots' API: a key that is not this tenant's");
        return Err(Refusal::WrongKey.into());
    }
    tracing::Span::current().record("tenant", tenant.id.as_str());
    Ok((caller, tenant))
}
