//! AWS KMS KEKs (feature `aws-kms`, over `aws-sdk-kms` and `aws-config`), on the
//! backend chassis ([`RemoteBackend`]): this file holds the locator, the configuration,
//! the error table and the [`Service`] implementation.
//!
//! A KEK is a KMS key in a region, optionally reached by assuming a role in the key
//! owner's account (how a tenant brings its own key). Its locator is
//! `aws-kms:{region}:{key}[;role={role ARN}]` ([`AwsKmsLocator`]); the key ring records
//! it with the key ARN, which is the key's identity whatever role reaches it. A key id or
//! an alias names no fixed key (an alias can be re-pointed): register it with
//! [`Envelope::register_kek`](crate::Envelope::register_kek), which resolves it
//! (`DescribeKey`) to the ARN it names then.
//!
//! | key spec | wrap algorithm | construction (FORMAT.md §11) |
//! |---|---|---|
//! | `SYMMETRIC_DEFAULT` | [`WrapAlgorithm::Aes256Opaque`] | 1: `Encrypt` / `Decrypt` with the binding as `EncryptionContext` |
//! | `RSA_2048`, `RSA_3072`, `RSA_4096` | [`WrapAlgorithm::RsaOaepSha256Ik2048`] (`3072`, `4096`) | 2: KMS encrypts a fresh intermediate key (`RSAES_OAEP_SHA_256`), the DEK is sealed under it locally with the binding as AAD |
//! | `ML_KEM_768`, `ML_KEM_1024` | [`WrapAlgorithm::MlKem768`], [`WrapAlgorithm::MlKem1024`] | 3: encapsulate to the pinned public key (`GetPublicKey`), wrap locally; `Decapsulate` in KMS |
//!
//! Every call names the key by its ARN (`Decrypt` and `Decapsulate` too), and every
//! answer must name it back. ML-KEM wraps are the same bytes a local ML-KEM KEK makes;
//! the locator of an ML-KEM KEK carries the digest of its public key, pinned when it is
//! created or resolved, and a public key fetched later that does not match it is refused
//! ([`BackendError::PublicKeyChanged`]). Local steps (encapsulation, HKDF, key wrap, the
//! intermediate key's AES-GCM) run on the envelope's crypto provider.
//!
//! Credentials come from the AWS SDK's standard chain (environment, profile, web
//! identity, container and instance metadata) or are given explicitly; a role is assumed
//! through STS with those credentials, with the `ExternalId` configured for that role
//! ([`AwsKmsConfig::external_id`]). None of them enter a locator or the key ring.
//! Endpoints, configured or read by the SDK from `AWS_ENDPOINT_URL_KMS`,
//! `AWS_ENDPOINT_URL` or a profile's `endpoint_url`, pass the transport policy
//! ([`Endpoint`]): https, or http to a loopback address only. Answers larger than
//! [`MAX_ANSWER_LEN`](super::kit::MAX_ANSWER_LEN) are refused. The SDK's own retries are
//! off: the [`CallPolicy`] retries transient failures, so that one budget bounds a call.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use aws_sdk_kms::config::Credentials;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    EncapsulationAlgorithmSpec, EncryptionAlgorithmSpec, KeySpec, KeyState, KeyUsageType,
};

pub use super::kit::EncapsulateMode;
use super::kit::{
    Answer, CallError, CallPolicy, Described, Encapsulation, Endpoint, ErrorClass, Locator,
    Operation, RemoteBackend, Required, Secret, Service, ServiceFailure, TlsConfig, debug_redacted,
    invalid_locator, ml_kem_spki,
};
use super::{BackendError, BackendInfo, KekLocator, KekSpec, KeyIdentity, ServiceOutcome};
use crate::error::{ConfigError, Error};
use crate::format::{BackendId, BindingContext, WrapAlgorithm};

mod sdk;

use sdk::sdk_error;

/// Where an AWS KMS KEK is: key, region, optional role to assume.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AwsKmsLocator {
    region: String,
    key: String,
    role: Option<String>,
}

impl fmt::Debug for AwsKmsLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_redacted(f, "AwsKmsLocator", &self.to_locator())
    }
}

