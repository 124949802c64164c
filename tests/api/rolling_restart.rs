//! A rolling restart of the real binary: SIGTERM in the middle of a burst of
//! call events. `/ready` answers 503 from the signal on, events are still
//! served through the drain period, the process exits cleanly, and every
//! event it acknowledged is in the database.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;
use warmline::domain::{CallId, Provider};
use warmline::simulator::{SimConfig, Simulator};

use crate::helpers::voice::{RETELL_KEY, now_ms, retell_call};
use crate::helpers::{TestDb, free_port, wait_until_serving};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_of_call_events_stores_every_acknowledged_event_and_ready_was_503_in_the_drain()
 {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let sim = Simulator::start(SimConfig::default()).expect("simulator starts");
    let store = db.store().await;
    store
        .upsert_tenant(&crate::helpers::demo_tenant(&sim.url))
        .await
        .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmline"))
        .current_dir(dir.path())
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .env("WARMLINE_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db.url())
        .env("WARMLINE_SPILL_DIR", dir.path().join("spill"))
        .env("WARMLINE_DEMO", "off")
        .env("RETELL_API_KEY", RETELL_KEY)
        .env("WARMLINE_SHUTDOWN_DRAIN_MS", "1500")
        .env("WARMLINE_SHUTDOWN_GRACE_MS", "5000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    wait_until_serving(&base).await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    // Set once `/ready` has answered 503; events acknowledged after it
    // were served during the drain.
    let saw_503 = Arc::new(AtomicBool::new(false));
    let acked_in_drain = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for s in 0..4 {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        let (saw_503, acked_in_drain) = (saw_503.clone(), acked_in_drain.clone());
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("call_roll_{s}_{n}");
                let event = json!({ "event": "call_started", "call": retell_call(&id, &format!("+1555030{s}{:03}", n % 1000)) });
                let body = event.to_string();
                let sig = warmline::webhooks::signature::sign_retell(
                    body.as_bytes(),
                    RETELL_KEY.as_bytes(),
                    now_ms(),
                );
                let sent = client
                    .post(format!("{base}/retell/events"))
                    .header("content-type", "application/json")
                    .header("x-retell-signature", sig)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let in_drain = saw_503.load(Ordering::Acquire);
                        acked.lock().await.push(id);
                        if in_drain {
                            acked_in_drain.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Refused or cut off: the platform would retry it.
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }

    // Let the burst run, then SIGTERM in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().await.len() < 40 {
        assert!(Instant::now() < deadline, "the burst never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = {
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::spawn(async move { stop_with_sigterm_wait(&mut child).await })
    };
    // `/ready` turns 503 (and says why) while the process still serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client.get(format!("{base}/ready")).send().await;
        if let Ok(r) = r
            && r.status() == 503
        {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["status"], "shutting_down", "{body}");
            saw_503.store(true, Ordering::Release);
            break;
        }
        assert!(Instant::now() < deadline, "/ready never turned 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for s in senders {
        s.await.unwrap();
    }
    let status = stopping.await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        acked_in_drain.load(Ordering::Relaxed) > 0,
        "events were still served after /ready said 503"
    );

    let acked = acked.lock().await.clone();
    let mut missing = Vec::new();
    for id in &acked {
        let call = store
            .call(Provider::Retell, &CallId::parse(id).unwrap())
            .await
            .unwrap();
        if call.is_none() {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are not stored: {missing:?}",
        missing.len(),
        acked.len()
    );
}

/// Waits for a process already sent SIGTERM to exit.
async fn stop_with_sigterm_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("did not stop within 30 s of SIGTERM");
}
