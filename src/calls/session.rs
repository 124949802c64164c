//! A call's session: its tenant, caller and context, cached by call id when
//! the call starts so that tools never query the database mid-call.

use serde::{Deserialize, Serialize};

use super::CallerContext;
use crate::domain::{CallId, PhoneNumber, Provider};
use crate::store::TenantRecord;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallSession {
    pub provider: Provider,
    pub call_id: Option<CallId>,
    pub tenant: TenantRecord,
    pub caller: Option<PhoneNumber>,
    pub context: CallerContext,
}

/// The `call` namespace key. Unlike the other namespaces it does not start
/// with the tenant: a tool call may arrive knowing only the call id.
pub fn session_key(provider: Provider, call_id: &CallId) -> String {
    format!("{provider}:{call_id}")
}
