//! The [`Envelope`](super::Envelope)'s shared state: what the builder checked, the key
//! ring, and the caches and counters every handle shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::cache::DekCache;
use super::calls::Backends;
use super::clock::Clock;
use super::denials::Denials;
use super::plan::{Counters, PlanCache, Resolved};
use crate::audit::AuditLog;
use crate::crypto::{Primitives, RandomSource};
use crate::format::{KekRef, Name, Scope};
use crate::lifecycle::SharedKeyRing;
use crate::policy::Profile;
use crate::sharded::Sharded;

pub(super) struct Inner {
    pub(super) backends: Backends,
    pub(super) ring: SharedKeyRing,
    /// Per tenant and purpose: the scopes whose active KEKs get a copy of every DEK.
    pub(super) copies: HashMap<Scope, Vec<Scope>>,
    /// Per tenant and purpose: further purposes (same tenant) whose copies are accepted
    /// at open ([`EnvelopeBuilder::accept_copies`]).
    pub(super) accepted: HashMap<Scope, Vec<Name>>,
    pub(super) profile: Profile,
    pub(super) crypto: &'static dyn Primitives,
    pub(super) random: RandomSource,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) audit: Option<AuditLog>,
    pub(super) usage: RwLock<HashMap<KekRef, Arc<Counters>>>,
    /// Per tenant and purpose: the wrap plan computed at a key-ring version. Each thread
    /// shard fills its own copy, so a seal touches no cache line another thread writes.
    pub(super) plans: Sharded<PlanCache>,
    /// KEKs resolved for unwrapping, each with the key-ring version it was read at (per
    /// thread shard, as `plans`).
    pub(super) resolved: Sharded<HashMap<KekRef, (u64, Arc<Resolved>)>>,
    pub(super) cache: Option<DekCache>,
    pub(super) denials: Denials,
}

impl Drop for Inner {
    /// Writes the denial counts still pending (best effort: a failing sink cannot be
    /// reported from here; call [`Envelope::flush_audit`] to see the error).
    fn drop(&mut self) {
        if let Some(log) = &self.audit {
            let _ = self
                .denials
                .flush(log, self.clock.now(), self.profile.name());
        }
    }
}
