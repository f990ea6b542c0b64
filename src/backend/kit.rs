//! The backend kit: what every backend is built from, so that AWS KMS, Vault / OpenBao
//! Transit, PKCS#11, Google Cloud KMS and Azure Key Vault bind, fail, retry and trace
//! alike.
//!
//! | piece | where | what |
//! |---|---|---|
//! | binding forms | [`BindingContext::remote_bytes`](crate::format::BindingContext::remote_bytes), [`BindingContext::encryption_context`](crate::format::BindingContext::encryption_context) | the one mapping from the caller's context to what services bind (FORMAT.md §11.1) |
//! | errors | [`BackendError`] | typed failures; [`is_transient`](crate::backend::BackendError::is_transient) and [`try_next_copy`](crate::backend::BackendError::try_next_copy) decide retries and fall-through |
//! | service binds the context | each backend | the DEK goes to the service with the binding (construction 1) |
//! | intermediate key | `kit/intermediate.rs` (feature `aws-kms`, for now its one user) | for services that cannot bind a context (construction 2, §11.3): KMS RSA keys; Azure `wrapKey` and PKCS#11 `C_WrapKey` next |
//! | remote KEM | `kit/kem.rs` | the service decapsulates; the DEK is wrapped locally (construction 3, §11.4) |
//! | calls | [`CallPolicy`] (feature `remote`) | connect and per-attempt timeouts, retries of transient failures with backoff and jitter, a bounded total |
//! | traces | the envelope's one door to the backends (feature `tracing`) | one span per backend call: backend, redacted KEK, algorithm, outcome, latency; an event per retry |
//! | conformance | [`testing`](crate::testing) (feature `testing`) | the suite every backend passes |
//!
//! Credentials come from each service's own chain (the AWS SDK's, a Vault token or
//! AppRole) and live in the backend instance, never in the key ring or a locator.

use zeroize::Zeroizing;

use crate::backend::BackendError;
use crate::crypto;

#[cfg(feature = "remote")]
mod call;
#[cfg(feature = "aws-kms")]
pub(crate) mod intermediate;
#[cfg(any(feature = "local", feature = "aws-kms"))]
pub(crate) mod kem;

#[cfg(feature = "remote")]
pub use call::CallPolicy;

/// A backend that could not be reached or failed (transient), with a description.
#[cfg_attr(
    not(any(feature = "local", feature = "aws-kms", feature = "vault-transit")),
    allow(dead_code)
)]
pub(crate) fn unavailable(message: impl Into<String>) -> BackendError {
    BackendError::Unavailable {
        message: message.into(),
        source: None,
    }
}

/// A failure of the local primitives that no input can cause (e.g. HKDF refusing an output
/// length, the OS RNG failing): reported as the backend failing, never as a rejected wrap.
#[cfg_attr(
    not(any(feature = "local", feature = "aws-kms", feature = "vault-transit")),
    allow(dead_code)
)]
pub(crate) fn internal(what: &str) -> BackendError {
    unavailable(format!("local {what} failed"))
}

/// Fresh bytes from the OS RNG, as a backend error on failure.
#[cfg_attr(
    not(any(feature = "local", feature = "aws-kms", feature = "vault-transit")),
    allow(dead_code)
)]
pub(crate) fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, BackendError> {
    let mut b = Zeroizing::new([0u8; N]);
    crypto::fill_random(b.as_mut_slice()).map_err(|_| internal("OS RNG"))?;
    Ok(b)
}
