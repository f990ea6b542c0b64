//! Re-wrap: move a DEK from the KEK it was wrapped under to the current KEK of its
//! context, without touching the payload (the payload AAD does not cover the wrapped
//! DEK). The profile is checked again, and the new wrap is unwrapped and compared before
//! it is returned. Bulk re-wrap runs over a stream with bounded concurrency, reports every
//! item, and is resumable and idempotent.

use futures_util::stream::{self, StreamExt};
use subtle::ConstantTimeEq;

use std::sync::Arc;

use super::Envelope;
use super::calls::{self, Target};
use super::plan::Planned;
use super::unwrap::{Access, Admission};
use crate::audit::AuditEvent;
use crate::context::Context;
use crate::error::{Error, MisuseError};
use crate::format::{SealedHeader, WrappedDek};
use crate::payload;
use crate::secret::DataKey;

/// What a re-wrap did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RewrapOutcome {
    /// The DEK was re-wrapped under the current KEK(s).
    Rewrapped,
    /// The DEK was already wrapped under the current KEK(s): the bytes are unchanged and
    /// no backend was called.
    AlreadyCurrent,
}

/// What a bulk item holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkItemKind {
    /// A whole sealed object (only its header changes).
    Sealed,
    /// A wrapped DEK stored on its own.
    WrappedDek,
}

/// One item of a bulk re-wrap.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BulkItem {
    /// The caller's identifier (reported back with the result).
    pub id: String,
    /// The item's context.
    pub context: Context,
    /// What `bytes` holds.
    pub kind: BulkItemKind,
    /// The sealed object or wrapped DEK.
    pub bytes: Vec<u8>,
}

impl BulkItem {
    /// An item.
    pub fn new(
        id: impl Into<String>,
        context: Context,
        kind: BulkItemKind,
        bytes: Vec<u8>,
    ) -> Self {
        Self {
            id: id.into(),
            context,
            kind,
            bytes,
        }
    }
}

/// How to run a bulk re-wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkOptions {
    /// Items in flight at once (at least 1).
    pub concurrency: usize,
    /// Items to skip from the start of the stream: the checkpoint of an earlier run.
    pub skip: u64,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            skip: 0,
        }
    }
}

impl BulkOptions {
    /// With `concurrency` items in flight and `skip` items already done.
    pub fn new(concurrency: usize, skip: u64) -> Self {
        Self { concurrency, skip }
    }
}

/// Progress, reported after every item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkProgress {
    /// Items finished in this run.
    pub done: u64,
    /// Of which re-wrapped.
    pub rewrapped: u64,
    /// Of which already current.
    pub already_current: u64,
    /// Of which failed.
    pub failed: u64,
}

/// One item's result.
#[derive(Debug)]
#[non_exhaustive]
pub struct BulkResult {
    /// The item's identifier.
    pub id: String,
    /// The new bytes and what happened, or why the item failed (it is then unchanged).
    pub outcome: Result<(Vec<u8>, RewrapOutcome), Error>,
}

/// The report of a bulk re-wrap: nothing is dropped silently.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BulkReport {
    /// Every item of this run, in stream order.
    pub results: Vec<BulkResult>,
    /// Totals.
    pub progress: BulkProgress,
    /// Items skipped because of `BulkOptions::skip`.
    pub skipped: u64,
    /// How many items from the start of the stream are done (all succeeded): persist it
    /// and pass it as `BulkOptions::skip` to resume.
    pub checkpoint: u64,
    /// Set when the summary could not be audited (the re-wraps themselves stand).
    pub audit_error: Option<Error>,
}

impl Envelope {
    /// Re-wraps a wrapped DEK under the current KEK(s) of `ctx`.
    ///
    /// # Errors
    /// As [`Envelope::unwrap_data_key`] (a retired or revoked KEK is refused: see
    /// [`Envelope::danger_break_glass_rewrap`]), and [`Error::Policy`] when the current
    /// KEK's algorithm is not allowed for the classification.
    pub async fn rewrap_dek(
        &self,
        ctx: &Context,
        wrapped: &[u8],
    ) -> Result<(Vec<u8>, RewrapOutcome), Error> {
        self.rewrap_dek_as(ctx, wrapped, None).await
    }

    /// Re-wraps the DEK of a sealed object: only the header changes; the ciphertext and
    /// tag are copied as they are.
    ///
    /// # Errors
    /// As [`Envelope::rewrap_dek`].
    pub async fn rewrap_sealed(
        &self,
        ctx: &Context,
        sealed: &[u8],
    ) -> Result<(Vec<u8>, RewrapOutcome), Error> {
        self.rewrap_sealed_as(ctx, sealed, None).await
    }

