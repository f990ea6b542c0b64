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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

pub use crate::error::LifecycleError;
use crate::format::{BackendId, Family, KekRef, Name, WrapAlgorithm};
use crate::locator::KekLocator;

/// Seconds since the Unix epoch.
pub type UnixTime = u64;

/// The only key-ring schema this version reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

const DAY: u64 = 86_400;

/// How often a KEK is rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cadence {
    /// The period in days.
    pub days: u32,
}

impl Cadence {
    /// Every 90 days.
    pub const DAYS_90: Cadence = Cadence { days: 90 };
    /// Quarterly (every 91 days).
    pub const QUARTERLY: Cadence = Cadence { days: 91 };
    /// Annually (every 365 days).
    pub const ANNUALLY: Cadence = Cadence { days: 365 };

    /// The period in seconds.
    pub fn seconds(self) -> u64 {
        u64::from(self.days).saturating_mul(DAY)
    }
}

/// At which level a KEK is scoped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Scope {
    /// One KEK per tenant (and purpose).
    Tenant,
    /// A KEK shared by every tenant under one policy.
    Policy,
    /// A KEK per time epoch (for example per month).
    Epoch,
}

/// A KEK's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KekState {
    /// Wraps and unwraps.
    Active,
    /// Unwraps only, until the record's `retire_at`.
    Deprecated,
    /// Nothing. Final unless destroyed.
    Retired,
    /// Temporarily nothing; `enable` returns to the state it left.
    Disabled {
        /// The state it was disabled from (`Active` or `Deprecated`).
        from: ResumeState,
    },
    /// Emergency stop: nothing, for ever (only the audited break-glass re-wrap reads).
    Revoked,
    /// The key material was destroyed (crypto-shredded).
    Destroyed,
}

/// The states a disabled KEK can return to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResumeState {
    /// Back to `Active`.
    Active,
    /// Back to `Deprecated`.
    Deprecated,
}

impl KekState {
    /// A short name (`active`, `deprecated`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            KekState::Active => "active",
            KekState::Deprecated => "deprecated",
            KekState::Retired => "retired",
            KekState::Disabled { .. } => "disabled",
            KekState::Revoked => "revoked",
            KekState::Destroyed => "destroyed",
        }
    }
}

/// One KEK in the ring: where it lives, what it is, and where it is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KekRecord {
    /// Tenant, purpose and version.
    pub reference: KekRef,
    /// The backend kind.
    pub backend: BackendId,
    /// The backend instance name, when several of one kind are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The backend's key identifier (ARN, key URL, local name). Not secret.
    pub locator: String,
    /// The wrap algorithm.
    pub algorithm: WrapAlgorithm,
    /// The scope level.
    pub scope: Scope,
    /// The state.
    pub state: KekState,
    /// When the KEK was registered.
    pub created_at: UnixTime,
    /// When it stopped wrapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_at: Option<UnixTime>,
    /// When its overlap window ends (deprecated KEKs unwrap until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<UnixTime>,
    /// When it is due for rotation (active KEKs with a cadence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<UnixTime>,
    /// Its rotation cadence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence: Option<Cadence>,
    /// The overlap window after rotation, in seconds.
    pub overlap_seconds: u64,
    /// When it was retired, revoked or destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<UnixTime>,
}

impl KekRecord {
    /// The family of its algorithm.
    pub fn family(&self) -> Family {
        self.algorithm.family()
    }

    /// Whether it may wrap new DEKs.
    pub fn can_wrap(&self) -> bool {
        self.state == KekState::Active
    }

    /// Whether it may unwrap at `now` (normal path, not break-glass).
    pub fn can_unwrap(&self, now: UnixTime) -> bool {
        match self.state {
            KekState::Active => true,
            // Fail closed: a deprecated KEK without a window end never unwraps.
            KekState::Deprecated => self.retire_at.is_some_and(|t| now < t),
            _ => false,
        }
    }
}

/// What to register: a KEK the backend already holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewKek {
    /// Tenant, purpose and version.
    pub reference: KekRef,
    /// The backend kind.
    pub backend: BackendId,
    /// The backend instance name.
    pub instance: Option<String>,
    /// The backend's key identifier.
    pub locator: String,
    /// The wrap algorithm.
    pub algorithm: WrapAlgorithm,
    /// The scope level.
    pub scope: Scope,
    /// The rotation cadence.
    pub cadence: Option<Cadence>,
    /// The overlap window after rotation, in seconds.
    pub overlap_seconds: u64,
}

