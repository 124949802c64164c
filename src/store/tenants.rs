//! Tenants: one business per called number.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Conn, Result, Store, StoreError, bool_to_i64, now_ms};
use crate::domain::{PhoneNumber, TenantId};

/// A tenant to create or replace. Its meaning (a typed time zone and
/// configuration) is `tenants/`' business; the store keeps the text.
pub struct NewTenant {
    pub id: TenantId,
    pub phone_number: PhoneNumber,
    pub name: String,
    /// An IANA name.
    pub time_zone: String,
    /// The tenant's configuration as JSON text (it holds credentials: never
    /// logged).
    pub config: String,
    pub is_demo: bool,
}

/// Shows everything but the configuration, which holds credentials.
impl std::fmt::Debug for NewTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTenant")
            .field("id", &self.id)
            .field("phone_number", &self.phone_number)
            .field("name", &self.name)
            .field("time_zone", &self.time_zone)
            .field("is_demo", &self.is_demo)
            .finish_non_exhaustive()
    }
}

/// A tenant as stored; `tenants::Tenant::from_row` types it.
pub struct TenantRow {
    pub id: TenantId,
    pub phone_number: PhoneNumber,
    pub name: String,
    pub time_zone: String,
    pub config: String,
    pub is_demo: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const COLUMNS: &str =
    "id, phone_number, name, time_zone, config, is_demo, created_at_ms, updated_at_ms";

fn from_row(row: &AnyRow) -> Result<TenantRow> {
    let id: String = row.try_get("id")?;
    let phone: String = row.try_get("phone_number")?;
    Ok(TenantRow {
        id: TenantId::parse(&id).map_err(|e| StoreError::corrupt("tenant id", e))?,
        phone_number: PhoneNumber::parse(&phone)
            .map_err(|e| StoreError::corrupt("tenant phone number", e))?,
        name: row.try_get("name")?,
        config: row.try_get("config")?,
        time_zone: row.try_get("time_zone")?,
        is_demo: row.try_get::<i64, _>("is_demo")? != 0,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl Store {
    /// Creates the tenant or replaces everything but its creation time.
    pub async fn upsert_tenant(&self, t: &NewTenant) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO tenants (id, phone_number, name, time_zone, config, is_demo, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (id) DO UPDATE SET
                phone_number = excluded.phone_number, name = excluded.name,
                time_zone = excluded.time_zone, config = excluded.config,
                is_demo = excluded.is_demo, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(t.id.as_str())
        .bind(t.phone_number.as_str())
        .bind(&t.name)
        .bind(&t.time_zone)
        .bind(&t.config)
        .bind(bool_to_i64(t.is_demo))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Creates the tenant unless its id or its number is already taken;
    /// returns whether it was created. One statement, so two operators
    /// creating the same tenant at once cannot overwrite each other.
    pub async fn create_tenant(&self, t: &NewTenant) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO tenants (id, phone_number, name, time_zone, config, is_demo, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT DO NOTHING",
        )
        .bind(t.id.as_str())
        .bind(t.phone_number.as_str())
        .bind(&t.name)
        .bind(&t.time_zone)
        .bind(&t.config)
        .bind(bool_to_i64(t.is_demo))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces the tenant as it was at `version` (its `updated_at_ms` when
    /// the editor read it); returns whether it did. `false` when it changed
    /// meanwhile, is gone, or its new number was taken meanwhile: an edit
    /// never overwrites one it did not see.
    pub async fn update_tenant(&self, t: &NewTenant, version: i64) -> Result<bool> {
        // Strictly later than the version replaced, so every edit is seen
        // as a change even within one millisecond.
        let now = now_ms().max(version + 1);
        let done = sqlx::query(
            "UPDATE tenants SET phone_number = $2, name = $3, time_zone = $4, config = $5,
                updated_at_ms = $6
             WHERE id = $1 AND updated_at_ms = $7",
        )
        .bind(t.id.as_str())
        .bind(t.phone_number.as_str())
        .bind(&t.name)
        .bind(&t.time_zone)
        .bind(&t.config)
        .bind(now)
        .bind(version)
        .execute(self.pool())
        .await;
        match done {
            Ok(done) => Ok(done.rows_affected() > 0),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRow>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM tenants ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    pub async fn tenant_by_number(&self, number: &PhoneNumber) -> Result<Option<TenantRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tenants WHERE phone_number = $1"
        ))
        .bind(number.as_str())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Returns whether a tenant was deleted.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// The id and time zone of the tenant answering `number`, inside a
/// transaction: an event acknowledged while its tenant could not be looked
/// up gets its tenant when it is applied.
pub async fn tenant_for_number_in(
    conn: &mut Conn,
    number: &PhoneNumber,
) -> Result<Option<(TenantId, String)>> {
    let row = sqlx::query("SELECT id, time_zone FROM tenants WHERE phone_number = $1")
        .bind(number.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        let id: String = r.try_get("id")?;
        let tz: String = r.try_get("time_zone")?;
        let id = TenantId::parse(&id).map_err(|e| StoreError::corrupt("tenant id", e))?;
        Ok((id, tz))
    })
    .transpose()
}
