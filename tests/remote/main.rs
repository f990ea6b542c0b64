//! The tests against the servers `scripts/test.sh` starts (OpenBao, LocalStack, the
//! project's fakes of the KMS and Kubernetes TokenReview APIs): each remote backend,
//! workload identity, faults between kekring and a server, the CLI over remote KEKs,
//! and what reaches traces. One test binary (one link
//! of both cloud SDKs); the test command fails unless every module here ran.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

#[path = "../common/mod.rs"]
mod common;

mod aws_kms;
#[cfg(feature = "cli")]
mod cli_remote;
mod faults;
mod hostile;
#[cfg(feature = "tracing")]
mod secrets_traces;
mod vault_transit;
mod workload;
