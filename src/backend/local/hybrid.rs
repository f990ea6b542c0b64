//! The hybrid KEK: MLKEM768-P256 as defined in draft-irtf-cfrg-concrete-hybrid-kems-04
//! (6 July 2026), on the "CG" framework of draft-irtf-cfrg-hybrid-kems-12: ML-KEM-768
//! with ECDH on P-256, PRG SHAKE256, KDF SHA3-256, label `MLKEM768-P256`.
//!
//! ```text
//! key generation   dk = seed (32 bytes)
//!                  seed_full = SHAKE256(seed, 192)
//!                  ML-KEM-768 key from d || z = seed_full[0..64]
//!                  P-256 scalar = first of the four 32-byte big-endian chunks of
//!                                 seed_full[64..192] with 0 < k < n
//!                  ek = ek_PQ (1184) || ek_T (65, uncompressed SEC1)
//! encapsulation    (ss_PQ, ct_PQ) = ML-KEM-768.Encaps(ek_PQ)
//!                  e = scalar from 128 random bytes as above; ct_T = e·G (65)
//!                  ss_T = x(e·ek_T)
//!                  ss = SHA3-256(ss_PQ || ss_T || ct_T || ek_T || "MLKEM768-P256")
//!                  ct = ct_PQ (1088) || ct_T (65)
//! ```
//!
//! kekring then derives `wrapping key = HKDF-SHA-256(salt = "kekring/v1/local/
//! p256-ml-kem-768", IKM = ss, info = ct || binding)` and wraps the DEK with RFC 3394.
//! `params` is `ct` (1153 bytes). The draft's ten test vectors are checked in this
//! module's tests. The hybrid stays secure while either ML-KEM-768 or P-256 ECDH does.

use std::fmt;

use ml_kem::kem::KeyExport;
use ml_kem::{B32, MlKem768};
use p256::{PublicKey, SecretKey};
use sha3::{Digest, Sha3_256};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use zeroize::{Zeroize, Zeroizing};

use super::mlkem::{decaps768, degenerate, dk768_from_seed};
use super::p256::{POINT_LEN, parse_point, sec1_uncompressed};
use super::{LocalAlgorithm, internal, invalid, random};
use crate::backend::BackendError;
use crate::backend::kit::kem::{unwrap_with_ciphertext, wrap_with_ciphertext};
use crate::crypto::prepared::FastKey;
use crate::crypto::{Primitives, RandomSource};
use crate::error::Error;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

/// Length of the hybrid decapsulation key (the seed).
pub const HYBRID_SEED_LEN: usize = 32;
const EK_PQ_LEN: usize = 1184;
const CT_PQ_LEN: usize = 1088;
const LABEL: &[u8] = b"MLKEM768-P256";

type Ek768 = ml_kem::EncapsulationKey<MlKem768>;
type Dk768 = ml_kem::DecapsulationKey<MlKem768>;

struct Private {
    seed: Zeroizing<[u8; HYBRID_SEED_LEN]>,
    dk_pq: Box<Dk768>,
    dk_t: SecretKey,
}

/// A local MLKEM768-P256 hybrid KEK; public-only when imported from its encapsulation key.
pub struct HybridKek {
    ek_pq: Box<Ek768>,
    ek_t: PublicKey,
    ek_t_bytes: [u8; POINT_LEN],
    private: Option<Private>,
    // Read only by the aws-lc provider.
    #[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
    fast: FastKey<Fast>,
}

#[cfg(feature = "aws-lc")]
type Fast = crate::crypto::awslc::asym::Hybrid;
#[cfg(not(feature = "aws-lc"))]
type Fast = ();

