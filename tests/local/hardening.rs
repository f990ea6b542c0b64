//! Security hardening: one test per finding of the outside review of the core (issue 10).
//! Each was written to fail on the reviewed commit (a36b560) and passes with its fix.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kekring::audit::{AuditEvent, AuditLog, AuditSink, MemorySink};
use kekring::backend::{BackendError, KekSpec, KeyIdentity, UnwrapRequest, WrapRequest};
use kekring::format::{WrappedDek, WrappedEntry};
use kekring::lifecycle::{KekState, KeyRing, NewKek, SharedKeyRing};
use kekring::{
    BackendId, Classification, Clock, Context, Envelope, Error, KekLocator, KekRef, KeyBackend,
    LocalBackend, ManualClock, WrapAlgorithm,
};

pub(crate) const T0: u64 = 1_800_000_000;

use crate::common;

fn kref(purpose: &str, v: u32) -> KekRef {
    common::kref("acme", purpose, v)
}

fn ctx(purpose: &str, object: &str, class: Classification) -> Context {
    common::ctx("acme", purpose, object, class)
}

/// A ring with one KEK per (purpose, algorithm), all generated in `local`.
async fn ring_with(local: &LocalBackend, keks: &[(&str, u32, WrapAlgorithm)]) -> SharedKeyRing {
    let ring = SharedKeyRing::new(KeyRing::new());
    for (purpose, v, alg) in keks {
        let d = local
            .create_kek(&KekSpec::new(*alg, format!("{purpose}-{v}")))
            .await
            .unwrap();
        ring.apply(|r| {
            r.register(
                NewKek::new(
                    kref(purpose, *v),
                    BackendId::Local,
                    d.locator.as_str(),
                    *alg,
                )
                .key_id(local.key_identity(&d.locator).unwrap()),
                T0,
            )
        })
        .unwrap();
    }
    ring
}

/// An envelope on `backend` and `ring`, nothing else configured.
pub(crate) fn env_on(backend: Arc<dyn KeyBackend>, ring: &SharedKeyRing) -> Envelope {
    Envelope::builder()
        .backend(backend)
        .key_ring(ring.clone())
        .build()
        .unwrap()
}

/// `entry`'s wrapped key under another KEK's name (what an attacker, or a careless
/// migration, can write into a header).
/// Creates `docs` v2 of `alg` in `local` and rotates the ring to it at `now` (v1 is
/// deprecated).
async fn rotate_to_new(local: &LocalBackend, ring: &SharedKeyRing, alg: WrapAlgorithm, now: u64) {
    let d = local
        .create_kek(&KekSpec::new(alg, "docs-2"))
        .await
        .unwrap();
    let next = NewKek::new(kref("docs", 2), BackendId::Local, d.locator.as_str(), alg)
        .key_id(local.key_identity(&d.locator).unwrap());
    ring.apply(|r| r.rotate(next, now)).unwrap();
}

fn relabelled(entry: &WrappedEntry, kek: KekRef) -> WrappedEntry {
    WrappedEntry::new(
        entry.algorithm(),
        entry.backend(),
        kek,
        entry.params().to_vec(),
        entry.wrapped().to_vec(),
    )
    .unwrap()
}

/// An audit log into `sink` under a fixed test key.
fn audit_into(sink: Arc<dyn AuditSink>) -> AuditLog {
    AuditLog::new(sink, kekring::audit::AuditKey::from_bytes([3; 32]))
}

fn locator(ring: &SharedKeyRing, k: &KekRef) -> KekLocator {
    ring.read(|r| r.get(k).unwrap().locator.clone())
}

/// Wraps `dek` under `kek` with `binding_ctx`'s binding, as a party holding only the
/// KEK's public half (or encrypt-only rights) can.
async fn forge_entry(
    local: &LocalBackend,
    ring: &SharedKeyRing,
    kek: &KekRef,
    alg: WrapAlgorithm,
    dek: &kekring::DataKey,
    binding_ctx: &Context,
) -> WrappedEntry {
    let loc = locator(ring, kek);
    let r = local
        .wrap(WrapRequest::new(&loc, alg, dek, binding_ctx.binding()))
        .await
        .unwrap();
    WrappedEntry::new(alg, BackendId::Local, kek.clone(), r.params, r.wrapped).unwrap()
}

