//! [`RemoteBackend`]: a [`KeyBackend`] built from a [`Service`]. Everything remote
//! backends share is here, once: dispatch over the three constructions by algorithm,
//! the checks of `params` and lengths, the answer checks, retries, the resolution and
//! public-key caches, the intermediate-key and KEM constructions, error classification.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use async_trait::async_trait;

use super::classify::{self, Call, CallError, Operation};
use super::kem::{unwrap_with_ciphertext, wrap_with_ciphertext};
use super::locator::{self, Locator};
use super::service::{Answer, Described, EncapsulateMode, Service};
use super::{CallPolicy, intermediate};
use crate::backend::{
    BackendError, BackendInfo, KekChange, KekDescriptor, KekSpec, KeyBackend, KeyIdentity,
    RewrapRequest, ServiceOutcome, UnwrapRequest, UnwrapResponse, WrapRequest, WrapResponse,
};
use crate::crypto::Primitives;
use crate::crypto::mlkem::MlKemPublicKey;
use crate::format::{BindingContext, WrapAlgorithm};
use crate::locator::KekLocator;
use crate::secret::{DataKey, KEY_LEN};

/// Which construction of FORMAT.md §11 an algorithm is wrapped with by a remote
/// backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Construction {
    /// 1: the service binds the context (`aes256-opaque`).
    ServiceBinds,
    /// 2: the service wraps a fresh intermediate key; the data key is sealed under it
    /// locally with the binding (the `*-ik` algorithms).
    IntermediateKey,
    /// 3: the service holds a KEM private key; encapsulation and the wrap are local
    /// (`ml-kem-768`, `ml-kem-1024`).
    Kem,
}

impl Construction {
    /// The construction of `algorithm`, or `None` for one no remote backend offers.
    pub fn of(algorithm: WrapAlgorithm) -> Option<Self> {
        use WrapAlgorithm::*;
        match algorithm {
            Aes256Opaque => Some(Construction::ServiceBinds),
            RsaOaepSha256Ik2048 | RsaOaepSha256Ik3072 | RsaOaepSha256Ik4096 | Aes256KwIk => {
                Some(Construction::IntermediateKey)
            }
            MlKem768 | MlKem1024 => Some(Construction::Kem),
            _ => None,
        }
    }
}

/// How a [`RemoteBackend`] uses its service beyond the [`Service`] itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Where KEM encapsulation runs (locally by default).
    pub encapsulate: EncapsulateMode,
}

impl RemoteOptions {
    /// The defaults: local encapsulation, public keys kept 5 minutes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where KEM encapsulation runs.
    #[must_use]
    pub fn encapsulate(mut self, mode: EncapsulateMode) -> Self {
        self.encapsulate = mode;
        self
    }
}

/// A public key fetched for local encapsulation, with when it was fetched.
struct Fetched {
    at: Instant,
    key: Arc<MlKemPublicKey>,
}

/// A [`KeyBackend`] on a [`Service`]: see the [`Service`] documentation for what it
/// owns. Backends outside this crate get the same chassis: implement [`Service`] for
/// the service's client and wrap it in a `RemoteBackend` (with an id from
/// [`BackendId::private`](crate::BackendId::private) in its [`BackendInfo`]).
pub struct RemoteBackend<S: Service> {
    service: S,
    info: BackendInfo,
    options: RemoteOptions,
    /// Keys described, once per locator (their service's part, without a pin).
    described: RwLock<HashMap<KekLocator, Arc<Described<S::Key>>>>,
    /// Public keys fetched, checked against their pin, by key identity.
    public: Mutex<HashMap<KeyIdentity, Fetched>>,
}

impl<S: Service> fmt::Debug for RemoteBackend<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteBackend")
            .field("service", &self.service)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A KEK as a call names it: the service's locator, the pin of its public key.
struct Target<S: Service> {
    locator: S::Locator,
    pin: Option<[u8; 32]>,
}

