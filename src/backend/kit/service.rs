//! [`Service`]: the small operations a remote key service offers, which
//! [`RemoteBackend`](super::RemoteBackend) turns into a [`KeyBackend`](crate::KeyBackend).
//! A backend implements what its service can do; the rest keep their defaults (the
//! operation is unsupported).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::CallPolicy;
use super::classify::{CallError, ErrorClass, Operation, ServiceFailure};
use super::locator::Locator;
use crate::backend::{BackendError, BackendInfo, KekSpec, KeyIdentity, ServiceOutcome};
use crate::format::{BindingContext, WrapAlgorithm};
use crate::locator::KekLocator;

/// A key the service holds, as [`Service::describe`] found it: the service's handle for
/// it, its identity (as the service's answers name it), its algorithm and its stable
/// locator. Resolved once per locator and backend instance: none of these change.
#[non_exhaustive]
pub struct Described<K> {
    /// The service's handle for the key (a key ARN and the client of its region; a
    /// Transit key version; a token object).
    pub key: K,
    /// The key's canonical identity; every answer about it must name it.
    pub identity: KeyIdentity,
    /// The wrap algorithm its type and usage give.
    pub algorithm: WrapAlgorithm,
    /// The locator in the backend's stable form (an alias resolved to its key).
    pub locator: KekLocator,
}

impl<K> Described<K> {
    /// A described key.
    pub fn new(
        key: K,
        identity: KeyIdentity,
        algorithm: WrapAlgorithm,
        locator: KekLocator,
    ) -> Self {
        Self {
            key,
            identity,
            algorithm,
            locator,
        }
    }
}

impl<K> fmt::Debug for Described<K> {
    // The service's handle may hold a client whose Debug prints its configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Described")
            .field("identity", &self.identity)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A service's answer, with the key it says it used: the chassis refuses an answer that
/// names another key than the one asked for ([`BackendError::KeyMismatch`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Answer<T> {
    /// The key the answer names (the key ARN KMS answers with; the Transit version of
    /// the ciphertext's `vault:vN:` prefix).
    pub key: KeyIdentity,
    /// The answer.
    pub value: T,
}

impl<T> Answer<T> {
    /// An answer naming `key`.
    pub fn new(key: KeyIdentity, value: T) -> Self {
        Self { key, value }
    }
}

/// A KEM encapsulation made by the service: the ciphertext and the shared secret.
#[derive(Debug)]
#[non_exhaustive]
pub struct Encapsulation {
    /// The KEM ciphertext.
    pub ciphertext: Vec<u8>,
    /// The shared secret (zeroized on drop; its `Debug` prints its length only).
    pub shared_secret: Secret,
}

impl Encapsulation {
    /// An encapsulation.
    pub fn new(ciphertext: Vec<u8>, shared_secret: Secret) -> Self {
        Self {
            ciphertext,
            shared_secret,
        }
    }
}

/// Secret bytes a service answered (a decrypted data key, an intermediate key, a shared
/// secret): zeroized on drop, never printed.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Zeroizing<Vec<u8>>> for Secret {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED; {}])", self.0.len())
    }
}

