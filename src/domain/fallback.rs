//! The fallbacks warmline takes when it cannot answer the normal way, as one
//! list: each is counted in `warmline_fallback_activations_total{kind}`, and
//! every kind is exported at 0 from the start, so a dashboard shows 0 where
//! an operator needs to see it, not "No data".

/// A fallback taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// An inbound call to a number no tenant has.
    UnknownCalledNumber,
    /// A tool call's session was not cached: the call came from the database.
    CallFromDatabase,
    /// The call was unknown: the caller's most recent active call was used.
    CallFromRecentCaller,
    /// No call was found: the tenant of the called number answers.
    TenantDefault,
    /// Nothing resolved the tool call.
    CallUnresolved,
    /// Vapi asked for an assistant the tenant does not name.
    VapiNoAssistant,
    /// A tool call signed for one tenant named another tenant's call.
    CallOfAnotherTenant,
}

impl Fallback {
    pub const ALL: [Fallback; 7] = [
        Fallback::UnknownCalledNumber,
        Fallback::CallFromDatabase,
        Fallback::CallFromRecentCaller,
        Fallback::TenantDefault,
        Fallback::CallUnresolved,
        Fallback::VapiNoAssistant,
        Fallback::CallOfAnotherTenant,
    ];

    /// The `kind` label, also what the call log records.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::UnknownCalledNumber => "unknown_called_number",
            Fallback::CallFromDatabase => "call_from_database",
            Fallback::CallFromRecentCaller => "call_from_recent_caller",
            Fallback::TenantDefault => "tenant_default",
            Fallback::CallUnresolved => "call_unresolved",
            Fallback::VapiNoAssistant => "vapi_no_assistant",
            Fallback::CallOfAnotherTenant => "call_of_another_tenant",
        }
    }

    /// Counts one activation.
    pub fn count(self) {
        metrics::counter!("warmline_fallback_activations_total", "kind" => self.as_str())
            .increment(1);
    }
}
