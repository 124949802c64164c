//! The tiered cache in process: single-flight loads (also run against the
//! real Redis when it answers), stale-while-revalidate, fail-safe on loader
//! errors and timeouts, negative caching, the database's last-good values
//! after a restart, and L1 capacity. Tests that need Redis for L2, the
//! backplane or leases are in `cache_redis.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use warmline::cache::{CacheError, Namespace, Outcome, Policies, Policy, Tier};

use crate::helpers::cache::{cache, counting, unique_prefix, wait_until};
use crate::helpers::{TestDb, shared_redis};

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

#[tokio::test]
async fn an_entry_past_its_fail_safe_window_leaves_l1_and_its_count() {
    // L1 keeps no timer per entry: reads skip an expired entry and the
    // count sweeps it, so the figure the admin shows is of live entries.
    let mut policies = Policies::default();
    policies.set(
        Namespace::Slots,
        Policy {
            // Long enough that the count below sees both, however loaded the
            // machine; the test then waits on expiry, not on a sleep.
            fresh: Duration::from_millis(1_500),
            stale_while_revalidate: Duration::ZERO,
            fail_safe: Duration::ZERO,
            jitter: 0.0,
            ..Policy::default_for(Namespace::Slots)
        },
    );
    let c = cache(None, &unique_prefix(), policies, None);
    let slots = c.namespace::<String>(Namespace::Slots);
    slots.set("acme:read", "9:00".into()).await;
    slots.set("acme:unread", "10:30".into()).await;
    // Its version is no later than now: fresh until this at the latest.
    let unread_until = warmline::support::now_ms() + 1_500;
    assert_eq!(c.stats().namespaces["slots"].entries, 2);
    while slots.peek_l1("acme:read").is_some() || warmline::support::now_ms() <= unread_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // `acme:unread` expired with it, and nobody read it since.
    assert_eq!(c.stats().namespaces["slots"].entries, 0);
    assert_eq!(
        c.stats().namespaces["slots"].evictions,
        0,
        "expiry is no eviction"
    );
}

#[tokio::test]
async fn a_value_set_shared_is_the_allocation_l1_serves() {
    // The assembled context is kept this way: the call's session and the
    // cache hold one copy, and what is rendered from it is rendered once.
    let cache = cache(None, &unique_prefix(), Policies::default(), None);
    let contexts = cache.namespace::<String>(Namespace::Context);
    let ctx = Arc::new("context".to_owned());
    contexts.set_shared("acme:+14155550123", ctx.clone()).await;
    let hit = contexts
        .get_cached("acme:+14155550123")
        .await
        .expect("cached");
    assert_eq!(hit.outcome, Outcome::HitFresh);
    assert!(Arc::ptr_eq(&hit.value.expect("a value"), &ctx));
}
