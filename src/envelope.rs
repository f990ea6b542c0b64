//! The API most users touch: seal and open whole objects, or generate and unwrap data
//! keys for callers that store the wrapped DEK themselves.
//!
//! Every seal draws a fresh DEK, checks the classification profile for every KEK the DEK
//! is about to be wrapped under (before any backend is called), wraps the DEK with the
//! caller's context bound into each wrap, and encrypts the payload with key commitment.
//! Every open checks the header's claims against the caller's context and the configured
//! KEKs before any backend is called: a KEK reference in a header is metadata, never
//! authorization.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditLog};
use crate::backend::{BackendError, KekLocator, KeyBackend, UnwrapRequest, WrapRequest};
use crate::context::Context;
use crate::crypto::{CryptoProvider, Primitives, RandomSource};
use crate::error::{ContextError, Error, KeyStateError, MisuseError};
use crate::format::{
    BackendId, KekRef, NONCE_LEN, Name, SealedHeader, SealedObject, Suite, TAG_LEN, WrapAlgorithm,
    WrappedDek, WrappedEntry,
};
use crate::lifecycle::{
    KekRecord, KekState, KeyRing, LifecycleEvent, NewKek, SharedKeyRing, TransitionRecorder,
    UnixTime,
};
use crate::payload;
use crate::policy::Profile;
use crate::secret::{DataKey, KEY_LEN};
use crate::sharded::{Sharded, ShardedCounters};

mod cache;
mod clock;
mod retire;
mod rewrap;
mod rotate;
mod stream;
#[cfg(feature = "tokio")]
mod stream_tokio;

pub use cache::CacheConfig;
pub use clock::{Clock, ManualClock, SystemClock};
pub use retire::{RetireCheck, RetireOptions};
pub use rewrap::{
    BulkItem, BulkItemKind, BulkOptions, BulkProgress, BulkReport, BulkResult, RewrapOutcome,
};
pub use stream::{OpenReader, SealWriter, SeekableOpenReader};
#[cfg(feature = "tokio")]
pub use stream_tokio::{AsyncOpenReader, AsyncSealWriter};

/// Usage counters of one KEK, shared by every thread using the envelope; each thread
/// counts in its own shard.
#[derive(Debug, Default)]
struct Counters(ShardedCounters<3>);

impl Counters {
    const WRAPS: usize = 0;
    const UNWRAPS: usize = 1;
    const DENIALS: usize = 2;

    fn wrapped(&self) {
        self.0.bump(Self::WRAPS);
    }

    fn unwrapped(&self) {
        self.0.bump(Self::UNWRAPS);
    }

    fn denied(&self) {
        self.0.bump(Self::DENIALS);
    }

    fn snapshot(&self) -> Usage {
        Usage {
            wraps: self.0.sum(Self::WRAPS),
            unwraps: self.0.sum(Self::UNWRAPS),
            denials: self.0.sum(Self::DENIALS),
        }
    }
}

/// One KEK of a wrap plan, resolved once per key-ring version: its backend looked up
/// and checked, its locator and counters ready.
struct Planned {
    reference: KekRef,
    backend_id: BackendId,
    backend: Arc<dyn KeyBackend>,
    locator: KekLocator,
    algorithm: WrapAlgorithm,
    counters: Arc<Counters>,
}

/// A key-ring record resolved for unwrapping: its backend (when it is configured and
/// valid here), locator, counters and the revocation epoch it was read at.
struct Resolved {
    record: KekRecord,
    backend: Option<Arc<dyn KeyBackend>>,
    locator: KekLocator,
    counters: Arc<Counters>,
    epoch: u64,
}

/// Wrap plans by tenant, then purpose, each with the key-ring version it was
/// computed at.
type PlanCache = HashMap<Name, HashMap<Name, (u64, Arc<[Planned]>)>>;

/// A seal under way: the header, the payload key and the payload AAD.
struct Begun {
    header: SealedHeader,
    header_bytes: Vec<u8>,
    key: zeroize::Zeroizing<[u8; 32]>,
    aad: Vec<u8>,
}

/// A KEK the `Envelope` may use: its name, where it lives and its algorithm.
///
/// The backend is named by kind ([`BackendId`], written into every wrapped DEK) and,
/// when several backends of one kind are configured (two KMS regions or accounts), by the
/// instance name given to [`EnvelopeBuilder::backend_instance`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KekBinding {
    reference: KekRef,
    backend: BackendId,
    instance: Option<String>,
    locator: KekLocator,
    algorithm: WrapAlgorithm,
}

