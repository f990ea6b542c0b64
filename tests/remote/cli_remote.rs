//! The `kekring` binary with remote KEKs: a scope rotated from a local KEK to a Transit
//! key (OpenBao) and its files re-wrapped there, a customer's AWS KMS key registered
//! (LocalStack), an ML-KEM KMS key registered (the project's fake), and the exit codes of
//! remote failures. The servers come from `scripts/test.sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use common::env;

use crate::common::cli::{Cli, object_args};
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};

/// The CLI with its remote backends' servers and credentials in the services' own
/// environment variables.
fn remote_cli(name: &str, kms_endpoint: &str, access_key: &str, secret: &str) -> Cli {
    let cli = Cli::new(name)
        .with_env("VAULT_ADDR", &env("KEKRING_TEST_VAULT_ADDR"))
        .with_env("VAULT_TOKEN", &env("KEKRING_TEST_VAULT_TOKEN"))
        .with_env("AWS_ENDPOINT_URL_KMS", kms_endpoint)
        .with_env("AWS_REGION", &env("KEKRING_TEST_AWS_REGION"))
        .with_env("AWS_ACCESS_KEY_ID", access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", secret)
        .without_env("AWS_PROFILE")
        .without_env("AWS_SESSION_TOKEN");
    std::fs::write(cli.work.join("plain.txt"), b"tenant data").unwrap();
    cli
}

fn seal(cli: &Cli, purpose: &str, object: &str, class: &str) {
    let out = cli.path(&format!("objs/{object}"));
    let scope = ["--tenant", "acme", "--purpose", purpose];
    cli.ok(&object_args(
        "seal",
        &scope,
        object,
        class,
        "plain.txt",
        &out,
    ));
}

fn open(cli: &Cli, purpose: &str, object: &str, class: &str) -> Vec<u8> {
    let (input, out) = (
        cli.path(&format!("objs/{object}")),
        cli.path(&format!("{object}.out")),
    );
    let scope = ["--tenant", "acme", "--purpose", purpose];
    cli.ok(&object_args("open", &scope, object, class, &input, &out));
    std::fs::read(out).unwrap()
}

fn kms_client(endpoint: &str, ak: &str, sk: &str) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("KEKRING_TEST_AWS_REGION")))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

