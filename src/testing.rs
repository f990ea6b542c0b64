//! The conformance suite every [`KeyBackend`] passes (feature `testing`), the local one
//! included, and any backend written outside this crate:
//!
//! ```no_run
//! # async fn f(backend: std::sync::Arc<dyn kekring::KeyBackend>) {
//! use kekring::testing::Conformance;
//! let report = Conformance::new(backend)
//!     .unknown_kek("a-locator-that-names-no-key")
//!     .run()
//!     .await
//!     .expect("the backend conforms");
//! assert!(report.ran("round-trip"));
//! # }
//! ```
//!
//! Per algorithm offered (or named with [`Conformance::algorithms`]): create two KEKs and
//! the first one's successor ([`KekSpec::successor_of`]); round trip; the wrap refused
//! under a binding that differs in any one field, when tampered (first, middle and last
//! byte of `params` and of `wrapped`), under the other KEKs, and under another
//! algorithm; 64 wraps and unwraps at once; a seal and open through an [`Envelope`] on
//! the backend; and an envelope refusing a backend answer that names another key (that
//! a backend compares the key its *service* names is for each backend's own tests, with
//! a server that can be made to lie). Then, where the test supplies what they need:
//! typed errors for an unknown key (wrap and unwrap), a disabled key, and a server that
//! is down (transient, within [`SERVER_DOWN_BOUND`]). [`Report::ran`] tells which checks
//! ran, so a backend's test asserts the ones it promised.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::join_all;

use crate::backend::{
    BackendInfo, KekDescriptor, KekSpec, KeyBackend, UnwrapRequest, UnwrapResponse, WrapRequest,
    WrapResponse,
};
use crate::context::Context;
use crate::envelope::Envelope;
use crate::error::{BackendError, Error};
use crate::format::{BindingContext, Classification, KekRef, Name, WrapAlgorithm};
use crate::lifecycle::NewKek;
use crate::locator::{KekLocator, KeyIdentity};
use crate::policy::Profile;
use crate::secret::DataKey;

/// A future the suite awaits (the disable hook's).
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

type DisableHook = Box<dyn Fn(KekLocator) -> HookFuture + Send + Sync>;

/// The suite, configured for one backend.
pub struct Conformance {
    backend: Arc<dyn KeyBackend>,
    algorithms: Option<Vec<WrapAlgorithm>>,
    unknown: Option<KekLocator>,
    unreachable: Option<Arc<dyn KeyBackend>>,
    disable: Option<DisableHook>,
    concurrency: usize,
    wraps_offline: bool,
}

impl fmt::Debug for Conformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conformance")
            .field("backend", &self.backend.info().id)
            .field("algorithms", &self.algorithms)
            .field("unknown", &self.unknown)
            .field("unreachable", &self.unreachable.is_some())
            .field("disable", &self.disable.is_some())
            .finish()
    }
}

/// Which checks ran.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    checks: Vec<String>,
}

