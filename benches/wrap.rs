//! Wrap and unwrap of a 32-byte DEK for every local KEK algorithm, each beside the raw
//! primitive it is built on, in the same run: ML-KEM encapsulation / decapsulation
//! alone, P-256 ephemeral ECDH alone, RSA-OAEP encryption / decryption alone, and for the
//! hybrid ML-KEM-768 encapsulation plus P-256 ephemeral ECDH. The kekring numbers add
//! the binding (HKDF), the key wrap and the backend call. Run: `cargo bench --bench wrap`.

// A benchmark over fixed inputs: a panic is the right way for it to fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kekring::backend::{UnwrapRequest, WrapRequest};
use kekring::providers::local::{LOCAL_ALGORITHMS, LocalKek, MaterialKind};
use kekring::{Classification, Context, DataKey, KekLocator, KeyBackend, LocalBackend};
use ml_kem::kem::Decapsulate;
use ml_kem::{B32, MlKem768, MlKem1024, Seed};
use p256::pkcs8::DecodePrivateKey;

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn raw_p256_ecdh(recipient: &p256::PublicKey) -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    let e = p256::SecretKey::from_slice(&b).unwrap();
    let _epk = e.public_key();
    (*e.diffie_hellman(recipient).raw_secret_bytes()).into()
}

fn bench(c: &mut Criterion) {
    let backend = LocalBackend::new();
    for alg in LOCAL_ALGORITHMS {
        backend.generate(alg.name(), alg).unwrap();
    }
    let ctx = Context::new("bench", "wrap", "object-0001", Classification::Internal).unwrap();
    let dek = DataKey::generate().unwrap();

    for alg in LOCAL_ALGORITHMS {
        let loc = KekLocator::new(alg.name());
        let mut g = c.benchmark_group(format!("wrap/{}", alg.name()));
        g.bench_function("kekring-wrap", |b| {
            b.iter(|| {
                black_box(
                    pollster::block_on(backend.wrap(WrapRequest::new(
                        &loc,
                        alg,
                        &dek,
                        ctx.binding(),
                    )))
                    .unwrap(),
                )
            })
        });
        let w = pollster::block_on(backend.wrap(WrapRequest::new(&loc, alg, &dek, ctx.binding())))
            .unwrap();
        g.bench_function("kekring-unwrap", |b| {
            b.iter(|| {
                black_box(
                    pollster::block_on(backend.unwrap(UnwrapRequest::new(
                        &loc,
                        alg,
                        &w.params,
                        &w.wrapped,
                        ctx.binding(),
                    )))
                    .unwrap(),
                )
            })
        });

        // The raw primitive, on the same key.
        let kek = backend.get_shared(&loc).unwrap();
        let (kind, material) = kek.export_material().unwrap();
        assert_eq!(kind, MaterialKind::Private);
        match kek.as_ref() {
            LocalKek::MlKem(_) if alg == kekring::WrapAlgorithm::MlKem768 => {
                let dk = ml_kem::DecapsulationKey::<MlKem768>::from_seed(
                    Seed::try_from(&material[..]).unwrap(),
                );
                let ek = dk.encapsulation_key().clone();
                let m = B32::from([7u8; 32]);
                let (ct, _) = ek.encapsulate_deterministic(&m);
                g.bench_function("raw-encapsulate", |b| {
                    b.iter(|| black_box(ek.encapsulate_deterministic(&m)))
                });
                g.bench_function("raw-decapsulate", |b| {
                    b.iter(|| black_box(dk.decapsulate(&ct)))
                });
            }
            LocalKek::MlKem(_) => {
                let dk = ml_kem::DecapsulationKey::<MlKem1024>::from_seed(
                    Seed::try_from(&material[..]).unwrap(),
                );
                let ek = dk.encapsulation_key().clone();
                let m = B32::from([7u8; 32]);
                let (ct, _) = ek.encapsulate_deterministic(&m);
                g.bench_function("raw-encapsulate", |b| {
                    b.iter(|| black_box(ek.encapsulate_deterministic(&m)))
                });
                g.bench_function("raw-decapsulate", |b| {
                    b.iter(|| black_box(dk.decapsulate(&ct)))
                });
            }
            LocalKek::P256(_) => {
                let sk = p256::SecretKey::from_pkcs8_der(&material).unwrap();
                let pk = sk.public_key();
                g.bench_function("raw-ephemeral-ecdh", |b| {
                    b.iter(|| black_box(raw_p256_ecdh(&pk)))
                });
                g.bench_function("raw-static-ecdh", |b| {
                    b.iter(|| black_box(sk.diffie_hellman(&pk)))
                });
            }
            LocalKek::Rsa(_) => {
                let sk = rsa::RsaPrivateKey::from_pkcs8_der(&material).unwrap();
                let pk = sk.to_public_key();
                let pad = || rsa::Oaep::<rsa::sha2::Sha256>::new();
                let ct = pk.encrypt(&mut rng(), pad(), &[1u8; 32]).unwrap();
                g.bench_function("raw-oaep-encrypt", |b| {
                    b.iter(|| black_box(pk.encrypt(&mut rng(), pad(), &[1u8; 32]).unwrap()))
                });
                g.bench_function("raw-oaep-decrypt", |b| {
                    b.iter(|| black_box(sk.decrypt_blinded(&mut rng(), pad(), &ct).unwrap()))
                });
            }
            LocalKek::Hybrid(k) => {
                // ML-KEM-768 encapsulation plus P-256 ephemeral ECDH: the hybrid's two
                // expensive steps, without its SHA3 combiner, HKDF and key wrap.
                let ek_all = k.encapsulation_key();
                let arr = ml_kem::array::Array::try_from(&ek_all[..1184]).unwrap();
                let ek = ml_kem::EncapsulationKey::<MlKem768>::new(&arr).unwrap();
                let pk = p256::PublicKey::from_sec1_bytes(&ek_all[1184..]).unwrap();
                let m = B32::from([7u8; 32]);
                g.bench_function("raw-mlkem768-encaps-plus-ecdh", |b| {
                    b.iter(|| black_box((ek.encapsulate_deterministic(&m), raw_p256_ecdh(&pk))))
                });
            }
            LocalKek::Aes256(_) => {}
            _ => {}
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
