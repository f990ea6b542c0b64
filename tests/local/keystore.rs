//! The embedded key store: every algorithm survives a save and reopen; a missing,
//! short or wrong secret, a missing, truncated or tampered file are clear errors and never
//! a fresh store; the KDF parameters are recorded and authenticated; no secret in Debug.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::sync::Arc;

use kekring::backend::local::{LOCAL_ALGORITHMS, LocalKek};
use kekring::keystore::{KdfParams, KeyStore, KeyStoreError, MasterSecret};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, Envelope, KekLocator, KekRef, Route, WrapAlgorithm,
};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kekring-kst-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn secret() -> MasterSecret {
    MasterSecret::new("a long random master secret for tests").unwrap()
}

#[tokio::test]
async fn every_algorithm_survives_save_and_reopen() {
    let d = dir("all");
    let path = d.join("keys.kks");
    let mut store = KeyStore::create(&path, &secret(), KdfParams::MINIMUM).unwrap();
    for alg in LOCAL_ALGORITHMS {
        store.generate(alg.name(), alg).unwrap();
    }
    // A public-only KEK too.
    let ml = store.get("ml-kem-768").unwrap().clone();
    let LocalKek::MlKem(k) = ml.as_ref() else {
        panic!()
    };
    store
        .insert("ml-kem-768-public", LocalKek::MlKem(k.public_only()))
        .unwrap();
    store.save().unwrap();

    // Seal with the keys in memory, open with the keys read back from disk.
    let envelope = |backend: kekring::keystore::StoreBackend| {
        let mut b = Envelope::builder().backend(Arc::new(backend));
        for alg in LOCAL_ALGORITHMS {
            let r = KekRef::new("acme", alg.name(), 1).unwrap();
            b = b
                .kek(NewKek::new(
                    r.clone(),
                    BackendId::Local,
                    KekLocator::new(alg.name()),
                    alg,
                ))
                .route(Route::new(r));
        }
        b.build().unwrap()
    };
    let before = envelope(kekring::keystore::StoreBackend::new(store).unwrap());
    let reopened = KeyStore::open(&path, &secret()).unwrap();
    assert_eq!(reopened.kdf_params(), KdfParams::MINIMUM);
    assert_eq!(reopened.locators().count(), LOCAL_ALGORITHMS.len() + 1);
    assert!(!reopened.get("ml-kem-768-public").unwrap().can_unwrap());
    let after = envelope(kekring::keystore::StoreBackend::new(reopened).unwrap());
    for alg in LOCAL_ALGORITHMS {
        let c = Context::new("acme", alg.name(), "o", Classification::Internal).unwrap();
        let sealed = before.seal(&c, alg.name().as_bytes()).await.unwrap();
        assert_eq!(
            after.open(&c, &sealed).await.unwrap(),
            alg.name().as_bytes()
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn failures_are_errors_never_a_fresh_store() {
    let d = dir("fail");
    let path = d.join("keys.kks");
    // Missing file: NotFound, and nothing is created.
    assert!(matches!(
        KeyStore::open(&path, &secret()),
        Err(KeyStoreError::NotFound(_))
    ));
    assert!(!path.exists());

    let mut store = KeyStore::create(&path, &secret(), KdfParams::MINIMUM).unwrap();
    store
        .generate("k", WrapAlgorithm::Aes256GcmDerived)
        .unwrap();
    store.save().unwrap();
    let good = std::fs::read(&path).unwrap();
    assert!(matches!(
        KeyStore::create(&path, &secret(), KdfParams::MINIMUM),
        Err(KeyStoreError::AlreadyExists(_))
    ));

    // Wrong secret, also through open_or_create: an error, and the file is untouched.
    let wrong = MasterSecret::new("another secret of enough length").unwrap();
    assert!(matches!(
        KeyStore::open(&path, &wrong),
        Err(KeyStoreError::WrongSecretOrTampered)
    ));
    assert!(matches!(
        KeyStore::open_or_create(&path, &wrong, KdfParams::MINIMUM),
        Err(KeyStoreError::WrongSecretOrTampered)
    ));
    assert_eq!(std::fs::read(&path).unwrap(), good);

    // Truncated at every length: malformed (or, past the header, tampered), never Ok.
    for n in (0..good.len()).step_by(7) {
        std::fs::write(&path, &good[..n]).unwrap();
        match KeyStore::open(&path, &secret()) {
            Err(KeyStoreError::Malformed(_) | KeyStoreError::WrongSecretOrTampered) => {}
            other => panic!("truncated to {n}: {other:?}"),
        }
    }
    // Tampered: a flipped bit anywhere (header parameters included) is refused.
    for i in (0..good.len()).step_by(5) {
        let mut t = good.clone();
        t[i] ^= 0x01;
        std::fs::write(&path, &t).unwrap();
        assert!(
            KeyStore::open(&path, &secret()).is_err(),
            "flip at {i} accepted"
        );
    }
    // Trailing bytes.
    std::fs::write(&path, [good.as_slice(), b"x"].concat()).unwrap();
    assert!(matches!(
        KeyStore::open(&path, &secret()),
        Err(KeyStoreError::Malformed(_))
    ));
    std::fs::write(&path, &good).unwrap();
    assert!(KeyStore::open(&path, &secret()).is_ok());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn secrets_and_parameters() {
    assert!(matches!(
        MasterSecret::new("short"),
        Err(KeyStoreError::WeakSecret)
    ));
    assert!(matches!(
        MasterSecret::from_env("KEKRING_TEST_SURELY_UNSET_VARIABLE"),
        Err(KeyStoreError::MissingSecret)
    ));
    let d = dir("params");
    let f = d.join("secret.txt");
    std::fs::write(&f, "a secret read from a file\n").unwrap();
    let from_file = MasterSecret::from_file(&f).unwrap();
    assert_eq!(format!("{from_file:?}"), "MasterSecret([REDACTED])");

    // Parameters below the floor are refused; the recorded ones are read back.
    let weak = KdfParams {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    };
    assert!(matches!(
        KeyStore::create(d.join("weak.kks"), &secret(), weak),
        Err(KeyStoreError::KdfParams(_))
    ));
    let custom = KdfParams {
        m_cost_kib: 20 * 1024,
        t_cost: 3,
        p_cost: 2,
    };
    let path = d.join("custom.kks");
    KeyStore::create(&path, &secret(), custom).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..6], b"KRKS\x02\x01");
    assert_eq!(
        u32::from_be_bytes(bytes[6..10].try_into().unwrap()),
        20 * 1024
    );
    assert_eq!(
        KeyStore::open(&path, &secret()).unwrap().kdf_params(),
        custom
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The store's Debug names locators, never key bytes.
    let mut s = KeyStore::open(&path, &secret()).unwrap();
    s.insert(
        "raw",
        LocalKek::import_material(
            WrapAlgorithm::Aes256Kw,
            kekring::backend::local::MaterialKind::Private,
            &[0x5a; 31]
                .iter()
                .chain(&[0x01])
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap();
    let dbg = format!("{s:?}");
    assert!(dbg.contains("raw") && !dbg.contains("5a5a5a") && !dbg.contains("90, 90"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn concurrent_writers_and_hostile_files() {
    let d = dir("conc");
    let path = d.join("keys.kks");
    let mut a = KeyStore::create(&path, &secret(), KdfParams::MINIMUM).unwrap();
    let mut b = KeyStore::open(&path, &secret()).unwrap();
    b.generate("from-b", WrapAlgorithm::Aes256Kw).unwrap();
    b.save().unwrap();
    // A saving now would drop B's key: refused.
    a.generate("from-a", WrapAlgorithm::Aes256Kw).unwrap();
    assert!(matches!(a.save(), Err(KeyStoreError::Conflict)));
    let mut a = KeyStore::open(&path, &secret()).unwrap();
    a.generate("from-a", WrapAlgorithm::Aes256Kw).unwrap();
    a.save().unwrap();
    assert_eq!(
        KeyStore::open(&path, &secret())
            .unwrap()
            .locators()
            .collect::<Vec<_>>(),
        ["from-a", "from-b"]
    );
    // While another writer holds the lock, a save is refused, not interleaved.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("keys.kks.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    a.generate("later", WrapAlgorithm::Aes256Kw).unwrap();
    assert!(matches!(a.save(), Err(KeyStoreError::Locked)));
    lock.unlock().unwrap();
    a.save().unwrap();

    // In-range edits of the KDF parameters are caught by the AEAD.
    let good = std::fs::read(&path).unwrap();
    for (offset, delta) in [(9usize, 1u8), (13, 1), (17, 1)] {
        let mut t = good.clone();
        t[offset] = t[offset].wrapping_add(delta); // m_cost + 1, t_cost + 1, p_cost + 1
        std::fs::write(&path, &t).unwrap();
        assert!(
            matches!(
                KeyStore::open(&path, &secret()),
                Err(KeyStoreError::WrongSecretOrTampered)
            ),
            "edit at {offset}"
        );
    }
    // Parameters beyond the ceiling are refused before any work is done.
    let mut t = good.clone();
    t[6..10].copy_from_slice(&(512 * 1024u32).to_be_bytes());
    std::fs::write(&path, &t).unwrap();
    assert!(matches!(
        KeyStore::open(&path, &secret()),
        Err(KeyStoreError::KdfParams(_))
    ));
    // An oversized file is refused without reading it all.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(64 * 1024 * 1024 + 1).unwrap();
    assert!(matches!(
        KeyStore::open(&path, &secret()),
        Err(KeyStoreError::Malformed(_))
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

/// A KEK that `Envelope::rotate_kek` creates on a store-backed backend is saved into the
/// key store before the ring names it: objects sealed under it still open after a
/// restart. (A `LocalBackend` copied out of the store, as the envelope once used, created
/// the successor in memory only: the second object was lost with the process.)
#[tokio::test]
async fn a_rotation_survives_a_restart() {
    use kekring::backend::{KekSpec, KeyBackend};
    use kekring::keystore::StoreBackend;
    use kekring::lifecycle::{KeyRing, SharedKeyRing};
    let d = dir("restart");
    let path = d.join("keys.kks");
    let store = KeyStore::create(&path, &secret(), KdfParams::MINIMUM).unwrap();
    let backend = Arc::new(StoreBackend::new(store).unwrap());
    let alg = WrapAlgorithm::MlKem768;
    let v1 = backend
        .create_kek(&KekSpec::new(alg, "acme-docs"))
        .await
        .unwrap();
    let ring = SharedKeyRing::new(KeyRing::new());
    let env = Envelope::builder()
        .backend(backend.clone())
        .key_ring(ring.clone())
        .kek(NewKek::new(
            KekRef::new("acme", "docs", 1).unwrap(),
            BackendId::Local,
            v1.locator,
            alg,
        ))
        .build()
        .unwrap();
    let c = |o: &str| Context::new("acme", "docs", o, Classification::Restricted).unwrap();
    let first = env.seal(&c("first"), b"under v1").await.unwrap();
    let v2 = env
        .rotate_kek(
            &kekring::Name::new("tenant", "acme").unwrap(),
            &kekring::Name::new("purpose", "docs").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(v2.version(), 2);
    let second = env.seal(&c("second"), b"under v2").await.unwrap();
    let ring_json = ring.snapshot().to_json();
    drop(env);
    drop(backend);

    // A new process: the store and the ring read back from disk.
    let store = KeyStore::open(&path, &secret()).unwrap();
    assert_eq!(store.locators().count(), 2, "the successor was not saved");
    let backend = Arc::new(StoreBackend::new(store).unwrap());
    let ring = SharedKeyRing::new(KeyRing::from_json(&ring_json).unwrap());
    let env = Envelope::builder()
        .backend(backend)
        .key_ring(ring)
        .build()
        .unwrap();
    assert_eq!(env.open(&c("first"), &first).await.unwrap(), b"under v1");
    assert_eq!(env.open(&c("second"), &second).await.unwrap(), b"under v2");
    std::fs::remove_dir_all(&d).unwrap();
}
