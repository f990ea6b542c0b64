//! AWS KMS KEKs (feature `aws-kms`, over `aws-sdk-kms` and `aws-config`).
//!
//! A KEK is a KMS key (key id, key ARN, alias name or alias ARN) in a region, optionally
//! reached by assuming a role in the key owner's account (how a tenant brings its own
//! key). Its locator is `aws-kms:{region}:{key}`, with `;role={role ARN}` appended when a
//! role is assumed; build one with [`AwsKmsKek`].
//!
//! | key spec | wrap algorithm | construction (FORMAT.md §11) |
//! |---|---|---|
//! | `SYMMETRIC_DEFAULT` | [`WrapAlgorithm::Aes256Opaque`] | 1: `Encrypt` / `Decrypt` with the binding as `EncryptionContext` |
//! | `RSA_2048`, `RSA_3072`, `RSA_4096` | [`WrapAlgorithm::RsaOaepSha256Ik2048`] (`3072`, `4096`) | 2: KMS encrypts a fresh intermediate key (`RSAES_OAEP_SHA_256`), the DEK is sealed under it locally with the binding as AAD |
//! | `ML_KEM_768`, `ML_KEM_1024` | [`WrapAlgorithm::MlKem768`], [`WrapAlgorithm::MlKem1024`] | 3: encapsulate, derive, wrap locally; `Decapsulate` in KMS |
//!
//! An alias is resolved once per backend instance (`DescribeKey`) to its key ARN; every
//! call then names that ARN as `KeyId` (on `Decrypt` and `Decapsulate` too), and every
//! answer must name it back, or the call fails with [`BackendError::KeyMismatch`].
//! Register key ARNs rather than aliases: an alias re-pointed to another key makes the
//! wraps made before it refuse to open.
//!
//! ML-KEM wraps are the same bytes a local ML-KEM KEK makes. Encapsulation runs locally
//! with the public key from `GetPublicKey` by default ([`EncapsulateMode::Local`]: no
//! round trip per seal; the public key is fetched again after its TTL, which is when a
//! disabled key starts refusing wraps), or in KMS ([`EncapsulateMode::Service`]: a round
//! trip per seal, and a disabled key refuses at once). KMS decapsulates with implicit
//! rejection: a tampered KEM ciphertext yields an unrelated secret, which the local RFC
//! 3394 check refuses as [`BackendError::Rejected`].
//!
//! Credentials come from the AWS SDK's standard chain (environment, profile, SSO, web
//! identity, container and instance metadata) or are given explicitly; a role is assumed
//! through STS with those credentials. None of them enter a locator or the key ring. The
//! SDK's own retries are turned off: the backend's [`CallPolicy`] retries transient
//! failures, so that one budget bounds a call.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_kms::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    EncapsulationAlgorithmSpec, EncryptionAlgorithmSpec, KeySpec, KeyState, KeyUsageType,
};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use zeroize::Zeroizing;

use super::kit::intermediate;
use super::kit::kem::{encapsulate_and_wrap, unwrap_with_ciphertext, wrap_with_ciphertext};
use super::kit::{CallPolicy, unavailable};
use super::{
    BackendError, BackendInfo, KekDescriptor, KekLocator, KekSpec, KeyBackend, KeyIdentity,
    UnwrapRequest, UnwrapResponse, WrapRequest, WrapResponse,
};
use crate::crypto::mlkem::MlKemPublicKey;
use crate::crypto::{self, Primitives};
use crate::error::{ConfigError, Error};
use crate::format::{BackendId, BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

/// An AWS KMS KEK: key, region, optional role to assume.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AwsKmsKek {
    region: String,
    key: String,
    role: Option<String>,
}

impl fmt::Debug for AwsKmsKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AwsKmsKek({:?})", self.locator())
    }
}

fn config_err(reason: String) -> Error {
    ConfigError::Backend { reason }.into()
}

