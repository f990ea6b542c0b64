//! Quickstart: seal and open an object under a local AES-256 KEK, show that the blob
//! does not open under another tenant's or object's context, and show a classification
//! profile refusing a wrap.
//!
//! Run: `cargo run --example quickstart`. Needs nothing but this repository: the KEK is
//! generated in memory for the run (the persistent embedded key store is planned).

use std::sync::Arc;

use kekring::format::SealedHeader;
use kekring::{
    BackendId, Classification, Context, Envelope, Error, KekBinding, KekRef, LocalBackend, Profile,
    Route, WrapAlgorithm,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A local backend with one AES-256 KEK for tenant "acme", purpose "invoices".
    let local = Arc::new(LocalBackend::new());
    let locator = local.generate_aes256("acme-invoices-v1", WrapAlgorithm::Aes256Kw)?;
    let kek = KekRef::new("acme", "invoices", 1)?;
    let binding = KekBinding::new(
        kek.clone(),
        BackendId::Local,
        locator,
        WrapAlgorithm::Aes256Kw,
    );

    let envelope = Envelope::builder()
        .backend(local.clone())
        .kek(binding.clone())
        .route(Route::new(kek.clone()))
        .build()?;

    // 2. Seal: a fresh DEK per object, wrapped under the KEK, bound to this context.
    let ctx = Context::new(
        "acme",
        "invoices",
        "invoice-2026-0042",
        Classification::Confidential,
    )?;
    let plaintext = b"Invoice 2026-0042: 1,250.00 EUR, due 2026-12-31";
    let sealed = envelope.seal(&ctx, plaintext).await?;
    let (header, header_len) = SealedHeader::decode_prefix(&sealed)?;
    let entry = header
        .wrapped_dek()
        .entries()
        .first()
        .ok_or("a sealed object always has a primary wrap")?;
    println!(
        "sealed {} bytes into {} bytes (header {header_len} bytes): KEK {} ({}), classification {}",
        plaintext.len(),
        sealed.len(),
        entry.kek(),
        entry.algorithm(),
        header.wrapped_dek().classification(),
    );

    // 3. Open it again.
    let opened = envelope.open(&ctx, &sealed).await?;
    assert_eq!(opened, plaintext);
    println!("opened: {}", String::from_utf8_lossy(&opened));

    // 4. The same bytes under another tenant or object are refused.
    let other_tenant = Context::new(
        "globex",
        "invoices",
        "invoice-2026-0042",
        Classification::Confidential,
    )?;
    match envelope.open(&other_tenant, &sealed).await {
        Err(e @ Error::Context(_)) => println!("another tenant's context: refused ({e})"),
        other => return Err(format!("expected a context refusal, got {other:?}").into()),
    }
    let other_object = Context::new(
        "acme",
        "invoices",
        "invoice-2026-0043",
        Classification::Confidential,
    )?;
    match envelope.open(&other_object, &sealed).await {
        Err(e @ Error::Crypto) => println!("another object's context: refused ({e})"),
        other => return Err(format!("expected a crypto refusal, got {other:?}").into()),
    }

    // 5. A profile refusal: under the strict post-quantum profile, Restricted data may
    //    not be wrapped under a symmetric KEK (only ML-KEM or the hybrid). The check runs
    //    before any backend call.
    let strict = Envelope::builder()
        .backend(local)
        .kek(binding)
        .route(Route::new(kek))
        .profile(Profile::strict_post_quantum())
        .build()?;
    let restricted = Context::new(
        "acme",
        "invoices",
        "payroll-2026-11",
        Classification::Restricted,
    )?;
    match strict.seal(&restricted, b"salaries").await {
        Err(e @ Error::Policy(_)) => println!("Restricted under the strict profile: {e}"),
        other => return Err(format!("expected a policy refusal, got {other:?}").into()),
    }
    // The default profile allows it: AES-256 is quantum-resistant.
    let ok = envelope.seal(&restricted, b"salaries").await?;
    println!(
        "Restricted under the default profile: sealed {} bytes",
        ok.len()
    );
    Ok(())
}