/// Item 1: a copy under a KEK of another purpose, behind a decoy first copy that names an
/// unknown version of the reader's purpose, must not open.
#[tokio::test]
async fn a_copy_under_another_purpose_behind_a_decoy_is_refused() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::MlKem768;
    let ring = ring_with(&local, &[("docs", 1, alg), ("uploads", 1, alg)]).await;
    let env = env_on(local.clone(), &ring);
    let docs = ctx("docs", "report", Classification::Confidential);
    // The attacker's DEK, wrapped to the docs binding under the uploads KEK.
    let dek = kekring::DataKey::generate().unwrap();
    let real = forge_entry(&local, &ring, &kref("uploads", 1), alg, &dek, &docs).await;
    let decoy = relabelled(&real, kref("docs", 4_000_000_000));
    let forged = WrappedDek::new(Classification::Confidential, vec![decoy, real])
        .unwrap()
        .encode();
    let got = env.unwrap_data_key(&docs, &forged).await;
    assert!(
        matches!(got, Err(Error::Context(_))),
        "a docs reader accepted a DEK wrapped under the uploads KEK: {got:?}"
    );
}

/// Item 1: the copy used at open must satisfy the profile for the object's
/// classification: a Restricted object whose only usable copy is classical (here P-256
/// ECDH; RSA alike) is refused.
#[tokio::test]
async fn a_restricted_object_whose_only_copy_is_classical_is_refused_at_open() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::P256EcdhEs;
    let ring = ring_with(&local, &[("docs", 1, alg)]).await;
    let env = env_on(local.clone(), &ring);
    let restricted = ctx("docs", "secret", Classification::Restricted);
    // The envelope itself refuses to wrap Restricted data under a classical KEK...
    assert!(matches!(
        env.generate_data_key(&restricted).await,
        Err(Error::Policy(_))
    ));
    // ...so a Restricted classical wrap was made by someone else with the public key.
    let dek = kekring::DataKey::generate().unwrap();
    let e = forge_entry(&local, &ring, &kref("docs", 1), alg, &dek, &restricted).await;
    let forged = WrappedDek::new(Classification::Restricted, vec![e])
        .unwrap()
        .encode();
    let got = env.unwrap_data_key(&restricted, &forged).await;
    assert!(
        matches!(got, Err(Error::Policy(_))),
        "a Restricted DEK opened through a classical copy: {got:?}"
    );
}

/// Item 5: a diverged ring with a higher generation must not undo a revocation.
#[test]
fn compare_and_swap_never_undoes_a_revocation() {
    let new = |p: &str| {
        NewKek::new(
            kref(p, 1),
            BackendId::Local,
            format!("{p}-1"),
            WrapAlgorithm::Aes256Kw,
        )
        .key_id(KeyIdentity::new(format!("{p}-1")))
    };
    let shared = SharedKeyRing::new(KeyRing::new());
    shared.apply(|r| r.register(new("docs"), T0)).unwrap();
    shared.apply(|r| r.register(new("other"), T0)).unwrap();
    // A copy taken at generation 2, which then diverges.
    let copy = shared.snapshot();
    assert_eq!(copy.generation(), 2);
    shared
        .apply(|r| r.revoke(&kref("docs", 1), T0 + 1, "incident"))
        .unwrap();
    let (copy, _) = copy.disable(&kref("other", 1), T0 + 2).unwrap();
    let (copy, _) = copy.enable(&kref("other", 1), T0 + 3).unwrap();
    assert_eq!(copy.generation(), 4);
    assert_eq!(
        copy.revocation_epoch(),
        shared.read(KeyRing::revocation_epoch)
    );
    let expected = shared.read(KeyRing::generation);
    assert!(
        shared.compare_and_swap(expected, copy).is_err(),
        "a diverged ring was installed over a revocation"
    );
    assert_eq!(
        shared.read(|r| r.get(&kref("docs", 1)).unwrap().state),
        KekState::Revoked
    );
    // Nor can a copy that drops the revoked record, or a transition that registers the
    // revoked KEK's backend key under another name.
    let mut dropped = KeyRing::new().register(new("other"), T0).unwrap().0;
    while dropped.generation() <= expected {
        dropped = dropped.disable(&kref("other", 1), T0).unwrap().0;
        dropped = dropped.enable(&kref("other", 1), T0).unwrap().0;
    }
    assert!(dropped.generation() > expected);
    assert!(matches!(
        shared.compare_and_swap(expected, dropped),
        Err(kekring::lifecycle::LifecycleError::Regression { .. })
    ));
    let revived = NewKek::new(
        kref("docs", 2),
        BackendId::Local,
        "docs-1",
        WrapAlgorithm::Aes256Kw,
    )
    .key_id(KeyIdentity::new("docs-1"));
    assert!(matches!(
        shared.apply(|r| r.register(revived, T0 + 5)),
        Err(kekring::lifecycle::LifecycleError::KeyReused { .. })
    ));
}

