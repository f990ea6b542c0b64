//! [`EnvelopeBuilder`]: backends, KEKs, routes, profile, key ring, clock, audit log,
//! cache and providers, checked into the [`Envelope`]'s shared state.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use super::Envelope;
use super::cache::{CacheConfig, DekCache};
use super::calls::{Backends, backend_for, identify, served};
use super::clock::{Clock, SystemClock};
use super::denials::Denials;
use super::state::Inner;
use crate::audit::{AuditError, AuditLog};
use crate::backend::{KeyBackend, KeyIdentity};
use crate::crypto::{CryptoProvider, RandomSource};
use crate::error::{ConfigError, Error};
use crate::format::{KekRef, Name, Scope};
use crate::lifecycle::{
    KekRecord, LifecycleError, LifecycleEvent, NewKek, SharedKeyRing, TransitionRecorder,
};
use crate::policy::Profile;
use crate::sharded::Sharded;

/// Which KEKs wrap new DEKs for one tenant and purpose: a primary KEK, then optional
/// additional copies (for example a disaster-recovery KEK in another backend).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    keks: Vec<KekRef>,
}

impl Route {
    /// New DEKs for `primary`'s tenant and purpose are wrapped under `primary`.
    pub fn new(primary: KekRef) -> Self {
        Self {
            keks: vec![primary],
        }
    }

    /// Also wrap every new DEK under `kek` (same tenant).
    #[must_use]
    pub fn with_copy(mut self, kek: KekRef) -> Self {
        self.keks.push(kek);
        self
    }

    pub(super) fn primary(&self) -> Option<&KekRef> {
        self.keks.first()
    }
}

/// Builds an [`Envelope`].
pub struct EnvelopeBuilder {
    backends: Vec<(String, Arc<dyn KeyBackend>)>,
    keks: Vec<NewKek>,
    routes: Vec<Route>,
    profile: Profile,
    ring: Option<SharedKeyRing>,
    clock: Arc<dyn Clock>,
    audit: Option<AuditLog>,
    cache: Option<CacheConfig>,
    crypto: CryptoProvider,
    random: RandomSource,
    denial_interval: u64,
    accepted: Vec<(String, String, String)>,
}

impl fmt::Debug for EnvelopeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeBuilder")
            .field("backends", &self.backends)
            .field("keks", &self.keks)
            .field("routes", &self.routes)
            .field("profile", &self.profile.name())
            .field("ring", &self.ring.is_some())
            .field("audit", &self.audit.is_some())
            .field("cache", &self.cache)
            .field("crypto", &self.crypto)
            .field("random", &self.random)
            .finish()
    }
}

impl EnvelopeBuilder {
    pub(super) fn new() -> Self {
        Self {
            backends: Vec::new(),
            keks: Vec::new(),
            routes: Vec::new(),
            profile: Profile::default(),
            ring: None,
            clock: Arc::new(SystemClock),
            audit: None,
            cache: None,
            crypto: CryptoProvider::default(),
            random: RandomSource::default(),
            denial_interval: 60,
            accepted: Vec::new(),
        }
    }

    /// The crypto provider for payload encryption and key derivation (default:
    /// [`CryptoProvider::rust_crypto`]). Remote backends compute their local steps with
    /// it too; the local backend has its own (`LocalBackend::with_crypto_provider`).
    #[must_use]
    pub fn crypto_provider(mut self, provider: CryptoProvider) -> Self {
        self.crypto = provider;
        self
    }

    /// Where DEKs and payload nonces come from (default:
    /// [`RandomSource::OperatingSystem`]).
    #[must_use]
    pub fn random_source(mut self, source: RandomSource) -> Self {
        self.random = source;
        self
    }

    /// Uses a shared key ring (see [`crate::lifecycle`]): its active KEKs wrap, its
    /// states decide what may unwrap, and every `Envelope` sharing it sees rotations
    /// and revocations at once. KEKs given with [`EnvelopeBuilder::kek`] are registered
    /// into it at build time.
    #[must_use]
    pub fn key_ring(mut self, ring: SharedKeyRing) -> Self {
        self.ring = Some(ring);
        self
    }

