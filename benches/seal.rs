//! Seal and open at 64 B, 1 KiB, 64 KiB and 1 MiB under every local KEK algorithm and
//! every provider compiled in, each beside raw AES-256-GCM of the same bytes (same
//! provider, key schedule done once) in the same run; 1 KiB per random source; 64 MiB
//! streamed. Run: `cargo bench --bench seal` (add `--features aws-lc` for the AWS-LC
//! rows).
//!
//! The local backend's futures complete without waiting, so `pollster` drives them with
//! no runtime overhead worth measuring.

// A benchmark over fixed inputs: a panic is the right way for it to fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

mod common;

use std::hint::black_box;
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use common::{Raw, compiled_providers, derived_envelope};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kekring::backend::local::{LOCAL_ALGORITHMS, LocalKek};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, CryptoProvider, Envelope, KekRef, LocalBackend,
    RandomSource, Route, WrapAlgorithm,
};

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1024, "1KiB"),
    (65536, "64KiB"),
    (1 << 20, "1MiB"),
];
/// An envelope on `provider` with one local KEK of `alg`.
fn envelope(provider: CryptoProvider, alg: WrapAlgorithm) -> Envelope {
    let local = Arc::new(LocalBackend::with_crypto_provider(provider));
    let loc = kekring::KekLocator::new("bench");
    local
        .insert(loc.clone(), LocalKek::generate(alg).unwrap())
        .unwrap();
    let r = KekRef::new("bench", "objects", 1).unwrap();
    Envelope::builder()
        .crypto_provider(provider)
        .backend(local)
        .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
        .route(Route::new(r))
        .build()
        .unwrap()
}

