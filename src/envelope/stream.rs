//! Streaming: the segmented suite (`0x0002`) behind `std::io` adapters.
//!
//! A stream is the usual header (with the segment size in it) followed by segments: every
//! segment but the last holds exactly `segment size` plaintext bytes, the last holds 1 to
//! `segment size` bytes (0 only when the whole stream is empty), and each is followed by
//! its 16-byte tag. Segment `i` is sealed under the nonce `i || last` (see
//! [`crate::payload`]), so reordering, dropping, repeating or appending segments, and
//! cutting the stream at any point, fail authentication.
//!
//! Memory stays bounded by one segment (plus one byte of look-ahead) whatever the object
//! size. [`OpenReader`] releases each segment's plaintext as soon as that segment is
//! authenticated, and reports a cut-off stream only when it reaches the end: treat what
//! it returned as incomplete until `read` returns `Ok(0)`. [`SeekableOpenReader`]
//! authenticates the final segment (and with it the length) when it is created, and then
//! decrypts only the segments a read touches.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::Envelope;
use crate::context::Context;
use crate::crypto::Aes256GcmKey;
use crate::error::{Error, MisuseError};
use crate::format::{DEFAULT_SEGMENT_SIZE, FormatError, SealedHeader, Suite, TAG_LEN};
use crate::payload;

const TAG: u64 = 16;

