//! No key material in `Debug`, `Display` or error chains: format every public type that
//! holds a secret (and the errors the secret-handling paths produce) and search the
//! output for the key bytes in hex (both cases) and base64 (standard and URL-safe).
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::sync::Arc;

use crate::common;

use base64::Engine;
use common::encodings;

use kekring::backend::local::{Aes256Kek, LocalKek};
use kekring::lifecycle::NewKek;
use kekring::secret::Aes256KeyMaterial;
use kekring::{
    BackendId, Classification, Context, DataKey, Envelope, Error, KekRef, LocalBackend, Route,
    WrapAlgorithm,
};

fn assert_clean(what: &str, text: &str, key: &[u8]) {
    for needle in encodings(key) {
        assert!(!text.contains(&needle), "{what} leaks key material: {text}");
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = format!("{e} / {e:?}");
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(" / {c} / {c:?}"));
        cur = c.source();
    }
    s
}

#[tokio::test]
async fn no_secret_in_debug_display_or_errors() {
    let kek_bytes: Vec<u8> = (1..=32).collect();
    let material = Aes256KeyMaterial::from_slice(&kek_bytes).unwrap();
    assert_clean("Aes256KeyMaterial", &format!("{material:?}"), &kek_bytes);
    let kek = Aes256Kek::new(WrapAlgorithm::Aes256Kw, material).unwrap();
    assert_clean("Aes256Kek", &format!("{kek:?}"), &kek_bytes);
    let lk = LocalKek::Aes256(kek);
    assert_clean("LocalKek", &format!("{lk:?} {lk:#?}"), &kek_bytes);

    let local = Arc::new(LocalBackend::new());
    let loc = local
        .import_aes256(
            "k1",
            WrapAlgorithm::Aes256Kw,
            Aes256KeyMaterial::from_slice(&kek_bytes).unwrap(),
        )
        .unwrap();
    assert_clean("LocalBackend", &format!("{local:?} {local:#?}"), &kek_bytes);
    let r = KekRef::new("acme", "docs", 1).unwrap();
    let builder = Envelope::builder()
        .backend(local.clone())
        .kek(NewKek::new(
            r.clone(),
            BackendId::Local,
            loc,
            WrapAlgorithm::Aes256Kw,
        ))
        .route(Route::new(r));
    assert_clean("EnvelopeBuilder", &format!("{builder:?}"), &kek_bytes);
    let env = builder.build().unwrap();
    assert_clean("Envelope", &format!("{env:?} {env:#?}"), &kek_bytes);

    let ctx = Context::new("acme", "docs", "o", Classification::Confidential).unwrap();
    let g = env.generate_data_key(&ctx).await.unwrap();
    let dek = g.key.expose_secret().to_vec();
    for (what, text) in [
        ("GeneratedDataKey", format!("{g:?} {g:#?}")),
        ("DataKey", format!("{:?}", g.key)),
    ] {
        assert_clean(what, &text, &dek);
        assert_clean(what, &text, &kek_bytes);
    }
    let unwrapped = env.unwrap_data_key(&ctx, &g.wrapped).await.unwrap();
    assert_clean("unwrapped DataKey", &format!("{unwrapped:?}"), &dek);

    // Errors on the secret-handling paths: wrong context, tampered wrap, bad key import.
    let other = Context::new("acme", "docs", "p", Classification::Confidential).unwrap();
    let mut errors: Vec<Error> = vec![env.unwrap_data_key(&other, &g.wrapped).await.unwrap_err()];
    let mut tampered = g.wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    errors.push(env.unwrap_data_key(&ctx, &tampered).await.unwrap_err());
    errors.push(DataKey::from_slice(&dek[..31]).unwrap_err());
    errors.push(Aes256KeyMaterial::from_slice(&[0u8; 32]).unwrap_err());
    let sealed = env.seal(&ctx, b"secret payload").await.unwrap();
    let mut bad = sealed.clone();
    let n = bad.len() - 1;
    bad[n] ^= 0x80;
    errors.push(env.open(&ctx, &bad).await.unwrap_err());
    for e in &errors {
        let text = error_chain(e);
        assert_clean("error", &text, &dek);
        assert_clean("error", &text, &kek_bytes);
        assert!(!text.contains("secret payload"));
    }
}

