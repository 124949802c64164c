//! The write-behind outbox: acknowledged work waiting to be applied.
//!
//! Rows are claimed with a lease rather than a held lock, so a crashed worker's
//! items come back when its lease runs out. A claim is one UPDATE whose outer
//! WHERE re-checks the lease (Postgres re-evaluates it on the newest row
//! version when two replicas race, so exactly one wins each row); on Postgres
//! the candidate rows are also picked `FOR UPDATE SKIP LOCKED` so concurrent
//! replicas take disjoint batches instead of colliding on the same ones.
//! SQLite serialises writers, so it needs neither.
//! Done rows are kept for a retention window so a provider's retry of an
//! already-applied event is still recognised and ignored.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Conn, Result, Store, now_ms};

#[derive(Debug, Clone)]
pub struct NewOutboxItem {
    pub kind: String,
    /// E.g. `retell:call_123:call_ended`; a second enqueue with the same key is
    /// ignored.
    pub idempotency_key: String,
    pub payload: serde_json::Value,
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: String,
    pub idempotency_key: String,
    pub payload: String,
    pub attempts: i64,
    pub trace_id: Option<String>,
    pub created_at_ms: i64,
}

fn from_row(row: &AnyRow) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        idempotency_key: row.try_get("idempotency_key")?,
        payload: row.try_get("payload")?,
        attempts: row.try_get("attempts")?,
        trace_id: row.try_get("trace_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// Returns whether the item is new (false: the key was seen before).
pub async fn enqueue_in(conn: &mut Conn, item: &NewOutboxItem) -> Result<bool> {
    let now = now_ms();
    let done = sqlx::query(
        "INSERT INTO outbox (kind, idempotency_key, payload, next_attempt_at_ms, trace_id, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $4)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&item.kind)
    .bind(&item.idempotency_key)
    .bind(item.payload.to_string())
    .bind(now)
    .bind(item.trace_id.as_deref())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the work named `key` has been applied, in the caller's
/// transaction; false when it had been already (a provider's retry). The row
/// is born done, so no worker ever claims it: it is the idempotency ledger.
pub async fn record_applied_in(
    conn: &mut Conn,
    kind: &str,
    key: &str,
    trace_id: Option<&str>,
) -> Result<bool> {
    let now = now_ms();
    let done = sqlx::query(
        "INSERT INTO outbox (kind, idempotency_key, payload, next_attempt_at_ms, trace_id, done_at_ms, created_at_ms)
         VALUES ($1, $2, '{}', $3, $4, $3, $3)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(kind)
    .bind(key)
    .bind(now)
    .bind(trace_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn mark_done_in(conn: &mut Conn, id: i64) -> Result<()> {
    sqlx::query("UPDATE outbox SET done_at_ms = $2, locked_until_ms = NULL WHERE id = $1")
        .bind(id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    pub async fn enqueue(&self, item: &NewOutboxItem) -> Result<bool> {
        enqueue_in(&mut *self.conn().await?, item).await
    }

    /// Leases up to `limit` due items, oldest first, for `lease_ms`.
    pub async fn claim_outbox(&self, limit: u32, lease_ms: i64) -> Result<Vec<OutboxItem>> {
        let now = now_ms();
        let skip_locked = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET locked_until_ms = $2, attempts = attempts + 1
             WHERE id IN (
                SELECT id FROM outbox
                WHERE done_at_ms IS NULL AND next_attempt_at_ms <= $1
                  AND (locked_until_ms IS NULL OR locked_until_ms < $1)
                ORDER BY id LIMIT $3 {skip_locked})
               AND done_at_ms IS NULL
               AND (locked_until_ms IS NULL OR locked_until_ms < $1)
             RETURNING id, kind, idempotency_key, payload, attempts, trace_id, created_at_ms"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(now + lease_ms)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        let mut items: Vec<OutboxItem> = rows.iter().map(from_row).collect::<Result<_>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    pub async fn mark_outbox_done(&self, id: i64) -> Result<()> {
        mark_done_in(&mut *self.conn().await?, id).await
    }

    /// Releases the lease and schedules another attempt.
    pub async fn mark_outbox_failed(&self, id: i64, error: &str, retry_at_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET locked_until_ms = NULL, next_attempt_at_ms = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(retry_at_ms)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Items not yet applied, and the creation time of the oldest of them.
    pub async fn outbox_backlog(&self) -> Result<(i64, Option<i64>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS depth, MIN(created_at_ms) AS oldest FROM outbox WHERE done_at_ms IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("depth")?, row.try_get("oldest")?))
    }

    /// Marks an item that will never succeed as done, keeping its last error.
    pub async fn mark_outbox_dead(&self, id: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET locked_until_ms = NULL, done_at_ms = $2, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .bind(format!("gave up: {error}"))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes done items older than `before_ms`; returns how many.
    pub async fn prune_outbox(&self, before_ms: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM outbox WHERE done_at_ms IS NOT NULL AND done_at_ms < $1")
                .bind(before_ms)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }
}