/// Item 1: a copy whose KEK this reader does not know, in a scope it accepts (a copy
/// meant for another region's reader), is skipped; the next known copy opens.
#[tokio::test]
async fn an_unknown_copy_in_an_accepted_scope_is_skipped() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::Aes256Kw;
    let ring = ring_with(&local, &[("docs", 1, alg)]).await;
    let env = env_on(local.clone(), &ring);
    let c = ctx("docs", "o", Classification::Confidential);
    let dek = kekring::DataKey::generate().unwrap();
    let known = forge_entry(&local, &ring, &kref("docs", 1), alg, &dek, &c).await;
    let elsewhere = relabelled(&known, kref("docs", 7));
    let w = WrappedDek::new(Classification::Confidential, vec![elsewhere, known])
        .unwrap()
        .encode();
    let got = env.unwrap_data_key(&c, &w).await.unwrap();
    assert_eq!(got.expose_secret(), dek.expose_secret());
}

/// A clock that revokes a KEK on its first reading once armed: a revocation landing in
/// the middle of a call.
#[derive(Debug)]
struct RevokingClock {
    ring: SharedKeyRing,
    kek: KekRef,
    armed: AtomicBool,
}

impl Clock for RevokingClock {
    fn now(&self) -> u64 {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.ring
                .apply(|r| r.revoke(&self.kek, T0 + 5, "mid-call"))
                .unwrap();
        }
        T0 + 5
    }
}

/// Item 8: a break-glass read granted because the KEK is revoked is always recorded, even
/// when the revocation lands after the re-wrap began.
#[tokio::test]
async fn a_break_glass_read_is_recorded_where_it_is_granted() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::Aes256Kw;
    let ring = ring_with(&local, &[("docs", 1, alg)]).await;
    let clock = Arc::new(RevokingClock {
        ring: ring.clone(),
        kek: kref("docs", 1),
        armed: AtomicBool::new(false),
    });
    let sink = Arc::new(MemorySink::new());
    let env = Envelope::builder()
        .backend(local.clone())
        .key_ring(ring.clone())
        .clock(clock.clone())
        .audit(audit_into(sink.clone()))
        .build()
        .unwrap();
    let c = ctx("docs", "o", Classification::Confidential);
    let sealed = env.seal(&c, b"payload").await.unwrap();
    // A successor to migrate to (registered directly: v1 stays active until revoked).
    rotate_to_new(&local, &ring, alg, T0 + 1).await;
    clock.armed.store(true, Ordering::SeqCst);
    let got = env
        .danger_break_glass_rewrap(
            &c,
            kekring::envelope::BulkItemKind::Sealed,
            &sealed,
            "incident 7",
        )
        .await;
    let records = sink
        .records()
        .into_iter()
        .filter(|r| matches!(r.event, AuditEvent::BreakGlassRewrap { .. }))
        .count();
    assert_eq!(
        ring.read(|r| r.get(&kref("docs", 1)).unwrap().state),
        KekState::Revoked
    );
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(
        records, 1,
        "a read under a revoked KEK happened without its record"
    );
}

/// Item 10: a re-wrap the profile refuses makes no backend call (and so never holds the
/// plaintext DEK).
#[tokio::test]
async fn a_refused_rewrap_calls_no_backend() {
    let counting = Arc::new(common::Counting::new(Arc::new(LocalBackend::new())));
    let aes = WrapAlgorithm::Aes256Kw;
    let classical = WrapAlgorithm::P256EcdhEs;
    let ring = ring_with(&counting.inner, &[("docs", 1, aes)]).await;
    let env = env_on(counting.clone(), &ring);
    let c = ctx("docs", "o", Classification::Restricted);
    let dk = env.generate_data_key(&c).await.unwrap();
    // The scope rotates to a classical KEK, which the profile refuses for Restricted data.
    rotate_to_new(&counting.inner, &ring, classical, T0 + 1).await;
    counting.counts();
    let got = env.rewrap_dek(&c, &dk.wrapped).await;
    assert!(matches!(got, Err(Error::Policy(_))), "{got:?}");
    assert_eq!(
        counting.counts(),
        (0, 0, 0),
        "a refused re-wrap called the backend"
    );
}

/// Item 11: a transition applied through the shared ring of an audited envelope is
/// audited without the caller appending its events.
#[tokio::test]
async fn a_revocation_through_the_shared_ring_is_audited() {
    let local = Arc::new(LocalBackend::new());
    let ring = ring_with(&local, &[("docs", 1, WrapAlgorithm::Aes256Kw)]).await;
    let sink = Arc::new(MemorySink::new());
    let env = Envelope::builder()
        .backend(local)
        .key_ring(ring.clone())
        .audit(audit_into(sink.clone()))
        .build()
        .unwrap();
    let _ = env
        .key_ring()
        .apply(|r| r.revoke(&kref("docs", 1), T0 + 1, "incident"));
    let revoked = sink.records().into_iter().any(|r| {
        matches!(
            r.event,
            AuditEvent::Lifecycle {
                event: kekring::lifecycle::LifecycleEvent::Revoked { .. }
            }
        )
    });
    assert!(revoked, "the revocation left no audit record");
}

