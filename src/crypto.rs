//! Crypto providers: every AEAD, key-wrap, KDF and RNG call of the crate goes through the
//! crate-private [`Primitives`] seam, so the format, the backends' logic and the
//! `Envelope` do not depend on which library computes them.
//!
//! Two providers exist: RustCrypto (pure Rust, always compiled, the default) and, with
//! the `aws-lc` feature, `aws-lc-rs`. A provider is chosen explicitly with
//! [`CryptoProvider`] on the [`crate::EnvelopeBuilder`] and the
//! [`crate::LocalBackend`]; enabling a feature never switches provider by itself.

use std::fmt::{self, Debug};

use zeroize::Zeroizing;

use crate::error::Error;

#[cfg(feature = "aws-lc")]
pub(crate) mod awslc;
#[cfg(test)]
mod kat_tests;
#[cfg(any(feature = "local", feature = "remote"))]
pub(crate) mod mlkem;
pub(crate) mod prepared;
#[cfg(feature = "local-rsa")]
pub(crate) mod rsa;
pub(crate) mod rustcrypto;

/// One opaque failure of a primitive (authentication failed, bad length). Deliberately
/// carries nothing: no oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CryptoFailure;

/// An AES-256-GCM key with its key schedule (and GHASH key) computed once.
pub(crate) trait Aes256GcmKey: Send + Sync {
    /// Encrypts `buf` in place; returns the tag.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8])
    -> Result<[u8; 16], CryptoFailure>;

    /// Decrypts `buf` in place; on failure `buf` holds no plaintext (its content is
    /// otherwise unspecified).
    fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure>;

    /// As [`Aes256GcmKey::open`], but on failure `buf` is unchanged.
    fn open_keep(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure> {
        // RustCrypto verifies the tag before it decrypts.
        self.open(nonce, aad, buf, tag)
    }

    /// Decrypts `ct` into `out` (as long as `ct`) in one pass; on failure `out` holds
    /// no plaintext.
    fn open_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ct: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        if out.len() != ct.len() {
            return Err(CryptoFailure);
        }
        out.copy_from_slice(ct);
        self.open(nonce, aad, out, tag)
    }
}

/// The primitives the crate needs.
pub(crate) trait Primitives: Send + Sync + Debug {
    /// The provider's name, as reported by [`CryptoProvider::name`].
    fn name(&self) -> &'static str;

    /// The FIPS 140-3 module and its version when the library runs one in FIPS mode.
    fn fips_module(&self) -> Option<String> {
        None
    }

    /// Prepares an AES-256-GCM key.
    fn aes256_gcm(&self, key: &[u8; 32]) -> Box<dyn Aes256GcmKey>;

    /// AES-256-GCM in place with a one-off key; returns the tag.
    fn aes256_gcm_seal(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        self.aes256_gcm(key).seal(nonce, aad, buf)
    }

    /// AES-256-GCM open in place with a one-off key; on failure `buf` holds no plaintext.
    fn aes256_gcm_open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure> {
        self.aes256_gcm(key).open(nonce, aad, buf, tag)
    }

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

    /// HKDF-Expand-SHA-256 only (RFC 5869 section 2.3), for a `prk` that is already a
    /// uniformly random 32-byte key.
    fn hkdf_sha256_expand(
        &self,
        prk: &[u8; 32],
        info: &[&[u8]],
        okm: &mut [u8],
    ) -> Result<(), CryptoFailure>;

    /// Whether the provider has its own fork- and snapshot-safe DRBG
    /// ([`RandomSource::UserSpace`]).
    fn has_drbg(&self) -> bool {
        false
    }

    /// Fills `buf` from the provider's DRBG (see [`RandomSource`]). Providers without one
    /// refuse; the builders refuse to select it first.
    fn fill_user_space(&self, _buf: &mut [u8]) -> Result<(), Error> {
        Err(Error::Rng)
    }
}

/// Which cryptographic library computes the primitives.
///
/// Chosen explicitly on the [`crate::EnvelopeBuilder`] and the `LocalBackend` (feature
/// `local`); remote backends use the envelope's;
/// the default is [`CryptoProvider::rust_crypto`] whatever features are enabled. Objects
/// sealed by one provider open under the other: the format does not depend on it.
#[derive(Clone, Copy)]
pub struct CryptoProvider {
    pub(crate) primitives: &'static dyn Primitives,
}

