//! One typed namespace of the cache and its read path:
//! L1 → L2 → single-flight load, with stale-while-revalidate, fail-safe,
//! soft and hard timeouts, negative caching and XFetch early refresh.
//!
//! This file holds the [`Tiered`] handle, the types its callers see, the
//! L1/L2 lookup and the write path; the load itself (single-flight,
//! background refresh, lease, timeouts, fail-safe) lives in `flight.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;

use super::entry::{Entry, State};
use super::flight::{InFlight, Revision};
use super::l1::L1;
use super::stats::{Outcome, Tier};
use super::{Core, LocalTier, Namespace, Policy, now_ms};
use crate::domain::mask_phones_in;

/// Why a load produced no value. Cloneable: one load's error is shared with
/// every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(Arc<str>);

impl LoadError {
    pub fn new(msg: impl std::fmt::Display) -> Self {
        LoadError(msg.to_string().into())
    }
}

/// What a loader returns: `Ok(Some(v))` a value, `Ok(None)` "not found"
/// (cached only under the negative TTL), `Err` a failure (never cached).
pub type LoadResult<V> = Result<Option<V>, LoadError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("loading {ns} failed: {error}")]
    Load { ns: Namespace, error: LoadError },
    #[error("loading {ns} did not finish within {waited:?}")]
    Timeout { ns: Namespace, waited: Duration },
}

/// A lookup's answer: the value (`None`: known not to exist), where it came
/// from and how.
#[derive(Debug)]
pub struct Lookup<V> {
    pub value: Option<Arc<V>>,
    pub tier: Tier,
    pub outcome: Outcome,
    pub age_ms: i64,
}

/// A typed namespace. Cheap to clone; every clone is the same cache.
pub struct Tiered<V> {
    pub(super) inner: Arc<Inner<V>>,
}

impl<V> Clone for Tiered<V> {
    fn clone(&self) -> Self {
        Tiered {
            inner: self.inner.clone(),
        }
    }
}

pub(super) struct Inner<V> {
    pub(super) ns: Namespace,
    pub(super) policy: Policy,
    pub(super) l1: L1<V>,
    pub(super) inflight: Mutex<HashMap<String, InFlight<V>>>,
    /// Held while an entry is revised, while a load lands and while a
    /// load is superseded: one revision reads what the last one wrote, and
    /// a landing load sees a write of its key or lands wholly before it.
    pub(super) revising: Mutex<()>,
    pub(super) core: Arc<Core>,
}

