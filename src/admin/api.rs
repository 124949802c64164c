//! The admin JSON API under `/admin/api/`, protected by [`AdminToken`]:
//! cache flush, stats and warm-up. Every flush and warm-up is written to the
//! audit log.

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;

use super::AdminToken;
use crate::cache::{Cache, FlushScope, Namespace};
use crate::domain::PhoneNumber;
use crate::error::ApiError;
use crate::store::Store;

const ACTOR: &str = "admin-api-token";

/// One of `{"namespace": N, "key": K}`, `{"namespace": N, "prefix": P}`,
/// `{"namespace": N}`, `{"tenant": "+1…"}` or `{"all": true}`.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlushRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

const FLUSH_SHAPES: &str = r#"expected {"namespace": N, "key": K}, {"namespace": N, "prefix": P}, {"namespace": N}, {"tenant": "+1…"} or {"all": true}"#;

pub(super) async fn scope_of(req: &FlushRequest, store: &Store) -> Result<FlushScope, ApiError> {
    let bad = |msg: &str| ApiError::BadRequest(format!("{msg}; {FLUSH_SHAPES}"));
    match req {
        FlushRequest {
            all: Some(true),
            namespace: None,
            key: None,
            prefix: None,
            tenant: None,
        } => Ok(FlushScope::All),
        FlushRequest {
            all: Some(false), ..
        } => Err(bad("`all` must be true when given")),
        FlushRequest {
            tenant: Some(number),
            namespace: None,
            key: None,
            prefix: None,
            all: None,
        } => {
            let number = PhoneNumber::parse(number)
                .map_err(|e| ApiError::BadRequest(format!("`tenant`: {e}")))?;
            let tenant = store.tenant_by_number(&number).await?.ok_or_else(|| {
                ApiError::NotFound(format!("no tenant has called number {}", number.masked()))
            })?;
            Ok(FlushScope::Tenant {
                tenant_id: tenant.id.to_string(),
                called_number: number.as_str().to_owned(),
            })
        }
        FlushRequest {
            namespace: Some(ns),
            tenant: None,
            all: None,
            key,
            prefix,
        } => {
            let ns: Namespace = ns
                .parse()
                .map_err(|e: String| ApiError::BadRequest(format!("`namespace`: {e}")))?;
            match (key, prefix) {
                (Some(_), Some(_)) => Err(bad("give `key` or `prefix`, not both")),
                (Some(key), None) if key.is_empty() => Err(bad("`key` is empty")),
                (Some(key), None) => Ok(FlushScope::Key {
                    ns,
                    key: key.clone(),
                }),
                (None, Some(prefix)) if prefix.is_empty() => {
                    Err(bad("`prefix` is empty; to flush the namespace, omit it"))
                }
                (None, Some(prefix)) => Ok(FlushScope::Prefix {
                    ns,
                    prefix: prefix.clone(),
                }),
                (None, None) => Ok(FlushScope::Namespace(ns)),
            }
        }
        _ => Err(bad("unsupported combination of fields")),
    }
}

#[post("/admin/api/cache/flush")]
async fn flush(
    _auth: AdminToken,
    cache: web::Data<Cache>,
    store: web::Data<Store>,
    body: web::Json<FlushRequest>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope_of(&body, &store).await?;
    let report = cache.flush(&scope).await;
    tracing::info!(scope = ?scope_label(&scope), flushed = report.flushed, "cache flushed");
    audit(
        &store,
        "cache.flush",
        serde_json::to_value(&*body).unwrap_or_default(),
        format!("flushed {}", report.flushed),
    )
    .await;
    Ok(HttpResponse::Ok().json(report))
}

/// A flush scope for logs: names, never key contents (keys hold numbers).
pub(super) fn scope_label(scope: &FlushScope) -> String {
    match scope {
        FlushScope::Key { ns, .. } => format!("key in {ns}"),
        FlushScope::Prefix { ns, .. } => format!("prefix in {ns}"),
        FlushScope::Namespace(ns) => format!("namespace {ns}"),
        FlushScope::Tenant { tenant_id, .. } => format!("tenant {tenant_id}"),
        FlushScope::All => "all".into(),
    }
}

#[get("/admin/api/cache/stats")]
async fn stats(_auth: AdminToken, cache: web::Data<Cache>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(cache.stats())
}

#[post("/admin/api/cache/warmup")]
async fn warmup(
    _auth: AdminToken,
    cache: web::Data<Cache>,
    store: web::Data<Store>,
) -> HttpResponse {
    let results = cache.warm_up().await;
    let mut warmed = serde_json::Map::new();
    let mut errors = serde_json::Map::new();
    for (ns, r) in &results {
        match r {
            Ok(n) => warmed.insert(ns.clone(), (*n).into()),
            Err(e) => errors.insert(ns.clone(), e.clone().into()),
        };
    }
    let body = serde_json::json!({ "warmed": warmed, "errors": errors });
    audit(
        &store,
        "cache.warmup",
        serde_json::json!({}),
        body.to_string(),
    )
    .await;
    HttpResponse::Ok().json(body)
}

async fn audit(store: &Store, action: &str, target: serde_json::Value, outcome: String) {
    super::audit::record(store, ACTOR, action, target, outcome).await;
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(flush).service(stats).service(warmup);
}