impl CryptoProvider {
    /// The pure-Rust RustCrypto crates (`aes-gcm`, `aes-kw`, `hkdf`, `sha2`, `rsa`,
    /// `p256`, `ml-kem`). Always available; the default.
    pub fn rust_crypto() -> Self {
        Self {
            primitives: &rustcrypto::RustCrypto,
        }
    }

    /// `aws-lc-rs` (AWS-LC). Needs the `aws-lc` feature; with `aws-lc-fips` it is the
    /// FIPS build ([`CryptoProvider::fips`] tells which one runs).
    #[cfg(feature = "aws-lc")]
    pub fn aws_lc() -> Self {
        Self {
            primitives: &awslc::AwsLc,
        }
    }

    /// `aws-lc-rs` built on the FIPS module of AWS-LC (`aws-lc-fips-sys`), checked to be
    /// running in FIPS mode. Needs the `aws-lc-fips` feature.
    ///
    /// The module being in FIPS mode does not make every kekring operation an approved
    /// service: AWS-LC counts AES-GCM sealing with a caller-supplied nonce (the payload,
    /// stream segments, the local AES-256-GCM KEK) and HKDF-Expand without Extract (the
    /// payload key schedule) as non-approved. [`crate::BackendInfo::fips`] of a local
    /// backend on this provider says so.
    ///
    /// # Errors
    /// [`MisuseError::NotFipsMode`](crate::MisuseError::NotFipsMode) when AWS-LC is
    /// not in FIPS mode (for example an ASAN build).
    #[cfg(feature = "aws-lc-fips")]
    pub fn aws_lc_fips() -> Result<Self, Error> {
        let provider = Self::aws_lc();
        if provider.fips() {
            Ok(provider)
        } else {
            Err(crate::error::MisuseError::NotFipsMode.into())
        }
    }

    /// The provider's name: `rust-crypto`, `aws-lc`, or `aws-lc-fips` when the linked
    /// AWS-LC runs in FIPS mode.
    pub fn name(&self) -> &'static str {
        self.primitives.name()
    }

    /// Whether the provider runs in a FIPS 140-3 module in FIPS mode (only the FIPS
    /// build of AWS-LC can). Not every kekring operation is then an approved service:
    /// see `CryptoProvider::aws_lc_fips` (feature `aws-lc-fips`).
    pub fn fips(&self) -> bool {
        self.primitives.fips_module().is_some()
    }
}

impl Default for CryptoProvider {
    fn default() -> Self {
        Self::rust_crypto()
    }
}

impl Debug for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoProvider")
            .field("name", &self.name())
            .field("fips", &self.fips())
            .finish()
    }
}

impl PartialEq for CryptoProvider {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for CryptoProvider {}

/// Where per-object randomness (DEKs, nonces, wrap randomness) comes from.
///
/// This is a security decision, so the default is the conservative one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RandomSource {
    /// One `getrandom` system call per object (the default). Nothing is kept in
    /// user space; costs a system call (0.4 to 0.9 µs on the project's machines) per
    /// seal.
    #[default]
    OperatingSystem,
    /// The crypto provider's own user-space DRBG, where it has one that is fork- and
    /// snapshot-safe: AWS-LC's per-thread CTR-DRBG (feature `aws-lc`), which detects a
    /// fork through a `MADV_WIPEONFORK` page and a VM snapshot restore through the
    /// kernel's VM generation id, and reseeds on every request where it cannot detect
    /// them. RustCrypto has no such generator: the builders refuse this source with it
    /// ([`ConfigError::RandomSourceUnavailable`](crate::ConfigError::RandomSourceUnavailable)).
    UserSpace,
}

impl RandomSource {
    /// Checks that `provider` can serve this source.
    pub(crate) fn check(self, provider: CryptoProvider) -> Result<(), Error> {
        match self {
            RandomSource::UserSpace if !provider.primitives.has_drbg() => {
                Err(crate::error::ConfigError::RandomSourceUnavailable {
                    provider: provider.name(),
                }
                .into())
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn fill(self, p: &dyn Primitives, buf: &mut [u8]) -> Result<(), Error> {
        match self {
            RandomSource::OperatingSystem => fill_random(buf),
            RandomSource::UserSpace => p.fill_user_space(buf),
        }
    }
}

/// The provider the crate uses unless told otherwise (the key store's sealing; tests).
#[cfg(any(feature = "keystore", test))]
pub(crate) fn default_provider() -> &'static dyn Primitives {
    &rustcrypto::RustCrypto
}

/// Fills `buf` from the operating system's RNG (`getrandom`). Long-lived keys (KEKs, key
/// store salts and nonces) always come from here.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|_| Error::Rng)
}
