//! Local AES-256 KEKs: RFC 3394 and RFC 5649 key wrap under a context-bound key, and
//! AES-256-GCM with the context as AAD.
//!
//! **Key wrap (RFC 3394 / RFC 5649).** Key wrap has no associated data, so the binding
//! context goes into the key: `wrapping key = HKDF-SHA-256(salt = "kekring/v1/local/" ||
//! algorithm name, IKM = KEK, info = binding context)`, and the DEK is wrapped under it.
//! A wrap moved to another context is unwrapped under another key and fails the RFC
//! 3394 integrity check. The costs: one HKDF and one AES key schedule per call.
//!
//! **AES-256-GCM with a derived key per wrap** (`aes256-gcm-derived`). Every wrap draws
//! a 256-bit salt (carried in `params`) and seals the DEK under `HKDF-SHA-256(salt =
//! "kekring/v1/local/aes256-gcm-derived", IKM = KEK, info = salt || binding)`, with a
//! zero nonce (each derived key seals exactly one DEK) and the binding also as AAD. So
//! no (key, nonce) pair repeats while salts do not: about 2^-128 after 2^64 wraps, where
//! a random 96-bit nonce under the KEK itself reaches SP 800-38D's limit after 2^32.
//! The cost is one HKDF and one AES key schedule per call, as for key wrap.
//! `aes256-gcm` (`0x0003`, the KEK used directly with random nonces) is not offered.

use std::fmt;

use zeroize::Zeroizing;

use super::{LocalAlgorithm, derive_wrapping_key, internal, kw_unwrap, kw_wrap};
use crate::backend::BackendError;
use crate::crypto::{Primitives, RandomSource};
use crate::error::{Error, MisuseError};
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::{Aes256KeyMaterial, DataKey, KEY_LEN};

const GCM_AAD_LABEL: &[u8] = b"kekring/v1/local/aes256-gcm-derived";
/// The per-wrap salt carried in `params`.
const SALT_LEN: usize = 32;
/// Each derived key seals exactly one DEK, so the nonce is fixed.
const ZERO_NONCE: [u8; 12] = [0; 12];

/// A local AES-256 KEK bound to one algorithm (`Aes256Kw`, `Aes256Kwp` or
/// `Aes256GcmDerived`).
pub struct Aes256Kek {
    algorithm: WrapAlgorithm,
    key: Aes256KeyMaterial,
}

impl fmt::Debug for Aes256Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aes256Kek")
            .field("algorithm", &self.algorithm)
            .field("key", &self.key)
            .finish()
    }
}

impl Aes256Kek {
    /// A KEK for `algorithm` from existing material.
    ///
    /// # Errors
    /// [`Error::Misuse`] when `algorithm` is not a local AES algorithm.
    pub fn new(algorithm: WrapAlgorithm, key: Aes256KeyMaterial) -> Result<Self, Error> {
        match algorithm {
            WrapAlgorithm::Aes256Kw
            | WrapAlgorithm::Aes256Kwp
            | WrapAlgorithm::Aes256GcmDerived => Ok(Self { algorithm, key }),
            _ => Err(MisuseError::AlgorithmNotOffered {
                backend: crate::format::BackendId::Local,
                algorithm,
            }
            .into()),
        }
    }

    /// A fresh KEK for `algorithm`.
    ///
    /// # Errors
    /// As [`Aes256Kek::new`], or [`Error::Rng`].
    pub fn generate(algorithm: WrapAlgorithm) -> Result<Self, Error> {
        Self::new(algorithm, Aes256KeyMaterial::generate()?)
    }

    /// The key material (for export into a key store).
    pub fn material(&self) -> &Aes256KeyMaterial {
        &self.key
    }

