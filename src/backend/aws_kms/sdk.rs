//! How the AWS SDK is set up, called and read: the endpoint the SDK would take from the
//! environment or a profile, checked; an HTTPS client trusting exactly the configured
//! roots; answers bounded in size; a client per region and role (the role assumed with
//! its `ExternalId`); the `Encrypt` / `Decrypt` calls two constructions share; SDK
//! errors as the chassis classifies them.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::config::{Region, SharedCredentialsProvider};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use std::collections::HashMap;

use aws_config::BehaviorVersion;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::EncryptionAlgorithmSpec;

use super::{AwsKms, AwsKmsConfig, KmsKey};
use crate::backend::kit::{
    Answer, CallError, Endpoint, MAX_ANSWER_LEN, Required, Secret, ServiceFailure, TlsConfig,
    caused_by, too_large,
};
use crate::backend::kit::{RemoteBackend, RemoteOptions};
use crate::backend::{BackendError, KeyIdentity};
use crate::error::ConfigError;
use crate::error::Error;
use crate::format::BindingContext;

/// The endpoint the SDK would use for `service` (`KMS`, `STS`) from the environment
/// (`AWS_ENDPOINT_URL_{SERVICE}`, `AWS_ENDPOINT_URL`) or the profile (`endpoint_url`),
/// resolved as the SDK's own service configuration does, and checked.
pub(super) fn sdk_endpoint(
    base: &aws_config::SdkConfig,
    service: &str,
) -> Result<Option<Endpoint>, ConfigError> {
    let env = format!("AWS_ENDPOINT_URL_{service}");
    let from_env_or_profile = base.service_config().and_then(|c| {
        c.load_config(
            aws_types::service_config::ServiceConfigKey::builder()
                .service_id(service)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()?,
        )
    });
    let url = if base.get_origin("endpoint_url").is_client_config() {
        base.endpoint_url().map(str::to_owned)
    } else {
        from_env_or_profile.or_else(|| base.endpoint_url().map(str::to_owned))
    };
    url.map(|u| {
        Endpoint::parse(
            &u,
            &format!("the {service} endpoint from {env}, AWS_ENDPOINT_URL or the profile"),
        )
    })
    .transpose()
}

/// An HTTPS client that trusts what `tls` says (rustls on AWS-LC, as the SDK's default
/// client) and uses no proxy (the builder's default: none unless one is configured).
pub(super) fn client(
    tls: &TlsConfig,
) -> Result<aws_smithy_runtime_api::client::http::SharedHttpClient, ConfigError> {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let mut store = TrustStore::empty().with_native_roots(tls.trusts_platform());
    for pem in tls.cas() {
        store = store.with_pem_certificate(pem.clone());
    }
    let ctx = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .map_err(|e| ConfigError::Backend {
            reason: format!("the TLS trust store: {e}"),
        })?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(ctx)
        .build_https())
}

/// Refuses answers larger than [`MAX_ANSWER_LEN`]: a `Content-Length` over it before
/// the body is read, and a body that grows past it while it is read.
#[derive(Debug)]
pub(super) struct BoundedAnswers;

impl Intercept for BoundedAnswers {
    fn name(&self) -> &'static str {
        "kekring::BoundedAnswers"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let declared = context
            .response()
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(too_large) {
            return Err("the KMS answer is larger than 1 MiB".into());
        }
        let body = std::mem::replace(context.response_mut().body_mut(), SdkBody::taken());
        *context.response_mut().body_mut() =
            SdkBody::from_body_1_x(http_body_util::Limited::new(body, MAX_ANSWER_LEN));
        Ok(())
    }
}

impl RemoteBackend<AwsKms> {
    /// Loads the SDK configuration (credentials, region and endpoint chains), checks the
    /// endpoints it names, and builds the backend. No KMS call is made until the first
    /// wrap.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for a KMS or STS endpoint (configured, or from the
    /// environment or profile) that is not https, or http to a loopback address, or
    /// carries a user or password; or when `LOG_SENSITIVE_BODIES=true` is set (the SDK
    /// would log decrypted data keys).
    pub async fn new(config: AwsKmsConfig) -> Result<Self, Error> {
        // The SDK writes answer bodies (a Decrypt's plaintext, a Decapsulate's shared
        // secret) into its trace logs when this is set.
        if std::env::var("LOG_SENSITIVE_BODIES").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(ConfigError::Backend {
                reason: "LOG_SENSITIVE_BODIES=true makes the AWS SDK log decrypted data keys; \
                         unset it"
                    .into(),
            }
            .into());
        }
        let configured = match &config.endpoint_url {
            Some(u) => Some(Endpoint::parse(u, "the KMS endpoint")?),
            None => None,
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &config.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(c.clone());
        }
        // Always kekring's own client: the SDK's default one takes a proxy from
        // HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, which would carry data keys in the clear
        // to a loopback endpoint. This one uses no proxy and trusts what `tls` says.
        loader = loader.http_client(client(&config.tls)?);
        let base = loader.load().await;
        // What the SDK would use otherwise passes the same check, and is then set
        // explicitly, so that the SDK uses exactly what was checked.
        let endpoint = match configured {
            Some(e) => Some(e),
            None => sdk_endpoint(&base, "KMS")?,
        };
        sdk_endpoint(&base, "STS")?;
        let region = config
            .region
            .clone()
            .or_else(|| base.region().map(|r| r.to_string()));
        let service = AwsKms {
            base,
            external_ids: config.external_ids.clone(),
            region,
            endpoint,
            call: config.call,
            clients: tokio::sync::Mutex::new(HashMap::new()),
        };
        Ok(RemoteBackend::with_service(
            service,
            RemoteOptions::new().encapsulate(config.encapsulate),
        ))
    }
}

