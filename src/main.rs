use clap::Parser;

use warmline::cli::{self, Cli};
use warmline::settings::Settings;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
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
