//! Logs, metrics (and, later, traces): how warmline tells operators what it
//! is doing. Phone numbers reach logs only masked (`PhoneNumber::masked`).

pub mod metrics;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, Settings};

/// Installs the global subscriber. Safe to call more than once (tests do):
/// later calls keep the first subscriber.
pub fn init(settings: &Settings) {
    // The filter was validated when the settings were read.
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.log_format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
}
