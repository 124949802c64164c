//! A namespace's L1: this process's map of entries, bounded in count.
//!
//! `quick_cache` (CLOCK-Pro, close to S3-FIFO) holds them: its per-entry
//! cost is the key, the entry and a few dozen bytes of bookkeeping, where
//! moka's access-order and write-order deques and per-entry timer came to
//! about 420 bytes an entry — 1.3 KB of each cached caller's 3.3 KB.
//!
//! Entries carry their own windows ([`Entry::state`]), so expiry needs no
//! timer: a read never returns an entry past its fail-safe window (and
//! drops it), and a sweep every [`SWEEP_EVERY`] drops the ones nobody read,
//! so a quiet namespace gives its memory back and [`L1::len`] counts only
//! live entries.

use std::sync::{Arc, Weak};
use std::time::Duration;

use compact_str::CompactString;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use super::Namespace;
use super::entry::{Entry, State};
use super::now_ms;
use super::stats::NamespaceStats;

/// How often entries past their fail-safe window are swept out.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Keys are kept inline up to 24 bytes (`acme-dental:+15550001234` fits;
/// longer ones go to the heap): a heap copy of each short key would add
/// 32 bytes to every entry.
type Key = CompactString;

type Map<V> = quick_cache::sync::Cache<Key, Entry<V>, UnitWeighter, DefaultHashBuilder, Evictions>;

pub(super) struct L1<V> {
    map: Arc<Map<V>>,
}

/// Counts the entries that left to make room (not the removed, replaced or
/// expired ones), as `warmline_cache_evictions_total`.
#[derive(Clone)]
struct Evictions {
    ns: Namespace,
    stats: Arc<NamespaceStats>,
}

impl<V> Lifecycle<Key, Entry<V>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _key: Key, _entry: Entry<V>) {
        self.stats.eviction(self.ns);
    }
}

impl<V: Send + Sync + 'static> L1<V> {
    /// Up to `capacity` entries. Started inside a Tokio runtime, it sweeps
    /// expired entries in a task that ends with the map.
    pub(super) fn new(ns: Namespace, capacity: u64, stats: Arc<NamespaceStats>) -> Self {
        let capacity = capacity.max(1);
        // The table grows as entries come: reserve only a start.
        let start = capacity.min(1024) as usize;
        let evictions = Evictions { ns, stats };
        let map = Map::with(
            start,
            capacity,
            UnitWeighter,
            DefaultHashBuilder::default(),
            evictions,
        );
        let map = Arc::new(map);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&map)));
        }
        L1 { map }
    }

    /// The entry for `key`, unless it is past its fail-safe window (then it
    /// is dropped).
    pub(super) fn get(&self, key: &str, now: i64) -> Option<Entry<V>> {
        let e = self.map.get(key)?;
        if e.state(now) == State::Expired {
            self.map.remove_if(key, |e| e.state(now) == State::Expired);
            return None;
        }
        Some(e)
    }

    pub(super) fn insert(&self, key: &str, entry: Entry<V>) {
        self.map.insert(Key::new(key), entry);
    }

    pub(super) fn remove(&self, key: &str) {
        self.map.remove(key);
    }

    pub(super) fn clear(&self) {
        self.map.clear();
    }

    /// Live entries: the expired ones are swept first.
    pub(super) fn len(&self) -> u64 {
        sweep_now(&self.map);
        self.map.len() as u64
    }

    /// Keys of live entries that start with `prefix`.
    pub(super) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let now = now_ms();
        self.map
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.state(now) != State::Expired)
            .map(|(k, _)| k.into_string())
            .collect()
    }
}

fn sweep_now<V>(map: &Map<V>) {
    let now = now_ms();
    map.retain(|_, e| e.state(now) != State::Expired);
}

async fn sweep<V>(map: Weak<Map<V>>) {
    let mut ticker = tokio::time::interval(SWEEP_EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(map) = map.upgrade() else { return };
        sweep_now(&map);
    }
}
