//! The conformance suite every [`KeyBackend`] passes (feature `testing`), the local one
//! included, and any backend written outside this crate:
//!
//! ```no_run
//! # async fn f(backend: std::sync::Arc<dyn kekring::KeyBackend>) {
//! use kekring::testing::Conformance;
//! Conformance::new(backend)
//!     .unknown_kek("a-locator-that-names-no-key")
//!     .run()
//!     .await
//!     .expect("the backend conforms")
//!     .assert_passed();
//! # }
//! ```
//!
//! Per algorithm offered (or named with [`Conformance::algorithms`]): create two KEKs and
//! the first one's successor ([`KekSpec::successor_of`]); their identities (stable, one
//! per key, the same after [`KeyBackend::resolve_kek`]); round trip; the wrap refused
//! under a binding that differs in any one field, when tampered (first, middle and last
//! byte of `params` and of `wrapped`), under the other KEKs, and under another
//! algorithm; a re-wrap inside the backend, where it offers one; 64 wraps and unwraps at
//! once; a seal and open through an [`Envelope`](crate::Envelope) on the backend; and an
//! envelope refusing a backend answer that names another key. Then, where the test
//! supplies what they need: typed errors for an unknown key, a disabled key and a server
//! that is down (transient, within [`SERVER_DOWN_BOUND`]); another spelling of a key
//! resolving to the same identity, which the key ring refuses as a successor; no secret
//! the test names in the backend's `Debug` or in any error the suite saw. A backend built
//! on the chassis (feature `remote`) can be run through `Conformance::for_service`, which
//! puts a spy between the backend and its service to check what no server can be made to
//! do: a service answering for another key is refused, and a key creation whose answer
//! is lost is not retried.
//!
//! [`Report::assert_passed`] checks that every check the configuration called for ran.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::backend::{KekSpec, KeyBackend};
use crate::error::BackendError;
use crate::format::{BindingContext, Classification, Name, WrapAlgorithm};
use crate::locator::KekLocator;
use crate::secret::DataKey;

mod checks;
#[cfg(feature = "remote")]
mod spy;

/// A future the suite awaits (the disable hook's).
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A future giving a locator (the respelling hook's).
pub type LocatorFuture = Pin<Box<dyn Future<Output = Result<KekLocator, String>> + Send>>;

type DisableHook = Box<dyn Fn(KekLocator) -> HookFuture + Send + Sync>;
type RespellHook = Box<dyn Fn(KekLocator) -> LocatorFuture + Send + Sync>;

/// What the suite can ask of the service below a chassis backend (see
/// `Conformance::for_service`).
trait Spying: Send + Sync {
    /// The next answer the service gives names another key.
    fn lie_once(&self);
    /// The next key creation happens in the service, but its answer is lost.
    fn lose_next_creation(&self);
    /// How many creations reached the service.
    fn creations(&self) -> u32;
}

/// The suite, configured for one backend.
pub struct Conformance {
    backend: Arc<dyn KeyBackend>,
    algorithms: Option<Vec<WrapAlgorithm>>,
    unknown: Option<KekLocator>,
    unreachable: Option<Arc<dyn KeyBackend>>,
    disable: Option<DisableHook>,
    respell: Option<RespellHook>,
    secrets: Vec<String>,
    spy: Option<Arc<dyn Spying>>,
    concurrency: usize,
    wraps_offline: bool,
    /// Every error the suite saw, as `Debug` and `Display` print it (searched for the
    /// secrets at the end).
    seen: Mutex<Vec<String>>,
}

impl fmt::Debug for Conformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conformance")
            .field("backend", &self.backend.info().id)
            .field("algorithms", &self.algorithms)
            .field("unknown", &self.unknown)
            .field("unreachable", &self.unreachable.is_some())
            .field("disable", &self.disable.is_some())
            .field("respell", &self.respell.is_some())
            .field("secrets", &self.secrets.len())
            .field("spy", &self.spy.is_some())
            .finish()
    }
}

/// Which checks ran, and which the configuration called for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    checks: Vec<String>,
    expected: Vec<String>,
}

