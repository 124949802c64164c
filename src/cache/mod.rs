//! The tiered cache: L1 in process (quick_cache), L2 in Redis, last-known-good in
//! the database.
//!
//! A namespace ([`Namespace`]) is a typed [`Tiered`] handle with its own
//! [`Policy`]; its read path (single-flight, stale-while-revalidate,
//! fail-safe, soft/hard timeouts) lives in `tiered.rs` and `flight.rs`. This file owns what
//! spans namespaces: flushes, the backplane that keeps every replica's L1
//! honest, warm-up and statistics.
//!
//! This module owns every Redis connection warmline makes; no other module
//! talks to Redis. It knows nothing of upstreams or webhooks: values come
//! from loaders its callers pass in.

mod backplane;
mod entry;
mod flight;
mod inspect;
mod l1;
mod l2;
mod owed;
mod policy;
mod redis_link;
mod stats;
mod tiered;

pub mod keys;
mod settings;

pub use backplane::Op as BackplaneOp;
pub use inspect::{KeyView, Stamps};
pub use policy::{Namespace, Policies, Policy};
pub use redis_link::{RedisConn, RedisHealth, RedisLink, RedisShape};
pub use settings::{CacheSettings, RedisSettings};
pub use stats::{NamespaceSnapshot, Outcome, Tier};
pub use tiered::{CacheError, LoadError, LoadResult, Lookup, Tiered};

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::{PhoneNumber, TenantId};
use crate::store::Store;
use crate::support::BreakerState;
use backplane::{Backplane, Event, Op};
use l2::L2;
use stats::NamespaceStats;

pub(crate) use crate::support::now_ms;

/// What a flush removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushScope {
    Key {
        ns: Namespace,
        key: String,
    },
    Prefix {
        ns: Namespace,
        prefix: String,
    },
    Namespace(Namespace),
    /// Everything of one tenant: keys starting `{tenant_id}:` in every
    /// namespace, and its entry in `tenant` (keyed by called number).
    Tenant {
        tenant_id: String,
        called_number: String,
    },
    All,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlushReport {
    /// Distinct entries removed from any tier (L1, L2, last-known-good).
    pub flushed: usize,
    /// Set when Redis could not be flushed (L1 and the database were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2_error: Option<String>,
}

/// The type-erased L1 of a namespace, for operations across namespaces.
pub(crate) trait LocalTier: Send + Sync {
    fn entry_count(&self) -> u64;
    fn keys_with_prefix(&self, prefix: &str) -> Vec<String>;
    fn contains(&self, key: &str) -> bool;
    /// A load of `key` in flight is not cached ([`tiered::Inner::supersede`]).
    fn supersede(&self, key: &str);
    fn remove(&self, key: &str);
    fn expire(&self, key: &str);
    fn clear(&self);
    /// The timestamps of `key`'s L1 entry, without counting a lookup.
    fn stamps(&self, key: &str) -> Option<Stamps>;
}

type WarmFuture = Pin<Box<dyn Future<Output = anyhow::Result<usize>> + Send>>;
type Warmer = Arc<dyn Fn() -> WarmFuture + Send + Sync>;

struct Registered {
    local: Arc<dyn LocalTier>,
    typed: Arc<dyn Any + Send + Sync>,
}

pub(crate) struct Core {
    policies: Policies,
    pub(crate) l2: Option<Arc<L2>>,
    backplane: Option<Arc<Backplane>>,
    pub(crate) store: Option<Store>,
    stats: HashMap<Namespace, Arc<NamespaceStats>>,
    generations: HashMap<Namespace, AtomicU64>,
    registry: RwLock<HashMap<Namespace, Registered>>,
    warmers: RwLock<Vec<(Namespace, Warmer)>>,
    pub(crate) instance_id: String,
    owed: owed::Owed,
}

impl Core {
    pub(crate) fn stats(&self, ns: Namespace) -> &Arc<NamespaceStats> {
        &self.stats[&ns]
    }

    pub(crate) fn generation(&self, ns: Namespace) -> u64 {
        self.generations[&ns].load(Ordering::Acquire)
    }

    pub(crate) fn bump_generation(&self, ns: Namespace) {
        self.generations[&ns].fetch_add(1, Ordering::AcqRel);
    }

