//! Builds each tenant's adapters from its configuration, sharing one HTTP
//! client (pool, breaker, retry budget) per upstream and base URL across
//! tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;

use super::calcom::CalcomCalendar;
use super::ghl::{Ghl, GhlCalendar, GhlCrm};
use super::http::{ClientSettings, LastFailure, UpstreamClient};
use super::mem0::Mem0Memory;
use super::zep::ZepMemory;
use super::{Calendar, Crm, Memory, Service};
use crate::support::{
    BreakerState, Env, LatencyStats, QuotaStatus, RateLimit, RateLimiter, SettingsError,
    SharedWindow,
};
use crate::tenants::{CalendarConfig, CrmConfig, MemoryConfig, Tenant, TenantConfig};

pub const GHL_BASE_URL: &str = "https://services.leadconnectorhq.com";
pub const ZEP_BASE_URL: &str = "https://api.getzep.com";
pub const MEM0_BASE_URL: &str = "https://api.mem0.ai";
pub const CALCOM_BASE_URL: &str = "https://api.cal.com";

/// Each adapter kind's official API host, from the defaults above: where
/// the admin pages may always point an adapter.
pub fn official_hosts() -> Vec<(&'static str, String)> {
    [
        ("gohighlevel", GHL_BASE_URL),
        ("zep", ZEP_BASE_URL),
        ("mem0", MEM0_BASE_URL),
        ("calcom", CALCOM_BASE_URL),
    ]
    .into_iter()
    .filter_map(|(kind, base)| {
        let host = url::Url::parse(base).ok()?.host_str()?.to_owned();
        Some((kind, host))
    })
    .collect()
}

/// Per-upstream client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    pub gohighlevel: ClientSettings,
    pub zep: ClientSettings,
    pub mem0: ClientSettings,
    pub calcom: ClientSettings,
    /// GoHighLevel's quota per location (100 requests per 10 s), counted
    /// across replicas through Redis when there is one.
    pub gohighlevel_rate: RateLimit,
}

/// GoHighLevel's published burst limit per location.
pub const GHL_RATE_LIMIT: RateLimit = RateLimit {
    limit: 100,
    window: Duration::from_secs(10),
};

impl Default for UpstreamSettings {
    fn default() -> Self {
        let memory = ClientSettings {
            // Memory services take 150 ms to 6 s; past 3 s the cache's
            // fail-safe is the better answer.
            timeout: Duration::from_millis(3_000),
            ..ClientSettings::default()
        };
        UpstreamSettings {
            gohighlevel: ClientSettings::default(),
            zep: memory.clone(),
            mem0: memory,
            calcom: ClientSettings::default(),
            gohighlevel_rate: GHL_RATE_LIMIT,
        }
    }
}

impl UpstreamSettings {
    pub const KINDS: [&'static str; 4] = ["gohighlevel", "zep", "mem0", "calcom"];

    pub fn for_kind_mut(&mut self, kind: &str) -> Option<&mut ClientSettings> {
        match kind {
            "gohighlevel" => Some(&mut self.gohighlevel),
            "zep" => Some(&mut self.zep),
            "mem0" => Some(&mut self.mem0),
            "calcom" => Some(&mut self.calcom),
            _ => None,
        }
    }

    /// Defaults, then `WARMLINE_UPSTREAM_{KIND}_TIMEOUT_MS` per upstream and
    /// `WARMLINE_UPSTREAM_BREAKER_FAILURES` / `_BREAKER_OPEN_MS` for all, and
    /// GoHighLevel's quota per location: `WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_LIMIT`
    /// requests (0: none) per `WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_WINDOW_MS`.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let mut out = UpstreamSettings::default();
        let failures = env.count_or("WARMLINE_UPSTREAM_BREAKER_FAILURES", 5, 1)?;
        let open_for = env.millis_or("WARMLINE_UPSTREAM_BREAKER_OPEN_MS", 10_000)?;
        for kind in Self::KINDS {
            let var = format!("WARMLINE_UPSTREAM_{}_TIMEOUT_MS", kind.to_uppercase());
            let slot = out.for_kind_mut(kind).expect("known kind");
            slot.timeout = env.millis_or(&var, slot.timeout.as_millis() as u64)?;
            slot.breaker_failures = failures;
            slot.breaker_open_for = open_for;
        }
        out.gohighlevel_rate = RateLimit {
            limit: env.count_or(
                "WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_LIMIT",
                GHL_RATE_LIMIT.limit,
                0,
            )?,
            window: env.millis_or(
                "WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_WINDOW_MS",
                GHL_RATE_LIMIT.window.as_millis() as u64,
            )?,
        };
        if out.gohighlevel_rate.window.is_zero() {
            return Err(SettingsError::new(
                "WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_WINDOW_MS",
                "`0`: expected at least 1 ms",
            ));
        }
        Ok(out)
    }

    fn for_kind(&self, kind: &str) -> ClientSettings {
        match kind {
            "zep" => self.zep.clone(),
            "mem0" => self.mem0.clone(),
            "calcom" => self.calcom.clone(),
            _ => self.gohighlevel.clone(),
        }
    }
}

/// One tenant's adapters. A capability the tenant did not configure is `None`.
pub struct TenantUpstreams {
    pub crm: Option<Arc<dyn Crm>>,
    pub memory: Option<Arc<dyn Memory>>,
    pub calendar: Option<Arc<dyn Calendar>>,
    pub services: Vec<Service>,
}

/// What the admin's upstream table shows of one client.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamStatus {
    pub upstream: &'static str,
    pub base_url: String,
    pub breaker: BreakerState,
    pub last_failure: Option<LastFailure>,
    /// Recent p50 / p95 and error ratio by operation.
    pub operations: Vec<LatencyStats>,
}

