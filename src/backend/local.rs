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
//! | [`WrapAlgorithm::Aes256GcmDerived`] | `aes.rs` | HKDF info: per-wrap salt, binding; the binding is also the AES-GCM AAD |
//! | [`WrapAlgorithm::RsaOaepSha256_3072`], [`WrapAlgorithm::RsaOaepSha256_4096`] (feature `local-rsa`) | `rsa.rs` | the binding is the OAEP label |
//! | [`WrapAlgorithm::P256EcdhEs`] | `p256.rs` | HKDF info: ephemeral key, recipient key, binding |
//! | [`WrapAlgorithm::MlKem768`], [`WrapAlgorithm::MlKem1024`] | `mlkem.rs` | HKDF info: KEM ciphertext, binding |
//! | [`WrapAlgorithm::HybridP256MlKem768`] | `hybrid.rs` | HKDF info: hybrid ciphertext, binding |
//!
//! Every KEM-style algorithm derives `wrapping key = HKDF-SHA-256(salt = "kekring/v1/local/"
//! || algorithm name, IKM = shared secret, info = transcript || binding context)` and wraps
//! the DEK with RFC 3394 under it. Asymmetric KEKs may be public-only: they wrap (a service
//! that only seals holds no private key) and refuse to unwrap.
//!
//! Key material zeroizes on drop and never prints.
//!
//! Generating an RSA key ([`LocalKek::generate`], [`LocalBackend::generate`], and
//! `create_kek` for an RSA algorithm) is CPU-bound for up to seconds and runs on the
//! calling thread: call it from a blocking context (for example tokio's
//! `spawn_blocking`). Every other local operation takes microseconds to milliseconds.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{
    BackendError, BackendInfo, KekChange, KekDescriptor, KekLocator, KekSpec, KeyBackend,
    KeyIdentity, ServiceOutcome, UnwrapRequest, UnwrapResponse, WrapRequest, WrapResponse,
};
use crate::crypto::{CryptoProvider, Primitives, RandomSource};
use crate::error::{Error, MisuseError};
use crate::format::{BackendId, BindingContext, WrapAlgorithm};
use crate::secret::{Aes256KeyMaterial, DataKey};
use crate::sharded::Sharded;
use zeroize::Zeroizing;

mod aes;
mod hybrid;
mod mlkem;
mod p256;
mod pkcs8;
#[cfg(feature = "local-rsa")]
mod rsa;

pub use aes::Aes256Kek;
pub use hybrid::{HYBRID_SEED_LEN, HybridKek};
pub use mlkem::{MLKEM_SEED_LEN, MlKemKek};
pub use p256::P256Kek;
#[cfg(feature = "local-rsa")]
pub use rsa::RsaKek;

/// What one local key algorithm does.
trait LocalAlgorithm: Send + Sync {
    fn algorithm(&self) -> WrapAlgorithm;