/// Item 12: repeated opens of blobs under a revoked KEK do not write one audit record
/// each, but the count of denials is kept.
#[tokio::test]
async fn repeated_denials_are_coalesced_not_hidden() {
    let local = Arc::new(LocalBackend::new());
    let ring = ring_with(&local, &[("docs", 1, WrapAlgorithm::Aes256Kw)]).await;
    let sink = Arc::new(MemorySink::new());
    let clock = Arc::new(ManualClock::new(T0 + 10));
    let env = Envelope::builder()
        .backend(local)
        .key_ring(ring.clone())
        .clock(clock.clone())
        .audit(audit_into(sink.clone()))
        .build()
        .unwrap();
    let c = ctx("docs", "o", Classification::Confidential);
    let sealed = env.seal(&c, b"x").await.unwrap();
    ring.apply(|r| r.revoke(&kref("docs", 1), T0 + 11, "incident"))
        .unwrap();
    let before = sink.records().len();
    for _ in 0..500 {
        assert!(matches!(
            env.open(&c, &sealed).await,
            Err(Error::KeyState(_))
        ));
    }
    let denial_records = sink.records().len() - before;
    assert!(
        denial_records <= 2,
        "{denial_records} audit records for 500 denials of one KEK"
    );
    // Not hidden: the counts are written when flushed, or with the next denial after the
    // interval, and add up to every denial.
    clock.advance(61);
    assert!(env.open(&c, &sealed).await.is_err());
    env.flush_audit().unwrap();
    let counted: u64 = sink
        .records()
        .iter()
        .map(|r| match &r.event {
            AuditEvent::UnwrapDenied { count, state, .. } => {
                assert_eq!(state, "revoked");
                *count
            }
            _ => 0,
        })
        .sum();
    assert_eq!(counted, 501);
    assert!(sink.records().len() - before <= 3);
}

/// Item 4: the RustCrypto provider has no user-space generator (its fork check could
/// replay outputs); asking for one is refused rather than silently served.
#[test]
fn rust_crypto_offers_no_user_space_generator() {
    let got = Envelope::builder()
        .random_source(kekring::RandomSource::UserSpace)
        .build();
    assert!(
        matches!(
            got,
            Err(Error::Config(
                kekring::ConfigError::RandomSourceUnavailable { .. }
            ))
        ),
        "{got:?}"
    );
}

/// Item 7: the local backend no longer offers AES-256-GCM with random 96-bit nonces
/// under the KEK itself (2^32 wraps per KEK at most).
#[test]
fn local_aes_gcm_with_random_nonces_is_not_offered() {
    let local = LocalBackend::new();
    assert!(!local.info().offers(WrapAlgorithm::Aes256Gcm));
    assert!(
        local
            .generate_aes256("k", WrapAlgorithm::Aes256Gcm)
            .is_err()
    );
}

/// Item 7: its replacement seals every wrap under a key derived from a fresh 256-bit salt,
/// and the salt is authenticated (a changed salt derives another key).
#[tokio::test]
async fn local_aes_gcm_derives_a_fresh_key_per_wrap() {
    let local = LocalBackend::new();
    let alg = WrapAlgorithm::Aes256GcmDerived;
    let loc = local.generate_aes256("k", alg).unwrap();
    let c = ctx("docs", "o", Classification::Restricted);
    let dek = kekring::DataKey::from_array([7; 32]);
    let a = local
        .wrap(WrapRequest::new(&loc, alg, &dek, c.binding()))
        .await
        .unwrap();
    let b = local
        .wrap(WrapRequest::new(&loc, alg, &dek, c.binding()))
        .await
        .unwrap();
    assert_eq!(a.params.len(), 32);
    assert_ne!(a.params, b.params, "two wraps drew the same salt");
    assert_ne!(a.wrapped, b.wrapped);
    let mut salt = a.params.clone();
    salt[31] ^= 1;
    let got = local
        .unwrap(UnwrapRequest::new(
            &loc,
            alg,
            &salt,
            &a.wrapped,
            c.binding(),
        ))
        .await;
    assert!(matches!(got, Err(BackendError::Rejected)), "{got:?}");
    let ok = local
        .unwrap(UnwrapRequest::new(
            &loc,
            alg,
            &a.params,
            &a.wrapped,
            c.binding(),
        ))
        .await
        .unwrap();
    assert_eq!(ok.dek.expose_secret(), dek.expose_secret());
}

