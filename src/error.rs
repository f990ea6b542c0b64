//! Errors, grouped by who is at fault.
//!
//! | variant | fault |
//! |---|---|
//! | [`Error::Malformed`] | the untrusted bytes handed to `open` / `unwrap` |
//! | [`Error::Misuse`] | the caller's use of the API or configuration (never untrusted bytes) |
//! | [`Error::Context`] | bytes that parse but belong to another tenant, object or classification |
//! | [`Error::Policy`] | the classification profile refuses the wrap |
//! | [`Error::KeyState`] | the KEK is unknown, or its state forbids the operation |
//! | [`Error::Backend`] | the key backend failed or answered wrongly (source kept) |
//! | [`Error::Crypto`] | one opaque cryptographic failure: tag, commitment or unwrap |
//!
//! No message carries key material.

use crate::backend::BackendError;
use crate::backend::KekLocator;
pub use crate::format::FormatError;
use crate::format::{
    ArgumentError, BackendId, Classification, Family, KekRef, Name, WrapAlgorithm,
};

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
    /// [`RandomSource::UserSpace`](crate::RandomSource::UserSpace) was asked of a crypto
    /// provider that has no fork-safe DRBG (RustCrypto).
    #[error("the {provider} provider has no user-space DRBG; use the OS RNG")]
    RandomSourceUnavailable {
        /// The provider's name.
        provider: &'static str,
    },
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
    /// The key ring refused a transition asked through the `Envelope`.
    #[error("key ring: {0}")]
    Lifecycle(String),
    /// The break-glass re-wrap was asked of an envelope without an audit log.
    #[error("break-glass re-wrap requires an audit log")]
    BreakGlassNeedsAudit,
    /// A backend already holds a KEK under this locator.
    #[error("a KEK already exists under locator {0}")]
    DuplicateLocator(KekLocator),
    /// The same KEK was registered twice.
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
}

impl From<ArgumentError> for MisuseError {
    fn from(e: ArgumentError) -> Self {
        MisuseError::InvalidArgument(e.0)
    }
}

impl From<crate::lifecycle::LifecycleError> for MisuseError {
    /// A transition the caller asked for and the key ring refused.
    fn from(e: crate::lifecycle::LifecycleError) -> Self {
        match e {
            crate::lifecycle::LifecycleError::DuplicateKek(r) => MisuseError::DuplicateKek(r),
            other => MisuseError::Lifecycle(other.to_string()),
        }
    }
}

impl From<ArgumentError> for Error {
    fn from(e: ArgumentError) -> Self {
        Error::Misuse(e.into())
    }
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
