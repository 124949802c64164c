//! The cache's hot paths: an L1 hit, an L2 hit (real Redis) and a coalesced
//! miss (100 concurrent gets of a cold key, one load). Results and how to
//! reproduce them: BENCHMARKS.md. The production subscriber and metrics
//! recorder are installed, as in the inbound benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use warmline::cache::RedisSettings;
use warmline::cache::{Cache, CacheConfig, LoadError, Namespace, Policies, RedisLink};

/// A caller context of realistic size (about 1 KiB of JSON).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Context {
    name: String,
    total_calls: u32,
    memory: String,
    slots: Vec<String>,
}

fn context() -> Context {
    Context {
        name: "Ana Souza".into(),
        total_calls: 7,
        memory: "Prefers mornings; last visit was a cleaning; asked about whitening. ".repeat(8),
        slots: (9..17)
            .map(|h| format!("2026-11-23T{h:02}:00:00-05:00"))
            .collect(),
    }
}

/// The production subscriber (logs formatted to a sink, spans through
/// OpenTelemetry at the default sampler) and the Prometheus recorder, so the
/// numbers include what production pays for spans and counters.
fn production_telemetry() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let settings = warmline::settings::Settings::from_vars(&Default::default())
            .expect("the embedded defaults are valid settings");
        std::mem::forget(warmline::telemetry::init_with_log_writer(
            &settings.telemetry,
            std::io::sink,
        ));
        warmline::telemetry::metrics::install();
    });
}

fn runtime() -> tokio::runtime::Runtime {
    production_telemetry();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn cache(redis: Option<RedisLink>) -> Cache {
    Cache::new(CacheConfig {
        policies: Policies::default(),
        redis,
        redis_prefix: format!("wlbench:{}:", uuid::Uuid::new_v4().simple()),
        store: None,
    })
}

async fn never_loads() -> Result<Option<Context>, LoadError> {
    Err(LoadError::new("the benchmark key must be cached"))
}

fn l1_hit(c: &mut Criterion) {
    let rt = runtime();
    let memory = rt.block_on(async {
        let cache = cache(None);
        let memory = cache.namespace::<Context>(Namespace::Memory);
        memory.set("acme:+14155550123", context()).await;
        memory
    });
    c.bench_function("cache/l1_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let l = memory
                .get_or_load("acme:+14155550123", never_loads)
                .await
                .unwrap();
            std::hint::black_box(l.value);
        })
    });
}

fn l2_hit(c: &mut Criterion) {
    let url = std::env::var("WARMLINE_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = runtime();
    let memory = rt.block_on(async {
        let link = RedisLink::new(&RedisSettings {
            prefix: String::new(),
            command_timeout: Duration::from_millis(200),
            ..RedisSettings::new(url.clone())
        })
        .ok()?;
        if link.ping(Duration::from_secs(1)).await != warmline::cache::RedisHealth::Ok {
            return None;
        }
        let cache = cache(Some(link));
        let memory = cache.namespace::<Context>(Namespace::Memory);
        memory.set("acme:+14155550123", context()).await;
        Some(memory)
    });
    let Some(memory) = memory else {
        eprintln!("cache/l2_hit skipped: no Redis answers at {url}");
        return;
    };
    c.bench_function("cache/l2_hit", |b| {
        b.to_async(&rt).iter(|| async {
            memory.forget_local("acme:+14155550123");
            let l = memory
                .get_or_load("acme:+14155550123", never_loads)
                .await
                .unwrap();
            assert_eq!(l.tier, warmline::cache::Tier::L2);
            std::hint::black_box(l.value);
        })
    });
}

fn coalesced_miss(c: &mut Criterion) {
    let rt = runtime();
    let memory = rt.block_on(async { cache(None).namespace::<Context>(Namespace::Memory) });
    let next = AtomicU64::new(0);
    let loads = Arc::new(AtomicU64::new(0));
    c.bench_function("cache/coalesced_miss_100_concurrent", |b| {
        b.to_async(&rt).iter(|| {
            let key = format!("acme:cold-{}", next.fetch_add(1, Ordering::Relaxed));
            let (memory, loads) = (memory.clone(), loads.clone());
            async move {
                let gets = (0..100).map(|_| {
                    let (memory, loads, key) = (memory.clone(), loads.clone(), key.clone());
                    tokio::spawn(async move {
                        memory
                            .get_or_load(&key, move || async move {
                                loads.fetch_add(1, Ordering::Relaxed);
                                tokio::task::yield_now().await;
                                Ok(Some(context()))
                            })
                            .await
                    })
                });
                for r in futures_util::future::join_all(gets).await {
                    std::hint::black_box(r.unwrap().unwrap());
                }
            }
        })
    });
    let iterations = next.load(Ordering::Relaxed);
    assert_eq!(
        loads.load(Ordering::Relaxed),
        iterations,
        "exactly one load per cold key"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = l1_hit, l2_hit, coalesced_miss
}
criterion_main!(benches);
