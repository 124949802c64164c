//! Write-behind: acknowledged work becomes durable fast and is never lost.
//!
//! A webhook hands a [`Job`] to [`WriteBehind::submit`] and answers the
//! platform once it returns. Jobs are gathered into batches (group commit:
//! one transaction for everything that arrived within a couple of
//! milliseconds) and applied in that transaction together with their
//! idempotency record — a batch's call events, call steps, write-backs and
//! counters many rows to a statement, so a batch costs a few round trips,
//! not a few per job — so "acknowledged" means "in the database" and a
//! provider's retry is a no-op. When the database cannot be reached, the batch
//! is appended (and fsynced) to a local spill journal instead, acknowledged,
//! and replayed in order when the database returns.
//!
//! Applying a job is order-independent by construction (statuses only move
//! forward, counters are increments, "last call" only moves later), so
//! replayed jobs and live ones may interleave safely, and on Postgres
//! several batches are applied at once: a batch spends its time waiting on
//! round trips, not on the database. The rows every batch touches (a
//! tenant's day, a caller's counts) are updated once per batch, last, in
//! key order, so concurrent batches hold them only for the commit and
//! never wait on each other in a cycle.

mod apply;
mod journal;
mod settings;
mod spill;

pub use apply::{Job, Outcome};
pub use settings::WriteBehindSettings;
pub use spill::{Parked, Spill};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::domain::mask_phones_in;
use crate::store::{Backend, Store, StoreError};
use crate::support::{error_chain, now_ms, supervise};

/// Most jobs applied in one transaction.
const MAX_BATCH: usize = 256;
/// How long the batcher waits for more jobs once it has one.
const GATHER: Duration = Duration::from_millis(2);
const QUEUE: usize = 10_000;
const REPLAY_INTERVAL: Duration = Duration::from_secs(1);
/// Waits before retrying work the database refused for now (busy, locked,
/// a deadlock victim, shutting down): about 1.5 s in all, then the work is
/// spilled and replayed later — never parked.
const RETRY_BACKOFF_MS: [u64; 4] = [50, 150, 400, 900];

/// Where an acknowledged job was made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    Database,
    /// The database was unreachable: in the local journal, to be replayed.
    SpillJournal,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("write-behind is shutting down")]
    Closed,
    #[error("neither the database nor the spill journal accepted the write: {0}")]
    Unwritable(String),
}

struct Pending {
    job: Job,
    submitted: Instant,
    /// The request that submitted the job: its flush is linked to it.
    span: tracing::Span,
    ack: oneshot::Sender<Result<(Durability, Outcome), WriteError>>,
}

#[derive(Clone)]
pub struct WriteBehind {
    tx: mpsc::Sender<Pending>,
    spill: Arc<Spill>,
}

impl WriteBehind {
    /// Starts the batcher, the replayer and the ledger's pruning.
    pub fn start(store: Store, settings: &WriteBehindSettings) -> std::io::Result<Self> {
        let (spill_dir, retention) = (settings.spill_dir.clone(), settings.idempotency_retention);
        for name in [
            "warmline_writebehind_spilled_total",
            "warmline_writebehind_replayed_total",
            "warmline_writebehind_rejected_total",
            "warmline_writebehind_retries_total",
            "warmline_writebehind_quarantined_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        let spill = Arc::new(Spill::open(spill_dir)?);
        let (tx, rx) = mpsc::channel(QUEUE);
        let db_down = Arc::new(AtomicBool::new(false));
        let flushers = settings.flushers.unwrap_or(match store.backend() {
            Backend::Postgres => 4,
            Backend::Sqlite => 1,
        });
        let batcher = Batcher {
            store: store.clone(),
            spill: spill.clone(),
            db_down: db_down.clone(),
            flushers: Arc::new(Semaphore::new(flushers as usize)),
            flusher_count: flushers,
        };
        // The batcher owns the queue's receiver: it cannot be started again,
        // so it is not supervised. The replay and pruning loops keep no state
        // of their own and are restarted if they panic.
        tokio::spawn(batcher.run(rx));
        let replay = (store.clone(), spill.clone());
        supervise("writebehind_replay", move || {
            replay_loop(replay.0.clone(), replay.1.clone(), db_down.clone())
        });
        supervise("writebehind_prune", move || {
            prune_loop(store.clone(), retention)
        });
        Ok(WriteBehind { tx, spill })
    }

    /// Makes `job` durable; returns once it is in the database or the spill
    /// journal — only then may the platform be told "received".
    pub async fn submit(&self, mut job: Job) -> Result<(Durability, Outcome), WriteError> {
        job.sanitize();
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Pending {
                job,
                submitted: Instant::now(),
                span: tracing::Span::current(),
                ack,
            })
            .await
            .map_err(|_| WriteError::Closed)?;
        metrics::gauge!("warmline_writebehind_queue_depth")
            .set((QUEUE - self.tx.capacity()) as f64);
        done.await.map_err(|_| WriteError::Closed)?
    }