impl AwsKmsKek {
    /// A KEK: `key` is a key id, key ARN, `alias/...` or alias ARN; `role` an IAM role
    /// ARN to assume.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an empty or malformed field, or an ARN whose region
    /// is not `region`.
    pub fn new(key: &str, region: &str, role: Option<&str>) -> Result<Self, Error> {
        let region_ok = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(config_err(format!("not an AWS region: {region:?}")));
        }
        let key_ok = !key.is_empty()
            && key.len() <= 2048
            && !key.contains(';')
            && !key.chars().any(char::is_whitespace);
        if !key_ok {
            return Err(config_err("not a KMS key id, ARN or alias".into()));
        }
        if let Some(rest) = key.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let is_kms = parts.get(1) == Some(&"kms");
            if !is_kms || parts.get(2) != Some(&region) || parts.len() != 5 {
                return Err(config_err(format!(
                    "a KMS ARN in region {region} was expected"
                )));
            }
        }
        if let Some(r) = role
            && (!r.starts_with("arn:") || !r.contains(":role/") || r.contains(';'))
        {
            return Err(config_err("not an IAM role ARN".into()));
        }
        Ok(Self {
            region: region.to_owned(),
            key: key.to_owned(),
            role: role.map(str::to_owned),
        })
    }

    /// Parses `aws-kms:{region}:{key}[;role={role ARN}]`.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for any other form.
    pub fn parse(locator: &KekLocator) -> Result<Self, Error> {
        let rest = locator
            .as_str()
            .strip_prefix("aws-kms:")
            .ok_or_else(|| config_err("an AWS KMS locator starts with aws-kms:".into()))?;
        let (main, role) = match rest.split_once(";role=") {
            Some((m, r)) => (m, Some(r)),
            None => (rest, None),
        };
        let (region, key) = main
            .split_once(':')
            .ok_or_else(|| config_err("aws-kms:{region}:{key} expected".into()))?;
        Self::new(key, region, role)
    }

    /// The locator.
    pub fn locator(&self) -> KekLocator {
        let mut s = format!("aws-kms:{}:{}", self.region, self.key);
        if let Some(r) = &self.role {
            s.push_str(";role=");
            s.push_str(r);
        }
        KekLocator::new(s)
    }

    /// Whether `arn`, the key ARN KMS answered for this KEK, can be its key: a KMS key
    /// ARN in its region, equal to it when it is a key ARN, ending in its id when it is
    /// a key id, in its account when it is an alias ARN.
    fn answered_by(&self, arn: &str) -> bool {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, _partition, service, region, account, resource] = parts.as_slice() else {
            return false;
        };
        if *prefix != "arn" || *service != "kms" || *region != self.region {
            return false;
        }
        let Some(id) = resource.strip_prefix("key/") else {
            return false;
        };
        if self.key.starts_with("arn:") {
            if self.key.contains(":key/") {
                return arn == self.key;
            }
            // An alias ARN: arn:{partition}:kms:{region}:{account}:alias/{name}.
            return self.key.split(':').nth(4) == Some(account);
        }
        if self.key.starts_with("alias/") {
            return true;
        }
        id == self.key
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The role assumed, if any.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }
}

/// Where ML-KEM encapsulation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncapsulateMode {
    /// Locally, with the public key fetched by `GetPublicKey` and kept for `ttl` (the
    /// default, 5 minutes): no KMS call per seal.
    Local {
        /// How long a fetched public key is used before it is fetched (and the key's
        /// state checked) again.
        ttl: Duration,
    },
    /// In KMS (`Encapsulate`): one round trip per seal.
    Service,
}

impl Default for EncapsulateMode {
    fn default() -> Self {
        EncapsulateMode::Local {
            ttl: Duration::from_secs(300),
        }
    }
}

/// How to reach KMS.
#[derive(Clone, Default)]
pub struct AwsKmsConfig {
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<Credentials>,
    call: CallPolicy,
    encapsulate: EncapsulateMode,
}

impl fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[REDACTED]"),
            )
            .field("call", &self.call)
            .field("encapsulate", &self.encapsulate)
            .finish()
    }
}

impl AwsKmsConfig {
    /// The SDK's standard chain for credentials and region.
    pub fn new() -> Self {
        Self::default()
    }

    /// The region new KEKs are created in (default: the SDK's region chain, e.g.
    /// `AWS_REGION`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Another endpoint (a VPC endpoint, a FIPS endpoint, a local test server). The SDK
    /// also reads `AWS_ENDPOINT_URL_KMS`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Static credentials instead of the standard chain.
    pub fn credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.credentials = Some(Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "kekring",
        ));
        self
    }

    /// Timeouts and retries.
    pub fn call_policy(mut self, call: CallPolicy) -> Self {
        self.call = call;
        self
    }

    /// Where ML-KEM encapsulation runs.
    pub fn encapsulate(mut self, mode: EncapsulateMode) -> Self {
        self.encapsulate = mode;
        self
    }
}

/// A KEK made ready for calls, once per locator: its key's ARN and algorithm (from
/// `DescribeKey`; they never change) and the client of its region and role.
// No Debug: the SDK client's would print its configuration.
struct Resolved {
    arn: String,
    algorithm: WrapAlgorithm,
    client: aws_sdk_kms::Client,
}

/// AWS KMS KEKs in any region and account the credentials reach. See the module docs.
pub struct AwsKmsBackend {
    info: BackendInfo,
    base: aws_config::SdkConfig,
    region: Option<String>,
    endpoint_url: Option<String>,
    call: CallPolicy,
    encapsulate: EncapsulateMode,
    clients: tokio::sync::Mutex<HashMap<(String, Option<String>), aws_sdk_kms::Client>>,
    resolved: RwLock<HashMap<KekLocator, Arc<Resolved>>>,
    public: Mutex<HashMap<String, (Instant, Arc<MlKemPublicKey>)>>,
}

impl fmt::Debug for AwsKmsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsBackend")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("call", &self.call)
            .field("encapsulate", &self.encapsulate)
            .finish_non_exhaustive()
    }
}

