//! Each alert's state between evaluations, as Prometheus keeps it: a
//! condition that starts to hold is pending; once it has held for the
//! rule's `for` the alert fires; when it stops holding, a firing alert
//! resolves (a pending one is forgotten). Pure: the caller passes the
//! time and stores the transitions.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::rules::{Breach, Rule};

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// `breach` holds since `since_ms` and has now held long enough.
    Fired {
        rule: Rule,
        breach: Breach,
        since_ms: i64,
    },
    Resolved {
        rule: Rule,
        labels: Labels,
        at_ms: i64,
    },
}

impl Transition {
    /// The alert it changes: one rule and label set.
    pub fn alert(&self) -> (Rule, &Labels) {
        match self {
            Transition::Fired { rule, breach, .. } => (*rule, &breach.labels),
            Transition::Resolved { rule, labels, .. } => (*rule, labels),
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    /// When the condition started to hold.
    since_ms: i64,
    firing: bool,
}

#[derive(Debug, Default)]
pub struct Machine {
    tracked: HashMap<(Rule, Labels), Tracked>,
}

impl Machine {
    /// Takes what `rule` says now (`None`: no data, nothing changes).
    pub fn step(
        &mut self,
        rule: Rule,
        check: Option<Vec<Breach>>,
        hold: Duration,
        now_ms: i64,
    ) -> Vec<Transition> {
        let Some(breaches) = check else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let holding: Vec<&Labels> = breaches.iter().map(|b| &b.labels).collect();
        self.tracked.retain(|(r, labels), t| {
            if *r != rule || holding.contains(&labels) {
                return true;
            }
            if t.firing {
                out.push(Transition::Resolved {
                    rule,
                    labels: labels.clone(),
                    at_ms: now_ms,
                });
            }
            false
        });
        for breach in breaches {
            let t = self
                .tracked
                .entry((rule, breach.labels.clone()))
                .or_insert(Tracked {
                    since_ms: now_ms,
                    firing: false,
                });
            if !t.firing && now_ms - t.since_ms >= hold.as_millis() as i64 {
                t.firing = true;
                out.push(Transition::Fired {
                    rule,
                    breach,
                    since_ms: t.since_ms,
                });
            }
        }
        out
    }

    /// An alert already firing when this replica started (stored active):
    /// it resolves when its condition no longer holds.
    pub fn adopt(&mut self, rule: Rule, labels: Labels, since_ms: i64) {
        let t = self.tracked.entry((rule, labels)).or_insert(Tracked {
            since_ms,
            firing: true,
        });
        // Pending here (seen before the database answered) but stored
        // firing: it fires. Left pending, a condition that lapsed before
        // the hold would be forgotten without a resolution, and the stored
        // row would stay active for good.
        if !t.firing {
            t.firing = true;
            t.since_ms = t.since_ms.min(since_ms);
        }
    }

    /// How many label sets of `rule` fire.
    pub fn firing(&self, rule: Rule) -> usize {
        self.tracked
            .iter()
            .filter(|((r, _), t)| *r == rule && t.firing)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn breach(labels: &[(&str, &str)]) -> Breach {
        Breach {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
            threshold: 0.0,
            detail: String::new(),
        }
    }

    fn names(ts: &[Transition]) -> Vec<String> {
        ts.iter()
            .map(|t| match t {
                Transition::Fired { since_ms, .. } => format!("fired since {since_ms}"),
                Transition::Resolved { at_ms, .. } => format!("resolved at {at_ms}"),
            })
            .collect()
    }

    #[test]
    fn an_alert_fires_only_after_its_condition_held_for_the_hold() {
        let mut m = Machine::default();
        let hold = Duration::from_secs(300);
        let rule = Rule::SpillingToJournal;
        assert!(m.step(rule, Some(vec![breach(&[])]), hold, 0).is_empty());
        assert!(
            m.step(rule, Some(vec![breach(&[])]), hold, 5 * MIN - 1)
                .is_empty()
        );
        assert_eq!(m.firing(rule), 0, "still pending");
        let t = m.step(rule, Some(vec![breach(&[])]), hold, 5 * MIN);
        assert_eq!(names(&t), ["fired since 0"]);
        assert_eq!(m.firing(rule), 1);
        assert!(
            m.step(rule, Some(vec![breach(&[])]), hold, 6 * MIN)
                .is_empty(),
            "once"
        );
        let t = m.step(rule, Some(Vec::new()), hold, 7 * MIN);
        assert_eq!(names(&t), ["resolved at 420000"]);
        assert_eq!(m.firing(rule), 0);
    }

    #[test]
    fn a_condition_that_lapses_while_pending_starts_over() {
        let mut m = Machine::default();
        let hold = Duration::from_secs(60);
        let rule = Rule::DatabaseDown;
        m.step(rule, Some(vec![breach(&[])]), hold, 0);
        assert!(
            m.step(rule, Some(Vec::new()), hold, 30_000).is_empty(),
            "never fired"
        );
        assert!(
            m.step(rule, Some(vec![breach(&[])]), hold, 40_000)
                .is_empty()
        );
        let t = m.step(rule, Some(vec![breach(&[])]), hold, 100_000);
        assert_eq!(names(&t), ["fired since 40000"]);
    }

    #[test]
    fn no_data_changes_nothing_and_a_zero_hold_fires_at_once() {
        let mut m = Machine::default();
        let rule = Rule::RedisDown;
        let t = m.step(rule, Some(vec![breach(&[])]), Duration::ZERO, 7);
        assert_eq!(names(&t), ["fired since 7"]);
        assert!(m.step(rule, None, Duration::ZERO, 8).is_empty());
        assert_eq!(m.firing(rule), 1);
    }

    #[test]
    fn label_sets_fire_and_resolve_each_on_their_own() {
        let mut m = Machine::default();
        let rule = Rule::UpstreamBreakerOpen;
        let (zep, ghl) = (
            breach(&[("upstream", "zep")]),
            breach(&[("upstream", "ghl")]),
        );
        let t = m.step(rule, Some(vec![zep.clone(), ghl]), Duration::ZERO, 0);
        assert_eq!(t.len(), 2);
        let t = m.step(rule, Some(vec![zep]), Duration::ZERO, 1);
        assert_eq!(
            t,
            [Transition::Resolved {
                rule,
                labels: breach(&[("upstream", "ghl")]).labels,
                at_ms: 1
            }]
        );
        assert_eq!(m.firing(rule), 1);
        assert_eq!(m.firing(Rule::RedisDown), 0);
    }

    #[test]
    fn an_adopted_alert_resolves_when_its_condition_is_gone() {
        let mut m = Machine::default();
        m.adopt(Rule::DatabaseDown, Labels::new(), 5);
        assert!(
            m.step(
                Rule::DatabaseDown,
                Some(vec![breach(&[])]),
                Duration::ZERO,
                9
            )
            .is_empty(),
            "already firing: not raised again"
        );
        let t = m.step(Rule::DatabaseDown, Some(Vec::new()), Duration::ZERO, 10);
        assert_eq!(names(&t), ["resolved at 10"]);
    }

    #[test]
    fn an_alert_pending_when_its_stored_firing_is_adopted_resolves_when_it_lapses() {
        // Seen before the database answered (a restart during an outage):
        // pending; then the row stored active before the restart is read.
        let mut m = Machine::default();
        let (rule, hold) = (Rule::WebhookLatencyHigh, Duration::from_secs(600));
        assert!(m.step(rule, Some(vec![breach(&[])]), hold, 100).is_empty());
        m.adopt(rule, Labels::new(), 5);
        assert_eq!(m.firing(rule), 1, "stored firing: it fires");
        assert!(
            m.step(rule, Some(vec![breach(&[])]), hold, 200).is_empty(),
            "not raised again"
        );
        let t = m.step(rule, Some(Vec::new()), hold, 300);
        assert_eq!(names(&t), ["resolved at 300"], "the stored row resolves");
    }
}
