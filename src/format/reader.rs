//! A bounds-checked cursor over untrusted bytes, and the matching writer helpers.
//!
//! Every read either returns exactly the bytes asked for or an error; nothing here can
//! panic, index out of bounds or truncate a length with an `as` cast.

use super::FormatError;

/// A forward-only cursor over a byte slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Takes exactly `n` bytes, or fails with [`FormatError::Truncated`].
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.buf.len() {
            return Err(FormatError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| FormatError::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array::<2>()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    /// A `u8` length prefix followed by that many bytes; the length must lie in `min..=max`.
    pub(crate) fn vec_u8(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<&'a [u8], FormatError> {
        let len = usize::from(self.u8()?);
        check_len(field, len, min, max)?;
        self.take(len)
    }

    /// A big-endian `u16` length prefix followed by that many bytes, bounded as above.
    pub(crate) fn vec_u16(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<&'a [u8], FormatError> {
        let len = usize::from(self.u16()?);
        check_len(field, len, min, max)?;
        self.take(len)
    }

    /// Everything not read yet (the cursor ends empty).
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// How many bytes were consumed, given the original input length.
    pub(crate) fn consumed(&self, original_len: usize) -> usize {
        original_len.saturating_sub(self.buf.len())
    }

    /// Fails with [`FormatError::TrailingBytes`] unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), FormatError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FormatError::TrailingBytes)
        }
    }
}

pub(crate) fn check_len(
    field: &'static str,
    len: usize,
    min: usize,
    max: usize,
) -> Result<(), FormatError> {
    if len < min || len > max {
        Err(FormatError::LengthOutOfRange {
            field,
            len,
            min,
            max,
        })
    } else {
        Ok(())
    }
}

/// Appends a `u8` length prefix and the bytes. Callers validate `bytes.len() <= 255`
/// at construction; the encoders only ever see validated values.
pub(crate) fn put_vec_u8(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

/// Appends a big-endian `u16` length prefix and the bytes (validated as above).
pub(crate) fn put_vec_u16(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends a big-endian `u32` length prefix and the bytes (validated as above).
pub(crate) fn put_vec_u32(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_past_end_is_truncated_not_panic() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.take(2).unwrap(), &[1, 2]);
        assert_eq!(r.take(2), Err(FormatError::Truncated));
        // A failed take consumes nothing.
        assert_eq!(r.u8().unwrap(), 3);
        r.finish().unwrap();
    }

    #[test]
    fn finish_rejects_trailing_bytes() {
        let mut r = Reader::new(&[0, 1, 9]);
        assert_eq!(r.u16().unwrap(), 1);
        assert_eq!(r.finish(), Err(FormatError::TrailingBytes));
    }

    #[test]
    fn bounded_vectors() {
        let mut r = Reader::new(&[3, b'a', b'b', b'c']);
        assert_eq!(r.vec_u8("x", 1, 3).unwrap(), b"abc");
        let mut r = Reader::new(&[4, b'a', b'b', b'c', b'd']);
        assert!(matches!(
            r.vec_u8("x", 1, 3),
            Err(FormatError::LengthOutOfRange { len: 4, .. })
        ));
        let mut r = Reader::new(&[0, 0]);
        assert!(matches!(
            r.vec_u16("x", 1, 3),
            Err(FormatError::LengthOutOfRange { len: 0, .. })
        ));
    }
}