/// Item 12: the master secret file is read with a bound.
#[cfg(feature = "keystore")]
#[test]
fn an_oversized_master_secret_file_is_refused() {
    use kekring::keystore::{KeyStoreError, MAX_SECRET_LEN, MasterSecret};
    let p = std::env::temp_dir().join(format!("kekring-big-secret-{}", std::process::id()));
    let read = |len: usize| {
        std::fs::write(&p, vec![b'a'; len]).unwrap();
        MasterSecret::from_file(&p)
    };
    let at_bound = read(MAX_SECRET_LEN);
    let over = read(MAX_SECRET_LEN + 1);
    let huge = read(1 << 20);
    std::fs::remove_file(&p).unwrap();
    assert!(at_bound.is_ok(), "{at_bound:?}");
    for got in [over, huge] {
        assert!(
            matches!(
                got,
                Err(KeyStoreError::Malformed(
                    kekring::format::FormatError::LengthOutOfRange { .. }
                ))
            ),
            "an oversized master secret file was not refused for its length: {got:?}"
        );
    }
}

/// The retirement procedure: the envelope checks every stored object opens without the
/// KEK, then retires it. (Before the fix, the README's procedure scanned headers and
/// called `KeyRing::retire`, which this test showed retiring v1.)
async fn retire_procedure(
    env: &Envelope,
    kek: &KekRef,
    items: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let items = items.iter().map(|(id, b)| {
        kekring::envelope::BulkItem::new(
            id.clone(),
            ctx("docs", id, Classification::Internal),
            kekring::envelope::BulkItemKind::Sealed,
            b.clone(),
        )
    });
    env.retire_kek(kek, items, kekring::envelope::RetireOptions::new())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Item 9: copies of v1 relabelled as v2 must not let v1 be retired (and its material
/// destroyed) while the objects cannot be opened without it.
#[tokio::test]
async fn retirement_verifies_objects_open_without_the_retired_kek() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::Aes256Kw;
    let ring = ring_with(&local, &[("docs", 1, alg)]).await;
    let clock = Arc::new(ManualClock::new(T0 + 1));
    let env = Envelope::builder()
        .backend(local.clone())
        .key_ring(ring.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let c = ctx("docs", "o", Classification::Internal);
    let sealed = env.seal(&c, b"payload").await.unwrap();
    rotate_to_new(&local, &ring, alg, T0 + 2).await;
    // Relabel the v1 copy as v2: the header now claims the current KEK.
    let (h, n) = kekring::format::SealedHeader::decode_prefix(&sealed).unwrap();
    let v2 = relabelled(&h.wrapped_dek().entries()[0], kref("docs", 2));
    let w = WrappedDek::new(Classification::Internal, vec![v2]).unwrap();
    let mut bytes = h.with_wrapped_dek(w).encode();
    bytes.extend_from_slice(&sealed[n..]);
    // Bulk re-wrap believes it is current...
    let (_, outcome) = env.rewrap_sealed(&c, &bytes).await.unwrap();
    assert_eq!(outcome, kekring::envelope::RewrapOutcome::AlreadyCurrent);
    // ...but the retirement procedure must not.
    let after_window = T0 + 31 * 86_400;
    clock.set(after_window);
    let items = vec![("o".to_owned(), bytes)];
    let got = retire_procedure(&env, &kref("docs", 1), &items).await;
    assert!(
        got.is_err(),
        "v1 was retired while an object still needs it"
    );
    assert_eq!(
        ring.read(|r| r.get(&kref("docs", 1)).unwrap().state),
        KekState::Deprecated
    );
    // A sample finds it too, and once the object really is under v2 the check is clear.
    let check = env
        .check_retirement(
            &kref("docs", 1),
            items.iter().map(|(id, b)| {
                kekring::envelope::BulkItem::new(
                    id.clone(),
                    c.clone(),
                    kekring::envelope::BulkItemKind::Sealed,
                    b.clone(),
                )
            }),
            kekring::envelope::RetireOptions::new().sample(1),
        )
        .await
        .unwrap();
    assert_eq!((check.outstanding, check.unreadable.len()), (0, 1));
    clock.set(T0 + 3);
    let (fixed, _) = env.rewrap_sealed(&c, &sealed).await.unwrap();
    clock.set(after_window);
    let items = vec![("o".to_owned(), fixed)];
    retire_procedure(&env, &kref("docs", 1), &items)
        .await
        .unwrap();
    assert_eq!(
        ring.read(|r| r.get(&kref("docs", 1)).unwrap().state),
        KekState::Retired
    );
}

/// Records what a ring's transitions say.
#[derive(Debug, Default)]
struct Recorded(std::sync::Mutex<Vec<kekring::lifecycle::LifecycleEvent>>);

impl kekring::lifecycle::TransitionRecorder for Recorded {
    fn record(
        &self,
        events: &[kekring::lifecycle::LifecycleEvent],
    ) -> Result<(), kekring::audit::AuditError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

/// Item 11: a revocation that reaches an instance by compare-and-swap (computed by
/// another instance) is recorded here too, as a state change, before it is installed;
/// a recorder may read the ring while it records.
#[test]
fn a_revocation_installed_by_compare_and_swap_is_recorded() {
    let shared = SharedKeyRing::new(KeyRing::new());
    shared
        .apply(|r| {
            r.register(
                NewKek::new(
                    kref("docs", 1),
                    BackendId::Local,
                    "k",
                    WrapAlgorithm::Aes256Kw,
                )
                .key_id(KeyIdentity::new("k")),
                T0,
            )
        })
        .unwrap();
    let rec = Arc::new(Recorded::default());
    assert!(shared.set_recorder(rec.clone()));
    let expected = shared.read(KeyRing::generation);
    let (revoked, _) = shared
        .snapshot()
        .revoke(&kref("docs", 1), T0 + 1, "elsewhere")
        .unwrap();
    shared.compare_and_swap(expected, revoked).unwrap();
    let events = rec.0.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(
            e,
            kekring::lifecycle::LifecycleEvent::StateChanged { to, .. } if to == "revoked"
        )),
        "{events:?}"
    );
    // A retired KEK may still be revoked (its material leaked after retirement).
    let other = SharedKeyRing::new(KeyRing::new());
    let new = |v: u32| {
        NewKek::new(
            kref("other", v),
            BackendId::Local,
            format!("o{v}"),
            WrapAlgorithm::Aes256Kw,
        )
        .key_id(KeyIdentity::new(format!("o{v}")))
    };
    other.apply(|r| r.register(new(1), T0)).unwrap();
    other.apply(|r| r.rotate(new(2), T0)).unwrap();
    let later = T0 + 40 * 86_400;
    other
        .apply(|r| r.retire(&kref("other", 1), later, 0, false))
        .unwrap();
    other
        .apply(|r| r.revoke(&kref("other", 1), later + 1, "leaked"))
        .unwrap();
    assert_eq!(
        other.read(|r| r.get(&kref("other", 1)).unwrap().state),
        KekState::Revoked
    );
}

/// A sink that fails once told to.
#[derive(Debug, Default)]
struct FailingSink(AtomicBool);

impl AuditSink for FailingSink {
    fn write(&self, _: &kekring::audit::AuditRecord) -> Result<(), kekring::audit::AuditError> {
        if self.0.load(Ordering::SeqCst) {
            Err(std::io::Error::other("disk full").into())
        } else {
            Ok(())
        }
    }
}

/// A transition its audit log cannot record does not happen, and the envelope reports
/// an audit failure (not misuse).
#[tokio::test]
async fn a_transition_that_cannot_be_recorded_does_not_happen() {
    let local = Arc::new(LocalBackend::new());
    let ring = ring_with(&local, &[("docs", 1, WrapAlgorithm::Aes256Kw)]).await;
    let sink = Arc::new(FailingSink::default());
    let env = Envelope::builder()
        .backend(local)
        .key_ring(ring.clone())
        .audit(audit_into(sink.clone()))
        .build()
        .unwrap();
    sink.0.store(true, Ordering::SeqCst);
    let got = ring.apply(|r| r.revoke(&kref("docs", 1), T0 + 1, "incident"));
    assert!(
        matches!(got, Err(kekring::lifecycle::LifecycleError::NotRecorded(_))),
        "{got:?}"
    );
    assert_eq!(
        ring.read(|r| r.get(&kref("docs", 1)).unwrap().state),
        KekState::Active
    );
    let rotated = env
        .rotate_kek(
            &kekring::Name::new("tenant", "acme").unwrap(),
            &kekring::Name::new("purpose", "docs").unwrap(),
        )
        .await;
    assert!(matches!(rotated, Err(Error::Audit(_))), "{rotated:?}");
    assert!(ring.read(|r| r.get(&kref("docs", 2)).is_none()));
}

/// Keeps records in memory, and fails while told to.
#[derive(Debug, Default)]
struct FlakySink {
    failing: AtomicBool,
    kept: MemorySink,
}

impl AuditSink for FlakySink {
    fn write(
        &self,
        record: &kekring::audit::AuditRecord,
    ) -> Result<(), kekring::audit::AuditError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("disk full").into());
        }
        self.kept.write(record)
    }
}