    /// The clock key states are judged by (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Records profile refusals, key-state denials and break-glass reads, and every
    /// transition of the key ring: the log becomes the ring's recorder
    /// ([`SharedKeyRing::set_recorder`]) unless the ring already has one, so a revocation
    /// applied through any handle of the ring is recorded before it takes effect.
    #[must_use]
    pub fn audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// How long repeated unwrap denials of one KEK (and repeated profile refusals at
    /// open) are counted instead of written one record each (default 60 seconds): the
    /// first denial of an interval is recorded at once, later ones are counted into the
    /// next record (`count`), so a flood of opens cannot fill the disk while every denial
    /// is still accounted for. [`Envelope::flush_audit`] writes the pending counts (so
    /// does dropping the last handle of the envelope). 0 records every denial.
    #[must_use]
    pub fn denial_audit_interval(mut self, seconds: u64) -> Self {
        self.denial_interval = seconds;
        self
    }

    /// Caches unwrapped DEKs (off by default).
    #[must_use]
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// Adds a backend as the default instance of its kind (named after its
    /// [`BackendId`](crate::BackendId), e.g. `aws-kms`).
    #[must_use]
    pub fn backend(mut self, backend: Arc<dyn KeyBackend>) -> Self {
        let name = backend.info().id.to_string();
        self.backends.push((name, backend));
        self
    }

    /// Adds a backend under an instance name, for several backends of one kind (for
    /// example a second KMS region holding disaster-recovery KEKs). KEKs select it with
    /// [`NewKek::instance`].
    #[must_use]
    pub fn backend_instance(
        mut self,
        name: impl Into<String>,
        backend: Arc<dyn KeyBackend>,
    ) -> Self {
        self.backends.push((name.into(), backend));
        self
    }

    /// Registers a KEK as the active KEK of its tenant and purpose in the envelope's key
    /// ring (at build time), as [`KeyRing::register`](crate::lifecycle::KeyRing::register)
    /// would: its backend (and instance), locator, algorithm, cadence and overlap window
    /// come from `kek`, its key identity from its backend
    /// ([`KeyBackend::key_identity`]). A second KEK for the same tenant and purpose is
    /// refused: older versions belong in a key ring ([`EnvelopeBuilder::key_ring`]),
    /// deprecated. The locator must name a fixed key: an AWS KMS alias or key id is
    /// refused at build ([`BackendError::Unresolved`](crate::BackendError::Unresolved));
    /// register it with [`Envelope::register_kek`], which resolves it.
    #[must_use]
    pub fn kek(mut self, kek: NewKek) -> Self {
        self.keks.push(kek);
        self
    }

    /// Says which KEKs wrap new DEKs for the primary KEK's tenant and purpose.
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Accepts, when opening objects of `tenant`/`purpose`, copies wrapped under the KEKs
    /// of `tenant`/`copy_purpose`, without wrapping new DEKs for that scope: a reader in
    /// a disaster-recovery region that holds only the copy KEKs. (A route accepts its own
    /// copy scopes.) Copies under any other purpose are refused before any backend call.
    #[must_use]
    pub fn accept_copies(
        mut self,
        tenant: impl Into<String>,
        purpose: impl Into<String>,
        copy_purpose: impl Into<String>,
    ) -> Self {
        self.accepted
            .push((tenant.into(), purpose.into(), copy_purpose.into()));
        self
    }

