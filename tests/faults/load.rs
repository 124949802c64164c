//! The load: a few concurrent clients playing Retell calls against one
//! warmline address — an inbound call, sometimes a tool call before the call
//! starts (Retell may send one that early) or during it, then `call_started`
//! and `call_ended` — signed as Retell signs them. Every answer is tallied;
//! every event (and every fallback record a tool answer vouches for) that
//! got a 200 is remembered as acknowledged, to be found in the database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use warmline::webhooks::signature::sign_retell;

use crate::helpers::voice::{RETELL_KEY, now_ms};

/// The called number every call goes to (the demo tenant's, or the
/// scenario's own tenant on the same number).
pub const CALLED: &str = "+15550100000";

/// What a scenario asks of its clients.
#[derive(Clone)]
pub struct LoadOpts {
    /// Clients playing whole calls (inbound, tools, events).
    pub callers: usize,
    /// Clients sending only `call_started`/`call_ended`, as fast as answered.
    pub event_blasters: usize,
    /// Size of each `call_ended` transcript.
    pub transcript_bytes: usize,
    /// The tool called during a call.
    pub mid_call_tool: &'static str,
    /// How long a client waits for one answer.
    pub request_timeout: Duration,
}

impl Default for LoadOpts {
    fn default() -> Self {
        LoadOpts {
            callers: 3,
            event_blasters: 1,
            transcript_bytes: 600,
            mid_call_tool: "list_services",
            request_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Started,
    Ended,
}

/// An event warmline answered 200 `received`.
#[derive(Debug, Clone)]
pub struct Acked {
    pub call_id: String,
    pub phase: Phase,
    /// The `end_timestamp` sent with `call_ended`.
    pub ended_at_ms: Option<i64>,
    pub durable_in: String,
}

#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    pub ok: u64,
    /// Failures by request and kind: `event http_503`, `inbound connect`, ….
    pub failed: BTreeMap<String, u64>,
    pub acked: Vec<Acked>,
    /// Calls whose pre-start tool call was answered 200: the fallback it
    /// took was recorded durably before that answer.
    pub tool_fallbacks: Vec<String>,
    /// Inbound answers with every context part present, and with some
    /// missing or stale (served by the cache's fail-safe).
    pub inbound_full: u64,
    pub inbound_degraded: u64,
    /// Answers seen by request kind and outcome, e.g. `tool 200`.
    pub by_kind: BTreeMap<String, u64>,
}

impl Tally {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn acked_in(&self, durable_in: &str) -> usize {
        self.acked
            .iter()
            .filter(|a| a.durable_in == durable_in)
            .count()
    }

    /// `12 (connect 10, http_503 2)`.
    pub fn failed_summary(&self) -> String {
        if self.failed.is_empty() {
            return "0".into();
        }
        let kinds: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!("{} ({})", self.failed_total(), kinds.join(", "))
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    pub tally: Arc<Mutex<Tally>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the clients against `base`; call ids start with `tag`.
    pub fn start(base: &str, tag: &str, opts: LoadOpts) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut tasks = Vec::new();
        let clients = opts.callers + opts.event_blasters;
        for n in 0..clients {
            let client = Client {
                http: reqwest::Client::builder()
                    .timeout(opts.request_timeout)
                    .build()
                    .expect("client"),
                base: base.to_owned(),
                tally: tally.clone(),
                opts: opts.clone(),
                whole_calls: n < opts.callers,
            };
            let (stop, tag) = (stop.clone(), format!("{tag}_{n}"));
            tasks.push(tokio::spawn(async move {
                let mut call = 0u32;
                while !stop.load(Ordering::Acquire) {
                    client.play(&tag, n, call).await;
                    call += 1;
                }
            }));
        }
        Load { stop, tally, tasks }
    }

    pub fn acked(&self) -> usize {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acked
            .len()
    }

    /// Events acknowledged as durable in `durable_in` so far.
    pub fn acked_in(&self, durable_in: &str) -> usize {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acked_in(durable_in)
    }

    pub fn sent(&self) -> u64 {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).sent
    }

