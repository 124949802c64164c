//! `/health` (liveness), `/ready` (readiness with dependency status) and the
//! human-readable status page at `/`.
//!
//! `/ready` stays 200 while warmline can answer webhooks — which it can from
//! cache even when the database or Redis is down, so those only set
//! `degraded`. It turns 503 once shutdown has begun, so a load balancer stops
//! sending new calls while in-flight ones drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Serialize;

use crate::cache::{RedisHealth, RedisLink, RedisShape};
use crate::store::{PoolShape, Store};

/// What health and readiness look at.
#[derive(Clone)]
pub struct Probes {
    pub store: Store,
    pub redis: Option<RedisLink>,
    /// Set once the schema is known to be migrated.
    pub schema_ready: Arc<AtomicBool>,
    /// Set when shutdown begins: `/ready` turns 503.
    pub shutting_down: Arc<AtomicBool>,
}

const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseHealth {
    Ok,
    Error,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub degraded: bool,
    pub database: DatabaseHealth,
    pub database_backend: &'static str,
    /// Why the database probe failed (e.g. a TLS certificate it rejected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_error: Option<String>,
    /// The pool's settings and connections (never a URL or password).
    pub database_pool: PoolShape,
    pub redis: RedisHealth,
    /// How Redis is reached (single or cluster, TLS, timeouts); `null`
    /// without Redis.
    pub redis_connection: Option<RedisShape>,
    pub version: &'static str,
}

#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

#[get("/ready")]
async fn ready(probes: web::Data<Probes>) -> HttpResponse {
    let r = readiness(&probes).await;
    let mut resp = if r.status == "shutting_down" {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header(("cache-control", "no-store")).json(r)
}

/// Probes the database and Redis concurrently, each within its own timeout.
pub async fn readiness(state: &Probes) -> Readiness {
    let db = async {
        let probe = state.store.ping(DATABASE_PROBE_TIMEOUT).await;
        match probe {
            Err(e) => (
                DatabaseHealth::Error,
                Some(format!("{:#}", anyhow::Error::from(e))),
            ),
            Ok(()) if !state.schema_ready.load(Ordering::Acquire) => (
                DatabaseHealth::Error,
                Some("the schema is not migrated yet".to_owned()),
            ),
            Ok(()) => (DatabaseHealth::Ok, None),
        }
    };
    let redis = async {
        match &state.redis {
            None => RedisHealth::Disabled,
            Some(link) => link.ping(REDIS_PROBE_TIMEOUT).await,
        }
    };
    let ((database, database_error), redis) = tokio::join!(db, redis);
    let degraded = database == DatabaseHealth::Error || redis == RedisHealth::Error;
    let status = if state.shutting_down.load(Ordering::Acquire) {
        "shutting_down"
    } else if degraded {
        "degraded"
    } else {
        "ready"
    };
    Readiness {
        status,
        degraded,
        database,
        database_backend: state.store.backend().as_str(),
        database_error,
        database_pool: state.store.pool_shape(),
        redis,
        redis_connection: state.redis.as_ref().map(|l| l.shape().clone()),
        version: env!("CARGO_PKG_VERSION"),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "status.html")]
struct StatusPage {
    version: &'static str,
    degraded: bool,
    database: &'static str,
    database_backend: &'static str,
    redis: &'static str,
}

/// The same facts as `/ready`, for a person; refreshes itself while visible.
#[get("/")]
async fn status_page(probes: web::Data<Probes>) -> StatusPage {
    let r = readiness(&probes).await;
    StatusPage {
        version: r.version,
        degraded: r.degraded,
        database: match r.database {
            DatabaseHealth::Ok => "ok",
            DatabaseHealth::Error => "error",
        },
        database_backend: r.database_backend,
        redis: match r.redis {
            RedisHealth::Ok => "ok",
            RedisHealth::Disabled => "disabled",
            RedisHealth::Error => "error",
        },
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health).service(ready).service(status_page);
}
