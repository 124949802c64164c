//! The one timestamp format warmline stores and compares: milliseconds since
//! the Unix epoch, UTC.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