impl Report {
    /// Whether a check of that name ran (and passed) for at least one algorithm:
    /// `create`, `successor`, `identity`, `round-trip`, `wrong-binding`,
    /// `tampered-wrapped`, `tampered-params`, `other-kek`, `wrong-algorithm`, `rewrap`,
    /// `concurrent`, `envelope`, `answer-names-another-key`, `disabled-key`, `spelling`,
    /// `unknown-key`, `server-down`, `no-secret-in-output`, `service-answers-another-key`,
    /// `creation-not-retried`.
    pub fn ran(&self, check: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c == check || c.starts_with(&format!("{check}/")))
    }

    /// Every check that ran, as `name/algorithm` (or `name` for a check without one).
    pub fn checks(&self) -> &[String] {
        &self.checks
    }

    /// Every check the configuration called for: the core checks for every algorithm,
    /// and those its hooks enable.
    pub fn expected(&self) -> &[String] {
        &self.expected
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

    /// Panics, naming them, unless every check the configuration called for ran
    /// ([`Report::expected`]).
    ///
    /// # Panics
    /// When a check that was called for did not run.
    #[track_caller]
    pub fn assert_passed(&self) {
        let missing: Vec<&String> = self
            .expected
            .iter()
            .filter(|e| !self.checks.contains(e))
            .collect();
        assert!(
            missing.is_empty(),
            "conformance checks that did not run: {missing:?} (ran: {:?})",
            self.checks
        );
    }

    fn passed(&mut self, check: String) {
        self.checks.push(check);
    }
}