    /// Jobs waiting in the spill journal.
    pub fn spilled(&self) -> usize {
        self.spill.pending()
    }

    /// The spill journal (parked jobs, quarantined records).
    pub fn spill(&self) -> &Spill {
        &self.spill
    }
}

/// A database error with its whole cause chain, numbers masked: "database
/// error" alone tells an operator nothing.
fn cause(e: &StoreError) -> String {
    mask_phones_in(&error_chain(e))
}

/// Runs `attempt`, again after a pause while the database refuses for now.
async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pauses = RETRY_BACKOFF_MS.iter();
    loop {
        match attempt().await {
            Err(e) if e.is_transient() => match pauses.next() {
                Some(ms) => {
                    tracing::warn!(error = %cause(&e), retry_in_ms = ms, "database busy; retrying");
                    metrics::counter!("warmline_writebehind_retries_total").increment(1);
                    tokio::time::sleep(Duration::from_millis(*ms)).await;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

/// Applies `jobs` in one transaction, as a flush applies a batch: their
/// outcomes in their order.
pub async fn commit_jobs(store: &Store, jobs: &[&Job]) -> Result<Vec<Outcome>, StoreError> {
    let mut tx = store.begin().await?;
    let outcomes = apply::apply_all(&mut tx, jobs).await?;
    tx.commit().await?;
    Ok(outcomes)
}

#[derive(Clone)]
struct Batcher {
    store: Store,
    spill: Arc<Spill>,
    db_down: Arc<AtomicBool>,
    /// One permit per batch being applied.
    flushers: Arc<Semaphore>,
    flusher_count: u32,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + GATHER;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    _ => break,
                }
            }
            // While every flusher is busy the batch keeps growing, up to
            // its bound: the busier the database, the fewer transactions.
            let permit = loop {
                if let Ok(p) = self.flushers.clone().try_acquire_owned() {
                    break Some(p);
                }
                if batch.len() >= MAX_BATCH {
                    break self.flushers.clone().acquire_owned().await.ok();
                }
                tokio::select! {
                    p = self.flushers.clone().acquire_owned() => break p.ok(),
                    more = rx.recv() => match more {
                        Some(p) => batch.push(p),
                        None => break self.flushers.clone().acquire_owned().await.ok(),
                    },
                }
            };
            metrics::histogram!("warmline_writebehind_flush_size").record(batch.len() as f64);
            metrics::gauge!("warmline_writebehind_queue_depth").set(rx.len() as f64);
            let this = self.clone();
            tokio::spawn(async move {
                this.flush(batch).await;
                drop(permit);
            });
        }
        // Closed: the batches still being applied finish before this ends.
        let _ = self.flushers.acquire_many(self.flusher_count).await;
    }

    #[tracing::instrument(name = "writebehind.flush", skip_all, fields(batch = batch.len()))]
    async fn flush(&self, batch: Vec<Pending>) {
        let span = tracing::Span::current();
        for p in &batch {
            span.follows_from(&p.span);
        }
        if !self.db_down.load(Ordering::Acquire) {
            let jobs: Vec<&Job> = batch.iter().map(|p| &p.job).collect();
            match with_retries(|| commit_jobs(&self.store, &jobs)).await {
                Ok(outcomes) => {
                    for (p, outcome) in batch.into_iter().zip(outcomes) {
                        metrics::histogram!("warmline_writebehind_lag_seconds")
                            .record(p.submitted.elapsed().as_secs_f64());
                        let _ = p.ack.send(Ok((Durability::Database, outcome)));
                    }
                    return;
                }
                Err(e) if e.is_retryable() => {
                    tracing::error!(error = %cause(&e), "database unreachable or refusing for now: spilling acknowledged work to the local journal");
                    self.db_down.store(true, Ordering::Release);
                }
                Err(e) => {
                    // One bad job must not sink the others: apply one by one.
                    tracing::warn!(error = %cause(&e), "batch rejected; applying its jobs one by one");
                    return self.one_by_one(batch).await;
                }
            }
        }
        self.spill_batch(batch).await;
    }

    async fn one_by_one(&self, batch: Vec<Pending>) {
        for p in batch {
            let one = [&p.job];
            let result = with_retries(|| commit_jobs(&self.store, &one)).await;
            match result {
                Ok(outcomes) => {
                    let outcome = outcomes.into_iter().next().unwrap_or(Outcome::Applied);
                    let _ = p.ack.send(Ok((Durability::Database, outcome)));
                }
                Err(e) if e.is_retryable() => {
                    self.db_down.store(true, Ordering::Release);
                    self.spill_batch(vec![p]).await;
                }
                Err(e) => {
                    // Acknowledged work the database refuses is kept, not dropped.
                    let reason = cause(&e);
                    tracing::error!(error = %reason, key = %p.job.key(), "job refused by the database; parked in the rejected journal");
                    metrics::counter!("warmline_writebehind_rejected_total").increment(1);
                    let kept = self.spill.reject(&p.job, &reason).await;
                    let _ = p.ack.send(match kept {
                        Ok(()) => Ok((Durability::SpillJournal, Outcome::Rejected)),
                        Err(e) => Err(WriteError::Unwritable(e.to_string())),
                    });
                }
            }
        }
    }

    async fn spill_batch(&self, batch: Vec<Pending>) {
        let jobs: Vec<Job> = batch.iter().map(|p| p.job.clone()).collect();
        let result = self.spill.append(&jobs).await;
        if result.is_ok() {
            metrics::counter!("warmline_writebehind_spilled_total").increment(jobs.len() as u64);
        }
        metrics::gauge!("warmline_writebehind_spill_depth").set(self.spill.pending() as f64);
        for p in batch {
            let _ = p.ack.send(match &result {
                Ok(()) => Ok((Durability::SpillJournal, Outcome::Spilled)),
                Err(e) => Err(WriteError::Unwritable(e.to_string())),
            });
        }
    }
}

