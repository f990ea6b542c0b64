//! The `aws-lc-rs` provider (feature `aws-lc`): AES-256-GCM, AES key wrap (RFC 3394 and
//! 5649), HKDF-SHA-256 and the DRBG here; RSA-OAEP, P-256 ECDH and ML-KEM as prepared
//! key objects the local KEKs cache (see `backend::local`).
//!
//! Two behaviours differ from RustCrypto and are evened out here: a failed AES-GCM open
//! or key unwrap in AWS-LC may leave bytes in the output buffer, so outputs are wiped on
//! failure (and `open_keep` decrypts into a scratch buffer so the caller's buffer is
//! untouched); and AWS-LC cannot import an ML-KEM key from its FIPS 203 seed, so the
//! local ML-KEM KEK expands the seed once with RustCrypto and hands AWS-LC the expanded
//! key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrap, KeyWrapPadded};
use zeroize::{Zeroize, Zeroizing};

use super::{Aes256GcmKey, CryptoFailure, Primitives};
use crate::error::Error;

/// The name [`crate::CryptoProvider::name`] reports: `aws-lc`, or `aws-lc-fips` when the
/// linked AWS-LC runs in FIPS mode (the `aws-lc-fips` feature, enabled by this crate or
/// by any other crate in the build, since cargo unifies features).
pub(crate) fn name() -> &'static str {
    static NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        if aws_lc_rs::try_fips_mode().is_ok() {
            "aws-lc-fips"
        } else {
            "aws-lc"
        }
    })
}

/// The `aws-lc-rs` provider.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AwsLc;

struct GcmKey(LessSafeKey);

impl Aes256GcmKey for GcmKey {
    fn seal(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoFailure)?;
        tag.as_ref().try_into().map_err(|_| CryptoFailure)
    }

    fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure> {
        let r = self.0.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            tag,
            buf,
        );
        if r.is_err() {
            buf.zeroize();
            return Err(CryptoFailure);
        }
        Ok(())
    }

    fn open_keep(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), CryptoFailure> {
        let mut scratch = Zeroizing::new(vec![0u8; buf.len()]);
        self.open_to(nonce, aad, buf, tag, &mut scratch)?;
        buf.copy_from_slice(&scratch);
        Ok(())
    }

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
        let r = self.0.open_separate_gather(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            ct,
            tag,
            out,
        );
        if r.is_err() {
            out.zeroize();
            return Err(CryptoFailure);
        }
        Ok(())
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn kw_capacity(len: usize) -> usize {
    len.div_ceil(8).saturating_mul(8).saturating_add(8)
}

fn kek(key: &[u8; 32]) -> Result<AesKek, CryptoFailure> {
    AesKek::new(&AES_256, key).map_err(|_| CryptoFailure)
}

type KwOp = fn(AesKek, &[u8], &mut [u8]) -> Result<usize, aws_lc_rs::error::Unspecified>;

/// One RFC 3394 / 5649 wrap: a fresh `AesKek` (AWS-LC consumes it per call), an output
/// sized for the input plus padding and the integrity block.
fn wrap_with(kek_bytes: &[u8; 32], key: &[u8], op: KwOp) -> Result<Vec<u8>, CryptoFailure> {
    let mut out = vec![0u8; kw_capacity(key.len())];
    let n = op(kek(kek_bytes)?, key, &mut out).map_err(|_| CryptoFailure)?;
    out.truncate(n);
    Ok(out)
}

/// One RFC 3394 / 5649 unwrap; AWS-LC may leave unverified bytes in the output on
/// failure, so it is wiped then.
fn unwrap_with(
    kek_bytes: &[u8; 32],
    wrapped: &[u8],
    op: KwOp,
) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    match kek(kek_bytes).and_then(|k| op(k, wrapped, &mut out).map_err(|_| CryptoFailure)) {
        Ok(n) => {
            out.truncate(n);
            Ok(out)
        }
        Err(e) => {
            out.zeroize();
            Err(e)
        }
    }
}