fn config_err(reason: String) -> Error {
    ConfigError::Backend { reason }.into()
}

impl AwsKmsLocator {
    /// A KEK: `key` is a key ARN, key id, `alias/...` or alias ARN; `role` an IAM role ARN
    /// to assume.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an empty or malformed field, or an ARN whose region
    /// is not `region`.
    pub fn new(key: &str, region: &str, role: Option<&str>) -> Result<Self, Error> {
        Self::checked(key, region, role).map_err(config_err)
    }

    fn checked(key: &str, region: &str, role: Option<&str>) -> Result<Self, String> {
        let region_ok = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err("not an AWS region".into());
        }
        let key_ok = !key.is_empty()
            && key.len() <= 2048
            && !key.contains([';', '#'])
            && !key.chars().any(char::is_whitespace);
        if !key_ok {
            return Err("not a KMS key id, ARN or alias".into());
        }
        if let Some(rest) = key.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let is_kms = parts.get(1) == Some(&"kms");
            if !is_kms || parts.get(2) != Some(&region) || parts.len() != 5 {
                return Err(format!("a KMS ARN in region {region} was expected"));
            }
        }
        if let Some(r) = role
            && (!r.starts_with("arn:") || !r.contains(":role/") || r.contains([';', '#']))
        {
            return Err("not an IAM role ARN".into());
        }
        Ok(Self {
            region: region.to_owned(),
            key: key.to_owned(),
            role: role.map(str::to_owned),
        })
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The key as named: a key ARN, key id, alias or alias ARN.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The role assumed, if any.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// Whether the key is named by its key ARN (a fixed key).
    fn is_key_arn(&self) -> bool {
        self.key.starts_with("arn:") && self.key.contains(":key/")
    }

    /// This locator with the key named by `arn`.
    fn with_key(&self, arn: &str) -> Self {
        Self {
            key: arn.to_owned(),
            ..self.clone()
        }
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
}

impl Locator for AwsKmsLocator {
    /// Reads `aws-kms:{region}:{key}[;role={role ARN}]`.
    fn parse(locator: &KekLocator) -> Result<Self, BackendError> {
        let rest = locator
            .as_str()
            .strip_prefix("aws-kms:")
            .ok_or_else(|| invalid_locator("an AWS KMS locator starts with aws-kms:"))?;
        let (main, role) = match rest.split_once(";role=") {
            Some((m, r)) => (m, Some(r)),
            None => (rest, None),
        };
        let (region, key) = main
            .split_once(':')
            .ok_or_else(|| invalid_locator("aws-kms:{region}:{key} expected"))?;
        Self::checked(key, region, role).map_err(invalid_locator)
    }

    fn to_locator(&self) -> KekLocator {
        let mut s = format!("aws-kms:{}:{}", self.region, self.key);
        if let Some(r) = &self.role {
            s.push_str(";role=");
            s.push_str(r);
        }
        KekLocator::new(s)
    }
}

/// How to reach KMS.
#[derive(Clone, Default)]
pub struct AwsKmsConfig {
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<Credentials>,
    external_ids: HashMap<String, String>,
    call: CallPolicy,
    encapsulate: EncapsulateMode,
    tls: TlsConfig,
}

impl fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsConfig")
            .field("region", &self.region)
            .field(
                "endpoint_url",
                &self
                    .endpoint_url
                    .as_deref()
                    .map(super::kit::redacted_address),
            )
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[REDACTED]"),
            )
            // Which roles carry one; the values are the key owners' to share.
            .field(
                "external_ids",
                &self
                    .external_ids
                    .keys()
                    .collect::<std::collections::BTreeSet<_>>(),
            )
            .field("call", &self.call)
            .field("encapsulate", &self.encapsulate)
            .field("tls", &self.tls)
            .finish()
    }
}

impl AwsKmsConfig {
    /// The SDK's standard chain for credentials, region and endpoint.
    pub fn new() -> Self {
        Self::default()
    }

    /// The region new KEKs are created in (default: the SDK's region chain, e.g.
    /// `AWS_REGION`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Another endpoint (a VPC endpoint, a FIPS endpoint, a local test server): https,
    /// or http to a loopback address. Without it, an endpoint the SDK reads from
    /// `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL` or the profile passes the same check.
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

