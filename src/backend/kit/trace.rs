//! `tracing` spans around backend calls (feature `tracing`; without it these compile to
//! the bare call). A span carries the backend, the operation, the KEK's redacted locator
//! (its last 12 characters, as in audit events), the algorithm, and once the call ends
//! its outcome (`ok` or the error's [`kind`](BackendError::kind)) and latency. Nothing
//! else: no key material, no binding context, no wrapped bytes.

use std::future::Future;
use std::time::Duration;

use crate::backend::BackendError;
use crate::format::{BackendId, WrapAlgorithm};
use crate::locator::KekLocator;

/// Runs one backend call inside a span named `kekring.backend` (with feature `tracing`;
/// without it, the bare call).
pub(crate) async fn traced<T, Fut>(
    backend: BackendId,
    operation: &'static str,
    kek: &KekLocator,
    algorithm: Option<WrapAlgorithm>,
    call: Fut,
) -> Result<T, BackendError>
where
    Fut: Future<Output = Result<T, BackendError>>,
{
    #[cfg(feature = "tracing")]
    {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "kekring.backend",
            backend = %backend,
            operation,
            kek = %kek.redacted(),
            algorithm = algorithm.map(WrapAlgorithm::name).unwrap_or("-"),
            outcome = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        );
        let start = std::time::Instant::now();
        let result = call.instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        span.record("outcome", outcome);
        span.record("latency_us", latency_us);
        tracing::debug!(parent: &span, outcome, latency_us, "backend call finished");
        result
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (backend, operation, kek, algorithm);
        call.await
    }
}

/// Records that a remote call is retried after a transient failure.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn retrying(operation: &'static str, attempt: u32, err: &BackendError, wait: Duration) {
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
