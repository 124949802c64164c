//! Spawning warmline for tests, fresh databases, and the real services.
//!
//! Postgres and Redis are the machine's own (127.0.0.1:5432, 127.0.0.1:6379,
//! overridable with WARMLINE_TEST_POSTGRES_URL / WARMLINE_TEST_REDIS_URL).
//! When one is missing, the tests that need it print that they were skipped —
//! unless WARMLINE_TEST_REQUIRE_SERVICES=1, when a missing service fails them.
//! Tests that stop a server start their own private redis-server.
//!
//! Helpers shared by one area's test files live in submodules: [`voice`]
//! (signed webhook requests and call payloads), [`upstreams`] (adapters
//! built against the simulator) and [`cache`] (standalone caches).

#![allow(dead_code)]

pub mod admin;
pub mod cache;
pub mod cluster;
pub mod tls;
pub mod upstreams;
pub mod voice;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};
use warmline::settings::Settings;
use warmline::startup::{Application, StopHandle};
use warmline::store::Store;

/// Every span the test process finishes, for the tracing tests.
pub static SPANS: LazyLock<opentelemetry_sdk::trace::InMemorySpanExporter> =
    LazyLock::new(opentelemetry_sdk::trace::InMemorySpanExporter::default);

static TRACING: LazyLock<()> = LazyLock::new(|| {
    let settings = Settings::from_vars(&HashMap::new()).expect("default settings");
    let telemetry = warmline::telemetry::init_with_exporter(
        &settings.telemetry,
        SPANS.clone(),
        std::env::var("TEST_LOG").is_ok(),
    );
    // The provider lives as long as the test process.
    std::mem::forget(telemetry);
});

