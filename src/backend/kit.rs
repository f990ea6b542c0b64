//! The chassis every remote backend is built on, so that AWS KMS, Vault / OpenBao
//! Transit, PKCS#11, Google Cloud KMS and Azure Key Vault bind, fail, retry and trace
//! alike, and a new backend writes only what is its own: a locator, a configuration, an
//! error table and a [`Service`] implementation.
//!
//! | piece | where | what |
//! |---|---|---|
//! | [`Service`] | `kit/service.rs` | the small operations of a key service: describe a key, encrypt / decrypt with the binding, wrap / unwrap an intermediate key, fetch a public key, encapsulate / decapsulate, re-wrap, create, retire, destroy |
//! | [`RemoteBackend`] | `kit/remote.rs` | the [`KeyBackend`](crate::KeyBackend) built from a `Service`: dispatch over the three constructions, `params` checks, answer checks, retries, the resolution and public-key caches, public-key pins |
//! | constructions | `kit/intermediate.rs`, `kit/kem.rs` | the intermediate key (construction 2, FORMAT.md §11.3) and the KEM wrap (construction 3, §11.4); construction 1 is the service's |
//! | errors | [`CallError`], [`ErrorClass`], `kit/classify.rs` | one classifier: a service's error table, then the HTTP status, to [`BackendError`]; the source error kept |
//! | locators | [`Locator`] | parse, canonical form, redacted `Debug`; a malformed locator is a configuration error |
//! | transport | [`Endpoint`], [`TlsConfig`] | TLS except to loopback, endpoints from the environment checked as configured ones, trusted roots from kekring's configuration only, answers bounded |
//! | calls | [`CallPolicy`] | connect and per-attempt timeouts, retries of transient failures with backoff and jitter (at least the service's `Retry-After`), a bounded total |
//! | tokens | [`TokenCache`] | a bearer token renewed or fetched again before it expires |
//! | blocking libraries | [`BlockingPool`] | `spawn_blocking` on a bounded pool, for synchronous clients (PKCS#11) |
//! | binding forms | [`BindingContext::remote_bytes`](crate::format::BindingContext::remote_bytes), [`BindingContext::encryption_context`](crate::format::BindingContext::encryption_context) | the one mapping from the caller's context to what services bind (FORMAT.md §11.1) |
//! | conformance | `kekring::testing` (feature `testing`) | the suite every backend passes |
//!
//! **Visibility.** The chassis is public (feature `remote`) and is the implementer's
//! API: a backend written outside this crate (an in-house KMS, with an id from
//! [`BackendId::private`](crate::BackendId::private)) implements [`Service`] and wraps
//! it in a [`RemoteBackend`], and gets what the crate's own backends get. What a
//! service implementation sees is public and stable in meaning: the binding, the
//! intermediate key to wrap, the KEM ciphertext to decapsulate; the crypto provider
//! seam and the constructions stay inside the chassis.
//!
//! Credentials come from each service's own chain (the AWS SDK's, a Vault token,
//! AppRole, a workload identity) and live in the backend instance, never in the key
//! ring, a locator, an error or a trace.

use zeroize::Zeroizing;

use crate::backend::BackendError;
use crate::crypto;

#[cfg(feature = "remote")]
mod blocking;
#[cfg(feature = "remote")]
mod call;
#[cfg(feature = "remote")]
mod classify;
#[cfg(feature = "vault-transit")]
pub(crate) mod http;
#[cfg(feature = "remote")]
pub(crate) mod intermediate;
#[cfg(any(feature = "local", feature = "remote"))]
pub(crate) mod kem;
#[cfg(feature = "remote")]
mod locator;
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "remote")]
mod service;
#[cfg(feature = "remote")]
mod token;
#[cfg(feature = "remote")]
mod transport;

#[cfg(feature = "remote")]
pub use blocking::BlockingPool;
#[cfg(feature = "remote")]
pub use call::CallPolicy;
#[cfg(feature = "remote")]
pub use classify::{
    CallError, ErrorClass, Operation, Required, ServiceFailure, Source, caused_by, retry_after,
};
#[cfg(feature = "remote")]
pub use locator::{Locator, debug_redacted, invalid as invalid_locator};
#[cfg(feature = "remote")]
pub use remote::{Construction, RemoteBackend, RemoteOptions};
#[cfg(feature = "remote")]
pub use service::{Answer, Described, EncapsulateMode, Encapsulation, Secret, Service};
#[cfg(feature = "remote")]
pub use token::{Issued, Token, TokenCache};
#[cfg(feature = "remote")]
pub use transport::{Endpoint, MAX_ANSWER_LEN, TlsConfig, redacted_address, too_large};

/// The FIPS 203 encapsulation key inside a DER `SubjectPublicKeyInfo` of an ML-KEM-768
/// or ML-KEM-1024 key, and its algorithm; `None` for anything else (parsed exactly: DER
/// has one encoding). For a service that answers its public key as SPKI (AWS KMS
/// `GetPublicKey`), since [`Service::public_key`] answers the raw key.
#[cfg(feature = "remote")]
pub fn ml_kem_spki(der: &[u8]) -> Option<(crate::format::WrapAlgorithm, &[u8])> {
    crypto::mlkem::from_spki(der)
}

/// A failure of the local primitives that no input can cause (e.g. HKDF refusing an output
/// length, the OS RNG failing): reported as the backend failing, never as a rejected wrap.
#[cfg_attr(not(any(feature = "local", feature = "remote")), allow(dead_code))]
pub(crate) fn internal(what: &str) -> BackendError {
    BackendError::unavailable(format!("local {what} failed"))
}

/// Fresh bytes from the OS RNG, as a backend error on failure.
#[cfg_attr(not(any(feature = "local", feature = "remote")), allow(dead_code))]
pub(crate) fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, BackendError> {
    let mut b = Zeroizing::new([0u8; N]);
    crypto::fill_random(b.as_mut_slice()).map_err(|_| internal("OS RNG"))?;
    Ok(b)
}