    fn wrap(
        &self,
        crypto: &dyn Primitives,
        random: RandomSource,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError>;

    fn unwrap(
        &self,
        crypto: &dyn Primitives,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, BackendError>;

    /// Whether the private half is present (public-only KEKs wrap but cannot unwrap).
    fn can_unwrap(&self) -> bool {
        true
    }
}

use crate::backend::kit::kem::{derive_wrapping_key, kem_unwrap, kem_wrap, kw_unwrap, kw_wrap};
use crate::backend::kit::{internal, random};

/// Imported key material that is malformed, of the wrong type or too weak (every local
/// algorithm's import and export refusals).
fn invalid(reason: &'static str) -> Error {
    MisuseError::InvalidKey { reason }.into()
}

/// The locator for a KEK a local backend creates from `spec`: the name hint and a random
/// suffix, `local:{hint}:{12 hex digits}`; refused when `info` does not offer the
/// algorithm.
pub(crate) fn new_locator(info: &BackendInfo, spec: &KekSpec) -> Result<KekLocator, BackendError> {
    if !info.offers(spec.algorithm) {
        return Err(BackendError::UnsupportedAlgorithm {
            kek: KekLocator::new(spec.name_hint.clone()),
            algorithm: spec.algorithm,
        });
    }
    let suffix = random::<6>()?;
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    Ok(KekLocator::new(format!("local:{}:{hex}", spec.name_hint)))
}

/// A local KEK of any algorithm.
#[derive(Debug)]
#[non_exhaustive]
pub enum LocalKek {
    /// An AES-256 KEK (key wrap or AES-GCM).
    Aes256(Aes256Kek),
    /// An RSA-OAEP-SHA-256 KEK (3072 or 4096 bits; feature `local-rsa`).
    #[cfg(feature = "local-rsa")]
    Rsa(RsaKek),
    /// A P-256 ECDH-ES KEK.
    P256(P256Kek),
    /// An ML-KEM-768 or ML-KEM-1024 KEK.
    MlKem(MlKemKek),
    /// The P-256 + ML-KEM-768 hybrid KEK.
    Hybrid(HybridKek),
}

impl LocalKek {
    fn inner(&self) -> &dyn LocalAlgorithm {
        match self {
            LocalKek::Aes256(k) => k,
            #[cfg(feature = "local-rsa")]
            LocalKek::Rsa(k) => k,
            LocalKek::P256(k) => k,
            LocalKek::MlKem(k) => k,
            LocalKek::Hybrid(k) => k,
        }
    }

    /// The algorithm this KEK serves.
    pub fn algorithm(&self) -> WrapAlgorithm {
        self.inner().algorithm()
    }

    /// Whether this KEK holds its private half (a public-only KEK wraps but never
    /// unwraps).
    pub fn can_unwrap(&self) -> bool {
        self.inner().can_unwrap()
    }

    /// Generates a fresh KEK for `algorithm`.
    ///
    /// # Errors
    /// [`Error::Misuse`] for an algorithm the local backend does not offer,
    /// [`Error::Rng`] if the OS RNG fails.
    pub fn generate(algorithm: WrapAlgorithm) -> Result<Self, Error> {
        Ok(match algorithm {
            WrapAlgorithm::Aes256Kw
            | WrapAlgorithm::Aes256Kwp
            | WrapAlgorithm::Aes256GcmDerived => LocalKek::Aes256(Aes256Kek::generate(algorithm)?),
            #[cfg(feature = "local-rsa")]
            WrapAlgorithm::RsaOaepSha256_3072 | WrapAlgorithm::RsaOaepSha256_4096 => {
                LocalKek::Rsa(RsaKek::generate(algorithm)?)
            }
            WrapAlgorithm::P256EcdhEs => LocalKek::P256(P256Kek::generate()?),
            WrapAlgorithm::MlKem768 | WrapAlgorithm::MlKem1024 => {
                LocalKek::MlKem(MlKemKek::generate(algorithm)?)
            }
            WrapAlgorithm::HybridP256MlKem768 => LocalKek::Hybrid(HybridKek::generate()?),
            other => {
                return Err(MisuseError::AlgorithmNotOffered {
                    backend: BackendId::Local,
                    algorithm: other,
                }
                .into());
            }
        })
    }
}

impl LocalKek {
    /// The key's identity: `local:` and 32 hex digits, a fingerprint of the key itself,
    /// so that one key imported under two locators (or as a private key and as its
    /// public half) is one key to the key ring. For AES-256 it is HKDF-SHA-256 of the key
    /// (salt `kekring/v1/key-identity`, info `aes256`), a pseudorandom function of the
    /// key that reveals nothing of it; for an asymmetric key, SHA-256 of that label, the
    /// algorithm family and the public key's encoding. Truncated to 128 bits.
    ///
    /// # Errors
    /// [`Error::Misuse`] if the public key cannot be encoded.
    pub fn identity(&self) -> Result<KeyIdentity, Error> {
        use sha2::{Digest, Sha256};
        const LABEL: &[u8] = b"kekring/v1/key-identity";
        let mut fp = [0u8; 16];
        let public = |family: &str, encoding: &[u8]| {
            let digest = Sha256::new()
                .chain_update(LABEL)
                .chain_update([0])
                .chain_update(family.as_bytes())
                .chain_update([0])
                .chain_update(encoding)
                .finalize();
            let mut out = [0u8; 16];
            out.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
            out
        };
        match self {
            LocalKek::Aes256(k) => {
                hkdf::Hkdf::<Sha256>::new(Some(LABEL), k.material().expose_secret())
                    .expand(b"aes256", &mut fp)
                    .map_err(|_| Error::Internal("HKDF output length"))?;
            }
            #[cfg(feature = "local-rsa")]
            LocalKek::Rsa(k) => fp = public("rsa", &k.public_key_der()?),
            LocalKek::P256(k) => fp = public("p256", &k.public_key_der()?),
            LocalKek::MlKem(k) => fp = public("ml-kem", &k.encapsulation_key()),
            LocalKek::Hybrid(k) => fp = public("p256-ml-kem-768", &k.encapsulation_key()),
        }
        let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
        Ok(KeyIdentity::new(format!("local:{hex}")))
    }
}

/// Whether exported key material is a private key or only the public half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaterialKind {
    /// The private key (or the symmetric key): wraps and unwraps.
    Private,
    /// The public half only: wraps, never unwraps.
    Public,
}

impl LocalKek {
    /// Exports the key material in its canonical form:
    ///
    /// | algorithm | private | public |
    /// |---|---|---|
    /// | AES-256 | raw 32 bytes | — |
    /// | RSA-OAEP | PKCS#8 DER | SPKI DER |
    /// | P-256 | PKCS#8 DER | SPKI DER |
    /// | ML-KEM | FIPS 203 seed `d \|\| z` (64 bytes) | encapsulation key |
    /// | hybrid | 32-byte seed | encapsulation key (1249 bytes) |
    ///
    /// # Errors
    /// [`Error::Misuse`] if the key cannot be encoded.
    pub fn export_material(&self) -> Result<(MaterialKind, Zeroizing<Vec<u8>>), Error> {
        let private = self.can_unwrap();
        let kind = if private {
            MaterialKind::Private
        } else {
            MaterialKind::Public
        };
        let bytes = match self {
            LocalKek::Aes256(k) => Zeroizing::new(k.material().expose_secret().to_vec()),
            #[cfg(feature = "local-rsa")]
            LocalKek::Rsa(k) if private => k.to_pkcs8_der()?,
            #[cfg(feature = "local-rsa")]
            LocalKek::Rsa(k) => Zeroizing::new(k.public_key_der()?),
            LocalKek::P256(k) if private => k.to_pkcs8_der()?,
            LocalKek::P256(k) => Zeroizing::new(k.public_key_der()?),
            LocalKek::MlKem(k) if private => Zeroizing::new(k.to_seed()?.to_vec()),
            LocalKek::MlKem(k) => Zeroizing::new(k.encapsulation_key()),
            LocalKek::Hybrid(k) if private => Zeroizing::new(k.to_seed()?.to_vec()),
            LocalKek::Hybrid(k) => Zeroizing::new(k.encapsulation_key()),
        };
        Ok((kind, bytes))
    }

