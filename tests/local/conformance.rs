//! The conformance suite on the embedded local backend: every algorithm it offers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kekring::LocalBackend;
use kekring::backend::local::LocalKek;
use kekring::testing::Conformance;

#[tokio::test]
async fn the_local_backend_conforms() {
    let local = Arc::new(LocalBackend::new());
    // Another spelling of a local key: its material under another locator.
    let respell = {
        let local = local.clone();
        move |kek: kekring::KekLocator| -> kekring::testing::LocatorFuture {
            let local = local.clone();
            Box::pin(async move {
                let key = local.get_shared(&kek).ok_or("no such key")?;
                let (kind, material) = key.export_material().map_err(|e| e.to_string())?;
                let copy = LocalKek::import_material(key.algorithm(), kind, &material)
                    .map_err(|e| e.to_string())?;
                let other = kekring::KekLocator::new(format!("{}-again", kek.as_str()));
                local
                    .insert(other.clone(), copy)
                    .map_err(|e| e.to_string())?;
                Ok(other)
            })
        }
    };
    let report = Conformance::new(local)
        .unknown_kek("local:absent:000000000000")
        .respell_with(respell)
        .run()
        .await
        .expect("the local backend conforms");
    // Every check the configuration calls for, for every algorithm the backend offers.
    report.assert_passed();
    // The local backend has no server to lose and no disabled state of its own (the key
    // ring disables KEKs): those two checks belong to the remote backends' suites.
    assert!(!report.ran("server-down") && !report.ran("disabled-key"));
}

/// A backend that binds every wrap to one fixed context, whatever it is asked: the
/// suite must catch it.
#[derive(Debug)]
struct IgnoresBinding(LocalBackend, kekring::format::BindingContext);

#[async_trait::async_trait]
impl kekring::KeyBackend for IgnoresBinding {
    fn info(&self) -> &kekring::BackendInfo {
        self.0.info()
    }
    fn key_identity(
        &self,
        kek: &kekring::KekLocator,
    ) -> Result<kekring::backend::KeyIdentity, kekring::BackendError> {
        self.0.key_identity(kek)
    }
    async fn wrap(
        &self,
        req: kekring::backend::WrapRequest<'_>,
    ) -> Result<kekring::backend::WrapResponse, kekring::BackendError> {
        let r = kekring::backend::WrapRequest::new(req.kek, req.algorithm, req.dek, &self.1);
        self.0.wrap(r).await
    }
    async fn unwrap(
        &self,
        req: kekring::backend::UnwrapRequest<'_>,
    ) -> Result<kekring::backend::UnwrapResponse, kekring::BackendError> {
        let r = kekring::backend::UnwrapRequest::new(
            req.kek,
            req.algorithm,
            req.params,
            req.wrapped,
            &self.1,
        );
        self.0.unwrap(r).await
    }
    async fn create_kek(
        &self,
        spec: &kekring::backend::KekSpec,
    ) -> Result<kekring::backend::KekDescriptor, kekring::BackendError> {
        self.0.create_kek(spec).await
    }
}

#[tokio::test]
async fn the_suite_catches_a_backend_that_ignores_the_binding() {
    use kekring::{Classification, Name};
    let fixed = kekring::format::BindingContext::new(
        Name::new("tenant", "fixed").unwrap(),
        Name::new("purpose", "fixed").unwrap(),
        b"fixed",
        Classification::Public,
        b"",
    )
    .unwrap();
    let err = Conformance::new(Arc::new(IgnoresBinding(LocalBackend::new(), fixed)))
        .run()
        .await
        .unwrap_err();
    assert!(err.check.starts_with("wrong-binding/"), "{err}");
}