/// Seal and open per size, per local KEK algorithm and per provider, each provider
/// beside its own raw AES-256-GCM of the same bytes.
fn bench(c: &mut Criterion) {
    // Internal data: the default profile admits every local KEK algorithm for it.
    let ctx = Context::new("bench", "objects", "object-0001", Classification::Internal).unwrap();
    let raw = Raw::new();
    let envs: Vec<(CryptoProvider, WrapAlgorithm, Envelope)> = compiled_providers()
        .into_iter()
        .flat_map(|p| LOCAL_ALGORITHMS.map(|alg| (p, alg, envelope(p, alg))))
        .collect();
    // A provider's rows are named `kekring-<provider>/<algorithm>` and
    // `raw-aes256-gcm-<provider>`, so each reads against its own raw row.
    for (size, label) in SIZES {
        let pt = vec![0x42u8; size];
        let mut g = c.benchmark_group(format!("seal/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        for p in compiled_providers() {
            g.bench_function(format!("raw-aes256-gcm-{}", p.name()), |b| {
                b.iter(|| black_box(raw.seal(p, &pt)))
            });
        }
        for (p, alg, env) in &envs {
            let id = BenchmarkId::new(format!("kekring-{}", p.name()), alg.name());
            g.bench_with_input(id, &pt, |b, pt| {
                b.iter(|| black_box(pollster::block_on(env.seal(&ctx, pt)).unwrap()))
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("open/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        for p in compiled_providers() {
            let sealed = raw.seal(p, &pt);
            assert_eq!(raw.open(p, &sealed), pt);
            g.bench_function(format!("raw-aes256-gcm-{}", p.name()), |b| {
                b.iter(|| black_box(raw.open(p, &sealed)))
            });
        }
        for (p, alg, env) in &envs {
            let sealed = pollster::block_on(env.seal(&ctx, &pt)).unwrap();
            let id = BenchmarkId::new(format!("kekring-{}", p.name()), alg.name());
            g.bench_with_input(id, &sealed, |b, s| {
                b.iter(|| black_box(pollster::block_on(env.open(&ctx, s)).unwrap()))
            });
        }
        g.finish();
    }
}

/// 1 KiB seal per provider and random source, beside each provider's raw AES-256-GCM.
fn providers(c: &mut Criterion) {
    let ctx = Context::new(
        "bench",
        "objects",
        "object-0001",
        Classification::Confidential,
    )
    .unwrap();
    let pt = vec![0x42u8; 1024];
    let mut g = c.benchmark_group("seal-1KiB-providers");
    g.throughput(Throughput::Bytes(1024));
    let raw = Raw::new();
    for p in compiled_providers() {
        g.bench_function(format!("raw-aes256-gcm/{}", p.name()), |b| {
            b.iter(|| black_box(raw.seal(p, &pt)))
        });
    }
    for p in compiled_providers() {
        for (rname, r) in [
            ("os-rng", RandomSource::OperatingSystem),
            ("user-space-rng", RandomSource::UserSpace),
        ] {
            let Some(env) = derived_envelope(p, r) else {
                continue;
            };
            g.bench_function(format!("kekring/{}/{rname}", p.name()), |b| {
                b.iter(|| black_box(pollster::block_on(env.seal(&ctx, &pt)).unwrap()))
            });
        }
    }
    g.finish();
}

/// 64 MiB through the stream writer and reader (64 KiB segments) per provider.
fn streamed(c: &mut Criterion) {
    use std::io::{Read, Write};
    let ctx = Context::new(
        "bench",
        "objects",
        "object-0001",
        Classification::Confidential,
    )
    .unwrap();
    let pt = vec![0x42u8; 64 << 20];
    let mut g = c.benchmark_group("stream-64MiB");
    g.throughput(Throughput::Bytes(pt.len() as u64));
    g.sample_size(10);
    // The raw baselines: AES-256-GCM of the same 64 MiB, one prepared key, in 64 KiB
    // pieces (what the segments are), into one reused buffer.
    let raw = Aes256Gcm::new(&[7u8; 32].into());
    g.bench_function("raw-aes256-gcm/rust-crypto", |b| {
        let mut buf = vec![0u8; 64 << 10];
        b.iter(|| {
            for chunk in pt.chunks(64 << 10) {
                buf.copy_from_slice(chunk);
                black_box(
                    raw.encrypt_inout_detached((&[9u8; 12]).into(), b"", buf.as_mut_slice().into())
                        .unwrap(),
                );
            }
        })
    });
    #[cfg(feature = "aws-lc")]
    {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
        g.bench_function("raw-aes256-gcm/aws-lc", |b| {
            let mut buf = vec![0u8; 64 << 10];
            b.iter(|| {
                for chunk in pt.chunks(64 << 10) {
                    buf.copy_from_slice(chunk);
                    let tag = k
                        .seal_in_place_separate_tag(
                            Nonce::assume_unique_for_key([9u8; 12]),
                            Aad::empty(),
                            &mut buf,
                        )
                        .unwrap();
                    black_box(tag.as_ref().len());
                }
            })
        });
    }
    for p in compiled_providers() {
        let env = derived_envelope(p, RandomSource::OperatingSystem).unwrap();
        g.bench_function(format!("seal/{}", p.name()), |b| {
            b.iter(|| {
                let mut w = pollster::block_on(env.seal_writer(&ctx, std::io::sink())).unwrap();
                for chunk in pt.chunks(1 << 20) {
                    w.write_all(chunk).unwrap();
                }
                black_box(w.finish().unwrap())
            })
        });
        let mut w = pollster::block_on(env.seal_writer(&ctx, Vec::new())).unwrap();
        w.write_all(&pt).unwrap();
        let sealed = w.finish().unwrap();
        g.bench_function(format!("open/{}", p.name()), |b| {
            let mut buf = vec![0u8; 1 << 20];
            b.iter(|| {
                let mut r = pollster::block_on(env.open_reader(&ctx, sealed.as_slice())).unwrap();
                while r.read(&mut buf).unwrap() > 0 {}
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, providers, streamed);
criterion_main!(benches);
