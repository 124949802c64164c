//! The idempotency ledger: the key of every job the write-behind applied,
//! written in the same transaction as the job's effects. A provider's retry
//! of an applied event finds its key and changes nothing. Keys are kept for
//! a retention window (`WARMLINE_IDEMPOTENCY_RETENTION_HOURS`), then pruned.

use std::collections::HashSet;

use sqlx::Row;

use super::{Conn, Result, Store, many, now_ms};

/// Records that the work named `key` has been applied, in the caller's
/// transaction; false when it had been already (a retry).
pub async fn record_applied_in(
    conn: &mut Conn,
    kind: &str,
    key: &str,
    trace_id: Option<&str>,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO idempotency_ledger (idempotency_key, kind, trace_id, applied_at_ms)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(key)
    .bind(kind)
    .bind(trace_id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// [`record_applied_in`] for many jobs in as few statements as possible;
/// returns the keys recorded now (the others had been applied before).
/// `jobs`: (kind, key, trace id), keys distinct.
pub async fn record_applied_many_in(
    conn: &mut Conn,
    jobs: &[(&str, &str, Option<&str>)],
) -> Result<HashSet<String>> {
    let mut fresh = HashSet::with_capacity(jobs.len());
    let now = now_ms();
    for chunk in many::chunks(jobs) {
        let sql = format!(
            "INSERT INTO idempotency_ledger (idempotency_key, kind, trace_id, applied_at_ms)
             VALUES {}
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING idempotency_key",
            many::values(chunk.len(), "(?, ?, ?, ?)")
        );
        let mut q = sqlx::query(&sql);
        for (kind, key, trace) in chunk {
            q = q.bind(*key).bind(*kind).bind(*trace).bind(now);
        }
        for row in q.fetch_all(&mut *conn).await? {
            fresh.insert(row.try_get::<String, _>("idempotency_key")?);
        }
    }
    Ok(fresh)
}

impl Store {
    /// Forgets keys applied before `before_ms`; returns how many.
    pub async fn prune_ledger(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_ledger WHERE applied_at_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Whether the work named `key` was applied (and not yet pruned).
    pub async fn was_applied(&self, key: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM idempotency_ledger WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }
}
