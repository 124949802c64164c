//! `/admin/events`: what the write-behind could not apply, with why, and a
//! button that applies it all again (idempotently).

use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::Chrome;
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};
use crate::error::ApiError;

pub struct ParkedRow {
    pub at: String,
    pub key: String,
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/events.html")]
struct EventsPage {
    chrome: Chrome,
    parked: Vec<ParkedRow>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Flash {
    applied: Option<usize>,
    still: Option<usize>,
}

#[get("/admin/events")]
async fn events(
    console: web::Data<Console>,
    op: Operator,
    flash: web::Query<Flash>,
) -> Result<EventsPage, PageError> {
    let parked = console
        .writebehind
        .spill()
        .parked()
        .map_err(|e| ApiError::Internal(e.into()))?
        .into_iter()
        .map(|p| ParkedRow {
            at: chrono::DateTime::from_timestamp_millis(p.at_ms).map_or_else(
                || "?".into(),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ),
            key: crate::domain::mask_phones_in(&p.job.key()),
            kind: p.job.kind(),
            reason: p.reason,
        })
        .collect();
    let message = flash.applied.map(|n| {
        format!(
            "{n} parked event(s) applied; {} still parked.",
            flash.still.unwrap_or(0)
        )
    });
    Ok(EventsPage {
        chrome: Chrome::new(&console, &op, "/admin/events").await,
        parked,
        message,
    })
}

#[derive(Deserialize)]
struct ReplayForm {
    csrf: String,
}

#[post("/admin/events/replay")]
async fn replay(
    console: web::Data<Console>,
    op: Operator,
    form: web::Form<ReplayForm>,
) -> Result<HttpResponse, PageError> {
    op.may_change(&form.csrf)?;
    let (applied, still) =
        crate::writebehind::replay_rejected(&console.store, console.writebehind.spill())
            .await
            .map_err(ApiError::Internal)?;
    crate::admin::audit::record(
        &console.store,
        op.actor(),
        "replay_parked",
        serde_json::json!({ "applied": applied, "still_parked": still.len() }),
        "ok",
    )
    .await;
    Ok(HttpResponse::SeeOther()
        .insert_header((
            "location",
            format!("/admin/events?applied={applied}&still={}", still.len()),
        ))
        .finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(events).service(replay);
}
