//! Payload crypto: the per-object key schedule, key commitment, AAD and segment nonces.
//!
//! The DEK is a uniformly random 32-byte key, so it serves directly as the HKDF
//! pseudorandom key (RFC 5869 section 3.3: the extract step may be skipped when the input
//! is already a uniformly random key of hash length). One HKDF-Expand call derives 64
//! bytes:
//!
//! ```text
//! OKM = HKDF-Expand-SHA-256(PRK = DEK,
//!                           info = "kekring/v1/payload" || suite id (u16 BE) || nonce,
//!                           L = 64)
//! payload key = OKM[0..32]      commitment = OKM[32..64]
//! ```
//!
//! The commitment is stored in the header and compared in constant time before any
//! decryption: a ciphertext opens under exactly one DEK (finding a second DEK with the
//! same commitment means finding an HKDF-SHA-256 collision). The payload is AES-256-GCM
//! under the payload key; its AAD is `"kekring/v1/payload-aad" || version || suite ||
//! [segment size] || nonce || commitment || binding`, so the caller's context (tenant,
//! purpose, object, classification, associated data) is authenticated with the payload.
//! The wrapped DEKs are not in the AAD: a re-wrap replaces them without touching the
//! payload or its tag. They need no such protection: each wrap is bound to the same
//! context, KEK references are checked against the configuration, and the commitment pins
//! the one DEK the payload opens under.
//!
//! The whole-object suite seals the payload once under the header's nonce. The segmented
//! suite seals segment `i` under `nonce_i = i (u64 BE) || 00 00 00 || last`, where `last`
//! is 1 for the final segment and 0 otherwise: the payload key is unique to the object,
//! so counter nonces never repeat under a key, and a reordered, dropped, duplicated or
//! appended segment, or a stream cut at a segment boundary, fails authentication.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::{Aes256GcmKey, Primitives, RandomSource};
use crate::error::{Error, MisuseError};
use crate::format::{BindingContext, COMMITMENT_LEN, NONCE_LEN, SealedHeader, Suite, TAG_LEN};
use crate::secret::{DataKey, KEY_LEN};

mod segments;

pub(crate) use segments::{FrontCore, Layout, SegmentOpener, SegmentSealer, State, u64_of};

const PAYLOAD_INFO: &[u8] = b"kekring/v1/payload";

/// Largest payload one AES-GCM invocation may encrypt: 2^36 - 32 bytes (SP 800-38D).
/// Whole-object seals refuse more; streams have no such limit.
pub const MAX_PAYLOAD_LEN: u64 = (1 << 36) - 32;

pub(crate) struct PayloadKeys {
    pub(crate) key: Zeroizing<[u8; 32]>,
    pub(crate) commitment: [u8; COMMITMENT_LEN],
}

