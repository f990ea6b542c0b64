//! Every local KEK algorithm: round trips at 0 B, 1 KiB and 1 MiB; a wrapped DEK moved
//! to another tenant, object or classification is refused; public-only KEKs wrap and
//! refuse to unwrap; the default profile keeps Restricted data off RSA and P-256.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::sync::{Arc, OnceLock};

use kekring::backend::BackendError;
use kekring::backend::local::{LOCAL_ALGORITHMS, LocalKek};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, ContextError, Envelope, Error, KekRef, LocalBackend,
    PolicyError, Route, WrapAlgorithm,
};

/// One backend holding a KEK of every local algorithm (RSA generation is slow: once).
fn backend() -> &'static Arc<LocalBackend> {
    static B: OnceLock<Arc<LocalBackend>> = OnceLock::new();
    B.get_or_init(|| {
        let b = Arc::new(LocalBackend::new());
        for alg in LOCAL_ALGORITHMS {
            b.generate(alg.name(), alg).unwrap();
        }
        b
    })
}

/// The asymmetric local algorithms compiled in.
fn asymmetric() -> Vec<WrapAlgorithm> {
    LOCAL_ALGORITHMS
        .into_iter()
        .filter(|a| a.family() != kekring::Family::Symmetric256)
        .collect()
}

fn purpose(alg: WrapAlgorithm) -> String {
    alg.name().to_owned()
}

fn envelope_for(tenants: &[&str], backend: Arc<LocalBackend>) -> Envelope {
    envelope_over(tenants, backend, &LOCAL_ALGORITHMS)
}

/// An envelope with a KEK of each of `algorithms` per tenant, named after the algorithm.
fn envelope_over(
    tenants: &[&str],
    backend: Arc<LocalBackend>,
    algorithms: &[WrapAlgorithm],
) -> Envelope {
    let mut b = Envelope::builder().backend(backend);
    for t in tenants {
        for &alg in algorithms {
            let r = KekRef::new(t, &purpose(alg), 1).unwrap();
            b = b
                .kek(NewKek::new(
                    r.clone(),
                    BackendId::Local,
                    kekring::KekLocator::new(alg.name()),
                    alg,
                ))
                .route(Route::new(r));
        }
    }
    b.build().unwrap()
}

fn ctx(tenant: &str, alg: WrapAlgorithm, object: &str, class: Classification) -> Context {
    Context::new(tenant, &purpose(alg), object, class).unwrap()
}

#[tokio::test]
async fn round_trip_every_algorithm_and_size() {
    let env = envelope_for(&["acme"], backend().clone());
    for alg in LOCAL_ALGORITHMS {
        // Internal data allows every family, so every algorithm is exercised.
        let c = ctx("acme", alg, "obj", Classification::Internal);
        for size in [0usize, 1024, 1 << 20] {
            let pt: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
            let sealed = env.seal(&c, &pt).await.unwrap();
            assert_eq!(env.open(&c, &sealed).await.unwrap(), pt, "{alg} {size}");
        }
        let g = env.generate_data_key(&c).await.unwrap();
        let k = env.unwrap_data_key(&c, &g.wrapped).await.unwrap();
        assert_eq!(k.expose_secret(), g.key.expose_secret(), "{alg}");
    }
}