    fn local(&self, ns: Namespace) -> Option<Arc<dyn LocalTier>> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ns)
            .map(|r| r.local.clone())
    }

    /// Tells the other replicas; false when the message did not get out.
    pub(crate) async fn publish(&self, op: Op) -> bool {
        match &self.backplane {
            Some(bp) => bp.publish(op).await,
            None => true,
        }
    }

    /// Applies an invalidation to this replica's L1 only; returns the keys
    /// that were present.
    fn apply_local(&self, op: &Op) -> BTreeSet<(Namespace, String)> {
        let mut removed = BTreeSet::new();
        let mut drop_prefix = |ns: Namespace, prefix: &str| {
            self.bump_generation(ns);
            if let Some(local) = self.local(ns) {
                for key in local.keys_with_prefix(prefix) {
                    local.remove(&key);
                    removed.insert((ns, key));
                }
            }
        };
        match op {
            Op::Remove { ns, key } => {
                if let Some(local) = self.local(*ns) {
                    local.supersede(key);
                    if local.contains(key) {
                        removed.insert((*ns, key.clone()));
                    }
                    local.remove(key);
                }
            }
            Op::Expire { ns, key } => {
                if let Some(local) = self.local(*ns) {
                    local.supersede(key);
                    local.expire(key);
                }
            }
            Op::Prefix { ns, prefix } => drop_prefix(*ns, prefix),
            Op::Namespace { ns } => drop_prefix(*ns, ""),
            Op::PrefixAll { prefix } => {
                for ns in Namespace::ALL {
                    drop_prefix(ns, prefix);
                }
            }
            Op::All => {
                for ns in Namespace::ALL {
                    drop_prefix(ns, "");
                }
            }
        }
        removed
    }

    /// Drops this replica's whole L1 (after a backplane gap).
    fn clear_local(&self) {
        for ns in Namespace::ALL {
            self.bump_generation(ns);
            if let Some(local) = self.local(ns) {
                local.clear();
            }
        }
    }

    /// Drops `key` in each of `namespaces` from L1 here (but for those
    /// `revised_here`: this replica has already corrected its copy), from
    /// L2 (one command) and from every other replica's L1. The
    /// last-known-good copies stay: the value changed, it did not go bad.
    /// What Redis did not take is owed (see [`owed`]).
    async fn drop_changed(
        self: &Arc<Self>,
        namespaces: &[Namespace],
        key: &str,
        revised_here: &[Namespace],
    ) {
        let ops: Vec<Op> = namespaces
            .iter()
            .map(|ns| Op::Remove {
                ns: *ns,
                key: key.to_owned(),
            })
            .collect();
        for (op, ns) in ops.iter().zip(namespaces) {
            if !revised_here.contains(ns) {
                self.apply_local(op);
            }
        }
        let mut delivered = true;
        if let Some(l2) = &self.l2 {
            let raw: Vec<String> = namespaces.iter().map(|ns| l2.key(*ns, key)).collect();
            if let Err(e) = l2.delete_raw(&raw).await {
                tracing::warn!(error = %e, "could not drop changed values from L2; owed");
                delivered = false;
            }
        }
        let sent = futures_util::future::join_all(ops.into_iter().map(|op| self.publish(op))).await;
        if !delivered || sent.contains(&false) {
            self.owe(namespaces, key);
        }
    }

    /// Removes `scope` from L1 here, from L2, from the last-known-good table
    /// and from every other replica's L1.
    pub(crate) async fn flush(&self, scope: &FlushScope) -> FlushReport {
        // (namespace, key prefix, exact): what to remove in L2 and the database.
        let targets: Vec<(Namespace, String, bool)> = match scope {
            FlushScope::Key { ns, key } => vec![(*ns, key.clone(), true)],
            FlushScope::Prefix { ns, prefix } => vec![(*ns, prefix.clone(), false)],
            FlushScope::Namespace(ns) => vec![(*ns, String::new(), false)],
            FlushScope::Tenant {
                tenant_id,
                called_number,
            } => Namespace::ALL
                .into_iter()
                .map(|ns| match ns {
                    Namespace::Tenant => (ns, called_number.clone(), true),
                    _ => (ns, format!("{tenant_id}:"), false),
                })
                .collect(),
            FlushScope::All => Namespace::ALL
                .into_iter()
                .map(|ns| (ns, String::new(), false))
                .collect(),
        };

        let mut removed: BTreeSet<(Namespace, String)> = BTreeSet::new();
        let mut ops = Vec::new();
        for (ns, prefix, exact) in &targets {
            let op = if *exact {
                Op::Remove {
                    ns: *ns,
                    key: prefix.clone(),
                }
            } else {
                Op::Prefix {
                    ns: *ns,
                    prefix: prefix.clone(),
                }
            };
            removed.extend(self.apply_local(&op));
            ops.push(op);
        }

        let mut l2_error = None;
        if let Some(l2) = &self.l2 {
            for (ns, prefix, exact) in &targets {
                let found = if *exact {
                    let raw = l2.key(*ns, prefix);
                    // UNLINK tells us whether it existed.
                    match l2.delete_raw(std::slice::from_ref(&raw)).await {
                        Ok(1) => {
                            removed.insert((*ns, prefix.clone()));
                            Ok(())
                        }
                        Ok(_) => Ok(()),
                        Err(e) => Err(e),
                    }
                } else {
                    match l2.scan(*ns, prefix).await {
                        Ok(keys) => {
                            for k in &keys {
                                if let Some(key) = l2.entry_key(*ns, k) {
                                    removed.insert((*ns, key.to_owned()));
                                }
                            }
                            l2.delete_raw(&keys).await.map(|_| ())
                        }
                        Err(e) => Err(e),
                    }
                };
                if let Err(e) = found {
                    l2_error = Some(e.to_string());
                }
            }
        }

        if let Some(store) = &self.store {
            for (ns, prefix, exact) in &targets {
                match store.delete_last_good(ns.as_str(), prefix).await {
                    Ok(keys) => removed.extend(
                        keys.into_iter()
                            .filter(|k| !*exact || k == prefix)
                            .map(|k| (*ns, k)),
                    ),
                    Err(e) => tracing::warn!(error = %e, "could not flush last-known-good values"),
                }
            }
        }

        for op in ops {
            self.publish(op).await;
        }
        FlushReport {
            flushed: removed.len(),
            l2_error,
        }
    }
}

