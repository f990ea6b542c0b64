//! The one extension point: [`KeyBackend`] wraps and unwraps data keys under KEKs it
//! holds, creates KEKs, and describes itself. The backends kekring ships live one per
//! file below this module, each behind its own cargo feature:
//!
//! | module | feature | KEKs |
//! |---|---|---|
//! | `local` | `local` (default) | software AES-256, P-256, ML-KEM and hybrid KEKs in process memory (RSA-OAEP with `local-rsa`); `kekring::keystore` persists them (`keystore`, default) |
//! | `aws_kms` | `aws-kms` | AWS KMS keys: symmetric, RSA and ML-KEM |
//! | `vault_transit` | `vault-transit` | Vault / OpenBao Transit key versions |
//!
//! `kit` (feature `remote`) holds what the remote backends are built from.
//!
//! Backends make no policy decisions: the [`Envelope`](crate::Envelope) checks the
//! classification profile, the caller's context and the KEK claim before it calls one.
//! A backend must bind the [`BindingContext`] into every wrap (AAD, KMS encryption
//! context, Transit context) and must refuse an answer that names another key than the
//! one asked for; the `Envelope` checks the key named in every response again.

use std::fmt;

use async_trait::async_trait;

use crate::crypto::CryptoProvider;
pub use crate::error::BackendError;
use crate::format::{BackendId, BindingContext, WrapAlgorithm};
pub use crate::locator::{KekLocator, KeyIdentity};
use crate::secret::DataKey;

#[cfg(feature = "aws-kms")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-kms")))]
pub mod aws_kms;
// The chassis is the implementer's API with `remote`; without it only the local
// backend's share of it (the KEM construction) is compiled, crate-private.
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod kit;
#[cfg(not(feature = "remote"))]
pub(crate) mod kit;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "vault-transit")]
#[cfg_attr(docsrs, doc(cfg(feature = "vault-transit")))]
pub mod vault_transit;

/// A backend's FIPS 140 status. Conservative by default: unvalidated unless the backend
/// states otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FipsStatus {
    /// No FIPS 140 validation is claimed.
    #[default]
    Unvalidated,
    /// The module doing the key operations is FIPS 140 validated.
    Validated {
        /// The certificate or a description of it.
        certificate: String,
    },
    /// Key operations run in a FIPS 140-3 module operating in FIPS mode, but some run
    /// outside it or through services outside its approved ones, so this is not a
    /// validated configuration.
    ModuleInFipsMode {
        /// The module and its version.
        module: String,
        /// The operations known to run outside the module or its approved services (no
        /// claim is made for the others).
        unapproved: String,
    },
}

/// What a backend declares about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The backend kind (written into every wrapped DEK).
    pub id: BackendId,
    /// A human-readable description.
    pub description: String,
    /// The wrap algorithms it offers.
    pub algorithms: Vec<WrapAlgorithm>,
    /// Whether the KEKs' secret and private material lives in hardware (an HSM, a cloud
    /// KMS). It says where the KEK is, not where every step of a wrap runs: see
    /// [`BackendInfo::local_operations`].
    pub hardware_backed: bool,
    /// What the backend computes in this process rather than in the key's holder (a
    /// remote KEM KEK's encapsulation and key wrap, an intermediate key's AES-GCM), and
    /// with which crypto provider; empty when nothing is said.
    pub local_operations: String,
    /// Its FIPS 140 status.
    pub fips: FipsStatus,
}

impl BackendInfo {
    /// A description with no hardware backing and no FIPS claim.
    pub fn new(
        id: BackendId,
        description: impl Into<String>,
        algorithms: Vec<WrapAlgorithm>,
    ) -> Self {
        Self {
            id,
            description: description.into(),
            algorithms,
            hardware_backed: false,
            local_operations: String::new(),
            fips: FipsStatus::Unvalidated,
        }
    }

    /// Whether the backend offers `algorithm`.
    pub fn offers(&self, algorithm: WrapAlgorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }
}

