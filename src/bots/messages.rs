//! `POST /api/v1/messages`: a message appended to the customer's
//! conversation log, acknowledged once durable (in the database, or the
//! spill journal when the database is down — else a 503 to retry), like a
//! call event. The customer's cached memory and context are dropped on
//! every replica; when the business has a memory service, the write-back
//! tells it the message.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Target, observed, resolve};
use crate::calls::{Calls, Durability, NewMessage, Outcome};
use crate::error::ApiError;
use crate::support::{json, now_ms};

/// The longest message kept, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;

#[derive(Deserialize)]
struct Body {
    #[serde(flatten)]
    target: Target,
    role: Option<String>,
    text: Option<String>,
    /// When it was said: RFC 3339, or milliseconds since the epoch.
    at: Option<Value>,
    /// The bot's own id of the message: sending it again is a no-op.
    id: Option<String>,
}

fn at_ms(at: Option<&Value>) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "`at`: an RFC 3339 time (2026-12-05T10:00:00Z) or milliseconds since the epoch".into(),
        )
    };
    match at {
        None | Some(Value::Null) => Ok(now_ms()),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|_| bad()),
        Some(Value::Number(n)) => n.as_i64().filter(|ms| *ms >= 0).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// The parts of a message besides whom it is about.
fn content(b: &Body) -> Result<(String, String, i64, Option<String>), ApiError> {
    let role = match b.role.as_deref() {
        Some(r @ ("user" | "assistant")) => r.to_owned(),
        _ => {
            return Err(ApiError::BadRequest(
                "`role`: `user` (the customer) or `assistant` (the bot)".into(),
            ));
        }
    };
    let text = b.text.as_deref().map(str::trim).unwrap_or_default();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::BadRequest(format!(
            "`text`: 1 to {MAX_TEXT_CHARS} characters"
        )));
    }
    let id = match b.id.as_deref().map(str::trim) {
        None => None,
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|c| c.is_ascii_graphic()) =>
        {
            Some(id.to_owned())
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "`id`: 1 to 128 visible ASCII characters".into(),
            ));
        }
    };
    Ok((role, text.to_owned(), at_ms(b.at.as_ref())?, id))
}

#[post("/api/v1/messages")]
#[tracing::instrument(name = "api.messages", skip_all, fields(tenant = tracing::field::Empty))]
pub(super) async fn messages(
    calls: web::Data<Calls>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    observed("messages", async {
        let b: Body = json::parse(&body, "message").map_err(ApiError::from)?;
        let (role, text, at, id) = content(&b)?;
        let (caller, tenant) = resolve(&calls, &req, &b.target).await?;
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let message = NewMessage {
            key: format!("message:{}:{id}", tenant.id),
            tenant_id: tenant.id.clone(),
            caller,
            instance: b.target.instance.clone(),
            role,
            text,
            at_ms: at,
        };
        let (durability, outcome) = calls
            .append_message(message)
            .await
            .map_err(ApiError::from)?;
        Ok(HttpResponse::Accepted().json(json!({
            "received": true,
            "id": id,
            "durable_in": match durability {
                Durability::Database => "database",
                Durability::SpillJournal => "spill_journal",
            },
            "duplicate": outcome == Outcome::Duplicate,
        })))
    })
    .await
}