impl Primitives for AwsLc {
    fn name(&self) -> &'static str {
        name()
    }

    fn fips_module(&self) -> Option<String> {
        aws_lc_rs::try_fips_mode().ok()?;
        let version = aws_lc_rs::awslc_version();
        Some(match aws_lc_rs::fips_version() {
            Some(module) => {
                format!("AWS-LC {version} (FIPS module version {module}), in FIPS mode")
            }
            None => format!("AWS-LC {version}, in FIPS mode"),
        })
    }

    fn aes256_gcm(&self, key: &[u8; 32]) -> Box<dyn Aes256GcmKey> {
        // A 32-byte key is always accepted for AES-256-GCM.
        match UnboundKey::new(&AES_256_GCM, key) {
            Ok(k) => Box::new(GcmKey(LessSafeKey::new(k))),
            Err(_) => Box::new(Refusing),
        }
    }

    fn aes256_kw_wrap(&self, kek_bytes: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
        wrap_with(kek_bytes, key, |k, i, o| k.wrap(i, o).map(|w| w.len()))
    }

    fn aes256_kw_unwrap(
        &self,
        kek_bytes: &[u8; 32],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        unwrap_with(kek_bytes, wrapped, |k, i, o| {
            k.unwrap(i, o).map(|u| u.len())
        })
    }

    fn aes256_kwp_wrap(&self, kek_bytes: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
        if key.is_empty() {
            return Err(CryptoFailure);
        }
        wrap_with(kek_bytes, key, |k, i, o| {
            k.wrap_with_padding(i, o).map(|w| w.len())
        })
    }

    fn aes256_kwp_unwrap(
        &self,
        kek_bytes: &[u8; 32],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        unwrap_with(kek_bytes, wrapped, |k, i, o| {
            k.unwrap_with_padding(i, o).map(|u| u.len())
        })
    }

    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        info: &[&[u8]],
        okm: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        Salt::new(HKDF_SHA256, salt)
            .extract(ikm)
            .expand(info, Len(okm.len()))
            .map_err(|_| CryptoFailure)?
            .fill(okm)
            .map_err(|_| CryptoFailure)
    }

    fn hkdf_sha256_expand(
        &self,
        prk: &[u8; 32],
        info: &[&[u8]],
        okm: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        Prk::new_less_safe(HKDF_SHA256, prk)
            .expand(info, Len(okm.len()))
            .map_err(|_| CryptoFailure)?
            .fill(okm)
            .map_err(|_| CryptoFailure)
    }

    fn has_drbg(&self) -> bool {
        true
    }

    fn fill_user_space(&self, buf: &mut [u8]) -> Result<(), Error> {
        aws_lc_rs::rand::fill(buf).map_err(|_| Error::Rng)
    }
}

/// Stands in for a key AWS-LC refused (cannot happen for 32 bytes): every call fails.
struct Refusing;

impl Aes256GcmKey for Refusing {
    fn seal(&self, _: &[u8; 12], _: &[u8], _: &mut [u8]) -> Result<[u8; 16], CryptoFailure> {
        Err(CryptoFailure)
    }

    fn open(
        &self,
        _: &[u8; 12],
        _: &[u8],
        buf: &mut [u8],
        _: &[u8; 16],
    ) -> Result<(), CryptoFailure> {
        buf.zeroize();
        Err(CryptoFailure)
    }
}

