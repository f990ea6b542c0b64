//! Key lifecycle through the `Envelope`, with a fake clock: a full rotation (seal under
//! v1, rotate, seal under v2, open both, window ends, v1 retires only after re-wrap);
//! revocation denying cached and uncached unwraps across two envelopes sharing a ring;
//! the audited break-glass re-wrap; bulk re-wrap through a backend that fails at random
//! points, losing nothing and resuming from its checkpoint.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use kekring::audit::{AuditEvent, AuditLog, MemorySink, verify};
use kekring::backend::{
    BackendError, BackendInfo, KekDescriptor, KekSpec, UnwrapRequest, UnwrapResponse, WrapRequest,
    WrapResponse,
};
use kekring::envelope::{BulkItem, BulkItemKind, BulkOptions, RewrapOutcome};
use kekring::lifecycle::{
    Cadence, KekState, KeyRing, LifecycleError, NewKek, SharedKeyRing, scan_objects,
};
use kekring::{
    BackendId, CacheConfig, Classification, Context, Envelope, Error, KekRef, KeyBackend,
    KeyStateError, LocalBackend, ManualClock, WrapAlgorithm,
};

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;

fn kref(v: u32) -> KekRef {
    KekRef::new("acme", "docs", v).unwrap()
}

fn ctx(object: &str) -> Context {
    Context::new("acme", "docs", object, Classification::Confidential).unwrap()
}

struct World {
    local: Arc<LocalBackend>,
    ring: SharedKeyRing,
    clock: Arc<ManualClock>,
    audit: AuditLog,
    sink: Arc<MemorySink>,
}

impl World {
    async fn new() -> Self {
        let local = Arc::new(LocalBackend::new());
        let d = local
            .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Kw, "acme-docs"))
            .await
            .unwrap();
        let ring = SharedKeyRing::new(KeyRing::new());
        let sink = Arc::new(MemorySink::new());
        let audit = AuditLog::new(sink.clone(), kekring::audit::AuditKey::from_bytes([3; 32]));
        let events = ring
            .apply(|r| {
                r.register(
                    NewKek::new(
                        kref(1),
                        BackendId::Local,
                        d.locator.as_str(),
                        WrapAlgorithm::Aes256Kw,
                    )
                    .key_id(local.key_identity(&d.locator).unwrap())
                    .cadence(Cadence::DAYS_90)
                    .overlap_seconds(30 * DAY),
                    T0,
                )
            })
            .unwrap();
        audit.append_lifecycle(T0, events).unwrap();
        Self {
            local,
            ring,
            clock: Arc::new(ManualClock::new(T0)),
            audit,
            sink,
        }
    }

    fn envelope(&self, backend: Arc<dyn KeyBackend>, cache: bool) -> Envelope {
        let mut b = Envelope::builder()
            .backend(backend)
            .key_ring(self.ring.clone())
            .clock(self.clock.clone())
            .audit(self.audit.clone());
        if cache {
            b = b.cache(CacheConfig::new(3600, 100, 1000));
        }
        b.build().unwrap()
    }

    /// Rotation as an operator does it: successor made in the backend, ring updated.
    async fn rotate(&self, to: u32) {
        let d = self
            .local
            .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Kw, "acme-docs"))
            .await
            .unwrap();
        let now = self.clock.now_secs();
        // Recorded by the ring itself: an audited envelope is built on it by now.
        self.ring
            .apply(|r| {
                r.rotate(
                    NewKek::new(
                        kref(to),
                        BackendId::Local,
                        d.locator.as_str(),
                        WrapAlgorithm::Aes256Kw,
                    )
                    .key_id(self.local.key_identity(&d.locator).unwrap()),
                    now,
                )
            })
            .unwrap();
    }
}

trait NowSecs {
    fn now_secs(&self) -> u64;
}
impl NowSecs for ManualClock {
    fn now_secs(&self) -> u64 {
        kekring::Clock::now(self)
    }
}

fn primary_kek(bytes: &[u8]) -> KekRef {
    let (h, _) = kekring::format::SealedHeader::decode_prefix(bytes).unwrap();
    h.wrapped_dek().entries()[0].kek().clone()
}

