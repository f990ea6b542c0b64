//! Faults between kekring and a real server: a fault-injecting TCP proxy in front of the
//! OpenBao dev server and LocalStack's KMS (both started by `scripts/test.sh`) delays
//! answers, resets connections, answers 5xx and throttling, or takes the server away.
//! Transient faults are retried, lasting ones are not, every call ends in bounded
//! time, and a bulk re-wrap cut off half way loses nothing and completes when resumed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

use crate::common;

use common::env;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kekring::backend::aws_kms::{AwsKmsBackend, AwsKmsConfig};
use kekring::backend::kit::CallPolicy;
use kekring::backend::vault_transit::{VaultAuth, VaultTransitBackend, VaultTransitConfig};
use kekring::envelope::{BulkItem, BulkItemKind, BulkOptions, RewrapOutcome};
use kekring::lifecycle::NewKek;
use kekring::{BackendError, BackendId, Classification, Envelope, KeyBackend, Name, WrapAlgorithm};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with the next requests.
#[derive(Clone, Debug)]
enum Fault {
    /// Forward to the server.
    Pass,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without an answer (a reset).
    Reset,
    /// Answer this status and body without asking the server.
    Answer(u16, &'static str, &'static str),
}

struct State {
    fault: Fault,
    /// How many requests get `fault` before the proxy passes again (`u32::MAX`: until
    /// changed).
    remaining: u32,
    /// Connections being piped, cut when the fault changes.
    piped: Vec<JoinHandle<()>>,
}