impl fmt::Debug for HybridKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridKek")
            .field("algorithm", &WrapAlgorithm::HybridP256MlKem768)
            .field("private", &self.private.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// The draft's RandomScalar for P-256: the first 32-byte big-endian chunk `k` of `seed`
/// with `0 < k < n`; no reduction.
fn random_scalar(seed: &[u8]) -> Option<SecretKey> {
    seed.chunks_exact(32)
        .find_map(|chunk| SecretKey::from_slice(chunk).ok())
}

/// The shared-secret combiner.
fn combine(ss_pq: &[u8], ss_t: &[u8], ct_t: &[u8], ek_t: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha3_256::new();
    Digest::update(&mut h, ss_pq);
    Digest::update(&mut h, ss_t);
    Digest::update(&mut h, ct_t);
    Digest::update(&mut h, ek_t);
    Digest::update(&mut h, LABEL);
    Zeroizing::new(h.finalize().into())
}

impl HybridKek {
    /// Generates a fresh hybrid KEK.
    ///
    /// # Errors
    /// [`Error::Rng`] if the OS RNG fails.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; HYBRID_SEED_LEN]);
        crate::crypto::fill_random(seed.as_mut_slice())?;
        Self::from_seed(seed.as_slice())
    }

    /// Imports the decapsulation key (the 32-byte seed).
    ///
    /// # Errors
    /// [`Error::Misuse`] for a wrong length, a degenerate seed (every byte equal), or in
    /// the (2^-128-likely) case that the expanded seed yields no valid P-256 scalar.
    pub fn from_seed(seed: &[u8]) -> Result<Self, Error> {
        if degenerate(seed) {
            return Err(invalid("degenerate hybrid seed"));
        }
        Self::from_seed_unchecked(seed)
    }

    /// As `from_seed` without the degenerate-seed check: the draft's test vectors use
    /// seeds of one repeated byte.
    fn from_seed_unchecked(seed: &[u8]) -> Result<Self, Error> {
        let seed = Zeroizing::new(
            <[u8; HYBRID_SEED_LEN]>::try_from(seed)
                .map_err(|_| invalid("hybrid seed must be 32 bytes"))?,
        );
        let mut full = Zeroizing::new([0u8; 192]);
        let mut xof = Shake256::default();
        Update::update(&mut xof, seed.as_slice());
        xof.finalize_xof().read(full.as_mut_slice());
        let (seed_pq, seed_t) = full.split_at(64);
        let dk_pq = dk768_from_seed(seed_pq)?;
        let dk_t = random_scalar(seed_t).ok_or_else(|| invalid("seed yields no P-256 scalar"))?;
        let ek_t = dk_t.public_key();
        Ok(Self {
            ek_pq: Box::new(dk_pq.encapsulation_key().clone()),
            ek_t_bytes: sec1_uncompressed(&ek_t).ok_or_else(|| invalid("bad P-256 point"))?,
            ek_t,
            private: Some(Private {
                seed,
                dk_pq: Box::new(dk_pq),
                dk_t,
            }),
            fast: FastKey::default(),
        })
    }

    /// Imports the encapsulation key `ek_PQ || ek_T` (1249 bytes): a public-only KEK.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a wrong length, an ML-KEM key that fails the FIPS 203
    /// check, or a point not on P-256.
    pub fn from_encapsulation_key(ek: &[u8]) -> Result<Self, Error> {
        if ek.len() != EK_PQ_LEN + POINT_LEN {
            return Err(invalid("hybrid encapsulation key must be 1249 bytes"));
        }
        let (pq, t) = ek.split_at(EK_PQ_LEN);
        let arr = ml_kem::array::Array::try_from(pq).map_err(|_| invalid("bad ML-KEM-768 key"))?;
        let ek_pq = Ek768::new(&arr).map_err(|_| invalid("invalid ML-KEM-768 key"))?;
        let ek_t = parse_point(t).map_err(|_| invalid("not a P-256 point"))?;
        Ok(Self {
            ek_pq: Box::new(ek_pq),
            ek_t_bytes: sec1_uncompressed(&ek_t).ok_or_else(|| invalid("bad P-256 point"))?,
            ek_t,
            private: None,
            fast: FastKey::default(),
        })
    }

    /// The decapsulation key (the 32-byte seed), for export into a key store.
    ///
    /// # Errors
    /// [`Error::Misuse`] for a public-only KEK.
    pub fn to_seed(&self) -> Result<Zeroizing<[u8; HYBRID_SEED_LEN]>, Error> {
        let p = self
            .private
            .as_ref()
            .ok_or_else(|| invalid("public-only KEK"))?;
        Ok(p.seed.clone())
    }

    /// The encapsulation key `ek_PQ || ek_T` (1249 bytes).
    pub fn encapsulation_key(&self) -> Vec<u8> {
        [self.ek_pq.to_bytes().as_slice(), &self.ek_t_bytes].concat()
    }

    /// A public-only copy.
    pub fn public_only(&self) -> Self {
        Self {
            ek_pq: self.ek_pq.clone(),
            ek_t: self.ek_t,
            ek_t_bytes: self.ek_t_bytes,
            private: None,
            fast: FastKey::default(),
        }
    }

    /// Encapsulation with explicit randomness (32 bytes for ML-KEM, then 128 for the
    /// P-256 scalar): the draft's deterministic variant, used for its test vectors.
    fn encaps_derand(
        &self,
        randomness: &[u8; 160],
    ) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), BackendError> {
        let (m, seed_e) = randomness.split_at(32);
        let mut m = B32::try_from(m).map_err(|_| internal("hybrid encapsulation"))?;
        let (ct_pq, mut ss_pq) = self.ek_pq.encapsulate_deterministic(&m);
        m.as_mut_slice().zeroize();
        let e = random_scalar(seed_e).ok_or_else(|| internal("hybrid encapsulation"))?;
        let ct_t = sec1_uncompressed(&e.public_key()).ok_or_else(|| internal("P-256"))?;
        let ss_t = e.diffie_hellman(&self.ek_t);
        let ss = combine(&ss_pq, ss_t.raw_secret_bytes(), &ct_t, &self.ek_t_bytes);
        ss_pq.as_mut_slice().zeroize();
        Ok(([ct_pq.as_slice(), &ct_t].concat(), ss))
    }

    fn decaps(&self, ct: &[u8]) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        let p = self.private.as_ref().ok_or(BackendError::Rejected)?;
        if ct.len() != CT_PQ_LEN + POINT_LEN {
            return Err(BackendError::Rejected);
        }
        let (ct_pq, ct_t) = ct.split_at(CT_PQ_LEN);
        let ss_pq = decaps768(&p.dk_pq, ct_pq)?;
        // An invalid point is an explicit rejection (draft-irtf-cfrg-hybrid-kems-12).
        let point = parse_point(ct_t)?;
        let ss_t = p.dk_t.diffie_hellman(&point);
        Ok(combine(
            ss_pq.as_slice(),
            ss_t.raw_secret_bytes(),
            ct_t,
            &self.ek_t_bytes,
        ))
    }
}