impl NewKek {
    /// A tenant-scoped KEK with no cadence and a 30-day overlap window.
    pub fn new(
        reference: KekRef,
        backend: BackendId,
        locator: impl Into<String>,
        algorithm: WrapAlgorithm,
    ) -> Self {
        Self {
            reference,
            backend,
            instance: None,
            locator: locator.into(),
            algorithm,
            scope: Scope::Tenant,
            cadence: None,
            overlap_seconds: 30 * DAY,
        }
    }

    /// Sets the rotation cadence.
    #[must_use]
    pub fn cadence(mut self, cadence: Cadence) -> Self {
        self.cadence = Some(cadence);
        self
    }

    /// Sets the overlap window.
    #[must_use]
    pub fn overlap_seconds(mut self, seconds: u64) -> Self {
        self.overlap_seconds = seconds;
        self
    }

    /// Sets the backend instance.
    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the scope level.
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    fn into_record(self, now: UnixTime) -> KekRecord {
        KekRecord {
            reference: self.reference,
            backend: self.backend,
            instance: self.instance,
            locator: self.locator,
            algorithm: self.algorithm,
            scope: self.scope,
            state: KekState::Active,
            created_at: now,
            deprecated_at: None,
            retire_at: None,
            next_rotation_at: self.cadence.map(|c| now.saturating_add(c.seconds())),
            cadence: self.cadence,
            overlap_seconds: self.overlap_seconds,
            ended_at: None,
        }
    }
}

/// What a transition did, for the audit trail. Locators appear only as their last 12
/// characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// A KEK was registered.
    Registered {
        /// The KEK.
        kek: KekRef,
        /// Its backend.
        backend: BackendId,
        /// The last 12 characters of its locator.
        locator_tail: String,
        /// Its algorithm.
        algorithm: WrapAlgorithm,
    },
    /// A scope rotated to a successor.
    Rotated {
        /// The previous active KEK.
        from: KekRef,
        /// The new active KEK.
        to: KekRef,
    },
    /// A KEK stopped wrapping.
    Deprecated {
        /// The KEK.
        kek: KekRef,
        /// When its overlap window ends.
        retire_at: UnixTime,
    },
    /// A KEK was disabled.
    Disabled {
        /// The KEK.
        kek: KekRef,
    },
    /// A KEK was enabled again.
    Enabled {
        /// The KEK.
        kek: KekRef,
    },
    /// A KEK was retired.
    Retired {
        /// The KEK.
        kek: KekRef,
        /// Whether retirement was forced over outstanding objects.
        forced: bool,
        /// Objects still wrapped under it when retired.
        outstanding: u64,
    },
    /// A KEK was revoked (emergency).
    Revoked {
        /// The KEK.
        kek: KekRef,
        /// Why (free text from the operator; no key material).
        reason: String,
    },
    /// A KEK was destroyed.
    Destroyed {
        /// The KEK.
        kek: KekRef,
    },
    /// A ring computed elsewhere (read back from the shared store) was installed by
    /// compare-and-swap; the state changes it brought follow as `StateChanged` (and
    /// `Registered`) events. Its transitions were also recorded where they were made.
    Installed {
        /// The installed ring's generation.
        generation: u64,
    },
    /// A KEK's state changed in a ring installed by compare-and-swap.
    StateChanged {
        /// The KEK.
        kek: KekRef,
        /// Its state in the ring that was replaced.
        from: String,
        /// Its state in the installed ring.
        to: String,
    },
}

fn tail12(s: &str) -> String {
    KekLocator::new(s).redacted()
}

/// The key ring: a plain serde value the caller persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    schema: u32,
    generation: u64,
    revocation_epoch: u64,
    keks: BTreeMap<String, KekRecord>,
}

impl Default for KeyRing {
    fn default() -> Self {
        Self::new()
    }
}

fn key(r: &KekRef) -> String {
    format!("{}/{}/{:010}", r.tenant(), r.purpose(), r.version())
}