/// A TCP proxy for HTTP/1.1 servers that injects faults per request. A connection that
/// passes is piped both ways until either side closes; changing the fault cuts piped
/// connections so that the client's next request opens a new one and meets the fault.
#[derive(Clone)]
struct Proxy {
    addr: String,
    state: Arc<Mutex<State>>,
    faulted: Arc<AtomicU32>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            fault: Fault::Pass,
            remaining: 0,
            piped: Vec::new(),
        }));
        let faulted = Arc::new(AtomicU32::new(0));
        let p = Proxy {
            addr,
            state: state.clone(),
            faulted: faulted.clone(),
        };
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let fault = {
                    let mut s = state.lock().unwrap();
                    if s.remaining == 0 {
                        Fault::Pass
                    } else {
                        if s.remaining != u32::MAX {
                            s.remaining -= 1;
                        }
                        s.fault.clone()
                    }
                };
                if !matches!(fault, Fault::Pass) {
                    faulted.fetch_add(1, Ordering::SeqCst);
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(serve(client, upstream, fault));
                state.lock().unwrap().piped.push(task);
            }
        });
        p
    }

    /// The next `count` requests (connections) get `fault`.
    fn set(&self, fault: Fault, count: u32) {
        let mut s = self.state.lock().unwrap();
        s.fault = fault;
        s.remaining = count;
        for t in s.piped.drain(..) {
            t.abort();
        }
        self.faulted.store(0, Ordering::SeqCst);
    }

    fn faulted(&self) -> u32 {
        self.faulted.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP request (headers and a Content-Length body).
async fn read_request(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = c.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = c.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

async fn serve(mut client: TcpStream, upstream: String, fault: Fault) {
    match fault {
        Fault::Reset => {
            let _ = read_request(&mut client).await;
            let _ = client.set_zero_linger();
            drop(client);
        }
        Fault::Answer(status, error_type, body) => {
            if read_request(&mut client).await.is_none() {
                return;
            }
            let reply = format!(
                "HTTP/1.1 {status} Fault\r\nContent-Type: application/json\r\nx-amzn-ErrorType: {error_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(reply.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            pipe(client, &upstream).await;
        }
        Fault::Pass => pipe(client, &upstream).await,
    }
}

async fn pipe(mut client: TcpStream, upstream: &str) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

fn policy() -> CallPolicy {
    CallPolicy::default()
        .max_attempts(4)
        .attempt_timeout(Duration::from_millis(800))
        .total_timeout(Duration::from_secs(4))
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
}

fn transit_via(proxy: &Proxy, call: CallPolicy) -> Arc<VaultTransitBackend> {
    let cfg = VaultTransitConfig::new(
        proxy.addr.clone(),
        VaultAuth::Token(SecretString::from(env("KEKRING_TEST_VAULT_TOKEN"))),
    )
    .call_policy(call);
    Arc::new(VaultTransitBackend::new(cfg).unwrap())
}

async fn kms_via(proxy: &Proxy, call: CallPolicy) -> Arc<AwsKmsBackend> {
    let cfg = AwsKmsConfig::new()
        .region(env("KEKRING_TEST_AWS_REGION"))
        .endpoint_url(proxy.addr.clone())
        .credentials("test", "test")
        .call_policy(call);
    Arc::new(AwsKmsBackend::new(cfg).await.unwrap())
}

async fn round_trip(b: &dyn KeyBackend, kek: &kekring::KekLocator) -> Result<(), BackendError> {
    common::wrap_unwrap(
        b,
        kek,
        &common::binding("faults", "o1", Classification::Internal),
    )
    .await
}

/// The two backends behind proxies, each with a KEK made while the proxy passes.
async fn backends() -> Vec<(
    &'static str,
    Proxy,
    Arc<dyn KeyBackend>,
    kekring::KekLocator,
)> {
    let mut out: Vec<(
        &'static str,
        Proxy,
        Arc<dyn KeyBackend>,
        kekring::KekLocator,
    )> = Vec::new();
    let p = Proxy::start(env("KEKRING_TEST_VAULT_ADDR")).await;
    let b: Arc<dyn KeyBackend> = transit_via(&p, policy());
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "faults").await;
    round_trip(b.as_ref(), &kek).await.unwrap();
    out.push(("transit", p, b, kek));
    let p = Proxy::start(env("KEKRING_TEST_KMS_ENDPOINT")).await;
    let b: Arc<dyn KeyBackend> = kms_via(&p, policy()).await;
    let kek = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "faults").await;
    round_trip(b.as_ref(), &kek).await.unwrap();
    out.push(("kms", p, b, kek));
    out
}

const VAULT_500: &str = r#"{"errors":["internal error"]}"#;
const KMS_500: &str = r#"{"__type":"KMSInternalException","message":"internal error"}"#;

#[tokio::test]
async fn transient_faults_are_retried_and_the_call_succeeds() {
    for (name, proxy, b, kek) in backends().await {
        let (status_body, error_type) = if name == "kms" {
            (KMS_500, "KMSInternalException")
        } else {
            (VAULT_500, "")
        };
        for fault in [
            Fault::Reset,
            Fault::Answer(503, error_type, status_body),
            Fault::Answer(
                429,
                "ThrottlingException",
                r#"{"__type":"ThrottlingException","message":"Rate exceeded","errors":["rate limited"]}"#,
            ),
            // Longer than an attempt may take: the attempt times out and is repeated.
            Fault::Delay(Duration::from_millis(1200)),
        ] {
            proxy.set(fault.clone(), 2);
            round_trip(b.as_ref(), &kek).await.unwrap_or_else(|e| {
                panic!("{name}: {fault:?} twice, then success expected: {e:?}")
            });
            assert_eq!(proxy.faulted(), 2, "{name}: {fault:?}: both faults met");
        }
    }
}

#[tokio::test]
async fn a_lasting_fault_ends_in_bounded_time_with_a_transient_error() {
    for (name, proxy, b, kek) in backends().await {
        for fault in [Fault::Reset, Fault::Delay(Duration::from_secs(30))] {
            proxy.set(fault.clone(), u32::MAX);
            let started = Instant::now();
            let got = round_trip(b.as_ref(), &kek).await;
            let took = started.elapsed();
            proxy.set(Fault::Pass, 0);
            let err = got.expect_err("the server is unreachable");
            assert!(
                err.is_transient() && err.try_next_copy(),
                "{name}: {fault:?}: {err:?}"
            );
            // The policy's total (4 s), plus scheduling slack.
            assert!(
                took < Duration::from_secs(6),
                "{name}: {fault:?} took {took:?}"
            );
        }
    }
}

/// An answer over 1 MiB is refused as malformed, on its declared length or as it grows,
/// and not retried; the connection after it works.
#[tokio::test]
async fn an_answer_over_one_mebibyte_is_refused() {
    let big: &'static str =
        Box::leak(format!("{{\"pad\":\"{}\"}}", "x".repeat((1 << 20) + 16)).into_boxed_str());
    for (name, proxy, b, kek) in backends().await {
        proxy.set(Fault::Answer(200, "", big), 1);
        let got = round_trip(b.as_ref(), &kek).await;
        assert!(
            matches!(got, Err(BackendError::MalformedResponse { .. })),
            "{name}: {got:?}"
        );
        assert_eq!(proxy.faulted(), 1, "{name}: one attempt only");
        round_trip(b.as_ref(), &kek).await.unwrap();
    }
}

/// The same for the first read of a Transit key's settings: an oversized answer there
/// is malformed, not `KeyNotFound` (which would let an open fall through to the next
/// copy).
#[tokio::test]
async fn an_oversized_key_settings_answer_is_malformed_not_a_missing_key() {
    let big: &'static str =
        Box::leak(format!("{{\"pad\":\"{}\"}}", "x".repeat((1 << 20) + 16)).into_boxed_str());
    let proxy = Proxy::start(env("KEKRING_TEST_VAULT_ADDR")).await;
    let b = transit_via(&proxy, policy());
    // Another KEK first, so that the token is looked up and the next request is the read
    // of the second KEK's settings.
    let first = common::new_kek(b.as_ref(), WrapAlgorithm::Aes256Opaque, "settings-a").await;
    round_trip(b.as_ref(), &first).await.unwrap();
    let direct = VaultTransitBackend::new(VaultTransitConfig::new(
        env("KEKRING_TEST_VAULT_ADDR"),
        VaultAuth::Token(SecretString::from(env("KEKRING_TEST_VAULT_TOKEN"))),
    ))
    .unwrap();
    let second = common::new_kek(&direct, WrapAlgorithm::Aes256Opaque, "settings-b").await;
    proxy.set(Fault::Answer(200, "", big), 1);
    let got = round_trip(b.as_ref(), &second).await;
    assert!(
        matches!(got, Err(BackendError::MalformedResponse { .. })),
        "{got:?}"
    );
    round_trip(b.as_ref(), &second).await.unwrap();
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    for (name, proxy, b, kek) in backends().await {
        let (body, error_type) = if name == "kms" {
            (
                r#"{"__type":"ValidationException","message":"bad request"}"#,
                "ValidationException",
            )
        } else {
            (r#"{"errors":["invalid request"]}"#, "")
        };
        proxy.set(Fault::Answer(400, error_type, body), u32::MAX);
        let got = round_trip(b.as_ref(), &kek).await;
        let faulted = proxy.faulted();
        proxy.set(Fault::Pass, 0);
        assert!(
            matches!(got, Err(BackendError::InvalidRequest { .. })),
            "{name}: {got:?}"
        );
        assert_eq!(faulted, 1, "{name}: one attempt only");
    }
}

#[tokio::test]
async fn a_bulk_rewrap_cut_off_half_way_loses_nothing_and_completes_when_resumed() {
    let proxy = Proxy::start(env("KEKRING_TEST_VAULT_ADDR")).await;
    let call = policy()
        .total_timeout(Duration::from_secs(1))
        .max_attempts(2);
    let transit = transit_via(&proxy, call);
    let v1 = common::new_kek(transit.as_ref(), WrapAlgorithm::Aes256Opaque, "cutoff").await;
    let env = Envelope::builder()
        .backend(transit.clone())
        .kek(NewKek::new(
            common::kref("acme", "cutoff", 1),
            BackendId::VaultTransit,
            v1,
            WrapAlgorithm::Aes256Opaque,
        ))
        .build()
        .unwrap();
    // The store: item bytes by index, updated only from successful results, then the
    // checkpoint, as the bulk re-wrap's documentation asks.
    let mut store = Vec::new();
    for i in 0..40 {
        let ctx = common::ctx("acme", "cutoff", &format!("o{i}"), Classification::Internal);
        let sealed = env
            .seal(&ctx, format!("object {i}").as_bytes())
            .await
            .unwrap();
        store.push(BulkItem::new(
            format!("{i}"),
            ctx,
            BulkItemKind::Sealed,
            sealed,
        ));
    }
    let (acme, cutoff) = (
        Name::new("t", "acme").unwrap(),
        Name::new("p", "cutoff").unwrap(),
    );
    env.rotate_kek(&acme, &cutoff).await.unwrap();

    // First run: the server goes away after the 10th item.
    let store = Arc::new(Mutex::new(store));
    let snapshot = store.lock().unwrap().clone();
    let (s, p) = (store.clone(), proxy.clone());
    let mut checkpoint = 0;
    let first = env
        .bulk_rewrap(snapshot, BulkOptions::new(4, 0), |progress, result, cp| {
            if let Ok((bytes, _)) = &result.outcome {
                let i: usize = result.id.parse().unwrap();
                s.lock().unwrap()[i].bytes = bytes.clone();
            }
            checkpoint = cp;
            if progress.done == 10 {
                p.set(Fault::Reset, u32::MAX);
            }
        })
        .await;
    assert!(
        first.progress.failed > 0,
        "the cut-off was felt: {:?}",
        first.progress
    );
    assert!(first.progress.rewrapped >= 10);
    assert_eq!(first.checkpoint, checkpoint);
    for r in &first.results {
        if let Err(e) = &r.outcome {
            assert!(
                matches!(e, kekring::Error::Backend(b) if b.is_transient()),
                "a failed item failed for the outage: {e:?}"
            );
        }
    }

    // The server comes back; the job resumes from its checkpoint.
    proxy.set(Fault::Pass, 0);
    let snapshot = store.lock().unwrap().clone();
    let s = store.clone();
    let second = env
        .bulk_rewrap(snapshot, BulkOptions::new(4, checkpoint), |_, result, _| {
            if let Ok((bytes, _)) = &result.outcome {
                let i: usize = result.id.parse().unwrap();
                s.lock().unwrap()[i].bytes = bytes.clone();
            }
        })
        .await;
    assert_eq!(second.progress.failed, 0, "{:?}", second.results);
    // Every item was re-wrapped exactly once over the two runs: none twice (items done
    // after the checkpoint come back as already current), none lost.
    let already = second
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Ok((_, RewrapOutcome::AlreadyCurrent))))
        .count() as u64;
    assert_eq!(first.progress.rewrapped + second.progress.rewrapped, 40);
    assert_eq!(already + second.progress.rewrapped, 40 - checkpoint);
    // And every object opens, under the new KEK.
    let done = store.lock().unwrap().clone();
    for (i, item) in done.iter().enumerate() {
        let back = env.open(&item.context, &item.bytes).await.unwrap();
        assert_eq!(back, format!("object {i}").as_bytes());
    }
    let again = env
        .bulk_rewrap(done, BulkOptions::new(4, 0), |_, _, _| {})
        .await;
    assert_eq!(again.progress.already_current, 40);
}