/// The checks that run for every algorithm of every backend, with no hook from the
/// test. (`tampered-params` runs only for algorithms that have parameters; `rewrap` only
/// on backends that re-wrap inside their service.)
pub const CORE_CHECKS: [&str; 11] = [
    "create",
    "successor",
    "identity",
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
    /// The suite for `backend`, over every algorithm its [`BackendInfo`](crate::BackendInfo)
    /// offers.
    pub fn new(backend: Arc<dyn KeyBackend>) -> Self {
        Self {
            backend,
            algorithms: None,
            unknown: None,
            unreachable: None,
            disable: None,
            respell: None,
            secrets: Vec::new(),
            spy: None,
            concurrency: 64,
            wraps_offline: false,
            seen: Mutex::new(Vec::new()),
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

    /// How to spell a KEK another way (`/transit/k@v01` for `transit/k@v1`; an alias
    /// made for a KMS key): the `spelling` check resolves it to the same identity, unwraps
    /// through it, and has the key ring refuse it as the KEK's successor.
    pub fn respell_with(
        mut self,
        hook: impl Fn(KekLocator) -> LocatorFuture + Send + Sync + 'static,
    ) -> Self {
        self.respell = Some(Box::new(hook));
        self
    }

    /// Secrets the backend holds (tokens, secret keys, PINs) that must appear nowhere the
    /// suite looks: the backend's `Debug`, its info, and the `Debug` and `Display` of
    /// every error it saw (`no-secret-in-output`), in the clear or in base64.
    pub fn secrets(mut self, secrets: &[&str]) -> Self {
        self.secrets = secrets
            .iter()
            .map(|s| (*s).to_owned())
            .filter(|s| !s.is_empty())
            .collect();
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

    /// The checks this configuration calls for, for `algorithms`.
    fn expected(&self, algorithms: &[WrapAlgorithm]) -> Vec<String> {
        let mut per_alg: Vec<&str> = CORE_CHECKS.to_vec();
        if self.disable.is_some() {
            per_alg.push("disabled-key");
        }
        if self.respell.is_some() {
            per_alg.push("spelling");
        }
        let mut out = Vec::new();
        for alg in algorithms {
            for c in &per_alg {
                out.push(format!("{c}/{alg}"));
            }
            if alg.lengths().params.1 > 0 {
                out.push(format!("tampered-params/{alg}"));
            }
        }
        let global = [
            (self.unknown.is_some(), "unknown-key"),
            (self.unreachable.is_some(), "server-down"),
            (!self.secrets.is_empty(), "no-secret-in-output"),
            (self.spy.is_some(), "service-answers-another-key"),
            (self.spy.is_some(), "creation-not-retried"),
        ];
        out.extend(
            global
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| (*c).to_owned()),
        );
        out
    }

    /// Remembers an error the suite saw, for the secrets check.
    fn saw(&self, e: &(dyn fmt::Debug + Sync), shown: &(dyn fmt::Display + Sync)) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(format!("{e:?} {shown}"));
        }
    }

    /// Runs every check.
    ///
    /// # Errors
    /// The first [`Failure`].
    pub async fn run(self) -> Result<Report, Failure> {
        let algorithms = match &self.algorithms {
            Some(a) => a.clone(),
            None => self.backend.info().algorithms.clone(),
        };
        if algorithms.is_empty() {
            return fail("setup", "the backend offers no algorithm");
        }
        let mut report = Report {
            checks: Vec::new(),
            expected: self.expected(&algorithms),
        };
        let mut created = None;
        for alg in algorithms {
            let kek = self.per_algorithm(alg, &mut report).await?;
            created.get_or_insert((kek, alg));
        }
        self.unknown_key(&mut report).await?;
        if let Some((kek, alg)) = created {
            self.server_down(&kek, alg, &mut report).await?;
            self.spied(&kek, alg, &mut report).await?;
        }
        self.no_secret(&mut report)?;
        Ok(report)
    }

    /// The chassis checks through the spy (see `Conformance::for_service`).
    async fn spied(
        &self,
        kek: &KekLocator,
        alg: WrapAlgorithm,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let Some(spy) = &self.spy else {
            return Ok(());
        };
        let check = "service-answers-another-key";
        let b = binding("object-1", Classification::Internal)?;
        let key = dek()?;
        let w = self.wrap(check, kek, alg, &key, &b).await?;
        spy.lie_once();
        match self.unwrap(kek, alg, &w, None, None, &b).await {
            Err(BackendError::KeyMismatch { .. }) => report.passed(check.into()),
            other => return fail(check, format!("expected KeyMismatch, got {other:?}")),
        }
        let check = "creation-not-retried";
        let before = spy.creations();
        spy.lose_next_creation();
        match self
            .backend
            .create_kek(&KekSpec::new(alg, "conformance"))
            .await
        {
            Err(e) if e.is_transient() => self.saw(&e, &e),
            other => return fail(check, format!("expected a transient error, got {other:?}")),
        }
        match spy.creations().saturating_sub(before) {
            1 => report.passed(check.into()),
            n => return fail(check, format!("the creation reached the service {n} times")),
        }
        Ok(())
    }

    /// No secret the test named in the backend's `Debug`, its info, or any error seen.
    fn no_secret(&self, report: &mut Report) -> Result<(), Failure> {
        if self.secrets.is_empty() {
            return Ok(());
        }
        let check = "no-secret-in-output";
        let mut outputs = vec![
            format!("{:?}", self.backend),
            format!("{:?}", self.backend.info()),
        ];
        if let Ok(seen) = self.seen.lock() {
            outputs.extend(seen.iter().cloned());
        }
        if outputs.len() < 3 {
            return fail(check, "no error was seen to search");
        }
        for secret in &self.secrets {
            let b64 = base64_of(secret.as_bytes());
            if let Some(o) = outputs
                .iter()
                .find(|o| o.contains(secret.as_str()) || o.contains(&b64))
            {
                return fail(
                    check,
                    format!("a secret appears in an output of {} bytes", o.len()),
                );
            }
        }
        report.passed(check.into());
        Ok(())
    }
}

/// Standard base64 with padding (a secret printed encoded is still printed).
fn base64_of(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let at = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = at(0) << 16 | at(1) << 8 | at(2);
        for i in 0..4usize {
            if i <= chunk.len() {
                let idx = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
                out.push(char::from(T.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How long a wrap and an unwrap against a server that is down may take together: the
/// backend's own call policy must end them well within this.
pub const SERVER_DOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_each_check_not_run_for_each_algorithm() {
        let report = Report {
            checks: vec!["round-trip/ml-kem-768".into(), "unknown-key".into()],
            expected: vec!["round-trip/ml-kem-768".into(), "server-down".into()],
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
        let passed = std::panic::catch_unwind(|| report.assert_passed());
        assert!(passed.is_err(), "server-down was expected and did not run");
        let complete = Report {
            expected: vec!["unknown-key".into()],
            ..report.clone()
        };
        complete.assert_passed();
    }

    #[test]
    fn secrets_are_found_encoded_too() {
        assert_eq!(base64_of(b"hello"), "aGVsbG8=");
        assert_eq!(
            base64_of(b"kekring-test-secret"),
            "a2VrcmluZy10ZXN0LXNlY3JldA=="
        );
    }
}
