//! The embedded local backend: software KEKs held in process memory.
//!
//! Each KEK is created for exactly one [`WrapAlgorithm`] and refuses every other (one key,
//! one use). Algorithms live one per file under `local/`; adding one means a new file
//! implementing the crate-private `LocalAlgorithm` trait and an arm in [`LocalKek`].
//!
//! | algorithm | file | how the binding context is bound |
//! |---|---|---|
//! | [`WrapAlgorithm::Aes256Kw`] | `aes.rs` | the wrapping key is HKDF-SHA-256(KEK, info = binding) |
//! | [`WrapAlgorithm::Aes256Kwp`] | `aes.rs` | as above, with its own salt |
//! | [`WrapAlgorithm::Aes256Gcm`] | `aes.rs` | the binding is the AES-GCM AAD |
//!
//! Key material zeroizes on drop and never prints.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::backend::{
    BackendError, BackendInfo, KekDescriptor, KekLocator, KekSpec, KeyBackend, UnwrapRequest,
    UnwrapResponse, WrapRequest, WrapResponse,
};
use crate::crypto::{self, CryptoProvider};
use crate::error::{Error, MisuseError};
use crate::format::{BackendId, BindingContext, WrapAlgorithm};
use crate::secret::{Aes256KeyMaterial, DataKey};

mod aes;

pub use aes::Aes256Kek;

/// What one local key algorithm does.
trait LocalAlgorithm: Send + Sync {
    fn algorithm(&self) -> WrapAlgorithm;

    fn wrap(
        &self,
        crypto: &dyn CryptoProvider,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError>;

    fn unwrap(
        &self,
        crypto: &dyn CryptoProvider,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, BackendError>;
}

/// A local KEK of any algorithm.
#[derive(Debug)]
#[non_exhaustive]
pub enum LocalKek {
    /// An AES-256 KEK.
    Aes256(Aes256Kek),
}

impl LocalKek {
    fn inner(&self) -> &dyn LocalAlgorithm {
        match self {
            LocalKek::Aes256(k) => k,
        }
    }

    /// The algorithm this KEK serves.
    pub fn algorithm(&self) -> WrapAlgorithm {
        self.inner().algorithm()
    }

    fn generate(algorithm: WrapAlgorithm) -> Result<Self, Error> {
        Ok(LocalKek::Aes256(Aes256Kek::generate(algorithm)?))
    }
}

/// The algorithms the local backend offers.
pub const LOCAL_ALGORITHMS: [WrapAlgorithm; 3] = [
    WrapAlgorithm::Aes256Kw,
    WrapAlgorithm::Aes256Kwp,
    WrapAlgorithm::Aes256Gcm,
];

/// Software KEKs in process memory, addressed by locator strings the caller chooses.
pub struct LocalBackend {
    info: BackendInfo,
    keys: RwLock<HashMap<KekLocator, Arc<LocalKek>>>,
    crypto: &'static dyn CryptoProvider,
}

impl fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.keys.read().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("LocalBackend")
            .field("info", &self.info)
            .field("keys", &n)
            .finish()
    }
}

impl Default for LocalBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalBackend {
    /// An empty local backend.
    pub fn new() -> Self {
        Self {
            info: BackendInfo::new(
                BackendId::Local,
                "kekring local software keys (RustCrypto)",
                LOCAL_ALGORITHMS.to_vec(),
            ),
            keys: RwLock::new(HashMap::new()),
            crypto: crypto::default_provider(),
        }
    }

    /// Adds a KEK under `locator`.
    ///
    /// # Errors
    /// [`Error::Misuse`] if a KEK already has that locator.
    pub fn insert(&self, locator: KekLocator, kek: LocalKek) -> Result<(), Error> {
        let mut keys = self.keys.write().map_err(|_| poisoned())?;
        if keys.contains_key(&locator) {
            return Err(MisuseError::DuplicateLocator(locator).into());
        }
        keys.insert(locator, Arc::new(kek));
        Ok(())
    }

