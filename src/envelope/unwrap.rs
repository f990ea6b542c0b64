//! The unwrap rules: the claims a wrapped DEK makes are checked against the caller's
//! context and the key ring before any backend is called, then its copies are tried in
//! order (see [`Envelope::unwrap_dek_as`]).

use std::sync::Arc;

use super::Envelope;
use super::calls::{self, Target};
use super::denials::Denied;
use super::plan::Resolved;
use crate::audit::AuditEvent;
use crate::context::Context;
use crate::error::{ContextError, Error, KeyStateError};
use crate::format::{KekRef, Name, WrappedDek, WrappedEntry};
use crate::lifecycle::{KekRecord, KekState};
use crate::secret::DataKey;

/// What [`Envelope::admit`] decided for one copy.
pub(super) enum Admission {
    /// Not for this reader (an unknown KEK, an excluded one): try the next copy.
    Skip,
    /// Refused (the profile): try the next copy, and report this if none is left.
    Refused(Error),
    /// May be unwrapped through its backend.
    Admitted(Arc<Resolved>),
}

/// Which rules an unwrap follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access<'a> {
    /// The normal rules, with the cache.
    Normal,
    /// The normal rules, bypassing the cache (verifying a fresh wrap).
    Verify,
    /// The normal rules, bypassing the cache and never using a copy under this KEK or
    /// under any KEK naming the same backend key (checking that objects stay readable
    /// once its material is gone).
    Without(&'a KekRecord),
    /// Also reads under a revoked KEK, recorded with the reason and the KEK the DEK is
    /// being moved to before the read.
    BreakGlass {
        /// The operator's reason.
        reason: &'a str,
        /// The KEK the DEK is re-wrapped under.
        to: &'a KekRef,
    },
}

impl Envelope {
    /// Checks the wrapped DEK's claims against `ctx` and the key ring, then unwraps it
    /// with the first usable copy.
    pub(super) async fn unwrap_dek(
        &self,
        ctx: &Context,
        wrapped: &WrappedDek,
    ) -> Result<DataKey, Error> {
        self.unwrap_dek_as(ctx, wrapped, Access::Normal).await
    }

