//! The types every inner module speaks, built once at the edge.
//!
//! Parse, don't validate: a [`PhoneNumber`] is E.164 by construction, a
//! [`TenantId`] or [`CallId`] is non-empty and bounded. Code below the edge takes
//! these types and never re-checks a raw string.

mod events;
mod ids;
mod phone;
mod provider;

pub use events::{CallEvent, CallPhase, InboundCall, ToolCall, TranscriptLine};
pub use ids::{CallId, IdError, TenantId};
pub use phone::{PhoneError, PhoneNumber, mask_phone, mask_phones_in};
pub use provider::Provider;