    /// Imports raw AES-256 key material as a KEK for `algorithm` under `locator`.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a non-AES algorithm or a locator already in use.
    pub fn import_aes256(
        &self,
        locator: impl Into<String>,
        algorithm: WrapAlgorithm,
        material: Aes256KeyMaterial,
    ) -> Result<KekLocator, Error> {
        let locator = KekLocator::new(locator);
        self.insert(
            locator.clone(),
            LocalKek::Aes256(Aes256Kek::new(algorithm, material)?),
        )?;
        Ok(locator)
    }

    /// Generates a fresh AES-256 KEK for `algorithm` under `locator`.
    ///
    /// # Errors
    /// As [`LocalBackend::import_aes256`], or [`Error::Rng`].
    pub fn generate_aes256(
        &self,
        locator: impl Into<String>,
        algorithm: WrapAlgorithm,
    ) -> Result<KekLocator, Error> {
        self.import_aes256(locator, algorithm, Aes256KeyMaterial::generate()?)
    }

    /// Whether a KEK exists under `locator`.
    pub fn contains(&self, locator: &KekLocator) -> bool {
        self.keys
            .read()
            .map(|k| k.contains_key(locator))
            .unwrap_or(false)
    }

    fn get(&self, locator: &KekLocator) -> Result<Arc<LocalKek>, BackendError> {
        let keys = self.keys.read().map_err(|_| unavailable_poisoned())?;
        keys.get(locator)
            .cloned()
            .ok_or_else(|| BackendError::KeyNotFound(locator.clone()))
    }

    fn get_for(
        &self,
        locator: &KekLocator,
        algorithm: WrapAlgorithm,
    ) -> Result<Arc<LocalKek>, BackendError> {
        let kek = self.get(locator)?;
        if kek.algorithm() != algorithm {
            return Err(BackendError::UnsupportedAlgorithm {
                kek: locator.clone(),
                algorithm,
            });
        }
        Ok(kek)
    }
}

fn poisoned() -> Error {
    Error::Backend(unavailable_poisoned())
}

fn unavailable_poisoned() -> BackendError {
    BackendError::Unavailable {
        message: "local key table lock poisoned".to_owned(),
        source: None,
    }
}

#[async_trait]
impl KeyBackend for LocalBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        let kek = self.get_for(req.kek, req.algorithm)?;
        let (params, wrapped) = kek.inner().wrap(self.crypto, req.dek, req.binding)?;
        Ok(WrapResponse::new(req.kek.clone(), params, wrapped))
    }

    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        let kek = self.get_for(req.kek, req.algorithm)?;
        let dek = kek
            .inner()
            .unwrap(self.crypto, req.params, req.wrapped, req.binding)?;
        Ok(UnwrapResponse::new(req.kek.clone(), dek))
    }

    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        if !self.info.offers(spec.algorithm) {
            return Err(BackendError::UnsupportedAlgorithm {
                kek: KekLocator::new(spec.name_hint.clone()),
                algorithm: spec.algorithm,
            });
        }
        let mut suffix = [0u8; 6];
        crypto::fill_random(&mut suffix).map_err(|_| BackendError::Unavailable {
            message: "OS RNG failed".to_owned(),
            source: None,
        })?;
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let locator = KekLocator::new(format!("local:{}:{hex}", spec.name_hint));
        let kek = LocalKek::generate(spec.algorithm).map_err(|e| BackendError::Unavailable {
            message: "could not generate a local KEK".to_owned(),
            source: Some(Box::new(e)),
        })?;
        self.insert(locator.clone(), kek)
            .map_err(|e| BackendError::Unavailable {
                message: "could not store the new KEK".to_owned(),
                source: Some(Box::new(e)),
            })?;
        Ok(KekDescriptor::new(locator, spec.algorithm))
    }
}
