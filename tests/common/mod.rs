//! Fixtures the integration tests share: a local backend with KEKs, the envelope over
//! it, KEK references and contexts. Both test binaries (`tests/local`, `tests/remote`)
//! include this module.
// Test code: a panic is a test failure. Not every test file uses every fixture.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    dead_code,
    unreachable_pub
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use kekring::lifecycle::NewKek;
use kekring::{BackendId, Classification, Context, Envelope, KekRef, LocalBackend, WrapAlgorithm};

/// `tenant/purpose/v{version}`.
pub fn kref(tenant: &str, purpose: &str, version: u32) -> KekRef {
    KekRef::new(tenant, purpose, version).unwrap()
}

/// The binding of object `object` of tenant `acme` under `purpose`, as a backend sees it.
pub fn binding(
    purpose: &str,
    object: &str,
    class: Classification,
) -> kekring::format::BindingContext {
    kekring::format::BindingContext::new(
        kekring::Name::new("tenant", "acme").unwrap(),
        kekring::Name::new("purpose", purpose).unwrap(),
        object.as_bytes(),
        class,
        b"",
    )
    .unwrap()
}

/// A fresh DEK wrapped and unwrapped through `backend` under `kek` (`aes256-opaque`, as
/// every remote backend offers), compared: the backend works end to end.
pub async fn wrap_unwrap(
    backend: &(impl kekring::KeyBackend + ?Sized),
    kek: &kekring::KekLocator,
    binding: &kekring::format::BindingContext,
) -> Result<(), kekring::BackendError> {
    use kekring::backend::{UnwrapRequest, WrapRequest};
    let dek = kekring::DataKey::generate().unwrap();
    let alg = WrapAlgorithm::Aes256Opaque;
    let w = backend
        .wrap(WrapRequest::new(kek, alg, &dek, binding))
        .await?;
    let back = backend
        .unwrap(UnwrapRequest::new(kek, alg, &w.params, &w.wrapped, binding))
        .await?;
    assert_eq!(back.dek.expose_secret(), dek.expose_secret());
    Ok(())
}

/// A new KEK of `algorithm` made by `backend` (the backends' own tests and faults).
pub async fn new_kek(
    backend: &(impl kekring::KeyBackend + ?Sized),
    algorithm: WrapAlgorithm,
    name: &str,
) -> kekring::KekLocator {
    backend
        .create_kek(&kekring::backend::KekSpec::new(algorithm, name))
        .await
        .unwrap()
        .locator
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

/// A backend that counts the wraps, unwraps and in-backend re-wraps made through it.
#[derive(Debug)]
pub struct Counting<B: ?Sized> {
    pub inner: Arc<B>,
    wraps: AtomicU32,
    unwraps: AtomicU32,
    rewraps: AtomicU32,
}

impl<B: kekring::KeyBackend + ?Sized> Counting<B> {
    pub fn new(inner: Arc<B>) -> Self {
        Self {
            inner,
            wraps: AtomicU32::new(0),
            unwraps: AtomicU32::new(0),
            rewraps: AtomicU32::new(0),
        }
    }

    /// (wraps, unwraps, re-wraps) since the last call, which resets them.
    pub fn counts(&self) -> (u32, u32, u32) {
        (
            self.wraps.swap(0, Ordering::SeqCst),
            self.unwraps.swap(0, Ordering::SeqCst),
            self.rewraps.swap(0, Ordering::SeqCst),
        )
    }
}

#[async_trait::async_trait]
impl<B: kekring::KeyBackend + ?Sized> kekring::KeyBackend for Counting<B> {
    fn info(&self) -> &kekring::BackendInfo {
        self.inner.info()
    }
    fn key_identity(
        &self,
        kek: &kekring::KekLocator,
    ) -> Result<kekring::backend::KeyIdentity, kekring::BackendError> {
        self.inner.key_identity(kek)
    }
    async fn wrap(
        &self,
        req: kekring::backend::WrapRequest<'_>,
    ) -> Result<kekring::backend::WrapResponse, kekring::BackendError> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        self.inner.wrap(req).await
    }
    async fn unwrap(
        &self,
        req: kekring::backend::UnwrapRequest<'_>,
    ) -> Result<kekring::backend::UnwrapResponse, kekring::BackendError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap(req).await
    }
    async fn rewrap(
        &self,
        req: kekring::backend::RewrapRequest<'_>,
    ) -> Result<kekring::backend::WrapResponse, kekring::BackendError> {
        self.rewraps.fetch_add(1, Ordering::SeqCst);
        self.inner.rewrap(req).await
    }
    async fn create_kek(
        &self,
        spec: &kekring::backend::KekSpec,
    ) -> Result<kekring::backend::KekDescriptor, kekring::BackendError> {
        self.inner.create_kek(spec).await
    }
    async fn resolve_kek(
        &self,
        kek: &kekring::KekLocator,
    ) -> Result<kekring::KekLocator, kekring::BackendError> {
        self.inner.resolve_kek(kek).await
    }
    async fn retire_kek(
        &self,
        change: kekring::backend::KekChange<'_>,
    ) -> Result<kekring::backend::ServiceOutcome, kekring::BackendError> {
        self.inner.retire_kek(change).await
    }
    async fn destroy_kek(
        &self,
        change: kekring::backend::KekChange<'_>,
    ) -> Result<kekring::backend::ServiceOutcome, kekring::BackendError> {
        self.inner.destroy_kek(change).await
    }
}
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "aws-kms")]
pub mod net;
#[cfg(feature = "vault-transit")]
pub mod vault;
