//! Contacts: what warmline remembers of a caller per tenant, including the
//! call statistics the agent is told (total calls, last call).

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Conn, Result, Store, StoreError, many, now_ms};
use crate::domain::{Direction, PhoneNumber, TenantId};

/// Fields learnt about a contact; `None` keeps what is stored.
#[derive(Debug, Clone)]
pub struct ContactUpdate {
    pub tenant_id: TenantId,
    pub phone_number: PhoneNumber,
    pub crm_contact_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContactRecord {
    pub tenant_id: TenantId,
    pub phone_number: PhoneNumber,
    pub crm_contact_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub total_calls: i64,
    /// Of `total_calls`, those the business placed.
    pub outbound_calls: i64,
    pub first_seen_at_ms: i64,
    pub last_call_at_ms: Option<i64>,
}

fn from_row(row: &AnyRow) -> Result<ContactRecord> {
    let tenant: String = row.try_get("tenant_id")?;
    let phone: String = row.try_get("phone_number")?;
    Ok(ContactRecord {
        tenant_id: TenantId::parse(&tenant).map_err(|e| StoreError::corrupt("tenant id", e))?,
        phone_number: PhoneNumber::parse(&phone)
            .map_err(|e| StoreError::corrupt("contact phone number", e))?,
        crm_contact_id: row.try_get("crm_contact_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        total_calls: row.try_get("total_calls")?,
        outbound_calls: row.try_get("outbound_calls")?,
        first_seen_at_ms: row.try_get("first_seen_at_ms")?,
        last_call_at_ms: row.try_get("last_call_at_ms")?,
    })
}

/// Upserts the learnt fields, keeping stored values where the update has none.
pub async fn upsert_contact_in(conn: &mut Conn, c: &ContactUpdate) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO contacts (tenant_id, phone_number, crm_contact_id, name, email, first_seen_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (tenant_id, phone_number) DO UPDATE SET
            crm_contact_id = COALESCE(excluded.crm_contact_id, contacts.crm_contact_id),
            name = COALESCE(excluded.name, contacts.name),
            email = COALESCE(excluded.email, contacts.email),
            updated_at_ms = excluded.updated_at_ms",
    )
    .bind(c.tenant_id.as_str())
    .bind(c.phone_number.as_str())
    .bind(c.crm_contact_id.as_deref())
    .bind(c.name.as_deref())
    .bind(c.email.as_deref())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one call for the contact, creating it when first seen. A single
/// atomic statement: concurrent calls never lose an increment, and the last
/// call time only moves forward even when events arrive out of order.
/// An outbound call counts among the contact's calls and its outbound ones.
pub async fn record_contact_call_in(
    conn: &mut Conn,
    tenant: &TenantId,
    phone: &PhoneNumber,
    at_ms: i64,
    direction: Direction,
) -> Result<()> {
    let calls = ContactCalls::one(at_ms, direction);
    record_contact_calls_in(conn, tenant, phone, &calls).await
}

/// Calls a caller made (or was placed) in one batch, counted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactCalls {
    pub calls: i64,
    pub outbound: i64,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
}

impl ContactCalls {
    pub fn one(at_ms: i64, direction: Direction) -> Self {
        ContactCalls {
            calls: 1,
            outbound: i64::from(direction == Direction::Outbound),
            first_at_ms: at_ms,
            last_at_ms: at_ms,
        }
    }

    pub fn add(&mut self, other: &ContactCalls) {
        self.calls += other.calls;
        self.outbound += other.outbound;
        self.first_at_ms = self.first_at_ms.min(other.first_at_ms);
        self.last_at_ms = self.last_at_ms.max(other.last_at_ms);
    }
}

pub async fn record_contact_calls_in(
    conn: &mut Conn,
    tenant: &TenantId,
    phone: &PhoneNumber,
    c: &ContactCalls,
) -> Result<()> {
    record_many_contact_calls_in(conn, &[(tenant, phone, c)]).await?;
    Ok(())
}

/// A caller's counts as a transaction left them: what the agent is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CallerCounts {
    pub total_calls: i64,
    pub last_call_at_ms: Option<i64>,
}

/// Each caller's counts after [`record_many_contact_calls_in`], by
/// (tenant id, phone number).
pub type CountsAfter = HashMap<(String, String), CallerCounts>;

/// Adds each caller's calls to their counts, in few statements, and
/// returns the counts as they now are (the rows stay locked until the
/// transaction ends: a later transaction's counts are higher). At most one
/// entry per caller.
pub async fn record_many_contact_calls_in(
    conn: &mut Conn,
    calls: &[(&TenantId, &PhoneNumber, &ContactCalls)],
) -> Result<CountsAfter> {
    let now = now_ms();
    let mut after = HashMap::with_capacity(calls.len());
    for chunk in many::chunks(calls) {
        let sql = format!(
            "INSERT INTO contacts (tenant_id, phone_number, total_calls, outbound_calls, first_seen_at_ms, last_call_at_ms, updated_at_ms)
             VALUES {}
             ON CONFLICT (tenant_id, phone_number) DO UPDATE SET
                total_calls = contacts.total_calls + excluded.total_calls,
                outbound_calls = contacts.outbound_calls + excluded.outbound_calls,
                last_call_at_ms = CASE
                    WHEN contacts.last_call_at_ms IS NULL OR contacts.last_call_at_ms < excluded.last_call_at_ms
                    THEN excluded.last_call_at_ms ELSE contacts.last_call_at_ms END,
                updated_at_ms = excluded.updated_at_ms
             RETURNING tenant_id, phone_number, total_calls, last_call_at_ms",
            many::values(chunk.len(), "(?, ?, ?, ?, ?, ?, ?)")
        );
        let mut q = sqlx::query(&sql);
        for (tenant, phone, c) in chunk {
            q = q
                .bind(tenant.as_str())
                .bind(phone.as_str())
                .bind(c.calls)
                .bind(c.outbound)
                .bind(c.first_at_ms)
                .bind(c.last_at_ms)
                .bind(now);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let counts = CallerCounts {
                total_calls: row.try_get("total_calls")?,
                last_call_at_ms: row.try_get("last_call_at_ms")?,
            };
            after.insert(
                (row.try_get("tenant_id")?, row.try_get("phone_number")?),
                counts,
            );
        }
    }
    Ok(after)
}

impl Store {
    pub async fn upsert_contact(&self, c: &ContactUpdate) -> Result<()> {
        upsert_contact_in(&mut *self.conn().await?, c).await
    }

    pub async fn record_contact_call(
        &self,
        tenant: &TenantId,
        phone: &PhoneNumber,
        at_ms: i64,
    ) -> Result<()> {
        record_contact_call_in(
            &mut *self.conn().await?,
            tenant,
            phone,
            at_ms,
            Direction::Inbound,
        )
        .await
    }

    pub async fn contact(
        &self,
        tenant: &TenantId,
        phone: &PhoneNumber,
    ) -> Result<Option<ContactRecord>> {
        sqlx::query(
            "SELECT tenant_id, phone_number, crm_contact_id, name, email, total_calls, outbound_calls,
                first_seen_at_ms, last_call_at_ms
             FROM contacts WHERE tenant_id = $1 AND phone_number = $2",
        )
        .bind(tenant.as_str())
        .bind(phone.as_str())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }
}
