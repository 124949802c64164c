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
    /// `WARMLINE_WRITEBEHIND_FLUSHERS`: batches applied at once, each in
    /// its own transaction. Unset: 4 on Postgres (a batch waits on round
    /// trips, not on the database's CPU), 1 on SQLite (one writer at a time).
    pub flushers: Option<u32>,
}

impl WriteBehindSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let hours = env.count_or("WARMLINE_IDEMPOTENCY_RETENTION_HOURS", 7 * 24, 1)?;
        Ok(WriteBehindSettings {
            spill_dir: env.get_or("WARMLINE_SPILL_DIR", "warmline-spill").into(),
            idempotency_retention: Duration::from_secs(u64::from(hours) * 3600),
            flushers: env.parse_with("WARMLINE_WRITEBEHIND_FLUSHERS", |v| {
                match v.parse::<u32>() {
                    Ok(n @ 1..=64) => Ok(n),
                    _ => Err("expected a whole number from 1 to 64".to_owned()),
                }
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn flushers(value: Option<&str>) -> Result<Option<u32>, SettingsError> {
        let vars: HashMap<String, String> = value
            .map(|v| ("WARMLINE_WRITEBEHIND_FLUSHERS".to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        WriteBehindSettings::from_env(&Env::new(&vars)).map(|s| s.flushers)
    }

    #[test]
    fn flushers_default_by_backend_and_are_bounded() {
        assert_eq!(flushers(None).unwrap(), None);
        assert_eq!(flushers(Some("8")).unwrap(), Some(8));
        for bad in ["0", "65", "four"] {
            let e = flushers(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("WARMLINE_WRITEBEHIND_FLUSHERS"), "{e}");
        }
    }
}
