//! A cached value with its life-cycle timestamps, and its Redis envelope.

use std::sync::Arc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::policy::Policy;

/// One cached value. `value: None` is a cached "not found". Times are epoch
/// milliseconds, so that replicas agree on them through Redis; the window
/// ends are kept as offsets from `version` (±24.8 days, saturating), which
/// makes an entry 40 bytes instead of 56 — every cached caller has three.
#[derive(Debug)]
pub struct Entry<V> {
    pub value: Option<Arc<V>>,
    /// When the value was loaded; newer wins everywhere.
    pub version: i64,
    fresh: i32,
    /// End of the stale-while-revalidate window.
    stale: i32,
    /// End of the fail-safe window: the entry is gone after this.
    fail_safe: i32,
    /// Set after a failed load: served as fail-safe without retrying until
    /// then. Kept in process only.
    throttled: i32,
    /// How long the load took (XFetch's delta).
    pub load_ms: u32,
}

/// No throttle: an offset no moment is before.
const NEVER: i32 = i32::MIN;

/// `t` as an offset from `version`, saturating (and never [`NEVER`]).
fn offset(version: i64, t: i64) -> i32 {
    (t - version).clamp(i32::MIN as i64 + 1, i32::MAX as i64) as i32
}

/// Where an entry is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Fresh,
    /// Serve now, refresh once in the background.
    Stale,
    /// A recent load failed: serve as fail-safe without retrying yet.
    Throttled,
    /// Serve only if a load fails or is too slow.
    FailSafeOnly,
    Expired,
}

impl<V> Entry<V> {
    pub fn new(value: Option<V>, policy: &Policy, now: i64, load_ms: u32) -> Self {
        Self::shared(value.map(Arc::new), policy, now, load_ms)
    }

    /// [`Entry::new`] for a value already shared: the entry holds the
    /// same allocation as whoever else has it.
    pub fn shared(value: Option<Arc<V>>, policy: &Policy, now: i64, load_ms: u32) -> Self {
        let (fresh_until, stale_until, fail_safe_until) = match &value {
            Some(_) => {
                let fresh = policy.fresh.as_millis() as i64;
                let jitter = (fresh as f64 * policy.jitter * (fastrand::f64() * 2.0 - 1.0)) as i64;
                let fresh_until = now + (fresh + jitter).max(1);
                let fail_safe = policy.fail_safe.max(policy.stale_while_revalidate);
                (
                    fresh_until,
                    fresh_until + policy.stale_while_revalidate.as_millis() as i64,
                    fresh_until + fail_safe.as_millis() as i64,
                )
            }
            None => {
                let until = now + policy.negative.as_millis() as i64;
                (until, until, until)
            }
        };
        Entry::at(
            value,
            now,
            [fresh_until, stale_until, fail_safe_until],
            load_ms,
        )
    }

    /// An unthrottled entry loaded at `version` whose windows end at
    /// `[fresh, stale, fail_safe]` (epoch milliseconds).
    fn at(value: Option<Arc<V>>, version: i64, ends: [i64; 3], load_ms: u32) -> Self {
        Entry {
            value,
            version,
            fresh: offset(version, ends[0]),
            stale: offset(version, ends[1]),
            fail_safe: offset(version, ends[2]),
            throttled: NEVER,
            load_ms,
        }
    }

    pub fn fresh_until(&self) -> i64 {
        self.version + self.fresh as i64
    }

    pub fn stale_until(&self) -> i64 {
        self.version + self.stale as i64
    }

    pub fn fail_safe_until(&self) -> i64 {
        self.version + self.fail_safe as i64
    }

    fn throttled_until(&self) -> i64 {
        self.version + self.throttled as i64
    }

    pub fn state(&self, now: i64) -> State {
        if now < self.fresh_until() {
            State::Fresh
        } else if now < self.throttled_until() && now < self.fail_safe_until() {
            State::Throttled
        } else if now < self.stale_until() {
            State::Stale
        } else if now < self.fail_safe_until() {
            State::FailSafeOnly
        } else {
            State::Expired
        }
    }

    /// XFetch (Vattani et al., 2015): refresh a fresh entry early with a
    /// probability that rises smoothly towards expiry, scaled by how long a
    /// load takes, so hot keys refresh before they expire and replicas do not
    /// all refresh at the same instant.
    pub fn should_refresh_early(&self, now: i64) -> bool {
        const BETA: f64 = 1.0;
        if self.value.is_none() || self.load_ms == 0 {
            return false;
        }
        let r = fastrand::f64().max(f64::MIN_POSITIVE);
        let gap = -(self.load_ms as f64) * BETA * r.ln();
        now as f64 + gap >= self.fresh_until() as f64
    }

    /// The same value, served as fail-safe without retrying until `until`.
    pub fn throttled(&self, until: i64) -> Self {
        Entry {
            value: self.value.clone(),
            throttled: offset(self.version, until),
            ..*self
        }
    }

    /// The same value, no longer fresh or revalidatable but still usable as
    /// fail-safe: what a replica keeps when another one wrote a newer value.
    pub fn expired_but_fail_safe(&self, now: i64) -> Self {
        let ends = [
            now.min(self.fresh_until()),
            now.min(self.stale_until()),
            self.fail_safe_until(),
        ];
        Entry {
            throttled: self.throttled,
            ..Entry::at(self.value.clone(), self.version, ends, self.load_ms)
        }
    }

