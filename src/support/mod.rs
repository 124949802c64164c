//! Small helpers every layer may use and that belong to none of them: the
//! clock, the circuit breaker, constant-time comparison, URL redaction and
//! the supervision of background loops.
//!
//! Nothing here knows the domain, a provider, an upstream or the database;
//! `support` depends on no other module of warmline.

pub mod breaker;
pub mod clock;
pub mod env;
pub mod redact;
pub mod supervise;

pub use breaker::{Breaker, BreakerState};
pub use clock::now_ms;
pub use env::{Env, SettingsError};
pub use redact::{constant_time_eq, redact_url};
pub use supervise::supervise;
