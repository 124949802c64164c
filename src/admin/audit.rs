//! One line in the admin audit log per action: who, what, on what, and how
//! it went. A failure to write it is logged, never silent: the action itself
//! already happened.

use crate::store::{NewAuditEntry, Store};

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
