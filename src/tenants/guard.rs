//! Where a tenant's credentials may come from and go to — the rules that keep
//! a tenant's configuration from turning warmline into a courier of secrets.
//!
//! - A credential named by `token_env` is never one of warmline's own
//!   settings ([`is_reserved_variable`]): the database URL, Redis, the
//!   platforms' webhook secrets, `WARMLINE_*`… would otherwise be sent as a
//!   tenant's API key to whatever host its adapter points at. This holds for
//!   the admin pages, `warmline tenants import` and the adapters themselves.
//! - From the admin pages (a browser session, not the operator's shell) an
//!   adapter's `base_url` may only point at its kind's official API host, at
//!   a host the operator listed in `WARMLINE_ADMIN_UPSTREAM_HOSTS`, or stay
//!   as stored ([`check_base_urls`]). `warmline tenants import` is trusted
//!   and accepts any URL.
//!
//! This file knows no SaaS: the official hosts are `upstreams/`' defaults,
//! which the caller passes in ([`UpstreamHosts`]).

use super::{CalendarConfig, CrmConfig, MemoryConfig, TenantConfig};

/// Where the admin pages may point an adapter: each kind's official API
/// host (`upstreams::registry::official_hosts`) and the hosts the operator
/// listed in `WARMLINE_ADMIN_UPSTREAM_HOSTS`.
#[derive(Debug, Clone, Default)]
pub struct UpstreamHosts {
    /// `(kind, host)`, as `upstreams::registry::official_hosts` gives them.
    pub official: Vec<(&'static str, String)>,
    pub allowed: Vec<String>,
}

/// Variables warmline reads for itself, never a tenant's credential: its
/// database, its cache, the platforms' global webhook secrets and the
/// process's own environment.
pub const RESERVED_VARIABLES: [&str; 7] = [
    "DATABASE_URL",
    "REDIS_URL",
    "RETELL_API_KEY",
    "VAPI_SECRET",
    "ELEVENLABS_WEBHOOK_SECRET",
    "HOME",
    "PATH",
];

/// Prefixes of warmline's own settings (`WARMLINE_ADMIN_TOKEN`, …), of its
/// telemetry exporter's (`OTEL_EXPORTER_OTLP_HEADERS` may carry an API key)
/// and of the Rust runtime's.
pub const RESERVED_PREFIXES: [&str; 3] = ["WARMLINE_", "OTEL_", "RUST_"];

/// Whether `name` is one of warmline's own settings, which no tenant may
/// name as its credential.
pub fn is_reserved_variable(name: &str) -> bool {
    let name = name.trim();
    RESERVED_VARIABLES
        .iter()
        .any(|v| name.eq_ignore_ascii_case(v))
        || RESERVED_PREFIXES.iter().any(|p| {
            name.get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p))
        })
}

/// A host as `WARMLINE_ADMIN_UPSTREAM_HOSTS` and URLs are compared: lower
/// case, an IPv6 address without its brackets.
pub fn normal_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Each adapter as `(where, kind, base_url)`: `("memory", "zep", None)`.
fn adapters(c: &TenantConfig) -> Vec<(&'static str, &'static str, Option<&str>)> {
    let mut out = Vec::new();
    if let Some(crm) = &c.crm {
        let CrmConfig::Gohighlevel { base_url, .. } = crm;
        out.push(("crm", crm.kind(), base_url.as_deref()));
    }
    if let Some(memory) = &c.memory {
        let (MemoryConfig::Zep { base_url, .. } | MemoryConfig::Mem0 { base_url, .. }) = memory;
        out.push(("memory", memory.kind(), base_url.as_deref()));
    }
    if let Some(calendar) = &c.calendar {
        let (CalendarConfig::Gohighlevel { base_url, .. }
        | CalendarConfig::Calcom { base_url, .. }) = calendar;
        out.push(("calendar", calendar.kind(), base_url.as_deref()));
    }
    out
}