#[tokio::test]
async fn full_rotation_with_overlap_window_and_retirement() {
    let w = World::new().await;
    let env = w.envelope(w.local.clone(), false);
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..5 {
        let id = format!("doc-{i}");
        store.insert(
            id.clone(),
            env.seal(&ctx(&id), id.as_bytes()).await.unwrap(),
        );
    }
    assert!(store.values().all(|b| primary_kek(b) == kref(1)));
    assert!(w.ring.read(|r| r.due(T0 + 89 * DAY).is_empty()));

    // Quarter ends: v1 is due; rotate.
    w.clock.set(T0 + 90 * DAY);
    assert_eq!(w.ring.read(|r| r.due(T0 + 90 * DAY).len()), 1);
    w.rotate(2).await;
    let new = env.seal(&ctx("doc-new"), b"doc-new").await.unwrap();
    assert_eq!(primary_kek(&new), kref(2));
    store.insert("doc-new".into(), new);
    // Both generations open inside the window.
    for (id, b) in &store {
        assert_eq!(env.open(&ctx(id), b).await.unwrap(), id.as_bytes());
    }

    // Retirement is refused while objects remain under v1, even after the window.
    w.clock.advance(31 * DAY);
    let now = w.clock.now_secs();
    let scan = scan_objects(store.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    assert_eq!(scan.outstanding(&kref(1)), 5);
    assert_eq!(scan.only_under[&kref(1).to_string()].len(), 5);
    assert!(matches!(
        w.ring
            .apply(|r| r.retire(&kref(1), now, scan.outstanding(&kref(1)), false)),
        Err(LifecycleError::StillInUse { outstanding: 5, .. })
    ));
    // Past the window v1 no longer unwraps: the old objects are denied (and audited).
    let denied = env.open(&ctx("doc-0"), &store["doc-0"]).await.unwrap_err();
    assert!(
        matches!(denied, Error::KeyState(KeyStateError::NotUsable { .. })),
        "{denied:?}"
    );

    // Re-wrap must therefore happen inside the window: go back and do it there.
    w.clock.set(T0 + 90 * DAY + 10 * DAY);
    for (id, b) in store.iter_mut() {
        let (new, outcome) = env.rewrap_sealed(&ctx(id), b).await.unwrap();
        assert_eq!(outcome == RewrapOutcome::Rewrapped, id != "doc-new");
        // Only the header changed: the payload bytes are identical.
        let (_, old_len) = kekring::format::SealedHeader::decode_prefix(b).unwrap();
        let (_, new_len) = kekring::format::SealedHeader::decode_prefix(&new).unwrap();
        assert_eq!(b[old_len..], new[new_len..]);
        *b = new;
    }
    w.clock.set(T0 + 121 * DAY);
    let now = w.clock.now_secs();
    let scan = scan_objects(store.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    assert_eq!(scan.outstanding(&kref(1)), 0);
    w.ring
        .apply(|r| r.retire(&kref(1), now, scan.outstanding(&kref(1)), false))
        .unwrap();
    for (id, b) in &store {
        assert_eq!(env.open(&ctx(id), b).await.unwrap(), id.as_bytes());
    }
    assert_eq!(
        w.ring.read(|r| r.get(&kref(1)).unwrap().state),
        KekState::Retired
    );
    // Usage counters saw it all.
    let usage = env.usage();
    assert!(usage[&kref(1)].wraps >= 5 && usage[&kref(2)].wraps >= 6);
    assert!(usage[&kref(1)].denials >= 1);
    // And the audit chain holds rotation, denial and retirement, and verifies.
    let records = w.sink.records();
    verify(&kekring::audit::AuditKey::from_bytes([3; 32]), &records).unwrap();
    let kinds: Vec<String> = records.iter().map(|r| format!("{:?}", r.event)).collect();
    assert!(kinds.iter().any(|k| k.contains("Rotated")));
    assert!(kinds.iter().any(|k| k.contains("UnwrapDenied")));
    assert!(kinds.iter().any(|k| k.contains("Retired")));
}

#[tokio::test]
async fn revocation_denies_cached_and_uncached_unwraps_in_every_envelope() {
    let w = World::new().await;
    let a = w.envelope(w.local.clone(), true);
    let b = w.envelope(w.local.clone(), true);
    let sealed = a.seal(&ctx("x"), b"secret").await.unwrap();
    let g = a.generate_data_key(&ctx("row")).await.unwrap();
    // Warm both caches.
    for env in [&a, &b] {
        assert_eq!(env.open(&ctx("x"), &sealed).await.unwrap(), b"secret");
        env.unwrap_data_key(&ctx("row"), &g.wrapped).await.unwrap();
    }
    let now = w.clock.now_secs();
    w.ring
        .apply(|r| r.revoke(&kref(1), now, "KEK exposed in a log"))
        .unwrap();
    for env in [&a, &b] {
        for _ in 0..2 {
            assert!(matches!(
                env.open(&ctx("x"), &sealed).await,
                Err(Error::KeyState(KeyStateError::NotUsable {
                    state: "revoked",
                    ..
                }))
            ));
            assert!(matches!(
                env.unwrap_data_key(&ctx("row"), &g.wrapped).await,
                Err(Error::KeyState(KeyStateError::NotUsable { .. }))
            ));
        }
        // Nothing wraps under it either.
        assert!(matches!(
            env.seal(&ctx("y"), b"new").await,
            Err(Error::KeyState(KeyStateError::NoWrappingKek { .. }))
        ));
    }
    // Repeats are coalesced: each envelope wrote its first denial at once and counts the
    // rest until flushed; every denial is accounted for.
    a.flush_audit().unwrap();
    b.flush_audit().unwrap();
    let denials: u64 = w
        .sink
        .records()
        .iter()
        .map(|r| match r.event {
            AuditEvent::UnwrapDenied { count, .. } => count,
            _ => 0,
        })
        .sum();
    assert_eq!(denials, 8);
    let revoked = w
        .sink
        .records()
        .iter()
        .filter(|r| format!("{:?}", r.event).contains("Revoked"))
        .count();
    assert_eq!(revoked, 1, "the revocation is recorded once, by the ring");

    // Disable is reversible and also stops cached unwraps at once.
    let w2 = World::new().await;
    let env = w2.envelope(w2.local.clone(), true);
    let s = env.seal(&ctx("z"), b"z").await.unwrap();
    env.open(&ctx("z"), &s).await.unwrap();
    w2.ring.apply(|r| r.disable(&kref(1), T0)).unwrap();
    assert!(env.open(&ctx("z"), &s).await.is_err());
    w2.ring.apply(|r| r.enable(&kref(1), T0)).unwrap();
    assert_eq!(env.open(&ctx("z"), &s).await.unwrap(), b"z");
}

#[tokio::test]
async fn break_glass_rewrap_is_the_only_way_out_and_is_audited() {
    let w = World::new().await;
    let env = w.envelope(w.local.clone(), false);
    let sealed = env.seal(&ctx("legal-hold"), b"must survive").await.unwrap();
    let now = w.clock.now_secs();
    w.ring
        .apply(|r| r.revoke(&kref(1), now, "compromise"))
        .unwrap();
    // A successor for the scope (no active KEK after revocation: register, not rotate).
    let d = w
        .local
        .create_kek(&KekSpec::new(WrapAlgorithm::Aes256Kw, "acme-docs"))
        .await
        .unwrap();
    w.ring
        .apply(|r| {
            r.register(
                NewKek::new(
                    kref(2),
                    BackendId::Local,
                    d.locator.as_str(),
                    WrapAlgorithm::Aes256Kw,
                )
                .key_id(w.local.key_identity(&d.locator).unwrap()),
                now,
            )
        })
        .unwrap();
    // The normal re-wrap refuses.
    assert!(matches!(
        env.rewrap_sealed(&ctx("legal-hold"), &sealed).await,
        Err(Error::KeyState(KeyStateError::NotUsable { .. }))
    ));
    // Break glass needs an audit log.
    let unaudited = Envelope::builder()
        .backend(w.local.clone())
        .key_ring(w.ring.clone())
        .clock(w.clock.clone())
        .build()
        .unwrap();
    assert!(matches!(
        unaudited
            .danger_break_glass_rewrap(
                &ctx("legal-hold"),
                BulkItemKind::Sealed,
                &sealed,
                "incident 7"
            )
            .await,
        Err(Error::Misuse(_))
    ));
    let (migrated, outcome) = env
        .danger_break_glass_rewrap(
            &ctx("legal-hold"),
            BulkItemKind::Sealed,
            &sealed,
            "incident 7",
        )
        .await
        .unwrap();
    assert_eq!(outcome, RewrapOutcome::Rewrapped);
    assert_eq!(primary_kek(&migrated), kref(2));
    assert_eq!(
        env.open(&ctx("legal-hold"), &migrated).await.unwrap(),
        b"must survive"
    );
    let records = w.sink.records();
    verify(&kekring::audit::AuditKey::from_bytes([3; 32]), &records).unwrap();
    assert!(records.iter().any(|r| matches!(
        &r.event,
        AuditEvent::BreakGlassRewrap { reason, .. } if reason == "incident 7"
    )));
    // Destroyed KEKs cannot be read even by break glass.
    w.ring.apply(|r| r.destroy(&kref(1), now)).unwrap();
    assert!(
        env.danger_break_glass_rewrap(&ctx("legal-hold"), BulkItemKind::Sealed, &sealed, "again")
            .await
            .is_err()
    );
}

/// A local backend that fails wraps and unwraps at pseudo-random points.
#[derive(Debug)]
struct Flaky {
    inner: Arc<LocalBackend>,
    state: AtomicU64,
    fail_one_in: u64,
    failures: AtomicU64,
}

impl Flaky {
    fn roll(&self) -> Result<(), BackendError> {
        // xorshift: deterministic per test run.
        let mut x = self.state.load(Ordering::SeqCst);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::SeqCst);
        if x.is_multiple_of(self.fail_one_in) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(BackendError::Unavailable {
                message: "injected failure".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl KeyBackend for Flaky {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }
    fn key_identity(
        &self,
        kek: &kekring::KekLocator,
    ) -> Result<kekring::backend::KeyIdentity, BackendError> {
        self.inner.key_identity(kek)
    }
    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        self.roll()?;
        self.inner.wrap(req).await
    }
    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        self.roll()?;
        self.inner.unwrap(req).await
    }
    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        self.inner.create_kek(spec).await
    }
}

#[tokio::test]
async fn bulk_rewrap_with_injected_failures_loses_nothing_and_resumes() {
    let w = World::new().await;
    let steady = w.envelope(w.local.clone(), false);
    let mut store: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for i in 0..120 {
        let id = format!("obj-{i:04}");
        let sealed = i % 3 != 0;
        let bytes = if sealed {
            steady.seal(&ctx(&id), id.as_bytes()).await.unwrap()
        } else {
            steady.generate_data_key(&ctx(&id)).await.unwrap().wrapped
        };
        store.push((id, bytes, sealed));
    }
    w.rotate(2).await;
    let flaky = Arc::new(Flaky {
        inner: w.local.clone(),
        state: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        fail_one_in: 7,
        failures: AtomicU64::new(0),
    });
    let env = w.envelope(flaky.clone(), false);
    let mut checkpoint = 0;
    let mut runs = 0;
    let mut progress_calls = 0u64;
    loop {
        runs += 1;
        assert!(runs < 50, "bulk re-wrap does not converge");
        let items: Vec<BulkItem> = store
            .iter()
            .map(|(id, b, sealed)| {
                let kind = if *sealed {
                    BulkItemKind::Sealed
                } else {
                    BulkItemKind::WrappedDek
                };
                BulkItem::new(id.clone(), ctx(id), kind, b.clone())
            })
            .collect();
        let mut last_id: Option<String> = None;
        let mut stuck_at: Option<u64> = None;
        let report = env
            .bulk_rewrap(items, BulkOptions::new(4, checkpoint), |p, r, cp| {
                // Called once per item, in stream order (ids sort like the stream), with
                // a checkpoint that advances only over an unbroken run of successes.
                progress_calls += 1;
                assert!(
                    last_id.as_deref() < Some(r.id.as_str()),
                    "out of stream order"
                );
                last_id = Some(r.id.clone());
                if r.outcome.is_err() && stuck_at.is_none() {
                    stuck_at = Some(cp);
                }
                match stuck_at {
                    // After the first failure the checkpoint never moves again.
                    Some(at) => assert_eq!(cp, at, "checkpoint moved past a failure"),
                    // Before it, every item counts.
                    None => assert_eq!(cp, checkpoint + p.done),
                }
            })
            .await;
        assert!(report.audit_error.is_none());
        assert_eq!(
            report.results.len() as u64 + report.skipped,
            store.len() as u64
        );
        // Apply every success; failures keep their old bytes (nothing lost).
        for r in report.results {
            let slot = store.iter_mut().find(|(id, _, _)| *id == r.id).unwrap();
            if let Ok((bytes, _)) = r.outcome {
                slot.1 = bytes;
            }
        }
        checkpoint = report.checkpoint;
        if report.progress.failed == 0 && checkpoint == store.len() as u64 {
            break;
        }
    }
    assert!(
        flaky.failures.load(Ordering::SeqCst) > 0,
        "no failure was injected"
    );
    assert!(runs > 1, "the failures should have forced a resume");
    assert!(progress_calls > 0);
    // Every object is under v2 and opens to its original content.
    let scan = scan_objects(store.iter().map(|(k, v, _)| (k.as_str(), v.as_slice())));
    assert_eq!(scan.outstanding(&kref(1)), 0);
    assert_eq!(scan.outstanding(&kref(2)), 120);
    for (id, b, sealed) in &store {
        if *sealed {
            assert_eq!(steady.open(&ctx(id), b).await.unwrap(), id.as_bytes());
        } else {
            steady.unwrap_data_key(&ctx(id), b).await.unwrap();
        }
    }
    // A rerun is idempotent: everything already current, no backend call.
    let before = flaky.failures.load(Ordering::SeqCst);
    let items: Vec<BulkItem> = store
        .iter()
        .map(|(id, b, s)| {
            BulkItem::new(
                id.clone(),
                ctx(id),
                if *s {
                    BulkItemKind::Sealed
                } else {
                    BulkItemKind::WrappedDek
                },
                b.clone(),
            )
        })
        .collect();
    let report = env
        .bulk_rewrap(items, BulkOptions::default(), |_, _, _| {})
        .await;
    assert_eq!(report.progress.already_current, 120);
    assert_eq!(flaky.failures.load(Ordering::SeqCst), before);
    verify(
        &kekring::audit::AuditKey::from_bytes([3; 32]),
        &w.sink.records(),
    )
    .unwrap();
}

#[tokio::test]
async fn scheduled_rotation_through_the_envelope() {
    let w = World::new().await;
    let env = w.envelope(w.local.clone(), false);
    let old = env.seal(&ctx("before"), b"before").await.unwrap();
    // Not due yet: nothing happens.
    w.clock.set(T0 + 89 * DAY);
    assert!(env.rotate_due().await.unwrap().is_empty());
    // Due: v1 -> v2, created inside the backend, cadence and window carried over.
    w.clock.set(T0 + 90 * DAY);
    let rotated = env.rotate_due().await.unwrap();
    assert_eq!(rotated, vec![(kref(1), kref(2))]);
    let v2 = w.ring.read(|r| r.get(&kref(2)).cloned()).unwrap();
    assert_eq!(v2.cadence, Some(Cadence::DAYS_90));
    assert_eq!(v2.overlap_seconds, 30 * DAY);
    assert!(w.local.contains(&v2.locator));
    let new = env.seal(&ctx("after"), b"after").await.unwrap();
    assert_eq!(primary_kek(&new), kref(2));
    assert_eq!(env.open(&ctx("before"), &old).await.unwrap(), b"before");
    // A triggered rotation on top.
    let name = |s: &str| kekring::Name::new("x", s).unwrap();
    assert_eq!(
        env.rotate_kek(&name("acme"), &name("docs")).await.unwrap(),
        kref(3)
    );
    assert!(
        w.sink
            .records()
            .iter()
            .any(|r| format!("{:?}", r.event).contains("Rotated"))
    );
}
