//! Local ML-KEM KEKs (FIPS 203, ML-KEM-768 and ML-KEM-1024): encapsulate to the KEK's
//! encapsulation key with 32 bytes from the OS RNG, then `wrapping key =
//! HKDF-SHA-256(salt = "kekring/v1/local/" || algorithm name, IKM = shared secret,
//! info = KEM ciphertext || binding)` and RFC 3394 of the DEK. `params` is the KEM
//! ciphertext (1088 or 1568 bytes).
//!
//! Keys import and export in the FIPS 203 seed form (`d || z`, 64 bytes) and the
//! encapsulation key (1184 or 1568 bytes); a KEK imported from its encapsulation key is
//! public-only.

use std::fmt;

use ml_kem::kem::{Decapsulate, KeyExport};
use ml_kem::{B32, MlKem768, MlKem1024, Seed};
use zeroize::{Zeroize, Zeroizing};

use super::fast::FastKey;
#[cfg(feature = "aws-lc")]
use super::internal;
use super::{LocalAlgorithm, invalid, random};
use crate::backend::BackendError;
use crate::backend::kit::kem::{unwrap_with_ciphertext, wrap_with_ciphertext};
use crate::crypto::{Primitives, RandomSource};
use crate::error::Error;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

/// Length of the FIPS 203 seed (`d || z`).
pub const MLKEM_SEED_LEN: usize = 64;

type Ek768 = ml_kem::EncapsulationKey<MlKem768>;
type Dk768 = ml_kem::DecapsulationKey<MlKem768>;
type Ek1024 = ml_kem::EncapsulationKey<MlKem1024>;
type Dk1024 = ml_kem::DecapsulationKey<MlKem1024>;

enum Keys {
    K768 {
        ek: Box<Ek768>,
        dk: Option<Box<Dk768>>,
    },
    K1024 {
        ek: Box<Ek1024>,
        dk: Option<Box<Dk1024>>,
    },
}

/// A local ML-KEM-768 or ML-KEM-1024 KEK; public-only when imported from an
/// encapsulation key.
pub struct MlKemKek {
    keys: Keys,
    // Read only by the aws-lc provider.
    #[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
    fast: FastKey<Fast>,
}

#[cfg(feature = "aws-lc")]
type Fast = crate::crypto::awslc::asym::MlKem;
#[cfg(not(feature = "aws-lc"))]
type Fast = ();

impl fmt::Debug for MlKemKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlKemKek")
            .field("algorithm", &self.algorithm())
            .field("private", &self.can_unwrap().then_some("[REDACTED]"))
            .finish()
    }
}

/// Encapsulation with OS randomness and decapsulation for one parameter set; the
/// randomness and shared secrets are wiped. (The crate's parameter-set trait is private,
/// so the two sets cannot share a generic function.)
macro_rules! kem_ops {
    ($encaps:ident, $decaps:ident, $ek:ty, $dk:ty, $ct:ty) => {
        /// Encapsulates to `ek`; returns the ciphertext and the zeroizing shared secret.
        pub(super) fn $encaps(ek: &$ek) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), BackendError> {
            let mut m = B32::from(*random::<32>()?);
            let (ct, mut ss) = ek.encapsulate_deterministic(&m);
            m.as_mut_slice().zeroize();
            let out = Zeroizing::new(<[u8; 32]>::from(ss));
            ss.as_mut_slice().zeroize();
            Ok((ct.to_vec(), out))
        }

        /// Decapsulates (implicit rejection: a bad ciphertext gives a random-looking
        /// secret, which then fails the key unwrap).
        pub(super) fn $decaps(dk: &$dk, ct: &[u8]) -> Result<Zeroizing<[u8; 32]>, BackendError> {
            let ct = <$ct>::try_from(ct).map_err(|_| BackendError::Rejected)?;
            let mut ss = dk.decapsulate(&ct);
            let out = Zeroizing::new(<[u8; 32]>::from(ss));
            ss.as_mut_slice().zeroize();
            Ok(out)
        }
    };
}

kem_ops!(
    encaps768,
    decaps768,
    Ek768,
    Dk768,
    ml_kem::ml_kem_768::Ciphertext
);
kem_ops!(
    encaps1024,
    decaps1024,
    Ek1024,
    Dk1024,
    ml_kem::ml_kem_1024::Ciphertext
);

