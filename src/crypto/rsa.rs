//! The public half of RSA-OAEP with SHA-256 (OAEP hash and MGF1): encryption to a
//! public key, on the crypto provider asked for (AWS-LC when it is the provider, else
//! the `rsa` crate). Shared by the local RSA KEKs and by services that decrypt with an
//! RSA key they hold and leave encryption to the client (Cloud KMS `asymmetricDecrypt`).
//! Public-key operations are not what RUSTSEC-2023-0071 concerns (private-key timing).

use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, PublicKey};

use super::prepared::FastKey;
use super::{CryptoFailure, Primitives};

/// An RSA public key for OAEP-SHA-256 encryption.
pub(crate) struct RsaOaepPublicKey {
    key: PublicKey,
    // Read only by the aws-lc provider.
    #[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
    fast: FastKey<Fast>,
}

#[cfg(feature = "aws-lc")]
type Fast = super::awslc::asym::Rsa;
#[cfg(not(feature = "aws-lc"))]
type Fast = ();

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    // Panics only if the OS RNG fails, which `getrandom` reports as unrecoverable.
    rand_core::UnwrapErr(getrandom::SysRng)
}

impl RsaOaepPublicKey {
    /// From an RSA key of the `rsa` crate.
    pub(crate) fn new(key: PublicKey) -> Self {
        Self {
            key,
            fast: FastKey::default(),
        }
    }

    /// From a DER `SubjectPublicKeyInfo`.
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, CryptoFailure> {
        PublicKey::from_public_key_der(der)
            .map(Self::new)
            .map_err(|_| CryptoFailure)
    }

    /// The key of the `rsa` crate.
    pub(crate) fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The modulus length in bits.
    pub(crate) fn bits(&self) -> u32 {
        self.key.n().bit_width()
    }

    /// Encrypts `msg` with OAEP-SHA-256 under `label`, on `crypto`'s implementation.
    pub(crate) fn encrypt(
        &self,
        crypto: &dyn Primitives,
        msg: &[u8],
        label: &[u8],
    ) -> Result<Vec<u8>, CryptoFailure> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || {
            use rsa::pkcs8::EncodePublicKey;
            let der = self.key.to_public_key_der().ok()?;
            Fast::new(der.as_bytes(), None).ok()
        }) {
            return k.map_err(|_| CryptoFailure)?.encrypt(msg, label);
        }
        let _ = crypto;
        let padding = Oaep::<rsa::sha2::Sha256>::new_with_label(label.to_vec());
        self.key
            .encrypt(&mut rng(), padding, msg)
            .map_err(|_| CryptoFailure)
    }
}
