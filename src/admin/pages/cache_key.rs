//! `/admin/cache/key`: what is cached for a caller (their contact, memory
//! and context at a tenant), or under any one key, in this replica's L1
//! and in Redis, with its age against the namespace's windows.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{get, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::Chrome;
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};
use crate::cache::{KeyView, Namespace, Stamps, keys};
use crate::domain::{PhoneNumber, TenantId, mask_phones_in};
use crate::support::now_ms;

/// Either a tenant and a caller, or a namespace and a key.
#[derive(Deserialize, Default)]
struct Query {
    tenant: Option<String>,
    caller: Option<String>,
    namespace: Option<String>,
    key: Option<String>,
}

pub struct TierRow {
    pub tier: &'static str,
    /// `fresh` / `stale` / `fail-safe` / `expired`, or `absent`.
    pub window: &'static str,
    pub found: &'static str,
    pub age: String,
    pub fresh_left: String,
    pub stale_left: String,
    pub fail_safe_left: String,
}

pub struct KeyRow {
    pub namespace: &'static str,
    pub key: String,
    /// The namespace's windows: fresh, stale-while-revalidate, fail-safe.
    pub windows: String,
    pub tiers: Vec<TierRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/cache_key.html")]
struct KeyPage {
    chrome: Chrome,
    namespaces: Vec<&'static str>,
    tenant: String,
    caller: String,
    namespace: String,
    key: String,
    rows: Vec<KeyRow>,
    problem: Option<String>,
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Time left until `until`, or `over`.
fn left(until: i64, now: i64) -> String {
    if until > now {
        seconds(until - now)
    } else {
        "over".into()
    }
}

fn tier_row(tier: &'static str, stamps: Option<Stamps>, now: i64) -> TierRow {
    match stamps {
        None => TierRow {
            tier,
            window: "absent",
            found: "",
            age: String::new(),
            fresh_left: String::new(),
            stale_left: String::new(),
            fail_safe_left: String::new(),
        },
        Some(s) => TierRow {
            tier,
            window: s.window(now),
            found: if s.found {
                "value"
            } else {
                "not found (cached)"
            },
            age: seconds((now - s.loaded_at_ms).max(0)),
            fresh_left: left(s.fresh_until_ms, now),
            stale_left: left(s.stale_until_ms, now),
            fail_safe_left: left(s.fail_safe_until_ms, now),
        },
    }
}

fn ms(d: Duration) -> String {
    seconds(d.as_millis() as i64)
}

fn key_row(console: &Console, view: KeyView, now: i64) -> KeyRow {
    let policy = console.cache.policy(view.namespace);
    let mut tiers = vec![tier_row("l1", view.l1, now)];
    if view.l2_configured {
        tiers.push(match view.l2 {
            Ok(stamps) => tier_row("l2", stamps, now),
            Err(e) => TierRow {
                window: "unreadable",
                found: "",
                ..tier_row("l2", None, now)
            }
            .with_problem(e),
        });
    }
    KeyRow {
        namespace: view.namespace.as_str(),
        key: mask_phones_in(&view.key),
        windows: format!(
            "fresh {}, stale-while-revalidate {}, fail-safe {}",
            ms(policy.fresh),
            ms(policy.stale_while_revalidate),
            ms(policy.fail_safe)
        ),
        tiers,
    }
}

impl TierRow {
    fn with_problem(mut self, problem: String) -> Self {
        self.found = "";
        self.age = mask_phones_in(&problem);
        self
    }
}

/// A field's text, unless empty.
fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The keys the query names, or what is wrong with it.
fn wanted(q: &Query) -> Result<Vec<(Namespace, String)>, String> {
    match (filled(&q.tenant), filled(&q.caller), filled(&q.key)) {
        (Some(tenant), Some(caller), _) => {
            let tenant = TenantId::parse(tenant).map_err(|e| format!("`tenant`: {e}"))?;
            let caller = PhoneNumber::parse(caller).map_err(|e| format!("`caller`: {e}"))?;
            let key = keys::caller(&tenant, &caller);
            Ok([Namespace::Contact, Namespace::Memory, Namespace::Context]
                .into_iter()
                .map(|ns| (ns, key.clone()))
                .collect())
        }
        (_, _, Some(key)) => {
            let ns: Namespace = filled(&q.namespace)
                .ok_or("`namespace`: pick the namespace of the key")?
                .parse()
                .map_err(|e| format!("`namespace`: {e}"))?;
            Ok(vec![(ns, key.to_owned())])
        }
        (None, None, None) => Ok(Vec::new()),
        _ => Err("give a tenant id and a caller's number, or a namespace and a key".into()),
    }
}

#[get("/admin/cache/key")]
async fn key_page(
    console: web::Data<Console>,
    op: Operator,
    q: web::Query<Query>,
) -> Result<(KeyPage, StatusCode), PageError> {
    let (rows, problem) = match wanted(&q) {
        Ok(keys) => {
            let mut rows = Vec::new();
            for (ns, key) in keys {
                let view = console.cache.inspect(ns, &key).await;
                rows.push(key_row(&console, view, now_ms()));
            }
            (rows, None)
        }
        Err(problem) => (Vec::new(), Some(problem)),
    };
    let page = KeyPage {
        chrome: Chrome::new(&console, &op, "/admin/cache").await,
        namespaces: Namespace::ALL.iter().map(|n| n.as_str()).collect(),
        tenant: q.tenant.clone().unwrap_or_default(),
        caller: q.caller.clone().unwrap_or_default(),
        namespace: q.namespace.clone().unwrap_or_default(),
        key: q.key.clone().unwrap_or_default(),
        rows,
        problem,
    };
    // A bad query still renders the page, with the problem named, as a 400.
    let status = if page.problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((page, status))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(key_page);
}
