//! The load machinery behind a [`Tiered`] namespace: what happens once L1
//! and L2 have nothing fresh to give.
//!
//! It owns the single-flight map (one load per key per process, however
//! many requests want it), background refreshes, the Redis lease that keeps
//! replicas from loading the same key at once, soft and hard timeouts, and
//! the fail-safe fallback to a stale or last-known-good value. It is kept
//! apart from `tiered.rs`, which holds the handle and its public read and
//! write path, so that path reads as L1 → L2 → "load" without the detail of
//! how a load is shared, bounded and written back.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;

use super::entry::{Entry, State};
use super::now_ms;
use super::stats::{Outcome, Tier};
use super::tiered::{CacheError, LoadError, LoadResult, Lookup, Tiered};
use crate::domain::mask_phones_in;

/// No loader may run longer than this, whoever waits for it: a hung
/// upstream must not pin a key's flight forever.
const MAX_LOAD_TIME: Duration = Duration::from_secs(30);
/// How often a replica that lost the lease looks for the winner's value.
const LEASE_POLL: Duration = Duration::from_millis(20);

pub(super) type Flight<V> = Shared<BoxFuture<'static, Result<Entry<V>, LoadError>>>;

/// A change to a value, made in place: the replacement, or `None` to keep it.
pub(super) type Revision<V> = Box<dyn FnOnce(&V) -> Option<V> + Send>;

/// A key's load in flight, as the in-flight map holds it.
pub(super) struct InFlight<V> {
    pub(super) flight: Flight<V>,
    pub(super) landing: Arc<Pending<V>>,
}

/// What happened to a key while its load ran.
pub(super) struct Pending<V> {
    /// The key was removed or written meanwhile: what the load read may be
    /// older than that, so its value is handed to its waiters, not cached.
    /// (A flush of a whole namespace or prefix makes the namespace's
    /// generation move instead.)
    pub(super) superseded: AtomicBool,
    /// Revisions made meanwhile ([`Tiered::revise_here`]), applied to the
    /// value when it lands.
    pub(super) revisions: Mutex<Vec<Revision<V>>>,
}

impl<V> Pending<V> {
    fn new() -> Self {
        Pending {
            superseded: AtomicBool::new(false),
            revisions: Mutex::new(Vec::new()),
        }
    }
}

/// Where a landing entry is kept.
enum Keep {
    /// Not cached ("not found" without a negative window).
    No,
    /// In L1: a peer's value, read from L2.
    Here,
    /// In L1, L2 and the last-known-good table: a value loaded here.
    Everywhere,
}

enum Joined<V> {
    Ready(Entry<V>),
    Flight(Flight<V>, bool),
}

