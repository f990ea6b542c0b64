//! Throughput on one and two threads sharing one `Envelope` (one `Arc` inside): 1 KiB
//! seals and opens with a local AES-256-GCM KEK, per provider and random source. Each
//! thread does `iters` operations; the throughput figure is operations per second over all
//! threads, so perfect scaling shows two threads at twice the one-thread figure.
//! Run: `cargo bench --bench threads` (add `--features aws-lc` for the AWS-LC rows).

// A benchmark over fixed inputs: a panic is the right way for it to fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{Raw, compiled_providers, derived_envelope};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kekring::{Classification, Context, RandomSource};

/// Runs `op` `iters` times on each of `threads` threads at once; the wall time.
fn run(threads: usize, iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let ctx = Context::new(
        "bench",
        "objects",
        "object-0001",
        Classification::Confidential,
    )
    .unwrap();
    let pt = vec![0x42u8; 1024];

    // The control: raw AES-256-GCM of the same 1 KiB with a shared prepared key, which
    // shares no mutable state between threads. Its 2-thread ratio is what this machine
    // allows; kekring's ratio is read against it.
    let mut g = c.benchmark_group("threads/raw-aes256-gcm");
    let raw = Raw::new();
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        for p in compiled_providers() {
            g.bench_function(format!("{}-seal-1KiB/{threads}", p.name()), |b| {
                b.iter_custom(|iters| {
                    run(threads, iters, &|| {
                        black_box(raw.seal(p, &pt));
                    })
                })
            });
        }
    }
    g.finish();

    for p in compiled_providers() {
        for (rname, r) in [
            ("os-rng", RandomSource::OperatingSystem),
            ("user-space-rng", RandomSource::UserSpace),
        ] {
            let Some(env) = derived_envelope(p, r) else {
                continue;
            };
            let sealed = pollster::block_on(env.seal(&ctx, &pt)).unwrap();
            let mut g = c.benchmark_group(format!("threads/{}/{rname}", p.name()));
            for threads in [1usize, 2] {
                g.throughput(Throughput::Elements(threads as u64));
                g.bench_function(format!("seal-1KiB/{threads}"), |b| {
                    b.iter_custom(|iters| {
                        run(threads, iters, &|| {
                            black_box(pollster::block_on(env.seal(&ctx, &pt)).unwrap());
                        })
                    })
                });
                g.bench_function(format!("open-1KiB/{threads}"), |b| {
                    b.iter_custom(|iters| {
                        run(threads, iters, &|| {
                            black_box(pollster::block_on(env.open(&ctx, &sealed)).unwrap());
                        })
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
