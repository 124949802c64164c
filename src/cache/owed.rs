//! Drops owed to Redis and the other replicas. When a changed entry's drop
//! from L2, or its message to the other replicas, did not get through
//! (Redis stalled, timed out, or behind its open breaker), the old value
//! would stay in L2 — and every replica that reads it after the outage
//! would serve it until its windows ran out (a contact's: 30 minutes). The
//! entry is remembered here instead and dropped again, in the background,
//! until Redis takes it.
//!
//! Dropping again is always safe: at worst a newer value is dropped too
//! and loaded again. The set is bounded; past the bound a drop is counted
//! as lost (`warmline_cache_owed_drops_total{outcome="lost"}`) and left to
//! the entry's windows, as before.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backplane::Op;
use super::{Core, Namespace};

/// Most drops remembered at once.
const MAX_OWED: usize = 10_000;
/// Most drops made again in one attempt (one `UNLINK`).
const PER_ATTEMPT: usize = 256;
/// Between attempts while some are owed.
const RETRY_EVERY: Duration = Duration::from_millis(500);

#[derive(Default)]
pub(crate) struct Owed {
    entries: Mutex<BTreeSet<(Namespace, String)>>,
    /// A task is making the owed drops again.
    settling: AtomicBool,
}

impl Owed {
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(Namespace, String)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `entries`; true when no task is settling them yet (the
    /// caller starts one).
    fn add(&self, entries: impl IntoIterator<Item = (Namespace, String)>) -> bool {
        count("owed", self.insert(entries));
        !self.settling.swap(true, Ordering::AcqRel)
    }

    /// Inserts what fits; returns how many were new.
    fn insert(&self, entries: impl IntoIterator<Item = (Namespace, String)>) -> u64 {
        let (mut new, mut lost) = (0_u64, 0_u64);
        {
            let mut set = self.lock();
            for entry in entries {
                if set.len() < MAX_OWED || set.contains(&entry) {
                    new += u64::from(set.insert(entry));
                } else {
                    lost += 1;
                }
            }
            metrics::gauge!("warmline_cache_owed_drops").set(set.len() as f64);
        }
        if lost > 0 {
            count("lost", lost);
            tracing::warn!(
                lost,
                "too many drops owed to Redis; these are left to their windows"
            );
        }
        new
    }

    fn take(&self) -> Vec<(Namespace, String)> {
        let mut set = self.lock();
        let batch: Vec<_> = set.iter().take(PER_ATTEMPT).cloned().collect();
        for entry in &batch {
            set.remove(entry);
        }
        batch
    }

    /// Stops settling when nothing is owed; false when a drop came in
    /// meanwhile and this task carries on.
    fn stop_if_empty(&self) -> bool {
        self.settling.store(false, Ordering::Release);
        if self.lock().is_empty() {
            return true;
        }
        // Someone else may have started a task since the store above.
        self.settling.swap(true, Ordering::AcqRel)
    }
}

fn count(outcome: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("warmline_cache_owed_drops_total", "outcome" => outcome).increment(n);
    }
}

impl Core {
    /// Remembers that `key`'s entries in `namespaces` still hold an old
    /// value in L2 or in other replicas, and starts settling them.
    pub(crate) fn owe(self: &Arc<Self>, namespaces: &[Namespace], key: &str) {
        if self
            .owed
            .add(namespaces.iter().map(|ns| (*ns, key.to_owned())))
        {
            tokio::spawn(self.clone().settle_owed());
        }
    }

    /// Makes the owed drops again until Redis has taken them all.
    async fn settle_owed(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RETRY_EVERY).await;
            let batch = self.owed.take();
            if batch.is_empty() {
                if self.owed.stop_if_empty() {
                    return;
                }
                continue;
            }
            if self.drop_again(&batch).await {
                count("settled", batch.len() as u64);
            } else {
                self.owed.insert(batch);
            }
            metrics::gauge!("warmline_cache_owed_drops").set(self.owed.len() as f64);
        }
    }

    /// This replica's L1 already holds the new value (or nothing): only L2
    /// and the others are told.
    async fn drop_again(&self, batch: &[(Namespace, String)]) -> bool {
        if let Some(l2) = &self.l2 {
            let raw: Vec<String> = batch.iter().map(|(ns, key)| l2.key(*ns, key)).collect();
            if l2.delete_raw(&raw).await.is_err() {
                return false;
            }
        }
        let sent = futures_util::future::join_all(batch.iter().map(|(ns, key)| {
            self.publish(Op::Remove {
                ns: *ns,
                key: key.clone(),
            })
        }))
        .await;
        sent.into_iter().all(|ok| ok)
    }
}
