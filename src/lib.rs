#![cfg_attr(docsrs, feature(doc_cfg))]
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
//! | [`format`](mod@format) | the versioned binary encodings and their byte-level spec; a leaf |
//! | `error` | every error enum ([`Error`] and the per-module ones), importing nothing above `format` |
//! | [`KekLocator`] (`locator`) | where a KEK lives inside its backend; a leaf |
//! | [`secret`] | [`DataKey`] and symmetric key material |
//! | `crypto` | the crate-private primitives seam and the two [`CryptoProvider`]s |
//! | `payload` | the per-object key schedule, key commitment and every payload AEAD call, whole objects and stream segments |
//! | [`backend`] | the [`KeyBackend`] trait and what a backend declares about itself; below it, one backend per file (`backend::local` with the key store, `backend::aws_kms`, `backend::vault_transit`) and the chassis of the remote ones (`backend::kit`) |
//! | [`policy`] | classification [`Profile`]s |
//! | [`lifecycle`] | the key ring: records and states, pure transitions, the shared ring, the object scan |
//! | [`audit`] | MAC-chained audit events, sinks, verification against an anchored head |
//! | [`envelope`] | [`Envelope`]: seal / open, data keys, re-wrap, rotation, verified retirement, streams |
//! | [`threat_model`] | what kekring defends against, and what it does not |
//!
//! Dependencies run one way, from `envelope` down to `format`: no two top-level modules
//! import each other (`scripts/module_cycles.py` checks it).

pub mod audit;
pub mod backend;
mod context;
// The key-wrap primitives serve only local KEKs.
#[cfg_attr(not(feature = "local"), allow(dead_code))]
pub(crate) mod crypto;
pub mod envelope;
mod error;
pub mod format;
#[cfg(feature = "keystore")]
#[cfg_attr(docsrs, doc(cfg(feature = "keystore")))]
pub mod keystore;
pub mod lifecycle;
mod locator;
mod payload;
pub mod policy;
pub mod secret;
mod sharded;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
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
    RecordFailure,
};
pub use format::{BackendId, Classification, Family, KekRef, Name, WrapAlgorithm};
pub use locator::KekLocator;
pub use payload::MAX_PAYLOAD_LEN;
pub use policy::Profile;
pub use secret::DataKey;

#[cfg(feature = "local")]
pub use backend::local::LocalBackend;
