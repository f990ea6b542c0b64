//! Remote backends against their local servers, each beside the bare SDK call it is
//! built on, in the same run: Transit wrap / unwrap vs a bare HTTP encrypt / decrypt, KMS
//! (LocalStack) wrap / unwrap vs the SDK's Encrypt / Decrypt, and through the project's
//! KMS fake ML-KEM, where wrap encapsulates locally (the default) or in KMS and unwrap
//! calls Decapsulate, and RSA (the intermediate-key construction vs the bare RSA
//! Encrypt / Decrypt). Then throughput: 64 wrap-and-unwrap round trips with 1, 8 and 64
//! in flight. Local servers answer in well under a millisecond and the fake computes
//! ML-KEM in Python: read the ratios, not the absolute times.
//!
//! Run (the servers from the test command's script):
//!
//! ```sh
//! python3 scripts/servers.py start /tmp/kekring-bench && set -a && . /tmp/kekring-bench/env && set +a
//! cargo bench --bench remote --features aws-kms,vault-transit -- --warm-up-time 1 --measurement-time 3
//! python3 scripts/servers.py stop /tmp/kekring-bench
//! ```

// A benchmark over fixed inputs: a panic is the right way for it to fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::sync::Arc;

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::EncapsulationAlgorithmSpec;
use base64::Engine;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::stream::{self, StreamExt};
use kekring::backend::aws_kms::{AwsKmsBackend, AwsKmsConfig, AwsKmsLocator, EncapsulateMode};
use kekring::backend::kit::Locator;
use kekring::backend::vault_transit::{VaultAuth, VaultTransitBackend, VaultTransitConfig};
use kekring::backend::{KekSpec, UnwrapRequest, WrapRequest};
use kekring::format::BindingContext;
use kekring::{Classification, DataKey, KekLocator, KeyBackend, Name, WrapAlgorithm};
use secrecy::SecretString;

/// Transit's encrypt and decrypt as one bare HTTP call each (what kekring's Transit
/// backend does under its checks).
struct RawTransit {
    http: reqwest::Client,
    addr: String,
    token: String,
}

impl RawTransit {
    async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = self
            .http
            .post(format!("{}/v1/transit/{path}", self.addr))
            .header("x-vault-token", &self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        serde_json::from_str(&resp.text().await.unwrap()).unwrap()
    }

    async fn encrypt(&self, plaintext: &str) -> String {
        let out = self
            .post(
                "encrypt/bench-raw",
                serde_json::json!({"plaintext": plaintext}),
            )
            .await;
        out["data"]["ciphertext"].as_str().unwrap().to_owned()
    }

    async fn decrypt(&self, ciphertext: &str) -> String {
        let out = self
            .post(
                "decrypt/bench-raw",
                serde_json::json!({"ciphertext": ciphertext}),
            )
            .await;
        out["data"]["plaintext"].as_str().unwrap().to_owned()
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the servers with scripts/servers.py (see the header)")
    })
}

fn binding() -> BindingContext {
    BindingContext::new(
        Name::new("tenant", "bench").unwrap(),
        Name::new("purpose", "remote").unwrap(),
        b"object-0001",
        Classification::Internal,
        b"",
    )
    .unwrap()
}

fn sdk(endpoint: &str, ak: &str, sk: &str) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("KEKRING_TEST_AWS_REGION")))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ak, sk, None, None, "bench"))
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

async fn kms(endpoint: &str, ak: &str, sk: &str, mode: EncapsulateMode) -> Arc<AwsKmsBackend> {
    let cfg = AwsKmsConfig::new()
        .region(env("KEKRING_TEST_AWS_REGION"))
        .endpoint_url(endpoint)
        .credentials(ak, sk)
        .encapsulate(mode);
    Arc::new(AwsKmsBackend::new(cfg).await.unwrap())
}

fn key_id(kek: &KekLocator) -> String {
    // Without the public-key pin an ML-KEM KEK's locator carries.
    let base = KekLocator::new(kek.as_str().split("#pk-sha256=").next().unwrap());
    AwsKmsLocator::parse(&base).unwrap().key().to_owned()
}

struct Case {
    name: &'static str,
    backend: Arc<dyn KeyBackend>,
    kek: KekLocator,
    algorithm: WrapAlgorithm,
}

