//! Cross-provider tests (feature `aws-lc`): for every local algorithm, what RustCrypto
//! seals AWS-LC opens and the reverse, for whole objects, streams and wrapped DEKs; the
//! AWS-LC path refuses moved objects and leaves a buffer alone on a failed in-place open;
//! and each backend names its provider.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::io::{Read, Write};
use std::sync::Arc;

use kekring::backend::local::{LOCAL_ALGORITHMS, LocalKek};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, CryptoProvider, Envelope, Error, KekRef, KeyBackend,
    LocalBackend, Route, WrapAlgorithm,
};

fn envelope(provider: CryptoProvider, alg: WrapAlgorithm, material: &LocalKek) -> Envelope {
    let local = Arc::new(LocalBackend::with_crypto_provider(provider));
    let (kind, bytes) = material.export_material().unwrap();
    let kek = LocalKek::import_material(alg, kind, &bytes).unwrap();
    let loc = kekring::KekLocator::new("shared-kek");
    local.insert(loc.clone(), kek).unwrap();
    let r = KekRef::new("acme", "docs", 1).unwrap();
    Envelope::builder()
        .crypto_provider(provider)
        .backend(local)
        .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
        .route(Route::new(r))
        .build()
        .unwrap()
}

fn ctx(object: &str) -> Context {
    // Internal data: the default profile allows every local algorithm.
    Context::new("acme", "docs", object, Classification::Internal).unwrap()
}

#[tokio::test]
async fn each_provider_opens_what_the_other_sealed_for_every_algorithm() {
    for alg in LOCAL_ALGORITHMS {
        let material = LocalKek::generate(alg).unwrap();
        let rc = envelope(CryptoProvider::rust_crypto(), alg, &material);
        let lc = envelope(CryptoProvider::aws_lc(), alg, &material);
        assert!(lc.crypto_provider().name().starts_with("aws-lc"));
        for (from, to, dir) in [
            (&rc, &lc, "rust-crypto -> aws-lc"),
            (&lc, &rc, "aws-lc -> rust-crypto"),
        ] {
            for size in [0usize, 1, 1024, 1 << 20] {
                let pt: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
                let c = ctx("obj-1");
                let sealed = from.seal(&c, &pt).await.unwrap();
                assert_eq!(
                    to.open(&c, &sealed).await.unwrap(),
                    pt,
                    "{alg} {dir} {size}"
                );
                // Moved to another object: refused on both sides.
                assert!(
                    to.open(&ctx("obj-2"), &sealed).await.is_err(),
                    "{alg} {dir}"
                );
            }
            let c = ctx("row-1");
            let g = from.generate_data_key(&c).await.unwrap();
            let k = to.unwrap_data_key(&c, &g.wrapped).await.unwrap();
            assert_eq!(k.expose_secret(), g.key.expose_secret(), "{alg} {dir}");

            // Streams.
            let pt: Vec<u8> = (0..5000u32).map(|i| (i % 241) as u8).collect();
            let mut w = from
                .seal_writer_with_segment_size(&c, Vec::new(), 1024)
                .await
                .unwrap();
            w.write_all(&pt).unwrap();
            let s = w.finish().unwrap();
            let mut r = to.open_reader(&c, s.as_slice()).await.unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, pt, "{alg} {dir} stream");
        }
    }
}

#[tokio::test]
async fn a_fresh_kek_wraps_then_unwraps_on_aws_lc_alone() {
    // Whichever operation reaches a KEK first prepares its AWS-LC key; a wrap first must
    // leave the private half usable for the unwrap after it.
    for alg in LOCAL_ALGORITHMS {
        let material = LocalKek::generate(alg).unwrap();
        let lc = envelope(CryptoProvider::aws_lc(), alg, &material);
        let c = ctx("obj-1");
        let sealed = lc.seal(&c, b"wrap first").await.unwrap();
        assert_eq!(lc.open(&c, &sealed).await.unwrap(), b"wrap first", "{alg}");
    }
}

#[tokio::test]
async fn aws_lc_in_place_open_failure_leaves_the_buffer_alone() {
    let alg = WrapAlgorithm::Aes256GcmDerived;
    let material = LocalKek::generate(alg).unwrap();
    let lc = envelope(CryptoProvider::aws_lc(), alg, &material);
    let c = ctx("obj-1");
    let sealed = lc.seal(&c, b"some payload bytes").await.unwrap();
    let mut bad = sealed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut buf = bad.clone();
    assert!(matches!(
        lc.open_in_place(&c, &mut buf).await,
        Err(Error::Crypto)
    ));
    assert_eq!(buf, bad);
}

#[test]
fn backends_describe_their_provider() {
    let rc = LocalBackend::new();
    let lc = LocalBackend::with_crypto_provider(CryptoProvider::aws_lc());
    assert!(rc.info().description.contains("rust-crypto"));
    assert!(lc.info().description.contains("aws-lc"));
    assert_eq!(lc.crypto_provider(), CryptoProvider::aws_lc());
    assert_eq!(CryptoProvider::default(), CryptoProvider::rust_crypto());
    assert!(!CryptoProvider::rust_crypto().fips());
    assert_eq!(rc.info().fips, kekring::FipsStatus::Unvalidated);
}

#[cfg(not(feature = "aws-lc-fips"))]
#[test]
fn the_non_fips_build_claims_nothing() {
    let lc = LocalBackend::with_crypto_provider(CryptoProvider::aws_lc());
    assert!(!CryptoProvider::aws_lc().fips());
    assert_eq!(CryptoProvider::aws_lc().name(), "aws-lc");
    // What `CryptoProvider::aws_lc_fips` refuses with when the module is not in FIPS mode.
    let e = Error::from(kekring::MisuseError::NotFipsMode);
    assert!(matches!(
        e,
        Error::Misuse(kekring::MisuseError::NotFipsMode)
    ));
    assert_eq!(
        e.to_string(),
        "API misuse: AWS-LC is not running in FIPS mode"
    );
    assert_eq!(lc.info().fips, kekring::FipsStatus::Unvalidated);
}

#[cfg(feature = "aws-lc-fips")]
#[test]
fn the_fips_build_runs_in_fips_mode_and_says_what_is_not_approved() {
    let fips = CryptoProvider::aws_lc_fips().expect("AWS-LC in FIPS mode");
    assert!(fips.fips());
    assert_eq!(fips.name(), "aws-lc-fips");
    assert_eq!(fips, CryptoProvider::aws_lc());
    let lc = LocalBackend::with_crypto_provider(fips);
    match &lc.info().fips {
        kekring::FipsStatus::ModuleInFipsMode { module, unapproved } => {
            assert!(
                module.contains("AWS-LC") && module.contains("FIPS mode"),
                "{module}"
            );
            assert!(unapproved.contains("aes256-gcm-derived"), "{unapproved}");
            assert!(unapproved.contains("key generation"), "{unapproved}");
        }
        other => panic!("a FIPS build must report its module, got {other:?}"),
    }
}
