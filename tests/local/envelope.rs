//! End-to-end properties of `Envelope` with the local backend: round trips, binding to
//! tenant / object / classification, profile enforcement before any backend call, fail
//! closed on bad input and on lying backends.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use kekring::backend::{
    BackendError, BackendInfo, KekDescriptor, KekSpec, UnwrapRequest, UnwrapResponse, WrapRequest,
    WrapResponse,
};
use kekring::format::{SealedHeader, WrappedDek};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, ContextError, Envelope, Error, KekLocator, KeyBackend,
    KeyStateError, LocalBackend, PolicyError, Route, WrapAlgorithm,
};

const LOCAL_ALGS: [WrapAlgorithm; 3] = [
    WrapAlgorithm::Aes256Kw,
    WrapAlgorithm::Aes256Kwp,
    WrapAlgorithm::Aes256GcmDerived,
];

use crate::common;
use common::kref;

/// An envelope with one local KEK of `alg` for each of tenants `acme` and `globex`
/// (purpose `docs`).
fn envelope(alg: WrapAlgorithm) -> (Envelope, Arc<LocalBackend>) {
    common::local_envelope(&[("acme", "docs", alg), ("globex", "docs", alg)])
}

fn ctx(tenant: &str, object: &str, class: Classification) -> Context {
    common::ctx(tenant, "docs", object, class)
}

#[tokio::test]
async fn round_trip_every_size_and_algorithm() {
    for alg in LOCAL_ALGS {
        let (env, _) = envelope(alg);
        for size in [0usize, 1, 1024, 1 << 20] {
            let pt: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let c = ctx("acme", "obj-1", Classification::Confidential)
                .with_aad(b"v=3")
                .unwrap();
            let sealed = env.seal(&c, &pt).await.unwrap();
            if size >= 16 {
                assert!(
                    !sealed.windows(16).any(|w| w == &pt[..16]),
                    "plaintext visible"
                );
            }
            assert_eq!(env.open(&c, &sealed).await.unwrap(), pt, "{alg} {size}");

            let mut buf = pt.clone();
            let parts = env.seal_in_place(&c, &mut buf).await.unwrap();
            let mut joined = [parts.header.clone(), buf.clone(), parts.tag.to_vec()].concat();
            assert_eq!(env.open(&c, &joined).await.unwrap(), pt);
            let opened = env.open_in_place(&c, &mut joined).await.unwrap();
            assert_eq!(opened, &pt[..]);
        }
    }
}

#[tokio::test]
async fn every_seal_uses_a_fresh_dek_and_nonce() {
    let (env, _) = envelope(WrapAlgorithm::Aes256Kw);
    let c = ctx("acme", "o", Classification::Internal);
    let a = env.seal(&c, b"same").await.unwrap();
    let b = env.seal(&c, b"same").await.unwrap();
    let ha = SealedHeader::decode_prefix(&a).unwrap().0;
    let hb = SealedHeader::decode_prefix(&b).unwrap().0;
    assert_ne!(ha.commitment(), hb.commitment());
    assert_ne!(ha.nonce(), hb.nonce());
    assert_ne!(
        ha.wrapped_dek().entries()[0].wrapped(),
        hb.wrapped_dek().entries()[0].wrapped()
    );
    let g1 = env.generate_data_key(&c).await.unwrap();
    let g2 = env.generate_data_key(&c).await.unwrap();
    assert_ne!(g1.key.expose_secret(), g2.key.expose_secret());
}

