//! What a hostile environment or service tries against the KMS backend: a proxy named
//! in the environment, a public key swapped at registration, an answer too large to
//! read. (The Transit side of the last is in `faults`.)
#![allow(clippy::unwrap_used, clippy::panic)]

use kekring::backend::kit::EncapsulateMode;
use kekring::backend::{BackendError, WrapRequest};
use kekring::{DataKey, KekLocator, KeyBackend, WrapAlgorithm};

use crate::aws_kms::{binding, control, fake, localstack, unwrap_as};
use crate::common::{self, env};

/// A public-key pin the caller gives at registration (checked out of band) is checked
/// against the key the service answers with, not replaced by it: a lying service at
/// registration cannot swap in its own ML-KEM key.
#[tokio::test]
async fn a_pin_given_at_registration_is_checked_not_replaced() {
    let b = fake(EncapsulateMode::default()).await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::MlKem768, "pin-given").await;
    let other = common::new_kek(b.as_ref(), WrapAlgorithm::MlKem768, "pin-other").await;
    let (base, _) = kek.as_str().split_once("#pk-sha256=").unwrap();
    let (_, other_pin) = other.as_str().split_once("#pk-sha256=").unwrap();
    let wrong = KekLocator::new(format!("{base}#pk-sha256={other_pin}"));
    let got = b.resolve_kek(&wrong).await;
    assert!(
        matches!(got, Err(BackendError::PublicKeyChanged(_))),
        "{got:?}"
    );
    // The right pin, or none, resolves to the pinned locator.
    assert_eq!(b.resolve_kek(&kek).await.unwrap(), kek);
    assert_eq!(b.resolve_kek(&KekLocator::new(base)).await.unwrap(), kek);
}

/// A proxy named in the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) is not
/// used: to a loopback endpoint it would carry DEKs and Decrypt answers in the clear,
/// and kekring reads no transport setting from the environment. Run in a child process
/// with the variables pointing at a recording relay, which must see nothing.
#[tokio::test]
async fn a_proxy_from_the_environment_is_not_used() {
    const CHILD: &str = "KEKRING_TEST_PROXY_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let b = localstack().await;
        let kek = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "proxy").await;
        common::wrap_unwrap(b.as_ref(), &kek, &binding("p"))
            .await
            .unwrap();
        return;
    }
    let relay = common::net::Recorder::start(&env("KEKRING_TEST_KMS_ENDPOINT")).await;
    let me = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(me);
    cmd.args([
        "--exact",
        "hostile::a_proxy_from_the_environment_is_not_used",
        "--nocapture",
    ])
    .env(CHILD, "1")
    .env_remove("NO_PROXY")
    .env_remove("no_proxy");
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env(v, &relay.url);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        relay.requests().is_empty(),
        "the proxy was used: {:?}",
        relay.requests()
    );
}

/// An answer larger than 1 MiB (a valid one, padded) is refused before it is parsed,
/// as a malformed answer, not retried as an outage; a 503 is retried away.
#[tokio::test]
async fn an_oversized_answer_is_refused_and_an_unavailable_one_retried() {
    let b = fake(EncapsulateMode::Service).await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::MlKem768, "oversize").await;
    let (dek, ctx) = (DataKey::generate().unwrap(), binding("o"));
    let w = b
        .wrap(WrapRequest::new(&kek, WrapAlgorithm::MlKem768, &dek, &ctx))
        .await
        .unwrap();
    control("/fake-api/oversize", &kek, 1).await;
    let got = unwrap_as(b.as_ref(), &kek, WrapAlgorithm::MlKem768, &w, &ctx).await;
    assert!(
        matches!(got, Err(BackendError::MalformedResponse { .. })),
        "{got:?}"
    );
    control("/fake-api/unavailable", &kek, 1).await;
    let back = unwrap_as(b.as_ref(), &kek, WrapAlgorithm::MlKem768, &w, &ctx)
        .await
        .expect("one 503 is retried");
    assert_eq!(back.dek.expose_secret(), dek.expose_secret());
}