/// Forgets applied work older than the retention, hourly, so the idempotency
/// ledger and the done write-backs do not grow without bound.
async fn prune_loop(store: Store, retention: Duration) {
    const EVERY: Duration = Duration::from_secs(3600);
    loop {
        tokio::time::sleep(EVERY).await;
        let before = now_ms() - retention.as_millis() as i64;
        let pruned = async {
            Ok::<_, StoreError>(
                store.prune_ledger(before).await? + store.prune_writebacks(before).await?,
            )
        };
        match pruned.await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned the idempotency ledger"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune the idempotency ledger"),
        }
    }
}

/// Replays spilled journals, oldest first, whenever the database answers.
/// "Database down" ends with the first ping that succeeds: jobs apply in
/// any order, so new work need not queue behind the journal.
async fn replay_loop(store: Store, spill: Arc<Spill>, db_down: Arc<AtomicBool>) {
    loop {
        if spill.pending() > 0 || db_down.load(Ordering::Acquire) {
            match store.ping(Duration::from_secs(1)).await {
                Ok(()) => {
                    if db_down.swap(false, Ordering::AcqRel) {
                        tracing::info!("database answers again: new work goes to it");
                    }
                    match replay(&store, &spill).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(jobs = n, "spill journal replayed"),
                        Err(e) => tracing::warn!(
                            error = %mask_phones_in(&format!("{e:#}")),
                            "spill replay interrupted; will retry"
                        ),
                    }
                }
                Err(_) => db_down.store(true, Ordering::Release),
            }
            metrics::gauge!("warmline_writebehind_spill_depth").set(spill.pending() as f64);
        }
        tokio::time::sleep(REPLAY_INTERVAL).await;
    }
}

/// Replays every journal file in order: batches of jobs, one job per
/// transaction when a batch is refused, parking a job the database refuses
/// for good. Stops (to retry later, the file kept) when the database is
/// unreachable or refuses for now.
async fn replay(store: &Store, spill: &Spill) -> anyhow::Result<usize> {
    let mut total = 0;
    while let Some(file) = spill.next_for_replay().await? {
        let mut jobs = spill.read(&file).await?;
        jobs.iter_mut().for_each(Job::sanitize);
        for chunk in jobs.chunks(MAX_BATCH) {
            let refs: Vec<&Job> = chunk.iter().collect();
            match with_retries(|| commit_jobs(store, &refs)).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %cause(&e), "replayed batch refused; applying its jobs one per transaction");
                    for job in chunk {
                        let one = [job];
                        match with_retries(|| commit_jobs(store, &one)).await {
                            Ok(_) => {}
                            Err(e) if e.is_retryable() => return Err(e.into()),
                            Err(e) => {
                                let reason = cause(&e);
                                tracing::error!(error = %reason, key = %job.key(), "replayed job refused by the database; parked in the rejected journal");
                                metrics::counter!("warmline_writebehind_rejected_total")
                                    .increment(1);
                                spill.reject(job, &reason).await?;
                            }
                        }
                    }
                }
            }
            total += chunk.len();
            metrics::counter!("warmline_writebehind_replayed_total").increment(chunk.len() as u64);
        }
        spill.done(&file, jobs.len()).await?;
    }
    Ok(total)
}

/// Applies every parked job again (each is idempotent: one already applied
/// is a no-op); those the database still refuses stay parked with their new
/// reason. Returns how many were applied and what is still parked.
pub async fn replay_rejected(store: &Store, spill: &Spill) -> anyhow::Result<(usize, Vec<Parked>)> {
    spill
        .rework_parked(|parked| async move {
            let mut keep = Vec::new();
            for mut p in parked {
                p.job.sanitize();
                let one = [&p.job];
                let refused = with_retries(|| commit_jobs(store, &one)).await.err();
                match refused {
                    None => {}
                    Some(e) => {
                        p.reason = cause(&e);
                        p.at_ms = now_ms();
                        keep.push(p);
                    }
                }
            }
            keep
        })
        .await
}
