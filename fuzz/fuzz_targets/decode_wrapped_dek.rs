//! Wrapped-DEK decoding never panics, and every accepted input is canonical:
//! `encode(decode(x)) == x`.
#![no_main]

use kekring::format::WrappedDek;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dek) = WrappedDek::decode(data) {
        assert_eq!(dek.encode(), data, "non-canonical wrapped DEK accepted");
    }
});
