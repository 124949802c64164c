//! The real `warmline` binary as a child process the scenario may kill and
//! start again on the same port, spill directory and database, and the
//! standalone upstream simulator (`warmline simulate`).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, voice::RETELL_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_warmline");

/// Variables of the test process that must not leak into the child.
const INHERITED: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "WARMLINE_ADDR",
    "WARMLINE_SPILL_DIR",
    "WARMLINE_DEMO",
    "WARMLINE_LOG_FORMAT",
    "WARMLINE_ADMIN_TOKEN",
    "RETELL_API_KEY",
    "VAPI_SECRET",
    "ELEVENLABS_WEBHOOK_SECRET",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "RUST_LOG",
];

/// A `warmline` command in `dir` with only `vars` of warmline's own
/// configuration set, its output appended to `log`.
fn command(dir: &Path, log: &Path, vars: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for name in INHERITED {
        cmd.env_remove(name);
    }
    cmd.env("RUST_LOG", "info,sqlx=warn");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    cmd
}

/// One `warmline serve` process (and, after a restart, its successor).
pub struct Warmline {
    pub base: String,
    pub dir: PathBuf,
    pub spill_dir: PathBuf,
    vars: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Warmline {
    /// Configures (does not start) a server working in `dir`, its journal
    /// in `dir/spill`, on `database_url`, signed Retell webhooks only, with
    /// `extra` variables.
    pub fn new(dir: &Path, database_url: &str, extra: &[(&str, &str)]) -> Warmline {
        let port = free_port();
        let spill_dir = dir.join("spill");
        let mut vars: Vec<(String, String)> = vec![
            ("WARMLINE_ADDR".into(), format!("127.0.0.1:{port}")),
            ("DATABASE_URL".into(), database_url.into()),
            ("WARMLINE_SPILL_DIR".into(), spill_dir.display().to_string()),
            ("RETELL_API_KEY".into(), RETELL_KEY.into()),
            ("WARMLINE_SHUTDOWN_DRAIN_MS".into(), "0".into()),
            ("WARMLINE_SHUTDOWN_GRACE_MS".into(), "3000".into()),
        ];
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push(((*k).into(), (*v).into()));
        }
        Warmline {
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            spill_dir,
            vars,
            log: dir.join("warmline.log"),
            child: None,
        }
    }

    /// Starts the process (without waiting for it to serve).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = command(&self.dir, &self.log, &self.vars)
            .spawn()
            .expect("the warmline binary starts");
        self.child = Some(child);
    }

    /// Starts the process and waits until it answers `/health`.
    pub async fn start(&mut self) {
        self.spawn();
        self.wait_serving().await;
    }

    /// Waits (up to 60 s) until the process answers `/health`; fails with
    /// its log if it exits or never answers.
    pub async fn wait_serving(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "warmline exited ({status}) before serving:\n{}",
                    self.log_tail(60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "warmline never answered /health:\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no drain, no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the process's output (every run's).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs `warmline ARGS` once with this server's configuration (e.g.
    /// `tenants import`), failing with its output if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = command(&self.dir, &self.dir.join("cli.log"), &self.vars)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("the warmline binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "warmline {args:?} failed: {text}");
        text
    }
}

impl Drop for Warmline {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- warmline's log (last 80 lines) ---\n{}",
                self.log_tail(80)
            );
        }
    }
}

/// A standalone `warmline simulate` process: the tenant's upstreams, with
/// knobs turned at runtime through `PUT /_sim/knobs/{endpoint}`.
pub struct Simulator {
    pub url: String,
    child: Child,
}

impl Simulator {
    pub async fn start(dir: &Path) -> Simulator {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = command(dir, &dir.join("simulator.log"), &[])
            .args(["simulate", "--addr", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("warmline simulate starts");
        let sim = Simulator { url, child };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client
            .get(format!("{}/_sim/calls", sim.url))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the simulator never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sim
    }

    /// Sets the knob of `endpoint` (`*` for every endpoint).
    pub async fn knob(&self, endpoint: &str, knob: serde_json::Value) {
        let resp = reqwest::Client::new()
            .put(format!("{}/_sim/knobs/{endpoint}", self.url))
            .json(&knob)
            .send()
            .await
            .expect("knob set");
        assert!(resp.status().is_success(), "knob refused: {resp:?}");
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
