//! The segmented suite through its adapters: round trips at segment boundaries, every
//! kind of cut, reorder, duplication, extension and bit flip, random access that
//! decrypts only the segments it touches, the async adapters, and the refusals between
//! whole-object and stream APIs.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use kekring::format::SealedHeader;
use kekring::{Classification, Context, Envelope, Error, MisuseError, WrapAlgorithm};
use proptest::prelude::*;

const SEG: u32 = 1024;
const FULL: usize = SEG as usize + 16;

use crate::common;

fn envelope() -> Envelope {
    common::local_envelope(&[("acme", "media", WrapAlgorithm::Aes256GcmDerived)]).0
}

fn ctx() -> Context {
    common::ctx("acme", "media", "video-1", Classification::Confidential)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn seal(env: &Envelope, ctx: &Context, pt: &[u8], chunk: usize) -> Vec<u8> {
    let mut w =
        pollster::block_on(env.seal_writer_with_segment_size(ctx, Vec::new(), SEG)).unwrap();
    for c in pt.chunks(chunk.max(1)) {
        w.write_all(c).unwrap();
    }
    w.finish().unwrap()
}

fn header_len(sealed: &[u8]) -> usize {
    SealedHeader::decode_prefix(sealed).unwrap().1
}

/// Reads everything; returns what was read and the final result.
fn read_all(
    env: &Envelope,
    ctx: &Context,
    sealed: &[u8],
    chunk: usize,
) -> (Vec<u8>, Result<(), Error>) {
    let mut r = match pollster::block_on(env.open_reader(ctx, sealed)) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                let inner = Error::from_io(&e).map(|e| e.to_string());
                // A later read must fail too.
                assert!(
                    r.read(&mut buf).is_err(),
                    "reader kept going after {inner:?}"
                );
                return (out, Err(map_err(&e)));
            }
        }
    }
}

fn map_err(e: &std::io::Error) -> Error {
    match Error::from_io(e) {
        Some(Error::Crypto) => Error::Crypto,
        Some(Error::Malformed(f)) => Error::Malformed(f.clone()),
        Some(other) => panic!("unexpected stream error {other}"),
        None => panic!("io error without a kekring error: {e}"),
    }
}

#[test]
fn round_trips_at_every_boundary_with_any_chunking() {
    let env = envelope();
    let ctx = ctx();
    for len in [
        0,
        1,
        1023,
        1024,
        1025,
        2047,
        2048,
        2049,
        5 * 1024 + 3,
        100_000,
    ] {
        for (wchunk, rchunk) in [(1, 1000), (7, 3), (1024, 1024), (4096, 100_000)] {
            if len > 10_000 && (wchunk < 1000 || rchunk < 1000) {
                continue;
            }
            let pt = data(len);
            let sealed = seal(&env, &ctx, &pt, wchunk);
            let h = header_len(&sealed);
            let segments = if len == 0 { 1 } else { len.div_ceil(1024) };
            assert_eq!(sealed.len(), h + len + 16 * segments, "len {len}");
            let (out, res) = read_all(&env, &ctx, &sealed, rchunk);
            res.unwrap();
            assert_eq!(out, pt, "len {len} chunks {wchunk}/{rchunk}");
            // Envelope::open reads streams too.
            assert_eq!(pollster::block_on(env.open(&ctx, &sealed)).unwrap(), pt);
        }
    }
}

#[test]
fn every_cut_is_detected() {
    let env = envelope();
    let ctx = ctx();
    let pt = data(3 * 1024 + 100);
    let sealed = seal(&env, &ctx, &pt, 4096);
    let h = header_len(&sealed);
    // Cut at every segment boundary and at points inside segments and the header.
    let mut cuts: Vec<usize> = (0..4).map(|i| h + i * FULL).collect();
    cuts.extend([1, 9, h - 1, h + 1, h + 15, h + FULL + 500, sealed.len() - 1]);
    for cut in cuts {
        let short = &sealed[..cut];
        let (out, res) = read_all(&env, &ctx, short, 1000);
        assert!(res.is_err(), "cut at {cut} accepted");
        assert!(
            pt.starts_with(&out),
            "cut at {cut}: released bytes that are not the prefix"
        );
        assert!(
            pollster::block_on(env.open(&ctx, short)).is_err(),
            "open accepted cut {cut}"
        );
        let seekable = pollster::block_on(env.open_seekable(&ctx, Cursor::new(short)));
        assert!(seekable.is_err(), "seekable accepted cut {cut}");
    }
}

