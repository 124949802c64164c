//! Namespaces and their policies: how long a value is fresh, how long it may
//! be served stale while revalidating, how long it may stand in for a broken
//! upstream, and how long "not found" is believed.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// The kinds of cached data. Every key except `tenant`'s starts with the
/// tenant id and a colon (`acme-dental:+14155550123`), so a tenant can be
/// flushed by prefix; `tenant` is keyed by the called number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    Tenant,
    Contact,
    Memory,
    Slots,
    Services,
    Context,
    Call,
    /// The answers of tool calls that changed something (a booking), by
    /// request: a re-delivered request gets the first answer.
    Replay,
}

impl Namespace {
    pub const ALL: [Namespace; 8] = [
        Namespace::Tenant,
        Namespace::Contact,
        Namespace::Memory,
        Namespace::Slots,
        Namespace::Services,
        Namespace::Context,
        Namespace::Call,
        Namespace::Replay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Tenant => "tenant",
            Namespace::Contact => "contact",
            Namespace::Memory => "memory",
            Namespace::Slots => "slots",
            Namespace::Services => "services",
            Namespace::Context => "context",
            Namespace::Call => "call",
            Namespace::Replay => "replay",
        }
    }

    fn env_name(self) -> &'static str {
        match self {
            Namespace::Tenant => "TENANT",
            Namespace::Contact => "CONTACT",
            Namespace::Memory => "MEMORY",
            Namespace::Slots => "SLOTS",
            Namespace::Services => "SERVICES",
            Namespace::Context => "CONTEXT",
            Namespace::Call => "CALL",
            Namespace::Replay => "REPLAY",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Namespace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Namespace::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Namespace::ALL.iter().map(|n| n.as_str()).collect();
                format!(
                    "unknown namespace `{s}`; expected one of {}",
                    known.join(", ")
                )
            })
    }
}

/// One namespace's rules. The windows follow RFC 5861: fresh → stale while
/// revalidating (served at once, refreshed once in the background) →
/// fail-safe (served only when a load fails or is too slow) → gone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    #[serde(serialize_with = "as_ms")]
    pub fresh: Duration,
    /// After `fresh`: served at once while one background refresh runs.
    #[serde(serialize_with = "as_ms")]
    pub stale_while_revalidate: Duration,
    /// After `fresh`: how long a value may stand in for a failing upstream.
    /// Must be at least `stale_while_revalidate` to matter.
    #[serde(serialize_with = "as_ms")]
    pub fail_safe: Duration,
    /// How long "not found" is believed; zero: never cached.
    #[serde(serialize_with = "as_ms")]
    pub negative: Duration,
    /// After a failed load, the stale value is served without retrying the
    /// upstream for this long, so a broken source is not hammered.
    #[serde(serialize_with = "as_ms")]
    pub fail_safe_throttle: Duration,
    /// With a stale value in hand, wait this long for a load before serving
    /// the stale value (the load completes in the background).
    #[serde(serialize_with = "as_ms")]
    pub soft_timeout: Duration,
    /// With nothing in hand, wait at most this long for a load (leader or
    /// coalesced follower) before giving up.
    #[serde(serialize_with = "as_ms")]
    pub hard_timeout: Duration,
    /// Entries kept in process.
    pub l1_capacity: u64,
    /// ± this fraction of `fresh` is added at random, so keys written
    /// together do not expire together.
    pub jitter: f64,
    /// Persist last-known-good values in the database.
    pub persist_last_good: bool,
    /// Take a Redis lease before loading, so replicas do not all load the
    /// same cold key.
    pub lease: bool,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

