//! Errors, grouped by who is at fault.
//!
//! | variant | fault |
//! |---|---|
//! | [`Error::Malformed`] | the untrusted bytes handed to `open` / `unwrap` |
//! | [`Error::Misuse`] | the caller's use of the API or configuration (never untrusted bytes) |
//! | [`Error::Context`] | bytes that parse but belong to another tenant, object or classification |
//! | [`Error::Policy`] | the classification profile refuses the wrap |
//! | [`Error::KeyState`] | the KEK is unknown, or its state forbids the operation |
//! | [`Error::Config`] | the envelope's configuration: backends, KEKs and routes that do not fit |
//! | [`Error::Backend`] | the key backend failed or answered wrongly (source kept) |
//! | [`Error::Audit`] | the audit log could not record (what it was for did not happen) |
//! | [`Error::Crypto`] | one opaque cryptographic failure: tag, commitment or unwrap |
//! | [`Error::Rng`], [`Error::Io`] | the OS random number generator; a stream's reader or writer |
//! | [`Error::Internal`] | an internal invariant: a bug in kekring, never caused by input |
//!
//! No message carries key material.

//! This module is the one home of the crate's error enums, and imports nothing above
//! `format` (and the leaf `locator`): every other module may depend on it. The modules
//! that raise an error re-export it (`backend::BackendError`, `lifecycle::LifecycleError`,
//! `audit::AuditError`, `keystore::KeyStoreError`).

#[cfg(feature = "keystore")]
use std::path::PathBuf;

pub use crate::format::FormatError;
use crate::format::{
    ArgumentError, BackendId, Classification, Family, KekRef, Name, WrapAlgorithm,
};
use crate::locator::KekLocator;

/// Everything that can go wrong in kekring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Untrusted input is malformed.
    #[error("malformed input: {0}")]
    Malformed(#[from] FormatError),
    /// The API was used wrongly; never caused by untrusted bytes.
    #[error("API misuse: {0}")]
    Misuse(#[from] MisuseError),
    /// The input is well formed but does not belong to the caller's context.
    #[error("context mismatch: {0}")]
    Context(#[from] ContextError),
    /// The classification profile refuses the operation.
    #[error("refused by policy: {0}")]
    Policy(#[from] PolicyError),
    /// The KEK is unknown or in a state that forbids the operation.
    #[error("refused by key state: {0}")]
    KeyState(#[from] KeyStateError),
    /// A key backend failed.
    #[error("backend failure: {0}")]
    Backend(#[from] BackendError),
    /// Decryption or unwrapping failed: wrong key, wrong context or tampered bytes. One
    /// opaque error on purpose, so that failures reveal nothing about why.
    #[error("decryption failed")]
    Crypto,
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    Rng,
    /// Reading or writing a stream failed (the underlying reader or writer's error).
    #[error("stream I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The envelope's configuration is inconsistent: a backend, KEK or route that does
    /// not fit (found at build time, or when a KEK registered later needs a backend).
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// A key-ring transition could not be recorded in the audit log, or the log's sink
    /// failed: nothing the record was for took effect.
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    /// An internal invariant failed: a bug in kekring, never caused by input or use.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// The caller used the API wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MisuseError {
    /// A name, label, object id or associated data was out of bounds.
    #[error("invalid argument: {0}")]
    InvalidArgument(FormatError),
    /// Key bytes of the wrong length.
    #[error("key must be {expected} bytes")]
    KeyLength {
        /// The length required.
        expected: usize,
    },
    /// Degenerate key material (for example all zero bytes).
    #[error("key material is degenerate")]
    WeakKey,
    /// Imported key material is malformed, of the wrong type or too weak.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why (never any key bytes).
        reason: &'static str,
    },
    /// A payload larger than AES-GCM allows in one object.
    #[error("payload of {len} bytes exceeds the single-object limit")]
    PayloadTooLarge {
        /// The payload length.
        len: usize,
    },
    /// A segmented (streamed) object was passed to a call that handles only whole-object
    /// payloads in place; open it with `Envelope::open` or a stream reader.
    #[error(
        "a segmented object cannot be opened in place or detached; use open or a stream reader"
    )]
    SegmentedObject,
    /// A whole-object sealed object was given to a stream reader; open it with
    /// `Envelope::open`.
    #[error("a whole-object sealed object is not a stream; use open")]
    WholeObjectStream,
    /// A stream was written to after it failed or was finished.
    #[error("the stream failed or was finished earlier")]
    StreamState,
    /// The FIPS crypto provider was asked for, but the linked AWS-LC is not running in
    /// FIPS mode.
    #[error("AWS-LC is not running in FIPS mode")]
    NotFipsMode,
    /// An option value that would defeat the call's purpose.
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why the value is refused.
        reason: &'static str,
    },
    /// A buffer of the wrong size was passed to an in-place call.
    #[error("buffer is {len} bytes; {expected} were needed")]
    BufferSize {
        /// What was passed.
        len: usize,
        /// What was needed.
        expected: usize,
    },
    /// The key ring refused a transition asked through the `Envelope`.
    #[error("key ring: {0}")]
    Lifecycle(LifecycleError),
    /// The break-glass re-wrap was asked of an envelope without an audit log.
    #[error("break-glass re-wrap requires an audit log")]
    BreakGlassNeedsAudit,
    /// A backend already holds a KEK under this locator.
    #[error("a KEK already exists under locator {0}")]
    DuplicateLocator(KekLocator),
    /// The same KEK was registered twice.
    #[error("KEK {0} registered twice")]
    DuplicateKek(KekRef),
    /// A backend does not offer this algorithm (a key asked of the local backend in an
    /// algorithm it does not have, for example RSA without the `local-rsa` feature).
    #[error("backend {backend} does not offer {algorithm}")]
    AlgorithmNotOffered {
        /// The backend.
        backend: BackendId,
        /// The algorithm.
        algorithm: WrapAlgorithm,
    },
}

impl From<ArgumentError> for MisuseError {
    fn from(e: ArgumentError) -> Self {
        MisuseError::InvalidArgument(e.0)
    }
}

impl From<LifecycleError> for MisuseError {
    /// A transition the caller asked for and the key ring refused.
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::DuplicateKek(r) => MisuseError::DuplicateKek(r),
            other => MisuseError::Lifecycle(other),
        }
    }
}

