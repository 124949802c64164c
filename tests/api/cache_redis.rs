//! The tiered cache with Redis as L2: the machine's Redis for the backplane,
//! leases and flushes, and a private redis-server for the test that kills it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use warmline::cache::{FlushScope, LoadError, Namespace, Outcome, Policies, Tier};
use warmline::support::BreakerState;

use crate::helpers::cache::{cache, counting, unique_prefix, wait_until};
use crate::helpers::{PrivateRedis, TestDb, shared_redis};

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
    // Once resubscribed, the cache probes Redis and closes its L2 breaker
    // itself: no cool-down to sit out.
    assert!(
        wait_until(Duration::from_secs(10), || {
            cache
                .stats()
                .l2
                .is_some_and(|l2| l2.breaker == BreakerState::Closed)
        })
        .await,
        "the L2 breaker closes once Redis answers again"
    );
    memory
        .get_or_load("after", counting(&calls, 0, Ok(Some("back".into()))))
        .await
        .unwrap();
    let key = format!("{prefix}memory:{{after}}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backplane_subscription_gone_silent_is_found_by_its_ping_and_l1_is_flushed() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let link = warmline::cache::RedisLink::new(&warmline::cache::RedisSettings {
        command_timeout: Duration::from_millis(100),
        backplane_ping: Duration::from_millis(200),
        ..warmline::cache::RedisSettings::new(redis.url())
    })
    .unwrap();
    let cache = warmline::cache::Cache::new(warmline::cache::CacheConfig {
        policies: Policies::default(),
        redis: Some(link),
        redis_prefix: unique_prefix(),
        store: None,
    });
    let memory = cache.namespace::<String>(Namespace::Memory);
    assert!(wait_until(Duration::from_secs(5), || cache.backplane_connected()).await);
    memory.set("acme:+14155550123", "v1".into()).await;
    assert!(memory.peek_l1("acme:+14155550123").is_some());
    assert_eq!(cache.stats().backplane.unwrap().silences, 0);

    // Every client of the server paused: the subscription stays open but
    // nothing flows through it, as behind a dead NAT entry or a hung proxy.
    // Invalidations may be going missing; the replica must notice.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(4_000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || memory
            .peek_l1("acme:+14155550123")
            .is_none())
        .await,
        "L1 is flushed once the ping does not come back"
    );
    let stats = cache.stats().backplane.unwrap();
    assert!(stats.silences >= 1, "{stats:?}");
    assert!(!stats.connected, "{stats:?}");

    // Once the server answers again, the backplane resubscribes.
    assert!(wait_until(Duration::from_secs(15), || cache.backplane_connected()).await);
}

/// Whether the private Redis holds `raw`; `None` while it does not answer
/// (paused).
async fn exists(conn: &mut redis::aio::MultiplexedConnection, raw: &str) -> Option<bool> {
    redis::cmd("EXISTS")
        .arg(raw)
        .query_async::<u64>(conn)
        .await
        .ok()
        .map(|n| n == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_redis_did_not_take_is_made_again_once_it_answers() {
    use warmline::cache::keys;
    use warmline::domain::{PhoneNumber, TenantId};
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let a = cache(Some(&redis.url()), &prefix, Policies::default(), None);
    let b = cache(Some(&redis.url()), &prefix, Policies::default(), None);
    let (on_a, on_b) = (
        a.namespace::<String>(Namespace::Contact),
        b.namespace::<String>(Namespace::Contact),
    );
    assert!(
        wait_until(Duration::from_secs(5), || a.backplane_connected()
            && b.backplane_connected())
        .await
    );
    let tenant = TenantId::parse("acme").unwrap();
    let caller = PhoneNumber::parse("+14155550123").unwrap();
    let key = keys::caller(&tenant, &caller);
    let raw = format!("{prefix}contact:{{{key}}}");
    let calls = Arc::new(AtomicUsize::new(0));
    on_a.get_or_load(&key, counting(&calls, 0, Ok(Some("2 calls".into()))))
        .await
        .unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while exists(&mut conn, &raw).await != Some(true) {
        assert!(Instant::now() < deadline, "the contact reaches L2");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Redis stalls, its data kept: A's lookups time out and open its
    // breaker, so the drop after the caller's call ended does not get
    // through, to L2 or to B.
    redis.pause(3000).await;
    for i in 0..3 {
        let _ = on_a
            .get_or_load(
                &format!("cold{i}"),
                counting(&calls, 0, Ok(Some("x".into()))),
            )
            .await;
    }
    assert_eq!(a.stats().l2.unwrap().breaker, BreakerState::Open);
    a.caller_changed(&tenant, &caller, &[Namespace::Contact], &[])
        .await;
    assert_eq!(a.stats().l2.unwrap().owed_drops, 1, "the drop is owed");

    // Once Redis answers, the old value leaves L2, and a replica reading
    // the contact loads the new one instead of serving the old for its
    // 30-minute window.
    let deadline = Instant::now() + Duration::from_secs(20);
    while exists(&mut conn, &raw).await != Some(false) {
        assert!(Instant::now() < deadline, "the owed drop reaches L2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let l = on_b
        .get_or_load(&key, counting(&calls, 0, Ok(Some("3 calls".into()))))
        .await
        .unwrap();
    assert_eq!(l.value.as_deref().map(String::as_str), Some("3 calls"));
    assert!(
        wait_until(Duration::from_secs(5), || a.stats().l2.unwrap().owed_drops
            == 0)
        .await,
        "nothing is owed once Redis took it"
    );
}
