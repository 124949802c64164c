//! Small helpers every layer may use and that belong to none of them: the
//! clock, the circuit breaker, constant-time comparison, URL redaction and
//! the supervision of background loops, errors with their causes.
//!
//! Nothing here knows the domain, a provider, an upstream or the database;
//! `support` depends on no other module of warmline.

pub mod attribution;
pub mod breaker;
pub mod clock;
pub mod env;
pub mod json;
pub mod latency;
pub mod redact;
pub mod supervise;
pub mod window;

pub use breaker::{Breaker, BreakerState};
pub use clock::now_ms;
pub use env::{Env, SettingsError};
pub use latency::{LatencyStats, RecentLatency};
pub use redact::{constant_time_eq, redact_url};
pub use supervise::supervise;
pub use window::{Admission, QuotaStatus, RateLimit, RateLimiter, SharedWindow};

/// An error and every cause under it, on one line: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
