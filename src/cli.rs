//! The command line: `warmline [serve]`, `warmline migrate`.

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
}

/// Runs the chosen command; the error is what the process prints before it
/// exits non-zero.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    println!(
        "warmline {} starting with:\n{settings}",
        env!("CARGO_PKG_VERSION")
    );
    let app = Application::build(settings.clone()).await?;
    let base = format!("http://{}:{}", settings.addr.ip(), app.port());
    println!("warmline is serving on {base}");
    println!("  liveness   {base}/health");
    println!("  readiness  {base}/ready");
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = Store::connect_lazy(&settings.database)?;
    store.migrate().await?;
    println!("migrations applied ({})", store.backend().as_str());
    store.close().await;
    Ok(())
}
