//! Redis Cluster, chosen by `WARMLINE_REDIS_CLUSTER=on` with the seed nodes
//! in `REDIS_URL`: L2, the lease, the replay cache, flushes (which must scan
//! every master) and the backplane on a private cluster of three masters.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use warmline::cache::{
    Cache, CacheConfig, FlushScope, LoadError, Namespace, Policies, RedisLink, Tier,
};

use crate::helpers::cache::{counting, unique_prefix, wait_until};
use crate::helpers::cluster::PrivateCluster;
use crate::helpers::settings_with;

fn cluster_cache(seeds: &str, prefix: &str) -> Cache {
    let settings = settings_with(&[
        ("REDIS_URL", seeds),
        ("WARMLINE_REDIS_CLUSTER", "on"),
        ("WARMLINE_REDIS_TIMEOUT_MS", "1000"),
    ]);
    let link = RedisLink::new(settings.cache.redis.as_ref().unwrap()).expect("cluster link");
    Cache::new(CacheConfig {
        policies: Policies::default(),
        redis: Some(link),
        redis_prefix: prefix.to_owned(),
        store: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_serves_l2_leases_replays_flushes_on_every_master_and_the_backplane() {
    let Some(cluster) = PrivateCluster::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let (a, b) = (
        cluster_cache(&cluster.seeds(), &prefix),
        cluster_cache(&cluster.seeds(), &prefix),
    );
    assert!(
        wait_until(Duration::from_secs(10), || a.backplane_connected()
            && b.backplane_connected())
        .await,
        "both subscribe through a node of the cluster"
    );
    let must_not_load = || async { Err::<Option<String>, _>(LoadError::new("must come from L2")) };

    // L2: what A writes, B reads from the cluster.
    let (ma, mb) = (
        a.namespace::<String>(Namespace::Memory),
        b.namespace::<String>(Namespace::Memory),
    );
    for n in 0..24 {
        ma.set(&format!("acme:+1415555{n:04}"), format!("a{n}"))
            .await;
        ma.set(&format!("zen:+1415555{n:04}"), format!("z{n}"))
            .await;
    }
    let got = mb
        .get_or_load("acme:+14155550007", must_not_load)
        .await
        .unwrap();
    assert_eq!(
        (got.tier, got.value.as_deref().map(String::as_str)),
        (Tier::L2, Some("a7"))
    );

    // The replay cache is a namespace like the others.
    a.namespace::<String>(Namespace::Replay)
        .set("acme:vapi:tc-1", "{\"booked\":true}".into())
        .await;
    let replay = b
        .namespace::<String>(Namespace::Replay)
        .get_or_load("acme:vapi:tc-1", must_not_load)
        .await
        .unwrap();
    assert_eq!(replay.tier, Tier::L2);

    // The lease: a cold key asked on both at once is loaded once. (First
    // B hears every invalidation A's writes sent: one arriving during B's
    // load would rightly keep B from storing a value A waits for.)
    let published = a.stats().backplane.unwrap().published;
    assert!(
        wait_until(Duration::from_secs(10), || b
            .stats()
            .backplane
            .unwrap()
            .received
            >= published)
        .await
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let (ra, rb) = tokio::join!(
        ma.get_or_load(
            "acme:+19995550000",
            counting(&calls, 300, Ok(Some("v".into())))
        ),
        mb.get_or_load(
            "acme:+19995550000",
            counting(&calls, 300, Ok(Some("v".into())))
        ),
    );
    assert_eq!(ra.unwrap().value.as_deref().map(String::as_str), Some("v"));
    assert_eq!(rb.unwrap().value.as_deref().map(String::as_str), Some("v"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "loaded once across replicas"
    );

    // The keys are spread over the masters, so a flush must scan them all.
    let pattern = format!("{prefix}memory:*");
    let mut holding = 0;
    for port in &cluster.ports {
        if !cluster.keys_on(*port, &pattern).await.is_empty() {
            holding += 1;
        }
    }
    assert!(holding >= 2, "entries spread over {holding} master(s) only");

    // B holds one in L1; A's flush of tenant acme in `memory` removes every
    // acme entry on every master and B's copy, and leaves zen alone.
    assert!(mb.peek_l1("acme:+14155550007").is_some());
    let report = a
        .flush(&FlushScope::Prefix {
            ns: Namespace::Memory,
            prefix: "acme:".into(),
        })
        .await;
    assert_eq!(report.l2_error, None);
    assert_eq!(report.flushed, 25, "24 set + the leased load");
    let mut left = Vec::new();
    for port in &cluster.ports {
        left.extend(cluster.keys_on(*port, &pattern).await);
    }
    assert_eq!(left.len(), 24, "only zen's entries are left: {left:?}");
    assert!(left.iter().all(|k| k.contains("zen:")), "{left:?}");
    assert!(
        wait_until(Duration::from_secs(5), || mb
            .peek_l1("acme:+14155550007")
            .is_none())
        .await,
        "the backplane reached B through the cluster"
    );

    // A whole namespace, across masters.
    let report = b.flush(&FlushScope::Namespace(Namespace::Memory)).await;
    assert_eq!((report.flushed, report.l2_error), (24, None));
    for port in &cluster.ports {
        assert!(cluster.keys_on(*port, &pattern).await.is_empty());
    }
}

#[test]
fn several_redis_urls_need_cluster_mode_and_a_cluster_prefix_has_no_braces() {
    let vars = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let err = warmline::settings::Settings::from_vars(&vars(&[(
        "REDIS_URL",
        "redis://10.0.0.1:6379,redis://10.0.0.2:6379",
    )]))
    .err()
    .expect("two servers without cluster mode");
    assert_eq!(err.var, "REDIS_URL");
    assert!(err.reason.contains("WARMLINE_REDIS_CLUSTER=on"), "{err}");
    let err = warmline::settings::Settings::from_vars(&vars(&[
        ("REDIS_URL", "redis://10.0.0.1:6379"),
        ("WARMLINE_REDIS_CLUSTER", "on"),
        ("WARMLINE_REDIS_PREFIX", "wl:{x}:"),
    ]))
    .err()
    .expect("braces pin every key to one slot");
    assert_eq!(err.var, "WARMLINE_REDIS_PREFIX");
}
