//! What the write-behind reads of a stored call while applying a later
//! event: its direction (a booking or a fallback counts under its call's)
//! and its parties (for events that name neither).

use sqlx::Row;

use super::calls::opt_phone;
use super::{Conn, Result, StoreError};
use crate::domain::{CallId, Direction, PhoneNumber, Provider, TenantId};

/// The direction of a stored call; inbound when the call is unknown (yet).
/// What a booking or a fallback made during the call counts under.
pub async fn call_direction_in(
    conn: &mut Conn,
    provider: Provider,
    call_id: &CallId,
) -> Result<Direction> {
    let label: Option<Option<String>> =
        sqlx::query_scalar("SELECT direction FROM calls WHERE provider = $1 AND call_id = $2")
            .bind(provider.as_str())
            .bind(call_id.as_str())
            .fetch_optional(conn)
            .await?;
    Ok(Direction::of(label.flatten().as_deref()))
}

/// The tenant and the customer a stored call is logged under, for an event
/// that names neither (a Retell chat's events carry no numbers).
pub async fn call_parties_in(
    conn: &mut Conn,
    provider: Provider,
    call_id: &CallId,
) -> Result<(Option<TenantId>, Option<PhoneNumber>)> {
    let row = sqlx::query(
        "SELECT tenant_id, from_number FROM calls WHERE provider = $1 AND call_id = $2",
    )
    .bind(provider.as_str())
    .bind(call_id.as_str())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok((None, None));
    };
    let tenant: Option<String> = row.try_get("tenant_id")?;
    let tenant = tenant
        .map(|t| TenantId::parse(&t).map_err(|e| StoreError::corrupt("tenant id", e)))
        .transpose()?;
    Ok((tenant, opt_phone(&row, "from_number")?))
}
