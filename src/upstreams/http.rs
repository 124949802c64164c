//! The HTTP client every adapter calls through: pooled connections, a
//! per-call timeout, at most one retry of an idempotent read (within a retry
//! budget), a circuit breaker, respect for rate-limit headers, and a span and
//! metrics for every call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::{UpstreamError, UpstreamResult};
use crate::domain::mask_phones_in;
use crate::support::{Breaker, BreakerState, now_ms};

/// How an upstream is called; one per upstream kind, overridable by
/// `WARMLINE_UPSTREAM_<KIND>_TIMEOUT_MS` and the breaker variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    pub timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_open_for: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            timeout: Duration::from_millis(2_500),
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(10),
        }
    }
}

/// Retries may add at most this fraction of extra load, so a struggling
/// upstream is not hit twice as hard.
const RETRY_RATIO: f64 = 0.2;
const RETRY_BUDGET_MAX: f64 = 10.0;
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// When a 429 names no delay.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

/// A token bucket of retries: each request deposits [`RETRY_RATIO`], each
/// retry withdraws one.
#[derive(Debug)]
struct RetryBudget(Mutex<f64>);

impl RetryBudget {
    fn deposit(&self) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = (*t + RETRY_RATIO).min(RETRY_BUDGET_MAX);
    }

    fn withdraw(&self) -> bool {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `base` + `prefix` + `path`, keeping any path the base URL already has
/// (a proxy or the simulator mounted under a prefix).
pub fn join_path(base: &Url, prefix: &str, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!(
        "{}{prefix}{path}",
        base.path().trim_end_matches('/')
    ));
    url
}

/// One outgoing call, before it is sent.
pub struct Call {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// Safe to send twice (reads, and searches sent as POST).
    pub idempotent: bool,
}

impl Call {
    pub fn get(url: Url) -> Self {
        Call {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
            idempotent: true,
        }
    }

