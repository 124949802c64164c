//! The tiered cache against the real Redis (and a private redis-server for
//! the tests that kill it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use warmline::cache::{
    Cache, CacheConfig, CacheError, FlushScope, LoadError, Namespace, Outcome, Policies, Policy,
    RedisLink, Tier,
};
use warmline::settings::RedisSettings;
use warmline::store::Store;

use crate::helpers::{PrivateRedis, TestDb, shared_redis};

fn link(url: &str) -> RedisLink {
    RedisLink::new(&RedisSettings {
        url: SecretString::from(url.to_owned()),
        prefix: String::new(),
        command_timeout: Duration::from_millis(100),
    })
    .expect("redis url")
}

/// A unique key prefix per test, so tests sharing the machine's Redis never
/// see each other's keys or backplane messages.
fn unique_prefix() -> String {
    format!("wltest:{}:", uuid::Uuid::new_v4().simple())
}

fn cache(redis: Option<&str>, prefix: &str, policies: Policies, store: Option<Store>) -> Cache {
    Cache::new(CacheConfig {
        policies,
        redis: redis.map(link),
        redis_prefix: prefix.to_owned(),
        store,
    })
}

/// Memory's policy with short windows, for tests that watch time pass.
fn quick(fresh_ms: u64, swr_ms: u64, fail_safe_ms: u64) -> Policies {
    let mut p = Policies::default();
    p.set(
        Namespace::Memory,
        Policy {
            fresh: Duration::from_millis(fresh_ms),
            stale_while_revalidate: Duration::from_millis(swr_ms),
            fail_safe: Duration::from_millis(fail_safe_ms),
            negative: Duration::from_millis(200),
            fail_safe_throttle: Duration::from_millis(300),
            soft_timeout: Duration::from_millis(50),
            hard_timeout: Duration::from_millis(1_000),
            jitter: 0.0,
            ..Policy::default_for(Namespace::Memory)
        },
    );
    p
}

/// A loader that counts its calls, sleeps, then answers `value`.
fn counting(
    calls: &Arc<AtomicUsize>,
    delay_ms: u64,
    value: Result<Option<String>, &'static str>,
) -> impl FnOnce() -> futures_util::future::BoxFuture<'static, Result<Option<String>, LoadError>>
+ Send
+ 'static {
    let calls = calls.clone();
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            value.map_err(LoadError::new)
        })
    }
}

async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

