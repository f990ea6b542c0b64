//! The checks of the conformance suite (see the parent module for what they are).

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::join_all;

use super::{Conformance, Failure, Report, SERVER_DOWN_BOUND, binding, binding_of, dek, fail};
use crate::backend::{
    BackendInfo, KekDescriptor, KekSpec, KeyBackend, RewrapRequest, UnwrapRequest, UnwrapResponse,
    WrapRequest, WrapResponse,
};
use crate::context::Context;
use crate::envelope::Envelope;
use crate::error::{BackendError, Error};
use crate::format::{BindingContext, Classification, KekRef, WrapAlgorithm};
use crate::lifecycle::NewKek;
use crate::locator::{KekLocator, KeyIdentity};
use crate::policy::Profile;
use crate::secret::DataKey;

impl Conformance {
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

    pub(super) async fn wrap(
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

    pub(super) async fn unwrap(
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
            Err(e @ BackendError::Rejected) => {
                self.saw(&e, &e);
                report.passed(name);
                Ok(())
            }
            Err(e) => fail(&name, format!("expected Rejected, got {e:?}")),
            Ok(_) => fail(&name, "expected Rejected, the unwrap succeeded"),
        }
    }

    /// Runs the per-algorithm checks; returns a KEK it created.
    pub(super) async fn per_algorithm(
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
        self.identities(alg, [&a, &b_kek, &successor], report)
            .await?;

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
        self.rewrap(alg, &a, &successor, &w, &key, &b, report)
            .await?;
        self.spelling(alg, &a, &w, &key, &b, report).await?;

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

    /// Identities: stable, one per key (the two KEKs and the successor differ), and the
    /// same for the locator `resolve_kek` gives.
    async fn identities(
        &self,
        alg: WrapAlgorithm,
        keks: [&KekLocator; 3],
        report: &mut Report,
    ) -> Result<(), Failure> {
        let check = format!("identity/{alg}");
        let mut ids: Vec<KeyIdentity> = Vec::new();
        for kek in keks {
            let id = match self.backend.key_identity(kek) {
                Ok(id) => id,
                Err(e) => return fail(&check, format!("key_identity: {e}")),
            };
            if self.backend.key_identity(kek).ok().as_ref() != Some(&id) {
                return fail(&check, "key_identity gave two answers for one locator");
            }
            let resolved = match self.backend.resolve_kek(kek).await {
                Ok(l) => l,
                Err(e) => return fail(&check, format!("resolve_kek: {e}")),
            };
            if self.backend.key_identity(&resolved).ok().as_ref() != Some(&id) {
                return fail(&check, "the resolved locator names another key");
            }
            if ids.contains(&id) {
                return fail(&check, "two keys have one identity");
            }
            ids.push(id);
        }
        report.passed(check);
        Ok(())
    }

    /// A re-wrap inside the backend (where it offers one): the new wrap names the
    /// target, opens there to the same key, and not under the source.
    #[allow(clippy::too_many_arguments)]
    async fn rewrap(
        &self,
        alg: WrapAlgorithm,
        from: &KekLocator,
        to: &KekLocator,
        w: &WrapResponse,
        key: &DataKey,
        b: &BindingContext,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let check = format!("rewrap/{alg}");
        let req = RewrapRequest::new(UnwrapRequest::new(from, alg, &w.params, &w.wrapped, b), to);
        let r = match self.backend.rewrap(req).await {
            Err(BackendError::Unsupported { .. }) => return Ok(()),
            Err(e) => return fail(&check, format!("rewrap: {e}")),
            Ok(r) if &r.kek != to => return fail(&check, format!("rewrap answered for {}", r.kek)),
            Ok(r) => r,
        };
        match self.unwrap(to, alg, &r, None, None, b).await {
            Ok(u) if u.dek.expose_secret() == key.expose_secret() => {}
            Ok(_) => return fail(&check, "the re-wrap holds another key"),
            Err(e) => return fail(&check, format!("unwrap of the re-wrap: {e}")),
        }
        if self.unwrap(from, alg, &r, None, None, b).await.is_ok() {
            return fail(&check, "the re-wrap opens under its source");
        }
        report.passed(check);
        Ok(())
    }

    /// Another spelling of a KEK (from the test's hook) is the same key: it resolves to
    /// the same identity and unwraps the KEK's wraps, and the key ring refuses it as the
    /// KEK's successor.
    async fn spelling(
        &self,
        alg: WrapAlgorithm,
        kek: &KekLocator,
        w: &WrapResponse,
        key: &DataKey,
        b: &BindingContext,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let Some(respell) = &self.respell else {
            return Ok(());
        };
        let check = format!("spelling/{alg}");
        let other = match respell(kek.clone()).await {
            Ok(l) => l,
            Err(e) => return fail(&check, format!("the respelling hook failed: {e}")),
        };
        let resolved = match self.backend.resolve_kek(&other).await {
            Ok(l) => l,
            Err(e) => return fail(&check, format!("resolve_kek: {e}")),
        };
        let id = self.backend.key_identity(kek).ok();
        if id.is_none() || self.backend.key_identity(&resolved).ok() != id {
            return fail(&check, "another spelling resolves to another identity");
        }
        match self.unwrap(&resolved, alg, w, None, None, b).await {
            Ok(u) if u.dek.expose_secret() == key.expose_secret() => {}
            other => {
                return fail(
                    &check,
                    format!("unwrap through the other spelling: {other:?}"),
                );
            }
        }
        let setup = |e: Error| Failure {
            check: check.clone(),
            detail: e.to_string(),
        };
        let reference = KekRef::new("conformance", "spelling", 1).map_err(|e| setup(e.into()))?;
        let env = Envelope::builder()
            .backend(self.backend.clone())
            .kek(NewKek::new(
                reference.clone(),
                self.backend.info().id,
                kek.clone(),
                alg,
            ))
            .build()
            .map_err(setup)?;
        let got = env
            .rotate_kek_to(
                reference.tenant(),
                reference.purpose(),
                self.backend.info().id,
                other,
                alg,
            )
            .await;
        match got {
            Err(Error::Misuse(crate::error::MisuseError::Lifecycle(
                crate::lifecycle::LifecycleError::KeyReused { .. },
            ))) => report.passed(check),
            other => {
                return fail(
                    &check,
                    format!(
                        "the key ring took another spelling of the KEK as its successor: {other:?}"
                    ),
                );
            }
        }
        Ok(())
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
            Err(e @ BackendError::KeyDisabled { .. }) => {
                self.saw(&e, &e);
                report.checks.push(check);
            }
            Err(e) => return fail(&check, format!("unwrap: expected KeyDisabled, got {e:?}")),
            Ok(_) => return fail(&check, "unwrap under a disabled key succeeded"),
        }
        Ok(())
    }

    pub(super) async fn unknown_key(&self, report: &mut Report) -> Result<(), Failure> {
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
            Err(e @ BackendError::KeyNotFound(_)) if matches!(&e, BackendError::KeyNotFound(l) if l == unknown) =>
            {
                self.saw(&e, &e);
                report.checks.push(check);
            }
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
    pub(super) async fn server_down(
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
                Err(e) if e.is_transient() && e.try_next_copy() => self.saw(&e, &e),
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
