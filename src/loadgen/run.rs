//! Driving the load: the caller pool, its prefill, and the connections that
//! send a scenario's requests closed-loop or on a fixed schedule.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::client::{Connection, Failure};
use super::pace::Schedule;
use super::report::Series;
use super::scenario::{self, Party, Scenario, Secrets};
use super::{Options, seconds};

/// Latencies are recorded in microseconds, up to a minute.
const MAX_MICROS: u64 = 60_000_000;

/// What every series of a run shares.
pub struct Plan {
    host: String,
    callers: Arc<Vec<String>>,
    called: String,
    secrets: Secrets,
    day: String,
    concurrency: usize,
    prefill_concurrency: usize,
    rate: Option<u64>,
    warmup: Duration,
    duration: Duration,
    cold: f64,
    call_ids: bool,
    timeout: Duration,
    /// Tells this run's call ids apart from earlier runs' against the same
    /// server (events are stored once per id).
    run_id: String,
}

fn standing_call(run_id: &str, i: usize) -> String {
    format!("lg-{run_id}-{i}")
}

/// The pool's numbers: `+1555030NNNN`, distinct from the demo's own callers.
fn pool(size: usize) -> Vec<String> {
    (0..size)
        .map(|i| format!("+1555{:07}", 300_000 + i))
        .collect()
}

/// A weekday a week or two ahead, as YYYY-MM-DD, for `check_availability`.
fn weekday_ahead() -> String {
    use chrono::Datelike;
    let mut d = chrono::Utc::now().date_naive() + chrono::Duration::days(8);
    while matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
        d = d.succ_opt().unwrap_or(d);
    }
    d.to_string()
}

impl Plan {
    pub fn new(o: &Options, host: String) -> Self {
        Plan {
            host,
            callers: Arc::new(pool(o.callers)),
            called: o.called.clone(),
            secrets: o.secrets(),
            day: weekday_ahead(),
            concurrency: o.concurrency,
            prefill_concurrency: o.prefill_concurrency,
            rate: o.rate,
            warmup: Duration::from_secs(o.warmup),
            duration: Duration::from_secs(o.duration),
            cold: o.cold,
            call_ids: o.call_ids,
            timeout: Duration::from_millis(o.timeout_ms),
            run_id: format!("{:x}", chrono::Utc::now().timestamp_millis()),
        }
    }

    pub fn describe(&self, o: &Options) -> String {
        let mode = match self.rate {
            Some(r) => format!("fixed rate {r} req/s over {} connections", self.concurrency),
            None => format!("closed loop, {} connections", self.concurrency),
        };
        format!(
            "warmline loadgen: {} → {} ({mode}; {} s warm-up + {} s measured; {} callers, {:.0}% cold{})",
            o.scenario.name(),
            o.target,
            o.warmup,
            o.duration,
            self.callers.len(),
            self.cold * 100.0,
            if o.baseline { "; then /health" } else { "" },
        )
    }

    /// The standing call id of pool caller `i`: its session is cached by
    /// the prefill, and tool calls use it.
    fn standing_call(&self, i: usize) -> String {
        standing_call(&self.run_id, i)
    }

