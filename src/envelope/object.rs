//! From a context to a new object's header and payload cipher (a fresh DEK and nonce,
//! the DEK wrapped under the plan's KEKs, the payload key and commitment), and from a
//! stored header back to its payload cipher (claims checked, DEK unwrapped, commitment
//! checked). The payload crypto itself is in [`crate::payload`].

use super::Envelope;
use crate::context::Context;
use crate::error::Error;
use crate::format::{SealedHeader, Suite};
use crate::payload::{self, PayloadCipher};

/// A seal under way: the encoded header (with room for the payload) and the payload
/// cipher.
pub(super) struct Begun {
    pub(super) header_bytes: Vec<u8>,
    pub(super) cipher: PayloadCipher,
}

impl Envelope {
    /// Draws the DEK and nonce, wraps the DEK, derives the payload key and builds the
    /// header and the payload cipher.
    pub(super) async fn begin_seal(
        &self,
        ctx: &Context,
        suite: Suite,
        segment_size: Option<u32>,
        payload_capacity: usize,
    ) -> Result<Begun, Error> {
        let (dek, nonce) = payload::fresh(self.inner.crypto, self.inner.random)?;
        let wrapped = self.wrap_dek(ctx, &dek).await?;
        let keys = payload::derive(self.inner.crypto, &dek, suite, &nonce)?;
        let mut header = SealedHeader::new(suite, wrapped, nonce, keys.commitment);
        if let Some(size) = segment_size {
            header = header.with_segment_size(size)?;
        }
        let cipher = PayloadCipher::for_seal(self.inner.crypto, &keys.key, &header, ctx.binding());
        Ok(Begun {
            header_bytes: header.encode_with_capacity(payload_capacity),
            cipher,
        })
    }

    /// Checks the header's claims, unwraps its DEK and checks the commitment; returns the
    /// payload cipher.
    pub(super) async fn open_header(
        &self,
        ctx: &Context,
        header: &SealedHeader,
    ) -> Result<PayloadCipher, Error> {
        let dek = self.unwrap_dek(ctx, header.wrapped_dek()).await?;
        PayloadCipher::for_open(self.inner.crypto, &dek, header, ctx.binding())
    }
}
