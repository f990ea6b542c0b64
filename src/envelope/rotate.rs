//! Rotation: a successor created inside the current KEK's backend becomes active, the
//! current KEK is deprecated for its overlap window. Triggered (`rotate_kek`) or
//! scheduled by cadence (`rotate_due`).

use super::Envelope;
use super::calls::{self, Target, backend_for};
use crate::backend::KekSpec;
use crate::error::{Error, KeyStateError};
use crate::format::{BackendId, WrapAlgorithm};
use crate::format::{KekRef, Name};
use crate::lifecycle::{KekRecord, NewKek};
use crate::locator::KekLocator;

impl Envelope {
    /// Rotates the KEK of a tenant and purpose (a triggered rotation): creates the
    /// successor inside the current KEK's backend with the same algorithm, makes it
    /// active, deprecates the current KEK for its overlap window (cadence and window
    /// carried over), and audits it. Returns the new KEK.
    ///
    /// # Errors
    /// [`Error::KeyState`] when the scope has no active KEK, [`Error::Backend`] when the
    /// backend cannot create the successor, [`Error::Misuse`] when the ring refuses.
    pub async fn rotate_kek(&self, tenant: &Name, purpose: &Name) -> Result<KekRef, Error> {
        let current = self.active_kek(tenant, purpose)?;
        let backend = self.backend(&current)?;
        let spec = KekSpec::new(current.algorithm, format!("{tenant}-{purpose}"))
            .successor_of(&current.locator);
        let created = calls::create_kek(Target::of(backend, &current), &spec).await?;
        self.install_successor(
            &current,
            current.backend,
            created.locator,
            current.algorithm,
        )
    }

    /// Rotates a scope to a KEK that already exists, instead of creating one in the
    /// current KEK's backend: a tenant's own KMS key or Transit key replacing a local
    /// KEK (bring your own key). The successor keeps the current KEK's overlap window,
    /// cadence and inventory scope; the backend for `backend` must be configured, and
    /// the classification profile is checked at every wrap as for any KEK. Check that
    /// the key works (a wrap and an unwrap) before calling this: the ring has no way to.
    ///
    /// # Errors
    /// [`Error::KeyState`] when the scope has no active KEK, [`Error::Config`] when no
    /// backend of that kind is configured or it does not offer `algorithm`,
    /// [`Error::Misuse`] when the ring refuses (the locator is already registered).
    pub async fn rotate_kek_to(
        &self,
        tenant: &Name,
        purpose: &Name,
        backend: BackendId,
        locator: KekLocator,
        algorithm: WrapAlgorithm,
    ) -> Result<KekRef, Error> {
        let current = self.active_kek(tenant, purpose)?;
        // The backend must be here and offer the algorithm before the ring names the
        // key, which it does in the backend's stable form (an alias resolved to its key).
        let b = backend_for(
            &self.inner.backends,
            backend,
            successor_instance(&current, backend).as_deref(),
            algorithm,
        )?;
        let target = Target {
            backend: b.as_ref(),
            locator: &locator,
            algorithm,
        };
        let locator = calls::resolve_kek(target).await?;
        self.install_successor(&current, backend, locator, algorithm)
    }

    /// The scope's active KEK.
    fn active_kek(&self, tenant: &Name, purpose: &Name) -> Result<KekRecord, Error> {
        self.inner
            .ring
            .read(|r| r.active(tenant, purpose).cloned())
            .ok_or_else(|| {
                KeyStateError::NoWrappingKek {
                    tenant: tenant.clone(),
                    purpose: purpose.clone(),
                }
                .into()
            })
    }

    /// Registers `locator` as `current`'s successor (the next version of its scope); the
    /// caller has checked that its backend serves `algorithm`.
    fn install_successor(
        &self,
        current: &KekRecord,
        backend: BackendId,
        locator: KekLocator,
        algorithm: WrapAlgorithm,
    ) -> Result<KekRef, Error> {
        let (tenant, purpose) = (current.reference.tenant(), current.reference.purpose());
        let next = KekRef::from_parts(
            tenant.clone(),
            purpose.clone(),
            current.reference.version().saturating_add(1),
        )?;
        let mut new = NewKek::new(next.clone(), backend, locator, algorithm)
            .overlap_seconds(current.overlap_seconds)
            .inventory_scope(current.inventory_scope);
        new.instance = successor_instance(current, backend);
        new.cadence = current.cadence;
        let now = self.inner.clock.now();
        // Recorded by the ring's recorder (the audit log) before it takes effect.
        self.inner
            .ring
            .apply(|r| r.rotate(new, now))
            .map_err(Error::from)?;
        Ok(next)
    }

    /// Rotates every active KEK whose cadence says it is due now (scheduled rotation).
    /// Returns `(old, new)` for each rotation; stops at the first failure.
    ///
    /// # Errors
    /// As [`Envelope::rotate_kek`].
    pub async fn rotate_due(&self) -> Result<Vec<(KekRef, KekRef)>, Error> {
        let now = self.inner.clock.now();
        let due: Vec<KekRef> = self.inner.ring.read(|r| {
            r.due(now)
                .into_iter()
                .map(|k| k.reference.clone())
                .collect()
        });
        let mut out = Vec::with_capacity(due.len());
        for old in due {
            let new = self.rotate_kek(old.tenant(), old.purpose()).await?;
            out.push((old, new));
        }
        Ok(out)
    }
}

/// The backend instance of `current`'s successor in `backend`: the same instance when the
/// kind is the same, else that kind's default instance.
fn successor_instance(current: &KekRecord, backend: BackendId) -> Option<String> {
    (backend == current.backend)
        .then(|| current.instance.clone())
        .flatten()
}
