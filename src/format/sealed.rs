//! The sealed object: a header followed by the AES-256-GCM payload.

use super::ids::Suite;
use super::reader::Reader;
use super::wrapped::WrappedDek;
use super::{ArgumentError, FORMAT_VERSION, FormatError};

/// Magic bytes that open every sealed object: `KRSO`.
pub const SEALED_MAGIC: [u8; 4] = *b"KRSO";
/// Length of the payload nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the key commitment.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// Smallest segment size of the segmented suite, in plaintext bytes.
pub const MIN_SEGMENT_SIZE: u32 = 1024;
/// Largest segment size of the segmented suite (a reader buffers one segment).
pub const MAX_SEGMENT_SIZE: u32 = 16 << 20;
/// The segment size streams are written with unless told otherwise: 64 KiB.
pub const DEFAULT_SEGMENT_SIZE: u32 = 64 << 10;

/// The header of a sealed object.
///
/// ```text
/// magic "KRSO" | version u8 = 1 | suite u16 | flags u8 = 0
/// | wrapped DEK length u16 | wrapped DEK
/// | segment size u32 (suite 0x0002 only) | nonce [12] | commitment [32]
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedHeader {
    suite: Suite,
    wrapped_dek: WrappedDek,
    /// Present exactly when the suite is segmented.
    segment_size: Option<u32>,
    nonce: [u8; NONCE_LEN],
    commitment: [u8; COMMITMENT_LEN],
}

impl SealedHeader {
    /// Builds a header. For [`Suite::Aes256GcmSegmented`] the segment size is
    /// [`DEFAULT_SEGMENT_SIZE`]; see [`SealedHeader::with_segment_size`].
    pub fn new(
        suite: Suite,
        wrapped_dek: WrappedDek,
        nonce: [u8; NONCE_LEN],
        commitment: [u8; COMMITMENT_LEN],
    ) -> Self {
        let segment_size = match suite {
            Suite::Aes256GcmHkdfSha256Commit => None,
            Suite::Aes256GcmSegmented => Some(DEFAULT_SEGMENT_SIZE),
        };
        Self {
            suite,
            wrapped_dek,
            segment_size,
            nonce,
            commitment,
        }
    }

    /// Sets the segment size of a segmented header.
    ///
    /// # Errors
    /// [`FormatError::LengthOutOfRange`] (in an [`ArgumentError`]) for a whole-object
    /// suite or a size outside [`MIN_SEGMENT_SIZE`]`..=`[`MAX_SEGMENT_SIZE`].
    pub fn with_segment_size(mut self, size: u32) -> Result<Self, ArgumentError> {
        let max = match self.suite {
            Suite::Aes256GcmSegmented => MAX_SEGMENT_SIZE,
            Suite::Aes256GcmHkdfSha256Commit => 0,
        };
        check_segment_size(size, max).map_err(ArgumentError)?;
        self.segment_size = Some(size);
        Ok(self)
    }

    /// The same header with another wrapped DEK (what a re-wrap changes).
    #[must_use]
    pub fn with_wrapped_dek(&self, wrapped_dek: WrappedDek) -> Self {
        Self {
            wrapped_dek,
            ..self.clone()
        }
    }

    /// The segment size, for a segmented suite.
    pub fn segment_size(&self) -> Option<u32> {
        self.segment_size
    }

    /// The payload suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The wrapped DEK.
    pub fn wrapped_dek(&self) -> &WrappedDek {
        &self.wrapped_dek
    }

    /// The payload nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The key commitment.
    pub fn commitment(&self) -> &[u8; COMMITMENT_LEN] {
        &self.commitment
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_capacity(0)
    }

    /// The canonical encoding in a buffer with room for `extra` more bytes (the payload
    /// that follows).
    pub(crate) fn encode_with_capacity(&self, extra: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.wrapped_dek
                .encoded_len_hint()
                .saturating_add(64 + extra),
        );
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&SEALED_MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.suite.id().to_be_bytes());
        out.push(0);
        // The wrapped DEK's u16 length prefix, patched once it is written in place.
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.wrapped_dek.encode_into(out);
        let len = out.len().saturating_sub(at + 2);
        let prefix = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        if let Some(p) = out.get_mut(at..at + 2) {
            p.copy_from_slice(&prefix);
        }
        if let Some(size) = self.segment_size {
            out.extend_from_slice(&size.to_be_bytes());
        }
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.commitment);
    }

    /// Parses the header at the start of `bytes`; returns it with its encoded length.
    /// What follows the header is not looked at.
    ///
    /// # Errors
    /// A [`FormatError`] naming the first defect found.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize), FormatError> {
        let mut r = Reader::new(bytes);
        super::read_v1_preamble(&mut r, &SEALED_MAGIC, "sealed object")?;
        let suite = Suite::from_id(r.u16()?)?;
        let flags = r.u8()?;
        if flags != 0 {
            return Err(FormatError::UnknownFlags(flags));
        }
        let wrapped_bytes = r.vec_u16("wrapped DEK", 1, usize::from(u16::MAX))?;
        let mut sub = Reader::new(wrapped_bytes);
        let wrapped_dek = WrappedDek::decode_from(&mut sub)?;
        sub.finish()?;
        let segment_size = match suite {
            Suite::Aes256GcmHkdfSha256Commit => None,
            Suite::Aes256GcmSegmented => {
                let size = u32::from_be_bytes(r.array::<4>()?);
                check_segment_size(size, MAX_SEGMENT_SIZE)?;
                Some(size)
            }
        };
        let nonce = r.array::<NONCE_LEN>()?;
        let commitment = r.array::<COMMITMENT_LEN>()?;
        let len = r.consumed(bytes.len());
        Ok((
            Self {
                suite,
                wrapped_dek,
                segment_size,
                nonce,
                commitment,
            },
            len,
        ))
    }
}

