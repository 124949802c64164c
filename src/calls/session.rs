//! A call's session: its tenant, caller and context, cached by call id (see
//! `cache::keys::session`) when the call starts, so that tools never query
//! the database mid-call.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::CallerContext;
use crate::domain::{CallId, PhoneNumber, Provider};
use crate::tenants::Tenant;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallSession {
    pub provider: Provider,
    pub call_id: Option<CallId>,
    /// Shared with the tenant directory's cache: a session costs no copy.
    pub tenant: Arc<Tenant>,
    pub caller: Option<PhoneNumber>,
    /// Shared with the context cache, with its rendered answers.
    pub context: Arc<CallerContext>,
}
