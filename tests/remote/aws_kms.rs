//! AWS KMS: symmetric keys against LocalStack's KMS (a real local server that enforces
//! DisableKey, pending deletion and IncorrectKey), and ML-KEM keys at the wire level
//! against the project's own fake of the KMS JSON protocol (`scripts/fake_kms.py`; no
//! local server implements Encapsulate / Decapsulate). `scripts/test.sh` starts both;
//! without their addresses these tests fail, they never skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::env;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::EncapsulationAlgorithmSpec;
use kekring::backend::aws_kms::{AwsKmsBackend, AwsKmsConfig, AwsKmsLocator, EncapsulateMode};
use kekring::backend::kit::CallPolicy;
use kekring::backend::kit::Locator;
use kekring::backend::{KekChange, KekSpec, UnwrapRequest, WrapRequest};
use kekring::format::BindingContext;
use kekring::lifecycle::NewKek;
use kekring::testing::{Conformance, HookFuture, LocatorFuture};
use kekring::{
    BackendError, BackendId, Classification, DataKey, Envelope, Error, KekLocator, KeyBackend,
    Name, Profile, WrapAlgorithm,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FAKE_AK: &str = "AKIDKEKRINGTEST";
const FAKE_SK: &str = "kekring-test-secret";
/// LocalStack does not check signatures: any secret key does, and this one is searched
/// for in the suite's output.
const LOCALSTACK_SK: &str = "localstack-secret-key-e5d1";

pub(crate) fn region() -> String {
    env("KEKRING_TEST_AWS_REGION")
}

pub(crate) fn quick() -> CallPolicy {
    CallPolicy::default()
        .attempt_timeout(Duration::from_secs(10))
        .total_timeout(Duration::from_secs(20))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

pub(crate) async fn localstack() -> Arc<AwsKmsBackend> {
    Arc::new(AwsKmsBackend::new(localstack_config()).await.unwrap())
}

fn localstack_config() -> AwsKmsConfig {
    AwsKmsConfig::new()
        .region(region())
        .endpoint_url(env("KEKRING_TEST_KMS_ENDPOINT"))
        .credentials("test", LOCALSTACK_SK)
        .call_policy(quick())
}

fn fake_config(ak: &str, mode: EncapsulateMode, call: CallPolicy) -> AwsKmsConfig {
    AwsKmsConfig::new()
        .region(region())
        .endpoint_url(env("KEKRING_TEST_KMS_PQ_ENDPOINT"))
        .credentials(ak, FAKE_SK)
        .encapsulate(mode)
        .call_policy(call)
}

/// The suite on a backend's service, with the spy between them.
async fn suite(cfg: AwsKmsConfig) -> Conformance {
    let (service, options) = AwsKmsBackend::new(cfg).await.unwrap().into_parts();
    Conformance::for_service(service, options)
}

/// Another spelling of a KMS key: an alias made for it.
fn alias_for(
    endpoint: String,
    ak: &'static str,
    sk: &'static str,
) -> impl Fn(KekLocator) -> LocatorFuture {
    move |kek| {
        let client = sdk(&endpoint, ak, sk);
        Box::pin(async move {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let alias = format!(
                "alias/kekring-spelling-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            );
            client
                .create_alias()
                .alias_name(&alias)
                .target_key_id(key_id(&kek))
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok(AwsKmsLocator::new(&alias, &region(), None)
                .map_err(|e| e.to_string())?
                .to_locator())
        })
    }
}

async fn fake_with(ak: &str, mode: EncapsulateMode, call: CallPolicy) -> Arc<AwsKmsBackend> {
    Arc::new(
        AwsKmsBackend::new(fake_config(ak, mode, call))
            .await
            .unwrap(),
    )
}

pub(crate) async fn fake(mode: EncapsulateMode) -> Arc<AwsKmsBackend> {
    fake_with(FAKE_AK, mode, quick()).await
}

/// The SDK itself, for what an operator does out of band.
fn sdk(endpoint: &str, ak: &str, sk: &str) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// The key a locator names, as KMS calls take it (without the public-key pin an ML-KEM
/// KEK's locator carries).
fn key_id(kek: &KekLocator) -> String {
    let base = KekLocator::new(kek.as_str().split("#pk-sha256=").next().unwrap());
    AwsKmsLocator::parse(&base).unwrap().key().to_owned()
}

fn disable_on(
    endpoint: String,
    ak: &'static str,
    sk: &'static str,
) -> impl Fn(KekLocator) -> HookFuture {
    move |kek| {
        let client = sdk(&endpoint, ak, sk);
        Box::pin(async move {
            client
                .disable_key()
                .key_id(key_id(&kek))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        })
    }
}

fn unreachable_config() -> AwsKmsConfig {
    AwsKmsConfig::new()
        .region(region())
        .endpoint_url("http://127.0.0.1:1")
        .credentials("test", "test")
        .call_policy(quick().total_timeout(Duration::from_secs(2)))
}

pub(crate) fn binding(object: &str) -> BindingContext {
    common::binding("docs", object, Classification::Restricted)
}

/// Unwraps `w` under `kek`.
pub(crate) async fn unwrap_as(
    b: &dyn KeyBackend,
    kek: &KekLocator,
    alg: WrapAlgorithm,
    w: &kekring::backend::WrapResponse,
    ctx: &BindingContext,
) -> Result<kekring::backend::UnwrapResponse, BackendError> {
    b.unwrap(UnwrapRequest::new(kek, alg, &w.params, &w.wrapped, ctx))
        .await
}

/// A test-only control call to the fake (`/fake-api/...`), for one key only, so that
/// the tests running beside it see no fault.
pub(crate) async fn control(path: &str, kek: &KekLocator, count: u32) {
    let endpoint = env("KEKRING_TEST_KMS_PQ_ENDPOINT");
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(hostport).await.unwrap();
    let body = format!("{{\"count\": {count}, \"key\": \"{}\"}}", key_id(kek));
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
        "{out}"
    );
}

#[tokio::test]
async fn symmetric_kms_keys_conform_against_localstack() {
    let unknown = format!(
        "aws-kms:{r}:arn:aws:kms:{r}:000000000000:key/00000000-0000-4000-8000-000000000000",
        r = region()
    );
    let endpoint = env("KEKRING_TEST_KMS_ENDPOINT");
    suite(localstack_config())
        .await
        .algorithms(&[WrapAlgorithm::Aes256Opaque])
        .unknown_kek(unknown)
        .unreachable(Arc::new(
            AwsKmsBackend::new(unreachable_config()).await.unwrap(),
        ))
        .disable_with(disable_on(endpoint.clone(), "test", "test"))
        .respell_with(alias_for(endpoint, "test", "test"))
        .secrets(&[LOCALSTACK_SK])
        .run()
        .await
        .expect("AWS KMS (LocalStack) conforms")
        .assert_passed();
}

/// LocalStack answers Encrypt with an RSA key with a blob of its own (it does no RSA), so
/// RSA keys are tested against the project's fake, which does RSA-OAEP as KMS does.
#[tokio::test]
async fn rsa_kms_keys_conform_against_the_fake_through_an_intermediate_key() {
    let endpoint = env("KEKRING_TEST_KMS_PQ_ENDPOINT");
    suite(fake_config(FAKE_AK, EncapsulateMode::default(), quick()))
        .await
        .algorithms(&[
            WrapAlgorithm::RsaOaepSha256Ik2048,
            WrapAlgorithm::RsaOaepSha256Ik3072,
        ])
        .disable_with(disable_on(endpoint.clone(), FAKE_AK, FAKE_SK))
        .respell_with(alias_for(endpoint, FAKE_AK, FAKE_SK))
        .secrets(&[FAKE_SK])
        .concurrency(16)
        .run()
        .await
        .expect("AWS KMS RSA keys (fake) conform")
        .assert_passed();
}

#[tokio::test]
async fn ml_kem_kms_keys_conform_against_the_fake_with_local_encapsulation() {
    let unknown = format!(
        "aws-kms:{r}:arn:aws:kms:{r}:111122223333:key/00000000-0000-4000-8000-000000000000",
        r = region()
    );
    let endpoint = env("KEKRING_TEST_KMS_PQ_ENDPOINT");
    suite(fake_config(FAKE_AK, EncapsulateMode::default(), quick()))
        .await
        .algorithms(&[WrapAlgorithm::MlKem768, WrapAlgorithm::MlKem1024])
        .unknown_kek(unknown)
        .disable_with(disable_on(endpoint.clone(), FAKE_AK, FAKE_SK))
        .respell_with(alias_for(endpoint, FAKE_AK, FAKE_SK))
        .secrets(&[FAKE_SK])
        .wraps_offline()
        .concurrency(16)
        .run()
        .await
        .expect("AWS KMS ML-KEM (fake) conforms")
        .assert_passed();
}

#[tokio::test]
async fn ml_kem_kms_keys_conform_against_the_fake_with_kms_encapsulation() {
    // Through KMS, a disabled key refuses the wrap itself (no wraps_offline).
    suite(fake_config(FAKE_AK, EncapsulateMode::Service, quick()))
        .await
        .algorithms(&[WrapAlgorithm::MlKem768])
        .disable_with(disable_on(
            env("KEKRING_TEST_KMS_PQ_ENDPOINT"),
            FAKE_AK,
            FAKE_SK,
        ))
        .secrets(&[FAKE_SK])
        .concurrency(16)
        .run()
        .await
        .expect("AWS KMS ML-KEM through Encapsulate conforms")
        .assert_passed();
}

#[tokio::test]
async fn implicit_rejection_kms_answers_a_tampered_ciphertext_and_kekring_refuses_it() {
    let b = fake(EncapsulateMode::default()).await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::MlKem768, "ir").await;
    let dek = DataKey::generate().unwrap();
    let ctx = binding("o1");
    let w = b
        .wrap(WrapRequest::new(&kek, WrapAlgorithm::MlKem768, &dek, &ctx))
        .await
        .unwrap();
    let mut tampered = w.params.clone();
    tampered[100] ^= 0x40;
    // KMS itself answers, with a secret unrelated to the real one: no error to go on.
    let client = sdk(&env("KEKRING_TEST_KMS_PQ_ENDPOINT"), FAKE_AK, FAKE_SK);
    let id = key_id(&kek);
    let decap = |ct: Vec<u8>| {
        client
            .decapsulate()
            .key_id(id.clone())
            .shared_secret_ciphertext_blob(Blob::new(ct))
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
    };
    let real = decap(w.params.clone()).await.unwrap();
    let fake_secret = decap(tampered.clone()).await.unwrap();
    assert_ne!(real.shared_secret(), fake_secret.shared_secret());
    // kekring's local wrap check refuses it.
    let got = b
        .unwrap(UnwrapRequest::new(
            &kek,
            WrapAlgorithm::MlKem768,
            &tampered,
            &w.wrapped,
            &ctx,
        ))
        .await;
    assert!(matches!(got, Err(BackendError::Rejected)), "{got:?}");
}

/// The promise: the default profile (which also admits AES-256 KEKs for
/// Restricted data) and the strict post-quantum one (ML-KEM or the hybrid only) both let
/// a KMS ML-KEM KEK protect Restricted data.
#[tokio::test]
async fn restricted_data_may_be_wrapped_under_a_kms_ml_kem_kek_by_default() {
    let b = fake(EncapsulateMode::default()).await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::MlKem768, "acme-secrets").await;
    for profile in [None, Some(Profile::strict_post_quantum())] {
        let mut builder = Envelope::builder().backend(b.clone()).kek(NewKek::new(
            common::kref("acme", "secrets", 1),
            BackendId::AwsKms,
            kek.clone(),
            WrapAlgorithm::MlKem768,
        ));
        if let Some(p) = profile {
            builder = builder.profile(p);
        }
        let env = builder.build().unwrap();
        let ctx = common::ctx("acme", "secrets", "s1", Classification::Restricted);
        let sealed = env.seal(&ctx, b"root credentials").await.unwrap();
        assert_eq!(env.open(&ctx, &sealed).await.unwrap(), b"root credentials");
        let other = common::ctx("acme", "secrets", "s2", Classification::Restricted);
        assert!(matches!(
            env.open(&other, &sealed).await,
            Err(Error::Crypto)
        ));
    }
}

