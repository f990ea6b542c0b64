//! Peak memory of a large stream: seals N bytes (1 GiB by default) through
//! `Envelope::seal_writer` into an OS pipe while `Envelope::open_reader` opens the other
//! end and checks every byte, so nothing the size of the object is ever held anywhere.
//! Prints the peak resident set (`VmHWM` from `/proc/self/status`, Linux) before and
//! after, and the growth in segments.
//!
//! Run: `cargo run --release --example stream_memory [bytes] [segment-size]`
//! (add `--features aws-lc` and `KEKRING_PROVIDER=aws-lc` for the AWS-LC provider).

use std::io::{Read, Write};
use std::sync::Arc;

use kekring::backend::local::LocalBackend;
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, CryptoProvider, Envelope, KekRef, Route, WrapAlgorithm,
};

/// The plaintext is this block repeated (1 MiB, also the size of every write and read).
const BLOCK: usize = 1 << 20;

/// Peak resident set size so far, in KiB.
fn peak_rss_kib() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmHWM line")?
        .parse()?;
    Ok(kib)
}

fn provider() -> Result<CryptoProvider, Box<dyn std::error::Error>> {
    match std::env::var("KEKRING_PROVIDER").as_deref() {
        Err(_) | Ok("rust-crypto") => Ok(CryptoProvider::rust_crypto()),
        #[cfg(feature = "aws-lc")]
        Ok("aws-lc") => Ok(CryptoProvider::aws_lc()),
        Ok(other) => Err(format!("unknown or not compiled-in provider {other:?}").into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(1 << 30), |a| a.parse())?;
    let segment: u32 = args.next().map_or(Ok(64 * 1024), |a| a.parse())?;
    let provider = provider()?;

    let local = Arc::new(LocalBackend::with_crypto_provider(provider));
    let alg = WrapAlgorithm::Aes256GcmDerived;
    let loc = local.generate_aes256("stream-memory", alg)?;
    let kek = KekRef::new("demo", "objects", 1)?;
    let env = Envelope::builder()
        .crypto_provider(provider)
        .backend(local)
        .kek(NewKek::new(kek.clone(), BackendId::Local, loc, alg))
        .route(Route::new(kek))
        .build()?;
    let ctx = Context::new("demo", "objects", "large-1", Classification::Confidential)?;

    // A pseudo-random block (xorshift), written over and over.
    let mut block = vec![0u8; BLOCK];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(bytes.get(..chunk.len()).ok_or("chunk longer than 8")?);
    }
    let block = Arc::new(block);
    // Touched now (not zero pages), so the baseline counts it.
    let mut got = vec![1u8; BLOCK];

    let (pipe_r, pipe_w) = std::io::pipe()?;
    let mut writer = env
        .seal_writer_with_segment_size(&ctx, pipe_w, segment)
        .await?;
    let before = peak_rss_kib()?;

    let to_write = Arc::clone(&block);
    let sealer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut left = total;
        while left > 0 {
            let n = usize::try_from(left).map_or(BLOCK, |l| l.min(BLOCK));
            writer.write_all(to_write.get(..n).unwrap_or_default())?;
            left -= u64::try_from(n).unwrap_or(left);
        }
        writer.finish().map(drop)
    });

    let mut reader = env.open_reader(&ctx, pipe_r).await?;
    let mut seen: u64 = 0;
    let mut at = 0usize;
    loop {
        let n = reader.read(&mut got)?;
        if n == 0 {
            break;
        }
        // Compare with the repeated block, which may wrap around within one read.
        let mut off = 0usize;
        while off < n {
            let take = (n - off).min(BLOCK - at);
            if got.get(off..off + take) != block.get(at..at + take) {
                return Err(format!("plaintext differs near byte {seen}").into());
            }
            off += take;
            at = (at + take) % BLOCK;
        }
        seen += u64::try_from(n)?;
    }
    sealer.join().map_err(|_| "the sealing thread panicked")??;
    if seen != total {
        return Err(format!("opened {seen} bytes, sealed {total}").into());
    }

    let after = peak_rss_kib()?;
    let growth = after.saturating_sub(before);
    let segment_kib = u64::from(segment) / 1024;
    println!(
        "provider {}: sealed and opened {total} bytes in {segment_kib} KiB segments through a pipe",
        provider.name()
    );
    println!(
        "peak RSS {before} KiB before, {after} KiB after: grew {growth} KiB = {:.1} segments",
        f64::from(u32::try_from(growth)?) / f64::from(u32::try_from(segment_kib.max(1))?)
    );
    Ok(())
}
