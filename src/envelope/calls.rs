//! The envelope's one door to its backends: every backend call the envelope makes goes
//! through a function here, which finds the backend instance that serves a KEK record
//! (checked), traces the call (feature `tracing`), checks that the answer names the key
//! that was asked for, and maps the backend's one cryptographic refusal
//! ([`BackendError::Rejected`]) to the opaque [`Error::Crypto`].
//!
//! A span per call is named `kekring.backend` and carries the backend, the operation,
//! the last 12 characters of the KEK's key identity (as audit events do; of its locator
//! before the key is identified), the algorithm, and once the call ends its outcome (`ok` or the error's
//! [`kind`](BackendError::kind)) and latency. Nothing else: no key material, no binding
//! context, no wrapped bytes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::backend::{
    BackendError, KekChange, KekDescriptor, KekSpec, KeyBackend, RewrapRequest, ServiceOutcome,
    UnwrapRequest, WrapRequest, WrapResponse,
};
use crate::crypto::{CryptoProvider, Primitives};
use crate::error::{ConfigError, Error};
use crate::format::{BackendId, BindingContext, WrapAlgorithm};
use crate::lifecycle::KekRecord;
use crate::locator::{KekLocator, KeyIdentity};
use crate::secret::DataKey;

/// The configured backend instances, by instance name.
pub(super) type Backends = HashMap<String, Arc<dyn KeyBackend>>;

/// The backend serving a KEK record, checked as [`backend_for`] does, and checked to
/// identify the record's locator as the key the ring recorded: a record whose locator
/// now names another key (edited, or another backend instance under the same name) is
/// not used.
pub(super) fn served<'a>(
    backends: &'a Backends,
    rec: &KekRecord,
) -> Result<&'a Arc<dyn KeyBackend>, Error> {
    let backend = holder(backends, rec)?;
    let found = identify(backend.as_ref(), &rec.locator)?;
    if found != rec.key_id {
        return Err(ConfigError::KeyIdentity {
            kek: rec.reference.clone(),
            recorded: rec.key_id.tail(),
            found: found.tail(),
        }
        .into());
    }
    Ok(backend)
}

/// The backend instance holding a record's key, without the identity check of
/// [`served`]: for deleting a key that may already be gone.
pub(super) fn holder<'a>(
    backends: &'a Backends,
    rec: &KekRecord,
) -> Result<&'a Arc<dyn KeyBackend>, Error> {
    backend_for(
        backends,
        rec.backend,
        rec.instance.as_deref(),
        rec.algorithm,
    )
}

/// The identity `backend` gives `locator`.
pub(super) fn identify(
    backend: &dyn KeyBackend,
    locator: &KekLocator,
) -> Result<KeyIdentity, Error> {
    Ok(backend.key_identity(locator)?)
}

/// The backend instance that serves a KEK of `kind` (its default instance, or the
/// instance named), checked: the instance exists, is of that kind and offers
/// `algorithm`.
pub(super) fn backend_for<'a>(
    backends: &'a Backends,
    kind: BackendId,
    instance: Option<&str>,
    algorithm: WrapAlgorithm,
) -> Result<&'a Arc<dyn KeyBackend>, Error> {
    let default = kind.to_string();
    let name = instance.unwrap_or(&default);
    let backend = backends.get(name).ok_or_else(|| match instance {
        Some(name) => ConfigError::NoBackendInstance(name.to_owned()),
        None => ConfigError::NoBackend(kind),
    })?;
    if backend.info().id != kind {
        return Err(ConfigError::BackendKind {
            instance: name.to_owned(),
            expected: kind,
            found: backend.info().id,
        }
        .into());
    }
    if !backend.info().offers(algorithm) {
        return Err(ConfigError::AlgorithmNotOffered {
            backend: kind,
            algorithm,
        }
        .into());
    }
    Ok(backend)
}

/// A KEK as a backend call names it: the backend that serves it, its locator, its key's
/// identity when the ring knows it (what traces show of it), and its algorithm.
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) backend: &'a dyn KeyBackend,
    pub(super) locator: &'a KekLocator,
    pub(super) key_id: Option<&'a KeyIdentity>,
    pub(super) algorithm: WrapAlgorithm,
}

/// The envelope's crypto provider, for what a remote backend computes locally.
fn provider(crypto: &'static dyn Primitives) -> CryptoProvider {
    CryptoProvider { primitives: crypto }
}

impl<'a> Target<'a> {
    /// A KEK record of the key ring, served by `backend`.
    pub(super) fn of(backend: &'a Arc<dyn KeyBackend>, rec: &'a KekRecord) -> Self {
        Self {
            backend: backend.as_ref(),
            locator: &rec.locator,
            key_id: Some(&rec.key_id),
            algorithm: rec.algorithm,
        }
    }

