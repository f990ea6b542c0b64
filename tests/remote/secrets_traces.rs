//! No key material in traces: every span and event at TRACE level, kekring's own and
//! those of the SDKs below it (aws-sdk-kms, vaultrs, hyper, reqwest), is captured while
//! data keys are generated, wrapped and unwrapped through the local backend, Vault
//! Transit (token and AppRole) and AWS KMS (symmetric and ML-KEM), refusals included;
//! then the capture is searched for every data key handed out and the local KEK in hex,
//! base64 and `Debug` form, and for the Vault token, the AppRole secret id and the AWS
//! secret key. The servers come from `scripts/test.sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::env;

use common::encodings;

use std::io::Write;
use std::sync::{Arc, Mutex};

use kekring::backend::aws_kms::{AwsKmsBackend, AwsKmsConfig, EncapsulateMode};
use kekring::backend::local::{Aes256Kek, LocalKek};
use kekring::backend::vault_transit::{VaultAuth, VaultTransitBackend, VaultTransitConfig};
use kekring::lifecycle::NewKek;
use kekring::secret::Aes256KeyMaterial;
use kekring::{BackendId, Classification, Envelope, KeyBackend, LocalBackend, WrapAlgorithm};
use secrecy::SecretString;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Seals, opens, hands out a data key, and opens under the wrong context, through one
/// KEK; returns the data key handed out.
async fn exercise(env: &Envelope, tenant: &str) -> Vec<u8> {
    let ctx = common::ctx(tenant, "docs", "o1", Classification::Internal);
    let sealed = env.seal(&ctx, b"payload").await.unwrap();
    assert_eq!(env.open(&ctx, &sealed).await.unwrap(), b"payload");
    let other = common::ctx(tenant, "docs", "o2", Classification::Internal);
    assert!(env.open(&other, &sealed).await.is_err());
    let generated = env.generate_data_key(&ctx).await.unwrap();
    let again = env.unwrap_data_key(&ctx, &generated.wrapped).await.unwrap();
    assert_eq!(again.expose_secret(), generated.key.expose_secret());
    generated.key.expose_secret().to_vec()
}

fn envelope(
    backend: Arc<dyn KeyBackend>,
    tenant: &str,
    id: BackendId,
    kek: &str,
    alg: WrapAlgorithm,
) -> Envelope {
    Envelope::builder()
        .backend(backend)
        .kek(NewKek::new(common::kref(tenant, "docs", 1), id, kek, alg))
        .build()
        .unwrap()
}

// One thread: the subscriber is this thread's default, so the tests running beside this
// one in the binary neither reach the capture nor are slowed by it.
#[tokio::test(flavor = "current_thread")]
async fn no_key_material_in_any_span_or_event() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let mut secrets: Vec<Vec<u8>> = Vec::new();

    // Local: a KEK whose bytes are known.
    let kek_bytes: Vec<u8> = (101..=132).collect();
    secrets.push(kek_bytes.clone());
    let local = Arc::new(LocalBackend::new());
    let material = Aes256KeyMaterial::from_slice(&kek_bytes).unwrap();
    local
        .insert(
            "local-kek".into(),
            LocalKek::Aes256(Aes256Kek::new(WrapAlgorithm::Aes256GcmDerived, material).unwrap()),
        )
        .unwrap();
    let e = envelope(
        local,
        "local",
        BackendId::Local,
        "local-kek",
        WrapAlgorithm::Aes256GcmDerived,
    );
    secrets.push(exercise(&e, "local").await);

    // Vault Transit.
    let token = env("KEKRING_TEST_VAULT_TOKEN");
    let transit = Arc::new(
        VaultTransitBackend::new(VaultTransitConfig::new(
            env("KEKRING_TEST_VAULT_ADDR"),
            VaultAuth::Token(SecretString::from(token.clone())),
        ))
        .unwrap(),
    );
    let kek = common::new_kek(transit.as_ref(), WrapAlgorithm::Aes256Opaque, "traces").await;
    let e = envelope(
        transit,
        "transit",
        BackendId::VaultTransit,
        kek.as_str(),
        WrapAlgorithm::Aes256Opaque,
    );
    secrets.push(exercise(&e, "transit").await);

    // Transit again, logged in through AppRole: the secret id and the token it gets.
    let approle = Arc::new(
        VaultTransitBackend::new(VaultTransitConfig::new(
            env("KEKRING_TEST_VAULT_ADDR"),
            VaultAuth::AppRole {
                mount: "approle".into(),
                role_id: env("KEKRING_TEST_VAULT_ROLE_ID"),
                secret_id: SecretString::from(env("KEKRING_TEST_VAULT_SECRET_ID")),
            },
        ))
        .unwrap(),
    );
    let kek = common::new_kek(approle.as_ref(), WrapAlgorithm::Aes256Opaque, "traces").await;
    let e = envelope(
        approle,
        "approle",
        BackendId::VaultTransit,
        kek.as_str(),
        WrapAlgorithm::Aes256Opaque,
    );
    secrets.push(exercise(&e, "approle").await);

    // AWS KMS: symmetric on LocalStack, ML-KEM on the fake through KMS Encapsulate (the
    // KEM's shared secrets cross the wire there; the test cannot know them, it checks
    // the data keys they protect).
    for (endpoint, ak, sk, alg, mode) in [
        (
            env("KEKRING_TEST_KMS_ENDPOINT"),
            "test",
            "test",
            WrapAlgorithm::Aes256Opaque,
            EncapsulateMode::default(),
        ),
        (
            env("KEKRING_TEST_KMS_PQ_ENDPOINT"),
            "AKIDKEKRINGTEST",
            "kekring-test-secret",
            WrapAlgorithm::MlKem768,
            EncapsulateMode::Service,
        ),
    ] {
        let cfg = AwsKmsConfig::new()
            .region(env("KEKRING_TEST_AWS_REGION"))
            .endpoint_url(endpoint)
            .credentials(ak, sk)
            .encapsulate(mode);
        let kms = Arc::new(AwsKmsBackend::new(cfg).await.unwrap());
        let kek = common::new_kek(kms.as_ref(), alg, "traces").await;
        let tenant = format!("kms-{}", alg.name());
        let e = envelope(kms, &tenant, BackendId::AwsKms, kek.as_str(), alg);
        secrets.push(exercise(&e, &tenant).await);
    }

    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    // The capture holds what it should: kekring's spans, with outcomes, for each backend.
    for needle in [
        "kekring.backend",
        "backend=local",
        "backend=vault-transit",
        "backend=aws-kms",
        "outcome=\"ok\"",
        "outcome=\"rejected\"",
        "latency_us",
    ] {
        assert!(
            text.contains(needle),
            "no {needle:?} in the traces:\n{text}"
        );
    }
    for (i, s) in secrets.iter().enumerate() {
        for needle in encodings(s) {
            assert!(
                !text.contains(&needle),
                "secret {i} appears in the traces as {needle}"
            );
        }
    }
    let secret_id = env("KEKRING_TEST_VAULT_SECRET_ID");
    for credential in [token.as_str(), secret_id.as_str(), "kekring-test-secret"] {
        assert!(
            !text.contains(credential),
            "a credential appears in the traces"
        );
    }
}
