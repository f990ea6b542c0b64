//! Fixtures the integration tests share: a local backend with KEKs, the envelope over
//! it, KEK references and contexts. Each test file that uses them says `mod common;`.
// Test code: a panic is a test failure. Not every test file uses every fixture.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::sync::Arc;

use kekring::lifecycle::NewKek;
use kekring::{BackendId, Classification, Context, Envelope, KekRef, LocalBackend, WrapAlgorithm};

/// `tenant/purpose/v{version}`.
pub fn kref(tenant: &str, purpose: &str, version: u32) -> KekRef {
    KekRef::new(tenant, purpose, version).unwrap()
}

/// A context with no associated data.
pub fn ctx(tenant: &str, purpose: &str, object: &str, class: Classification) -> Context {
    Context::new(tenant, purpose, object, class).unwrap()
}

/// Generates a KEK of `alg` in `local` and describes it as version 1 of
/// `tenant/purpose`.
pub fn local_kek(local: &LocalBackend, tenant: &str, purpose: &str, alg: WrapAlgorithm) -> NewKek {
    let loc = local
        .generate(format!("{tenant}-{purpose}-1"), alg)
        .unwrap();
    NewKek::new(kref(tenant, purpose, 1), BackendId::Local, loc, alg)
}

/// An envelope over a fresh local backend holding one KEK (version 1) per
/// `(tenant, purpose, algorithm)`.
pub fn local_envelope(keks: &[(&str, &str, WrapAlgorithm)]) -> (Envelope, Arc<LocalBackend>) {
    let local = Arc::new(LocalBackend::new());
    let mut b = Envelope::builder().backend(local.clone());
    for (tenant, purpose, alg) in keks {
        b = b.kek(local_kek(&local, tenant, purpose, *alg));
    }
    (b.build().unwrap(), local)
}