    /// Imports key material in the form [`LocalKek::export_material`] produces.
    ///
    /// # Errors
    /// [`Error::Misuse`] for an algorithm the local backend does not offer, a public
    /// AES key, or material that does not parse or fails validation.
    pub fn import_material(
        algorithm: WrapAlgorithm,
        kind: MaterialKind,
        bytes: &[u8],
    ) -> Result<Self, Error> {
        use MaterialKind::{Private, Public};
        let kek = match (algorithm, kind) {
            (
                WrapAlgorithm::Aes256Kw
                | WrapAlgorithm::Aes256Kwp
                | WrapAlgorithm::Aes256GcmDerived,
                Private,
            ) => LocalKek::Aes256(Aes256Kek::new(
                algorithm,
                Aes256KeyMaterial::from_slice(bytes)?,
            )?),
            #[cfg(feature = "local-rsa")]
            (WrapAlgorithm::RsaOaepSha256_3072 | WrapAlgorithm::RsaOaepSha256_4096, Private) => {
                LocalKek::Rsa(RsaKek::from_pkcs8_der(bytes)?)
            }
            #[cfg(feature = "local-rsa")]
            (WrapAlgorithm::RsaOaepSha256_3072 | WrapAlgorithm::RsaOaepSha256_4096, Public) => {
                LocalKek::Rsa(RsaKek::from_public_key_der(bytes)?)
            }
            (WrapAlgorithm::P256EcdhEs, Private) => LocalKek::P256(P256Kek::from_pkcs8_der(bytes)?),
            (WrapAlgorithm::P256EcdhEs, Public) => {
                LocalKek::P256(P256Kek::from_public_key_der(bytes)?)
            }
            (WrapAlgorithm::MlKem768 | WrapAlgorithm::MlKem1024, Private) => {
                LocalKek::MlKem(MlKemKek::from_seed(algorithm, bytes)?)
            }
            (WrapAlgorithm::MlKem768 | WrapAlgorithm::MlKem1024, Public) => {
                LocalKek::MlKem(MlKemKek::from_encapsulation_key(algorithm, bytes)?)
            }
            (WrapAlgorithm::HybridP256MlKem768, Private) => {
                LocalKek::Hybrid(HybridKek::from_seed(bytes)?)
            }
            (WrapAlgorithm::HybridP256MlKem768, Public) => {
                LocalKek::Hybrid(HybridKek::from_encapsulation_key(bytes)?)
            }
            _ if !LOCAL_ALGORITHMS.contains(&algorithm) => {
                return Err(MisuseError::AlgorithmNotOffered {
                    backend: BackendId::Local,
                    algorithm,
                }
                .into());
            }
            _ => {
                return Err(MisuseError::InvalidKey {
                    reason: "no such key material for this algorithm",
                }
                .into());
            }
        };
        // RSA's algorithm follows from the modulus; it must be the one asked for.
        if kek.algorithm() != algorithm {
            return Err(MisuseError::InvalidKey {
                reason: "key material is for another algorithm",
            }
            .into());
        }
        Ok(kek)
    }
}

/// The algorithms the local backend offers (RSA-OAEP with the `local-rsa` feature).
#[cfg(feature = "local-rsa")]
pub const LOCAL_ALGORITHMS: [WrapAlgorithm; 9] = [
    WrapAlgorithm::Aes256Kw,
    WrapAlgorithm::Aes256Kwp,
    WrapAlgorithm::Aes256GcmDerived,
    WrapAlgorithm::RsaOaepSha256_3072,
    WrapAlgorithm::RsaOaepSha256_4096,
    WrapAlgorithm::P256EcdhEs,
    WrapAlgorithm::MlKem768,
    WrapAlgorithm::MlKem1024,
    WrapAlgorithm::HybridP256MlKem768,
];

/// The algorithms the local backend offers (RSA-OAEP with the `local-rsa` feature).
#[cfg(not(feature = "local-rsa"))]
pub const LOCAL_ALGORITHMS: [WrapAlgorithm; 7] = [
    WrapAlgorithm::Aes256Kw,
    WrapAlgorithm::Aes256Kwp,
    WrapAlgorithm::Aes256GcmDerived,
    WrapAlgorithm::P256EcdhEs,
    WrapAlgorithm::MlKem768,
    WrapAlgorithm::MlKem1024,
    WrapAlgorithm::HybridP256MlKem768,
];

/// Software KEKs in process memory, addressed by locator strings the caller chooses.
pub struct LocalBackend {
    info: BackendInfo,
    /// The key table, one copy per thread shard (`crate::sharded`): a wrap or unwrap
    /// locks only its own thread's copy and clones nothing shared.
    keys: Sharded<HashMap<KekLocator, Arc<LocalKek>>>,
    crypto: &'static dyn Primitives,
    random: RandomSource,
}

impl fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.keys.local().read().map(|k| k.len()).unwrap_or(0);
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

/// What a local backend on the FIPS build still does outside the module or through
/// services AWS-LC counts as non-approved.
const FIPS_OUTSIDE: &str = "key generation (seeds and secrets from the OS RNG; RSA and P-256 \
    keys computed by RustCrypto); ML-KEM seed expansion and the MLKEM768-P256 hybrid's \
    SHA3-256 combiner (RustCrypto); AES-GCM seal with a caller-supplied nonce (the \
    aes256-gcm-derived KEK wrap, under a key derived per wrap); wrap randomness from \
    the OS RNG unless the backend's RandomSource is UserSpace (then the module's DRBG)";

impl LocalBackend {
    /// An empty local backend computing with RustCrypto.
    pub fn new() -> Self {
        Self::with_crypto_provider(CryptoProvider::rust_crypto())
    }

