//! Write-back: what the upstreams should learn after a call ended. Created
//! by the write-behind in the call's transaction, queued in the store, run
//! by the write-back worker — one typed value between the three, never a
//! JSON payload built by one and parsed back by another.

use serde::{Deserialize, Serialize};

use super::{PhoneNumber, TenantId, TranscriptLine};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WriteBack {
    /// Record the call against the caller's CRM contact.
    #[serde(rename = "crm_writeback")]
    Crm {
        tenant_id: TenantId,
        caller: PhoneNumber,
    },
    /// Add the conversation to the caller's memory.
    #[serde(rename = "memory_writeback")]
    Memory {
        tenant_id: TenantId,
        caller: PhoneNumber,
        messages: Vec<TranscriptLine>,
    },
}

impl WriteBack {
    /// The queue's `kind` column and the `kind` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteBack::Crm { .. } => "crm_writeback",
            WriteBack::Memory { .. } => "memory_writeback",
        }
    }

    pub fn tenant_id(&self) -> &TenantId {
        match self {
            WriteBack::Crm { tenant_id, .. } | WriteBack::Memory { tenant_id, .. } => tenant_id,
        }
    }

    pub fn caller(&self) -> &PhoneNumber {
        match self {
            WriteBack::Crm { caller, .. } | WriteBack::Memory { caller, .. } => caller,
        }
    }
}