/// Prepared asymmetric keys for the local KEKs.
pub(crate) mod asym {
    use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
    use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768, ML_KEM_1024};
    #[cfg(feature = "local-rsa")]
    use aws_lc_rs::rsa::{
        OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
        PrivateDecryptingKey, PublicEncryptingKey,
    };
    #[cfg(feature = "local-rsa")]
    use zeroize::Zeroize;
    use zeroize::Zeroizing;

    use super::CryptoFailure;

    /// An RSA-OAEP-SHA-256 key pair (or public key).
    #[cfg(feature = "local-rsa")]
    pub(crate) struct Rsa {
        public: OaepPublicEncryptingKey,
        private: Option<OaepPrivateDecryptingKey>,
    }

    #[cfg(feature = "local-rsa")]
    impl Rsa {
        pub(crate) fn new(
            spki_der: &[u8],
            pkcs8_der: Option<&[u8]>,
        ) -> Result<Self, CryptoFailure> {
            let public = PublicEncryptingKey::from_der(spki_der)
                .ok()
                .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
                .ok_or(CryptoFailure)?;
            let private = match pkcs8_der {
                Some(der) => Some(
                    PrivateDecryptingKey::from_pkcs8(der)
                        .ok()
                        .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
                        .ok_or(CryptoFailure)?,
                ),
                None => None,
            };
            Ok(Self { public, private })
        }

        pub(crate) fn encrypt(&self, msg: &[u8], label: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
            let mut out = vec![0u8; self.public.ciphertext_size()];
            let n = self
                .public
                .encrypt(&OAEP_SHA256_MGF1SHA256, msg, &mut out, Some(label))
                .map_err(|_| CryptoFailure)?
                .len();
            out.truncate(n);
            Ok(out)
        }

        pub(crate) fn decrypt(
            &self,
            ct: &[u8],
            label: &[u8],
        ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
            let private = self.private.as_ref().ok_or(CryptoFailure)?;
            let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
            match private.decrypt(&OAEP_SHA256_MGF1SHA256, ct, &mut out, Some(label)) {
                Ok(p) => {
                    let n = p.len();
                    out.truncate(n);
                    Ok(out)
                }
                Err(_) => {
                    out.zeroize();
                    Err(CryptoFailure)
                }
            }
        }
    }

    /// A P-256 static private key (or only the public point).
    pub(crate) struct P256 {
        private: Option<PrivateKey>,
    }

    impl P256 {
        pub(crate) fn new(scalar: Option<&[u8]>) -> Result<Self, CryptoFailure> {
            let private = match scalar {
                Some(s) => {
                    Some(PrivateKey::from_private_key(&ECDH_P256, s).map_err(|_| CryptoFailure)?)
                }
                None => None,
            };
            Ok(Self { private })
        }

        /// Ephemeral-static ECDH to `peer` (uncompressed SEC1); returns the ephemeral
        /// public point and the shared secret.
        pub(crate) fn ephemeral_agree(
            peer: &[u8],
        ) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), CryptoFailure> {
            let eph = PrivateKey::generate(&ECDH_P256).map_err(|_| CryptoFailure)?;
            let epk = eph
                .compute_public_key()
                .map_err(|_| CryptoFailure)?
                .as_ref()
                .to_vec();
            let z = agree(&eph, peer)?;
            Ok((epk, z))
        }

        /// Static ECDH with an uncompressed SEC1 point.
        pub(crate) fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
            agree(self.private.as_ref().ok_or(CryptoFailure)?, peer)
        }
    }

    fn agree(sk: &PrivateKey, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        // Uncompressed points only, as the format says (AWS-LC also parses others).
        if peer.len() != 65 || peer.first() != Some(&0x04) {
            return Err(CryptoFailure);
        }
        agreement::agree(
            sk,
            UnparsedPublicKey::new(&ECDH_P256, peer),
            CryptoFailure,
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }

    /// The MLKEM768-P256 hybrid's two component keys.
    pub(crate) struct Hybrid {
        pub(crate) pq: MlKem,
        pub(crate) t: P256,
    }

    /// An ML-KEM-768 or ML-KEM-1024 key (encapsulation key, and the decapsulation key
    /// when private).
    pub(crate) struct MlKem {
        ek: EncapsulationKey,
        dk: Option<DecapsulationKey>,
    }

    impl MlKem {
        /// From the encapsulation key and, when private, the expanded decapsulation key.
        pub(crate) fn new(
            level1024: bool,
            ek: &[u8],
            expanded_dk: Option<&[u8]>,
        ) -> Result<Self, CryptoFailure> {
            let alg = if level1024 { &ML_KEM_1024 } else { &ML_KEM_768 };
            let ek = EncapsulationKey::new(alg, ek).map_err(|_| CryptoFailure)?;
            let dk = match expanded_dk {
                Some(b) => Some(DecapsulationKey::new(alg, b).map_err(|_| CryptoFailure)?),
                None => None,
            };
            Ok(Self { ek, dk })
        }

        pub(crate) fn encapsulate(&self) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), CryptoFailure> {
            let (ct, ss) = self.ek.encapsulate().map_err(|_| CryptoFailure)?;
            let ss: [u8; 32] = ss.as_ref().try_into().map_err(|_| CryptoFailure)?;
            Ok((ct.as_ref().to_vec(), Zeroizing::new(ss)))
        }

        pub(crate) fn decapsulate(&self, ct: &[u8]) -> Result<Zeroizing<[u8; 32]>, CryptoFailure> {
            let dk = self.dk.as_ref().ok_or(CryptoFailure)?;
            let ss = dk
                .decapsulate(Ciphertext::from(ct))
                .map_err(|_| CryptoFailure)?;
            let ss: [u8; 32] = ss.as_ref().try_into().map_err(|_| CryptoFailure)?;
            Ok(Zeroizing::new(ss))
        }
    }
}
