//! Local AES-256 KEKs: RFC 3394 and RFC 5649 key wrap under a context-bound key, and
//! AES-256-GCM with the context as AAD.
//!
//! **Key wrap (RFC 3394 / RFC 5649).** Key wrap has no associated data, so the binding
//! context goes into the key: `wrapping key = HKDF-SHA-256(salt = "kekring/v1/local/" ||
//! algorithm name, IKM = KEK, info = binding context)`, and the DEK is wrapped under it.
//! A wrap moved to another context is unwrapped under another key and fails the RFC
//! 3394 integrity check. The costs: one HKDF and one AES key schedule per call.
//!
//! **AES-256-GCM.** A random 96-bit nonce (carried in `params`) and the binding context
//! as AAD. Random nonces cap one KEK at 2^32 wraps (SP 800-38D); rotate before that.

use std::fmt;

use zeroize::Zeroizing;

use super::{LocalAlgorithm, derive_wrapping_key, internal, kw_unwrap, kw_wrap};
use crate::backend::BackendError;
use std::sync::OnceLock;

use crate::crypto::{Aes256GcmKey, Primitives, RandomSource};
use crate::error::{Error, MisuseError};
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::{Aes256KeyMaterial, DataKey, KEY_LEN};

const GCM_AAD_LABEL: &[u8] = b"kekring/v1/local/aes256-gcm";

/// A local AES-256 KEK bound to one algorithm (`Aes256Kw`, `Aes256Kwp` or `Aes256Gcm`).
pub struct Aes256Kek {
    algorithm: WrapAlgorithm,
    key: Aes256KeyMaterial,
    /// The AES-GCM key schedule, prepared on first use by the provider named with it.
    prepared: OnceLock<(&'static str, Box<dyn Aes256GcmKey>)>,
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
            WrapAlgorithm::Aes256Kw | WrapAlgorithm::Aes256Kwp | WrapAlgorithm::Aes256Gcm => {
                Ok(Self {
                    algorithm,
                    key,
                    prepared: OnceLock::new(),
                })
            }
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

    fn wrapping_key(
        &self,
        crypto: &dyn Primitives,
        binding: &BindingContext,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, BackendError> {
        derive_wrapping_key(crypto, self.algorithm, self.key.bytes(), &[], binding)
    }
}

impl Aes256Kek {
    /// Runs `f` with the KEK's prepared AES-GCM key for `crypto` (kept for the provider
    /// that used it first; another provider prepares a one-off key).
    fn with_gcm<T>(&self, crypto: &dyn Primitives, f: impl FnOnce(&dyn Aes256GcmKey) -> T) -> T {
        let (name, key) = self
            .prepared
            .get_or_init(|| (crypto.name(), crypto.aes256_gcm(self.key.bytes())));
        if *name == crypto.name() {
            f(key.as_ref())
        } else {
            f(crypto.aes256_gcm(self.key.bytes()).as_ref())
        }
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
            WrapAlgorithm::Aes256Gcm => {
                let mut nonce = [0u8; 12];
                random
                    .fill(crypto, &mut nonce)
                    .map_err(|_| internal("RNG"))?;
                let mut buf = Zeroizing::new(*dek.expose_secret());
                let tag = self
                    .with_gcm(crypto, |k| {
                        with_gcm_aad(binding, |aad| k.seal(&nonce, aad, buf.as_mut_slice()))
                    })
                    .map_err(|_| internal("wrap"))?;
                let mut wrapped = Vec::with_capacity(KEY_LEN + 16);
                wrapped.extend_from_slice(buf.as_slice());
                wrapped.extend_from_slice(&tag);
                Ok((nonce.to_vec(), wrapped))
            }
            WrapAlgorithm::Aes256Kwp => {
                let wk = self.wrapping_key(crypto, binding)?;
                let w = crypto
                    .aes256_kwp_wrap(&wk, dek.expose_secret())
                    .map_err(|_| internal("wrap"))?;
                Ok((Vec::new(), w))
            }
            _ => Ok((
                Vec::new(),
                kw_wrap(crypto, &*self.wrapping_key(crypto, binding)?, dek)?,
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
            WrapAlgorithm::Aes256Gcm => {
                let nonce: [u8; 12] = params.try_into().map_err(|_| BackendError::Rejected)?;
                let split = wrapped
                    .len()
                    .checked_sub(16)
                    .ok_or(BackendError::Rejected)?;
                let (ct, tag) = wrapped.split_at(split);
                let tag: [u8; 16] = tag.try_into().map_err(|_| BackendError::Rejected)?;
                let mut buf = Zeroizing::new(ct.to_vec());
                self.with_gcm(crypto, |k| {
                    with_gcm_aad(binding, |aad| k.open(&nonce, aad, &mut buf, &tag))
                })
                .map_err(|_| BackendError::Rejected)?;
                buf
            }
            WrapAlgorithm::Aes256Kwp => {
                let wk = self.wrapping_key(crypto, binding)?;
                crypto
                    .aes256_kwp_unwrap(&wk, wrapped)
                    .map_err(|_| BackendError::Rejected)?
            }
            _ => return kw_unwrap(crypto, &*self.wrapping_key(crypto, binding)?, wrapped),
        };
        DataKey::from_slice(&key).map_err(|_| BackendError::Rejected)
    }
}
