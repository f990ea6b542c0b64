//! Workload identity, as the systems kekring serves deploy it: a pod or a CI job holds a
//! short-lived token it did not choose and logs in with it.
//!
//! - Vault's JWT auth method: a JWT signed by a key this test generates, whose public
//!   half OpenBao is told to trust.
//! - Vault's Kubernetes auth method: OpenBao asks the project's fake of the Kubernetes
//!   TokenReview API (`scripts/fake_k8s.py`, HTTPS under its own CA) whether a
//!   service-account token is valid.
//! - AWS web identity (IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`) and an
//!   `ExternalId` on AssumeRole, against LocalStack's STS. LocalStack checks neither the
//!   token nor the trust policy nor the `ExternalId` (see the README), so these tests
//!   check what kekring sends (through a recording relay) and that KMS is then called
//!   as the assumed role.
//!
//! The AWS tests set their environment in a child process of this test binary (this crate
//! forbids the `unsafe` that setting it in-process needs, and other tests read it).

use std::path::PathBuf;

use base64::Engine as _;
use kekring::backend::KekSpec;
use kekring::backend::aws_kms::{AwsKmsBackend, AwsKmsConfig, AwsKmsLocator};
use kekring::backend::kit::Locator;
use kekring::backend::vault_transit::{VaultAuth, VaultTransitBackend, VaultTransitConfig};
use kekring::format::BindingContext;
use kekring::{BackendError, Classification, KeyBackend, WrapAlgorithm};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};

use crate::common::net::Recorder;
use crate::common::vault::admin;
use crate::common::{self, env};

fn binding() -> BindingContext {
    common::binding("docs", "o", Classification::Internal)
}

/// A name no other test (or earlier run against the same server) uses.
fn unique(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private directory for token files, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(unique("kekring-workload"));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A wrap and an unwrap through `b` under a new KEK: the login worked end to end.
async fn round_trip(b: &dyn KeyBackend) -> Result<(), BackendError> {
    let kek = b
        .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Opaque, unique("wl")))
        .await?
        .locator;
    common::wrap_unwrap(b, &kek, &binding()).await
}

fn transit(auth: VaultAuth) -> VaultTransitBackend {
    VaultTransitBackend::new(
        VaultTransitConfig::new(crate::vault_transit::addr(), auth)
            .call_policy(crate::vault_transit::quick()),
    )
    .unwrap()
}

/// A refused login is a credentials error (not an outage, not retried as one), and its
/// message does not carry the token.
async fn refused(b: &dyn KeyBackend, token: &str) {
    let err = round_trip(b).await.unwrap_err();
    assert!(matches!(err, BackendError::Credentials { .. }), "{err:?}");
    assert!(!err.is_transient());
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(token), "the token is in {shown}");
    }
}

// ---------------------------------------------------------------------------------------
// Vault JWT auth

const ISSUER: &str = "https://ci.kekring.test";

fn es256_key() -> SigningKey {
    loop {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        if let Ok(k) = SigningKey::from_slice(&seed) {
            return k;
        }
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact ES256 JWT of `claims` under `key`.
fn jwt(key: &SigningKey, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(br#"{"alg":"ES256","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&sig.to_bytes()))
}

fn claims(audience: &str, subject: &str, lifetime: i64) -> Value {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": [audience],
        "iat": now,
        "nbf": now - 5,
        "exp": now + lifetime,
    })
}

/// A JWT auth mount trusting `key`, with a role `kekring` for `subject` and audience
/// `kekring-vault`. Returns the mount.
async fn jwt_mount(key: &SigningKey, subject: &str) -> String {
    let a = admin();
    let mount = unique("jwt");
    a.post(&format!("sys/auth/{mount}"), json!({"type": "jwt"}))
        .await;
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    a.post(
        &format!("auth/{mount}/config"),
        json!({"jwt_validation_pubkeys": [pem], "bound_issuer": ISSUER}),
    )
    .await;
    a.post(
        &format!("auth/{mount}/role/kekring"),
        json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_subject": subject,
            "bound_audiences": ["kekring-vault"],
            "token_policies": ["kekring-test"],
            "token_ttl": "60s",
        }),
    )
    .await;
    mount
}

#[tokio::test]
async fn vault_jwt_auth_logs_in_with_a_token_signed_by_the_trusted_key_only() {
    let key = es256_key();
    let subject = "repo:acme/billing:ref:refs/heads/main";
    let mount = jwt_mount(&key, subject).await;
    let dir = Dir::new();
    let good = jwt(&key, &claims("kekring-vault", subject, 300));
    let auth = |file: PathBuf| VaultAuth::Jwt {
        mount: mount.clone(),
        role: "kekring".into(),
        jwt_file: file,
    };

    // The whole conformance suite under a JWT login; the token never shows.
    crate::vault_transit::suite(auth(dir.write("good", &good)))
        .secrets(&[&good])
        .run()
        .await
        .expect("Transit conforms under JWT auth")
        .assert_passed();

    // Signed by another key, for another audience, expired: each refused as credentials.
    let other = jwt(&es256_key(), &claims("kekring-vault", subject, 300));
    let audience = jwt(&key, &claims("someone-else", subject, 300));
    let expired = jwt(&key, &claims("kekring-vault", subject, -600));
    let subject_other = jwt(&key, &claims("kekring-vault", "repo:acme/other", 300));
    for (name, token) in [
        ("other-key", &other),
        ("audience", &audience),
        ("expired", &expired),
        ("subject", &subject_other),
    ] {
        refused(&transit(auth(dir.write(name, token))), token).await;
    }
}