#[tokio::test]
async fn an_answer_naming_another_key_is_refused() {
    for mode in [EncapsulateMode::default(), EncapsulateMode::Service] {
        // No retries: the fault is one answer long.
        let b = fake_with(FAKE_AK, mode, quick().no_retries()).await;
        let kek = common::new_kek(b.as_ref(), WrapAlgorithm::MlKem768, "misname").await;
        let dek = DataKey::generate().unwrap();
        let ctx = binding("o1");
        // Resolve the key and fetch its public key first, so the next answer is the one
        // under test.
        let w = b
            .wrap(WrapRequest::new(&kek, WrapAlgorithm::MlKem768, &dek, &ctx))
            .await
            .unwrap();
        if mode == EncapsulateMode::Service {
            control("/fake-api/misname", &kek, 1).await;
            let got = b
                .wrap(WrapRequest::new(&kek, WrapAlgorithm::MlKem768, &dek, &ctx))
                .await;
            assert!(
                matches!(got, Err(BackendError::KeyMismatch { .. })),
                "{got:?}"
            );
        }
        control("/fake-api/misname", &kek, 1).await;
        let got = unwrap_as(b.as_ref(), &kek, WrapAlgorithm::MlKem768, &w, &ctx).await;
        assert!(
            matches!(got, Err(BackendError::KeyMismatch { .. })),
            "{got:?}"
        );
    }
}

