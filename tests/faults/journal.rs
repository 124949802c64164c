//! Spill journals written the way warmline writes them (through
//! `warmline::writebehind::Spill`), for the scenarios that start warmline on
//! a journal a crash or a bad disk left behind.

use warmline::domain::{CallEvent, CallId, CallPhase, PhoneNumber, Provider};
use warmline::writebehind::{Job, Spill};

use crate::helpers::voice::now_ms;
use crate::load::CALLED;

/// A spilled `call_ended` of `call_id`, as an acknowledged webhook leaves
/// it in the journal; returns it with its end time.
pub fn ended_job(call_id: &str, n: usize) -> (Job, i64) {
    let ended_at = now_ms() - 120_000 + n as i64;
    let mut event = CallEvent::new(
        Provider::Retell,
        CallId::parse(call_id).unwrap(),
        CallPhase::Ended,
        "call_ended",
    );
    let d = &mut event.details;
    d.caller = Some(PhoneNumber::parse(&format!("+1555290{:04}", n % 10_000)).unwrap());
    d.called = Some(PhoneNumber::parse(CALLED).unwrap());
    d.direction = Some("inbound".into());
    d.started_at_ms = Some(ended_at - 60_000);
    d.ended_at_ms = Some(ended_at);
    d.duration_ms = Some(60_000);
    d.disconnection_reason = Some("user_hangup".into());
    d.transcript = Some(format!(
        "Agent: Thanks for calling ({call_id}).\nUser: Hi!\n"
    ));
    let job = Job::CallEvent {
        event: Box::new(event),
        tenant_id: None,
        time_zone: None,
    };
    (job, ended_at)
}

/// The framed journal line of each job, as `Spill::append` writes it.
pub async fn framed_lines(jobs: &[Job]) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let spill = Spill::open(scratch.path().to_path_buf()).unwrap();
    for job in jobs {
        spill.append(std::slice::from_ref(job)).await.unwrap();
    }
    let text = std::fs::read_to_string(scratch.path().join("journal.ndjson")).unwrap();
    let lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
    assert_eq!(lines.len(), jobs.len());
    lines
}