pub(super) fn dk768_from_seed(seed: &[u8]) -> Result<Dk768, Error> {
    let mut seed = Seed::try_from(seed).map_err(|_| invalid("ML-KEM seed must be 64 bytes"))?;
    let dk = Dk768::from_seed(seed);
    seed.as_mut_slice().zeroize();
    Ok(dk)
}

/// A seed whose bytes are all equal (all zeros, say) is a placeholder, not a key.
pub(super) fn degenerate(seed: &[u8]) -> bool {
    seed.iter().all(|b| Some(b) == seed.first())
}

impl MlKemKek {
    /// Generates a fresh KEK for `algorithm` (ML-KEM-768 or ML-KEM-1024).
    ///
    /// # Errors
    /// [`Error::Misuse`] for another algorithm, [`Error::Rng`] if the OS RNG fails.
    pub fn generate(algorithm: WrapAlgorithm) -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; MLKEM_SEED_LEN]);
        crate::crypto::fill_random(seed.as_mut_slice())?;
        Self::from_seed(algorithm, seed.as_slice())
    }

    /// Imports the FIPS 203 seed form `d || z` (64 bytes).
    ///
    /// # Errors
    /// [`Error::Misuse`] for a wrong length, a degenerate seed (every byte equal) or a
    /// non-ML-KEM algorithm.
    pub fn from_seed(algorithm: WrapAlgorithm, seed: &[u8]) -> Result<Self, Error> {
        if degenerate(seed) {
            return Err(invalid("degenerate ML-KEM seed"));
        }
        let keys = match algorithm {
            WrapAlgorithm::MlKem768 => {
                let dk = dk768_from_seed(seed)?;
                Keys::K768 {
                    ek: Box::new(dk.encapsulation_key().clone()),
                    dk: Some(Box::new(dk)),
                }
            }
            WrapAlgorithm::MlKem1024 => {
                let mut seed =
                    Seed::try_from(seed).map_err(|_| invalid("ML-KEM seed must be 64 bytes"))?;
                let dk = Dk1024::from_seed(seed);
                seed.as_mut_slice().zeroize();
                Keys::K1024 {
                    ek: Box::new(dk.encapsulation_key().clone()),
                    dk: Some(Box::new(dk)),
                }
            }
            _ => return Err(invalid("not an ML-KEM algorithm")),
        };
        Ok(Self {
            keys,
            fast: FastKey::default(),
        })
    }

    /// Imports an encapsulation key (1184 bytes for ML-KEM-768, 1568 for ML-KEM-1024):
    /// a public-only KEK. The key is checked as FIPS 203 requires (coefficients reduced).
    ///
    /// # Errors
    /// [`Error::Misuse`] for a wrong length or a key that fails the check.
    pub fn from_encapsulation_key(algorithm: WrapAlgorithm, ek: &[u8]) -> Result<Self, Error> {
        let keys = match algorithm {
            WrapAlgorithm::MlKem768 => {
                let arr = ml_kem::array::Array::try_from(ek)
                    .map_err(|_| invalid("ML-KEM-768 encapsulation key must be 1184 bytes"))?;
                Keys::K768 {
                    ek: Box::new(Ek768::new(&arr).map_err(|_| invalid("invalid ML-KEM-768 key"))?),
                    dk: None,
                }
            }
            WrapAlgorithm::MlKem1024 => {
                let arr = ml_kem::array::Array::try_from(ek)
                    .map_err(|_| invalid("ML-KEM-1024 encapsulation key must be 1568 bytes"))?;
                Keys::K1024 {
                    ek: Box::new(
                        Ek1024::new(&arr).map_err(|_| invalid("invalid ML-KEM-1024 key"))?,
                    ),
                    dk: None,
                }
            }
            _ => return Err(invalid("not an ML-KEM algorithm")),
        };
        Ok(Self {
            keys,
            fast: FastKey::default(),
        })
    }

    /// The seed `d || z` (64 bytes), for export into a key store.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a public-only KEK.
    pub fn to_seed(&self) -> Result<Zeroizing<[u8; MLKEM_SEED_LEN]>, Error> {
        let mut seed = match &self.keys {
            Keys::K768 { dk: Some(dk), .. } => dk.to_seed(),
            Keys::K1024 { dk: Some(dk), .. } => dk.to_seed(),
            _ => None,
        }
        .ok_or_else(|| invalid("public-only KEK"))?;
        let out = Zeroizing::new(<[u8; MLKEM_SEED_LEN]>::from(seed));
        seed.as_mut_slice().zeroize();
        Ok(out)
    }

    /// The encapsulation key (the public half).
    pub fn encapsulation_key(&self) -> Vec<u8> {
        match &self.keys {
            Keys::K768 { ek, .. } => ek.to_bytes().to_vec(),
            Keys::K1024 { ek, .. } => ek.to_bytes().to_vec(),
        }
    }

    /// A public-only copy.
    pub fn public_only(&self) -> Self {
        let keys = match &self.keys {
            Keys::K768 { ek, .. } => Keys::K768 {
                ek: ek.clone(),
                dk: None,
            },
            Keys::K1024 { ek, .. } => Keys::K1024 {
                ek: ek.clone(),
                dk: None,
            },
        };
        Self {
            keys,
            fast: FastKey::default(),
        }
    }
}

