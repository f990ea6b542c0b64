#![cfg_attr(feature = "local", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "local"),
    doc = "kekring: envelope encryption. See README.md."
)]
//!
//! # Crate map
//!
//! | module | what it owns |
//! |---|---|
//! | [`format`](mod@format) | the versioned binary encodings and their byte-level spec |
//! | [`secret`] | [`DataKey`] and symmetric key material |
//! | [`backend`] | the [`KeyBackend`] trait and what a backend declares about itself; below it, one backend per file, each behind a feature ([`backend::local`]) |
//! | [`policy`] | classification [`Profile`]s |
//! | [`audit`] | hash-chained audit events, sinks, verification |
//! | [`lifecycle`] | the key ring: KEK states, rotation, overlap windows, revocation |
//! | [`envelope`] | [`Envelope`]: seal / open, generate / unwrap data keys, re-wrap, bulk re-wrap, cache |
//! | [`backend::local::keystore`] | the embedded key store (feature `keystore`) |
//! | [`threat_model`] | what kekring defends against, and what it does not |

pub mod audit;
pub mod backend;
mod context;
// The key-wrap primitives serve only local KEKs.
#[cfg_attr(not(feature = "local"), allow(dead_code))]
pub(crate) mod crypto;
pub mod envelope;
mod error;
pub mod format;
pub mod lifecycle;
mod locator;
mod payload;
pub mod policy;
pub mod secret;
mod sharded;
pub mod threat_model;

pub use backend::{BackendError, BackendInfo, FipsStatus, KeyBackend};
pub use context::Context;
pub use crypto::{CryptoProvider, RandomSource};
#[cfg(feature = "tokio")]
pub use envelope::{AsyncOpenReader, AsyncSealWriter};
pub use envelope::{
    CacheConfig, Clock, Envelope, EnvelopeBuilder, GeneratedDataKey, ManualClock, OpenReader,
    Route, SealWriter, SealedParts, SeekableOpenReader, SystemClock, Usage,
};
pub use error::{
    ConfigError, ContextError, Error, FormatError, KeyStateError, MisuseError, PolicyError,
};
pub use format::{BackendId, Classification, Family, KekRef, Name, WrapAlgorithm};
pub use locator::KekLocator;
pub use payload::MAX_PAYLOAD_LEN;
pub use policy::Profile;
pub use secret::DataKey;

#[cfg(feature = "local")]
pub use backend::local::LocalBackend;
/// The embedded key store (feature `keystore`): [`backend::local::keystore`].
#[cfg(feature = "keystore")]
pub use backend::local::keystore;
