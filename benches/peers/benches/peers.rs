//! kekring beside other envelope-encryption libraries, in one criterion run: seal
//! (encrypt) and open (decrypt) at 64 B, 1 KiB, 64 KiB and 1 MiB.
//!
//! | id | what |
//! |---|---|
//! | `kekring` | `Envelope::seal` / `open`, local AES-256 KEK, `WrapAlgorithm::Aes256GcmDerived` |
//! | `kekring-aws-lc` | the same on `CryptoProvider::aws_lc()` (feature `aws-lc`) |
//! | `raw-aws-lc` | aws-lc-rs AES-256-GCM on the same bytes, key schedule done once (feature `aws-lc`) |
//! | `*-in-place` | seal only: `Envelope::seal_in_place` / aws-lc-rs in place, no output buffer (feature `aws-lc`) |
//! | `raw-aes256-gcm` | RustCrypto `aes-gcm` 0.11 on the same bytes, key schedule done once |
//! | `aws-esdk` | AWS Encryption SDK, raw AES keyring, `AlgAes256GcmHkdfSha512CommitKey` |
//! | `tink` | tink-rust `KmsEnvelopeAead`, AES-256-GCM DEKs, local AES-256-GCM KEK |
//! | `kms-aead` | kms-aead's ring envelope encryption, AES-256-GCM, local-KEK provider |
//!
//! Every envelope peer draws a fresh DEK per object and wraps it under a local 256-bit KEK;
//! none calls a network. Run: `cd benches/peers && cargo bench` (see README.md).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use async_trait::async_trait;
use aws_esdk::material_providers::client as mpl_client;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::material_providers::types::{
    AesWrappingAlg, EsdkAlgorithmSuiteId, EsdkCommitmentPolicy,
};
use aws_esdk::types::aws_encryption_sdk_config::AwsEncryptionSdkConfig;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kekring::lifecycle::NewKek;
use kekring::{
    BackendId, Classification, Context, CryptoProvider, Envelope, KekRef, LocalBackend,
    Route, WrapAlgorithm,
};
use kms_aead::ring_encryption::RingAeadEncryption;
use kms_aead::{
    AeadEncryption, CipherText, DataEncryptionKey, EncryptedDataEncryptionKey,
    KmsAeadEnvelopeEncryption, KmsAeadResult, KmsAeadRingEncryptionProvider,
    KmsAeadRingEnvelopeEncryption,
};
use secret_vault_value::SecretValue;
use tink_core::Aead as _;

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1024, "1KiB"),
    (65536, "64KiB"),
    (1 << 20, "1MiB"),
];

/// The context kekring binds structurally, given to the peers as associated data
/// (tink, kms-aead) or as the encryption context (aws-esdk).
const TENANT: &str = "bench";
const PURPOSE: &str = "objects";
const OBJECT: &str = "object-0001";
const AAD: &str = "tenant=bench;purpose=objects;object=object-0001;class=confidential";

fn kekring_envelope(provider: CryptoProvider) -> Envelope {
    let local = Arc::new(LocalBackend::with_crypto_provider(provider));
    let alg = WrapAlgorithm::Aes256GcmDerived;
    let loc = local.generate_aes256("bench", alg).unwrap();
    let r = KekRef::new(TENANT, PURPOSE, 1).unwrap();
    Envelope::builder()
        .crypto_provider(provider)
        .backend(local)
        .kek(NewKek::new(r.clone(), BackendId::Local, loc, alg))
        .route(Route::new(r))
        .build()
        .unwrap()
}

/// A kms-aead KMS provider that wraps each DEK locally: AES-256-GCM (ring, through
/// kms-aead's own `RingAeadEncryption`, random 96-bit nonce) under a 256-bit KEK held in
/// memory. kms-aead 0.29 ships only cloud providers (GCP, AWS, Azure, Vault Transit);
/// its provider trait is public, and this is what a local provider for it looks like.
struct LocalKekProvider {
    aead: RingAeadEncryption,
    kek: DataEncryptionKey,
}

/// Associated data of the DEK wrap: the KEK's name, as a KMS binds its key id.
const KMS_AEAD_KEK_ID: &str = "kms-aead-local-kek";

impl LocalKekProvider {
    fn new() -> Self {
        let aead = RingAeadEncryption::with_algorithm(
            &ring::aead::AES_256_GCM,
            ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let kek = aead.generate_data_encryption_key().unwrap();
        Self { aead, kek }
    }
}

#[async_trait]
impl KmsAeadRingEncryptionProvider for LocalKekProvider {
    async fn encrypt_data_encryption_key(
        &self,
        encryption_key: &DataEncryptionKey,
    ) -> KmsAeadResult<EncryptedDataEncryptionKey> {
        let wrapped = self
            .aead
            .encrypt_value(&KMS_AEAD_KEK_ID, &encryption_key.0, &self.kek)
            .await?;
        Ok(EncryptedDataEncryptionKey::new(wrapped.0, None))
    }

