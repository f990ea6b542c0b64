//! What the benches share: the providers compiled in, each provider's raw AES-256-GCM
//! baseline, and an envelope on one local KEK. Included with `mod common;` (not a bench target itself).

// Each bench uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};

use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, CryptoProvider, Envelope, KekRef, LocalBackend, RandomSource, Route, WrapAlgorithm,
};

/// Every provider compiled in.
pub(crate) fn compiled_providers() -> Vec<CryptoProvider> {
    vec![
        CryptoProvider::rust_crypto(),
        #[cfg(feature = "aws-lc")]
        CryptoProvider::aws_lc(),
    ]
}

/// An envelope on one local AES-256-GCM-derived KEK (`bench/objects/v1`), with this
/// provider and random source; `None` when the provider cannot serve `random`
/// (RustCrypto has no user-space generator).
pub(crate) fn derived_envelope(provider: CryptoProvider, random: RandomSource) -> Option<Envelope> {
    let alg = WrapAlgorithm::Aes256GcmDerived;
    let local = Arc::new(
        LocalBackend::with_crypto_provider(provider)
            .with_random_source(random)
            .ok()?,
    );
    let loc = local.generate_aes256("bench", alg).unwrap();
    let r = KekRef::new("bench", "objects", 1).unwrap();
    Envelope::builder()
        .crypto_provider(provider)
        .random_source(random)
        .backend(local)
        .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
        .route(Route::new(r))
        .build()
        .ok()
}

/// Raw AES-256-GCM of one provider, key schedule done once: seal and open of a copy of
/// the input, as kekring's `seal` / `open` return a new buffer.
pub(crate) struct Raw {
    rust_crypto: Aes256Gcm,
    #[cfg(feature = "aws-lc")]
    aws_lc: aws_lc_rs::aead::LessSafeKey,
}

const NONCE: [u8; 12] = [9u8; 12];

impl Raw {
    pub(crate) fn new() -> Self {
        Self {
            rust_crypto: Aes256Gcm::new(&[7u8; 32].into()),
            #[cfg(feature = "aws-lc")]
            aws_lc: aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32])
                    .unwrap(),
            ),
        }
    }

    /// Ciphertext followed by the tag.
    pub(crate) fn seal(&self, provider: CryptoProvider, pt: &[u8]) -> Vec<u8> {
        // Room for the tag up front, as kekring's `seal` sizes its output: appending the
        // tag must not reallocate (and copy) the buffer.
        let mut buf = Vec::with_capacity(pt.len() + 16);
        buf.extend_from_slice(pt);
        #[cfg(feature = "aws-lc")]
        if provider != CryptoProvider::rust_crypto() {
            self.aws_lc
                .seal_in_place_append_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(NONCE),
                    aws_lc_rs::aead::Aad::empty(),
                    &mut buf,
                )
                .unwrap();
            return buf;
        }
        let _ = provider;
        let tag = self
            .rust_crypto
            .encrypt_inout_detached((&NONCE).into(), b"", buf.as_mut_slice().into())
            .unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    pub(crate) fn open(&self, provider: CryptoProvider, sealed: &[u8]) -> Vec<u8> {
        let mut buf = sealed.to_vec();
        let n = buf.len() - 16;
        #[cfg(feature = "aws-lc")]
        if provider != CryptoProvider::rust_crypto() {
            self.aws_lc
                .open_in_place(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(NONCE),
                    aws_lc_rs::aead::Aad::empty(),
                    &mut buf,
                )
                .unwrap();
            buf.truncate(n);
            return buf;
        }
        let _ = provider;
        let (ct, tag) = buf.split_at_mut(n);
        let tag: [u8; 16] = (&*tag).try_into().unwrap();
        self.rust_crypto
            .decrypt_inout_detached((&NONCE).into(), b"", ct.into(), (&tag).into())
            .unwrap();
        buf.truncate(n);
        buf
    }
}
