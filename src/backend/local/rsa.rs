//! Local RSA-OAEP KEKs: SHA-256 for both the OAEP hash and MGF1, 3072- or 4096-bit
//! moduli, the DEK encrypted directly, the binding context bound as the OAEP label
//! (`"kekring/v1/local/" || algorithm name || binding`).
//!
//! **RUSTSEC-2023-0071.** The `rsa` crate's private-key operation has a known timing side
//! channel (the "Marvin" attack) with no fixed release, which is why this file compiles
//! only with the `local-rsa` feature (off by default). On the `aws-lc` provider,
//! decryption runs in AWS-LC; on RustCrypto it runs in `rsa` with blinding
//! (`decrypt_blinded`), which is as far as the crate allows, and an attacker who can time
//! many unwraps on the same machine may still learn something. Prefer ML-KEM or the
//! hybrid, or an HSM/KMS RSA key, where that matters.

use std::fmt;

use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Oaep, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::pkcs8;
use super::{LocalAlgorithm, internal, invalid};
use crate::backend::BackendError;
use crate::crypto::prepared::FastKey;
use crate::crypto::rsa::RsaOaepPublicKey;
use crate::crypto::{Primitives, RandomSource};
use crate::error::Error;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

/// A local RSA-OAEP-SHA-256 KEK; public-only when imported from a public key. The
/// public half (and encryption) is the crate's shared RSA-OAEP public key.
pub struct RsaKek {
    algorithm: WrapAlgorithm,
    public: RsaOaepPublicKey,
    private: Option<PrivateKey>,
    // Read only by the aws-lc provider.
    #[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
    fast: FastKey<Fast>,
}

#[cfg(feature = "aws-lc")]
type Fast = crate::crypto::awslc::asym::Rsa;
#[cfg(not(feature = "aws-lc"))]
type Fast = ();