    /// An empty local backend computing with `provider`. Its [`BackendInfo`] names the
    /// provider and reports its FIPS status.
    pub fn with_crypto_provider(provider: CryptoProvider) -> Self {
        let mut info = BackendInfo::new(
            BackendId::Local,
            format!("kekring local software keys ({})", provider.name()),
            LOCAL_ALGORITHMS.to_vec(),
        );
        if let Some(module) = provider.primitives.fips_module() {
            info.fips = crate::backend::FipsStatus::ModuleInFipsMode {
                module,
                unapproved: FIPS_OUTSIDE.to_owned(),
            };
        }
        Self {
            info,
            keys: Sharded::new(HashMap::new),
            crypto: provider.primitives,
            random: RandomSource::default(),
        }
    }

    /// Where wrap randomness (the AES-GCM wrap salt) comes from (default:
    /// [`RandomSource::OperatingSystem`]). KEKs are always generated from the OS RNG.
    ///
    /// # Errors
    /// [`ConfigError::RandomSourceUnavailable`](crate::ConfigError::RandomSourceUnavailable)
    /// when the backend's crypto provider has no
    /// DRBG for [`RandomSource::UserSpace`].
    pub fn with_random_source(mut self, random: RandomSource) -> Result<Self, Error> {
        random.check(self.crypto_provider())?;
        self.random = random;
        Ok(self)
    }