    /// **Break glass.** Re-wraps a DEK wrapped under a *revoked* KEK, to migrate data to
    /// the current KEK after an incident. The only path that reads under a revoked KEK;
    /// it requires an audit log, and records the reason before returning anything.
    /// Works on sealed objects and wrapped DEKs alike.
    ///
    /// # Errors
    /// [`Error::Misuse`] without an audit log; otherwise as [`Envelope::rewrap_dek`].
    pub async fn danger_break_glass_rewrap(
        &self,
        ctx: &Context,
        kind: BulkItemKind,
        bytes: &[u8],
        reason: &str,
    ) -> Result<(Vec<u8>, RewrapOutcome), Error> {
        if self.inner.audit.is_none() {
            return Err(MisuseError::BreakGlassNeedsAudit.into());
        }
        match kind {
            BulkItemKind::Sealed => self.rewrap_sealed_as(ctx, bytes, Some(reason)).await,
            _ => self.rewrap_dek_as(ctx, bytes, Some(reason)).await,
        }
    }

    /// Re-wraps a stored wrapped DEK (break-glass when a reason is given); returns the
    /// bytes unchanged when already current.
    async fn rewrap_dek_as(
        &self,
        ctx: &Context,
        wrapped: &[u8],
        break_glass: Option<&str>,
    ) -> Result<(Vec<u8>, RewrapOutcome), Error> {
        let w = WrappedDek::decode(wrapped)?;
        let (new, outcome, _) = self.rewrap_wrapped(ctx, &w, break_glass, false).await?;
        Ok(match outcome {
            RewrapOutcome::AlreadyCurrent => (wrapped.to_vec(), outcome),
            RewrapOutcome::Rewrapped => (new.encode(), outcome),
        })
    }

    async fn rewrap_sealed_as(
        &self,
        ctx: &Context,
        sealed: &[u8],
        break_glass: Option<&str>,
    ) -> Result<(Vec<u8>, RewrapOutcome), Error> {
        let (header, header_len) = SealedHeader::decode_prefix(sealed)?;
        let (new, outcome, dek) = self
            .rewrap_wrapped(ctx, header.wrapped_dek(), break_glass, true)
            .await?;
        let Some(dek) = dek else {
            return Ok((sealed.to_vec(), outcome));
        };
        // The object's commitment must match the DEK now re-wrapped.
        payload::check_commitment(self.inner.crypto, &dek, &header)?;
        let body = sealed
            .get(header_len..)
            .ok_or(Error::Internal("a header longer than its object"))?;
        let mut out = header.with_wrapped_dek(new).encode();
        out.extend_from_slice(body);
        Ok((out, outcome))
    }

    /// Checks the profile for the current plan (before any backend call), unwraps
    /// (break-glass when a reason is given: a read under a revoked KEK is recorded where
    /// it is granted), wraps under the plan, and verifies every new copy by unwrapping
    /// it on its own. Returns the DEK too, for the sealed-object commitment check.
    /// `sealed`: the caller checks the DEK against the object's commitment, which is
    /// what lets the re-wrap run inside the backend (the DEK is then never compared
    /// with the old copy's here).
    async fn rewrap_wrapped(
        &self,
        ctx: &Context,
        w: &WrappedDek,
        break_glass: Option<&str>,
        sealed: bool,
    ) -> Result<(WrappedDek, RewrapOutcome, Option<DataKey>), Error> {
        let plan = self.wrap_plan(ctx)?;
        let current = w.entries().len() == plan.len()
            && w.entries()
                .iter()
                .zip(plan.iter())
                .all(|(e, k)| e.kek() == &k.reference);
        if current {
            return Ok((w.clone(), RewrapOutcome::AlreadyCurrent, None));
        }
        // A re-wrap the profile refuses must not read the DEK first.
        self.check_plan(ctx, &plan)?;
        if sealed
            && break_glass.is_none()
            && let Some((new, dek)) = self.rewrap_in_backend(ctx, w, &plan).await?
        {
            return Ok((new, RewrapOutcome::Rewrapped, Some(dek)));
        }
        let to = plan
            .first()
            .map(|p| &p.reference)
            .ok_or(Error::Internal("a wrap plan without KEKs"))?;
        let access = match break_glass {
            Some(reason) => Access::BreakGlass { reason, to },
            None => Access::Normal,
        };
        let dek = self.unwrap_dek_as(ctx, w, access).await?;
        // The plan checked above, so the copies go exactly where it said.
        let new = self.wrap_under(ctx, &plan, &dek).await?;
        for entry in new.entries() {
            let single = WrappedDek::new(new.classification().clone(), vec![entry.clone()])?;
            let check = self.unwrap_dek_as(ctx, &single, Access::Verify).await?;
            if !bool::from(check.expose_secret().ct_eq(dek.expose_secret())) {
                return Err(Error::Crypto);
            }
        }
        Ok((new, RewrapOutcome::Rewrapped, Some(dek)))
    }