#[tokio::test]
async fn credentials_permissions_and_throttling_are_typed() {
    let create = |b: Arc<AwsKmsBackend>| async move {
        b.create_kek(&KekSpec::new(WrapAlgorithm::MlKem768, "typed"))
            .await
    };
    let unknown = create(fake_with("AKIDUNKNOWN", EncapsulateMode::default(), quick()).await).await;
    assert!(
        matches!(unknown, Err(BackendError::Credentials { .. })),
        "{unknown:?}"
    );

    let kek = create(fake(EncapsulateMode::default()).await)
        .await
        .unwrap()
        .locator;
    let denied = fake_with("AKIDKEKRINGDENY", EncapsulateMode::default(), quick()).await;
    let dek = DataKey::generate().unwrap();
    let ctx = binding("o1");
    let got = denied
        .wrap(WrapRequest::new(&kek, WrapAlgorithm::MlKem768, &dek, &ctx))
        .await;
    assert!(
        matches!(got, Err(BackendError::PermissionDenied { .. })),
        "{got:?}"
    );

    // Two throttled answers are retried away; a lasting throttle ends in a bounded time
    // with the typed error.
    let b = fake(EncapsulateMode::Service).await;
    let w = b
        .wrap(WrapRequest::new(&kek, WrapAlgorithm::MlKem768, &dek, &ctx))
        .await
        .unwrap();
    control("/fake-api/throttle", &kek, 2).await;
    unwrap_as(b.as_ref(), &kek, WrapAlgorithm::MlKem768, &w, &ctx)
        .await
        .expect("two throttled answers are retried");
    let b = fake_with(
        FAKE_AK,
        EncapsulateMode::Service,
        quick()
            .max_attempts(3)
            .backoff(Duration::from_millis(50), Duration::from_millis(100)),
    )
    .await;
    control("/fake-api/throttle", &kek, 100).await;
    let started = Instant::now();
    let got = unwrap_as(b.as_ref(), &kek, WrapAlgorithm::MlKem768, &w, &ctx).await;
    control("/fake-api/throttle", &kek, 0).await;
    assert!(
        matches!(got, Err(BackendError::Throttled { .. })),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn aliases_resolve_to_the_key_arn_and_pending_deletion_fails_closed() {
    let b = localstack().await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "alias").await;
    let client = sdk(&env("KEKRING_TEST_KMS_ENDPOINT"), "test", "test");
    let alias = format!("alias/kekring-{}", std::process::id());
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(key_id(&kek))
        .send()
        .await
        .unwrap();
    let by_alias = AwsKmsLocator::new(&alias, &region(), None)
        .unwrap()
        .to_locator();
    // What a registration records: the alias resolved to its key, so that re-pointing
    // the alias later cannot move the KEK.
    assert_eq!(b.resolve_kek(&by_alias).await.unwrap(), kek);
    let dek = DataKey::generate().unwrap();
    let ctx = binding("o1");
    let w = b
        .wrap(WrapRequest::new(
            &by_alias,
            WrapAlgorithm::Aes256Opaque,
            &dek,
            &ctx,
        ))
        .await
        .unwrap();
    // A wrap through the alias opens under the key's ARN and the other way round.
    let r = unwrap_as(b.as_ref(), &kek, WrapAlgorithm::Aes256Opaque, &w, &ctx)
        .await
        .unwrap();
    assert_eq!(r.dek.expose_secret(), dek.expose_secret());

    b.destroy_kek(KekChange::new(&kek, &[])).await.unwrap();
    let got = unwrap_as(b.as_ref(), &kek, WrapAlgorithm::Aes256Opaque, &w, &ctx).await;
    assert!(
        matches!(got, Err(BackendError::KeyDisabled { .. })),
        "{got:?}"
    );
    // Destroying twice is not an error (a repeat after a crash).
    b.destroy_kek(KekChange::new(&kek, &[])).await.unwrap();
}

#[tokio::test]
async fn a_symmetric_kms_kek_rotates_to_a_new_key_through_the_envelope() {
    let b = localstack().await;
    let v1 = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "acme-docs").await;
    let env = Envelope::builder()
        .backend(b.clone())
        .kek(NewKek::new(
            common::kref("acme", "docs", 1),
            BackendId::AwsKms,
            v1.clone(),
            WrapAlgorithm::Aes256Opaque,
        ))
        .build()
        .unwrap();
    let ctx = common::ctx("acme", "docs", "o1", Classification::Confidential);
    let old = env.seal(&ctx, b"before").await.unwrap();
    let next = env
        .rotate_kek(
            &Name::new("t", "acme").unwrap(),
            &Name::new("p", "docs").unwrap(),
        )
        .await
        .unwrap();
    let v2 = env
        .key_ring()
        .read(|r| r.get(&next).cloned())
        .unwrap()
        .locator;
    assert_ne!(v1, v2);
    assert_eq!(
        AwsKmsLocator::parse(&v2).unwrap().region(),
        AwsKmsLocator::parse(&v1).unwrap().region()
    );
    let new = env.seal(&ctx, b"after").await.unwrap();
    assert_eq!(env.open(&ctx, &old).await.unwrap(), b"before");
    assert_eq!(env.open(&ctx, &new).await.unwrap(), b"after");
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_is_a_credentials_error_not_an_outage() {
    let b = localstack().await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "role").await;
    // The same key through a role in another account: STS refuses (or cannot be
    // reached from here); either way no credentials come back.
    let through_role = AwsKmsLocator::new(
        &key_id(&kek),
        &region(),
        Some("arn:aws:iam::000000000000:role/kekring-none"),
    )
    .unwrap()
    .to_locator();
    let dek = DataKey::generate().unwrap();
    let started = Instant::now();
    let got = b
        .wrap(WrapRequest::new(
            &through_role,
            WrapAlgorithm::Aes256Opaque,
            &dek,
            &binding("o"),
        ))
        .await;
    assert!(
        matches!(got, Err(BackendError::Credentials { .. })),
        "{got:?}"
    );
    let err = got.unwrap_err();
    assert!(!err.is_transient() && !err.try_next_copy());
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A tenant disabling its own KMS key stops its objects from opening, even where a
/// disaster-recovery copy under another KEK exists: the open fails closed instead of
/// falling through. An outage of the same key does fall through (what copies are for).
#[tokio::test]
async fn a_key_disabled_by_its_owner_stops_the_open_and_is_not_bypassed_by_a_copy() {
    use kekring::envelope::Route;
    let kms = localstack().await;
    let primary = common::new_kek(kms.as_ref(), WrapAlgorithm::Aes256Opaque, "owner").await;
    let dr_local = Arc::new(kekring::LocalBackend::new());
    let dr_locator = dr_local
        .generate_aes256("dr", WrapAlgorithm::Aes256GcmDerived)
        .unwrap();
    let (rp, rd) = (
        common::kref("acme", "docs", 1),
        common::kref("acme", "docs-dr", 1),
    );
    let env = Envelope::builder()
        .backend(kms.clone())
        .backend(dr_local.clone())
        .kek(NewKek::new(
            rp.clone(),
            BackendId::AwsKms,
            primary.clone(),
            WrapAlgorithm::Aes256Opaque,
        ))
        .kek(NewKek::new(
            rd.clone(),
            BackendId::Local,
            dr_locator.clone(),
            WrapAlgorithm::Aes256GcmDerived,
        ))
        .route(Route::new(rp).with_copy(rd))
        .build()
        .unwrap();
    let ctx = common::ctx("acme", "docs", "o1", Classification::Confidential);
    let sealed = env.seal(&ctx, b"tenant data").await.unwrap();
    assert_eq!(env.open(&ctx, &sealed).await.unwrap(), b"tenant data");

    // KMS out of reach: the reader falls through to the DR copy.
    let unreachable = Arc::new(AwsKmsBackend::new(unreachable_config()).await.unwrap());
    let cut_off = Envelope::builder()
        .backend(unreachable)
        .backend(dr_local.clone())
        .kek(NewKek::new(
            common::kref("acme", "docs", 1),
            BackendId::AwsKms,
            primary.clone(),
            WrapAlgorithm::Aes256Opaque,
        ))
        .kek(NewKek::new(
            common::kref("acme", "docs-dr", 1),
            BackendId::Local,
            dr_locator.clone(),
            WrapAlgorithm::Aes256GcmDerived,
        ))
        .route(
            Route::new(common::kref("acme", "docs", 1))
                .with_copy(common::kref("acme", "docs-dr", 1)),
        )
        .build()
        .unwrap();
    assert_eq!(cut_off.open(&ctx, &sealed).await.unwrap(), b"tenant data");

    sdk(&env_var_kms(), "test", "test")
        .disable_key()
        .key_id(key_id(&primary))
        .send()
        .await
        .unwrap();
    let got = env.open(&ctx, &sealed).await;
    assert!(
        matches!(got, Err(Error::Backend(BackendError::KeyDisabled { .. }))),
        "{got:?}"
    );
}

fn env_var_kms() -> String {
    env("KEKRING_TEST_KMS_ENDPOINT")
}

/// An alias names no fixed key: registered, it is resolved to the key ARN it names then,
/// so that re-pointing it later moves neither unwraps nor a destruction. Before, an
/// envelope built on the alias followed it: a new backend instance resolved it afresh,
/// unwrapped under the new key (refused) and scheduled the new key's deletion.
#[tokio::test]
async fn an_alias_re_pointed_after_registration_moves_neither_unwrap_nor_destroy() {
    let b = localstack().await;
    let first = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "repoint-1").await;
    let second = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "repoint-2").await;
    let client = sdk(&env("KEKRING_TEST_KMS_ENDPOINT"), "test", "test");
    let alias = format!("alias/kekring-repoint-{}", std::process::id());
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(key_id(&first))
        .send()
        .await
        .unwrap();
    let by_alias = AwsKmsLocator::new(&alias, &region(), None)
        .unwrap()
        .to_locator();
    let scope = common::kref("acme", "repoint", 1);
    let alg = WrapAlgorithm::Aes256Opaque;

    // An alias cannot be registered as it is: it names no fixed key.
    let built = Envelope::builder()
        .backend(b.clone())
        .kek(NewKek::new(
            scope.clone(),
            BackendId::AwsKms,
            by_alias.clone(),
            alg,
        ))
        .build();
    assert!(
        matches!(built, Err(Error::Backend(BackendError::Unresolved(_)))),
        "{built:?}"
    );

    let env = Envelope::builder().backend(b.clone()).build().unwrap();
    env.register_kek(NewKek::new(scope.clone(), BackendId::AwsKms, by_alias, alg))
        .await
        .unwrap();
    let record = env.key_ring().read(|r| r.get(&scope).cloned()).unwrap();
    assert_eq!(record.locator, first);
    assert!(
        first.as_str().ends_with(record.key_id.as_str()),
        "{record:?}"
    );
    let ctx = common::ctx("acme", "repoint", "o", Classification::Internal);
    let sealed = env.seal(&ctx, b"under the first key").await.unwrap();

    client
        .update_alias()
        .alias_name(&alias)
        .target_key_id(key_id(&second))
        .send()
        .await
        .unwrap();
    // Another instance, with a fresh backend that knows nothing of the alias.
    let later = Envelope::builder()
        .backend(localstack().await)
        .key_ring(kekring::lifecycle::SharedKeyRing::new(
            env.key_ring().snapshot(),
        ))
        .build()
        .unwrap();
    assert_eq!(
        later.open(&ctx, &sealed).await.unwrap(),
        b"under the first key"
    );

    later
        .key_ring()
        .apply(|r| r.revoke(&scope, 1_700_000_000, "end of test"))
        .unwrap();
    later
        .destroy_kek(&scope, Vec::new(), kekring::envelope::RetireOptions::new())
        .await
        .unwrap();
    let state = |kek: KekLocator| {
        let client = client.clone();
        async move {
            client
                .describe_key()
                .key_id(key_id(&kek))
                .send()
                .await
                .unwrap()
                .key_metadata()
                .and_then(|m| m.key_state().cloned())
        }
    };
    assert_eq!(
        state(first).await,
        Some(aws_sdk_kms::types::KeyState::PendingDeletion)
    );
    assert_eq!(
        state(second).await,
        Some(aws_sdk_kms::types::KeyState::Enabled)
    );
}