    /// The `ExternalId` to send when assuming `role_arn` (a locator's `;role=`): what a
    /// key owner's trust policy asks of a third party (`"Condition": {"StringEquals":
    /// {"sts:ExternalId": "..."}}`), so that another customer of the same service
    /// cannot have it assume this owner's role. Sent with that role only; a role
    /// without one is assumed without it.
    pub fn external_id(
        mut self,
        role_arn: impl Into<String>,
        external_id: impl Into<String>,
    ) -> Self {
        self.external_ids
            .insert(role_arn.into(), external_id.into());
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

    /// Which certificates KMS (and STS) connections trust (default: the platform's).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }
}

/// A KMS key as the service's calls name it: its ARN and the client of its region and
/// role.
pub struct KmsKey {
    arn: String,
    client: aws_sdk_kms::Client,
}

impl fmt::Debug for KmsKey {
    // Not the client's: it would print its configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KmsKey({:?})", KeyIdentity::new(self.arn.as_str()))
    }
}

/// The AWS KMS [`Service`]: clients per region and role, from one SDK configuration.
pub struct AwsKms {
    base: aws_config::SdkConfig,
    external_ids: HashMap<String, String>,
    region: Option<String>,
    endpoint: Option<Endpoint>,
    call: CallPolicy,
    clients: tokio::sync::Mutex<HashMap<(String, Option<String>), aws_sdk_kms::Client>>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

/// AWS KMS KEKs in any region and account the credentials reach: the chassis on
/// [`AwsKms`]. See the module docs.
pub type AwsKmsBackend = RemoteBackend<AwsKms>;

/// What KMS documents for each exception, by its error code.
fn error_class(code: &str) -> Option<ErrorClass> {
    Some(match code {
        "NotFoundException" | "InvalidArnException" => ErrorClass::KeyNotFound,
        "DisabledException" | "KMSInvalidStateException" => ErrorClass::KeyDisabled,
        "IncorrectKeyException" | "InvalidCiphertextException" => ErrorClass::Rejected,
        "AccessDeniedException" => ErrorClass::PermissionDenied,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "ExpiredToken" => ErrorClass::Credentials,
        "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => ErrorClass::Throttled,
        "KeyUnavailableException"
        | "DependencyTimeoutException"
        | "KMSInternalException"
        | "InternalFailure"
        | "ServiceUnavailable" => ErrorClass::Unavailable,
        "InvalidKeyUsageException" | "UnsupportedOperationException" => {
            ErrorClass::UnsupportedAlgorithm
        }
        "ValidationException" | "InvalidGrantTokenException" | "LimitExceededException" => {
            ErrorClass::InvalidRequest
        }
        _ => return None,
    })
}

/// The key specs and usages of KMS keys kekring uses, and their wrap algorithms.
const KEY_SPECS: [(KeySpec, KeyUsageType, WrapAlgorithm); 6] = {
    use KeyUsageType::{EncapsulateDecapsulate as Kem, EncryptDecrypt as Enc};
    [
        (KeySpec::SymmetricDefault, Enc, WrapAlgorithm::Aes256Opaque),
        (KeySpec::Rsa2048, Enc, WrapAlgorithm::RsaOaepSha256Ik2048),
        (KeySpec::Rsa3072, Enc, WrapAlgorithm::RsaOaepSha256Ik3072),
        (KeySpec::Rsa4096, Enc, WrapAlgorithm::RsaOaepSha256Ik4096),
        (KeySpec::MlKem768, Kem, WrapAlgorithm::MlKem768),
        (KeySpec::MlKem1024, Kem, WrapAlgorithm::MlKem1024),
    ]
};

#[async_trait]
impl Service for AwsKms {
    type Locator = AwsKmsLocator;
    type Key = KmsKey;

    fn info(&self) -> BackendInfo {
        let mut info = BackendInfo::new(
            BackendId::AwsKms,
            "AWS KMS (symmetric, RSA 2048/3072/4096 and ML-KEM-768/1024 keys)",
            KEY_SPECS.iter().map(|(_, _, a)| *a).collect(),
        );
        info.hardware_backed = true;
        info.local_operations = "ML-KEM encapsulation, HKDF-SHA-256 and the RFC 3394 wrap of the \
            DEK (ML-KEM keys), the intermediate key and its AES-256-GCM seal of the DEK (RSA \
            keys): on the envelope's crypto provider. KMS holds every private key."
            .into();
        info
    }

