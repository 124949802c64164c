//! The types every inner module speaks, built once at the edge.
//!
//! Parse, don't validate: a [`PhoneNumber`] is E.164 by construction, a
//! [`TenantId`] or [`CallId`] is non-empty and bounded, a [`ToolRequest`] is a
//! known tool with typed arguments (or says why not). Code below the edge
//! takes these types and never re-checks a raw string. `domain` depends on
//! no other module of warmline.

mod events;
mod fallback;
mod ids;
mod phone;
mod provider;
mod tools;
mod writeback;

pub use events::{
    CallDetails, CallEvent, CallPhase, Channel, Direction, InboundCall, TranscriptLine,
};
pub use fallback::Fallback;
pub use ids::{CallId, IdError, TenantId};
pub use phone::{PhoneError, PhoneNumber, mask_phone, mask_phones_in};
pub use provider::Provider;
pub use tools::{BookingArgs, DaySpec, Tool, ToolCall, ToolName, ToolRequest, parse_time};
pub use writeback::WriteBack;