impl From<ArgumentError> for Error {
    fn from(e: ArgumentError) -> Self {
        Error::Misuse(e.into())
    }
}

/// The envelope's configuration is inconsistent. Found by
/// [`EnvelopeBuilder::build`](crate::EnvelopeBuilder::build), or when a KEK registered
/// after the build (a rotation successor) names a backend the envelope does not have;
/// never caused by the bytes being opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No backend of this kind was configured.
    #[error("no backend configured for {0}")]
    NoBackend(BackendId),
    /// Two backends were configured under one instance name.
    #[error("two backends configured as {0:?}")]
    DuplicateBackend(String),
    /// No backend is configured under this instance name.
    #[error("no backend instance named {0:?}")]
    NoBackendInstance(String),
    /// A KEK names a backend instance of another kind than the KEK's backend.
    #[error("backend instance {instance:?} is {found}, the KEK says {expected}")]
    BackendKind {
        /// The instance name.
        instance: String,
        /// The kind the KEK binding says.
        expected: BackendId,
        /// The kind the instance is.
        found: BackendId,
    },
    /// [`RandomSource::UserSpace`](crate::RandomSource::UserSpace) was asked of a crypto
    /// provider that has no fork-safe DRBG (RustCrypto).
    #[error("the {provider} provider has no user-space DRBG; use the OS RNG")]
    RandomSourceUnavailable {
        /// The provider's name.
        provider: &'static str,
    },
    /// A route names a KEK that was not registered, or mixes tenants.
    #[error("route for {tenant}/{purpose} is invalid: {reason}")]
    InvalidRoute {
        /// The tenant.
        tenant: Name,
        /// The purpose.
        purpose: Name,
        /// Why.
        reason: &'static str,
    },
    /// A name given to the builder is not a valid tenant or purpose name.
    #[error("invalid name: {0}")]
    InvalidName(FormatError),
    /// The same KEK was given to the builder twice (or is already in its key ring).
    #[error("KEK {0} registered twice")]
    DuplicateKek(KekRef),
    /// The backend does not offer the algorithm a KEK was registered with.
    #[error("backend {backend} does not offer {algorithm}")]
    AlgorithmNotOffered {
        /// The backend.
        backend: BackendId,
        /// The algorithm.
        algorithm: WrapAlgorithm,
    },
    /// A key-ring record names another key than its locator does now: the backend's
    /// identity of the locator is not the one the ring recorded (the record was edited,
    /// or the backend instance configured under its name is another one). The record is
    /// not used.
    #[error("KEK {kek}: the ring recorded key {recorded}, its locator names key {found}")]
    KeyIdentity {
        /// The KEK.
        kek: KekRef,
        /// The last 12 characters of the identity the ring recorded.
        recorded: String,
        /// The last 12 characters of the identity the backend gives the locator.
        found: String,
    },
    /// A remote backend's configuration is incomplete or malformed (an address, a
    /// region, a key identifier, missing credentials settings).
    #[error("backend configuration: {reason}")]
    Backend {
        /// What is wrong (never a credential).
        reason: String,
    },
}