    /// Re-wraps a sealed object's DEK inside the backend when it has one copy and the
    /// plan one KEK, both of one backend instance and algorithm, and the backend can
    /// (Transit versions of one key): the DEK does not come here to be wrapped again.
    /// The old copy passes the same rules as an unwrap first; the new copy is verified
    /// by unwrapping it, and the DEK it gives is checked against the object's key
    /// commitment by the caller, so a backend that re-wrapped another key is caught.
    /// `None`: use the unwrap-then-wrap path.
    async fn rewrap_in_backend(
        &self,
        ctx: &Context,
        w: &WrappedDek,
        plan: &[Planned],
    ) -> Result<Option<(WrappedDek, DataKey)>, Error> {
        let ([old], [to]) = (w.entries(), plan) else {
            return Ok(None);
        };
        self.check_claims(ctx, w)?;
        let now = self.inner.clock.now();
        let from = match self.admit(ctx, old, Access::Normal, now)? {
            Admission::Admitted(r) => r,
            // The only copy, refused (and audited once): what the unwrap would answer.
            Admission::Refused(err) => return Err(err),
            Admission::Skip => return Ok(None),
        };
        let Some(backend) = from
            .backend
            .as_ref()
            .filter(|b| Arc::ptr_eq(b, &to.backend))
        else {
            return Ok(None);
        };
        if from.record.algorithm != to.algorithm {
            return Ok(None);
        }
        let source = Target {
            backend: backend.as_ref(),
            locator: &from.locator,
            key_id: Some(&from.record.key_id),
            algorithm: from.record.algorithm,
        };
        let rewrapped = calls::rewrap(
            source,
            to.target(),
            self.inner.crypto,
            old.params(),
            old.wrapped(),
            ctx.binding(),
        )
        .await?;
        let Some(resp) = rewrapped else {
            return Ok(None);
        };
        let entry = to.entry(resp)?;
        from.counters.unwrapped();
        let new = WrappedDek::new(w.classification().clone(), vec![entry])?;
        let dek = self.unwrap_dek_as(ctx, &new, Access::Verify).await?;
        Ok(Some((new, dek)))
    }

    async fn rewrap_item(&self, item: &BulkItem) -> Result<(Vec<u8>, RewrapOutcome), Error> {
        match item.kind {
            BulkItemKind::Sealed => self.rewrap_sealed(&item.context, &item.bytes).await,
            _ => self.rewrap_dek(&item.context, &item.bytes).await,
        }
    }

    /// Re-wraps every item of a stream under the current KEKs: at most
    /// `options.concurrency` in flight, every item reported (a failed item keeps its old
    /// bytes and can be retried), a summary audited.
    ///
    /// `on_item` is called after each item, in stream order, with the totals so far, the
    /// item's result and the checkpoint *including* that item: persist the item's new
    /// bytes first, then the checkpoint, and a crash at any point loses nothing (resume by
    /// passing the last persisted checkpoint as `options.skip` with the same stream).
    /// Idempotent: items already under the current KEKs are returned unchanged without a
    /// backend call, so a rerun after failures finishes the job.
    ///
    /// Never fails as a whole: per-item errors are in the report, and a failure to audit
    /// the summary is in [`BulkReport::audit_error`].
    pub async fn bulk_rewrap<I>(
        &self,
        items: I,
        options: BulkOptions,
        mut on_item: impl FnMut(&BulkProgress, &BulkResult, u64),
    ) -> BulkReport
    where
        I: IntoIterator<Item = BulkItem>,
    {
        let skip = usize::try_from(options.skip).unwrap_or(usize::MAX);
        let mut report = BulkReport {
            checkpoint: options.skip,
            ..BulkReport::default()
        };
        let mut iter = items.into_iter();
        for _ in 0..skip {
            if iter.next().is_none() {
                break;
            }
            report.skipped = report.skipped.saturating_add(1);
        }
        let mut all_ok = true;
        let mut results = stream::iter(iter)
            .map(|item| async move {
                let outcome = self.rewrap_item(&item).await;
                BulkResult {
                    id: item.id,
                    outcome,
                }
            })
            .buffered(options.concurrency.max(1));
        while let Some(result) = results.next().await {
            let p = &mut report.progress;
            p.done = p.done.saturating_add(1);
            match &result.outcome {
                Ok((_, RewrapOutcome::Rewrapped)) => p.rewrapped = p.rewrapped.saturating_add(1),
                Ok((_, _)) => p.already_current = p.already_current.saturating_add(1),
                Err(_) => {
                    p.failed = p.failed.saturating_add(1);
                    all_ok = false;
                }
            }
            if all_ok {
                report.checkpoint = report.checkpoint.saturating_add(1);
            }
            on_item(&report.progress, &result, report.checkpoint);
            report.results.push(result);
        }
        let p = report.progress;
        report.audit_error = self
            .audit(AuditEvent::BulkRewrap {
                processed: p.done,
                rewrapped: p.rewrapped,
                already_current: p.already_current,
                failed: p.failed,
            })
            .err();
        report
    }
}