/// A request to wrap a data key.
#[derive(Debug)]
#[non_exhaustive]
pub struct WrapRequest<'a> {
    /// The KEK to wrap under.
    pub kek: &'a KekLocator,
    /// The algorithm the KEK is registered with.
    pub algorithm: WrapAlgorithm,
    /// The data key.
    pub dek: &'a DataKey,
    /// The context to bind into the wrap.
    pub binding: &'a BindingContext,
    /// The crypto provider for what a remote backend computes locally (the key
    /// derivation, key wrap and AES-GCM of its constructions, encapsulation to a public
    /// key): the envelope's. The local backend uses its own
    /// (`LocalBackend::with_crypto_provider`).
    pub crypto: CryptoProvider,
}

impl<'a> WrapRequest<'a> {
    /// Builds a request, with the default crypto provider.
    pub fn new(
        kek: &'a KekLocator,
        algorithm: WrapAlgorithm,
        dek: &'a DataKey,
        binding: &'a BindingContext,
    ) -> Self {
        Self {
            kek,
            algorithm,
            dek,
            binding,
            crypto: CryptoProvider::default(),
        }
    }

    /// With `crypto` for what the backend computes locally.
    #[must_use]
    pub fn with_crypto(mut self, crypto: CryptoProvider) -> Self {
        self.crypto = crypto;
        self
    }
}

/// A backend's answer to a wrap.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WrapResponse {
    /// The KEK the backend says it used; must equal the one asked for.
    pub kek: KekLocator,
    /// Algorithm-specific public parameters (nonce, ephemeral key, KEM ciphertext).
    pub params: Vec<u8>,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
}

impl WrapResponse {
    /// Builds a response.
    pub fn new(kek: KekLocator, params: Vec<u8>, wrapped: Vec<u8>) -> Self {
        Self {
            kek,
            params,
            wrapped,
        }
    }
}

/// A request to unwrap a data key.
#[derive(Debug)]
#[non_exhaustive]
pub struct UnwrapRequest<'a> {
    /// The KEK to unwrap under (from the configured keys, never from the header).
    pub kek: &'a KekLocator,
    /// The algorithm.
    pub algorithm: WrapAlgorithm,
    /// The algorithm-specific parameters from the header.
    pub params: &'a [u8],
    /// The wrapped key from the header.
    pub wrapped: &'a [u8],
    /// The context the wrap must have been bound to.
    pub binding: &'a BindingContext,
    /// The crypto provider for what a remote backend computes locally (as
    /// [`WrapRequest::crypto`]).
    pub crypto: CryptoProvider,
}

impl<'a> UnwrapRequest<'a> {
    /// Builds a request, with the default crypto provider.
    pub fn new(
        kek: &'a KekLocator,
        algorithm: WrapAlgorithm,
        params: &'a [u8],
        wrapped: &'a [u8],
        binding: &'a BindingContext,
    ) -> Self {
        Self {
            kek,
            algorithm,
            params,
            wrapped,
            binding,
            crypto: CryptoProvider::default(),
        }
    }

    /// With `crypto` for what the backend computes locally.
    #[must_use]
    pub fn with_crypto(mut self, crypto: CryptoProvider) -> Self {
        self.crypto = crypto;
        self
    }
}

/// A backend's answer to an unwrap.
#[derive(Debug)]
#[non_exhaustive]
pub struct UnwrapResponse {
    /// The KEK the backend says it used; must equal the one asked for.
    pub kek: KekLocator,
    /// The data key.
    pub dek: DataKey,
}

impl UnwrapResponse {
    /// Builds a response.
    pub fn new(kek: KekLocator, dek: DataKey) -> Self {
        Self { kek, dek }
    }
}

/// A request to re-wrap a data key inside the backend, from one of its KEKs to another,
/// without the data key leaving it (Transit `rewrap`, KMS `ReEncrypt`): the current
/// wrap, as it would be unwrapped, and the KEK to wrap under instead. The binding and
/// the algorithm stay the same.
#[derive(Debug)]
#[non_exhaustive]
pub struct RewrapRequest<'a> {
    /// The current wrap: its KEK, algorithm, parameters, wrapped key and binding.
    pub from: UnwrapRequest<'a>,
    /// The KEK to wrap it under.
    pub to: &'a KekLocator,
}

impl<'a> RewrapRequest<'a> {
    /// Builds a request.
    pub fn new(from: UnwrapRequest<'a>, to: &'a KekLocator) -> Self {
        Self { from, to }
    }
}

