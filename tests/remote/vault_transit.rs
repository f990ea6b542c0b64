//! Vault / OpenBao Transit against the real OpenBao dev server that `scripts/test.sh`
//! starts (`scripts/servers.py`). Without its address in the environment these tests
//! fail: they never skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::env;

use std::sync::Arc;
use std::time::Duration;

use common::vault::admin;
use kekring::backend::kit::{CallPolicy, Locator};
use kekring::backend::vault_transit::{
    TransitLocator, VaultAuth, VaultTransitBackend, VaultTransitConfig,
};
use kekring::backend::{KekSpec, UnwrapRequest, WrapRequest};
use kekring::envelope::{BulkItem, BulkItemKind, BulkOptions, ManualClock, RetireOptions};
use kekring::format::BindingContext;
use kekring::lifecycle::NewKek;
use kekring::testing::{Conformance, HookFuture, LocatorFuture};
use kekring::{
    BackendError, BackendId, Classification, DataKey, Envelope, Error, KekLocator, KeyBackend,
    Name, Profile, WrapAlgorithm,
};
use secrecy::SecretString;

pub(crate) fn addr() -> String {
    env("KEKRING_TEST_VAULT_ADDR")
}

fn root() -> SecretString {
    SecretString::from(env("KEKRING_TEST_VAULT_TOKEN"))
}

pub(crate) fn quick() -> CallPolicy {
    CallPolicy::default()
        .attempt_timeout(Duration::from_secs(5))
        .total_timeout(Duration::from_secs(10))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn backend(auth: VaultAuth) -> Arc<VaultTransitBackend> {
    let cfg = VaultTransitConfig::new(addr(), auth).call_policy(quick());
    Arc::new(VaultTransitBackend::new(cfg).unwrap())
}

fn binding(object: &str) -> BindingContext {
    common::binding("docs", object, Classification::Internal)
}

/// Disables a Transit key version the way an operator would: rotate past it and raise
/// the minimum encryption and decryption versions.
fn disable_hook(kek: KekLocator) -> HookFuture {
    Box::pin(async move {
        let key = TransitLocator::parse(&kek).map_err(|e| e.to_string())?;
        let c = admin();
        c.rotate(key.mount(), key.name()).await;
        c.floor(key.mount(), key.name(), key.version() + 1).await;
        Ok(())
    })
}

/// Another spelling of a Transit version: a leading slash and a zero before the version.
fn respelled(kek: KekLocator) -> LocatorFuture {
    Box::pin(async move {
        let (path, v) = kek
            .as_str()
            .rsplit_once("@v")
            .ok_or("not a Transit locator")?;
        Ok(KekLocator::new(format!("/{path}@v0{v}")))
    })
}

/// The suite on a Transit backend's service, with the spy between them.
pub(crate) fn suite(auth: VaultAuth) -> Conformance {
    let cfg = VaultTransitConfig::new(addr(), auth).call_policy(quick());
    let (service, options) = VaultTransitBackend::new(cfg).unwrap().into_parts();
    Conformance::for_service(service, options)
}

#[tokio::test]
async fn transit_conforms_with_a_token() {
    use secrecy::ExposeSecret;
    let down = VaultTransitConfig::new("http://127.0.0.1:1", VaultAuth::Token(root()))
        .call_policy(quick().total_timeout(Duration::from_secs(2)));
    let report = suite(VaultAuth::Token(root()))
        .unknown_kek("transit/no-such-key@v1")
        .unreachable(Arc::new(VaultTransitBackend::new(down).unwrap()))
        .disable_with(disable_hook)
        .respell_with(respelled)
        .secrets(&[root().expose_secret()])
        .run()
        .await
        .expect("Transit conforms");
    report.assert_passed();
    // Transit re-wraps inside the service (versions of one key).
    assert!(report.ran("rewrap"), "{:?}", report.checks());
}

#[tokio::test]
async fn transit_conforms_with_approle() {
    let secret_id = env("KEKRING_TEST_VAULT_SECRET_ID");
    let auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: env("KEKRING_TEST_VAULT_ROLE_ID"),
        secret_id: SecretString::from(secret_id.clone()),
    };
    suite(auth)
        .secrets(&[&secret_id])
        .concurrency(16)
        .run()
        .await
        .expect("Transit conforms under AppRole")
        .assert_passed();
}