/// The cache shared by the whole process. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    core: Arc<Core>,
}

/// How to build a [`Cache`].
pub struct CacheConfig {
    pub policies: Policies,
    pub redis: Option<RedisLink>,
    /// Prefix of every Redis key and of the backplane channel; replicas that
    /// must share a cache use the same one.
    pub redis_prefix: String,
    pub store: Option<Store>,
}

impl Cache {
    /// Builds the cache and, with Redis, starts its backplane subscription.
    pub fn new(config: CacheConfig) -> Cache {
        let instance_id = uuid::Uuid::new_v4().simple().to_string();
        let (l2, backplane) = match config.redis {
            Some(link) => {
                let bp = Backplane::new(
                    link.clone(),
                    format!("{}backplane", config.redis_prefix),
                    instance_id.clone(),
                    link.shape().backplane_ping(),
                );
                (
                    Some(Arc::new(L2::new(link, config.redis_prefix))),
                    Some(Arc::new(bp)),
                )
            }
            None => (None, None),
        };
        let core = Arc::new(Core {
            policies: config.policies,
            l2,
            backplane: backplane.clone(),
            store: config.store,
            stats: Namespace::ALL
                .into_iter()
                .map(|ns| (ns, Arc::new(NamespaceStats::default())))
                .collect(),
            generations: Namespace::ALL
                .into_iter()
                .map(|ns| (ns, AtomicU64::new(0)))
                .collect(),
            registry: RwLock::new(HashMap::new()),
            warmers: RwLock::new(Vec::new()),
            instance_id,
            owed: owed::Owed::default(),
        });
        if let Some(bp) = backplane {
            // The listener holds only a weak reference: the cache can be dropped.
            let weak = Arc::downgrade(&core);
            tokio::spawn(bp.listen(move |event| {
                let Some(core) = weak.upgrade() else { return };
                match event {
                    Event::Op(op) => {
                        core.apply_local(&op);
                    }
                    Event::Resync => {
                        core.clear_local();
                        if let Some(l2) = core.l2.clone() {
                            tokio::spawn(async move { l2.recover().await });
                        }
                    }
                }
            }));
        }
        Cache { core }
    }