#[tokio::test]
async fn generate_and_unwrap_data_key() {
    for alg in LOCAL_ALGS {
        let (env, _) = envelope(alg);
        let c = ctx("acme", "row-7", Classification::Restricted);
        let g = env.generate_data_key(&c).await.unwrap();
        let k = env.unwrap_data_key(&c, &g.wrapped).await.unwrap();
        assert_eq!(k.expose_secret(), g.key.expose_secret());
        // Moved to another row, tenant or classification: refused.
        let other_row = ctx("acme", "row-8", Classification::Restricted);
        assert!(matches!(
            env.unwrap_data_key(&other_row, &g.wrapped).await,
            Err(Error::Crypto)
        ));
        let other_tenant = ctx("globex", "row-7", Classification::Restricted);
        assert!(matches!(
            env.unwrap_data_key(&other_tenant, &g.wrapped).await,
            Err(Error::Context(ContextError::Tenant { .. }))
        ));
        let other_class = ctx("acme", "row-7", Classification::Confidential);
        assert!(matches!(
            env.unwrap_data_key(&other_class, &g.wrapped).await,
            Err(Error::Context(ContextError::Classification { .. }))
        ));
    }
}

#[tokio::test]
async fn flipping_any_bit_is_rejected() {
    for alg in LOCAL_ALGS {
        let (env, _) = envelope(alg);
        let c = ctx("acme", "o", Classification::Confidential);
        let pt = b"seventeen bytes!!";
        let sealed = env.seal(&c, pt).await.unwrap();
        for i in 0..sealed.len() * 8 {
            let mut m = sealed.clone();
            m[i / 8] ^= 1 << (i % 8);
            if let Ok(p) = env.open(&c, &m).await {
                panic!("{alg}: bit {i} flipped and open returned {} bytes", p.len());
            }
            let mut m2 = m.clone();
            assert!(env.open_in_place(&c, &mut m2).await.is_err());
            assert_eq!(
                m2, m,
                "a failed open_in_place must leave the buffer unchanged"
            );
        }
        let g = env.generate_data_key(&c).await.unwrap();
        for i in 0..g.wrapped.len() * 8 {
            let mut m = g.wrapped.clone();
            m[i / 8] ^= 1 << (i % 8);
            assert!(env.unwrap_data_key(&c, &m).await.is_err(), "{alg}: bit {i}");
        }
    }
}

