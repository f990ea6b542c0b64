//! The wrapped DEK: one data key wrapped under one or more KEKs.

use std::fmt;

use super::ids::{BackendId, Classification, KekRef, WrapAlgorithm};
use super::reader::{Reader, check_len, put_vec_u16};
use super::{ArgumentError, FORMAT_VERSION, FormatError};

/// Magic bytes that open every wrapped DEK: `KRWD`.
pub const WRAPPED_DEK_MAGIC: [u8; 4] = *b"KRWD";

/// Most wrapped copies one DEK may carry (for example primary plus disaster recovery).
pub const MAX_WRAPS: usize = 8;

/// One copy of the DEK wrapped under one KEK.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedEntry {
    algorithm: WrapAlgorithm,
    backend: BackendId,
    kek: KekRef,
    params: Vec<u8>,
    wrapped: Vec<u8>,
}

impl WrappedEntry {
    /// Builds an entry, checking `params` and `wrapped` against the lengths the algorithm
    /// fixes.
    ///
    /// # Errors
    /// [`FormatError::LengthOutOfRange`] (in an [`ArgumentError`]) when a length does not
    /// fit the algorithm.
    pub fn new(
        algorithm: WrapAlgorithm,
        backend: BackendId,
        kek: KekRef,
        params: Vec<u8>,
        wrapped: Vec<u8>,
    ) -> Result<Self, ArgumentError> {
        let l = algorithm.lengths();
        check_len("params", params.len(), l.params.0, l.params.1).map_err(ArgumentError)?;
        check_len("wrapped key", wrapped.len(), l.wrapped.0, l.wrapped.1).map_err(ArgumentError)?;
        Ok(Self {
            algorithm,
            backend,
            kek,
            params,
            wrapped,
        })
    }

    /// The wrap algorithm.
    pub fn algorithm(&self) -> WrapAlgorithm {
        self.algorithm
    }

    /// The backend kind the header claims holds the KEK.
    pub fn backend(&self) -> BackendId {
        self.backend
    }

    /// The KEK the header claims (metadata, not authorization).
    pub fn kek(&self) -> &KekRef {
        &self.kek
    }

    /// Algorithm-specific public parameters (nonce, ephemeral key, KEM ciphertext).
    pub fn params(&self) -> &[u8] {
        &self.params
    }

    /// The wrapped key bytes.
    pub fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.algorithm.id().to_be_bytes());
        out.push(self.backend.id());
        self.kek.encode(out);
        put_vec_u16(out, &self.params);
        put_vec_u16(out, &self.wrapped);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let algorithm = WrapAlgorithm::from_id(r.u16()?)?;
        let backend = BackendId::from_id(r.u8()?)?;
        let kek = KekRef::decode(r)?;
        let l = algorithm.lengths();
        let params = r.vec_u16("params", l.params.0, l.params.1)?.to_vec();
        let wrapped = r.vec_u16("wrapped key", l.wrapped.0, l.wrapped.1)?.to_vec();
        Ok(Self {
            algorithm,
            backend,
            kek,
            params,
            wrapped,
        })
    }
}

impl fmt::Debug for WrappedEntry {
    // Wrapped bytes are ciphertext, not secrets, but they are long and useless in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedEntry")
            .field("algorithm", &self.algorithm)
            .field("backend", &self.backend)
            .field("kek", &self.kek)
            .field("params_len", &self.params.len())
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// A data key wrapped under one or more KEKs, with the classification it was wrapped for.
///
/// ```text
/// magic "KRWD" | version u8 = 1 | flags u8 = 0 | classification | count u8 (1..=8) | entry*
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDek {
    classification: Classification,
    entries: Vec<WrappedEntry>,
}

impl WrappedDek {
    /// Builds a wrapped DEK from its entries (the first is the primary copy).
    ///
    /// # Errors
    /// An [`ArgumentError`]: [`FormatError::LengthOutOfRange`] for zero or more than
    /// [`MAX_WRAPS`] entries, [`FormatError::DuplicateKek`] if two entries name the same
    /// KEK.
    pub fn new(
        classification: Classification,
        entries: Vec<WrappedEntry>,
    ) -> Result<Self, ArgumentError> {
        Self::checked(classification, entries).map_err(ArgumentError)
    }

    fn checked(
        classification: Classification,
        entries: Vec<WrappedEntry>,
    ) -> Result<Self, FormatError> {
        check_len("wrap count", entries.len(), 1, MAX_WRAPS)?;
        for (i, e) in entries.iter().enumerate() {
            if entries.iter().skip(i + 1).any(|o| o.kek == e.kek) {
                return Err(FormatError::DuplicateKek);
            }
        }
        Ok(Self {
            classification,
            entries,
        })
    }

    /// The classification the DEK was wrapped for.
    pub fn classification(&self) -> &Classification {
        &self.classification
    }

    /// The wrapped copies, primary first.
    pub fn entries(&self) -> &[WrappedEntry] {
        &self.entries
    }

    /// Parses a complete wrapped DEK; trailing bytes are an error.
    ///
    /// # Errors
    /// A [`FormatError`] naming the first defect found.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        let dek = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(dek)
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        super::read_v1_preamble(r, &WRAPPED_DEK_MAGIC, "wrapped DEK")?;
        let flags = r.u8()?;
        if flags != 0 {
            return Err(FormatError::UnknownFlags(flags));
        }
        let classification = Classification::decode(r)?;
        let count = usize::from(r.u8()?);
        check_len("wrap count", count, 1, MAX_WRAPS)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(WrappedEntry::decode(r)?);
        }
        Self::checked(classification, entries)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut out);
        out
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&WRAPPED_DEK_MAGIC);
        out.push(FORMAT_VERSION);
        out.push(0);
        self.classification.encode(out);
        // 1..=MAX_WRAPS, checked in `new`.
        out.push(u8::try_from(self.entries.len()).unwrap_or(u8::MAX));
        for e in &self.entries {
            e.encode(out);
        }
    }

    pub(crate) fn encoded_len_hint(&self) -> usize {
        8 + 34
            + self
                .entries
                .iter()
                .map(|e| 3 + 2 + 128 + 4 + 4 + e.params.len() + e.wrapped.len())
                .sum::<usize>()
    }
}
