//! Payload crypto: the per-object key schedule, key commitment and AAD.
//!
//! From the DEK and the header's nonce, one HKDF-SHA-256 call derives 64 bytes:
//!
//! ```text
//! PRK = HKDF-Extract(salt = "kekring/v1/payload", IKM = DEK)
//! OKM = HKDF-Expand(PRK, info = suite id (u16 BE) || nonce, L = 64)
//! payload key = OKM[0..32]      commitment = OKM[32..64]
//! ```
//!
//! The commitment is stored in the header and compared in constant time before any
//! decryption: a ciphertext opens under exactly one DEK (finding a second DEK with the
//! same commitment means finding an HKDF-SHA-256 collision). The payload is AES-256-GCM
//! under the payload key with the header's nonce; its AAD is
//! `"kekring/v1/payload-aad" || version || suite || nonce || commitment || binding`, so the
//! caller's context (tenant, purpose, object, classification, associated data) is
//! authenticated with the payload. The wrapped DEKs are not in the AAD: a re-wrap
//! replaces them without touching the payload or its tag. They need no such protection:
//! each wrap is bound to the same context, KEK references are checked against the
//! configuration, and the commitment pins the one DEK the payload opens under.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::CryptoProvider;
use crate::error::{Error, MisuseError};
use crate::format::{BindingContext, COMMITMENT_LEN, NONCE_LEN, Suite};
use crate::secret::DataKey;

const PAYLOAD_SALT: &[u8] = b"kekring/v1/payload";

/// Largest payload one AES-GCM invocation may encrypt: 2^36 - 32 bytes (SP 800-38D).
pub const MAX_PAYLOAD_LEN: u64 = (1 << 36) - 32;

pub(crate) struct PayloadKeys {
    pub(crate) key: Zeroizing<[u8; 32]>,
    pub(crate) commitment: [u8; COMMITMENT_LEN],
}

pub(crate) fn derive(
    crypto: &dyn CryptoProvider,
    dek: &DataKey,
    suite: Suite,
    nonce: &[u8; NONCE_LEN],
) -> Result<PayloadKeys, Error> {
    let mut okm = Zeroizing::new([0u8; 64]);
    crypto
        .hkdf_sha256(
            PAYLOAD_SALT,
            dek.expose_secret(),
            &[&suite.id().to_be_bytes(), nonce],
            okm.as_mut_slice(),
        )
        .map_err(|_| Error::Crypto)?;
    let (k, c) = okm.split_at(32);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(k);
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(c);
    Ok(PayloadKeys { key, commitment })
}

/// Constant-time check of the stored commitment against the derived one.
pub(crate) fn verify_commitment(
    derived: &[u8; COMMITMENT_LEN],
    stored: &[u8; COMMITMENT_LEN],
) -> Result<(), Error> {
    if bool::from(derived.ct_eq(stored)) {
        Ok(())
    } else {
        Err(Error::Crypto)
    }
}

const AAD_LABEL: &[u8] = b"kekring/v1/payload-aad";

/// The payload AAD: a label, the format version, suite, nonce and commitment, then the
/// canonical binding context. The wrapped DEK is deliberately not in it, so a re-wrap can
/// replace the wrapped DEK without touching the payload or its tag; the wrap itself is
/// bound to the same context, and the commitment pins the DEK.
pub(crate) fn aad(
    suite: Suite,
    nonce: &[u8; NONCE_LEN],
    commitment: &[u8; COMMITMENT_LEN],
    binding: &BindingContext,
) -> Vec<u8> {
    let b = binding.canonical_bytes();
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 3 + NONCE_LEN + COMMITMENT_LEN + b.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(crate::format::FORMAT_VERSION);
    aad.extend_from_slice(&suite.id().to_be_bytes());
    aad.extend_from_slice(nonce);
    aad.extend_from_slice(commitment);
    aad.extend_from_slice(b);
    aad
}

pub(crate) fn check_payload_len(len: usize) -> Result<(), Error> {
    match u64::try_from(len) {
        Ok(l) if l <= MAX_PAYLOAD_LEN => Ok(()),
        _ => Err(MisuseError::PayloadTooLarge { len }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    #[test]
    fn commitment_depends_on_the_dek_and_nonce() {
        let c = default_provider();
        let a = DataKey::from_array([1; 32]);
        let b = DataKey::from_array([2; 32]);
        let s = Suite::Aes256GcmHkdfSha256Commit;
        let ka = derive(c, &a, s, &[0; 12]).unwrap();
        let kb = derive(c, &b, s, &[0; 12]).unwrap();
        let ka2 = derive(c, &a, s, &[1; 12]).unwrap();
        assert_ne!(ka.commitment, kb.commitment);
        assert_ne!(ka.commitment, ka2.commitment);
        assert_ne!(*ka.key, *kb.key);
        assert_ne!(&ka.key[..], &ka.commitment[..]);
        assert!(verify_commitment(&ka.commitment, &ka.commitment).is_ok());
        assert!(matches!(
            verify_commitment(&ka.commitment, &kb.commitment),
            Err(Error::Crypto)
        ));
    }
}