    /// `value` in place of this entry's, with its version and windows: a
    /// correction of a part of the value, not a new load of it.
    pub fn revised(&self, value: Arc<V>) -> Self {
        Entry {
            value: Some(value),
            ..*self
        }
    }

    pub fn age_ms(&self, now: i64) -> i64 {
        (now - self.version).max(0)
    }
}

// Manual because `Arc<V>` is Clone for every V.
impl<V> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Entry {
            value: self.value.clone(),
            ..*self
        }
    }
}

/// The Redis form of an entry: the value with its timestamps, so every
/// replica applies the same windows.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: Option<T>,
    ver: i64,
    fresh: i64,
    stale: i64,
    fs: i64,
    load_ms: u32,
}

impl<V: Serialize> Entry<V> {
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(&Envelope {
            v: self.value.as_deref(),
            ver: self.version,
            fresh: self.fresh_until(),
            stale: self.stale_until(),
            fs: self.fail_safe_until(),
            load_ms: self.load_ms,
        })
    }
}

impl<V: DeserializeOwned> Entry<V> {
    pub fn from_json(raw: &str) -> serde_json::Result<Self> {
        let e: Envelope<V> = serde_json::from_str(raw)?;
        Ok(Entry::at(
            e.v.map(Arc::new),
            e.ver,
            [e.fresh, e.stale, e.fs],
            e.load_ms,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Namespace, Policy};
    use std::time::Duration;

    fn policy() -> Policy {
        Policy {
            fresh: Duration::from_millis(1_000),
            stale_while_revalidate: Duration::from_millis(500),
            fail_safe: Duration::from_millis(5_000),
            negative: Duration::from_millis(200),
            jitter: 0.0,
            ..Policy::default_for(Namespace::Memory)
        }
    }

    #[test]
    fn an_entry_moves_through_fresh_stale_fail_safe_and_expired() {
        let e = Entry::new(Some("v"), &policy(), 10_000, 5);
        assert_eq!(e.state(10_999), State::Fresh);
        assert_eq!(e.state(11_000), State::Stale);
        assert_eq!(e.state(11_499), State::Stale);
        assert_eq!(e.state(11_500), State::FailSafeOnly);
        assert_eq!(e.state(15_999), State::FailSafeOnly);
        assert_eq!(e.state(16_000), State::Expired);
        let t = e.throttled(13_000);
        assert_eq!(t.state(12_000), State::Throttled);
        assert_eq!(t.state(13_000), State::FailSafeOnly);
    }

    #[test]
    fn windows_past_an_offsets_range_saturate_instead_of_wrapping() {
        let p = Policy {
            fail_safe: Duration::from_secs(365 * 24 * 3600),
            ..policy()
        };
        let e = Entry::new(Some(1), &p, 10_000, 5);
        assert_eq!(e.fresh_until(), 11_000);
        assert_eq!(e.fail_safe_until(), 10_000 + i32::MAX as i64);
        assert_eq!(e.state(10_000 + 20 * 24 * 3600 * 1000), State::FailSafeOnly);
        let back: Entry<i32> = Entry::from_json(&e.to_json().unwrap()).unwrap();
        assert_eq!(back.fail_safe_until(), e.fail_safe_until());
    }

    #[test]
    fn not_found_lives_only_for_the_negative_ttl() {
        let e: Entry<String> = Entry::new(None, &policy(), 10_000, 5);
        assert_eq!(e.state(10_199), State::Fresh);
        assert_eq!(e.state(10_200), State::Expired);
        assert!(!e.should_refresh_early(10_199));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = Policy {
            jitter: 0.1,
            ..policy()
        };
        for _ in 0..1_000 {
            let e = Entry::new(Some(1), &p, 0, 1);
            assert!(
                (900..=1_100).contains(&e.fresh_until()),
                "{}",
                e.fresh_until()
            );
        }
    }

    #[test]
    fn the_envelope_round_trips() {
        let e = Entry::new(Some(vec![1, 2]), &policy(), 10_000, 7);
        let back: Entry<Vec<i32>> = Entry::from_json(&e.to_json().unwrap()).unwrap();
        assert_eq!(back.value.as_deref(), Some(&vec![1, 2]));
        assert_eq!(
            (
                back.version,
                back.fresh_until(),
                back.stale_until(),
                back.fail_safe_until(),
                back.load_ms
            ),
            (
                e.version,
                e.fresh_until(),
                e.stale_until(),
                e.fail_safe_until(),
                7
            )
        );
    }

    #[test]
    fn xfetch_refreshes_early_only_near_expiry() {
        let e = Entry::new(Some(1), &policy(), 0, 10);
        let early = (0..1_000).filter(|_| e.should_refresh_early(100)).count();
        let near = (0..1_000).filter(|_| e.should_refresh_early(995)).count();
        assert_eq!(early, 0, "900 ms before expiry with a 10 ms load");
        assert!(near > 300, "5 ms before expiry: {near}");
    }
}
