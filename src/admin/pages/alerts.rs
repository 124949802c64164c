//! `/admin/alerts`: what warmline's own evaluation of its alert rules has
//! firing (value against threshold, since when, who acknowledged it), the
//! thresholds in force, and the resolved history. An admin acknowledges an
//! alert with a button; that is audited.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::Chrome;
use crate::admin::AdminSettings;
use crate::admin::alerts::{AlertSettings, Rule, minutes};
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};
use crate::error::ApiError;
use crate::store::AlertRecord;
use crate::support::now_ms;

/// Resolved alerts shown.
const HISTORY: u32 = 100;

/// One stored alert, ready to show.
pub struct AlertRow {
    pub id: i64,
    pub name: String,
    pub summary: String,
    pub meaning: &'static str,
    pub severity: String,
    /// `upstream=zep`, or empty.
    pub labels: String,
    pub value: String,
    pub comparison: &'static str,
    pub threshold: String,
    pub detail: String,
    pub since: String,
    pub resolved: String,
    pub acknowledged: Option<(String, String)>,
}

/// One rule with the threshold in force.
pub struct RuleRow {
    pub name: &'static str,
    pub summary: &'static str,
    pub severity: &'static str,
    pub condition: String,
    pub hold: String,
    pub firing: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    active: Vec<AlertRow>,
    rules: Vec<RuleRow>,
    resolved: Vec<AlertRow>,
    every: String,
    message: Option<String>,
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || "?".into(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn labels(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(a: AlertRecord) -> AlertRow {
    let rule = Rule::from_name(&a.name);
    let (summary, meaning, comparison) = match rule {
        Some(r) => (r.summary().to_owned(), r.meaning(), r.comparison()),
        // A rule of another warmline version (a replica mid-upgrade).
        None => (a.name.clone(), "", ""),
    };
    let show = |v: f64| rule.map_or_else(|| format!("{v}"), |r| r.show(v));
    AlertRow {
        id: a.id,
        summary: match (rule, a.labels.get("upstream")) {
            (Some(Rule::UpstreamBreakerOpen), Some(up)) => format!("{summary}: {up}"),
            _ => summary,
        },
        name: a.name,
        meaning,
        severity: a.severity,
        labels: labels(&a.labels),
        value: show(a.value),
        comparison,
        threshold: show(a.threshold),
        detail: a.detail,
        since: when(a.started_at_ms),
        resolved: a.resolved_at_ms.map(when).unwrap_or_default(),
        acknowledged: a
            .acknowledged_by
            .map(|by| (by, a.acknowledged_at_ms.map(when).unwrap_or_default())),
    }
}

fn rules(settings: &AlertSettings, active: &[AlertRow]) -> Vec<RuleRow> {
    Rule::ALL
        .into_iter()
        .map(|r| RuleRow {
            name: r.name(),
            summary: r.summary(),
            severity: r.severity(),
            condition: r.condition(settings),
            hold: minutes(settings.hold_for(r)),
            firing: active.iter().filter(|a| a.name == r.name()).count(),
        })
        .collect()
}

#[derive(Deserialize)]
struct Flash {
    acknowledged: Option<String>,
}

#[get("/admin/alerts")]
async fn alerts(
    console: web::Data<Console>,
    settings: web::Data<AdminSettings>,
    op: Operator,
    flash: web::Query<Flash>,
) -> Result<AlertsPage, PageError> {
    // Both lists from one read: an alert resolving meanwhile must not show
    // as firing and resolved at once.
    let (active, resolved) = console.store.alert_board(HISTORY).await?;
    let active: Vec<AlertRow> = active.into_iter().map(row).collect();
    let resolved = resolved.into_iter().map(row).collect();
    let message = flash.acknowledged.as_deref().map(|outcome| match outcome {
        "ok" => "Alert acknowledged.".to_owned(),
        _ => {
            "Nothing to acknowledge: the alert was acknowledged already or has resolved.".to_owned()
        }
    });
    Ok(AlertsPage {
        chrome: Chrome::new(&console, &op, "/admin/alerts").await,
        rules: rules(&settings.alerts, &active),
        active,
        resolved,
        every: minutes(settings.alerts.every),
        message,
    })
}

#[derive(Deserialize)]
struct AckForm {
    csrf: String,
}

#[post("/admin/alerts/{id}/acknowledge")]
async fn acknowledge(
    console: web::Data<Console>,
    op: Operator,
    id: web::Path<i64>,
    form: web::Form<AckForm>,
) -> Result<HttpResponse, PageError> {
    op.may_change(&form.csrf)?;
    let id = id.into_inner();
    let alert = console
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    let done = console
        .store
        .acknowledge_alert(id, op.actor(), now_ms())
        .await?;
    let outcome = if done {
        "ok"
    } else {
        "not_active_or_already_acknowledged"
    };
    crate::admin::audit::record(
        &console.store,
        op.actor(),
        "acknowledge_alert",
        serde_json::json!({ "id": id, "alert": alert.name, "labels": alert.labels }),
        outcome,
    )
    .await;
    Ok(HttpResponse::SeeOther()
        .insert_header((
            "location",
            format!(
                "/admin/alerts?acknowledged={}",
                if done { "ok" } else { "no" }
            ),
        ))
        .finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(alerts).service(acknowledge);
}