    async fn decrypt_data_encryption_key(
        &self,
        encrypted_key: &EncryptedDataEncryptionKey,
    ) -> KmsAeadResult<DataEncryptionKey> {
        let wrapped = CipherText(encrypted_key.wrapped().to_vec());
        let dek = self
            .aead
            .decrypt_value(&KMS_AEAD_KEK_ID, &wrapped, &self.kek)
            .await?;
        Ok(DataEncryptionKey(dek))
    }

    async fn generate_encryption_key(
        &self,
        aead_encryption: &RingAeadEncryption,
    ) -> KmsAeadResult<DataEncryptionKey> {
        aead_encryption.generate_data_encryption_key()
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    // kekring, on its default provider (RustCrypto) and, with the `aws-lc` feature, on
    // AWS-LC (`kekring-aws-lc`).
    let env = kekring_envelope(CryptoProvider::rust_crypto());
    #[cfg(feature = "aws-lc")]
    let env_lc = kekring_envelope(CryptoProvider::aws_lc());
    let ctx = Context::new(TENANT, PURPOSE, OBJECT, Classification::Confidential).unwrap();

    // Baseline: raw AES-256-GCM, as in benches/seal.rs.
    let raw = Aes256Gcm::new(&[7u8; 32].into());
    let nonce = [9u8; 12];
    #[cfg(feature = "aws-lc")]
    let raw_lc = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
    );