fn require_services() -> bool {
    std::env::var("WARMLINE_TEST_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// Says a test was skipped, past the test harness's output capture so it
/// shows in `cargo test` output, or fails it when services are required.
pub fn skip(service: &str, why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unknown test>")
        .to_owned();
    if require_services() {
        panic!("{service} is required (WARMLINE_TEST_REQUIRE_SERVICES=1) but {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {service} unavailable ({why})"
    );
}

pub fn postgres_admin_url() -> String {
    std::env::var("WARMLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("WARMLINE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The machine's Redis when it answers PING, else `None` (after [`skip`]).
pub async fn shared_redis() -> Option<String> {
    let url = redis_url();
    let ok = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    match tokio::time::timeout(Duration::from_secs(2), ok).await {
        Ok(Some(_)) => Some(url),
        _ => {
            skip("redis", &format!("no answer from {url}"));
            None
        }
    }
}

/// A database that exists for one test only.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        name: String,
        url: String,
        admin_url: String,
    },
    /// A database the test manages itself (a private server).
    External(String),
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/warmline.db", dir.path().display());
        TestDb::Sqlite { _dir: dir, url }
    }

    /// A fresh Postgres database, or `None` (after [`skip`]) when Postgres is
    /// not reachable.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = postgres_admin_url();
        let connect = tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::PgConnection::connect(&admin_url),
        )
        .await;
        let mut admin = match connect {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                skip("postgres", &format!("{admin_url}: {e}"));
                return None;
            }
            Err(_) => {
                skip("postgres", &format!("{admin_url}: timed out"));
                return None;
            }
        };
        let name = format!("warmline_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .expect("admin url has a database path");
        Some(TestDb::Postgres {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        })
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } | TestDb::External(url) => {
                url
            }
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        let settings = settings_with(&[("DATABASE_URL", self.url())]);
        let store = Store::connect_lazy(&settings.database).expect("store");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            name, admin_url, ..
        } = self
        {
            let (name, admin_url) = (name.clone(), admin_url.clone());
            // Drop runs inside the test's runtime; use a runtime of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = admin
                            .execute(
                                format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)
                                    .as_str(),
                            )
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Settings as the process would read them from `vars`, on a random port.
pub fn settings_with(vars: &[(&str, &str)]) -> Settings {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.entry("WARMLINE_ADDR".into())
        .or_insert_with(|| "127.0.0.1:0".into());
    map.entry("WARMLINE_SHUTDOWN_GRACE_MS".into())
        .or_insert_with(|| "2000".into());
    // The first-run demo is tested on purpose, not by accident.
    map.entry("WARMLINE_DEMO".into())
        .or_insert_with(|| "off".into());
    Settings::from_vars(&map).expect("test settings parse")
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub store: Store,
    /// The app's own cache, to inspect and flush.
    pub cache: warmline::cache::Cache,
    /// The app's write-behind, to look at its spill journal.
    pub writebehind: warmline::writebehind::WriteBehind,
    /// Whether the demo tenant's simulator runs.
    pub demo_running: bool,
    /// The demo tenant's key to the bots' API for this run.
    pub demo_api_key: Option<String>,
    pub stop: StopHandle,
    /// Keeps the database alive for the test.
    pub db: Option<TestDb>,
    /// The app's own spill journal directory, removed with the app.
    pub spill: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    /// Polls `path` until `accept` holds for its JSON, for at most `within`.
    pub async fn wait_for_json(
        &self,
        path: &str,
        within: Duration,
        accept: impl Fn(u16, &serde_json::Value) -> bool,
    ) -> (u16, serde_json::Value) {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get_json(path).await;
            if accept(status, &body) || Instant::now() > deadline {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Spawns warmline on a fresh SQLite file, in-process cache only.
pub async fn spawn_app() -> TestApp {
    let db = TestDb::sqlite();
    spawn_app_with(db, &[]).await
}

/// Spawns warmline on `db` with extra variables (e.g. `REDIS_URL`).
pub async fn spawn_app_with(db: TestDb, vars: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("DATABASE_URL", db.url())];
    all.extend_from_slice(vars);
    let mut app = spawn_with_settings(settings_with(&all)).await;
    app.db = Some(db);
    app
}

pub async fn spawn_with_settings(mut settings: Settings) -> TestApp {
    LazyLock::force(&TRACING);
    // Never the working directory's journal: each app gets its own.
    let spill =
        (settings.writebehind.spill_dir == std::path::Path::new("warmline-spill")).then(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            settings.writebehind.spill_dir = dir.path().to_path_buf();
            dir
        });
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let port = app.port();
    let store = app.store().clone();
    let (cache, writebehind) = (app.cache().clone(), app.writebehind().clone());
    let demo_running = app.demo().is_some();
    let demo_api_key = app.demo_api_key().map(str::to_owned);
    let stop = app.stop_handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        store,
        cache,
        writebehind,
        demo_running,
        demo_api_key,
        stop,
        db: None,
        spill,
    }
}

/// A port for a process the test starts, free now. Chosen below the
/// kernel's ephemeral range (32768–60999 here): a port from `bind(0)` could
/// be handed to another test's listener or outgoing connection before the
/// child binds it (a test then talked to the wrong server); below the
/// range only another `free_port` can pick it, at random among 12,000.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_768);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32767")
}