#[cfg(feature = "aws-lc")]
impl HybridKek {
    /// The component keys in AWS-LC's form (the ML-KEM half through its expanded
    /// decapsulation key, as for the ML-KEM KEKs).
    #[allow(deprecated)] // the expanded encoding is what AWS-LC imports
    fn prepare(&self) -> Option<Fast> {
        use ml_kem::ExpandedKeyEncoding;
        use ml_kem::kem::KeyExport;
        let ek = self.ek_pq.to_bytes();
        let (expanded, scalar) = match &self.private {
            Some(p) => (
                Some(Zeroizing::new(p.dk_pq.to_expanded_bytes().to_vec())),
                Some(Zeroizing::new(p.dk_t.to_bytes().to_vec())),
            ),
            None => (None, None),
        };
        let pq = crate::crypto::awslc::asym::MlKem::new(
            false,
            ek.as_slice(),
            expanded.as_ref().map(|e| e.as_slice()),
        )
        .ok()?;
        let t =
            crate::crypto::awslc::asym::P256::new(scalar.as_ref().map(|s| s.as_slice())).ok()?;
        Some(Fast { pq, t })
    }

    /// Encapsulation with AWS-LC's randomness: ML-KEM-768 encapsulation and an ephemeral
    /// P-256 key, combined as in the draft.
    fn encaps_aws_lc(&self, k: &Fast) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), BackendError> {
        let fail = |_| internal("hybrid encapsulation");
        let (ct_pq, ss_pq) = k.pq.encapsulate().map_err(fail)?;
        let (ct_t, ss_t) =
            crate::crypto::awslc::asym::P256::ephemeral_agree(&self.ek_t_bytes).map_err(fail)?;
        let ss = combine(ss_pq.as_slice(), &ss_t, &ct_t, &self.ek_t_bytes);
        Ok(([ct_pq.as_slice(), &ct_t].concat(), ss))
    }

    fn decaps_aws_lc(&self, k: &Fast, ct: &[u8]) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        if self.private.is_none() || ct.len() != CT_PQ_LEN + POINT_LEN {
            return Err(BackendError::Rejected);
        }
        let (ct_pq, ct_t) = ct.split_at(CT_PQ_LEN);
        let ss_pq =
            k.pq.decapsulate(ct_pq)
                .map_err(|_| BackendError::Rejected)?;
        // AWS-LC refuses an invalid point: the draft's explicit rejection.
        let ss_t = k.t.agree(ct_t).map_err(|_| BackendError::Rejected)?;
        Ok(combine(ss_pq.as_slice(), &ss_t, ct_t, &self.ek_t_bytes))
    }
}