impl KekBinding {
    /// Binds the name `reference` to the KEK `locator` of `backend`, used with `algorithm`.
    pub fn new(
        reference: KekRef,
        backend: BackendId,
        locator: KekLocator,
        algorithm: WrapAlgorithm,
    ) -> Self {
        Self {
            reference,
            backend,
            instance: None,
            locator,
            algorithm,
        }
    }

    /// Uses the backend configured under `instance` (see
    /// [`EnvelopeBuilder::backend_instance`]) instead of the default instance of its kind.
    #[must_use]
    pub fn on_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The backend instance name: the one set by [`KekBinding::on_instance`], or the
    /// backend kind's name.
    pub fn instance(&self) -> &str {
        self.instance.as_deref().unwrap_or(self.backend.name())
    }

    /// The KEK's name.
    pub fn reference(&self) -> &KekRef {
        &self.reference
    }

    /// The backend holding it.
    pub fn backend(&self) -> BackendId {
        self.backend
    }

    /// Its locator inside the backend.
    pub fn locator(&self) -> &KekLocator {
        &self.locator
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> WrapAlgorithm {
        self.algorithm
    }
}

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

    fn primary(&self) -> Option<&KekRef> {
        self.keks.first()
    }
}

/// Per-KEK usage counters an `Envelope` keeps (the caller may persist them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// DEKs wrapped.
    pub wraps: u64,
    /// DEKs unwrapped (including cache hits).
    pub unwraps: u64,
    /// Wraps refused by the profile and unwraps denied by the key state.
    pub denials: u64,
}

/// A data key with its wrapped form, from [`Envelope::generate_data_key`].
#[derive(Debug)]
#[non_exhaustive]
pub struct GeneratedDataKey {
    /// The plaintext data key (zeroized on drop).
    pub key: DataKey,
    /// The encoded [`WrappedDek`] to store beside the data.
    pub wrapped: Vec<u8>,
}

/// The parts of an object sealed in place: the sealed object is
/// `header || buffer || tag`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SealedParts {
    /// The encoded header.
    pub header: Vec<u8>,
    /// The authentication tag.
    pub tag: [u8; TAG_LEN],
}

/// Builds an [`Envelope`].
pub struct EnvelopeBuilder {
    backends: Vec<(String, Arc<dyn KeyBackend>)>,
    keks: Vec<KekBinding>,
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
    /// The crypto provider for payload encryption and key derivation (default:
    /// [`CryptoProvider::rust_crypto`]). Backends choose their own (see
    /// [`crate::LocalBackend::with_crypto_provider`]).
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
    /// [`BackendId`], e.g. `aws-kms`).
    #[must_use]
    pub fn backend(mut self, backend: Arc<dyn KeyBackend>) -> Self {
        let name = backend.info().id.name().to_owned();
        self.backends.push((name, backend));
        self
    }

