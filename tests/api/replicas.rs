//! Three replicas on one Redis and one Postgres, each a whole warmline, all
//! serving the same tenant from one upstream simulator: a cold caller asked
//! on all three at once is loaded once (the Redis lease), GoHighLevel's quota
//! per location holds for the three together (counted in Redis), and a
//! backplane subscription gone silent flushes every replica's L1.

use std::time::Duration;

use serde_json::json;
use warmline::simulator::{Knob, SimConfig, Simulator, endpoints};

use crate::helpers::cache::wait_until;
use crate::helpers::voice::{retell, secrets};
use crate::helpers::{PrivateRedis, TestApp, TestDb, settings_with, spawn_with_settings};

/// Three replicas of one deployment: the same database, Redis and key
/// prefix; the tenant `demo-dental` on +15550100000 with the simulator as
/// its upstreams. Returns `None` (skipped) without Postgres or redis-server.
async fn three_replicas(
    extra: &[(&str, &str)],
) -> Option<(Vec<TestApp>, Simulator, PrivateRedis, TestDb)> {
    let db = TestDb::postgres().await?;
    let redis = PrivateRedis::start().await?;
    let sim = Simulator::start(SimConfig::default()).expect("simulator starts");
    let store = db.store().await;
    store
        .upsert_tenant(&crate::helpers::demo_tenant(&sim.url))
        .await
        .unwrap();
    let url = redis.url();
    let mut vars = secrets();
    vars.extend([
        ("DATABASE_URL", db.url()),
        ("REDIS_URL", url.as_str()),
        ("WARMLINE_REDIS_PREFIX", "wl-replicas:"),
        ("WARMLINE_REDIS_TIMEOUT_MS", "500"),
    ]);
    vars.extend_from_slice(extra);
    let mut apps = Vec::new();
    for _ in 0..3 {
        let app = spawn_with_settings(settings_with(&vars)).await;
        app.cache.warm_up().await;
        assert!(
            wait_until(Duration::from_secs(10), || app.cache.backplane_connected()).await,
            "replica subscribed"
        );
        apps.push(app);
    }
    sim.state.reset();
    Some((apps, sim, redis, db))
}

fn inbound(caller: &str) -> serde_json::Value {
    json!({ "event": "call_inbound", "call_inbound": { "from_number": caller, "to_number": "+15550100000" } })
}

/// Lookups of `ns` this replica has finished (any tier and outcome).
fn finished_lookups(app: &TestApp, ns: &str) -> u64 {
    app.cache.stats().namespaces[ns]
        .tiers
        .values()
        .flat_map(|outcomes| outcomes.values())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_load_a_cold_caller_once_and_share_the_gohighlevel_quota() {
    let Some((apps, sim, _redis, _db)) = three_replicas(&[
        ("WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_LIMIT", "5"),
        ("WARMLINE_UPSTREAM_GOHIGHLEVEL_RATE_WINDOW_MS", "600000"),
    ])
    .await
    else {
        return;
    };

    // 1. One cold caller on all three at once, the CRM slow enough for the
    //    three to overlap: one load, the others read it from L2.
    sim.state
        .set_knob(endpoints::GHL_FIND_CONTACT, Knob::latency(200))
        .unwrap();
    let caller = "+15550177001";
    let answers = futures_util::future::join_all(
        apps.iter()
            .map(|app| async move { retell(app, "/retell/inbound", &inbound(caller)).await.0 }),
    )
    .await;
    assert_eq!(answers, vec![200, 200, 200]);
    for app in &apps {
        assert!(
            wait_until(Duration::from_secs(10), || finished_lookups(app, "contact")
                >= 1
                && finished_lookups(app, "memory") >= 1)
            .await,
            "every replica's lookup finished"
        );
    }
    assert_eq!(
        sim.state.calls(endpoints::GHL_FIND_CONTACT),
        1,
        "the CRM was asked once for three replicas"
    );
    assert_eq!(
        sim.state.calls(endpoints::ZEP_CONTEXT),
        1,
        "and memory once"
    );

    // 2. The quota (5 per window here; GoHighLevel's is 100 per 10 s) is
    //    for the location, not per replica: 8 new callers on each replica
    //    make 5 requests in all, not 15. Every call is still answered.
    sim.state
        .set_knob(endpoints::GHL_FIND_CONTACT, Knob::latency(0))
        .unwrap();
    let throttled_before = throttled(&apps[0]).await;
    let mut sends = Vec::new();
    for (r, app) in apps.iter().enumerate() {
        for n in 0..8 {
            let caller = format!("+155501880{r}{n}");
            sends.push(async move { retell(app, "/retell/inbound", &inbound(&caller)).await.0 });
        }
    }
    let answers = futures_util::future::join_all(sends).await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let ghl: u64 = [
        endpoints::GHL_FIND_CONTACT,
        endpoints::GHL_UPSERT_CONTACT,
        endpoints::GHL_FREE_SLOTS,
        endpoints::GHL_BOOK,
    ]
    .iter()
    .map(|e| sim.state.calls(e))
    .sum();
    assert_eq!(
        ghl, 5,
        "1 earlier + 4 more within the location's quota of 5"
    );
    assert!(
        throttled(&apps[0]).await >= throttled_before + 19.0,
        "the requests kept back are counted"
    );
}

/// `warmline_upstream_throttled_total` by the shared counter (the process's
/// metrics: the three in-process replicas share them).
async fn throttled(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("warmline_upstream_throttled_total{")
                && l.contains("upstream=\"gohighlevel\"")
                && l.contains("counter=\"shared\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_backplane_flushes_the_l1_of_each_of_three_replicas() {
    let Some((apps, _sim, redis, _db)) =
        three_replicas(&[("WARMLINE_REDIS_BACKPLANE_PING_MS", "250")]).await
    else {
        return;
    };
    for app in &apps {
        let (status, _) = retell(app, "/retell/inbound", &inbound("+15550100001")).await;
        assert_eq!(status, 200);
        assert!(app.cache.stats().namespaces["tenant"].entries >= 1);
    }

    // The server stops delivering anything while every connection stays
    // open.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5_000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    for (n, app) in apps.iter().enumerate() {
        let flushed = wait_until(Duration::from_secs(4), || {
            let stats = app.cache.stats();
            stats.backplane.as_ref().is_some_and(|b| b.silences >= 1)
                && stats.namespaces.values().all(|ns| ns.entries == 0)
        })
        .await;
        assert!(flushed, "replica {n}: {:?}", app.cache.stats().backplane);
    }
    // And `/metrics` counts it.
    let text = apps[0].get("/metrics").await.text().await.unwrap();
    let silences: f64 = text
        .lines()
        .filter(|l| l.starts_with("warmline_cache_backplane_silences_total"))
        .filter_map(|l| l.rsplit(" ").next()?.parse::<f64>().ok())
        .sum();
    assert!(silences >= 3.0, "{silences}");
}
