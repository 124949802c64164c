//! Writes and loads of one namespace at once: a write to one key leaves a
//! load of another alone, a write to a key keeps a load of it that was
//! already running out of the cache, and a revision made while a key loads
//! reaches the value when it lands.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;
use warmline::cache::{LoadError, Namespace, Outcome, Policies, Tier, Tiered};

use crate::helpers::cache::{cache, counting, unique_prefix};

type Load = futures_util::future::BoxFuture<'static, Result<Option<String>, LoadError>>;

/// A loader that says when it has started, then answers `value` when
/// released: a load held in flight for as long as a test needs.
fn held(value: &str) -> (impl FnOnce() -> Load + Send + 'static, Gate) {
    let (started_tx, started) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let value = value.to_owned();
    let loader = move || -> Load {
        Box::pin(async move {
            let _ = started_tx.send(());
            let _ = released.await;
            Ok(Some(value))
        })
    };
    (loader, Gate { started, release })
}

struct Gate {
    started: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

/// `key` loaded with `loader` in a task of its own, once the load has begun.
async fn loading(
    memory: &Tiered<String>,
    key: &str,
    loader: impl FnOnce() -> Load + Send + 'static,
    gate: &mut Gate,
) -> tokio::task::JoinHandle<Option<String>> {
    let (memory, key) = (memory.clone(), key.to_owned());
    let task = tokio::spawn(async move {
        let l = memory.get_or_load(&key, loader).await.expect("loaded");
        l.value.map(|v| (*v).clone())
    });
    (&mut gate.started).await.expect("the load began");
    task
}

async fn cached(memory: &Tiered<String>, key: &str) -> Option<String> {
    let l = memory.get_cached(key).await?;
    assert_eq!(l.tier, Tier::L1);
    l.value.map(|v| (*v).clone())
}

fn memory() -> Tiered<String> {
    cache(None, &unique_prefix(), Policies::default(), None).namespace(Namespace::Memory)
}

#[tokio::test]
async fn a_write_to_one_key_leaves_a_load_of_another_to_be_cached() {
    let memory = memory();
    let (loader, mut gate) = held("ana's memory");
    let load = loading(&memory, "acme:+15550100001", loader, &mut gate).await;
    // Another caller's entries change while Ana's load runs.
    memory.set("acme:+15550100002", "ben's memory".into()).await;
    memory.invalidate("acme:+15550100003").await;
    let _ = gate.release.send(());
    assert_eq!(load.await.unwrap().as_deref(), Some("ana's memory"));
    assert_eq!(
        cached(&memory, "acme:+15550100001").await.as_deref(),
        Some("ana's memory"),
        "a busy namespace still caches what it loads"
    );
}

#[tokio::test]
async fn a_load_running_when_its_key_is_written_is_not_cached_and_the_next_get_loads_anew() {
    let memory = memory();
    let key = "acme:+15550100001";
    let (loader, mut gate) = held("read before the write");
    let load = loading(&memory, key, loader, &mut gate).await;
    memory.invalidate(key).await;

    // A get after the write does not join the load that began before it.
    let calls = Arc::new(AtomicUsize::new(0));
    let after = memory.get_or_load(key, counting(&calls, 0, Ok(Some("read after".into()))));
    let after = tokio::time::timeout(std::time::Duration::from_secs(30), after)
        .await
        .expect("not held up by the load that began before the write")
        .expect("loaded");
    assert_eq!(
        after.value.as_deref().map(String::as_str),
        Some("read after")
    );
    assert_eq!(
        (after.outcome, calls.load(Ordering::SeqCst)),
        (Outcome::Miss, 1)
    );

    let _ = gate.release.send(());
    // Its own waiter still gets what it read; the cache keeps the newer one.
    assert_eq!(
        load.await.unwrap().as_deref(),
        Some("read before the write")
    );
    assert_eq!(cached(&memory, key).await.as_deref(), Some("read after"));
}

#[tokio::test]
async fn a_revision_reaches_the_value_held_here_or_the_one_being_loaded() {
    let cache = cache(None, &unique_prefix(), Policies::default(), None);
    let memory = cache.namespace::<String>(Namespace::Memory);
    let stamps = async |key: &str| cache.inspect(Namespace::Memory, key).await.l1;
    let append = |s: &'static str| move |v: &String| Some(format!("{v}{s}"));

    assert!(
        !memory.revise_here("acme:+15550100001", append("!")),
        "nothing held or loading: nothing to revise"
    );

    memory.set("acme:+15550100001", "held".into()).await;
    let before = stamps("acme:+15550100001").await.expect("held");
    assert!(memory.revise_here("acme:+15550100001", append(", revised")));
    assert!(memory.revise_here("acme:+15550100001", |_: &String| None));
    assert_eq!(
        cached(&memory, "acme:+15550100001").await.as_deref(),
        Some("held, revised")
    );
    assert_eq!(
        stamps("acme:+15550100001").await,
        Some(before),
        "a revision keeps the entry's version and windows"
    );

    let (loader, mut gate) = held("loaded");
    let load = loading(&memory, "acme:+15550100002", loader, &mut gate).await;
    assert!(memory.revise_here("acme:+15550100002", append(", revised")));
    assert!(memory.revise_here("acme:+15550100002", append(" twice")));
    let _ = gate.release.send(());
    assert_eq!(
        load.await.unwrap().as_deref(),
        Some("loaded, revised twice")
    );
    assert_eq!(
        cached(&memory, "acme:+15550100002").await.as_deref(),
        Some("loaded, revised twice")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_revisions_each_see_the_last_one() {
    let memory = memory();
    memory.set("acme:+15550100001", "0".into()).await;
    let revisions = (0..200).map(|_| {
        let memory = memory.clone();
        tokio::task::spawn_blocking(move || {
            memory.revise_here("acme:+15550100001", |v: &String| {
                Some((v.parse::<u32>().unwrap() + 1).to_string())
            })
        })
    });
    let kept = futures_util::future::join_all(revisions).await;
    assert!(kept.into_iter().all(|k| k.unwrap()));
    assert_eq!(
        cached(&memory, "acme:+15550100001").await.as_deref(),
        Some("200")
    );
}
