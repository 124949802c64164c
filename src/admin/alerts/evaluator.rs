//! One evaluation: gather the numbers, check every rule, step each alert's
//! state, store what changed, and set `warmline_alerts_active`. Changes the
//! database could not take (it is down: that is one of the alerts) wait in
//! an outbox and are stored, in order, once it answers again.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tracing::Instrument;

use super::gather::{Windows, gather};
use super::machine::{Machine, Transition};
use super::rules::{Rule, check};
use super::settings::AlertSettings;
use crate::admin::console::Console;
use crate::cache::RedisLink;
use crate::store::{NewAlert, StoreError};
use crate::support::now_ms;

/// The longest one database write of an evaluation may take.
const WRITE: Duration = Duration::from_secs(2);
/// Changes kept while the database is down; beyond, the oldest that a
/// later change of the same alert supersedes are dropped (a flapping
/// condition during a long outage).
const OUTBOX_MAX: usize = 1000;

pub struct Evaluator {
    console: Console,
    redis: Option<RedisLink>,
    settings: AlertSettings,
    machine: Machine,
    windows: Windows,
    outbox: VecDeque<Transition>,
    /// Whether the alerts stored active have been taken over (at the first
    /// evaluation the database answers).
    adopted: bool,
}

impl Evaluator {
    pub fn new(console: Console, redis: Option<RedisLink>, settings: AlertSettings) -> Self {
        Evaluator {
            windows: Windows::new(settings.window),
            console,
            redis,
            settings,
            machine: Machine::default(),
            outbox: VecDeque::new(),
            adopted: false,
        }
    }

    /// The application closed its pool: it is shutting down.
    pub fn stopped(&self) -> bool {
        self.console.store.pool().is_closed()
    }

    pub async fn evaluate(&mut self) {
        let span = tracing::info_span!(
            "alerts.evaluate",
            firing = tracing::field::Empty,
            changes = tracing::field::Empty,
        );
        self.evaluate_inner().instrument(span).await
    }

    async fn evaluate_inner(&mut self) {
        let inputs = gather(&self.console, self.redis.as_ref(), &mut self.windows).await;
        // After the numbers are in: an alert holds from when it was seen.
        let now = now_ms();
        // Without the database, nothing is read or stored (each try would
        // wait out the pool's timeout); the changes wait in the outbox.
        if inputs.db_up && !self.adopted {
            self.adopt().await;
        }
        let mut changes = Vec::new();
        for rule in Rule::ALL {
            let verdict = check(rule, &inputs, &self.settings);
            if verdict.is_none() {
                tracing::debug!(alert = rule.name(), "no data");
            }
            let hold = self.settings.hold_for(rule);
            changes.extend(self.machine.step(rule, verdict, hold, now));
        }
        for change in &changes {
            log(change);
        }
        let span = tracing::Span::current();
        span.record("changes", changes.len());
        self.outbox.extend(changes);
        let dropped = trim(&mut self.outbox, OUTBOX_MAX);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                waiting = self.outbox.len(),
                "alert history lost while the database is down: changes superseded by later ones dropped"
            );
        }
        if inputs.db_up {
            self.store_changes().await;
        }
        let mut firing = 0;
        for rule in Rule::ALL {
            let n = self.machine.firing(rule);
            firing += n;
            metrics::gauge!("warmline_alerts_active", "alert" => rule.name()).set(n as f64);
        }
        span.record("firing", firing);
    }

    /// Takes over the alerts stored active (before a restart, or raised by
    /// another replica), so they resolve here when their condition is gone.
    async fn adopt(&mut self) {
        match tokio::time::timeout(WRITE, self.console.store.active_alerts()).await {
            Ok(Ok(active)) => {
                for a in active {
                    if let Some(rule) = Rule::from_name(&a.name) {
                        self.machine.adopt(rule, a.labels, a.started_at_ms);
                    }
                }
                self.adopted = true;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "active alerts not read yet"),
            Err(_) => tracing::debug!("active alerts not read yet: the database is slow"),
        }
    }

    /// Stores the changes in order; stops at the first that fails and
    /// tries again at the next evaluation.
    async fn store_changes(&mut self) {
        while let Some(change) = self.outbox.front() {
            let stored = match change {
                Transition::Fired {
                    rule,
                    breach,
                    since_ms,
                } => {
                    let alert = NewAlert {
                        name: rule.name().into(),
                        labels: breach.labels.clone(),
                        severity: rule.severity().into(),
                        value: breach.value,
                        threshold: breach.threshold,
                        detail: breach.detail.clone(),
                        started_at_ms: *since_ms,
                    };
                    bounded(self.console.store.raise_alert(&alert)).await
                }
                Transition::Resolved {
                    rule,
                    labels,
                    at_ms,
                } => {
                    bounded(
                        self.console
                            .store
                            .resolve_alert(rule.name(), labels, *at_ms),
                    )
                    .await
                }
            };
            match stored {
                Ok(_) => {
                    self.outbox.pop_front();
                }
                Err(e) => {
                    tracing::debug!(
                        error = %e,
                        waiting = self.outbox.len(),
                        "alert changes wait for the database"
                    );
                    return;
                }
            }
        }
    }
}

