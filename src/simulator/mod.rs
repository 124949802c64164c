//! `warmline simulate`: an HTTP server speaking the upstreams' real wire
//! formats (GoHighLevel, Zep v3 generation, mem0 v3, Cal.com v2) with their
//! auth and version-header checks, seeded with coherent demo data.
//!
//! It is what tests, the demo and benchmarks talk to, since the real APIs
//! cannot be reached. Each endpoint has knobs — latency (fixed + jitter),
//! error rate, timeout rate, down — settable at start and at runtime under
//! `/_sim/`, which also reports call counts and the requests received so
//! tests can count and inspect upstream calls.

mod control;
mod data;

// The simulated SaaS APIs, one file each as in `src/upstreams/`, plus what
// they share. A rejection there is the response itself, carried in `Err` so
// checks can use `?`; its size does not matter off warmline's hot path.
#[allow(clippy::result_large_err)]
mod calcom;
#[allow(clippy::result_large_err)]
mod common;
#[allow(clippy::result_large_err)]
mod ghl;
#[allow(clippy::result_large_err)]
mod mem0;
#[allow(clippy::result_large_err)]
mod zep;

pub use data::{DEMO_CALLERS, SimData, demo_tenant_config};

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};

/// Every endpoint the simulator serves, as named in knobs and call counts.
pub mod endpoints {
    pub const GHL_FIND_CONTACT: &str = "ghl.contacts.search_duplicate";
    pub const GHL_UPSERT_CONTACT: &str = "ghl.contacts.upsert";
    pub const GHL_FREE_SLOTS: &str = "ghl.calendars.free_slots";
    pub const GHL_BOOK: &str = "ghl.calendars.appointments";
    pub const ZEP_CREATE_USER: &str = "zep.users.create";
    pub const ZEP_CREATE_THREAD: &str = "zep.threads.create";
    pub const ZEP_ADD_MESSAGES: &str = "zep.threads.messages";
    pub const ZEP_CONTEXT: &str = "zep.threads.context";
    pub const MEM0_SEARCH: &str = "mem0.memories.search";
    pub const MEM0_ADD: &str = "mem0.memories.add";
    pub const CALCOM_SLOTS: &str = "calcom.slots";
    pub const CALCOM_BOOK: &str = "calcom.bookings";

    pub const ALL: [&str; 12] = [
        GHL_FIND_CONTACT,
        GHL_UPSERT_CONTACT,
        GHL_FREE_SLOTS,
        GHL_BOOK,
        ZEP_CREATE_USER,
        ZEP_CREATE_THREAD,
        ZEP_ADD_MESSAGES,
        ZEP_CONTEXT,
        MEM0_SEARCH,
        MEM0_ADD,
        CALCOM_SLOTS,
        CALCOM_BOOK,
    ];
}

/// How one endpoint misbehaves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knob {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Fraction of requests answered with `error_status` (default 500).
    pub error_rate: f64,
    pub error_status: Option<u16>,
    /// Fraction of requests that hang for a minute (the client times out).
    pub timeout_rate: f64,
    /// Every request answered 503.
    pub down: bool,
}

