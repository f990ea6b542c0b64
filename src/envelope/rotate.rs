//! Registration and rotation: a KEK the backend holds registered by its identity
//! (`register_kek`); a successor created inside the current KEK's backend, or one that
//! exists, becomes active and the current KEK is deprecated for its overlap window.
//! Triggered (`rotate_kek`, `rotate_kek_to`) or scheduled by cadence (`rotate_due`).

use super::Envelope;
use super::calls::{self, Target, backend_for, identify};
use crate::backend::KekSpec;
use crate::error::{Error, KeyStateError};
use crate::format::{BackendId, WrapAlgorithm};
use crate::format::{KekRef, Name};
use crate::lifecycle::{KekRecord, NewKek};
use crate::locator::{KekLocator, KeyIdentity};

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
        let key_id = identify(backend.as_ref(), &created.locator)?;
        self.install_successor(
            &current,
            current.backend,
            created.locator.clone(),
            key_id,
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
    /// [`Error::Backend`] when the backend cannot resolve the locator, [`Error::Misuse`]
    /// when the ring refuses: the key, in any spelling, is the current one or an earlier
    /// version's of the scope, or a retired, revoked or destroyed KEK's
    /// ([`LifecycleError::KeyReused`](crate::lifecycle::LifecycleError::KeyReused)).
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
            key_id: None,
            algorithm,
        };
        let locator = calls::resolve_kek(target).await?;
        let key_id = identify(b.as_ref(), &locator)?;
        self.install_successor(&current, backend, locator, key_id, algorithm)
    }

    /// Registers a KEK its backend already holds as the active KEK of its tenant and
    /// purpose (as [`EnvelopeBuilder::kek`](crate::EnvelopeBuilder::kek) does at build
    /// time): the backend resolves the locator to its stable form (an AWS KMS alias to
    /// the key ARN it names now, so that re-pointing the alias later moves neither
    /// unwraps nor a destruction) and identifies the key, then the ring records it.
    ///
    /// # Errors
    /// [`Error::Config`] when no backend serves `kek`, [`Error::Backend`] when it cannot
    /// resolve the locator, [`Error::Misuse`] when the ring refuses (the scope has an
    /// active KEK; the key is a retired, revoked or destroyed KEK's, or an earlier
    /// version's of the scope).
    pub async fn register_kek(&self, kek: NewKek) -> Result<KekRef, Error> {
        let b = backend_for(
            &self.inner.backends,
            kek.backend,
            kek.instance.as_deref(),
            kek.algorithm,
        )?;
        let target = Target {
            backend: b.as_ref(),
            locator: &kek.locator,
            key_id: None,
            algorithm: kek.algorithm,
        };
        let locator = calls::resolve_kek(target).await?;
        let key_id = identify(b.as_ref(), &locator)?;
        let reference = kek.reference.clone();
        let mut kek = kek.key_id(key_id);
        kek.locator = locator;
        let now = self.inner.clock.now();
        self.inner
            .ring
            .apply(|r| r.register(kek, now))
            .map_err(Error::from)?;
        Ok(reference)
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
        key_id: KeyIdentity,
        algorithm: WrapAlgorithm,
    ) -> Result<KekRef, Error> {
        let (tenant, purpose) = (current.reference.tenant(), current.reference.purpose());
        let next = KekRef::from_parts(
            tenant.clone(),
            purpose.clone(),
            current.reference.version().saturating_add(1),
        )?;
        let mut new = NewKek::new(next.clone(), backend, locator, algorithm)
            .key_id(key_id)
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