#[test]
fn reordered_duplicated_extended_and_spliced_segments_fail() {
    let env = envelope();
    let ctx = ctx();
    let pt = data(3 * 1024 + 100);
    let sealed = seal(&env, &ctx, &pt, 4096);
    let h = header_len(&sealed);
    let seg = |i: usize| sealed[h + i * FULL..(h + (i + 1) * FULL).min(sealed.len())].to_vec();
    let head = sealed[..h].to_vec();

    let swapped = [head.clone(), seg(1), seg(0), seg(2), seg(3)].concat();
    let duplicated = [head.clone(), seg(0), seg(0), seg(1), seg(2), seg(3)].concat();
    let dropped = [head.clone(), seg(0), seg(2), seg(3)].concat();
    let mut extended = sealed.clone();
    extended.push(0);
    let doubled_tail = [sealed.clone(), seg(3)].concat();
    // A segment from another stream of the same length, same context.
    let other = seal(&env, &ctx, &pt, 4096);
    let oh = header_len(&other);
    let spliced = [
        head.clone(),
        seg(0),
        other[oh + FULL..oh + 2 * FULL].to_vec(),
        seg(2),
        seg(3),
    ]
    .concat();
    for (name, bad) in [
        ("swapped", swapped),
        ("duplicated", duplicated),
        ("dropped", dropped),
        ("extended", extended),
        ("doubled tail", doubled_tail),
        ("spliced", spliced),
    ] {
        let (_, res) = read_all(&env, &ctx, &bad, 4096);
        assert!(res.is_err(), "{name} accepted by the reader");
        assert!(
            pollster::block_on(env.open(&ctx, &bad)).is_err(),
            "{name} accepted by open"
        );
    }
}

#[test]
fn a_flipped_bit_fails_at_its_segment_and_not_before() {
    let env = envelope();
    let ctx = ctx();
    let pt = data(4 * 1024);
    let sealed = seal(&env, &ctx, &pt, 4096);
    let h = header_len(&sealed);
    for (i, pos) in [(0usize, h + 5), (1, h + FULL + 1030), (3, h + 3 * FULL + 2)] {
        let mut bad = sealed.clone();
        bad[pos] ^= 0x01;
        let (out, res) = read_all(&env, &ctx, &bad, 1024);
        assert!(matches!(res, Err(Error::Crypto)), "segment {i}");
        assert_eq!(
            out,
            pt[..i * 1024],
            "segment {i}: earlier segments are released"
        );
    }
    // Every header byte matters too (some flips are format errors, others crypto or
    // context errors; none opens).
    for pos in 0..h {
        let mut bad = sealed.clone();
        bad[pos] ^= 0x20;
        assert!(
            pollster::block_on(env.open_reader(&ctx, bad.as_slice())).is_err() || {
                let (_, res) = read_all(&env, &ctx, &bad, 4096);
                res.is_err()
            }
        );
    }
}

#[test]
fn a_failed_segment_leaves_no_plaintext_in_the_callers_buffer() {
    // A read buffer of at least one segment gets the segment decrypted straight into it;
    // when that segment fails, the buffer must not hold its plaintext.
    let env = envelope();
    let ctx = ctx();
    let pt = data(3 * 1024);
    let sealed = seal(&env, &ctx, &pt, 4096);
    let h = header_len(&sealed);
    let mut bad = sealed.clone();
    bad[h + FULL + 7] ^= 0x01; // segment 1
    let mut r = pollster::block_on(env.open_reader(&ctx, bad.as_slice())).unwrap();
    let mut buf = vec![0xEEu8; 2 * 1024];
    assert_eq!(r.read(&mut buf).unwrap(), 1024);
    assert_eq!(buf[..1024], pt[..1024]);
    let err = r.read(&mut buf).unwrap_err();
    assert!(matches!(Error::from_io(&err), Some(Error::Crypto)));
    assert_ne!(buf[..1024], pt[1024..2048], "segment 1's plaintext leaked");
    assert!(
        buf[..1024].iter().all(|b| *b == 0) || buf[..1024] == bad[h + FULL..h + FULL + 1024],
        "the buffer holds neither zeros nor the ciphertext"
    );
}

