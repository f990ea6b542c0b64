//! Retirement and destruction that check the stored objects first.
//!
//! A header names the KEK it claims; that claim is metadata, so counting headers cannot
//! tell whether an object is still readable once a KEK's material is gone (a v1 copy
//! relabelled as v2 looks current to a header scan and to bulk re-wrap, yet only v1
//! opens it). Before a retirement or destruction, [`Envelope::check_retirement`] both
//! counts the objects whose header names the KEK and unwraps every object (or a sample
//! the caller sizes) through its other copies only; [`Envelope::retire_kek`] and
//! [`Envelope::destroy_kek`] refuse unless both come back clear, or the caller forces it
//! (recorded as forced).

use futures_util::stream::{self, StreamExt};

use super::Envelope;
use super::calls::{self, Target};
use super::unwrap::Access;
use crate::backend::ServiceOutcome;
use crate::error::{ConfigError, Error, KeyStateError, MisuseError};
use crate::format::{KekRef, SealedHeader, WrappedDek};
use crate::lifecycle::{KekRecord, KekState};
use crate::payload;

use super::rewrap::{BulkItem, BulkItemKind};

/// How to check stored objects before a KEK is retired or destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetireOptions {
    /// Unwrap this many objects, chosen at random, without the KEK; `None` (the default)
    /// unwraps every object. Every header is scanned either way.
    pub sample: Option<usize>,
    /// Go ahead even when objects still need the KEK (the transition records it as
    /// forced, with the count).
    pub force: bool,
    /// Objects unwrapped at once (at least 1).
    pub concurrency: usize,
}

impl Default for RetireOptions {
    fn default() -> Self {
        Self {
            sample: None,
            force: false,
            concurrency: 8,
        }
    }
}

impl RetireOptions {
    /// Checks every object, does not force, 8 at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unwraps only `n` objects chosen at random.
    #[must_use]
    pub fn sample(mut self, n: usize) -> Self {
        self.sample = Some(n);
        self
    }

    /// Proceeds even when objects still need the KEK (recorded as forced).
    #[must_use]
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Unwraps `n` objects at once.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
}

/// What a check of the stored objects found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RetireCheck {
    /// Objects whose headers were scanned.
    pub scanned: u64,
    /// Objects whose header names a copy under the KEK.
    pub outstanding: u64,
    /// Objects unwrapped through their other copies.
    pub verified: u64,
    /// Objects that did not open without the KEK (or did not parse), with why.
    pub unreadable: Vec<(String, Error)>,
    /// After a retirement or destruction: what the backend did in its service (see
    /// [`KeyBackend::retire_kek`](crate::backend::KeyBackend::retire_kek)): applied, not
    /// applicable, or skipped and why (another KEK still in use needs the service key).
    pub service: Option<ServiceOutcome>,
    /// After a retirement: why the backend could not stop the KEK in its service. The
    /// key ring's retirement stands either way and is what every envelope enforces.
    pub backend_error: Option<crate::backend::BackendError>,
}

impl RetireCheck {
    /// Whether nothing still needs the KEK.
    pub fn is_clear(&self) -> bool {
        self.outstanding == 0 && self.unreadable.is_empty()
    }

    /// Objects that still need the KEK: the count a forced transition records.
    pub fn blockers(&self) -> u64 {
        self.outstanding
            .saturating_add(u64::try_from(self.unreadable.len()).unwrap_or(u64::MAX))
    }
}

/// The wrapped DEK an item carries.
fn wrapped_of(item: &BulkItem) -> Result<WrappedDek, Error> {
    Ok(match item.kind {
        BulkItemKind::Sealed => SealedHeader::decode_prefix(&item.bytes)?
            .0
            .wrapped_dek()
            .clone(),
        _ => WrappedDek::decode(&item.bytes)?,
    })
}