#[tokio::test]
async fn truncation_and_extension_are_rejected() {
    let (env, _) = envelope(WrapAlgorithm::Aes256GcmDerived);
    let c = ctx("acme", "o", Classification::Public);
    let sealed = env.seal(&c, b"hello world").await.unwrap();
    for n in 0..sealed.len() {
        assert!(env.open(&c, &sealed[..n]).await.is_err(), "prefix {n}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(env.open(&c, &longer).await.is_err());
}

#[tokio::test]
async fn blobs_do_not_move_between_tenants_objects_or_classes() {
    let (env, _) = envelope(WrapAlgorithm::Aes256Kw);
    let a = ctx("acme", "invoice-1", Classification::Confidential);
    let sealed = env.seal(&a, b"acme's secret").await.unwrap();

    // Tenant B's context: refused, whatever the header says.
    let b = ctx("globex", "invoice-1", Classification::Confidential);
    assert!(matches!(
        env.open(&b, &sealed).await,
        Err(Error::Context(ContextError::Tenant { .. }))
    ));

    // Rewrite the header to claim tenant B's KEK: the wrap was not made under it and
    // was bound to tenant A's context.
    let obj = kekring::format::SealedObject::decode(&sealed).unwrap();
    let h = obj.header();
    let e = &h.wrapped_dek().entries()[0];
    let forged_entry = kekring::format::WrappedEntry::new(
        e.algorithm(),
        e.backend(),
        kref("globex", "docs", 1),
        e.params().to_vec(),
        e.wrapped().to_vec(),
    )
    .unwrap();
    let forged_dek =
        WrappedDek::new(h.wrapped_dek().classification().clone(), vec![forged_entry]).unwrap();
    let forged_header =
        SealedHeader::new(h.suite(), forged_dek, *h.nonce(), *h.commitment()).encode();
    let forged = [forged_header, obj.ciphertext().to_vec(), obj.tag().to_vec()].concat();
    assert!(matches!(env.open(&b, &forged).await, Err(Error::Crypto)));
    assert!(matches!(
        env.open(&a, &forged).await,
        Err(Error::Context(ContextError::Tenant { .. }))
    ));

    // Another object id of the same tenant.
    let other = ctx("acme", "invoice-2", Classification::Confidential);
    assert!(matches!(
        env.open(&other, &sealed).await,
        Err(Error::Crypto)
    ));

    // Different associated data.
    let aad = a.clone().with_aad(b"x").unwrap();
    assert!(matches!(env.open(&aad, &sealed).await, Err(Error::Crypto)));

    // Relabel: rewrite the classification in the header to Internal and open as Internal.
    let relabelled_dek =
        WrappedDek::new(Classification::Internal, h.wrapped_dek().entries().to_vec()).unwrap();
    let relabelled_header =
        SealedHeader::new(h.suite(), relabelled_dek, *h.nonce(), *h.commitment()).encode();
    let relabelled = [
        relabelled_header,
        obj.ciphertext().to_vec(),
        obj.tag().to_vec(),
    ]
    .concat();
    let internal = ctx("acme", "invoice-1", Classification::Internal);
    assert!(matches!(
        env.open(&internal, &relabelled).await,
        Err(Error::Crypto)
    ));
    assert!(matches!(
        env.open(&internal, &sealed).await,
        Err(Error::Context(ContextError::Classification { .. }))
    ));

    // Still opens under its own context.
    assert_eq!(env.open(&a, &sealed).await.unwrap(), b"acme's secret");
}

#[tokio::test]
async fn header_claims_are_checked_against_configuration() {
    let (env, local) = envelope(WrapAlgorithm::Aes256Kw);
    let c = ctx("acme", "o", Classification::Internal);
    let sealed = env.seal(&c, b"x").await.unwrap();
    let obj = kekring::format::SealedObject::decode(&sealed).unwrap();
    let h = obj.header();
    let e = &h.wrapped_dek().entries()[0];
    let rebuild = |entry| {
        let dek = WrappedDek::new(Classification::Internal, vec![entry]).unwrap();
        let hdr = SealedHeader::new(h.suite(), dek, *h.nonce(), *h.commitment()).encode();
        [hdr, obj.ciphertext().to_vec(), obj.tag().to_vec()].concat()
    };
    // A version nobody configured.
    let unknown = kekring::format::WrappedEntry::new(
        e.algorithm(),
        e.backend(),
        kref("acme", "docs", 9),
        vec![],
        e.wrapped().to_vec(),
    )
    .unwrap();
    assert!(matches!(
        env.open(&c, &rebuild(unknown)).await,
        Err(Error::KeyState(KeyStateError::UnknownKek(_)))
    ));
    // The right KEK name, but a claimed algorithm it is not configured with.
    let wrong_alg = kekring::format::WrappedEntry::new(
        WrapAlgorithm::Aes256Kwp,
        e.backend(),
        e.kek().clone(),
        vec![],
        e.wrapped().to_vec(),
    )
    .unwrap();
    assert!(matches!(
        env.open(&c, &rebuild(wrong_alg)).await,
        Err(Error::Context(ContextError::KekClaim { .. }))
    ));
    // Another purpose of the same tenant.
    let p = Context::new("acme", "billing", "o", Classification::Internal).unwrap();
    assert!(matches!(
        env.open(&p, &sealed).await,
        Err(Error::Context(ContextError::Purpose { .. }))
    ));
    // Sealing for a purpose without a route.
    assert!(matches!(
        env.seal(&p, b"x").await,
        Err(Error::KeyState(KeyStateError::NoWrappingKek { .. }))
    ));
    drop(local);
}

/// A backend that claims RSA-OAEP-3072 (classical), counts calls and can lie about the
/// key it used.
#[derive(Debug)]
struct TestBackend {
    info: BackendInfo,
    calls: AtomicUsize,
    lie: bool,
    inner: Arc<LocalBackend>,
}

impl TestBackend {
    fn new(alg: WrapAlgorithm, lie: bool) -> Self {
        let inner = Arc::new(LocalBackend::new());
        inner
            .generate_aes256("inner", WrapAlgorithm::Aes256GcmDerived)
            .unwrap();
        Self::with_inner(alg, lie, inner)
    }
    fn with_inner(alg: WrapAlgorithm, lie: bool, inner: Arc<LocalBackend>) -> Self {
        Self {
            info: BackendInfo::new(BackendId::Pkcs11, "test backend", vec![alg]),
            calls: AtomicUsize::new(0),
            lie,
            inner,
        }
    }
    fn kind(mut self, id: BackendId) -> Self {
        self.info = BackendInfo::new(id, "test backend", self.info.algorithms.clone());
        self
    }
    fn answer(&self, asked: &KekLocator) -> KekLocator {
        if self.lie {
            KekLocator::new("some-other-key")
        } else {
            asked.clone()
        }
    }
}

#[async_trait]
impl KeyBackend for TestBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn key_identity(
        &self,
        kek: &KekLocator,
    ) -> Result<kekring::backend::KeyIdentity, BackendError> {
        Ok(kekring::backend::KeyIdentity::new(format!(
            "test:{}",
            kek.as_str()
        )))
    }
    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let inner_loc = KekLocator::new("inner");
        let r = self
            .inner
            .wrap(WrapRequest::new(
                &inner_loc,
                WrapAlgorithm::Aes256GcmDerived,
                req.dek,
                req.binding,
            ))
            .await?;
        Ok(WrapResponse::new(
            self.answer(req.kek),
            Vec::new(),
            [r.params, r.wrapped].concat(),
        ))
    }
    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let inner_loc = KekLocator::new("inner");
        let (salt, w) = req.wrapped.split_at(32);
        let r = self
            .inner
            .unwrap(UnwrapRequest::new(
                &inner_loc,
                WrapAlgorithm::Aes256GcmDerived,
                salt,
                w,
                req.binding,
            ))
            .await?;
        Ok(UnwrapResponse::new(self.answer(req.kek), r.dek))
    }
    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        Ok(KekDescriptor::new(KekLocator::new("x"), spec.algorithm))
    }
}

