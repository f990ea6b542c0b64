//! Local P-256 ECDH-ES KEKs: an ephemeral key pair per wrap, ECDH with the KEK's public
//! key, `wrapping key = HKDF-SHA-256(salt = "kekring/v1/local/p256-ecdh-es", IKM = Z,
//! info = ephemeral point (65) || recipient point (65) || binding)`, then RFC 3394 of the
//! DEK. `params` is the ephemeral public key, uncompressed SEC1 (65 bytes).

use std::fmt;

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use p256::{PublicKey, SecretKey};
use zeroize::Zeroizing;

use super::pkcs8;
use super::{LocalAlgorithm, internal, invalid, kem_unwrap, kem_wrap, random};
use crate::backend::BackendError;
use crate::crypto::prepared::FastKey;
use crate::crypto::{Primitives, RandomSource};
use crate::error::Error;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

/// Length of an uncompressed SEC1 P-256 point.
pub(super) const POINT_LEN: usize = 65;

/// A local P-256 KEK; public-only when imported from a public key.
pub struct P256Kek {
    public: PublicKey,
    public_sec1: [u8; POINT_LEN],
    secret: Option<SecretKey>,
    // Read only by the aws-lc provider.
    #[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
    fast: FastKey<Fast>,
}

#[cfg(feature = "aws-lc")]
type Fast = crate::crypto::awslc::asym::P256;
#[cfg(not(feature = "aws-lc"))]
type Fast = ();

impl fmt::Debug for P256Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P256Kek")
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Uncompressed SEC1 encoding (`04 || X || Y`).
pub(super) fn sec1_uncompressed(p: &PublicKey) -> Option<[u8; POINT_LEN]> {
    p.to_sec1_bytes().as_ref().try_into().ok()
}

/// A uniformly random non-zero scalar from the OS RNG (rejection sampling: a 32-byte
/// string is at least the group order with probability about 2^-32).
pub(super) fn random_secret() -> Result<SecretKey, BackendError> {
    for _ in 0..64 {
        let bytes = random::<32>()?;
        if let Ok(sk) = SecretKey::from_slice(bytes.as_slice()) {
            return Ok(sk);
        }
    }
    Err(internal("P-256 key generation"))
}

/// Parses an uncompressed SEC1 point; refuses points not on the curve and the identity.
pub(super) fn parse_point(bytes: &[u8]) -> Result<PublicKey, BackendError> {
    if bytes.len() != POINT_LEN || bytes.first() != Some(&0x04) {
        return Err(BackendError::Rejected);
    }
    PublicKey::from_sec1_bytes(bytes).map_err(|_| BackendError::Rejected)
}

impl P256Kek {
    /// Generates a key pair.
    ///
    /// # Errors
    /// [`Error::Backend`] if the OS RNG fails.
    pub fn generate() -> Result<Self, Error> {
        Self::from_secret(random_secret()?)
    }

    fn from_secret(secret: SecretKey) -> Result<Self, Error> {
        let public = secret.public_key();
        Ok(Self {
            public_sec1: sec1_uncompressed(&public).ok_or_else(|| invalid("bad P-256 point"))?,
            public,
            secret: Some(secret),
            fast: FastKey::default(),
        })
    }

    fn from_public(public: PublicKey) -> Result<Self, Error> {
        Ok(Self {
            public_sec1: sec1_uncompressed(&public).ok_or_else(|| invalid("bad P-256 point"))?,
            public,
            secret: None,
            fast: FastKey::default(),
        })
    }