async fn kms_key(endpoint: &str, ak: &str, sk: &str, spec: KeySpec, usage: KeyUsageType) -> String {
    kms_client(endpoint, ak, sk)
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_scope_moves_from_a_local_kek_to_transit_and_a_kms_key_is_registered() {
    let kms_endpoint = env("KEKRING_TEST_KMS_ENDPOINT");
    let r = remote_cli("remote", &kms_endpoint, "test", "test");
    r.ok(&[
        "keygen",
        "--tenant",
        "acme",
        "--purpose",
        "docs",
        "--algorithm",
        "aes256-gcm-derived",
    ]);
    seal(&r, "docs", "a", "confidential");

    // The tenant's Transit key (derived, as kekring needs), made by its operator.
    let name = format!("cli-docs-{}", std::process::id());
    common::vault::admin().create_key("transit", &name).await;
    let transit_key = format!("transit/{name}@v1");

    // A Transit key that does not exist is refused before the ring names it: exit 5.
    assert_eq!(
        r.code(&[
            "rotate",
            "--tenant",
            "acme",
            "--purpose",
            "docs",
            "--transit-key",
            "transit/no-such-key@v1",
        ]),
        5
    );
    let out = r.ok(&[
        "rotate",
        "--tenant",
        "acme",
        "--purpose",
        "docs",
        "--transit-key",
        &transit_key,
    ]);
    assert!(out.contains("v2 active"), "{out}");
    seal(&r, "docs", "b", "confidential");
    assert_eq!(open(&r, "docs", "a", "confidential"), b"tenant data");
    assert_eq!(open(&r, "docs", "b", "confidential"), b"tenant data");
    r.ok(&[
        "rewrap",
        "--tenant",
        "acme",
        "--purpose",
        "docs",
        "--dir",
        &r.path("objs"),
    ]);
    for object in ["a", "b"] {
        let inspect = r.ok(&["inspect", "--json", &r.path(&format!("objs/{object}"))]);
        assert!(inspect.contains("vault-transit"), "{object}: {inspect}");
        assert_eq!(open(&r, "docs", object, "confidential"), b"tenant data");
    }

    // Without VAULT_TOKEN the CLI takes the token `vault login` keeps in ~/.vault-token;
    // with neither, Transit cannot be reached: a configuration error (exit 2).
    let vault_home = r.work.join("vault-home");
    std::fs::create_dir_all(&vault_home).unwrap();
    let logged_in = Cli {
        home: r.home.clone(),
        work: r.work.clone(),
        secret: r.secret,
        env: r.env.clone(),
    }
    .without_env("VAULT_TOKEN")
    .without_env("VAULT_ROLE_ID")
    .without_env("VAULT_SECRET_ID")
    .with_env("HOME", vault_home.to_str().unwrap());
    let scope = ["--tenant", "acme", "--purpose", "docs"];
    let (input, out) = (r.path("objs/a"), r.path("a.out"));
    let args = object_args("open", &scope, "a", "confidential", &input, &out);
    assert_eq!(logged_in.code(&args), 2);
    std::fs::write(
        vault_home.join(".vault-token"),
        format!("{}\n", env("KEKRING_TEST_VAULT_TOKEN")),
    )
    .unwrap();
    assert_eq!(
        open(&logged_in, "docs", "a", "confidential"),
        b"tenant data"
    );

    // A customer's KMS key registered as a new scope's KEK.
    let arn = kms_key(
        &kms_endpoint,
        "test",
        "test",
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let region = env("KEKRING_TEST_AWS_REGION");
    r.ok(&[
        "register",
        "--tenant",
        "acme",
        "--purpose",
        "kms",
        "--aws-kms-key",
        &arn,
        "--aws-region",
        &region,
    ]);
    seal(&r, "kms", "c", "restricted");
    assert_eq!(open(&r, "kms", "c", "restricted"), b"tenant data");

    // A disabled key is refused at registration (backend failure, exit 5); a
    // registration without a key is bad usage (exit 2); so is a second KEK for a scope
    // (the key ring refuses: exit 4, as for keygen).
    let disabled = kms_key(
        &kms_endpoint,
        "test",
        "test",
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    kms_client(&kms_endpoint, "test", "test")
        .disable_key()
        .key_id(&disabled)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.code(&[
            "register",
            "--tenant",
            "acme",
            "--purpose",
            "off",
            "--aws-kms-key",
            &disabled,
            "--aws-region",
            &region,
        ]),
        5
    );
    assert_eq!(
        r.code(&["register", "--tenant", "acme", "--purpose", "none"]),
        2
    );
    assert_eq!(
        r.code(&[
            "register",
            "--tenant",
            "acme",
            "--purpose",
            "kms",
            "--aws-kms-key",
            &arn,
            "--aws-region",
            &region,
        ]),
        4
    );
    // Without Vault's address the home's Transit KEKs cannot be reached: a configuration
    // error (exit 2), before any state changes.
    let out = r
        .command(&["rotate", "--tenant", "acme", "--purpose", "docs"])
        .env_remove("VAULT_ADDR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_ml_kem_kms_key_protects_restricted_files() {
    let (ak, sk) = ("AKIDKEKRINGTEST", "kekring-test-secret");
    let kms_endpoint = env("KEKRING_TEST_KMS_PQ_ENDPOINT");
    let r = remote_cli("remote-pq", &kms_endpoint, ak, sk);
    let arn = kms_key(
        &kms_endpoint,
        ak,
        sk,
        KeySpec::MlKem768,
        KeyUsageType::EncapsulateDecapsulate,
    )
    .await;
    r.ok(&[
        "register",
        "--tenant",
        "acme",
        "--purpose",
        "secrets",
        "--aws-kms-key",
        &arn,
        "--aws-region",
        &env("KEKRING_TEST_AWS_REGION"),
        "--remote-algorithm",
        "ml-kem-768",
    ]);
    seal(&r, "secrets", "s", "restricted");
    assert_eq!(open(&r, "secrets", "s", "restricted"), b"tenant data");
    // The same key named with the wrong algorithm is refused by the probe.
    assert_eq!(
        r.code(&[
            "register",
            "--tenant",
            "acme",
            "--purpose",
            "other",
            "--aws-kms-key",
            &arn,
            "--aws-region",
            &env("KEKRING_TEST_AWS_REGION"),
        ]),
        5
    );
}