impl Policy {
    /// Defaults from the field: memory services time out often (fail-safe an
    /// hour), calendars must not be stale for long (stale slots double-book).
    pub fn default_for(ns: Namespace) -> Policy {
        let ms = Duration::from_millis;
        let base = Policy {
            fresh: ms(5 * MIN),
            stale_while_revalidate: ms(5 * MIN),
            fail_safe: ms(HOUR),
            negative: ms(MIN),
            fail_safe_throttle: ms(30 * SEC),
            soft_timeout: ms(250),
            hard_timeout: ms(3 * SEC),
            l1_capacity: 10_000,
            jitter: 0.1,
            persist_last_good: false,
            lease: true,
        };
        match ns {
            Namespace::Tenant => Policy {
                fresh: ms(HOUR),
                stale_while_revalidate: ms(24 * HOUR),
                fail_safe: ms(7 * 24 * HOUR),
                l1_capacity: 10_000,
                lease: false,
                ..base
            },
            Namespace::Contact => Policy {
                stale_while_revalidate: ms(30 * MIN),
                fail_safe: ms(24 * HOUR),
                negative: ms(2 * MIN),
                l1_capacity: 100_000,
                persist_last_good: true,
                ..base
            },
            Namespace::Memory => Policy {
                stale_while_revalidate: ms(10 * MIN),
                fail_safe: ms(HOUR),
                // Memory is the slow one (150 ms to 6 s): with a value in hand,
                // do not wait long for it.
                soft_timeout: ms(200),
                l1_capacity: 100_000,
                persist_last_good: true,
                ..base
            },
            Namespace::Slots => Policy {
                fresh: ms(3 * MIN),
                stale_while_revalidate: ms(30 * SEC),
                fail_safe: ms(10 * MIN),
                negative: ms(30 * SEC),
                l1_capacity: 20_000,
                ..base
            },
            Namespace::Services => Policy {
                stale_while_revalidate: ms(HOUR),
                fail_safe: ms(7 * 24 * HOUR),
                l1_capacity: 10_000,
                persist_last_good: true,
                ..base
            },
            Namespace::Context => Policy {
                negative: Duration::ZERO,
                l1_capacity: 100_000,
                ..base
            },
            // A call's context, cached at call start for the call's length.
            Namespace::Call => Policy {
                fresh: ms(2 * HOUR),
                stale_while_revalidate: Duration::ZERO,
                fail_safe: Duration::ZERO,
                negative: Duration::ZERO,
                l1_capacity: 50_000,
                jitter: 0.0,
                lease: false,
                ..base
            },
            // Long enough for every platform retry; the lease keeps two
            // replicas from acting on one request at once; the booking's own
            // upstream timeout, not the cache's, bounds the wait.
            Namespace::Replay => Policy {
                fresh: ms(HOUR),
                stale_while_revalidate: Duration::ZERO,
                fail_safe: Duration::ZERO,
                negative: Duration::ZERO,
                hard_timeout: ms(60 * SEC),
                l1_capacity: 50_000,
                jitter: 0.0,
                lease: true,
                ..base
            },
        }
    }
}

/// Every namespace's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies(HashMap<Namespace, Policy>);

impl Default for Policies {
    fn default() -> Self {
        Policies(
            Namespace::ALL
                .into_iter()
                .map(|ns| (ns, Policy::default_for(ns)))
                .collect(),
        )
    }
}

/// The longest window an override may set: a fresh, stale and fail-safe
/// window end to end stay within an entry's ±24.8-day offsets.
pub const MAX_WINDOW_MS: u64 = 10 * 24 * 3600 * 1000;

impl Policies {
    pub fn get(&self, ns: Namespace) -> &Policy {
        // Every namespace is present by construction.
        &self.0[&ns]
    }

    pub fn set(&mut self, ns: Namespace, policy: Policy) {
        self.0.insert(ns, policy);
    }

