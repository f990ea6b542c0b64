//! [`BlockingPool`]: calls into a synchronous library (a PKCS#11 module) off the async
//! runtime's threads, a bounded number at a time.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::backend::BackendError;

/// Runs blocking calls on tokio's blocking threads (`spawn_blocking`), at most `limit`
/// at once: a backend whose library blocks (PKCS#11's `C_*` functions) never runs them
/// on the threads that drive async tasks.
///
/// **A timeout cannot cancel a call already running.** When the
/// [`CallPolicy`](super::CallPolicy)'s attempt timeout drops the future of a call, the C
/// function goes on until it returns; its answer is then discarded. It keeps its slot
/// until it returns, so the bound holds even then, and a library that hangs for good
/// fills the pool: later calls wait for a slot (and time out) rather than pile up
/// threads.
#[derive(Clone, Debug)]
pub struct BlockingPool {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl BlockingPool {
    /// A pool of at most `limit` calls at once (at least 1).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// How many calls may run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Runs `f` on a blocking thread once a slot is free and returns its result.
    ///
    /// # Errors
    /// [`BackendError::Unavailable`] when the call panicked or the runtime is shutting
    /// down.
    pub async fn run<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BackendError::unavailable("the blocking pool is closed"))?;
        tokio::task::spawn_blocking(move || {
            // Held until the call returns, whether or not anyone still waits for it.
            let _slot = slot;
            f()
        })
        .await
        .map_err(|e| BackendError::Unavailable {
            message: if e.is_panic() {
                "a blocking call panicked".to_owned()
            } else {
                "a blocking call was cancelled".to_owned()
            },
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_limit_calls_run_at_once_even_after_a_timeout() {
        let pool = BlockingPool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let call = |ms: u64| {
            let (running, most) = (running.clone(), most.clone());
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(ms));
                running.fetch_sub(1, Ordering::SeqCst);
                ms
            }
        };
        // A call abandoned by its timeout keeps its slot until it returns.
        let abandoned = tokio::time::timeout(Duration::from_millis(20), pool.run(call(300))).await;
        assert!(abandoned.is_err());
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let pool = pool.clone();
                let c = call(30);
                tokio::spawn(async move { pool.run(c).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 30);
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?} at once");
        let panicked = pool.run(|| panic!("inside the library")).await;
        assert!(matches!(panicked, Err(BackendError::Unavailable { .. })));
    }
}