fn opaque_envelope(backend: Arc<TestBackend>, alg: WrapAlgorithm) -> Envelope {
    let r = kref("acme", "docs", 1);
    Envelope::builder()
        .backend(backend)
        .kek(NewKek::new(
            r.clone(),
            BackendId::Pkcs11,
            KekLocator::new("hsm-key-1"),
            alg,
        ))
        .route(Route::new(r))
        .build()
        .unwrap()
}

#[tokio::test]
async fn profile_refuses_before_any_backend_call() {
    let backend = Arc::new(TestBackend::new(WrapAlgorithm::RsaOaepSha256_3072, false));
    // The test backend's RSA "wrap" is a GCM wrap of 60 bytes; the RSA-3072 wrapped length
    // is 384, so only the refusal path is exercised here.
    let env = opaque_envelope(backend.clone(), WrapAlgorithm::RsaOaepSha256_3072);
    for class in [Classification::Restricted, Classification::Confidential] {
        let c = ctx("acme", "o", class);
        let err = env.seal(&c, b"x").await.unwrap_err();
        assert!(
            matches!(err, Error::Policy(PolicyError::AlgorithmNotAllowed { .. })),
            "{err:?}"
        );
        assert!(matches!(
            env.generate_data_key(&c).await,
            Err(Error::Policy(_))
        ));
    }
    assert_eq!(
        backend.calls.load(Ordering::SeqCst),
        0,
        "no backend call before the profile check"
    );
    // A custom label the profile does not name fails closed, also before any call.
    let pci = ctx("acme", "o", Classification::custom("pci").unwrap());
    assert!(matches!(
        env.seal(&pci, b"x").await,
        Err(Error::Policy(PolicyError::UnknownClassification { .. }))
    ));
    assert_eq!(backend.calls.load(Ordering::SeqCst), 0);
    // Internal data may use a classical KEK: the backend is called.
    let _ = env
        .seal(&ctx("acme", "o", Classification::Internal), b"x")
        .await;
    assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_backend_answering_for_another_key_is_refused() {
    let honest = Arc::new(TestBackend::new(WrapAlgorithm::Aes256Opaque, false));
    let honest_inner = honest.inner.clone();
    let env = opaque_envelope(honest, WrapAlgorithm::Aes256Opaque);
    let c = ctx("acme", "o", Classification::Restricted);
    let sealed = env.seal(&c, b"payload").await.unwrap();
    assert_eq!(env.open(&c, &sealed).await.unwrap(), b"payload");

    let liar = Arc::new(TestBackend::with_inner(
        WrapAlgorithm::Aes256Opaque,
        true,
        honest_inner,
    ));
    let env = opaque_envelope(liar, WrapAlgorithm::Aes256Opaque);
    assert!(matches!(
        env.seal(&c, b"payload").await,
        Err(Error::Backend(BackendError::KeyMismatch { .. }))
    ));
    assert!(matches!(
        env.open(&c, &sealed).await,
        Err(Error::Backend(BackendError::KeyMismatch { .. }))
    ));
}

#[tokio::test]
async fn disaster_recovery_copy_opens_where_only_it_is_configured() {
    let local = Arc::new(LocalBackend::new());
    let p = local
        .generate_aes256("primary", WrapAlgorithm::Aes256Kw)
        .unwrap();
    let dr = local
        .generate_aes256("dr", WrapAlgorithm::Aes256GcmDerived)
        .unwrap();
    let rp = kref("acme", "docs", 1);
    let rd = kref("acme", "docs-dr", 1);
    let env = Envelope::builder()
        .backend(local.clone())
        .kek(NewKek::new(
            rp.clone(),
            BackendId::Local,
            p,
            WrapAlgorithm::Aes256Kw,
        ))
        .kek(NewKek::new(
            rd.clone(),
            BackendId::Local,
            dr.clone(),
            WrapAlgorithm::Aes256GcmDerived,
        ))
        .route(Route::new(rp).with_copy(rd.clone()))
        .build()
        .unwrap();
    let c = ctx("acme", "o", Classification::Confidential);
    let sealed = env.seal(&c, b"replicated").await.unwrap();
    let h = SealedHeader::decode_prefix(&sealed).unwrap().0;
    assert_eq!(h.wrapped_dek().entries().len(), 2);

    // A reader that holds only the DR KEK accepts its copies once told to; without that,
    // a copy under another purpose is refused before any backend call.
    let dr_binding = NewKek::new(rd, BackendId::Local, dr, WrapAlgorithm::Aes256GcmDerived);
    let unconfigured = Envelope::builder()
        .backend(local.clone())
        .kek(dr_binding.clone())
        .build()
        .unwrap();
    assert!(matches!(
        unconfigured.open(&c, &sealed).await,
        Err(Error::Context(ContextError::Purpose { .. }))
    ));
    let dr_only = Envelope::builder()
        .backend(local)
        .kek(dr_binding)
        .accept_copies("acme", "docs", "docs-dr")
        .build()
        .unwrap();
    assert_eq!(dr_only.open(&c, &sealed).await.unwrap(), b"replicated");
}

#[tokio::test]
async fn builder_rejects_bad_configuration() {
    let local = Arc::new(LocalBackend::new());
    let loc = local.generate_aes256("k", WrapAlgorithm::Aes256Kw).unwrap();
    let r = kref("acme", "docs", 1);
    let b = || {
        NewKek::new(
            r.clone(),
            BackendId::Local,
            loc.clone(),
            WrapAlgorithm::Aes256Kw,
        )
    };
    // KEK on a backend that is not configured: a configuration error, not misuse.
    assert!(matches!(
        Envelope::builder().kek(b()).build(),
        Err(Error::Config(kekring::ConfigError::NoBackend(
            BackendId::Local
        )))
    ));
    // Registered twice.
    assert!(
        Envelope::builder()
            .backend(local.clone())
            .kek(b())
            .kek(b())
            .build()
            .is_err()
    );
    // Algorithm the backend does not offer.
    let rsa = NewKek::new(
        r.clone(),
        BackendId::Local,
        loc.clone(),
        WrapAlgorithm::RsaOaepSha256_2048,
    );
    assert!(
        Envelope::builder()
            .backend(local.clone())
            .kek(rsa)
            .build()
            .is_err()
    );
    // Route to an unregistered KEK, and a copy of another tenant.
    assert!(
        Envelope::builder()
            .backend(local.clone())
            .route(Route::new(r.clone()))
            .build()
            .is_err()
    );
    let other = kref("globex", "docs", 1);
    let other_b = NewKek::new(
        other.clone(),
        BackendId::Local,
        loc.clone(),
        WrapAlgorithm::Aes256Kw,
    );
    assert!(
        Envelope::builder()
            .backend(local.clone())
            .kek(b())
            .kek(other_b)
            .route(Route::new(r.clone()).with_copy(other))
            .build()
            .is_err()
    );
    // Two backends of one kind.
    assert!(
        Envelope::builder()
            .backend(local.clone())
            .backend(local)
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn local_kek_is_bound_to_one_algorithm() {
    let local = Arc::new(LocalBackend::new());
    let loc = local.generate_aes256("k", WrapAlgorithm::Aes256Kw).unwrap();
    let r = kref("acme", "docs", 1);
    // Registered in the envelope as KWP, but the key was made for KW: the backend refuses.
    let env = Envelope::builder()
        .backend(local)
        .kek(NewKek::new(
            r.clone(),
            BackendId::Local,
            loc,
            WrapAlgorithm::Aes256Kwp,
        ))
        .route(Route::new(r))
        .build()
        .unwrap();
    assert!(matches!(
        env.seal(&ctx("acme", "o", Classification::Public), b"x")
            .await,
        Err(Error::Backend(BackendError::UnsupportedAlgorithm { .. }))
    ));
}

#[tokio::test]
async fn create_kek_makes_usable_keys() {
    let local = Arc::new(LocalBackend::new());
    for alg in LOCAL_ALGS {
        let d = local
            .create_kek(&KekSpec::new(alg, "acme-docs"))
            .await
            .unwrap();
        assert!(local.contains(&d.locator));
        assert_eq!(d.algorithm, alg);
    }
    assert!(
        local
            .create_kek(&KekSpec::new(WrapAlgorithm::XWing, "x"))
            .await
            .is_err()
    );
}

#[test]
fn envelope_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Envelope>();
}

#[tokio::test]
async fn envelope_is_shared_across_tasks() {
    let (env, _) = envelope(WrapAlgorithm::Aes256GcmDerived);
    let mut handles = Vec::new();
    for i in 0..8 {
        let env = env.clone();
        handles.push(tokio::spawn(async move {
            let c = ctx("acme", &format!("o{i}"), Classification::Internal);
            let s = env.seal(&c, &[i as u8; 100]).await.unwrap();
            env.open(&c, &s).await.unwrap()
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), vec![i as u8; 100]);
    }
}

#[tokio::test]
async fn profile_is_checked_for_every_kek_before_any_backend_call() {
    // An allowed primary (symmetric, on "Vault") and a forbidden copy (RSA, on "PKCS#11").
    let primary = Arc::new(
        TestBackend::new(WrapAlgorithm::Aes256Opaque, false).kind(BackendId::VaultTransit),
    );
    let copy = Arc::new(TestBackend::new(WrapAlgorithm::RsaOaepSha256_3072, false));
    let rp = kref("acme", "docs", 1);
    let rc = kref("acme", "docs-dr", 1);
    let env = Envelope::builder()
        .backend(primary.clone())
        .backend(copy.clone())
        .kek(NewKek::new(
            rp.clone(),
            BackendId::VaultTransit,
            KekLocator::new("transit/acme-docs"),
            WrapAlgorithm::Aes256Opaque,
        ))
        .kek(NewKek::new(
            rc.clone(),
            BackendId::Pkcs11,
            KekLocator::new("hsm/acme-dr"),
            WrapAlgorithm::RsaOaepSha256_3072,
        ))
        .route(Route::new(rp).with_copy(rc))
        .build()
        .unwrap();
    let err = env
        .seal(&ctx("acme", "o", Classification::Confidential), b"x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Policy(PolicyError::AlgorithmNotAllowed { .. })),
        "{err:?}"
    );
    assert_eq!(
        primary.calls.load(Ordering::SeqCst),
        0,
        "primary wrapped before the copy was checked"
    );
    assert_eq!(copy.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn two_backends_of_one_kind_as_named_instances() {
    let eu = Arc::new(LocalBackend::new());
    let us = Arc::new(LocalBackend::new());
    let p = eu
        .generate_aes256("eu-key", WrapAlgorithm::Aes256Kw)
        .unwrap();
    let d = us
        .generate_aes256("us-key", WrapAlgorithm::Aes256GcmDerived)
        .unwrap();
    let rp = kref("acme", "docs", 1);
    let rd = kref("acme", "docs-dr", 1);
    let dr_binding = NewKek::new(
        rd.clone(),
        BackendId::Local,
        d,
        WrapAlgorithm::Aes256GcmDerived,
    )
    .instance("local-us");
    let env = Envelope::builder()
        .backend_instance("local-eu", eu.clone())
        .backend_instance("local-us", us.clone())
        .kek(
            NewKek::new(rp.clone(), BackendId::Local, p, WrapAlgorithm::Aes256Kw)
                .instance("local-eu"),
        )
        .kek(dr_binding.clone())
        .route(Route::new(rp).with_copy(rd))
        .build()
        .unwrap();
    let c = ctx("acme", "o", Classification::Restricted);
    let sealed = env.seal(&c, b"two regions").await.unwrap();
    // The US region alone opens it through the copy.
    let us_only = Envelope::builder()
        .backend_instance("local-us", us)
        .kek(dr_binding)
        .accept_copies("acme", "docs", "docs-dr")
        .build()
        .unwrap();
    assert_eq!(us_only.open(&c, &sealed).await.unwrap(), b"two regions");
    // A KEK naming an instance that does not exist, or one of another kind.
    let k = NewKek::new(
        kref("acme", "x", 1),
        BackendId::Local,
        KekLocator::new("k"),
        WrapAlgorithm::Aes256Kw,
    );
    assert!(matches!(
        Envelope::builder()
            .backend(eu.clone())
            .kek(k.clone().instance("nowhere"))
            .build(),
        Err(Error::Config(kekring::ConfigError::NoBackendInstance(_)))
    ));
    let hsm = Arc::new(TestBackend::new(WrapAlgorithm::Aes256Kw, false));
    assert!(matches!(
        Envelope::builder()
            .backend_instance("hsm", hsm)
            .kek(k.instance("hsm"))
            .build(),
        Err(Error::Config(kekring::ConfigError::BackendKind { .. }))
    ));
}

#[tokio::test]
async fn open_detached_matches_seal_in_place() {
    let (env, _) = envelope(WrapAlgorithm::Aes256GcmDerived);
    let c = ctx("acme", "o", Classification::Internal);
    let pt = vec![7u8; 5000];
    let mut buf = pt.clone();
    let parts = env.seal_in_place(&c, &mut buf).await.unwrap();
    assert_ne!(buf, pt);
    let mut tampered = buf.clone();
    tampered[10] ^= 1;
    let before = tampered.clone();
    assert!(matches!(
        env.open_detached(&c, &parts.header, &mut tampered, &parts.tag)
            .await,
        Err(Error::Crypto)
    ));
    assert_eq!(
        tampered, before,
        "a failed open_detached leaves the buffer unchanged"
    );
    let mut longer_header = parts.header.clone();
    longer_header.push(0);
    assert!(matches!(
        env.open_detached(&c, &longer_header, &mut buf, &parts.tag)
            .await,
        Err(Error::Malformed(_))
    ));
    env.open_detached(&c, &parts.header, &mut buf, &parts.tag)
        .await
        .unwrap();
    assert_eq!(buf, pt);
}

#[test]
fn usage_counts_every_thread() {
    // The counters are kept per thread shard and summed: what four threads did must add
    // up exactly, whichever shards they landed on.
    let (env, _) = envelope(WrapAlgorithm::Aes256GcmDerived);
    let per_thread = 50;
    std::thread::scope(|s| {
        for t in 0..4 {
            let env = &env;
            s.spawn(move || {
                for i in 0..per_thread {
                    let c = ctx("acme", &format!("t{t}-o{i}"), Classification::Internal);
                    let sealed = pollster::block_on(env.seal(&c, b"counted")).unwrap();
                    pollster::block_on(env.open(&c, &sealed)).unwrap();
                }
            });
        }
    });
    let usage = env.usage();
    let acme = usage.get(&kref("acme", "docs", 1)).unwrap();
    assert_eq!(acme.wraps, 4 * per_thread);
    assert_eq!(acme.unwraps, 4 * per_thread);
    assert_eq!(acme.denials, 0);
    assert!(
        usage
            .get(&kref("globex", "docs", 1))
            .is_none_or(|u| u.wraps == 0)
    );
}

#[test]
fn a_kek_added_on_one_thread_is_usable_on_every_other_and_never_twice() {
    // The local key table is copied into per-thread shards: an insert must reach all of
    // them, and a duplicate locator must be refused whichever shard is asked.
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::Aes256GcmDerived;
    let loc = std::thread::scope(|s| {
        s.spawn(|| local.generate_aes256("late", alg).unwrap())
            .join()
            .unwrap()
    });
    let r = kref("acme", "docs", 1);
    let env = Envelope::builder()
        .backend(local.clone())
        .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
        .route(Route::new(r))
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (env, local) = (&env, &local);
            s.spawn(move || {
                let c = ctx("acme", &format!("o{t}"), Classification::Internal);
                let sealed = pollster::block_on(env.seal(&c, b"late kek")).unwrap();
                assert_eq!(
                    pollster::block_on(env.open(&c, &sealed)).unwrap(),
                    b"late kek"
                );
                assert!(local.contains(&KekLocator::new("late")));
                assert!(matches!(
                    local.generate_aes256("late", alg),
                    Err(Error::Misuse(kekring::MisuseError::DuplicateLocator(_)))
                ));
            });
        }
    });
}

/// An in-house backend (a company KMS) identifies itself with an id from the private-use
/// range: written into every wrapped DEK, it opens only where a backend of that id is
/// configured, and reads back from the key ring by its `private-<id>` name.
#[tokio::test]
async fn an_in_house_backend_identifies_itself_with_a_private_id() {
    let id = BackendId::private(0x90).unwrap();
    assert!(BackendId::private(0x20).is_err());
    assert_eq!(BackendId::from_id(0x90).unwrap(), id);
    assert!(BackendId::from_id(0x7f).is_err());
    let backend = Arc::new(TestBackend::new(WrapAlgorithm::Aes256Opaque, false).kind(id));
    let r = kref("acme", "docs", 1);
    let kek = NewKek::new(
        r.clone(),
        id,
        KekLocator::new("company-kms:key-7"),
        WrapAlgorithm::Aes256Opaque,
    );
    let env = Envelope::builder()
        .backend(backend.clone())
        .kek(kek.clone())
        .build()
        .unwrap();
    let c = ctx("acme", "o", Classification::Restricted);
    let sealed = env.seal(&c, b"in house").await.unwrap();
    let (h, _) = SealedHeader::decode_prefix(&sealed).unwrap();
    assert_eq!(h.wrapped_dek().entries()[0].backend(), id);
    assert_eq!(env.open(&c, &sealed).await.unwrap(), b"in house");
    let json = env.key_ring().snapshot().to_json();
    assert!(json.contains("\"private-144\""), "{json}");
    let back = kekring::lifecycle::KeyRing::from_json(&json).unwrap();
    assert_eq!(back.get(&r).unwrap().backend, id);
    // Another private id is another backend.
    let other = Arc::new(
        TestBackend::new(WrapAlgorithm::Aes256Opaque, false)
            .kind(BackendId::private(0x91).unwrap()),
    );
    assert!(matches!(
        Envelope::builder().backend(other).kek(kek).build(),
        Err(Error::Config(kekring::ConfigError::NoBackend(_)))
    ));
}