// ---------------------------------------------------------------------------------------
// Vault Kubernetes auth, through the fake TokenReview API

/// The fake Kubernetes API server's control endpoints.
struct K8s {
    url: String,
    http: reqwest::Client,
}

impl K8s {
    fn new() -> Self {
        let ca = std::fs::read(env("KEKRING_TEST_K8S_CA")).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        K8s {
            url: env("KEKRING_TEST_K8S_ENDPOINT"),
            http,
        }
    }

    async fn control(&self, what: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/fake-api/{what}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{what}: {}", resp.status());
        serde_json::from_str(&resp.text().await.unwrap()).unwrap()
    }

    async fn service_account(&self, namespace: &str, name: &str, reviewer: bool) {
        self.control(
            "serviceaccount",
            json!({"namespace": namespace, "name": name, "reviewer": reviewer}),
        )
        .await;
    }

    async fn token(&self, namespace: &str, name: &str, audience: &str) -> String {
        let out = self
            .control(
                "token",
                json!({"namespace": namespace, "name": name, "audiences": [audience], "ttl": 600}),
            )
            .await;
        out["token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn vault_kubernetes_auth_logs_in_with_a_service_account_token_the_api_server_accepts() {
    let k8s = K8s::new();
    let (reviewer, account) = (unique("vault-auth"), unique("kekring"));
    k8s.service_account("kube-system", &reviewer, true).await;
    k8s.service_account("tenants", &account, false).await;
    let a = admin();
    let mount = unique("kubernetes");
    a.post(&format!("sys/auth/{mount}"), json!({"type": "kubernetes"}))
        .await;
    a.post(
        &format!("auth/{mount}/config"),
        json!({
            "kubernetes_host": k8s.url,
            "kubernetes_ca_cert": std::fs::read_to_string(env("KEKRING_TEST_K8S_CA")).unwrap(),
            "token_reviewer_jwt": k8s.token("kube-system", &reviewer, "https://kubernetes.default.svc.cluster.local").await,
            "disable_local_ca_jwt": true,
        }),
    )
    .await;
    a.post(
        &format!("auth/{mount}/role/kekring"),
        json!({
            "bound_service_account_names": [account],
            "bound_service_account_namespaces": ["tenants"],
            "audience": "vault",
            "token_policies": ["kekring-test"],
            "token_ttl": "60s",
        }),
    )
    .await;
    let dir = Dir::new();
    let file = dir.0.join("token");
    let b = transit(VaultAuth::Kubernetes {
        mount: mount.clone(),
        role: "kekring".into(),
        jwt_file: file.clone(),
    });

    // A token for another audience is refused; the kubelet then rotates the file, and
    // the next login reads the new token (the file is read at every login).
    let wrong = k8s.token("tenants", &account, "not-vault").await;
    std::fs::write(&file, &wrong).unwrap();
    refused(&b, &wrong).await;
    let good = k8s.token("tenants", &account, "vault").await;
    std::fs::write(&file, &good).unwrap();
    round_trip(&b).await.unwrap();

    // The same token, once its service account is deleted, no longer logs in.
    k8s.control("delete", json!({"namespace": "tenants", "name": account}))
        .await;
    let fresh = transit(VaultAuth::Kubernetes {
        mount,
        role: "kekring".into(),
        jwt_file: file,
    });
    refused(&fresh, &good).await;
    // A token file that is not there is a credentials error naming the file.
    let missing = transit(VaultAuth::Kubernetes {
        mount: "kubernetes".into(),
        role: "kekring".into(),
        jwt_file: dir.0.join("absent"),
    });
    let err = round_trip(&missing).await.unwrap_err();
    assert!(
        matches!(err, BackendError::Credentials { .. }) && err.to_string().contains("absent"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// AWS: web identity (IRSA) and ExternalId, in a child process each

const CHILD: &str = "KEKRING_TEST_WORKLOAD_CHILD";
const IRSA_ROLE: &str = "arn:aws:iam::222233334444:role/kekring-irsa";
const VENDOR_ROLE: &str = "arn:aws:iam::333344445555:role/kekring-vendor";
const OTHER_ROLE: &str = "arn:aws:iam::333344445555:role/kekring-other";
const EXTERNAL_ID: &str = "tenant-7-3f1c2a";

/// Runs test `name` of this binary again in a child, with `vars` added and every AWS
/// credential source of this machine removed; panics unless it passed.
async fn in_child(name: &str, vars: Vec<(&'static str, String)>) {
    let me = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(me);
    cmd.args(["--exact", name, "--nocapture"]).env(CHILD, "1");
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_ENDPOINT_URL_STS",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/kekring-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/kekring-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    // Off this thread: the relay the child talks through runs on this test's runtime.
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child {name}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The account a KMS key ARN belongs to.
fn account(locator: &kekring::KekLocator) -> String {
    let key = AwsKmsLocator::parse(locator).unwrap();
    key.key().split(':').nth(4).unwrap().to_owned()
}

/// The form parameter `name` of an STS request (URL-encoded as sent).
fn param<'a>(request: &'a str, name: &str) -> Option<&'a str> {
    let body = request.split("\r\n\r\n").nth(1)?;
    body.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
}

fn encoded(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn aws_web_identity_from_the_environment_assumes_the_role_for_kms() {
    let name = "workload::aws_web_identity_from_the_environment_assumes_the_role_for_kms";
    if std::env::var_os(CHILD).is_some() {
        // The standard chain, nothing configured: what a pod with IRSA runs.
        let b = AwsKmsBackend::new(AwsKmsConfig::new().call_policy(crate::aws_kms::quick()))
            .await
            .unwrap();
        round_trip(&b).await.unwrap();
        let kek = common::new_kek(&b, WrapAlgorithm::Aes256Opaque, "irsa").await;
        assert_eq!(
            account(&kek),
            "222233334444",
            "KMS was not called as the role"
        );
        return;
    }
    let sts = Recorder::start(&env("KEKRING_TEST_KMS_ENDPOINT")).await;
    let dir = Dir::new();
    // An OIDC token as EKS projects it (LocalStack does not verify it; STS would).
    let token = jwt(
        &es256_key(),
        &claims(
            "sts.amazonaws.com",
            "system:serviceaccount:tenants:kekring",
            600,
        ),
    );
    let file = dir.write("token", &token);
    in_child(
        name,
        vec![
            ("AWS_WEB_IDENTITY_TOKEN_FILE", file.display().to_string()),
            ("AWS_ROLE_ARN", IRSA_ROLE.into()),
            ("AWS_ROLE_SESSION_NAME", "kekring-irsa-test".into()),
            ("AWS_REGION", crate::aws_kms::region()),
            ("AWS_ENDPOINT_URL_KMS", env("KEKRING_TEST_KMS_ENDPOINT")),
            ("AWS_ENDPOINT_URL_STS", sts.url.clone()),
        ],
    )
    .await;
    let calls: Vec<String> = sts
        .requests()
        .into_iter()
        .filter(|r| param(r, "Action") == Some("AssumeRoleWithWebIdentity"))
        .collect();
    assert!(
        !calls.is_empty(),
        "no AssumeRoleWithWebIdentity reached STS"
    );
    for r in &calls {
        assert_eq!(
            param(r, "RoleArn"),
            Some(encoded(IRSA_ROLE).as_str()),
            "{r}"
        );
        assert_eq!(param(r, "WebIdentityToken"), Some(token.as_str()), "{r}");
    }
}

#[tokio::test]
async fn assume_role_sends_the_external_id_configured_for_that_role_only() {
    let name = "workload::assume_role_sends_the_external_id_configured_for_that_role_only";
    if std::env::var_os(CHILD).is_some() {
        // Static credentials of the key owner's account (LocalStack takes a 12-digit
        // access key for the account id), then the same key through two roles.
        let b = AwsKmsBackend::new(
            AwsKmsConfig::new()
                .region(crate::aws_kms::region())
                .endpoint_url(env("KEKRING_TEST_KMS_ENDPOINT"))
                .credentials("333344445555", "owner-secret")
                .external_id(VENDOR_ROLE, EXTERNAL_ID)
                .call_policy(crate::aws_kms::quick()),
        )
        .await
        .unwrap();
        let kek = common::new_kek(&b, WrapAlgorithm::Aes256Opaque, "vendor").await;
        assert_eq!(account(&kek), "333344445555");
        let key = AwsKmsLocator::parse(&kek).unwrap();
        for role in [VENDOR_ROLE, OTHER_ROLE] {
            let through = AwsKmsLocator::new(key.key(), key.region(), Some(role))
                .unwrap()
                .to_locator();
            common::wrap_unwrap(&b, &through, &binding()).await.unwrap();
        }
        return;
    }
    let sts = Recorder::start(&env("KEKRING_TEST_KMS_ENDPOINT")).await;
    in_child(name, vec![("AWS_ENDPOINT_URL_STS", sts.url.clone())]).await;
    let calls: Vec<String> = sts
        .requests()
        .into_iter()
        .filter(|r| param(r, "Action") == Some("AssumeRole"))
        .collect();
    let of = |role: &str| -> Vec<&String> {
        calls
            .iter()
            .filter(|r| param(r, "RoleArn") == Some(encoded(role).as_str()))
            .collect()
    };
    let (vendor, other) = (of(VENDOR_ROLE), of(OTHER_ROLE));
    assert!(!vendor.is_empty() && !other.is_empty(), "{calls:?}");
    for r in vendor {
        assert_eq!(param(r, "ExternalId"), Some(EXTERNAL_ID), "{r}");
    }
    for r in other {
        assert_eq!(param(r, "ExternalId"), None, "{r}");
    }
}
