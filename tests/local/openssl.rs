//! Bring-your-own keys with `openssl` at test time: RSA and P-256 keys made by
//! `openssl genpkey` import (PEM and DER) and round-trip; exported public keys read back
//! in `openssl`; weak or foreign keys are refused with a typed error. `openssl` must be
//! installed (scripts/test.sh installs it); these tests fail rather than skip without it.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

#[cfg(feature = "local-rsa")]
use kekring::backend::local::RsaKek;
use kekring::backend::local::{LocalKek, P256Kek};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, Envelope, Error, KekLocator, KekRef, LocalBackend,
    MisuseError, Route,
};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kekring-openssl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn round_trip(kek: LocalKek) {
    let alg = kek.algorithm();
    let local = Arc::new(LocalBackend::new());
    local.insert(KekLocator::new("byok"), kek).unwrap();
    let r = KekRef::new("acme", "byok", 1).unwrap();
    let env = Envelope::builder()
        .backend(local)
        .kek(NewKek::new(
            r.clone(),
            BackendId::Local,
            KekLocator::new("byok"),
            alg,
        ))
        .route(Route::new(r))
        .build()
        .unwrap();
    let c = Context::new("acme", "byok", "o", Classification::Internal).unwrap();
    let sealed = env.seal(&c, b"bring your own key").await.unwrap();
    assert_eq!(env.open(&c, &sealed).await.unwrap(), b"bring your own key");
}

#[cfg(feature = "local-rsa")]
#[tokio::test]
async fn openssl_rsa_keys_import_round_trip_and_export() {
    let d = tmpdir("rsa");
    for bits in ["3072", "4096"] {
        let pem_path = d.join(format!("rsa{bits}.pem"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            path(&pem_path),
        ]);
        // `openssl pkey -outform DER` writes the traditional PKCS#1 form; PKCS#8 is asked
        // for explicitly.
        let der = openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            path(&pem_path),
            "-outform",
            "DER",
        ]);
        let traditional = openssl(&["pkey", "-in", path(&pem_path), "-outform", "DER"]);
        assert!(matches!(
            RsaKek::from_pkcs8_der(&traditional),
            Err(Error::Misuse(MisuseError::InvalidKey { .. }))
        ));
        let pem = std::fs::read_to_string(&pem_path).unwrap();

        let from_pem = RsaKek::from_pkcs8_pem(&pem).unwrap();
        let from_der = RsaKek::from_pkcs8_der(&der).unwrap();
        assert_eq!(
            from_pem.public_key_der().unwrap(),
            from_der.public_key_der().unwrap()
        );
        round_trip(LocalKek::Rsa(from_der)).await;

        // Our exported public key reads back in openssl, identical to openssl's own.
        let exported = d.join(format!("rsa{bits}.pub.pem"));
        std::fs::write(&exported, from_pem.public_key_pem().unwrap()).unwrap();
        let theirs = openssl(&["pkey", "-in", path(&pem_path), "-pubout", "-outform", "DER"]);
        let back = openssl(&["pkey", "-pubin", "-in", path(&exported), "-outform", "DER"]);
        assert_eq!(back, theirs);
        assert_eq!(from_pem.public_key_der().unwrap(), theirs);
        // Public-only import from openssl's SPKI.
        let public = RsaKek::from_public_key_der(&theirs).unwrap();
        assert!(!LocalKek::Rsa(public).can_unwrap());
        // Our PKCS#8 export reads back in openssl.
        let exported_priv = d.join(format!("rsa{bits}.exported.pem"));
        std::fs::write(&exported_priv, from_pem.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        openssl(&["pkey", "-in", path(&exported_priv), "-noout"]);
    }
    // RSA-2048 is refused with a typed error.
    let weak = d.join("rsa2048.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        path(&weak),
    ]);
    let err = RsaKek::from_pkcs8_pem(&std::fs::read_to_string(&weak).unwrap()).unwrap_err();
    assert!(
        matches!(err, Error::Misuse(MisuseError::InvalidKey { .. })),
        "{err:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test]
async fn openssl_p256_keys_import_round_trip_and_export() {
    let d = tmpdir("p256");
    let pem_path = d.join("p256.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path(&pem_path),
    ]);
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let der = openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        path(&pem_path),
        "-outform",
        "DER",
    ]);
    let kek = P256Kek::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(
        P256Kek::from_pkcs8_der(&der).unwrap().public_key_sec1(),
        kek.public_key_sec1()
    );
    let theirs = openssl(&["pkey", "-in", path(&pem_path), "-pubout", "-outform", "DER"]);
    assert_eq!(kek.public_key_der().unwrap(), theirs);
    let exported = d.join("p256.pub.pem");
    std::fs::write(&exported, kek.public_key_pem().unwrap()).unwrap();
    assert_eq!(
        openssl(&["pkey", "-pubin", "-in", path(&exported), "-outform", "DER"]),
        theirs
    );
    let exported_priv = d.join("p256.exported.pem");
    std::fs::write(&exported_priv, kek.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    openssl(&["pkey", "-in", path(&exported_priv), "-noout"]);
    assert!(!LocalKek::P256(P256Kek::from_public_key_der(&theirs).unwrap()).can_unwrap());
    round_trip(LocalKek::P256(kek)).await;

    // A P-384 key, an Ed25519 key and a truncated key are refused with typed errors.
    for (alg, opt) in [("EC", Some("ec_paramgen_curve:P-384")), ("ED25519", None)] {
        let p = d.join(format!("{alg}.pem"));
        let mut args = vec!["genpkey", "-algorithm", alg, "-out", path(&p)];
        if let Some(o) = opt {
            args.extend(["-pkeyopt", o]);
        }
        openssl(&args);
        let err = P256Kek::from_pkcs8_pem(&std::fs::read_to_string(&p).unwrap()).unwrap_err();
        assert!(matches!(err, Error::Misuse(MisuseError::InvalidKey { .. })));
        #[cfg(feature = "local-rsa")]
        {
            let err = RsaKek::from_pkcs8_pem(&std::fs::read_to_string(&p).unwrap()).unwrap_err();
            assert!(matches!(err, Error::Misuse(MisuseError::InvalidKey { .. })));
        }
    }
    assert!(P256Kek::from_pkcs8_der(&der[..der.len() - 3]).is_err());
    // A point not on the curve.
    let mut sec1 = P256Kek::from_pkcs8_der(&der).unwrap().public_key_sec1();
    sec1[64] ^= 1;
    assert!(matches!(
        P256Kek::from_sec1_public_key(&sec1),
        Err(Error::Misuse(MisuseError::InvalidKey { .. }))
    ));
    std::fs::remove_dir_all(&d).unwrap();
}
