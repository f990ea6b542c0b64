//! The public half of ML-KEM (FIPS 203): an encapsulation key, checked as FIPS 203
//! requires, that encapsulates with OS randomness on the crypto provider asked for
//! (AWS-LC when it is the provider, else RustCrypto). Shared by the local ML-KEM KEKs and
//! by every backend whose service holds the private half (AWS KMS, Cloud KMS, PKCS#11
//! 3.2), so that a wrap is the same bytes whoever decapsulates.

use ml_kem::kem::KeyExport;
use ml_kem::{B32, MlKem768, MlKem1024};
use zeroize::{Zeroize, Zeroizing};

use super::prepared::FastKey;
use super::{CryptoFailure, Primitives, fill_random};
use crate::format::WrapAlgorithm;

pub(crate) type Ek768 = ml_kem::EncapsulationKey<MlKem768>;
pub(crate) type Ek1024 = ml_kem::EncapsulationKey<MlKem1024>;

/// An ML-KEM-768 or ML-KEM-1024 encapsulation key.
#[derive(Clone)]
pub(crate) enum Encaps {
    K768(Box<Ek768>),
    K1024(Box<Ek1024>),
}

/// An ML-KEM encapsulation key with its AWS-LC form prepared on first use.
pub(crate) struct MlKemPublicKey {
    ek: Encaps,
    // Read only by the aws-lc provider.
    #[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
    fast: FastKey<Fast>,
}

#[cfg(feature = "aws-lc")]
type Fast = super::awslc::asym::MlKem;
#[cfg(not(feature = "aws-lc"))]
type Fast = ();

/// The length of an encapsulation key of `algorithm`, and of its KEM ciphertext.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn lengths(algorithm: WrapAlgorithm) -> Option<(usize, usize)> {
    match algorithm {
        WrapAlgorithm::MlKem768 => Some((1184, 1088)),
        WrapAlgorithm::MlKem1024 => Some((1568, 1568)),
        _ => None,
    }
}

impl MlKemPublicKey {
    /// From its FIPS 203 encoding (1184 bytes for ML-KEM-768, 1568 for ML-KEM-1024),
    /// checked as FIPS 203 requires (every coefficient reduced).
    pub(crate) fn from_bytes(algorithm: WrapAlgorithm, ek: &[u8]) -> Result<Self, CryptoFailure> {
        let ek = match algorithm {
            WrapAlgorithm::MlKem768 => {
                let arr = ml_kem::array::Array::try_from(ek).map_err(|_| CryptoFailure)?;
                Encaps::K768(Box::new(Ek768::new(&arr).map_err(|_| CryptoFailure)?))
            }
            WrapAlgorithm::MlKem1024 => {
                let arr = ml_kem::array::Array::try_from(ek).map_err(|_| CryptoFailure)?;
                Encaps::K1024(Box::new(Ek1024::new(&arr).map_err(|_| CryptoFailure)?))
            }
            _ => return Err(CryptoFailure),
        };
        Ok(Self::new(ek))
    }

    /// From a RustCrypto encapsulation key (a local KEK's public half).
    pub(crate) fn new(ek: Encaps) -> Self {
        Self {
            ek,
            fast: FastKey::default(),
        }
    }

    /// The algorithm: ML-KEM-768 or ML-KEM-1024.
    pub(crate) fn algorithm(&self) -> WrapAlgorithm {
        match self.ek {
            Encaps::K768(_) => WrapAlgorithm::MlKem768,
            Encaps::K1024(_) => WrapAlgorithm::MlKem1024,
        }
    }

    /// The FIPS 203 encoding.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match &self.ek {
            Encaps::K768(ek) => ek.to_bytes().to_vec(),
            Encaps::K1024(ek) => ek.to_bytes().to_vec(),
        }
    }

    /// The RustCrypto key.
    pub(crate) fn rust_crypto(&self) -> &Encaps {
        &self.ek
    }

    /// Encapsulates with 32 bytes from the OS RNG, on `crypto`'s implementation: the KEM
    /// ciphertext and the shared secret (zeroizing).
    pub(crate) fn encapsulate(
        &self,
        crypto: &dyn Primitives,
    ) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), CryptoFailure> {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = self.fast.for_provider(crypto, || {
            Fast::new(
                self.algorithm() == WrapAlgorithm::MlKem1024,
                &self.to_bytes(),
                None,
            )
            .ok()
        }) {
            return k.map_err(|_| CryptoFailure)?.encapsulate();
        }
        let _ = crypto;
        let mut seed = Zeroizing::new([0u8; 32]);
        fill_random(seed.as_mut_slice()).map_err(|_| CryptoFailure)?;
        let mut m = B32::from(*seed);
        let out = match &self.ek {
            Encaps::K768(ek) => {
                let (ct, mut ss) = ek.encapsulate_deterministic(&m);
                let out = (ct.to_vec(), Zeroizing::new(<[u8; 32]>::from(ss)));
                ss.as_mut_slice().zeroize();
                out
            }
            Encaps::K1024(ek) => {
                let (ct, mut ss) = ek.encapsulate_deterministic(&m);
                let out = (ct.to_vec(), Zeroizing::new(<[u8; 32]>::from(ss)));
                ss.as_mut_slice().zeroize();
                out
            }
        };
        m.as_mut_slice().zeroize();
        Ok(out)
    }
}

/// The FIPS 203 encapsulation key inside a DER `SubjectPublicKeyInfo` of an ML-KEM key
/// (`id-alg-ml-kem-768` / `-1024`, no parameters, as RFC 9935 and KMS `GetPublicKey`
/// give it), and its algorithm. DER is canonical, so each parameter set has exactly one
/// 22-byte prefix; anything else is refused.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn from_spki(der: &[u8]) -> Option<(WrapAlgorithm, &[u8])> {
    // SEQUENCE { SEQUENCE { OID 2.16.840.1.101.3.4.4.{2,3} } BIT STRING { 0 unused bits, ek } }
    const PREFIX_768: [u8; 22] = [
        0x30, 0x82, 0x04, 0xb2, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x04, 0x02, 0x03, 0x82, 0x04, 0xa1, 0x00,
    ];
    const PREFIX_1024: [u8; 22] = [
        0x30, 0x82, 0x06, 0x32, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x04, 0x03, 0x03, 0x82, 0x06, 0x21, 0x00,
    ];
    for (alg, prefix, ek_len) in [
        (WrapAlgorithm::MlKem768, PREFIX_768, 1184),
        (WrapAlgorithm::MlKem1024, PREFIX_1024, 1568),
    ] {
        if der.len() == prefix.len() + ek_len && der.starts_with(&prefix) {
            return der.get(prefix.len()..).map(|ek| (alg, ek));
        }
    }
    None
}
