//! The command line: `warmline [serve]`, `warmline migrate`, `warmline
//! simulate`, `warmline tenants`, `warmline events`, `warmline loadgen`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::Settings;
use crate::startup::Application;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "warmline",
    version,
    about = "Instant caller context for voice-AI phone agents",
    long_about = "warmline answers voice platforms' webhooks (Retell, Vapi, ElevenLabs) with caller \
                  context from slow SaaS systems, through a two-tier cache.\n\n\
                  Configuration comes from the environment; see README.md for the table."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve webhooks, the admin and /metrics (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Serve the upstream simulator (GoHighLevel, Zep, mem0, Cal.com wire
    /// formats with seeded demo data) for tests, demos and benchmarks.
    Simulate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: SocketAddr,
        /// Start with the latencies measured in the field (contact 200 ms,
        /// slots 140 ms, memory 150 ms).
        #[arg(long)]
        field_latencies: bool,
        /// A knob, `ENDPOINT=latency_ms:200,jitter_ms:20,error_rate:0.1,timeout_rate:0,down`
        /// (`*` for every endpoint); repeatable. Change them at runtime with
        /// `PUT /_sim/knobs/ENDPOINT`.
        #[arg(long = "knob", value_name = "ENDPOINT=SPEC")]
        knobs: Vec<String>,
        /// GoHighLevel's burst limit per location and 10 s.
        #[arg(long, default_value_t = 100)]
        ghl_burst_limit: u32,
    },
    /// Manage tenants without SQL.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Print an argon2 hash of a password (read from standard input) for
    /// `WARMLINE_ADMIN_PASSWORD_HASH`.
    HashPassword,
    /// Acknowledged events the database refused for good (parked in the
    /// spill directory's `rejected.ndjson`).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Drive a running warmline with signed platform requests and report
    /// throughput and an HDR latency histogram (see BENCHMARKS.md).
    Loadgen(Box<crate::loadgen::Options>),
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List the parked events with why each was refused.
    Rejected,
    /// Apply every parked event again (idempotent: one already applied is a
    /// no-op); those still refused stay parked with their new reason.
    ReplayRejected,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create or update the tenants of a TOML or YAML file (all or none).
    Import { file: PathBuf },
    /// List tenants (secrets are never shown).
    List,
}

/// Runs the chosen command; the error is what the process prints before it
/// exits non-zero.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Simulate {
            addr,
            field_latencies,
            knobs,
            ghl_burst_limit,
        } => simulate(addr, field_latencies, knobs, ghl_burst_limit).await,
        Command::Tenants { command } => tenants(settings, command).await,
        Command::Events { command } => events(settings, command).await,
        Command::HashPassword => hash_password(),
        Command::Loadgen(options) => {
            tokio::task::spawn_blocking(move || crate::loadgen::run(*options).map(drop)).await?
        }
    }
}

async fn simulate(
    addr: SocketAddr,
    field_latencies: bool,
    knob_args: Vec<String>,
    ghl_burst_limit: u32,
) -> anyhow::Result<()> {
    use crate::simulator::{SimConfig, Simulator, parse_knob_arg};
    let mut knobs = if field_latencies {
        SimConfig::field_latencies()
    } else {
        Default::default()
    };
    for arg in &knob_args {
        let (endpoint, knob) = parse_knob_arg(arg).map_err(|e| anyhow::anyhow!("--knob {e}"))?;
        knobs.insert(endpoint, knob);
    }
    let (sim, server) = Simulator::bind(SimConfig {
        addr,
        knobs,
        ghl_burst_limit,
    })
    .map_err(|e| anyhow::anyhow!("cannot start the simulator on {addr}: {e}"))?;
    println!("warmline simulator serving on {}", sim.url);
    println!("  call counts  GET {}/_sim/calls", sim.url);
    println!("  requests     GET {}/_sim/requests[?endpoint=…]", sim.url);
    println!(
        "  knobs        GET {0}/_sim/knobs, PUT {0}/_sim/knobs/ENDPOINT",
        sim.url
    );
    let stop = sim_stop_on_signal(&sim);
    let result = server.await;
    stop.abort();
    Ok(result?)
}

fn sim_stop_on_signal(sim: &crate::simulator::Simulator) -> tokio::task::JoinHandle<()> {
    let handle = sim.handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.stop(true).await;
    })
}

async fn tenants(settings: Settings, command: TenantsCommand) -> anyhow::Result<()> {
    let store = Store::connect_lazy(&settings.database)?;
    store.migrate().await?;
    let result = match command {
        TenantsCommand::Import { file } => {
            let n = crate::tenants::import(&store, &file).await?;
            println!("imported {n} tenant(s) from {}", file.display());
            Ok(())
        }
        TenantsCommand::List => {
            let tenants: Vec<_> = store
                .list_tenants()
                .await?
                .into_iter()
                .map(crate::tenants::Tenant::from_row)
                .collect::<Result<_, _>>()?;
            if tenants.is_empty() {
                println!("no tenants; import some with `warmline tenants import FILE`");
            } else {
                print!("{}", crate::tenants::render_list(&tenants));
            }
            Ok(())
        }
    };
    store.close().await;
    result
}

