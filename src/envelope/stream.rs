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
use crate::error::{Error, MisuseError, to_io};
use crate::format::{DEFAULT_SEGMENT_SIZE, FormatError, HeaderBytes, SealedHeader, Suite, TAG_LEN};
use crate::payload::{FrontCore, Layout, SegmentOpener, SegmentSealer, State, u64_of};

/// Reads a sealed-object header from the start of a stream; returns it with its encoded
/// length. Reads exactly the header's bytes.
pub(crate) fn read_header<R: Read>(r: &mut R) -> Result<(SealedHeader, usize), Error> {
    let mut h = HeaderBytes::new();
    r.read_exact(h.prefix()).map_err(eof_is_truncation)?;
    r.read_exact(h.rest()?).map_err(eof_is_truncation)?;
    Ok(h.decode()?)
}

/// An input that ends early is a truncated object, not an I/O failure.
pub(crate) fn eof_is_truncation(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FormatError::Truncated.into()
    } else {
        Error::Io(e)
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
        let size =
            u32::try_from(opener.size).map_err(|_| Error::Internal("a segment size beyond u32"))?;
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
        let (at, seg_len, last) = self.layout.segment(index)?;
        self.inner.seek(SeekFrom::Start(self.header_len + at))?;
        let seg = self
            .buf
            .get_mut(..seg_len)
            .ok_or(Error::Internal("a segment longer than its buffer"))?;
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
            .map_err(|_| to_io(Error::Internal("a segment offset beyond usize")))?;
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
        let sealer = begun.cipher.into_sealer(segment_size)?;
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
        self.open_header(ctx, header).await?.into_opener(size)
    }
}
