//! Async stream adapters for tokio's `AsyncRead` / `AsyncWrite` (feature `tokio`): the
//! same segmented format and guarantees as the `std::io` adapters in `stream`.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::Envelope;
use super::stream::eof_is_truncation;
use crate::context::Context;
use crate::error::to_io;
use crate::error::{Error, MisuseError};
use crate::format::{DEFAULT_SEGMENT_SIZE, HeaderBytes};
use crate::payload::{FrontCore, SegmentSealer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Done,
    Failed,
}

/// Writes a sealed stream to an `AsyncWrite`. Shut it down (`AsyncWriteExt::shutdown`)
/// to seal the last segment; a writer dropped before that leaves a stream every reader
/// rejects as cut off. Created by [`Envelope::seal_async_writer`].
pub struct AsyncSealWriter<W: AsyncWrite + Unpin> {
    inner: W,
    sealer: SegmentSealer,
    /// Sealed bytes not yet accepted by `inner` (the header, then one segment).
    out: Vec<u8>,
    out_pos: usize,
    last_sealed: bool,
    state: State,
}

impl<W: AsyncWrite + Unpin> fmt::Debug for AsyncSealWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSealWriter")
            .field("pending", &(self.out.len() - self.out_pos))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> AsyncSealWriter<W> {
    fn poll_drain(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let pending = self.out.get(self.out_pos..).unwrap_or_default();
            match ready!(Pin::new(&mut self.inner).poll_write(cx, pending)) {
                Ok(0) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => self.out_pos += n,
                Err(e) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Seals the pending segment and queues it for writing.
    fn seal(&mut self, last: bool) -> io::Result<()> {
        if let Err(e) = self.sealer.seal(last) {
            self.state = State::Failed;
            return Err(to_io(e));
        }
        // The drained output buffer becomes the next plaintext buffer.
        std::mem::swap(&mut self.out, &mut self.sealer.buf);
        self.sealer.buf.clear();
        self.out_pos = 0;
        Ok(())
    }

    /// The inner writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncSealWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state != State::Open || this.last_sealed {
            return Poll::Ready(Err(to_io(MisuseError::StreamState.into())));
        }
        ready!(this.poll_drain(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.sealer.full() {
            this.seal(false)?;
        }
        Poll::Ready(Ok(this.sealer.absorb(data)))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state == State::Failed {
            return Poll::Ready(Err(to_io(MisuseError::StreamState.into())));
        }
        ready!(this.poll_drain(cx))?;
        if !this.last_sealed {
            this.seal(true)?;
            this.last_sealed = true;
            ready!(this.poll_drain(cx))?;
        }
        ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
        this.state = State::Done;
        Poll::Ready(Ok(()))
    }
}

/// Reads a sealed stream from an `AsyncRead` and yields its plaintext, with the same
/// guarantees as [`super::OpenReader`]. Created by [`Envelope::open_async_reader`].
pub struct AsyncOpenReader<R: AsyncRead + Unpin> {
    inner: R,
    core: FrontCore,
}

impl<R: AsyncRead + Unpin> fmt::Debug for AsyncOpenReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncOpenReader")
            .field("segments_read", &self.core.opener.index)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> AsyncOpenReader<R> {
    /// Gathers and opens the next segment; see `FrontCore::open` for `out`.
    fn poll_segment(
        &mut self,
        cx: &mut TaskContext<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<Option<usize>>> {
        while let Some(spare) = self.core.spare() {
            let mut rb = ReadBuf::new(spare);
            if let Err(e) = ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb)) {
                return Poll::Ready(Err(self.core.fail(e)));
            }
            let n = rb.filled().len();
            if n == 0 {
                break;
            }
            self.core.gathered(n);
        }
        Poll::Ready(self.core.open(out))
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncOpenReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(n) = this.core.take(out.initialize_unfilled()) {
                out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.core.finished()? || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(n @ 1..) = ready!(this.poll_segment(cx, out.initialize_unfilled()))? {
                out.advance(n);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl Envelope {
    /// Starts a sealed stream on an `AsyncWrite` with the default segment size; the
    /// header is written with the first segment (or at shutdown).
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn seal_async_writer<W: AsyncWrite + Unpin>(
        &self,
        ctx: &Context,
        inner: W,
    ) -> Result<AsyncSealWriter<W>, Error> {
        self.seal_async_writer_with_segment_size(ctx, inner, DEFAULT_SEGMENT_SIZE)
            .await
    }

    /// As [`Envelope::seal_async_writer`] with `segment_size` plaintext bytes per segment.
    ///
    /// # Errors
    /// As [`Envelope::seal_writer_with_segment_size`].
    pub async fn seal_async_writer_with_segment_size<W: AsyncWrite + Unpin>(
        &self,
        ctx: &Context,
        inner: W,
        segment_size: u32,
    ) -> Result<AsyncSealWriter<W>, Error> {
        let (header, sealer) = self.begin_stream(ctx, segment_size).await?;
        Ok(AsyncSealWriter {
            inner,
            sealer,
            out: header,
            out_pos: 0,
            last_sealed: false,
            state: State::Open,
        })
    }

    /// Reads a stream's header from an `AsyncRead`, checks it, unwraps its DEK and
    /// returns a reader of the plaintext.
    ///
    /// # Errors
    /// As [`Envelope::open_reader`].
    pub async fn open_async_reader<R: AsyncRead + Unpin>(
        &self,
        ctx: &Context,
        mut inner: R,
    ) -> Result<AsyncOpenReader<R>, Error> {
        let mut h = HeaderBytes::new();
        inner
            .read_exact(h.prefix())
            .await
            .map_err(eof_is_truncation)?;
        inner
            .read_exact(h.rest()?)
            .await
            .map_err(eof_is_truncation)?;
        let (header, _) = h.decode()?;
        let opener = self.begin_open_stream(ctx, &header).await?;
        Ok(AsyncOpenReader {
            inner,
            core: FrontCore::new(opener),
        })
    }
}