    /// Replaces the default classification profile.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Checks the configuration and builds the envelope.
    ///
    /// # Errors
    /// [`Error::Config`] ([`ConfigError`]) for a random source the crypto provider
    /// cannot serve, two backends under one instance name, a KEK registered twice, a KEK
    /// whose backend instance is missing, of another kind, or does not offer its
    /// algorithm, a route that names an unregistered KEK, mixes tenants or repeats a
    /// tenant and purpose, or an invalid name; [`Error::Misuse`] when the key ring
    /// refuses a registration (a second active KEK for a scope); [`Error::Audit`] when
    /// the audit log cannot record one.
    pub fn build(self) -> Result<Envelope, Error> {
        self.random.check(self.crypto)?;
        let mut backends: Backends = HashMap::new();
        for (name, b) in self.backends {
            if backends.contains_key(&name) {
                return Err(ConfigError::DuplicateBackend(name).into());
            }
            backends.insert(name, b);
        }
        let ring = self.ring.unwrap_or_default();
        let now = self.clock.now();
        // Validate everything before touching the (possibly shared) ring: each KEK's
        // backend serves it, and names its key (the identity the ring compares).
        let mut keks = Vec::with_capacity(self.keks.len());
        for k in self.keks {
            let backend = backend_for(&backends, k.backend, k.instance.as_deref(), k.algorithm)?;
            let key_id = identify(backend.as_ref(), &k.locator)?;
            if k.key_id.as_ref().is_some_and(|given| given != &key_id) {
                return Err(ConfigError::KeyIdentity {
                    kek: k.reference.clone(),
                    recorded: k.key_id.as_ref().map(KeyIdentity::tail).unwrap_or_default(),
                    found: key_id.tail(),
                }
                .into());
            }
            keks.push(k.key_id(key_id));
        }
        if let Some(audit) = &self.audit {
            // A ring that already has a recorder keeps it (another envelope's log).
            ring.set_recorder(Arc::new(RingAudit {
                log: audit.clone(),
                clock: self.clock.clone(),
            }));
        }
        for new in keks {
            ring.apply(|r| r.register(new, now)).map_err(|e| match e {
                LifecycleError::DuplicateKek(r) => ConfigError::DuplicateKek(r).into(),
                other => Error::from(other),
            })?;
        }
        // Every KEK in the ring that may still be used must be servable here (retired,
        // revoked and destroyed ones need no backend).
        let records: Vec<KekRecord> = ring.read(|r| r.records().cloned().collect());
        for rec in &records {
            if !rec.state.has_ended() {
                served(&backends, rec)?;
            }
        }
        let mut copies = HashMap::new();
        for r in self.routes {
            let Some(primary) = r.primary() else {
                continue;
            };
            let scope = primary.scope();
            let invalid = |reason| ConfigError::InvalidRoute {
                tenant: scope.tenant.clone(),
                purpose: scope.purpose.clone(),
                reason,
            };
            for (i, k) in r.keks.iter().enumerate() {
                if !records.iter().any(|rec| &rec.reference == k) {
                    return Err(invalid("it names an unregistered KEK").into());
                }
                if k.tenant() != &scope.tenant {
                    return Err(invalid("a copy belongs to another tenant").into());
                }
                if r.keks.iter().skip(i + 1).any(|o| o == k) {
                    return Err(invalid("it names a KEK twice").into());
                }
            }
            if r.keks.len() > crate::format::MAX_WRAPS {
                return Err(invalid("it names more KEKs than a wrapped DEK holds").into());
            }
            // Copies follow the active KEK of their own scope through rotations.
            let copy_scopes: Vec<Scope> = r.keks.iter().skip(1).map(KekRef::scope).collect();
            if copies.insert(scope.clone(), copy_scopes).is_some() {
                return Err(invalid("the tenant and purpose already have a route").into());
            }
        }
        let mut accepted: HashMap<Scope, Vec<Name>> = HashMap::new();
        for (t, p, c) in self.accepted {
            let name =
                |field, v: &str| Name::new(field, v).map_err(|e| ConfigError::InvalidName(e.0));
            let scope = Scope {
                tenant: name("tenant", &t)?,
                purpose: name("purpose", &p)?,
            };
            let copy = name("purpose", &c)?;
            accepted.entry(scope).or_default().push(copy);
        }
        Ok(Envelope {
            inner: Arc::new(Inner {
                backends,
                ring,
                copies,
                accepted,
                profile: self.profile,
                crypto: self.crypto.primitives,
                random: self.random,
                clock: self.clock,
                audit: self.audit,
                usage: RwLock::new(HashMap::new()),
                plans: Sharded::new(HashMap::new),
                resolved: Sharded::new(HashMap::new),
                cache: self.cache.map(DekCache::new),
                denials: Denials::new(self.denial_interval),
            }),
        })
    }
}

/// Records key-ring transitions in an envelope's audit log, at the envelope's clock.
#[derive(Debug)]
struct RingAudit {
    log: AuditLog,
    clock: Arc<dyn Clock>,
}

impl TransitionRecorder for RingAudit {
    fn record(&self, events: &[LifecycleEvent]) -> Result<(), AuditError> {
        self.log.append_lifecycle(self.clock.now(), events.to_vec())
    }
}