impl AwsKms {
    /// The client for a region and role (assuming the role through STS).
    pub(super) async fn client(&self, region: &str, role: Option<&str>) -> aws_sdk_kms::Client {
        let id = (region.to_owned(), role.map(str::to_owned));
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&id) {
            return c.clone();
        }
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.call.connect())
            .operation_attempt_timeout(self.call.attempt())
            .build();
        let mut b = aws_sdk_kms::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .interceptor(BoundedAnswers);
        if let Some(e) = &self.endpoint {
            b = b.endpoint_url(e.as_str());
        }
        if let Some(role) = role {
            let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("kekring")
                .region(Region::new(region.to_owned()))
                .configure(&self.base);
            if let Some(id) = self.external_ids.get(role) {
                assume = assume.external_id(id);
            }
            let provider = assume.build().await;
            b = b.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        let client = aws_sdk_kms::Client::from_conf(b.build());
        clients.insert(id, client.clone());
        client
    }
}

/// The calls two constructions share: `Encrypt` and `Decrypt` (with the binding as
/// encryption context for symmetric keys, RSA-OAEP for the intermediate key), and the
/// key ARN every answer must name.
impl AwsKms {
    pub(super) fn answer<T>(arn: Option<&str>, value: T) -> Result<Answer<T>, CallError> {
        let arn = arn.required("KMS answer without KeyId")?;
        Ok(Answer::new(KeyIdentity::new(arn), value))
    }

    pub(super) fn context(binding: &BindingContext) -> HashMap<String, String> {
        binding
            .encryption_context()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// One `Encrypt` under the key.
    pub(super) async fn kms_encrypt(
        key: &KmsKey,
        plaintext: &[u8],
        algorithm: EncryptionAlgorithmSpec,
        context: Option<HashMap<String, String>>,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        let out = key
            .client
            .encrypt()
            .key_id(&key.arn)
            .plaintext(Blob::new(plaintext.to_vec()))
            .set_encryption_context(context)
            .encryption_algorithm(algorithm)
            .send()
            .await
            .map_err(sdk_error)?;
        let blob = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .required("Encrypt answer")?;
        Self::answer(out.key_id(), blob)
    }

    /// One `Decrypt` under the key (always named: KMS must not pick the key from the
    /// blob).
    pub(super) async fn kms_decrypt(
        key: &KmsKey,
        ciphertext: &[u8],
        algorithm: EncryptionAlgorithmSpec,
        context: Option<HashMap<String, String>>,
    ) -> Result<Answer<Secret>, CallError> {
        let out = key
            .client
            .decrypt()
            .key_id(&key.arn)
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_encryption_context(context)
            .encryption_algorithm(algorithm)
            .send()
            .await
            .map_err(sdk_error)?;
        let arn = out.key_id().map(str::to_owned);
        let plain = out
            .plaintext
            .map(|b| Secret::new(b.into_inner()))
            .required("Decrypt answer")?;
        Self::answer(arn.as_deref(), plain)
    }
}

/// An SDK error as the chassis classifies it: the service's refusal with its code and
/// the modeled error as source; credentials the SDK could not obtain (no chain, an
/// expired session, a refused AssumeRole: a `CredentialsError` below the error, found
/// by its type) as credentials, not an outage; no answer as a transport failure. A
/// response that could not be read keeps no source (it holds the response).
pub(super) fn sdk_error<E>(e: SdkError<E, aws_smithy_runtime_api::http::Response>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if caused_by::<CredentialsError>(&e) {
        return CallError::Credentials {
            message: "the AWS SDK could not obtain credentials".into(),
            source: Some(Box::new(e)),
        };
    }
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let wait = crate::backend::kit::retry_after(s.raw().headers().get("retry-after"));
            let err = s.into_err();
            let code = err.code().map(str::to_owned);
            let message = err.message().unwrap_or("").to_owned();
            CallError::Service(
                ServiceFailure::new(Some(status), code, message)
                    .with_retry_after(wait)
                    .with_source(err),
            )
        }
        SdkError::TimeoutError(_) => CallError::Transport {
            timeout: true,
            source: Box::new(e),
        },
        SdkError::DispatchFailure(ref d) if d.is_user() => {
            CallError::Backend(BackendError::InvalidRequest {
                message: "the KMS request could not be sent (client configuration)".into(),
                source: Some(Box::new(e)),
            })
        }
        SdkError::DispatchFailure(ref d) => CallError::Transport {
            timeout: d.is_timeout(),
            source: Box::new(e),
        },
        SdkError::ResponseError(_) => CallError::malformed("KMS response"),
        SdkError::ConstructionFailure(_) => CallError::Backend(BackendError::InvalidRequest {
            message: "the KMS request could not be built".into(),
            source: Some(Box::new(e)),
        }),
        other => CallError::Transport {
            timeout: false,
            source: Box::new(other),
        },
    }
}
