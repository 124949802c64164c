//! `/admin/cache`: per namespace and tier, how lookups were answered; flush
//! by key, prefix, namespace, tenant or everything — each behind a
//! confirmation step — a warm-up button, and the audit log of flushes.

use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::Chrome;
use crate::admin::api::{FlushRequest, scope_label, scope_of};
use crate::admin::audit::{self, AuditRow};
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};
use crate::cache::{Namespace, Outcome, Tier};

pub struct NamespaceRow {
    pub name: &'static str,
    pub entries: u64,
    pub lookups: u64,
    pub hit_ratio: String,
    pub stale_ratio: String,
    /// Per tier, the counts in [`OUTCOMES`] order.
    pub tiers: Vec<(&'static str, Vec<u64>)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/cache.html")]
struct CachePage {
    chrome: Chrome,
    rows: Vec<NamespaceRow>,
    outcomes: Vec<&'static str>,
    namespaces: Vec<&'static str>,
    redis: String,
    audit: Vec<AuditRow>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Flash {
    done: Option<String>,
}

#[get("/admin/cache")]
async fn cache_page(
    console: web::Data<Console>,
    op: Operator,
    flash: web::Query<Flash>,
) -> Result<CachePage, PageError> {
    let stats = console.cache.stats();
    let rows = Namespace::ALL
        .into_iter()
        .filter_map(|ns| {
            let s = stats.namespaces.get(ns.as_str())?;
            let tiers = Tier::ALL
                .into_iter()
                .map(|t| {
                    let counts = s.tiers.get(t.as_str());
                    let row = Outcome::ALL
                        .iter()
                        .map(|o| counts.and_then(|c| c.get(o.as_str())).copied().unwrap_or(0))
                        .collect();
                    (t.as_str(), row)
                })
                .collect();
            Some(NamespaceRow {
                name: ns.as_str(),
                entries: s.entries,
                lookups: s.lookups,
                hit_ratio: format!("{:.1} %", s.hit_ratio * 100.0),
                stale_ratio: format!("{:.1} %", s.stale_ratio * 100.0),
                tiers,
            })
        })
        .collect();
    let redis = match &stats.l2 {
        None => "not configured: L1 only".to_owned(),
        Some(l2) if l2.owed_drops > 0 => format!(
            "breaker {}, {} errors, {} changed entr{} still to drop from Redis and the other replicas",
            l2.breaker.as_str(),
            l2.errors,
            l2.owed_drops,
            if l2.owed_drops == 1 { "y" } else { "ies" }
        ),
        Some(l2) => format!("breaker {}, {} errors", l2.breaker.as_str(), l2.errors),
    } + &stats.backplane.as_ref().map_or_else(String::new, |b| {
        format!(
            "; backplane {}, {} silent spell{} (L1 flushed each time)",
            if b.connected {
                "subscribed"
            } else {
                "not subscribed"
            },
            b.silences,
            if b.silences == 1 { "" } else { "s" }
        )
    });
    let audit = audit::recent(&console.store, "cache.", 20).await?;
    Ok(CachePage {
        chrome: Chrome::new(&console, &op, "/admin/cache").await,
        rows,
        outcomes: Outcome::ALL.iter().map(|o| o.as_str()).collect(),
        namespaces: Namespace::ALL.iter().map(|n| n.as_str()).collect(),
        redis,
        audit,
        message: flash.done.clone(),
    })
}

/// The flush form: what to flush (`key`, `prefix`, `namespace`, `tenant`,
/// `all`), the namespace and value it needs, and — the second time —
/// `confirm=yes`.
#[derive(Deserialize)]
struct FlushForm {
    csrf: String,
    scope: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    confirm: String,
}

impl FlushForm {
    fn request(&self) -> FlushRequest {
        let text = |s: &str| Some(s.trim().to_owned());
        let ns = text(&self.namespace);
        let mut r = FlushRequest {
            namespace: None,
            key: None,
            prefix: None,
            tenant: None,
            all: None,
        };
        match self.scope.as_str() {
            "key" => (r.namespace, r.key) = (ns, text(&self.value)),
            "prefix" => (r.namespace, r.prefix) = (ns, text(&self.value)),
            "namespace" => r.namespace = ns,
            "tenant" => r.tenant = text(&self.value),
            "all" => r.all = Some(true),
            _ => {}
        }
        r
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/cache_confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    what: String,
    scope: String,
    namespace: String,
    value: String,
}

#[post("/admin/cache/flush")]
async fn flush(
    console: web::Data<Console>,
    op: Operator,
    form: web::Form<FlushForm>,
) -> Result<HttpResponse, PageError> {
    op.may_change(&form.csrf)?;
    let request = form.request();
    let scope = scope_of(&request, &console.store).await?;
    let what = scope_label(&scope);
    if form.confirm != "yes" {
        let page = ConfirmPage {
            chrome: Chrome::new(&console, &op, "/admin/cache").await,
            what,
            scope: form.scope.clone(),
            namespace: form.namespace.clone(),
            value: form.value.clone(),
        };
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(
                page.render()
                    .map_err(|e| crate::error::ApiError::Internal(e.into()))?,
            ));
    }
    let report = console.cache.flush(&scope).await;
    tracing::info!(scope = %what, flushed = report.flushed, actor = op.actor(), "cache flushed from the admin");
    crate::admin::audit::record(
        &console.store,
        op.actor(),
        "cache.flush",
        serde_json::to_value(&request).unwrap_or_default(),
        format!("flushed {}", report.flushed),
    )
    .await;
    let done = format!("Flushed {} entries ({what}).", report.flushed);
    Ok(see_other(&done))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

#[post("/admin/cache/warmup")]
async fn warmup(
    console: web::Data<Console>,
    op: Operator,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    op.may_change(&form.csrf)?;
    let results = console.cache.warm_up().await;
    let loaded: usize = results.values().filter_map(|r| r.as_ref().ok()).sum();
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(ns, _)| ns.as_str())
        .collect();
    let outcome = format!("loaded {loaded}; failed: {}", failed.join(", "));
    crate::admin::audit::record(
        &console.store,
        op.actor(),
        "cache.warmup",
        serde_json::json!({}),
        &outcome,
    )
    .await;
    Ok(see_other(&format!("Warm-up {outcome}.")))
}

fn see_other(done: &str) -> HttpResponse {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", done)
        .finish();
    HttpResponse::SeeOther()
        .insert_header(("location", format!("/admin/cache?{q}")))
        .finish()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(cache_page).service(flush).service(warmup);
}