/// Well-formed input that belongs to another context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The header's classification is not the caller's.
    #[error("object is classified {found}, context says {expected}")]
    Classification {
        /// From the caller's context.
        expected: Classification,
        /// From the header.
        found: Classification,
    },
    /// A wrapped copy names a KEK of another tenant.
    #[error("object names a KEK of tenant {found}, context tenant is {expected}")]
    Tenant {
        /// From the caller's context.
        expected: Name,
        /// From the header.
        found: Name,
    },
    /// The primary copy names a KEK of another purpose.
    #[error("object names a KEK for purpose {found}, context purpose is {expected}")]
    Purpose {
        /// From the caller's context.
        expected: Name,
        /// From the header.
        found: Name,
    },
    /// The header's claim about a KEK (backend, algorithm) disagrees with the
    /// configured KEK of that name.
    #[error(
        "header claims {claimed_algorithm} on {claimed_backend} for {kek}, which is not how that KEK is configured"
    )]
    KekClaim {
        /// The KEK.
        kek: KekRef,
        /// The backend the header claims.
        claimed_backend: BackendId,
        /// The algorithm the header claims.
        claimed_algorithm: WrapAlgorithm,
    },
}

/// The classification profile refused a wrap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The algorithm is not allowed for the classification.
    #[error("profile {profile:?} does not allow {algorithm} ({family}) for {classification} data")]
    AlgorithmNotAllowed {
        /// The profile's name.
        profile: String,
        /// The classification.
        classification: Classification,
        /// The refused algorithm.
        algorithm: WrapAlgorithm,
        /// Its family.
        family: Family,
    },
    /// The profile has no rule for this classification (fail closed).
    #[error("profile {profile:?} has no rule for {classification} data")]
    UnknownClassification {
        /// The profile's name.
        profile: String,
        /// The classification.
        classification: Classification,
    },
}

/// The KEK is unknown, or its state forbids the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStateError {
    /// No KEK of that reference is configured.
    #[error("unknown KEK {0}")]
    UnknownKek(KekRef),
    /// The KEK's state forbids the operation (disabled, retired, revoked, destroyed, or
    /// deprecated past its overlap window).
    #[error("KEK {kek} is {state}")]
    NotUsable {
        /// The KEK.
        kek: KekRef,
        /// Its state.
        state: &'static str,
    },
    /// Objects still need the KEK a retirement or destruction would remove: their header
    /// names it, or they did not open without it.
    #[error(
        "KEK {kek} is still needed: {outstanding} objects are wrapped under it and {unreadable} did not open without it; re-wrap them or force"
    )]
    StillNeeded {
        /// The KEK.
        kek: KekRef,
        /// Objects whose header names a copy under it.
        outstanding: u64,
        /// Objects that did not open through their other copies.
        unreadable: u64,
    },
    /// Another KEK still in use (active, deprecated or disabled) names the same backend
    /// key as the one to destroy.
    #[error("KEK {other} still uses the same backend key as {kek}")]
    SharedBackendKey {
        /// The KEK asked to be destroyed.
        kek: KekRef,
        /// Another KEK naming the same backend key.
        other: KekRef,
    },
    /// No KEK is configured to wrap for this tenant and purpose.
    #[error("no KEK wraps for {tenant}/{purpose}")]
    NoWrappingKek {
        /// The tenant.
        tenant: Name,
        /// The purpose.
        purpose: Name,
    },
}

