//! The API most users touch: seal and open whole objects, or generate and unwrap data
//! keys for callers that store the wrapped DEK themselves.
//!
//! Every seal draws a fresh DEK, checks the classification profile for every KEK the DEK
//! is about to be wrapped under (before any backend is called), wraps the DEK with the
//! caller's context bound into each wrap, and encrypts the payload with key commitment.
//! Every open checks the header's claims against the caller's context and the configured
//! KEKs before any backend is called: a KEK reference in a header is metadata, never
//! authorization.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::backend::{BackendError, KekLocator, KeyBackend, UnwrapRequest, WrapRequest};
use crate::context::Context;
use crate::crypto::{self, CryptoProvider};
use crate::error::{ContextError, Error, KeyStateError, MisuseError};
use crate::format::{
    BackendId, KekRef, NONCE_LEN, Name, SealedHeader, SealedObject, Suite, TAG_LEN, WrapAlgorithm,
    WrappedDek, WrappedEntry,
};
use crate::payload;
use crate::policy::Profile;
use crate::secret::{DataKey, KEY_LEN};

/// The payload suite new objects are sealed with.
const SUITE: Suite = Suite::Aes256GcmHkdfSha256Commit;

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
}

impl fmt::Debug for EnvelopeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeBuilder")
            .field("backends", &self.backends)
            .field("keks", &self.keks)
            .field("routes", &self.routes)
            .field("profile", &self.profile.name())
            .finish()
    }
}

impl EnvelopeBuilder {
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

    /// Registers a KEK. Registered KEKs may unwrap; those named by a route also wrap.
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

    /// Replaces the default classification profile.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Checks the configuration and builds the envelope.
    ///
    /// # Errors
    /// [`Error::Misuse`] for two backends under one instance name, a KEK registered
    /// twice, a KEK whose backend instance is missing, of another kind, or does not
    /// offer its algorithm, or a route that names an unregistered KEK, mixes tenants or
    /// repeats a tenant and purpose.
    pub fn build(self) -> Result<Envelope, Error> {
        let mut backends: HashMap<String, Arc<dyn KeyBackend>> = HashMap::new();
        for (name, b) in self.backends {
            if backends.contains_key(&name) {
                return Err(MisuseError::DuplicateBackend(name).into());
            }
            backends.insert(name, b);
        }
        let mut keks = HashMap::new();
        for k in self.keks {
            let backend = backends
                .get(k.instance())
                .ok_or_else(|| match &k.instance {
                    Some(name) => MisuseError::NoBackendInstance(name.clone()),
                    None => MisuseError::NoBackend(k.backend),
                })?;
            if backend.info().id != k.backend {
                return Err(MisuseError::BackendKind {
                    instance: k.instance().to_owned(),
                    expected: k.backend,
                    found: backend.info().id,
                }
                .into());
            }
            if !backend.info().offers(k.algorithm) {
                return Err(MisuseError::AlgorithmNotOffered {
                    backend: k.backend,
                    algorithm: k.algorithm,
                }
                .into());
            }
            if let Some(prev) = keks.insert(k.reference.clone(), k) {
                return Err(MisuseError::DuplicateKek(prev.reference).into());
            }
        }
        let mut routes = HashMap::new();
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
                if !keks.contains_key(k) {
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
            if routes.insert(scope.clone(), r.keks).is_some() {
                return Err(invalid("the tenant and purpose already have a route").into());
            }
        }
        Ok(Envelope {
            inner: Arc::new(Inner {
                backends,
                keks,
                routes,
                profile: self.profile,
                crypto: crypto::default_provider(),
            }),
        })
    }
}