/// Drops the oldest changes beyond `max` that a later change of the same
/// alert supersedes; returns how many. Raising an active alert and
/// resolving one that is not change nothing, so each alert's last change
/// alone sets what is stored: kept, the stored state still ends as the
/// evaluation's (only history rows of the flapping are lost). Dropping the
/// oldest blindly could drop an alert's only firing, and it would fire
/// unseen.
fn trim(outbox: &mut VecDeque<Transition>, max: usize) -> usize {
    let mut dropped = 0;
    while outbox.len() > max {
        let mut last = HashMap::new();
        for (i, change) in outbox.iter().enumerate() {
            last.insert(change.alert(), i);
        }
        let superseded = outbox
            .iter()
            .enumerate()
            .position(|(i, change)| last[&change.alert()] != i);
        // Every change the last of its alert: too few to bother.
        let Some(i) = superseded else { break };
        outbox.remove(i);
        dropped += 1;
    }
    dropped
}

async fn bounded<T>(write: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(WRITE, write)
        .await
        .unwrap_or(Err(StoreError::Timeout(WRITE)))
}

fn log(change: &Transition) {
    match change {
        Transition::Fired { rule, breach, .. } => tracing::warn!(
            alert = rule.name(),
            severity = rule.severity(),
            labels = ?breach.labels,
            value = %rule.show(breach.value),
            threshold = %rule.show(breach.threshold),
            detail = %breach.detail,
            "alert firing: {}",
            rule.summary()
        ),
        Transition::Resolved { rule, labels, .. } => tracing::info!(
            alert = rule.name(),
            labels = ?labels,
            "alert resolved: {}",
            rule.summary()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::alerts::Breach;
    use crate::admin::alerts::machine::Labels;

    fn fired(rule: Rule, at: i64) -> Transition {
        Transition::Fired {
            rule,
            breach: Breach {
                labels: Labels::new(),
                value: 1.0,
                threshold: 0.0,
                detail: String::new(),
            },
            since_ms: at,
        }
    }

    fn resolved(rule: Rule, at: i64) -> Transition {
        Transition::Resolved {
            rule,
            labels: Labels::new(),
            at_ms: at,
        }
    }

    #[test]
    fn a_full_outbox_drops_superseded_changes_and_keeps_each_alerts_last() {
        // Spilling fires once; then the database flaps for the rest of the
        // outage.
        let mut outbox = VecDeque::from([fired(Rule::SpillingToJournal, 0)]);
        for at in 1..=10 {
            outbox.push_back(fired(Rule::RedisDown, at));
            outbox.push_back(resolved(Rule::RedisDown, at));
        }
        assert_eq!(trim(&mut outbox, 4), 17);
        assert_eq!(
            Vec::from(outbox),
            [
                fired(Rule::SpillingToJournal, 0),
                resolved(Rule::RedisDown, 9),
                fired(Rule::RedisDown, 10),
                resolved(Rule::RedisDown, 10),
            ],
            "the only firing of the spill alert is kept, in order"
        );
    }

    #[test]
    fn an_outbox_of_last_changes_only_is_kept_whole() {
        let mut outbox = VecDeque::from([
            fired(Rule::SpillingToJournal, 0),
            fired(Rule::DatabaseDown, 0),
        ]);
        assert_eq!(trim(&mut outbox, 1), 0);
        assert_eq!(outbox.len(), 2);
    }
}