impl<S: Service> RemoteBackend<S> {
    /// A backend on `service`.
    pub fn with_service(service: S, options: RemoteOptions) -> Self {
        Self {
            info: service.info(),
            service,
            options,
            described: RwLock::new(HashMap::new()),
            public: Mutex::new(HashMap::new()),
        }
    }

    /// The service.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The service and the options, to build another backend on them (the conformance
    /// suite's `for_service` puts a spy between the two).
    pub fn into_parts(self) -> (S, RemoteOptions) {
        (self.service, self.options)
    }

    fn target(kek: &KekLocator) -> Result<Target<S>, BackendError> {
        let (base, pin) = locator::split_pin(kek)?;
        Ok(Target {
            locator: S::Locator::parse(&base)?,
            pin,
        })
    }

    /// Runs `f` (one attempt) under the call policy, classifying its failure.
    async fn attempt<T, F, Fut>(
        &self,
        policy: &CallPolicy,
        call: Call<'_>,
        mut f: F,
    ) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        policy
            .run(call.serves, || {
                let started = Instant::now();
                let fut = f();
                async move {
                    fut.await.map_err(|e| {
                        classify::classify(
                            e,
                            |failure, op| self.service.classify(failure, op),
                            call,
                            started.elapsed(),
                        )
                    })
                }
            })
            .await
    }

    /// The key `t` names, described once per locator.
    async fn described(
        &self,
        t: &Target<S>,
        call: Call<'_>,
    ) -> Result<Arc<Described<S::Key>>, CallError> {
        let at = t.locator.to_locator();
        if let Some(d) = self.described.read().ok().and_then(|m| m.get(&at).cloned()) {
            return Ok(d);
        }
        let d = Arc::new(self.service.describe(&t.locator).await?);
        if self
            .service
            .identity(&t.locator)
            .is_ok_and(|id| id != d.identity)
        {
            return Err(CallError::Backend(BackendError::KeyMismatch {
                asked: call.kek.clone(),
                answered: KekLocator::new(d.identity.as_str()),
            }));
        }
        if let Ok(mut m) = self.described.write() {
            m.insert(at, d.clone());
        }
        Ok(d)
    }

    /// The key `t` names, of the algorithm asked for.
    async fn key_for(
        &self,
        t: &Target<S>,
        call: Call<'_>,
    ) -> Result<Arc<Described<S::Key>>, CallError> {
        let d = self.described(t, call).await?;
        if d.algorithm != call.algorithm {
            return Err(CallError::Backend(BackendError::UnsupportedAlgorithm {
                kek: call.kek.clone(),
                algorithm: call.algorithm,
            }));
        }
        Ok(d)
    }

    /// Refuses an answer naming another key than `d`.
    fn checked<T>(d: &Described<S::Key>, call: Call<'_>, a: Answer<T>) -> Result<T, CallError> {
        if a.key != d.identity {
            return Err(CallError::Backend(BackendError::KeyMismatch {
                asked: call.kek.clone(),
                answered: KekLocator::new(a.key.as_str()),
            }));
        }
        Ok(a.value)
    }

    /// The public key of a KEM KEK, fetched and checked against the pin, cached for the
    /// configured time.
    async fn public_key(
        &self,
        d: &Described<S::Key>,
        pin: Option<[u8; 32]>,
        call: Call<'_>,
        ttl: std::time::Duration,
    ) -> Result<Arc<MlKemPublicKey>, CallError> {
        let Some(pin) = pin else {
            return Err(CallError::Backend(BackendError::Unresolved(
                call.kek.clone(),
            )));
        };
        let cached = self.public.lock().ok().and_then(|m| {
            m.get(&d.identity)
                .filter(|f| f.at.elapsed() < ttl)
                .map(|f| f.key.clone())
        });
        if let Some(k) = cached
            && locator::digest(&k.to_bytes()) == pin
        {
            return Ok(k);
        }
        let raw = Self::checked(d, call, self.service.public_key(&d.key).await?)?;
        if locator::digest(&raw) != pin {
            return Err(CallError::Backend(BackendError::PublicKeyChanged(
                call.kek.clone(),
            )));
        }
        let key = Arc::new(MlKemPublicKey::from_bytes(d.algorithm, &raw).map_err(|_| {
            CallError::Malformed {
                what: "ML-KEM public key",
            }
        })?);
        if let Ok(mut m) = self.public.lock() {
            m.insert(
                d.identity.clone(),
                Fetched {
                    at: Instant::now(),
                    key: key.clone(),
                },
            );
        }
        Ok(key)
    }

    /// The locator to register for a described key: its stable form, with the pin of its
    /// public key for a KEM KEK. A pin the caller gave (checked out of band) must match
    /// the key the service answers with: it is checked, never replaced.
    async fn stable(
        &self,
        d: &Described<S::Key>,
        given: Option<[u8; 32]>,
        call: Call<'_>,
    ) -> Result<KekLocator, CallError> {
        if Construction::of(d.algorithm) != Some(Construction::Kem) {
            return Ok(d.locator.clone());
        }
        let raw = Self::checked(d, call, self.service.public_key(&d.key).await?)?;
        if given.is_some_and(|pin| locator::digest(&raw) != pin) {
            return Err(CallError::Backend(BackendError::PublicKeyChanged(
                call.kek.clone(),
            )));
        }
        MlKemPublicKey::from_bytes(d.algorithm, &raw).map_err(|_| CallError::Malformed {
            what: "ML-KEM public key",
        })?;
        Ok(locator::with_pin(&d.locator, &raw))
    }

    async fn wrap_once(
        &self,
        t: &Target<S>,
        call: Call<'_>,
        crypto: &dyn Primitives,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<(Vec<u8>, Vec<u8>), CallError> {
        let d = self.key_for(t, call).await?;
        let alg = call.algorithm;
        match Construction::of(alg) {
            Some(Construction::ServiceBinds) => {
                let a = self
                    .service
                    .encrypt(&d.key, dek.expose_secret(), binding)
                    .await?;
                Ok((Vec::new(), Self::checked(&d, call, a)?))
            }
            Some(Construction::IntermediateKey) => {
                let ik = intermediate::fresh_key()?;
                let a = self.service.wrap_key(&d.key, ik.as_slice()).await?;
                let params = Self::checked(&d, call, a)?;
                if params.len() != alg.lengths().params.0 {
                    return Err(CallError::Malformed {
                        what: "wrapped intermediate key",
                    });
                }
                let wrapped = intermediate::seal_dek(crypto, alg, &ik, binding, dek)?;
                Ok((params, wrapped))
            }
            Some(Construction::Kem) => match self.options.encapsulate {
                EncapsulateMode::Local { ttl } => {
                    let public = self.public_key(&d, t.pin, call, ttl).await?;
                    Ok(super::kem::encapsulate_and_wrap(
                        crypto, &public, binding, dek,
                    )?)
                }
                EncapsulateMode::Service => {
                    let a = self.service.encapsulate(&d.key).await?;
                    let e = Self::checked(&d, call, a)?;
                    if Some(e.ciphertext.len()) != kem_ciphertext_len(alg)
                        || e.shared_secret.expose().len() != 32
                    {
                        return Err(CallError::Malformed {
                            what: "encapsulation",
                        });
                    }
                    let ss = e.shared_secret;
                    Ok(wrap_with_ciphertext(
                        crypto,
                        alg,
                        e.ciphertext,
                        ss.expose(),
                        binding,
                        dek,
                    )?)
                }
            },
            None => Err(CallError::Backend(BackendError::UnsupportedAlgorithm {
                kek: call.kek.clone(),
                algorithm: alg,
            })),
        }
    }

    async fn unwrap_once(
        &self,
        t: &Target<S>,
        call: Call<'_>,
        crypto: &dyn Primitives,
        params: &[u8],
        wrapped: &[u8],
        binding: &BindingContext,
    ) -> Result<DataKey, CallError> {
        let d = self.key_for(t, call).await?;
        let alg = call.algorithm;
        // The stored wrap's shape is checked before the service sees it: bytes of another
        // shape are not a wrap under this key.
        let lengths = alg.lengths();
        let fits = |len: usize, (min, max): (usize, usize)| (min..=max).contains(&len);
        if !fits(params.len(), lengths.params) || !fits(wrapped.len(), lengths.wrapped) {
            return Err(CallError::Backend(BackendError::Rejected));
        }
        let rejected = || CallError::Backend(BackendError::Rejected);
        match Construction::of(alg) {
            Some(Construction::ServiceBinds) => {
                let a = self.service.decrypt(&d.key, wrapped, binding).await?;
                let plain = Self::checked(&d, call, a)?;
                // A ciphertext of this key and context that holds no data key is not a wrap.
                DataKey::from_slice(plain.expose()).map_err(|_| rejected())
            }
            Some(Construction::IntermediateKey) => {
                let a = self.service.unwrap_key(&d.key, params).await?;
                let ik = Self::checked(&d, call, a)?;
                let ik: &[u8; KEY_LEN] = ik.expose().try_into().map_err(|_| rejected())?;
                Ok(intermediate::open_dek(crypto, alg, ik, binding, wrapped)?)
            }
            Some(Construction::Kem) => {
                let a = self.service.decapsulate(&d.key, params).await?;
                let ss = Self::checked(&d, call, a)?;
                if ss.expose().len() != 32 {
                    return Err(CallError::Malformed {
                        what: "shared secret",
                    });
                }
                // Implicit rejection: a tampered ciphertext gave an unrelated secret, and
                // the RFC 3394 check refuses it.
                Ok(unwrap_with_ciphertext(
                    crypto,
                    alg,
                    params,
                    ss.expose(),
                    binding,
                    wrapped,
                )?)
            }
            None => Err(CallError::Backend(BackendError::UnsupportedAlgorithm {
                kek: call.kek.clone(),
                algorithm: alg,
            })),
        }
    }

    /// The other locators in use, parsed (those of another service are left out).
    fn in_use(change: &KekChange<'_>) -> Vec<S::Locator> {
        change
            .in_use
            .iter()
            .filter_map(|l| locator::split_pin(l).ok())
            .filter_map(|(base, _)| S::Locator::parse(&base).ok())
            .collect()
    }
}