    /// Loads every pool caller's context (and, for the runs that use one,
    /// caches its standing call's session) with the scenario's inbound
    /// request, a few at a time.
    pub async fn prefill(&self, scenario: Scenario) -> anyhow::Result<()> {
        let started = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..self.prefill_concurrency {
            let (next, callers) = (next.clone(), self.callers.clone());
            let (host, secrets, called, day) = (
                self.host.clone(),
                self.secrets.clone(),
                self.called.clone(),
                self.day.clone(),
            );
            // A standing call (and its cached session) only where the run
            // needs one: Retell's documented inbound call has no id, and a
            // session per pool caller would be measured as the pool's.
            let sessions = !(scenario.warm_up() == Scenario::RetellInbound
                && !matches!(scenario, Scenario::RetellTool)
                && !self.call_ids);
            let ids: Vec<String> = (0..callers.len())
                .map(|i| {
                    if sessions {
                        self.standing_call(i)
                    } else {
                        String::new()
                    }
                })
                .collect();
            let timeout = self.timeout.max(Duration::from_secs(30));
            tasks.push(tokio::spawn(async move {
                let mut conn = Connection::new(host, timeout);
                let mut failures = BTreeMap::<Failure, u64>::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(caller) = callers.get(i) else { break };
                    let party = Party {
                        caller,
                        called: &called,
                        call_id: &ids[i],
                        day: &day,
                        n: 0,
                    };
                    let built = scenario::build(scenario.warm_up(), &party, &secrets);
                    if let Err(f) = conn.send(&built.request()).await {
                        *failures.entry(f).or_default() += 1;
                    }
                }
                failures
            }));
        }
        let mut failures = BTreeMap::<Failure, u64>::new();
        for t in tasks {
            for (f, n) in t.await? {
                *failures.entry(f).or_default() += n;
            }
        }
        if !failures.is_empty() {
            let kinds: Vec<String> = failures.iter().map(|(f, n)| format!("{f} × {n}")).collect();
            anyhow::bail!(
                "prefilling {} callers failed: {} (is warmline running at the target, and are the secrets the ones it checks?)",
                self.callers.len(),
                kinds.join(", ")
            );
        }
        eprintln!(
            "prefilled {} callers in {:.1} s",
            self.callers.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Drives `scenario` for the warm-up and the measured period.
    pub async fn drive(&self, scenario: Scenario) -> Series {
        let progress = Arc::new(Progress::default());
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let end = measure_from + self.duration;
        let schedule = self.rate.map(|r| Arc::new(Schedule::start(r, start, end)));
        let ticker = tokio::spawn(report_progress(
            progress.clone(),
            scenario,
            start,
            self.warmup,
            end,
        ));
        let mut tasks = Vec::new();
        for id in 0..self.concurrency {
            let worker = Worker {
                id,
                scenario,
                host: self.host.clone(),
                callers: self.callers.clone(),
                called: self.called.clone(),
                secrets: self.secrets.clone(),
                day: self.day.clone(),
                run_id: self.run_id.clone(),
                cold: self.cold,
                call_ids: self.call_ids,
                schedule: schedule.clone(),
                timeout: self.timeout,
                progress: progress.clone(),
            };
            tasks.push(tokio::spawn(worker.run(measure_from, end)));
        }
        let mut histogram = new_histogram();
        let mut failures = BTreeMap::<String, u64>::new();
        for t in tasks {
            if let Ok((h, f)) = t.await {
                let _ = histogram.add(&h);
                for (k, n) in f {
                    *failures.entry(k.to_string()).or_default() += n;
                }
            }
        }
        ticker.abort();
        // Until the last answer: a fixed rate the server cannot keep up
        // with finishes late, and its figure is what was served, not what
        // was asked for.
        let measured = Instant::now().saturating_duration_since(measure_from);
        Series {
            name: scenario.name().to_owned(),
            rate: self.rate,
            concurrency: self.concurrency,
            ok_per_second: histogram.len() as f64 / seconds(measured),
            failures,
            histogram,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .expect("1 µs to a minute at 3 significant figures is a valid histogram")
}

#[derive(Default)]
struct Progress {
    ok: AtomicU64,
    failed: AtomicU64,
}

async fn report_progress(
    p: Arc<Progress>,
    scenario: Scenario,
    start: Instant,
    warmup: Duration,
    end: Instant,
) {
    let tty = std::io::stderr().is_terminal();
    let (mut last_ok, mut last_at) = (0, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let ok = p.ok.load(Ordering::Relaxed);
        let rate = (ok - last_ok) as f64 / seconds(now - last_at);
        (last_ok, last_at) = (ok, now);
        let elapsed = now - start;
        let phase = if elapsed < warmup {
            "warm-up"
        } else {
            "measuring"
        };
        let line = format!(
            "[{:>3} s/{} s] {} {phase}: {rate:>9.0} req/s, {} failed",
            elapsed.as_secs(),
            (end - start).as_secs(),
            scenario.name(),
            p.failed.load(Ordering::Relaxed)
        );
        if tty {
            eprint!("\r{line}   ");
        } else if elapsed.as_secs().is_multiple_of(5) {
            eprintln!("{line}");
        }
        if now >= end {
            break;
        }
    }
    if tty {
        eprintln!();
    }
}

/// Who calls, request by request: a caller of the pool, or (the cold
/// share) a new number. Where a scenario's requests come in pairs (a call's
/// start, then its end), both are the same caller's.
struct Callers {
    pool: Arc<Vec<String>>,
    cold: f64,
    pairs: bool,
    last: Option<(String, Option<usize>)>,
}

impl Callers {
    /// The caller of the n-th request, and their index in the pool.
    fn pick(&mut self, n: u64, rng: &mut fastrand::Rng) -> (String, Option<usize>) {
        if self.pairs
            && !n.is_multiple_of(2)
            && let Some(last) = &self.last
        {
            return last.clone();
        }
        let picked = if self.cold > 0.0 && rng.f64() < self.cold {
            (format!("+1556{:07}", rng.u32(..10_000_000)), None)
        } else {
            let i = rng.usize(..self.pool.len());
            (self.pool[i].clone(), Some(i))
        };
        if self.pairs {
            self.last = Some(picked.clone());
        }
        picked
    }
}

/// One connection's share of a series.
struct Worker {
    id: usize,
    scenario: Scenario,
    host: String,
    callers: Arc<Vec<String>>,
    called: String,
    secrets: Secrets,
    day: String,
    run_id: String,
    cold: f64,
    call_ids: bool,
    /// Fixed rate: when each request is due. Closed loop without.
    schedule: Option<Arc<Schedule>>,
    timeout: Duration,
    progress: Arc<Progress>,
}

impl Worker {
    /// Whether a pool caller's request is the same every time (no call id
    /// of its own, or its standing call's).
    fn repeats_requests(&self) -> bool {
        match self.scenario {
            Scenario::Health | Scenario::RetellTool | Scenario::VapiTool | Scenario::ContextApi => {
                true
            }
            Scenario::RetellInbound => !self.call_ids,
            _ => false,
        }
    }

    async fn run(
        self,
        measure_from: Instant,
        end: Instant,
    ) -> (Histogram<u64>, BTreeMap<Failure, u64>) {
        let mut histogram = new_histogram();
        let mut failures = BTreeMap::new();
        let mut conn = Connection::new(self.host.clone(), self.timeout);
        let mut rng = fastrand::Rng::new();
        let mut seq = 0u64;
        let mut callers = Callers {
            pool: self.callers.clone(),
            cold: self.cold,
            pairs: self.scenario == Scenario::RetellEvents,
            last: None,
        };
        let mut prepared = std::collections::HashMap::<usize, (i64, scenario::Built)>::new();
        loop {
            // When this request is due: now (closed loop) or on the schedule.
            let due = match &self.schedule {
                None => Instant::now(),
                Some(s) => match s.next().await {
                    Some(due) => due,
                    None => break,
                },
            };
            if due >= end {
                break;
            }
            let n = seq;
            seq += 1;
            let (caller, pool_index) = callers.pick(n, &mut rng);
            let call_id = match (self.scenario, pool_index) {
                (Scenario::RetellTool | Scenario::VapiTool, Some(i)) => {
                    standing_call(&self.run_id, i)
                }
                // A start and then the end of the same call.
                (Scenario::RetellEvents, _) => {
                    format!("lg-{}-w{}-{}", self.run_id, self.id, n / 2)
                }
                (Scenario::Health | Scenario::ContextApi, _) => String::new(),
                (Scenario::RetellInbound, _) if !self.call_ids => String::new(),
                _ => format!("lg-{}-w{}-{n}", self.run_id, self.id),
            };
            let party = Party {
                caller: &caller,
                called: &self.called,
                call_id: &call_id,
                day: &self.day,
                n,
            };
            // A pool caller's request that is the same every time is built
            // (and signed) once a second, not per request: the generator
            // shares the machine with the server it measures.
            let reusable = pool_index.filter(|_| self.repeats_requests());
            let second = chrono::Utc::now().timestamp();
            let key = reusable.unwrap_or(usize::MAX);
            if reusable.is_none() || prepared.get(&key).is_none_or(|(at, _)| *at != second) {
                let built = scenario::build(self.scenario, &party, &self.secrets);
                prepared.insert(key, (second, built));
            }
            let Some((_, built)) = prepared.get(&key) else {
                continue;
            };
            let result = conn.send(&built.request()).await;
            let took = due.elapsed();
            match result {
                Ok(()) => {
                    self.progress.ok.fetch_add(1, Ordering::Relaxed);
                    if due >= measure_from {
                        let micros = (took.as_micros() as u64).clamp(1, MAX_MICROS);
                        let _ = histogram.record(micros);
                    }
                }
                Err(f) => {
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                    if due >= measure_from {
                        *failures.entry(f).or_default() += 1;
                    }
                }
            }
        }
        (histogram, failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(pairs: bool, cold: f64) -> Vec<(String, Option<usize>)> {
        let pool: Vec<String> = (0..300).map(|i| format!("+1555{i:07}")).collect();
        let mut callers = Callers {
            pool: Arc::new(pool),
            cold,
            pairs,
            last: None,
        };
        let mut rng = fastrand::Rng::with_seed(7);
        (0..400).map(|n| callers.pick(n, &mut rng)).collect()
    }

    #[test]
    fn a_calls_start_and_end_come_from_one_caller_and_calls_from_many() {
        for cold in [0.0, 0.5] {
            let p = picks(true, cold);
            assert!(p.chunks(2).all(|pair| pair[0] == pair[1]), "cold {cold}");
            let starts: std::collections::HashSet<_> = p.iter().step_by(2).collect();
            assert!(starts.len() > 100, "cold {cold}: {} callers", starts.len());
        }
        // Unpaired scenarios pick afresh for every request.
        let p = picks(false, 0.0);
        assert!(p.chunks(2).any(|pair| pair[0] != pair[1]));
    }
}
