//! One typed namespace of the cache and its read path:
//! L1 → L2 → single-flight load, with stale-while-revalidate, fail-safe,
//! soft and hard timeouts, negative caching and XFetch early refresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use moka::notification::RemovalCause;
use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;

use super::entry::{Entry, State};
use super::stats::{Outcome, Tier};
use super::{Core, LocalTier, Namespace, Policy, now_ms};
use crate::domain::mask_phones_in;

/// No loader may run longer than this, whoever waits for it: a hung
/// upstream must not pin a key's flight forever.
const MAX_LOAD_TIME: Duration = Duration::from_secs(30);
/// How often a replica that lost the lease looks for the winner's value.
const LEASE_POLL: Duration = Duration::from_millis(20);

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

type Flight<V> = Shared<BoxFuture<'static, Result<Entry<V>, LoadError>>>;

enum Joined<V> {
    Ready(Entry<V>),
    Flight(Flight<V>, bool),
}

/// A typed namespace. Cheap to clone; every clone is the same cache.
pub struct Tiered<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Tiered<V> {
    fn clone(&self) -> Self {
        Tiered {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<V> {
    ns: Namespace,
    policy: Policy,
    l1: moka::sync::Cache<String, Entry<V>>,
    inflight: Mutex<HashMap<String, Flight<V>>>,
    core: Arc<Core>,
}

/// Entries leave L1 when their fail-safe window ends.
struct EntryExpiry;

impl<V> moka::Expiry<String, Entry<V>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _k: &String,
        e: &Entry<V>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_millis(
            (e.fail_safe_until - now_ms()).max(0) as u64
        ))
    }

