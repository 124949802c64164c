//! Background loops that survive their own panics.
//!
//! A loop spawned bare with `tokio::spawn` that panics is gone for good, and
//! silently: the replica keeps answering while the work the loop did (replay,
//! pruning, write-back) stops. [`supervise`] runs the loop as a task of its
//! own and, when that task panics, logs it, counts it in
//! `warmline_background_restarts_total{loop}` and starts the loop again after
//! a short backoff.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// The first restart's delay; it doubles with each panic in a row, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run that lasted this long was healthy: the next panic starts the
/// backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs the loop `start` makes, restarting it whenever it panics. Returns
/// when a run ends without panicking (or the runtime shuts down); the
/// handle may be dropped to let it run detached.
pub fn supervise<F, Fut>(name: &'static str, mut start: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // A zero series from the start: "no restarts", not "no data".
    metrics::counter!("warmline_background_restarts_total", "loop" => name).increment(0);
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let began = Instant::now();
            let panic = match std::panic::catch_unwind(AssertUnwindSafe(&mut start)) {
                Ok(run) => match tokio::spawn(run).await {
                    Ok(()) => return,
                    Err(e) if e.is_panic() => message(e.into_panic().as_ref()),
                    // Cancelled: the runtime is shutting down.
                    Err(_) => return,
                },
                Err(panic) => message(panic.as_ref()),
            };
            if began.elapsed() >= HEALTHY_RUN {
                backoff = FIRST_BACKOFF;
            }
            metrics::counter!("warmline_background_restarts_total", "loop" => name).increment(1);
            tracing::error!(
                loop_name = name,
                panic = %panic,
                restart_in_ms = backoff.as_millis() as u64,
                "background loop panicked; restarting it"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// What a panic said, when it said it with a string.
fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_loop_that_panics_is_started_again_with_a_growing_backoff() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let started = Instant::now();
        supervise("test_loop", move || {
            let run = r.fetch_add(1, Ordering::SeqCst);
            async move { assert!(run >= 2, "run {run} breaks") }
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // 100 ms, then 200 ms of backoff.
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_factory_that_panics_is_retried_too() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        supervise("test_factory", move || {
            assert!(r.fetch_add(1, Ordering::SeqCst) >= 1, "no loop this time");
            async {}
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
