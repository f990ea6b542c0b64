//! The API most users touch: seal and open whole objects, or generate and unwrap data
//! keys for callers that store the wrapped DEK themselves.
//!
//! Every seal draws a fresh DEK, checks the classification profile for every KEK the DEK
//! is about to be wrapped under (before any backend is called), wraps the DEK with the
//! caller's context bound into each wrap, and encrypts the payload with key commitment.
//! Every open checks the header's claims against the caller's context and the configured
//! KEKs before any backend is called: a KEK reference in a header is metadata, never
//! authorization.
//!
//! | file | what it owns |
//! |---|---|
//! | `envelope.rs` | the API: seal / open (whole objects, in place, detached), generate / unwrap data keys |
//! | `envelope/builder.rs` | [`EnvelopeBuilder`], [`Route`] |
//! | `envelope/state.rs` | the shared state every handle of an envelope reads |
//! | `envelope/calls.rs` | the one door to the backends: which instance serves a KEK, traces, answer checks |
//! | `envelope/plan.rs` | which KEKs wrap for a context (wrap plans), resolving KEKs for unwrap, counters, caches |
//! | `envelope/unwrap.rs` | the claims check and the unwrap rules |
//! | `envelope/object.rs` | from a context to a header and payload cipher, and back |
//! | `envelope/denials.rs` | audit records, with repeated denials coalesced |
//! | `envelope/rewrap.rs` | re-wrap and bulk re-wrap |
//! | `envelope/rotate.rs` | rotation (triggered and scheduled) |
//! | `envelope/retire.rs` | retirement and destruction checked against the stored objects |
//! | `envelope/stream.rs`, `stream_tokio.rs` | the stream adapters (the segment crypto is in `payload`) |
//! | `envelope/cache.rs` | the unwrap cache |

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::crypto::CryptoProvider;
use crate::error::{Error, MisuseError};
use crate::format::{FormatError, KekRef, SealedHeader, SealedObject, Suite, TAG_LEN, WrappedDek};
use crate::lifecycle::{KeyRing, SharedKeyRing};
use crate::payload;
use crate::policy::Profile;
use crate::secret::DataKey;

mod builder;
mod cache;
mod calls;
mod clock;
mod denials;
mod object;
mod plan;
mod retire;
mod rewrap;
mod rotate;
mod state;
mod stream;
#[cfg(feature = "tokio")]
mod stream_tokio;
mod unwrap;

pub use builder::{EnvelopeBuilder, Route};
pub use cache::CacheConfig;
pub use clock::{Clock, ManualClock, SystemClock};
pub use retire::{RetireCheck, RetireOptions};
pub use rewrap::{
    BulkItem, BulkItemKind, BulkOptions, BulkProgress, BulkReport, BulkResult, RewrapOutcome,
};
pub use stream::{OpenReader, SealWriter, SeekableOpenReader};
#[cfg(feature = "tokio")]
pub use stream_tokio::{AsyncOpenReader, AsyncSealWriter};

use state::Inner;

/// Per-KEK usage counters an `Envelope` keeps (the caller may persist them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// DEKs wrapped.
    pub wraps: u64,
    /// DEKs unwrapped (including cache hits).
    pub unwraps: u64,
    /// Wraps refused by the profile and unwraps denied by the key state.
    pub denials: u64,
}

/// A data key with its wrapped form, from [`Envelope::generate_data_key`].
#[derive(Debug)]
#[non_exhaustive]
pub struct GeneratedDataKey {
    /// The plaintext data key (zeroized on drop).
    pub key: DataKey,
    /// The encoded [`WrappedDek`] to store beside the data.
    pub wrapped: Vec<u8>,
}

/// The parts of an object sealed in place: the sealed object is
/// `header || buffer || tag`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SealedParts {
    /// The encoded header.
    pub header: Vec<u8>,
    /// The authentication tag.
    pub tag: [u8; TAG_LEN],
}

/// Seals and opens objects, and wraps and unwraps data keys.
///
/// `Send + Sync` and cheap to clone (an `Arc` inside): share one across tasks.
#[derive(Clone)]
pub struct Envelope {
    inner: Arc<Inner>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("backends", &self.inner.backends.keys().collect::<Vec<_>>())
            .field(
                "ring_generation",
                &self.inner.ring.read(KeyRing::generation),
            )
            .field("copies", &self.inner.copies.len())
            .field("profile", &self.inner.profile.name())
            .field("crypto", &self.inner.crypto.name())
            .field("random", &self.inner.random)
            .field("audit", &self.inner.audit.is_some())
            .field("cache", &self.inner.cache.is_some())
            .finish()
    }
}

impl Envelope {
    /// Starts a builder with the default profile.
    pub fn builder() -> EnvelopeBuilder {
        EnvelopeBuilder::new()
    }

    /// The crypto provider this envelope seals and opens payloads with.
    pub fn crypto_provider(&self) -> CryptoProvider {
        CryptoProvider {
            primitives: self.inner.crypto,
        }
    }

    /// The key ring this envelope reads (shared: transitions applied to it take effect
    /// here at once).
    pub fn key_ring(&self) -> &SharedKeyRing {
        &self.inner.ring
    }

    /// The per-KEK usage counters since this envelope was built.
    pub fn usage(&self) -> BTreeMap<KekRef, Usage> {
        self.inner
            .usage
            .read()
            .map(|u| u.iter().map(|(k, c)| (k.clone(), c.snapshot())).collect())
            .unwrap_or_default()
    }

