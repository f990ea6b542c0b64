//! `Envelope::open` of arbitrary bytes against a fixed local AES-256 KEK (the `kw` KEK
//! of `tests/data/vectors_v1.json`, so the seed corpus holds objects it really opens).
//! It must never panic, and `open` and `open_in_place` must agree.
#![no_main]

use std::sync::{Arc, OnceLock};

use kekring::lifecycle::NewKek;
use kekring::secret::Aes256KeyMaterial;
use kekring::{
    BackendId, Classification, Context, Envelope, KekRef, LocalBackend, Route,
    WrapAlgorithm,
};
use libfuzzer_sys::fuzz_target;

const KW_KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn setup() -> &'static (Envelope, Vec<Context>) {
    static S: OnceLock<(Envelope, Vec<Context>)> = OnceLock::new();
    S.get_or_init(|| {
        let local = Arc::new(LocalBackend::new());
        let key = Aes256KeyMaterial::from_slice(&hex::decode(KW_KEK).unwrap()).unwrap();
        let loc = local.import_aes256("fuzz-kw", WrapAlgorithm::Aes256Kw, key).unwrap();
        let r = KekRef::new("acme", "kw", 1).unwrap();
        let env = Envelope::builder()
            .backend(local)
            .kek(NewKek::new(r.clone(), BackendId::Local, loc, WrapAlgorithm::Aes256Kw))
            .route(Route::new(r))
            .build()
            .unwrap();
        // The contexts of the `kw` vectors in tests/data/vectors_v1.json.
        let ctxs = vec![
            Context::new("acme", "kw", "obj-aes256-kw-0", Classification::Confidential).unwrap(),
            Context::new("acme", "kw", "obj-aes256-kw-1", Classification::Restricted)
                .unwrap()
                .with_aad(b"version=7")
                .unwrap(),
            Context::new("acme", "kw", "obj-aes256-kw-2", Classification::Public).unwrap(),
            Context::new("acme", "kw", "neg-1", Classification::Confidential).unwrap(),
        ];
        (env, ctxs)
    })
}

fuzz_target!(|data: &[u8]| {
    let (env, ctxs) = setup();
    for ctx in ctxs {
        let a = pollster::block_on(env.open(ctx, data));
        let mut buf = data.to_vec();
        let b = pollster::block_on(env.open_in_place(ctx, &mut buf)).map(|p| p.to_vec());
        match (a, b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(_), Err(_)) => assert_eq!(buf, data, "failed open_in_place changed the buffer"),
            (x, y) => panic!("open and open_in_place disagree: {:?} vs {:?}", x.is_ok(), y.is_ok()),
        }
    }
    let _ = pollster::block_on(env.unwrap_data_key(&ctxs[0], data));
});