    /// The crypto provider this backend wraps and unwraps with.
    pub fn crypto_provider(&self) -> CryptoProvider {
        CryptoProvider {
            primitives: self.crypto,
        }
    }

    /// Adds a KEK under `locator`.
    ///
    /// # Errors
    /// [`Error::Misuse`] if a KEK already has that locator.
    pub fn insert(&self, locator: KekLocator, kek: LocalKek) -> Result<(), Error> {
        self.insert_shared(locator, Arc::new(kek))
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

    /// Generates a fresh KEK of any local algorithm under `locator`.
    ///
    /// # Errors
    /// [`Error::Misuse`] for an algorithm the local backend does not offer or a locator
    /// already in use, [`Error::Rng`].
    pub fn generate(
        &self,
        locator: impl Into<String>,
        algorithm: WrapAlgorithm,
    ) -> Result<KekLocator, Error> {
        let locator = KekLocator::new(locator);
        self.insert(locator.clone(), LocalKek::generate(algorithm)?)?;
        Ok(locator)
    }

    /// Adds a KEK shared with its owner (for example the embedded key store).
    ///
    /// # Errors
    /// [`Error::Misuse`] if a KEK already has that locator.
    pub fn insert_shared(&self, locator: KekLocator, kek: Arc<LocalKek>) -> Result<(), Error> {
        // Every shard, locked in one order (so concurrent inserts cannot deadlock),
        // changes under the same critical section.
        let mut shards = Vec::new();
        for shard in self.keys.all() {
            shards.push(shard.write().map_err(|_| poisoned())?);
        }
        if shards.iter().any(|keys| keys.contains_key(&locator)) {
            return Err(MisuseError::DuplicateLocator(locator).into());
        }
        for keys in &mut shards {
            keys.insert(locator.clone(), kek.clone());
        }
        Ok(())
    }

    /// Removes the KEK under `locator` from every shard; returns whether it was there.
    /// Its material is zeroized once the last handle to it (a key store's, say) drops.
    pub fn remove(&self, locator: &KekLocator) -> Result<bool, Error> {
        let mut shards = Vec::new();
        for shard in self.keys.all() {
            shards.push(shard.write().map_err(|_| poisoned())?);
        }
        let mut found = false;
        for keys in &mut shards {
            found |= keys.remove(locator).is_some();
        }
        Ok(found)
    }

    /// The KEK under `locator`, shared.
    pub fn get_shared(&self, locator: &KekLocator) -> Option<Arc<LocalKek>> {
        self.keys.local().read().ok()?.get(locator).cloned()
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
            .local()
            .read()
            .map(|k| k.contains_key(locator))
            .unwrap_or(false)
    }

    /// Runs `op` on the KEK under `locator`, which must be a KEK for `algorithm`, under
    /// this thread's shard of the key table (no shared reference count is touched).
    /// The shard's read lock is held for the operation (an RSA-4096 unwrap takes ~2 ms),
    /// so an insert, which write-locks every shard in one order, waits for operations in
    /// flight; there is no nested locking, hence no deadlock.
    fn with_kek<T>(
        &self,
        locator: &KekLocator,
        algorithm: WrapAlgorithm,
        op: impl FnOnce(&LocalKek) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let keys = self
            .keys
            .local()
            .read()
            .map_err(|_| unavailable_poisoned())?;
        let kek = keys
            .get(locator)
            .ok_or_else(|| BackendError::KeyNotFound(locator.clone()))?;
        if kek.algorithm() != algorithm {
            return Err(BackendError::UnsupportedAlgorithm {
                kek: locator.clone(),
                algorithm,
            });
        }
        op(kek)
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

    /// The key's fingerprint ([`LocalKek::identity`]).
    fn key_identity(&self, kek: &KekLocator) -> Result<KeyIdentity, BackendError> {
        let key = self
            .get_shared(kek)
            .ok_or_else(|| BackendError::KeyNotFound(kek.clone()))?;
        key.identity()
            .map_err(|e| BackendError::invalid_request(format!("the key's identity: {e}")))
    }

    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        let (params, wrapped) = self.with_kek(req.kek, req.algorithm, |kek| {
            kek.inner()
                .wrap(self.crypto, self.random, req.dek, req.binding)
        })?;
        Ok(WrapResponse::new(req.kek.clone(), params, wrapped))
    }

    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        let dek = self.with_kek(req.kek, req.algorithm, |kek| {
            if !kek.can_unwrap() {
                return Err(BackendError::PublicOnly(req.kek.clone()));
            }
            kek.inner()
                .unwrap(self.crypto, req.params, req.wrapped, req.binding)
        })?;
        Ok(UnwrapResponse::new(req.kek.clone(), dek))
    }

    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        let locator = new_locator(&self.info, spec)?;
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

    async fn destroy_kek(&self, change: KekChange<'_>) -> Result<ServiceOutcome, BackendError> {
        let kek = change.kek;
        match self.remove(kek) {
            Ok(true) => Ok(ServiceOutcome::Applied),
            Ok(false) => Err(BackendError::KeyNotFound(kek.clone())),
            Err(e) => Err(BackendError::Unavailable {
                message: "could not remove the KEK".to_owned(),
                source: Some(Box::new(e)),
            }),
        }
    }
}