impl Knob {
    pub fn latency(ms: u64) -> Self {
        Knob {
            latency_ms: ms,
            ..Knob::default()
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{name}` must be between 0 and 1"));
            }
        }
        if let Some(s) = self.error_status
            && !(400..=599).contains(&s)
        {
            return Err("`error_status` must be a 4xx or 5xx status".into());
        }
        Ok(())
    }
}

/// One request as the simulator received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub endpoint: String,
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Lower-case header names.
    pub headers: BTreeMap<String, String>,
    pub body: Option<serde_json::Value>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub addr: SocketAddr,
    /// Knobs by endpoint name; `*` applies to every endpoint without its own.
    pub knobs: HashMap<String, Knob>,
    /// GoHighLevel's burst limit per location and 10 s (the real one is 100).
    pub ghl_burst_limit: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            addr: "127.0.0.1:0".parse().expect("literal address"),
            knobs: HashMap::new(),
            ghl_burst_limit: 100,
        }
    }
}

impl SimConfig {
    /// The latencies teams measured in the field: contact 200 ms, free
    /// slots 140 ms, memory 150 ms.
    pub fn field_latencies() -> HashMap<String, Knob> {
        use endpoints::*;
        [
            (GHL_FIND_CONTACT, 200),
            (GHL_UPSERT_CONTACT, 200),
            (GHL_FREE_SLOTS, 140),
            (GHL_BOOK, 250),
            (ZEP_CONTEXT, 150),
            (ZEP_ADD_MESSAGES, 150),
            (MEM0_SEARCH, 150),
            (MEM0_ADD, 150),
            (CALCOM_SLOTS, 140),
            (CALCOM_BOOK, 250),
        ]
        .into_iter()
        .map(|(e, ms)| {
            (
                e.to_owned(),
                Knob {
                    latency_ms: ms,
                    jitter_ms: ms / 10,
                    ..Knob::default()
                },
            )
        })
        .collect()
    }
}

/// The simulator's shared state.
pub struct SimState {
    pub data: Mutex<SimData>,
    knobs: RwLock<HashMap<String, Knob>>,
    calls: Mutex<BTreeMap<String, u64>>,
    requests: Mutex<Vec<RecordedRequest>>,
    ghl_burst_limit: u32,
    /// Per location: request times (epoch ms) in the current burst window.
    ghl_window: Mutex<HashMap<String, Vec<i64>>>,
    /// Per endpoint: requests inside their simulated latency now, and the
    /// most there have been at once since the last reset.
    held: Mutex<HashMap<String, (usize, usize)>>,
}

/// Requests kept for inspection; older ones are dropped.
const MAX_RECORDED: usize = 10_000;

impl SimState {
    fn knob(&self, endpoint: &str) -> Knob {
        let knobs = self.knobs.read().unwrap_or_else(|p| p.into_inner());
        knobs
            .get(endpoint)
            .or_else(|| knobs.get("*"))
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_knob(&self, endpoint: &str, knob: Knob) -> Result<(), String> {
        if endpoint != "*" && !endpoints::ALL.contains(&endpoint) {
            return Err(format!(
                "unknown endpoint `{endpoint}`; expected `*` or one of {}",
                endpoints::ALL.join(", ")
            ));
        }
        knob.validate()?;
        self.knobs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_owned(), knob);
        Ok(())
    }

    pub fn calls(&self, endpoint: &str) -> u64 {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    pub fn all_calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn requests(&self, endpoint: Option<&str>) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| endpoint.is_none_or(|e| r.endpoint == e))
            .cloned()
            .collect()
    }

    /// The most requests to `endpoint` that were inside their simulated
    /// latency at once: how many calls a client had in flight together.
    pub fn most_held_at_once(&self, endpoint: &str) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(endpoint).map_or(0, |(_, most)| *most)
    }

    /// Counts one more request of `endpoint` held until the guard drops.
    fn holding<'a>(&'a self, endpoint: &str) -> Held<'a> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (now, most) = held.entry(endpoint.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        Held {
            state: self,
            endpoint: endpoint.to_owned(),
        }
    }

    /// Forgets counts and recorded requests (not data or knobs).
    pub fn reset(&self) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clear();
        for (now, most) in self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
        {
            *most = *now;
        }
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Counts and records a request, then applies its endpoint's knob:
    /// `Err` is the response to send instead of the real one.
    #[allow(clippy::result_large_err)]
    async fn enter(
        &self,
        endpoint: &str,
        req: &HttpRequest,
        body: &[u8],
    ) -> Result<(), HttpResponse> {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint.to_owned())
            .or_default() += 1;
        let recorded = RecordedRequest {
            endpoint: endpoint.to_owned(),
            method: req.method().to_string(),
            path: req.path().to_owned(),
            query: url::form_urlencoded::parse(req.query_string().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: if body.is_empty() {
                None
            } else {
                serde_json::from_slice(body).ok()
            },
        };
        {
            let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            if requests.len() >= MAX_RECORDED {
                requests.remove(0);
            }
            requests.push(recorded);
        }

        let knob = self.knob(endpoint);
        if knob.down {
            return Err(HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "message": "service unavailable (simulated outage)" })));
        }
        let delay = knob.latency_ms
            + if knob.jitter_ms > 0 {
                fastrand::u64(0..=knob.jitter_ms)
            } else {
                0
            };
        if delay > 0 {
            let _held = self.holding(endpoint);
            hold(Duration::from_millis(delay)).await;
        }
        if knob.timeout_rate > 0.0 && fastrand::f64() < knob.timeout_rate {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return Err(HttpResponse::GatewayTimeout().finish());
        }
        if knob.error_rate > 0.0 && fastrand::f64() < knob.error_rate {
            let status = knob.error_status.unwrap_or(500);
            let mut resp = HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
            );
            if status == 429 {
                resp.insert_header(("retry-after", "1"));
            }
            return Err(resp.json(serde_json::json!({ "message": "simulated error" })));
        }
        Ok(())
    }

    /// GoHighLevel's burst limit: `Some(remaining)` when the request fits.
    fn ghl_burst(&self, location: &str) -> Option<u32> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut windows = self.ghl_window.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(location.to_owned()).or_default();
        w.retain(|t| now - t < 10_000);
        if w.len() as u32 >= self.ghl_burst_limit {
            return None;
        }
        w.push(now);
        Some(self.ghl_burst_limit - w.len() as u32)
    }
}

/// A running simulator.
pub struct Simulator {
    pub url: String,
    pub port: u16,
    pub state: Arc<SimState>,
    handle: ServerHandle,
}

impl Simulator {
    /// Binds and serves in a background task of the current runtime.
    pub fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let (sim, server) = Simulator::bind(config)?;
        tokio::spawn(server);
        Ok(sim)
    }

    /// Binds; the returned server serves when awaited (`warmline simulate`).
    pub fn bind(config: SimConfig) -> std::io::Result<(Simulator, Server)> {
        let listener = TcpListener::bind(config.addr)?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(SimState {
            data: Mutex::new(SimData::seeded()),
            knobs: RwLock::new(HashMap::new()),
            calls: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(Vec::new()),
            ghl_burst_limit: config.ghl_burst_limit.max(1),
            ghl_window: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
        });
        for (endpoint, knob) in config.knobs {
            state
                .set_knob(&endpoint, knob)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::default().limit(1024 * 1024))
                .configure(ghl::configure)
                .configure(zep::configure)
                .configure(mem0::configure)
                .configure(calcom::configure)
                .configure(control::configure)
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let sim = Simulator {
            url: format!("http://{}:{port}", config.addr.ip()),
            port,
            state,
            handle,
        };
        Ok((sim, server))
    }

    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// One request inside its simulated latency; counted out when dropped
/// (answered, or abandoned by its client).
struct Held<'a> {
    state: &'a SimState,
    endpoint: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self.state.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((now, _)) = held.get_mut(&self.endpoint) {
            *now = now.saturating_sub(1);
        }
    }
}

/// Waits `delay`, to within tens of microseconds. Tokio's timer rounds a
/// deadline up to the next millisecond: a 200 ms upstream answered in
/// 200.5–201.5 ms, and benchmarks measured that as warmline's own time.
/// The last two milliseconds are slept on a blocking thread.
async fn hold(delay: Duration) {
    const PRECISE: Duration = Duration::from_millis(2);
    let until = std::time::Instant::now() + delay;
    if delay > PRECISE {
        tokio::time::sleep_until((until - PRECISE).into()).await;
    }
    let left = until.saturating_duration_since(std::time::Instant::now());
    if !left.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    }
}

/// Parses `ENDPOINT=latency_ms:200,jitter_ms:20,error_rate:0.1,down` as given
/// to `warmline simulate --knob`.
pub fn parse_knob_arg(arg: &str) -> Result<(String, Knob), String> {
    let (endpoint, spec) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}`: expected ENDPOINT=field:value,…"))?;
    let mut knob = Knob::default();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once(':').unwrap_or((part, "true"));
        let bad = || format!("`{part}`: bad value");
        match k {
            "latency_ms" => knob.latency_ms = v.parse().map_err(|_| bad())?,
            "jitter_ms" => knob.jitter_ms = v.parse().map_err(|_| bad())?,
            "error_rate" => knob.error_rate = v.parse().map_err(|_| bad())?,
            "error_status" => knob.error_status = Some(v.parse().map_err(|_| bad())?),
            "timeout_rate" => knob.timeout_rate = v.parse().map_err(|_| bad())?,
            "down" => knob.down = v.parse().map_err(|_| bad())?,
            other => return Err(format!("unknown knob field `{other}`")),
        }
    }
    knob.validate()?;
    Ok((endpoint.to_owned(), knob))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_simulated_latency_is_never_cut_short() {
        // The part slept on a blocking thread included, with and without a
        // part on Tokio's timer.
        for delay in [Duration::from_micros(700), Duration::from_millis(7)] {
            let started = std::time::Instant::now();
            hold(delay).await;
            assert!(started.elapsed() >= delay, "{delay:?}");
        }
    }

    #[test]
    fn knob_arguments_parse_and_are_validated() {
        let (e, k) =
            parse_knob_arg("zep.threads.context=latency_ms:2000,error_rate:0.5,down").unwrap();
        assert_eq!(e, "zep.threads.context");
        assert_eq!((k.latency_ms, k.error_rate, k.down), (2000, 0.5, true));
        assert!(parse_knob_arg("zep.threads.context=error_rate:2").is_err());
        assert!(parse_knob_arg("nonsense").is_err());
        assert!(parse_knob_arg("x=colour:blue").is_err());
    }
}