pub(crate) fn u64_of(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The plaintext/ciphertext layout of a segmented payload of `payload_len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Plaintext bytes per full segment.
    pub(crate) size: u64,
    /// Number of segments (at least 1).
    pub(crate) count: u64,
    /// Plaintext bytes of the last segment.
    pub(crate) last_len: u64,
}

impl Layout {
    /// Splits `payload_len` bytes of segments; refuses lengths no writer produces.
    pub(crate) fn of(segment_size: u32, payload_len: u64) -> Result<Self, FormatError> {
        let size = u64::from(segment_size);
        let tag = TAG;
        let full = size + tag;
        if payload_len < tag {
            return Err(FormatError::MissingTag);
        }
        let count = payload_len.div_ceil(full);
        let last_ct = payload_len - (count - 1) * full;
        if last_ct < tag || (last_ct == tag && count > 1) {
            // A final segment shorter than its tag, or an empty final segment after
            // full ones: no writer produces either.
            return Err(FormatError::Truncated);
        }
        Ok(Self {
            size,
            count,
            last_len: last_ct - tag,
        })
    }

    /// Total plaintext length.
    pub(crate) fn plaintext_len(&self) -> u64 {
        (self.count - 1) * self.size + self.last_len
    }
}

fn usize_of(v: u64) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::from(FormatError::Truncated))
}

/// Opens a complete segmented payload held in memory (for [`Envelope::open`]).
pub(crate) fn open_segments(
    key: &dyn Aes256GcmKey,
    aad: &[u8],
    header: &SealedHeader,
    payload: &[u8],
) -> Result<Vec<u8>, Error> {
    let size = header.segment_size().ok_or(FormatError::Truncated)?;
    let layout = Layout::of(size, u64_of(payload.len()))?;
    let mut out = Vec::with_capacity(usize_of(layout.plaintext_len())?);
    let full = usize_of(layout.size)? + TAG_LEN;
    for (i, seg) in (0u64..).zip(payload.chunks(full)) {
        let last = i + 1 == layout.count;
        let (ct, tag) = seg.split_at(seg.len() - TAG_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| FormatError::MissingTag)?;
        let start = out.len();
        out.extend_from_slice(ct);
        let body = out.get_mut(start..).ok_or(FormatError::Truncated)?;
        key.open(&payload::segment_nonce(i, last), aad, body, &tag)
            .map_err(|_| Error::Crypto)?;
    }
    Ok(out)
}

/// Reads a sealed-object header from the start of a stream; returns it with its encoded
/// length. Reads exactly the header's bytes.
pub(crate) fn read_header<R: Read>(r: &mut R) -> Result<(SealedHeader, usize), Error> {
    // magic(4) version(1) suite(2) flags(1) wrapped-DEK length(2)
    let mut bytes = vec![0u8; 10];
    r.read_exact(&mut bytes).map_err(eof_is_truncation)?;
    let rest = header_rest_len(&bytes)?;
    let start = bytes.len();
    bytes.resize(start + rest, 0);
    let tail = bytes.get_mut(start..).ok_or(FormatError::Truncated)?;
    r.read_exact(tail).map_err(eof_is_truncation)?;
    let (header, len) = SealedHeader::decode_prefix(&bytes)?;
    if len != bytes.len() {
        return Err(FormatError::TrailingBytes.into());
    }
    Ok((header, len))
}

/// From the first 10 header bytes: how many header bytes follow them. Checks what the
/// full decode would reject early (magic, version, suite), so a hostile prefix cannot
/// make the caller read much.
pub(crate) fn header_rest_len(first10: &[u8]) -> Result<usize, Error> {
    let mut r = crate::format::reader::Reader::new(first10);
    if r.array::<4>()? != crate::format::SEALED_MAGIC {
        return Err(FormatError::BadMagic {
            expected: "sealed object",
        }
        .into());
    }
    let version = r.u8()?;
    if version != crate::format::FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion(version).into());
    }
    let suite = Suite::from_id(r.u16()?)?;
    let _flags = r.u8()?;
    let w = usize::from(r.u16()?);
    let extra = match suite {
        Suite::Aes256GcmHkdfSha256Commit => 0,
        Suite::Aes256GcmSegmented => 4,
    };
    Ok(w + extra + crate::format::NONCE_LEN + crate::format::COMMITMENT_LEN)
}

fn eof_is_truncation(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FormatError::Truncated.into()
    } else {
        Error::Io(e)
    }
}

/// A kekring error carried through `std::io` (recover it with
/// `io::Error::get_ref()` and `downcast_ref::<kekring::Error>()`, or
/// [`crate::Error::from_io`]).
pub(crate) fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        Error::Misuse(m) => io::Error::new(io::ErrorKind::InvalidInput, Error::Misuse(m)),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl Error {
    /// The kekring error inside an `io::Error` returned by a stream adapter, if any.
    pub fn from_io(e: &io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Open,
    Done,
    Failed,
}

/// The sealing side of a stream, shared by the sync and async writers.
pub(crate) struct SegmentSealer {
    key: Box<dyn Aes256GcmKey>,
    aad: Vec<u8>,
    size: usize,
    index: u64,
    /// Pending plaintext (at most `size` bytes); sealed in place, tag appended.
    pub(crate) buf: Vec<u8>,
}

impl SegmentSealer {
    pub(crate) fn new(key: Box<dyn Aes256GcmKey>, aad: Vec<u8>, size: u32) -> Result<Self, Error> {
        let size = usize::try_from(size).map_err(|_| FormatError::Truncated)?;
        Ok(Self {
            key,
            aad,
            size,
            index: 0,
            buf: Vec::with_capacity(size + TAG_LEN),
        })
    }

    /// Whether the pending segment is full (it is sealed once more data arrives, so
    /// that the last segment is known to be last).
    pub(crate) fn full(&self) -> bool {
        self.buf.len() >= self.size
    }

    /// Copies as much of `data` as fits into the pending segment.
    pub(crate) fn absorb(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.size - self.buf.len().min(self.size));
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        n
    }

    /// Seals the pending segment in place (`buf` then holds ciphertext and tag).
    pub(crate) fn seal(&mut self, last: bool) -> Result<(), Error> {
        let nonce = payload::segment_nonce(self.index, last);
        let tag = self
            .key
            .seal(&nonce, &self.aad, &mut self.buf)
            .map_err(|_| Error::Crypto)?;
        self.buf.extend_from_slice(&tag);
        self.index = self.index.checked_add(1).ok_or(MisuseError::StreamState)?;
        Ok(())
    }
}

/// Writes a sealed stream: the header at creation, then one segment each time a segment
/// fills and more data follows, and the last segment in [`SealWriter::finish`].
///
/// Dropping the writer without `finish` leaves a stream that every reader rejects as cut
/// off. Created by [`Envelope::seal_writer`].
pub struct SealWriter<W: Write> {
    inner: W,
    sealer: SegmentSealer,
    state: State,
}

impl<W: Write> fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealWriter")
            .field("segment_size", &self.sealer.size)
            .field("segments_written", &self.sealer.index)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<W: Write> SealWriter<W> {
    fn emit(&mut self, last: bool) -> io::Result<()> {
        let r = self
            .sealer
            .seal(last)
            .map_err(to_io)
            .and_then(|()| self.inner.write_all(&self.sealer.buf));
        self.sealer.buf.clear();
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// Seals the last segment, flushes, and returns the inner writer.
    ///
    /// # Errors
    /// The inner writer's error, or a misuse error after an earlier failure.
    pub fn finish(mut self) -> io::Result<W> {
        if self.state != State::Open {
            return Err(to_io(MisuseError::StreamState.into()));
        }
        self.emit(true)?;
        self.inner.flush()?;
        self.state = State::Done;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.state != State::Open {
            return Err(to_io(MisuseError::StreamState.into()));
        }
        if data.is_empty() {
            return Ok(0);
        }
        if self.sealer.full() {
            self.emit(false)?;
        }
        Ok(self.sealer.absorb(data))
    }

    /// Flushes the inner writer. The pending partial segment stays pending: a segment is
    /// sealed only when it is full or the stream is finished.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The opening side of a stream, shared by the sync and async readers.
pub(crate) struct SegmentOpener {
    key: Box<dyn Aes256GcmKey>,
    aad: Vec<u8>,
    pub(crate) size: usize,
    pub(crate) index: u64,
}

impl SegmentOpener {
    pub(crate) fn new(key: Box<dyn Aes256GcmKey>, aad: Vec<u8>, size: u32) -> Result<Self, Error> {
        Ok(Self {
            key,
            aad,
            size: usize::try_from(size).map_err(|_| FormatError::Truncated)?,
            index: 0,
        })
    }

    /// Bytes a reader gathers before it can tell a middle segment from the last: one
    /// full segment with its tag, plus one byte.
    pub(crate) fn window(&self) -> usize {
        self.size + TAG_LEN + 1
    }

    /// Opens segment `index` held in `seg` (ciphertext then tag) in place; returns the
    /// plaintext length.
    pub(crate) fn open_at(&self, index: u64, last: bool, seg: &mut [u8]) -> Result<usize, Error> {
        let ct_len = seg
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(FormatError::Truncated)?;
        let (ct, tag) = seg.split_at_mut(ct_len);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| FormatError::MissingTag)?;
        self.key
            .open(&payload::segment_nonce(index, last), &self.aad, ct, &tag)
            .map_err(|_| Error::Crypto)?;
        Ok(ct_len)
    }

    /// Given `filled` bytes gathered into `buf` (`filled == window()` or the input
    /// ended), opens the next segment: straight into `out` when its plaintext fits
    /// there, else in place in `buf`. Returns whether it went to `out`, the plaintext
    /// length, and whether it was the last segment.
    fn open_next(
        &mut self,
        buf: &mut [u8],
        filled: usize,
        out: &mut [u8],
    ) -> Result<(bool, usize, bool), Error> {
        let last = filled < self.window();
        let seg_len = if last { filled } else { self.size + TAG_LEN };
        if last && (filled < TAG_LEN || (filled == TAG_LEN && self.index > 0)) {
            return Err(FormatError::Truncated.into());
        }
        let seg = buf.get_mut(..seg_len).ok_or(FormatError::Truncated)?;
        let pt_len = seg_len - TAG_LEN;
        let direct = out.len() >= pt_len;
        if direct {
            let (ct, tag) = seg.split_at(pt_len);
            let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| FormatError::MissingTag)?;
            let out = out.get_mut(..pt_len).ok_or(FormatError::Truncated)?;
            self.key
                .open_to(
                    &payload::segment_nonce(self.index, last),
                    &self.aad,
                    ct,
                    &tag,
                    out,
                )
                .map_err(|_| Error::Crypto)?;
        } else {
            self.open_at(self.index, last, seg)?;
        }
        self.index = self.index.checked_add(1).ok_or(FormatError::Truncated)?;
        Ok((direct, pt_len, last))
    }
}

/// The I/O-free core of a front-to-back reader, shared by the sync and async adapters:
/// gathers one segment plus one byte of look-ahead (to tell the last segment from the
/// others), and opens it: straight into the caller's buffer when its plaintext fits
/// there, else in place, handing the plaintext out from here.
pub(crate) struct FrontCore {
    pub(crate) opener: SegmentOpener,
    /// Gathered ciphertext; after a segment is opened, its plaintext sits at the front.
    buf: Vec<u8>,
    filled: usize,
    pos: usize,
    end: usize,
    /// Bytes of the next segment already in `buf` after the current one.
    carry: usize,
    gathering: bool,
    state: State,
}

impl FrontCore {
    pub(crate) fn new(opener: SegmentOpener) -> Self {
        Self {
            buf: vec![0u8; opener.window()],
            opener,
            filled: 0,
            pos: 0,
            end: 0,
            carry: 0,
            gathering: false,
            state: State::Open,
        }
    }

    /// Copies available plaintext into `out`; `None` when none is available and the
    /// caller must gather (or the stream is over: see [`FrontCore::finished`]).
    pub(crate) fn take(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.pos >= self.end {
            return None;
        }
        let avail = self.buf.get(self.pos..self.end).unwrap_or_default();
        let n = avail.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(avail.get(..n).unwrap_or_default());
        self.pos += n;
        Some(n)
    }

    /// `Ok(true)` after the last segment, an error after a failure, `Ok(false)` while
    /// more segments may follow.
    pub(crate) fn finished(&self) -> io::Result<bool> {
        match self.state {
            State::Done => Ok(true),
            State::Failed => Err(to_io(MisuseError::StreamState.into())),
            State::Open => Ok(false),
        }
    }

    /// Where the next input bytes go, or `None` once a full window is gathered.
    pub(crate) fn spare(&mut self) -> Option<&mut [u8]> {
        let window = self.opener.window();
        if !self.gathering {
            // Move the look-ahead byte(s) of the previous round to the front.
            if self.carry > 0 {
                let from = self.filled - self.carry;
                self.buf.copy_within(from..self.filled, 0);
            }
            self.filled = self.carry;
            self.carry = 0;
            self.gathering = true;
        }
        (self.filled < window).then(|| self.buf.get_mut(self.filled..window).unwrap_or_default())
    }

    /// Records `n` bytes written into [`FrontCore::spare`].
    pub(crate) fn gathered(&mut self, n: usize) {
        self.filled += n;
    }

    /// Opens the gathered segment (the input ended if the window is not full). When its
    /// plaintext fits in `out` it is decrypted straight there (no second copy) and its
    /// length returned; otherwise it stays here for [`FrontCore::take`] and the result
    /// is `None`.
    pub(crate) fn open(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        self.gathering = false;
        match self.opener.open_next(&mut self.buf, self.filled, out) {
            Ok((direct, n, last)) => {
                self.pos = 0;
                self.end = if direct { 0 } else { n };
                if last {
                    self.state = State::Done;
                } else {
                    self.carry = self.filled - (self.opener.size + TAG_LEN);
                }
                Ok(direct.then_some(n))
            }
            Err(e) => Err(self.fail(to_io(e))),
        }
    }

    /// Marks the stream failed; returns `e`.
    pub(crate) fn fail(&mut self, e: io::Error) -> io::Error {
        self.state = State::Failed;
        e
    }
}

/// Reads a sealed stream front to back and yields its plaintext. Created by
/// [`Envelope::open_reader`].
///
/// Each segment's plaintext is released once that segment is authenticated; a stream
/// cut off at any point fails with an error when the reader reaches the cut, so what was
/// read is complete only once `read` returns `Ok(0)`. Errors carry a [`crate::Error`]
/// (see [`crate::Error::from_io`]); after one, every later read fails too.
pub struct OpenReader<R: Read> {
    inner: R,
    core: FrontCore,
}

impl<R: Read> fmt::Debug for OpenReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenReader")
            .field("segment_size", &self.core.opener.size)
            .field("segments_read", &self.core.opener.index)
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl<R: Read> OpenReader<R> {
    /// Gathers and opens the next segment; see [`FrontCore::open`] for `out`.
    fn next_segment(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        while let Some(spare) = self.core.spare() {
            match self.inner.read(spare) {
                Ok(0) => break,
                Ok(n) => self.core.gathered(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.core.fail(e)),
            }
        }
        self.core.open(out)
    }

    /// The inner reader (positioned after what was consumed).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(n) = self.core.take(out) {
                return Ok(n);
            }
            if self.core.finished()? || out.is_empty() {
                return Ok(0);
            }
            if let Some(n @ 1..) = self.next_segment(out)? {
                return Ok(n);
            }
        }
    }
}

/// Random access to a sealed stream: `Read + Seek` over the plaintext, decrypting only
/// the segments a read touches (one segment is cached). Created by
/// [`Envelope::open_seekable`], which authenticates the final segment, so
/// [`SeekableOpenReader::len`] is the true length and a cut-off stream is refused at once.
pub struct SeekableOpenReader<R: Read + Seek> {
    inner: R,
    opener: SegmentOpener,
    header_len: u64,
    layout: Layout,
    pos: u64,
    /// The segment whose plaintext is in `buf[..cached_len]`.
    cached: Option<u64>,
    cached_len: usize,
    buf: Vec<u8>,
    decrypted: u64,
}

impl<R: Read + Seek> fmt::Debug for SeekableOpenReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeekableOpenReader")
            .field("segment_size", &self.opener.size)
            .field("len", &self.layout.plaintext_len())
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> SeekableOpenReader<R> {
    fn new(
        mut inner: R,
        opener: SegmentOpener,
        header_len: u64,
        start: u64,
    ) -> Result<Self, Error> {
        let total = inner.seek(SeekFrom::End(0))?;
        let payload_len = total
            .checked_sub(start + header_len)
            .ok_or(FormatError::Truncated)?;
        let size = u32::try_from(opener.size).map_err(|_| FormatError::Truncated)?;
        let layout = Layout::of(size, payload_len)?;
        let mut r = Self {
            inner,
            buf: vec![0u8; opener.size + TAG_LEN],
            opener,
            header_len: start + header_len,
            layout,
            pos: 0,
            cached: None,
            cached_len: 0,
            decrypted: 0,
        };
        r.load(layout.count - 1)?;
        Ok(r)
    }

    fn load(&mut self, index: u64) -> Result<(), Error> {
        if self.cached == Some(index) {
            return Ok(());
        }
        self.cached = None;
        let last = index + 1 == self.layout.count;
        let pt_len = if last {
            self.layout.last_len
        } else {
            self.layout.size
        };
        let seg_len = usize_of(pt_len)? + TAG_LEN;
        let offset = self.header_len + index * (self.layout.size + TAG);
        self.inner.seek(SeekFrom::Start(offset))?;
        let seg = self.buf.get_mut(..seg_len).ok_or(FormatError::Truncated)?;
        self.inner.read_exact(seg).map_err(eof_is_truncation)?;
        self.cached_len = self.opener.open_at(index, last, seg)?;
        self.cached = Some(index);
        self.decrypted += 1;
        Ok(())
    }

    /// The plaintext length (authenticated).
    pub fn len(&self) -> u64 {
        self.layout.plaintext_len()
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segments decrypted so far (including the final segment checked at creation).
    pub fn segments_decrypted(&self) -> u64 {
        self.decrypted
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read + Seek> Read for SeekableOpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.pos >= self.len() {
            return Ok(0);
        }
        let index = self.pos / self.layout.size;
        self.load(index).map_err(to_io)?;
        let off = usize::try_from(self.pos - index * self.layout.size)
            .map_err(|_| to_io(FormatError::Truncated.into()))?;
        let avail = self.buf.get(off..self.cached_len).unwrap_or_default();
        let n = avail.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(avail.get(..n).unwrap_or_default());
        self.pos += u64_of(n);
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SeekableOpenReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let p = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = p;
        Ok(p)
    }
}

impl Envelope {
    /// Starts a sealed stream with the default segment size (64 KiB) and writes its
    /// header to `inner`. Write the plaintext to the returned writer, then call
    /// [`SealWriter::finish`].
    ///
    /// # Errors
    /// As [`Envelope::seal`], or [`Error::Io`] when writing the header fails.
    pub async fn seal_writer<W: Write>(
        &self,
        ctx: &Context,
        inner: W,
    ) -> Result<SealWriter<W>, Error> {
        self.seal_writer_with_segment_size(ctx, inner, DEFAULT_SEGMENT_SIZE)
            .await
    }

    /// As [`Envelope::seal_writer`] with `segment_size` plaintext bytes per segment
    /// (1 KiB to 16 MiB). Larger segments cost fewer tags and nonces; readers buffer one
    /// segment, and random access decrypts whole segments.
    ///
    /// # Errors
    /// As [`Envelope::seal_writer`]; [`Error::Misuse`] for a segment size out of range.
    pub async fn seal_writer_with_segment_size<W: Write>(
        &self,
        ctx: &Context,
        mut inner: W,
        segment_size: u32,
    ) -> Result<SealWriter<W>, Error> {
        let (header, sealer) = self.begin_stream(ctx, segment_size).await?;
        inner.write_all(&header)?;
        Ok(SealWriter {
            inner,
            sealer,
            state: State::Open,
        })
    }

    /// Reads a stream's header from `inner`, checks it against `ctx`, unwraps its DEK and
    /// returns a reader of the plaintext. Whole-object (`seal`) objects are refused: open
    /// those with [`Envelope::open`].
    ///
    /// # Errors
    /// As [`Envelope::open`], or [`Error::Io`].
    pub async fn open_reader<R: Read>(
        &self,
        ctx: &Context,
        mut inner: R,
    ) -> Result<OpenReader<R>, Error> {
        let (header, _) = read_header(&mut inner)?;
        let opener = self.begin_open_stream(ctx, &header).await?;
        Ok(OpenReader {
            inner,
            core: FrontCore::new(opener),
        })
    }

    /// Opens a stream for random access from the current position of `inner` (where its
    /// header starts); authenticates the final segment before returning.
    ///
    /// # Errors
    /// As [`Envelope::open_reader`]; a cut-off or extended stream fails here.
    pub async fn open_seekable<R: Read + Seek>(
        &self,
        ctx: &Context,
        mut inner: R,
    ) -> Result<SeekableOpenReader<R>, Error> {
        let start = inner.stream_position()?;
        let (header, header_len) = read_header(&mut inner)?;
        let opener = self.begin_open_stream(ctx, &header).await?;
        SeekableOpenReader::new(inner, opener, u64_of(header_len), start)
    }

    /// Wraps a fresh DEK and prepares the sealing side of a stream; returns the encoded
    /// header with it.
    pub(crate) async fn begin_stream(
        &self,
        ctx: &Context,
        segment_size: u32,
    ) -> Result<(Vec<u8>, SegmentSealer), Error> {
        let begun = self
            .begin_seal(ctx, Suite::Aes256GcmSegmented, Some(segment_size), 0)
            .await?;
        let key = self.inner.crypto.aes256_gcm(&begun.key);
        let sealer = SegmentSealer::new(key, begun.aad, segment_size)?;
        Ok((begun.header_bytes, sealer))
    }

    /// Checks a stream header and prepares the opening side.
    pub(crate) async fn begin_open_stream(
        &self,
        ctx: &Context,
        header: &SealedHeader,
    ) -> Result<SegmentOpener, Error> {
        let Some(size) = header.segment_size() else {
            return Err(MisuseError::WholeObjectStream.into());
        };
        let (key, _, aad) = self.open_header(ctx, header).await?;
        SegmentOpener::new(self.inner.crypto.aes256_gcm(&key), aad, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_accepts_what_writers_produce_and_nothing_else() {
        let s = 1024u32;
        let full = 1024 + 16;
        assert_eq!(Layout::of(s, 16).unwrap().plaintext_len(), 0);
        assert_eq!(Layout::of(s, 17).unwrap().plaintext_len(), 1);
        assert_eq!(Layout::of(s, full).unwrap().count, 1);
        assert_eq!(Layout::of(s, full + 17).unwrap().count, 2);
        assert_eq!(Layout::of(s, full + 17).unwrap().plaintext_len(), 1025);
        assert_eq!(Layout::of(s, 2 * full).unwrap().last_len, 1024);
        assert!(Layout::of(s, 15).is_err());
        assert!(Layout::of(s, full + 16).is_err(), "empty final segment");
        assert!(Layout::of(s, full + 5).is_err(), "final shorter than a tag");
    }
}