    // aws-esdk: the commitment policy and suite named explicitly, though the policy is
    // also the default; the suite commits to the key and does not sign.
    let esdk = aws_esdk::Client::from_conf(
        AwsEncryptionSdkConfig::builder()
            .commitment_policy(EsdkCommitmentPolicy::RequireEncryptRequireDecrypt)
            .build()
            .unwrap(),
    )
    .unwrap();
    let mpl =
        mpl_client::Client::from_conf(MaterialProvidersConfig::builder().build().unwrap()).unwrap();
    let keyring = rt
        .block_on(
            mpl.create_raw_aes_keyring()
                .key_namespace("kekring-bench")
                .key_name("bench")
                .wrapping_key(vec![0x5au8; 32])
                .wrapping_alg(AesWrappingAlg::AlgAes256GcmIv12Tag16)
                .send(),
        )
        .unwrap();
    let enc_ctx: HashMap<String, String> = [
        ("tenant", TENANT),
        ("purpose", PURPOSE),
        ("object", OBJECT),
        ("class", "confidential"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let esdk_seal = |pt: &[u8]| {
        rt.block_on(
            esdk.encrypt()
                .plaintext(pt)
                .keyring(keyring.clone())
                .encryption_context(enc_ctx.clone())
                .algorithm_suite_id(EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey)
                .send(),
        )
        .unwrap()
        .ciphertext
        .unwrap()
    };
    let esdk_open = |ct: &[u8]| {
        rt.block_on(
            esdk.decrypt()
                .ciphertext(ct)
                .keyring(keyring.clone())
                .encryption_context(enc_ctx.clone())
                .send(),
        )
        .unwrap()
        .plaintext
        .unwrap()
    };

    // tink: KmsEnvelopeAead with an in-memory AES-256-GCM keyset as the "remote" KEK.
    tink_aead::init();
    let tink_kek = tink_aead::new(
        &tink_core::keyset::Handle::new(&tink_aead::aes256_gcm_key_template()).unwrap(),
    )
    .unwrap();
    let tink = tink_aead::KmsEnvelopeAead::new(tink_aead::aes256_gcm_key_template(), tink_kek);

    // kms-aead: AES-256-GCM payloads (its default is ChaCha20-Poly1305).
    let kms_aead = rt
        .block_on(KmsAeadRingEnvelopeEncryption::with_algorithm(
            LocalKekProvider::new(),
            &ring::aead::AES_256_GCM,
        ))
        .unwrap();
    let kms_aad = AAD.to_owned();

    for (size, label) in SIZES {
        let pt = vec![0x42u8; size];
        // kms-aead takes its plaintext as a `SecretValue`: built once, like `pt`.
        let pt_secret = SecretValue::new(pt.clone());

        // Every peer's output opens to the plaintext before anything is timed.
        let k_sealed = pollster::block_on(env.seal(&ctx, &pt)).unwrap();
        assert_eq!(pollster::block_on(env.open(&ctx, &k_sealed)).unwrap(), pt);
        #[cfg(feature = "aws-lc")]
        let k_sealed_lc = pollster::block_on(env_lc.seal(&ctx, &pt)).unwrap();
        #[cfg(feature = "aws-lc")]
        assert_eq!(
            pollster::block_on(env_lc.open(&ctx, &k_sealed_lc)).unwrap(),
            pt
        );
        let e_sealed = esdk_seal(&pt).into_inner();
        assert_eq!(esdk_open(&e_sealed).as_ref(), pt.as_slice());
        let t_sealed = tink.encrypt(&pt, AAD.as_bytes()).unwrap();
        assert_eq!(tink.decrypt(&t_sealed, AAD.as_bytes()).unwrap(), pt);
        let m_sealed = rt
            .block_on(kms_aead.encrypt_value(&kms_aad, &pt_secret))
            .unwrap();
        assert_eq!(
            rt.block_on(kms_aead.decrypt_value(&kms_aad, &m_sealed))
                .unwrap()
                .ref_sensitive_value(),
            &pt
        );

        let mut g = c.benchmark_group(format!("seal/{label}"));
        g.throughput(Throughput::Bytes(u64::try_from(size).unwrap()));
        g.bench_function("kekring", |b| {
            b.iter(|| black_box(pollster::block_on(env.seal(&ctx, black_box(&pt))).unwrap()))
        });
        #[cfg(feature = "aws-lc")]
        g.bench_function("kekring-aws-lc", |b| {
            b.iter(|| black_box(pollster::block_on(env_lc.seal(&ctx, black_box(&pt))).unwrap()))
        });
        g.bench_function("raw-aes256-gcm", |b| {
            b.iter(|| {
                let mut buf = black_box(&pt).clone();
                let tag = raw
                    .encrypt_inout_detached((&nonce).into(), b"", buf.as_mut_slice().into())
                    .unwrap();
                black_box((buf, tag))
            })
        });
        // In place: the caller's buffer is encrypted where it lies, no output buffer is
        // allocated or copied into (kekring's `seal_in_place`; the header and tag come
        // back separately). The buffer is re-encrypted on every iteration.
        #[cfg(feature = "aws-lc")]
        {
            let mut buf = pt.clone();
            g.bench_function("kekring-aws-lc-in-place", |b| {
                b.iter(|| {
                    black_box(pollster::block_on(env_lc.seal_in_place(&ctx, &mut buf)).unwrap())
                })
            });
            let mut buf = pt.clone();
            g.bench_function("raw-aws-lc-in-place", |b| {
                b.iter(|| {
                    let tag = raw_lc
                        .seal_in_place_separate_tag(
                            aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                            aws_lc_rs::aead::Aad::empty(),
                            &mut buf,
                        )
                        .unwrap();
                    let _ = black_box(tag);
                })
            });
        }
        #[cfg(feature = "aws-lc")]
        g.bench_function("raw-aws-lc", |b| {
            b.iter(|| {
                let mut buf = black_box(&pt).clone();
                let tag = raw_lc
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                        aws_lc_rs::aead::Aad::empty(),
                        &mut buf,
                    )
                    .unwrap();
                let _ = black_box((buf, tag));
            })
        });
        g.bench_function("aws-esdk", |b| {
            b.iter(|| black_box(esdk_seal(black_box(&pt))))
        });
        g.bench_function("tink", |b| {
            b.iter(|| black_box(tink.encrypt(black_box(&pt), AAD.as_bytes()).unwrap()))
        });
        g.bench_function("kms-aead", |b| {
            b.iter(|| {
                black_box(
                    rt.block_on(kms_aead.encrypt_value(&kms_aad, black_box(&pt_secret)))
                        .unwrap(),
                )
            })
        });
        g.finish();

        let mut raw_ct = pt.clone();
        let raw_tag = raw
            .encrypt_inout_detached((&nonce).into(), b"", raw_ct.as_mut_slice().into())
            .unwrap();

        #[cfg(feature = "aws-lc")]
        let raw_lc_ct = {
            let mut ct = pt.clone();
            raw_lc
                .seal_in_place_append_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                    aws_lc_rs::aead::Aad::empty(),
                    &mut ct,
                )
                .unwrap();
            ct
        };

        let mut g = c.benchmark_group(format!("open/{label}"));
        g.throughput(Throughput::Bytes(u64::try_from(size).unwrap()));
        g.bench_function("kekring", |b| {
            b.iter(|| black_box(pollster::block_on(env.open(&ctx, black_box(&k_sealed))).unwrap()))
        });
        #[cfg(feature = "aws-lc")]
        g.bench_function("kekring-aws-lc", |b| {
            b.iter(|| {
                black_box(pollster::block_on(env_lc.open(&ctx, black_box(&k_sealed_lc))).unwrap())
            })
        });
        g.bench_function("raw-aes256-gcm", |b| {
            b.iter(|| {
                let mut buf = black_box(&raw_ct).clone();
                raw.decrypt_inout_detached(
                    (&nonce).into(),
                    b"",
                    buf.as_mut_slice().into(),
                    &raw_tag,
                )
                .unwrap();
                black_box(buf)
            })
        });
        #[cfg(feature = "aws-lc")]
        g.bench_function("raw-aws-lc", |b| {
            b.iter(|| {
                let mut buf = black_box(&raw_lc_ct).clone();
                raw_lc
                    .open_in_place(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                        aws_lc_rs::aead::Aad::empty(),
                        &mut buf,
                    )
                    .unwrap();
                black_box(buf)
            })
        });
        g.bench_function("aws-esdk", |b| {
            b.iter(|| black_box(esdk_open(black_box(&e_sealed))))
        });
        g.bench_function("tink", |b| {
            b.iter(|| black_box(tink.decrypt(black_box(&t_sealed), AAD.as_bytes()).unwrap()))
        });
        g.bench_function("kms-aead", |b| {
            b.iter(|| {
                black_box(
                    rt.block_on(kms_aead.decrypt_value(&kms_aad, black_box(&m_sealed)))
                        .unwrap(),
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