impl HybridKek {
    /// Encapsulates with the backend's provider: AWS-LC's own randomness, or 160 bytes
    /// of OS randomness through the draft's deterministic variant.
    fn encapsulate(
        &self,
        crypto: &dyn Primitives,
    ) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), BackendError> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || self.prepare()) {
            return self.encaps_aws_lc(k?);
        }
        let _ = crypto;
        let mut randomness = random::<160>()?;
        let r = self.encaps_derand(&randomness);
        randomness.zeroize();
        r
    }

    /// Decapsulates with the backend's provider.
    fn decapsulate(
        &self,
        crypto: &dyn Primitives,
        ct: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || self.prepare()) {
            return self.decaps_aws_lc(k?, ct);
        }
        let _ = crypto;
        self.decaps(ct)
    }
}

impl LocalAlgorithm for HybridKek {
    fn algorithm(&self) -> WrapAlgorithm {
        WrapAlgorithm::HybridP256MlKem768
    }

    fn can_unwrap(&self) -> bool {
        self.private.is_some()
    }

    fn wrap(
        &self,
        crypto: &dyn Primitives,
        _random: RandomSource,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        let (ct, ss) = self.encapsulate(crypto)?;
        wrap_with_ciphertext(crypto, self.algorithm(), ct, ss.as_slice(), binding, dek)
    }

