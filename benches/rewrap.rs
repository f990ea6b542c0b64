//! Bulk re-wrap throughput with a local AES-256 KEK: 1,000 wrapped DEKs moved from v1 to
//! v2 per iteration, on one thread and split across two threads, in the same run.
//! Throughput is reported in wrapped DEKs per second. Run: `cargo bench --bench rewrap`.

// A benchmark over fixed inputs: a panic is the right way for it to fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kekring::backend::KekSpec;
use kekring::envelope::{BulkItem, BulkItemKind, BulkOptions};
use kekring::lifecycle::{KeyRing, NewKek, SharedKeyRing};
use kekring::{
    BackendId, Classification, Context, Envelope, KekRef, KeyBackend, LocalBackend, WrapAlgorithm,
};

const N: usize = 1000;

fn bench(c: &mut Criterion) {
    let local = Arc::new(LocalBackend::new());
    let new_kek = |v: u32| {
        let d =
            pollster::block_on(local.create_kek(&KekSpec::new(WrapAlgorithm::Aes256Kw, "bench")))
                .unwrap();
        NewKek::new(
            KekRef::new("bench", "rewrap", v).unwrap(),
            BackendId::Local,
            d.locator.as_str(),
            WrapAlgorithm::Aes256Kw,
        )
        .key_id(local.key_identity(&d.locator).unwrap())
    };
    // Real time: the envelope judges the overlap window by the system clock.
    let now = kekring::Clock::now(&kekring::SystemClock);
    let ring = SharedKeyRing::new(KeyRing::new());
    let v1 = new_kek(1);
    ring.apply(|r| r.register(v1, now)).unwrap();
    let env = Envelope::builder()
        .backend(local.clone())
        .key_ring(ring.clone())
        .build()
        .unwrap();
    let items: Vec<BulkItem> = (0..N)
        .map(|i| {
            let id = format!("row-{i}");
            let ctx = Context::new("bench", "rewrap", &id, Classification::Confidential).unwrap();
            let w = pollster::block_on(env.generate_data_key(&ctx))
                .unwrap()
                .wrapped;
            BulkItem::new(id, ctx, BulkItemKind::WrappedDek, w)
        })
        .collect();
    let v2 = new_kek(2);
    ring.apply(|r| r.rotate(v2, now)).unwrap();

    let mut g = c.benchmark_group("bulk-rewrap/aes256-kw");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("1-thread", |b| {
        b.iter(|| {
            let report = pollster::block_on(env.bulk_rewrap(
                items.clone(),
                BulkOptions::new(8, 0),
                |_, _, _| {},
            ));
            assert_eq!(report.progress.rewrapped, N as u64);
            black_box(report)
        })
    });
    g.bench_function("2-threads", |b| {
        b.iter(|| {
            let (left, right) = items.split_at(N / 2);
            std::thread::scope(|s| {
                let h: Vec<_> = [left, right]
                    .into_iter()
                    .map(|half| {
                        let env = env.clone();
                        s.spawn(move || {
                            pollster::block_on(env.bulk_rewrap(
                                half.to_vec(),
                                BulkOptions::new(8, 0),
                                |_, _, _| {},
                            ))
                        })
                    })
                    .collect();
                for h in h {
                    black_box(h.join().unwrap());
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