impl<V> Tiered<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub(super) async fn load<F, Fut>(
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
        self.inner.l1.insert(key, e.throttled(until));
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
    pub(super) fn refresh<F, Fut>(&self, key: &str, loader: F)
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
        if let Some(f) = inflight.get(key) {
            return Joined::Flight(f.flight.clone(), false);
        }
        // A load may have finished between our L1 miss and taking the lock:
        // its entry is in L1 before its flight leaves the map.
        let now = now_ms();
        if let Some(e) = self.inner.l1.get(key, now)
            && e.state(now) == State::Fresh
        {
            return Joined::Ready(e);
        }
        let generation = self.inner.core.generation(self.inner.ns);
        let landing = Arc::new(Pending::new());
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
        let pending = landing.clone();
        let load = async move { this.run_load(owned_key, loader, generation, pending).await }
            .instrument(span);
        // A load a request waits for queries on its behalf; a refresh does not.
        let task = if background {
            tokio::spawn(load)
        } else {
            tokio::spawn(crate::support::attribution::on_behalf(load))
        };
        let flight: Flight<V> = async move {
            task.await
                .unwrap_or_else(|e| Err(LoadError::new(format!("loader did not complete: {e}"))))
        }
        .boxed()
        .shared();
        inflight.insert(
            key.to_owned(),
            InFlight {
                flight: flight.clone(),
                landing,
            },
        );
        Joined::Flight(flight, true)
    }

    async fn run_load<F, Fut>(
        &self,
        key: String,
        loader: F,
        generation: u64,
        pending: Arc<Pending<V>>,
    ) -> Result<Entry<V>, LoadError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = LoadResult<V>> + Send + 'static,
    {
        let ns = self.inner.ns;
        let policy = &self.inner.policy;
        let core = &self.inner.core;
        let started = Instant::now();
        // However this ends — returned, panicked, cancelled — the key leaves
        // the in-flight map, and only after its value is in L1.
        let _landing = Landing {
            tiered: self,
            key: &key,
            pending: &pending,
        };

        let mut leased = false;
        // Unique per lease: only this load may release it.
        let owner = format!("{}:{}", core.instance_id, uuid::Uuid::new_v4().simple());
        if policy.lease
            && let Some(l2) = &core.l2
        {
            let lease_ms = policy.hard_timeout.as_millis() as u64;
            match l2.try_lease(ns, &key, &owner, lease_ms).await {
                Ok(true) => leased = true,
                Ok(false) => {
                    if let Some(e) = self.wait_for_peer(&key, policy.hard_timeout / 2).await {
                        return Ok(self.land(&key, e, Keep::Here, generation, &pending));
                    }
                }
                // Redis trouble: load ourselves rather than wait on it.
                Err(_) => {}
            }
        }

        // A loader that panics (on a hostile upstream answer, say) fails
        // this load like any other error: its waiters hear so at once.
        let guarded = AssertUnwindSafe(async move { loader().await }).catch_unwind();
        let result = match tokio::time::timeout(MAX_LOAD_TIME, guarded).await {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => Err(LoadError::new(format!(
                "loader panicked: {}",
                mask_phones_in(panic_message(panic.as_ref()))
            ))),
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
                let keep = if cacheable {
                    Keep::Everywhere
                } else {
                    Keep::No
                };
                Ok(self.land(&key, entry, keep, generation, &pending))
            }
            Err(e) => {
                core.stats(ns).load_error(ns);
                tracing::warn!(error = %e, "cache load failed");
                // Keep serving what we have, without retrying for a while.
                if let Some(old) = self.inner.l1.get(&key, now)
                    && old.value.is_some()
                {
                    let until = now + policy.fail_safe_throttle.as_millis() as i64;
                    self.inner.l1.insert(&key, old.throttled(until));
                }
                Err(e)
            }
        };
        if leased && let Some(l2) = core.l2.clone() {
            let key = key.clone();
            tokio::spawn(async move { l2.release_lease(ns, &key, &owner).await });
        }
        out
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

    /// A loaded entry (or a peer's, from L2) lands: the revisions made
    /// while it loaded are applied (one revision at a time, as
    /// [`Tiered::revise_here`] makes them), and it is kept as `keep` says
    /// unless the key or the namespace was invalidated meanwhile (then its
    /// value is older than that: handed to the waiters, not cached).
    fn land(
        &self,
        key: &str,
        mut entry: Entry<V>,
        keep: Keep,
        generation: u64,
        pending: &Pending<V>,
    ) -> Entry<V> {
        let _one_at_a_time = self
            .inner
            .revising
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let revisions =
            std::mem::take(&mut *pending.revisions.lock().unwrap_or_else(|p| p.into_inner()));
        for revise in revisions {
            if let Some(new) = entry.value.as_deref().and_then(revise) {
                entry = entry.revised(Arc::new(new));
            }
        }
        if !pending.superseded.load(Ordering::Acquire)
            && self.inner.core.generation(self.inner.ns) == generation
        {
            match keep {
                Keep::Everywhere => self.store_loaded(key, &entry),
                Keep::Here => self.inner.l1.insert(key, entry.clone()),
                Keep::No => {}
            }
        }
        entry
    }

    /// L1 now; L2 and the last-known-good copy in the background, so waiters
    /// are not held up by Redis or the database.
    fn store_loaded(&self, key: &str, entry: &Entry<V>) {
        self.inner.l1.insert(key, entry.clone());
        let Ok(json) = entry.to_json() else { return };
        let (ns, core, key) = (self.inner.ns, self.inner.core.clone(), key.to_owned());
        let persist = self.inner.policy.persist_last_good && entry.value.is_some();
        let (version, ttl) = (
            entry.version,
            (entry.fail_safe_until() - now_ms()).max(0) as u64,
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
}

/// Takes a load's key out of the in-flight map when the load ends, however
/// it ends: a key left there would hand every later caller the same dead
/// flight until a restart. A load that unwinds past the loader (a panic
/// outside it) is counted as a load error on the way.
struct Landing<'a, V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    tiered: &'a Tiered<V>,
    key: &'a str,
    pending: &'a Arc<Pending<V>>,
}

impl<V> Drop for Landing<'_, V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn drop(&mut self) {
        let inner = &self.tiered.inner;
        if std::thread::panicking() {
            inner.core.stats(inner.ns).load_error(inner.ns);
        }
        let mut inflight = inner.inflight.lock().unwrap_or_else(|p| p.into_inner());
        // The key's flight now, unless a write superseded this one and a
        // newer load took its place.
        if inflight
            .get(self.key)
            .is_some_and(|f| Arc::ptr_eq(&f.landing, self.pending))
        {
            inflight.remove(self.key);
        }
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
