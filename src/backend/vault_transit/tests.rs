//! Unit tests of the Transit backend: locators, the error table, configuration from the
//! environment (TLS settings included), token files, and no secret in `Debug`.

use std::collections::HashMap;

use secrecy::SecretString;

use super::session::read_secret_file;
use super::*;
use crate::backend::kit::ServiceFailure;

#[test]
fn locators_round_trip_and_bad_ones_are_refused() {
    let k = TransitLocator::parse(&KekLocator::new("transit/acme-docs@v3")).unwrap();
    assert_eq!(
        (k.mount(), k.name(), k.version()),
        ("transit", "acme-docs", 3)
    );
    assert_eq!(k.to_locator().as_str(), "transit/acme-docs@v3");
    let nested = TransitLocator::parse(&KekLocator::new("team/transit/k@v12")).unwrap();
    assert_eq!(nested.mount(), "team/transit");
    let long = TransitLocator::parse(&KekLocator::new("transit/tenant-acme-payroll@v3")).unwrap();
    assert!(!format!("{long:?}").contains("tenant-acme"), "{long:?}");
    // Another spelling of one version is the same locator.
    let other = TransitLocator::parse(&KekLocator::new("/transit/acme-docs@v03")).unwrap();
    assert_eq!(other, k);
    for bad in [
        "transit/k",
        "k@v1",
        "transit/k@v0",
        "transit/k@vx",
        "/k@v1",
        "transit/@v1",
        "tr ansit/k@v1",
        // Dot segments: the HTTP path normalises them away, so they would give one
        // key several identities.
        "x/../transit/k@v1",
        "transit/./k@v1",
        "transit/../k@v1",
        "transit/..@v1",
        "transit/.@v1",
    ] {
        assert!(
            matches!(
                TransitLocator::parse(&KekLocator::new(bad)),
                Err(BackendError::InvalidLocator { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn statuses_and_messages_classify_as_transit_means_them() {
    let class = |status: u16, msg: &str, op| {
        error_class(&ServiceFailure::new(Some(status), None, msg), op)
            .or_else(|| ErrorClass::of_status(status))
    };
    use ErrorClass::*;
    use Operation::{Decrypt, Encrypt, Login, Rewrap};
    for (status, msg, op, want) in [
        (403, "", Decrypt, PermissionDenied),
        (403, "invalid token", Decrypt, Credentials),
        (403, "", Login, Credentials),
        (401, "", Encrypt, Credentials),
        (429, "", Encrypt, Throttled),
        (503, "", Encrypt, Unavailable),
        (412, "", Decrypt, Unavailable),
        (400, "", Encrypt, InvalidRequest),
        (
            400,
            "ciphertext or signature version is disallowed by policy (too old)",
            Decrypt,
            KeyDisabled,
        ),
        (
            400,
            "requested version for encryption is less than the minimum encryption key version",
            Rewrap,
            InvalidRequest,
        ),
        (400, "encryption key not found", Encrypt, KeyNotFound),
    ] {
        assert_eq!(class(status, msg, op), Some(want), "{status} {msg:?} {op}");
    }
}

#[test]
fn no_token_in_debug() {
    let auth = VaultAuth::Token(SecretString::from("s.super-secret-token".to_owned()));
    let cfg = VaultTransitConfig::new("http://127.0.0.1:8200", auth);
    let b = VaultTransitBackend::new(cfg).unwrap();
    assert!(!format!("{b:?}").contains("super-secret"));
    let approle = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: "role-id-1234".into(),
        secret_id: SecretString::from("secret-id-5678".to_owned()),
    };
    let shown = format!("{approle:?}");
    assert!(
        !shown.contains("5678") && !shown.contains("1234"),
        "{shown}"
    );
}

/// A token file is bounded by what is read, not by the size the file system reports:
/// a device or a FIFO reports 0 bytes and has no end.
#[tokio::test]
async fn an_endless_token_file_is_refused_in_bounded_time() {
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        read_secret_file(std::path::Path::new("/dev/zero"), "token"),
    )
    .await
    .expect("reading /dev/zero as a token file did not end");
    assert!(
        matches!(&got, Err(BackendError::Credentials { message, .. }) if message.contains("64 KiB")),
        "{got:?}"
    );
}

/// An auth mount goes into the login path: a mount that is not a plain path (dot
/// segments, a query, a fragment) is refused when the backend is built.
#[test]
fn an_auth_mount_that_is_not_a_plain_path_is_refused() {
    for mount in ["../sys", "approle/..", "a?b", "a#b", "", "a//b", "a b"] {
        let auth = VaultAuth::Jwt {
            mount: mount.into(),
            role: "r".into(),
            jwt_file: "/run/token".into(),
        };
        let got = VaultTransitBackend::new(VaultTransitConfig::new("http://127.0.0.1:8200", auth));
        assert!(
            matches!(&got, Err(Error::Config(ConfigError::Backend { .. }))),
            "{mount:?}: {got:?}"
        );
    }
    for mount in ["approle", "auth-team/jwt", "kubernetes_eu"] {
        let auth = VaultAuth::AppRole {
            mount: mount.into(),
            role_id: "r".into(),
            secret_id: SecretString::from("s".to_owned()),
        };
        assert!(
            VaultTransitBackend::new(VaultTransitConfig::new("http://127.0.0.1:8200", auth))
                .is_ok()
        );
    }
}

/// The configuration's `Debug` shows an address without what a user or password in it
/// would carry (the address is refused later, when the backend is built).
#[test]
fn a_password_in_the_address_does_not_reach_debug() {
    let cfg = VaultTransitConfig::new(
        "https://kekring:hunter2@vault.example:8200",
        VaultAuth::Token(SecretString::from("t".to_owned())),
    );
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("vault.example"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_token_file_is_trimmed_bounded_and_a_bad_one_is_a_credentials_error() {
    let dir = std::env::temp_dir().join(format!("kekring-token-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "  s.file-token-4711\n").unwrap();
    assert_eq!(
        read_secret_file(&path, "token").await.unwrap().as_str(),
        "s.file-token-4711"
    );
    let shown = format!("{:?}", VaultAuth::TokenFile(path.clone()));
    assert!(
        shown.contains("token") && !shown.contains("4711"),
        "{shown}"
    );

    let credentials = |e: &BackendError, has: &str| matches!(e, BackendError::Credentials { message, .. } if message.contains(has));
    std::fs::write(&path, " \n").unwrap();
    let empty = read_secret_file(&path, "token").await.unwrap_err();
    assert!(credentials(&empty, "empty"), "{empty:?}");
    std::fs::write(&path, vec![b'a'; 64 * 1024 + 1]).unwrap();
    let large = read_secret_file(&path, "token").await.unwrap_err();
    assert!(credentials(&large, "64 KiB"), "{large:?}");
    let missing = read_secret_file(&dir.join("absent"), "token")
        .await
        .unwrap_err();
    assert!(credentials(&missing, "absent"), "{missing:?}");
    assert!(!missing.is_transient() && !missing.try_next_copy());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_address_that_is_not_https_or_loopback_http_is_refused() {
    for bad in [
        "",
        "127.0.0.1:8200",
        "ftp://host",
        "http://",
        "http://user:hunter2@127.0.0.1:8200",
        "http://vault.example:8200",
        "hunter2",
    ] {
        let cfg =
            VaultTransitConfig::new(bad, VaultAuth::Token(SecretString::from("t".to_owned())));
        let err = VaultTransitBackend::new(cfg).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{bad}: {err}");
    }
}

fn from(vars: &[(&str, &str)]) -> Result<VaultTransitConfig, Error> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    VaultTransitConfig::from_vars(&|name| vars.get(name).cloned())
}

/// The environment never turns certificate verification off: a `VAULT_SKIP_VERIFY`
/// that Vault's client library would read as true (it reads any value but `0`, `f` and
/// `false` that way, `no` included) is refused; the CA variables are read into the
/// configuration, and a non-UTF-8 or missing CA path is an error, not a panic.
#[test]
fn the_environment_never_turns_verification_off() {
    let base = [
        ("VAULT_ADDR", "https://vault.example:8200"),
        ("VAULT_TOKEN", "t"),
    ];
    for skip in ["no", "1", "true", "yes", "anything"] {
        let got = from(&[base[0], base[1], ("VAULT_SKIP_VERIFY", skip)]);
        assert!(
            matches!(&got, Err(Error::Config(ConfigError::Backend { reason })) if reason.contains("VAULT_SKIP_VERIFY")),
            "VAULT_SKIP_VERIFY={skip}: {got:?}"
        );
    }
    for harmless in ["", "0", "f", "false", "FALSE"] {
        assert!(
            from(&[base[0], base[1], ("VAULT_SKIP_VERIFY", harmless)]).is_ok(),
            "{harmless}"
        );
    }
    let dir = std::env::temp_dir().join(format!("kekring-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.join("ca.pem"), pem).unwrap();
    let ca = dir.join("ca.pem");
    let cfg = from(&[base[0], base[1], ("VAULT_CACERT", ca.to_str().unwrap())]).unwrap();
    // As Vault's own client: the named CA instead of the platform's roots.
    assert_eq!(cfg.tls.cas().len(), 1);
    assert!(!cfg.tls.trusts_platform());
    let cfg = from(&[base[0], base[1], ("VAULT_CAPATH", dir.to_str().unwrap())]).unwrap();
    assert_eq!(cfg.tls.cas().len(), 1);
    assert!(!cfg.tls.trusts_platform());
    assert!(
        from(&[base[0], base[1]]).unwrap().tls.trusts_platform(),
        "without them, the platform's roots"
    );
    let missing = dir.join("absent");
    assert!(
        from(&[
            base[0],
            base[1],
            ("VAULT_CACERT", missing.to_str().unwrap())
        ])
        .is_err()
    );
    assert!(
        from(&[
            base[0],
            base[1],
            ("VAULT_CAPATH", missing.to_str().unwrap())
        ])
        .is_err()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn workload_identities_come_from_the_environment() {
    let vars: HashMap<&str, &str> = [
        ("KEKRING_VAULT_K8S_ROLE", "kekring"),
        ("KEKRING_VAULT_JWT_ROLE", "ignored, kubernetes comes first"),
    ]
    .into_iter()
    .collect();
    let auth = VaultAuth::from_vars(&|n| vars.get(n).map(|v| (*v).to_owned())).unwrap();
    assert!(matches!(
        &auth,
        VaultAuth::Kubernetes { mount, role, jwt_file }
            if mount == "kubernetes" && role == "kekring" && jwt_file.as_os_str() == KUBERNETES_TOKEN_FILE
    ));
    let vars: HashMap<&str, &str> = [
        ("KEKRING_VAULT_JWT_ROLE", "ci"),
        ("KEKRING_VAULT_JWT_FILE", "/run/identity/token"),
        ("KEKRING_VAULT_JWT_MOUNT", "oidc"),
    ]
    .into_iter()
    .collect();
    let auth = VaultAuth::from_vars(&|n| vars.get(n).map(|v| (*v).to_owned())).unwrap();
    assert!(matches!(&auth, VaultAuth::Jwt { mount, role, .. } if mount == "oidc" && role == "ci"));
}