    /// The wrapping key: for key wrap, `HKDF(KEK, info = binding)`; for GCM,
    /// `HKDF(KEK, info = salt || binding)`.
    fn wrapping_key(
        &self,
        crypto: &dyn Primitives,
        salt: &[u8],
        binding: &BindingContext,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, BackendError> {
        derive_wrapping_key(crypto, self.algorithm, self.key.bytes(), &[salt], binding)
    }
}

/// Runs `f` with the wrap AAD, built on the stack when it is small (the usual case).
fn with_gcm_aad<T>(binding: &BindingContext, f: impl FnOnce(&[u8]) -> T) -> T {
    let b = binding.canonical_bytes();
    let n = GCM_AAD_LABEL.len() + b.len();
    let mut stack = [0u8; 512];
    match stack.get_mut(..n) {
        Some(buf) => {
            let (label, rest) = buf.split_at_mut(GCM_AAD_LABEL.len());
            label.copy_from_slice(GCM_AAD_LABEL);
            rest.copy_from_slice(b);
            f(buf)
        }
        None => f(&gcm_aad(binding)),
    }
}

fn gcm_aad(binding: &BindingContext) -> Vec<u8> {
    let b = binding.canonical_bytes();
    let mut aad = Vec::with_capacity(GCM_AAD_LABEL.len() + b.len());
    aad.extend_from_slice(GCM_AAD_LABEL);
    aad.extend_from_slice(b);
    aad
}

impl LocalAlgorithm for Aes256Kek {
    fn algorithm(&self) -> WrapAlgorithm {
        self.algorithm
    }

    fn wrap(
        &self,
        crypto: &dyn Primitives,
        random: RandomSource,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        match self.algorithm {
            WrapAlgorithm::Aes256GcmDerived => {
                let mut salt = [0u8; SALT_LEN];
                random
                    .fill(crypto, &mut salt)
                    .map_err(|_| internal("RNG"))?;
                let wk = self.wrapping_key(crypto, &salt, binding)?;
                let mut buf = Zeroizing::new(*dek.expose_secret());
                let tag = with_gcm_aad(binding, |aad| {
                    crypto.aes256_gcm_seal(&wk, &ZERO_NONCE, aad, buf.as_mut_slice())
                })
                .map_err(|_| internal("wrap"))?;
                let mut wrapped = Vec::with_capacity(KEY_LEN + 16);
                wrapped.extend_from_slice(buf.as_slice());
                wrapped.extend_from_slice(&tag);
                Ok((salt.to_vec(), wrapped))
            }
            WrapAlgorithm::Aes256Kwp => {
                let wk = self.wrapping_key(crypto, &[], binding)?;
                let w = crypto
                    .aes256_kwp_wrap(&wk, dek.expose_secret())
                    .map_err(|_| internal("wrap"))?;
                Ok((Vec::new(), w))
            }
            _ => Ok((
                Vec::new(),
                kw_wrap(crypto, &*self.wrapping_key(crypto, &[], binding)?, dek)?,
            )),
        }
    }

    fn unwrap(
        &self,
        crypto: &dyn Primitives,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, BackendError> {
        let key = match self.algorithm {
            WrapAlgorithm::Aes256GcmDerived => {
                if params.len() != SALT_LEN {
                    return Err(BackendError::Rejected);
                }
                let split = wrapped
                    .len()
                    .checked_sub(16)
                    .ok_or(BackendError::Rejected)?;
                let (ct, tag) = wrapped.split_at(split);
                let tag: [u8; 16] = tag.try_into().map_err(|_| BackendError::Rejected)?;
                let wk = self.wrapping_key(crypto, params, binding)?;
                let mut buf = Zeroizing::new(ct.to_vec());
                with_gcm_aad(binding, |aad| {
                    crypto.aes256_gcm_open(&wk, &ZERO_NONCE, aad, &mut buf, &tag)
                })
                .map_err(|_| BackendError::Rejected)?;
                buf
            }
            WrapAlgorithm::Aes256Kwp => {
                let wk = self.wrapping_key(crypto, &[], binding)?;
                crypto
                    .aes256_kwp_unwrap(&wk, wrapped)
                    .map_err(|_| BackendError::Rejected)?
            }
            _ => return kw_unwrap(crypto, &*self.wrapping_key(crypto, &[], binding)?, wrapped),
        };
        DataKey::from_slice(&key).map_err(|_| BackendError::Rejected)
    }
}