    pub fn post(url: Url, body: serde_json::Value) -> Self {
        Call {
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Some(body),
            idempotent: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Marks a POST that only reads (a search) as safe to retry.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// A successful answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

/// The last failure, for the admin's upstream table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastFailure {
    pub at_ms: i64,
    pub error: String,
}

pub struct UpstreamClient {
    name: &'static str,
    http: reqwest::Client,
    settings: ClientSettings,
    breaker: Breaker,
    budget: RetryBudget,
    /// Epoch ms until which the upstream asked us to pause (rate limit).
    paused_until_ms: AtomicI64,
    last_failure: Mutex<Option<LastFailure>>,
}

impl UpstreamClient {
    pub fn new(name: &'static str, settings: ClientSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("warmline/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        UpstreamClient {
            name,
            http,
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_open_for),
            settings,
            budget: RetryBudget(Mutex::new(RETRY_BUDGET_MAX)),
            paused_until_ms: AtomicI64::new(0),
            last_failure: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn last_failure(&self) -> Option<LastFailure> {
        self.last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends `call` and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        call: Call,
    ) -> UpstreamResult<T> {
        let answer = self.send(operation, call).await?;
        serde_json::from_slice(&answer.body).map_err(|e| UpstreamError::Decode {
            upstream: self.name,
            operation,
            detail: e.to_string(),
        })
    }

    /// Sends `call`: one attempt, plus one retry of an idempotent call after
    /// a connection error or 5xx when the retry budget allows. A timeout is
    /// not retried: the caller has already waited the whole timeout, and
    /// the cache's fail-safe is a better answer than waiting twice.
    pub async fn send(&self, operation: &'static str, call: Call) -> UpstreamResult<Answer> {
        let span = tracing::info_span!(
            "upstream.call",
            otel.kind = "client",
            upstream = self.name,
            operation,
            http.request.method = %call.method,
            url.path = %mask_phones_in(call.url.path()),
            server.address = call.url.host_str().unwrap_or(""),
            breaker.state = self.breaker.state().as_str(),
            http.response.status_code = tracing::field::Empty,
            retry = false,
            outcome = tracing::field::Empty,
        );
        self.send_inner(operation, call).instrument(span).await
    }

    async fn send_inner(&self, operation: &'static str, call: Call) -> UpstreamResult<Answer> {
        let started = Instant::now();
        self.budget.deposit();
        let result = self.attempt_with_retry(operation, &call).await;
        let elapsed = started.elapsed();
        let span = tracing::Span::current();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        span.record("outcome", outcome);
        metrics::counter!(
            "warmline_upstream_requests_total",
            "upstream" => self.name, "operation" => operation, "outcome" => outcome
        )
        .increment(1);
        metrics::histogram!(
            "warmline_upstream_request_duration_seconds",
            "upstream" => self.name, "operation" => operation
        )
        .record(elapsed.as_secs_f64());
        metrics::gauge!("warmline_upstream_breaker_state", "upstream" => self.name)
            .set(self.breaker.state().gauge_value());
        if let Err(e) = &result {
            metrics::counter!(
                "warmline_upstream_errors_total",
                "upstream" => self.name, "operation" => operation, "kind" => e.kind()
            )
            .increment(1);
            tracing::warn!(error = %e, elapsed_ms = elapsed.as_millis() as u64, "upstream call failed");
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastFailure {
                at_ms: now_ms(),
                error: mask_phones_in(&e.to_string()),
            });
        }
        result
    }

    async fn attempt_with_retry(
        &self,
        operation: &'static str,
        call: &Call,
    ) -> UpstreamResult<Answer> {
        let first = self.attempt(operation, call).await;
        let retryable = matches!(
            &first,
            Err(UpstreamError::Unreachable { .. })
                | Err(UpstreamError::Status {
                    status: 500..=599,
                    ..
                })
        );
        if retryable && call.idempotent && self.budget.withdraw() {
            tracing::Span::current().record("retry", true);
            metrics::counter!(
                "warmline_upstream_retries_total",
                "upstream" => self.name, "operation" => operation
            )
            .increment(1);
            let jitter = Duration::from_millis(fastrand::u64(0..=RETRY_BACKOFF.as_millis() as u64));
            tokio::time::sleep(RETRY_BACKOFF + jitter).await;
            return self.attempt(operation, call).await;
        }
        first
    }

    async fn attempt(&self, operation: &'static str, call: &Call) -> UpstreamResult<Answer> {
        let paused = self.paused_until_ms.load(Ordering::Acquire) - now_ms();
        if paused > 0 {
            return Err(UpstreamError::RateLimited {
                upstream: self.name,
                operation,
                retry_after: Duration::from_millis(paused as u64),
            });
        }
        if !self.breaker.allow() {
            return Err(UpstreamError::BreakerOpen {
                upstream: self.name,
                operation,
            });
        }
        let mut req = self.http.request(call.method.clone(), call.url.clone());
        for (name, value) in &call.headers {
            req = req.header(*name, value);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let outcome = match req.send().await {
            Err(e) if e.is_timeout() => Err(UpstreamError::Timeout {
                upstream: self.name,
                operation,
                after: self.settings.timeout,
            }),
            Err(e) => Err(UpstreamError::Unreachable {
                upstream: self.name,
                operation,
                detail: mask_phones_in(&without_url(&e)),
            }),
            Ok(resp) => self.read(operation, resp).await,
        };
        match &outcome {
            Ok(_) => self.breaker.on_success(),
            // The upstream is healthy but says no: not a breaker failure.
            Err(UpstreamError::RateLimited { .. })
            | Err(UpstreamError::Status {
                status: 400..=499, ..
            }) => self.breaker.on_success(),
            Err(_) => {
                if self.breaker.on_failure() {
                    tracing::warn!(upstream = self.name, "circuit breaker opened");
                }
            }
        }
        outcome
    }

    async fn read(
        &self,
        operation: &'static str,
        resp: reqwest::Response,
    ) -> UpstreamResult<Answer> {
        let status = resp.status();
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        self.note_rate_limit(resp.headers(), status);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => {
                return Err(UpstreamError::Timeout {
                    upstream: self.name,
                    operation,
                    after: self.settings.timeout,
                });
            }
            Err(e) => {
                return Err(UpstreamError::Unreachable {
                    upstream: self.name,
                    operation,
                    detail: without_url(&e),
                });
            }
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = self.paused_until_ms.load(Ordering::Acquire) - now_ms();
            return Err(UpstreamError::RateLimited {
                upstream: self.name,
                operation,
                retry_after: Duration::from_millis(wait.max(0) as u64),
            });
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let detail: String = text.chars().take(200).collect();
            return Err(UpstreamError::Status {
                upstream: self.name,
                operation,
                status: status.as_u16(),
                detail: mask_phones_in(&detail),
            });
        }
        Ok(Answer { status, body })
    }

    /// Pauses calls when the upstream says so: `Retry-After` on a 429, or a
    /// remaining quota of zero (`X-RateLimit-Remaining*`) until the window
    /// resets (`X-RateLimit-Reset*` seconds, or GoHighLevel's
    /// `X-RateLimit-Interval-Milliseconds`).
    fn note_rate_limit(&self, headers: &reqwest::header::HeaderMap, status: StatusCode) {
        let number = |name: &str| -> Option<f64> {
            headers
                .iter()
                .find(|(k, _)| k.as_str().starts_with(name))
                .and_then(|(_, v)| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let pause = if status == StatusCode::TOO_MANY_REQUESTS {
            Some(
                number("retry-after")
                    .map(|s| Duration::from_secs_f64(s.max(0.0)))
                    .or_else(|| {
                        number("x-ratelimit-interval-milliseconds")
                            .map(|ms| Duration::from_millis(ms as u64))
                    })
                    .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE),
            )
        } else if number("x-ratelimit-remaining").is_some_and(|r| r <= 0.0)
            || number("x-ratelimit-daily-remaining").is_some_and(|r| r <= 0.0)
        {
            Some(
                number("x-ratelimit-interval-milliseconds")
                    .map(|ms| Duration::from_millis(ms as u64))
                    .or_else(|| {
                        number("x-ratelimit-reset").map(|s| Duration::from_secs_f64(s.max(0.0)))
                    })
                    .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE),
            )
        } else {
            None
        };
        if let Some(p) = pause {
            let until = now_ms() + p.as_millis() as i64;
            self.paused_until_ms.fetch_max(until, Ordering::AcqRel);
            tracing::warn!(
                upstream = self.name,
                pause_ms = p.as_millis() as u64,
                "upstream rate limit reached; pausing calls"
            );
        }
    }
}

/// reqwest's error text without the URL (which may carry a phone number).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