    fn expire_after_update(
        &self,
        _k: &String,
        e: &Entry<V>,
        _at: std::time::Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_millis(
            (e.fail_safe_until - now_ms()).max(0) as u64
        ))
    }
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
        let stats = core.stats(ns).clone();
        let l1 = moka::sync::Cache::builder()
            .max_capacity(policy.l1_capacity)
            .expire_after(EntryExpiry)
            .eviction_listener(move |_k, _v, cause| {
                if cause == RemovalCause::Size {
                    stats.eviction(ns);
                }
            })
            .build();
        Tiered {
            inner: Arc::new(Inner {
                ns,
                policy,
                l1,
                inflight: Mutex::new(HashMap::new()),
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
        let span = tracing::info_span!(
            "cache.lookup",
            cache.namespace = self.inner.ns.as_str(),
            cache.key = %mask_phones_in(key),
            cache.tier = tracing::field::Empty,
            cache.outcome = tracing::field::Empty,
        );
        let result = self.lookup(key, loader).instrument(span.clone()).await;
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

    async fn lookup<F, Fut>(&self, key: &str, loader: F) -> Result<Lookup<V>, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        let now = now_ms();
        let mut fallback: Option<(Entry<V>, Tier)> = None;

        if let Some(e) = self.inner.l1.get(key) {
            match e.state(now) {
                State::Fresh => {
                    if e.should_refresh_early(now) {
                        self.refresh(key, loader);
                    }
                    return Ok(self.hit(e, Tier::L1, Outcome::HitFresh, now));
                }
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
                        self.inner.l1.insert(key.to_owned(), e.clone());
                        return Ok(self.hit(e, Tier::L2, Outcome::HitFresh, now));
                    }
                    State::Stale => {
                        self.inner.l1.insert(key.to_owned(), e.clone());
                        self.refresh(key, loader);
                        return Ok(self.hit(e, Tier::L2, Outcome::HitStale, now));
                    }
                    State::FailSafeOnly => {
                        self.inner.l1.insert(key.to_owned(), e.clone());
                        fallback = Some((e, Tier::L2));
                    }
                    State::Expired => {}
                }
            }
        }

        self.load(key, loader, fallback).await
    }

    fn hit(&self, e: Entry<V>, tier: Tier, outcome: Outcome, now: i64) -> Lookup<V> {
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

    async fn load<F, Fut>(
        &self,
        key: &str,
        loader: F,
        fallback: Option<(Entry<V>, Tier)>,
    ) -> Result<Lookup<V>, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        let (flight, leader) = match self.join_or_start(key, loader, false) {
            Joined::Ready(e) => return Ok(self.hit(e, Tier::L1, Outcome::HitFresh, now_ms())),
            Joined::Flight(f, leader) => (f, leader),
        };
        // With a stale value in hand, wait only the soft timeout: the load
        // goes on in the background and fills the cache for the next caller.
        let wait = if fallback.is_some() {
            self.inner.policy.soft_timeout
        } else {
            self.inner.policy.hard_timeout
        };
        match tokio::time::timeout(wait, flight).await {
            Ok(Ok(entry)) => {
                let outcome = if leader {
                    Outcome::Miss
                } else {
                    Outcome::Coalesced
                };
                Ok(self.hit(entry, Tier::Loader, outcome, now_ms()))
            }
            Ok(Err(error)) => self.fail_safe(key, fallback).await.ok_or(CacheError::Load {
                ns: self.inner.ns,
                error,
            }),
            Err(_) => self
                .fail_safe(key, fallback)
                .await
                .ok_or(CacheError::Timeout {
                    ns: self.inner.ns,
                    waited: wait,
                }),
        }
    }

    /// The stale value in hand, else the last-known-good copy in the
    /// database, counted as a fail-safe hit.
    async fn fail_safe(&self, key: &str, fallback: Option<(Entry<V>, Tier)>) -> Option<Lookup<V>> {
        let now = now_ms();
        if let Some((e, tier)) = fallback {
            return Some(self.hit(e, tier, Outcome::HitFailSafe, now));
        }
        let e = self.last_good(key).await?;
        // Served from the database once, then from L1 until the throttle ends.
        let until = now + self.inner.policy.fail_safe_throttle.as_millis() as i64;
        self.inner.l1.insert(key.to_owned(), e.throttled(until));
        Some(self.hit(e, Tier::Db, Outcome::HitFailSafe, now))
    }

    async fn last_good(&self, key: &str) -> Option<Entry<V>> {
        if !self.inner.policy.persist_last_good {
            return None;
        }
        let store = self.inner.core.store.as_ref()?;
        let row = tokio::time::timeout(
            Duration::from_millis(250),
            store.last_good(self.inner.ns.as_str(), key),
        )
        .await
        .ok()?
        .ok()??;
        let e = Entry::<V>::from_json(&row.value).ok()?;
        (e.value.is_some() && e.state(now_ms()) != State::Expired).then_some(e)
    }

    /// Starts a background refresh unless one is already running.
    fn refresh<F, Fut>(&self, key: &str, loader: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        if let Joined::Flight(_, true) = self.join_or_start(key, loader, true) {
            self.inner.core.stats(self.inner.ns).refresh(self.inner.ns);
        }
    }

    /// Joins the key's in-flight load, or starts one (the `bool` says which).
    /// A load a request waits for is a child of the request's span; a
    /// background refresh is a trace of its own, linked to the request.
    fn join_or_start<F, Fut>(&self, key: &str, loader: F, background: bool) -> Joined<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = inflight.get(key) {
            return Joined::Flight(flight.clone(), false);
        }
        // A load may have finished between our L1 miss and taking the lock:
        // its entry is in L1 before its flight leaves the map.
        if let Some(e) = self.inner.l1.get(key)
            && e.state(now_ms()) == State::Fresh
        {
            return Joined::Ready(e);
        }
        let generation = self.inner.core.generation(self.inner.ns);
        let this = self.clone();
        let owned_key = key.to_owned();
        let span = if background {
            let span = tracing::info_span!(
                parent: None,
                "cache.refresh",
                cache.namespace = self.inner.ns.as_str(),
                cache.key = %mask_phones_in(key),
            );
            span.follows_from(tracing::Span::current());
            span
        } else {
            tracing::info_span!(
                "cache.load",
                cache.namespace = self.inner.ns.as_str(),
                cache.key = %mask_phones_in(key),
            )
        };
        let task = tokio::spawn(
            async move { this.run_load(owned_key, loader, generation).await }.instrument(span),
        );
        let flight: Flight<V> = async move {
            task.await
                .unwrap_or_else(|e| Err(LoadError::new(format!("loader did not complete: {e}"))))
        }
        .boxed()
        .shared();
        inflight.insert(key.to_owned(), flight.clone());
        Joined::Flight(flight, true)
    }

    async fn run_load<F, Fut>(
        &self,
        key: String,
        loader: F,
        generation: u64,
    ) -> Result<Entry<V>, LoadError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        let ns = self.inner.ns;
        let policy = &self.inner.policy;
        let core = &self.inner.core;
        let started = Instant::now();

        let mut leased = false;
        if policy.lease
            && let Some(l2) = &core.l2
        {
            let lease_ms = policy.hard_timeout.as_millis() as u64;
            match l2.try_lease(ns, &key, &core.instance_id, lease_ms).await {
                Ok(true) => leased = true,
                Ok(false) => {
                    if let Some(e) = self.wait_for_peer(&key, policy.hard_timeout / 2).await {
                        self.inner.l1.insert(key.clone(), e.clone());
                        self.leave_flight(&key);
                        return Ok(e);
                    }
                }
                // Redis trouble: load ourselves rather than wait on it.
                Err(_) => {}
            }
        }

        let result = match tokio::time::timeout(MAX_LOAD_TIME, loader()).await {
            Ok(r) => r,
            Err(_) => Err(LoadError::new(format!(
                "loader ran longer than {MAX_LOAD_TIME:?}"
            ))),
        };
        let elapsed = started.elapsed();
        metrics::histogram!(
            "warmline_cache_load_duration_seconds",
            "namespace" => ns.as_str(),
            "result" => if result.is_ok() { "ok" } else { "error" }
        )
        .record(elapsed.as_secs_f64());

        let now = now_ms();
        let out = match result {
            Ok(value) => {
                let cacheable = value.is_some() || !policy.negative.is_zero();
                let entry = Entry::new(
                    value,
                    policy,
                    now,
                    elapsed.as_millis().min(u32::MAX as u128) as u32,
                );
                // An invalidation while we loaded may have made our value
                // stale already: hand it to the waiters but do not cache it.
                if cacheable && core.generation(ns) == generation {
                    self.store_loaded(&key, &entry);
                }
                Ok(entry)
            }
            Err(e) => {
                core.stats(ns).load_error(ns);
                tracing::warn!(error = %e, "cache load failed");
                // Keep serving what we have, without retrying for a while.
                if let Some(old) = self.inner.l1.get(&key)
                    && old.value.is_some()
                    && old.state(now) != State::Expired
                {
                    let until = now + policy.fail_safe_throttle.as_millis() as i64;
                    self.inner.l1.insert(key.clone(), old.throttled(until));
                }
                Err(e)
            }
        };
        if leased && let Some(l2) = core.l2.clone() {
            let key = key.clone();
            tokio::spawn(async move { l2.release_lease(ns, &key).await });
        }
        self.leave_flight(&key);
        out
    }

    fn leave_flight(&self, key: &str) {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Another replica holds the lease: wait for its value to reach L2.
    async fn wait_for_peer(&self, key: &str, within: Duration) -> Option<Entry<V>> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            tokio::time::sleep(LEASE_POLL).await;
            if let Some(e) = self.l2_get(key).await
                && e.state(now_ms()) == State::Fresh
            {
                return Some(e);
            }
        }
        None
    }

    /// L1 now; L2 and the last-known-good copy in the background, so waiters
    /// are not held up by Redis or the database.
    fn store_loaded(&self, key: &str, entry: &Entry<V>) {
        self.inner.l1.insert(key.to_owned(), entry.clone());
        let Ok(json) = entry.to_json() else { return };
        let (ns, core, key) = (self.inner.ns, self.inner.core.clone(), key.to_owned());
        let persist = self.inner.policy.persist_last_good && entry.value.is_some();
        let (version, ttl) = (
            entry.version,
            (entry.fail_safe_until - now_ms()).max(0) as u64,
        );
        tokio::spawn(async move {
            if let Some(l2) = &core.l2 {
                let _ = l2.set(ns, &key, &json, ttl).await;
            }
            if persist
                && let Some(store) = &core.store
                && let Err(e) = store.put_last_good(ns.as_str(), &key, &json, version).await
            {
                tracing::debug!(error = %e, "could not persist a last-known-good value");
            }
        });
    }

    async fn l2_get(&self, key: &str) -> Option<Entry<V>> {
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
        let ns = self.inner.ns;
        let core = &self.inner.core;
        core.bump_generation(ns);
        let entry = Entry::new(Some(value), &self.inner.policy, now_ms(), 0);
        self.inner.l1.insert(key.to_owned(), entry.clone());
        if let Ok(json) = entry.to_json() {
            // Awaited: the other replicas must find the new value in L2
            // when they act on the message below.
            if let Some(l2) = &core.l2 {
                let ttl = (entry.fail_safe_until - now_ms()).max(0) as u64;
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
        if let Some(e) = self.inner.l1.get(key)
            && e.state(now) != State::Expired
        {
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
        self.inner.l1.insert(key.to_owned(), e.clone());
        Some(self.hit(e, Tier::L2, outcome, now))
    }

    /// Drops this replica's L1 copy only; L2 and other replicas keep theirs.
    /// The next read comes from L2 (benchmarks use it to measure L2 hits).
    pub fn forget_local(&self, key: &str) {
        self.inner.l1.invalidate(key);
    }

    /// L1 only, without counting: for tests and the admin's key lookup.
    pub fn peek_l1(&self, key: &str) -> Option<Arc<V>> {
        let e = self.inner.l1.get(key)?;
        if e.state(now_ms()) == State::Expired {
            return None;
        }
        e.value
    }
}

impl<V> LocalTier for Inner<V>
where
    V: Send + Sync + 'static,
{
    fn entry_count(&self) -> u64 {
        self.l1.run_pending_tasks();
        self.l1.entry_count()
    }

    fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.l1
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.state(now_ms()) != State::Expired)
            .map(|(k, _)| k.as_ref().clone())
            .collect()
    }

    fn contains(&self, key: &str) -> bool {
        self.l1
            .get(key)
            .is_some_and(|e| e.state(now_ms()) != State::Expired)
    }

    fn remove(&self, key: &str) {
        self.l1.invalidate(key);
    }

    fn expire(&self, key: &str) {
        if let Some(e) = self.l1.get(key) {
            self.l1
                .insert(key.to_owned(), e.expired_but_fail_safe(now_ms()));
        }
    }

    fn clear(&self) {
        self.l1.invalidate_all();
    }
}

impl<V: Send + Sync + 'static> Tiered<V> {
    pub(super) fn local(&self) -> Arc<dyn LocalTier> {
        self.inner.clone()
    }
}