/// A key's ARN and an alias naming it are one key: a revoked KEK does not come back as
/// another scope's or version's through the alias.
#[tokio::test]
async fn a_revoked_kms_key_is_refused_under_an_alias_naming_it() {
    let b = localstack().await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "revoked").await;
    let client = sdk(&env("KEKRING_TEST_KMS_ENDPOINT"), "test", "test");
    let alias = format!("alias/kekring-revoked-{}", std::process::id());
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(key_id(&kek))
        .send()
        .await
        .unwrap();
    let alg = WrapAlgorithm::Aes256Opaque;
    let scope = common::kref("acme", "revoked", 1);
    let env = Envelope::builder()
        .backend(b.clone())
        .kek(NewKek::new(scope.clone(), BackendId::AwsKms, kek, alg))
        .build()
        .unwrap();
    env.key_ring()
        .apply(|r| r.revoke(&scope, 1_700_000_000, "leaked"))
        .unwrap();
    let by_alias = AwsKmsLocator::new(&alias, &region(), None)
        .unwrap()
        .to_locator();
    let got = env
        .register_kek(NewKek::new(
            common::kref("acme", "revoked", 2),
            BackendId::AwsKms,
            by_alias,
            alg,
        ))
        .await;
    assert!(
        matches!(
            got,
            Err(Error::Misuse(kekring::MisuseError::Lifecycle(
                kekring::lifecycle::LifecycleError::KeyReused { .. }
            )))
        ),
        "{got:?}"
    );
}

