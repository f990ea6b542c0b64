//! The internal crypto-provider seam: every AEAD, key-wrap and KDF call of the crate goes
//! through [`CryptoProvider`], so a second implementation (for example `aws-lc-rs`) can be
//! added without touching the format, the backends' logic or the `Envelope`.
//!
//! The RustCrypto implementation ([`rustcrypto::RustCrypto`]) is the default and, for now,
//! the only one. The seam stays crate-private until a second provider proves its shape.

use std::fmt::Debug;

use zeroize::Zeroizing;

use crate::error::Error;

#[cfg(test)]
mod kat_tests;
pub(crate) mod rustcrypto;

/// One opaque failure of a primitive (authentication failed, bad length). Deliberately
/// carries nothing: no oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CryptoFailure;

/// The primitives the crate needs.
pub(crate) trait CryptoProvider: Send + Sync + Debug {
    /// AES-256-GCM in place; returns the tag.
    fn aes256_gcm_seal(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure>;

    /// AES-256-GCM open in place; on failure `buf` holds no plaintext.
    fn aes256_gcm_open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure>;

    /// RFC 3394 AES-256 key wrap of `key` (a multiple of 8 bytes, at least 16).
    fn aes256_kw_wrap(&self, kek: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, CryptoFailure>;

    /// RFC 3394 AES-256 key unwrap.
    fn aes256_kw_unwrap(
        &self,
        kek: &[u8; 32],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure>;

    /// RFC 5649 AES-256 key wrap with padding.
    fn aes256_kwp_wrap(&self, kek: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, CryptoFailure>;

    /// RFC 5649 AES-256 key unwrap with padding.
    fn aes256_kwp_unwrap(
        &self,
        kek: &[u8; 32],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure>;

    /// HKDF-SHA-256 (RFC 5869): extract with `salt`, expand with the concatenation of
    /// `info` into `okm`.
    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        info: &[&[u8]],
        okm: &mut [u8],
    ) -> Result<(), CryptoFailure>;
}

/// The provider the crate uses unless told otherwise.
pub(crate) fn default_provider() -> &'static dyn CryptoProvider {
    &rustcrypto::RustCrypto
}

/// Fills `buf` from the operating system's RNG (`getrandom`).
///
/// Every DEK, nonce and generated KEK comes from here. A user-space CSPRNG would be
/// faster for tiny objects; that is a security decision left to the performance work,
/// which must document reseeding and fork safety if it makes it.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|_| Error::Rng)
}