async fn thousand_concurrent_gets_call_the_loader_once(redis: Option<&str>) {
    let cache = cache(redis, &unique_prefix(), Policies::default(), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let calls = Arc::new(AtomicUsize::new(0));
    let gets = (0..1_000).map(|_| {
        let (memory, calls) = (memory.clone(), calls.clone());
        tokio::spawn(async move {
            memory
                .get_or_load(
                    "acme:+14155550123",
                    counting(&calls, 50, Ok(Some("ctx".into()))),
                )
                .await
        })
    });
    let results = futures_util::future::join_all(gets).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the loader ran once");
    let mut misses = 0;
    for r in results {
        let lookup = r.unwrap().expect("every get succeeds");
        assert_eq!(lookup.value.as_deref().map(String::as_str), Some("ctx"));
        if lookup.outcome == Outcome::Miss {
            misses += 1;
        } else {
            assert!(
                matches!(lookup.outcome, Outcome::Coalesced | Outcome::HitFresh),
                "{:?}",
                lookup.outcome
            );
        }
    }
    assert_eq!(misses, 1);
    let stats = cache.stats();
    let ns = &stats.namespaces["memory"];
    assert_eq!(ns.lookups, 1_000);
    assert_eq!(ns.tiers["loader"]["miss"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_gets_of_a_cold_key_call_the_loader_once_in_process() {
    thousand_concurrent_gets_call_the_loader_once(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_gets_of_a_cold_key_call_the_loader_once_with_redis() {
    let Some(redis) = shared_redis().await else {
        return;
    };
    thousand_concurrent_gets_call_the_loader_once(Some(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_swr_window_the_stale_value_is_served_at_once_and_refreshed_exactly_once() {
    let cache = cache(None, &unique_prefix(), quick(100, 10_000, 20_000), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let calls = Arc::new(AtomicUsize::new(0));
    memory
        .get_or_load("k", counting(&calls, 0, Ok(Some("v1".into()))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    // 50 readers while the value is stale; the refresh takes 300 ms.
    let gets = (0..50).map(|_| {
        let (memory, calls) = (memory.clone(), calls.clone());
        tokio::spawn(async move {
            memory
                .get_or_load("k", counting(&calls, 300, Ok(Some("v2".into()))))
                .await
        })
    });
    for r in futures_util::future::join_all(gets).await {
        let l = r.unwrap().unwrap();
        assert_eq!(
            (l.value.as_deref().map(String::as_str), l.outcome),
            (Some("v1"), Outcome::HitStale)
        );
    }
    assert!(
        wait_until(Duration::from_secs(3), || memory
            .peek_l1("k")
            .as_deref()
            .map(String::as_str)
            == Some("v2"))
        .await
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one initial load and exactly one refresh"
    );
    let l = memory
        .get_or_load("k", counting(&calls, 0, Ok(Some("v3".into()))))
        .await
        .unwrap();
    assert_eq!(
        (l.value.as_deref().map(String::as_str), l.outcome),
        (Some("v2"), Outcome::HitFresh)
    );
    assert_eq!(cache.stats().namespaces["memory"].background_refreshes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_error_serves_the_last_good_value_throttles_retries_and_is_never_cached() {
    let cache = cache(None, &unique_prefix(), quick(100, 0, 20_000), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let calls = Arc::new(AtomicUsize::new(0));
    memory
        .get_or_load("k", counting(&calls, 0, Ok(Some("good".into()))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let l = memory
        .get_or_load("k", counting(&calls, 0, Err("zep returned 503")))
        .await
        .unwrap();
    assert_eq!(
        (l.value.as_deref().map(String::as_str), l.outcome, l.tier),
        (Some("good"), Outcome::HitFailSafe, Tier::L1)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Throttled: the broken upstream is left alone for a while.
    let l = memory
        .get_or_load("k", counting(&calls, 0, Err("zep returned 503")))
        .await
        .unwrap();
    assert_eq!(l.outcome, Outcome::HitFailSafe);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "no retry while throttled");

    tokio::time::sleep(Duration::from_millis(350)).await;
    let l = memory
        .get_or_load("k", counting(&calls, 0, Ok(Some("better".into()))))
        .await
        .unwrap();
    assert_eq!(
        (l.value.as_deref().map(String::as_str), l.outcome),
        (Some("better"), Outcome::Miss),
        "the error was not cached"
    );
    assert_eq!(cache.stats().namespaces["memory"].load_errors, 1);

    // A cold key whose load fails: an error now, and a fresh attempt next time.
    let err = memory
        .get_or_load("cold", counting(&calls, 0, Err("timeout")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::Load {
                ns: Namespace::Memory,
                ..
            }
        ),
        "{err}"
    );
    let l = memory
        .get_or_load("cold", counting(&calls, 0, Ok(Some("ok".into()))))
        .await
        .unwrap();
    assert_eq!(l.outcome, Outcome::Miss);
}

#[tokio::test]
async fn not_found_is_cached_only_for_the_negative_ttl() {
    let cache = cache(None, &unique_prefix(), quick(10_000, 0, 20_000), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let calls = Arc::new(AtomicUsize::new(0));
    let l = memory
        .get_or_load("nobody", counting(&calls, 0, Ok(None)))
        .await
        .unwrap();
    assert!(l.value.is_none());
    let l = memory
        .get_or_load("nobody", counting(&calls, 0, Ok(None)))
        .await
        .unwrap();
    assert_eq!((l.value.is_none(), l.outcome), (true, Outcome::HitFresh));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    memory
        .get_or_load("nobody", counting(&calls, 0, Ok(Some("now known".into()))))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_soft_timeout_the_stale_value_is_served_and_the_load_finishes_in_the_background() {
    let cache = cache(None, &unique_prefix(), quick(100, 0, 20_000), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let calls = Arc::new(AtomicUsize::new(0));
    memory
        .get_or_load("k", counting(&calls, 0, Ok(Some("old".into()))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    // The upstream now takes 500 ms; the soft timeout is 50 ms.
    let l = memory
        .get_or_load("k", counting(&calls, 500, Ok(Some("new".into()))))
        .await
        .unwrap();
    assert_eq!(
        (l.value.as_deref().map(String::as_str), l.outcome),
        (Some("old"), Outcome::HitFailSafe)
    );
    assert!(
        wait_until(Duration::from_secs(3), || memory
            .peek_l1("k")
            .as_deref()
            .map(String::as_str)
            == Some("new"))
        .await
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_hard_timeout_with_nothing_in_hand_the_get_fails_and_the_next_caller_gets_the_value()
 {
    let mut policies = quick(10_000, 0, 20_000);
    let mut p = policies.get(Namespace::Memory).clone();
    p.hard_timeout = Duration::from_millis(100);
    policies.set(Namespace::Memory, p);
    let cache = cache(None, &unique_prefix(), policies, None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let calls = Arc::new(AtomicUsize::new(0));
    let err = memory
        .get_or_load("k", counting(&calls, 400, Ok(Some("late".into()))))
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::Timeout { .. }), "{err}");
    assert!(wait_until(Duration::from_secs(3), || memory.peek_l1("k").is_some()).await);
    let l = memory
        .get_or_load("k", counting(&calls, 0, Ok(Some("other".into()))))
        .await
        .unwrap();
    assert_eq!(
        (l.value.as_deref().map(String::as_str), l.outcome),
        (Some("late"), Outcome::HitFresh)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_on_one_instance_reaches_the_others_l1_within_100_ms() {
    let Some(redis) = shared_redis().await else {
        return;
    };
    let prefix = unique_prefix();
    let a = cache(Some(&redis), &prefix, Policies::default(), None);
    let b = cache(Some(&redis), &prefix, Policies::default(), None);
    assert!(
        wait_until(Duration::from_secs(5), || a.backplane_connected()
            && b.backplane_connected())
        .await
    );
    let (ma, mb) = (
        a.namespace::<String>(Namespace::Memory),
        b.namespace::<String>(Namespace::Memory),
    );
    let key = "acme:+14155550123";
    let must_not_load = || async { Err::<Option<String>, _>(LoadError::new("must not load")) };

    ma.set(key, "v1".into()).await;
    let l = mb
        .get_or_load(key, must_not_load)
        .await
        .expect("B reads A's value from L2");
    assert_eq!(
        (l.tier, l.value.as_deref().map(String::as_str)),
        (Tier::L2, Some("v1"))
    );
    assert_eq!(
        mb.peek_l1(key).as_deref().map(String::as_str),
        Some("v1"),
        "and keeps it in L1"
    );

    ma.invalidate(key).await;
    let gone = wait_until(Duration::from_millis(100), || mb.peek_l1(key).is_none()).await;
    assert!(gone, "B still serves the invalidated value after 100 ms");

    // A write on A: within 100 ms B stops serving its own copy and reads A's.
    mb.set(key, "v2".into()).await;
    ma.set(key, "v3".into()).await;
    let deadline = Instant::now() + Duration::from_millis(100);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = mb
            .get_or_load(key, must_not_load)
            .await
            .ok()
            .and_then(|l| l.value);
        if seen.as_deref().map(String::as_str) == Some("v3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen.as_deref().map(String::as_str), Some("v3"));
    assert!(b.stats().backplane.unwrap().received >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_gets_still_succeed_and_l2_comes_back_when_redis_does() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let cache = cache(Some(&redis.url()), &prefix, Policies::default(), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let calls = Arc::new(AtomicUsize::new(0));
    assert!(wait_until(Duration::from_secs(5), || cache.backplane_connected()).await);
    memory
        .get_or_load("k1", counting(&calls, 0, Ok(Some("v1".into()))))
        .await
        .unwrap();

    redis.kill();
    for i in 0..20 {
        let key = format!("cold{i}");
        let l = memory
            .get_or_load(&key, counting(&calls, 0, Ok(Some(key.clone()))))
            .await
            .expect("loader still serves");
        assert_eq!(l.outcome, Outcome::Miss);
    }
    let l = memory
        .get_or_load("k1", counting(&calls, 0, Ok(Some("unused".into()))))
        .await
        .unwrap();
    assert_eq!(
        (l.tier, l.outcome),
        (Tier::L1, Outcome::HitFresh),
        "L1 keeps serving"
    );
    assert!(
        cache.stats().l2.unwrap().errors > 0,
        "L2 failures are counted"
    );

    redis.restart().await;
    // Reconnected: the backplane resyncs (L1 flushed, since messages may
    // have been missed) and values reach L2 again.
    assert!(wait_until(Duration::from_secs(10), || cache.backplane_connected()).await);
    tokio::time::sleep(Duration::from_millis(2_100)).await; // the L2 breaker's cool-down
    memory
        .get_or_load("after", counting(&calls, 0, Ok(Some("back".into()))))
        .await
        .unwrap();
    let key = format!("{prefix}memory:after");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut stored: Option<String> = None;
    for _ in 0..100 {
        stored = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored.expect("value written to L2").contains("\"back\""));

    let other = self::cache(Some(&redis.url()), &prefix, Policies::default(), None);
    let l = other
        .namespace::<String>(Namespace::Memory)
        .get_or_load("after", || async {
            Err(LoadError::new("must come from L2"))
        })
        .await
        .unwrap();
    assert_eq!(
        (l.tier, l.value.as_deref().map(String::as_str)),
        (Tier::L2, Some("back"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_lease_keeps_two_replicas_from_loading_the_same_cold_key() {
    let Some(redis) = shared_redis().await else {
        return;
    };
    let prefix = unique_prefix();
    let a = cache(Some(&redis), &prefix, Policies::default(), None);
    let b = cache(Some(&redis), &prefix, Policies::default(), None);
    let calls = Arc::new(AtomicUsize::new(0));
    let (ma, mb) = (
        a.namespace::<String>(Namespace::Memory),
        b.namespace::<String>(Namespace::Memory),
    );
    let (ra, rb) = tokio::join!(
        ma.get_or_load("k", counting(&calls, 300, Ok(Some("v".into())))),
        mb.get_or_load("k", counting(&calls, 300, Ok(Some("v".into())))),
    );
    assert_eq!(ra.unwrap().value.as_deref().map(String::as_str), Some("v"));
    assert_eq!(rb.unwrap().value.as_deref().map(String::as_str), Some("v"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one replica loaded, the other read its value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_dead_upstream_and_no_redis_serves_the_last_known_good_value() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let first = cache(
        None,
        &unique_prefix(),
        Policies::default(),
        Some(store.clone()),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    first
        .namespace::<String>(Namespace::Memory)
        .get_or_load(
            "acme:+14155550123",
            counting(&calls, 0, Ok(Some("likes mornings".into()))),
        )
        .await
        .unwrap();
    let mut persisted = false;
    for _ in 0..100 {
        if store
            .last_good("memory", "acme:+14155550123")
            .await
            .unwrap()
            .is_some()
        {
            persisted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(persisted, "the value reached the database");
    drop(first);

    let restarted = cache(None, &unique_prefix(), Policies::default(), Some(store));
    let memory = restarted.namespace::<String>(Namespace::Memory);
    let l = memory
        .get_or_load("acme:+14155550123", counting(&calls, 0, Err("zep is down")))
        .await
        .expect("served from the database");
    assert_eq!((l.tier, l.outcome), (Tier::Db, Outcome::HitFailSafe));
    assert_eq!(
        l.value.as_deref().map(String::as_str),
        Some("likes mornings")
    );
    let loads = calls.load(Ordering::SeqCst);
    // Kept in L1 now: neither the upstream nor the database is asked again.
    let l = memory
        .get_or_load("acme:+14155550123", counting(&calls, 0, Err("zep is down")))
        .await
        .unwrap();
    assert_eq!(l.tier, Tier::L1);
    assert_eq!(calls.load(Ordering::SeqCst), loads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_remove_exactly_their_scope_across_l1_l2_and_the_database() {
    let Some(redis) = shared_redis().await else {
        return;
    };
    let db = TestDb::sqlite();
    let store = db.store().await;
    let c = cache(
        Some(&redis),
        &unique_prefix(),
        Policies::default(),
        Some(store.clone()),
    );
    let contact = c.namespace::<String>(Namespace::Contact);
    let memory = c.namespace::<String>(Namespace::Memory);
    for key in ["acme:+1001", "acme:+1002", "zen:+1001"] {
        contact.set(key, "c".into()).await;
        memory.set(key, "m".into()).await;
    }
    let report = c
        .flush(&FlushScope::Key {
            ns: Namespace::Contact,
            key: "acme:+1001".into(),
        })
        .await;
    assert_eq!((report.flushed, report.l2_error), (1, None));
    assert_eq!(
        c.flush(&FlushScope::Key {
            ns: Namespace::Contact,
            key: "acme:+1001".into()
        })
        .await
        .flushed,
        0
    );
    assert_eq!(
        c.flush(&FlushScope::Prefix {
            ns: Namespace::Memory,
            prefix: "zen:".into()
        })
        .await
        .flushed,
        1
    );
    let tenant = FlushScope::Tenant {
        tenant_id: "acme".into(),
        called_number: "+15550100001".into(),
    };
    assert_eq!(
        c.flush(&tenant).await.flushed,
        3,
        "acme:+1002 in contact, both acme keys in memory"
    );
    assert!(memory.peek_l1("acme:+1001").is_none());
    assert!(
        store
            .last_good("memory", "acme:+1001")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        contact.peek_l1("zen:+1001").as_deref().map(String::as_str),
        Some("c")
    );
    assert_eq!(
        c.flush(&FlushScope::Namespace(Namespace::Contact))
            .await
            .flushed,
        1
    );
    assert_eq!(c.flush(&FlushScope::All).await.flushed, 0);
}

#[tokio::test]
async fn l1_is_bounded_by_the_namespace_capacity_and_evictions_are_counted() {
    let mut policies = Policies::default();
    policies.set(
        Namespace::Slots,
        Policy {
            l1_capacity: 10,
            ..Policy::default_for(Namespace::Slots)
        },
    );
    let c = cache(None, &unique_prefix(), policies, None);
    let slots = c.namespace::<String>(Namespace::Slots);
    for i in 0..200 {
        slots.set(&format!("acme:{i}"), "9:00, 10:30".into()).await;
    }
    let stats = c.stats();
    let ns = &stats.namespaces["slots"];
    assert!(ns.entries <= 10, "{} entries", ns.entries);
    assert!(ns.evictions >= 150, "{} evictions", ns.evictions);
}
