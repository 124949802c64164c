//! After recovery: every acknowledged event is looked for in the database
//! (until found or a generous deadline), `/metrics` is read, and the
//! scenario's row is printed and written to `tests/faults/RESULTS.md`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use warmline::domain::{CallId, Provider};
use warmline::store::{CallStatus, Store};

use crate::helpers::settings_with;
use crate::load::{Phase, Tally};

/// A store on the database the scenario's warmline uses (migrated by it).
pub fn store(database_url: &str) -> Store {
    let settings = settings_with(&[("DATABASE_URL", database_url)]);
    Store::connect_lazy(&settings.database).expect("store")
}

/// Something acknowledged that must be in the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expect {
    /// The call exists (its `call_started` was acknowledged).
    Call(String),
    /// The call ended at this time (its `call_ended` was acknowledged).
    Ended(String, i64),
    /// The call has a fallback record (a tool answered after taking it).
    Fallback(String),
}

impl Expect {
    fn describe(&self) -> String {
        match self {
            Expect::Call(id) => format!("{id} started"),
            Expect::Ended(id, _) => format!("{id} ended"),
            Expect::Fallback(id) => format!("{id} fallback"),
        }
    }
}

/// What the tally says must be stored.
pub fn expected(tally: &Tally) -> Vec<Expect> {
    let mut all: Vec<Expect> = tally
        .acked
        .iter()
        .map(|a| match (a.phase, a.ended_at_ms) {
            (Phase::Ended, Some(at)) => Expect::Ended(a.call_id.clone(), at),
            _ => Expect::Call(a.call_id.clone()),
        })
        .chain(tally.tool_fallbacks.iter().cloned().map(Expect::Fallback))
        .collect();
    all.sort();
    all.dedup();
    all
}

async fn holds(store: &Store, e: &Expect) -> bool {
    let id = |raw: &str| CallId::parse(raw).expect("a valid call id");
    match e {
        Expect::Call(raw) => matches!(store.call(Provider::Retell, &id(raw)).await, Ok(Some(_))),
        Expect::Ended(raw, at) => match store.call(Provider::Retell, &id(raw)).await {
            Ok(Some(c)) => {
                matches!(c.status, CallStatus::Ended | CallStatus::Analyzed)
                    && c.details.ended_at_ms == Some(*at)
            }
            _ => false,
        },
        Expect::Fallback(raw) => store
            .call_fallbacks(Provider::Retell, &id(raw))
            .await
            .is_ok_and(|f| !f.is_empty()),
    }
}

/// Waits (up to `within`) until every one of `expect` holds; returns those
/// that never did — acknowledged and lost.
pub async fn missing_after(store: &Store, expect: &[Expect], within: Duration) -> Vec<Expect> {
    let deadline = Instant::now() + within;
    let mut missing: Vec<Expect> = expect.to_vec();
    loop {
        let mut still = Vec::new();
        for e in missing {
            if !holds(store, &e).await {
                still.push(e);
            }
        }
        missing = still;
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A few of `lost`, for the failure message.
pub fn describe(lost: &[Expect]) -> String {
    let shown: Vec<String> = lost.iter().take(10).map(Expect::describe).collect();
    format!("{} lost, e.g. {}", lost.len(), shown.join(", "))
}

/// A `/metrics` scrape.
pub struct Metrics(String);

impl Metrics {
    pub async fn scrape(base: &str) -> Metrics {
        let text = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics text");
        Metrics(text)
    }

    /// Every series of `name`: labels (possibly empty) and value.
    fn series(&self, name: &str) -> Vec<(String, f64)> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?;
                let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                    let (labels, v) = r.split_once('}')?;
                    (labels.to_owned(), v)
                } else if rest.starts_with(' ') {
                    (String::new(), rest)
                } else {
                    return None;
                };
                Some((labels, value.trim().parse().ok()?))
            })
            .collect()
    }

    /// The sum over every series of `name` (0 when not exported).
    pub fn sum(&self, name: &str) -> f64 {
        self.series(name).iter().map(|(_, v)| v).sum()
    }

    /// The largest value of `name`'s series, if any.
    pub fn max(&self, name: &str) -> Option<f64> {
        self.series(name)
            .into_iter()
            .map(|(_, v)| v)
            .reduce(f64::max)
    }

    /// The sums of `name`'s series by the value of its `label`.
    pub fn sum_by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for (labels, v) in self.series(name) {
            let key = labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{label}=")))
                .map(|v| v.trim_matches('"').to_owned())
                .unwrap_or_default();
            *sums.entry(key).or_default() += v;
        }
        sums
    }

    /// `a=1,b=2`: the non-zero sums of `name` by `label`.
    pub fn by(&self, name: &str, label: &str) -> String {
        self.sum_by(name, label)
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A short form of `name` for the table: `warmline_writebehind_spilled_total`
/// is `spilled`.
fn short(name: &str) -> &str {
    let name = name.strip_prefix("warmline_").unwrap_or(name);
    let name = name.strip_prefix("writebehind_").unwrap_or(name);
    name.strip_suffix("_total").unwrap_or(name)
}

/// `spilled=12 replayed=12 …` for `names` (sums over labels).
pub fn metric_summary(m: &Metrics, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{}={}", short(n), m.sum(n)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One scenario's results row.
pub struct Row {
    pub scenario: String,
    pub tally_sent: u64,
    pub tally_ok: u64,
    pub failed: String,
    pub lost: usize,
    pub metrics: String,
}

impl Row {
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.scenario, self.tally_sent, self.tally_ok, self.failed, self.lost, self.metrics
        )
    }
}

const HEADER: &str = "# Fault-injection results

Written by `cargo test --test faults -- --ignored --test-threads=1` (see
`tests/faults/main.rs`): one row per scenario, replaced when it runs again.
`sent` counts every webhook (inbound calls, tool calls, call events), `2xx`
those answered 2xx, `failed` the others by kind (a failure during an outage
is retried by the platform), `lost` the acknowledged events (and fallback
records a tool answer vouched for) missing from the database after
recovery. Metrics are the last warmline process's `/metrics` at the end
(counters restart with the process).

| scenario | sent | 2xx | failed | lost | metrics |
|---|---|---|---|---|---|
";

static RESULTS: Mutex<()> = Mutex::new(());

/// Prints `row` and writes it into `RESULTS.md`, replacing the row of the
/// same scenario; rows are kept in scenario order.
pub fn record(row: &Row) {
    let line = row.markdown();
    // Past the test harness's capture, so it shows in a passing run too.
    let _ = writeln!(std::io::stdout(), "{line}");
    let _held = RESULTS.lock().unwrap_or_else(|p| p.into_inner());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/faults/RESULTS.md");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut rows: BTreeMap<String, String> = old
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario |"))
        .filter_map(|l| {
            let name = l.trim_start_matches("| ").split(" |").next()?.trim();
            Some((name.to_owned(), l.to_owned()))
        })
        .collect();
    rows.insert(row.scenario.clone(), line);
    let mut text = HEADER.to_owned();
    for r in rows.values() {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(path, text).expect("RESULTS.md written");
}