#[cfg(feature = "aws-lc")]
impl MlKemKek {
    /// The key in AWS-LC's form. AWS-LC cannot import the FIPS 203 seed, so the seed is
    /// expanded here (RustCrypto, once per key) into the expanded decapsulation key.
    #[allow(deprecated)] // the expanded encoding is what AWS-LC imports
    fn prepare(&self) -> Option<Fast> {
        use ml_kem::ExpandedKeyEncoding;
        let ek = self.encapsulation_key();
        match &self.keys {
            Keys::K768 { dk, .. } => {
                let expanded = dk
                    .as_ref()
                    .map(|d| Zeroizing::new(d.to_expanded_bytes().to_vec()));
                Fast::new(false, &ek, expanded.as_ref().map(|e| e.as_slice())).ok()
            }
            Keys::K1024 { dk, .. } => {
                let expanded = dk
                    .as_ref()
                    .map(|d| Zeroizing::new(d.to_expanded_bytes().to_vec()));
                Fast::new(true, &ek, expanded.as_ref().map(|e| e.as_slice())).ok()
            }
        }
    }
}

impl MlKemKek {
    /// Encapsulates to the KEK with the backend's provider.
    fn encapsulate(
        &self,
        crypto: &dyn Primitives,
    ) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), BackendError> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || self.prepare()) {
            return k?.encapsulate().map_err(|_| internal("ML-KEM"));
        }
        let _ = crypto;
        match &self.keys {
            Keys::K768 { ek, .. } => encaps768(ek),
            Keys::K1024 { ek, .. } => encaps1024(ek),
        }
    }

    /// Decapsulates with the backend's provider (implicit rejection either way).
    fn decapsulate(
        &self,
        crypto: &dyn Primitives,
        ct: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || self.prepare()) {
            return k?.decapsulate(ct).map_err(|_| BackendError::Rejected);
        }
        let _ = crypto;
        match &self.keys {
            Keys::K768 { dk: Some(dk), .. } => decaps768(dk, ct),
            Keys::K1024 { dk: Some(dk), .. } => decaps1024(dk, ct),
            _ => Err(BackendError::Rejected),
        }
    }
}

impl MlKemKek {
    /// Encapsulates to this key and wraps `dek` exactly as a local ML-KEM KEK does: the
    /// KEM construction a remote ML-KEM KEK uses with the public key it fetched, so that
    /// only decapsulation needs the service. Returns `(params, wrapped)`.
    #[cfg_attr(not(feature = "aws-kms"), allow(dead_code))]
    pub(crate) fn encapsulate_and_wrap(
        &self,
        crypto: &dyn Primitives,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        LocalAlgorithm::wrap(self, crypto, RandomSource::OperatingSystem, dek, binding)
    }
}

impl LocalAlgorithm for MlKemKek {
    fn algorithm(&self) -> WrapAlgorithm {
        match self.keys {
            Keys::K768 { .. } => WrapAlgorithm::MlKem768,
            Keys::K1024 { .. } => WrapAlgorithm::MlKem1024,
        }
    }

    fn can_unwrap(&self) -> bool {
        match &self.keys {
            Keys::K768 { dk, .. } => dk.is_some(),
            Keys::K1024 { dk, .. } => dk.is_some(),
        }
    }

    fn wrap(
        &self,
        crypto: &dyn Primitives,
        _random: RandomSource,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        let (ct, ss) = self.encapsulate(crypto)?;
        wrap_with_ciphertext(crypto, self.algorithm(), ct, ss.as_slice(), binding, dek)
    }

    fn unwrap(
        &self,
        crypto: &dyn Primitives,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, BackendError> {
        let ss = self.decapsulate(crypto, params)?;
        unwrap_with_ciphertext(
            crypto,
            self.algorithm(),
            params,
            ss.as_slice(),
            binding,
            wrapped,
        )
    }
}