impl KeyRing {
    /// An empty ring, generation 0.
    pub fn new() -> Self {
        Self {
            schema: SCHEMA_VERSION,
            generation: 0,
            revocation_epoch: 0,
            keks: BTreeMap::new(),
        }
    }

    /// Reads a ring from JSON.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownSchema`] or [`LifecycleError::Malformed`].
    pub fn from_json(json: &str) -> Result<Self, LifecycleError> {
        let ring: KeyRing =
            serde_json::from_str(json).map_err(|e| LifecycleError::Malformed(e.to_string()))?;
        if ring.schema != SCHEMA_VERSION {
            return Err(LifecycleError::UnknownSchema(ring.schema));
        }
        let mut active = std::collections::BTreeSet::new();
        for (k, r) in &ring.keks {
            if *k != key(&r.reference) {
                return Err(LifecycleError::Malformed(format!(
                    "record key {k} does not match"
                )));
            }
            if r.state == KekState::Active
                && !active.insert((r.reference.tenant().clone(), r.reference.purpose().clone()))
            {
                return Err(LifecycleError::Malformed(format!(
                    "two active KEKs for {}/{}",
                    r.reference.tenant(),
                    r.reference.purpose()
                )));
            }
            if r.state == KekState::Deprecated && r.retire_at.is_none() {
                return Err(LifecycleError::Malformed(format!(
                    "deprecated KEK {} has no window end",
                    r.reference
                )));
            }
        }
        Ok(ring)
    }

    /// Writes the ring as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The generation: bumped by every transition.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The revocation epoch: bumped by every revocation and disable, so caches can tell.
    pub fn revocation_epoch(&self) -> u64 {
        self.revocation_epoch
    }

    /// Every record, ordered by tenant, purpose and version.
    pub fn records(&self) -> impl Iterator<Item = &KekRecord> {
        self.keks.values()
    }

    /// The record of `kek`.
    pub fn get(&self, kek: &KekRef) -> Option<&KekRecord> {
        self.keks.get(&key(kek))
    }

    /// The active KEK of a tenant and purpose.
    pub fn active(&self, tenant: &Name, purpose: &Name) -> Option<&KekRecord> {
        self.keks.values().find(|r| {
            r.state == KekState::Active
                && r.reference.tenant() == tenant
                && r.reference.purpose() == purpose
        })
    }

    /// Active KEKs due for rotation at `now`.
    pub fn due(&self, now: UnixTime) -> Vec<&KekRecord> {
        self.keks
            .values()
            .filter(|r| r.state == KekState::Active && r.next_rotation_at.is_some_and(|t| t <= now))
            .collect()
    }

    fn next(&self) -> Self {
        let mut n = self.clone();
        n.generation = n.generation.saturating_add(1);
        n
    }

    fn record_mut(&mut self, kek: &KekRef) -> Result<&mut KekRecord, LifecycleError> {
        self.keks
            .get_mut(&key(kek))
            .ok_or_else(|| LifecycleError::UnknownKek(kek.clone()))
    }