/// Splits a payload (a whole object's, or one segment) into its ciphertext and the
/// 16-byte tag that ends it: the one place a tag is split off.
///
/// # Errors
/// [`FormatError::MissingTag`] when shorter than a tag.
pub(crate) fn split_tag(payload: &[u8]) -> Result<(&[u8], [u8; TAG_LEN]), FormatError> {
    let at = tag_start(payload.len())?;
    let (ct, tag) = payload.split_at(at);
    Ok((ct, tag_array(tag)))
}

/// As [`split_tag`], for a payload decrypted in place.
pub(crate) fn split_tag_mut(payload: &mut [u8]) -> Result<(&mut [u8], [u8; TAG_LEN]), FormatError> {
    let at = tag_start(payload.len())?;
    let (ct, tag) = payload.split_at_mut(at);
    Ok((ct, tag_array(tag)))
}

fn tag_start(len: usize) -> Result<usize, FormatError> {
    len.checked_sub(TAG_LEN).ok_or(FormatError::MissingTag)
}

/// The tag from the last `TAG_LEN` bytes (exactly that many after [`tag_start`]).
fn tag_array(tag: &[u8]) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    for (o, t) in out.iter_mut().zip(tag) {
        *o = *t;
    }
    out
}

/// A sealed-object header read from a stream in two exact reads: the 10-byte prefix
/// ([`HeaderBytes::prefix`]), then the rest it announces ([`HeaderBytes::rest`]), so a
/// reader never reads past the header. The prefix is checked (magic, version, suite) before
/// the rest is asked for, so a hostile prefix cannot make the caller read much.
pub(crate) struct HeaderBytes {
    bytes: Vec<u8>,
}

/// magic(4) version(1) suite(2) flags(1) wrapped-DEK length(2)
const HEADER_PREFIX_LEN: usize = 10;

impl HeaderBytes {
    pub(crate) fn new() -> Self {
        Self {
            bytes: vec![0u8; HEADER_PREFIX_LEN],
        }
    }

    /// Where the first 10 bytes go.
    pub(crate) fn prefix(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Where the rest of the header goes, sized from the prefix.
    ///
    /// # Errors
    /// A [`FormatError`] from the prefix.
    pub(crate) fn rest(&mut self) -> Result<&mut [u8], FormatError> {
        let mut r = Reader::new(&self.bytes);
        super::read_v1_preamble(&mut r, &SEALED_MAGIC, "sealed object")?;
        let suite = Suite::from_id(r.u16()?)?;
        let _flags = r.u8()?;
        let w = usize::from(r.u16()?);
        let extra = match suite {
            Suite::Aes256GcmHkdfSha256Commit => 0,
            Suite::Aes256GcmSegmented => 4,
        };
        let rest = w + extra + NONCE_LEN + COMMITMENT_LEN;
        self.bytes.resize(HEADER_PREFIX_LEN + rest, 0);
        Ok(self.bytes.get_mut(HEADER_PREFIX_LEN..).unwrap_or_default())
    }

    /// The parsed header and its length, once both parts are read.
    ///
    /// # Errors
    /// A [`FormatError`] naming the first defect.
    pub(crate) fn decode(&self) -> Result<(SealedHeader, usize), FormatError> {
        let (header, len) = SealedHeader::decode_prefix(&self.bytes)?;
        if len != self.bytes.len() {
            return Err(FormatError::TrailingBytes);
        }
        Ok((header, len))
    }
}

fn check_segment_size(size: u32, max: u32) -> Result<(), FormatError> {
    if (MIN_SEGMENT_SIZE..=max).contains(&size) {
        Ok(())
    } else {
        Err(FormatError::LengthOutOfRange {
            field: "segment size",
            len: usize::try_from(size).unwrap_or(usize::MAX),
            min: usize::try_from(MIN_SEGMENT_SIZE).unwrap_or(usize::MAX),
            max: usize::try_from(max).unwrap_or(usize::MAX),
        })
    }
}

/// A parsed sealed object borrowing its bytes: header, ciphertext and tag.
#[derive(Debug)]
pub struct SealedObject<'a> {
    header: SealedHeader,
    header_bytes: &'a [u8],
    payload: &'a [u8],
    ciphertext: &'a [u8],
    tag: [u8; TAG_LEN],
}

impl<'a> SealedObject<'a> {
    /// Splits a complete sealed object. Every byte after the header is payload: the
    /// ciphertext, then the 16-byte tag. For the segmented suite "ciphertext" is every
    /// segment but the last one's tag, and "tag" is the last segment's tag: use
    /// [`SealedObject::payload`] and the segment layout of the format spec.
    ///
    /// # Errors
    /// A [`FormatError`] from the header, or [`FormatError::MissingTag`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let (header, header_len) = SealedHeader::decode_prefix(bytes)?;
        let mut r = Reader::new(bytes);
        let header_bytes = r.take(header_len)?;
        let payload = r.rest();
        let (ciphertext, tag) = split_tag(payload)?;
        Ok(Self {
            header,
            header_bytes,
            payload,
            ciphertext,
            tag,
        })
    }

    /// Every byte after the header (ciphertext and tag, or the segments).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The parsed header.
    pub fn header(&self) -> &SealedHeader {
        &self.header
    }

    /// The header exactly as encoded (authenticated as AAD).
    pub fn header_bytes(&self) -> &'a [u8] {
        self.header_bytes
    }

    /// The payload ciphertext (without the tag).
    pub fn ciphertext(&self) -> &'a [u8] {
        self.ciphertext
    }

    /// The authentication tag.
    pub fn tag(&self) -> &[u8; TAG_LEN] {
        &self.tag
    }
}