pub struct Upstreams {
    settings: UpstreamSettings,
    clients: Mutex<HashMap<(&'static str, String), Arc<UpstreamClient>>>,
    /// Built adapters by tenant id, with the tenant's `updated_at_ms`.
    built: Mutex<HashMap<String, (i64, Arc<TenantUpstreams>)>>,
    /// GoHighLevel's quota, keyed by location.
    ghl_limiter: Arc<RateLimiter>,
}

fn base_url(configured: &Option<String>, default: &str, what: &str) -> Result<Url, String> {
    let raw = configured.as_deref().unwrap_or(default);
    Url::parse(raw).map_err(|e| format!("{what} base_url `{raw}`: {e}"))
}

impl Upstreams {
    /// Rate limits counted by this process alone.
    pub fn new(settings: UpstreamSettings) -> Self {
        Self::with_shared_limits(settings, None)
    }

    /// Rate limits counted in `shared` (Redis), so that replicas together
    /// stay within a quota; each counts alone while `shared` fails.
    pub fn with_shared_limits(
        settings: UpstreamSettings,
        shared: Option<Arc<dyn SharedWindow>>,
    ) -> Self {
        for counter in ["shared", "local"] {
            metrics::counter!("warmline_upstream_throttled_total", "upstream" => "gohighlevel", "counter" => counter)
                .increment(0);
        }
        Upstreams {
            ghl_limiter: Arc::new(RateLimiter::new(settings.gohighlevel_rate, shared)),
            settings,
            clients: Mutex::new(HashMap::new()),
            built: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, kind: &'static str, base: &Url) -> Arc<UpstreamClient> {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind, base.to_string()))
            .or_insert_with(|| Arc::new(UpstreamClient::new(kind, self.settings.for_kind(kind))))
            .clone()
    }

    /// The tenant's adapters, built once per version of its configuration.
    pub fn for_tenant(&self, tenant: &Tenant) -> Result<Arc<TenantUpstreams>, String> {
        let key = tenant.id.to_string();
        if let Some((version, built)) = self
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && *version == tenant.updated_at_ms
        {
            return Ok(built.clone());
        }
        let built = Arc::new(
            self.build(&tenant.config)
                .map_err(|e| format!("tenant {}: {e}", tenant.id))?,
        );
        self.built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (tenant.updated_at_ms, built.clone()));
        Ok(built)
    }

    fn build(&self, config: &TenantConfig) -> Result<TenantUpstreams, String> {
        let crm: Option<Arc<dyn Crm>> = match &config.crm {
            None => None,
            Some(CrmConfig::Gohighlevel {
                location_id,
                base_url: b,
                credential,
            }) => {
                let base = base_url(b, GHL_BASE_URL, "crm")?;
                let token = credential.resolve("crm")?;
                let client = self.client("gohighlevel", &base);
                Some(Arc::new(GhlCrm(Ghl::new(
                    client,
                    base,
                    token,
                    location_id.clone(),
                    self.ghl_limiter.clone(),
                ))))
            }
        };
        let memory: Option<Arc<dyn Memory>> = match &config.memory {
            None => None,
            Some(MemoryConfig::Zep {
                base_url: b,
                credential,
            }) => {
                let base = base_url(b, ZEP_BASE_URL, "memory")?;
                let client = self.client("zep", &base);
                Some(Arc::new(ZepMemory::new(
                    client,
                    base,
                    credential.resolve("memory")?,
                )))
            }
            Some(MemoryConfig::Mem0 {
                base_url: b,
                credential,
            }) => {
                let base = base_url(b, MEM0_BASE_URL, "memory")?;
                let client = self.client("mem0", &base);
                Some(Arc::new(Mem0Memory::new(
                    client,
                    base,
                    credential.resolve("memory")?,
                )))
            }
        };
        let calendar: Option<Arc<dyn Calendar>> = match &config.calendar {
            None => None,
            Some(CalendarConfig::Gohighlevel {
                location_id,
                base_url: b,
                credential,
            }) => {
                let base = base_url(b, GHL_BASE_URL, "calendar")?;
                let token = credential.resolve("calendar")?;
                let client = self.client("gohighlevel", &base);
                Some(Arc::new(GhlCalendar(Ghl::new(
                    client,
                    base,
                    token,
                    location_id.clone(),
                    self.ghl_limiter.clone(),
                ))))
            }
            Some(CalendarConfig::Calcom {
                base_url: b,
                credential,
            }) => {
                let base = base_url(b, CALCOM_BASE_URL, "calendar")?;
                let client = self.client("calcom", &base);
                Some(Arc::new(CalcomCalendar::new(
                    client,
                    base,
                    credential.resolve("calendar")?,
                )))
            }
        };
        config.validate()?;
        Ok(TenantUpstreams {
            crm,
            memory,
            calendar,
            services: config
                .services
                .iter()
                .map(|s| Service {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    duration_minutes: s.duration_minutes,
                    calendar_ref: s.calendar_ref(),
                })
                .collect(),
        })
    }

    /// GoHighLevel's quota per location and what it kept back, for the admin.
    pub fn gohighlevel_quota(&self) -> QuotaStatus {
        self.ghl_limiter.status()
    }

    /// Every client in use, for the admin and `/metrics`.
    pub fn status(&self) -> Vec<UpstreamStatus> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<UpstreamStatus> = clients
            .iter()
            .map(|((kind, base), c)| UpstreamStatus {
                upstream: kind,
                base_url: base.clone(),
                breaker: c.breaker_state(),
                last_failure: c.last_failure(),
                operations: c.operations(),
            })
            .collect();
        out.sort_by(|a, b| (a.upstream, &a.base_url).cmp(&(b.upstream, &b.base_url)));
        out
    }
}