    /// The typed handle of `ns`. The first call fixes the value type; a
    /// later call with another type is a programming error and panics.
    pub fn namespace<V>(&self, ns: Namespace) -> Tiered<V>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let mut registry = self
            .core
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(r) = registry.get(&ns) {
            return r
                .typed
                .downcast_ref::<Tiered<V>>()
                .unwrap_or_else(|| panic!("cache namespace {ns} is already used with another type"))
                .clone();
        }
        let tiered = Tiered::<V>::new(self.core.clone(), ns, self.core.policies.get(ns).clone());
        registry.insert(
            ns,
            Registered {
                local: tiered.local(),
                typed: Arc::new(tiered.clone()),
            },
        );
        tiered
    }

    pub fn policy(&self, ns: Namespace) -> &Policy {
        self.core.policies.get(ns)
    }

    pub async fn flush(&self, scope: &FlushScope) -> FlushReport {
        self.core.flush(scope).await
    }

    /// Drops a caller's contact, memory and assembled context from every
    /// tier and replica: what the upstreams know of them has changed.
    pub async fn invalidate_caller(&self, tenant: &TenantId, caller: &PhoneNumber) {
        let key = keys::caller(tenant, caller);
        for ns in [Namespace::Contact, Namespace::Memory, Namespace::Context] {
            self.flush(&FlushScope::Key {
                ns,
                key: key.clone(),
            })
            .await;
        }
    }

    /// What warmline or an upstream knows of a caller changed: their
    /// entries in `changed` are dropped from L2 and every other replica,
    /// and from this one's L1 but for those `revised_here` (corrected in
    /// place with [`Tiered::revise_here`]). The last-known-good copies
    /// stay: a contact a call behind is still what to serve while the CRM
    /// is down.
    pub async fn caller_changed(
        &self,
        tenant: &TenantId,
        caller: &PhoneNumber,
        changed: &[Namespace],
        revised_here: &[Namespace],
    ) {
        let key = keys::caller(tenant, caller);
        self.core.drop_changed(changed, &key, revised_here).await;
    }

    /// Registers a warm-up step for `ns`; it returns how many entries it
    /// loaded.
    pub fn register_warmer<F, Fut>(&self, ns: Namespace, warm: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<usize>> + Send + 'static,
    {
        let warmer: Warmer = Arc::new(move || Box::pin(warm()));
        self.core
            .warmers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push((ns, warmer));
    }

    /// Runs every warm-up step; a failing step is reported, not fatal.
    pub async fn warm_up(&self) -> BTreeMap<String, Result<usize, String>> {
        let warmers = self
            .core
            .warmers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = BTreeMap::new();
        for (ns, warm) in warmers {
            let result = warm().await.map_err(|e| format!("{e:#}"));
            match &result {
                Ok(n) => tracing::info!(namespace = ns.as_str(), entries = n, "cache warmed"),
                Err(e) => {
                    tracing::warn!(namespace = ns.as_str(), error = %e, "cache warm-up failed")
                }
            }
            out.insert(ns.as_str().to_owned(), result);
        }
        out
    }

    pub fn stats(&self) -> CacheStats {
        let namespaces = Namespace::ALL
            .into_iter()
            .map(|ns| {
                let entries = self.core.local(ns).map_or(0, |l| l.entry_count());
                (ns.as_str(), self.core.stats(ns).snapshot(entries))
            })
            .collect();
        let l2 = self.core.l2.as_ref().map(|l2| L2Stats {
            breaker: l2.breaker_state(),
            errors: l2.errors(),
            owed_drops: self.core.owed.len(),
        });
        let backplane = self.core.backplane.as_ref().map(|bp| {
            let (published, received, publish_errors) = bp.counts();
            BackplaneStats {
                connected: bp.is_connected(),
                published,
                received,
                publish_errors,
                silences: bp.silences(),
            }
        });
        CacheStats {
            namespaces,
            l2,
            backplane,
        }
    }

    /// The shared counter of rate limits (Redis), for limits every replica
    /// must respect together; `None` without Redis.
    pub fn shared_window(&self) -> Option<Arc<dyn crate::support::SharedWindow>> {
        self.core
            .l2
            .clone()
            .map(|l2| Arc::new(l2::L2Window(l2)) as Arc<dyn crate::support::SharedWindow>)
    }

    /// Whether the backplane subscription is up (false without Redis).
    pub fn backplane_connected(&self) -> bool {
        self.core
            .backplane
            .as_ref()
            .is_some_and(|bp| bp.is_connected())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    pub namespaces: BTreeMap<&'static str, NamespaceSnapshot>,
    /// `null` when Redis is not configured.
    pub l2: Option<L2Stats>,
    pub backplane: Option<BackplaneStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct L2Stats {
    pub breaker: BreakerState,
    pub errors: u64,
    /// Changed entries still to be dropped from L2 and the other replicas.
    pub owed_drops: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackplaneStats {
    pub connected: bool,
    pub published: u64,
    pub received: u64,
    pub publish_errors: u64,
    /// Times the subscription stayed open but its ping did not come back
    /// (L1 flushed each time).
    pub silences: u64,
}
