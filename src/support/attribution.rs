//! What one request did, gathered as it runs: the tenant it turned out to
//! be for and how its cache lookups were answered. The webhook layer opens
//! a [`scope`] around a request; the layers below add to it when they run
//! inside one (and do nothing outside one, e.g. in a background refresh).
//! What it gathered goes to an [`AnswerSink`] — the daily rollup. Database
//! queries are told apart from background work the same way ([`query`]),
//! also in the cache loads a request waits for ([`on_behalf`]).

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use chrono_tz::Tz;

/// One answered request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answered {
    /// The tenant it was for (id, time zone), when one was found.
    pub tenant: Option<(String, Tz)>,
    pub elapsed: Duration,
    /// Cache lookups made while answering, and how many were hits.
    pub lookups: u32,
    pub hits: u32,
}

/// Where answered requests are counted.
pub trait AnswerSink: Send + Sync {
    fn answered(&self, answered: &Answered);
}

tokio::task_local! {
    static CURRENT: RefCell<Answered>;
    /// Set in a task doing a request's work elsewhere (a cache load it
    /// waits for): its queries are the request's.
    static ON_BEHALF: bool;
}

/// `work`, to be spawned for the request in progress: its database queries
/// are counted as the request's (see [`query`]).
pub fn on_behalf<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let in_request =
        CURRENT.try_with(|_| ()).is_ok() || ON_BEHALF.try_with(|b| *b).unwrap_or(false);
    ON_BEHALF.scope(in_request, work)
}

/// Runs `work`, gathering what it reports; `elapsed` is left for the
/// caller to set.
pub async fn scope<F: Future>(work: F) -> (F::Output, Answered) {
    CURRENT
        .scope(RefCell::new(Answered::default()), async {
            let out = work.await;
            let gathered = CURRENT.with(|c| c.borrow().clone());
            (out, gathered)
        })
        .await
}

/// The request in progress is for this tenant.
pub fn tenant(id: &str, time_zone: Tz) {
    let _ = CURRENT.try_with(|c| c.borrow_mut().tenant = Some((id.to_owned(), time_zone)));
}

/// The request in progress is making a database query; whether there is
/// one in progress (outside a request, a query is background work).
pub fn query() -> bool {
    CURRENT.try_with(|_| ()).is_ok() || ON_BEHALF.try_with(|b| *b).unwrap_or(false)
}

/// The request in progress made a cache lookup.
pub fn lookup(hit: bool) {
    let _ = CURRENT.try_with(|c| {
        let mut c = c.borrow_mut();
        c.lookups += 1;
        c.hits += u32::from(hit);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_gathers_what_its_work_reports_and_nothing_leaks_out() {
        lookup(true); // outside any scope: ignored
        let ((), got) = scope(async {
            tenant("acme", Tz::Europe__Paris);
            lookup(true);
            tokio::task::yield_now().await;
            lookup(false);
        })
        .await;
        assert_eq!(got.tenant, Some(("acme".into(), Tz::Europe__Paris)));
        assert_eq!((got.lookups, got.hits), (2, 1));
        let ((), empty) = scope(async {}).await;
        assert_eq!(empty, Answered::default());
    }

    #[tokio::test]
    async fn queries_are_the_requests_also_in_the_loads_it_spawns_and_never_outside() {
        assert!(!query());
        assert!(!tokio::spawn(on_behalf(async { query() })).await.unwrap());
        let ((in_scope, spawned, detached), _) = scope(async {
            let spawned = tokio::spawn(on_behalf(async { query() }));
            let detached = tokio::spawn(async { query() });
            (query(), spawned.await.unwrap(), detached.await.unwrap())
        })
        .await;
        assert_eq!((in_scope, spawned, detached), (true, true, false));
    }
}
