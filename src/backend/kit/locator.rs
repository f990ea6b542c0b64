//! [`Locator`]: a backend's own form of a [`KekLocator`], parsed once and written back
//! in one canonical spelling; and the public-key pin the chassis appends to the locator
//! of a remote KEM KEK.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::backend::BackendError;
use crate::locator::KekLocator;

/// How a service names a KEK (an AWS KMS key and region, a Transit key version).
///
/// `parse` refuses a malformed locator with [`BackendError::InvalidLocator`] (a
/// configuration error; never [`BackendError::KeyNotFound`], which would let an open
/// fall through to the next copy), and its reason never repeats the locator.
/// `to_locator` writes the canonical spelling: `parse(l.to_locator()) == l`, and every
/// spelling of one locator parses to the same value. Implement `Debug` with
/// [`debug_redacted`]: a locator prints only the last 12 characters of its canonical
/// form, as in audit events.
pub trait Locator: Sized + Clone + Send + Sync + fmt::Debug + 'static {
    /// Reads a locator of this service.
    ///
    /// # Errors
    /// [`BackendError::InvalidLocator`].
    fn parse(locator: &KekLocator) -> Result<Self, BackendError>;

    /// The canonical spelling.
    fn to_locator(&self) -> KekLocator;
}

/// Writes a locator's `Debug` as `Name("…last 12 characters")`.
///
/// # Errors
/// The formatter's.
pub fn debug_redacted(f: &mut fmt::Formatter<'_>, name: &str, locator: &KekLocator) -> fmt::Result {
    write!(f, "{name}({:?})", locator.redacted())
}

/// An [`BackendError::InvalidLocator`] saying why.
pub fn invalid(reason: impl Into<String>) -> BackendError {
    BackendError::InvalidLocator {
        reason: reason.into(),
    }
}

/// What marks a public-key pin at the end of a remote KEM KEK's locator.
const PIN_MARK: &str = "#pk-sha256=";

/// SHA-256 of a public key's raw encoding, the digest a locator pins.
pub(crate) fn digest(public_key: &[u8]) -> [u8; 32] {
    Sha256::digest(public_key).into()
}

/// A locator split into the service's part and the public-key pin after it, if any.
pub(crate) fn split_pin(
    locator: &KekLocator,
) -> Result<(KekLocator, Option<[u8; 32]>), BackendError> {
    let Some((base, hex)) = locator.as_str().rsplit_once(PIN_MARK) else {
        return Ok((locator.clone(), None));
    };
    let mut pin = [0u8; 32];
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(invalid("a public-key pin is 64 lowercase hex digits"));
    }
    for (i, out) in pin.iter_mut().enumerate() {
        let digit = |j: usize| {
            bytes.get(j).and_then(|c| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            })
        };
        match (digit(2 * i), digit(2 * i + 1)) {
            (Some(h), Some(l)) => *out = h << 4 | l,
            _ => return Err(invalid("a public-key pin is 64 lowercase hex digits")),
        }
    }
    Ok((KekLocator::new(base), Some(pin)))
}

/// `base` with the pin of `public_key` appended.
pub(crate) fn with_pin(base: &KekLocator, public_key: &[u8]) -> KekLocator {
    let hex: String = digest(public_key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    KekLocator::new(format!("{}{PIN_MARK}{hex}", base.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_trip_and_bad_ones_are_refused() {
        let base = KekLocator::new("aws-kms:us-east-1:arn:aws:kms:us-east-1:1:key/k");
        let pinned = with_pin(&base, b"public key");
        let (b, pin) = split_pin(&pinned).unwrap();
        assert_eq!(b, base);
        assert_eq!(pin, Some(digest(b"public key")));
        assert_eq!(split_pin(&base).unwrap(), (base.clone(), None));
        for bad in [
            "#pk-sha256=00",
            "#pk-sha256=",
            &format!("#pk-sha256={}", "G".repeat(64)),
        ] {
            let l = KekLocator::new(format!("{}{bad}", base.as_str()));
            assert!(
                matches!(split_pin(&l), Err(BackendError::InvalidLocator { .. })),
                "{bad}"
            );
        }
    }
}