/// A redis-server of the test's own, which the test may stop and restart.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one on a free port, or `None` (after [`skip`]) when the
    /// `redis-server` binary is not installed.
    pub async fn start() -> Option<PrivateRedis> {
        let mut redis = PrivateRedis {
            port: free_port(),
            child: None,
        };
        match redis.spawn().await {
            Ok(()) => Some(redis),
            Err(e) => {
                skip("redis-server", &e);
                None
            }
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("redis-server on port {} did not answer", self.port))
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stalls it for `ms` (`CLIENT PAUSE … ALL`): its data kept, every
    /// command held until then.
    pub async fn pause(&self, ms: u64) {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("private redis answers");
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("ALL")
            .query_async::<()>(&mut conn)
            .await
            .expect("CLIENT PAUSE");
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await.expect("redis-server restarts");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns warmline with the demo business as a real tenant ("demo-dental" on
/// +15550100000) wired to an in-process upstream simulator, cache warmed.
pub async fn spawn_with_simulator(
    db: TestDb,
    vars: &[(&str, &str)],
) -> (TestApp, warmline::simulator::Simulator) {
    let sim = warmline::simulator::Simulator::start(warmline::simulator::SimConfig::default())
        .expect("simulator starts");
    let app = spawn_app_with(db, vars).await;
    app.store
        .upsert_tenant(&demo_tenant(&sim.url))
        .await
        .unwrap();
    app.cache.warm_up().await;
    (app, sim)
}

/// The demo business as a real tenant ("demo-dental" on +15550100000)
/// wired to the simulator at `sim_url`.
pub fn demo_tenant(sim_url: &str) -> warmline::store::NewTenant {
    warmline::store::NewTenant {
        id: warmline::domain::TenantId::parse("demo-dental").unwrap(),
        phone_number: warmline::domain::PhoneNumber::parse("+15550100000").unwrap(),
        name: "Demo Dental".into(),
        time_zone: "America/New_York".into(),
        config: warmline::simulator::demo_tenant_config(sim_url).to_string(),
        is_demo: false,
    }
}

/// A PostgreSQL server of the test's own (initdb + pg_ctl as user postgres),
/// which the test may stop and start again.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    running: bool,
    /// More `-c name=value` server options (e.g. TLS).
    pub options: String,
}

fn as_postgres(cmd: &str) -> std::io::Result<std::process::Output> {
    Command::new("su").args(["postgres", "-c", cmd]).output()
}

impl PrivatePostgres {
    /// Initialises and starts one, or `None` (after [`skip`]) when this
    /// machine cannot (no `initdb`, not root, no `postgres` user).
    pub async fn start() -> Option<PrivatePostgres> {
        let mut pg = Self::init()?;
        pg.start_server().await;
        Some(pg)
    }

    /// Initialises one without starting it (see [`Self::start`]).
    pub fn init() -> Option<PrivatePostgres> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().display().to_string();
        let setup = Command::new("chown")
            .args(["-R", "postgres", &path])
            .output();
        let init = setup.and_then(|_| {
            as_postgres(&format!(
                "initdb -D {path}/data -U postgres --auth=trust -E UTF8 --no-sync >/dev/null"
            ))
        });
        match init {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                skip(
                    "private postgres",
                    &format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)),
                );
                return None;
            }
            Err(e) => {
                skip(
                    "private postgres",
                    &format!("cannot run initdb as postgres: {e}"),
                );
                return None;
            }
        }
        Some(PrivatePostgres {
            port: free_port(),
            dir,
            running: false,
            options: String::new(),
        })
    }

    /// Its directory (owned by the `postgres` user).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn start_server(&mut self) {
        let path = self.dir.path().display().to_string();
        let out = as_postgres(&format!(
            "pg_ctl -D {path}/data -l {path}/log -w -t 30 -o '-h 127.0.0.1 -p {} -k {path} -c fsync=off {}' start >/dev/null",
            self.port, self.options
        ))
        .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "private postgres did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = true;
    }

    /// Stops it at once, as a crash would (`-m immediate`).
    pub fn stop_server(&mut self) {
        if self.running {
            let path = self.dir.path().display().to_string();
            let _ = as_postgres(&format!(
                "pg_ctl -D {path}/data -m immediate -w stop >/dev/null"
            ));
            self.running = false;
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// Waits (up to 30 s) until a warmline process answers `/health` at `base`.
pub async fn wait_until_serving(base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "{base} never answered /health");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Retell inbound request the start-up banner prints for the demo: a
/// returning caller (Ana) calling the demo tenant.
pub const DEMO_INBOUND: &str = r#"{"event":"call_inbound","call_inbound":{"from_number":"+15550100001","to_number":"+15550100000"}}"#;

/// Sends SIGTERM and waits up to 20 s for the process to exit (killing it
/// and failing the test if it does not). Waits without blocking the
/// runtime, which may be serving something the process talks to.
pub async fn stop_with_sigterm(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM not delivered");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("did not stop within 20 s of SIGTERM");
}
