//! Upstreams that answer with hostile or absurd rate-limit headers, loaders
//! that panic, and background loops that panic: none of them may panic
//! warmline, pause an upstream for longer than an hour, or leave a cache key
//! "in flight" for good.
//!
//! The simulator cannot send arbitrary headers, so these tests run a tiny
//! HTTP server of their own that answers whatever the test scripts.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use warmline::cache::{CacheError, LoadResult, Namespace, Policies};
use warmline::upstreams::{Crm, UpstreamError};

use crate::helpers::cache::{cache, counting, unique_prefix, wait_until};
use crate::helpers::upstreams::{adapters, ghl_zep, phone};

const HOUR: Duration = Duration::from_secs(3_600);
/// However hostile the upstream, a call answers well within this.
const PROMPTLY: Duration = Duration::from_secs(5);

/// What the hostile server answers to every request.
#[derive(Clone)]
struct Script {
    status: u16,
    headers: Vec<(&'static str, String)>,
}

struct Hostile {
    url: String,
    script: Arc<Mutex<Script>>,
    hits: Arc<AtomicUsize>,
    handle: ServerHandle,
}

impl Hostile {
    fn start() -> Hostile {
        let script = Arc::new(Mutex::new(Script {
            status: 200,
            headers: Vec::new(),
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (script.clone(), hits.clone());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let (s, h) = (s.clone(), h.clone());
            App::new().default_service(web::to(move || {
                h.fetch_add(1, Ordering::SeqCst);
                let script = s.lock().unwrap().clone();
                async move {
                    let status = actix_web::http::StatusCode::from_u16(script.status).unwrap();
                    let mut resp = HttpResponse::build(status);
                    for (name, value) in script.headers {
                        resp.insert_header((name, value));
                    }
                    // GoHighLevel's "no contact with that number".
                    resp.json(serde_json::json!({ "contact": null }))
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Hostile {
            url,
            script,
            hits,
            handle,
        }
    }

    /// Scripts the next answers and returns a CRM adapter with a fresh
    /// client (no pause left over from an earlier answer).
    fn answer(&self, status: u16, headers: &[(&'static str, String)]) -> Arc<dyn Crm> {
        *self.script.lock().unwrap() = Script {
            status,
            headers: headers.to_vec(),
        };
        self.hits.store(0, Ordering::SeqCst);
        adapters(ghl_zep(&self.url)).crm.clone().unwrap()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn find(crm: &Arc<dyn Crm>) -> Result<(), UpstreamError> {
    tokio::time::timeout(PROMPTLY, crm.find_contact_by_phone(&phone("+15550100001")))
        .await
        .expect("the call answers promptly")
        .map(|_| ())
}

/// The pause a rate-limited call reports (what is left of it).
fn pause_of(result: Result<(), UpstreamError>) -> Duration {
    match result {
        Err(UpstreamError::RateLimited { retry_after, .. }) => retry_after,
        other => panic!("expected a rate-limited error, got {other:?}"),
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn an_absurd_retry_after_never_panics_and_pauses_at_most_an_hour() {
    let server = Hostile::start();
    for value in ["1e20", "inf", "1e400", "18446744073709551616"] {
        let crm = server.answer(429, &[("retry-after", value.to_owned())]);
        let pause = pause_of(find(&crm).await);
        assert!(
            pause <= HOUR && pause > HOUR - Duration::from_secs(60),
            "Retry-After: {value} paused for {pause:?}, not an hour"
        );
        // The (capped) pause is honoured: nothing reaches the upstream.
        let again = pause_of(find(&crm).await);
        assert!(again <= pause, "{again:?} > {pause:?}");
        assert_eq!(server.hits(), 1, "Retry-After: {value}");
    }
    for value in ["NaN", "-inf", "-5", "soon"] {
        let crm = server.answer(429, &[("retry-after", value.to_owned())]);
        let pause = pause_of(find(&crm).await);
        assert!(
            pause <= Duration::from_secs(1),
            "Retry-After: {value} paused for {pause:?}"
        );
    }
    server.handle.stop(false).await;
}

#[tokio::test]
async fn an_epoch_rate_limit_reset_pauses_until_then_not_for_decades() {
    let server = Hostile::start();
    let window =
        |pause: Duration| pause > Duration::from_secs(20) && pause <= Duration::from_secs(30);

    // Quota used up, reset given as a Unix time in seconds, 30 s ahead.
    let crm = server.answer(
        200,
        &[
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", (now_s() + 30).to_string()),
        ],
    );
    find(&crm).await.expect("the answer itself is fine");
    let pause = pause_of(find(&crm).await);
    assert!(
        window(pause),
        "an epoch reset 30 s ahead paused for {pause:?}"
    );
    assert_eq!(server.hits(), 1, "the paused call never left");

    // A 429 naming only the reset, as a Unix time in milliseconds.
    let crm = server.answer(
        429,
        &[("x-ratelimit-reset", ((now_s() + 30) * 1_000).to_string())],
    );
    let pause = pause_of(find(&crm).await);
    assert!(
        window(pause),
        "an epoch-ms reset 30 s ahead paused for {pause:?}"
    );

    // A reset years ahead is capped.
    let crm = server.answer(
        200,
        &[
            ("x-ratelimit-remaining", "0".into()),
            (
                "x-ratelimit-reset",
                (now_s() + 10 * 365 * 86_400).to_string(),
            ),
        ],
    );
    find(&crm).await.unwrap();
    let pause = pause_of(find(&crm).await);
    assert!(
        pause <= HOUR,
        "a reset ten years ahead paused for {pause:?}"
    );
    server.handle.stop(false).await;
}

/// A loader that counts its calls, waits for `release`, then panics.
fn panicking(
    calls: &Arc<AtomicUsize>,
    release: &Arc<Notify>,
) -> impl FnOnce() -> BoxFuture<'static, LoadResult<String>> + Send + 'static {
    let (calls, release) = (calls.clone(), release.clone());
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            panic!("a hostile upstream answer broke the loader");
        })
    }
}

// Current-thread on purpose: a spawned get runs without a pause from its
// start to waiting on the key's flight (there is no L2), so once every get
// has started, every get is waiting on the one load.
#[tokio::test]
async fn a_panicking_loader_fails_every_waiter_and_the_next_get_loads_again() {
    let cache = cache(None, &unique_prefix(), Policies::default(), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let key = "acme:+14155550123";
    let (calls, release) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let gets: Vec<_> = (0..20)
        .map(|_| {
            let (memory, started) = (memory.clone(), started.clone());
            let loader = panicking(&calls, &release);
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                memory.get_or_load(key, loader).await
            })
        })
        .collect();
    assert!(wait_until(PROMPTLY, || started.load(Ordering::SeqCst) == 20).await);
    assert!(wait_until(PROMPTLY, || calls.load(Ordering::SeqCst) == 1).await);
    release.notify_one();
    for get in gets {
        let result = tokio::time::timeout(PROMPTLY, get)
            .await
            .expect("every waiter answers promptly")
            .expect("the panic stays in the loader");
        assert!(
            matches!(result, Err(CacheError::Load { .. })),
            "{:?}",
            result.map(|l| l.value)
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one load for all waiters");

    // The key is not left in flight: the next get runs its loader.
    let again = Arc::new(AtomicUsize::new(0));
    let lookup = tokio::time::timeout(
        PROMPTLY,
        memory.get_or_load(key, counting(&again, 0, Ok(Some("ctx".into())))),
    )
    .await
    .expect("the next get answers promptly")
    .expect("and loads afresh");
    assert_eq!(lookup.value.as_deref().map(String::as_str), Some("ctx"));
    assert_eq!(again.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.stats().namespaces["memory"].load_errors,
        1,
        "the panic is counted as a load error"
    );
}

#[tokio::test]
async fn a_background_loop_that_panics_is_restarted_and_counted() {
    warmline::telemetry::metrics::install(); // as the application does first
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let supervisor = warmline::support::supervise("hostile_test_loop", move || {
        let run = r.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(run >= 2, "run {run} of the loop breaks");
        }
    });
    tokio::time::timeout(Duration::from_secs(10), supervisor)
        .await
        .expect("restarted promptly")
        .expect("the supervisor itself does not panic");
    assert_eq!(runs.load(Ordering::SeqCst), 3, "two panics, two restarts");
    let text = warmline::telemetry::metrics::render();
    assert!(
        text.contains(r#"warmline_background_restarts_total{loop="hostile_test_loop"} 2"#),
        "{text}"
    );
}
