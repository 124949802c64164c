//! What is cached under a key, tier by tier, with its windows: the admin's
//! key lookup. Reads without counting a lookup and without loading.

use serde::Serialize;
use serde::de::IgnoredAny;

use super::entry::Entry;
use super::{Cache, Namespace, now_ms};

/// An entry's timestamps (epoch ms) and whether it holds a value or a
/// cached "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stamps {
    pub loaded_at_ms: i64,
    pub fresh_until_ms: i64,
    pub stale_until_ms: i64,
    pub fail_safe_until_ms: i64,
    pub found: bool,
}

impl<V> From<&Entry<V>> for Stamps {
    fn from(e: &Entry<V>) -> Self {
        Stamps {
            loaded_at_ms: e.version,
            fresh_until_ms: e.fresh_until(),
            stale_until_ms: e.stale_until(),
            fail_safe_until_ms: e.fail_safe_until(),
            found: e.value.is_some(),
        }
    }
}

impl Stamps {
    /// Where the entry is at `now`: `fresh`, `stale` (served while one
    /// refresh runs), `fail-safe` (served only if a load fails) or `expired`.
    pub fn window(&self, now: i64) -> &'static str {
        if now < self.fresh_until_ms {
            "fresh"
        } else if now < self.stale_until_ms {
            "stale"
        } else if now < self.fail_safe_until_ms {
            "fail-safe"
        } else {
            "expired"
        }
    }
}

/// One key's entries.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub namespace: Namespace,
    pub key: String,
    pub l1: Option<Stamps>,
    /// `Err` when Redis could not be read; `Ok(None)` when it holds nothing
    /// (or is not configured: see `l2_configured`).
    pub l2: Result<Option<Stamps>, String>,
    pub l2_configured: bool,
}

impl Cache {
    /// What this replica's L1 and Redis hold under `key` of `ns`.
    pub async fn inspect(&self, ns: Namespace, key: &str) -> KeyView {
        let l1 = {
            let registry = self.core.registry.read().unwrap_or_else(|p| p.into_inner());
            registry.get(&ns).and_then(|r| r.local.stamps(key))
        };
        let l2 = match &self.core.l2 {
            None => Ok(None),
            Some(l2) => match l2.get(ns, key).await {
                Ok(None) => Ok(None),
                Ok(Some(raw)) => Entry::<IgnoredAny>::from_json(&raw)
                    .map(|e| Some(Stamps::from(&e)))
                    .map_err(|e| format!("unreadable entry: {e}")),
                Err(e) => Err(e.to_string()),
            },
        };
        KeyView {
            namespace: ns,
            key: key.to_owned(),
            l1: l1.filter(|s| s.window(now_ms()) != "expired"),
            l2,
            l2_configured: self.core.l2.is_some(),
        }
    }
}
