//! The keys several modules must agree on, built in one place. Every key but
//! a session's starts with the tenant id, so a tenant flush finds them.

use crate::domain::{CallId, PhoneNumber, Provider, TenantId};

/// A caller at a tenant: the `contact`, `memory` and `context` namespaces.
pub fn caller(tenant: &TenantId, caller: &PhoneNumber) -> String {
    format!("{tenant}:{}", caller.as_str())
}

/// A call's session in the `call` namespace. Unlike the other keys it does
/// not start with the tenant: a tool call may arrive knowing only the call
/// id, and a tenant flush must not drop live calls.
pub fn session(provider: Provider, call_id: &CallId) -> String {
    format!("{provider}:{call_id}")
}

/// Every `slots` entry of one service of a tenant.
pub fn slots_prefix(tenant: &TenantId, service_id: &str) -> String {
    format!("{tenant}:{service_id}:")
}