    /// Refuses a new KEK whose backend key a retired, revoked or destroyed record names:
    /// registering it again would bring back material that was put out of use. (A key
    /// shared by records that are all in use, such as one KMS key serving several
    /// tenants, each bound into every wrap, is allowed.)
    fn check_locator_unused(&self, new: &NewKek) -> Result<(), LifecycleError> {
        match self.keks.values().find(|r| {
            r.backend == new.backend
                && r.instance == new.instance
                && r.locator == new.locator
                && matches!(
                    r.state,
                    KekState::Retired | KekState::Revoked | KekState::Destroyed
                )
        }) {
            Some(r) => Err(LifecycleError::DuplicateLocator {
                locator_tail: tail12(&new.locator),
                existing: r.reference.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checks that `next` may replace `self`: every record is still there with the same
    /// backend, instance, locator and algorithm; a retired, revoked or destroyed KEK
    /// stays so (retired may still be revoked; either may be destroyed); and no record new
    /// in `next` names a backend key that a retired, revoked or destroyed KEK names.
    /// Transitions never do otherwise; a ring computed elsewhere (a lagging or diverged
    /// copy) might.
    ///
    /// # Errors
    /// [`LifecycleError::Regression`].
    pub fn check_successor(&self, next: &KeyRing) -> Result<(), LifecycleError> {
        for (k, rec) in &self.keks {
            let regression = |to| LifecycleError::Regression {
                kek: rec.reference.clone(),
                from: rec.state.name(),
                to,
            };
            let Some(n) = next.keks.get(k) else {
                return Err(regression("absent"));
            };
            if n.backend != rec.backend
                || n.instance != rec.instance
                || n.locator != rec.locator
                || n.algorithm != rec.algorithm
            {
                return Err(regression("another backend key"));
            }
            let kept = match rec.state {
                KekState::Retired => matches!(
                    n.state,
                    KekState::Retired | KekState::Revoked | KekState::Destroyed
                ),
                KekState::Revoked => {
                    matches!(n.state, KekState::Revoked | KekState::Destroyed)
                }
                KekState::Destroyed => n.state == KekState::Destroyed,
                _ => true,
            };
            if !kept {
                return Err(regression(n.state.name()));
            }
        }
        for (k, rec) in &next.keks {
            if self.keks.contains_key(k) {
                continue;
            }
            let ended = next.keks.values().find(|r| {
                r.reference != rec.reference
                    && r.backend == rec.backend
                    && r.instance == rec.instance
                    && r.locator == rec.locator
                    && matches!(
                        r.state,
                        KekState::Retired | KekState::Revoked | KekState::Destroyed
                    )
            });
            if let Some(r) = ended {
                return Err(LifecycleError::DuplicateLocator {
                    locator_tail: tail12(&rec.locator),
                    existing: r.reference.clone(),
                });
            }
        }
        Ok(())
    }

    /// The events that take `self` to `next` as far as the records show them: a
    /// registration per new record and a state change per record whose state moved.
    /// What a compare-and-swap records for a ring computed elsewhere.
    pub fn changes_to(&self, next: &KeyRing) -> Vec<LifecycleEvent> {
        let mut events = Vec::new();
        for (k, rec) in &next.keks {
            match self.keks.get(k) {
                None => events.push(LifecycleEvent::Registered {
                    kek: rec.reference.clone(),
                    backend: rec.backend,
                    locator_tail: tail12(&rec.locator),
                    algorithm: rec.algorithm,
                }),
                Some(old) if old.state != rec.state => {
                    events.push(LifecycleEvent::StateChanged {
                        kek: rec.reference.clone(),
                        from: old.state.name().to_owned(),
                        to: rec.state.name().to_owned(),
                    });
                }
                Some(_) => {}
            }
        }
        events
    }

    fn illegal(kek: &KekRef, from: &KekState, to: &'static str) -> LifecycleError {
        LifecycleError::IllegalTransition {
            kek: kek.clone(),
            from: from.name(),
            to,
        }
    }

    /// Registers a KEK as the active one of its tenant and purpose.
    ///
    /// # Errors
    /// [`LifecycleError::DuplicateKek`], or [`LifecycleError::AlreadyActive`] when the
    /// scope already has an active KEK.
    pub fn register(
        &self,
        new: NewKek,
        now: UnixTime,
    ) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError> {
        let r = &new.reference;
        if self.get(r).is_some() {
            return Err(LifecycleError::DuplicateKek(r.clone()));
        }
        self.check_locator_unused(&new)?;
        if self.active(r.tenant(), r.purpose()).is_some() {
            return Err(LifecycleError::AlreadyActive {
                tenant: r.tenant().clone(),
                purpose: r.purpose().clone(),
            });
        }
        let mut ring = self.next();
        let event = LifecycleEvent::Registered {
            kek: r.clone(),
            backend: new.backend,
            locator_tail: tail12(&new.locator),
            algorithm: new.algorithm,
        };
        let rec = new.into_record(now);
        ring.keks.insert(key(&rec.reference), rec);
        Ok((ring, vec![event]))
    }

    /// Rotates a tenant and purpose: the successor (which the caller created in the
    /// backend, as version `current + 1`) becomes active at once; the current KEK is
    /// deprecated and unwraps until `now + its overlap window`. The successor inherits
    /// the cadence unless it sets its own; its overlap window is the one it carries
    /// (pass the predecessor's `overlap_seconds` to keep it).
    ///
    /// # Errors
    /// [`LifecycleError::NoActiveKek`], [`LifecycleError::BadSuccessor`],
    /// [`LifecycleError::DuplicateKek`].
    pub fn rotate(
        &self,
        successor: NewKek,
        now: UnixTime,
    ) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError> {
        let s = successor.reference.clone();
        let current = self
            .active(s.tenant(), s.purpose())
            .ok_or_else(|| LifecycleError::NoActiveKek {
                tenant: s.tenant().clone(),
                purpose: s.purpose().clone(),
            })?
            .clone();
        let expected = current.reference.version().saturating_add(1);
        if s.version() != expected {
            return Err(LifecycleError::BadSuccessor {
                successor: s,
                expected,
            });
        }
        if self.get(&s).is_some() {
            return Err(LifecycleError::DuplicateKek(s));
        }
        self.check_locator_unused(&successor)?;
        let mut successor = successor;
        if successor.cadence.is_none() {
            successor.cadence = current.cadence;
        }
        let mut ring = self.next();
        let retire_at = now.saturating_add(current.overlap_seconds);
        {
            let old = ring.record_mut(&current.reference)?;
            old.state = KekState::Deprecated;
            old.deprecated_at = Some(now);
            old.retire_at = Some(retire_at);
            old.next_rotation_at = None;
        }
        let events = vec![
            LifecycleEvent::Registered {
                kek: s.clone(),
                backend: successor.backend,
                locator_tail: tail12(&successor.locator),
                algorithm: successor.algorithm,
            },
            LifecycleEvent::Rotated {
                from: current.reference.clone(),
                to: s.clone(),
            },
            LifecycleEvent::Deprecated {
                kek: current.reference.clone(),
                retire_at,
            },
        ];
        let rec = successor.into_record(now);
        ring.keks.insert(key(&rec.reference), rec);
        Ok((ring, events))
    }

    /// Disables a KEK (reversible): it neither wraps nor unwraps until enabled.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTransition`] unless it is active or deprecated.
    pub fn disable(
        &self,
        kek: &KekRef,
        _now: UnixTime,
    ) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError> {
        let mut ring = self.next();
        let r = ring.record_mut(kek)?;
        r.state = match r.state {
            KekState::Active => KekState::Disabled {
                from: ResumeState::Active,
            },
            KekState::Deprecated => KekState::Disabled {
                from: ResumeState::Deprecated,
            },
            other => return Err(Self::illegal(kek, &other, "disabled")),
        };
        ring.revocation_epoch = ring.revocation_epoch.saturating_add(1);
        Ok((ring, vec![LifecycleEvent::Disabled { kek: kek.clone() }]))
    }

    /// Enables a disabled KEK: back to the state it was disabled from.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTransition`] unless it is disabled, or
    /// [`LifecycleError::AlreadyActive`] if another KEK became active meanwhile.
    pub fn enable(
        &self,
        kek: &KekRef,
        _now: UnixTime,
    ) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError> {
        let state = self
            .get(kek)
            .ok_or_else(|| LifecycleError::UnknownKek(kek.clone()))?
            .state;
        let to = match state {
            KekState::Disabled { from } => from,
            other => return Err(Self::illegal(kek, &other, "enabled")),
        };
        if to == ResumeState::Active && self.active(kek.tenant(), kek.purpose()).is_some() {
            return Err(LifecycleError::AlreadyActive {
                tenant: kek.tenant().clone(),
                purpose: kek.purpose().clone(),
            });
        }
        let mut ring = self.next();
        ring.record_mut(kek)?.state = match to {
            ResumeState::Active => KekState::Active,
            ResumeState::Deprecated => KekState::Deprecated,
        };
        Ok((ring, vec![LifecycleEvent::Enabled { kek: kek.clone() }]))
    }

    /// Retires a deprecated KEK once its overlap window has ended. `outstanding` is how
    /// many objects are still wrapped under it (from an inventory scan); retirement is
    /// refused while it is not zero, unless `force` (recorded in the event).
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTransition`] unless deprecated,
    /// [`LifecycleError::WindowOpen`] before `retire_at` (unless forced),
    /// [`LifecycleError::StillInUse`].
    pub fn retire(
        &self,
        kek: &KekRef,
        now: UnixTime,
        outstanding: u64,
        force: bool,
    ) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError> {
        let rec = self
            .get(kek)
            .ok_or_else(|| LifecycleError::UnknownKek(kek.clone()))?;
        if rec.state != KekState::Deprecated {
            return Err(Self::illegal(kek, &rec.state, "retired"));
        }
        if let Some(t) = rec.retire_at
            && now < t
            && !force
        {
            return Err(LifecycleError::WindowOpen {
                kek: kek.clone(),
                retire_at: t,
            });
        }
        if outstanding > 0 && !force {
            return Err(LifecycleError::StillInUse {
                kek: kek.clone(),
                outstanding,
            });
        }
        let mut ring = self.next();
        let r = ring.record_mut(kek)?;
        r.state = KekState::Retired;
        r.ended_at = Some(now);
        Ok((
            ring,
            vec![LifecycleEvent::Retired {
                kek: kek.clone(),
                forced: force,
                outstanding,
            }],
        ))
    }

    /// Revokes a KEK: irreversible; no wrap or unwrap ever again (only the audited
    /// break-glass re-wrap reads under it). Bumps the revocation epoch so every cache
    /// sharing the ring drops what it derived from the KEK.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTransition`] for a revoked or destroyed KEK.
    pub fn revoke(
        &self,
        kek: &KekRef,
        now: UnixTime,
        reason: &str,
    ) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError> {
        let mut ring = self.next();
        let r = ring.record_mut(kek)?;
        if matches!(r.state, KekState::Revoked | KekState::Destroyed) {
            return Err(Self::illegal(kek, &r.state, "revoked"));
        }
        r.state = KekState::Revoked;
        r.ended_at = Some(now);
        r.next_rotation_at = None;
        ring.revocation_epoch = ring.revocation_epoch.saturating_add(1);
        Ok((
            ring,
            vec![LifecycleEvent::Revoked {
                kek: kek.clone(),
                reason: reason.to_owned(),
            }],
        ))
    }

    /// Records that a retired or revoked KEK's material was destroyed (crypto-shred).
    /// Deleting the key in its backend is the caller's step; this records it.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTransition`] unless retired or revoked.
    pub fn destroy(
        &self,
        kek: &KekRef,
        now: UnixTime,
    ) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError> {
        let mut ring = self.next();
        let r = ring.record_mut(kek)?;
        if !matches!(r.state, KekState::Retired | KekState::Revoked) {
            return Err(Self::illegal(kek, &r.state, "destroyed"));
        }
        r.state = KekState::Destroyed;
        r.ended_at = Some(now);
        ring.revocation_epoch = ring.revocation_epoch.saturating_add(1);
        Ok((ring, vec![LifecycleEvent::Destroyed { kek: kek.clone() }]))
    }

    /// The ring grouped for an inventory report.
    pub fn inventory(&self, now: UnixTime) -> Inventory {
        let mut inv = Inventory::default();
        for r in self.keks.values() {
            let line = InventoryLine {
                kek: r.reference.clone(),
                backend: r.backend,
                locator_tail: tail12(&r.locator),
                algorithm: r.algorithm,
                family: r.family(),
                state: r.state.name(),
                scope: r.scope,
                cadence: r.cadence,
                created_at: r.created_at,
                next_rotation_at: r.next_rotation_at,
                retire_at: r.retire_at,
                rotation_due: r.state == KekState::Active
                    && r.next_rotation_at.is_some_and(|t| t <= now),
            };
            *inv.by_state.entry(line.state.to_owned()).or_default() += 1;
            *inv.by_family.entry(line.family.to_string()).or_default() += 1;
            *inv.by_scope
                .entry(format!("{:?}", r.scope).to_lowercase())
                .or_default() += 1;
            *inv.by_cadence
                .entry(
                    r.cadence
                        .map_or("none".to_owned(), |c| format!("{}d", c.days)),
                )
                .or_default() += 1;
            inv.keks.push(line);
        }
        inv
    }
}

/// One KEK in an inventory report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InventoryLine {
    /// The KEK.
    pub kek: KekRef,
    /// Which backend holds it.
    pub backend: BackendId,
    /// The last 12 characters of its locator.
    pub locator_tail: String,
    /// Its algorithm.
    pub algorithm: WrapAlgorithm,
    /// Its family.
    pub family: Family,
    /// Its state.
    pub state: &'static str,
    /// Its scope level.
    pub scope: Scope,
    /// Its cadence.
    pub cadence: Option<Cadence>,
    /// When it was registered.
    pub created_at: UnixTime,
    /// When it is due for rotation.
    pub next_rotation_at: Option<UnixTime>,
    /// When its overlap window ends.
    pub retire_at: Option<UnixTime>,
    /// Whether rotation is due now.
    pub rotation_due: bool,
}

/// The key ring grouped by state, family, scope and cadence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Inventory {
    /// Every KEK.
    pub keks: Vec<InventoryLine>,
    /// Counts per state.
    pub by_state: BTreeMap<String, u64>,
    /// Counts per algorithm family.
    pub by_family: BTreeMap<String, u64>,
    /// Counts per scope level.
    pub by_scope: BTreeMap<String, u64>,
    /// Counts per cadence.
    pub by_cadence: BTreeMap<String, u64>,
}

/// A key ring shared by every `Envelope` of a process (and, through the caller's
/// database and [`SharedKeyRing::compare_and_swap`], by several processes).
#[derive(Clone, Debug, Default)]
pub struct SharedKeyRing {
    inner: Arc<RwLock<KeyRing>>,
    /// Moves on every install (under the write lock), whatever the installed ring's own
    /// generation: what envelopes key their caches on, read without taking the lock.
    version: Arc<AtomicU64>,
    /// Records every transition before it is installed (set once).
    recorder: Arc<OnceLock<Arc<dyn TransitionRecorder>>>,
    /// Serializes transitions (`apply`, `compare_and_swap`) without blocking readers
    /// while a transition is computed and recorded: the ring's lock is held only to
    /// install.
    transitions: Arc<Mutex<()>>,
}

impl SharedKeyRing {
    /// Shares `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self {
            inner: Arc::new(RwLock::new(ring)),
            version: Arc::default(),
            recorder: Arc::default(),
            transitions: Arc::default(),
        }
    }

    /// The install counter, without the lock. A value cached together with the version it
    /// was read at (see [`SharedKeyRing::read_versioned`]) is current while this equals it.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Reads the ring and the install counter under one lock.
    pub(crate) fn read_versioned<T>(&self, f: impl FnOnce(&KeyRing) -> T) -> (u64, T) {
        match self.inner.read() {
            Ok(r) => (self.version(), f(&r)),
            Err(poisoned) => (self.version(), f(&poisoned.into_inner())),
        }
    }

    /// A copy of the current ring.
    pub fn snapshot(&self) -> KeyRing {
        match self.inner.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the ring without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&KeyRing) -> T) -> T {
        match self.inner.read() {
            Ok(r) => f(&r),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Records the events of every later [`SharedKeyRing::apply`] and
    /// [`SharedKeyRing::compare_and_swap`] on this ring (every clone of it) before the
    /// new ring is installed. Set once: returns `false`, changing nothing, when a
    /// recorder is already set. An audited [`Envelope`](crate::Envelope) sets its audit
    /// log here when it is built.
    pub fn set_recorder(&self, recorder: Arc<dyn TransitionRecorder>) -> bool {
        self.recorder.set(recorder).is_ok()
    }

    /// Whether transitions on this ring are recorded.
    pub fn is_recorded(&self) -> bool {
        self.recorder.get().is_some()
    }

    fn record(&self, events: &[LifecycleEvent]) -> Result<(), LifecycleError> {
        match self.recorder.get() {
            Some(r) if !events.is_empty() => r.record(events).map_err(LifecycleError::NotRecorded),
            _ => Ok(()),
        }
    }

    /// Applies a transition to the current ring and installs the result: the result must
    /// keep every record and every final state ([`KeyRing::check_successor`]), and its
    /// events are recorded first when the ring has a recorder (no record, no change).
    /// Returns the events.
    ///
    /// Transitions are serialized; readers are not blocked while one is computed and
    /// recorded (the ring is locked only to install it). A recorder must therefore not
    /// apply transitions itself (that would wait for itself); reading the ring is fine.
    ///
    /// # Errors
    /// The transition's error, [`LifecycleError::Regression`], or
    /// [`LifecycleError::NotRecorded`]; the ring is then unchanged.
    pub fn apply(
        &self,
        f: impl FnOnce(&KeyRing) -> Result<(KeyRing, Vec<LifecycleEvent>), LifecycleError>,
    ) -> Result<Vec<LifecycleEvent>, LifecycleError> {
        let _serial = match self.transitions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // No other transition runs now: the snapshot stays current until installed.
        let current = self.snapshot();
        let (next, events) = f(&current)?;
        current.check_successor(&next)?;
        self.record(&events)?;
        self.install(next);
        Ok(events)
    }

    /// Installs `new` (a ring read back from the caller's shared store) only if the
    /// current generation is `expected`, `new` is newer (a higher generation, no older
    /// revocation epoch, this schema), and `new` keeps every record and every final state
    /// of the current ring: neither a lagging nor a diverged copy can undo a retirement,
    /// revocation or destruction, whatever its generation. When the ring has a recorder,
    /// [`LifecycleEvent::Installed`] and the changes the new ring brings
    /// ([`KeyRing::changes_to`]: registrations and state changes, a revocation included)
    /// are recorded first.
    ///
    /// # Errors
    /// [`LifecycleError::GenerationMismatch`] when the current generation is not
    /// `expected` or `new` is not newer; [`LifecycleError::Regression`];
    /// [`LifecycleError::UnknownSchema`]; [`LifecycleError::NotRecorded`].
    pub fn compare_and_swap(&self, expected: u64, new: KeyRing) -> Result<(), LifecycleError> {
        let _serial = match self.transitions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = self.snapshot();
        if new.schema != SCHEMA_VERSION {
            return Err(LifecycleError::UnknownSchema(new.schema));
        }
        if current.generation != expected
            || new.generation <= expected
            || new.revocation_epoch < current.revocation_epoch
        {
            return Err(LifecycleError::GenerationMismatch {
                expected,
                actual: current.generation,
            });
        }
        current.check_successor(&new)?;
        let mut events = vec![LifecycleEvent::Installed {
            generation: new.generation,
        }];
        events.extend(current.changes_to(&new));
        self.record(&events)?;
        self.install(new);
        Ok(())
    }

    fn install(&self, next: KeyRing) {
        let mut guard = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = next;
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

/// Records the events of key-ring transitions before they take effect (see
/// [`SharedKeyRing::set_recorder`]). The audit trail is the usual recorder.
pub trait TransitionRecorder: Send + Sync + std::fmt::Debug {
    /// Records `events` durably.
    ///
    /// # Errors
    /// Why they could not be recorded (no key material); the transition is then not
    /// installed.
    fn record(&self, events: &[LifecycleEvent]) -> Result<(), String>;
}

/// Which objects are wrapped under which KEK, from a scan of stored blobs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ObjectScan {
    /// Per KEK (`tenant/purpose/vN`): how many objects carry a copy wrapped under it.
    pub per_kek: BTreeMap<String, u64>,
    /// Per KEK: the objects whose *every* copy is under it, which would become unreadable
    /// if it were retired now.
    pub only_under: BTreeMap<String, Vec<String>>,
    /// Objects that are neither a sealed object nor a wrapped DEK.
    pub unparsed: Vec<String>,
}

impl ObjectScan {
    /// Objects still wrapped under `kek` (the `outstanding` count for
    /// [`KeyRing::retire`]).
    pub fn outstanding(&self, kek: &KekRef) -> u64 {
        self.per_kek.get(&kek.to_string()).copied().unwrap_or(0)
    }
}

/// Scans stored blobs (sealed objects or wrapped DEKs, by identifier) without any key:
/// headers only.
pub fn scan_objects<'a>(items: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> ObjectScan {
    use crate::format::{SealedHeader, WrappedDek};
    let mut scan = ObjectScan::default();
    for (id, bytes) in items {
        let dek = match SealedHeader::decode_prefix(bytes) {
            Ok((h, _)) => h.wrapped_dek().clone(),
            Err(_) => match WrappedDek::decode(bytes) {
                Ok(w) => w,
                Err(_) => {
                    scan.unparsed.push(id.to_owned());
                    continue;
                }
            },
        };
        let keks: Vec<String> = dek.entries().iter().map(|e| e.kek().to_string()).collect();
        for k in &keks {
            *scan.per_kek.entry(k.clone()).or_default() += 1;
        }
        if let [only] = keks.as_slice() {
            scan.only_under
                .entry(only.clone())
                .or_default()
                .push(id.to_owned());
        }
    }
    scan
}

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
