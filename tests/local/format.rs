//! Property tests of the wire format: canonical round trips of arbitrary valid
//! structures, and arbitrary bytes that never panic and, when accepted, re-encode to
//! exactly themselves.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use kekring::format::{
    BackendId, Classification, KekRef, SealedHeader, SealedObject, Suite, WrapAlgorithm,
    WrappedDek, WrappedEntry,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,64}"
}

fn classification() -> impl Strategy<Value = Classification> {
    prop_oneof![
        Just(Classification::Public),
        Just(Classification::Internal),
        Just(Classification::Confidential),
        Just(Classification::Restricted),
        "[a-z][a-z0-9._-]{0,31}"
            .prop_filter_map("built-in name", |s| Classification::custom(&s).ok()),
    ]
}

fn sized(alg: WrapAlgorithm) -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    // Lengths fixed by the algorithm (see docs/FORMAT.md); the opaque one varies.
    let (p, w): (usize, std::ops::RangeInclusive<usize>) = match alg {
        WrapAlgorithm::Aes256Kw | WrapAlgorithm::Aes256Kwp => (0, 40..=40),
        WrapAlgorithm::Aes256Gcm => (12, 48..=48),
        WrapAlgorithm::Aes256GcmDerived => (32, 48..=48),
        WrapAlgorithm::Aes256KwIk => (40, 60..=60),
        WrapAlgorithm::Aes256Opaque => (0, 1..=300),
        WrapAlgorithm::RsaOaepSha256_2048 => (0, 256..=256),
        WrapAlgorithm::RsaOaepSha256_3072 => (0, 384..=384),
        WrapAlgorithm::RsaOaepSha256_4096 => (0, 512..=512),
        WrapAlgorithm::RsaOaepSha256Ik2048 => (256, 60..=60),
        WrapAlgorithm::RsaOaepSha256Ik3072 => (384, 60..=60),
        WrapAlgorithm::RsaOaepSha256Ik4096 => (512, 60..=60),
        WrapAlgorithm::P256EcdhEs => (65, 40..=40),
        WrapAlgorithm::MlKem768 => (1088, 40..=40),
        WrapAlgorithm::MlKem1024 => (1568, 40..=40),
        WrapAlgorithm::HybridP256MlKem768 => (1153, 40..=40),
        WrapAlgorithm::XWing => (1120, 40..=40),
        other => panic!("no lengths for {other} in this test"),
    };
    (
        proptest::collection::vec(any::<u8>(), p..=p),
        proptest::collection::vec(any::<u8>(), w),
    )
}

fn entry(tenant: String) -> impl Strategy<Value = WrappedEntry> {
    (
        proptest::sample::select(WrapAlgorithm::ALL.to_vec()),
        proptest::sample::select(BackendId::ALL.to_vec()),
        name(),
        1u32..,
    )
        .prop_flat_map(move |(alg, backend, purpose, version)| {
            let tenant = tenant.clone();
            sized(alg).prop_map(move |(params, wrapped)| {
                WrappedEntry::new(
                    alg,
                    backend,
                    KekRef::new(&tenant, &purpose, version).unwrap(),
                    params,
                    wrapped,
                )
                .unwrap()
            })
        })
}

fn wrapped_dek() -> impl Strategy<Value = WrappedDek> {
    (name(), classification()).prop_flat_map(|(tenant, class)| {
        proptest::collection::vec(entry(tenant), 1..=4)
            .prop_filter_map("duplicate KEK", move |entries| {
                WrappedDek::new(class.clone(), entries).ok()
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wrapped_dek_round_trips_canonically(dek in wrapped_dek()) {
        let bytes = dek.encode();
        let back = WrappedDek::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &dek);
        prop_assert_eq!(back.encode(), bytes.clone());
        // Any strict prefix is rejected, and so is any extension.
        for n in [0, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(WrappedDek::decode(&bytes[..n]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(WrappedDek::decode(&longer).is_err());
    }

    #[test]
    fn sealed_header_round_trips_canonically(
        dek in wrapped_dek(),
        nonce in any::<[u8; 12]>(),
        commitment in any::<[u8; 32]>(),
        payload in proptest::collection::vec(any::<u8>(), 16..100),
    ) {
        let h = SealedHeader::new(Suite::Aes256GcmHkdfSha256Commit, dek, nonce, commitment);
        let hb = h.encode();
        let (back, len) = SealedHeader::decode_prefix(&hb).unwrap();
        prop_assert_eq!(len, hb.len());
        prop_assert_eq!(&back, &h);
        let obj = [hb.clone(), payload.clone()].concat();
        let parsed = SealedObject::decode(&obj).unwrap();
        prop_assert_eq!(parsed.header_bytes(), &hb[..]);
        prop_assert_eq!(parsed.ciphertext(), &payload[..payload.len() - 16]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_ones_are_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        if let Ok(d) = WrappedDek::decode(&bytes) {
            prop_assert_eq!(d.encode(), bytes.clone());
        }
        if let Ok((h, len)) = SealedHeader::decode_prefix(&bytes) {
            prop_assert_eq!(h.encode(), bytes[..len].to_vec());
        }
        let _ = SealedObject::decode(&bytes);
    }

    #[test]
    fn magic_prefixed_bytes_are_canonical_when_accepted(
        tail in proptest::collection::vec(any::<u8>(), 0..400),
        sealed in any::<bool>(),
    ) {
        // Past the magic and version, so the decoder's deeper branches are reached.
        let head: &[u8] = if sealed { b"KRSO\x01\x00\x01\x00" } else { b"KRWD\x01\x00" };
        let bytes = [head, &tail[..]].concat();
        if let Ok(d) = WrappedDek::decode(&bytes) {
            prop_assert_eq!(d.encode(), bytes.clone());
        }
        if let Ok((h, len)) = SealedHeader::decode_prefix(&bytes) {
            prop_assert_eq!(h.encode(), bytes[..len].to_vec());
        }
    }

    #[test]
    fn mutated_sealed_headers_never_panic_and_stay_canonical(
        dek in wrapped_dek(),
        nonce in any::<[u8; 12]>(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let h = SealedHeader::new(Suite::Aes256GcmHkdfSha256Commit, dek, nonce, [5; 32]);
        let mut bytes = h.encode();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok((back, len)) = SealedHeader::decode_prefix(&bytes) {
            prop_assert_eq!(back.encode(), bytes[..len].to_vec());
        }
        let _ = SealedObject::decode(&bytes);
    }

    #[test]
    fn mutated_valid_encodings_never_panic(
        dek in wrapped_dek(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = dek.encode();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(d) = WrappedDek::decode(&bytes) {
            prop_assert_eq!(d.encode(), bytes);
        }
    }
}
