//! Builds the application from settings, binds its listener and runs it until
//! a signal (or a test) stops it. The one place that knows every part: it
//! wires them together and hands each surface only what it uses.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;

use crate::cache::{Cache, CacheConfig, RedisLink};
use crate::calls::Calls;
use crate::http::{Probes, Routes, Scrape};
use crate::settings::Settings;
use crate::simulator::Simulator;
use crate::store::{Store, StoreError};
use crate::tenants::TenantDirectory;
use crate::upstreams::Upstreams;
use crate::webhooks::Gate;
use crate::writeback::WriteBackWorker;
use crate::writebehind::WriteBehind;

/// How long the first migration may take before the start goes on degraded.
const STARTUP_MIGRATION_TIMEOUT: Duration = Duration::from_secs(5);
const MIGRATION_RETRY_INTERVAL: Duration = Duration::from_secs(5);
const STARTUP_WARMUP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Application {
    port: u16,
    server: Server,
    calls: Calls,
    cache: Cache,
    writebehind: WriteBehind,
    store: Store,
    /// The in-process simulator behind the demo tenant, when it runs; it
    /// lives as long as the application.
    demo: Option<Simulator>,
    shutting_down: Arc<AtomicBool>,
    drain: Duration,
    /// The admin's password for this run, when the demo made one.
    one_time_password: Option<String>,
    /// The demo tenant's key to the bots' API for this run, when the demo
    /// runs on loopback.
    demo_api_key: Option<String>,
}

/// Stops a running [`Application`] gracefully, as SIGTERM does.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    shutting_down: Arc<AtomicBool>,
    drain: Duration,
}

impl StopHandle {
    /// Shuts down as on SIGTERM: `/ready` turns 503 at once; requests are
    /// still accepted and served for the drain period (a load balancer
    /// takes a few probes to stop sending); then the listener closes and
    /// in-flight requests get the grace period to finish. Each of them has
    /// its events made durable before it answers, so once this returns
    /// nothing acknowledged is only in memory.
    pub async fn stop(&self) {
        self.begin_shutdown();
        tokio::time::sleep(self.drain).await;
        self.stop_now().await;
    }