impl fmt::Debug for RsaKek {
    // `PrivateKey`'s own Debug would print its primes: never delegate to it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKek")
            .field("algorithm", &self.algorithm)
            .field("private", &self.private.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

fn algorithm_for(public: &RsaOaepPublicKey) -> Result<WrapAlgorithm, Error> {
    match public.bits() {
        3072 => Ok(WrapAlgorithm::RsaOaepSha256_3072),
        4096 => Ok(WrapAlgorithm::RsaOaepSha256_4096),
        n if n < 3072 => Err(invalid("RSA keys below 3072 bits are refused")),
        _ => Err(invalid("RSA keys must be 3072 or 4096 bits")),
    }
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    // Panics only if the OS RNG fails, which `getrandom` reports as unrecoverable.
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn label(algorithm: WrapAlgorithm, binding: &BindingContext) -> Vec<u8> {
    [
        b"kekring/v1/local/".as_slice(),
        algorithm.name().as_bytes(),
        binding.canonical_bytes(),
    ]
    .concat()
}

impl RsaKek {
    /// Generates a key pair for `algorithm` (RSA-OAEP-SHA-256 3072 or 4096). Slow: tens
    /// of milliseconds to seconds.
    ///
    /// # Errors
    /// [`Error::Misuse`] for another algorithm, [`Error::Backend`] if generation fails.
    pub fn generate(algorithm: WrapAlgorithm) -> Result<Self, Error> {
        let bits = match algorithm {
            WrapAlgorithm::RsaOaepSha256_3072 => 3072,
            WrapAlgorithm::RsaOaepSha256_4096 => 4096,
            _ => return Err(invalid("not an RSA-OAEP algorithm")),
        };
        let private = PrivateKey::new(&mut rng(), bits)
            .map_err(|_| Error::Backend(internal("RSA key generation")))?;
        Self::from_private(private)
    }

    fn from_private(private: PrivateKey) -> Result<Self, Error> {
        private
            .validate()
            .map_err(|_| invalid("RSA private key fails validation"))?;
        let public = RsaOaepPublicKey::new(private.to_public_key());
        Ok(Self {
            algorithm: algorithm_for(&public)?,
            public,
            private: Some(private),
            fast: FastKey::default(),
        })
    }

    fn from_public(public: RsaOaepPublicKey) -> Result<Self, Error> {
        Ok(Self {
            algorithm: algorithm_for(&public)?,
            public,
            private: None,
            fast: FastKey::default(),
        })
    }

    /// Imports a PKCS#8 private key (DER), e.g. from `openssl genpkey -algorithm RSA`.
    ///
    /// # Errors
    /// [`Error::Misuse`] for malformed DER, another key type, or a modulus other than
    /// 3072 or 4096 bits.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_private(
            PrivateKey::from_pkcs8_der(der).map_err(|_| invalid("not an RSA PKCS#8 key"))?,
        )
    }

    /// Imports a PKCS#8 private key (PEM, `-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    /// As [`RsaKek::from_pkcs8_der`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        Self::from_private(
            PrivateKey::from_pkcs8_pem(pem).map_err(|_| invalid("not an RSA PKCS#8 key"))?,
        )
    }

    /// Imports a public key (SPKI DER): a public-only KEK that wraps but cannot unwrap.
    ///
    /// # Errors
    /// As [`RsaKek::from_pkcs8_der`].
    pub fn from_public_key_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_public(
            RsaOaepPublicKey::from_spki_der(der).map_err(|_| invalid("not an RSA SPKI key"))?,
        )
    }

    /// Imports a public key (SPKI PEM, `-----BEGIN PUBLIC KEY-----`).
    ///
    /// # Errors
    /// As [`RsaKek::from_pkcs8_der`].
    pub fn from_public_key_pem(pem: &str) -> Result<Self, Error> {
        Self::from_public(RsaOaepPublicKey::new(
            PublicKey::from_public_key_pem(pem).map_err(|_| invalid("not an RSA SPKI key"))?,
        ))
    }

    /// Exports the private key as PKCS#8 DER.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a public-only KEK.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        pkcs8::private_der(self.private.as_ref(), "RSA key cannot be encoded")
    }

    /// Exports the private key as PKCS#8 PEM.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a public-only KEK.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        pkcs8::private_pem(self.private.as_ref(), "RSA key cannot be encoded")
    }

    /// The public key as SPKI DER.
    ///
    /// # Errors
    /// [`Error::Misuse`] if the key cannot be encoded.
    pub fn public_key_der(&self) -> Result<Vec<u8>, Error> {
        pkcs8::public_der(self.public.key(), "RSA key cannot be encoded")
    }

    /// The public key as SPKI PEM.
    ///
    /// # Errors
    /// [`Error::Misuse`] if the key cannot be encoded.
    pub fn public_key_pem(&self) -> Result<String, Error> {
        pkcs8::public_pem(self.public.key(), "RSA key cannot be encoded")
    }

    /// A public-only copy (for a service that only seals).
    pub fn public_only(&self) -> Self {
        Self {
            algorithm: self.algorithm,
            public: RsaOaepPublicKey::new(self.public.key().clone()),
            private: None,
            fast: FastKey::default(),
        }
    }
}

#[cfg(feature = "aws-lc")]
impl RsaKek {
    /// The key in AWS-LC's form (through its DER encodings).
    fn prepare(&self) -> Option<Fast> {
        let spki = self.public_key_der().ok()?;
        let pkcs8 = match &self.private {
            Some(_) => Some(self.to_pkcs8_der().ok()?),
            None => None,
        };
        Fast::new(&spki, pkcs8.as_ref().map(|d| d.as_slice())).ok()
    }
}

impl LocalAlgorithm for RsaKek {
    fn algorithm(&self) -> WrapAlgorithm {
        self.algorithm
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
        let wrapped = self
            .public
            .encrypt(crypto, dek.expose_secret(), &label(self.algorithm, binding))
            .map_err(|_| internal("RSA-OAEP encryption"))?;
        Ok((Vec::new(), wrapped))
    }

    fn unwrap(
        &self,
        crypto: &dyn Primitives,
        _params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, BackendError> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || self.prepare()) {
            let key = k?
                .decrypt(wrapped, &label(self.algorithm, binding))
                .map_err(|_| BackendError::Rejected)?;
            return DataKey::from_slice(&key).map_err(|_| BackendError::Rejected);
        }
        let _ = crypto;
        let private = self.private.as_ref().ok_or(BackendError::Rejected)?;
        let padding = Oaep::<rsa::sha2::Sha256>::new_with_label(label(self.algorithm, binding));
        let key = Zeroizing::new(
            private
                .decrypt_blinded(&mut rng(), padding, wrapped)
                .map_err(|_| BackendError::Rejected)?,
        );
        DataKey::from_slice(&key).map_err(|_| BackendError::Rejected)
    }
}