#[tokio::test]
async fn wrapped_deks_do_not_move_for_any_algorithm() {
    // Both tenants' KEKs are the *same* keys, so only the binding can tell them apart.
    let env = envelope_for(&["acme", "globex"], backend().clone());
    for alg in LOCAL_ALGORITHMS {
        let c = ctx("acme", alg, "row-1", Classification::Internal);
        let g = env.generate_data_key(&c).await.unwrap();
        let w = kekring::format::WrappedDek::decode(&g.wrapped).unwrap();

        let other_object = ctx("acme", alg, "row-2", Classification::Internal);
        assert!(
            matches!(
                env.unwrap_data_key(&other_object, &g.wrapped).await,
                Err(Error::Crypto)
            ),
            "{alg}: another object"
        );

        // Relabel the header to tenant globex (whose KEK is the same key): refused by the
        // binding, not by metadata.
        let e = &w.entries()[0];
        let forged = kekring::format::WrappedDek::new(
            w.classification().clone(),
            vec![
                kekring::format::WrappedEntry::new(
                    e.algorithm(),
                    e.backend(),
                    KekRef::new("globex", &purpose(alg), 1).unwrap(),
                    e.params().to_vec(),
                    e.wrapped().to_vec(),
                )
                .unwrap(),
            ],
        )
        .unwrap()
        .encode();
        let globex = ctx("globex", alg, "row-1", Classification::Internal);
        assert!(
            matches!(
                env.unwrap_data_key(&globex, &forged).await,
                Err(Error::Crypto)
            ),
            "{alg}: another tenant"
        );
        assert!(matches!(
            env.unwrap_data_key(&globex, &g.wrapped).await,
            Err(Error::Context(ContextError::Tenant { .. }))
        ));

        // Relabel the classification to Public and open as Public: the binding refuses.
        let relabelled =
            kekring::format::WrappedDek::new(Classification::Public, w.entries().to_vec())
                .unwrap()
                .encode();
        let public = ctx("acme", alg, "row-1", Classification::Public);
        assert!(
            matches!(
                env.unwrap_data_key(&public, &relabelled).await,
                Err(Error::Crypto)
            ),
            "{alg}: another classification"
        );
    }
}

#[tokio::test]
async fn default_profile_keeps_restricted_off_classical_kems() {
    let env = envelope_for(&["acme"], backend().clone());
    for alg in LOCAL_ALGORITHMS {
        let c = ctx("acme", alg, "secret", Classification::Restricted);
        let r = env.seal(&c, b"restricted").await;
        match alg.family() {
            kekring::Family::ClassicalAsymmetric => assert!(
                matches!(
                    r,
                    Err(Error::Policy(PolicyError::AlgorithmNotAllowed { .. }))
                ),
                "{alg} must be refused for Restricted"
            ),
            _ => assert_eq!(env.open(&c, &r.unwrap()).await.unwrap(), b"restricted"),
        }
    }
}

#[tokio::test]
async fn public_only_keks_wrap_but_do_not_unwrap() {
    let full = backend();
    let sealer = Arc::new(LocalBackend::new());
    for alg in asymmetric() {
        let kek = full
            .get_shared(&kekring::KekLocator::new(alg.name()))
            .unwrap();
        let public = match kek.as_ref() {
            #[cfg(feature = "local-rsa")]
            LocalKek::Rsa(k) => LocalKek::Rsa(k.public_only()),
            LocalKek::P256(k) => LocalKek::P256(k.public_only()),
            LocalKek::MlKem(k) => LocalKek::MlKem(k.public_only()),
            LocalKek::Hybrid(k) => LocalKek::Hybrid(k.public_only()),
            other => panic!("unexpected {other:?}"),
        };
        assert!(!public.can_unwrap());
        sealer
            .insert(kekring::KekLocator::new(alg.name()), public)
            .unwrap();
    }
    let seal_only = envelope_over(&["acme"], sealer, &asymmetric());
    let full_env = envelope_for(&["acme"], full.clone());
    for alg in asymmetric() {
        let c = ctx("acme", alg, "o", Classification::Internal);
        let sealed = seal_only
            .seal(&c, b"sealed by a service with no private key")
            .await
            .unwrap();
        assert!(matches!(
            seal_only.open(&c, &sealed).await,
            Err(Error::Backend(BackendError::PublicOnly(_)))
        ));
        assert_eq!(
            full_env.open(&c, &sealed).await.unwrap(),
            b"sealed by a service with no private key"
        );
    }
}

#[tokio::test]
async fn create_kek_works_for_fast_algorithms() {
    let b = Arc::new(LocalBackend::new());
    use kekring::KeyBackend;
    use kekring::backend::KekSpec;
    for alg in [
        WrapAlgorithm::P256EcdhEs,
        WrapAlgorithm::MlKem768,
        WrapAlgorithm::MlKem1024,
    ] {
        let d = b.create_kek(&KekSpec::new(alg, "acme")).await.unwrap();
        assert_eq!(b.get_shared(&d.locator).unwrap().algorithm(), alg);
    }
    assert!(
        b.create_kek(&KekSpec::new(WrapAlgorithm::XWing, "x"))
            .await
            .is_err()
    );
}

