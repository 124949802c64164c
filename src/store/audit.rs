//! The admin audit log: who flushed, warmed or edited what, and when.

use sqlx::Row;

use super::{Result, Store, now_ms};

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub target: serde_json::Value,
    pub outcome: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: serde_json::Value,
    pub outcome: String,
}

impl Store {
    pub async fn record_audit(&self, e: &NewAuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_audit (at_ms, actor, action, target, outcome) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now_ms())
        .bind(&e.actor)
        .bind(&e.action)
        .bind(e.target.to_string())
        .bind(&e.outcome)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, target, outcome FROM admin_audit
             ORDER BY at_ms DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let target: String = r.try_get("target")?;
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: serde_json::from_str(&target)
                        .unwrap_or(serde_json::Value::String(target)),
                    outcome: r.try_get("outcome")?,
                })
            })
            .collect()
    }
}
