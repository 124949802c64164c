//! Admin sessions, shared by every replica: the hash of a browser's session
//! token, its role and CSRF token, and when it was made and last used.

use sqlx::Row;

use super::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    pub token_hash: String,
    pub role: String,
    pub csrf: String,
    pub created_at_ms: i64,
    pub last_seen_ms: i64,
}

impl Store {
    pub async fn create_admin_session(&self, s: &AdminSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, role, csrf, created_at_ms, last_seen_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.token_hash)
        .bind(&s.role)
        .bind(&s.csrf)
        .bind(s.created_at_ms)
        .bind(s.last_seen_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn admin_session(&self, token_hash: &str) -> Result<Option<AdminSession>> {
        let row = sqlx::query(
            "SELECT token_hash, role, csrf, created_at_ms, last_seen_ms
             FROM admin_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(AdminSession {
                token_hash: r.try_get("token_hash")?,
                role: r.try_get("role")?,
                csrf: r.try_get("csrf")?,
                created_at_ms: r.try_get("created_at_ms")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
            })
        })
        .transpose()
    }

    pub async fn touch_admin_session(&self, token_hash: &str, at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE admin_sessions SET last_seen_ms = $1 WHERE token_hash = $2")
            .bind(at_ms)
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_admin_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets sessions idle since `idle_before` or made before
    /// `created_before`; returns how many.
    pub async fn prune_admin_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM admin_sessions WHERE last_seen_ms < $1 OR created_at_ms < $2")
                .bind(idle_before)
                .bind(created_before)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }
}
