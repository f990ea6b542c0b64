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

use ml_kem::kem::Decapsulate;
use ml_kem::{MlKem768, MlKem1024, Seed};
use zeroize::{Zeroize, Zeroizing};

use super::{LocalAlgorithm, internal, invalid};
use crate::backend::BackendError;
use crate::backend::kit::kem::{unwrap_with_ciphertext, wrap_with_ciphertext};
use crate::crypto::mlkem::{Encaps, MlKemPublicKey};
use crate::crypto::prepared::FastKey;
use crate::crypto::{Primitives, RandomSource};
use crate::error::Error;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

/// Length of the FIPS 203 seed (`d || z`).
pub const MLKEM_SEED_LEN: usize = 64;

type Dk768 = ml_kem::DecapsulationKey<MlKem768>;
type Dk1024 = ml_kem::DecapsulationKey<MlKem1024>;

/// The private half, when present.
enum Private {
    K768(Box<Dk768>),
    K1024(Box<Dk1024>),
}

/// A local ML-KEM-768 or ML-KEM-1024 KEK; public-only when imported from an
/// encapsulation key. The public half (and encapsulation) is the crate's shared ML-KEM
/// public key, the one every remote ML-KEM KEK encapsulates with too.
pub struct MlKemKek {
    public: MlKemPublicKey,
    private: Option<Private>,
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

/// Decapsulation for one parameter set; the shared secret is wiped. (The crate's
/// parameter-set trait is private, so the two sets cannot share a generic function.)
macro_rules! decaps_op {
    ($decaps:ident, $dk:ty, $ct:ty) => {
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

decaps_op!(decaps768, Dk768, ml_kem::ml_kem_768::Ciphertext);
decaps_op!(decaps1024, Dk1024, ml_kem::ml_kem_1024::Ciphertext);

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
        let (ek, private) = match algorithm {
            WrapAlgorithm::MlKem768 => {
                let dk = dk768_from_seed(seed)?;
                (
                    Encaps::K768(Box::new(dk.encapsulation_key().clone())),
                    Private::K768(Box::new(dk)),
                )
            }
            WrapAlgorithm::MlKem1024 => {
                let mut seed =
                    Seed::try_from(seed).map_err(|_| invalid("ML-KEM seed must be 64 bytes"))?;
                let dk = Dk1024::from_seed(seed);
                seed.as_mut_slice().zeroize();
                (
                    Encaps::K1024(Box::new(dk.encapsulation_key().clone())),
                    Private::K1024(Box::new(dk)),
                )
            }
            _ => return Err(invalid("not an ML-KEM algorithm")),
        };
        Ok(Self {
            public: MlKemPublicKey::new(ek),
            private: Some(private),
            fast: FastKey::default(),
        })
    }

    /// Imports an encapsulation key (1184 bytes for ML-KEM-768, 1568 for ML-KEM-1024):
    /// a public-only KEK. The key is checked as FIPS 203 requires (coefficients reduced).
    ///
    /// # Errors
    /// [`Error::Misuse`] for a wrong length or a key that fails the check.
    pub fn from_encapsulation_key(algorithm: WrapAlgorithm, ek: &[u8]) -> Result<Self, Error> {
        let public = match algorithm {
            WrapAlgorithm::MlKem768 => MlKemPublicKey::from_bytes(algorithm, ek)
                .map_err(|_| invalid("invalid ML-KEM-768 encapsulation key (1184 bytes)"))?,
            WrapAlgorithm::MlKem1024 => MlKemPublicKey::from_bytes(algorithm, ek)
                .map_err(|_| invalid("invalid ML-KEM-1024 encapsulation key (1568 bytes)"))?,
            _ => return Err(invalid("not an ML-KEM algorithm")),
        };
        Ok(Self {
            public,
            private: None,
            fast: FastKey::default(),
        })
    }

    /// The seed `d || z` (64 bytes), for export into a key store.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a public-only KEK.
    pub fn to_seed(&self) -> Result<Zeroizing<[u8; MLKEM_SEED_LEN]>, Error> {
        let mut seed = match &self.private {
            Some(Private::K768(dk)) => dk.to_seed(),
            Some(Private::K1024(dk)) => dk.to_seed(),
            None => None,
        }
        .ok_or_else(|| invalid("public-only KEK"))?;
        let out = Zeroizing::new(<[u8; MLKEM_SEED_LEN]>::from(seed));
        seed.as_mut_slice().zeroize();
        Ok(out)
    }

    /// The encapsulation key (the public half).
    pub fn encapsulation_key(&self) -> Vec<u8> {
        self.public.to_bytes()
    }

    /// A public-only copy.
    pub fn public_only(&self) -> Self {
        Self {
            public: MlKemPublicKey::new(self.public.rust_crypto().clone()),
            private: None,
            fast: FastKey::default(),
        }
    }
}

#[cfg(feature = "aws-lc")]
impl MlKemKek {
    /// The private key in AWS-LC's form. AWS-LC cannot import the FIPS 203 seed, so the
    /// seed is expanded here (RustCrypto, once per key) into the expanded decapsulation
    /// key.
    #[allow(deprecated)] // the expanded encoding is what AWS-LC imports
    fn prepare(&self) -> Option<Fast> {
        use ml_kem::ExpandedKeyEncoding;
        let ek = self.encapsulation_key();
        let (level1024, expanded) = match self.private.as_ref()? {
            Private::K768(dk) => (false, Zeroizing::new(dk.to_expanded_bytes().to_vec())),
            Private::K1024(dk) => (true, Zeroizing::new(dk.to_expanded_bytes().to_vec())),
        };
        Fast::new(level1024, &ek, Some(expanded.as_slice())).ok()
    }
}

impl MlKemKek {
    /// Decapsulates with the backend's provider (implicit rejection either way).
    fn decapsulate(
        &self,
        crypto: &dyn Primitives,
        ct: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        #[cfg(feature = "aws-lc")]
        if self.private.is_some()
            && let Some(k) = self.fast.for_provider(crypto, || self.prepare())
        {
            return k?.decapsulate(ct).map_err(|_| BackendError::Rejected);
        }
        let _ = crypto;
        match &self.private {
            Some(Private::K768(dk)) => decaps768(dk, ct),
            Some(Private::K1024(dk)) => decaps1024(dk, ct),
            None => Err(BackendError::Rejected),
        }
    }
}

impl LocalAlgorithm for MlKemKek {
    fn algorithm(&self) -> WrapAlgorithm {
        self.public.algorithm()
    }

    fn can_unwrap(&self) -> bool {
        self.private.is_some()
    }

    fn wrap(
        &self,
        crypto: &dyn Primitives,
        _random: RandomSource,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        let (ct, ss) = self
            .public
            .encapsulate(crypto)
            .map_err(|_| internal("ML-KEM encapsulation"))?;
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