#[test]
fn random_access_decrypts_only_the_touched_segments() {
    let env = envelope();
    let ctx = ctx();
    let pt = data(10 * 1024 + 77);
    let sealed = seal(&env, &ctx, &pt, 4096);
    let mut r = pollster::block_on(env.open_seekable(&ctx, Cursor::new(sealed.clone()))).unwrap();
    assert_eq!(r.len(), pt.len() as u64);
    assert_eq!(
        r.segments_decrypted(),
        1,
        "the final segment is checked at creation"
    );

    // A range inside segment 4, then one straddling 6 and 7.
    r.seek(SeekFrom::Start(4 * 1024 + 10)).unwrap();
    let mut buf = vec![0u8; 100];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, pt[4 * 1024 + 10..4 * 1024 + 110]);
    assert_eq!(r.segments_decrypted(), 2);
    r.seek(SeekFrom::Start(7 * 1024 - 50)).unwrap();
    let mut buf = vec![0u8; 100];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, pt[7 * 1024 - 50..7 * 1024 + 50]);
    assert_eq!(r.segments_decrypted(), 4);

    // From the end, and past it.
    r.seek(SeekFrom::End(-5)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, pt[pt.len() - 5..]);
    assert!(r.seek(SeekFrom::Current(-(pt.len() as i64) - 1)).is_err());
    r.seek(SeekFrom::Start(pt.len() as u64 + 10)).unwrap();
    assert_eq!(r.read(&mut buf).unwrap(), 0);

    // A tampered middle segment fails only when touched.
    let h = header_len(&sealed);
    let mut bad = sealed.clone();
    bad[h + 2 * FULL + 3] ^= 1;
    let mut r = pollster::block_on(env.open_seekable(&ctx, Cursor::new(bad))).unwrap();
    let mut b = [0u8; 10];
    r.seek(SeekFrom::Start(5 * 1024)).unwrap();
    r.read_exact(&mut b).unwrap();
    r.seek(SeekFrom::Start(2 * 1024)).unwrap();
    let e = r.read(&mut b).unwrap_err();
    assert!(matches!(Error::from_io(&e), Some(Error::Crypto)));

    // A stream after other bytes (the header starts at the reader's position).
    let mut prefixed = b"prefix".to_vec();
    prefixed.extend_from_slice(&sealed);
    let mut c = Cursor::new(prefixed);
    c.seek(SeekFrom::Start(6)).unwrap();
    let mut r = pollster::block_on(env.open_seekable(&ctx, c)).unwrap();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, pt);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_range_reads_back(len in 0usize..6000, start in 0usize..6000, n in 0usize..3000) {
        let env = envelope();
        let ctx = ctx();
        let pt = data(len);
        let sealed = seal(&env, &ctx, &pt, 777);
        let mut r = pollster::block_on(env.open_seekable(&ctx, Cursor::new(sealed))).unwrap();
        r.seek(SeekFrom::Start(start as u64)).unwrap();
        let mut out = Vec::new();
        r.by_ref().take(n as u64).read_to_end(&mut out).unwrap();
        let s = start.min(len);
        let e = (start + n).min(len);
        prop_assert_eq!(out, pt[s..e].to_vec());
    }
}

#[test]
fn wrong_context_and_wrong_api_are_refused() {
    let env = envelope();
    let ctx = ctx();
    let sealed = seal(&env, &ctx, &data(3000), 4096);
    let other_object =
        Context::new("acme", "media", "video-2", Classification::Confidential).unwrap();
    let (_, res) = read_all(&env, &other_object, &sealed, 4096);
    assert!(
        matches!(res, Err(Error::Crypto)),
        "moved to another object: {res:?}"
    );
    let other_class = Context::new("acme", "media", "video-1", Classification::Internal).unwrap();
    assert!(matches!(
        pollster::block_on(env.open_reader(&other_class, sealed.as_slice())),
        Err(Error::Context(_))
    ));

    // A whole object is not a stream, and a stream cannot be opened in place.
    let whole = pollster::block_on(env.seal(&ctx, b"whole")).unwrap();
    assert!(matches!(
        pollster::block_on(env.open_reader(&ctx, whole.as_slice())),
        Err(Error::Misuse(MisuseError::WholeObjectStream))
    ));
    let mut buf = sealed.clone();
    assert!(matches!(
        pollster::block_on(env.open_in_place(&ctx, &mut buf)),
        Err(Error::Misuse(MisuseError::SegmentedObject))
    ));
    assert_eq!(buf, sealed, "a refused open leaves the buffer alone");

    // Segment sizes out of range.
    for bad in [0, 1023, (16 << 20) + 1] {
        assert!(matches!(
            pollster::block_on(env.seal_writer_with_segment_size(&ctx, Vec::new(), bad)),
            Err(Error::Misuse(_))
        ));
    }
}

