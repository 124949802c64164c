//! What happened on a call, step by step, for its detail page: the context
//! the agent was answered with (and how: fresh, stale, parts missing) and
//! every mid-call tool call with its arguments, answer and latency.
//!
//! Written only by the write-behind (a step is recorded beside the answer,
//! never before it); each step has a unique key, so applying it twice (a
//! replayed spill journal) stores it once. Arguments and answers are bounded
//! here, whoever builds the step: a platform cannot grow a row without limit.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Conn, Result, Store, StoreError, many};
use crate::domain::{CallId, Provider};

/// Most bytes of a tool's arguments or answer kept (a few KB: enough to
/// read, not enough to fill the database).
pub const MAX_STEP_TEXT: usize = 4096;
/// Most bytes of a short field (a name, a part, a slot as spoken).
const MAX_SHORT: usize = 200;
/// Most slots (and parts) kept in a context step.
const MAX_ITEMS: usize = 10;

/// One step of a call. Serialisable: the write-behind carries it in its
/// journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStep {
    /// Unique per step: applying it again changes nothing.
    pub key: String,
    pub provider: Provider,
    pub call_id: CallId,
    /// When the step began (the request arrived).
    pub at_ms: i64,
    /// How long warmline took to answer it.
    pub latency_ms: i64,
    pub what: StepKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    /// The caller's context, as the agent was told it.
    Context {
        /// When it was answered: `inbound` (the platform asked before the
        /// call), `call_started` (assembled for the call's tools) or
        /// `fallback` (a tool came before the call's session was cached).
        source: String,
        answered: ContextAnswered,
    },
    /// A mid-call tool call.
    Tool {
        tool: String,
        /// The arguments as the platform sent them (JSON text, bounded).
        arguments: Option<String>,
        /// The sentence the agent got: the answer, or what went wrong.
        answer: String,
        ok: bool,
    },
}

/// What the agent was told about the caller, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextAnswered {
    /// The number was withheld: only the business was answered.
    #[serde(default)]
    pub caller_withheld: bool,
    pub customer_name: Option<String>,
    pub returning_caller: bool,
    pub total_calls: i64,
    /// Whether a summary of earlier conversations was given.
    pub memory_summary: bool,
    /// The free slots offered, as the agent says them.
    pub slots_offered: Vec<String>,
    /// Parts left out (not back within the deadline, or failed with nothing
    /// to fall back on): `contact`, `memory`, `slots`.
    pub missing: Vec<String>,
    /// Parts served stale (their upstream failed or was slow).
    pub stale: Vec<String>,
}

impl ContextAnswered {
    /// `partial` when a part is missing, else `stale` when one was served
    /// stale, else `fresh`.
    pub fn how(&self) -> &'static str {
        if !self.missing.is_empty() {
            "partial"
        } else if !self.stale.is_empty() {
            "stale"
        } else {
            "fresh"
        }
    }
}