/// The admin pages' rule for adapters' `base_url`s: each is unset (the
/// official API), on its kind's official host over HTTPS, on a host of
/// `hosts.allowed` (`WARMLINE_ADMIN_UPSTREAM_HOSTS`), or the same kind and URL as
/// `stored` has there. The mistake names the field; the URL is not quoted
/// (it may carry a password).
pub fn check_base_urls(
    config: &TenantConfig,
    stored: Option<&TenantConfig>,
    hosts: &UpstreamHosts,
) -> Result<(), String> {
    let before = stored.map(adapters).unwrap_or_default();
    for (at, kind, base_url) in adapters(config) {
        let Some(raw) = base_url else { continue };
        let kept = before.iter().any(|(was_at, was_kind, was_url)| {
            (*was_at, *was_kind, *was_url) == (at, kind, Some(raw))
        });
        if kept {
            continue;
        }
        let official = hosts
            .official
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, h)| normal_host(h));
        let ok = url::Url::parse(raw.trim()).ok().is_some_and(|url| {
            let Some(host) = url.host_str().map(normal_host) else {
                return false;
            };
            let web = matches!(url.scheme(), "http" | "https");
            (url.scheme() == "https" && official.as_deref() == Some(host.as_str()))
                || (web && hosts.allowed.iter().any(|a| normal_host(a) == host))
        });
        if !ok {
            let official =
                official.map_or_else(String::new, |h| format!("{kind}'s own API (https://{h}), "));
            return Err(format!(
                "`{at}.base_url`: the adapter's credential is sent there, so from the admin pages \
                 it may only point at {official}a host listed in WARMLINE_ADMIN_UPSTREAM_HOSTS, or \
                 stay as stored. Leave it out for the official API, or set it with \
                 `warmline tenants import`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up official host: tests here know no SaaS.
    fn hosts(allowed: &[&str]) -> UpstreamHosts {
        UpstreamHosts {
            official: vec![("zep", "zep.official.test".into())],
            allowed: allowed.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    fn config(toml: &str) -> TenantConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn warmlines_own_settings_are_reserved_and_tenant_names_are_not() {
        for name in [
            "DATABASE_URL",
            "REDIS_URL",
            "RETELL_API_KEY",
            "VAPI_SECRET",
            "ELEVENLABS_WEBHOOK_SECRET",
            "HOME",
            "PATH",
            "WARMLINE_ADMIN_TOKEN",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "RUST_LOG",
        ] {
            assert!(is_reserved_variable(name), "{name}");
        }
        for name in [
            "ZEP_API_KEY",
            "ACME_GHL_TOKEN",
            "PATHOLOGY_KEY",
            "HOMELAB_TOKEN",
        ] {
            assert!(!is_reserved_variable(name), "{name}");
        }
    }

    #[test]
    fn a_base_url_must_be_official_listed_or_kept() {
        let zep = |url: &str| {
            config(&format!(
                "memory = {{ kind = \"zep\", base_url = \"{url}\", token_env = \"ZEP_KEY\" }}"
            ))
        };
        let listed = hosts(&["127.0.0.1"]);
        assert!(check_base_urls(&config("memory = { kind = \"zep\" }"), None, &hosts(&[])).is_ok());
        assert!(check_base_urls(&zep("https://ZEP.official.test/"), None, &hosts(&[])).is_ok());
        assert!(check_base_urls(&zep("http://127.0.0.1:4010"), None, &listed).is_ok());
        for bad in [
            "https://attacker.example",
            "http://zep.official.test",
            "https://other.official.test",
            "http://127.0.0.1:4010",
            "https://zep.official.test.attacker.example",
            "not a url",
        ] {
            let e = check_base_urls(&zep(bad), None, &hosts(&[])).unwrap_err();
            assert!(e.contains("`memory.base_url`"), "{bad}: {e}");
            assert!(!e.contains(bad), "{bad} quoted: {e}");
        }
        let stored = zep("http://sim.internal:4010");
        assert!(
            check_base_urls(&stored, Some(&stored), &hosts(&[])).is_ok(),
            "kept"
        );
        let mem0 = config(
            "memory = { kind = \"mem0\", base_url = \"http://sim.internal:4010\", token_env = \"K\" }",
        );
        assert!(
            check_base_urls(&mem0, Some(&stored), &hosts(&[])).is_err(),
            "kept only for the same kind"
        );
    }
}
