//! A rolling restart loses nothing: on SIGTERM `/ready` turns 503 at once,
//! requests are still served through the drain period (a load balancer
//! takes a few probes to notice), in-flight webhooks finish, and every event
//! acknowledged on the way is in the database when the process is gone.

use std::time::{Duration, Instant};

use serde_json::json;
use warmline::domain::{CallId, Provider};
use warmline::simulator::{Knob, endpoints};

use crate::helpers::voice::{retell, retell_call, secrets};
use crate::helpers::{TestDb, spawn_with_simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_turns_ready_503_serves_through_the_drain_and_loses_no_acknowledged_event() {
    let mut vars = secrets();
    vars.push(("WARMLINE_SHUTDOWN_DRAIN_MS", "1500"));
    let (app, sim) = spawn_with_simulator(TestDb::sqlite(), &vars).await;
    let app = std::sync::Arc::new(app);
    // First calls wait on a slow CRM: in flight when shutdown begins.
    sim.state
        .set_knob(endpoints::GHL_FIND_CONTACT, Knob::latency(400))
        .unwrap();
    let mut in_flight = Vec::new();
    for n in 0..8 {
        let app = app.clone();
        in_flight.push(tokio::spawn(async move {
            let caller = format!("+1555020{n:04}");
            let inbound = json!({ "event": "call_inbound", "call_inbound": { "from_number": caller, "to_number": "+15550100000" } });
            let (inbound, _) = retell(&app, "/retell/inbound", &inbound).await;
            let started = json!({ "event": "call_started", "call": retell_call(&format!("call_drain_{n}"), &caller) });
            let (started, _) = retell(&app, "/retell/events", &started).await;
            (inbound, started)
        }));
    }
    let stop = app.stop.clone();
    let stopping = tokio::spawn(async move { stop.stop().await });

    // `/ready` says 503 at once, while requests are still served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = app.get("/ready").await;
        if resp.status() == 503 {
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["status"], "shutting_down", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/ready never turned 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let late =
        json!({ "event": "call_started", "call": retell_call("call_drain_late", "+15550100001") });
    let (status, answer) = retell(&app, "/retell/events", &late).await;
    assert_eq!(
        status, 200,
        "a request during the drain is served: {answer}"
    );

    for task in in_flight {
        assert_eq!(task.await.unwrap(), (200, 200));
    }
    stopping.await.unwrap();
    assert!(
        app.client
            .get(format!("{}/health", app.address))
            .send()
            .await
            .is_err(),
        "the listener is closed after the drain"
    );
    // Every acknowledged event is in the database.
    let store = app.db.as_ref().unwrap().store().await;
    let ids = (0..8)
        .map(|n| format!("call_drain_{n}"))
        .chain(["call_drain_late".to_owned()]);
    for id in ids {
        let call = store
            .call(Provider::Retell, &CallId::parse(&id).unwrap())
            .await
            .unwrap();
        assert!(call.is_some(), "{id} was acknowledged but is not stored");
    }
}