fn denied_count(sink: &MemorySink) -> u64 {
    sink.records()
        .iter()
        .map(|r| match &r.event {
            AuditEvent::UnwrapDenied { count, .. } => *count,
            _ => 0,
        })
        .sum()
}

/// Denial counts a failing sink could not take stay pending for the next flush, and
/// those still pending when the last envelope handle drops are written then.
#[tokio::test]
async fn pending_denials_survive_a_failing_flush_and_are_written_on_drop() {
    let local = Arc::new(LocalBackend::new());
    let ring = ring_with(&local, &[("docs", 1, WrapAlgorithm::Aes256Kw)]).await;
    let sink = Arc::new(FlakySink::default());
    let env = Envelope::builder()
        .backend(local)
        .key_ring(ring.clone())
        .clock(Arc::new(ManualClock::new(T0 + 10)))
        .audit(audit_into(sink.clone()))
        .build()
        .unwrap();
    let c = ctx("docs", "o", Classification::Confidential);
    let sealed = env.seal(&c, b"x").await.unwrap();
    ring.apply(|r| r.revoke(&kref("docs", 1), T0 + 11, "incident"))
        .unwrap();
    for _ in 0..5 {
        assert!(env.open(&c, &sealed).await.is_err());
    }
    assert_eq!(
        denied_count(&sink.kept),
        1,
        "only the first denial is written at once"
    );
    sink.failing.store(true, Ordering::SeqCst);
    let flushed = env.flush_audit();
    assert!(matches!(flushed, Err(Error::Audit(_))), "{flushed:?}");
    sink.failing.store(false, Ordering::SeqCst);
    env.flush_audit().unwrap();
    assert_eq!(denied_count(&sink.kept), 5);
    for _ in 0..3 {
        assert!(env.open(&c, &sealed).await.is_err());
    }
    assert_eq!(denied_count(&sink.kept), 5);
    drop(env);
    assert_eq!(
        denied_count(&sink.kept),
        8,
        "the drop wrote the pending count"
    );
}

