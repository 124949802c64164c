//! The HTTP layer: the route table, the server, and the routes that belong
//! to no surface of their own — health and readiness, the status page,
//! `/metrics`, the vendored assets. The webhooks and the admin bring their
//! own routes; this module only mounts them.
//!
//! Each piece of state is registered once, by its own type, and each handler
//! takes only the pieces it uses: a webhook handler gets the call service and
//! the webhook [`Gate`], so it cannot reach the store or the admin even by
//! accident.

mod assets;
mod health;
mod metrics;

pub use health::{DatabaseHealth, Probes, Readiness, readiness};
pub use metrics::Scrape;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::admin::{AdminSettings, Console};
use crate::cache::Cache;
use crate::calls::Calls;
use crate::error::{json_error_handler, not_found, query_error_handler};
use crate::store::Store;
use crate::support::{Env, SettingsError};
use crate::telemetry::http::{RootSpan, trace_id_header};
use crate::webhooks::{Gate, MAX_BODY_BYTES};

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// `WARMLINE_ADDR`: where to listen.
    pub addr: SocketAddr,
    /// `WARMLINE_SHUTDOWN_GRACE_MS`: how long in-flight requests may take to
    /// finish once warmline stops accepting connections.
    pub shutdown_grace: Duration,
    /// `WARMLINE_SHUTDOWN_DRAIN_MS`: after SIGTERM, how long warmline keeps
    /// accepting and serving while `/ready` answers 503, so a load balancer
    /// notices and stops sending before the listener closes.
    pub shutdown_drain: Duration,
}

impl HttpSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(HttpSettings {
            addr: env.parse_or(
                "WARMLINE_ADDR",
                DEFAULT_ADDR.parse().expect("valid default"),
            )?,
            shutdown_grace: env.millis_or("WARMLINE_SHUTDOWN_GRACE_MS", 10_000)?,
            shutdown_drain: env.millis_or("WARMLINE_SHUTDOWN_DRAIN_MS", 2_000)?,
        })
    }
}

/// Everything the routes are handed, each registered as its own type.
#[derive(Clone)]
pub struct Routes {
    pub calls: Calls,
    pub gate: Gate,
    pub cache: Cache,
    pub store: Store,
    pub admin: AdminSettings,
    pub console: Console,
    pub probes: Probes,
    pub scrape: Scrape,
}

/// Starts serving `routes` on `listener`; the server stops through its
/// handle. Signals are not handled here: the application flips readiness
/// before it drains.
pub fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown_grace: Duration,
) -> std::io::Result<Server> {
    let data = (
        web::Data::new(routes.calls),
        web::Data::new(routes.gate),
        web::Data::new(routes.cache),
        web::Data::new(routes.store),
        web::Data::new(routes.admin),
        web::Data::new(routes.console),
        web::Data::new(routes.probes),
        web::Data::new(routes.scrape),
    );
    let server = HttpServer::new(move || {
        let (calls, gate, cache, store, admin, console, probes, scrape) = data.clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(trace_id_header))
            .wrap(TracingLogger::<RootSpan>::new())
            .app_data(calls)
            .app_data(gate)
            .app_data(cache)
            .app_data(store)
            .app_data(admin)
            .app_data(console)
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .app_data(probes)
            .app_data(scrape)
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY_BYTES)
                    .error_handler(json_error_handler),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error_handler))
            .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
            // Webhooks first: a caller waits on them, and routes are
            // matched in order.
            .configure(crate::webhooks::configure)
            .configure(crate::bots::configure)
            .configure(health::configure)
            .configure(crate::admin::api::configure)
            .configure(crate::admin::pages::configure)
            .configure(metrics::configure)
            .configure(assets::configure)
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .shutdown_timeout(shutdown_grace.as_secs().max(1))
    .listen(listener)?
    .run();
    Ok(server)
}
