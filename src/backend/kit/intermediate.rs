//! The intermediate-key construction (FORMAT.md §11.3), for KEKs whose service cannot
//! bind a context: an RSA key in a KMS, Azure `wrapKey`, PKCS#11 `C_WrapKey`. The service
//! wraps a fresh per-object 256-bit intermediate key; the DEK is AES-256-GCM-sealed under
//! that key locally, with the binding context as AAD:
//!
//! ```text
//! ik      = 32 bytes from the OS RNG, one per wrap
//! params  = the service's wrap of ik
//! wrapped = nonce (12, random) || AES-256-GCM(ik, nonce,
//!               aad = "kekring/v1/intermediate/" || algorithm name || binding, DEK) (32 + 16)
//! ```
//!
//! Moving `params` and `wrapped` to another context fails the GCM tag, whatever the
//! service did; a service that unwraps `ik` under another key yields a wrong `ik`, which
//! fails the tag too.

use zeroize::Zeroizing;

use super::random;
use crate::backend::BackendError;
use crate::crypto::Primitives;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::{DataKey, KEY_LEN};

/// Length of `wrapped` in this construction: nonce, sealed DEK, tag.
pub(crate) const WRAPPED_LEN: usize = 12 + KEY_LEN + 16;

/// A fresh intermediate key.
pub(crate) fn fresh_key() -> Result<Zeroizing<[u8; KEY_LEN]>, BackendError> {
    random::<KEY_LEN>()
}

fn aad(algorithm: WrapAlgorithm, binding: &BindingContext) -> Vec<u8> {
    [
        b"kekring/v1/intermediate/".as_slice(),
        algorithm.name().as_bytes(),
        binding.canonical_bytes(),
    ]
    .concat()
}

/// Seals `dek` under the intermediate key `ik`: `nonce || ciphertext || tag`.
pub(crate) fn seal_dek(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    ik: &[u8; KEY_LEN],
    binding: &BindingContext,
    dek: &DataKey,
) -> Result<Vec<u8>, BackendError> {
    let nonce = random::<12>()?;
    seal_with_nonce(crypto, algorithm, ik, &nonce, binding, dek)
}

/// [`seal_dek`] with a given nonce (the vectors fix it).
fn seal_with_nonce(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    ik: &[u8; KEY_LEN],
    nonce: &[u8; 12],
    binding: &BindingContext,
    dek: &DataKey,
) -> Result<Vec<u8>, BackendError> {
    let mut buf = Zeroizing::new(dek.expose_secret().to_vec());
    let tag = crypto
        .aes256_gcm_seal(ik, nonce, &aad(algorithm, binding), &mut buf)
        .map_err(|_| super::internal("AES-GCM seal"))?;
    Ok([nonce.as_slice(), buf.as_slice(), tag.as_slice()].concat())
}

