//! The KEM construction (FORMAT.md §8 and §11.4), shared by the local KEM-style KEKs
//! and by every backend that holds a KEM private key remotely (AWS KMS ML-KEM, Cloud KMS
//! ML-KEM and X-Wing, PKCS#11 3.2 ML-KEM): encapsulate (locally to the public key, or in
//! the service), derive the wrapping key from the shared secret, the KEM ciphertext and
//! the binding, and wrap the DEK locally with RFC 3394.
//!
//! `wrapping key = HKDF-SHA-256(salt = "kekring/v1/local/" || algorithm name,
//! IKM = shared secret, info = transcript... || binding context)`. The salt's `local`
//! predates remote KEM KEKs; it is kept so that a wrap is the same bytes whoever holds
//! the private key. Services decapsulate with implicit rejection (a tampered ciphertext
//! yields an unrelated secret, not an error): the RFC 3394 integrity check is what
//! refuses it, as [`BackendError::Rejected`].

use zeroize::Zeroizing;

use super::internal;
use crate::backend::BackendError;
use crate::crypto::Primitives;
#[cfg(feature = "remote")]
use crate::crypto::mlkem::MlKemPublicKey;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::{DataKey, KEY_LEN};

/// The wrapping key every KEM-style local algorithm (and the AES key wraps) derives:
/// `HKDF-SHA-256(salt = "kekring/v1/local/" || algorithm name, IKM = ikm,
/// info = transcript... || binding context)`.
pub(crate) fn derive_wrapping_key(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    ikm: &[u8],
    transcript: &[&[u8]],
    binding: &BindingContext,
) -> Result<Zeroizing<[u8; KEY_LEN]>, BackendError> {
    let salt = [b"kekring/v1/local/".as_slice(), algorithm.name().as_bytes()].concat();
    let mut info: Vec<&[u8]> = transcript.to_vec();
    info.push(binding.canonical_bytes());
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    crypto
        .hkdf_sha256(&salt, ikm, &info, k.as_mut_slice())
        .map_err(|_| internal("key derivation"))?;
    Ok(k)
}

/// RFC 3394 wrap of the DEK under a derived key (40 bytes).
pub(crate) fn kw_wrap(
    crypto: &dyn Primitives,
    wrapping_key: &[u8; KEY_LEN],
    dek: &DataKey,
) -> Result<Vec<u8>, BackendError> {
    crypto
        .aes256_kw_wrap(wrapping_key, dek.expose_secret())
        .map_err(|_| internal("key wrap"))
}

/// RFC 3394 unwrap; any failure is a rejected wrap.
pub(crate) fn kw_unwrap(
    crypto: &dyn Primitives,
    wrapping_key: &[u8; KEY_LEN],
    wrapped: &[u8],
) -> Result<DataKey, BackendError> {
    let key = crypto
        .aes256_kw_unwrap(wrapping_key, wrapped)
        .map_err(|_| BackendError::Rejected)?;
    DataKey::from_slice(&key).map_err(|_| BackendError::Rejected)
}

/// The KEM-style wrap every asymmetric local algorithm shares: derive the wrapping key
/// from the shared secret, the transcript and the binding, then RFC 3394 the DEK.
pub(crate) fn kem_wrap(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    shared_secret: &[u8],
    transcript: &[&[u8]],
    binding: &BindingContext,
    dek: &DataKey,
) -> Result<Vec<u8>, BackendError> {
    let wk = derive_wrapping_key(crypto, algorithm, shared_secret, transcript, binding)?;
    kw_wrap(crypto, &wk, dek)
}

/// The inverse of [`kem_wrap`].
pub(crate) fn kem_unwrap(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    shared_secret: &[u8],
    transcript: &[&[u8]],
    binding: &BindingContext,
    wrapped: &[u8],
) -> Result<DataKey, BackendError> {
    let wk = derive_wrapping_key(crypto, algorithm, shared_secret, transcript, binding)?;
    kw_unwrap(crypto, &wk, wrapped)
}

/// The KEM wrap whose transcript is the KEM ciphertext alone (ML-KEM, the hybrid, an
/// ML-KEM key a service holds): returns `(params, wrapped)`, `params` being the
/// ciphertext.
pub(crate) fn wrap_with_ciphertext(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    ciphertext: Vec<u8>,
    shared_secret: &[u8],
    binding: &BindingContext,
    dek: &DataKey,
) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
    let wrapped = kem_wrap(
        crypto,
        algorithm,
        shared_secret,
        &[&ciphertext],
        binding,
        dek,
    )?;
    Ok((ciphertext, wrapped))
}

/// The inverse of [`wrap_with_ciphertext`], with the secret decapsulated from `ciphertext`.
pub(crate) fn unwrap_with_ciphertext(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    ciphertext: &[u8],
    shared_secret: &[u8],
    binding: &BindingContext,
    wrapped: &[u8],
) -> Result<DataKey, BackendError> {
    kem_unwrap(
        crypto,
        algorithm,
        shared_secret,
        &[ciphertext],
        binding,
        wrapped,
    )
}

/// Encapsulates to `public` on `crypto` and wraps `dek` as [`wrap_with_ciphertext`]
/// does: the wrap of a remote ML-KEM KEK whose service holds the private half, the same
/// bytes a local ML-KEM KEK makes. Returns `(params, wrapped)`.
#[cfg(feature = "remote")]
pub(crate) fn encapsulate_and_wrap(
    crypto: &dyn Primitives,
    public: &MlKemPublicKey,
    binding: &BindingContext,
    dek: &DataKey,
) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
    let (ct, ss) = public
        .encapsulate(crypto)
        .map_err(|_| internal("ML-KEM encapsulation"))?;
    wrap_with_ciphertext(crypto, public.algorithm(), ct, ss.as_slice(), binding, dek)
}