#[test]
fn a_finished_or_failed_writer_refuses_more() {
    struct Failing(usize);
    impl Write for Failing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let env = envelope();
    let ctx = ctx();
    // Room for the header and one segment.
    let mut w =
        pollster::block_on(env.seal_writer_with_segment_size(&ctx, Failing(400 + FULL), SEG))
            .unwrap();
    let big = data(4 * 1024);
    assert!(w.write_all(&big).is_err());
    assert!(w.write(b"x").is_err(), "wrote after a failure");
    assert!(w.finish().is_err());
}

#[test]
fn rewrap_keeps_stream_segments_untouched() {
    let env = envelope();
    let ctx = ctx();
    let pt = data(5000);
    let sealed = seal(&env, &ctx, &pt, 4096);
    let h = header_len(&sealed);
    // Rotate, then re-wrap the stream: only the header may change.
    let v2 = pollster::block_on(env.rotate_kek(ctx.tenant(), ctx.purpose())).unwrap();
    let (new, outcome) = pollster::block_on(env.rewrap_sealed(&ctx, &sealed)).unwrap();
    assert_eq!(outcome, kekring::envelope::RewrapOutcome::Rewrapped);
    let (nhdr, nh) = SealedHeader::decode_prefix(&new).unwrap();
    assert_eq!(nhdr.wrapped_dek().entries()[0].kek(), &v2);
    assert_eq!(nhdr.segment_size(), Some(SEG));
    assert_eq!(new[nh..], sealed[h..]);
    let (out, res) = read_all(&env, &ctx, &new, 4096);
    res.unwrap();
    assert_eq!(out, pt);
}

#[cfg(feature = "tokio")]
mod async_adapters {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn round_trip_through_a_small_pipe() {
        let env = envelope();
        let ctx = ctx();
        for len in [0usize, 1, 1024, 1025, 70_000] {
            let pt = data(len);
            // A 100-byte pipe forces Pending on both sides.
            let (client, mut server) = tokio::io::duplex(100);
            let env2 = env.clone();
            let ctx2 = ctx.clone();
            let pt2 = pt.clone();
            let writer = tokio::spawn(async move {
                let mut w = env2
                    .seal_async_writer_with_segment_size(&ctx2, client, SEG)
                    .await
                    .unwrap();
                for c in pt2.chunks(333) {
                    w.write_all(c).await.unwrap();
                }
                w.shutdown().await.unwrap();
            });
            let mut sealed = Vec::new();
            server.read_to_end(&mut sealed).await.unwrap();
            writer.await.unwrap();
            // Same bytes as the sync reader accepts.
            assert_eq!(env.open(&ctx, &sealed).await.unwrap(), pt);

            let (mut tx, rx) = tokio::io::duplex(64);
            let sealed2 = sealed.clone();
            let feeder = tokio::spawn(async move {
                tx.write_all(&sealed2).await.unwrap();
                tx.shutdown().await.unwrap();
            });
            let mut r = env.open_async_reader(&ctx, rx).await.unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).await.unwrap();
            feeder.await.unwrap();
            assert_eq!(out, pt, "len {len}");
        }
    }

    #[tokio::test]
    async fn async_reader_detects_cuts_and_tampering() {
        let env = envelope();
        let ctx = ctx();
        let pt = data(3000);
        let sealed = seal(&env, &ctx, &pt, 4096);
        let h = header_len(&sealed);
        for cut in [h + FULL, sealed.len() - 1] {
            let mut r = env.open_async_reader(&ctx, &sealed[..cut]).await.unwrap();
            let mut out = Vec::new();
            let e = r.read_to_end(&mut out).await.unwrap_err();
            assert!(Error::from_io(&e).is_some(), "cut {cut}");
        }
        let mut bad = sealed.clone();
        bad[h + 10] ^= 4;
        let mut r = env.open_async_reader(&ctx, bad.as_slice()).await.unwrap();
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).await.unwrap_err();
        assert!(matches!(Error::from_io(&e), Some(Error::Crypto)));
    }
}
