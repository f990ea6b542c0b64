//! PKCS#8 and SPKI export, shared by the local KEKs that have those encodings (P-256,
//! RSA): one refusal for a public-only KEK, private keys in zeroizing buffers.

use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use zeroize::Zeroizing;

use super::invalid;
use crate::error::Error;

/// The private key as PKCS#8 DER; `cannot` is the refusal when it does not encode.
pub(super) fn private_der<K: EncodePrivateKey>(
    key: Option<&K>,
    cannot: &'static str,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let key = key.ok_or_else(|| invalid("public-only KEK"))?;
    let doc = key.to_pkcs8_der().map_err(|_| invalid(cannot))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// The private key as PKCS#8 PEM.
pub(super) fn private_pem<K: EncodePrivateKey>(
    key: Option<&K>,
    cannot: &'static str,
) -> Result<Zeroizing<String>, Error> {
    let key = key.ok_or_else(|| invalid("public-only KEK"))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| invalid(cannot))?;
    Ok(Zeroizing::new(pem.to_string()))
}

/// The public key as SPKI DER.
pub(super) fn public_der<K: EncodePublicKey>(
    key: &K,
    cannot: &'static str,
) -> Result<Vec<u8>, Error> {
    Ok(key
        .to_public_key_der()
        .map_err(|_| invalid(cannot))?
        .into_vec())
}

/// The public key as SPKI PEM.
pub(super) fn public_pem<K: EncodePublicKey>(
    key: &K,
    cannot: &'static str,
) -> Result<String, Error> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|_| invalid(cannot))
}
