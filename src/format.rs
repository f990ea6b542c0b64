//! The versioned binary encodings: the wrapped DEK, the sealed object header and the
//! binding context. Decoding and encoding sit side by side; decoding never panics,
//! bounds every length and count, rejects trailing bytes and unknown ids, and is
//! canonical: for every accepted input `x`, `encode(decode(x)) == x`.
//!
//! This module does no I/O and knows nothing of backends, policy or keys. The byte-level
//! specification is `docs/FORMAT.md`, included below.
#![doc = include_str!("../docs/FORMAT.md")]

mod binding;
mod ids;
pub(crate) mod reader;
mod sealed;
mod wrapped;

pub use binding::{
    BindingContext, ENCRYPTION_CONTEXT_KEYS, MAX_AAD_LEN, MAX_OBJECT_ID_LEN, MAX_REMOTE_BINDING_LEN,
};
pub(crate) use ids::Scope;
pub use ids::{
    BackendId, Classification, Family, KekRef, Label, MAX_LABEL_LEN, MAX_NAME_LEN,
    MAX_OPAQUE_WRAPPED_LEN, Name, PrivateId, Suite, WrapAlgorithm,
};
pub use sealed::{
    COMMITMENT_LEN, DEFAULT_SEGMENT_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, NONCE_LEN,
    SEALED_MAGIC, SealedHeader, SealedObject, TAG_LEN,
};
pub(crate) use sealed::{HeaderBytes, split_tag, split_tag_mut};
pub use wrapped::{MAX_WRAPS, WRAPPED_DEK_MAGIC, WrappedDek, WrappedEntry};

/// A value handed to a constructor of this module is ill-formed or out of bounds: the
/// caller's mistake, not untrusted input. Converts into
/// [`Error::Misuse`](crate::Error::Misuse); the inner [`FormatError`] says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid argument: {0}")]
pub struct ArgumentError(pub FormatError);

/// The only format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// A wire format version, as read from a preamble. A future version is one more arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Version {
    /// Format v1 (`0x01`).
    V1,
    /// A version this crate does not read.
    Unknown(u8),
}

impl Version {
    /// The version a preamble's version byte names.
    pub const fn of(byte: u8) -> Self {
        match byte {
            FORMAT_VERSION => Version::V1,
            other => Version::Unknown(other),
        }
    }
}

/// Reads the preamble every kekring encoding starts with: four magic bytes, then a
/// version byte, which is returned (the structure decides which versions it reads). The
/// one place a preamble is parsed: wrapped DEKs, sealed objects (whole or streamed) and
/// the key store file all go through it.
///
/// # Errors
/// [`FormatError::BadMagic`] naming `what`, or [`FormatError::Truncated`].
pub(crate) fn read_preamble(
    r: &mut reader::Reader<'_>,
    magic: &[u8; 4],
    what: &'static str,
) -> Result<u8, FormatError> {
    if &r.array::<4>()? != magic {
        return Err(FormatError::BadMagic { expected: what });
    }
    r.u8()
}

/// Reads the preamble of a v1 wire structure: refuses any other version.
pub(crate) fn read_v1_preamble(
    r: &mut reader::Reader<'_>,
    magic: &[u8; 4],
    what: &'static str,
) -> Result<(), FormatError> {
    match Version::of(read_preamble(r, magic, what)?) {
        Version::V1 => Ok(()),
        Version::Unknown(v) => Err(FormatError::UnsupportedVersion(v)),
    }
}

/// Why untrusted bytes were rejected. Every variant is caused by the input, never by the
/// caller's use of the API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input ended before a field was complete.
    #[error("input is truncated")]
    Truncated,
    /// Bytes remain after a complete structure.
    #[error("trailing bytes after the end of the structure")]
    TrailingBytes,
    /// The input does not start with the expected magic bytes.
    #[error("bad magic bytes: not a {expected}")]
    BadMagic {
        /// What the input was expected to be.
        expected: &'static str,
    },
    /// A format version this crate does not read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Reserved flag bits are set.
    #[error("unknown flags {0:#04x}")]
    UnknownFlags(u8),
    /// A wrap algorithm id this crate does not know.
    #[error("unknown wrap algorithm id {0:#06x}")]
    UnknownAlgorithm(u16),
    /// A backend id this crate does not know.
    #[error("unknown backend id {0}")]
    UnknownBackend(u8),
    /// A payload suite id this crate does not know.
    #[error("unknown payload suite id {0:#06x}")]
    UnknownSuite(u16),
    /// A classification tag this crate does not know.
    #[error("unknown classification tag {0:#04x}")]
    UnknownClassification(u8),
    /// A length outside the bounds of its field.
    #[error("{field} length {len} outside {min}..={max}")]
    LengthOutOfRange {
        /// The field.
        field: &'static str,
        /// The length found.
        len: usize,
        /// The smallest length allowed.
        min: usize,
        /// The largest length allowed.
        max: usize,
    },
    /// A tenant or purpose name that is empty, too long or outside the alphabet.
    #[error("invalid {field} name")]
    InvalidName {
        /// Which name.
        field: &'static str,
    },
    /// A custom classification label that is ill-formed or spells a built-in level.
    #[error("invalid classification label")]
    InvalidLabel,
    /// A KEK version of 0 (versions start at 1).
    #[error("KEK version 0 is not valid")]
    ZeroVersion,
    /// The same KEK appears twice in one wrapped DEK.
    #[error("the same KEK appears twice in one wrapped DEK")]
    DuplicateKek,
    /// A sealed object too short to hold the authentication tag.
    #[error("sealed payload shorter than its tag")]
    MissingTag,
}
