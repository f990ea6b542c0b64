//! The tests that need no server: the wire format and its vectors, the envelope on the
//! embedded local backend, lifecycle, key store, audit and CLI. One test binary (one
//! link) for all of them; `tests/remote` holds the ones that talk to the test servers.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

#[cfg(feature = "local")]
#[path = "../common/mod.rs"]
mod common;

mod audit;
#[cfg(feature = "cli")]
mod cli;
#[cfg(all(feature = "local", feature = "testing"))]
mod conformance;
#[cfg(feature = "local")]
mod destroy;
#[cfg(feature = "local")]
mod envelope;
mod format;
#[cfg(feature = "local")]
mod hardening;
#[cfg(feature = "keystore")]
mod keystore;
mod lifecycle;
#[cfg(feature = "local")]
mod local_algorithms;
#[cfg(feature = "local")]
mod openssl;
#[cfg(all(feature = "local", feature = "aws-lc"))]
mod providers;
#[cfg(feature = "local")]
mod rotation;
#[cfg(feature = "local")]
mod secrets;
#[cfg(feature = "local")]
mod spec;
#[cfg(feature = "local")]
mod stream;
#[cfg(feature = "local")]
mod vectors;
#[cfg(feature = "local")]
mod wycheproof_asymmetric;