    /// Refuses an answer that names another key than this target's.
    fn check_answer(&self, answered: &KekLocator) -> Result<(), Error> {
        if answered == self.locator {
            return Ok(());
        }
        Err(BackendError::KeyMismatch {
            asked: self.locator.clone(),
            answered: answered.clone(),
        }
        .into())
    }
}

/// A backend error as the envelope reports it: a rejected wrap is the one opaque
/// cryptographic failure.
fn reported(e: BackendError) -> Error {
    match e {
        BackendError::Rejected => Error::Crypto,
        other => Error::Backend(other),
    }
}

/// Wraps `dek` under the target; the answer must name the target's key. `crypto` is the
/// envelope's provider, for what the backend computes locally.
pub(super) async fn wrap(
    t: Target<'_>,
    crypto: &'static dyn Primitives,
    dek: &DataKey,
    binding: &BindingContext,
) -> Result<WrapResponse, Error> {
    let req = WrapRequest::new(t.locator, t.algorithm, dek, binding).with_crypto(provider(crypto));
    let call = t.backend.wrap(req);
    let resp = traced(t, "wrap", call).await.map_err(reported)?;
    t.check_answer(&resp.kek)?;
    Ok(resp)
}

/// Unwraps a copy under the target; the answer must name the target's key.
pub(super) async fn unwrap(
    t: Target<'_>,
    crypto: &'static dyn Primitives,
    params: &[u8],
    wrapped: &[u8],
    binding: &BindingContext,
) -> Result<DataKey, Error> {
    let req = UnwrapRequest::new(t.locator, t.algorithm, params, wrapped, binding)
        .with_crypto(provider(crypto));
    let resp = traced(t, "unwrap", t.backend.unwrap(req))
        .await
        .map_err(reported)?;
    t.check_answer(&resp.kek)?;
    Ok(resp.dek)
}

/// Re-wraps a copy under `from` to `to` inside their backend; `None` when the backend
/// cannot ([`BackendError::Unsupported`]). The answer must name `to`'s key.
pub(super) async fn rewrap(
    from: Target<'_>,
    to: Target<'_>,
    crypto: &'static dyn Primitives,
    params: &[u8],
    wrapped: &[u8],
    binding: &BindingContext,
) -> Result<Option<WrapResponse>, Error> {
    let req = RewrapRequest::new(
        UnwrapRequest::new(from.locator, from.algorithm, params, wrapped, binding)
            .with_crypto(provider(crypto)),
        to.locator,
    );
    match traced(to, "rewrap", to.backend.rewrap(req)).await {
        Ok(resp) => {
            to.check_answer(&resp.kek)?;
            Ok(Some(resp))
        }
        Err(BackendError::Unsupported { .. }) => Ok(None),
        Err(e) => Err(reported(e)),
    }
}

/// Creates a KEK from `spec` in the target's backend (the target names the KEK it
/// succeeds, for the trace).
pub(super) async fn create_kek(t: Target<'_>, spec: &KekSpec) -> Result<KekDescriptor, Error> {
    Ok(traced(t, "create_kek", t.backend.create_kek(spec)).await?)
}

/// The stable form of the target's locator, from its backend.
pub(super) async fn resolve_kek(t: Target<'_>) -> Result<KekLocator, Error> {
    Ok(traced(t, "resolve_kek", t.backend.resolve_kek(t.locator)).await?)
}

/// Tells the target's backend that the key ring retired it; `in_use` are the locators
/// of the backend instance's other KEKs still in use.
pub(super) async fn retire_kek(
    t: Target<'_>,
    in_use: &[KekLocator],
) -> Result<ServiceOutcome, BackendError> {
    let change = KekChange::new(t.locator, in_use);
    traced(t, "retire_kek", t.backend.retire_kek(change)).await
}

/// Deletes the target's material in its backend, as [`retire_kek`] tells it.
pub(super) async fn destroy_kek(
    t: Target<'_>,
    in_use: &[KekLocator],
) -> Result<ServiceOutcome, BackendError> {
    let change = KekChange::new(t.locator, in_use);
    traced(t, "destroy_kek", t.backend.destroy_kek(change)).await
}

/// Runs one backend call inside a span named `kekring.backend` (with feature `tracing`;
/// without it, the bare call).
async fn traced<T, Fut>(
    t: Target<'_>,
    operation: &'static str,
    call: Fut,
) -> Result<T, BackendError>
where
    Fut: Future<Output = Result<T, BackendError>>,
{
    let backend: BackendId = t.backend.info().id;
    #[cfg(feature = "tracing")]
    {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "kekring.backend",
            backend = %backend,
            operation,
            kek = %t.key_id.map_or_else(|| t.locator.redacted(), KeyIdentity::tail),
            algorithm = t.algorithm.name(),
            outcome = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        );
        let start = std::time::Instant::now();
        let result = call.instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        span.record("outcome", outcome);
        span.record("latency_us", latency_us);
        tracing::debug!(parent: &span, outcome, latency_us, "backend call finished");
        result
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (backend, operation, t.key_id);
        call.await
    }
}