/// Why a backend call failed. Messages never carry key material.
///
/// Every backend maps its service's failures onto these variants, so that the envelope,
/// the retry loop (`backend::kit::CallPolicy`, feature `remote`) and the
/// caller decide alike whatever the service. Two questions are answered here and nowhere
/// else: [`is_transient`](Self::is_transient) (is the same call worth repeating?) and
/// [`try_next_copy`](Self::try_next_copy) (may another wrapped copy of the same DEK
/// succeed where this one failed?).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend holds no KEK under that locator.
    #[error("KEK {0} not found in the backend")]
    KeyNotFound(KekLocator),
    /// The backend answered for another key than the one asked for.
    #[error("backend answered for KEK {answered}, asked for {asked}")]
    KeyMismatch {
        /// The KEK asked for.
        asked: KekLocator,
        /// The KEK the backend named.
        answered: KekLocator,
    },
    /// The KEK does not support this algorithm.
    #[error("KEK {kek} does not support {algorithm}")]
    UnsupportedAlgorithm {
        /// The KEK.
        kek: KekLocator,
        /// The algorithm.
        algorithm: WrapAlgorithm,
    },
    /// The KEK is public-only here: it can wrap but not unwrap.
    #[error("KEK {0} holds no private key here: it can wrap, not unwrap")]
    PublicOnly(KekLocator),
    /// The locator is not one this backend reads (malformed, or in another backend's
    /// syntax): a configuration error, never a missing key, which would let an open fall
    /// through to the next copy.
    #[error("not a locator of this backend: {reason}")]
    InvalidLocator {
        /// What is wrong (the locator itself is not repeated: it may hold anything).
        reason: String,
    },
    /// The locator names no fixed key (an alias, a key URL without a version), or a
    /// remote KEM key without its public key pinned: resolve it first with [`KeyBackend::resolve_kek`](crate::KeyBackend::resolve_kek), which
    /// gives the locator of the key it names now, and register that.
    #[error("locator {0} names no fixed key: resolve it first")]
    Unresolved(KekLocator),
    /// The service answered a public key for the KEK that is not the one pinned when the
    /// KEK was registered (its digest is in the locator): a swapped key, to which no data
    /// key is encrypted.
    #[error("the public key of KEK {0} is not the one pinned at its registration")]
    PublicKeyChanged(KekLocator),
    /// The backend refused the wrapped key: it was tampered with, bound to another
    /// context, or wrapped under another key. Surfaced by the `Envelope` as the opaque
    /// [`Error::Crypto`](crate::Error::Crypto).
    #[error("the backend rejected the wrapped key")]
    Rejected,
    /// The backend does not offer this operation.
    #[error("the backend does not support {operation}")]
    Unsupported {
        /// The operation.
        operation: &'static str,
    },
    /// The backend answered with bytes of the wrong shape.
    #[error("the backend answered with a malformed {what}")]
    MalformedResponse {
        /// What was malformed.
        what: &'static str,
    },
    /// No credentials were found, or the service refused them as unknown, invalid or
    /// expired. Not retried: a new attempt would present the same credentials.
    #[error("credentials missing, invalid or expired: {message}")]
    Credentials {
        /// The service's explanation (no secret).
        message: String,
        /// The client library's or credential provider's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The credentials are valid but may not use this KEK for this operation.
    #[error("permission denied on KEK {kek}: {message}")]
    PermissionDenied {
        /// The KEK.
        kek: KekLocator,
        /// The service's explanation.
        message: String,
        /// The client library's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The KEK exists but is disabled, pending deletion or otherwise unusable in the
    /// service (fail closed: never retried, never worked around).
    #[error("KEK {kek} is unusable in the backend: {state}")]
    KeyDisabled {
        /// The KEK.
        kek: KekLocator,
        /// The service's state or explanation (`disabled`, `pending deletion`).
        state: String,
    },
    /// The service throttled the call. Transient; a retry waits at least `retry_after`
    /// when the service said how long.
    #[error("the backend throttled the call: {message}")]
    Throttled {
        /// The service's explanation.
        message: String,
        /// How long the service asked to wait (`Retry-After`).
        retry_after: Option<std::time::Duration>,
        /// The client library's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A call or the whole retry budget ran out of time. Transient.
    #[error("{operation} timed out after {elapsed_ms} ms")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// How long was spent, in milliseconds, as measured by kekring.
        elapsed_ms: u64,
    },
    /// The service refused the request as invalid: a configuration error or a bug, never
    /// caused by the stored bytes (those are [`Rejected`](Self::Rejected)).
    #[error("the backend refused the request: {message}")]
    InvalidRequest {
        /// The service's explanation.
        message: String,
        /// The client library's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The backend could not be reached or failed; `source` says why. Transient.
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// A description (no key material).
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl BackendError {
    /// [`BackendError::InvalidRequest`] with a message and no source.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        BackendError::InvalidRequest {
            message: message.into(),
            source: None,
        }
    }

    /// [`BackendError::Credentials`] with a message and no source.
    pub fn credentials(message: impl Into<String>) -> Self {
        BackendError::Credentials {
            message: message.into(),
            source: None,
        }
    }

    /// [`BackendError::Unavailable`] with a message and no source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        BackendError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// Whether repeating the same call may succeed: throttling, a timeout, or a backend
    /// that could not be reached. The retry loop repeats only these.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackendError::Throttled { .. }
                | BackendError::Timeout { .. }
                | BackendError::Unavailable { .. }
        )
    }

    /// Whether another wrapped copy of the same DEK (under another KEK, often in another
    /// backend, region or account) may open where this copy failed. True only when this
    /// copy's KEK could not be reached or is not here: the backend is down, slow or
    /// throttling, no longer holds the KEK (a lost region), or holds only its public
    /// half. False when the KEK's owner stopped it (disabled, pending deletion, access
    /// or credentials withdrawn: a tenant disabling its own key must stop the open, not
    /// move it to another copy), when the copy itself is refused (tampered or bound
    /// elsewhere: the other copies carry the same claims), when the backend misbehaved
    /// (another key named, a malformed answer), and for configuration errors.
    pub fn try_next_copy(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                BackendError::KeyNotFound(_) | BackendError::PublicOnly(_)
            )
    }

    /// A short, stable name of the variant (`throttled`, `rejected`...), for traces and
    /// metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendError::KeyNotFound(_) => "key-not-found",
            BackendError::KeyMismatch { .. } => "key-mismatch",
            BackendError::UnsupportedAlgorithm { .. } => "unsupported-algorithm",
            BackendError::PublicOnly(_) => "public-only",
            BackendError::InvalidLocator { .. } => "invalid-locator",
            BackendError::Unresolved(_) => "unresolved",
            BackendError::PublicKeyChanged(_) => "public-key-changed",
            BackendError::Rejected => "rejected",
            BackendError::Unsupported { .. } => "unsupported",
            BackendError::MalformedResponse { .. } => "malformed-response",
            BackendError::Credentials { .. } => "credentials",
            BackendError::PermissionDenied { .. } => "permission-denied",
            BackendError::KeyDisabled { .. } => "key-disabled",
            BackendError::Throttled { .. } => "throttled",
            BackendError::Timeout { .. } => "timeout",
            BackendError::InvalidRequest { .. } => "invalid-request",
            BackendError::Unavailable { .. } => "unavailable",
        }
    }
}

