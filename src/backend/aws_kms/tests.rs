//! Unit tests of the AWS KMS backend: locators, the answers that fit them, identities,
//! configuration refusals and the ML-KEM SPKI parser.

use super::*;
use crate::backend::KeyBackend;

#[test]
fn locators_round_trip_and_bad_ones_are_refused() {
    let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let role = "arn:aws:iam::444455556666:role/kekring";
    let k = AwsKmsLocator::new(arn, "eu-west-1", Some(role)).unwrap();
    let l = k.to_locator();
    assert_eq!(AwsKmsLocator::parse(&l).unwrap(), k);
    assert_eq!(
        AwsKmsLocator::parse(&KekLocator::new("aws-kms:us-east-1:alias/acme"))
            .unwrap()
            .to_locator()
            .as_str(),
        "aws-kms:us-east-1:alias/acme"
    );
    for bad in [
        "alias/acme",
        "aws-kms:alias/acme",
        "aws-kms::alias/acme",
        "aws-kms:US-EAST-1:alias/acme",
        "aws-kms:us-east-1:",
        // An ARN of another region than the locator's.
        "aws-kms:us-east-1:arn:aws:kms:eu-west-1:111122223333:key/x",
        "aws-kms:us-east-1:arn:aws:s3:us-east-1:111122223333:key/x",
        "aws-kms:us-east-1:alias/acme;role=not-a-role",
    ] {
        assert!(
            AwsKmsLocator::parse(&KekLocator::new(bad)).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn an_answered_arn_must_fit_the_locator() {
    let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let fits = |key: &str, answered: &str| {
        AwsKmsLocator::new(key, "eu-west-1", None)
            .unwrap()
            .answered_by(answered)
    };
    assert!(fits(arn, arn));
    assert!(fits("1234abcd-12ab-34cd-56ef-1234567890ab", arn));
    assert!(fits("alias/acme", arn));
    assert!(fits("arn:aws:kms:eu-west-1:111122223333:alias/acme", arn));
    let other_key = arn.replace("1234abcd", "9999abcd");
    let other_region = arn.replace("eu-west-1", "us-east-1");
    let other_account = arn.replace("111122223333", "444455556666");
    assert!(!fits(arn, &other_key));
    assert!(!fits("1234abcd-12ab-34cd-56ef-1234567890ab", &other_key));
    assert!(!fits("alias/acme", &other_region));
    assert!(!fits(
        "arn:aws:kms:eu-west-1:111122223333:alias/acme",
        &other_account
    ));
    assert!(!fits(
        "alias/acme",
        "arn:aws:kms:eu-west-1:111122223333:alias/acme"
    ));
    assert!(!fits("alias/acme", "not an arn"));
}

/// The key ARN is the identity, whatever role reaches it, so that KEKs reached
/// through one role stay apart in audit events (their tails are their keys', not
/// the role's); a key id or an alias names no fixed key.
#[tokio::test]
async fn the_identity_is_the_key_arn_whatever_the_role() {
    let b = AwsKmsBackend::new(AwsKmsConfig::new().region("eu-west-1"))
        .await
        .unwrap();
    let role = "arn:aws:iam::444455556666:role/kekring";
    let arn = |id: &str| format!("arn:aws:kms:eu-west-1:111122223333:key/{id}");
    let id = |key: &str, role: Option<&str>| {
        let l = AwsKmsLocator::new(key, "eu-west-1", role)
            .unwrap()
            .to_locator();
        b.key_identity(&l)
    };
    let one = id(&arn("1111aaaa-0000-4000-8000-000000000001"), Some(role)).unwrap();
    assert_eq!(
        one,
        id(&arn("1111aaaa-0000-4000-8000-000000000001"), None).unwrap()
    );
    let two = id(&arn("2222bbbb-0000-4000-8000-000000000002"), Some(role)).unwrap();
    assert_ne!(one.tail(), two.tail());
    for unresolved in ["alias/acme", "1111aaaa-0000-4000-8000-000000000001"] {
        assert!(matches!(
            id(unresolved, Some(role)),
            Err(BackendError::Unresolved(_))
        ));
    }
    assert!(matches!(
        b.key_identity(&KekLocator::new("transit/k@v1")),
        Err(BackendError::InvalidLocator { .. })
    ));
}

#[tokio::test]
async fn no_secret_in_debug_and_an_empty_endpoint_is_refused() {
    let cfg = AwsKmsConfig::new()
        .region("us-east-1")
        .credentials("AKIDEXAMPLE", "very-secret-access-key");
    assert!(!format!("{cfg:?}").contains("very-secret"));
    let b = AwsKmsBackend::new(cfg.clone()).await.unwrap();
    assert!(!format!("{b:?}").contains("very-secret"));
    for bad in [
        "",
        "localhost:4566",
        "http://",
        "http://user:secret@127.0.0.1:4566",
        // Plain http to a host that is not loopback.
        "http://kms.example.com",
        "http://10.1.2.3:4566",
    ] {
        assert!(
            AwsKmsBackend::new(cfg.clone().endpoint_url(bad))
                .await
                .is_err(),
            "{bad:?}"
        );
    }
}

/// An endpoint the SDK reads from `AWS_ENDPOINT_URL_KMS`, or from the profile's
/// `endpoint_url`, passes the check a configured one does: plain http to a host that is
/// not loopback is refused. Run in a child process of this test binary, with the
/// environment set there (this crate forbids the `unsafe` that setting it in-process
/// needs, and other tests read it).
#[tokio::test]
async fn endpoints_from_the_environment_or_a_profile_pass_the_same_check() {
    const CHILD: &str = "KEKRING_TEST_ENDPOINT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let cfg = AwsKmsConfig::new()
            .region("us-east-1")
            .credentials("AKIDEXAMPLE", "x");
        let err = AwsKmsBackend::new(cfg).await.unwrap_err().to_string();
        assert!(err.contains("plain http"), "{err}");
        assert!(
            !err.contains("10.1.2.3"),
            "the refusal repeats the address: {err}"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("kekring-endpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("config");
    std::fs::write(
        &profile,
        "[default]\nregion = us-east-1\nendpoint_url = http://10.1.2.3:4566\n",
    )
    .unwrap();
    let me = std::env::current_exe().unwrap();
    let name =
        "backend::aws_kms::tests::endpoints_from_the_environment_or_a_profile_pass_the_same_check";
    let runs: [&[(&str, &std::ffi::OsStr)]; 2] = [
        &[("AWS_ENDPOINT_URL_KMS", "http://10.1.2.3:4566".as_ref())],
        &[("AWS_CONFIG_FILE", profile.as_os_str())],
    ];
    for vars in runs {
        let mut cmd = std::process::Command::new(&me);
        cmd.args(["--exact", name, "--nocapture"])
            .env(CHILD, "1")
            .env_remove("AWS_ENDPOINT_URL_KMS")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{vars:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The configuration's `Debug` shows the endpoint without a user or password in it.
#[test]
fn a_password_in_the_endpoint_does_not_reach_debug() {
    let cfg = AwsKmsConfig::new().endpoint_url("https://kekring:hunter2@kms.example");
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("kms.example"),
        "{shown}"
    );
}

/// `LOG_SENSITIVE_BODIES=true` makes the AWS SDK write answer bodies (a Decrypt's
/// plaintext DEK, a Decapsulate's shared secret) into its trace logs: refused when the
/// backend is built. Run in a child process, with the variable set there.
#[tokio::test]
async fn the_sdks_sensitive_body_logging_is_refused() {
    const CHILD: &str = "KEKRING_TEST_SENSITIVE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let cfg = AwsKmsConfig::new()
            .region("us-east-1")
            .credentials("AKIDEXAMPLE", "x")
            .endpoint_url("http://127.0.0.1:1");
        let err = AwsKmsBackend::new(cfg).await.unwrap_err().to_string();
        assert!(err.contains("LOG_SENSITIVE_BODIES"), "{err}");
        return;
    }
    let me = std::env::current_exe().unwrap();
    let name = "backend::aws_kms::tests::the_sdks_sensitive_body_logging_is_refused";
    for value in ["true", "TRUE"] {
        let out = std::process::Command::new(&me)
            .args(["--exact", name, "--nocapture"])
            .env(CHILD, "1")
            .env("LOG_SENSITIVE_BODIES", value)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{value}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(feature = "local")]
#[test]
fn ml_kem_spki_is_parsed_exactly() {
    for (alg, len) in [
        (WrapAlgorithm::MlKem768, 1184usize),
        (WrapAlgorithm::MlKem1024, 1568),
    ] {
        let ek = crate::backend::local::MlKemKek::generate(alg)
            .unwrap()
            .encapsulation_key();
        assert_eq!(ek.len(), len);
        let head: &[u8] = if alg == WrapAlgorithm::MlKem768 {
            &[
                0x30, 0x82, 0x04, 0xb2, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                0x04, 0x04, 0x02, 0x03, 0x82, 0x04, 0xa1, 0x00,
            ]
        } else {
            &[
                0x30, 0x82, 0x06, 0x32, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                0x04, 0x04, 0x03, 0x03, 0x82, 0x06, 0x21, 0x00,
            ]
        };
        let der = [head, &ek].concat();
        assert_eq!(ml_kem_spki(&der), Some((alg, ek.as_slice())));
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(ml_kem_spki(&trailing), None);
        assert_eq!(ml_kem_spki(&der[..der.len() - 1]), None);
        let mut other_oid = der.clone();
        other_oid[16] = 0x01; // ML-KEM-512's OID, not offered
        assert_eq!(ml_kem_spki(&other_oid), None);
    }
}
