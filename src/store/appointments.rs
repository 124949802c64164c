//! Appointments booked by warmline's agents, as the calendar confirmed them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Conn, Result, Store, StoreError, now_ms};
use crate::domain::{CallId, PhoneNumber, Provider, TenantId};

/// Serialisable: the write-behind carries it in its journal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewAppointment {
    /// The calendar's own id: booking the same appointment twice is a no-op.
    pub id: String,
    pub tenant_id: TenantId,
    pub provider: Option<Provider>,
    pub call_id: Option<CallId>,
    pub contact_phone: PhoneNumber,
    pub service: Option<String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AppointmentRecord {
    pub id: String,
    pub tenant_id: TenantId,
    pub call_id: Option<String>,
    pub contact_phone: PhoneNumber,
    pub service: Option<String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub status: String,
}

fn from_row(row: &AnyRow) -> Result<AppointmentRecord> {
    let tenant: String = row.try_get("tenant_id")?;
    let phone: String = row.try_get("contact_phone")?;
    Ok(AppointmentRecord {
        id: row.try_get("id")?,
        tenant_id: TenantId::parse(&tenant).map_err(|e| StoreError::corrupt("tenant id", e))?,
        call_id: row.try_get("call_id")?,
        contact_phone: PhoneNumber::parse(&phone)
            .map_err(|e| StoreError::corrupt("appointment phone", e))?,
        service: row.try_get("service")?,
        starts_at_ms: row.try_get("starts_at_ms")?,
        ends_at_ms: row.try_get("ends_at_ms")?,
        status: row.try_get("status")?,
    })
}

/// Returns whether the appointment is new (false when already recorded).
pub async fn insert_appointment_in(conn: &mut Conn, a: &NewAppointment) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO appointments (id, tenant_id, provider, call_id, contact_phone, service,
            starts_at_ms, ends_at_ms, status, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'booked', $9)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&a.id)
    .bind(a.tenant_id.as_str())
    .bind(a.provider.map(Provider::as_str))
    .bind(a.call_id.as_ref().map(CallId::as_str))
    .bind(a.contact_phone.as_str())
    .bind(a.service.as_deref())
    .bind(a.starts_at_ms)
    .bind(a.ends_at_ms)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    pub async fn insert_appointment(&self, a: &NewAppointment) -> Result<bool> {
        insert_appointment_in(&mut *self.conn().await?, a).await
    }

    /// A tenant's appointments starting in `[from_ms, to_ms)`, earliest first.
    pub async fn appointments(
        &self,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AppointmentRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, call_id, contact_phone, service, starts_at_ms, ends_at_ms, status
             FROM appointments WHERE tenant_id = $1 AND starts_at_ms >= $2 AND starts_at_ms < $3
             ORDER BY starts_at_ms",
        )
        .bind(tenant.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
