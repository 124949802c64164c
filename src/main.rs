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
    warmline::telemetry::init(&settings);
    if let Err(e) = cli::run(cli, settings).await {
        eprintln!("warmline: {e:#}");
        std::process::exit(1);
    }
}
