//! Builds the application from settings, binds its listener and runs it until
//! a signal (or a test) stops it.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::telemetry::http::{RootSpan, trace_id_header};

use crate::cache::{Cache, CacheConfig, RedisLink};
use crate::calls::Calls;
use crate::error::{json_error_handler, not_found, query_error_handler};
use crate::settings::Settings;
use crate::simulator::Simulator;
use crate::store::{Store, StoreError};
use crate::upstreams::Upstreams;
use crate::writebehind::WriteBehind;
use crate::{admin, assets, health};

/// Largest request body accepted anywhere (webhooks carry transcripts).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long the first migration may take before the start goes on degraded.
const STARTUP_MIGRATION_TIMEOUT: Duration = Duration::from_secs(5);
const MIGRATION_RETRY_INTERVAL: Duration = Duration::from_secs(5);
const STARTUP_WARMUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler can reach. Cheap to clone.
pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub redis: Option<RedisLink>,
    pub cache: Cache,
    pub calls: Calls,
    pub writebehind: WriteBehind,
    pub upstreams: Arc<Upstreams>,
    /// The in-process simulator behind the demo tenant, when it runs.
    pub demo: Option<Simulator>,
    /// Set once the schema is known to be migrated.
    pub schema_ready: Arc<AtomicBool>,
    /// Set when shutdown begins: `/ready` turns 503.
    pub shutting_down: Arc<AtomicBool>,
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

/// Stops a running [`Application`] gracefully, as SIGTERM does.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    shutting_down: Arc<AtomicBool>,
}

impl StopHandle {
    /// Stops accepting connections and waits for in-flight requests (up to
    /// the shutdown grace period) to finish.
    pub async fn stop(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.server.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Before anything records a metric.
        crate::telemetry::metrics::install();
        let store = Store::connect_lazy(&settings.database).context("DATABASE_URL")?;
        let schema_ready = Arc::new(AtomicBool::new(false));
        prepare_schema(&store, &schema_ready).await?;

        let redis = settings
            .redis
            .as_ref()
            .map(RedisLink::new)
            .transpose()
            .context("REDIS_URL")?;

        let cache = Cache::new(CacheConfig {
            policies: settings.cache_policies.clone(),
            redis: redis.clone(),
            redis_prefix: settings
                .redis
                .as_ref()
                .map_or_else(|| "wl:".into(), |r| r.prefix.clone()),
            store: Some(store.clone()),
        });
        let upstreams = Arc::new(Upstreams::new(settings.upstreams.clone()));
        let writebehind = WriteBehind::start(
            store.clone(),
            settings.spill_dir.clone(),
            settings.idempotency_retention,
        )
        .with_context(|| {
            format!(
                "cannot open the spill journal in WARMLINE_SPILL_DIR={}",
                settings.spill_dir.display()
            )
        })?;
        let calls = Calls::new(
            &cache,
            store.clone(),
            upstreams.clone(),
            writebehind.clone(),
            settings.webhooks.inbound_deadline,
        );
        calls.start_writeback();
        let demo = match (settings.demo, schema_ready.load(Ordering::Acquire)) {
            (true, true) => crate::demo::prepare(&store)
                .await
                .context("preparing the demo tenant")?,
            _ => None,
        };
        if schema_ready.load(Ordering::Acquire) {
            // Before serving, so the first call finds its tenant in memory.
            let warmed = tokio::time::timeout(STARTUP_WARMUP_TIMEOUT, cache.warm_up()).await;
            if warmed.is_err() {
                tracing::warn!("cache warm-up at start timed out; serving cold");
            }
        }

        let listener = TcpListener::bind(settings.addr)
            .with_context(|| format!("cannot listen on WARMLINE_ADDR={}", settings.addr))?;
        let port = listener.local_addr()?.port();

        let state = web::Data::new(AppState {
            settings: settings.clone(),
            store,
            redis,
            cache,
            calls,
            writebehind,
            upstreams,
            demo,
            schema_ready,
            shutting_down: Arc::new(AtomicBool::new(false)),
        });
        let server = run(listener, state.clone(), settings.shutdown_grace)?;
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            shutting_down: self.state.shutting_down.clone(),
        }
    }

    /// Serves until the server is stopped through a [`StopHandle`] or the
    /// process receives SIGTERM or SIGINT; then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = self.stop_handle();
        let state = self.state.clone();
        let signals = tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::info!(signal, "shutting down: draining in-flight requests");
            stop.stop().await;
        });
        let result = self.server.await;
        signals.abort();
        state.store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Applies migrations at start. If the database cannot be reached in time,
/// warmline starts anyway (degraded: it answers from cache) and keeps
/// retrying in the background; a broken migration still stops the start.
async fn prepare_schema(store: &Store, schema_ready: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let first = tokio::time::timeout(STARTUP_MIGRATION_TIMEOUT, store.migrate())
        .await
        .unwrap_or(Err(StoreError::Timeout(STARTUP_MIGRATION_TIMEOUT)));
    match first {
        Ok(()) => {
            schema_ready.store(true, Ordering::Release);
            Ok(())
        }
        Err(e) if e.is_unavailable() => {
            tracing::error!(
                error = format!("{:#}", anyhow::Error::from(e)),
                "database unreachable at start: serving degraded, retrying migrations every {}s",
                MIGRATION_RETRY_INTERVAL.as_secs()
            );
            let (store, ready) = (store.clone(), schema_ready.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(MIGRATION_RETRY_INTERVAL).await;
                    match store.migrate().await {
                        Ok(()) => {
                            ready.store(true, Ordering::Release);
                            tracing::info!("database reachable again: schema migrated");
                            return;
                        }
                        Err(e) => tracing::warn!(
                            error = format!("{:#}", anyhow::Error::from(e)),
                            "database still unreachable"
                        ),
                    }
                }
            });
            Ok(())
        }
        Err(e) => Err(anyhow::Error::from(e).context("applying database migrations")),
    }
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    shutdown_grace: Duration,
) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(trace_id_header))
            .wrap(TracingLogger::<RootSpan>::new())
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY_BYTES)
                    .error_handler(json_error_handler),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error_handler))
            .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
            .configure(health::configure)
            .configure(admin::api::configure)
            .configure(crate::webhooks::retell::configure)
            .configure(crate::webhooks::vapi::configure)
            .configure(crate::webhooks::elevenlabs::configure)
            .configure(crate::telemetry::metrics::configure)
            .configure(assets::configure)
            .default_service(web::to(not_found))
    })
    // We handle SIGTERM/SIGINT ourselves, to flip readiness before draining.
    .disable_signals()
    .shutdown_timeout(shutdown_grace.as_secs().max(1))
    .listen(listener)?
    .run();
    Ok(server)
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
