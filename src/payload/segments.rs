//! The segmented payload (suite `0x0002`) without any I/O: the layout of a segmented
//! payload, the sealing and opening sides shared by the `std::io` and tokio adapters,
//! and the front-to-back reader's core. Segment `i` is sealed under the nonce
//! [`segment_nonce`](super::segment_nonce)`(i, last)`.

use std::io;

use crate::crypto::Aes256GcmKey;
use crate::error::{Error, MisuseError, to_io};
use crate::format::{FormatError, SealedHeader, TAG_LEN, split_tag, split_tag_mut};

use super::segment_nonce;

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

    /// Where segment `index` starts within the payload, its length with its tag, and
    /// whether it is the last.
    pub(crate) fn segment(&self, index: u64) -> Result<(u64, usize, bool), Error> {
        let last = index + 1 == self.count;
        let pt_len = if last { self.last_len } else { self.size };
        Ok((index * (self.size + TAG), usize_of(pt_len)? + TAG_LEN, last))
    }
}

fn usize_of(v: u64) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::Internal("a segment length beyond usize"))
}

/// Opens a complete segmented payload held in memory (for [`Envelope::open`]).
pub(crate) fn open_segments(
    key: &dyn Aes256GcmKey,
    aad: &[u8],
    header: &SealedHeader,
    payload: &[u8],
) -> Result<Vec<u8>, Error> {
    let size = header.segment_size().ok_or(Error::Internal(
        "a segmented header without its segment size",
    ))?;
    let layout = Layout::of(size, u64_of(payload.len()))?;
    let mut out = Vec::with_capacity(usize_of(layout.plaintext_len())?);
    let full = usize_of(layout.size)? + TAG_LEN;
    for (i, seg) in (0u64..).zip(payload.chunks(full)) {
        let last = i + 1 == layout.count;
        let (ct, tag) = split_tag(seg)?;
        let start = out.len();
        out.extend_from_slice(ct);
        let body = out
            .get_mut(start..)
            .ok_or(Error::Internal("a segment outside its output"))?;
        key.open(&segment_nonce(i, last), aad, body, &tag)
            .map_err(|_| Error::Crypto)?;
    }
    Ok(out)
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
    pub(crate) size: usize,
    pub(crate) index: u64,
    /// Pending plaintext (at most `size` bytes); sealed in place, tag appended.
    pub(crate) buf: Vec<u8>,
}

impl SegmentSealer {
    pub(crate) fn new(key: Box<dyn Aes256GcmKey>, aad: Vec<u8>, size: u32) -> Result<Self, Error> {
        let size =
            usize::try_from(size).map_err(|_| Error::Internal("a segment size beyond usize"))?;
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
        let nonce = segment_nonce(self.index, last);
        let tag = self
            .key
            .seal(&nonce, &self.aad, &mut self.buf)
            .map_err(|_| Error::Crypto)?;
        self.buf.extend_from_slice(&tag);
        self.index = self.index.checked_add(1).ok_or(MisuseError::StreamState)?;
        Ok(())
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
            size: usize::try_from(size)
                .map_err(|_| Error::Internal("a segment size beyond usize"))?,
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
        let (ct, tag) = split_tag_mut(seg)?;
        self.key
            .open(&segment_nonce(index, last), &self.aad, ct, &tag)
            .map_err(|_| Error::Crypto)?;
        Ok(ct.len())
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
        let seg = buf
            .get_mut(..seg_len)
            .ok_or(Error::Internal("a segment longer than its buffer"))?;
        let pt_len = seg_len - TAG_LEN;
        let direct = out.len() >= pt_len;
        if direct {
            let (ct, tag) = split_tag(seg)?;
            let out = out
                .get_mut(..pt_len)
                .ok_or(Error::Internal("a segment longer than its output"))?;
            self.key
                .open_to(&segment_nonce(self.index, last), &self.aad, ct, &tag, out)
                .map_err(|_| Error::Crypto)?;
        } else {
            self.open_at(self.index, last, seg)?;
        }
        self.index = self
            .index
            .checked_add(1)
            .ok_or(Error::Internal("2^64 segments"))?;
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
    pub(crate) state: State,
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
