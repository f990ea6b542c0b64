//! The key ring and its pure transitions (each takes the ring and `now`, returns the new
//! ring and the events to audit), the rules an installed ring must keep, and the
//! inventory report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{
    Cadence, InventoryScope, KekRecord, KekState, NewKek, ResumeState, SCHEMA_VERSION, UnixTime,
};
use crate::error::LifecycleError;
use crate::format::{BackendId, Family, KekRef, Name, WrapAlgorithm};

/// What a transition did, for the audit trail. Backend keys appear only as the last 12
/// characters of their identity.
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
        /// The last 12 characters of its key's identity.
        key_tail: String,
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

pub(super) fn key(r: &KekRef) -> String {
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
        ring.validate()?;
        Ok(ring)
    }

    /// The rules every ring keeps, whoever computed it: this schema, records stored
    /// under their own reference, one active KEK per tenant and purpose, a window end
    /// for every deprecated KEK. [`KeyRing::from_json`] and
    /// [`SharedKeyRing::compare_and_swap`](super::SharedKeyRing::compare_and_swap) check
    /// them.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownSchema`] or [`LifecycleError::Malformed`].
    pub fn validate(&self) -> Result<(), LifecycleError> {
        let ring = self;
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
            if r.state == KekState::Active && !active.insert(r.reference.scope()) {
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
        Ok(())
    }

    /// Writes the ring as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The generation: bumped by every transition.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The revocation epoch: bumped by every revocation, disable, retirement and
    /// destruction, so caches can tell.
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

    /// Refuses a new record whose backend key (compared by identity, so any spelling of
    /// it) a retired, revoked or destroyed record names (registering it again would
    /// bring back material that was put out of use), or another record of the same
    /// tenant and purpose names (a successor must be another key: under the same key a
    /// copy of the old version relabelled as the new one would open after the old one
    /// is revoked). A key shared by records of other scopes that are all in use, such as
    /// one KMS key serving several tenants, each bound into every wrap, is allowed.
    fn check_key_free(&self, new: &KekRecord) -> Result<(), LifecycleError> {
        let same_scope = |r: &KekRecord| {
            r.reference.tenant() == new.reference.tenant()
                && r.reference.purpose() == new.reference.purpose()
        };
        match self.keks.values().find(|r| {
            r.reference != new.reference
                && (r.state.has_ended() || same_scope(r))
                && r.same_backend_key(new)
        }) {
            Some(r) => Err(LifecycleError::KeyReused {
                key_tail: new.key_id.tail(),
                existing: r.reference.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The record `new` makes, active from `now`, refused without a key identity or when
    /// its key is not free ([`KeyRing::check_key_free`]).
    fn new_record(&self, new: NewKek, now: UnixTime) -> Result<KekRecord, LifecycleError> {
        let reference = new.reference.clone();
        let rec = new
            .into_record(now)
            .ok_or(LifecycleError::Unidentified(reference))?;
        self.check_key_free(&rec)?;
        Ok(rec)
    }

    /// Checks that `next` may replace `self`: every record is still there with the same
    /// backend, instance, locator, key identity and algorithm; a retired, revoked or
    /// destroyed KEK stays so (retired may still be revoked; either may be destroyed);
    /// and no record new in `next` names a backend key that a retired, revoked or
    /// destroyed KEK, or another record of its tenant and purpose, names. Transitions
    /// never do otherwise; a ring computed elsewhere (a lagging or diverged copy) might.
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
            if !n.same_backend_key(rec) || n.locator != rec.locator || n.algorithm != rec.algorithm
            {
                return Err(regression("another backend key"));
            }
            let kept = match rec.state {
                KekState::Retired => n.state.has_ended(),
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
            if !self.keks.contains_key(k) {
                next.check_key_free(rec)?;
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
                    key_tail: rec.key_id.tail(),
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
        if self.active(r.tenant(), r.purpose()).is_some() {
            return Err(LifecycleError::AlreadyActive {
                tenant: r.tenant().clone(),
                purpose: r.purpose().clone(),
            });
        }
        let rec = self.new_record(new, now)?;
        let mut ring = self.next();
        let event = LifecycleEvent::Registered {
            kek: rec.reference.clone(),
            backend: rec.backend,
            key_tail: rec.key_id.tail(),
            algorithm: rec.algorithm,
        };
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
        let mut successor = successor;
        if successor.cadence.is_none() {
            successor.cadence = current.cadence;
        }
        let rec = self.new_record(successor, now)?;
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
                backend: rec.backend,
                key_tail: rec.key_id.tail(),
                algorithm: rec.algorithm,
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
        // Cached DEKs of a retired KEK leave memory at once, as after a revocation.
        ring.revocation_epoch = ring.revocation_epoch.saturating_add(1);
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
                key_tail: r.key_id.tail(),
                algorithm: r.algorithm,
                family: r.family(),
                state: r.state.name(),
                inventory_scope: r.inventory_scope,
                cadence: r.cadence,
                created_at: r.created_at,
                next_rotation_at: r.next_rotation_at,
                retire_at: r.retire_at,
                rotation_due: r.state == KekState::Active
                    && r.next_rotation_at.is_some_and(|t| t <= now),
            };
            *inv.by_state.entry(line.state.to_owned()).or_default() += 1;
            *inv.by_family.entry(line.family.to_string()).or_default() += 1;
            *inv.by_inventory_scope
                .entry(format!("{:?}", r.inventory_scope).to_lowercase())
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
    /// The last 12 characters of its key's identity.
    pub key_tail: String,
    /// Its algorithm.
    pub algorithm: WrapAlgorithm,
    /// Its family.
    pub family: Family,
    /// Its state.
    pub state: &'static str,
    /// Its inventory label (not enforced: see [`InventoryScope`]).
    pub inventory_scope: InventoryScope,
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

/// The key ring grouped by state, family, inventory label and cadence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Inventory {
    /// Every KEK.
    pub keks: Vec<InventoryLine>,
    /// Counts per state.
    pub by_state: BTreeMap<String, u64>,
    /// Counts per algorithm family.
    pub by_family: BTreeMap<String, u64>,
    /// Counts per inventory label (not enforced: see [`InventoryScope`]).
    pub by_inventory_scope: BTreeMap<String, u64>,
    /// Counts per cadence.
    pub by_cadence: BTreeMap<String, u64>,
}