/// The public key of a KMS ML-KEM KEK is pinned in its locator when it is created: a
/// service that answers another public key later (a swapped key) is refused, and no DEK
/// is encrypted to it. Before pinning, the wrap encapsulated to whatever key KMS
/// answered.
#[tokio::test]
async fn a_swapped_ml_kem_public_key_is_refused() {
    let b = fake(EncapsulateMode::default()).await;
    let alg = WrapAlgorithm::MlKem768;
    let a = common::new_kek(b.as_ref(), alg, "pinned-a").await;
    let other = common::new_kek(b.as_ref(), alg, "pinned-b").await;
    let pin = |l: &KekLocator| l.as_str().split_once("#pk-sha256=").unwrap().1.to_owned();
    assert_ne!(pin(&a), pin(&other));
    let dek = DataKey::generate().unwrap();
    let ctx = binding("o1");
    b.wrap(WrapRequest::new(&a, alg, &dek, &ctx)).await.unwrap();
    // A's key, with the pin B registered: what KMS answering B's public key for A looks
    // like to the backend. A fresh backend, so that nothing is cached.
    let swapped = KekLocator::new(format!("{}#pk-sha256={}", key_locator(&a), pin(&other)));
    let fresh = fake(EncapsulateMode::default()).await;
    let got = fresh
        .wrap(WrapRequest::new(&swapped, alg, &dek, &ctx))
        .await;
    assert!(
        matches!(got, Err(BackendError::PublicKeyChanged(_))),
        "{got:?}"
    );
    // Without a pin there is nothing to check a fetched key against: refused.
    let unpinned = KekLocator::new(key_locator(&a));
    let got = fresh
        .wrap(WrapRequest::new(&unpinned, alg, &dek, &ctx))
        .await;
    assert!(matches!(got, Err(BackendError::Unresolved(_))), "{got:?}");
    // Resolving it pins what KMS answers now.
    assert_eq!(fresh.resolve_kek(&unpinned).await.unwrap(), a);
}

/// A locator without its public-key pin.
fn key_locator(kek: &KekLocator) -> String {
    kek.as_str().split("#pk-sha256=").next().unwrap().to_owned()
}
