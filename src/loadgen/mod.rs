//! `warmline loadgen`: drives a running warmline with the platforms' real,
//! signed requests over a pool of callers — closed loop (a number of
//! connections each with one request in flight) or at a fixed rate (latency
//! measured from when each request was due, so a stalled server is not
//! hidden: coordinated omission corrected) — and reports an HDR histogram.
//! With `--baseline` it drives `/health` the same way right after, so the
//! ratio to a trivial handler comes from one run. Results: BENCHMARKS.md.

mod client;
mod pace;
mod report;
mod run;
mod scenario;

use std::path::PathBuf;
use std::time::Duration;

pub use report::Series;
pub use scenario::{Scenario, Secrets};

/// `warmline loadgen`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The warmline to drive (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// What to send.
    #[arg(long, value_enum, default_value = "retell-inbound")]
    pub scenario: Scenario,
    /// Then drive `GET /health` with the same load and report the ratios.
    #[arg(long)]
    pub baseline: bool,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// A fixed rate in requests per second instead of a closed loop.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds measured, per series.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds of load before measuring (not recorded).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Callers in the pool, loaded once before the run.
    #[arg(long, default_value_t = 300)]
    pub callers: usize,
    /// Load the pool's contexts before the run (off: the run's first
    /// requests are first calls, e.g. to see them coalesce).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub prefill: bool,
    /// Requests in flight while prefilling the pool.
    #[arg(long, default_value_t = 8)]
    pub prefill_concurrency: usize,
    /// The share of requests (0–1) from callers never seen before.
    #[arg(long, default_value_t = 0.0)]
    pub cold: f64,
    /// The business's number that is called.
    #[arg(long, default_value = crate::demo::DEMO_NUMBER)]
    pub called: String,
    /// Retell `call_inbound` carries a new call id each time, as Retell's
    /// current SDK sends (the call's session is then cached for its tools);
    /// off (the default), as its documented payload. Vapi and ElevenLabs
    /// always name their calls.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub call_ids: bool,
    /// Retell's API key, to sign Retell requests.
    #[arg(
        long,
        env = "RETELL_API_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub retell_key: String,
    /// Vapi's server URL secret.
    #[arg(long, env = "VAPI_SECRET", hide_env_values = true, default_value = "")]
    pub vapi_secret: String,
    /// ElevenLabs' webhook secret.
    #[arg(
        long,
        env = "ELEVENLABS_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub elevenlabs_secret: String,
    /// A tenant's key to the bots' API (`context-api`).
    #[arg(
        long,
        env = "WARMLINE_LOADGEN_API_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub api_key: String,
    /// The tenant's WhatsApp instance (`context-api`).
    #[arg(long, default_value = "bench-clinic")]
    pub instance: String,
    /// Client runtime threads (1 leaves the most CPU to a server on the same
    /// machine).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// A request's timeout, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Write the histogram(s) as CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a percentile plot of the histogram(s) as SVG here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

impl Options {
    fn secrets(&self) -> Secrets {
        Secrets {
            retell: self.retell_key.clone(),
            vapi: self.vapi_secret.clone(),
            elevenlabs: self.elevenlabs_secret.clone(),
            api_key: self.api_key.clone(),
            instance: self.instance.clone(),
        }
    }

    /// `host:port` of `--target`.
    fn host(&self) -> anyhow::Result<String> {
        let url = url::Url::parse(&self.target)
            .map_err(|e| anyhow::anyhow!("--target {}: {e}", self.target))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "--target must be an http:// URL (the load generator speaks plain HTTP/1.1)"
        );
        let host = url
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("--target {} has no host", self.target))?;
        Ok(format!(
            "{host}:{}",
            url.port_or_known_default().unwrap_or(80)
        ))
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.concurrency > 0, "--concurrency must be at least 1");
        anyhow::ensure!(self.duration > 0, "--duration must be at least 1 s");
        anyhow::ensure!(self.callers > 0, "--callers must be at least 1");
        anyhow::ensure!(self.threads > 0, "--threads must be at least 1");
        anyhow::ensure!(
            self.prefill_concurrency > 0,
            "--prefill-concurrency must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.cold),
            "--cold is a share between 0 and 1"
        );
        anyhow::ensure!(self.rate != Some(0), "--rate must be at least 1 request/s");
        anyhow::ensure!(
            self.scenario != Scenario::ContextApi || !self.api_key.is_empty(),
            "--scenario context-api needs the tenant's key: --api-key or WARMLINE_LOADGEN_API_KEY"
        );
        Ok(())
    }
}

/// Runs the load on its own runtime (so its threads are the ones asked for)
/// and prints the report; the series measured are returned.
pub fn run(options: Options) -> anyhow::Result<Vec<Series>> {
    options.validate()?;
    let host = options.host()?;
    let runtime = if options.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let plan = run::Plan::new(&options, host.clone());
        eprintln!("{}", plan.describe(&options));
        if options.prefill && options.scenario.reads_context() {
            plan.prefill(options.scenario).await?;
        }
        let mut series = vec![plan.drive(options.scenario).await];
        if options.baseline && options.scenario != Scenario::Health {
            series.push(plan.drive(Scenario::Health).await);
        }
        println!("{}", report::text(&series));
        if let Some(path) = &options.csv {
            std::fs::write(path, report::csv(&series))
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        if let Some(path) = &options.svg {
            std::fs::write(path, report::svg(&series))
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Ok::<_, anyhow::Error>(series)
    })
}

/// How long a measured series ran, for its rate.
fn seconds(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}
