//! Audit records from the envelope, with repeated denials (an unwrap refused by a KEK's
//! state, a copy refused by the profile at open) counted per KEK and reason instead of
//! written one by one, so a flood of opens cannot fill the audit sink; every denial is
//! still accounted for in a record's `count`.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Envelope;
use crate::audit::{AuditError, AuditEvent, AuditLog};
use crate::error::Error;
use crate::format::{Classification, KekRef, Name, WrapAlgorithm};
use crate::lifecycle::{KekRecord, UnixTime};

/// What a coalesced denial record is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Denied {
    /// An unwrap denied by the KEK's state.
    State(&'static str),
    /// A copy whose algorithm the profile refuses for the object's classification.
    Profile(Classification),
}

/// Per KEK and reason: when the current interval began, and the denials counted in it
/// since its record was written.
#[derive(Debug)]
struct DenialWindow {
    started: UnixTime,
    pending: u64,
    tenant: Name,
    algorithm: WrapAlgorithm,
}

/// Counts repeated denials instead of writing one audit record each.
#[derive(Debug)]
pub(super) struct Denials {
    interval: u64,
    windows: Mutex<HashMap<(KekRef, Denied), DenialWindow>>,
}

impl Denials {
    pub(super) fn new(interval: u64) -> Self {
        Self {
            interval,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How many denials the record for this one must account for, or `None` when it is
    /// only counted (an interval is open).
    pub(super) fn admit(
        &self,
        kek: &KekRef,
        why: &Denied,
        tenant: &Name,
        algorithm: WrapAlgorithm,
        now: UnixTime,
    ) -> Option<u64> {
        let Ok(mut w) = self.windows.lock() else {
            return Some(1);
        };
        let key = (kek.clone(), why.clone());
        match w.get_mut(&key) {
            Some(win) if now >= win.started && now < win.started.saturating_add(self.interval) => {
                win.pending = win.pending.saturating_add(1);
                None
            }
            Some(win) => {
                let count = win.pending.saturating_add(1);
                win.started = now;
                win.pending = 0;
                Some(count)
            }
            None => {
                w.insert(
                    key,
                    DenialWindow {
                        started: now,
                        pending: 0,
                        tenant: tenant.clone(),
                        algorithm,
                    },
                );
                Some(1)
            }
        }
    }

    /// Puts back `n` denials a record failed to account for.
    pub(super) fn restore(&self, kek: &KekRef, why: &Denied, n: u64) {
        if let Ok(mut w) = self.windows.lock()
            && let Some(win) = w.get_mut(&(kek.clone(), why.clone()))
        {
            win.pending = win.pending.saturating_add(n);
        }
    }

    /// Writes a record for every pending count to `log`; a count whose record fails is
    /// kept for the next flush, and the first failure is reported.
    pub(super) fn flush(
        &self,
        log: &AuditLog,
        now: UnixTime,
        profile: &str,
    ) -> Result<(), AuditError> {
        let pending: Vec<_> = match self.windows.lock() {
            Ok(mut w) => w
                .iter_mut()
                .filter(|(_, win)| win.pending > 0)
                .map(|((kek, why), win)| {
                    let n = std::mem::take(&mut win.pending);
                    (
                        kek.clone(),
                        why.clone(),
                        win.tenant.clone(),
                        win.algorithm,
                        n,
                    )
                })
                .collect(),
            Err(_) => return Ok(()),
        };
        let mut first_err = None;
        for (kek, why, tenant, algorithm, count) in pending {
            let event = denial_event(kek.clone(), &why, tenant, algorithm, profile, count);
            if let Err(e) = log.append(now, event) {
                self.restore(&kek, &why, count);
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

pub(super) fn denial_event(
    kek: KekRef,
    why: &Denied,
    tenant: Name,
    algorithm: WrapAlgorithm,
    profile: &str,
    count: u64,
) -> AuditEvent {
    match why {
        Denied::State(state) => AuditEvent::UnwrapDenied {
            kek,
            state: (*state).to_owned(),
            tenant,
            count,
        },
        Denied::Profile(classification) => AuditEvent::UnwrapRefused {
            kek,
            algorithm,
            classification: classification.clone(),
            profile: profile.to_owned(),
            count,
        },
    }
}

impl Envelope {
    pub(super) fn audit(&self, event: AuditEvent) -> Result<(), Error> {
        match &self.inner.audit {
            Some(log) => log
                .append(self.inner.clock.now(), event)
                .map(|_| ())
                .map_err(Error::Audit),
            None => Ok(()),
        }
    }

    /// Audits a denial (an unwrap refused by the KEK's state, or a copy refused by the
    /// profile at open), coalesced per KEK and reason (see
    /// [`EnvelopeBuilder::denial_audit_interval`]).
    pub(super) fn audit_denial(
        &self,
        kek: &KekRecord,
        why: Denied,
        tenant: &Name,
    ) -> Result<(), Error> {
        if self.inner.audit.is_none() {
            return Ok(());
        }
        let now = self.inner.clock.now();
        let denials = &self.inner.denials;
        match denials.admit(&kek.reference, &why, tenant, kek.algorithm, now) {
            Some(count) => {
                let written = self.audit(denial_event(
                    kek.reference.clone(),
                    &why,
                    tenant.clone(),
                    kek.algorithm,
                    self.inner.profile.name(),
                    count,
                ));
                if written.is_err() {
                    // Not written: the next record accounts for them.
                    denials.restore(&kek.reference, &why, count);
                }
                written
            }
            None => Ok(()),
        }
    }

    /// Writes every pending denial count.
    pub(super) fn flush_denials(&self) -> Result<(), Error> {
        match &self.inner.audit {
            Some(log) => self
                .inner
                .denials
                .flush(log, self.inner.clock.now(), self.inner.profile.name())
                .map_err(Error::Audit),
            None => Ok(()),
        }
    }
}