/// The small operations of a remote key service. [`RemoteBackend`](super::RemoteBackend)
/// builds a [`KeyBackend`](crate::KeyBackend) from them and owns, once for every
/// service: the dispatch over the three constructions of FORMAT.md §11 by algorithm,
/// the `params` and length checks, the answer checks (an answer naming another key is
/// refused), retries through the [`CallPolicy`] (a non-idempotent [`Service::create`]
/// is never retried), the once-per-KEK resolution cache, the intermediate-key
/// construction, local encapsulation to a pinned and cached public key, and error
/// classification by [`Service::classify`].
///
/// A service implements what it can do; every operation it leaves out answers
/// [`BackendError::Unsupported`]. Operations receive the key as [`Service::describe`]
/// found it and never a locator string. They are called once per attempt: they must not
/// retry themselves (turn the client library's own retries off).
#[async_trait]
pub trait Service: Send + Sync + fmt::Debug + 'static {
    /// The service's locator: how a KEK is named in it.
    type Locator: Locator;
    /// The service's handle for a described key.
    type Key: Send + Sync + 'static;

    /// What the backend declares about itself.
    fn info(&self) -> BackendInfo;

    /// Timeouts and retries for the calls.
    fn call_policy(&self) -> &CallPolicy;

    /// The service's error table: what a refusal it answered means. `None` leaves the
    /// HTTP status to decide ([`ErrorClass::of_status`]).
    fn classify(&self, failure: &ServiceFailure, operation: Operation) -> Option<ErrorClass>;

    /// The canonical identity of the key `locator` names, from the locator alone
    /// ([`KeyBackend::key_identity`](crate::KeyBackend::key_identity)).
    ///
    /// # Errors
    /// [`BackendError::Unresolved`] when the locator names no fixed key.
    fn identity(&self, locator: &Self::Locator) -> Result<KeyIdentity, BackendError>;

    /// Looks the key up: its handle, identity (checked against the locator: a lookup
    /// that answers for another key is refused), algorithm and stable locator. Also
    /// where a service refuses keys it must not use (exportable, of another type).
    ///
    /// # Errors
    /// A [`CallError`].
    async fn describe(&self, locator: &Self::Locator) -> Result<Described<Self::Key>, CallError>;

    /// Construction 1: encrypts `plaintext` (a data key) with the service binding
    /// `binding`.
    ///
    /// # Errors
    /// A [`CallError`].
    async fn encrypt(
        &self,
        key: &Self::Key,
        plaintext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        let _ = (key, plaintext, binding);
        Err(unsupported("encrypt"))
    }

    /// Construction 1: decrypts what [`Service::encrypt`] made, under the same binding.
    ///
    /// # Errors
    /// A [`CallError`].
    async fn decrypt(
        &self,
        key: &Self::Key,
        ciphertext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Secret>, CallError> {
        let _ = (key, ciphertext, binding);
        Err(unsupported("decrypt"))
    }

    /// Construction 2: wraps a fresh 32-byte intermediate key (the service binds no
    /// context; the chassis seals the data key under the intermediate key with the
    /// binding).
    ///
    /// # Errors
    /// A [`CallError`].
    async fn wrap_key(
        &self,
        key: &Self::Key,
        intermediate: &[u8],
    ) -> Result<Answer<Vec<u8>>, CallError> {
        let _ = (key, intermediate);
        Err(unsupported("wrap_key"))
    }

    /// Construction 2: unwraps what [`Service::wrap_key`] made.
    ///
    /// # Errors
    /// A [`CallError`].
    async fn unwrap_key(
        &self,
        key: &Self::Key,
        wrapped: &[u8],
    ) -> Result<Answer<Secret>, CallError> {
        let _ = (key, wrapped);
        Err(unsupported("unwrap_key"))
    }

    /// Construction 3: the key's public key in its raw algorithm encoding (an ML-KEM
    /// encapsulation key as FIPS 203 encodes it). The chassis checks it against the
    /// digest pinned when the KEK was registered and caches it.
    ///
    /// # Errors
    /// A [`CallError`].
    async fn public_key(&self, key: &Self::Key) -> Result<Answer<Vec<u8>>, CallError> {
        let _ = key;
        Err(unsupported("public_key"))
    }

    /// Construction 3: encapsulates in the service (when the backend is configured to;
    /// by default the chassis encapsulates locally to the public key).
    ///
    /// # Errors
    /// A [`CallError`].
    async fn encapsulate(&self, key: &Self::Key) -> Result<Answer<Encapsulation>, CallError> {
        let _ = key;
        Err(unsupported("encapsulate"))
    }

    /// Construction 3: decapsulates `ciphertext` (with implicit rejection: a tampered
    /// ciphertext gives another secret, which the chassis's local unwrap refuses).
    ///
    /// # Errors
    /// A [`CallError`].
    async fn decapsulate(
        &self,
        key: &Self::Key,
        ciphertext: &[u8],
    ) -> Result<Answer<Secret>, CallError> {
        let _ = (key, ciphertext);
        Err(unsupported("decapsulate"))
    }

    /// Construction 1: re-encrypts a ciphertext of `from` under `to` inside the service,
    /// with the same binding; `Unsupported` for pairs it cannot (the chassis then
    /// unwraps and wraps).
    ///
    /// # Errors
    /// A [`CallError`].
    async fn rewrap(
        &self,
        from: &Self::Key,
        to: &Self::Key,
        ciphertext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        let _ = (from, to, ciphertext, binding);
        Err(unsupported("rewrap"))
    }

    /// Creates a key for `spec` (beside `successor_of`, the parsed predecessor, when it
    /// is a rotation's successor) and returns its locator. Not idempotent: the chassis
    /// never retries it.
    ///
    /// # Errors
    /// A [`CallError`].
    async fn create(
        &self,
        spec: &KekSpec,
        successor_of: Option<&Self::Locator>,
    ) -> Result<Self::Locator, CallError> {
        let _ = (spec, successor_of);
        Err(unsupported("create"))
    }

    /// Stops the key in the service after the key ring retired it, unless a KEK still
    /// in use (`in_use`, the other locators of this backend instance that the ring still
    /// uses) needs it; says what it did.
    ///
    /// # Errors
    /// A [`CallError`].
    async fn retire(
        &self,
        key: &Described<Self::Key>,
        in_use: &[Self::Locator],
    ) -> Result<ServiceOutcome, CallError> {
        let _ = (key, in_use);
        Ok(ServiceOutcome::NotApplicable)
    }

    /// Deletes (or schedules the deletion of) the key's material, unless a KEK still in
    /// use needs it; says what it did.
    ///
    /// # Errors
    /// A [`CallError`].
    async fn destroy(
        &self,
        key: &Described<Self::Key>,
        in_use: &[Self::Locator],
    ) -> Result<ServiceOutcome, CallError> {
        let _ = (key, in_use);
        Err(unsupported("destroy"))
    }
}

fn unsupported(operation: &'static str) -> CallError {
    CallError::Backend(BackendError::Unsupported { operation })
}

/// How long a public key fetched for local encapsulation is kept before it is fetched
/// (and checked against its pin) again, and where encapsulation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncapsulateMode {
    /// Locally, with the public key fetched from the service, checked against the digest
    /// pinned at registration and kept for `ttl` (the default, 5 minutes): no call per
    /// seal. A key disabled in the service refuses wraps once the cached key expires.
    Local {
        /// How long a fetched public key is used before it is fetched again.
        ttl: Duration,
    },
    /// In the service ([`Service::encapsulate`]): one call per seal, and a disabled key
    /// refuses at once.
    Service,
}

impl Default for EncapsulateMode {
    fn default() -> Self {
        EncapsulateMode::Local {
            ttl: Duration::from_secs(300),
        }
    }
}
