//! Last-known-good cache values, persisted for the fail-safe namespaces.

use sqlx::Row;

use super::{Result, Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastGood {
    /// The serialised cache value (JSON).
    pub value: String,
    pub version: i64,
    pub stored_at_ms: i64,
}

impl Store {
    /// Keeps the newer of the stored and the given version.
    pub async fn put_last_good(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        version: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO cache_last_good (namespace, cache_key, value, version, stored_at_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (namespace, cache_key) DO UPDATE SET
                value = excluded.value, version = excluded.version, stored_at_ms = excluded.stored_at_ms
             WHERE cache_last_good.version <= excluded.version",
        )
        .bind(namespace)
        .bind(key)
        .bind(value)
        .bind(version)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn last_good(&self, namespace: &str, key: &str) -> Result<Option<LastGood>> {
        let row = sqlx::query(
            "SELECT value, version, stored_at_ms FROM cache_last_good WHERE namespace = $1 AND cache_key = $2",
        )
        .bind(namespace)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(LastGood {
                value: r.try_get("value")?,
                version: r.try_get("version")?,
                stored_at_ms: r.try_get("stored_at_ms")?,
            })
        })
        .transpose()
    }

    /// Deletes every key of `namespace` that starts with `prefix` (an empty
    /// prefix: the whole namespace; a whole key: that key and any it
    /// prefixes). Returns the deleted keys.
    pub async fn delete_last_good(&self, namespace: &str, prefix: &str) -> Result<Vec<String>> {
        // Prefix match without LIKE, whose wildcards `%` and `_` appear in keys.
        let rows = sqlx::query(
            "DELETE FROM cache_last_good
             WHERE namespace = $1 AND SUBSTR(cache_key, 1, LENGTH($2)) = $2
             RETURNING cache_key",
        )
        .bind(namespace)
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("cache_key")?))
            .collect()
    }
}
