use clap::Parser;

use warmline::cli::{self, Cli, Command};
use warmline::settings::Settings;

fn main() {
    let cli = Cli::parse();
    // The load generator is a client: it needs none of the server's
    // settings, and runs on the threads it is given, not a server runtime.
    if let Some(Command::Loadgen(options)) = cli.command {
        if let Err(e) = warmline::loadgen::run(*options) {
            eprintln!("warmline loadgen: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warmline: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(serve(cli));
}

async fn serve(cli: Cli) {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warmline: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = warmline::telemetry::init(&settings.telemetry);
    let result = cli::run(cli, settings).await;
    // Flush the last spans; the exporter blocks, so off the runtime threads.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    if let Err(e) = result {
        eprintln!("warmline: {e:#}");
        std::process::exit(1);
    }
}