    /// Waits (up to `within`) until `cond` holds for the tally; fails
    /// naming `what` if it never does.
    pub async fn wait_for(&self, what: &str, within: Duration, cond: impl Fn(&Tally) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if cond(&self.tally.lock().unwrap_or_else(|p| p.into_inner())) {
                return;
            }
            if Instant::now() > deadline {
                let seen = {
                    let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
                    format!(
                        "sent {}, 2xx {}, acked {}, failed {}",
                        t.sent,
                        t.ok,
                        t.acked.len(),
                        t.failed_summary()
                    )
                };
                panic!("load: never {what} within {within:?} ({seen})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `more` events beyond those acknowledged now are.
    pub async fn wait_more_acked(&self, more: usize, within: Duration) {
        let target = self.acked() + more;
        self.wait_for(&format!("{target} events acknowledged"), within, |t| {
            t.acked.len() >= target
        })
        .await;
    }

    /// Waits until `more` requests beyond those answered or failed now
    /// have been.
    pub async fn wait_more_sent(&self, more: u64, within: Duration) {
        let target = self.sent() + more;
        self.wait_for(&format!("{target} requests done"), within, |t| {
            t.sent >= target
        })
        .await;
    }

    /// Stops the clients once their current call is played out.
    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            task.await.expect("a load client panicked");
        }
        Arc::try_unwrap(self.tally)
            .expect("no client left")
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    tally: Arc<Mutex<Tally>>,
    opts: LoadOpts,
    whole_calls: bool,
}

/// What came back for one request.
enum Answer {
    Ok(Value),
    Failed,
}

impl Client {
    /// One call from a caller of its own (so no fallback finds another call).
    async fn play(&self, tag: &str, client: usize, n: u32) {
        let call_id = format!("call_{tag}_{n}");
        let caller = format!("+1555{}{:06}", 3 + client % 7, n % 1_000_000);
        let call = json!({
            "call_id": call_id, "agent_id": "agent_faults", "call_type": "phone_call",
            "direction": "inbound", "from_number": caller, "to_number": CALLED,
            "call_status": "ongoing", "start_timestamp": now_ms() - 60_000,
        });
        if self.whole_calls {
            let inbound = json!({ "event": "call_inbound",
                "call_inbound": { "from_number": caller, "to_number": CALLED } });
            if let Answer::Ok(body) = self.post("inbound", "/retell/inbound", &inbound).await {
                let meta = &body["call_inbound"]["metadata"];
                let degraded = ["context_missing", "context_stale"]
                    .iter()
                    .any(|k| meta[*k].as_array().is_some_and(|a| !a.is_empty()));
                let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
                if degraded || meta.is_null() {
                    t.inbound_degraded += 1;
                } else {
                    t.inbound_full += 1;
                }
            }
            if n.is_multiple_of(3) {
                // Before `call_started`: the session is not cached yet, so
                // the fallback cascade runs and records the step it took.
                let tool = json!({ "name": "list_services", "call": call, "args": {} });
                if let Answer::Ok(body) = self
                    .post("tool", "/retell/functions/list_services", &tool)
                    .await
                    && body["result"].as_str().is_some_and(|r| !r.is_empty())
                {
                    self.tally
                        .lock()
                        .unwrap()
                        .tool_fallbacks
                        .push(call_id.clone());
                }
            }
        }
        self.event(
            &call_id,
            Phase::Started,
            json!({ "event": "call_started", "call": call }),
        )
        .await;
        if self.whole_calls && n % 3 == 1 {
            let name = self.opts.mid_call_tool;
            let tool = json!({ "name": name, "call": call,
                "args": { "date": "tomorrow", "service": "Teeth cleaning" } });
            self.post("tool", &format!("/retell/functions/{name}"), &tool)
                .await;
        }
        let end = now_ms();
        let mut ended = call.clone();
        ended["call_status"] = json!("ended");
        ended["end_timestamp"] = json!(end);
        ended["duration_ms"] = json!(60_000);
        ended["disconnection_reason"] = json!("user_hangup");
        ended["transcript"] = json!(transcript(&call_id, self.opts.transcript_bytes));
        ended["transcript_object"] = json!([
            { "role": "agent", "content": "Thanks for calling, how can I help?" },
            { "role": "user", "content": "I'd like a cleaning next week." },
        ]);
        let body = json!({ "event": "call_ended", "call": ended });
        self.event(&call_id, Phase::Ended, body).await;
    }

    async fn event(&self, call_id: &str, phase: Phase, body: Value) {
        let ended_at_ms = body["call"]["end_timestamp"].as_i64();
        if let Answer::Ok(answer) = self.post("event", "/retell/events", &body).await {
            if answer["received"] != json!(true) {
                panic!("a 200 that is not an acknowledgement: {answer}");
            }
            let durable_in = answer["durable_in"].as_str().unwrap_or("?").to_owned();
            self.tally
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .acked
                .push(Acked {
                    call_id: call_id.to_owned(),
                    phase,
                    ended_at_ms,
                    durable_in,
                });
        }
    }

    /// Posts `body` signed; tallies the outcome under `kind`.
    async fn post(&self, kind: &str, path: &str, body: &Value) -> Answer {
        let body = body.to_string();
        let signature = sign_retell(body.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
        let sent = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("x-retell-signature", signature)
            .body(body)
            .send()
            .await;
        let outcome = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(bytes) if (200..300).contains(&status) => {
                        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                    }
                    Ok(_) => Err(format!("http_{status}")),
                    Err(e) => Err(transport_kind(&e)),
                }
            }
            Err(e) => Err(transport_kind(&e)),
        };
        let failed = {
            let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            t.sent += 1;
            match &outcome {
                Ok(_) => {
                    t.ok += 1;
                    *t.by_kind.entry(format!("{kind} 2xx")).or_default() += 1;
                    None
                }
                Err(why) => {
                    *t.by_kind.entry(format!("{kind} {why}")).or_default() += 1;
                    *t.failed.entry(format!("{kind} {why}")).or_default() += 1;
                    Some(why.starts_with("http_"))
                }
            }
        };
        if failed == Some(false) {
            // Nothing listens (a killed process): do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match outcome {
            Ok(value) => Answer::Ok(value),
            Err(_) => Answer::Failed,
        }
    }
}

fn transport_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body_cut".into()
    } else {
        "reset".into()
    }
}

/// A transcript of about `bytes` bytes, different for every call.
fn transcript(call_id: &str, bytes: usize) -> String {
    let mut text = format!("Agent: Thanks for calling ({call_id}), how can I help?\n");
    while text.len() < bytes {
        text.push_str("User: I'd like a cleaning next week, mornings if possible.\n");
    }
    text
}
