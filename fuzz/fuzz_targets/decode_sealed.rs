//! Sealed-object decoding never panics; an accepted header re-encodes to exactly its
//! bytes, and the header / ciphertext / tag split covers the whole input.
#![no_main]

use kekring::format::{SealedHeader, SealedObject, TAG_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let prefix = SealedHeader::decode_prefix(data);
    if let Ok((h, len)) = &prefix {
        assert_eq!(h.encode(), data.get(..*len).unwrap_or_default());
    }
    if let Ok(obj) = SealedObject::decode(data) {
        assert!(prefix.is_ok());
        assert_eq!(obj.header().encode(), obj.header_bytes());
        assert_eq!(
            obj.header_bytes().len() + obj.ciphertext().len() + TAG_LEN,
            data.len()
        );
    }
});