impl<V> Tiered<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub(super) fn new(core: Arc<Core>, ns: Namespace, policy: Policy) -> Self {
        // Zero series from the start, so alerts and rates see 0, not absence.
        for name in [
            "warmline_cache_load_errors_total",
            "warmline_cache_evictions_total",
            "warmline_cache_background_refreshes_total",
        ] {
            metrics::counter!(name, "namespace" => ns.as_str()).increment(0);
        }
        let l1 = L1::new(ns, policy.l1_capacity, core.stats(ns).clone());
        Tiered {
            inner: Arc::new(Inner {
                ns,
                policy,
                l1,
                inflight: Mutex::new(HashMap::new()),
                revising: Mutex::new(()),
                core,
            }),
        }
    }

    pub fn namespace(&self) -> Namespace {
        self.inner.ns
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The value for `key`, from L1, L2 or `loader`, as the namespace's
    /// policy allows. `loader` runs at most once per key at a time in this
    /// process however many requests want it, and keeps running in the
    /// background when the requests stop waiting.
    pub async fn get_or_load<F, Fut>(&self, key: &str, loader: F) -> Result<Lookup<V>, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        // The common case, a fresh L1 entry, is answered without a span: it
        // costs less than recording one, and its counters say it happened
        // (an early refresh it starts is traced as its own load). Everything
        // else (L2, a load, stale or fail-safe serving) is traced.
        let now = now_ms();
        let l1 = self.inner.l1.get(key, now);
        if let Some(e) = &l1
            && e.state(now) == State::Fresh
        {
            if e.should_refresh_early(now) {
                self.refresh(key, loader);
            }
            crate::support::attribution::lookup(true);
            return Ok(self.hit(e.clone(), Tier::L1, Outcome::HitFresh, now));
        }
        let span = tracing::info_span!(
            "cache.lookup",
            cache.namespace = self.inner.ns.as_str(),
            cache.key = %mask_phones_in(key),
            cache.tier = tracing::field::Empty,
            cache.outcome = tracing::field::Empty,
        );
        let result = self
            .lookup(key, loader, l1, now)
            .instrument(span.clone())
            .await;
        crate::support::attribution::lookup(
            result
                .as_ref()
                .is_ok_and(|l| l.outcome != Outcome::Miss && l.outcome != Outcome::Coalesced),
        );
        match &result {
            Ok(l) => {
                span.record("cache.tier", l.tier.as_str());
                span.record("cache.outcome", l.outcome.as_str());
            }
            Err(e) => {
                span.record("cache.outcome", "error");
                tracing::warn!(parent: &span, error = %e, "cache load failed with nothing to serve");
            }
        }
        result
    }

    /// The lookup past a fresh L1 hit: `l1` is this replica's entry, read
    /// at `now`.
    async fn lookup<F, Fut>(
        &self,
        key: &str,
        loader: F,
        l1: Option<Entry<V>>,
        now: i64,
    ) -> Result<Lookup<V>, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        let mut fallback: Option<(Entry<V>, Tier)> = None;

        if let Some(e) = l1 {
            match e.state(now) {
                // Answered by `get_or_load` before a span was opened.
                State::Fresh => return Ok(self.hit(e, Tier::L1, Outcome::HitFresh, now)),
                State::Stale => {
                    self.refresh(key, loader);
                    return Ok(self.hit(e, Tier::L1, Outcome::HitStale, now));
                }
                State::Throttled => return Ok(self.hit(e, Tier::L1, Outcome::HitFailSafe, now)),
                State::FailSafeOnly => fallback = Some((e, Tier::L1)),
                State::Expired => {}
            }
        }

        if let Some(e) = self.l2_get(key).await {
            // L2 is the shared truth: at equal versions (two writes in one
            // millisecond) it wins over our own copy.
            let newer = fallback
                .as_ref()
                .is_none_or(|(f, _)| e.version >= f.version);
            if newer {
                match e.state(now) {
                    State::Fresh | State::Throttled => {
                        self.inner.l1.insert(key, e.clone());
                        return Ok(self.hit(e, Tier::L2, Outcome::HitFresh, now));
                    }
                    State::Stale => {
                        self.inner.l1.insert(key, e.clone());
                        self.refresh(key, loader);
                        return Ok(self.hit(e, Tier::L2, Outcome::HitStale, now));
                    }
                    State::FailSafeOnly => {
                        self.inner.l1.insert(key, e.clone());
                        fallback = Some((e, Tier::L2));
                    }
                    State::Expired => {}
                }
            }
        }

        self.load(key, loader, fallback).await
    }

    pub(super) fn hit(&self, e: Entry<V>, tier: Tier, outcome: Outcome, now: i64) -> Lookup<V> {
        self.inner
            .core
            .stats(self.inner.ns)
            .lookup(self.inner.ns, tier, outcome);
        Lookup {
            age_ms: e.age_ms(now),
            value: e.value,
            tier,
            outcome,
        }
    }

    pub(super) async fn l2_get(&self, key: &str) -> Option<Entry<V>> {
        let l2 = self.inner.core.l2.as_ref()?;
        let raw = l2.get(self.inner.ns, key).await.ok()??;
        match Entry::from_json(&raw) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(namespace = self.inner.ns.as_str(), error = %e, "unreadable L2 entry ignored");
                None
            }
        }
    }

    /// Writes a value through every tier (a write the caller just made
    /// upstream, or a warm-up), and tells the other replicas to drop their
    /// copy. Cancels the caching of any load in flight.
    pub async fn set(&self, key: &str, value: V) {
        self.set_shared(key, Arc::new(value)).await;
    }

    /// [`set`](Self::set) for a value the caller keeps too: L1 holds the
    /// same allocation, not a copy.
    pub async fn set_shared(&self, key: &str, value: Arc<V>) {
        let entry = self.set_local(key, value);
        self.share(key, entry).await;
    }

    /// Like [`set`](Self::set), but only this replica's L1 has the value
    /// when it returns; L2 and the other replicas' invalidation follow in a
    /// task of their own, in that order. For a value whose first reader on
    /// another replica is seconds away (a call's session, read by its
    /// tools; a first caller's context, read at their next call), not
    /// worth a caller's wait on two Redis round trips. A value passed as
    /// an `Arc` is shared with L1, not copied.
    pub fn set_in_background(&self, key: &str, value: impl Into<Arc<V>>) {
        let entry = self.set_local(key, value.into());
        let (this, key) = (self.clone(), key.to_owned());
        tokio::spawn(async move { this.share(&key, entry).await });
    }

    fn set_local(&self, key: &str, value: Arc<V>) -> Entry<V> {
        self.inner.supersede(key);
        let entry = Entry::shared(Some(value), &self.inner.policy, now_ms(), 0);
        self.inner.l1.insert(key, entry.clone());
        entry
    }

    /// Writes `entry` to L2 (and the last-good table when the policy keeps
    /// one), then tells the other replicas to drop their copies.
    async fn share(&self, key: &str, entry: Entry<V>) {
        let ns = self.inner.ns;
        let core = &self.inner.core;
        if let Ok(json) = entry.to_json() {
            // Awaited: the other replicas must find the new value in L2
            // when they act on the message below.
            if let Some(l2) = &core.l2 {
                let ttl = (entry.fail_safe_until() - now_ms()).max(0) as u64;
                let _ = l2.set(ns, key, &json, ttl).await;
            }
            if self.inner.policy.persist_last_good
                && let Some(store) = &core.store
            {
                let _ = store
                    .put_last_good(ns.as_str(), key, &json, entry.version)
                    .await;
            }
        }
        core.publish(super::backplane::Op::Expire {
            ns,
            key: key.to_owned(),
        })
        .await;
    }

    /// Revises this replica's copy of `key` in place: `change` gets the
    /// value held here and returns its replacement, or `None` to keep it;
    /// a value being loaded here gets it when it lands. The entry keeps its
    /// windows (a revision is not a load: what it did not change ages as
    /// before). Revisions run one at a time. Only this replica is touched:
    /// the caller drops the key from L2 and the other replicas. Returns
    /// whether a value is held or being loaded here; `false` leaves nothing
    /// to revise, and the key should be dropped here too.
    pub fn revise_here(
        &self,
        key: &str,
        change: impl FnOnce(&V) -> Option<V> + Send + 'static,
    ) -> bool {
        let _one_at_a_time = self
            .inner
            .revising
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = self.inner.l1.get(key, now_ms()) {
            let Some(value) = &entry.value else {
                return false;
            };
            if let Some(new) = change(value) {
                self.inner.l1.insert(key, entry.revised(Arc::new(new)));
            }
            return true;
        }
        let inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(f) = inflight.get(key) else {
            return false;
        };
        let revision: Revision<V> = Box::new(change);
        f.landing
            .revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(revision);
        true
    }

    /// Removes `key` from every tier and every replica's L1.
    pub async fn invalidate(&self, key: &str) {
        let scope = super::FlushScope::Key {
            ns: self.inner.ns,
            key: key.to_owned(),
        };
        let _ = self.inner.core.flush(&scope).await;
    }

    /// The cached value without loading: L1, then L2. For data that must
    /// not be fetched mid-call (a call's context).
    pub async fn get_cached(&self, key: &str) -> Option<Lookup<V>> {
        let now = now_ms();
        if let Some(e) = self.inner.l1.get(key, now) {
            let outcome = match e.state(now) {
                State::Fresh => Outcome::HitFresh,
                State::Stale => Outcome::HitStale,
                _ => Outcome::HitFailSafe,
            };
            return Some(self.hit(e, Tier::L1, outcome, now));
        }
        let e = self.l2_get(key).await?;
        let outcome = match e.state(now) {
            State::Fresh | State::Throttled => Outcome::HitFresh,
            State::Stale => Outcome::HitStale,
            State::FailSafeOnly => Outcome::HitFailSafe,
            State::Expired => return None,
        };
        self.inner.l1.insert(key, e.clone());
        Some(self.hit(e, Tier::L2, outcome, now))
    }

    /// Drops this replica's L1 copy only; L2 and other replicas keep theirs.
    /// The next read comes from L2 (benchmarks use it to measure L2 hits).
    pub fn forget_local(&self, key: &str) {
        self.inner.l1.remove(key);
    }

    /// The value this replica holds for `key` (fresh, stale or fail-safe),
    /// without a lookup counted or a load started: for tests, the admin's
    /// key lookup and what a write-back compares with.
    pub fn peek_l1(&self, key: &str) -> Option<Arc<V>> {
        self.inner.l1.get(key, now_ms())?.value
    }
}

