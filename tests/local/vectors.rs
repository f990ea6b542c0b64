//! Runs the committed vectors in `tests/data/vectors_v1.json` (see that file's `about`
//! for how it was produced): every positive vector opens to its plaintext (or DEK) and
//! re-encodes byte for byte; every negative vector fails with the error it names.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::sync::Arc;

use kekring::backend::local::{LocalKek, MaterialKind};
use kekring::format::{SealedHeader, WrappedDek};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, Envelope, Error, Family, KekLocator, KekRef, LocalBackend,
    Profile, Route, WrapAlgorithm,
};
use serde_json::Value;

fn load() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/vectors_v1.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn envelope(doc: &Value) -> Envelope {
    let local = Arc::new(LocalBackend::new());
    let mut b = Envelope::builder().backend(local.clone());
    for k in doc["keks"].as_array().unwrap() {
        let alg = WrapAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == k["algorithm"].as_str().unwrap())
            .unwrap();
        assert_eq!(k["kind"], "private");
        let material = hex::decode(k["material_hex"].as_str().unwrap()).unwrap();
        let imported = LocalKek::import_material(alg, MaterialKind::Private, &material);
        if !offered(alg) {
            // RSA without the `local-rsa` feature: refused, and its vectors with it.
            assert!(matches!(
                imported,
                Err(Error::Misuse(
                    kekring::MisuseError::AlgorithmNotOffered { .. }
                ))
            ));
            continue;
        }
        let kek = imported.unwrap();
        let purpose = k["purpose"].as_str().unwrap();
        let loc = KekLocator::new(format!("v-{purpose}"));
        local.insert(loc.clone(), kek).unwrap();
        let r = KekRef::new(k["tenant"].as_str().unwrap(), purpose, 1).unwrap();
        b = b
            .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
            .route(Route::new(r));
    }
    let pci = Classification::custom("pci").unwrap();
    b.profile(Profile::default().allow_family(pci, Family::Symmetric256))
        .build()
        .unwrap()
}

fn offered(alg: WrapAlgorithm) -> bool {
    kekring::backend::local::LOCAL_ALGORITHMS.contains(&alg)
}

/// Whether the vector's KEK is one this build's local backend offers.
fn vector_offered(doc: &Value, v: &Value) -> bool {
    let purpose = &v["context"]["purpose"];
    doc["keks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| &k["purpose"] == purpose)
        .all(|k| {
            offered(
                WrapAlgorithm::ALL
                    .into_iter()
                    .find(|a| a.name() == k["algorithm"].as_str().unwrap())
                    .unwrap(),
            )
        })
}

fn context(c: &Value) -> Context {
    let class = match c["classification"].as_str().unwrap() {
        "public" => Classification::Public,
        "internal" => Classification::Internal,
        "confidential" => Classification::Confidential,
        "restricted" => Classification::Restricted,
        other => Classification::custom(other).unwrap(),
    };
    Context::new(
        c["tenant"].as_str().unwrap(),
        c["purpose"].as_str().unwrap(),
        c["object_id"].as_str().unwrap(),
        class,
    )
    .unwrap()
    .with_aad(hex::decode(c["aad_hex"].as_str().unwrap()).unwrap())
    .unwrap()
}

/// `Outer(Inner)` from the Debug form of an error, e.g. `Malformed(BadMagic)`.
fn kind(e: &Error) -> String {
    let dbg = format!("{e:?}");
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric()).collect() };
    let outer = ident(&dbg);
    match dbg.find('(') {
        Some(i) => format!("{outer}({})", ident(&dbg[i + 1..])),
        None => outer,
    }
}

#[tokio::test]
async fn positive_vectors_open_and_reencode() {
    let doc = load();
    let env = envelope(&doc);
    let mut n = 0;
    let mut streams = 0;
    for v in doc["positive"].as_array().unwrap() {
        let bytes = hex::decode(v["bytes_hex"].as_str().unwrap()).unwrap();
        let ctx = context(&v["context"]);
        if !vector_offered(&doc, v) {
            let err = match v["kind"].as_str().unwrap() {
                "sealed" => env.open(&ctx, &bytes).await.err(),
                _ => env.unwrap_data_key(&ctx, &bytes).await.err(),
            };
            assert!(
                matches!(
                    err,
                    Some(Error::KeyState(kekring::KeyStateError::UnknownKek(_)))
                ),
                "{err:?}"
            );
            continue;
        }
        match v["kind"].as_str().unwrap() {
            "sealed" => {
                let pt = env.open(&ctx, &bytes).await.unwrap();
                assert_eq!(hex::encode(pt), v["plaintext_hex"].as_str().unwrap());
                let (h, len) = SealedHeader::decode_prefix(&bytes).unwrap();
                assert_eq!(h.encode(), bytes[..len]);
                if h.segment_size().is_some() {
                    let mut r = env.open_reader(&ctx, bytes.as_slice()).await.unwrap();
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(&mut r, &mut out).unwrap();
                    assert_eq!(hex::encode(out), v["plaintext_hex"].as_str().unwrap());
                    streams += 1;
                }
            }
            "wrapped_dek" => {
                let k = env.unwrap_data_key(&ctx, &bytes).await.unwrap();
                assert_eq!(
                    hex::encode(k.expose_secret()),
                    v["dek_hex"].as_str().unwrap()
                );
                assert_eq!(WrappedDek::decode(&bytes).unwrap().encode(), bytes);
            }
            other => panic!("unknown kind {other}"),
        }
        n += 1;
    }
    assert!(n >= 25, "only {n} positive vectors");
    assert!(streams >= 3, "only {streams} stream vectors");
    // Every local algorithm is covered.
    for alg in kekring::backend::local::LOCAL_ALGORITHMS {
        assert!(
            doc["keks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["algorithm"] == alg.name()),
            "{alg} has no vectors"
        );
    }
}

#[tokio::test]
async fn negative_vectors_fail_as_named() {
    let doc = load();
    let env = envelope(&doc);
    let mut n = 0;
    for v in doc["negative"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let bytes = hex::decode(v["bytes_hex"].as_str().unwrap()).unwrap();
        let ctx = context(&v["context"]);
        let err = match v["kind"].as_str().unwrap() {
            "sealed" => env.open(&ctx, &bytes).await.err(),
            "wrapped_dek" => env.unwrap_data_key(&ctx, &bytes).await.err(),
            other => panic!("unknown kind {other}"),
        };
        let err = err.unwrap_or_else(|| panic!("negative vector {name:?} was accepted"));
        if !vector_offered(&doc, v) && kind(&err) == "KeyState(UnknownKek)" {
            // Refused before its own fault is reached: this build has no KEK for it.
            n += 1;
            continue;
        }
        assert_eq!(
            kind(&err),
            v["expect"].as_str().unwrap(),
            "vector {name:?}: {err}"
        );
        n += 1;
    }
    assert!(n >= 25, "only {n} negative vectors");
}