    fn call_policy(&self) -> &CallPolicy {
        &self.call
    }

    fn classify(&self, failure: &ServiceFailure, _operation: Operation) -> Option<ErrorClass> {
        failure.code.as_deref().and_then(error_class)
    }

    /// The key ARN, whatever role reaches it; a key id or an alias is unresolved.
    fn identity(&self, locator: &AwsKmsLocator) -> Result<KeyIdentity, BackendError> {
        if locator.is_key_arn() {
            return Ok(KeyIdentity::new(locator.key.clone()));
        }
        Err(BackendError::Unresolved(locator.to_locator()))
    }

    async fn describe(&self, locator: &AwsKmsLocator) -> Result<Described<KmsKey>, CallError> {
        let client = self.client(&locator.region, locator.role()).await;
        let out = client
            .describe_key()
            .key_id(&locator.key)
            .send()
            .await
            .map_err(sdk_error)?;
        let meta = out.key_metadata().required("DescribeKey answer")?;
        let arn = meta.arn().required("DescribeKey answer")?.to_owned();
        if !locator.answered_by(&arn) {
            return Err(CallError::Backend(BackendError::KeyMismatch {
                asked: locator.to_locator(),
                answered: KekLocator::new(arn),
            }));
        }
        let algorithm = KEY_SPECS
            .iter()
            .find(|(spec, usage, _)| {
                meta.key_spec() == Some(spec) && meta.key_usage() == Some(usage)
            })
            .map(|(_, _, a)| *a)
            .ok_or_else(|| {
                CallError::Backend(BackendError::UnsupportedAlgorithm {
                    kek: locator.to_locator(),
                    algorithm: WrapAlgorithm::Aes256Opaque,
                })
            })?;
        let stable = locator.with_key(&arn).to_locator();
        Ok(Described::new(
            KmsKey {
                arn: arn.clone(),
                client,
            },
            KeyIdentity::new(arn),
            algorithm,
            stable,
        ))
    }

    async fn encrypt(
        &self,
        key: &KmsKey,
        plaintext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        let context = Some(Self::context(binding));
        Self::kms_encrypt(
            key,
            plaintext,
            EncryptionAlgorithmSpec::SymmetricDefault,
            context,
        )
        .await
    }