    /// `/ready` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Closes the listener and waits for in-flight requests (SIGINT: no
    /// drain, someone is at the terminal).
    pub async fn stop_now(&self) {
        self.begin_shutdown();
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
            .cache
            .redis
            .as_ref()
            .map(RedisLink::new)
            .transpose()
            .context("REDIS_URL")?;
        let cache = Cache::new(CacheConfig {
            policies: settings.cache.policies.clone(),
            redis: redis.clone(),
            redis_prefix: settings.cache.redis_prefix(),
            store: Some(store.clone()),
        });
        let tenants = TenantDirectory::new(&cache, store.clone());
        let upstreams = Arc::new(Upstreams::with_shared_limits(
            settings.upstreams.clone(),
            cache.shared_window(),
        ));
        let writebehind =
            WriteBehind::start(store.clone(), &settings.writebehind).with_context(|| {
                format!(
                    "cannot open the spill journal in WARMLINE_SPILL_DIR={}",
                    settings.writebehind.spill_dir.display()
                )
            })?;
        let calls = Calls::new(
            &cache,
            store.clone(),
            tenants.clone(),
            upstreams.clone(),
            writebehind.clone(),
            &settings.calls,
        );
        WriteBackWorker::new(
            store.clone(),
            tenants.clone(),
            upstreams.clone(),
            cache.clone(),
        )
        .start();
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

        let addr = settings.http.addr;
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on WARMLINE_ADDR={addr}"))?;
        let port = listener.local_addr()?.port();
        let shutting_down = Arc::new(AtomicBool::new(false));
        let mut admin = settings.admin.clone();
        let mut one_time_password = None;
        // The demo on this machine: a key for the bots' API for this run
        // only, printed at start, for the demo tenant only.
        let demo_api_key = (demo.is_some() && addr.ip().is_loopback()).then(|| {
            let key = crate::admin::password::random_password();
            tenants.grant_api_key(&crate::demo::tenant_id(), &key);
            key
        });
        if !admin.login_configured() && demo.is_some() && addr.ip().is_loopback() {
            // The demo on this machine: a password for this run only,
            // printed at start (never logged), instead of an open admin.
            let password = crate::admin::password::random_password();
            admin.one_time_password = Some(password.clone().into());
            one_time_password = Some(password);
        }
        let webhook_latency = crate::support::RecentLatency::default();
        let rollup = crate::store::Rollup::new(store.clone());
        let every = settings.database.rollup_flush;
        let flusher = rollup.clone();
        crate::support::supervise("rollup", move || flusher.clone().run(every));
        let console = crate::admin::Console {
            store: store.clone(),
            cache: cache.clone(),
            upstreams: upstreams.clone(),
            writebehind: writebehind.clone(),
            tenants,
            webhook_latency: webhook_latency.clone(),
            limiter: Arc::new(crate::admin::LoginLimiter::default()),
        };
        // The alerts page's evaluation, from this replica's own numbers.
        crate::admin::alerts::start(&console, redis.clone(), settings.admin.alerts.clone());
        let routes = Routes {
            calls: calls.clone(),
            gate: Gate::new(
                settings.webhooks.clone(),
                demo.as_ref()
                    .map(|_| (crate::demo::number(), crate::demo::tenant_id())),
                addr.ip().is_loopback(),
                webhook_latency,
                Arc::new(rollup),
            ),
            cache: cache.clone(),
            store: store.clone(),
            admin,
            console,
            probes: Probes {
                store: store.clone(),
                redis: redis.clone(),
                schema_ready,
                shutting_down: shutting_down.clone(),
            },
            scrape: Scrape {
                store: store.clone(),
                redis,
                cache: cache.clone(),
                upstreams: upstreams.clone(),
                writebehind: writebehind.clone(),
            },
        };
        let server = crate::http::serve(listener, routes, settings.http.shutdown_grace)?;
        Ok(Application {
            port,
            server,
            calls,
            cache,
            writebehind,
            store,
            demo,
            shutting_down,
            drain: settings.http.shutdown_drain,
            one_time_password,
            demo_api_key,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The call service, as the webhooks use it (benchmarks call it in
    /// process).
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// The application's store (tests read what it wrote).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This replica's cache (tests and benchmarks inspect it).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// This replica's write-behind (tests look at its spill journal).
    pub fn writebehind(&self) -> &WriteBehind {
        &self.writebehind
    }

    /// The admin password made for this run (demo on loopback, none
    /// configured), to be shown to the person who started warmline.
    pub fn one_time_password(&self) -> Option<&str> {
        self.one_time_password.as_deref()
    }

    /// The demo tenant's key to the bots' API for this run (demo on
    /// loopback), to be shown to the person who started warmline.
    pub fn demo_api_key(&self) -> Option<&str> {
        self.demo_api_key.as_deref()
    }

    /// The demo's upstream simulator, when the demo runs.
    pub fn demo(&self) -> Option<&Simulator> {
        self.demo.as_ref()
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            shutting_down: self.shutting_down.clone(),
            drain: self.drain,
        }
    }

    /// Serves until the server is stopped through a [`StopHandle`] or the
    /// process receives SIGTERM or SIGINT; then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = self.stop_handle();
        let signals = tokio::spawn(async move {
            let signal = wait_for_signal().await;
            if signal == "SIGTERM" {
                tracing::info!(
                    drain_ms = stop.drain.as_millis() as u64,
                    "SIGTERM: /ready answers 503; serving on through the drain period"
                );
                stop.stop().await;
            } else {
                tracing::info!(signal, "shutting down: finishing in-flight requests");
                stop.stop_now().await;
            }
        });
        let result = self.server.await;
        signals.abort();
        self.store.close().await;
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