fn hash_password() -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprintln!("Password (input is shown; pipe it in to keep it off the screen):");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        password.chars().count() >= 12,
        "the password must be at least 12 characters"
    );
    let hash = crate::admin::password::PasswordHash::make(password).map_err(anyhow::Error::msg)?;
    println!("{}", hash.as_phc());
    Ok(())
}

async fn events(settings: Settings, command: EventsCommand) -> anyhow::Result<()> {
    let spill = crate::writebehind::Spill::open(settings.writebehind.spill_dir.clone())?;
    match command {
        EventsCommand::Rejected => {
            let parked = spill.parked()?;
            if parked.is_empty() {
                println!("no parked events");
            }
            for p in &parked {
                let at = chrono::DateTime::from_timestamp_millis(p.at_ms)
                    .map_or_else(|| "?".into(), |t| t.to_rfc3339());
                println!("{at}  {}  {}", p.job.key(), p.reason);
            }
            Ok(())
        }
        EventsCommand::ReplayRejected => {
            let store = Store::connect_lazy(&settings.database)?;
            store.migrate().await?;
            let result = crate::writebehind::replay_rejected(&store, &spill).await;
            store.close().await;
            let (applied, still) = result?;
            println!(
                "{applied} parked event(s) applied; {} still parked",
                still.len()
            );
            for p in &still {
                println!("  {}  {}", p.job.key(), p.reason);
            }
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    println!(
        "warmline {} starting with:\n{settings}",
        env!("CARGO_PKG_VERSION")
    );
    let app = Application::build(settings.clone()).await?;
    let base = format!("http://{}:{}", settings.http.addr.ip(), app.port());
    println!("warmline is serving on {base}");
    println!("  status     {base}/");
    println!("  liveness   {base}/health");
    println!("  readiness  {base}/ready");
    println!("  metrics    {base}/metrics");
    println!("  admin      {base}/admin");
    if let Some(password) = app.one_time_password() {
        println!(
            "\nAdmin password for this run (demo, loopback only): {password}\nSet WARMLINE_ADMIN_PASSWORD_HASH (see `warmline hash-password`) for a lasting one."
        );
    }
    if let Some(sim) = app.demo() {
        println!(
            "\nDemo tenant \"Demo Dental\" answers calls to {} (upstream simulator at {}).",
            crate::demo::DEMO_NUMBER,
            sim.url
        );
        println!("Try a Retell inbound call from a returning caller:\n");
        println!(
            "  curl -s -X POST {base}/retell/inbound -H 'Content-Type: application/json' \\\n    -d '{{\"event\":\"call_inbound\",\"call_inbound\":{{\"from_number\":\"{}\",\"to_number\":\"{}\"}}}}'\n",
            crate::demo::DEMO_CALLER,
            crate::demo::DEMO_NUMBER
        );
        print_demo_conversations(&base, app.demo_api_key());
    }
    app.run_until_stopped().await?;
    Ok(())
}

/// The demo's other conversations: an outbound call and a tool call during
/// it, an SMS, and a WhatsApp bot through the bots' API.
fn print_demo_conversations(base: &str, api_key: Option<&str>) {
    use crate::demo::{
        DEMO_OUTBOUND, DEMO_OUTBOUND_TOOL, DEMO_SMS, DEMO_WHATSAPP_CONTEXT, DEMO_WHATSAPP_MESSAGE,
    };
    let json = "-H 'Content-Type: application/json'";
    println!("An outbound call (the business calls Ana), then a tool call during it:\n");
    println!("  curl -s -X POST {base}/retell/events {json} \\\n    -d '{DEMO_OUTBOUND}'");
    println!(
        "  curl -s -X POST {base}/retell/functions/get_customer_context {json} \\\n    -d '{DEMO_OUTBOUND_TOOL}'\n"
    );
    println!("An SMS from Ana (Retell chat_inbound):\n");
    println!("  curl -s -X POST {base}/retell/inbound {json} \\\n    -d '{DEMO_SMS}'\n");
    if let Some(key) = api_key {
        let auth = format!("-H 'Authorization: Bearer {key}'");
        println!(
            "A WhatsApp bot reads Ana's context and logs her message (key for this run only):\n"
        );
        println!(
            "  curl -s -X POST {base}/api/v1/context {json} {auth} \\\n    -d '{DEMO_WHATSAPP_CONTEXT}'"
        );
        println!(
            "  curl -s -X POST {base}/api/v1/messages {json} {auth} \\\n    -d '{DEMO_WHATSAPP_MESSAGE}'\n"
        );
    }
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = Store::connect_lazy(&settings.database)?;
    store.migrate().await?;
    println!("migrations applied ({})", store.backend().as_str());
    store.close().await;
    Ok(())
}