    async fn decrypt(
        &self,
        key: &KmsKey,
        ciphertext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Secret>, CallError> {
        let context = Some(Self::context(binding));
        Self::kms_decrypt(
            key,
            ciphertext,
            EncryptionAlgorithmSpec::SymmetricDefault,
            context,
        )
        .await
    }

    /// RSAES-OAEP-SHA-256 in KMS (KMS binds no context to asymmetric keys: the chassis
    /// seals the DEK under the intermediate key with the binding).
    async fn wrap_key(
        &self,
        key: &KmsKey,
        intermediate: &[u8],
    ) -> Result<Answer<Vec<u8>>, CallError> {
        Self::kms_encrypt(
            key,
            intermediate,
            EncryptionAlgorithmSpec::RsaesOaepSha256,
            None,
        )
        .await
    }

    async fn unwrap_key(&self, key: &KmsKey, wrapped: &[u8]) -> Result<Answer<Secret>, CallError> {
        Self::kms_decrypt(key, wrapped, EncryptionAlgorithmSpec::RsaesOaepSha256, None).await
    }

    /// `GetPublicKey`'s DER SPKI, parsed exactly, as the raw FIPS 203 key.
    async fn public_key(&self, key: &KmsKey) -> Result<Answer<Vec<u8>>, CallError> {
        let out = key
            .client
            .get_public_key()
            .key_id(&key.arn)
            .send()
            .await
            .map_err(sdk_error)?;
        let der = out.public_key().required("GetPublicKey answer")?;
        let (_, ek) = ml_kem_spki(der.as_ref()).required("ML-KEM public key")?;
        Self::answer(out.key_id(), ek.to_vec())
    }

    async fn encapsulate(&self, key: &KmsKey) -> Result<Answer<Encapsulation>, CallError> {
        let out = key
            .client
            .encapsulate()
            .key_id(&key.arn)
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .map_err(sdk_error)?;
        let arn = out.key_id().map(str::to_owned);
        let ct = out
            .shared_secret_ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .required("Encapsulate ciphertext")?;
        let ss = out
            .shared_secret
            .map(|b| Secret::new(b.into_inner()))
            .required("shared secret")?;
        Self::answer(arn.as_deref(), Encapsulation::new(ct, ss))
    }

    async fn decapsulate(
        &self,
        key: &KmsKey,
        ciphertext: &[u8],
    ) -> Result<Answer<Secret>, CallError> {
        let out = key
            .client
            .decapsulate()
            .key_id(&key.arn)
            .shared_secret_ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .map_err(sdk_error)?;
        let arn = out.key_id().map(str::to_owned);
        let ss = out
            .shared_secret
            .map(|b| Secret::new(b.into_inner()))
            .required("shared secret")?;
        Self::answer(arn.as_deref(), ss)
    }

    /// `CreateKey`, beside the predecessor (its region and role) for a successor.
    async fn create(
        &self,
        spec: &KekSpec,
        successor_of: Option<&AwsKmsLocator>,
    ) -> Result<AwsKmsLocator, CallError> {
        let (key_spec, usage) = KEY_SPECS
            .iter()
            .find(|(_, _, a)| *a == spec.algorithm)
            .map(|(s, u, _)| (s.clone(), u.clone()))
            .ok_or_else(|| {
                CallError::Backend(BackendError::UnsupportedAlgorithm {
                    kek: KekLocator::new(spec.name_hint.clone()),
                    algorithm: spec.algorithm,
                })
            })?;
        let (region, role) = match successor_of {
            Some(current) => (current.region.clone(), current.role.clone()),
            None => (
                self.region.clone().ok_or_else(|| {
                    BackendError::invalid_request("no region configured for new KMS keys")
                })?,
                None,
            ),
        };
        let client = self.client(&region, role.as_deref()).await;
        let out = client
            .create_key()
            .key_spec(key_spec)
            .key_usage(usage)
            .description(format!("kekring KEK {}", spec.name_hint))
            .send()
            .await
            .map_err(sdk_error)?;
        let arn = out
            .key_metadata()
            .and_then(|m| m.arn())
            .required("CreateKey answer")?;
        AwsKmsLocator::checked(arn, &region, role.as_deref())
            .map_err(|_| CallError::malformed("CreateKey ARN"))
    }

    /// Schedules the key's deletion by its ARN after KMS's shortest waiting period (7
    /// days); `CancelKeyDeletion` can still undo it until then. A key already pending
    /// deletion counts as done; any other state KMS refuses in is an error. (A key that
    /// another KEK in use names has the same identity, which the envelope refuses to
    /// destroy before it gets here.)
    async fn destroy(
        &self,
        key: &Described<KmsKey>,
        _in_use: &[AwsKmsLocator],
    ) -> Result<ServiceOutcome, CallError> {
        let k = &key.key;
        let scheduled = k
            .client
            .schedule_key_deletion()
            .key_id(&k.arn)
            .pending_window_in_days(7)
            .send()
            .await;
        match scheduled {
            Ok(_) => Ok(ServiceOutcome::Applied),
            Err(e) => {
                let e = sdk_error(e);
                let invalid_state = matches!(&e, CallError::Service(f)
                    if f.code.as_deref() == Some("KMSInvalidStateException"));
                if !invalid_state {
                    return Err(e);
                }
                let state = k
                    .client
                    .describe_key()
                    .key_id(&k.arn)
                    .send()
                    .await
                    .map_err(sdk_error)?
                    .key_metadata()
                    .and_then(|m| m.key_state().cloned());
                match state {
                    Some(KeyState::PendingDeletion) => Ok(ServiceOutcome::Applied),
                    other => Err(CallError::Backend(BackendError::KeyDisabled {
                        kek: key.locator.clone(),
                        state: format!("cannot be scheduled for deletion in state {other:?}"),
                    })),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