    /// Imports a PKCS#8 private key (DER), e.g. from
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
    ///
    /// # Errors
    /// [`Error::Misuse`] for malformed DER, another curve or key type, or a zero scalar.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_secret(
            SecretKey::from_pkcs8_der(der).map_err(|_| invalid("not a P-256 PKCS#8 key"))?,
        )
    }

    /// Imports a PKCS#8 private key (PEM).
    ///
    /// # Errors
    /// As [`P256Kek::from_pkcs8_der`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        Self::from_secret(
            SecretKey::from_pkcs8_pem(pem).map_err(|_| invalid("not a P-256 PKCS#8 key"))?,
        )
    }

    /// Imports a public key (SPKI DER): a public-only KEK.
    ///
    /// # Errors
    /// [`Error::Misuse`] for malformed DER, another curve, or a point not on the curve.
    pub fn from_public_key_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_public(
            PublicKey::from_public_key_der(der).map_err(|_| invalid("not a P-256 SPKI key"))?,
        )
    }

    /// Imports a public key (SPKI PEM): a public-only KEK.
    ///
    /// # Errors
    /// As [`P256Kek::from_public_key_der`].
    pub fn from_public_key_pem(pem: &str) -> Result<Self, Error> {
        Self::from_public(
            PublicKey::from_public_key_pem(pem).map_err(|_| invalid("not a P-256 SPKI key"))?,
        )
    }

    /// Imports a public key from its SEC1 encoding (compressed or uncompressed).
    ///
    /// # Errors
    /// [`Error::Misuse`] for a point not on the curve, the identity, or a bad length.
    pub fn from_sec1_public_key(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_public(
            PublicKey::from_sec1_bytes(bytes).map_err(|_| invalid("not a P-256 point"))?,
        )
    }

    /// Exports the private key as PKCS#8 DER.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a public-only KEK.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        pkcs8::private_der(self.secret.as_ref(), "P-256 key cannot be encoded")
    }

    /// Exports the private key as PKCS#8 PEM.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a public-only KEK.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        pkcs8::private_pem(self.secret.as_ref(), "P-256 key cannot be encoded")
    }

    /// The public key as SPKI DER.
    ///
    /// # Errors
    /// [`Error::Misuse`] if the key cannot be encoded.
    pub fn public_key_der(&self) -> Result<Vec<u8>, Error> {
        pkcs8::public_der(&self.public, "P-256 key cannot be encoded")
    }

    /// The public key as SPKI PEM.
    ///
    /// # Errors
    /// [`Error::Misuse`] if the key cannot be encoded.
    pub fn public_key_pem(&self) -> Result<String, Error> {
        pkcs8::public_pem(&self.public, "P-256 key cannot be encoded")
    }

    /// The public key, uncompressed SEC1 (65 bytes).
    pub fn public_key_sec1(&self) -> [u8; POINT_LEN] {
        self.public_sec1
    }

    /// A public-only copy.
    pub fn public_only(&self) -> Self {
        Self {
            public: self.public,
            public_sec1: self.public_sec1,
            secret: None,
            fast: FastKey::default(),
        }
    }
}

#[cfg(feature = "aws-lc")]
impl P256Kek {
    /// The key in AWS-LC's form: the static private key when there is one. One form
    /// serves wrap and unwrap; whichever comes first fills the cache.
    fn prepare(&self) -> Option<Fast> {
        match &self.secret {
            Some(sk) => Fast::new(Some(Zeroizing::new(sk.to_bytes()).as_slice())).ok(),
            None => Fast::new(None).ok(),
        }
    }
}

impl LocalAlgorithm for P256Kek {
    fn algorithm(&self) -> WrapAlgorithm {
        WrapAlgorithm::P256EcdhEs
    }

    fn can_unwrap(&self) -> bool {
        self.secret.is_some()
    }

    fn wrap(
        &self,
        crypto: &dyn Primitives,
        _random: RandomSource,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        #[cfg(feature = "aws-lc")]
        if self.fast.for_provider(crypto, || self.prepare()).is_some() {
            let (epk, z) =
                Fast::ephemeral_agree(&self.public_sec1).map_err(|_| internal("P-256"))?;
            let wrapped = kem_wrap(
                crypto,
                WrapAlgorithm::P256EcdhEs,
                &z,
                &[&epk, &self.public_sec1],
                binding,
                dek,
            )?;
            return Ok((epk, wrapped));
        }
        let eph = random_secret()?;
        let epk = sec1_uncompressed(&eph.public_key()).ok_or_else(|| internal("P-256"))?;
        let z = eph.diffie_hellman(&self.public);
        let wrapped = kem_wrap(
            crypto,
            WrapAlgorithm::P256EcdhEs,
            z.raw_secret_bytes().as_slice(),
            &[&epk, &self.public_sec1],
            binding,
            dek,
        )?;
        Ok((epk.to_vec(), wrapped))
    }

    fn unwrap(
        &self,
        crypto: &dyn Primitives,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, BackendError> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || self.prepare()) {
            let z = k?.agree(params).map_err(|_| BackendError::Rejected)?;
            return kem_unwrap(
                crypto,
                WrapAlgorithm::P256EcdhEs,
                &z,
                &[params, &self.public_sec1],
                binding,
                wrapped,
            );
        }
        let sk = self.secret.as_ref().ok_or(BackendError::Rejected)?;
        let epk = parse_point(params)?;
        let z = sk.diffie_hellman(&epk);
        kem_unwrap(
            crypto,
            WrapAlgorithm::P256EcdhEs,
            z.raw_secret_bytes().as_slice(),
            &[params, &self.public_sec1],
            binding,
            wrapped,
        )
    }
}
