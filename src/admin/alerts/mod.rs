//! Alerts from warmline's own numbers: the conditions of its Prometheus
//! rules (`dashboards/prometheus/alerts.yml` — same names, severities and
//! default thresholds) evaluated in the replica itself, so an operator
//! without Prometheus is told too. A supervised loop evaluates every
//! `WARMLINE_ALERT_EVAL_MS`; an alert fires once its condition held for
//! the rule's `for`, and its firing, resolution and acknowledgement are
//! stored, so the history survives restarts. `warmline_alerts_active{alert}`
//! counts what fires on this replica.
//!
//! Replicas share one active row per alert and label set: the first to see
//! a condition raises it (the others' raises change nothing), and a replica
//! resolves only what it saw firing. At start a replica takes over the rows
//! stored active, so an alert raised before a restart resolves when its
//! condition is gone; the price is that a replica started while another's
//! own condition holds (one replica's open breaker) may resolve it early.
//!
//! This module reads the replica's numbers and writes only the alerts
//! table; it changes nothing it watches.

mod evaluator;
mod gather;
mod machine;
mod rules;
mod settings;

pub(crate) use gather::today;
pub use rules::{AlertInputs, Breach, Rule, check, minutes};
pub use settings::AlertSettings;

use std::sync::Arc;

use evaluator::Evaluator;

use super::console::Console;
use crate::cache::RedisLink;

/// Starts the evaluation loop. `redis` is pinged as `/metrics` pings it
/// for `warmline_redis_up`.
pub fn start(console: &Console, redis: Option<RedisLink>, settings: AlertSettings) {
    // Every alert has a series from the start: "none firing", not "no data".
    for rule in Rule::ALL {
        metrics::gauge!("warmline_alerts_active", "alert" => rule.name()).set(0.0);
    }
    let every = settings.every;
    // Shared by every run of the loop: a restart after a panic keeps the
    // pending and firing alerts.
    let evaluator = Arc::new(tokio::sync::Mutex::new(Evaluator::new(
        console.clone(),
        redis,
        settings,
    )));
    crate::support::supervise("alerts", move || {
        let evaluator = evaluator.clone();
        async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut evaluator = evaluator.lock().await;
                if evaluator.stopped() {
                    return;
                }
                evaluator.evaluate().await;
            }
        }
    });
}