struct Inner {
    backends: HashMap<String, Arc<dyn KeyBackend>>,
    keks: HashMap<KekRef, KekBinding>,
    routes: HashMap<(Name, Name), Vec<KekRef>>,
    profile: Profile,
    crypto: &'static dyn CryptoProvider,
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
            .field("keks", &self.inner.keks.len())
            .field("routes", &self.inner.routes.len())
            .field("profile", &self.inner.profile.name())
            .field("crypto", &self.inner.crypto)
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
        }
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
        let (header, key, nonce, aad) = self.seal_header(ctx).await?;
        let mut out = Vec::with_capacity(header.len() + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        let (_, body) = out.split_at_mut(header.len());
        let tag = self.encrypt(&key, &nonce, &aad, body)?;
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
        let (header, key, nonce, aad) = self.seal_header(ctx).await?;
        let tag = self.encrypt(&key, &nonce, &aad, buf)?;
        Ok(SealedParts { header, tag })
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
        let (key, nonce, aad) = self.open_header(ctx, &header).await?;
        let (_, rest) = sealed.split_at_mut(header_len);
        let ct_len = rest
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(crate::FormatError::MissingTag)?;
        let (body, tag) = rest.split_at_mut(ct_len);
        let tag: [u8; TAG_LEN] = (&*tag)
            .try_into()
            .map_err(|_| crate::FormatError::MissingTag)?;
        self.inner
            .crypto
            .aes256_gcm_open(&key, &nonce, &aad, body, &tag)
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
            return Err(crate::FormatError::TrailingBytes.into());
        }
        let (key, nonce, aad) = self.open_header(ctx, &h).await?;
        self.inner
            .crypto
            .aes256_gcm_open(&key, &nonce, &aad, buf, tag)
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

    async fn seal_header(
        &self,
        ctx: &Context,
    ) -> Result<
        (
            Vec<u8>,
            zeroize::Zeroizing<[u8; 32]>,
            [u8; NONCE_LEN],
            Vec<u8>,
        ),
        Error,
    > {
        // One OS RNG call for the DEK and the nonce: each getrandom call is a syscall.
        let mut seed = zeroize::Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
        crypto::fill_random(seed.as_mut_slice())?;
        let (dek_bytes, nonce_bytes) = seed.split_at(KEY_LEN);
        let dek = DataKey::from_slice(dek_bytes)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(nonce_bytes);
        let wrapped = self.wrap_dek(ctx, &dek).await?;
        let keys = payload::derive(self.inner.crypto, &dek, SUITE, &nonce)?;
        let aad = payload::aad(SUITE, &nonce, &keys.commitment, ctx.binding());
        let header = SealedHeader::new(SUITE, wrapped, nonce, keys.commitment).encode();
        Ok((header, keys.key, nonce, aad))
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
        let suite = header.suite();
        let dek = self.unwrap_dek(ctx, header.wrapped_dek()).await?;
        let keys = payload::derive(self.inner.crypto, &dek, suite, header.nonce())?;
        payload::verify_commitment(&keys.commitment, header.commitment())?;
        let aad = payload::aad(suite, header.nonce(), header.commitment(), ctx.binding());
        Ok((keys.key, *header.nonce(), aad))
    }

    /// Wraps `dek` under every KEK of the context's route. The profile is checked for all
    /// of them before any backend is called.
    async fn wrap_dek(&self, ctx: &Context, dek: &DataKey) -> Result<WrappedDek, Error> {
        let scope = (ctx.tenant().clone(), ctx.purpose().clone());
        let route = self
            .inner
            .routes
            .get(&scope)
            .ok_or_else(|| KeyStateError::NoWrappingKek {
                tenant: scope.0.clone(),
                purpose: scope.1.clone(),
            })?;
        let mut plan = Vec::with_capacity(route.len());
        for r in route {
            let kek = self
                .inner
                .keks
                .get(r)
                .ok_or_else(|| KeyStateError::UnknownKek(r.clone()))?;
            self.inner
                .profile
                .check(ctx.classification(), kek.algorithm)?;
            plan.push(kek);
        }
        let mut entries = Vec::with_capacity(plan.len());
        for kek in plan {
            let backend = self.backend(kek)?;
            let resp = backend
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
                kek.backend,
                kek.reference.clone(),
                resp.params,
                resp.wrapped,
            )
            .map_err(|_| BackendError::MalformedResponse {
                what: "wrapped key",
            })?;
            entries.push(entry);
        }
        Ok(WrappedDek::new(ctx.classification().clone(), entries)?)
    }

    /// Checks the wrapped DEK's claims against `ctx` and the configured KEKs, then
    /// unwraps it with the first usable copy.
    async fn unwrap_dek(&self, ctx: &Context, wrapped: &WrappedDek) -> Result<DataKey, Error> {
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
        }
        let primary = entries.first().ok_or(crate::FormatError::Truncated)?;
        if primary.kek().purpose() != ctx.purpose() {
            return Err(ContextError::Purpose {
                expected: ctx.purpose().clone(),
                found: primary.kek().purpose().clone(),
            }
            .into());
        }
        let mut last_err: Option<Error> = None;
        for e in entries {
            let Some(kek) = self.inner.keks.get(e.kek()) else {
                continue;
            };
            if kek.backend != e.backend() || kek.algorithm != e.algorithm() {
                return Err(ContextError::KekClaim {
                    kek: e.kek().clone(),
                    claimed_backend: e.backend(),
                    claimed_algorithm: e.algorithm(),
                }
                .into());
            }
            let backend = self.backend(kek)?;
            let req = UnwrapRequest::new(
                &kek.locator,
                kek.algorithm,
                e.params(),
                e.wrapped(),
                ctx.binding(),
            );
            match backend.unwrap(req).await {
                Ok(resp) if resp.kek == kek.locator => return Ok(resp.dek),
                Ok(resp) => {
                    return Err(BackendError::KeyMismatch {
                        asked: kek.locator.clone(),
                        answered: resp.kek,
                    }
                    .into());
                }
                Err(BackendError::Rejected) => return Err(Error::Crypto),
                // The next copy may live elsewhere: a backend that is down, that no
                // longer holds the KEK (deleted, region lost), or that holds only its
                // public half here, is what copies are for. No input causes these.
                // A rejected wrap is not: the bytes are bad, and trying further keys
                // would only turn `open` into an oracle across them.
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

    fn backend(&self, kek: &KekBinding) -> Result<&Arc<dyn KeyBackend>, Error> {
        // `build` checked that every registered KEK's instance exists.
        self.inner
            .backends
            .get(kek.instance())
            .ok_or_else(|| MisuseError::NoBackendInstance(kek.instance().to_owned()).into())
    }
}
