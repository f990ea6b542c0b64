//! The spy the suite puts between a chassis backend and its service
//! ([`Conformance::for_service`]): it passes every call through, and on the suite's
//! word makes the next answer name another key, or loses the answer of the next key
//! creation (the key is made; the backend hears a timeout).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;

use super::{Conformance, Spying};
use crate::backend::kit::{
    Answer, CallError, CallPolicy, Described, Encapsulation, ErrorClass, Operation, RemoteBackend,
    RemoteOptions, Secret, Service, ServiceFailure,
};
use crate::backend::{BackendInfo, KekSpec, KeyIdentity, ServiceOutcome};
use crate::error::BackendError;
use crate::format::BindingContext;

/// What the suite asks of the spy, shared with it.
#[derive(Debug, Default)]
struct Orders {
    lie: AtomicBool,
    lose_creation: AtomicBool,
    creations: AtomicU32,
}

impl Spying for Orders {
    fn lie_once(&self) {
        self.lie.store(true, Ordering::SeqCst);
    }

    fn lose_next_creation(&self) {
        self.lose_creation.store(true, Ordering::SeqCst);
    }

    fn creations(&self) -> u32 {
        self.creations.load(Ordering::SeqCst)
    }
}

/// A service that passes through to `inner`, as ordered.
struct Spy<S> {
    inner: S,
    orders: Arc<Orders>,
}

impl<S: fmt::Debug> fmt::Debug for Spy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Spy").field(&self.inner).finish()
    }
}

impl<S> Spy<S> {
    /// The answer, or one naming another key when a lie was ordered.
    fn answer<T>(&self, got: Result<Answer<T>, CallError>) -> Result<Answer<T>, CallError> {
        let mut a = got?;
        if self.orders.lie.swap(false, Ordering::SeqCst) {
            a.key = KeyIdentity::new(format!("{}-another-key", a.key.as_str()));
        }
        Ok(a)
    }
}

#[async_trait]
impl<S: Service> Service for Spy<S> {
    type Locator = S::Locator;
    type Key = S::Key;

    fn info(&self) -> BackendInfo {
        self.inner.info()
    }

    fn call_policy(&self) -> &CallPolicy {
        self.inner.call_policy()
    }

    fn classify(&self, failure: &ServiceFailure, operation: Operation) -> Option<ErrorClass> {
        self.inner.classify(failure, operation)
    }

    fn identity(&self, locator: &S::Locator) -> Result<KeyIdentity, BackendError> {
        self.inner.identity(locator)
    }

    async fn describe(&self, locator: &S::Locator) -> Result<Described<S::Key>, CallError> {
        self.inner.describe(locator).await
    }

    async fn encrypt(
        &self,
        key: &S::Key,
        plaintext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        self.answer(self.inner.encrypt(key, plaintext, binding).await)
    }

    async fn decrypt(
        &self,
        key: &S::Key,
        ciphertext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Secret>, CallError> {
        self.answer(self.inner.decrypt(key, ciphertext, binding).await)
    }

    async fn wrap_key(
        &self,
        key: &S::Key,
        intermediate: &[u8],
    ) -> Result<Answer<Vec<u8>>, CallError> {
        self.answer(self.inner.wrap_key(key, intermediate).await)
    }

    async fn unwrap_key(&self, key: &S::Key, wrapped: &[u8]) -> Result<Answer<Secret>, CallError> {
        self.answer(self.inner.unwrap_key(key, wrapped).await)
    }

    async fn public_key(&self, key: &S::Key) -> Result<Answer<Vec<u8>>, CallError> {
        self.answer(self.inner.public_key(key).await)
    }

    async fn encapsulate(&self, key: &S::Key) -> Result<Answer<Encapsulation>, CallError> {
        self.answer(self.inner.encapsulate(key).await)
    }

    async fn decapsulate(
        &self,
        key: &S::Key,
        ciphertext: &[u8],
    ) -> Result<Answer<Secret>, CallError> {
        self.answer(self.inner.decapsulate(key, ciphertext).await)
    }

    async fn rewrap(
        &self,
        from: &S::Key,
        to: &S::Key,
        ciphertext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        self.answer(self.inner.rewrap(from, to, ciphertext, binding).await)
    }

    async fn create(
        &self,
        spec: &KekSpec,
        successor_of: Option<&S::Locator>,
    ) -> Result<S::Locator, CallError> {
        self.orders.creations.fetch_add(1, Ordering::SeqCst);
        let created = self.inner.create(spec, successor_of).await?;
        if self.orders.lose_creation.swap(false, Ordering::SeqCst) {
            // Made in the service, its answer lost on the way back.
            return Err(CallError::Transport {
                timeout: true,
                source: "the conformance suite's spy dropped the answer".into(),
            });
        }
        Ok(created)
    }

    async fn retire(
        &self,
        key: &Described<S::Key>,
        in_use: &[S::Locator],
    ) -> Result<ServiceOutcome, CallError> {
        self.inner.retire(key, in_use).await
    }

    async fn destroy(
        &self,
        key: &Described<S::Key>,
        in_use: &[S::Locator],
    ) -> Result<ServiceOutcome, CallError> {
        self.inner.destroy(key, in_use).await
    }
}

impl Conformance {
    /// The suite for the chassis backend on `service` (feature `remote`): as
    /// [`Conformance::new`], with a spy between the backend and the service, which adds
    /// two checks no server can be made to do: `service-answers-another-key` (an answer
    /// naming another key is refused) and `creation-not-retried` (a key creation whose
    /// answer is lost reaches the service once). Take the service of a configured
    /// backend with [`RemoteBackend::into_parts`].
    pub fn for_service<S: Service>(service: S, options: RemoteOptions) -> Self {
        let orders = Arc::new(Orders::default());
        let spy = Spy {
            inner: service,
            orders: orders.clone(),
        };
        let backend = Arc::new(RemoteBackend::with_service(spy, options));
        let mut suite = Self::new(backend);
        suite.spy = Some(orders);
        suite
    }
}