    /// Applies `WARMLINE_CACHE_<NS>_<FIELD>` overrides, e.g.
    /// `WARMLINE_CACHE_SLOTS_FRESH_MS=60000`. Returns the variable name and
    /// the reason for the first value that does not parse.
    pub fn with_overrides(
        mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, (String, String)> {
        for ns in Namespace::ALL {
            let p = self.0.get_mut(&ns).expect("all namespaces present");
            let prefix = format!("WARMLINE_CACHE_{}_", ns.env_name());
            let durations: [(&str, &mut Duration); 7] = [
                ("FRESH_MS", &mut p.fresh),
                ("SWR_MS", &mut p.stale_while_revalidate),
                ("FAIL_SAFE_MS", &mut p.fail_safe),
                ("NEGATIVE_MS", &mut p.negative),
                ("THROTTLE_MS", &mut p.fail_safe_throttle),
                ("SOFT_TIMEOUT_MS", &mut p.soft_timeout),
                ("HARD_TIMEOUT_MS", &mut p.hard_timeout),
            ];
            for (field, slot) in durations {
                let var = format!("{prefix}{field}");
                if let Some(v) = get(&var) {
                    // An entry keeps its windows as 32-bit offsets.
                    let ms = v
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms <= MAX_WINDOW_MS)
                        .ok_or_else(|| {
                            let most = format!("at most {MAX_WINDOW_MS} (10 days)");
                            (var.clone(), format!("`{v}`: expected milliseconds, {most}"))
                        })?;
                    *slot = Duration::from_millis(ms);
                }
            }
            let var = format!("{prefix}CAPACITY");
            if let Some(v) = get(&var) {
                p.l1_capacity = v
                    .parse()
                    .map_err(|_| (var.clone(), format!("`{v}`: expected a whole number")))?;
            }
            let var = format!("{prefix}JITTER");
            if let Some(v) = get(&var) {
                p.jitter = v
                    .parse::<f64>()
                    .ok()
                    .filter(|j| (0.0..=0.5).contains(j))
                    .ok_or_else(|| (var.clone(), format!("`{v}`: expected 0.0 to 0.5")))?;
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_field() {
        let p = Policies::default();
        assert_eq!(p.get(Namespace::Memory).fresh, Duration::from_secs(300));
        assert_eq!(
            p.get(Namespace::Memory).fail_safe,
            Duration::from_secs(3600)
        );
        assert_eq!(p.get(Namespace::Slots).fresh, Duration::from_secs(180));
        assert!(p.get(Namespace::Slots).stale_while_revalidate <= Duration::from_secs(30));
        assert_eq!(p.get(Namespace::Contact).fresh, Duration::from_secs(300));
        assert_eq!(p.get(Namespace::Tenant).fresh, Duration::from_secs(3600));
        assert_eq!(p.get(Namespace::Services).fresh, Duration::from_secs(300));
        assert_eq!(p.get(Namespace::Context).fresh, Duration::from_secs(300));
    }

    #[test]
    fn overrides_apply_and_bad_values_name_the_variable() {
        let vars: HashMap<&str, &str> = [
            ("WARMLINE_CACHE_SLOTS_FRESH_MS", "60000"),
            ("WARMLINE_CACHE_MEMORY_CAPACITY", "42"),
        ]
        .into();
        let p = Policies::default()
            .with_overrides(|k| vars.get(k).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(p.get(Namespace::Slots).fresh, Duration::from_secs(60));
        assert_eq!(p.get(Namespace::Memory).l1_capacity, 42);

        let err = Policies::default()
            .with_overrides(|k| (k == "WARMLINE_CACHE_CALL_JITTER").then(|| "2".into()))
            .unwrap_err();
        assert_eq!(err.0, "WARMLINE_CACHE_CALL_JITTER");

        // A month does not fit an entry's offsets: refused, not shortened.
        let month = (30u64 * 24 * 3600 * 1000).to_string();
        let err = Policies::default()
            .with_overrides(|k| (k == "WARMLINE_CACHE_MEMORY_FAIL_SAFE_MS").then(|| month.clone()))
            .unwrap_err();
        assert_eq!(err.0, "WARMLINE_CACHE_MEMORY_FAIL_SAFE_MS");
        assert!(err.1.contains("at most"), "{}", err.1);
    }

    #[test]
    fn namespaces_parse_from_their_names_only() {
        assert_eq!("slots".parse::<Namespace>(), Ok(Namespace::Slots));
        assert!(
            "Slots"
                .parse::<Namespace>()
                .unwrap_err()
                .contains("expected one of tenant")
        );
    }
}
