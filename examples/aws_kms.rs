//! Seal and open through an AWS KMS KEK, configured from the environment.
//!
//! - `KEKRING_KMS_KEY`: the KEK, a key ARN, alias ARN, key id or `alias/NAME`. Unset: the
//!   example creates a symmetric key (`CreateKey`) and says so.
//! - `KEKRING_KMS_ALGORITHM`: `aes256-opaque` (symmetric keys, the default), `ml-kem-768`
//!   or `ml-kem-1024` (KMS ML-KEM keys).
//! - `KEKRING_KMS_ROLE`: a role to assume in the key owner's account (optional).
//! - The AWS SDK's own variables: `AWS_REGION`, credentials (`AWS_ACCESS_KEY_ID`...,
//!   a profile, a role), and `AWS_ENDPOINT_URL_KMS` for another endpoint.
//!
//! Run: `AWS_REGION=eu-west-1 KEKRING_KMS_KEY=arn:aws:kms:... cargo run --example aws_kms --features aws-kms`

use std::sync::Arc;

use kekring::backend::aws_kms::{AwsKmsBackend, AwsKmsConfig, AwsKmsLocator};
use kekring::backend::kit::Locator;
use kekring::backend::{KekSpec, KeyBackend};
use kekring::format::SealedHeader;
use kekring::lifecycle::NewKek;
use kekring::{BackendId, Classification, Context, Envelope, KekRef, WrapAlgorithm};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let algorithm = match std::env::var("KEKRING_KMS_ALGORITHM") {
        Ok(name) => WrapAlgorithm::from_name(&name).ok_or(format!("unknown algorithm {name}"))?,
        Err(_) => WrapAlgorithm::Aes256Opaque,
    };
    let kms = Arc::new(AwsKmsBackend::new(AwsKmsConfig::new()).await?);
    let locator = match std::env::var("KEKRING_KMS_KEY") {
        Ok(key) => {
            let region = std::env::var("AWS_REGION").map_err(|_| "set AWS_REGION")?;
            let role = std::env::var("KEKRING_KMS_ROLE").ok();
            AwsKmsLocator::new(&key, &region, role.as_deref())?.to_locator()
        }
        Err(_) => {
            let created = kms.create_kek(&KekSpec::new(algorithm, "example")).await?;
            println!(
                "KEKRING_KMS_KEY is not set: created {}",
                created.locator.redacted()
            );
            created.locator
        }
    };
    // Registered through the envelope, which resolves an alias or key id to the key ARN
    // it names now (what the key ring records).
    let env = Envelope::builder().backend(kms).build()?;
    env.register_kek(NewKek::new(
        KekRef::new("acme", "docs", 1)?,
        BackendId::AwsKms,
        locator,
        algorithm,
    ))
    .await?;
    let ctx = Context::new("acme", "docs", "invoice-0001", Classification::Confidential)?;
    let sealed = env.seal(&ctx, b"an invoice").await?;
    let (header, _) = SealedHeader::decode_prefix(&sealed)?;
    for e in header.wrapped_dek().entries() {
        println!(
            "sealed {} bytes; DEK wrapped under {} with {} ({} bytes)",
            sealed.len(),
            e.kek(),
            e.algorithm(),
            e.wrapped().len()
        );
    }
    let opened = env.open(&ctx, &sealed).await?;
    println!("opened: {}", String::from_utf8_lossy(&opened));
    Ok(())
}
