//! Quickstart on the embedded local backend, no cloud account.
//!
//! First run: creates a key store (`.kekring-quickstart/keys.kks`) holding an ML-KEM-768
//! KEK and a P-256 KEK, seals a Restricted object under ML-KEM-768 and writes it to
//! `.kekring-quickstart/payroll.sealed`, and shows the default profile refusing the
//! classical P-256 KEK for Restricted data. Second run: reopens the store and opens the object.
//!
//! The master secret comes from `KEKRING_MASTER_SECRET` (or a file named by
//! `KEKRING_MASTER_SECRET_FILE`). Without either, the quickstart uses a fixed demo secret
//! and says so: fine for a demo, never for real keys. Delete `.kekring-quickstart/` to
//! start again.
//!
//! Run: `cargo run --example quickstart` (twice).

use std::path::Path;
use std::sync::Arc;

use kekring::keystore::{KdfParams, KeyStore, KeyStoreError, MasterSecret};
use kekring::lifecycle::NewKek;
use kekring::{BackendId, Classification, Context, Envelope, Error, KekRef, Route, WrapAlgorithm};

const DIR: &str = ".kekring-quickstart";
const DEMO_SECRET: &str = "kekring quickstart demo secret - not for real keys";

fn master_secret() -> Result<MasterSecret, KeyStoreError> {
    match MasterSecret::from_env_or_file() {
        Err(KeyStoreError::MissingSecret) => {
            println!(
                "note: KEKRING_MASTER_SECRET is not set; using the built-in demo secret \
                 (set it for anything real)"
            );
            MasterSecret::new(DEMO_SECRET)
        }
        other => other,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(DIR)?;
    let store_path = Path::new(DIR).join("keys.kks");
    let object_path = Path::new(DIR).join("payroll.sealed");

    // 1. The key store: created on first run, reopened afterwards. A wrong secret is an
    //    error, never a fresh store.
    let secret = master_secret()?;
    let mut store = KeyStore::open_or_create(&store_path, &secret, KdfParams::default())?;
    if store.get("acme/payroll/v1").is_none() {
        println!("first run: generating an ML-KEM-768 KEK and a P-256 KEK");
        store.generate("acme/payroll/v1", WrapAlgorithm::MlKem768)?;
        store.generate("acme/payroll-ecdh/v1", WrapAlgorithm::P256EcdhEs)?;
        store.save()?;
    }
    println!(
        "key store {} holds: {}",
        store.path().display(),
        store.locators().collect::<Vec<_>>().join(", ")
    );

    // 2. An envelope over the store's keys: payroll data of tenant "acme" is wrapped
    //    under the ML-KEM-768 KEK; the P-256 KEK serves purpose "payroll-ecdh".
    let backend = Arc::new(kekring::keystore::StoreBackend::new(store)?);
    let mlkem = KekRef::new("acme", "payroll", 1)?;
    let ecdh = KekRef::new("acme", "payroll-ecdh", 1)?;
    let envelope = Envelope::builder()
        .backend(backend)
        .kek(NewKek::new(
            mlkem.clone(),
            BackendId::Local,
            kekring::KekLocator::new("acme/payroll/v1"),
            WrapAlgorithm::MlKem768,
        ))
        .kek(NewKek::new(
            ecdh.clone(),
            BackendId::Local,
            kekring::KekLocator::new("acme/payroll-ecdh/v1"),
            WrapAlgorithm::P256EcdhEs,
        ))
        .route(Route::new(mlkem))
        .route(Route::new(ecdh))
        .build()?;

    // 3. Seal on the first run, open on every later one.
    let ctx = Context::new(
        "acme",
        "payroll",
        "payroll-2026-11",
        Classification::Restricted,
    )?;
    if object_path.exists() {
        let sealed = std::fs::read(&object_path)?;
        let opened = envelope.open(&ctx, &sealed).await?;
        println!(
            "opened {} ({} bytes): {}",
            object_path.display(),
            sealed.len(),
            String::from_utf8_lossy(&opened)
        );
    } else {
        let sealed = envelope
            .seal(&ctx, b"November 2026 payroll: 42 employees, 187,300.00 EUR")
            .await?;
        std::fs::write(&object_path, &sealed)?;
        println!(
            "sealed a Restricted object under ML-KEM-768 into {} ({} bytes); run again to open it",
            object_path.display(),
            sealed.len()
        );
    }

    // 4. The same bytes under another tenant's context are refused.
    let sealed = std::fs::read(&object_path)?;
    let other = Context::new(
        "globex",
        "payroll",
        "payroll-2026-11",
        Classification::Restricted,
    )?;
    match envelope.open(&other, &sealed).await {
        Err(e @ Error::Context(_)) => println!("another tenant's context: refused ({e})"),
        other => return Err(format!("expected a context refusal, got {other:?}").into()),
    }

    // 5. The default profile refuses to wrap Restricted data under the P-256 KEK
    //    (classical, breakable by a quantum computer), before the backend is called.
    let ecdh_ctx = Context::new(
        "acme",
        "payroll-ecdh",
        "payroll-2026-11",
        Classification::Restricted,
    )?;
    match envelope.seal(&ecdh_ctx, b"salaries").await {
        Err(e @ Error::Policy(_)) => println!("Restricted under P-256 ECDH: {e}"),
        other => return Err(format!("expected a policy refusal, got {other:?}").into()),
    }
    // Internal data may use it.
    let internal = Context::new("acme", "payroll-ecdh", "handbook", Classification::Internal)?;
    let ok = envelope.seal(&internal, b"employee handbook").await?;
    println!("Internal under P-256 ECDH: sealed {} bytes", ok.len());
    Ok(())
}