impl<V> Inner<V> {
    /// The key was removed or written: a load of it in flight read what is
    /// now older, so it is not cached when it lands, and the next request
    /// starts a load of its own. Called before the removal or write.
    pub(super) fn supersede(&self, key: &str) {
        // Under the revision lock, which a landing load holds from its
        // check to its insert: it lands wholly before this (and the caller's
        // removal or write follows it) or sees it.
        let _landing = self.revising.lock().unwrap_or_else(|p| p.into_inner());
        let gone = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(f) = gone {
            f.landing
                .superseded
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

impl<V> LocalTier for Inner<V>
where
    V: Send + Sync + 'static,
{
    fn supersede(&self, key: &str) {
        Inner::supersede(self, key);
    }

    fn entry_count(&self) -> u64 {
        self.l1.len()
    }

    fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.l1.keys_with_prefix(prefix)
    }

    fn contains(&self, key: &str) -> bool {
        self.l1.get(key, now_ms()).is_some()
    }

    fn remove(&self, key: &str) {
        self.l1.remove(key);
    }

    fn expire(&self, key: &str) {
        let now = now_ms();
        if let Some(e) = self.l1.get(key, now) {
            self.l1.insert(key, e.expired_but_fail_safe(now));
        }
    }

    fn clear(&self) {
        self.l1.clear();
    }

    fn stamps(&self, key: &str) -> Option<super::Stamps> {
        self.l1.get(key, now_ms()).map(|e| super::Stamps::from(&e))
    }
}

impl<V: Send + Sync + 'static> Tiered<V> {
    pub(super) fn local(&self) -> Arc<dyn LocalTier> {
        self.inner.clone()
    }
}
