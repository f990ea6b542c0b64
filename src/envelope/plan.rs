//! Which KEKs wrap a new DEK for a context (the wrap plan: the scope's active KEK, then
//! its copy scopes' active KEKs), and resolving a header's KEK for unwrap; both cached
//! per key-ring version, per thread shard. Also the per-KEK usage counters and the
//! profile check of a plan.

use std::collections::HashMap;
use std::sync::Arc;

use super::Envelope;
use super::calls::{self, Target, served};
use crate::audit::AuditEvent;
use crate::backend::{BackendError, KeyBackend, WrapResponse};
use crate::context::Context;
use crate::error::{Error, KeyStateError};
use crate::format::{BackendId, KekRef, Name, Scope, WrapAlgorithm, WrappedDek, WrappedEntry};
use crate::lifecycle::KekRecord;
use crate::locator::{KekLocator, KeyIdentity};
use crate::secret::DataKey;
use crate::sharded::ShardedCounters;

/// Usage counters of one KEK, shared by every thread using the envelope; each thread
/// counts in its own shard.
#[derive(Debug, Default)]
pub(super) struct Counters(ShardedCounters<3>);

impl Counters {
    const WRAPS: usize = 0;
    const UNWRAPS: usize = 1;
    const DENIALS: usize = 2;

    pub(super) fn wrapped(&self) {
        self.0.bump(Self::WRAPS);
    }

    pub(super) fn unwrapped(&self) {
        self.0.bump(Self::UNWRAPS);
    }

    pub(super) fn denied(&self) {
        self.0.bump(Self::DENIALS);
    }

    pub(super) fn snapshot(&self) -> super::Usage {
        super::Usage {
            wraps: self.0.sum(Self::WRAPS),
            unwraps: self.0.sum(Self::UNWRAPS),
            denials: self.0.sum(Self::DENIALS),
        }
    }
}

/// One KEK of a wrap plan, resolved once per key-ring version: its backend looked up
/// and checked, its locator and counters ready.
pub(super) struct Planned {
    pub(super) reference: KekRef,
    pub(super) backend_id: BackendId,
    pub(super) backend: Arc<dyn KeyBackend>,
    pub(super) locator: KekLocator,
    pub(super) key_id: KeyIdentity,
    pub(super) algorithm: WrapAlgorithm,
    pub(super) counters: Arc<Counters>,
}

impl Planned {
    /// This KEK as a backend call names it.
    pub(super) fn target(&self) -> Target<'_> {
        Target {
            backend: self.backend.as_ref(),
            locator: &self.locator,
            key_id: Some(&self.key_id),
            algorithm: self.algorithm,
        }
    }

    /// The wrapped copy a backend's answer (checked by the call to name this KEK) makes
    /// under this KEK (counted), refused when it has the wrong shape for the algorithm.
    pub(super) fn entry(&self, resp: WrapResponse) -> Result<WrappedEntry, Error> {
        let entry = WrappedEntry::new(
            self.algorithm,
            self.backend_id,
            self.reference.clone(),
            resp.params,
            resp.wrapped,
        )
        .map_err(|_| BackendError::MalformedResponse {
            what: "wrapped key",
        })?;
        self.counters.wrapped();
        Ok(entry)
    }
}

/// A key-ring record resolved for unwrapping: its backend (when it is configured and
/// valid here), locator, counters and the revocation epoch it was read at.
pub(super) struct Resolved {
    pub(super) record: KekRecord,
    pub(super) backend: Option<Arc<dyn KeyBackend>>,
    pub(super) locator: KekLocator,
    pub(super) counters: Arc<Counters>,
    pub(super) epoch: u64,
}

/// Wrap plans by tenant, then purpose, each with the key-ring version it was
/// computed at.
pub(super) type PlanCache = HashMap<Name, HashMap<Name, (u64, Arc<[Planned]>)>>;

