//! The key ring's state machine, with a fake clock: property tests over random
//! operation sequences (nothing leaves Revoked but Destroyed; nothing but Active wraps;
//! Deprecated unwraps only inside its window; one active KEK per scope; generations only
//! grow), and the concrete rules (rotation, windows, retirement, schema, CAS).
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use kekring::lifecycle::{Cadence, KekState, KeyRing, LifecycleError, NewKek, SharedKeyRing};
use kekring::{BackendId, KekRef, WrapAlgorithm};
use proptest::prelude::*;

const DAY: u64 = 86_400;

fn new(v: u32) -> NewKek {
    NewKek::new(
        KekRef::new("acme", "docs", v).unwrap(),
        BackendId::Local,
        format!("local-key-{v}"),
        WrapAlgorithm::Aes256Kw,
    )
    .key_id(kekring::backend::KeyIdentity::new(format!("local-key-{v}")))
    .cadence(Cadence::DAYS_90)
    .overlap_seconds(30 * DAY)
}

fn r(v: u32) -> KekRef {
    KekRef::new("acme", "docs", v).unwrap()
}

#[test]
fn rotation_windows_and_retirement() {
    let t0 = 1_800_000_000;
    let (ring, ev) = KeyRing::new().register(new(1), t0).unwrap();
    assert_eq!(ev.len(), 1);
    assert!(ring.due(t0 + 89 * DAY).is_empty());
    assert_eq!(ring.due(t0 + 90 * DAY).len(), 1);

    let t1 = t0 + 90 * DAY;
    // Successor must be the next version.
    assert!(matches!(
        ring.rotate(new(3), t1),
        Err(LifecycleError::BadSuccessor { .. })
    ));
    let (ring, ev) = ring.rotate(new(2), t1).unwrap();
    assert_eq!(ev.len(), 3);
    assert_eq!(
        ring.active(r(1).tenant(), r(1).purpose())
            .unwrap()
            .reference,
        r(2)
    );
    let v1 = ring.get(&r(1)).unwrap();
    assert_eq!(v1.state, KekState::Deprecated);
    assert!(!v1.can_wrap());
    assert!(v1.can_unwrap(t1 + 30 * DAY - 1));
    assert!(!v1.can_unwrap(t1 + 30 * DAY));
    // The successor inherits the cadence.
    assert_eq!(
        ring.get(&r(2)).unwrap().next_rotation_at,
        Some(t1 + 90 * DAY)
    );

    // Retirement: refused inside the window, refused with objects left, allowed after.
    assert!(matches!(
        ring.retire(&r(1), t1 + DAY, 0, false),
        Err(LifecycleError::WindowOpen { .. })
    ));
    let after = t1 + 31 * DAY;
    assert!(matches!(
        ring.retire(&r(1), after, 5, false),
        Err(LifecycleError::StillInUse { outstanding: 5, .. })
    ));
    let (forced, ev) = ring.retire(&r(1), after, 5, true).unwrap();
    assert!(matches!(
        &ev[0],
        kekring::lifecycle::LifecycleEvent::Retired {
            forced: true,
            outstanding: 5,
            ..
        }
    ));
    assert_eq!(forced.get(&r(1)).unwrap().state, KekState::Retired);
    let (ring, _) = ring.retire(&r(1), after, 0, false).unwrap();
    assert!(!ring.get(&r(1)).unwrap().can_unwrap(after));
    // Registering a second active KEK is refused: rotate instead.
    assert!(matches!(
        ring.register(new(3), after),
        Err(LifecycleError::AlreadyActive { .. })
    ));
}

#[test]
fn disable_enable_revoke_destroy() {
    let (ring, _) = KeyRing::new().register(new(1), 0).unwrap();
    let epoch = ring.revocation_epoch();
    let (d, _) = ring.disable(&r(1), 1).unwrap();
    assert!(d.revocation_epoch() > epoch);
    let rec = d.get(&r(1)).unwrap();
    assert!(!rec.can_wrap() && !rec.can_unwrap(1));
    let (e, _) = d.enable(&r(1), 2).unwrap();
    assert_eq!(e.get(&r(1)).unwrap().state, KekState::Active);
    let (rv, _) = e.revoke(&r(1), 3, "key material leaked").unwrap();
    assert!(matches!(
        rv.enable(&r(1), 4),
        Err(LifecycleError::IllegalTransition { .. })
    ));
    assert!(matches!(
        rv.disable(&r(1), 4),
        Err(LifecycleError::IllegalTransition { .. })
    ));
    assert!(matches!(
        rv.revoke(&r(1), 4, "again"),
        Err(LifecycleError::IllegalTransition { .. })
    ));
    let (gone, _) = rv.destroy(&r(1), 5).unwrap();
    assert_eq!(gone.get(&r(1)).unwrap().state, KekState::Destroyed);
    assert!(matches!(
        e.destroy(&r(1), 5),
        Err(LifecycleError::IllegalTransition { .. })
    ));
    // A new KEK can be registered for the scope once the revoked one is gone from use.
    assert!(rv.register(new(2), 6).is_ok());
}