/// Why a transition was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// No KEK of that reference is in the ring.
    #[error("no KEK {0} in the key ring")]
    UnknownKek(KekRef),
    /// The KEK is already in the ring.
    #[error("KEK {0} is already in the key ring")]
    DuplicateKek(KekRef),
    /// The scope already has an active KEK (rotate instead).
    #[error("{tenant}/{purpose} already has an active KEK; rotate instead")]
    AlreadyActive {
        /// The tenant.
        tenant: Name,
        /// The purpose.
        purpose: Name,
    },
    /// The scope has no active KEK to rotate.
    #[error("{tenant}/{purpose} has no active KEK")]
    NoActiveKek {
        /// The tenant.
        tenant: Name,
        /// The purpose.
        purpose: Name,
    },
    /// A successor must be the next version of the same tenant and purpose.
    #[error("successor {successor} must be version {expected} of the same tenant and purpose")]
    BadSuccessor {
        /// The successor offered.
        successor: KekRef,
        /// The version required.
        expected: u32,
    },
    /// The transition is not allowed from the KEK's state.
    #[error("KEK {kek} cannot go from {from} to {to}")]
    IllegalTransition {
        /// The KEK.
        kek: KekRef,
        /// Its state.
        from: &'static str,
        /// The state asked for.
        to: &'static str,
    },
    /// Retirement asked before the overlap window ended.
    #[error("KEK {kek}'s overlap window runs until {retire_at}")]
    WindowOpen {
        /// The KEK.
        kek: KekRef,
        /// When the window ends.
        retire_at: u64,
    },
    /// Retirement refused: objects are still wrapped under the KEK.
    #[error("{outstanding} objects are still wrapped under KEK {kek}; re-wrap them or force")]
    StillInUse {
        /// The KEK.
        kek: KekRef,
        /// How many objects.
        outstanding: u64,
    },
    /// The ring was written by an unknown schema version.
    #[error("unknown key ring schema version {0}")]
    UnknownSchema(u32),
    /// The ring's generation moved on (compare-and-swap lost).
    #[error("key ring generation is {actual}, expected {expected}")]
    GenerationMismatch {
        /// The generation the caller expected.
        expected: u64,
        /// The generation found.
        actual: u64,
    },
    /// The ring failed to parse.
    #[error("key ring is malformed: {0}")]
    Malformed(String),
    /// A ring offered for installation undoes what cannot be undone: a retired, revoked
    /// or destroyed KEK back in an earlier state, a record dropped, or a record's
    /// backend, locator or algorithm changed.
    #[error("the new key ring takes KEK {kek} from {from} back to {to}")]
    Regression {
        /// The KEK.
        kek: KekRef,
        /// Its state in the installed ring.
        from: &'static str,
        /// What the new ring makes of it.
        to: &'static str,
    },
    /// The backend key is already another KEK's, whose use rules a new one out: a
    /// retired, revoked or destroyed KEK (its material must not come back under another
    /// name), or an earlier version of the same tenant and purpose (a rotation must move
    /// to another key, or a copy under the old version could be relabelled as the new
    /// one and open after the old one was revoked). Compared by the key's identity, so
    /// another spelling of the same key is the same key.
    #[error("the backend key {key_tail} is already KEK {existing}'s")]
    KeyReused {
        /// The last 12 characters of the key's identity.
        key_tail: String,
        /// The KEK registered with it.
        existing: KekRef,
    },
    /// A KEK to register carries no key identity ([`NewKek::key_id`](crate::lifecycle::NewKek::key_id)):
    /// the ring cannot tell whether its key is one it already names.
    #[error("KEK {0} has no key identity: set it from its backend's key_identity")]
    Unidentified(KekRef),
    /// The ring's recorder (the audit log) could not record the transition's events, so
    /// nothing was installed. The `Envelope` reports it as [`Error::Audit`].
    #[error("the transition could not be recorded: {0}")]
    NotRecorded(RecordFailure),
}