/// The KEM ciphertext length of an ML-KEM wrap algorithm.
fn kem_ciphertext_len(algorithm: WrapAlgorithm) -> Option<usize> {
    crate::crypto::mlkem::lengths(algorithm).map(|(_, ct)| ct)
}

#[async_trait]
impl<S: Service> KeyBackend for RemoteBackend<S> {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn key_identity(&self, kek: &KekLocator) -> Result<KeyIdentity, BackendError> {
        self.service.identity(&Self::target(kek)?.locator)
    }

    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        let t = Self::target(req.kek)?;
        let call = Call {
            kek: req.kek,
            operation: operation_wrapping(req.algorithm),
            serves: "wrap",
            algorithm: req.algorithm,
        };
        let crypto = req.crypto.primitives;
        let (params, wrapped) = self
            .attempt(self.service.call_policy(), call, || {
                self.wrap_once(&t, call, crypto, req.dek, req.binding)
            })
            .await?;
        Ok(WrapResponse::new(req.kek.clone(), params, wrapped))
    }

    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        let t = Self::target(req.kek)?;
        let call = Call {
            kek: req.kek,
            operation: operation_unwrapping(req.algorithm),
            serves: "unwrap",
            algorithm: req.algorithm,
        };
        let crypto = req.crypto.primitives;
        let dek = self
            .attempt(self.service.call_policy(), call, || {
                self.unwrap_once(&t, call, crypto, req.params, req.wrapped, req.binding)
            })
            .await?;
        Ok(UnwrapResponse::new(req.kek.clone(), dek))
    }

    async fn rewrap(&self, req: RewrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        let alg = req.from.algorithm;
        if Construction::of(alg) != Some(Construction::ServiceBinds) || !req.from.params.is_empty()
        {
            return Err(BackendError::Unsupported {
                operation: "rewrap",
            });
        }
        let (from, to) = (Self::target(req.from.kek)?, Self::target(req.to)?);
        let call = Call {
            kek: req.from.kek,
            operation: Operation::Rewrap,
            serves: "rewrap",
            algorithm: alg,
        };
        let to_call = Call {
            kek: req.to,
            ..call
        };
        let wrapped = self
            .attempt(self.service.call_policy(), call, || async {
                let f = self.key_for(&from, call).await?;
                let t = self.key_for(&to, to_call).await?;
                let a = self
                    .service
                    .rewrap(&f.key, &t.key, req.from.wrapped, req.from.binding)
                    .await?;
                Self::checked(&t, to_call, a)
            })
            .await?;
        Ok(WrapResponse::new(req.to.clone(), Vec::new(), wrapped))
    }

    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        let hint = KekLocator::new(spec.name_hint.clone());
        if !self.info.offers(spec.algorithm) {
            return Err(BackendError::UnsupportedAlgorithm {
                kek: hint,
                algorithm: spec.algorithm,
            });
        }
        let predecessor = match &spec.successor_of {
            Some(l) => Some(Self::target(l)?.locator),
            None => None,
        };
        let call = Call {
            kek: &hint,
            operation: Operation::Create,
            serves: "create_kek",
            algorithm: spec.algorithm,
        };
        // Not retried: a creation that timed out may have made a key; another attempt
        // would make a second one (billed, named nowhere) or skip a version.
        let once = self.service.call_policy().clone().no_retries();
        let created = self
            .attempt(&once, call, || {
                self.service.create(spec, predecessor.as_ref())
            })
            .await?;
        let locator = created.to_locator();
        let resolved = self.resolve_kek(&locator).await?;
        Ok(KekDescriptor::new(resolved, spec.algorithm))
    }

    /// The described key's stable locator (an alias resolved to its key, the canonical
    /// spelling), with the pin of its public key for a KEM KEK.
    async fn resolve_kek(&self, kek: &KekLocator) -> Result<KekLocator, BackendError> {
        let t = Self::target(kek)?;
        let call = Call {
            kek,
            operation: Operation::Describe,
            serves: "resolve_kek",
            algorithm: WrapAlgorithm::Aes256Opaque,
        };
        self.attempt(self.service.call_policy(), call, || async {
            // Afresh, not from the cache: an alias is resolved to what it names now.
            let d = self.service.describe(&t.locator).await?;
            self.stable(&d, t.pin, call).await
        })
        .await
    }

    async fn retire_kek(&self, change: KekChange<'_>) -> Result<ServiceOutcome, BackendError> {
        let t = Self::target(change.kek)?;
        let in_use = Self::in_use(&change);
        let call = Call {
            kek: change.kek,
            operation: Operation::Retire,
            serves: "retire_kek",
            algorithm: WrapAlgorithm::Aes256Opaque,
        };
        self.attempt(self.service.call_policy(), call, || async {
            let d = self.described(&t, call).await?;
            self.service.retire(&d, &in_use).await
        })
        .await
    }

    async fn destroy_kek(&self, change: KekChange<'_>) -> Result<ServiceOutcome, BackendError> {
        let t = Self::target(change.kek)?;
        let in_use = Self::in_use(&change);
        let call = Call {
            kek: change.kek,
            operation: Operation::Destroy,
            serves: "destroy_kek",
            algorithm: WrapAlgorithm::Aes256Opaque,
        };
        self.attempt(self.service.call_policy(), call, || async {
            let d = self.described(&t, call).await?;
            self.service.destroy(&d, &in_use).await
        })
        .await
    }
}

fn operation_wrapping(algorithm: WrapAlgorithm) -> Operation {
    match Construction::of(algorithm) {
        Some(Construction::IntermediateKey) => Operation::WrapKey,
        Some(Construction::Kem) => Operation::PublicKey,
        _ => Operation::Encrypt,
    }
}

fn operation_unwrapping(algorithm: WrapAlgorithm) -> Operation {
    match Construction::of(algorithm) {
        Some(Construction::IntermediateKey) => Operation::UnwrapKey,
        Some(Construction::Kem) => Operation::Decapsulate,
        _ => Operation::Decrypt,
    }
}
