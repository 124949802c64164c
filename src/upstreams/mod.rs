//! The SaaS systems warmline reads caller context from and writes back to.
//!
//! One trait per capability — [`Crm`], [`Memory`], [`Calendar`] — each
//! implemented for the real APIs: GoHighLevel (contacts and calendars), Zep
//! (the v3 SDK generation: threads under `/api/v2`), mem0 (platform API v3)
//! and Cal.com (API v2). Nothing outside this module knows a wire format.
//! Every call goes through [`http::UpstreamClient`]: one pooled client per
//! upstream, a per-call timeout, at most one retry of an idempotent read
//! within a retry budget, a circuit breaker, rate-limit headers respected,
//! and a span and `warmline_upstream_*` metrics per operation.

pub mod calcom;
mod call;
pub mod ghl;
pub mod http;
pub mod mem0;
pub mod registry;
pub mod zep;

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::PhoneNumber;

pub use registry::{TenantUpstreams, UpstreamSettings, Upstreams};

/// Why an upstream call produced no answer. Every variant says which
/// upstream and operation failed, so logs and the admin can name them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("{upstream} {operation} timed out after {after:?}")]
    Timeout {
        upstream: &'static str,
        operation: &'static str,
        after: Duration,
    },
    #[error("{upstream} {operation} unreachable: {detail}")]
    Unreachable {
        upstream: &'static str,
        operation: &'static str,
        detail: String,
    },
    #[error("{upstream} {operation} rate-limited; retry in {retry_after:?}")]
    RateLimited {
        upstream: &'static str,
        operation: &'static str,
        retry_after: Duration,
    },
    #[error("{upstream} {operation} answered {status}: {detail}")]
    Status {
        upstream: &'static str,
        operation: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{upstream} circuit breaker is open; {operation} not attempted")]
    BreakerOpen {
        upstream: &'static str,
        operation: &'static str,
    },
    #[error("{upstream} {operation} answered something unreadable: {detail}")]
    Decode {
        upstream: &'static str,
        operation: &'static str,
        detail: String,
    },
    /// The calendar refused a booking because the slot is no longer free
    /// (or never was): a sentence for the caller, not an outage.
    #[error("{upstream} refused the booking: {detail}")]
    SlotTaken {
        upstream: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl UpstreamError {
    /// The `kind` label of `warmline_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Unreachable { .. } => "unreachable",
            UpstreamError::RateLimited { .. } => "rate_limited",
            UpstreamError::Status { status, .. } if *status >= 500 => "server_error",
            UpstreamError::Status { .. } => "client_error",
            UpstreamError::BreakerOpen { .. } => "breaker_open",
            UpstreamError::Decode { .. } => "decode",
            UpstreamError::SlotTaken { .. } => "slot_taken",
            UpstreamError::Invalid(_) => "invalid",
        }
    }
}

pub type UpstreamResult<T> = Result<T, UpstreamError>;

/// A calendar's refusal of a booking request (400, 409, 422: the slot is
/// taken, outside the calendar's hours, or otherwise not bookable) becomes
/// [`UpstreamError::SlotTaken`]; anything else stays what it was.
fn booking_refused(e: UpstreamError) -> UpstreamError {
    match e {
        UpstreamError::Status {
            upstream,
            status: 400 | 409 | 422,
            detail,
            ..
        } => UpstreamError::SlotTaken { upstream, detail },
        other => other,
    }
}

/// A CRM contact, as much as warmline needs of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<PhoneNumber>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Contact {
    /// "First Last", whichever parts exist.
    pub fn display_name(&self) -> Option<String> {
        let parts: Vec<&str> = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// What warmline knows of a caller at a tenant, as the `contact` cache
/// namespace keeps it: the CRM's record and warmline's own call counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactInfo {
    pub crm: Option<Contact>,
    pub total_calls: i64,
    pub last_call_at_ms: Option<i64>,
}

/// What to write to the CRM about a caller; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ContactUpsert {
    pub phone: Option<PhoneNumber>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// GoHighLevel overwrites all tags with this list: pass the full set.
    pub tags: Option<Vec<String>>,
    pub source: Option<String>,
}

/// Who a memory belongs to: one caller of one tenant.
#[derive(Debug, Clone)]
pub struct MemorySubject {
    /// Stable per caller and tenant, e.g. `acme-dental-14155550123`.
    pub user_id: String,
    pub first_name: Option<String>,
}

impl MemorySubject {
    /// The memory identity of `caller` at `tenant`: `acme-dental-14155550123`.
    pub fn for_caller(
        tenant: &crate::domain::TenantId,
        caller: &PhoneNumber,
        first_name: Option<String>,
    ) -> Self {
        MemorySubject {
            user_id: format!(
                "{}-{}",
                tenant.as_str(),
                caller.as_str().trim_start_matches('+')
            ),
            first_name,
        }
    }
}

/// What the memory service knows of a caller, ready for an agent prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryContext {
    pub summary: String,
    #[serde(default)]
    pub facts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationMessage {
    /// `user` (the caller) or `assistant` (the agent).
    pub role: String,
    pub content: String,
}

/// A bookable service of a tenant and where it is booked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub duration_minutes: u32,
    /// GoHighLevel calendar id or Cal.com event type id, as text.
    pub calendar_ref: String,
}

/// A free appointment start, in the tenant's time zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub start: DateTime<FixedOffset>,
}

#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub service: Service,
    pub start: DateTime<FixedOffset>,
    pub contact_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: PhoneNumber,
    pub time_zone: Tz,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    pub id: String,
    pub start: DateTime<FixedOffset>,
    pub end: Option<DateTime<FixedOffset>>,
    pub status: String,
}

#[async_trait::async_trait]
pub trait Crm: Send + Sync {
    async fn find_contact_by_phone(&self, phone: &PhoneNumber) -> UpstreamResult<Option<Contact>>;
    /// Creates or updates by the CRM's duplicate rules (phone/email); also
    /// how warmline "touches" a contact after a call.
    async fn upsert_contact(&self, contact: &ContactUpsert) -> UpstreamResult<Contact>;
}

#[async_trait::async_trait]
pub trait Memory: Send + Sync {
    /// `None`: the memory service knows nothing of this caller yet.
    async fn get_context(&self, subject: &MemorySubject) -> UpstreamResult<Option<MemoryContext>>;
    async fn add_messages(
        &self,
        subject: &MemorySubject,
        messages: &[ConversationMessage],
    ) -> UpstreamResult<()>;
}

#[async_trait::async_trait]
pub trait Calendar: Send + Sync {
    /// Free starts in `[from, to)` for `service`, in `time_zone`.
    async fn free_slots(
        &self,
        service: &Service,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        time_zone: Tz,
    ) -> UpstreamResult<Vec<Slot>>;
    async fn book(&self, request: &BookingRequest) -> UpstreamResult<Booking>;
}
