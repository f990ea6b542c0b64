//! Remote KEKs for the command-line tool: a customer's AWS KMS key (feature `aws-kms`)
//! or a Transit key (feature `vault-transit`) registered as a scope's KEK, or rotated to
//! from a local one. Credentials come from each service's environment, never from the
//! command line: the AWS SDK's chain (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, profiles, roles;
//! `AWS_ENDPOINT_URL_KMS` for another endpoint) and Vault's (`VAULT_ADDR`, then
//! `VAULT_TOKEN`, or `VAULT_ROLE_ID` and `VAULT_SECRET_ID` for AppRole, or the token
//! `vault login` keeps in `~/.vault-token`).

use std::collections::BTreeSet;
use std::sync::Arc;

use kekring::backend::{KeyBackend, UnwrapRequest, WrapRequest};
use kekring::format::BindingContext;
use kekring::{BackendId, Classification, DataKey, Error, KekLocator, Name, WrapAlgorithm};

use super::{Failure, bad, block_on};

/// Where a remote KEK lives. At most one of `--aws-kms-key` and `--transit-key`.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct RemoteKek {
    /// An AWS KMS key: key ARN, alias ARN, key id or alias/NAME (needs --aws-region).
    #[arg(long, requires = "aws_region", conflicts_with = "transit_key")]
    aws_kms_key: Option<String>,
    /// The AWS KMS key's region.
    #[arg(long, requires = "aws_kms_key")]
    aws_region: Option<String>,
    /// An IAM role to assume in the key owner's account (the way a tenant brings its
    /// own key).
    #[arg(long, requires = "aws_kms_key")]
    aws_role: Option<String>,
    /// A Vault / OpenBao Transit key version: MOUNT/NAME@vVERSION (a derived
    /// aes256-gcm96 key).
    #[arg(long)]
    transit_key: Option<String>,
    /// The remote key's wrap algorithm: aes256-opaque (KMS symmetric or Transit
    /// keys), ml-kem-768 or ml-kem-1024 (KMS ML-KEM keys).
    #[arg(long = "remote-algorithm", default_value = "aes256-opaque")]
    algorithm: String,
}

/// A remote KEK named on the command line.
pub(crate) struct Target {
    pub(crate) backend: BackendId,
    pub(crate) locator: KekLocator,
    pub(crate) algorithm: WrapAlgorithm,
}

#[cfg_attr(all(feature = "aws-kms", feature = "vault-transit"), allow(dead_code))]
fn unsupported(feature: &str) -> Failure {
    bad(format!(
        "this kekring was built without the `{feature}` feature"
    ))
}

impl RemoteKek {
    /// The KEK named, if any.
    pub(crate) fn target(&self) -> Result<Option<Target>, Failure> {
        let algorithm = WrapAlgorithm::from_name(&self.algorithm)
            .ok_or_else(|| bad(format!("unknown algorithm {}", self.algorithm)))?;
        if let Some(key) = &self.aws_kms_key {
            #[cfg(feature = "aws-kms")]
            {
                let region = self.aws_region.as_deref().unwrap_or_default();
                use kekring::backend::kit::Locator as _;
                let kek = kekring::backend::aws_kms::AwsKmsLocator::new(
                    key,
                    region,
                    self.aws_role.as_deref(),
                )?;
                return Ok(Some(Target {
                    backend: BackendId::AwsKms,
                    locator: kek.to_locator(),
                    algorithm,
                }));
            }
            #[cfg(not(feature = "aws-kms"))]
            {
                let _ = key;
                return Err(unsupported("aws-kms"));
            }
        }
        if let Some(key) = &self.transit_key {
            #[cfg(feature = "vault-transit")]
            {
                use kekring::backend::kit::Locator as _;
                let locator = KekLocator::new(key.clone());
                kekring::backend::vault_transit::TransitLocator::parse(&locator)
                    .map_err(kekring::Error::from)?;
                return Ok(Some(Target {
                    backend: BackendId::VaultTransit,
                    locator,
                    algorithm,
                }));
            }
            #[cfg(not(feature = "vault-transit"))]
            {
                let _ = key;
                return Err(unsupported("vault-transit"));
            }
        }
        let _ = algorithm;
        Ok(None)
    }
}

/// The remote backends `needed` names, configured from the environment.
pub(crate) fn backends(needed: &BTreeSet<BackendId>) -> Result<Vec<Arc<dyn KeyBackend>>, Failure> {
    #[cfg_attr(
        not(any(feature = "aws-kms", feature = "vault-transit")),
        allow(unused_mut)
    )]
    let mut out: Vec<Arc<dyn KeyBackend>> = Vec::new();
    if needed.contains(&BackendId::AwsKms) {
        #[cfg(feature = "aws-kms")]
        {
            use kekring::backend::aws_kms::{AwsKmsBackend, AwsKmsConfig};
            out.push(Arc::new(block_on(AwsKmsBackend::new(AwsKmsConfig::new()))?));
        }
        #[cfg(not(feature = "aws-kms"))]
        return Err(unsupported("aws-kms"));
    }
    if needed.contains(&BackendId::VaultTransit) {
        #[cfg(feature = "vault-transit")]
        {
            use kekring::backend::vault_transit::{VaultTransitBackend, VaultTransitConfig};
            out.push(Arc::new(VaultTransitBackend::new(
                VaultTransitConfig::from_env()?,
            )?));
        }
        #[cfg(not(feature = "vault-transit"))]
        return Err(unsupported("vault-transit"));
    }
    Ok(out)
}

/// The target with its locator in the backend's stable form (an AWS alias resolved to
/// its key ARN), which is what the key ring records.
pub(crate) fn pinned(backend: &dyn KeyBackend, target: Target) -> Result<Target, Failure> {
    let locator = block_on(backend.resolve_kek(&target.locator)).map_err(Error::from)?;
    Ok(Target { locator, ..target })
}

/// Wraps and unwraps a fresh key under the KEK before it is registered, so that a key
/// that is missing, disabled, of another algorithm or out of these credentials' reach
/// is refused with its backend error (exit 5), not found out at the first seal.
pub(crate) fn probe(
    backend: &dyn KeyBackend,
    target: &Target,
    tenant: &Name,
    purpose: &Name,
) -> Result<(), Failure> {
    let binding = BindingContext::new(
        tenant.clone(),
        purpose.clone(),
        b"kekring-register-probe",
        Classification::Internal,
        b"",
    )
    .map_err(|e| bad(e.to_string()))?;
    let dek = DataKey::generate()?;
    let w = block_on(backend.wrap(WrapRequest::new(
        &target.locator,
        target.algorithm,
        &dek,
        &binding,
    )))
    .map_err(Error::from)?;
    let back = block_on(backend.unwrap(UnwrapRequest::new(
        &target.locator,
        target.algorithm,
        &w.params,
        &w.wrapped,
        &binding,
    )))
    .map_err(Error::from)?;
    if back.dek.expose_secret() != dek.expose_secret() {
        return Err(Error::Crypto.into());
    }
    Ok(())
}
