//! KEK states and records: what the key ring holds about each KEK, and what registering
//! one takes.

use serde::{Deserialize, Serialize};

use crate::format::{BackendId, Family, KekRef, WrapAlgorithm};
use crate::locator::{KekLocator, KeyIdentity};

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

/// A label that groups KEKs in an inventory report, as key inventories group keys by
/// tenant-, policy- or epoch-level scope. **A label only: kekring enforces nothing by
/// it.** Every KEK is named by tenant, purpose and version; the envelope refuses a copy
/// under another tenant, or another purpose than the reader's or its configured copy
/// scopes, and binds the caller's tenant into every wrap, whatever the label says. A KEK
/// labelled `Policy` or `Epoch` is still the KEK of exactly one tenant and purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InventoryScope {
    /// Grouped as a tenant-level key (the default).
    Tenant,
    /// Grouped as a policy-level key.
    Policy,
    /// Grouped as an epoch-level key (for example one per month).
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
    /// Whether the KEK is out of use for good: retired, revoked or destroyed. Its backend
    /// key must never serve another record, and its backend need not be configured.
    pub fn has_ended(&self) -> bool {
        matches!(
            self,
            KekState::Retired | KekState::Revoked | KekState::Destroyed
        )
    }

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
    /// Where the backend finds the key (ARN, key URL, local name), in the backend's
    /// stable form. Not secret; serialized as a plain string.
    pub locator: KekLocator,
    /// Which key that is: the backend's canonical identity of the locator
    /// ([`KeyBackend::key_identity`](crate::KeyBackend::key_identity)). Records are
    /// compared by it, never by locator spelling.
    pub key_id: KeyIdentity,
    /// The wrap algorithm.
    pub algorithm: WrapAlgorithm,
    /// An inventory label (not enforced: see [`InventoryScope`]). Serialized as `scope`.
    #[serde(rename = "scope")]
    pub inventory_scope: InventoryScope,
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
    /// Whether this record names the key `key_id` of `backend` (and instance), however
    /// its locator spells it.
    pub fn uses_backend_key(
        &self,
        backend: BackendId,
        instance: Option<&str>,
        key_id: &KeyIdentity,
    ) -> bool {
        self.backend == backend && self.instance.as_deref() == instance && &self.key_id == key_id
    }

    /// Whether both records name the same backend key.
    pub fn same_backend_key(&self, other: &KekRecord) -> bool {
        self.uses_backend_key(other.backend, other.instance.as_deref(), &other.key_id)
    }

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
    pub locator: KekLocator,
    /// Which key it is ([`KeyBackend::key_identity`](crate::KeyBackend::key_identity)
    /// of `locator`). Required to register: an `Envelope` sets it from the backend
    /// (`EnvelopeBuilder::kek`, `Envelope::register_kek`, rotations); a caller applying
    /// [`KeyRing`](super::KeyRing) transitions itself sets it with [`NewKek::key_id`].
    pub key_id: Option<KeyIdentity>,
    /// The wrap algorithm.
    pub algorithm: WrapAlgorithm,
    /// An inventory label (not enforced: see [`InventoryScope`]).
    pub inventory_scope: InventoryScope,
    /// The rotation cadence.
    pub cadence: Option<Cadence>,
    /// The overlap window after rotation, in seconds.
    pub overlap_seconds: u64,
}

impl NewKek {
    /// A tenant-scoped KEK with no cadence and a 30-day overlap window, its key identity
    /// not yet set (see [`NewKek::key_id`]).
    pub fn new(
        reference: KekRef,
        backend: BackendId,
        locator: impl Into<KekLocator>,
        algorithm: WrapAlgorithm,
    ) -> Self {
        Self {
            reference,
            backend,
            instance: None,
            locator: locator.into(),
            key_id: None,
            algorithm,
            inventory_scope: InventoryScope::Tenant,
            cadence: None,
            overlap_seconds: 30 * DAY,
        }
    }

    /// Sets the key's identity: [`KeyBackend::key_identity`](crate::KeyBackend::key_identity)
    /// of the locator, from the backend that holds it.
    #[must_use]
    pub fn key_id(mut self, key_id: KeyIdentity) -> Self {
        self.key_id = Some(key_id);
        self
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

    /// Sets the inventory label (not enforced: see [`InventoryScope`]).
    #[must_use]
    pub fn inventory_scope(mut self, scope: InventoryScope) -> Self {
        self.inventory_scope = scope;
        self
    }

    /// The record, active from `now`; `None` without a key identity.
    pub(super) fn into_record(self, now: UnixTime) -> Option<KekRecord> {
        Some(KekRecord {
            reference: self.reference,
            backend: self.backend,
            instance: self.instance,
            locator: self.locator,
            key_id: self.key_id?,
            algorithm: self.algorithm,
            inventory_scope: self.inventory_scope,
            state: KekState::Active,
            created_at: now,
            deprecated_at: None,
            retire_at: None,
            next_rotation_at: self.cadence.map(|c| now.saturating_add(c.seconds())),
            cadence: self.cadence,
            overlap_seconds: self.overlap_seconds,
            ended_at: None,
        })
    }
}
