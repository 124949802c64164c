//! A write-behind batch applied in one transaction, many rows per statement,
//! means what the same jobs applied one by one mean: on SQLite and Postgres.

use warmline::domain::{CallEvent, CallId, CallPhase, PhoneNumber, Provider, TenantId, WriteBack};
use warmline::store::{CallRecord, CallStatus, CallStep, CallerCounts, NewTenant, StepKind, Store};
use warmline::writebehind::{Job, Outcome, commit_jobs};

use crate::helpers::TestDb;

const TENANT: &str = "batch-dental";
const CALLER: &str = "+14155550123";
/// More calls than one statement takes, and not a power of two: the
/// batch is split into statements of several sizes.
const MANY: usize = 100;
/// Noon UTC on 2026-12-05: the same day in New York.
const DAY_MS: i64 = 1_796_472_000_000;

fn event(call: &str, phase: CallPhase, name: &str) -> CallEvent {
    let mut e = CallEvent::new(Provider::Retell, CallId::parse(call).unwrap(), phase, name);
    e.details.caller = Some(PhoneNumber::parse(CALLER).unwrap());
    e.details.called = Some(PhoneNumber::parse("+15550100009").unwrap());
    e.details.direction = Some("inbound".into());
    e.details.started_at_ms = Some(DAY_MS);
    if phase != CallPhase::Started {
        e.details.ended_at_ms = Some(DAY_MS + 60_000);
        e.details.transcript = Some(format!("User: {name}"));
    }
    e
}

fn job(e: CallEvent) -> Job {
    Job::CallEvent {
        event: Box::new(e),
        tenant_id: Some(TenantId::parse(TENANT).unwrap()),
        time_zone: Some(chrono_tz::America::New_York),
    }
}

fn step(key: &str, call: &str) -> Job {
    Job::CallStep {
        step: Box::new(CallStep {
            key: key.into(),
            provider: Provider::Retell,
            call_id: CallId::parse(call).unwrap(),
            at_ms: DAY_MS,
            latency_ms: 3,
            what: StepKind::Tool {
                tool: "check_availability".into(),
                arguments: None,
                answer: "Monday at 9:00 AM.".into(),
                ok: true,
            },
        }),
    }
}

async fn stored_call(store: &Store, call: &str) -> CallRecord {
    let id = CallId::parse(call).unwrap();
    store
        .call(Provider::Retell, &id)
        .await
        .unwrap()
        .expect("stored")
}

/// The caller's calls as their contact row counts them.
async fn calls_counted(store: &Store) -> i64 {
    let (tenant, caller) = (
        TenantId::parse(TENANT).unwrap(),
        PhoneNumber::parse(CALLER).unwrap(),
    );
    store
        .contact(&tenant, &caller)
        .await
        .unwrap()
        .expect("counted")
        .total_calls
}

async fn a_batch_means_what_its_jobs_mean_one_by_one(store: Store) {
    store
        .upsert_tenant(&NewTenant {
            id: TenantId::parse(TENANT).unwrap(),
            phone_number: PhoneNumber::parse("+15550100009").unwrap(),
            name: "Batch Dental".into(),
            time_zone: "America/New_York".into(),
            config: serde_json::json!({ "crm": { "kind": "gohighlevel" } }).to_string(),
            is_demo: false,
        })
        .await
        .unwrap();
    // One call's start, end and analysis in one batch (one statement
    // cannot change a row twice), the end delivered twice, a step twice,
    // then many calls that start and end.
    let mut jobs = vec![
        job(event("call_one", CallPhase::Started, "call_started")),
        job(event("call_one", CallPhase::Ended, "call_ended")),
        job(event("call_one", CallPhase::Ended, "call_ended")),
        job(event("call_one", CallPhase::Analyzed, "call_analyzed")),
        step("step_one", "call_one"),
        step("step_one", "call_one"),
    ];
    for i in 0..MANY {
        let call = format!("call_many_{i}");
        jobs.push(job(event(&call, CallPhase::Started, "call_started")));
        jobs.push(job(event(&call, CallPhase::Ended, "call_ended")));
    }
    let refs: Vec<&Job> = jobs.iter().collect();
    let outcomes = commit_jobs(&store, &refs).await.unwrap();

    // Every end hears its caller's counts as the batch left them.
    let counted = |total_calls: usize| {
        Outcome::CallEnded(Some(CallerCounts {
            total_calls: total_calls as i64,
            last_call_at_ms: Some(DAY_MS),
        }))
    };
    let mut expected = vec![
        Outcome::Applied,
        counted(MANY + 1),
        Outcome::Duplicate,
        Outcome::Applied,
        Outcome::Applied,
        Outcome::Duplicate,
    ];
    expected.extend([Outcome::Applied, counted(MANY + 1)].repeat(MANY));
    assert_eq!(outcomes, expected);

    let one = stored_call(&store, "call_one").await;
    assert_eq!(one.status, CallStatus::Analyzed);
    assert_eq!(one.details.ended_at_ms, Some(DAY_MS + 60_000));
    assert_eq!(one.details.duration_ms, Some(60_000));
    assert_eq!(
        one.details.transcript.as_deref(),
        Some("User: call_analyzed"),
        "the later event's words win"
    );
    assert_eq!(
        stored_call(&store, "call_many_99").await.status,
        CallStatus::Ended
    );
    assert_eq!(
        store
            .call_steps(Provider::Retell, &one.call_id)
            .await
            .unwrap()
            .len(),
        1
    );

    // Each call counted once, for its caller and its day.
    let tenant = TenantId::parse(TENANT).unwrap();
    assert_eq!(calls_counted(&store).await, MANY as i64 + 1);
    let days = store
        .daily_metrics(Some(&tenant), "2026-12-05", "2026-12-05")
        .await
        .unwrap();
    assert_eq!(days.iter().map(|d| d.calls).sum::<i64>(), MANY as i64 + 1);
    assert_eq!(
        days.iter().map(|d| d.total_duration_ms).sum::<i64>(),
        (MANY as i64 + 1) * 60_000
    );
    // And one write-back to the CRM per call.
    let queued = store.claim_writebacks(1000, 60_000).await.unwrap();
    let crm = queued
        .iter()
        .filter(|q| matches!(q.job, Ok(WriteBack::Crm { .. })))
        .count();
    assert_eq!(crm, MANY + 1);

    // The same batch again (a replayed journal) changes nothing.
    let again = commit_jobs(&store, &refs).await.unwrap();
    assert!(again.iter().all(|o| *o == Outcome::Duplicate), "{again:?}");
    // A later event of an ended call merges without counting it again.
    let late = job(event(
        "call_one",
        CallPhase::Analyzed,
        "call_analyzed_again",
    ));
    assert_eq!(
        commit_jobs(&store, &[&late]).await.unwrap(),
        [Outcome::Applied]
    );
    assert_eq!(calls_counted(&store).await, MANY as i64 + 1);
    // A later batch's end hears the counts with its own call.
    let next = job(event("call_next", CallPhase::Ended, "call_ended"));
    assert_eq!(
        commit_jobs(&store, &[&next]).await.unwrap(),
        [counted(MANY + 2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_means_what_its_jobs_mean_one_by_one_on_sqlite() {
    let db = TestDb::sqlite();
    a_batch_means_what_its_jobs_mean_one_by_one(db.store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_means_what_its_jobs_mean_one_by_one_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_batch_means_what_its_jobs_mean_one_by_one(db.store().await).await;
}