/// Opens what [`seal_dek`] made; any failure is [`BackendError::Rejected`].
pub(crate) fn open_dek(
    crypto: &dyn Primitives,
    algorithm: WrapAlgorithm,
    ik: &[u8; KEY_LEN],
    binding: &BindingContext,
    wrapped: &[u8],
) -> Result<DataKey, BackendError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(BackendError::Rejected);
    }
    let (nonce, rest) = wrapped.split_at(12);
    let (sealed, tag) = rest.split_at(KEY_LEN);
    let nonce: &[u8; 12] = nonce.try_into().map_err(|_| BackendError::Rejected)?;
    let tag: &[u8; 16] = tag.try_into().map_err(|_| BackendError::Rejected)?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    crypto
        .aes256_gcm_open(ik, nonce, &aad(algorithm, binding), &mut buf, tag)
        .map_err(|_| BackendError::Rejected)?;
    DataKey::from_slice(&buf).map_err(|_| BackendError::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Classification, Name};

    fn binding(object: &[u8]) -> BindingContext {
        BindingContext::new(
            Name::new("tenant", "acme").unwrap(),
            Name::new("purpose", "docs").unwrap(),
            object,
            Classification::Internal,
            b"",
        )
        .unwrap()
    }

    /// The vectors of `tests/data/intermediate_v1.json`, made with another
    /// implementation (pyca/cryptography, `scripts/vectors_intermediate.py`): the seal
    /// and, for `aes256-kw-ik`, the service's RFC 3394 wrap give their bytes exactly, on
    /// both crypto providers.
    #[test]
    fn the_independent_vectors_are_reproduced() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/data/intermediate_v1.json")).unwrap();
        let hex = |v: &serde_json::Value| -> Vec<u8> {
            let s = v.as_str().unwrap();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let providers: Vec<&dyn Primitives> = vec![
            crate::crypto::default_provider(),
            #[cfg(feature = "aws-lc")]
            &crate::crypto::awslc::AwsLc,
        ];
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 3);
        for crypto in providers {
            for v in vectors {
                let alg = WrapAlgorithm::from_name(v["algorithm"].as_str().unwrap()).unwrap();
                let c = &v["context"];
                let b = BindingContext::new(
                    Name::new("tenant", c["tenant"].as_str().unwrap()).unwrap(),
                    Name::new("purpose", c["purpose"].as_str().unwrap()).unwrap(),
                    &hex(&c["object_id_hex"]),
                    Classification::parse(c["classification"].as_str().unwrap()).unwrap(),
                    &hex(&c["aad_hex"]),
                )
                .unwrap();
                let ik: [u8; 32] = hex(&v["intermediate_key_hex"]).try_into().unwrap();
                let nonce: [u8; 12] = hex(&v["nonce_hex"]).try_into().unwrap();
                let dek = DataKey::from_slice(&hex(&v["dek_hex"])).unwrap();
                let wrapped = seal_with_nonce(crypto, alg, &ik, &nonce, &b, &dek).unwrap();
                assert_eq!(
                    wrapped,
                    hex(&v["wrapped_hex"]),
                    "{alg} on {}",
                    crypto.name()
                );
                let back = open_dek(crypto, alg, &ik, &b, &wrapped).unwrap();
                assert_eq!(back.expose_secret(), dek.expose_secret());
                if alg == WrapAlgorithm::Aes256KwIk {
                    let key: [u8; 32] = hex(&v["service_key_hex"]).try_into().unwrap();
                    let params = crypto.aes256_kw_wrap(&key, &ik).unwrap();
                    assert_eq!(params, hex(&v["params_hex"]));
                    assert_eq!(params.len(), alg.lengths().params.0);
                }
            }
        }
    }

    #[test]
    fn a_sealed_dek_opens_only_under_its_key_binding_and_algorithm() {
        let crypto = crate::crypto::default_provider();
        let alg = WrapAlgorithm::Aes256Opaque;
        let ik = fresh_key().unwrap();
        let dek = DataKey::generate().unwrap();
        let b = binding(b"o1");
        let w = seal_dek(crypto, alg, &ik, &b, &dek).unwrap();
        assert_eq!(w.len(), WRAPPED_LEN);
        let back = open_dek(crypto, alg, &ik, &b, &w).unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());

        let other_ik = fresh_key().unwrap();
        let refused = [
            open_dek(crypto, alg, &other_ik, &b, &w),
            open_dek(crypto, alg, &ik, &binding(b"o2"), &w),
            open_dek(crypto, WrapAlgorithm::Aes256Gcm, &ik, &b, &w),
            open_dek(crypto, alg, &ik, &b, &w[..WRAPPED_LEN - 1]),
        ];
        for r in refused {
            assert!(matches!(r, Err(BackendError::Rejected)), "{r:?}");
        }
        for i in [0, 12, WRAPPED_LEN - 1] {
            let mut t = w.clone();
            if let Some(b0) = t.get_mut(i) {
                *b0 ^= 1;
            }
            assert!(matches!(
                open_dek(crypto, alg, &ik, &b, &t),
                Err(BackendError::Rejected)
            ));
        }
    }
}