// The backend contract review (the chassis issue): one key has one identity, whatever
// its spelling. Each test failed before keys were compared by identity (the ring
// compared locator strings).

/// One AES key imported under two locators: two spellings of one key.
fn one_key_twice(local: &LocalBackend) -> (KekLocator, KekLocator) {
    let alg = WrapAlgorithm::Aes256Kw;
    let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let material = || kekring::secret::Aes256KeyMaterial::from_slice(&bytes).unwrap();
    let a = local.import_aes256("acme-docs-a", alg, material()).unwrap();
    let b = local.import_aes256("acme-docs-b", alg, material()).unwrap();
    assert_eq!(
        local.key_identity(&a).unwrap(),
        local.key_identity(&b).unwrap()
    );
    (a, b)
}

#[tokio::test]
async fn a_rotation_to_another_spelling_of_the_current_key_is_refused() {
    let local = Arc::new(LocalBackend::new());
    let (a, b) = one_key_twice(&local);
    let alg = WrapAlgorithm::Aes256Kw;
    let env = Envelope::builder()
        .backend(local.clone())
        .kek(NewKek::new(kref("docs", 1), BackendId::Local, a, alg))
        .build()
        .unwrap();
    let (tenant, purpose) = (
        kref("docs", 1).tenant().clone(),
        kref("docs", 1).purpose().clone(),
    );
    let got = env
        .rotate_kek_to(&tenant, &purpose, BackendId::Local, b, alg)
        .await;
    assert!(
        matches!(
            got,
            Err(Error::Misuse(kekring::MisuseError::Lifecycle(
                kekring::lifecycle::LifecycleError::KeyReused { .. }
            )))
        ),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_second_spelling_of_a_revoked_key_is_refused_at_register() {
    let local = Arc::new(LocalBackend::new());
    let (a, b) = one_key_twice(&local);
    let alg = WrapAlgorithm::Aes256Kw;
    let env = Envelope::builder()
        .backend(local.clone())
        .kek(NewKek::new(kref("docs", 1), BackendId::Local, a, alg))
        .build()
        .unwrap();
    env.key_ring()
        .apply(|r| r.revoke(&kref("docs", 1), T0, "leaked"))
        .unwrap();
    // Registered again under its other name, for this scope or any other.
    for (purpose, v) in [("docs", 2), ("other", 1)] {
        let got = env
            .register_kek(NewKek::new(
                kref(purpose, v),
                BackendId::Local,
                b.clone(),
                alg,
            ))
            .await;
        assert!(
            matches!(
                got,
                Err(Error::Misuse(kekring::MisuseError::Lifecycle(
                    kekring::lifecycle::LifecycleError::KeyReused { .. }
                )))
            ),
            "{purpose}: {got:?}"
        );
    }
    // Nor through the ring itself, with the identity its backend gives the locator.
    let got = env.key_ring().apply(|r| {
        r.register(
            NewKek::new(kref("docs", 2), BackendId::Local, b.clone(), alg)
                .key_id(local.key_identity(&b).unwrap()),
            T0,
        )
    });
    assert!(
        matches!(
            got,
            Err(kekring::lifecycle::LifecycleError::KeyReused { .. })
        ),
        "{got:?}"
    );
}

/// Whoever can edit stored blobs relabels a v1 copy as v2: once v1 is revoked, it must
/// not open through v2. With v2 another spelling of v1's key it did; now v2 has to be
/// another key, under which the relabelled copy does not unwrap.
#[tokio::test]
async fn a_v1_copy_relabelled_as_v2_does_not_open_after_v1_is_revoked() {
    let local = Arc::new(LocalBackend::new());
    let (a, b) = one_key_twice(&local);
    let alg = WrapAlgorithm::Aes256Kw;
    let env = Envelope::builder()
        .backend(local.clone())
        .kek(NewKek::new(kref("docs", 1), BackendId::Local, a, alg))
        .build()
        .unwrap();
    let c = ctx("docs", "o", Classification::Internal);
    let sealed_v1 = env.seal(&c, b"under v1").await.unwrap();
    let scope = kref("docs", 1);
    let (tenant, purpose) = (scope.tenant().clone(), scope.purpose().clone());
    assert!(
        env.rotate_kek_to(&tenant, &purpose, BackendId::Local, b, alg)
            .await
            .is_err(),
        "v2 may not be v1's key under another name"
    );
    let fresh = local.generate_aes256("acme-docs-c", alg).unwrap();
    env.rotate_kek_to(&tenant, &purpose, BackendId::Local, fresh, alg)
        .await
        .unwrap();
    env.key_ring()
        .apply(|r| r.revoke(&kref("docs", 1), T0, "leaked"))
        .unwrap();
    let (header, len) = kekring::format::SealedHeader::decode_prefix(&sealed_v1).unwrap();
    let v1 = &header.wrapped_dek().entries()[0];
    let forged = WrappedDek::new(
        header.wrapped_dek().classification().clone(),
        vec![relabelled(v1, kref("docs", 2))],
    )
    .unwrap();
    let mut relabelled_object = header.with_wrapped_dek(forged).encode();
    relabelled_object.extend_from_slice(&sealed_v1[len..]);
    let got = env.open(&c, &relabelled_object).await;
    assert!(matches!(got, Err(Error::Crypto)), "{got:?}");
    assert!(matches!(
        env.open(&c, &sealed_v1).await,
        Err(Error::KeyState(_))
    ));
}

/// A ring edited so that a record's identity no longer matches what its locator names
/// is not used: the record is refused before any wrap.
#[tokio::test]
async fn a_record_whose_identity_does_not_match_its_locator_is_not_used() {
    let local = Arc::new(LocalBackend::new());
    let alg = WrapAlgorithm::Aes256Kw;
    let loc = local.generate_aes256("acme-docs-1", alg).unwrap();
    let ring = SharedKeyRing::new(KeyRing::new());
    ring.apply(|r| {
        r.register(
            NewKek::new(kref("docs", 1), BackendId::Local, loc.clone(), alg)
                .key_id(KeyIdentity::new("local:00000000000000000000000000000000")),
            T0,
        )
    })
    .unwrap();
    let got = Envelope::builder()
        .backend(local.clone())
        .key_ring(ring)
        .build();
    assert!(
        matches!(
            got,
            Err(Error::Config(kekring::ConfigError::KeyIdentity { .. }))
        ),
        "{got:?}"
    );
}

/// A ring installed by compare-and-swap passes what a ring read from JSON passes: two
/// active KEKs for one scope are refused (before, only the schema was checked).
#[test]
fn compare_and_swap_validates_like_from_json() {
    let new = |v: u32| {
        NewKek::new(
            kref("docs", v),
            BackendId::Local,
            format!("k{v}"),
            WrapAlgorithm::Aes256Kw,
        )
        .key_id(KeyIdentity::new(format!("k{v}")))
    };
    let shared = SharedKeyRing::new(KeyRing::new());
    shared.apply(|r| r.register(new(1), T0)).unwrap();
    let (rotated, _) = shared.read(|r| r.rotate(new(2), T0)).unwrap();
    // The rotated ring, edited so that v1 is active beside v2.
    let json = rotated
        .to_json()
        .replacen("\"state\": \"deprecated\"", "\"state\": \"active\"", 1);
    assert!(KeyRing::from_json(&json).is_err());
    let edited: KeyRing = serde_json::from_str(&json).unwrap();
    let expected = shared.read(KeyRing::generation);
    let got = shared.compare_and_swap(expected, edited);
    assert!(
        matches!(got, Err(kekring::lifecycle::LifecycleError::Malformed(_))),
        "{got:?}"
    );
}
