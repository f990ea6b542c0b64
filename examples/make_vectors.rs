//! Regenerates `tests/data/vectors_v1.json`: sealed objects and wrapped DEKs under fixed
//! local KEKs, plus negative vectors made by mutating them, each naming the error it
//! must produce. Run: `cargo run --example make_vectors > tests/data/vectors_v1.json`.
//!
//! DEKs and nonces are random, so every run gives different (equally valid) bytes; the
//! committed file pins one run so that later versions must keep opening it.

// A developer tool over fixed inputs: a panic is the right way for it to fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

use std::sync::Arc;

use kekring::backend::local::{LocalKek, MaterialKind};
use kekring::format::{SealedHeader, SealedObject, WrappedDek};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, Envelope, Family, KekLocator, KekRef, LocalBackend,
    Profile, Route, WrapAlgorithm,
};
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

const KEKS: [(WrapAlgorithm, &str, &str); 3] = [
    (
        WrapAlgorithm::Aes256Kw,
        "kw",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    ),
    (
        WrapAlgorithm::Aes256Kwp,
        "kwp",
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
    ),
    (
        WrapAlgorithm::Aes256GcmDerived,
        "gcm",
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f",
    ),
];

fn ctx_json(tenant: &str, purpose: &str, object: &str, class: &str, aad: &[u8]) -> Value {
    json!({"tenant": tenant, "purpose": purpose, "object_id": object,
           "classification": class, "aad_hex": hex::encode(aad)})
}

fn class_of(s: &str) -> Classification {
    match s {
        "public" => Classification::Public,
        "internal" => Classification::Internal,
        "confidential" => Classification::Confidential,
        "restricted" => Classification::Restricted,
        other => Classification::custom(other).expect("label"),
    }
}

fn ctx(tenant: &str, purpose: &str, object: &str, class: &str, aad: &[u8]) -> Context {
    Context::new(tenant, purpose, object, class_of(class))
        .and_then(|c| c.with_aad(aad))
        .expect("context")
}

/// Replaces `len` bytes at `at`.
fn splice(bytes: &[u8], at: usize, len: usize, with: &[u8]) -> Vec<u8> {
    [&bytes[..at], with, &bytes[at + len..]].concat()
}