    /// Adds a backend under an instance name, for several backends of one kind (for
    /// example a second KMS region holding disaster-recovery KEKs). KEKs select it with
    /// [`KekBinding::on_instance`].
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
    /// ring (at build time). A second KEK for the same tenant and purpose is refused:
    /// older versions belong in a key ring ([`EnvelopeBuilder::key_ring`]), deprecated.
    #[must_use]
    pub fn kek(mut self, kek: KekBinding) -> Self {
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
    /// [`Error::Misuse`] for a random source the crypto provider cannot serve, two
    /// backends under one instance name, a KEK registered
    /// twice, a KEK whose backend instance is missing, of another kind, or does not
    /// offer its algorithm, or a route that names an unregistered KEK, mixes tenants or
    /// repeats a tenant and purpose.
    pub fn build(self) -> Result<Envelope, Error> {
        self.random.check(self.crypto)?;
        let mut backends: HashMap<String, Arc<dyn KeyBackend>> = HashMap::new();
        for (name, b) in self.backends {
            if backends.contains_key(&name) {
                return Err(MisuseError::DuplicateBackend(name).into());
            }
            backends.insert(name, b);
        }
        let ring = self.ring.unwrap_or_default();
        let now = self.clock.now();
        // Validate everything before touching the (possibly shared) ring.
        for k in &self.keks {
            check_backend_parts(&backends, k.backend, k.instance.as_deref(), k.algorithm)?;
        }
        if let Some(audit) = &self.audit {
            // A ring that already has a recorder keeps it (another envelope's log).
            ring.set_recorder(Arc::new(RingAudit {
                log: audit.clone(),
                clock: self.clock.clone(),
            }));
        }
        for k in self.keks {
            let mut new = NewKek::new(
                k.reference.clone(),
                k.backend,
                k.locator.as_str(),
                k.algorithm,
            );
            new.instance = k.instance.clone();
            ring.apply(|r| r.register(new, now))
                .map_err(MisuseError::from)?;
        }
        // Every KEK in the ring that may still be used must be servable here (retired,
        // revoked and destroyed ones need no backend).
        let records: Vec<KekRecord> = ring.read(|r| r.records().cloned().collect());
        for rec in &records {
            if !matches!(
                rec.state,
                KekState::Retired | KekState::Revoked | KekState::Destroyed
            ) {
                check_backend(&backends, rec)?;
            }
        }
        let mut copies = HashMap::new();
        for r in self.routes {
            let Some(primary) = r.primary() else {
                continue;
            };
            let scope = (primary.tenant().clone(), primary.purpose().clone());
            let invalid = |reason| MisuseError::InvalidRoute {
                tenant: scope.0.clone(),
                purpose: scope.1.clone(),
                reason,
            };
            for (i, k) in r.keks.iter().enumerate() {
                if !records.iter().any(|rec| &rec.reference == k) {
                    return Err(invalid("it names an unregistered KEK").into());
                }
                if k.tenant() != &scope.0 {
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
            let copy_scopes: Vec<(Name, Name)> = r
                .keks
                .iter()
                .skip(1)
                .map(|k| (k.tenant().clone(), k.purpose().clone()))
                .collect();
            if copies.insert(scope.clone(), copy_scopes).is_some() {
                return Err(invalid("the tenant and purpose already have a route").into());
            }
        }
        let mut accepted: HashMap<(Name, Name), Vec<Name>> = HashMap::new();
        for (t, p, c) in self.accepted {
            let scope = (Name::new("tenant", &t)?, Name::new("purpose", &p)?);
            let copy = Name::new("purpose", &c)?;
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
                cache: self.cache.map(cache::DekCache::new),
                denials: Denials::new(self.denial_interval),
            }),
        })
    }
}

fn audit_failure(e: crate::audit::AuditError) -> BackendError {
    BackendError::Unavailable {
        message: "the audit sink failed".to_owned(),
        source: Some(Box::new(e)),
    }
}

/// Records key-ring transitions in an envelope's audit log, at the envelope's clock.
#[derive(Debug)]
struct RingAudit {
    log: AuditLog,
    clock: Arc<dyn Clock>,
}

impl TransitionRecorder for RingAudit {
    fn record(&self, events: &[LifecycleEvent]) -> Result<(), String> {
        self.log
            .append_lifecycle(self.clock.now(), events.to_vec())
            .map_err(|e| e.to_string())
    }
}

