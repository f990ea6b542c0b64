//! Timeouts and retries for remote calls: [`CallPolicy`].

use std::future::Future;
use std::time::{Duration, Instant};

use crate::backend::BackendError;

/// How a backend instance calls its service: a connect timeout (given to the HTTP
/// client), a timeout per attempt, a bound on the whole call including every retry and
/// wait, and exponential backoff with jitter between attempts. Only
/// [transient](BackendError::is_transient) failures are retried, and a throttled call
/// waits at least as long as the service's `Retry-After` asked (when that would pass
/// the bound on the whole call, the throttling error is returned at once).
///
/// The defaults suit a cloud KMS called from the same region: connect 3 s, 10 s per
/// attempt, 4 attempts, backoff from 100 ms doubling to at most 2 s, 30 s in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPolicy {
    connect_timeout: Duration,
    attempt_timeout: Duration,
    total_timeout: Duration,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl CallPolicy {
    /// The timeout for opening a connection (at least 1 ms).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// The timeout of one attempt (at least 1 ms).
    pub fn attempt_timeout(mut self, t: Duration) -> Self {
        self.attempt_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// The bound on a whole call: every attempt and every wait (at least 1 ms).
    pub fn total_timeout(mut self, t: Duration) -> Self {
        self.total_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// How many attempts at most, the first included (at least 1: 1 means no retry).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first wait and the cap of the doubling waits. Each wait is drawn uniformly
    /// from the upper half of its step (`step/2 ..= step`), so that instances retrying
    /// together spread out.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// No retries (one attempt), with the same timeouts.
    pub fn no_retries(self) -> Self {
        self.max_attempts(1)
    }

    /// The connect timeout, for the backend's HTTP client.
    pub fn connect(&self) -> Duration {
        self.connect_timeout
    }

    /// The per-attempt timeout.
    pub fn attempt(&self) -> Duration {
        self.attempt_timeout
    }

    /// The bound on a whole call.
    pub fn total(&self) -> Duration {
        self.total_timeout
    }

    /// The wait before attempt `attempt + 1` (`attempt` counts from 1).
    fn wait(&self, attempt: u32) -> Duration {
        let step = self
            .initial_backoff
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_backoff);
        let half = step / 2;
        let mut r = [0u8; 8];
        // Without randomness the wait is the whole step: still bounded, only less spread.
        let jitter = match crate::crypto::fill_random(&mut r) {
            Ok(()) => {
                let span = u64::try_from((step - half).as_micros()).unwrap_or(u64::MAX);
                Duration::from_micros(u64::from_le_bytes(r) % span.saturating_add(1))
            }
            Err(_) => step - half,
        };
        half + jitter
    }

    /// Runs `call` until it succeeds, fails for good, or the attempts or the total time
    /// run out. An attempt that outlives its timeout is dropped (its future cancelled)
    /// and counts as [`BackendError::Timeout`], which is transient.
    ///
    /// # Errors
    /// The last attempt's error; [`BackendError::Timeout`] when the total time ran out
    /// before any attempt finished.
    pub async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let start = Instant::now();
        let deadline = start + self.total_timeout;
        let elapsed_ms =
            |since: Instant| u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(BackendError::Timeout {
                    operation,
                    elapsed_ms: elapsed_ms(start),
                });
            }
            let limit = self.attempt_timeout.min(remaining);
            let begun = Instant::now();
            let result = match tokio::time::timeout(limit, call()).await {
                Ok(r) => r,
                Err(_) => Err(BackendError::Timeout {
                    operation,
                    elapsed_ms: elapsed_ms(begun),
                }),
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_transient() || attempt >= self.max_attempts {
                return Err(err);
            }
            // A service that says how long to wait is waited for at least that long.
            let asked = match &err {
                BackendError::Throttled {
                    retry_after: Some(d),
                    ..
                } => *d,
                _ => Duration::ZERO,
            };
            let wait = self.wait(attempt).max(asked);
            if Instant::now() + wait >= deadline {
                return Err(err);
            }
            retrying(operation, attempt, &err, wait);
            tokio::time::sleep(wait).await;
        }
    }
}

/// Records that a call is retried after a transient failure (feature `tracing`): the
/// operation, the attempt that failed, the error's kind and the wait. Nothing else.
fn retrying(operation: &'static str, attempt: u32, err: &BackendError, wait: Duration) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        operation,
        attempt,
        error = err.kind(),
        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "retrying a backend call after a transient failure"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (operation, attempt, err, wait);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn fast() -> CallPolicy {
        CallPolicy::default()
            .backoff(Duration::from_millis(1), Duration::from_millis(4))
            .attempt_timeout(Duration::from_millis(200))
            .total_timeout(Duration::from_secs(5))
    }

    fn unavailable() -> BackendError {
        BackendError::Unavailable {
            message: "down".into(),
            source: None,
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_attempt_limit() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = fast()
            .max_attempts(3)
            .run("wrap", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(unavailable())
            })
            .await;
        assert!(matches!(r, Err(BackendError::Unavailable { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let r = fast()
            .run("wrap", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 { Err(unavailable()) } else { Ok(n) }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
    }

    #[tokio::test]
    async fn lasting_failures_are_not_retried() {
        for err in [
            BackendError::Rejected,
            BackendError::credentials("expired"),
            BackendError::KeyDisabled {
                kek: "k".into(),
                state: "disabled".into(),
            },
        ] {
            let calls = AtomicU32::new(0);
            let mut once = Some(err);
            let r: Result<(), _> = fast()
                .run("unwrap", || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let e = once.take().unwrap_or(BackendError::Rejected);
                    async move { Err(e) }
                })
                .await;
            assert!(r.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_hung_attempt_times_out_and_the_total_stays_bounded() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let r: Result<(), _> = fast()
            .max_attempts(100)
            .attempt_timeout(Duration::from_millis(50))
            .total_timeout(Duration::from_millis(300))
            .run("wrap", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok(())
            })
            .await;
        assert!(
            matches!(
                r,
                Err(BackendError::Timeout {
                    operation: "wrap",
                    ..
                })
            ),
            "{r:?}"
        );
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        let n = calls.load(Ordering::SeqCst);
        assert!((2..=6).contains(&n), "{n} attempts");
    }

    /// A throttled answer that says how long to wait is waited for at least that long;
    /// one that asks for more than the call may still take ends it at once.
    #[tokio::test]
    async fn retry_after_is_waited_for_and_bounded_by_the_total() {
        let throttled = |secs: u64| BackendError::Throttled {
            message: "slow down".into(),
            retry_after: Some(Duration::from_millis(secs)),
            source: None,
        };
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let r = fast()
            .run("wrap", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(throttled(300))
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(r.is_ok());
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let r: Result<(), _> = fast()
            .total_timeout(Duration::from_secs(1))
            .run("wrap", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(throttled(60_000))
            })
            .await;
        assert!(matches!(r, Err(BackendError::Throttled { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn waits_double_with_jitter_and_stay_under_the_cap() {
        let p =
            CallPolicy::default().backoff(Duration::from_millis(100), Duration::from_millis(800));
        for (attempt, step) in [
            (1u32, 100u64),
            (2, 200),
            (3, 400),
            (4, 800),
            (9, 800),
            (40, 800),
        ] {
            for _ in 0..20 {
                let w = p.wait(attempt);
                assert!(w >= Duration::from_millis(step / 2), "{attempt}: {w:?}");
                assert!(w <= Duration::from_millis(step), "{attempt}: {w:?}");
            }
        }
    }
}
