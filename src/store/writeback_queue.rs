//! The write-back queue: [`WriteBack`] jobs (to the CRM, to the memory
//! service) created in the transaction of the call event that caused them
//! and run afterwards, with retries, by the write-back worker.
//!
//! Rows are claimed with a lease rather than a held lock, so a crashed
//! worker's items come back when its lease runs out. A claim is one UPDATE
//! whose outer WHERE re-checks the lease (Postgres re-evaluates it on the
//! newest row version when two replicas race, so exactly one wins each row);
//! on Postgres the candidate rows are also picked `FOR UPDATE SKIP LOCKED`
//! so concurrent replicas take disjoint batches instead of colliding on the
//! same ones. SQLite serialises writers, so it needs neither.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Conn, Result, Store, many, now_ms};
use crate::domain::WriteBack;

/// The statement that leases due write-backs (`$1` now, `$2` the lease's
/// end, `$3` how many), oldest due first. It walks the due index in its own
/// order, so a claim reads about `$3` rows however long the backlog is; in
/// id order it read and sorted every due row first (33 ms a claim at 56k
/// rows, a backlog a CRM that is down or rate-limited soon leaves). A job's
/// first attempt is due when it was queued, so this is queue order for
/// everything not being retried.
pub fn claim_writebacks_sql(backend: Backend) -> String {
    let skip_locked = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    format!(
        "UPDATE writeback_queue SET locked_until_ms = $2, attempts = attempts + 1
         WHERE id IN (
            SELECT id FROM writeback_queue
            WHERE done_at_ms IS NULL AND next_attempt_at_ms <= $1
              AND (locked_until_ms IS NULL OR locked_until_ms < $1)
            ORDER BY next_attempt_at_ms, id LIMIT $3 {skip_locked})
           AND done_at_ms IS NULL
           AND (locked_until_ms IS NULL OR locked_until_ms < $1)
         RETURNING id, kind, payload, attempts, trace_id, created_at_ms"
    )
}

/// A claimed write-back.
#[derive(Debug, Clone)]
pub struct QueuedWriteBack {
    pub id: i64,
    /// `Err` when the stored payload cannot be read (it will never succeed).
    pub job: std::result::Result<WriteBack, String>,
    /// The `kind` column, also for a payload that cannot be read.
    pub kind: String,
    /// Including the current one.
    pub attempts: i64,
    pub trace_id: Option<String>,
    pub created_at_ms: i64,
}

fn from_row(row: &AnyRow) -> Result<QueuedWriteBack> {
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    Ok(QueuedWriteBack {
        id: row.try_get("id")?,
        job: decode(&kind, &payload),
        kind,
        attempts: row.try_get("attempts")?,
        trace_id: row.try_get("trace_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// The payload, with the `kind` column as its tag (rows written before the
/// job was typed carry the kind only in the column).
fn decode(kind: &str, payload: &str) -> std::result::Result<WriteBack, String> {
    let mut value: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| format!("unreadable payload: {e}"))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("kind".into(), kind.into());
    }
    serde_json::from_value(value).map_err(|e| format!("unreadable `{kind}` payload: {e}"))
}

/// Queues `job` in the caller's transaction; false when `key` was queued
/// before (the event that caused it was retried).
pub async fn enqueue_writeback_in(
    conn: &mut Conn,
    job: &WriteBack,
    key: &str,
    trace_id: Option<&str>,
) -> Result<bool> {
    Ok(enqueue_writebacks_in(conn, &[(job, key, trace_id)]).await? == 1)
}

/// Queues many jobs, each `(job, key, trace id)`, in few statements;
/// returns how many were new.
pub async fn enqueue_writebacks_in(
    conn: &mut Conn,
    jobs: &[(&WriteBack, &str, Option<&str>)],
) -> Result<u64> {
    let now = now_ms();
    let mut queued = 0;
    for chunk in many::chunks(jobs) {
        let sql = format!(
            "INSERT INTO writeback_queue (kind, idempotency_key, payload, next_attempt_at_ms, trace_id, created_at_ms)
             VALUES {}
             ON CONFLICT (idempotency_key) DO NOTHING",
            many::values(chunk.len(), "(?, ?, ?, ?, ?, ?)")
        );
        let mut q = sqlx::query(&sql);
        for (job, key, trace) in chunk {
            let payload = serde_json::to_string(job)
                .map_err(|e| super::StoreError::corrupt("write-back", e))?;
            q = q
                .bind(job.kind())
                .bind(*key)
                .bind(payload)
                .bind(now)
                .bind(*trace)
                .bind(now);
        }
        queued += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(queued)
}

impl Store {
    pub async fn enqueue_writeback(
        &self,
        job: &WriteBack,
        key: &str,
        trace_id: Option<&str>,
    ) -> Result<bool> {
        enqueue_writeback_in(&mut *self.conn().await?, job, key, trace_id).await
    }

    /// Leases up to `limit` due write-backs, oldest due first, for `lease_ms`.
    pub async fn claim_writebacks(
        &self,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<QueuedWriteBack>> {
        let now = now_ms();
        let sql = claim_writebacks_sql(self.backend());
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(now + lease_ms)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        let mut items: Vec<QueuedWriteBack> = rows.iter().map(from_row).collect::<Result<_>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    pub async fn mark_writeback_done(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE writeback_queue SET done_at_ms = $2, locked_until_ms = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Releases the lease and schedules another attempt.
    pub async fn mark_writeback_failed(
        &self,
        id: i64,
        error: &str,
        retry_at_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE writeback_queue SET locked_until_ms = NULL, next_attempt_at_ms = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(retry_at_ms)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks an item that will never succeed as done, keeping its last error.
    pub async fn mark_writeback_dead(&self, id: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE writeback_queue SET locked_until_ms = NULL, done_at_ms = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .bind(format!("gave up: {error}"))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Write-backs not yet done, and the creation time of the oldest of them.
    pub async fn writeback_backlog(&self) -> Result<(i64, Option<i64>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS depth, MIN(created_at_ms) AS oldest FROM writeback_queue
             WHERE done_at_ms IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("depth")?, row.try_get("oldest")?))
    }

    /// Deletes write-backs done before `before_ms`; returns how many.
    pub async fn prune_writebacks(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM writeback_queue WHERE done_at_ms IS NOT NULL AND done_at_ms < $1",
        )
        .bind(before_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
