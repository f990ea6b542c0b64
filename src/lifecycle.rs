//! The key ring the caller persists: every KEK per tenant and purpose, its state,
//! timestamps, rotation cadence and overlap window. No key material is ever in it.
//!
//! Transitions are pure: each takes the ring and `now` (seconds since the Unix epoch, so
//! tests use a fake clock) and returns a new ring plus the [`LifecycleEvent`]s to audit,
//! or a typed [`LifecycleError`]. Lifecycle code does no I/O.
//!
//! ```text
//!            rotate / deprecate             window ends, no objects left
//!   Active ─────────────────────▶ Deprecated ─────────────────────────▶ Retired ──▶ Destroyed
//!     │  ▲                          │  ▲                                              ▲
//!     │  └── enable ── Disabled ◀───┘  │   (Disabled remembers which state it left)   │
//!     └── disable ─────┘    └─ enable ─┘                                              │
//!   any state but Destroyed ── revoke ──▶ Revoked (irreversible) ── destroy ──────────┘
//! ```
//!
//! Only `Active` wraps. `Active` unwraps; `Deprecated` unwraps until its `retire_at`;
//! nothing else unwraps (a revoked KEK only through the audited break-glass re-wrap).
//!
//! The ring has a schema version (unknown ones are refused when read) and a generation
//! counter bumped by every transition, so several service instances can share it through
//! their own database with compare-and-swap ([`SharedKeyRing::compare_and_swap`]).

mod record;
mod ring;
mod scan;
mod shared;

pub use crate::error::LifecycleError;
pub use record::{
    Cadence, InventoryScope, KekRecord, KekState, NewKek, ResumeState, SCHEMA_VERSION, UnixTime,
};
pub use ring::{Inventory, InventoryLine, KeyRing, LifecycleEvent};
pub use scan::{ObjectScan, scan_objects};
pub use shared::{SharedKeyRing, TransitionRecorder};

#[cfg(test)]
mod shared_tests {
    use super::*;
    use crate::format::{BackendId, KekRef, WrapAlgorithm};

    fn new(v: u32) -> NewKek {
        NewKek::new(
            KekRef::new("acme", "docs", v).unwrap(),
            BackendId::Local,
            format!("k{v}"),
            WrapAlgorithm::Aes256Kw,
        )
        .key_id(crate::locator::KeyIdentity::new(format!("k{v}")))
    }

    #[test]
    fn every_install_moves_the_version_and_failures_do_not() {
        let shared = SharedKeyRing::default();
        let v0 = shared.version();
        shared.apply(|r| r.register(new(1), 10)).unwrap();
        let v1 = shared.version();
        assert!(v1 > v0);
        // A refused transition installs nothing.
        assert!(shared.apply(|r| r.register(new(1), 11)).is_err());
        assert_eq!(shared.version(), v1);
        // An install whose ring keeps its generation still moves the version (caches
        // must not trust the ring's own counter for that).
        shared.apply(|r| Ok((r.clone(), Vec::new()))).unwrap();
        assert!(shared.version() > v1);
        let v2 = shared.version();
        let (rotated, _) = shared.read(|r| r.rotate(new(2), 12)).unwrap();
        let expected = shared.read(KeyRing::generation);
        shared.compare_and_swap(expected, rotated).unwrap();
        assert!(shared.version() > v2);
        // A refused swap (stale expectation) installs nothing.
        let v3 = shared.version();
        assert!(
            shared
                .compare_and_swap(expected, shared.snapshot())
                .is_err()
        );
        assert_eq!(shared.version(), v3);
    }
}