/// What a coalesced denial record is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Denied {
    /// An unwrap denied by the KEK's state.
    State(&'static str),
    /// A copy whose algorithm the profile refuses for the object's classification.
    Profile(crate::format::Classification),
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
struct Denials {
    interval: u64,
    windows: Mutex<HashMap<(KekRef, Denied), DenialWindow>>,
}

impl Denials {
    fn new(interval: u64) -> Self {
        Self {
            interval,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How many denials the record for this one must account for, or `None` when it is
    /// only counted (an interval is open).
    fn admit(
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
    fn restore(&self, kek: &KekRef, why: &Denied, n: u64) {
        if let Ok(mut w) = self.windows.lock()
            && let Some(win) = w.get_mut(&(kek.clone(), why.clone()))
        {
            win.pending = win.pending.saturating_add(n);
        }
    }

    /// Takes every pending count.
    fn drain(&self) -> Vec<(KekRef, Denied, Name, WrapAlgorithm, u64)> {
        let Ok(mut w) = self.windows.lock() else {
            return Vec::new();
        };
        w.iter_mut()
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
            .collect()
    }
}

fn check_backend<'a>(
    backends: &'a HashMap<String, Arc<dyn KeyBackend>>,
    rec: &KekRecord,
) -> Result<&'a Arc<dyn KeyBackend>, Error> {
    check_backend_parts(
        backends,
        rec.backend,
        rec.instance.as_deref(),
        rec.algorithm,
    )
}

/// The backend serving a KEK, checked: the instance exists, is of the KEK's kind and
/// offers its algorithm.
fn check_backend_parts<'a>(
    backends: &'a HashMap<String, Arc<dyn KeyBackend>>,
    kind: BackendId,
    instance: Option<&str>,
    algorithm: WrapAlgorithm,
) -> Result<&'a Arc<dyn KeyBackend>, Error> {
    let name = instance.unwrap_or(kind.name());
    let backend = backends.get(name).ok_or_else(|| match instance {
        Some(name) => MisuseError::NoBackendInstance(name.to_owned()),
        None => MisuseError::NoBackend(kind),
    })?;
    if backend.info().id != kind {
        return Err(MisuseError::BackendKind {
            instance: name.to_owned(),
            expected: kind,
            found: backend.info().id,
        }
        .into());
    }
    if !backend.info().offers(algorithm) {
        return Err(MisuseError::AlgorithmNotOffered {
            backend: kind,
            algorithm,
        }
        .into());
    }
    Ok(backend)
}

struct Inner {
    backends: HashMap<String, Arc<dyn KeyBackend>>,
    ring: SharedKeyRing,
    /// Per tenant and purpose: the scopes whose active KEKs get a copy of every DEK.
    copies: HashMap<(Name, Name), Vec<(Name, Name)>>,
    /// Per tenant and purpose: further purposes (same tenant) whose copies are accepted
    /// at open ([`EnvelopeBuilder::accept_copies`]).
    accepted: HashMap<(Name, Name), Vec<Name>>,
    profile: Profile,
    crypto: &'static dyn Primitives,
    random: RandomSource,
    clock: Arc<dyn Clock>,
    audit: Option<AuditLog>,
    usage: RwLock<HashMap<KekRef, Arc<Counters>>>,
    /// Per tenant and purpose: the wrap plan computed at a key-ring version. Each thread
    /// shard fills its own copy, so a seal touches no cache line another thread writes.
    plans: Sharded<PlanCache>,
    /// KEKs resolved for unwrapping, each with the key-ring version it was read at (per
    /// thread shard, as `plans`).
    resolved: Sharded<HashMap<KekRef, (u64, Arc<Resolved>)>>,
    cache: Option<cache::DekCache>,
    denials: Denials,
}

impl Drop for Inner {
    /// Writes the denial counts still pending (best effort: a failing sink cannot be
    /// reported from here; call [`Envelope::flush_audit`] to see the error).
    fn drop(&mut self) {
        if let Some(log) = &self.audit {
            let now = self.clock.now();
            for event in pending_denial_events(&self.denials, self.profile.name()) {
                let _ = log.append(now, event);
            }
        }
    }
}

/// The audit events for the denial counts pending in `denials`.
fn pending_denial_events(denials: &Denials, profile: &str) -> Vec<AuditEvent> {
    denials
        .drain()
        .into_iter()
        .map(|(kek, why, tenant, algorithm, count)| {
            denial_event(kek, &why, tenant, algorithm, profile, count)
        })
        .collect()
}

fn denial_event(
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

/// Seals and opens objects, and wraps and unwraps data keys.
///
/// `Send + Sync` and cheap to clone (an `Arc` inside): share one across tasks.
#[derive(Clone)]
pub struct Envelope {
    inner: Arc<Inner>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("backends", &self.inner.backends.keys().collect::<Vec<_>>())
            .field(
                "ring_generation",
                &self.inner.ring.read(KeyRing::generation),
            )
            .field("copies", &self.inner.copies.len())
            .field("profile", &self.inner.profile.name())
            .field("crypto", &self.inner.crypto.name())
            .field("random", &self.inner.random)
            .field("audit", &self.inner.audit.is_some())
            .field("cache", &self.inner.cache.is_some())
            .finish()
    }
}