/// What KEK to create.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KekSpec {
    /// The algorithm.
    pub algorithm: WrapAlgorithm,
    /// A name hint (backends may use it in the key's name or description).
    pub name_hint: String,
    /// The KEK this one succeeds, when it is created by a rotation: a backend creates
    /// the successor beside it (the same region and account, the next version of the
    /// same Transit key).
    pub successor_of: Option<KekLocator>,
}

impl KekSpec {
    /// Builds a spec for a new, unrelated KEK.
    pub fn new(algorithm: WrapAlgorithm, name_hint: impl Into<String>) -> Self {
        Self {
            algorithm,
            name_hint: name_hint.into(),
            successor_of: None,
        }
    }

    /// The spec of `current`'s successor.
    pub fn successor_of(mut self, current: &KekLocator) -> Self {
        self.successor_of = Some(current.clone());
        self
    }
}

/// A KEK a backend created.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KekDescriptor {
    /// Where the KEK lives.
    pub locator: KekLocator,
    /// Its algorithm.
    pub algorithm: WrapAlgorithm,
}

impl KekDescriptor {
    /// Builds a descriptor.
    pub fn new(locator: KekLocator, algorithm: WrapAlgorithm) -> Self {
        Self { locator, algorithm }
    }
}

/// A change the key ring made to a KEK (a retirement, a destruction), for its backend to
/// carry out in its service.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct KekChange<'a> {
    /// The KEK.
    pub kek: &'a KekLocator,
    /// The locators of the other KEKs of this backend instance the ring still uses
    /// (active, deprecated or disabled): what the service-side change must leave
    /// working. Several scopes may name one service key (derived Transit keys exist for
    /// that).
    pub in_use: &'a [KekLocator],
}

impl<'a> KekChange<'a> {
    /// A change to `kek`, with the locators still in use beside it.
    pub fn new(kek: &'a KekLocator, in_use: &'a [KekLocator]) -> Self {
        Self { kek, in_use }
    }
}

/// What a backend did in its service after the key ring retired or destroyed a KEK.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceOutcome {
    /// The service now refuses the key too (Transit raised its floor; KMS scheduled its
    /// deletion).
    Applied,
    /// The service has nothing to do for this change.
    NotApplicable,
    /// The service was left as it was, and why: another KEK still in use needs what the
    /// change would have taken (a shared Transit key at this version or below).
    Skipped {
        /// Why (no secret).
        reason: String,
    },
}

/// A holder of KEKs. Object-safe: use it as `Arc<dyn KeyBackend>`.
///
/// # The contract
///
/// What every backend guarantees, and the conformance suite (`kekring::testing`,
/// feature `testing`) checks:
///
/// - **Binding.** Every wrap binds the [`BindingContext`]; an unwrap under any other
///   context, of a tampered wrap or of another KEK's wrap fails with
///   [`BackendError::Rejected`].
/// - **Answers are checked.** A backend refuses an answer of its service that names
///   another key or version than the one asked for ([`BackendError::KeyMismatch`]), and
///   answers naming the locator it was asked for; the envelope checks that name again.
/// - **One identity per key.** [`KeyBackend::key_identity`] maps every spelling of a
///   locator naming one key (an alias and the key's ARN, `@v01` and `@v1`) to one
///   [`KeyIdentity`], and different keys to different identities. The key ring compares
///   identities, never locator strings: a revoked key cannot come back under another
///   spelling, and a rotation cannot name the current key as its own successor. A
///   locator that names no fixed key (an alias, which can be re-pointed) has no
///   identity until [`KeyBackend::resolve_kek`] turns it into the locator of the key it
///   names now, which is what the ring records; unwraps and destruction then follow
///   that key, whatever the alias points to later.
/// - **Typed failures.** A malformed locator is [`BackendError::InvalidLocator`], a
///   configuration error that stops an open, never [`BackendError::KeyNotFound`], which
///   lets an open fall through to the next copy.
#[async_trait]
pub trait KeyBackend: Send + Sync + fmt::Debug {
    /// What the backend declares about itself.
    fn info(&self) -> &BackendInfo;