    fn unwrap(
        &self,
        crypto: &dyn Primitives,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, BackendError> {
        let ss = self.decapsulate(crypto, params)?;
        unwrap_with_ciphertext(
            crypto,
            self.algorithm(),
            params,
            ss.as_slice(),
            binding,
            wrapped,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_04_test_vectors() {
        let f: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/data/hybrid_mlkem768_p256_draft04.json"
        ))
        .unwrap();
        let vectors = f["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 10);
        let field = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap().to_owned();
        for (i, v) in vectors.iter().enumerate() {
            let kek =
                HybridKek::from_seed_unchecked(&hex::decode(field(v, "seed")).unwrap()).unwrap();
            assert_eq!(
                hex::encode(kek.encapsulation_key()),
                field(v, "encapsulation_key"),
                "ek #{i}"
            );
            let r: [u8; 160] = hex::decode(field(v, "randomness"))
                .unwrap()
                .try_into()
                .unwrap();
            let (ct, ss) = kek.encaps_derand(&r).unwrap();
            assert_eq!(hex::encode(&ct), field(v, "ciphertext"), "ct #{i}");
            assert_eq!(
                hex::encode(ss.as_slice()),
                field(v, "shared_secret"),
                "ss #{i}"
            );
            let ss2 = kek.decaps(&ct).unwrap();
            assert_eq!(ss2.as_slice(), ss.as_slice(), "decaps #{i}");
            #[cfg(feature = "aws-lc")]
            {
                let fast = kek.prepare().unwrap();
                let ss4 = kek.decaps_aws_lc(&fast, &ct).unwrap();
                assert_eq!(ss4.as_slice(), ss.as_slice(), "AWS-LC decaps #{i}");
                // And what AWS-LC encapsulates, RustCrypto decapsulates.
                let (ct5, ss5) = kek.encaps_aws_lc(&fast).unwrap();
                assert_eq!(kek.decaps(&ct5).unwrap().as_slice(), ss5.as_slice());
            }
            // The public half alone encapsulates to the same values.
            let public = HybridKek::from_encapsulation_key(&kek.encapsulation_key()).unwrap();
            let (ct3, ss3) = public.encaps_derand(&r).unwrap();
            assert_eq!((ct3, ss3.as_slice()), (ct, ss.as_slice()));
        }
    }

    #[test]
    fn random_scalar_rejection_sampling() {
        let k = [0x42u8; 32];
        let n_bytes =
            hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
                .unwrap();
        // 0 and values >= n are skipped; the first valid chunk wins, unreduced.
        for bad in [[0u8; 32].to_vec(), [0xff; 32].to_vec(), n_bytes.clone()] {
            let seed = [bad.as_slice(), &k, &[0x43; 32], &[0x44; 32]].concat();
            assert_eq!(random_scalar(&seed).unwrap().to_bytes().as_slice(), &k);
        }
        let seed = [n_bytes.as_slice(), &[0u8; 32], &[0xff; 32], &k].concat();
        assert_eq!(random_scalar(&seed).unwrap().to_bytes().as_slice(), &k);
        let all_bad = [n_bytes.as_slice(), &[0u8; 32], &[0xff; 32], &[0u8; 32]].concat();
        assert!(random_scalar(&all_bad).is_none());
        // The 32/128 split of the encapsulation randomness: changing only the ML-KEM part
        // or only the P-256 part changes different halves of the ciphertext.
        let kek = HybridKek::from_seed(&(0u8..32).collect::<Vec<_>>()).unwrap();
        let mut r: [u8; 160] = core::array::from_fn(|i| u8::try_from(i % 251).unwrap());
        let (ct1, _) = kek.encaps_derand(&r).unwrap();
        r[31] ^= 1;
        let (ct2, _) = kek.encaps_derand(&r).unwrap();
        assert_ne!(ct1[..CT_PQ_LEN], ct2[..CT_PQ_LEN]);
        assert_eq!(ct1[CT_PQ_LEN..], ct2[CT_PQ_LEN..]);
        r[32] ^= 1;
        let (ct3, _) = kek.encaps_derand(&r).unwrap();
        assert_ne!(ct2[CT_PQ_LEN..], ct3[CT_PQ_LEN..]);
        assert!(
            HybridKek::from_seed(&[5; 32]).is_err(),
            "degenerate seed accepted"
        );
    }

    #[test]
    fn invalid_point_in_ciphertext_is_an_explicit_rejection() {
        let kek = HybridKek::from_seed(&(7u8..39).collect::<Vec<_>>()).unwrap();
        let (mut ct, _) = kek.encaps_derand(&[9u8; 160]).unwrap();
        let last = ct.len() - 1;
        ct[last] ^= 1; // the point leaves the curve
        assert!(matches!(kek.decaps(&ct), Err(BackendError::Rejected)));
        #[cfg(feature = "aws-lc")]
        {
            let fast = kek.prepare().unwrap();
            assert!(matches!(
                kek.decaps_aws_lc(&fast, &ct),
                Err(BackendError::Rejected)
            ));
        }
    }
}