#[tokio::test]
async fn bad_credentials_and_missing_permissions_are_typed() {
    let b = backend(VaultAuth::Token(SecretString::from(
        "not-a-token".to_owned(),
    )));
    let kek = b
        .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Opaque, "x"))
        .await
        .unwrap_err();
    assert!(matches!(kek, BackendError::Credentials { .. }), "{kek:?}");
    assert!(!kek.is_transient());

    let wrong_secret = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: env("KEKRING_TEST_VAULT_ROLE_ID"),
        secret_id: SecretString::from("00000000-0000-0000-0000-000000000000".to_owned()),
    };
    let got = backend(wrong_secret)
        .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Opaque, "x"))
        .await
        .unwrap_err();
    assert!(matches!(got, BackendError::Credentials { .. }), "{got:?}");

    // A valid token whose policies do not reach Transit.
    let kek = root_kek("perm").await;
    let weak = admin().token(&["default"], "5m", true).await;
    let b = backend(VaultAuth::Token(SecretString::from(weak)));
    let dek = DataKey::generate().unwrap();
    let got = b
        .wrap(WrapRequest::new(
            &kek,
            WrapAlgorithm::Aes256Opaque,
            &dek,
            &binding("o"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(got, BackendError::PermissionDenied { .. }),
        "{got:?}"
    );
    // Access withdrawn by the key's owner stops an open: no fall-through to another copy.
    assert!(!got.try_next_copy() && !got.is_transient());
}

/// A new Transit KEK, made with the root token.
async fn root_kek(name: &str) -> KekLocator {
    let b = backend(VaultAuth::Token(root()));
    common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, name).await
}

async fn round_trip(b: &VaultTransitBackend, kek: &KekLocator) -> Result<(), BackendError> {
    common::wrap_unwrap(b, kek, &binding("renewal")).await
}

/// A token with the test policy, `ttl` to live.
async fn policy_token(ttl: &str, renewable: bool) -> String {
    admin().token(&["kekring-test"], ttl, renewable).await
}

async fn short_token(renewable: bool) -> SecretString {
    SecretString::from(policy_token("4s", renewable).await)
}

