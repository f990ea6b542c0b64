//! The default provider: the pure-Rust RustCrypto crates.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::KeyInit;
use aes_kw::{KwAes256, KwpAes256};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Aes256GcmKey, CryptoFailure, Primitives};

/// The RustCrypto provider (`aes-gcm`, `aes-kw`, `hkdf`, `sha2`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RustCrypto;

// Length guards in front of `aes-kw`: RFC 3394 wraps at least two semiblocks (16-byte
// keys), RFC 5649 at least one byte. `aes-kw` 0.3 accepts an 8-byte ciphertext and
// "unwraps" it to an empty key; Wycheproof (aes_wrap tc 108, aes_kwp tc 253) marks those
// invalid, and so do we.
fn kw_input_ok(key: &[u8]) -> bool {
    key.len() >= 16 && key.len().is_multiple_of(8)
}
fn kw_wrapped_ok(wrapped: &[u8]) -> bool {
    wrapped.len() >= 24 && wrapped.len().is_multiple_of(8)
}
fn kwp_wrapped_ok(wrapped: &[u8]) -> bool {
    wrapped.len() >= 16 && wrapped.len().is_multiple_of(8)
}

/// RFC 3394 / 5649 never produce more than the input plus one 8-byte block (plus
/// padding to 8 for KWP).
fn wrapped_capacity(key_len: usize) -> usize {
    key_len.div_ceil(8).saturating_mul(8).saturating_add(8)
}

/// A prepared RustCrypto AES-256-GCM key (the `aes` key schedule zeroizes on drop).
struct GcmKey(Aes256Gcm);

impl Aes256GcmKey for GcmKey {
    fn seal(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        let tag = self
            .0
            .encrypt_inout_detached(nonce.into(), aad, buf.into())
            .map_err(|_| CryptoFailure)?;
        Ok(tag.into())
    }

    fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure> {
        self.0
            .decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
            .map_err(|_| CryptoFailure)
    }
}

impl Primitives for RustCrypto {
    fn name(&self) -> &'static str {
        "rust-crypto"
    }

    fn aes256_gcm(&self, key: &[u8; 32]) -> Box<dyn Aes256GcmKey> {
        Box::new(GcmKey(Aes256Gcm::new(key.into())))
    }

    // One-off keys without the box: every whole-object seal and open takes this path.
    fn aes256_gcm_seal(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        GcmKey(Aes256Gcm::new(key.into())).seal(nonce, aad, buf)
    }

    fn aes256_gcm_open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure> {
        GcmKey(Aes256Gcm::new(key.into())).open(nonce, aad, buf, tag)
    }

    fn aes256_kw_wrap(&self, kek: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
        if !kw_input_ok(key) {
            return Err(CryptoFailure);
        }
        let kw = KwAes256::new(kek.into());
        let mut out = vec![0u8; wrapped_capacity(key.len())];
        let n = kw.wrap_key(key, &mut out).map_err(|_| CryptoFailure)?.len();
        out.truncate(n);
        Ok(out)
    }

    fn aes256_kw_unwrap(
        &self,
        kek: &[u8; 32],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        if !kw_wrapped_ok(wrapped) {
            return Err(CryptoFailure);
        }
        let kw = KwAes256::new(kek.into());
        let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
        let n = kw
            .unwrap_key(wrapped, &mut out)
            .map_err(|_| CryptoFailure)?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn aes256_kwp_wrap(&self, kek: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
        if key.is_empty() {
            return Err(CryptoFailure);
        }
        let kw = KwpAes256::new(kek.into());
        let mut out = vec![0u8; wrapped_capacity(key.len())];
        let n = kw.wrap_key(key, &mut out).map_err(|_| CryptoFailure)?.len();
        out.truncate(n);
        Ok(out)
    }

    fn aes256_kwp_unwrap(
        &self,
        kek: &[u8; 32],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        if !kwp_wrapped_ok(wrapped) {
            return Err(CryptoFailure);
        }
        let kw = KwpAes256::new(kek.into());
        let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
        let n = kw
            .unwrap_key(wrapped, &mut out)
            .map_err(|_| CryptoFailure)?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        info: &[&[u8]],
        okm: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        Hkdf::<Sha256>::new(Some(salt), ikm)
            .expand_multi_info(info, okm)
            .map_err(|_| CryptoFailure)
    }

    fn hkdf_sha256_expand(
        &self,
        prk: &[u8; 32],
        info: &[&[u8]],
        okm: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        Hkdf::<Sha256>::from_prk(prk)
            .map_err(|_| CryptoFailure)?
            .expand_multi_info(info, okm)
            .map_err(|_| CryptoFailure)
    }
}