    /// The claims check, before any backend call: the wrapped DEK's classification is the
    /// context's, and every copy is under a KEK of the context's tenant and of its purpose
    /// or a copy scope the reader accepts for it.
    ///
    /// # Errors
    /// [`Error::Context`] naming the first claim that does not hold.
    pub(super) fn check_claims(&self, ctx: &Context, wrapped: &WrappedDek) -> Result<(), Error> {
        if wrapped.classification() != ctx.classification() {
            return Err(ContextError::Classification {
                expected: ctx.classification().clone(),
                found: wrapped.classification().clone(),
            }
            .into());
        }
        for e in wrapped.entries() {
            if e.kek().tenant() != ctx.tenant() {
                return Err(ContextError::Tenant {
                    expected: ctx.tenant().clone(),
                    found: e.kek().tenant().clone(),
                }
                .into());
            }
            if !self.accepts_purpose(ctx, e.kek().purpose()) {
                return Err(ContextError::Purpose {
                    expected: ctx.purpose().clone(),
                    found: e.kek().purpose().clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Whether a copy under `purpose` (same tenant) may protect an object of `ctx`: its
    /// own purpose, or a copy scope its route configures.
    fn accepts_purpose(&self, ctx: &Context, purpose: &Name) -> bool {
        if purpose == ctx.purpose() {
            return true;
        }
        let scope = ctx.scope();
        self.inner.copies.get(&scope).is_some_and(|c| {
            c.iter()
                .any(|s| s.tenant == scope.tenant && &s.purpose == purpose)
        }) || self
            .inner
            .accepted
            .get(&scope)
            .is_some_and(|c| c.contains(purpose))
    }

    /// Rules 2 and 3 for one copy, before its backend is called: whether to skip it, a
    /// refusal that lets the next copy be tried, an error that stops the unwrap, or the
    /// resolved KEK to call. Shared by the unwrap and by the re-wrap inside a backend.
    pub(super) fn admit(
        &self,
        ctx: &Context,
        e: &WrappedEntry,
        access: Access<'_>,
        now: u64,
    ) -> Result<Admission, Error> {
        if let Access::Without(excluded) = access
            && e.kek() == &excluded.reference
        {
            return Ok(Admission::Skip);
        }
        let Some(resolved) = self.resolve(e.kek()) else {
            return Ok(Admission::Skip);
        };
        let kek = &resolved.record;
        // Nor a copy under another name for the same backend key.
        if let Access::Without(excluded) = access
            && kek.same_backend_key(excluded)
        {
            return Ok(Admission::Skip);
        }
        if kek.backend != e.backend() || kek.algorithm != e.algorithm() {
            return Err(ContextError::KekClaim {
                kek: e.kek().clone(),
                claimed_backend: e.backend(),
                claimed_algorithm: e.algorithm(),
            }
            .into());
        }
        if let Err(refused) = self
            .inner
            .profile
            .check(ctx.classification(), kek.algorithm)
        {
            resolved.counters.denied();
            self.audit_denial(
                kek,
                Denied::Profile(ctx.classification().clone()),
                ctx.tenant(),
            )?;
            return Ok(Admission::Refused(refused.into()));
        }
        let break_glass = match access {
            Access::BreakGlass { reason, to } if kek.state == KekState::Revoked => {
                Some((reason, to))
            }
            _ => None,
        };
        if !kek.can_unwrap(now) && break_glass.is_none() {
            resolved.counters.denied();
            let state = if kek.state == KekState::Deprecated {
                "deprecated, overlap window ended"
            } else {
                kek.state.name()
            };
            self.audit_denial(kek, Denied::State(state), ctx.tenant())?;
            return Err(KeyStateError::NotUsable {
                kek: kek.reference.clone(),
                state,
            }
            .into());
        }
        if let Some((reason, to)) = break_glass {
            // Access granted only because of break-glass: recorded here, before the
            // read, naming the copy read. No record, no read.
            self.audit(AuditEvent::BreakGlassRewrap {
                from: kek.reference.clone(),
                to: to.clone(),
                reason: reason.to_owned(),
            })?;
        }
        Ok(Admission::Admitted(resolved))
    }

    /// The unwrap rules, in order:
    ///
    /// 1. the classification is the context's, and **every** copy is under a KEK of the
    ///    context's tenant and of its purpose or a copy scope its route configures
    ///    ([`ContextError`] otherwise, before any backend call);
    /// 2. copies are tried in order; a copy whose KEK this instance does not know (in an
    ///    accepted scope: a disaster-recovery copy meant for another region's reader) is
    ///    skipped, as is one whose algorithm the profile does not allow for the object's
    ///    classification (audited; [`Error::Policy`] if no copy is left);
    /// 3. the first known copy decides: its header claim must match the ring, its state
    ///    must allow the unwrap (break-glass access reads under a revoked KEK, recorded
    ///    before the read), and its backend's answer must name its key; only a failure
    ///    the error calls [`try_next_copy`](crate::BackendError::try_next_copy) (a backend that
    ///    is down, slow or throttling, no longer holds the key or holds only its public
    ///    half) falls through to the next copy.
    pub(super) async fn unwrap_dek_as(
        &self,
        ctx: &Context,
        wrapped: &WrappedDek,
        access: Access<'_>,
    ) -> Result<DataKey, Error> {
        self.check_claims(ctx, wrapped)?;
        let entries = wrapped.entries();
        let primary = entries
            .first()
            .ok_or(Error::Internal("a wrapped DEK without entries"))?;
        let now = self.inner.clock.now();
        let mut last_err: Option<Error> = None;
        for e in entries {
            let resolved = match self.admit(ctx, e, access, now)? {
                Admission::Skip => continue,
                Admission::Refused(err) => {
                    last_err = Some(err);
                    continue;
                }
                Admission::Admitted(r) => r,
            };
            let kek = &resolved.record;
            let epoch = resolved.epoch;
            if let Some(cache) = &self.inner.cache
                && access == Access::Normal
                && let Some(dek) = cache.get(e, ctx, now, epoch, &self.inner.ring)
            {
                resolved.counters.unwrapped();
                return Ok(dek);
            }
            let backend = match &resolved.backend {
                Some(b) => b,
                None => self.backend(kek)?,
            };
            let target = Target {
                backend: backend.as_ref(),
                locator: &resolved.locator,
                key_id: Some(&kek.key_id),
                algorithm: kek.algorithm,
            };
            match calls::unwrap(
                target,
                self.inner.crypto,
                e.params(),
                e.wrapped(),
                ctx.binding(),
            )
            .await
            {
                Ok(dek) => {
                    resolved.counters.unwrapped();
                    if let Some(cache) = &self.inner.cache
                        && access == Access::Normal
                    {
                        cache.put(e, ctx, &dek, kek.reference.clone(), now, epoch);
                    }
                    return Ok(dek);
                }
                // The next copy may live elsewhere: that is what copies are for. The rule
                // of which failures fall through is the error's own.
                Err(Error::Backend(err)) if err.try_next_copy() => last_err = Some(err.into()),
                Err(err) => return Err(err),
            }
        }
        Err(last_err.unwrap_or_else(|| KeyStateError::UnknownKek(primary.kek().clone()).into()))
    }
}
