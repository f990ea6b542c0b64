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

/// Every form in which a leaked key would show: hex (both cases), base64 (standard and
/// URL-safe), Rust's `{:?}` of the bytes, and every 8-byte window in hex (a partial leak
/// is a leak).
pub fn encodings(key: &[u8]) -> Vec<String> {
    let mut out = vec![
        hex::encode(key),
        hex::encode_upper(key),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, key),
    ];
    // Also any 8-byte window in hex: a partial leak is a leak.
    for w in key.windows(8) {
        out.push(hex::encode(w));
    }
    // And Rust's own `{:?}` of the byte array.
    out.push(format!("{key:?}"));
    if let Some(head) = key.get(..8) {
        out.push(format!("{head:?}").trim_end_matches(']').to_owned());
    }
    out
}

/// A test server's setting from the environment `scripts/test.sh` exports (from
/// `scripts/servers.py`); a test without it fails, it never skips.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run scripts/test.sh, or `python3 scripts/servers.py start DIR` \
             and source DIR/env"
        )
    })
}
