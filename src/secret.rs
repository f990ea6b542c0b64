//! Secret key types: the per-object data key and the 256-bit symmetric KEK material.
//!
//! Both zeroize on drop, print as `[REDACTED]`, and implement neither `Clone` nor
//! `Serialize`: a copy of a secret must be made on purpose, through a named method.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, MisuseError};

/// Length of a data key and of a symmetric KEK, in bytes.
pub const KEY_LEN: usize = 32;

/// A 256-bit data encryption key (DEK). One is drawn from the OS RNG for every object.
///
/// Zeroized on drop; `Debug` prints `DataKey([REDACTED])`; no `Clone`, no `Serialize`.
/// A copy is made only through [`DataKey::duplicate`]:
///
/// ```compile_fail
/// let k = kekring::DataKey::from_array([7; 32]);
/// let copy = k.clone(); // DataKey is not Clone
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// Draws a fresh key from the operating system's RNG.
    ///
    /// # Errors
    /// [`Error::Rng`] if the OS RNG fails.
    pub fn generate() -> Result<Self, Error> {
        let mut k = Self([0u8; KEY_LEN]);
        crate::crypto::fill_random(&mut k.0)?;
        Ok(k)
    }

    /// Takes ownership of raw key bytes (for example from a backend's unwrap). The
    /// caller should zeroize its own copy.
    ///
    /// # Errors
    /// [`Error::Misuse`] unless `bytes` is exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| MisuseError::KeyLength { expected: KEY_LEN })?;
        Ok(Self(arr))
    }

    /// Takes ownership of a key array.
    pub fn from_array(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key. Named so that every use stands out in review.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// An explicit copy (the type is deliberately not `Clone`).
    pub fn duplicate(&self) -> Self {
        Self(self.0)
    }

    /// A copy in its own heap allocation, written there directly (no copy on the stack
    /// on the way): what long-lived holders such as the unwrap cache keep.
    pub(crate) fn boxed_copy(&self) -> Box<Self> {
        let mut b = Box::new(Self([0u8; KEY_LEN]));
        b.0.copy_from_slice(&self.0);
        b
    }
}

/// Interoperates with code written against `secrecy`.
impl secrecy::ExposeSecret<[u8; KEY_LEN]> for DataKey {
    fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// Raw 256-bit symmetric KEK material (a local AES-256 KEK).
///
/// Zeroized on drop; `Debug` prints `Aes256KeyMaterial([REDACTED])`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Aes256KeyMaterial([u8; KEY_LEN]);

impl Aes256KeyMaterial {
    /// Fresh key material from the OS RNG.
    ///
    /// # Errors
    /// [`Error::Rng`] if the OS RNG fails.
    pub fn generate() -> Result<Self, Error> {
        let mut k = Self([0u8; KEY_LEN]);
        crate::crypto::fill_random(&mut k.0)?;
        Ok(k)
    }

    /// Imports raw key bytes.
    ///
    /// # Errors
    /// [`Error::Misuse`] unless `bytes` is exactly 32 bytes, or if every byte is equal
    /// (an all-zero or otherwise degenerate key is refused).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| MisuseError::KeyLength { expected: KEY_LEN })?;
        if arr.iter().all(|b| Some(b) == arr.first()) {
            return Err(MisuseError::WeakKey.into());
        }
        Ok(Self(arr))
    }

    #[cfg_attr(not(feature = "local"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The raw key, for export into a key store. Named so that every use stands out.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// Interoperates with code written against `secrecy`.
impl secrecy::ExposeSecret<[u8; KEY_LEN]> for Aes256KeyMaterial {
    fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Aes256KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Aes256KeyMaterial([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_debug_is_redacted() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(format!("{a:?}"), "DataKey([REDACTED])");
    }

    #[test]
    fn secrecy_trait_exposes_the_same_bytes() {
        use secrecy::ExposeSecret;
        let k = DataKey::from_array([3; 32]);
        assert_eq!(ExposeSecret::expose_secret(&k), &[3; 32]);
    }

    #[test]
    fn wrong_lengths_and_weak_keys_are_refused() {
        assert!(DataKey::from_slice(&[1u8; 31]).is_err());
        assert!(Aes256KeyMaterial::from_slice(&[0u8; 32]).is_err());
        assert!(Aes256KeyMaterial::from_slice(&[7u8; 33]).is_err());
        let mut k = [0u8; 32];
        k[5] = 1;
        assert!(Aes256KeyMaterial::from_slice(&k).is_ok());
    }
}