/// Maps an SDK error by what KMS documents for each exception. Only the error code and
/// message are kept.
fn map_err<E>(
    e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    kek: &KekLocator,
    op: &'static str,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = chain(&e);
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let err = s.into_err();
            let code = err.code().unwrap_or("").to_owned();
            let message = err.message().unwrap_or("").to_owned();
            let text = format!("{code}: {message}");
            match code.as_str() {
                "NotFoundException" | "InvalidArnException" => {
                    BackendError::KeyNotFound(kek.clone())
                }
                "DisabledException" => BackendError::KeyDisabled {
                    kek: kek.clone(),
                    state: "disabled".into(),
                },
                "KMSInvalidStateException" => BackendError::KeyDisabled {
                    kek: kek.clone(),
                    state: format!("invalid state ({message})"),
                },
                "IncorrectKeyException" | "InvalidCiphertextException" => BackendError::Rejected,
                "AccessDeniedException" => BackendError::PermissionDenied {
                    kek: kek.clone(),
                    message: text,
                },
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "InvalidClientTokenId"
                | "MissingAuthenticationToken"
                | "ExpiredTokenException"
                | "ExpiredToken" => BackendError::Credentials { message: text },
                "ThrottlingException"
                | "Throttling"
                | "RequestLimitExceeded"
                | "TooManyRequestsException" => BackendError::Throttled { message: text },
                "KeyUnavailableException"
                | "DependencyTimeoutException"
                | "KMSInternalException"
                | "InternalFailure"
                | "ServiceUnavailable" => unavailable(text),
                "InvalidKeyUsageException" | "UnsupportedOperationException" => {
                    BackendError::UnsupportedAlgorithm {
                        kek: kek.clone(),
                        algorithm: WrapAlgorithm::Aes256Opaque,
                    }
                }
                _ if status == 429 => BackendError::Throttled { message: text },
                _ if status >= 500 => unavailable(format!("KMS answered {status}: {text}")),
                _ => BackendError::InvalidRequest {
                    message: format!("KMS answered {status}: {text}"),
                },
            }
        }
        SdkError::TimeoutError(_) => BackendError::Timeout {
            operation: op,
            elapsed_ms: 0,
        },
        SdkError::DispatchFailure(d) => {
            // The SDK resolves credentials inside the attempt: a chain that finds none, an
            // expired session or a refused AssumeRole arrive here, not from the service.
            if d.is_other() && text.to_ascii_lowercase().contains("credential") {
                BackendError::Credentials { message: text }
            } else if d.is_timeout() {
                BackendError::Timeout {
                    operation: op,
                    elapsed_ms: 0,
                }
            } else if d.is_user() {
                BackendError::InvalidRequest {
                    message: "KMS request could not be sent (client configuration)".into(),
                }
            } else {
                unavailable(format!("KMS unreachable: {text}"))
            }
        }
        SdkError::ResponseError(_) => BackendError::MalformedResponse {
            what: "KMS response",
        },
        SdkError::ConstructionFailure(c) => {
            let _ = c;
            if text.to_ascii_lowercase().contains("credential") {
                BackendError::Credentials { message: text }
            } else {
                BackendError::InvalidRequest { message: text }
            }
        }
        _ => unavailable(format!("KMS call failed: {text}")),
    }
}

/// The DER `SubjectPublicKeyInfo` of an ML-KEM key (FIPS 203 encapsulation key under
/// `id-alg-ml-kem-768` / `-1024`, no parameters), as `GetPublicKey` returns it. DER is
/// canonical, so each parameter set has exactly one 22-byte prefix; anything else is
/// refused.
fn mlkem_spki(der: &[u8]) -> Option<(WrapAlgorithm, &[u8])> {
    // SEQUENCE { SEQUENCE { OID 2.16.840.1.101.3.4.4.{2,3} } BIT STRING { 0 unused bits, ek } }
    const PREFIX_768: [u8; 22] = [
        0x30, 0x82, 0x04, 0xb2, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x04, 0x02, 0x03, 0x82, 0x04, 0xa1, 0x00,
    ];
    const PREFIX_1024: [u8; 22] = [
        0x30, 0x82, 0x06, 0x32, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x04, 0x03, 0x03, 0x82, 0x06, 0x21, 0x00,
    ];
    for (alg, prefix, ek_len) in [
        (WrapAlgorithm::MlKem768, PREFIX_768, 1184),
        (WrapAlgorithm::MlKem1024, PREFIX_1024, 1568),
    ] {
        if der.len() == prefix.len() + ek_len && der.starts_with(&prefix) {
            return der.get(prefix.len()..).map(|ek| (alg, ek));
        }
    }
    None
}

/// Whether `algorithm` is one of the RSA intermediate-key wraps.
fn is_rsa(algorithm: WrapAlgorithm) -> bool {
    matches!(
        algorithm,
        WrapAlgorithm::RsaOaepSha256Ik2048
            | WrapAlgorithm::RsaOaepSha256Ik3072
            | WrapAlgorithm::RsaOaepSha256Ik4096
    )
}

