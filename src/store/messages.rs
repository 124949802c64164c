//! The conversation log of messaging bots: each message a bot appended
//! through `POST /api/v1/messages`, written behind like call events.

use sqlx::Row;

use super::{Conn, Result, Store, now_ms};
use crate::domain::{PhoneNumber, TenantId};

/// A message to store. Serialisable: the write-behind carries it in its
/// journal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewMessage {
    /// Unique per message: storing it twice is a no-op.
    pub key: String,
    pub tenant_id: TenantId,
    /// The customer.
    pub caller: PhoneNumber,
    /// The WhatsApp instance it came through, when named.
    pub instance: Option<String>,
    /// `user` (the customer) or `assistant` (the bot).
    pub role: String,
    pub text: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MessageRecord {
    pub instance: Option<String>,
    pub role: String,
    pub text: String,
    pub at_ms: i64,
}

/// Stores the message; `false` when its key was stored before.
pub async fn insert_message_in(conn: &mut Conn, m: &NewMessage) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO messages (message_key, tenant_id, caller, instance, role, text, at_ms, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (message_key) DO NOTHING",
    )
    .bind(&m.key)
    .bind(m.tenant_id.as_str())
    .bind(m.caller.as_str())
    .bind(m.instance.as_deref())
    .bind(&m.role)
    .bind(&m.text)
    .bind(m.at_ms)
    .bind(now_ms())
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

impl Store {
    /// A customer's messages at a tenant, oldest first, at most `limit`.
    pub async fn messages(
        &self,
        tenant: &TenantId,
        caller: &PhoneNumber,
        limit: u32,
    ) -> Result<Vec<MessageRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT instance, role, text, at_ms FROM messages
             WHERE tenant_id = $1 AND caller = $2 ORDER BY at_ms, id LIMIT {}",
            limit.clamp(1, 1000)
        ))
        .bind(tenant.as_str())
        .bind(caller.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageRecord {
                    instance: r.try_get("instance")?,
                    role: r.try_get("role")?,
                    text: r.try_get("text")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }
}