impl Envelope {
    /// The counters of `kek`, created the first time it is seen.
    pub(super) fn counters(&self, kek: &KekRef) -> Arc<Counters> {
        if let Some(c) = self
            .inner
            .usage
            .read()
            .ok()
            .and_then(|u| u.get(kek).cloned())
        {
            return c;
        }
        match self.inner.usage.write() {
            Ok(mut u) => u.entry(kek.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// A KEK of the key ring with what unwrapping under it needs, cached per key-ring
    /// version (every install moves it, so a cached state is never stale).
    pub(super) fn resolve(&self, kek: &KekRef) -> Option<Arc<Resolved>> {
        let version = self.inner.ring.version();
        let cached = self.inner.resolved.local().read().ok().and_then(|m| {
            m.get(kek)
                .filter(|(v, _)| *v == version)
                .map(|(_, r)| r.clone())
        });
        if cached.is_some() {
            return cached;
        }
        // Read again with the version under the same lock: an install since the check
        // above must not be cached under the older version.
        let (version, (epoch, record)) = self
            .inner
            .ring
            .read_versioned(|r| (r.revocation_epoch(), r.get(kek).cloned()));
        let record = record?;
        let resolved = Arc::new(Resolved {
            backend: served(&self.inner.backends, &record).ok().cloned(),
            locator: record.locator.clone(),
            counters: self.counters(&record.reference),
            epoch,
            record,
        });
        if let Ok(mut m) = self.inner.resolved.local().write() {
            m.insert(kek.clone(), (version, resolved.clone()));
        }
        Some(resolved)
    }

    /// The KEKs a new DEK for `ctx` is wrapped under: the active KEK of the context's
    /// tenant and purpose, then the active KEKs of its copy scopes. Cached per scope and
    /// recomputed whenever the key ring's version moves (every install moves it).
    pub(super) fn wrap_plan(&self, ctx: &Context) -> Result<Arc<[Planned]>, Error> {
        let version = self.inner.ring.version();
        let cached = self.inner.plans.local().read().ok().and_then(|p| {
            p.get(ctx.tenant())
                .and_then(|m| m.get(ctx.purpose()))
                .filter(|(v, _)| *v == version)
                .map(|(_, plan)| plan.clone())
        });
        if let Some(plan) = cached {
            return Ok(plan);
        }
        let scope = ctx.scope();
        let (version, records) = self.plan_records(&scope)?;
        let mut plan = Vec::with_capacity(records.len());
        for rec in records {
            let backend = self.backend(&rec)?.clone();
            plan.push(Planned {
                counters: self.counters(&rec.reference),
                // Its own copy of the names: cloning it into every wrapped DEK then
                // counts references on this shard's copy, not on one all threads share.
                reference: rec.reference.detached(),
                backend_id: rec.backend,
                backend,
                locator: rec.locator,
                key_id: rec.key_id,
                algorithm: rec.algorithm,
            });
        }
        let plan: Arc<[Planned]> = plan.into();
        if let Ok(mut p) = self.inner.plans.local().write() {
            p.entry(scope.tenant)
                .or_default()
                .insert(scope.purpose, (version, plan.clone()));
        }
        Ok(plan)
    }

    /// The active records of a scope and its copy scopes, read at one ring version.
    fn plan_records(&self, scope: &Scope) -> Result<(u64, Vec<KekRecord>), Error> {
        let copies = self.inner.copies.get(scope);
        let (version, plan) = self.inner.ring.read_versioned(|ring| {
            std::iter::once(scope)
                .chain(copies.into_iter().flatten())
                .map(|s| {
                    ring.active(&s.tenant, &s.purpose).cloned().ok_or_else(|| {
                        KeyStateError::NoWrappingKek {
                            tenant: s.tenant.clone(),
                            purpose: s.purpose.clone(),
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        });
        Ok((version, plan?))
    }

    /// Checks the profile for every KEK of a plan (audited refusal), before any backend
    /// call that the plan is for.
    pub(super) fn check_plan(&self, ctx: &Context, plan: &[Planned]) -> Result<(), Error> {
        for kek in plan {
            if let Err(e) = self
                .inner
                .profile
                .check(ctx.classification(), kek.algorithm)
            {
                kek.counters.denied();
                self.audit(AuditEvent::WrapRefused {
                    kek: kek.reference.clone(),
                    algorithm: kek.algorithm,
                    classification: ctx.classification().clone(),
                    profile: self.inner.profile.name().to_owned(),
                })?;
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Wraps `dek` under every KEK of the plan. The profile is checked for all of them
    /// before any backend is called.
    pub(super) async fn wrap_dek(&self, ctx: &Context, dek: &DataKey) -> Result<WrappedDek, Error> {
        let plan = self.wrap_plan(ctx)?;
        self.check_plan(ctx, &plan)?;
        self.wrap_under(ctx, &plan, dek).await
    }

    /// Wraps `dek` under every KEK of a plan [`Envelope::check_plan`] has passed.
    pub(super) async fn wrap_under(
        &self,
        ctx: &Context,
        plan: &[Planned],
        dek: &DataKey,
    ) -> Result<WrappedDek, Error> {
        let mut entries = Vec::with_capacity(plan.len());
        for kek in plan.iter() {
            let resp = calls::wrap(kek.target(), self.inner.crypto, dek, ctx.binding()).await?;
            entries.push(kek.entry(resp)?);
        }
        Ok(WrappedDek::new(ctx.classification().clone(), entries)?)
    }

    pub(super) fn backend(&self, kek: &KekRecord) -> Result<&Arc<dyn KeyBackend>, Error> {
        // KEKs registered after `build` (rotation successors) are checked here.
        served(&self.inner.backends, kek)
    }
}
