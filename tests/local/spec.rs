//! Independent re-derivations of `docs/FORMAT.md` with the primitive crates called
//! directly (not through kekring): the payload key schedule and commitment (section 6)
//! and the local AES key wraps (section 7). Also proves that `open` checks the key
//! commitment itself: a header with a wrong commitment but a *valid* GCM tag is refused.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_kw::{KwAes256, KwpAes256};
use hkdf::Hkdf;
use kekring::format::{SealedHeader, SealedObject};
use kekring::lifecycle::NewKek;
use kekring::secret::Aes256KeyMaterial;
use kekring::{
    BackendId, Classification, Context, Envelope, Error, KekRef, LocalBackend, Route, WrapAlgorithm,
};
use sha2::Sha256;

const KEK: [u8; 32] = [0x11; 32];

fn envelope(alg: WrapAlgorithm) -> Envelope {
    let local = Arc::new(LocalBackend::new());
    let mut kek = KEK;
    kek[0] = 0x12; // not degenerate
    let loc = local
        .import_aes256("spec", alg, Aes256KeyMaterial::from_slice(&kek).unwrap())
        .unwrap();
    let r = KekRef::new("acme", "spec", 1).unwrap();
    Envelope::builder()
        .backend(local)
        .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
        .route(Route::new(r))
        .build()
        .unwrap()
}

fn kek_bytes() -> [u8; 32] {
    let mut k = KEK;
    k[0] = 0x12;
    k
}

/// FORMAT.md section 6: OKM = HKDF-Expand(PRK = DEK, "kekring/v1/payload" || suite ||
/// nonce, 64) = payload key || commitment (no extract step: the DEK is uniformly random).
fn suite_keys(suite: u16, dek: &[u8; 32], nonce: &[u8; 12]) -> ([u8; 32], [u8; 32]) {
    let mut okm = [0u8; 64];
    let info = [&b"kekring/v1/payload"[..], &suite.to_be_bytes(), nonce].concat();
    Hkdf::<Sha256>::from_prk(dek)
        .unwrap()
        .expand(&info, &mut okm)
        .unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

fn payload_keys(dek: &[u8; 32], nonce: &[u8; 12]) -> ([u8; 32], [u8; 32]) {
    suite_keys(1, dek, nonce)
}

/// FORMAT.md section 6: the payload AAD.
fn payload_aad(nonce: &[u8; 12], commitment: &[u8; 32], binding: &[u8]) -> Vec<u8> {
    [
        &b"kekring/v1/payload-aad"[..],
        &[0x01, 0x00, 0x01],
        nonce,
        commitment,
        binding,
    ]
    .concat()
}

/// FORMAT.md section 4.2: a stream decrypted from the spec alone, segment by segment.
#[tokio::test]
async fn segmented_stream_matches_the_spec() {
    use std::io::Write;
    let env = envelope(WrapAlgorithm::Aes256GcmDerived);
    let ctx = Context::new("acme", "spec", "stream", Classification::Internal)
        .unwrap()
        .with_aad(b"extra")
        .unwrap();
    let pt: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let mut w = env
        .seal_writer_with_segment_size(&ctx, Vec::new(), 1024)
        .await
        .unwrap();
    w.write_all(&pt).unwrap();
    let sealed = w.finish().unwrap();

    // Header: magic, version, suite 00 02, flags, W, wrapped DEK, segment size,
    // nonce, commitment.
    assert_eq!(&sealed[..8], b"KRSO\x01\x00\x02\x00");
    let w_len = u16::from_be_bytes([sealed[8], sealed[9]]) as usize;
    let mut at = 10 + w_len;
    let wrapped = &sealed[10..at];
    let seg_size = u32::from_be_bytes(sealed[at..at + 4].try_into().unwrap());
    assert_eq!(seg_size, 1024);
    at += 4;
    let nonce: [u8; 12] = sealed[at..at + 12].try_into().unwrap();
    let commitment: [u8; 32] = sealed[at + 12..at + 44].try_into().unwrap();
    at += 44;

    let dek = env.unwrap_data_key(&ctx, wrapped).await.unwrap();
    let (key, derived) = suite_keys(2, dek.expose_secret(), &nonce);
    assert_eq!(derived, commitment);
    let aad = [
        &b"kekring/v1/payload-aad"[..],
        &[0x01, 0x00, 0x02],
        &seg_size.to_be_bytes(),
        &nonce,
        &commitment,
        ctx.binding().canonical_bytes(),
    ]
    .concat();
    let gcm = Aes256Gcm::new(&key.into());
    let segments: Vec<&[u8]> = sealed[at..].chunks(1024 + 16).collect();
    assert_eq!(segments.len(), 3);
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&(i as u64).to_be_bytes());
        n[11] = u8::from(last);
        let (ct, tag) = seg.split_at(seg.len() - 16);
        let tag: [u8; 16] = tag.try_into().unwrap();
        let mut buf = ct.to_vec();
        gcm.decrypt_inout_detached(&n.into(), &aad, buf.as_mut_slice().into(), (&tag).into())
            .unwrap();
        out.extend_from_slice(&buf);
    }
    assert_eq!(out, pt);
}