impl StepKind {
    pub fn kind(&self) -> &'static str {
        match self {
            StepKind::Context { .. } => "context",
            StepKind::Tool { .. } => "tool",
        }
    }

    /// `ok` / `error` for a tool, `fresh` / `stale` / `partial` for context.
    pub fn outcome(&self) -> &'static str {
        match self {
            StepKind::Context { answered, .. } => answered.how(),
            StepKind::Tool { ok: true, .. } => "ok",
            StepKind::Tool { ok: false, .. } => "error",
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn bound_in_place(s: &mut String, max: usize) {
    if s.len() > max {
        *s = bounded(s, max);
    }
}

fn bound_list(items: &mut Vec<String>) {
    items.truncate(MAX_ITEMS);
    items.iter_mut().for_each(|s| bound_in_place(s, MAX_SHORT));
}

impl CallStep {
    /// Cuts every text to its bound (idempotent).
    pub fn bound(&mut self) {
        bound_in_place(&mut self.key, MAX_SHORT);
        match &mut self.what {
            StepKind::Context { source, answered } => {
                bound_in_place(source, MAX_SHORT);
                if let Some(n) = &mut answered.customer_name {
                    bound_in_place(n, MAX_SHORT);
                }
                bound_list(&mut answered.slots_offered);
                bound_list(&mut answered.missing);
                bound_list(&mut answered.stale);
            }
            StepKind::Tool {
                tool,
                arguments,
                answer,
                ..
            } => {
                bound_in_place(tool, MAX_SHORT);
                if let Some(a) = arguments {
                    bound_in_place(a, MAX_STEP_TEXT);
                }
                bound_in_place(answer, MAX_STEP_TEXT);
            }
        }
    }

    /// Every text of the step, to clean before it is stored.
    pub fn texts_mut(&mut self) -> Vec<&mut String> {
        let mut texts = vec![&mut self.key];
        match &mut self.what {
            StepKind::Context { source, answered } => {
                texts.push(source);
                texts.extend(answered.customer_name.as_mut());
                texts.extend(answered.slots_offered.iter_mut());
                texts.extend(answered.missing.iter_mut());
                texts.extend(answered.stale.iter_mut());
            }
            StepKind::Tool {
                tool,
                arguments,
                answer,
                ..
            } => {
                texts.push(tool);
                texts.extend(arguments.as_mut());
                texts.push(answer);
            }
        }
        texts
    }
}

/// Records `step`, in the caller's transaction; false when it was already
/// (a replay).
pub async fn insert_call_step_in(conn: &mut Conn, step: &CallStep) -> Result<bool> {
    Ok(!insert_call_steps_in(conn, &[step]).await?.is_empty())
}

/// Records `steps` in few statements; returns the keys stored now (the
/// others were already).
pub async fn insert_call_steps_in(conn: &mut Conn, steps: &[&CallStep]) -> Result<HashSet<String>> {
    let mut stored = HashSet::with_capacity(steps.len());
    for chunk in many::chunks(steps) {
        let sql = format!(
            "INSERT INTO call_steps (step_key, provider, call_id, kind, name, arguments, answer,
                outcome, latency_ms, at_ms)
             VALUES {}
             ON CONFLICT (step_key) DO NOTHING
             RETURNING step_key",
            many::values(chunk.len(), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        );
        let mut q = sqlx::query(&sql);
        for step in chunk {
            let (name, arguments, answer) = match &step.what {
                StepKind::Context { source, answered } => (
                    source.as_str(),
                    None,
                    serde_json::to_string(answered)
                        .map_err(|e| StoreError::corrupt("call step", e))?,
                ),
                StepKind::Tool {
                    tool,
                    arguments,
                    answer,
                    ..
                } => (tool.as_str(), arguments.as_deref(), answer.clone()),
            };
            q = q
                .bind(&step.key)
                .bind(step.provider.as_str())
                .bind(step.call_id.as_str())
                .bind(step.what.kind())
                .bind(name)
                .bind(arguments)
                .bind(answer)
                .bind(step.what.outcome())
                .bind(step.latency_ms)
                .bind(step.at_ms);
        }
        for row in q.fetch_all(&mut *conn).await? {
            stored.insert(row.try_get::<String, _>("step_key")?);
        }
    }
    Ok(stored)
}

fn from_row(row: &AnyRow) -> Result<CallStep> {
    let provider: String = row.try_get("provider")?;
    let call_id: String = row.try_get("call_id")?;
    let kind: String = row.try_get("kind")?;
    let name: String = row.try_get("name")?;
    let answer: String = row.try_get("answer")?;
    let outcome: String = row.try_get("outcome")?;
    let what = match kind.as_str() {
        "context" => StepKind::Context {
            source: name,
            answered: serde_json::from_str(&answer)
                .map_err(|e| StoreError::corrupt("call step context", e))?,
        },
        "tool" => StepKind::Tool {
            tool: name,
            arguments: row.try_get("arguments")?,
            answer,
            ok: outcome == "ok",
        },
        other => return Err(StoreError::corrupt("call step kind", other)),
    };
    Ok(CallStep {
        key: row.try_get("step_key")?,
        provider: provider
            .parse()
            .map_err(|e: String| StoreError::corrupt("call step provider", e))?,
        call_id: CallId::parse(&call_id).map_err(|e| StoreError::corrupt("call id", e))?,
        at_ms: row.try_get("at_ms")?,
        latency_ms: row.try_get("latency_ms")?,
        what,
    })
}

impl Store {
    pub async fn insert_call_step(&self, step: &CallStep) -> Result<bool> {
        insert_call_step_in(&mut *self.conn().await?, step).await
    }

    /// The call's steps in the order they happened.
    pub async fn call_steps(&self, provider: Provider, call_id: &CallId) -> Result<Vec<CallStep>> {
        let rows = sqlx::query(
            "SELECT step_key, provider, call_id, kind, name, arguments, answer, outcome,
                latency_ms, at_ms
             FROM call_steps WHERE provider = $1 AND call_id = $2 ORDER BY at_ms, step_key",
        )
        .bind(provider.as_str())
        .bind(call_id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_on_a_character_boundary_and_marked() {
        let long = "é".repeat(3000);
        let cut = bounded(&long, MAX_STEP_TEXT);
        assert!(
            cut.len() <= MAX_STEP_TEXT && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(bounded("short", MAX_STEP_TEXT), "short");
    }

    #[test]
    fn the_context_says_how_it_was_answered() {
        let mut a = ContextAnswered::default();
        assert_eq!(a.how(), "fresh");
        a.stale.push("memory".into());
        assert_eq!(a.how(), "stale");
        a.missing.push("slots".into());
        assert_eq!(a.how(), "partial");
    }
}
