//! The caller's context: who an object belongs to and how it is classified.

use crate::error::Error;
use crate::format::{BindingContext, Classification, Name};

/// Tenant, purpose, object id, classification and optional associated data.
///
/// Everything here is authenticated with the payload and bound into every wrap of the
/// DEK: a blob sealed under one context does not open under another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    binding: BindingContext,
}

impl Context {
    /// A context without associated data.
    ///
    /// # Errors
    /// [`Error::Misuse`] for an invalid tenant or purpose name (1 to 64 bytes of
    /// `A-Z a-z 0-9 . _ - :`) or an empty or over-long (1024 bytes) object id.
    pub fn new(
        tenant: &str,
        purpose: &str,
        object_id: impl AsRef<[u8]>,
        classification: Classification,
    ) -> Result<Self, Error> {
        let binding = BindingContext::new(
            Name::new("tenant", tenant)?,
            Name::new("purpose", purpose)?,
            object_id.as_ref(),
            classification,
            &[],
        )?;
        Ok(Self { binding })
    }

    /// Adds caller-supplied associated data (at most 64 KiB), authenticated but not
    /// stored in the object.
    ///
    /// # Errors
    /// [`Error::Misuse`] when `aad` is longer than 64 KiB.
    pub fn with_aad(self, aad: impl AsRef<[u8]>) -> Result<Self, Error> {
        let b = self.binding;
        let binding = BindingContext::new(
            b.tenant().clone(),
            b.purpose().clone(),
            b.object_id(),
            b.classification().clone(),
            aad.as_ref(),
        )?;
        Ok(Self { binding })
    }

    /// The tenant.
    pub fn tenant(&self) -> &Name {
        self.binding.tenant()
    }

    /// The purpose.
    pub fn purpose(&self) -> &Name {
        self.binding.purpose()
    }

    /// The tenant and purpose.
    pub(crate) fn scope(&self) -> crate::format::Scope {
        crate::format::Scope::new(self.tenant(), self.purpose())
    }

    /// The object id.
    pub fn object_id(&self) -> &[u8] {
        self.binding.object_id()
    }

    /// The classification.
    pub fn classification(&self) -> &Classification {
        self.binding.classification()
    }

    /// The binding context handed to backends.
    pub fn binding(&self) -> &BindingContext {
        &self.binding
    }
}