#[tokio::test]
async fn a_renewable_token_is_renewed_before_it_expires() {
    let kek = root_kek("renew").await;
    // Every 0.5 s for 8 s under a 4 s token: only renewal keeps it alive. The backend
    // renews after two thirds of the TTL, so a call lands in the last third (1.33 s)
    // with about 0.8 s to spare for a slow machine.
    let b = backend(VaultAuth::Token(short_token(true).await));
    for _ in 0..16 {
        round_trip(&b, &kek).await.expect("the token was renewed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The same schedule with a token that cannot be renewed fails once it expires:
    // the check above can fail.
    let b = backend(VaultAuth::Token(short_token(false).await));
    let mut failed = None;
    for _ in 0..16 {
        if let Err(e) = round_trip(&b, &kek).await {
            failed = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        matches!(failed, Some(BackendError::Credentials { .. })),
        "{failed:?}"
    );
}

/// A Vault Agent sink: the agent writes a new token to the file when it authenticates
/// again, and the old one stops working. The backend reads the file again when Vault
/// refuses the token it holds; a plain token in the same situation cannot recover.
#[tokio::test]
async fn a_token_file_is_read_again_when_vault_stops_accepting_its_token() {
    let kek = root_kek("sink").await;
    let dir = std::env::temp_dir().join(format!("kekring-vault-sink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sink = dir.join("token");
    let first = policy_token("5m", true).await;
    std::fs::write(&sink, format!("{first}\n")).unwrap();
    let from_file = backend(VaultAuth::TokenFile(sink.clone()));
    let plain = backend(VaultAuth::Token(SecretString::from(first.clone())));
    round_trip(&from_file, &kek).await.unwrap();
    round_trip(&plain, &kek).await.unwrap();

    // The agent authenticates again: a new token in the file, the old one revoked. The
    // call that finds its token refused reads the file again and succeeds.
    let second = policy_token("5m", true).await;
    std::fs::write(&sink, &second).unwrap();
    admin().revoke(&first).await;
    round_trip(&from_file, &kek)
        .await
        .expect("the new token in the file is used");
    let got = round_trip(&plain, &kek).await.unwrap_err();
    assert!(matches!(got, BackendError::Credentials { .. }), "{got:?}");

    // The file's token revoked too: read again, refused again, and typed.
    admin().revoke(&second).await;
    let got = round_trip(&from_file, &kek).await.unwrap_err();
    assert!(matches!(got, BackendError::Credentials { .. }), "{got:?}");
    std::fs::write(&sink, policy_token("5m", true).await).unwrap();
    round_trip(&from_file, &kek).await.unwrap();

    std::fs::remove_file(&sink).unwrap();
    // The held token still works: a missing file matters only at the next login.
    round_trip(&from_file, &kek).await.unwrap();
    let missing = backend(VaultAuth::TokenFile(sink.clone()))
        .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Opaque, "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, BackendError::Credentials { message, .. } if message.contains("token")),
        "{missing:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn rotation_makes_the_next_transit_version_and_both_open() {
    let transit = backend(VaultAuth::Token(root()));
    let v1 = common::new_kek(transit.as_ref(), WrapAlgorithm::Aes256Opaque, "acme-docs").await;
    assert!(v1.as_str().ends_with("@v1"), "{v1:?}");
    let env = Envelope::builder()
        .backend(transit.clone())
        .kek(NewKek::new(
            common::kref("acme", "docs", 1),
            BackendId::VaultTransit,
            v1.clone(),
            WrapAlgorithm::Aes256Opaque,
        ))
        .profile(Profile::default())
        .build()
        .unwrap();
    let ctx = common::ctx("acme", "docs", "o1", Classification::Restricted);
    let old = env.seal(&ctx, b"before").await.unwrap();
    let next = env
        .rotate_kek(
            &Name::new("t", "acme").unwrap(),
            &Name::new("p", "docs").unwrap(),
        )
        .await
        .unwrap();
    let record = env.key_ring().read(|r| r.get(&next).cloned()).unwrap();
    let v2 = TransitLocator::parse(&record.locator).unwrap();
    assert_eq!(v2.version(), 2);
    assert_eq!(
        record.locator.as_str().rsplit_once('@').unwrap().0,
        v1.as_str().rsplit_once('@').unwrap().0,
        "the successor is the next version of the same Transit key"
    );
    let new = env.seal(&ctx, b"after").await.unwrap();
    assert_eq!(env.open(&ctx, &old).await.unwrap(), b"before");
    assert_eq!(env.open(&ctx, &new).await.unwrap(), b"after");
    // Moved to another object, both refuse.
    let other = common::ctx("acme", "docs", "o2", Classification::Restricted);
    assert!(matches!(env.open(&other, &new).await, Err(Error::Crypto)));
}

#[tokio::test]
async fn a_wrap_under_another_version_is_refused_before_transit_sees_it() {
    let transit = backend(VaultAuth::Token(root()));
    let v1 = common::new_kek(transit.as_ref(), WrapAlgorithm::Aes256Opaque, "pin").await;
    let v2 = transit
        .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Opaque, "pin").successor_of(&v1))
        .await
        .unwrap()
        .locator;
    let dek = DataKey::generate().unwrap();
    let ctx = binding("o");
    let w = transit
        .wrap(WrapRequest::new(
            &v2,
            WrapAlgorithm::Aes256Opaque,
            &dek,
            &ctx,
        ))
        .await
        .unwrap();
    assert!(w.wrapped.starts_with(b"vault:v2:"));
    // Transit itself would decrypt a v2 ciphertext under the key name; the v1 KEK must
    // not.
    let got = transit
        .unwrap(UnwrapRequest::new(
            &v1,
            WrapAlgorithm::Aes256Opaque,
            &w.params,
            &w.wrapped,
            &ctx,
        ))
        .await;
    assert!(matches!(got, Err(BackendError::Rejected)), "{got:?}");
}

#[tokio::test]
async fn bulk_rewrap_runs_inside_transit_and_retirement_raises_its_floor() {
    let transit = backend(VaultAuth::Token(root()));
    let counting = Arc::new(common::Counting::new(transit.clone()));
    let v1 = common::new_kek(transit.as_ref(), WrapAlgorithm::Aes256Opaque, "bulk").await;
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let env = Envelope::builder()
        .backend(counting.clone())
        .clock(clock.clone())
        .kek(
            NewKek::new(
                common::kref("acme", "bulk", 1),
                BackendId::VaultTransit,
                v1.clone(),
                WrapAlgorithm::Aes256Opaque,
            )
            .overlap_seconds(60),
        )
        .build()
        .unwrap();
    let mut items = Vec::new();
    let mut keys = std::collections::HashMap::new();
    for i in 0..24 {
        let ctx = common::ctx(
            "acme",
            "bulk",
            &format!("o{i}"),
            Classification::Confidential,
        );
        let item = if i % 2 == 0 {
            let sealed = env
                .seal(&ctx, format!("object {i}").as_bytes())
                .await
                .unwrap();
            BulkItem::new(format!("o{i}"), ctx, BulkItemKind::Sealed, sealed)
        } else {
            let g = env.generate_data_key(&ctx).await.unwrap();
            keys.insert(format!("o{i}"), g.key.expose_secret().to_vec());
            BulkItem::new(format!("o{i}"), ctx, BulkItemKind::WrappedDek, g.wrapped)
        };
        items.push(item);
    }
    let (acme, bulk) = (
        Name::new("t", "acme").unwrap(),
        Name::new("p", "bulk").unwrap(),
    );
    env.rotate_kek(&acme, &bulk).await.unwrap();
    counting.counts();

    let report = env
        .bulk_rewrap(items.clone(), BulkOptions::new(4, 0), |_, _, _| {})
        .await;
    assert_eq!(report.progress.rewrapped, 24, "{:?}", report.results);
    // Transit re-wrapped the 12 sealed objects' DEKs (each new copy unwrapped once and
    // checked against the object's key commitment); the 12 bare wrapped DEKs have no
    // commitment, so kekring unwrapped, wrapped and compared them itself.
    assert_eq!(counting.counts(), (12, 12 + 12 * 2, 12));
    let rewrapped: Vec<BulkItem> = report
        .results
        .into_iter()
        .zip(items)
        .map(|(r, item)| {
            let (bytes, _) = r.outcome.unwrap();
            BulkItem::new(item.id, item.context, item.kind, bytes)
        })
        .collect();

    clock.advance(61);
    let check = env
        .retire_kek(
            &common::kref("acme", "bulk", 1),
            rewrapped.clone(),
            RetireOptions::new(),
        )
        .await
        .unwrap();
    assert!(check.backend_error.is_none(), "{:?}", check.backend_error);
    let key = TransitLocator::parse(&v1).unwrap();
    let config = admin().key(key.mount(), key.name()).await;
    assert_eq!(config["min_decryption_version"], key.version() + 1);
    // Everything still opens: it is all under version 2 now.
    for item in &rewrapped {
        match item.kind {
            BulkItemKind::Sealed => {
                env.open(&item.context, &item.bytes).await.unwrap();
            }
            _ => {
                let key = env
                    .unwrap_data_key(&item.context, &item.bytes)
                    .await
                    .unwrap();
                assert_eq!(key.expose_secret().as_slice(), keys[&item.id].as_slice());
            }
        }
    }
}

/// Transit reads `/transit/k@v01` as `transit/k@v1`: one key, which the key ring must
/// see as one. Before keys were compared by identity, a rotation named the current key
/// as its own successor, and a revoked version came back under the other spelling.
#[tokio::test]
async fn another_spelling_of_a_transit_version_is_the_same_key() {
    let transit = backend(VaultAuth::Token(root()));
    let v1 = root_kek("acme-spelling").await;
    let other = KekLocator::new(format!("/{}", v1.as_str().replace("@v1", "@v01")));
    assert_eq!(
        transit.key_identity(&v1).unwrap(),
        transit.key_identity(&other).unwrap()
    );
    // Transit itself takes both: a wrap under one spelling unwraps under the other.
    let dek = DataKey::generate().unwrap();
    let ctx = binding("o");
    let alg = WrapAlgorithm::Aes256Opaque;
    let w = transit
        .wrap(WrapRequest::new(&v1, alg, &dek, &ctx))
        .await
        .unwrap();
    let back = transit
        .unwrap(UnwrapRequest::new(&other, alg, &w.params, &w.wrapped, &ctx))
        .await
        .unwrap();
    assert_eq!(back.dek.expose_secret(), dek.expose_secret());

    let scope = common::kref("acme", "spelling", 1);
    let env = Envelope::builder()
        .backend(transit.clone())
        .kek(NewKek::new(scope.clone(), BackendId::VaultTransit, v1, alg))
        .build()
        .unwrap();
    let reused = |got: &Result<kekring::KekRef, Error>| {
        matches!(
            got,
            Err(Error::Misuse(kekring::MisuseError::Lifecycle(
                kekring::lifecycle::LifecycleError::KeyReused { .. }
            )))
        )
    };
    let got = env
        .rotate_kek_to(
            scope.tenant(),
            scope.purpose(),
            BackendId::VaultTransit,
            other.clone(),
            alg,
        )
        .await;
    assert!(reused(&got), "{got:?}");
    env.key_ring()
        .apply(|r| r.revoke(&scope, 1_700_000_000, "leaked"))
        .unwrap();
    let got = env
        .register_kek(NewKek::new(
            common::kref("acme", "spelling", 2),
            BackendId::VaultTransit,
            other,
            alg,
        ))
        .await;
    assert!(reused(&got), "{got:?}");
}

/// Derived Transit keys serve many tenants by design: two tenants' KEKs name the same
/// key at version 1. Retiring one tenant's version must not raise the key's floor under
/// the other. Before, the retirement raised `min_decryption_version` on the whole key
/// and the other tenant's objects stopped opening.
#[tokio::test]
async fn retiring_one_tenants_shared_transit_key_leaves_the_others_reads_working() {
    let transit = backend(VaultAuth::Token(root()));
    let shared = root_kek("shared").await;
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let alg = WrapAlgorithm::Aes256Opaque;
    let (acme, globex) = (
        common::kref("acme", "docs", 1),
        common::kref("globex", "docs", 1),
    );
    let env = Envelope::builder()
        .backend(transit.clone())
        .clock(clock.clone())
        .kek(
            NewKek::new(acme.clone(), BackendId::VaultTransit, shared.clone(), alg)
                .overlap_seconds(60),
        )
        .kek(NewKek::new(
            globex.clone(),
            BackendId::VaultTransit,
            shared.clone(),
            alg,
        ))
        .build()
        .unwrap();
    let g = common::ctx("globex", "docs", "o", Classification::Internal);
    let sealed = env.seal(&g, b"globex data").await.unwrap();
    // acme rotates (the next version of the shared key) and retires its v1.
    env.rotate_kek(acme.tenant(), acme.purpose()).await.unwrap();
    clock.set(1_700_000_000 + 61);
    let check = env
        .retire_kek(&acme, Vec::new(), RetireOptions::new())
        .await
        .unwrap();
    assert!(
        matches!(&check.service, Some(kekring::backend::ServiceOutcome::Skipped { reason }) if reason.contains("in use")),
        "{check:?}"
    );
    assert_eq!(env.open(&g, &sealed).await.unwrap(), b"globex data");
    let key = TransitLocator::parse(&shared).unwrap();
    let config = admin().key(key.mount(), key.name()).await;
    assert_eq!(config["min_decryption_version"], 1, "{config}");
}

/// Under AppRole, a token fresh from its login that Vault refuses (403) is refused for
/// what it may do: a permission error at once. Before, when its policies did not even
/// allow `lookup-self`, the refusal was taken for an expired token and retried, a new
/// login each time, until it looked like an outage (a transient error).
#[tokio::test]
async fn a_token_refused_in_the_call_that_issued_it_is_a_permission_error() {
    let kek = root_kek("fresh-refused").await;
    let a = admin();
    let role = format!("kekring-no-policy-{}", std::process::id());
    a.post(
        &format!("auth/approle/role/{role}"),
        serde_json::json!({"token_policies": ["nothing"], "token_no_default_policy": true, "token_ttl": "60s"}),
    )
    .await;
    let role_id = a.get(&format!("auth/approle/role/{role}/role-id")).await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = a
        .post(
            &format!("auth/approle/role/{role}/secret-id"),
            serde_json::json!({}),
        )
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = backend(VaultAuth::AppRole {
        mount: "approle".into(),
        role_id,
        secret_id: SecretString::from(secret_id),
    });
    let got = round_trip(&b, &kek).await.unwrap_err();
    assert!(
        matches!(got, BackendError::PermissionDenied { .. }),
        "{got:?}"
    );
}