/// The audit error that kept a key-ring transition from being recorded, shared so that
/// [`LifecycleError`] stays `Clone`. Two are equal when they are the same failure.
#[derive(Clone, Debug)]
pub struct RecordFailure(std::sync::Arc<AuditError>);

impl RecordFailure {
    /// Wraps the audit error.
    pub fn new(e: AuditError) -> Self {
        Self(std::sync::Arc::new(e))
    }

    /// The audit error.
    pub fn audit_error(&self) -> &AuditError {
        &self.0
    }
}

impl PartialEq for RecordFailure {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RecordFailure {}

impl std::fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<LifecycleError> for Error {
    /// A transition the ring refused is the caller's misuse; one its recorder could not
    /// record is an audit failure.
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::NotRecorded(failure) => Error::Audit(
                std::sync::Arc::try_unwrap(failure.0).unwrap_or_else(|shared| {
                    AuditError::Io(std::io::Error::other(shared.to_string()))
                }),
            ),
            other => Error::Misuse(other.into()),
        }
    }
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The chain is broken at this record: changed, removed, reordered or inserted.
    #[error("audit chain broken at record {seq}: {reason}")]
    Broken {
        /// The first record that does not verify.
        seq: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The chain is shorter than the head anchored for it: records were cut from its end
    /// (or the chain was rolled back).
    #[error("audit chain has {found} records; its anchored head says {anchored}")]
    Truncated {
        /// The anchored length.
        anchored: u64,
        /// The chain's length.
        found: u64,
    },
    /// The chain does not contain the head anchored for it: it was rewritten.
    #[error("audit chain differs from its anchored head at record {seq}")]
    Diverged {
        /// The anchored head's last record.
        seq: u64,
    },
    /// A line of an audit file is not a record.
    #[error("audit line {line} is malformed: {message}")]
    Malformed {
        /// The line number (from 1).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// Writing or reading the sink failed.
    #[error("audit I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a key store operation failed. Messages never carry the secret or key bytes.
#[cfg(feature = "keystore")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// `open` found no file: a missing store is never silently replaced by an empty one.
    #[error("no key store at {0}")]
    NotFound(PathBuf),
    /// `create` found a file already there.
    #[error("a key store already exists at {0}")]
    AlreadyExists(PathBuf),
    /// Neither master-secret variable is set.
    #[error("no master secret: set KEKRING_MASTER_SECRET or KEKRING_MASTER_SECRET_FILE")]
    MissingSecret,
    /// The master secret is shorter than 16 bytes.
    #[error("the master secret must be at least 16 bytes")]
    WeakSecret,
    /// The KDF parameters are below the floor or above the ceiling.
    #[error("KDF parameters out of range: {0}")]
    KdfParams(&'static str),
    /// The secret is wrong or the file was modified (the AEAD cannot tell which).
    #[error("wrong master secret, or the key store file was modified")]
    WrongSecretOrTampered,
    /// The file is truncated or malformed.
    #[error("key store file is malformed: {0}")]
    Malformed(#[from] FormatError),
    /// A stored key failed to import, or a key could not be exported.
    #[error("key store entry: {0}")]
    Key(#[source] Box<Error>),
    /// A locator is already in the store.
    #[error("locator {0:?} is already in the key store")]
    DuplicateLocator(String),
    /// Another process holds the store's write lock.
    #[error("the key store is locked by another writer")]
    Locked,
    /// The file changed on disk since this store was opened or last saved: saving would
    /// drop the other writer's keys. Reopen and retry.
    #[error("the key store changed on disk since it was opened; reopen and retry")]
    Conflict,
    /// Reading or writing the file failed.
    #[error("key store I/O: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(feature = "keystore")]
impl From<Error> for KeyStoreError {
    fn from(e: Error) -> Self {
        KeyStoreError::Key(Box::new(e))
    }
}

/// A kekring error carried through `std::io` (recover it with
/// `io::Error::get_ref()` and `downcast_ref::<kekring::Error>()`, or
/// [`crate::Error::from_io`]).
pub(crate) fn to_io(e: Error) -> std::io::Error {
    match e {
        Error::Io(e) => e,
        Error::Misuse(m) => std::io::Error::new(std::io::ErrorKind::InvalidInput, Error::Misuse(m)),
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
    }
}

impl Error {
    /// The kekring error inside an `io::Error` returned by a stream adapter, if any.
    pub fn from_io(e: &std::io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreachable_or_absent_keks_fall_through_and_only_transient_ones_retry() {
        let kek = || KekLocator::new("k");
        let msg = || "m".to_owned();
        let cases: Vec<(BackendError, bool, bool)> = vec![
            // (error, transient, next copy)
            (
                BackendError::Unavailable {
                    message: msg(),
                    source: None,
                },
                true,
                true,
            ),
            (
                BackendError::Timeout {
                    operation: "wrap",
                    elapsed_ms: 1,
                },
                true,
                true,
            ),
            (
                BackendError::Throttled {
                    message: msg(),
                    retry_after: None,
                    source: None,
                },
                true,
                true,
            ),
            (BackendError::KeyNotFound(kek()), false, true),
            (BackendError::PublicOnly(kek()), false, true),
            // The owner stopped the key: stop the open.
            (
                BackendError::KeyDisabled {
                    kek: kek(),
                    state: msg(),
                },
                false,
                false,
            ),
            (
                BackendError::PermissionDenied {
                    kek: kek(),
                    message: msg(),
                    source: None,
                },
                false,
                false,
            ),
            (BackendError::credentials(msg()), false, false),
            (BackendError::Rejected, false, false),
            (
                BackendError::KeyMismatch {
                    asked: kek(),
                    answered: kek(),
                },
                false,
                false,
            ),
            (BackendError::MalformedResponse { what: "x" }, false, false),
            (BackendError::invalid_request(msg()), false, false),
            (BackendError::Unsupported { operation: "x" }, false, false),
            // A locator this backend does not read, or one that names no fixed key, is a
            // configuration error: it stops the open.
            (BackendError::InvalidLocator { reason: msg() }, false, false),
            (BackendError::Unresolved(kek()), false, false),
            (BackendError::PublicKeyChanged(kek()), false, false),
        ];
        for (e, transient, next) in cases {
            assert_eq!(e.is_transient(), transient, "{e:?}");
            assert_eq!(e.try_next_copy(), next, "{e:?}");
        }
    }
}
