//! Where acknowledged work waits while the database is unreachable, and how
//! long applied work is remembered.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::{Env, SettingsError};

#[derive(Clone, Debug)]
pub struct WriteBehindSettings {
    /// `WARMLINE_SPILL_DIR`: the local spill journal.
    pub spill_dir: PathBuf,
    /// `WARMLINE_IDEMPOTENCY_RETENTION_HOURS`: how long applied events are
    /// remembered so a provider's late retry is still recognised.
    pub idempotency_retention: Duration,
}

impl WriteBehindSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let hours = env.count_or("WARMLINE_IDEMPOTENCY_RETENTION_HOURS", 7 * 24, 1)?;
        Ok(WriteBehindSettings {
            spill_dir: env.get_or("WARMLINE_SPILL_DIR", "warmline-spill").into(),
            idempotency_retention: Duration::from_secs(u64::from(hours) * 3600),
        })
    }
}