impl Envelope {
    /// Starts a builder with the default profile.
    pub fn builder() -> EnvelopeBuilder {
        EnvelopeBuilder {
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

    /// The crypto provider this envelope seals and opens payloads with.
    pub fn crypto_provider(&self) -> CryptoProvider {
        CryptoProvider {
            primitives: self.inner.crypto,
        }
    }

    /// The key ring this envelope reads (shared: transitions applied to it take effect
    /// here at once).
    pub fn key_ring(&self) -> &SharedKeyRing {
        &self.inner.ring
    }

    /// The per-KEK usage counters since this envelope was built.
    pub fn usage(&self) -> BTreeMap<KekRef, Usage> {
        self.inner
            .usage
            .read()
            .map(|u| u.iter().map(|(k, c)| (k.clone(), c.snapshot())).collect())
            .unwrap_or_default()
    }

    /// The counters of `kek`, created the first time it is seen.
    fn counters(&self, kek: &KekRef) -> Arc<Counters> {
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

    fn audit(&self, event: AuditEvent) -> Result<(), Error> {
        match &self.inner.audit {
            Some(log) => log
                .append(self.inner.clock.now(), event)
                .map(|_| ())
                .map_err(|e| Error::Backend(audit_failure(e))),
            None => Ok(()),
        }
    }

    /// Audits a denial (an unwrap refused by the KEK's state, or a copy refused by the
    /// profile at open), coalesced per KEK and reason (see
    /// [`EnvelopeBuilder::denial_audit_interval`]).
    fn audit_denial(&self, kek: &KekRecord, why: Denied, tenant: &Name) -> Result<(), Error> {
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

    /// Drops (and zeroizes) the cached DEKs whose TTL has passed, and, when the ring's
    /// revocation epoch moved, those whose KEK may no longer unwrap, without waiting for
    /// the next cache access (which also sweeps). Call it from a timer when unwraps may
    /// stop for long stretches. Does nothing without a cache.
    pub fn sweep_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            let epoch = self.inner.ring.read(KeyRing::revocation_epoch);
            cache.sweep_expired(self.inner.clock.now(), epoch, &self.inner.ring);
        }
    }

    /// Writes the denial counts not yet recorded (see
    /// [`EnvelopeBuilder::denial_audit_interval`]): call it before a process exits, or
    /// periodically. Dropping the last handle of the envelope also does, best effort.
    ///
    /// # Errors
    /// [`Error::Backend`] when the audit sink fails.
    pub fn flush_audit(&self) -> Result<(), Error> {
        let denials = &self.inner.denials;
        let mut first_err = None;
        for (kek, why, tenant, algorithm, count) in denials.drain() {
            let event = denial_event(
                kek.clone(),
                &why,
                tenant,
                algorithm,
                self.inner.profile.name(),
                count,
            );
            if let Err(e) = self.audit(event) {
                // Kept for the next flush; the first error is reported.
                denials.restore(&kek, &why, count);
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The classification profile in force.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// Seals `plaintext` for `ctx`: a fresh DEK, wrapped under the route's KEKs, and the
    /// payload under AES-256-GCM with key commitment.
    ///
    /// # Errors
    /// [`Error::KeyState`] when no KEK wraps for the context's tenant and purpose,
    /// [`Error::Policy`] when the profile refuses a KEK's algorithm (no backend is called
    /// then), [`Error::Backend`] when a backend fails, [`Error::Misuse`] for a payload
    /// over 64 GiB, [`Error::Rng`].
    pub async fn seal(&self, ctx: &Context, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        payload::check_payload_len(plaintext.len())?;
        let begun = self
            .begin_seal(
                ctx,
                Suite::Aes256GcmHkdfSha256Commit,
                None,
                plaintext.len() + TAG_LEN,
            )
            .await?;
        let header_len = begun.header_bytes.len();
        let mut out = begun.header_bytes;
        out.extend_from_slice(plaintext);
        let (_, body) = out.split_at_mut(header_len);
        let tag = self.encrypt(&begun.key, begun.header.nonce(), &begun.aad, body)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Seals `buf` in place without copying the payload. The sealed object is
    /// `parts.header || buf || parts.tag`.
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn seal_in_place(&self, ctx: &Context, buf: &mut [u8]) -> Result<SealedParts, Error> {
        payload::check_payload_len(buf.len())?;
        let begun = self
            .begin_seal(ctx, Suite::Aes256GcmHkdfSha256Commit, None, 0)
            .await?;
        let tag = self.encrypt(&begun.key, begun.header.nonce(), &begun.aad, buf)?;
        Ok(SealedParts {
            header: begun.header_bytes,
            tag,
        })
    }

    /// Opens a sealed object for `ctx` and returns the plaintext.
    ///
    /// # Errors
    /// [`Error::Malformed`] for bytes that are not a sealed object, [`Error::Context`]
    /// when the header names another tenant, purpose or classification,
    /// [`Error::KeyState`] for a KEK not configured here, [`Error::Backend`], and the
    /// opaque [`Error::Crypto`] for a wrong key, context or tampered bytes.
    pub async fn open(&self, ctx: &Context, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let obj = SealedObject::decode(sealed)?;
        let (key, nonce, aad) = self.open_header(ctx, obj.header()).await?;
        if obj.header().suite() == Suite::Aes256GcmSegmented {
            let key = self.inner.crypto.aes256_gcm(&key);
            return stream::open_segments(key.as_ref(), &aad, obj.header(), obj.payload());
        }
        let mut out = obj.ciphertext().to_vec();
        self.inner
            .crypto
            .aes256_gcm_open(&key, &nonce, &aad, &mut out, obj.tag())
            .map_err(|_| Error::Crypto)?;
        Ok(out)
    }

    /// Opens a sealed object in place: decrypts the payload inside `sealed` and returns
    /// the plaintext as a sub-slice of it. On any error the buffer is left unchanged.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_in_place<'a>(
        &self,
        ctx: &Context,
        sealed: &'a mut [u8],
    ) -> Result<&'a mut [u8], Error> {
        let (header, header_len) = SealedHeader::decode_prefix(sealed)?;
        if header.suite() == Suite::Aes256GcmSegmented {
            return Err(MisuseError::SegmentedObject.into());
        }
        let (key, nonce, aad) = self.open_header(ctx, &header).await?;
        let (_, rest) = sealed.split_at_mut(header_len);
        let ct_len = rest
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(crate::format::FormatError::MissingTag)?;
        let (body, tag) = rest.split_at_mut(ct_len);
        let tag: [u8; TAG_LEN] = (&*tag)
            .try_into()
            .map_err(|_| crate::format::FormatError::MissingTag)?;
        self.inner
            .crypto
            .aes256_gcm(&key)
            .open_keep(&nonce, &aad, body, &tag)
            .map_err(|_| Error::Crypto)?;
        Ok(body)
    }

    /// Opens an object sealed with [`Envelope::seal_in_place`] from its separate parts:
    /// decrypts `buf` in place. On any error `buf` is left unchanged.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_detached(
        &self,
        ctx: &Context,
        header: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let (h, header_len) = SealedHeader::decode_prefix(header)?;
        if header_len != header.len() {
            return Err(crate::format::FormatError::TrailingBytes.into());
        }
        if h.suite() == Suite::Aes256GcmSegmented {
            return Err(MisuseError::SegmentedObject.into());
        }
        let (key, nonce, aad) = self.open_header(ctx, &h).await?;
        self.inner
            .crypto
            .aes256_gcm(&key)
            .open_keep(&nonce, &aad, buf, tag)
            .map_err(|_| Error::Crypto)
    }

    /// Generates a fresh DEK and wraps it for `ctx`, for callers that encrypt data
    /// themselves and store the wrapped DEK (for example in a database column).
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn generate_data_key(&self, ctx: &Context) -> Result<GeneratedDataKey, Error> {
        let key = DataKey::generate()?;
        let wrapped = self.wrap_dek(ctx, &key).await?.encode();
        Ok(GeneratedDataKey { key, wrapped })
    }

    /// Unwraps a DEK from [`Envelope::generate_data_key`] for `ctx`.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn unwrap_data_key(&self, ctx: &Context, wrapped: &[u8]) -> Result<DataKey, Error> {
        let dek = WrappedDek::decode(wrapped)?;
        self.unwrap_dek(ctx, &dek).await
    }

    /// Draws the DEK and nonce, wraps the DEK, derives the payload key and builds the
    /// header and AAD.
    async fn begin_seal(
        &self,
        ctx: &Context,
        suite: Suite,
        segment_size: Option<u32>,
        payload_capacity: usize,
    ) -> Result<Begun, Error> {
        // One RNG call for the DEK and the nonce.
        let mut seed = zeroize::Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
        self.inner
            .random
            .fill(self.inner.crypto, seed.as_mut_slice())?;
        let (dek_bytes, nonce_bytes) = seed.split_at(KEY_LEN);
        let dek = DataKey::from_slice(dek_bytes)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(nonce_bytes);
        let wrapped = self.wrap_dek(ctx, &dek).await?;
        let keys = payload::derive(self.inner.crypto, &dek, suite, &nonce)?;
        let mut header = SealedHeader::new(suite, wrapped, nonce, keys.commitment);
        if let Some(size) = segment_size {
            header = header.with_segment_size(size)?;
        }
        let aad = payload::aad(&header, ctx.binding());
        Ok(Begun {
            header_bytes: header.encode_with_capacity(payload_capacity),
            header,
            key: keys.key,
            aad,
        })
    }

    fn encrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        self.inner
            .crypto
            .aes256_gcm_seal(key, nonce, aad, body)
            .map_err(|_| Error::Crypto)
    }

    /// Checks the header, unwraps the DEK, verifies the commitment; returns the payload
    /// key, nonce and AAD.
    async fn open_header(
        &self,
        ctx: &Context,
        header: &SealedHeader,
    ) -> Result<(zeroize::Zeroizing<[u8; 32]>, [u8; NONCE_LEN], Vec<u8>), Error> {
        let dek = self.unwrap_dek(ctx, header.wrapped_dek()).await?;
        let keys = payload::derive(self.inner.crypto, &dek, header.suite(), header.nonce())?;
        payload::verify_commitment(&keys.commitment, header.commitment())?;
        let aad = payload::aad(header, ctx.binding());
        Ok((keys.key, *header.nonce(), aad))
    }

    /// A KEK of the key ring with what unwrapping under it needs, cached per key-ring
    /// version (every install moves it, so a cached state is never stale).
    fn resolve(&self, kek: &KekRef) -> Option<Arc<Resolved>> {
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
            backend: check_backend(&self.inner.backends, &record).ok().cloned(),
            locator: KekLocator::new(record.locator.clone()),
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
    fn wrap_plan(&self, ctx: &Context) -> Result<Arc<[Planned]>, Error> {
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
        let key = (ctx.tenant().clone(), ctx.purpose().clone());
        let (version, records) = self.plan_records(&key)?;
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
                locator: KekLocator::new(rec.locator),
                algorithm: rec.algorithm,
            });
        }
        let plan: Arc<[Planned]> = plan.into();
        if let Ok(mut p) = self.inner.plans.local().write() {
            p.entry(key.0)
                .or_default()
                .insert(key.1, (version, plan.clone()));
        }
        Ok(plan)
    }

    /// The active records of a scope and its copy scopes, read at one ring version.
    fn plan_records(&self, scope: &(Name, Name)) -> Result<(u64, Vec<KekRecord>), Error> {
        let copies = self.inner.copies.get(scope);
        let (version, plan) = self.inner.ring.read_versioned(|ring| {
            let primary = ring.active(&scope.0, &scope.1).cloned().ok_or_else(|| {
                KeyStateError::NoWrappingKek {
                    tenant: scope.0.clone(),
                    purpose: scope.1.clone(),
                }
            })?;
            let mut plan = vec![primary];
            for (t, p) in copies.into_iter().flatten() {
                let copy =
                    ring.active(t, p)
                        .cloned()
                        .ok_or_else(|| KeyStateError::NoWrappingKek {
                            tenant: t.clone(),
                            purpose: p.clone(),
                        })?;
                plan.push(copy);
            }
            Ok::<_, KeyStateError>(plan)
        });
        Ok((version, plan?))
    }

    /// Checks the profile for every KEK of a plan (audited refusal), before any backend
    /// call that the plan is for.
    fn check_plan(&self, ctx: &Context, plan: &[Planned]) -> Result<(), Error> {
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
    async fn wrap_dek(&self, ctx: &Context, dek: &DataKey) -> Result<WrappedDek, Error> {
        let plan = self.wrap_plan(ctx)?;
        self.check_plan(ctx, &plan)?;
        let mut entries = Vec::with_capacity(plan.len());
        for kek in plan.iter() {
            let resp = kek
                .backend
                .wrap(WrapRequest::new(
                    &kek.locator,
                    kek.algorithm,
                    dek,
                    ctx.binding(),
                ))
                .await?;
            if resp.kek != kek.locator {
                return Err(BackendError::KeyMismatch {
                    asked: kek.locator.clone(),
                    answered: resp.kek,
                }
                .into());
            }
            let entry = WrappedEntry::new(
                kek.algorithm,
                kek.backend_id,
                kek.reference.clone(),
                resp.params,
                resp.wrapped,
            )
            .map_err(|_| BackendError::MalformedResponse {
                what: "wrapped key",
            })?;
            kek.counters.wrapped();
            entries.push(entry);
        }
        Ok(WrappedDek::new(ctx.classification().clone(), entries)?)
    }

    /// Checks the wrapped DEK's claims against `ctx` and the key ring, then unwraps it
    /// with the first usable copy.
    async fn unwrap_dek(&self, ctx: &Context, wrapped: &WrappedDek) -> Result<DataKey, Error> {
        self.unwrap_dek_as(ctx, wrapped, Access::Normal).await
    }

    /// Whether a copy under `purpose` (same tenant) may protect an object of `ctx`: its
    /// own purpose, or a copy scope its route configures.
    fn accepts_purpose(&self, ctx: &Context, purpose: &Name) -> bool {
        if purpose == ctx.purpose() {
            return true;
        }
        let scope = (ctx.tenant().clone(), ctx.purpose().clone());
        self.inner
            .copies
            .get(&scope)
            .is_some_and(|c| c.iter().any(|(t, p)| t == ctx.tenant() && p == purpose))
            || self
                .inner
                .accepted
                .get(&scope)
                .is_some_and(|c| c.contains(purpose))
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
    ///    before the read), and its backend's answer must name its key; only a backend
    ///    that is down, no longer holds the key or holds only its public half falls
    ///    through to the next copy.
    async fn unwrap_dek_as(
        &self,
        ctx: &Context,
        wrapped: &WrappedDek,
        access: Access<'_>,
    ) -> Result<DataKey, Error> {
        if wrapped.classification() != ctx.classification() {
            return Err(ContextError::Classification {
                expected: ctx.classification().clone(),
                found: wrapped.classification().clone(),
            }
            .into());
        }
        let entries = wrapped.entries();
        for e in entries {
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
        let primary = entries
            .first()
            .ok_or(crate::format::FormatError::Truncated)?;
        let now = self.inner.clock.now();
        let mut last_err: Option<Error> = None;
        for e in entries {
            if let Access::Without(excluded) = access
                && e.kek() == &excluded.reference
            {
                continue;
            }
            let Some(resolved) = self.resolve(e.kek()) else {
                continue;
            };
            let kek = &resolved.record;
            // Nor a copy under another name for the same backend key.
            if let Access::Without(excluded) = access
                && kek.backend == excluded.backend
                && kek.instance == excluded.instance
                && kek.locator == excluded.locator
            {
                continue;
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
                last_err = Some(refused.into());
                continue;
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
            let locator = &resolved.locator;
            let req = UnwrapRequest::new(
                locator,
                kek.algorithm,
                e.params(),
                e.wrapped(),
                ctx.binding(),
            );
            match backend.unwrap(req).await {
                Ok(resp) if &resp.kek == locator => {
                    resolved.counters.unwrapped();
                    if let Some(cache) = &self.inner.cache
                        && access == Access::Normal
                    {
                        cache.put(e, ctx, &resp.dek, kek.reference.clone(), now, epoch);
                    }
                    return Ok(resp.dek);
                }
                Ok(resp) => {
                    return Err(BackendError::KeyMismatch {
                        asked: locator.clone(),
                        answered: resp.kek,
                    }
                    .into());
                }
                Err(BackendError::Rejected) => return Err(Error::Crypto),
                // The next copy may live elsewhere: a backend that is down, that no
                // longer holds the KEK (deleted, region lost), or that holds only its
                // public half here, is what copies are for. No input causes these.
                Err(
                    err @ (BackendError::Unavailable { .. }
                    | BackendError::KeyNotFound(_)
                    | BackendError::PublicOnly(_)),
                ) => {
                    last_err = Some(err.into());
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(last_err.unwrap_or_else(|| KeyStateError::UnknownKek(primary.kek().clone()).into()))
    }

    fn backend(&self, kek: &KekRecord) -> Result<&Arc<dyn KeyBackend>, Error> {
        // KEKs registered after `build` (rotation successors) are checked here.
        check_backend(&self.inner.backends, kek)
    }
}

/// Which rules an unwrap follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access<'a> {
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