pub(crate) fn derive(
    crypto: &dyn Primitives,
    dek: &DataKey,
    suite: Suite,
    nonce: &[u8; NONCE_LEN],
) -> Result<PayloadKeys, Error> {
    let mut okm = Zeroizing::new([0u8; 64]);
    crypto
        .hkdf_sha256_expand(
            dek.expose_secret(),
            &[PAYLOAD_INFO, &suite.id().to_be_bytes(), nonce],
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

/// The payload AAD: a label, the format version, suite, segment size (segmented suite
/// only), nonce and commitment, then the canonical binding context. The wrapped DEK is
/// deliberately not in it (see the module documentation).
pub(crate) fn aad(header: &SealedHeader, binding: &BindingContext) -> Vec<u8> {
    let b = binding.canonical_bytes();
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 7 + NONCE_LEN + COMMITMENT_LEN + b.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(crate::format::FORMAT_VERSION);
    aad.extend_from_slice(&header.suite().id().to_be_bytes());
    if let Some(size) = header.segment_size() {
        aad.extend_from_slice(&size.to_be_bytes());
    }
    aad.extend_from_slice(header.nonce());
    aad.extend_from_slice(header.commitment());
    aad.extend_from_slice(b);
    aad
}

/// The nonce of segment `index` of a segmented payload.
pub(crate) fn segment_nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    let (counter, rest) = n.split_at_mut(8);
    counter.copy_from_slice(&index.to_be_bytes());
    if let Some(flag) = rest.last_mut() {
        *flag = u8::from(last);
    }
    n
}

/// A fresh DEK and payload nonce, drawn in one call from `random`.
///
/// # Errors
/// [`Error::Rng`].
pub(crate) fn fresh(
    crypto: &dyn Primitives,
    random: RandomSource,
) -> Result<(DataKey, [u8; NONCE_LEN]), Error> {
    let mut seed = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
    random.fill(crypto, seed.as_mut_slice())?;
    let (dek_bytes, nonce_bytes) = seed.split_at(KEY_LEN);
    let dek = DataKey::from_slice(dek_bytes)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(nonce_bytes);
    Ok((dek, nonce))
}

/// An object's payload cipher: AES-256-GCM under its payload key (key schedule done
/// once), with its nonce and AAD. Every payload encryption and decryption goes through
/// it, for whole objects and streams alike.
pub(crate) struct PayloadCipher {
    key: Box<dyn Aes256GcmKey>,
    nonce: [u8; NONCE_LEN],
    aad: Vec<u8>,
}

impl PayloadCipher {
    /// The cipher of a new object: `key` from [`derive`], `header` holding its
    /// commitment.
    pub(crate) fn for_seal(
        crypto: &dyn Primitives,
        key: &[u8; 32],
        header: &SealedHeader,
        binding: &BindingContext,
    ) -> Self {
        Self {
            key: crypto.aes256_gcm(key),
            nonce: *header.nonce(),
            aad: aad(header, binding),
        }
    }

    /// The cipher of a stored object: derives its keys from `dek` and checks the
    /// commitment in constant time first.
    ///
    /// # Errors
    /// [`Error::Crypto`] when the DEK is not the one the object commits to.
    pub(crate) fn for_open(
        crypto: &dyn Primitives,
        dek: &DataKey,
        header: &SealedHeader,
        binding: &BindingContext,
    ) -> Result<Self, Error> {
        let keys = check_commitment(crypto, dek, header)?;
        Ok(Self::for_seal(crypto, &keys.key, header, binding))
    }

    /// Seals a whole-object payload in place; returns the tag.
    pub(crate) fn seal(&self, body: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
        self.key
            .seal(&self.nonce, &self.aad, body)
            .map_err(|_| Error::Crypto)
    }

    /// Opens a whole-object payload in place; on failure `body` holds no plaintext.
    pub(crate) fn open(&self, body: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), Error> {
        self.key
            .open(&self.nonce, &self.aad, body, tag)
            .map_err(|_| Error::Crypto)
    }

    /// As [`PayloadCipher::open`], but on failure `body` is unchanged.
    pub(crate) fn open_keep(&self, body: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), Error> {
        self.key
            .open_keep(&self.nonce, &self.aad, body, tag)
            .map_err(|_| Error::Crypto)
    }

    /// Opens a complete segmented payload held in memory.
    pub(crate) fn open_segments(
        &self,
        header: &SealedHeader,
        payload: &[u8],
    ) -> Result<Vec<u8>, Error> {
        segments::open_segments(self.key.as_ref(), &self.aad, header, payload)
    }

    /// The sealing side of a stream of `size`-byte segments.
    pub(crate) fn into_sealer(self, size: u32) -> Result<SegmentSealer, Error> {
        SegmentSealer::new(self.key, self.aad, size)
    }

    /// The opening side of a stream of `size`-byte segments.
    pub(crate) fn into_opener(self, size: u32) -> Result<SegmentOpener, Error> {
        SegmentOpener::new(self.key, self.aad, size)
    }
}

/// Derives an object's keys from `dek` and checks the commitment its header stores,
/// in constant time: the DEK is the one the object opens under, or [`Error::Crypto`].
pub(crate) fn check_commitment(
    crypto: &dyn Primitives,
    dek: &DataKey,
    header: &SealedHeader,
) -> Result<PayloadKeys, Error> {
    let keys = derive(crypto, dek, header.suite(), header.nonce())?;
    verify_commitment(&keys.commitment, header.commitment())?;
    Ok(keys)
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
        let seg = derive(c, &a, Suite::Aes256GcmSegmented, &[0; 12]).unwrap();
        assert_ne!(
            seg.commitment, ka.commitment,
            "the suite is in the derivation"
        );
    }

    #[test]
    fn segment_nonces_are_distinct_and_flag_the_last() {
        assert_eq!(segment_nonce(0, false), [0; 12]);
        assert_eq!(segment_nonce(0, true), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            segment_nonce(0x0102, false),
            [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]
        );
        assert_ne!(
            segment_nonce(u64::MAX, true),
            segment_nonce(u64::MAX, false)
        );
    }
}
