//! [`FastKey`]: a key prepared for the `aws-lc` provider, kept beside its RustCrypto form.

#[cfg(feature = "aws-lc")]
use crate::error::BackendError;

/// A local KEK's key prepared for the `aws-lc` provider, built on first use and kept.
/// Without the feature it holds nothing.
pub(crate) struct FastKey<T> {
    #[cfg(feature = "aws-lc")]
    cell: std::sync::OnceLock<Option<T>>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Default for FastKey<T> {
    fn default() -> Self {
        Self {
            #[cfg(feature = "aws-lc")]
            cell: std::sync::OnceLock::new(),
            _t: std::marker::PhantomData,
        }
    }
}

#[cfg(feature = "aws-lc")]
impl<T> FastKey<T> {
    /// The prepared key when `crypto` is AWS-LC: `None` for another provider,
    /// `Some(Err)` when the key could not be prepared.
    pub(crate) fn for_provider(
        &self,
        crypto: &dyn crate::crypto::Primitives,
        prepare: impl FnOnce() -> Option<T>,
    ) -> Option<Result<&T, BackendError>> {
        if crypto.name() != crate::crypto::awslc::name() {
            return None;
        }
        Some(
            self.cell
                .get_or_init(prepare)
                .as_ref()
                .ok_or_else(|| BackendError::Unavailable {
                    message: "the key could not be loaded into AWS-LC".to_owned(),
                    source: None,
                }),
        )
    }
}
