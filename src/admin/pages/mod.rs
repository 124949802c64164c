//! The operators' pages under `/admin`, server-rendered with askama and
//! made live with htmx: every page carries the summary bar, which refreshes
//! itself (`/admin/summary`) at the interval the operator picks, paused
//! while the tab is hidden. Every page needs a logged-in [`Operator`];
//! every form that changes something carries the session's CSRF token.

mod alerts;
mod cache;
mod cache_key;
mod calls;
mod events;
mod login;
mod metrics;
mod overview;
mod tenants;
mod upstreams;

use actix_web::{get, web};
use askama::Template;
use askama_web::WebTemplate;

use super::console::{Console, Summary};
use super::session::{Operator, PageError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    login::configure(cfg);
    cfg.service(summary);
    overview::configure(cfg);
    calls::configure(cfg);
    cache::configure(cfg);
    cache_key::configure(cfg);
    metrics::configure(cfg);
    events::configure(cfg);
    tenants::configure(cfg);
    alerts::configure(cfg);
    upstreams::configure(cfg);
}

/// What every page's layout needs: who is logged in, the CSRF token for
/// its forms, which page is current, and the summary bar.
pub struct Chrome {
    pub role: &'static str,
    pub csrf: String,
    pub current: &'static str,
    pub summary: Summary,
    pub version: &'static str,
    pub nav: &'static [(&'static str, &'static str)],
}

impl Chrome {
    pub async fn new(console: &Console, op: &Operator, current: &'static str) -> Self {
        Chrome {
            role: op.role.as_str(),
            csrf: op.csrf.clone(),
            current,
            summary: console.summary().await,
            version: env!("CARGO_PKG_VERSION"),
            nav: NAV,
        }
    }
}

/// The navigation: path, label.
pub const NAV: &[(&str, &str)] = &[
    ("/admin", "Overview"),
    ("/admin/calls", "Calls"),
    ("/admin/metrics", "Daily metrics"),
    ("/admin/cache", "Cache"),
    ("/admin/upstreams", "Upstreams"),
    ("/admin/tenants", "Tenants"),
    ("/admin/events", "Parked events"),
    ("/admin/alerts", "Alerts"),
];

#[derive(Template, WebTemplate)]
#[template(path = "admin/summary.html")]
struct SummaryBar {
    summary: Summary,
}

/// The summary bar alone, for htmx's refresh.
#[get("/admin/summary")]
async fn summary(console: web::Data<Console>, _op: Operator) -> Result<SummaryBar, PageError> {
    Ok(SummaryBar {
        summary: console.summary().await,
    })
}