#[test]
fn wrong_lengths_and_foreign_material_are_typed_errors() {
    use kekring::MisuseError;
    use kekring::backend::local::{HybridKek, MaterialKind, MlKemKek};
    let invalid = |r: Result<LocalKek, Error>| {
        assert!(
            matches!(r, Err(Error::Misuse(MisuseError::InvalidKey { .. }))),
            "{r:?}"
        );
    };
    invalid(MlKemKek::from_seed(WrapAlgorithm::MlKem768, &[1; 63]).map(LocalKek::MlKem));
    invalid(
        MlKemKek::from_encapsulation_key(WrapAlgorithm::MlKem768, &[1; 1183]).map(LocalKek::MlKem),
    );
    invalid(
        MlKemKek::from_encapsulation_key(WrapAlgorithm::MlKem1024, &[0xff; 1568])
            .map(LocalKek::MlKem),
    );
    invalid(MlKemKek::from_seed(WrapAlgorithm::P256EcdhEs, &[1; 64]).map(LocalKek::MlKem));
    invalid(HybridKek::from_seed(&[1; 31]).map(LocalKek::Hybrid));
    invalid(HybridKek::from_encapsulation_key(&[1; 1249]).map(LocalKek::Hybrid));
    // A valid P-256 point after an ML-KEM key that fails FIPS 203's modulus check.
    let hybrid = backend()
        .get_shared(&kekring::KekLocator::new("p256-ml-kem-768"))
        .unwrap();
    let LocalKek::Hybrid(h) = hybrid.as_ref() else {
        panic!()
    };
    let good = h.encapsulation_key();
    let bad_pq = [vec![0xff; 1184], good[1184..].to_vec()].concat();
    invalid(HybridKek::from_encapsulation_key(&bad_pq).map(LocalKek::Hybrid));
    assert!(HybridKek::from_encapsulation_key(&good).is_ok());
    // Degenerate seeds.
    invalid(MlKemKek::from_seed(WrapAlgorithm::MlKem768, &[0; 64]).map(LocalKek::MlKem));
    invalid(HybridKek::from_seed(&[0; 32]).map(LocalKek::Hybrid));
    // Material for one algorithm imported as another.
    let seed = [3u8; 64];
    invalid(LocalKek::import_material(
        WrapAlgorithm::MlKem1024,
        MaterialKind::Private,
        &seed[..32],
    ));
    invalid(LocalKek::import_material(
        WrapAlgorithm::Aes256Kw,
        MaterialKind::Public,
        &[1; 32],
    ));
    #[cfg(feature = "local-rsa")]
    {
        let rsa3072 = backend()
            .get_shared(&kekring::KekLocator::new("rsa3072-oaep-sha256"))
            .unwrap();
        let (_, der) = rsa3072.export_material().unwrap();
        invalid(LocalKek::import_material(
            WrapAlgorithm::RsaOaepSha256_4096,
            MaterialKind::Private,
            &der,
        ));
    }
    // Without the feature, RSA material is refused as an algorithm not offered.
    #[cfg(not(feature = "local-rsa"))]
    assert!(matches!(
        LocalKek::import_material(
            WrapAlgorithm::RsaOaepSha256_3072,
            MaterialKind::Private,
            &[0x30; 64],
        ),
        Err(Error::Misuse(MisuseError::AlgorithmNotOffered { .. }))
    ));
    // Every algorithm's material round-trips.
    for alg in LOCAL_ALGORITHMS {
        let kek = backend()
            .get_shared(&kekring::KekLocator::new(alg.name()))
            .unwrap();
        let (kind, m) = kek.export_material().unwrap();
        let back = LocalKek::import_material(alg, kind, &m).unwrap();
        assert_eq!(back.export_material().unwrap().1, m, "{alg}");
    }
}
