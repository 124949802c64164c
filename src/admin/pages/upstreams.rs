//! `/admin/upstreams`: each upstream's breaker, last failure, and p50 / p95
//! and error ratio per operation over the last five minutes; beside them,
//! the webhooks' own latency by platform.

use actix_web::{get, web};
use askama::Template;
use askama_web::WebTemplate;

use super::Chrome;
use crate::admin::console::{Console, breaker_class};
use crate::admin::session::{Operator, PageError};
use crate::support::{LatencyStats, redact_url};

/// One operation's (or platform's) figures, formatted.
pub struct OpRow {
    pub name: String,
    pub count: usize,
    pub p50: String,
    pub p95: String,
    pub errors: String,
    /// Any errors at all: the row is marked.
    pub failing: bool,
}

impl From<&LatencyStats> for OpRow {
    fn from(s: &LatencyStats) -> Self {
        OpRow {
            name: s.label.clone(),
            count: s.count,
            p50: format!("{:.1} ms", s.p50_ms),
            p95: format!("{:.1} ms", s.p95_ms),
            errors: format!("{:.1} %", s.error_ratio() * 100.0),
            failing: s.errors > 0,
        }
    }
}

pub struct UpstreamRow {
    pub name: &'static str,
    pub base_url: String,
    /// `closed` / `half_open` / `open`, and its dot's class.
    pub breaker: &'static str,
    pub dot: &'static str,
    pub last_failure: Option<(String, String)>,
    pub operations: Vec<OpRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/upstreams.html")]
struct UpstreamsPage {
    chrome: Chrome,
    upstreams: Vec<UpstreamRow>,
    webhooks: Vec<OpRow>,
    /// GoHighLevel's quota per location, in a sentence.
    quota: String,
}

fn quota_sentence(q: &crate::support::QuotaStatus) -> String {
    if q.limit == 0 {
        return "GoHighLevel: no request quota configured.".into();
    }
    format!(
        "GoHighLevel quota: {} requests per {} s per location, counted {}. Kept back since start: {} (shared count), {} (this replica's own count, while Redis was unavailable).",
        q.limit,
        q.window_ms as f64 / 1000.0,
        if q.shared {
            "in Redis for every replica together"
        } else {
            "by this replica alone (no Redis)"
        },
        q.throttled_shared,
        q.throttled_local
    )
}

fn when(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms).map_or_else(
        || "?".into(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

#[get("/admin/upstreams")]
async fn upstreams(console: web::Data<Console>, op: Operator) -> Result<UpstreamsPage, PageError> {
    let upstreams = console
        .upstreams
        .status()
        .into_iter()
        .map(|u| UpstreamRow {
            name: u.upstream,
            base_url: redact_url(&u.base_url),
            breaker: u.breaker.as_str(),
            dot: breaker_class(u.breaker),
            last_failure: u.last_failure.map(|f| (when(f.at_ms), f.error)),
            operations: u.operations.iter().map(OpRow::from).collect(),
        })
        .collect();
    let mut webhooks: Vec<OpRow> = console
        .webhook_latency
        .stats()
        .iter()
        .map(OpRow::from)
        .collect();
    if let Some(all) = console.webhook_latency.answered() {
        webhooks.push(OpRow::from(&all));
    }
    Ok(UpstreamsPage {
        chrome: Chrome::new(&console, &op, "/admin/upstreams").await,
        upstreams,
        webhooks,
        quota: quota_sentence(&console.upstreams.gohighlevel_quota()),
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(upstreams);
}