async fn round_trip(case: &Case, dek: &DataKey, b: &BindingContext) {
    let w = case
        .backend
        .wrap(WrapRequest::new(&case.kek, case.algorithm, dek, b))
        .await
        .unwrap();
    let r = case
        .backend
        .unwrap(UnwrapRequest::new(
            &case.kek,
            case.algorithm,
            &w.params,
            &w.wrapped,
            b,
        ))
        .await
        .unwrap();
    black_box(r);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let b = binding();
    let dek = DataKey::generate().unwrap();

    // Transit.
    let token = env("KEKRING_TEST_VAULT_TOKEN");
    let transit: Arc<dyn KeyBackend> = Arc::new(
        VaultTransitBackend::new(VaultTransitConfig::new(
            env("KEKRING_TEST_VAULT_ADDR"),
            VaultAuth::Token(SecretString::from(token.clone())),
        ))
        .unwrap(),
    );
    let transit_kek = rt
        .block_on(transit.create_kek(&KekSpec::new(WrapAlgorithm::Aes256Opaque, "bench")))
        .unwrap()
        .locator;
    let vault = RawTransit {
        http: reqwest::Client::new(),
        addr: env("KEKRING_TEST_VAULT_ADDR"),
        token: token.clone(),
    };
    rt.block_on(vault.post("keys/bench-raw", serde_json::json!({})));
    let plain = base64::engine::general_purpose::STANDARD.encode(dek.expose_secret());
    let raw_ct = rt.block_on(vault.encrypt(&plain));
    {
        let mut g = c.benchmark_group("remote/transit-aes256-opaque");
        let w = rt
            .block_on(transit.wrap(WrapRequest::new(
                &transit_kek,
                WrapAlgorithm::Aes256Opaque,
                &dek,
                &b,
            )))
            .unwrap();
        g.bench_function("kekring-wrap", |bn| {
            bn.iter(|| {
                rt.block_on(transit.wrap(WrapRequest::new(
                    &transit_kek,
                    WrapAlgorithm::Aes256Opaque,
                    &dek,
                    &b,
                )))
                .unwrap()
            })
        });
        g.bench_function("kekring-unwrap", |bn| {
            bn.iter(|| {
                rt.block_on(transit.unwrap(UnwrapRequest::new(
                    &transit_kek,
                    WrapAlgorithm::Aes256Opaque,
                    &w.params,
                    &w.wrapped,
                    &b,
                )))
                .unwrap()
            })
        });
        g.bench_function("raw-http-encrypt", |bn| {
            bn.iter(|| rt.block_on(vault.encrypt(&plain)))
        });
        g.bench_function("raw-http-decrypt", |bn| {
            bn.iter(|| rt.block_on(vault.decrypt(&raw_ct)))
        });
        g.finish();
    }

    // KMS symmetric on LocalStack.
    let ls_endpoint = env("KEKRING_TEST_KMS_ENDPOINT");
    let ls: Arc<dyn KeyBackend> = rt.block_on(kms(
        &ls_endpoint,
        "test",
        "test",
        EncapsulateMode::default(),
    ));
    let ls_kek = rt
        .block_on(ls.create_kek(&KekSpec::new(WrapAlgorithm::Aes256Opaque, "bench")))
        .unwrap()
        .locator;
    let ls_sdk = sdk(&ls_endpoint, "test", "test");
    let ls_id = key_id(&ls_kek);
    {
        let mut g = c.benchmark_group("remote/kms-aes256-opaque");
        let w = rt
            .block_on(ls.wrap(WrapRequest::new(
                &ls_kek,
                WrapAlgorithm::Aes256Opaque,
                &dek,
                &b,
            )))
            .unwrap();
        g.bench_function("kekring-wrap", |bn| {
            bn.iter(|| {
                rt.block_on(ls.wrap(WrapRequest::new(
                    &ls_kek,
                    WrapAlgorithm::Aes256Opaque,
                    &dek,
                    &b,
                )))
                .unwrap()
            })
        });
        g.bench_function("kekring-unwrap", |bn| {
            bn.iter(|| {
                rt.block_on(ls.unwrap(UnwrapRequest::new(
                    &ls_kek,
                    WrapAlgorithm::Aes256Opaque,
                    &w.params,
                    &w.wrapped,
                    &b,
                )))
                .unwrap()
            })
        });
        let raw = rt
            .block_on(
                ls_sdk
                    .encrypt()
                    .key_id(&ls_id)
                    .plaintext(Blob::new(dek.expose_secret().to_vec()))
                    .send(),
            )
            .unwrap();
        let raw_blob = raw.ciphertext_blob().unwrap().clone();
        g.bench_function("raw-sdk-encrypt", |bn| {
            bn.iter(|| {
                rt.block_on(
                    ls_sdk
                        .encrypt()
                        .key_id(&ls_id)
                        .plaintext(Blob::new(dek.expose_secret().to_vec()))
                        .send(),
                )
                .unwrap()
            })
        });
        g.bench_function("raw-sdk-decrypt", |bn| {
            bn.iter(|| {
                rt.block_on(
                    ls_sdk
                        .decrypt()
                        .key_id(&ls_id)
                        .ciphertext_blob(raw_blob.clone())
                        .send(),
                )
                .unwrap()
            })
        });
        g.finish();
    }

    // KMS ML-KEM-768 on the fake: local encapsulation vs KMS Encapsulate.
    let pq_endpoint = env("KEKRING_TEST_KMS_PQ_ENDPOINT");
    let (ak, sk) = ("AKIDKEKRINGTEST", "kekring-test-secret");
    let pq_local: Arc<dyn KeyBackend> =
        rt.block_on(kms(&pq_endpoint, ak, sk, EncapsulateMode::default()));
    let pq_service: Arc<dyn KeyBackend> =
        rt.block_on(kms(&pq_endpoint, ak, sk, EncapsulateMode::Service));
    let pq_kek = rt
        .block_on(pq_local.create_kek(&KekSpec::new(WrapAlgorithm::MlKem768, "bench")))
        .unwrap()
        .locator;
    let pq_sdk = sdk(&pq_endpoint, ak, sk);
    let pq_id = key_id(&pq_kek);
    {
        let mut g = c.benchmark_group("remote/kms-ml-kem-768");
        let alg = WrapAlgorithm::MlKem768;
        let w = rt
            .block_on(pq_local.wrap(WrapRequest::new(&pq_kek, alg, &dek, &b)))
            .unwrap();
        g.bench_function("kekring-wrap-local-encapsulation", |bn| {
            bn.iter(|| {
                rt.block_on(pq_local.wrap(WrapRequest::new(&pq_kek, alg, &dek, &b)))
                    .unwrap()
            })
        });
        g.bench_function("kekring-wrap-kms-encapsulation", |bn| {
            bn.iter(|| {
                rt.block_on(pq_service.wrap(WrapRequest::new(&pq_kek, alg, &dek, &b)))
                    .unwrap()
            })
        });
        g.bench_function("kekring-unwrap", |bn| {
            bn.iter(|| {
                rt.block_on(
                    pq_local.unwrap(UnwrapRequest::new(&pq_kek, alg, &w.params, &w.wrapped, &b)),
                )
                .unwrap()
            })
        });
        g.bench_function("raw-sdk-decapsulate", |bn| {
            bn.iter(|| {
                rt.block_on(
                    pq_sdk
                        .decapsulate()
                        .key_id(&pq_id)
                        .shared_secret_ciphertext_blob(Blob::new(w.params.clone()))
                        .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
                        .send(),
                )
                .unwrap()
            })
        });
        g.finish();
    }

    // KMS RSA-2048 on the fake: the intermediate-key construction vs the bare RSA
    // Encrypt / Decrypt of a 32-byte key.
    let rsa_kek = rt
        .block_on(pq_local.create_kek(&KekSpec::new(WrapAlgorithm::RsaOaepSha256Ik2048, "bench")))
        .unwrap()
        .locator;
    let rsa_id = key_id(&rsa_kek);
    {
        let mut g = c.benchmark_group("remote/kms-rsa2048-oaep-sha256-ik");
        let alg = WrapAlgorithm::RsaOaepSha256Ik2048;
        let w = rt
            .block_on(pq_local.wrap(WrapRequest::new(&rsa_kek, alg, &dek, &b)))
            .unwrap();
        g.bench_function("kekring-wrap", |bn| {
            bn.iter(|| {
                rt.block_on(pq_local.wrap(WrapRequest::new(&rsa_kek, alg, &dek, &b)))
                    .unwrap()
            })
        });
        g.bench_function("kekring-unwrap", |bn| {
            bn.iter(|| {
                rt.block_on(
                    pq_local.unwrap(UnwrapRequest::new(&rsa_kek, alg, &w.params, &w.wrapped, &b)),
                )
                .unwrap()
            })
        });
        let rsa = aws_sdk_kms::types::EncryptionAlgorithmSpec::RsaesOaepSha256;
        g.bench_function("raw-sdk-encrypt", |bn| {
            bn.iter(|| {
                rt.block_on(
                    pq_sdk
                        .encrypt()
                        .key_id(&rsa_id)
                        .plaintext(Blob::new(dek.expose_secret().to_vec()))
                        .encryption_algorithm(rsa.clone())
                        .send(),
                )
                .unwrap()
            })
        });
        g.bench_function("raw-sdk-decrypt", |bn| {
            bn.iter(|| {
                rt.block_on(
                    pq_sdk
                        .decrypt()
                        .key_id(&rsa_id)
                        .ciphertext_blob(Blob::new(w.params.clone()))
                        .encryption_algorithm(rsa.clone())
                        .send(),
                )
                .unwrap()
            })
        });
        g.finish();
    }

    // Throughput: 64 round trips with 1, 8 and 64 in flight.
    let cases = [
        Case {
            name: "transit-aes256-opaque",
            backend: transit.clone(),
            kek: transit_kek.clone(),
            algorithm: WrapAlgorithm::Aes256Opaque,
        },
        Case {
            name: "kms-aes256-opaque",
            backend: ls.clone(),
            kek: ls_kek.clone(),
            algorithm: WrapAlgorithm::Aes256Opaque,
        },
        Case {
            name: "kms-ml-kem-768",
            backend: pq_local.clone(),
            kek: pq_kek.clone(),
            algorithm: WrapAlgorithm::MlKem768,
        },
    ];
    for case in &cases {
        let mut g = c.benchmark_group(format!("remote-throughput/{}", case.name));
        g.throughput(Throughput::Elements(64));
        g.sample_size(10);
        for in_flight in [1usize, 8, 64] {
            g.bench_with_input(
                BenchmarkId::new("in-flight", in_flight),
                &in_flight,
                |bn, &n| {
                    bn.iter(|| {
                        rt.block_on(
                            stream::iter(0..64)
                                .map(|_| round_trip(case, &dek, &b))
                                .buffer_unordered(n)
                                .collect::<Vec<()>>(),
                        )
                    })
                },
            );
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
