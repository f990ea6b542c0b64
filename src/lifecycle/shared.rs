//! [`SharedKeyRing`]: one ring shared by every envelope of a process, with transitions
//! serialized, recorded before they are installed, and compare-and-swap for rings shared
//! through the caller's database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::ring::{KeyRing, LifecycleEvent};
use crate::error::{AuditError, LifecycleError, RecordFailure};

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
            Some(r) if !events.is_empty() => r
                .record(events)
                .map_err(|e| LifecycleError::NotRecorded(RecordFailure::new(e))),
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

    /// Installs `new` (a ring read back from the caller's shared store) only if it is
    /// valid as [`KeyRing::validate`] says (this schema, one active KEK per scope, ...),
    /// the current generation is `expected`, `new` is newer (a higher generation, no
    /// older revocation epoch), and `new` keeps every record and every final state
    /// of the current ring: neither a lagging nor a diverged copy can undo a retirement,
    /// revocation or destruction, whatever its generation. When the ring has a recorder,
    /// [`LifecycleEvent::Installed`] and the changes the new ring brings
    /// ([`KeyRing::changes_to`]: registrations and state changes, a revocation included)
    /// are recorded first.
    ///
    /// # Errors
    /// [`LifecycleError::GenerationMismatch`] when the current generation is not
    /// `expected` or `new` is not newer; [`LifecycleError::Regression`];
    /// [`LifecycleError::UnknownSchema`] or [`LifecycleError::Malformed`] for a ring
    /// [`KeyRing::validate`] refuses; [`LifecycleError::NotRecorded`].
    pub fn compare_and_swap(&self, expected: u64, new: KeyRing) -> Result<(), LifecycleError> {
        let _serial = match self.transitions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = self.snapshot();
        // A ring computed elsewhere passes what a ring read from JSON passes.
        new.validate()?;
        if current.generation() != expected
            || new.generation() <= expected
            || new.revocation_epoch() < current.revocation_epoch()
        {
            return Err(LifecycleError::GenerationMismatch {
                expected,
                actual: current.generation(),
            });
        }
        current.check_successor(&new)?;
        let mut events = vec![LifecycleEvent::Installed {
            generation: new.generation(),
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
    /// Why they could not be recorded; the transition is then not installed.
    fn record(&self, events: &[LifecycleEvent]) -> Result<(), AuditError>;
}