    /// The canonical identity of the key `kek` names, from the locator alone (no call to
    /// the service; a local backend looks the key up in memory). Called when a KEK is
    /// registered, when an envelope is built, and before a key-ring record is first
    /// used, so that what the ring recorded is checked against what the backend says.
    ///
    /// # Errors
    /// [`BackendError::InvalidLocator`] for a locator this backend does not read,
    /// [`BackendError::Unresolved`] for one that names no fixed key (resolve it with
    /// [`KeyBackend::resolve_kek`] first), [`BackendError::KeyNotFound`] where the
    /// identity depends on the key and the backend does not hold it.
    fn key_identity(&self, kek: &KekLocator) -> Result<KeyIdentity, BackendError>;

    /// Wraps `req.dek` under `req.kek`, binding `req.binding` into the wrap.
    ///
    /// # Errors
    /// A [`BackendError`]; never one that carries key material.
    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError>;

    /// Unwraps a data key; fails with [`BackendError::Rejected`] when the wrap does not
    /// verify under `req.kek` and `req.binding`.
    ///
    /// # Errors
    /// A [`BackendError`].
    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError>;

    /// Creates a new KEK inside the backend (rotation generates successors this way).
    ///
    /// # Errors
    /// A [`BackendError`], e.g. [`BackendError::UnsupportedAlgorithm`].
    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError>;

    /// Re-wraps inside the backend (see [`RewrapRequest`]); the answer names `req.to`.
    /// The envelope uses it for a re-wrap between two KEKs of one backend instance when
    /// it returns anything but [`BackendError::Unsupported`], and still verifies the new
    /// wrap by unwrapping it. The default is unsupported: the envelope then unwraps and
    /// wraps.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] when this pair of KEKs cannot be re-wrapped in the
    /// service; otherwise as [`KeyBackend::unwrap`].
    async fn rewrap(&self, req: RewrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        let _ = req;
        Err(BackendError::Unsupported {
            operation: "rewrap",
        })
    }

    /// The stable form of a locator, to register instead of the one given: an alias
    /// resolved to the key it names now (AWS KMS), in the backend's canonical spelling,
    /// so that re-pointing the alias later cannot move the KEK to another key. Its
    /// [`KeyBackend::key_identity`] then succeeds. The default returns it unchanged.
    ///
    /// # Errors
    /// As [`KeyBackend::wrap`] for a key that cannot be resolved.
    async fn resolve_kek(&self, kek: &KekLocator) -> Result<KekLocator, BackendError> {
        Ok(kek.clone())
    }

    /// Told after the key ring retired a KEK: the backend may stop it in its service
    /// where that leaves every KEK in `change.in_use` working (Transit raises the key's
    /// `min_decryption_version` past this version, unless another KEK still uses the
    /// key at this version or below), and says what it did. The default does nothing.
    ///
    /// # Errors
    /// A [`BackendError`]; the retirement in the key ring stands regardless.
    async fn retire_kek(&self, change: KekChange<'_>) -> Result<ServiceOutcome, BackendError> {
        let _ = change;
        Ok(ServiceOutcome::NotApplicable)
    }

    /// Deletes a KEK's material (crypto-shred), or schedules its deletion where the
    /// service imposes a waiting period, unless a KEK in `change.in_use` still needs it.
    /// Called by [`Envelope::destroy_kek`](crate::Envelope::destroy_kek) after the key
    /// ring recorded the destruction. The default refuses.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] by default; [`BackendError::KeyNotFound`].
    async fn destroy_kek(&self, change: KekChange<'_>) -> Result<ServiceOutcome, BackendError> {
        let _ = change;
        Err(BackendError::Unsupported {
            operation: "destroy_kek",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_redaction_keeps_last_12_chars() {
        let full = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd";
        let l = KekLocator::new(full);
        assert_eq!(l.redacted(), "…cd-12ab-34cd");
        assert!(!format!("{l:?}").contains("111122223333"));
        assert!(!format!("{l}").contains("111122223333"));
        assert_eq!(KekLocator::new("short").redacted(), "short");
    }

    #[test]
    fn trait_is_object_safe() {
        fn takes(_: &dyn KeyBackend) {}
        let _ = takes;
    }
}