#[test]
fn datakey_debug_is_redacted_and_copies_are_explicit() {
    let k = DataKey::from_array([0xAB; 32]);
    assert_eq!(format!("{k:?}"), "DataKey([REDACTED])");
    // `DataKey: !Clone` is checked by a compile_fail doctest on `DataKey`; `duplicate`
    // is the only, explicit way to copy one.
    let d = k.duplicate();
    assert_eq!(d.expose_secret(), k.expose_secret());
}

#[test]
fn the_leak_check_itself_catches_leaks() {
    let key: Vec<u8> = (100..132).collect();
    for leaky in [
        hex::encode(&key),
        format!("prefix {} suffix", hex::encode_upper(&key)),
        base64::engine::general_purpose::STANDARD.encode(&key),
        format!("{key:?}"),
        hex::encode(&key[10..20]),
    ] {
        let r = std::panic::catch_unwind(|| assert_clean("probe", &leaky, &key));
        assert!(r.is_err(), "leak not detected in {leaky}");
    }
}

#[cfg(feature = "keystore")]
#[tokio::test]
async fn no_secret_of_any_local_key_type_leaks() {
    use kekring::backend::local::{LOCAL_ALGORITHMS, LocalKek};
    use kekring::keystore::{KdfParams, KeyStore, MasterSecret};
    use p256::pkcs8::DecodePrivateKey;

    let dir = std::env::temp_dir().join(format!("kekring-leak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let master = b"master secret that must never print".to_vec();
    let secret = MasterSecret::new(master.clone()).unwrap();
    assert_clean("MasterSecret", &format!("{secret:?}"), &master);
    let mut store = KeyStore::create(dir.join("k.kks"), &secret, KdfParams::MINIMUM).unwrap();
    for alg in LOCAL_ALGORITHMS {
        store.generate(alg.name(), alg).unwrap();
    }
    store.save().unwrap();
    let backend = Arc::new(kekring::keystore::StoreBackend::new(store).unwrap());
    // A second handle on the same file, to look at its keys.
    let store = KeyStore::open(dir.join("k.kks"), &secret).unwrap();
    let mut env = Envelope::builder().backend(backend.clone());
    for alg in LOCAL_ALGORITHMS {
        let r = KekRef::new("acme", alg.name(), 1).unwrap();
        env = env
            .kek(NewKek::new(
                r.clone(),
                BackendId::Local,
                kekring::KekLocator::new(alg.name()),
                alg,
            ))
            .route(Route::new(r));
    }
    let env = env.build().unwrap();

    for alg in LOCAL_ALGORITHMS {
        let kek = store.get(alg.name()).unwrap();
        let (_, material) = kek.export_material().unwrap();
        // The secret part of each export: the raw key or seed, the P-256 scalar, the tail
        // of the RSA PKCS#8 (private exponent and CRT values).
        let secret_bytes: Vec<u8> = match kek.as_ref() {
            LocalKek::P256(_) => p256::SecretKey::from_pkcs8_der(&material)
                .unwrap()
                .to_bytes()
                .to_vec(),
            #[cfg(feature = "local-rsa")]
            LocalKek::Rsa(_) => material[material.len() - 64..].to_vec(),
            _ => material.to_vec(),
        };
        let c = Context::new("acme", alg.name(), "o", Classification::Internal).unwrap();
        let g = env.generate_data_key(&c).await.unwrap();
        let mut bad = g.wrapped.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        let err = env.unwrap_data_key(&c, &bad).await.unwrap_err();
        for (what, text) in [
            ("LocalKek", format!("{kek:?} {kek:#?}")),
            ("LocalBackend", format!("{backend:?}")),
            ("KeyStore", format!("{store:?} {store:#?}")),
            ("Envelope", format!("{env:?}")),
            ("error", error_chain(&err)),
        ] {
            assert_clean(what, &text, &secret_bytes);
            assert_clean(what, &text, g.key.expose_secret());
            assert_clean(what, &text, &master);
        }
    }
    // The key store file holds no key material in the clear.
    let file = std::fs::read(dir.join("k.kks")).unwrap();
    assert_eq!(
        KeyStore::open(dir.join("k.kks"), &secret)
            .unwrap()
            .locators()
            .count(),
        LOCAL_ALGORITHMS.len(),
        "the saved store holds every key"
    );
    for alg in LOCAL_ALGORITHMS {
        let (_, material) = store.get(alg.name()).unwrap().export_material().unwrap();
        let tail = &material[material.len() - 16..];
        assert!(
            !file.windows(16).any(|w| w == tail),
            "{alg} material in the clear"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn no_secret_in_key_ring_audit_trail_or_usage() {
    use kekring::audit::{AuditLog, MemorySink};
    use kekring::lifecycle::{KeyRing, SharedKeyRing};

    let kek_bytes: Vec<u8> = (200..232).collect();
    let local = Arc::new(LocalBackend::new());
    let loc = local
        .import_aes256(
            "arn:aws:kms:eu-west-1:111122223333:key/ffffffff-0000",
            WrapAlgorithm::Aes256GcmDerived,
            Aes256KeyMaterial::from_slice(&kek_bytes).unwrap(),
        )
        .unwrap();
    let sink = Arc::new(MemorySink::new());
    let ring = SharedKeyRing::new(KeyRing::new());
    let r = KekRef::new("acme", "docs", 1).unwrap();
    let env = Envelope::builder()
        .backend(local)
        .kek(NewKek::new(
            r.clone(),
            BackendId::Local,
            loc,
            WrapAlgorithm::Aes256GcmDerived,
        ))
        .key_ring(ring.clone())
        .audit(AuditLog::new(
            sink.clone(),
            kekring::audit::AuditKey::from_bytes([3; 32]),
        ))
        .cache(kekring::CacheConfig::new(60, 10, 10))
        .build()
        .unwrap();
    let ctx = Context::new("acme", "docs", "o", Classification::Restricted).unwrap();
    let g = env.generate_data_key(&ctx).await.unwrap();
    env.unwrap_data_key(&ctx, &g.wrapped).await.unwrap();
    ring.apply(|k| k.revoke(&r, 1, "test")).unwrap();
    let _ = env.unwrap_data_key(&ctx, &g.wrapped).await;
    let audit = serde_json::to_string(&sink.records()).unwrap();
    let ring_json = ring.snapshot().to_json();
    let usage = serde_json::to_string(&env.usage().into_iter().collect::<Vec<_>>()).unwrap();
    assert!(audit.contains("unwrap-denied"), "the denial was audited");
    for (what, text) in [
        ("audit", &audit),
        ("ring", &ring_json),
        ("usage", &usage),
        ("envelope", &format!("{env:?}")),
    ] {
        assert_clean(what, text, &kek_bytes);
        assert_clean(what, text, g.key.expose_secret());
    }
    // Locators appear in the audit trail only as their last 12 characters.
    assert!(!audit.contains("111122223333"));
}

/// The audit chain's key stays out of the records, the chain head, and the `Debug` of
/// the key, the log, a verified chain (which holds the next record's key) and an
/// envelope holding the log.
#[tokio::test]
async fn no_audit_key_in_records_heads_or_debug() {
    use kekring::audit::{self, AuditKey, AuditLog, MemorySink};

    let key_bytes: [u8; 32] = core::array::from_fn(|i| 100 + i as u8);
    let sink = Arc::new(MemorySink::new());
    let log = AuditLog::new(sink.clone(), AuditKey::from_bytes(key_bytes));
    let local = Arc::new(LocalBackend::new());
    let loc = local
        .generate_aes256("k", WrapAlgorithm::Aes256GcmDerived)
        .unwrap();
    let r = KekRef::new("acme", "docs", 1).unwrap();
    let env = Envelope::builder()
        .backend(local)
        .kek(NewKek::new(
            r.clone(),
            BackendId::Local,
            loc,
            WrapAlgorithm::Aes256GcmDerived,
        ))
        .route(Route::new(r))
        .audit(log.clone())
        .build()
        .unwrap();
    let ctx = Context::new("acme", "docs", "o", Classification::Internal).unwrap();
    env.seal(&ctx, b"x").await.unwrap();
    let records = sink.records();
    assert!(!records.is_empty(), "nothing was audited");
    let verified = audit::verify(&AuditKey::from_bytes(key_bytes), &records).unwrap();
    for (what, text) in [
        ("records", serde_json::to_string(&records).unwrap()),
        ("head", serde_json::to_string(&log.head()).unwrap()),
        ("key", format!("{:?}", AuditKey::from_bytes(key_bytes))),
        ("log", format!("{log:?}")),
        ("verified", format!("{verified:?}")),
        ("envelope", format!("{env:?}")),
    ] {
        assert_clean(what, &text, &key_bytes);
    }
}