#[tokio::test]
async fn payload_key_schedule_and_aad_match_the_spec() {
    let env = envelope(WrapAlgorithm::Aes256Kw);
    let ctx = Context::new("acme", "spec", "obj", Classification::Internal)
        .unwrap()
        .with_aad(b"extra")
        .unwrap();
    let pt = b"independently decrypted";
    let sealed = env.seal(&ctx, pt).await.unwrap();
    let obj = SealedObject::decode(&sealed).unwrap();
    let h = obj.header();
    let dek = env
        .unwrap_data_key(&ctx, &h.wrapped_dek().encode())
        .await
        .unwrap();
    let (key, commitment) = payload_keys(dek.expose_secret(), h.nonce());
    assert_eq!(&commitment, h.commitment());

    let aad = payload_aad(h.nonce(), h.commitment(), ctx.binding().canonical_bytes());
    let mut buf = obj.ciphertext().to_vec();
    Aes256Gcm::new(&key.into())
        .decrypt_inout_detached(
            h.nonce().into(),
            &aad,
            buf.as_mut_slice().into(),
            obj.tag().into(),
        )
        .unwrap();
    assert_eq!(buf, pt);
}

#[tokio::test]
async fn open_checks_the_commitment_even_when_the_tag_is_valid() {
    let env = envelope(WrapAlgorithm::Aes256Kw);
    let ctx = Context::new("acme", "spec", "obj", Classification::Internal).unwrap();
    let pt = b"payload";
    let sealed = env.seal(&ctx, pt).await.unwrap();
    let (h, _) = SealedHeader::decode_prefix(&sealed).unwrap();
    let dek = env
        .unwrap_data_key(&ctx, &h.wrapped_dek().encode())
        .await
        .unwrap();
    let (key, commitment) = payload_keys(dek.expose_secret(), h.nonce());

    // Re-seal the same payload under the real payload key, with a header that carries a
    // wrong commitment, and a tag that is valid for that header.
    let mut wrong = commitment;
    wrong[7] ^= 0x40;
    let forged_header =
        SealedHeader::new(h.suite(), h.wrapped_dek().clone(), *h.nonce(), wrong).encode();
    let aad = payload_aad(h.nonce(), &wrong, ctx.binding().canonical_bytes());
    let mut ct = pt.to_vec();
    let tag = Aes256Gcm::new(&key.into())
        .encrypt_inout_detached(h.nonce().into(), &aad, ct.as_mut_slice().into())
        .unwrap();
    let forged = [forged_header, ct, tag.to_vec()].concat();

    assert!(matches!(env.open(&ctx, &forged).await, Err(Error::Crypto)));
    let mut buf = forged.clone();
    assert!(matches!(
        env.open_in_place(&ctx, &mut buf).await,
        Err(Error::Crypto)
    ));
    assert_eq!(buf, forged);
}

#[tokio::test]
async fn local_aes_wraps_match_the_spec() {
    let ctx = Context::new("acme", "spec", "row", Classification::Restricted).unwrap();
    let binding = ctx.binding().canonical_bytes().to_vec();
    for (alg, salt) in [
        (WrapAlgorithm::Aes256Kw, &b"kekring/v1/local/aes256-kw"[..]),
        (
            WrapAlgorithm::Aes256Kwp,
            &b"kekring/v1/local/aes256-kwp"[..],
        ),
        (WrapAlgorithm::Aes256GcmDerived, &b""[..]),
    ] {
        let env = envelope(alg);
        let g = env.generate_data_key(&ctx).await.unwrap();
        let w = kekring::format::WrappedDek::decode(&g.wrapped).unwrap();
        let e = &w.entries()[0];
        let mut out = [0u8; 32];
        match alg {
            WrapAlgorithm::Aes256GcmDerived => {
                // A fresh key per wrap from the 32-byte salt in params; zero nonce.
                let label = &b"kekring/v1/local/aes256-gcm-derived"[..];
                assert_eq!(e.params().len(), 32);
                let mut wk = [0u8; 32];
                Hkdf::<Sha256>::new(Some(label), &kek_bytes())
                    .expand_multi_info(&[e.params(), &binding], &mut wk)
                    .unwrap();
                let aad = [label, &binding].concat();
                let (ct, tag) = e.wrapped().split_at(32);
                let mut buf = ct.to_vec();
                let nonce = [0u8; 12];
                Aes256Gcm::new(&wk.into())
                    .decrypt_inout_detached(
                        (&nonce).into(),
                        &aad,
                        buf.as_mut_slice().into(),
                        tag.try_into().unwrap(),
                    )
                    .unwrap();
                out.copy_from_slice(&buf);
            }
            _ => {
                let mut wk = [0u8; 32];
                Hkdf::<Sha256>::new(Some(salt), &kek_bytes())
                    .expand(&binding, &mut wk)
                    .unwrap();
                let mut buf = [0u8; 40];
                let k = if alg == WrapAlgorithm::Aes256Kw {
                    KwAes256::new(&wk.into())
                        .unwrap_key(e.wrapped(), &mut buf)
                        .unwrap()
                        .to_vec()
                } else {
                    KwpAes256::new(&wk.into())
                        .unwrap_key(e.wrapped(), &mut buf)
                        .unwrap()
                        .to_vec()
                };
                out.copy_from_slice(&k);
            }
        }
        assert_eq!(&out, g.key.expose_secret(), "{alg}");
    }
}
