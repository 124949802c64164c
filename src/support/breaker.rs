//! A consecutive-failure circuit breaker, shared by the Redis tier and the
//! upstream clients.
//!
//! Closed: calls pass; `failure_threshold` failures in a row open it. Open:
//! calls are refused at once for `open_for`. Then one probe call is let
//! through (half-open): success closes the breaker, failure opens it again.
//! Lock-free: one atomic word of state, so checking it on every call costs
//! nanoseconds.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use super::clock::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The value of a `*_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    failure_threshold: u32,
    open_for_ms: i64,
    consecutive_failures: AtomicU32,
    /// 0 while closed; otherwise the epoch ms until which calls are refused.
    /// A half-open probe claims the breaker by pushing this forward.
    open_until_ms: AtomicI64,
}

impl Breaker {
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Breaker {
            failure_threshold: failure_threshold.max(1),
            open_for_ms: open_for.as_millis() as i64,
            consecutive_failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
        }
    }

    pub fn state(&self) -> BreakerState {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            BreakerState::Closed
        } else if now_ms() < until {
            BreakerState::Open
        } else {
            BreakerState::HalfOpen
        }
    }

    /// Whether a call may go ahead now. While half-open exactly one caller
    /// gets `true` (the probe) until it reports its outcome or its probe
    /// window runs out.
    pub fn allow(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = now_ms();
        if now < until {
            return false;
        }
        // Claim the probe: the winner moves the deadline forward, so others
        // keep failing fast while it runs.
        self.open_until_ms
            .compare_exchange(
                until,
                now + self.open_for_ms,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    pub fn on_success(&self) {
        self.consecutive_failures.store(0, Ordering::Release);
        self.open_until_ms.store(0, Ordering::Release);
    }

    /// Returns true when this failure opened the breaker.
    pub fn on_failure(&self) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let was_closed = self.open_until_ms.load(Ordering::Acquire) == 0;
        if failures >= self.failure_threshold || !was_closed {
            self.open_until_ms
                .store(now_ms() + self.open_for_ms, Ordering::Release);
            return was_closed;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new(3, Duration::from_secs(60));
        assert!(!b.on_failure());
        assert!(!b.on_failure());
        b.on_success();
        assert!(!b.on_failure());
        assert!(!b.on_failure());
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.on_failure(), "third failure in a row opens it");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
    }

    #[test]
    fn after_the_cool_down_one_probe_passes_and_its_success_closes() {
        let b = Breaker::new(1, Duration::from_millis(20));
        b.on_failure();
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "the probe");
        assert!(!b.allow(), "only one probe at a time");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let b = Breaker::new(2, Duration::from_millis(20));
        b.on_failure();
        b.on_failure();
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow());
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