impl Report {
    /// Whether a check of that name ran (and passed) for at least one algorithm:
    /// `create`, `successor`, `round-trip`, `wrong-binding`, `tampered-wrapped`,
    /// `tampered-params`, `other-kek`, `wrong-algorithm`, `concurrent`, `envelope`,
    /// `answer-names-another-key`, `unknown-key`, `disabled-key`, `server-down`.
    pub fn ran(&self, check: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c == check || c.starts_with(&format!("{check}/")))
    }

    /// Every check that ran, as `name/algorithm`.
    pub fn checks(&self) -> &[String] {
        &self.checks
    }

    /// Of `checks`, those that did not run: for each of `algorithms`, or for any
    /// algorithm when `algorithms` is empty (the checks without one: `unknown-key`,
    /// `server-down`). Empty when everything a backend's test promised ran.
    pub fn missing(&self, checks: &[&str], algorithms: &[WrapAlgorithm]) -> Vec<String> {
        let mut out = Vec::new();
        for check in checks {
            if algorithms.is_empty() {
                if !self.ran(check) {
                    out.push((*check).to_owned());
                }
                continue;
            }
            for alg in algorithms {
                let name = format!("{check}/{alg}");
                if !self.checks.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }
}

/// The checks that run for every algorithm of every backend, with no hook from the
/// test.
/// (`tampered-params` runs only for algorithms that have parameters.)
pub const CORE_CHECKS: [&str; 10] = [
    "create",
    "successor",
    "round-trip",
    "wrong-binding",
    "tampered-wrapped",
    "other-kek",
    "wrong-algorithm",
    "concurrent",
    "envelope",
    "answer-names-another-key",
];

/// A check that failed: which, for which algorithm, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check {check} failed: {detail}")]
pub struct Failure {
    /// `name/algorithm`.
    pub check: String,
    /// What was expected and what happened.
    pub detail: String,
}

fn fail<T>(check: &str, detail: impl fmt::Display) -> Result<T, Failure> {
    Err(Failure {
        check: check.to_owned(),
        detail: detail.to_string(),
    })
}

fn binding(object: &str, class: Classification) -> Result<BindingContext, Failure> {
    binding_of(
        "conformance",
        "suite",
        object,
        class,
        b"conformance associated data",
    )
}

fn binding_of(
    tenant: &str,
    purpose: &str,
    object: &str,
    class: Classification,
    aad: &[u8],
) -> Result<BindingContext, Failure> {
    let setup = |e: crate::format::ArgumentError| Failure {
        check: "setup".into(),
        detail: e.to_string(),
    };
    BindingContext::new(
        Name::new("tenant", tenant).map_err(setup)?,
        Name::new("purpose", purpose).map_err(setup)?,
        object.as_bytes(),
        class,
        aad,
    )
    .map_err(setup)
}

fn dek() -> Result<DataKey, Failure> {
    DataKey::generate().map_err(|e| Failure {
        check: "setup".into(),
        detail: e.to_string(),
    })
}

impl Conformance {
    /// The suite for `backend`, over every algorithm its [`BackendInfo`] offers.
    pub fn new(backend: Arc<dyn KeyBackend>) -> Self {
        Self {
            backend,
            algorithms: None,
            unknown: None,
            unreachable: None,
            disable: None,
            concurrency: 64,
            wraps_offline: false,
        }
    }

    /// Only these algorithms (e.g. the ones the test server implements).
    pub fn algorithms(mut self, algorithms: &[WrapAlgorithm]) -> Self {
        self.algorithms = Some(algorithms.to_vec());
        self
    }

    /// A locator in the backend's syntax that names no key: `wrap` and `unwrap` under it
    /// must fail with [`BackendError::KeyNotFound`].
    pub fn unknown_kek(mut self, locator: impl Into<KekLocator>) -> Self {
        self.unknown = Some(locator.into());
        self
    }

    /// The same backend configured against a server that is down (a closed port): every
    /// call must fail with a [transient](BackendError::is_transient) error, in bounded
    /// time.
    pub fn unreachable(mut self, backend: Arc<dyn KeyBackend>) -> Self {
        self.unreachable = Some(backend);
        self
    }

    /// How to disable a KEK in the service (out of band, as an operator would): after
    /// it, `wrap` and `unwrap` must fail with [`BackendError::KeyDisabled`].
    pub fn disable_with(
        mut self,
        hook: impl Fn(KekLocator) -> HookFuture + Send + Sync + 'static,
    ) -> Self {
        self.disable = Some(Box::new(hook));
        self
    }

    /// The backend wraps without calling its service (a remote KEM KEK encapsulating to
    /// a cached public key): a key disabled in the service is then refused at unwrap,
    /// and at wrap only once the cached public key expires, so the `disabled-key` check
    /// accepts a wrap that succeeds.
    pub fn wraps_offline(mut self) -> Self {
        self.wraps_offline = true;
        self
    }

    /// How many wraps and unwraps run at once in the `concurrent` check (64 by default).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Runs every check.
    ///
    /// # Errors
    /// The first [`Failure`].
    pub async fn run(self) -> Result<Report, Failure> {
        let mut report = Report::default();
        let algorithms = match &self.algorithms {
            Some(a) => a.clone(),
            None => self.backend.info().algorithms.clone(),
        };
        if algorithms.is_empty() {
            return fail("setup", "the backend offers no algorithm");
        }
        let mut created = None;
        for alg in algorithms {
            let kek = self.per_algorithm(alg, &mut report).await?;
            created.get_or_insert((kek, alg));
        }
        self.unknown_key(&mut report).await?;
        if let Some((kek, alg)) = created {
            self.server_down(&kek, alg, &mut report).await?;
        }
        Ok(report)
    }

    async fn create(&self, check: &str, alg: WrapAlgorithm) -> Result<KekLocator, Failure> {
        match self
            .backend
            .create_kek(&KekSpec::new(alg, "conformance"))
            .await
        {
            Ok(d) if d.algorithm == alg => Ok(d.locator),
            Ok(d) => fail(check, format!("asked for {alg}, created {}", d.algorithm)),
            Err(e) => fail(check, format!("create_kek({alg}): {e}")),
        }
    }

    async fn wrap(
        &self,
        check: &str,
        kek: &KekLocator,
        alg: WrapAlgorithm,
        dek: &DataKey,
        b: &BindingContext,
    ) -> Result<WrapResponse, Failure> {
        match self.backend.wrap(WrapRequest::new(kek, alg, dek, b)).await {
            Ok(r) if &r.kek == kek => Ok(r),
            Ok(r) => fail(check, format!("wrap answered for {}, asked {kek}", r.kek)),
            Err(e) => fail(check, format!("wrap: {e}")),
        }
    }

    async fn unwrap(
        &self,
        kek: &KekLocator,
        alg: WrapAlgorithm,
        w: &WrapResponse,
        params: Option<&[u8]>,
        wrapped: Option<&[u8]>,
        b: &BindingContext,
    ) -> Result<UnwrapResponse, BackendError> {
        let req = UnwrapRequest::new(
            kek,
            alg,
            params.unwrap_or(&w.params),
            wrapped.unwrap_or(&w.wrapped),
            b,
        );
        self.backend.unwrap(req).await
    }

    async fn expect_rejected(
        &self,
        check: &str,
        alg: WrapAlgorithm,
        got: Result<UnwrapResponse, BackendError>,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let name = format!("{check}/{alg}");
        match got {
            Err(BackendError::Rejected) => {
                report.checks.push(name);
                Ok(())
            }
            Err(e) => fail(&name, format!("expected Rejected, got {e:?}")),
            Ok(_) => fail(&name, "expected Rejected, the unwrap succeeded"),
        }
    }

    /// Runs the per-algorithm checks; returns a KEK it created.
    async fn per_algorithm(
        &self,
        alg: WrapAlgorithm,
        report: &mut Report,
    ) -> Result<KekLocator, Failure> {
        let a = self.create(&format!("create/{alg}"), alg).await?;
        report.checks.push(format!("create/{alg}"));
        // Another, unrelated KEK, and A's successor as a rotation asks for it (the next
        // version of a Transit key, a key beside it in KMS).
        let b_kek = self.create(&format!("create/{alg}"), alg).await?;
        let check = format!("successor/{alg}");
        let spec = KekSpec::new(alg, "conformance").successor_of(&a);
        let successor = match self.backend.create_kek(&spec).await {
            Ok(d) if d.algorithm == alg && d.locator != a && d.locator != b_kek => d.locator,
            Ok(d) => return fail(&check, format!("successor {:?} of {alg}", d.locator)),
            Err(e) => return fail(&check, format!("create_kek(successor_of): {e}")),
        };
        report.checks.push(check);

        let check = format!("round-trip/{alg}");
        let b = binding("object-1", Classification::Internal)?;
        let key = dek()?;
        let w = self.wrap(&check, &a, alg, &key, &b).await?;
        match self.unwrap(&a, alg, &w, None, None, &b).await {
            Ok(r) if r.kek != a => return fail(&check, format!("unwrap answered for {}", r.kek)),
            Ok(r) if r.dek.expose_secret() != key.expose_secret() => {
                return fail(&check, "unwrap returned another key");
            }
            Ok(_) => report.checks.push(check),
            Err(e) => return fail(&check, format!("unwrap: {e}")),
        }

        // The same wrap under a binding that differs in one field, each field in turn.
        let aad = b"conformance associated data";
        for other in [
            binding_of(
                "conformancf",
                "suite",
                "object-1",
                Classification::Internal,
                aad,
            )?,
            binding_of(
                "conformance",
                "suitf",
                "object-1",
                Classification::Internal,
                aad,
            )?,
            binding("object-2", Classification::Internal)?,
            binding("object-1", Classification::Confidential)?,
            binding_of(
                "conformance",
                "suite",
                "object-1",
                Classification::Internal,
                b"other",
            )?,
        ] {
            let got = self.unwrap(&a, alg, &w, None, None, &other).await;
            self.expect_rejected("wrong-binding", alg, got, report)
                .await?;
        }

        for at in positions(w.wrapped.len()) {
            let mut t = w.wrapped.clone();
            flip(&mut t, at);
            let got = self.unwrap(&a, alg, &w, None, Some(&t), &b).await;
            self.expect_rejected("tampered-wrapped", alg, got, report)
                .await?;
        }
        // A KEM ciphertext, nonce or intermediate key: with implicit rejection a
        // tampered KEM ciphertext decapsulates to an unrelated secret, which the local
        // wrap's integrity check must refuse.
        for at in positions(w.params.len()) {
            let mut t = w.params.clone();
            flip(&mut t, at);
            let got = self.unwrap(&a, alg, &w, Some(&t), None, &b).await;
            self.expect_rejected("tampered-params", alg, got, report)
                .await?;
        }

        for other in [&b_kek, &successor] {
            let got = self.unwrap(other, alg, &w, None, None, &b).await;
            self.expect_rejected("other-kek", alg, got, report).await?;
        }

        // A KEK asked for another algorithm than its own refuses.
        let check = format!("wrong-algorithm/{alg}");
        if let Some(other) = WrapAlgorithm::ALL.into_iter().find(|o| *o != alg) {
            let wrapped = self
                .backend
                .wrap(WrapRequest::new(&a, other, &key, &b))
                .await;
            let unwrapped = self.unwrap(&a, other, &w, None, None, &b).await;
            if wrapped.is_ok() || unwrapped.is_ok() {
                return fail(&check, format!("{alg} KEK used as {other}"));
            }
            report.checks.push(check);
        }

        self.concurrent(&a, alg, report).await?;
        self.envelope(&a, alg, report).await?;
        self.disabled(alg, report).await?;
        Ok(a)
    }

    async fn concurrent(
        &self,
        kek: &KekLocator,
        alg: WrapAlgorithm,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let check = format!("concurrent/{alg}");
        let one = |i: usize| {
            let check = check.clone();
            async move {
                let b = binding(&format!("object-{i}"), Classification::Internal)?;
                let key = dek()?;
                let w = self.wrap(&check, kek, alg, &key, &b).await?;
                match self.unwrap(kek, alg, &w, None, None, &b).await {
                    Ok(r) if r.dek.expose_secret() == key.expose_secret() => Ok(()),
                    Ok(_) => fail(&check, format!("task {i} unwrapped another key")),
                    Err(e) => fail(&check, format!("task {i}: {e}")),
                }
            }
        };
        for r in join_all((0..self.concurrency).map(one)).await {
            r?;
        }
        report.checks.push(check);
        Ok(())
    }

    async fn envelope(
        &self,
        kek: &KekLocator,
        alg: WrapAlgorithm,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let check = format!("envelope/{alg}");
        let setup = |e: Error| Failure {
            check: check.clone(),
            detail: e.to_string(),
        };
        let id = self.backend.info().id;
        let reference = KekRef::new("conformance", "suite", 1).map_err(|e| setup(e.into()))?;
        let ctx = Context::new("conformance", "suite", "object-1", Classification::Public)
            .map_err(setup)?;
        let profile = Profile::empty("conformance").allow_algorithm(Classification::Public, alg);
        let env = Envelope::builder()
            .backend(self.backend.clone())
            .kek(NewKek::new(reference.clone(), id, kek.clone(), alg))
            .profile(profile.clone())
            .build()
            .map_err(setup)?;
        let sealed = env.seal(&ctx, b"conformance").await.map_err(setup)?;
        match env.open(&ctx, &sealed).await {
            Ok(p) if p == b"conformance" => report.checks.push(check),
            Ok(_) => return fail(&check, "opened to other bytes"),
            Err(e) => return fail(&check, format!("open: {e}")),
        }

        let check = format!("answer-names-another-key/{alg}");
        let lying: Arc<dyn KeyBackend> = Arc::new(Misnaming(self.backend.clone()));
        let env = Envelope::builder()
            .backend(lying)
            .kek(NewKek::new(reference, id, kek.clone(), alg))
            .profile(profile)
            .build()
            .map_err(|e| Failure {
                check: check.clone(),
                detail: e.to_string(),
            })?;
        match env.seal(&ctx, b"conformance").await {
            Err(Error::Backend(BackendError::KeyMismatch { .. })) => report.checks.push(check),
            other => return fail(&check, format!("expected KeyMismatch, got {other:?}")),
        }
        Ok(())
    }

    async fn disabled(&self, alg: WrapAlgorithm, report: &mut Report) -> Result<(), Failure> {
        let Some(disable) = &self.disable else {
            return Ok(());
        };
        let check = format!("disabled-key/{alg}");
        let kek = self.create(&check, alg).await?;
        let b = binding("object-1", Classification::Internal)?;
        let key = dek()?;
        let w = self.wrap(&check, &kek, alg, &key, &b).await?;
        if let Err(e) = disable(kek.clone()).await {
            return fail(&check, format!("the disable hook failed: {e}"));
        }
        match self
            .backend
            .wrap(WrapRequest::new(&kek, alg, &key, &b))
            .await
        {
            Err(BackendError::KeyDisabled { .. }) => {}
            Ok(_) if self.wraps_offline => {}
            Err(e) => return fail(&check, format!("wrap: expected KeyDisabled, got {e:?}")),
            Ok(_) => return fail(&check, "wrap under a disabled key succeeded"),
        }
        match self.unwrap(&kek, alg, &w, None, None, &b).await {
            Err(BackendError::KeyDisabled { .. }) => report.checks.push(check),
            Err(e) => return fail(&check, format!("unwrap: expected KeyDisabled, got {e:?}")),
            Ok(_) => return fail(&check, "unwrap under a disabled key succeeded"),
        }
        Ok(())
    }

    async fn unknown_key(&self, report: &mut Report) -> Result<(), Failure> {
        let Some(unknown) = &self.unknown else {
            return Ok(());
        };
        let check = "unknown-key".to_owned();
        let alg = self.first_algorithm();
        let b = binding("object-1", Classification::Internal)?;
        let key = dek()?;
        match self
            .backend
            .wrap(WrapRequest::new(unknown, alg, &key, &b))
            .await
        {
            Err(BackendError::KeyNotFound(l)) if &l == unknown => {}
            other => return fail(&check, format!("wrap: expected KeyNotFound, got {other:?}")),
        }
        // A real wrap of this algorithm, asked of the unknown key.
        let kek = self.create(&check, alg).await?;
        let w = self.wrap(&check, &kek, alg, &key, &b).await?;
        match self.unwrap(unknown, alg, &w, None, None, &b).await {
            Err(BackendError::KeyNotFound(l)) if &l == unknown => report.checks.push(check),
            other => {
                return fail(
                    &check,
                    format!("unwrap: expected KeyNotFound, got {other:?}"),
                );
            }
        }
        Ok(())
    }

    /// A KEK that exists on the live server, asked of the unreachable one.
    async fn server_down(
        &self,
        kek: &KekLocator,
        alg: WrapAlgorithm,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let Some(down) = &self.unreachable else {
            return Ok(());
        };
        let check = "server-down".to_owned();
        let b = binding("object-1", Classification::Internal)?;
        let key = dek()?;
        let w = self.wrap(&check, kek, alg, &key, &b).await?;
        let started = std::time::Instant::now();
        let wrapped = down.wrap(WrapRequest::new(kek, alg, &key, &b)).await;
        let req = UnwrapRequest::new(kek, alg, &w.params, &w.wrapped, &b);
        let unwrapped = down.unwrap(req).await.map(|_| ());
        for got in [wrapped.map(|_| ()), unwrapped] {
            match got {
                Err(e) if e.is_transient() && e.try_next_copy() => {}
                other => return fail(&check, format!("expected a transient error, got {other:?}")),
            }
        }
        if started.elapsed() > SERVER_DOWN_BOUND {
            return fail(&check, format!("took {:?}", started.elapsed()));
        }
        report.checks.push(check);
        Ok(())
    }

    fn first_algorithm(&self) -> WrapAlgorithm {
        self.algorithms
            .as_ref()
            .and_then(|a| a.first().copied())
            .or_else(|| self.backend.info().algorithms.first().copied())
            .unwrap_or(WrapAlgorithm::Aes256Opaque)
    }
}

/// How long a wrap and an unwrap against a server that is down may take together: the
/// backend's own call policy must end them well within this.
pub const SERVER_DOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Byte positions to tamper with: first, middle, last.
fn positions(len: usize) -> Vec<usize> {
    let mut p = vec![0, len / 2, len.saturating_sub(1)];
    p.retain(|&i| i < len);
    p.dedup();
    p
}

/// Changes one byte so that it stays printable ASCII when it was (opaque ciphertexts are
/// often text, e.g. `vault:v1:...`): a tamper the service must refuse as a bad
/// ciphertext, not a parse error of ours.
fn flip(bytes: &mut [u8], at: usize) {
    if let Some(b) = bytes.get_mut(at) {
        *b = match *b {
            b'A'..=b'Y' | b'a'..=b'y' | b'0'..=b'8' => *b + 1,
            b'Z' => b'A',
            b'z' => b'a',
            b'9' => b'0',
            other => other ^ 0x01,
        };
    }
}

/// A backend that answers for another key than the one asked for.
#[derive(Debug)]
struct Misnaming(Arc<dyn KeyBackend>);

#[async_trait]
impl KeyBackend for Misnaming {
    fn info(&self) -> &BackendInfo {
        self.0.info()
    }

    fn key_identity(&self, kek: &KekLocator) -> Result<KeyIdentity, BackendError> {
        self.0.key_identity(kek)
    }

    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        let mut r = self.0.wrap(req).await?;
        r.kek = KekLocator::new(format!("{}-other", r.kek.as_str()));
        Ok(r)
    }

    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        let mut r = self.0.unwrap(req).await?;
        r.kek = KekLocator::new(format!("{}-other", r.kek.as_str()));
        Ok(r)
    }

    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        self.0.create_kek(spec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_each_check_not_run_for_each_algorithm() {
        let report = Report {
            checks: vec!["round-trip/ml-kem-768".into(), "unknown-key".into()],
        };
        let algs = [WrapAlgorithm::MlKem768, WrapAlgorithm::MlKem1024];
        assert_eq!(
            report.missing(&["round-trip", "envelope"], &algs),
            vec![
                "round-trip/ml-kem-1024",
                "envelope/ml-kem-768",
                "envelope/ml-kem-1024"
            ]
        );
        assert!(
            report
                .missing(&["unknown-key", "round-trip"], &[])
                .is_empty()
        );
        assert_eq!(report.missing(&["server-down"], &[]), vec!["server-down"]);
    }
}
