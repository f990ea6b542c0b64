//! Seal, rotate and re-wrap through a Vault / OpenBao Transit KEK, configured from the
//! environment.
//!
//! - `VAULT_ADDR`, and `VAULT_TOKEN` or `VAULT_ROLE_ID` + `VAULT_SECRET_ID` (AppRole) or
//!   the Vault CLI's `~/.vault-token`; `VAULT_NAMESPACE` if any.
//! - `KEKRING_TRANSIT_KEY`: the KEK, `MOUNT/NAME@vVERSION` of a derived `aes256-gcm96`
//!   key. Unset: the example creates one on `KEKRING_TRANSIT_MOUNT` (default `transit`).
//!
//! Then it rotates the scope (Transit makes the next version of the key) and re-wraps
//! the object inside Transit: the payload is not touched.
//!
//! Run: `VAULT_ADDR=... VAULT_TOKEN=... cargo run --example vault_transit --features vault-transit`

use std::sync::Arc;

use kekring::backend::vault_transit::{VaultTransitBackend, VaultTransitConfig};
use kekring::backend::{KekSpec, KeyBackend};
use kekring::format::SealedHeader;
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, Envelope, KekLocator, KekRef, Name, WrapAlgorithm,
};

fn kek_of(sealed: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    let (header, _) = SealedHeader::decode_prefix(sealed)?;
    Ok(header
        .wrapped_dek()
        .entries()
        .iter()
        .map(|e| e.kek().to_string())
        .collect::<Vec<_>>()
        .join(", "))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let transit = Arc::new(VaultTransitBackend::new(VaultTransitConfig::from_env()?)?);
    let alg = WrapAlgorithm::Aes256Opaque;
    let locator = match std::env::var("KEKRING_TRANSIT_KEY") {
        Ok(key) => KekLocator::new(key),
        Err(_) => {
            let created = transit.create_kek(&KekSpec::new(alg, "example")).await?;
            println!(
                "KEKRING_TRANSIT_KEY is not set: created {}",
                created.locator
            );
            created.locator
        }
    };
    let env = Envelope::builder()
        .backend(transit)
        .kek(NewKek::new(
            KekRef::new("acme", "docs", 1)?,
            BackendId::VaultTransit,
            locator,
            alg,
        ))
        .build()?;
    let ctx = Context::new("acme", "docs", "contract-0001", Classification::Restricted)?;
    let sealed = env.seal(&ctx, b"a contract").await?;
    println!("sealed under {}", kek_of(&sealed)?);

    let next = env
        .rotate_kek(
            &Name::new("tenant", "acme")?,
            &Name::new("purpose", "docs")?,
        )
        .await?;
    let (rewrapped, outcome) = env.rewrap_sealed(&ctx, &sealed).await?;
    println!(
        "rotated to {next}; re-wrapped ({outcome:?}) under {}",
        kek_of(&rewrapped)?
    );
    let opened = env.open(&ctx, &rewrapped).await?;
    println!("opened: {}", String::from_utf8_lossy(&opened));
    Ok(())
}