#[test]
fn serde_schema_and_compare_and_swap() {
    let (ring, _) = KeyRing::new().register(new(1), 10).unwrap();
    let json = ring.to_json();
    assert!(!json.contains("key material"));
    assert_eq!(KeyRing::from_json(&json).unwrap(), ring);
    let bumped = json.replace("\"schema\": 1", "\"schema\": 2");
    assert_eq!(
        KeyRing::from_json(&bumped),
        Err(LifecycleError::UnknownSchema(2))
    );
    assert!(matches!(
        KeyRing::from_json("{}"),
        Err(LifecycleError::Malformed(_))
    ));

    let shared = SharedKeyRing::new(ring.clone());
    let (next, _) = ring.rotate(new(2), 20).unwrap();
    assert!(matches!(
        shared.compare_and_swap(ring.generation() + 5, next.clone()),
        Err(LifecycleError::GenerationMismatch { .. })
    ));
    shared
        .compare_and_swap(ring.generation(), next.clone())
        .unwrap();
    assert_eq!(shared.snapshot(), next);
    // A failed transition leaves the shared ring unchanged.
    let before = shared.snapshot();
    assert!(shared.apply(|r| r.rotate(new(9), 30)).is_err());
    assert_eq!(shared.snapshot(), before);
}

#[derive(Clone, Debug)]
enum Op {
    Rotate,
    Disable(u32),
    Enable(u32),
    Retire(u32, bool),
    Revoke(u32),
    Destroy(u32),
    Register,
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Rotate),
        1 => (1u32..6).prop_map(Op::Disable),
        1 => (1u32..6).prop_map(Op::Enable),
        1 => ((1u32..6), any::<bool>()).prop_map(|(v, f)| Op::Retire(v, f)),
        1 => (1u32..6).prop_map(Op::Revoke),
        1 => (1u32..6).prop_map(Op::Destroy),
        1 => Just(Op::Register),
        2 => (0u64..60 * DAY).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn state_machine_invariants(ops in proptest::collection::vec(op(), 1..40)) {
        let mut now = 1_000_000u64;
        let (mut ring, _) = KeyRing::new().register(new(1), now).unwrap();
        let mut max_version = 1;
        for op in ops {
            let before = ring.clone();
            let result = match op {
                Op::Rotate => ring.rotate(new(max_version + 1), now),
                Op::Disable(v) => ring.disable(&r(v), now),
                Op::Enable(v) => ring.enable(&r(v), now),
                Op::Retire(v, f) => ring.retire(&r(v), now, 0, f),
                Op::Revoke(v) => ring.revoke(&r(v), now, "test"),
                Op::Destroy(v) => ring.destroy(&r(v), now),
                Op::Register => ring.register(new(max_version + 1), now),
                Op::Wait(s) => { now += s; continue; }
            };
            if let Ok((next, events)) = result {
                prop_assert!(!events.is_empty());
                prop_assert_eq!(next.generation(), before.generation() + 1);
                ring = next;
                max_version = ring.records().map(|r| r.reference.version()).max().unwrap();
            } else {
                prop_assert_eq!(&ring, &before);
            }
            // Invariants after every step.
            let active = ring.records().filter(|r| r.state == KekState::Active).count();
            prop_assert!(active <= 1, "two active KEKs in one scope");
            for rec in ring.records() {
                let old = before.get(&rec.reference);
                if let Some(old) = old {
                    // Nothing leaves Revoked except to Destroyed; nothing leaves Destroyed.
                    if old.state == KekState::Revoked {
                        prop_assert!(matches!(rec.state, KekState::Revoked | KekState::Destroyed));
                    }
                    if old.state == KekState::Destroyed {
                        prop_assert_eq!(rec.state, KekState::Destroyed);
                    }
                    if old.state == KekState::Retired {
                        prop_assert!(matches!(rec.state, KekState::Retired | KekState::Destroyed | KekState::Revoked));
                    }
                }
                // Nothing but Active wraps.
                prop_assert_eq!(rec.can_wrap(), rec.state == KekState::Active);
                // Deprecated unwraps only inside its window; other non-active never.
                match rec.state {
                    KekState::Active => prop_assert!(rec.can_unwrap(now)),
                    KekState::Deprecated => {
                        let t = rec.retire_at.unwrap();
                        prop_assert_eq!(rec.can_unwrap(now), now < t);
                    }
                    _ => prop_assert!(!rec.can_unwrap(now)),
                }
            }
        }
    }
}
