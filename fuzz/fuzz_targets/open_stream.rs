//! The stream decoder on arbitrary bytes against the `gcm` KEK of
//! `tests/data/vectors_v1.json` (so the seed corpus holds streams it really opens).
//! It must never panic, and the three ways to open a stream must agree: `open` (in
//! memory), `open_reader` (front to back) and `open_seekable` (random access).
#![no_main]

use std::io::{Cursor, Read};
use std::sync::{Arc, OnceLock};

use kekring::lifecycle::NewKek;
use kekring::secret::Aes256KeyMaterial;
use kekring::{
    BackendId, Classification, Context, Envelope, KekRef, LocalBackend, Route,
    WrapAlgorithm,
};
use libfuzzer_sys::fuzz_target;

const GCM_KEK: &str = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

fn setup() -> &'static (Envelope, Vec<Context>) {
    static S: OnceLock<(Envelope, Vec<Context>)> = OnceLock::new();
    S.get_or_init(|| {
        let local = Arc::new(LocalBackend::new());
        let key = Aes256KeyMaterial::from_slice(&hex::decode(GCM_KEK).unwrap()).unwrap();
        let alg = WrapAlgorithm::Aes256GcmDerived;
        let loc = local.import_aes256("fuzz-gcm", alg, key).unwrap();
        let r = KekRef::new("acme", "gcm", 1).unwrap();
        let env = Envelope::builder()
            .backend(local)
            .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
            .route(Route::new(r))
            .build()
            .unwrap();
        let ctxs = ["stream-0", "stream-1024", "stream-2500"]
            .iter()
            .map(|o| Context::new("acme", "gcm", o, Classification::Confidential).unwrap())
            .collect();
        (env, ctxs)
    })
}

fuzz_target!(|data: &[u8]| {
    let (env, ctxs) = setup();
    for ctx in ctxs {
        let whole = pollster::block_on(env.open(ctx, data));
        let front = pollster::block_on(env.open_reader(ctx, data)).and_then(|mut r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map_err(kekring::Error::Io)?;
            Ok(out)
        });
        let seek = pollster::block_on(env.open_seekable(ctx, Cursor::new(data))).and_then(|mut r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map_err(kekring::Error::Io)?;
            Ok(out)
        });
        let is_stream = data.get(5..7) == Some(&[0, 2][..]);
        match (&whole, &front, &seek) {
            (Ok(a), Ok(b), Ok(c)) => {
                assert!(is_stream);
                assert_eq!(a, b);
                assert_eq!(a, c);
            }
            // A whole object opens with `open` only.
            (Ok(_), Err(_), Err(_)) if !is_stream => {}
            (Err(_), Err(_), Err(_)) => {}
            _ => panic!(
                "stream openers disagree: open {} reader {} seekable {}",
                whole.is_ok(),
                front.is_ok(),
                seek.is_ok()
            ),
        }
    }
});
