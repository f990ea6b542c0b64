//! Destruction, the last step of a KEK's life, against what can go wrong between its
//! two steps (the ring records the destruction, then the backend deletes the key): a
//! backend key another KEK still uses, a record edited in the stored ring.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kekring::lifecycle::{KeyRing, NewKek, SharedKeyRing};
use kekring::{
    BackendId, Classification, Context, Error, KekRef, KeyBackend, LocalBackend, WrapAlgorithm,
};

use crate::hardening::{T0, env_on};

/// Item 9: destroying a KEK whose backend key another KEK still uses (one key serving
/// two tenants) is refused: deleting it would take the other tenant's objects.
#[tokio::test]
async fn destroy_refuses_a_backend_key_another_kek_still_uses() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::Aes256Kw;
    let loc = local.generate_aes256("shared", alg).unwrap();
    let ring = SharedKeyRing::new(KeyRing::new());
    for tenant in ["acme", "globex"] {
        ring.apply(|r| {
            r.register(
                NewKek::new(
                    KekRef::new(tenant, "docs", 1).unwrap(),
                    BackendId::Local,
                    loc.as_str(),
                    alg,
                )
                .key_id(local.key_identity(&loc).unwrap()),
                T0,
            )
        })
        .unwrap();
    }
    let env = env_on(local.clone(), &ring);
    let globex = Context::new("globex", "docs", "o", Classification::Internal).unwrap();
    let sealed = env.seal(&globex, b"globex data").await.unwrap();
    let acme = KekRef::new("acme", "docs", 1).unwrap();
    ring.apply(|r| r.revoke(&acme, T0 + 1, "acme left"))
        .unwrap();
    let got = env
        .destroy_kek(&acme, Vec::new(), kekring::envelope::RetireOptions::new())
        .await;
    assert!(
        matches!(
            got,
            Err(Error::KeyState(
                kekring::KeyStateError::SharedBackendKey { .. }
            ))
        ),
        "{got:?}"
    );
    assert!(local.contains(&loc));
    assert_eq!(env.open(&globex, &sealed).await.unwrap(), b"globex data");
    // A sample of nothing verifies nothing: refused.
    assert!(matches!(
        env.check_retirement(
            &acme,
            Vec::new(),
            kekring::envelope::RetireOptions::new().sample(0)
        )
        .await,
        Err(Error::Misuse(_))
    ));
}

/// The second step of a destruction deletes the key the ring recorded, not whatever the
/// record's locator names now: a destroyed record whose locator was edited to another
/// tenant's key (in the stored ring, between the two steps) is refused, and that key
/// lives on. Before, `delete_destroyed_kek` took the locator on trust.
#[tokio::test]
async fn deleting_a_destroyed_kek_refuses_a_locator_edited_to_another_key() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::Aes256Kw;
    let (la, lb) = (
        local.generate_aes256("acme-key", alg).unwrap(),
        local.generate_aes256("globex-key", alg).unwrap(),
    );
    let ring = SharedKeyRing::new(KeyRing::new());
    for (tenant, loc) in [("acme", &la), ("globex", &lb)] {
        ring.apply(|r| {
            r.register(
                NewKek::new(
                    KekRef::new(tenant, "docs", 1).unwrap(),
                    BackendId::Local,
                    loc.as_str(),
                    alg,
                )
                .key_id(local.key_identity(loc).unwrap()),
                T0,
            )
        })
        .unwrap();
    }
    let env = env_on(local.clone(), &ring);
    let globex = Context::new("globex", "docs", "o", Classification::Internal).unwrap();
    let sealed = env.seal(&globex, b"globex data").await.unwrap();
    let acme = KekRef::new("acme", "docs", 1).unwrap();
    // The first step only (as if the process stopped before the second).
    ring.apply(|r| r.revoke(&acme, T0 + 1, "acme left"))
        .unwrap();
    ring.apply(|r| r.destroy(&acme, T0 + 2)).unwrap();
    // Whoever can write the stored ring relabels the destroyed record.
    let mut doc: serde_json::Value = serde_json::from_str(&ring.read(|r| r.to_json())).unwrap();
    let mut edited = 0;
    for rec in doc["keks"].as_object_mut().unwrap().values_mut() {
        if rec["locator"] == la.as_str() {
            rec["locator"] = serde_json::Value::from(lb.as_str());
            edited += 1;
        }
    }
    assert_eq!(edited, 1, "{doc}");
    let tampered = SharedKeyRing::new(KeyRing::from_json(&doc.to_string()).unwrap());
    let other = env_on(local.clone(), &tampered);
    let got = other.delete_destroyed_kek(&acme).await;
    assert!(
        matches!(
            got,
            Err(Error::Config(kekring::ConfigError::KeyIdentity { .. }))
        ),
        "{got:?}"
    );
    assert!(local.contains(&lb), "another tenant's key was deleted");
    assert_eq!(other.open(&globex, &sealed).await.unwrap(), b"globex data");
    // Untampered, the second step deletes the destroyed key, and may be repeated.
    env.delete_destroyed_kek(&acme).await.unwrap();
    assert!(!local.contains(&la));
    env.delete_destroyed_kek(&acme).await.unwrap();
}