/// Fixed private key material for the asymmetric KEKs (RSA keys are generated: the
/// file records whatever keys the run made).
fn asymmetric_keks() -> Vec<(WrapAlgorithm, &'static str, Vec<u8>)> {
    let seed = |start: u8, n: u8| (0..n).map(|i| start.wrapping_add(i)).collect::<Vec<u8>>();
    let p256 = p256::SecretKey::from_slice(&[0x11; 32]).unwrap();
    let rsa = LocalKek::generate(WrapAlgorithm::RsaOaepSha256_3072).unwrap();
    let rsa4096 = LocalKek::generate(WrapAlgorithm::RsaOaepSha256_4096).unwrap();
    vec![
        (
            WrapAlgorithm::RsaOaepSha256_3072,
            "rsa3072",
            rsa.export_material().unwrap().1.to_vec(),
        ),
        (
            WrapAlgorithm::RsaOaepSha256_4096,
            "rsa4096",
            rsa4096.export_material().unwrap().1.to_vec(),
        ),
        (
            WrapAlgorithm::P256EcdhEs,
            "p256",
            p256.to_pkcs8_der().unwrap().as_bytes().to_vec(),
        ),
        (WrapAlgorithm::MlKem768, "mlkem768", seed(0x60, 64)),
        (WrapAlgorithm::MlKem1024, "mlkem1024", seed(0xa0, 64)),
        (WrapAlgorithm::HybridP256MlKem768, "hybrid", seed(0xe0, 32)),
    ]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let local = Arc::new(LocalBackend::new());
    let mut b = Envelope::builder().backend(local.clone());
    let mut keks = Vec::new();
    let all: Vec<(WrapAlgorithm, &str, Vec<u8>)> = KEKS
        .iter()
        .map(|(a, p, k)| (*a, *p, hex::decode(k).unwrap()))
        .chain(asymmetric_keks())
        .collect();
    for (alg, purpose, material) in &all {
        let kek = LocalKek::import_material(*alg, MaterialKind::Private, material).unwrap();
        let loc = KekLocator::new(format!("vectors-{purpose}"));
        local.insert(loc.clone(), kek).unwrap();
        let r = KekRef::new("acme", purpose, 1).unwrap();
        b = b
            .kek(NewKek::new(r.clone(), BackendId::Local, loc, *alg))
            .route(Route::new(r));
        keks.push(json!({"tenant": "acme", "purpose": purpose, "version": 1,
                         "algorithm": alg.name(), "kind": "private",
                         "material_hex": hex::encode(material)}));
    }
    // The custom label "pci" (tag 0x80) needs a rule: symmetric KEKs only.
    let profile = Profile::default().allow_family(class_of("pci"), Family::Symmetric256);
    let env = b.profile(profile).build().unwrap();

    let mut positive = Vec::new();
    let mut negative = Vec::new();
    let mut neg = |name: &str, kind: &str, c: Value, bytes: &[u8], expect: &str| {
        negative.push(json!({"name": name, "kind": kind, "context": c,
                             "bytes_hex": hex::encode(bytes), "expect": expect}));
    };

    for (alg, purpose, _) in KEKS {
        for (i, (class, pt, aad)) in [
            ("confidential", &b""[..], &b""[..]),
            ("restricted", &b"kekring test vector"[..], &b"version=7"[..]),
            ("public", &[0x5au8; 1024][..], &b""[..]),
            ("pci", &b"4111 1111 1111 1111"[..], &b""[..]),
        ]
        .into_iter()
        .enumerate()
        {
            let object = format!("obj-{}-{i}", alg.name());
            let c = ctx("acme", purpose, &object, class, aad);
            let sealed = env.seal(&c, pt).await.unwrap();
            positive.push(
                json!({"name": format!("sealed {} {class} {} bytes", alg.name(), pt.len()),
                "kind": "sealed", "context": ctx_json("acme", purpose, &object, class, aad),
                "bytes_hex": hex::encode(&sealed), "plaintext_hex": hex::encode(pt)}),
            );
        }
        let object = format!("row-{}", alg.name());
        let c = ctx("acme", purpose, &object, "internal", b"");
        let g = env.generate_data_key(&c).await.unwrap();
        positive.push(
            json!({"name": format!("wrapped DEK {}", alg.name()), "kind": "wrapped_dek",
            "context": ctx_json("acme", purpose, &object, "internal", b""),
            "bytes_hex": hex::encode(&g.wrapped), "dek_hex": hex::encode(g.key.expose_secret())}),
        );
    }

    // Every asymmetric algorithm: one sealed object (Internal data allows them all) and
    // one wrapped DEK.
    for (alg, purpose, _) in all.iter().skip(KEKS.len()) {
        let object = format!("obj-{}", alg.name());
        let c = ctx("acme", purpose, &object, "internal", b"aad");
        let pt = format!("sealed under {}", alg.name());
        let sealed = env.seal(&c, pt.as_bytes()).await.unwrap();
        positive.push(json!({"name": format!("sealed {} internal", alg.name()),
            "kind": "sealed", "context": ctx_json("acme", purpose, &object, "internal", b"aad"),
            "bytes_hex": hex::encode(&sealed), "plaintext_hex": hex::encode(pt.as_bytes())}));
        let object = format!("row-{}", alg.name());
        let c = ctx("acme", purpose, &object, "internal", b"");
        let g = env.generate_data_key(&c).await.unwrap();
        positive.push(
            json!({"name": format!("wrapped DEK {}", alg.name()), "kind": "wrapped_dek",
            "context": ctx_json("acme", purpose, &object, "internal", b""),
            "bytes_hex": hex::encode(&g.wrapped), "dek_hex": hex::encode(g.key.expose_secret())}),
        );
    }

    // Streams (suite 0x0002) with 1 KiB segments: empty, exactly one segment, and a
    // partial third segment.
    let mut stream_2500 = Vec::new();
    for len in [0usize, 1024, 2500] {
        let object = format!("stream-{len}");
        let c = ctx("acme", "gcm", &object, "confidential", b"");
        let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut w = env
            .seal_writer_with_segment_size(&c, Vec::new(), 1024)
            .await
            .unwrap();
        std::io::Write::write_all(&mut w, &pt).unwrap();
        let sealed = w.finish().unwrap();
        positive.push(
            json!({"name": format!("stream {len} bytes, 1 KiB segments"),
            "kind": "sealed", "context": ctx_json("acme", "gcm", &object, "confidential", b""),
            "bytes_hex": hex::encode(&sealed), "plaintext_hex": hex::encode(&pt)}),
        );
        if len == 2500 {
            stream_2500 = sealed;
        }
    }
    {
        let cj = ctx_json("acme", "gcm", "stream-2500", "confidential", b"");
        let s = &stream_2500;
        let (_, h) = SealedHeader::decode_prefix(s).unwrap();
        let full = 1024 + 16;
        let seg = |i: usize| s[h + i * full..(h + (i + 1) * full).min(s.len())].to_vec();
        neg(
            "stream cut at a segment boundary",
            "sealed",
            cj.clone(),
            &s[..h + 2 * full],
            "Crypto",
        );
        neg(
            "stream segments swapped",
            "sealed",
            cj.clone(),
            &[s[..h].to_vec(), seg(1), seg(0), seg(2)].concat(),
            "Crypto",
        );
        neg(
            "stream cut inside the last tag",
            "sealed",
            cj.clone(),
            &s[..h + 2 * full + 10],
            "Malformed(Truncated)",
        );
        let mut ext = s.clone();
        ext.extend_from_slice(&[0u8; 17]);
        neg(
            "stream extended by a segment",
            "sealed",
            cj.clone(),
            &ext,
            "Crypto",
        );
        let mut bad = s.clone();
        let size_at = h - 48; // segment size, then nonce (12) and commitment (32)
        bad[size_at + 2] = 0x08; // 1 KiB -> 2 KiB
        neg(
            "stream segment size changed",
            "sealed",
            cj.clone(),
            &bad,
            "Crypto",
        );
        let mut bad = s.clone();
        bad[size_at..size_at + 4].copy_from_slice(&[0, 0, 0, 1]);
        neg(
            "stream segment size below the minimum",
            "sealed",
            cj,
            &bad,
            "Malformed(LengthOutOfRange)",
        );
    }

    // Negative vectors, derived from a fresh sealed object under the KW KEK.
    let cj = ctx_json("acme", "kw", "neg-1", "confidential", b"");
    let c = ctx("acme", "kw", "neg-1", "confidential", b"");
    let s = env.seal(&c, b"negative vector payload").await.unwrap();
    let (h, hlen) = SealedHeader::decode_prefix(&s).unwrap();
    // Offsets: magic 0..4, version 4, suite 5..7, flags 7, wrapped len 8..10, wrapped
    // DEK from 10: magic 10..14, version 14, flags 15, classification 16, count 17,
    // entry: alg 18..20, backend 20, tenant len 21, "acme" 22..26, purpose len 26,
    // "kw" 27..29, version 29..33, params len 33..35, wrapped len 35..37, wrapped 37..77.
    let wd = 10;
    neg(
        "bad magic",
        "sealed",
        cj.clone(),
        &splice(&s, 0, 4, b"KRSX"),
        "Malformed(BadMagic)",
    );
    neg(
        "version 2",
        "sealed",
        cj.clone(),
        &splice(&s, 4, 1, &[2]),
        "Malformed(UnsupportedVersion)",
    );
    neg(
        "unknown suite",
        "sealed",
        cj.clone(),
        &splice(&s, 5, 2, &[0, 3]),
        "Malformed(UnknownSuite)",
    );
    neg(
        "reserved flag set",
        "sealed",
        cj.clone(),
        &splice(&s, 7, 1, &[1]),
        "Malformed(UnknownFlags)",
    );
    neg(
        "wrapped DEK flag set",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 5, 1, &[0x80]),
        "Malformed(UnknownFlags)",
    );
    neg(
        "wrapped DEK version 0",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 4, 1, &[0]),
        "Malformed(UnsupportedVersion)",
    );
    neg(
        "unknown classification tag",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 6, 1, &[5]),
        "Malformed(UnknownClassification)",
    );
    neg(
        "zero wraps",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 7, 1, &[0]),
        "Malformed(LengthOutOfRange)",
    );
    neg(
        "nine wraps",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 7, 1, &[9]),
        "Malformed(LengthOutOfRange)",
    );
    neg(
        "unknown algorithm",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 8, 2, &[0x00, 0x99]),
        "Malformed(UnknownAlgorithm)",
    );
    neg(
        "unknown backend",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 10, 1, &[9]),
        "Malformed(UnknownBackend)",
    );
    neg(
        "tenant with a space",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 12, 1, b" "),
        "Malformed(InvalidName)",
    );
    neg(
        "KEK version 0",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 19, 4, &[0, 0, 0, 0]),
        "Malformed(ZeroVersion)",
    );
    neg(
        "params on a KW wrap",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 23, 2, &[0, 1]),
        "Malformed(LengthOutOfRange)",
    );
    neg(
        "truncated header",
        "sealed",
        cj.clone(),
        &s[..40],
        "Malformed(Truncated)",
    );
    neg(
        "header only",
        "sealed",
        cj.clone(),
        &s[..hlen],
        "Malformed(MissingTag)",
    );
    neg(
        "tag cut short",
        "sealed",
        cj.clone(),
        &s[..hlen + 15],
        "Malformed(MissingTag)",
    );
    // A wrapped DEK with one extra byte inside its declared length.
    let wlen = u16::from_be_bytes([s[8], s[9]]);
    let mut trailing = splice(&s, 8, 2, &(wlen + 1).to_be_bytes());
    trailing.insert(10 + usize::from(wlen), 0);
    neg(
        "trailing byte inside the wrapped DEK",
        "sealed",
        cj.clone(),
        &trailing,
        "Malformed(TrailingBytes)",
    );
    let mut flipped = s.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    neg("tag bit flipped", "sealed", cj.clone(), &flipped, "Crypto");
    let mut ct = s.clone();
    ct[hlen] ^= 1;
    neg(
        "ciphertext bit flipped",
        "sealed",
        cj.clone(),
        &ct,
        "Crypto",
    );
    let mut cm = s.clone();
    cm[hlen - 1] ^= 1;
    neg(
        "commitment bit flipped",
        "sealed",
        cj.clone(),
        &cm,
        "Crypto",
    );
    let mut wk = s.clone();
    wk[wd + 27 + 10] ^= 1;
    neg(
        "wrapped key bit flipped",
        "sealed",
        cj.clone(),
        &wk,
        "Crypto",
    );
    neg(
        "another tenant's context",
        "sealed",
        ctx_json("globex", "kw", "neg-1", "confidential", b""),
        &s,
        "Context(Tenant)",
    );
    neg(
        "another object's context",
        "sealed",
        ctx_json("acme", "kw", "neg-2", "confidential", b""),
        &s,
        "Crypto",
    );
    neg(
        "another classification's context",
        "sealed",
        ctx_json("acme", "kw", "neg-1", "internal", b""),
        &s,
        "Context(Classification)",
    );
    neg(
        "another purpose's context",
        "sealed",
        ctx_json("acme", "kwp", "neg-1", "confidential", b""),
        &s,
        "Context(Purpose)",
    );
    // Relabel Confidential -> Internal in the header and open as Internal.
    neg(
        "relabelled to internal",
        "sealed",
        ctx_json("acme", "kw", "neg-1", "internal", b""),
        &splice(&s, wd + 6, 1, &[2]),
        "Crypto",
    );
    neg(
        "unknown KEK version",
        "sealed",
        cj.clone(),
        &splice(&s, wd + 19, 4, &[0, 0, 0, 2]),
        "KeyState(UnknownKek)",
    );
    // The same wrapped DEK standalone.
    let w = h.wrapped_dek().encode();
    neg(
        "wrapped DEK trailing byte",
        "wrapped_dek",
        cj.clone(),
        &[w.clone(), vec![0]].concat(),
        "Malformed(TrailingBytes)",
    );
    neg(
        "wrapped DEK bad magic",
        "wrapped_dek",
        cj.clone(),
        &splice(&w, 0, 1, b"X"),
        "Malformed(BadMagic)",
    );
    neg(
        "empty input",
        "wrapped_dek",
        cj.clone(),
        b"",
        "Malformed(Truncated)",
    );
    assert!(WrappedDek::decode(&w).is_ok() && SealedObject::decode(&s).is_ok());

    let doc = json!({
        "about": "kekring wire format v1 test vectors. Produced by `cargo run --example make_vectors` (examples/make_vectors.rs) against the local backend with the KEKs below (material as LocalKek::export_material gives it; fixed AES keys, P-256 scalar and ML-KEM / hybrid seeds, RSA-3072 and RSA-4096 keys generated by that run) and the default profile plus a rule admitting symmetric KEKs for the custom classification `pci`; DEKs and nonces were random at generation time. Negative vectors are mutations of one sealed object; `expect` names the Error variant and, in parentheses, the inner variant.",
        "format_version": 1,
        "keks": keks,
        "positive": positive,
        "negative": negative,
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}