/// `n` distinct indices below `len`, chosen at random (all of them when `n >= len`).
fn sample_indices(len: usize, n: usize) -> Result<Vec<usize>, Error> {
    let mut idx: Vec<usize> = (0..len).collect();
    if n >= len {
        return Ok(idx);
    }
    for i in 0..n {
        let mut r = [0u8; 8];
        crate::crypto::fill_random(&mut r)?;
        let span = u64::try_from(len - i).unwrap_or(u64::MAX);
        let j = i + usize::try_from(u64::from_le_bytes(r) % span).unwrap_or(0);
        idx.swap(i, j);
    }
    idx.truncate(n);
    idx.sort_unstable();
    Ok(idx)
}

impl Envelope {
    /// Opens an item's DEK without any copy under `kek` or its backend key (bypassing the
    /// cache); for a sealed object, also checks the DEK against the object's commitment.
    async fn verify_without(&self, item: &BulkItem, kek: &KekRecord) -> Result<(), Error> {
        match item.kind {
            BulkItemKind::Sealed => {
                let (header, _) = SealedHeader::decode_prefix(&item.bytes)?;
                let dek = self
                    .unwrap_dek_as(&item.context, header.wrapped_dek(), Access::Without(kek))
                    .await?;
                payload::check_commitment(self.inner.crypto, &dek, &header).map(|_| ())
            }
            _ => {
                let w = WrappedDek::decode(&item.bytes)?;
                self.unwrap_dek_as(&item.context, &w, Access::Without(kek))
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Checks what retiring or destroying `kek` would leave unreadable: scans every
    /// item's header for copies under `kek`, and unwraps every item (or
    /// `options.sample` of them, at random) through its other copies only. Changes
    /// nothing; a backend is called for each item unwrapped.
    ///
    /// # Errors
    /// [`Error::KeyState`] for a KEK not in the ring, [`Error::Misuse`] for a sample of
    /// 0, [`Error::Rng`] when sampling fails. Per-item failures are in
    /// [`RetireCheck::unreadable`].
    pub async fn check_retirement<I>(
        &self,
        kek: &KekRef,
        items: I,
        options: RetireOptions,
    ) -> Result<RetireCheck, Error>
    where
        I: IntoIterator<Item = BulkItem>,
    {
        if options.sample == Some(0) {
            return Err(MisuseError::InvalidOption {
                option: "RetireOptions::sample",
                reason: "a sample of 0 objects verifies nothing",
            }
            .into());
        }
        let record = &self.kek_record(kek)?;
        let items: Vec<BulkItem> = items.into_iter().collect();
        let mut check = RetireCheck::default();
        let mut parsed = Vec::with_capacity(items.len());
        for item in items {
            check.scanned = check.scanned.saturating_add(1);
            match wrapped_of(&item) {
                Ok(w) => {
                    if w.entries().iter().any(|e| e.kek() == kek) {
                        check.outstanding = check.outstanding.saturating_add(1);
                    }
                    parsed.push(item);
                }
                Err(e) => check.unreadable.push((item.id, e)),
            }
        }
        let chosen = sample_indices(parsed.len(), options.sample.unwrap_or(usize::MAX))?;
        let mut chosen = chosen.into_iter().peekable();
        let picked: Vec<BulkItem> = parsed
            .into_iter()
            .enumerate()
            .filter(|(i, _)| chosen.next_if_eq(i).is_some())
            .map(|(_, item)| item)
            .collect();
        let mut results = stream::iter(picked)
            .map(|item| async move {
                let r = self.verify_without(&item, record).await;
                (item.id, r)
            })
            .buffered(options.concurrency.max(1));
        while let Some((id, r)) = results.next().await {
            match r {
                Ok(()) => check.verified = check.verified.saturating_add(1),
                Err(e) => check.unreadable.push((id, e)),
            }
        }
        Ok(check)
    }

    /// The ring's record of `kek`.
    fn kek_record(&self, kek: &KekRef) -> Result<KekRecord, Error> {
        self.inner
            .ring
            .read(|r| r.get(kek).cloned())
            .ok_or_else(|| KeyStateError::UnknownKek(kek.clone()).into())
    }

    /// [`Envelope::check_retirement`], refused unless it comes back clear or
    /// `options.force` says go ahead anyway.
    async fn check_cleared<I>(
        &self,
        kek: &KekRef,
        items: I,
        options: RetireOptions,
    ) -> Result<RetireCheck, Error>
    where
        I: IntoIterator<Item = BulkItem>,
    {
        let check = self.check_retirement(kek, items, options).await?;
        if check.is_clear() || options.force {
            return Ok(check);
        }
        Err(KeyStateError::StillNeeded {
            kek: kek.clone(),
            outstanding: check.outstanding,
            unreadable: u64::try_from(check.unreadable.len()).unwrap_or(u64::MAX),
        }
        .into())
    }

    /// Retires a deprecated KEK once its overlap window has ended, after
    /// [`Envelope::check_retirement`] found no object that still needs it (or with
    /// `options.force`, recorded as forced with the count). Recorded in the audit log when
    /// the envelope has one.
    ///
    /// # Errors
    /// [`Error::KeyState`] ([`KeyStateError::StillNeeded`]) when objects still need the
    /// KEK; [`Error::Misuse`] when the ring refuses (not deprecated, window open);
    /// [`Error::Rng`].
    pub async fn retire_kek<I>(
        &self,
        kek: &KekRef,
        items: I,
        options: RetireOptions,
    ) -> Result<RetireCheck, Error>
    where
        I: IntoIterator<Item = BulkItem>,
    {
        let check = self.check_cleared(kek, items, options).await?;
        let now = self.inner.clock.now();
        let blockers = check.blockers();
        self.inner
            .ring
            .apply(|r| r.retire(kek, now, blockers, options.force))
            .map_err(Error::from)?;
        let mut check = check;
        let record = self.kek_record(kek)?;
        if let Ok(backend) = self.backend(&record) {
            let in_use = self.in_use_beside(&record);
            match calls::retire_kek(Target::of(backend, &record), &in_use).await {
                Ok(outcome) => check.service = Some(outcome),
                Err(e) => check.backend_error = Some(e),
            }
        }
        Ok(check)
    }

    /// The locators of the KEKs still in use (not retired, revoked or destroyed) on
    /// `record`'s backend instance, `record` left out: what a service-side change to
    /// `record`'s key must leave working.
    fn in_use_beside(&self, record: &KekRecord) -> Vec<crate::locator::KekLocator> {
        self.inner.ring.read(|r| {
            r.records()
                .filter(|o| {
                    o.reference != record.reference
                        && !o.state.has_ended()
                        && o.backend == record.backend
                        && o.instance == record.instance
                })
                .map(|o| o.locator.clone())
                .collect()
        })
    }

    /// Destroys a retired or revoked KEK: [`Envelope::record_destruction`], then
    /// [`Envelope::delete_destroyed_kek`]. Destroying a revoked KEK that objects still
    /// need is a crypto-shred: pass `options.force`.
    ///
    /// # Errors
    /// As the two steps.
    pub async fn destroy_kek<I>(
        &self,
        kek: &KekRef,
        items: I,
        options: RetireOptions,
    ) -> Result<RetireCheck, Error>
    where
        I: IntoIterator<Item = BulkItem>,
    {
        let mut check = self.record_destruction(kek, items, options).await?;
        check.service = Some(self.delete_destroyed_kek(kek).await?);
        Ok(check)
    }

    /// The first step of a destruction: checks the stored objects as
    /// [`Envelope::retire_kek`] does, then records the destruction in the ring (and the
    /// audit log). No envelope uses the KEK again; its material is still in the backend.
    /// Persist the ring (and what the audit log holds) before the second step,
    /// [`Envelope::delete_destroyed_kek`], so that a crash in between leaves the record
    /// and a key to delete again, never a key gone without its record.
    ///
    /// # Errors
    /// As [`Envelope::retire_kek`]; [`Error::KeyState`]
    /// ([`KeyStateError::SharedBackendKey`]) when another KEK still in use names the same
    /// backend key; [`Error::Config`] when the KEK's backend is not configured here.
    pub async fn record_destruction<I>(
        &self,
        kek: &KekRef,
        items: I,
        options: RetireOptions,
    ) -> Result<RetireCheck, Error>
    where
        I: IntoIterator<Item = BulkItem>,
    {
        let record = self.kek_record(kek)?;
        // The backend must be here to delete the key later: checked before anything
        // changes.
        self.backend(&record)?;
        // Another KEK still in use (active, deprecated or disabled) may name the same
        // backend key (one key serving several tenants): deleting it would take their
        // objects with it.
        let sharing = self.inner.ring.read(|r| {
            r.records()
                .find(|o| {
                    o.reference != record.reference
                        && !o.state.has_ended()
                        && o.same_backend_key(&record)
                })
                .map(|o| o.reference.clone())
        });
        if let Some(other) = sharing {
            return Err(KeyStateError::SharedBackendKey {
                kek: kek.clone(),
                other,
            }
            .into());
        }
        let check = self.check_cleared(kek, items, options).await?;
        let now = self.inner.clock.now();
        self.inner
            .ring
            .apply(|r| r.destroy(kek, now))
            .map_err(Error::from)?;
        Ok(check)
    }

    /// The second step of a destruction: deletes the material of a KEK the ring already
    /// records as destroyed, in its backend
    /// ([`KeyBackend::destroy_kek`](crate::backend::KeyBackend::destroy_kek)). Safe to
    /// repeat after a crash.
    ///
    /// # Errors
    /// [`Error::KeyState`] unless the ring records the KEK as destroyed;
    /// [`ConfigError::KeyIdentity`] when the record's locator names another key than the
    /// one the ring recorded (nothing is deleted); [`Error::Backend`] when the backend
    /// cannot delete it.
    pub async fn delete_destroyed_kek(&self, kek: &KekRef) -> Result<ServiceOutcome, Error> {
        let record = self.kek_record(kek)?;
        if record.state != KekState::Destroyed {
            return Err(KeyStateError::NotUsable {
                kek: kek.clone(),
                state: record.state.name(),
            }
            .into());
        }
        // Not `served`: the key may already be gone (a repeat after a crash). But a key
        // the backend still identifies must be the one the ring recorded: a locator
        // edited to another key is refused, never deleted.
        let backend = calls::holder(&self.inner.backends, &record)?;
        match calls::identify(backend.as_ref(), &record.locator) {
            Ok(found) if found != record.key_id => {
                return Err(ConfigError::KeyIdentity {
                    kek: kek.clone(),
                    recorded: record.key_id.tail(),
                    found: found.tail(),
                }
                .into());
            }
            Ok(_) | Err(Error::Backend(crate::backend::BackendError::KeyNotFound(_))) => {}
            Err(e) => return Err(e),
        }
        let in_use = self.in_use_beside(&record);
        match calls::destroy_kek(Target::of(backend, &record), &in_use).await {
            Ok(outcome) => Ok(outcome),
            // Already gone (a repeat after a crash): the destruction is complete.
            Err(crate::backend::BackendError::KeyNotFound(_)) => Ok(ServiceOutcome::Applied),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sample_indices;

    #[test]
    fn samples_are_distinct_sorted_and_bounded() {
        let s = sample_indices(100, 10).unwrap();
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().all(|&i| i < 100));
        assert_eq!(sample_indices(5, 10).unwrap(), vec![0, 1, 2, 3, 4]);
        assert!(sample_indices(0, 3).unwrap().is_empty());
    }
}