/// The KEM ciphertext length of an ML-KEM wrap algorithm.
fn kem_ciphertext_len(algorithm: WrapAlgorithm) -> Option<usize> {
    crate::crypto::mlkem::lengths(algorithm).map(|(_, ct)| ct)
}

/// A 32-byte shared secret from an Encapsulate or Decapsulate answer, kept zeroizing.
fn shared_secret(blob: Option<Blob>) -> Result<Zeroizing<Vec<u8>>, BackendError> {
    blob.map(Blob::into_inner)
        .map(Zeroizing::new)
        .filter(|s| s.len() == 32)
        .ok_or(BackendError::MalformedResponse {
            what: "shared secret",
        })
}

/// The error and its sources as text (the SDK puts the reason a layer or two down).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl AwsKmsBackend {
    /// Loads the SDK configuration (credentials and region chains) and builds the
    /// backend. No KMS call is made until the first wrap.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an endpoint that is not an http(s) URL or carries a
    /// user or password.
    pub async fn new(config: AwsKmsConfig) -> Result<Self, Error> {
        // An endpoint with a user or password in it would print wherever it does (this
        // configuration's Debug among them); KMS takes none there.
        let bad_endpoint = |u: &str| {
            let Some(rest) = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
            else {
                return true;
            };
            let authority = rest.split('/').next().unwrap_or_default();
            authority.len() < 3 || authority.contains('@')
        };
        if config.endpoint_url.as_deref().is_some_and(bad_endpoint) {
            return Err(config_err(
                "the KMS endpoint must be an http(s)://host[:port] URL without credentials".into(),
            ));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &config.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(c.clone());
        }
        let base = loader.load().await;
        let region = config
            .region
            .clone()
            .or_else(|| base.region().map(|r| r.to_string()));
        let mut info = BackendInfo::new(
            BackendId::AwsKms,
            "AWS KMS (symmetric, RSA 2048/3072/4096 and ML-KEM-768/1024 keys)",
            vec![
                WrapAlgorithm::Aes256Opaque,
                WrapAlgorithm::RsaOaepSha256Ik2048,
                WrapAlgorithm::RsaOaepSha256Ik3072,
                WrapAlgorithm::RsaOaepSha256Ik4096,
                WrapAlgorithm::MlKem768,
                WrapAlgorithm::MlKem1024,
            ],
        );
        info.hardware_backed = true;
        Ok(Self {
            info,
            base,
            region,
            endpoint_url: config.endpoint_url,
            call: config.call,
            encapsulate: config.encapsulate,
            clients: tokio::sync::Mutex::new(HashMap::new()),
            resolved: RwLock::new(HashMap::new()),
            public: Mutex::new(HashMap::new()),
        })
    }

    fn crypto(&self) -> &'static dyn Primitives {
        crypto::default_provider()
    }

    /// The client for a region and role (assuming the role through STS).
    async fn client(&self, kek: &AwsKmsKek) -> aws_sdk_kms::Client {
        let id = (kek.region.clone(), kek.role.clone());
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&id) {
            return c.clone();
        }
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.call.connect())
            .operation_attempt_timeout(self.call.attempt())
            .build();
        let mut b = aws_sdk_kms::config::Builder::from(&self.base)
            .region(Region::new(kek.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(u) = &self.endpoint_url {
            b = b.endpoint_url(u.clone());
        }
        if let Some(role) = &kek.role {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
                .session_name("kekring")
                .region(Region::new(kek.region.clone()))
                .configure(&self.base)
                .build()
                .await;
            b = b.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        let client = aws_sdk_kms::Client::from_conf(b.build());
        clients.insert(id, client.clone());
        client
    }

    fn parse(locator: &KekLocator) -> Result<AwsKmsKek, BackendError> {
        AwsKmsKek::parse(locator).map_err(|e| BackendError::InvalidLocator {
            reason: e.to_string(),
        })
    }

    /// The key's ARN (checked against the locator) and algorithm, from `DescribeKey`.
    async fn describe(
        client: &aws_sdk_kms::Client,
        kek: &AwsKmsKek,
        locator: &KekLocator,
    ) -> Result<(String, WrapAlgorithm), BackendError> {
        let out = client
            .describe_key()
            .key_id(&kek.key)
            .send()
            .await
            .map_err(|e| map_err(e, locator, "describe_key"))?;
        let meta = out.key_metadata().ok_or(BackendError::MalformedResponse {
            what: "DescribeKey answer",
        })?;
        let arn = meta
            .arn()
            .ok_or(BackendError::MalformedResponse {
                what: "DescribeKey answer",
            })?
            .to_owned();
        if !kek.answered_by(&arn) {
            return Err(BackendError::KeyMismatch {
                asked: locator.clone(),
                answered: KekLocator::new(arn),
            });
        }
        let algorithm = match (meta.key_spec(), meta.key_usage()) {
            (Some(KeySpec::SymmetricDefault), Some(KeyUsageType::EncryptDecrypt)) => {
                WrapAlgorithm::Aes256Opaque
            }
            (Some(KeySpec::Rsa2048), Some(KeyUsageType::EncryptDecrypt)) => {
                WrapAlgorithm::RsaOaepSha256Ik2048
            }
            (Some(KeySpec::Rsa3072), Some(KeyUsageType::EncryptDecrypt)) => {
                WrapAlgorithm::RsaOaepSha256Ik3072
            }
            (Some(KeySpec::Rsa4096), Some(KeyUsageType::EncryptDecrypt)) => {
                WrapAlgorithm::RsaOaepSha256Ik4096
            }
            (Some(KeySpec::MlKem768), Some(KeyUsageType::EncapsulateDecapsulate)) => {
                WrapAlgorithm::MlKem768
            }
            (Some(KeySpec::MlKem1024), Some(KeyUsageType::EncapsulateDecapsulate)) => {
                WrapAlgorithm::MlKem1024
            }
            _ => {
                return Err(BackendError::UnsupportedAlgorithm {
                    kek: locator.clone(),
                    algorithm: WrapAlgorithm::Aes256Opaque,
                });
            }
        };
        Ok((arn, algorithm))
    }

    /// The KEK ready for calls (resolved once per locator; afterwards one read lock),
    /// checked to be of the algorithm asked for.
    async fn prepare(
        &self,
        locator: &KekLocator,
        algorithm: WrapAlgorithm,
    ) -> Result<Arc<Resolved>, BackendError> {
        let cached = self
            .resolved
            .read()
            .ok()
            .and_then(|m| m.get(locator).cloned());
        let r = match cached {
            Some(r) => r,
            None => {
                let kek = Self::parse(locator)?;
                let client = self.client(&kek).await;
                let (arn, algorithm) = Self::describe(&client, &kek, locator).await?;
                let r = Arc::new(Resolved {
                    arn,
                    algorithm,
                    client,
                });
                if let Ok(mut m) = self.resolved.write() {
                    m.insert(locator.clone(), r.clone());
                }
                r
            }
        };
        if r.algorithm != algorithm {
            return Err(BackendError::UnsupportedAlgorithm {
                kek: locator.clone(),
                algorithm,
            });
        }
        Ok(r)
    }

    fn check_answer(
        resolved: &Resolved,
        locator: &KekLocator,
        answered: Option<&str>,
    ) -> Result<(), BackendError> {
        match answered {
            Some(a) if a == resolved.arn => Ok(()),
            Some(a) => Err(BackendError::KeyMismatch {
                asked: locator.clone(),
                answered: KekLocator::new(a),
            }),
            None => Err(BackendError::MalformedResponse {
                what: "KMS answer without KeyId",
            }),
        }
    }

    fn encryption_context(binding: &BindingContext) -> HashMap<String, String> {
        binding
            .encryption_context()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// One KMS `Encrypt` under the resolved key, the answer's key checked: the
    /// ciphertext blob.
    async fn kms_encrypt(
        r: &Resolved,
        locator: &KekLocator,
        plaintext: &[u8],
        algorithm: EncryptionAlgorithmSpec,
        context: Option<HashMap<String, String>>,
    ) -> Result<Vec<u8>, BackendError> {
        let out = r
            .client
            .encrypt()
            .key_id(&r.arn)
            .plaintext(Blob::new(plaintext.to_vec()))
            .set_encryption_context(context)
            .encryption_algorithm(algorithm)
            .send()
            .await
            .map_err(|e| map_err(e, locator, "wrap"))?;
        Self::check_answer(r, locator, out.key_id())?;
        out.ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or(BackendError::MalformedResponse {
                what: "Encrypt answer",
            })
    }

    /// One KMS `Decrypt` under the resolved key (always named: KMS must not pick the
    /// key from the blob), the answer's key checked: the plaintext, zeroizing.
    async fn kms_decrypt(
        r: &Resolved,
        locator: &KekLocator,
        ciphertext: &[u8],
        algorithm: EncryptionAlgorithmSpec,
        context: Option<HashMap<String, String>>,
    ) -> Result<Zeroizing<Vec<u8>>, BackendError> {
        let out = r
            .client
            .decrypt()
            .key_id(&r.arn)
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_encryption_context(context)
            .encryption_algorithm(algorithm)
            .send()
            .await
            .map_err(|e| map_err(e, locator, "unwrap"))?;
        Self::check_answer(r, locator, out.key_id())?;
        out.plaintext
            .map(Blob::into_inner)
            .map(Zeroizing::new)
            .ok_or(BackendError::MalformedResponse {
                what: "Decrypt answer",
            })
    }

    /// Construction 1 with a symmetric key: the DEK encrypted by KMS with the binding as
    /// encryption context.
    async fn encrypt(
        &self,
        locator: &KekLocator,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<WrapResponse, BackendError> {
        let r = self.prepare(locator, WrapAlgorithm::Aes256Opaque).await?;
        let blob = Self::kms_encrypt(
            &r,
            locator,
            dek.expose_secret(),
            EncryptionAlgorithmSpec::SymmetricDefault,
            Some(Self::encryption_context(binding)),
        )
        .await?;
        Ok(WrapResponse::new(locator.clone(), Vec::new(), blob))
    }

    async fn decrypt(
        &self,
        locator: &KekLocator,
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<UnwrapResponse, BackendError> {
        let r = self.prepare(locator, WrapAlgorithm::Aes256Opaque).await?;
        let plain = Self::kms_decrypt(
            &r,
            locator,
            wrapped,
            EncryptionAlgorithmSpec::SymmetricDefault,
            Some(Self::encryption_context(binding)),
        )
        .await?;
        // A ciphertext of this key and context that holds no 32-byte key is not a wrap.
        let dek = DataKey::from_slice(&plain).map_err(|_| BackendError::Rejected)?;
        Ok(UnwrapResponse::new(locator.clone(), dek))
    }

    /// The intermediate-key construction (FORMAT.md §11.3) with an RSA key: KMS encrypts
    /// a fresh intermediate key with RSAES-OAEP-SHA-256 (KMS takes no encryption context
    /// with asymmetric keys), and the DEK is sealed under it here with the binding as
    /// AAD.
    async fn rsa_wrap(
        &self,
        locator: &KekLocator,
        algorithm: WrapAlgorithm,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<WrapResponse, BackendError> {
        let r = self.prepare(locator, algorithm).await?;
        let ik = intermediate::fresh_key()?;
        let params = Self::kms_encrypt(
            &r,
            locator,
            ik.as_slice(),
            EncryptionAlgorithmSpec::RsaesOaepSha256,
            None,
        )
        .await?;
        let wrapped = intermediate::seal_dek(self.crypto(), algorithm, &ik, binding, dek)?;
        Ok(WrapResponse::new(locator.clone(), params, wrapped))
    }

    async fn rsa_unwrap(
        &self,
        locator: &KekLocator,
        algorithm: WrapAlgorithm,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<UnwrapResponse, BackendError> {
        let r = self.prepare(locator, algorithm).await?;
        let ik = Self::kms_decrypt(
            &r,
            locator,
            params,
            EncryptionAlgorithmSpec::RsaesOaepSha256,
            None,
        )
        .await?;
        // An RSA ciphertext of this key that holds no 32-byte key is not a wrap.
        let ik: &[u8; 32] = ik
            .as_slice()
            .try_into()
            .map_err(|_| BackendError::Rejected)?;
        let dek = intermediate::open_dek(self.crypto(), algorithm, ik, binding, wrapped)?;
        Ok(UnwrapResponse::new(locator.clone(), dek))
    }

    /// The KEK's public key, fetched by `GetPublicKey` and kept for the TTL.
    async fn public_key(
        &self,
        r: &Resolved,
        locator: &KekLocator,
        ttl: Duration,
    ) -> Result<Arc<MlKemPublicKey>, BackendError> {
        let cached = self
            .public
            .lock()
            .ok()
            .and_then(|m| m.get(&r.arn).cloned())
            .filter(|(at, _)| at.elapsed() < ttl);
        if let Some((_, k)) = cached {
            return Ok(k);
        }
        let out = r
            .client
            .get_public_key()
            .key_id(&r.arn)
            .send()
            .await
            .map_err(|e| map_err(e, locator, "get_public_key"))?;
        Self::check_answer(r, locator, out.key_id())?;
        let der = out.public_key().ok_or(BackendError::MalformedResponse {
            what: "GetPublicKey answer",
        })?;
        let (algorithm, ek) = mlkem_spki(der.as_ref()).ok_or(BackendError::MalformedResponse {
            what: "ML-KEM public key",
        })?;
        if algorithm != r.algorithm {
            return Err(BackendError::MalformedResponse {
                what: "public key of another ML-KEM parameter set",
            });
        }
        let key = MlKemPublicKey::from_bytes(algorithm, ek).map_err(|_| {
            BackendError::MalformedResponse {
                what: "ML-KEM public key",
            }
        })?;
        let key = Arc::new(key);
        if let Ok(mut m) = self.public.lock() {
            m.insert(r.arn.clone(), (Instant::now(), key.clone()));
        }
        Ok(key)
    }

    async fn kem_wrap(
        &self,
        locator: &KekLocator,
        algorithm: WrapAlgorithm,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<WrapResponse, BackendError> {
        let r = self.prepare(locator, algorithm).await?;
        let (params, wrapped) = match self.encapsulate {
            EncapsulateMode::Local { ttl } => {
                let key = self.public_key(&r, locator, ttl).await?;
                encapsulate_and_wrap(self.crypto(), &key, binding, dek)?
            }
            EncapsulateMode::Service => {
                let out = r
                    .client
                    .encapsulate()
                    .key_id(&r.arn)
                    .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
                    .send()
                    .await
                    .map_err(|e| map_err(e, locator, "wrap"))?;
                Self::check_answer(&r, locator, out.key_id())?;
                let ct = out
                    .shared_secret_ciphertext_blob()
                    .map(|b| b.as_ref().to_vec())
                    .filter(|ct| Some(ct.len()) == kem_ciphertext_len(algorithm))
                    .ok_or(BackendError::MalformedResponse {
                        what: "Encapsulate ciphertext",
                    })?;
                let ss = shared_secret(out.shared_secret)?;
                wrap_with_ciphertext(self.crypto(), algorithm, ct, &ss, binding, dek)?
            }
        };
        Ok(WrapResponse::new(locator.clone(), params, wrapped))
    }

    async fn kem_unwrap(
        &self,
        locator: &KekLocator,
        algorithm: WrapAlgorithm,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<UnwrapResponse, BackendError> {
        // A ciphertext of another length is not a wrap under this KEK: refused here, as
        // services answer it differently (InvalidCiphertext or Validation).
        if Some(params.len()) != kem_ciphertext_len(algorithm) {
            return Err(BackendError::Rejected);
        }
        let r = self.prepare(locator, algorithm).await?;
        let out = r
            .client
            .decapsulate()
            .key_id(&r.arn)
            .shared_secret_ciphertext_blob(Blob::new(params.to_vec()))
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .map_err(|e| map_err(e, locator, "unwrap"))?;
        Self::check_answer(&r, locator, out.key_id())?;
        let ss = shared_secret(out.shared_secret)?;
        // Implicit rejection: a tampered ciphertext gave an unrelated secret, and the
        // RFC 3394 check below refuses it.
        let dek = unwrap_with_ciphertext(self.crypto(), algorithm, params, &ss, binding, wrapped)?;
        Ok(UnwrapResponse::new(locator.clone(), dek))
    }
}

#[async_trait]
impl KeyBackend for AwsKmsBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    /// The key ARN (whatever role reaches it). A key id or an alias names no fixed key
    /// (an alias can be re-pointed; a key id names no account): resolve it first.
    fn key_identity(&self, kek: &KekLocator) -> Result<KeyIdentity, BackendError> {
        let k = Self::parse(kek)?;
        if k.key.starts_with("arn:") && k.key.contains(":key/") {
            return Ok(KeyIdentity::new(k.key));
        }
        Err(BackendError::Unresolved(kek.clone()))
    }

    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        let (kek, alg) = (req.kek, req.algorithm);
        self.call
            .run("wrap", || async {
                match alg {
                    WrapAlgorithm::Aes256Opaque => self.encrypt(kek, req.dek, req.binding).await,
                    _ if is_rsa(alg) => self.rsa_wrap(kek, alg, req.dek, req.binding).await,
                    _ => self.kem_wrap(kek, alg, req.dek, req.binding).await,
                }
            })
            .await
    }

    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        let (kek, alg) = (req.kek, req.algorithm);
        self.call
            .run("unwrap", || async {
                match alg {
                    WrapAlgorithm::Aes256Opaque => {
                        if !req.params.is_empty() {
                            return Err(BackendError::Rejected);
                        }
                        self.decrypt(kek, req.wrapped, req.binding).await
                    }
                    _ if is_rsa(alg) => {
                        self.rsa_unwrap(kek, alg, req.params, req.wrapped, req.binding)
                            .await
                    }
                    _ => {
                        self.kem_unwrap(kek, alg, req.params, req.wrapped, req.binding)
                            .await
                    }
                }
            })
            .await
    }

    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        let hint = KekLocator::new(spec.name_hint.clone());
        let (key_spec, usage) = match spec.algorithm {
            WrapAlgorithm::Aes256Opaque => {
                (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
            }
            WrapAlgorithm::RsaOaepSha256Ik2048 => (KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt),
            WrapAlgorithm::RsaOaepSha256Ik3072 => (KeySpec::Rsa3072, KeyUsageType::EncryptDecrypt),
            WrapAlgorithm::RsaOaepSha256Ik4096 => (KeySpec::Rsa4096, KeyUsageType::EncryptDecrypt),
            WrapAlgorithm::MlKem768 => (KeySpec::MlKem768, KeyUsageType::EncapsulateDecapsulate),
            WrapAlgorithm::MlKem1024 => (KeySpec::MlKem1024, KeyUsageType::EncapsulateDecapsulate),
            algorithm => {
                return Err(BackendError::UnsupportedAlgorithm {
                    kek: hint,
                    algorithm,
                });
            }
        };
        // A successor lives beside its predecessor: same region, same role.
        let (region, role) = match &spec.successor_of {
            Some(current) => {
                let k = Self::parse(current)?;
                (k.region, k.role)
            }
            None => (
                self.region
                    .clone()
                    .ok_or_else(|| BackendError::InvalidRequest {
                        message: "no region configured for new KMS keys".into(),
                    })?,
                None,
            ),
        };
        let probe = AwsKmsKek::new("alias/probe", &region, role.as_deref()).map_err(|e| {
            BackendError::InvalidRequest {
                message: e.to_string(),
            }
        })?;
        let client = self.client(&probe).await;
        let description = format!("kekring KEK {}", spec.name_hint);
        // Not retried: a CreateKey that timed out may have made a key; a second attempt
        // would make another (billed, unnamed anywhere).
        let out = self
            .call
            .clone()
            .no_retries()
            .run("create_kek", || async {
                client
                    .create_key()
                    .key_spec(key_spec.clone())
                    .key_usage(usage.clone())
                    .description(&description)
                    .send()
                    .await
                    .map_err(|e| map_err(e, &hint, "create_kek"))
            })
            .await?;
        let arn =
            out.key_metadata()
                .and_then(|m| m.arn())
                .ok_or(BackendError::MalformedResponse {
                    what: "CreateKey answer",
                })?;
        let kek = AwsKmsKek::new(arn, &region, role.as_deref()).map_err(|_| {
            BackendError::MalformedResponse {
                what: "CreateKey ARN",
            }
        })?;
        Ok(KekDescriptor::new(kek.locator(), spec.algorithm))
    }

    /// The locator with its key named by its ARN (an alias or key id resolved by
    /// `DescribeKey`, and checked against the locator): what to register, so that a
    /// re-pointed alias cannot move the KEK to another key.
    async fn resolve_kek(&self, locator: &KekLocator) -> Result<KekLocator, BackendError> {
        let kek = Self::parse(locator)?;
        let client = self.client(&kek).await;
        let (arn, _) = self
            .call
            .run("resolve_kek", || Self::describe(&client, &kek, locator))
            .await?;
        AwsKmsKek::new(&arn, &kek.region, kek.role.as_deref())
            .map(|k| k.locator())
            .map_err(|_| BackendError::MalformedResponse {
                what: "DescribeKey ARN",
            })
    }

    /// Schedules the key's deletion after KMS's shortest waiting period (7 days);
    /// `CancelKeyDeletion` can still undo it until then. A key already pending deletion
    /// counts as destroyed; any other state KMS refuses in is an error.
    async fn destroy_kek(&self, locator: &KekLocator) -> Result<(), BackendError> {
        let kek = Self::parse(locator)?;
        let client = self.client(&kek).await;
        let (arn, _) = self
            .call
            .run("destroy_kek", || Self::describe(&client, &kek, locator))
            .await?;
        let scheduled = self
            .call
            .run("destroy_kek", || async {
                client
                    .schedule_key_deletion()
                    .key_id(&arn)
                    .pending_window_in_days(7)
                    .send()
                    .await
                    .map_err(|e| map_err(e, locator, "destroy_kek"))
            })
            .await;
        match scheduled {
            Ok(_) => Ok(()),
            Err(BackendError::KeyDisabled { .. }) => {
                let state = self
                    .call
                    .run("destroy_kek", || async {
                        client
                            .describe_key()
                            .key_id(&arn)
                            .send()
                            .await
                            .map_err(|e| map_err(e, locator, "destroy_kek"))
                    })
                    .await?
                    .key_metadata()
                    .and_then(|m| m.key_state().cloned());
                match state {
                    Some(KeyState::PendingDeletion) => Ok(()),
                    other => Err(BackendError::KeyDisabled {
                        kek: locator.clone(),
                        state: format!("cannot be scheduled for deletion in state {other:?}"),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip_and_bad_ones_are_refused() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let role = "arn:aws:iam::444455556666:role/kekring";
        let k = AwsKmsKek::new(arn, "eu-west-1", Some(role)).unwrap();
        let l = k.locator();
        assert_eq!(AwsKmsKek::parse(&l).unwrap(), k);
        assert_eq!(
            AwsKmsKek::parse(&KekLocator::new("aws-kms:us-east-1:alias/acme"))
                .unwrap()
                .locator()
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
            assert!(AwsKmsKek::parse(&KekLocator::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_answered_arn_must_fit_the_locator() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let fits = |key: &str, answered: &str| {
            AwsKmsKek::new(key, "eu-west-1", None)
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
            let l = AwsKmsKek::new(key, "eu-west-1", role).unwrap().locator();
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
        ] {
            assert!(
                AwsKmsBackend::new(cfg.clone().endpoint_url(bad))
                    .await
                    .is_err(),
                "{bad:?}"
            );
        }
    }
}

#[cfg(all(test, feature = "local"))]
mod spki_tests {
    use super::*;

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
                    0x30, 0x82, 0x04, 0xb2, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                    0x03, 0x04, 0x04, 0x02, 0x03, 0x82, 0x04, 0xa1, 0x00,
                ]
            } else {
                &[
                    0x30, 0x82, 0x06, 0x32, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                    0x03, 0x04, 0x04, 0x03, 0x03, 0x82, 0x06, 0x21, 0x00,
                ]
            };
            let der = [head, &ek].concat();
            assert_eq!(mlkem_spki(&der), Some((alg, ek.as_slice())));
            let mut trailing = der.clone();
            trailing.push(0);
            assert_eq!(mlkem_spki(&trailing), None);
            assert_eq!(mlkem_spki(&der[..der.len() - 1]), None);
            let mut other_oid = der.clone();
            other_oid[16] = 0x01; // ML-KEM-512's OID, not offered
            assert_eq!(mlkem_spki(&other_oid), None);
        }
    }
}