    /// Drops (and zeroizes) the cached DEKs whose TTL has passed, and, when the ring's
    /// revocation epoch moved, those whose KEK may no longer unwrap, without waiting for
    /// the next cache access (which also sweeps). Call it from a timer when unwraps may
    /// stop for long stretches. Does nothing without a cache.
    pub fn sweep_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            let epoch = self.inner.ring.read(KeyRing::revocation_epoch);
            cache.sweep_expired(self.inner.clock.now(), epoch, &self.inner.ring);
        }
    }

    /// Writes the denial counts not yet recorded (see
    /// [`EnvelopeBuilder::denial_audit_interval`]): call it before a process exits, or
    /// periodically. Dropping the last handle of the envelope also does, best effort.
    ///
    /// # Errors
    /// [`Error::Audit`] when the audit sink fails (the counts stay pending).
    pub fn flush_audit(&self) -> Result<(), Error> {
        self.flush_denials()
    }

    /// The classification profile in force.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// Seals `plaintext` for `ctx`: a fresh DEK, wrapped under the route's KEKs, and the
    /// payload under AES-256-GCM with key commitment.
    ///
    /// # Errors
    /// [`Error::KeyState`] when no KEK wraps for the context's tenant and purpose,
    /// [`Error::Policy`] when the profile refuses a KEK's algorithm (no backend is called
    /// then), [`Error::Backend`] when a backend fails, [`Error::Misuse`] for a payload
    /// over 64 GiB, [`Error::Rng`].
    pub async fn seal(&self, ctx: &Context, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        payload::check_payload_len(plaintext.len())?;
        let begun = self
            .begin_seal(
                ctx,
                Suite::Aes256GcmHkdfSha256Commit,
                None,
                plaintext.len() + TAG_LEN,
            )
            .await?;
        let header_len = begun.header_bytes.len();
        let mut out = begun.header_bytes;
        out.extend_from_slice(plaintext);
        let (_, body) = out.split_at_mut(header_len);
        let tag = begun.cipher.seal(body)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Seals `buf` in place without copying the payload. The sealed object is
    /// `parts.header || buf || parts.tag`.
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn seal_in_place(&self, ctx: &Context, buf: &mut [u8]) -> Result<SealedParts, Error> {
        payload::check_payload_len(buf.len())?;
        let begun = self
            .begin_seal(ctx, Suite::Aes256GcmHkdfSha256Commit, None, 0)
            .await?;
        let tag = begun.cipher.seal(buf)?;
        Ok(SealedParts {
            header: begun.header_bytes,
            tag,
        })
    }

    /// Opens a sealed object for `ctx` and returns the plaintext.
    ///
    /// # Errors
    /// [`Error::Malformed`] for bytes that are not a sealed object, [`Error::Context`]
    /// when the header names another tenant, purpose or classification,
    /// [`Error::KeyState`] for a KEK not configured here, [`Error::Backend`], and the
    /// opaque [`Error::Crypto`] for a wrong key, context or tampered bytes.
    pub async fn open(&self, ctx: &Context, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let obj = SealedObject::decode(sealed)?;
        let cipher = self.open_header(ctx, obj.header()).await?;
        if obj.header().suite() == Suite::Aes256GcmSegmented {
            return cipher.open_segments(obj.header(), obj.payload());
        }
        let mut out = obj.ciphertext().to_vec();
        cipher.open(&mut out, obj.tag())?;
        Ok(out)
    }

    /// Opens a sealed object in place: decrypts the payload inside `sealed` and returns
    /// the plaintext as a sub-slice of it. On any error the buffer is left unchanged.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_in_place<'a>(
        &self,
        ctx: &Context,
        sealed: &'a mut [u8],
    ) -> Result<&'a mut [u8], Error> {
        let (header, header_len) = SealedHeader::decode_prefix(sealed)?;
        if header.suite() == Suite::Aes256GcmSegmented {
            return Err(MisuseError::SegmentedObject.into());
        }
        let cipher = self.open_header(ctx, &header).await?;
        let (_, rest) = sealed.split_at_mut(header_len);
        let (body, tag) = crate::format::split_tag_mut(rest)?;
        cipher.open_keep(body, &tag)?;
        Ok(body)
    }

    /// Opens an object sealed with [`Envelope::seal_in_place`] from its separate parts:
    /// decrypts `buf` in place. On any error `buf` is left unchanged.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_detached(
        &self,
        ctx: &Context,
        header: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let (h, header_len) = SealedHeader::decode_prefix(header)?;
        if header_len != header.len() {
            return Err(FormatError::TrailingBytes.into());
        }
        if h.suite() == Suite::Aes256GcmSegmented {
            return Err(MisuseError::SegmentedObject.into());
        }
        self.open_header(ctx, &h).await?.open_keep(buf, tag)
    }

    /// Generates a fresh DEK and wraps it for `ctx`, for callers that encrypt data
    /// themselves and store the wrapped DEK (for example in a database column).
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn generate_data_key(&self, ctx: &Context) -> Result<GeneratedDataKey, Error> {
        let key = DataKey::generate()?;
        let wrapped = self.wrap_dek(ctx, &key).await?.encode();
        Ok(GeneratedDataKey { key, wrapped })
    }

    /// Unwraps a DEK from [`Envelope::generate_data_key`] for `ctx`.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn unwrap_data_key(&self, ctx: &Context, wrapped: &[u8]) -> Result<DataKey, Error> {
        let dek = WrappedDek::decode(wrapped)?;
        self.unwrap_dek(ctx, &dek).await
    }
}
