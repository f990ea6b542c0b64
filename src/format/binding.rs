//! The binding context: the canonical bytes that tie a wrap and a payload to the caller's
//! context (tenant, purpose, object id, classification, associated data).

use super::ArgumentError;
use super::ids::{Classification, Name};
use super::reader::{check_len, put_vec_u8, put_vec_u16, put_vec_u32};

/// Longest object id, in bytes.
pub const MAX_OBJECT_ID_LEN: usize = 1024;
/// Longest caller-supplied associated data, in bytes.
pub const MAX_AAD_LEN: usize = 64 * 1024;

const BINDING_LABEL: &[u8] = b"kekring/v1/binding";

/// The caller's context in the canonical form every backend binds into its wrap (the AAD
/// of a local wrap, a KMS encryption context, Transit associated data).
///
/// ```text
/// "kekring/v1/binding" | tenant (u8 len) | purpose (u8 len) | object id (u16 len)
/// | classification | associated data (u32 len)
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingContext {
    tenant: Name,
    purpose: Name,
    object_id: Vec<u8>,
    classification: Classification,
    aad: Vec<u8>,
    canonical: Vec<u8>,
}

impl BindingContext {
    /// Builds a binding context.
    ///
    /// # Errors
    /// [`FormatError::LengthOutOfRange`](super::FormatError::LengthOutOfRange) (in an [`ArgumentError`]) for an empty or
    /// over-long object id or over-long associated data.
    pub fn new(
        tenant: Name,
        purpose: Name,
        object_id: &[u8],
        classification: Classification,
        aad: &[u8],
    ) -> Result<Self, ArgumentError> {
        let check = |field, len, min, max| -> Result<(), ArgumentError> {
            check_len(field, len, min, max).map_err(ArgumentError)
        };
        check("object id", object_id.len(), 1, MAX_OBJECT_ID_LEN)?;
        check("associated data", aad.len(), 0, MAX_AAD_LEN)?;
        let mut canonical =
            Vec::with_capacity(BINDING_LABEL.len() + 140 + object_id.len() + aad.len());
        canonical.extend_from_slice(BINDING_LABEL);
        put_vec_u8(&mut canonical, tenant.as_str().as_bytes());
        put_vec_u8(&mut canonical, purpose.as_str().as_bytes());
        put_vec_u16(&mut canonical, object_id);
        classification.encode(&mut canonical);
        put_vec_u32(&mut canonical, aad);
        Ok(Self {
            tenant,
            purpose,
            object_id: object_id.to_vec(),
            classification,
            aad: aad.to_vec(),
            canonical,
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &Name {
        &self.tenant
    }

    /// The purpose.
    pub fn purpose(&self) -> &Name {
        &self.purpose
    }

    /// The object id.
    pub fn object_id(&self) -> &[u8] {
        &self.object_id
    }

    /// The classification.
    pub fn classification(&self) -> &Classification {
        &self.classification
    }

    /// The caller-supplied associated data.
    pub fn aad(&self) -> &[u8] {
        &self.aad
    }

    /// The canonical encoding, to be bound into a wrap.
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }
}
