//! One line in the admin audit log per action: who, what, on what, and how
//! it went. A failure to write it is logged, never silent: the action itself
//! already happened.

use crate::store::{NewAuditEntry, Store, StoreError};

pub async fn record(
    store: &Store,
    actor: &str,
    action: &str,
    target: serde_json::Value,
    outcome: impl Into<String>,
) {
    let entry = NewAuditEntry {
        actor: actor.into(),
        action: action.into(),
        target,
        outcome: outcome.into(),
    };
    if let Err(e) = store.record_audit(&entry).await {
        tracing::error!(error = %e, action, "could not write the admin audit log");
    }
}

/// One entry as the pages show it.
pub struct AuditRow {
    /// UTC, to the second.
    pub at: String,
    pub actor: String,
    pub action: String,
    /// The target as JSON, phone numbers masked.
    pub target: String,
    pub outcome: String,
}

/// The newest `n` entries whose action starts with `prefix` (`cache.`,
/// `tenant.`), looked for among the newest 500.
pub async fn recent(store: &Store, prefix: &str, n: usize) -> Result<Vec<AuditRow>, StoreError> {
    Ok(store
        .recent_audit(500)
        .await?
        .into_iter()
        .filter(|a| a.action.starts_with(prefix))
        .take(n)
        .map(|a| AuditRow {
            at: chrono::DateTime::from_timestamp_millis(a.at_ms)
                .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
            actor: a.actor,
            action: a.action,
            target: crate::domain::mask_phones_in(&a.target.to_string()),
            outcome: a.outcome,
        })
        .collect())
}
