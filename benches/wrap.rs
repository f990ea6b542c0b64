//! Wrap and unwrap of a 32-byte DEK for every local KEK algorithm, each beside the raw
//! primitive it is built on, in the same run: ML-KEM encapsulation / decapsulation
//! alone, P-256 ephemeral ECDH alone, RSA-OAEP encryption / decryption alone, and for the
//! hybrid ML-KEM-768 encapsulation plus P-256 ephemeral ECDH. The kekring numbers add
//! the binding (HKDF), the key wrap and the backend call. Run: `cargo bench --bench wrap`;
//! with `--features aws-lc` the `wrap-aws-lc/*` groups do the same on the AWS-LC
//! provider beside AWS-LC's raw primitives.

// A benchmark over fixed inputs: a panic is the right way for it to fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kekring::backend::local::{LOCAL_ALGORITHMS, LocalKek, MaterialKind};
use kekring::backend::{UnwrapRequest, WrapRequest};
use kekring::{Classification, Context, DataKey, KekLocator, KeyBackend, LocalBackend};
use ml_kem::kem::Decapsulate;
use ml_kem::{B32, MlKem768, MlKem1024, Seed};
use p256::pkcs8::DecodePrivateKey;

#[cfg(feature = "local-rsa")]
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
            #[cfg(feature = "local-rsa")]
            LocalKek::Rsa(_) => {
                let sk = rsa::PrivateKey::from_pkcs8_der(&material).unwrap();
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

/// The same wrap and unwrap on the AWS-LC provider, beside AWS-LC's raw primitives.
#[cfg(feature = "aws-lc")]
fn bench_aws_lc(c: &mut Criterion) {
    use aws_lc_rs::agreement::{ECDH_P256, PrivateKey, UnparsedPublicKey, agree};
    use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, ML_KEM_768, ML_KEM_1024};
    use aws_lc_rs::rsa::{
        KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
        PrivateDecryptingKey,
    };
    use kekring::WrapAlgorithm as A;

    let backend = LocalBackend::with_crypto_provider(kekring::CryptoProvider::aws_lc());
    let ctx = Context::new("bench", "wrap", "object-0001", Classification::Internal).unwrap();
    let dek = DataKey::generate().unwrap();
    let ecdh = |peer: &[u8]| {
        let e = PrivateKey::generate(&ECDH_P256).unwrap();
        let _epk = e.compute_public_key().unwrap();
        agree(&e, UnparsedPublicKey::new(&ECDH_P256, peer), (), |z| {
            Ok(z.len())
        })
        .unwrap()
    };
    for alg in LOCAL_ALGORITHMS {
        if matches!(alg, A::Aes256Kw | A::Aes256Kwp | A::Aes256Gcm) {
            continue;
        }
        let loc = backend.generate(alg.name(), alg).unwrap();
        let mut g = c.benchmark_group(format!("wrap-aws-lc/{}", alg.name()));
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
        match alg {
            A::MlKem768 | A::MlKem1024 | A::HybridP256MlKem768 => {
                let kem = if alg == A::MlKem1024 {
                    &ML_KEM_1024
                } else {
                    &ML_KEM_768
                };
                let dk = DecapsulationKey::generate(kem).unwrap();
                let ek = dk.encapsulation_key().unwrap();
                let (ct, _) = ek.encapsulate().unwrap();
                if alg == A::HybridP256MlKem768 {
                    let peer = PrivateKey::generate(&ECDH_P256).unwrap();
                    let peer_pub = peer.compute_public_key().unwrap().as_ref().to_vec();
                    g.bench_function("raw-mlkem768-encaps-plus-ecdh", |b| {
                        b.iter(|| black_box((ek.encapsulate().unwrap(), ecdh(&peer_pub))))
                    });
                    g.bench_function("raw-mlkem768-decaps-plus-ecdh", |b| {
                        b.iter(|| {
                            black_box((
                                dk.decapsulate(Ciphertext::from(ct.as_ref())).unwrap(),
                                agree(
                                    &peer,
                                    UnparsedPublicKey::new(&ECDH_P256, &peer_pub),
                                    (),
                                    |z| Ok(z.len()),
                                )
                                .unwrap(),
                            ))
                        })
                    });
                } else {
                    g.bench_function("raw-encapsulate", |b| {
                        b.iter(|| black_box(ek.encapsulate().unwrap()))
                    });
                    g.bench_function("raw-decapsulate", |b| {
                        b.iter(|| black_box(dk.decapsulate(Ciphertext::from(ct.as_ref())).unwrap()))
                    });
                }
            }
            A::P256EcdhEs => {
                let sk = PrivateKey::generate(&ECDH_P256).unwrap();
                let pk = sk.compute_public_key().unwrap().as_ref().to_vec();
                g.bench_function("raw-ephemeral-ecdh", |b| b.iter(|| black_box(ecdh(&pk))));
                g.bench_function("raw-static-ecdh", |b| {
                    b.iter(|| {
                        black_box(
                            agree(&sk, UnparsedPublicKey::new(&ECDH_P256, &pk), (), |z| {
                                Ok(z.len())
                            })
                            .unwrap(),
                        )
                    })
                });
            }
            A::RsaOaepSha256_3072 | A::RsaOaepSha256_4096 => {
                let size = if alg == A::RsaOaepSha256_3072 {
                    KeySize::Rsa3072
                } else {
                    KeySize::Rsa4096
                };
                let sk = PrivateDecryptingKey::generate(size).unwrap();
                let pk = OaepPublicEncryptingKey::new(sk.public_key()).unwrap();
                let sk = OaepPrivateDecryptingKey::new(sk).unwrap();
                let mut ct = vec![0u8; pk.ciphertext_size()];
                let n = pk
                    .encrypt(&OAEP_SHA256_MGF1SHA256, &[1u8; 32], &mut ct, Some(b"label"))
                    .unwrap()
                    .len();
                ct.truncate(n);
                g.bench_function("raw-oaep-encrypt", |b| {
                    let mut out = vec![0u8; pk.ciphertext_size()];
                    b.iter(|| {
                        black_box(
                            pk.encrypt(
                                &OAEP_SHA256_MGF1SHA256,
                                &[1u8; 32],
                                &mut out,
                                Some(b"label"),
                            )
                            .unwrap()
                            .len(),
                        )
                    })
                });
                g.bench_function("raw-oaep-decrypt", |b| {
                    let mut out = vec![0u8; sk.min_output_size()];
                    b.iter(|| {
                        black_box(
                            sk.decrypt(&OAEP_SHA256_MGF1SHA256, &ct, &mut out, Some(b"label"))
                                .unwrap()
                                .len(),
                        )
                    })
                });
            }
            _ => {}
        }
        g.finish();
    }
}

#[cfg(not(feature = "aws-lc"))]
fn bench_aws_lc(_: &mut Criterion) {}

criterion_group!(benches, bench, bench_aws_lc);
criterion_main!(benches);
