//! The binding context: the canonical bytes that tie a wrap and a payload to the caller's
//! context (tenant, purpose, object id, classification, associated data).

use super::ArgumentError;
use super::ids::{Classification, MAX_LABEL_LEN, MAX_NAME_LEN, Name};
use sha2::{Digest, Sha256};

use super::reader::{check_len, put_vec_u8, put_vec_u16, put_vec_u32};

/// Longest object id, in bytes.
pub const MAX_OBJECT_ID_LEN: usize = 1024;
/// Longest caller-supplied associated data, in bytes.
pub const MAX_AAD_LEN: usize = 64 * 1024;

const BINDING_LABEL: &[u8] = b"kekring/v1/binding";
const REMOTE_BINDING_LABEL: &[u8] = b"kekring/v1/remote-binding";

/// Longest [`BindingContext::remote_bytes`]: the label, two names, the longest object id,
/// the longest custom classification and a SHA-256.
pub const MAX_REMOTE_BINDING_LEN: usize = REMOTE_BINDING_LABEL.len()
    + (1 + MAX_NAME_LEN) * 2
    + 2
    + MAX_OBJECT_ID_LEN
    + 2
    + MAX_LABEL_LEN
    + 32;

/// The keys of [`BindingContext::encryption_context`], in the order it lists them.
pub const ENCRYPTION_CONTEXT_KEYS: [&str; 6] = [
    "kekring:v",
    "kekring:tenant",
    "kekring:purpose",
    "kekring:object",
    "kekring:class",
    "kekring:aad-sha256",
];

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
    aad_digest: [u8; 32],
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
            aad_digest: Sha256::digest(aad).into(),
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

    /// The bounded form remote services bind (a Transit derivation context, the AAD of a
    /// Cloud KMS, Azure or PKCS#11 AES-GCM call): the canonical encoding with the
    /// associated data replaced by its SHA-256, at most [`MAX_REMOTE_BINDING_LEN`] bytes.
    ///
    /// ```text
    /// "kekring/v1/remote-binding" | tenant (u8 len) | purpose (u8 len)
    /// | object id (u16 len) | classification | SHA-256(associated data)
    /// ```
    pub fn remote_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(REMOTE_BINDING_LABEL.len() + 140 + self.object_id.len() + 32);
        out.extend_from_slice(REMOTE_BINDING_LABEL);
        put_vec_u8(&mut out, self.tenant.as_str().as_bytes());
        put_vec_u8(&mut out, self.purpose.as_str().as_bytes());
        put_vec_u16(&mut out, &self.object_id);
        self.classification.encode(&mut out);
        out.extend_from_slice(&self.aad_digest);
        out
    }

    /// The binding as a string map, for services that bind one (an AWS KMS encryption
    /// context): one entry per field under the keys of [`ENCRYPTION_CONTEXT_KEYS`], the
    /// object id and the SHA-256 of the associated data in lowercase hex. Every value is
    /// non-empty and the map has at most 2,400 characters (KMS allows 8,192).
    pub fn encryption_context(&self) -> Vec<(&'static str, String)> {
        let [v, tenant, purpose, object, class, aad] = ENCRYPTION_CONTEXT_KEYS;
        vec![
            (v, "1".to_owned()),
            (tenant, self.tenant.as_str().to_owned()),
            (purpose, self.purpose.as_str().to_owned()),
            (object, hex(&self.object_id)),
            (class, self.classification.as_str().to_owned()),
            (aad, hex(&self.aad_digest)),
        ]
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(tenant: &str, object: &[u8], class: Classification, aad: &[u8]) -> BindingContext {
        BindingContext::new(
            Name::new("tenant", tenant).unwrap(),
            Name::new("purpose", "docs").unwrap(),
            object,
            class,
            aad,
        )
        .unwrap()
    }

    #[test]
    fn remote_forms_tell_every_field_apart() {
        let base = ctx("acme", b"o1", Classification::Internal, b"");
        let others = [
            ctx("acmf", b"o1", Classification::Internal, b""),
            ctx("acme", b"o2", Classification::Internal, b""),
            ctx("acme", b"o1", Classification::Restricted, b""),
            ctx("acme", b"o1", Classification::Internal, b"x"),
            // The length prefixes keep a byte moving between fields from colliding.
            ctx("acm", b"eo1", Classification::Internal, b""),
        ];
        for other in &others {
            assert_ne!(base.remote_bytes(), other.remote_bytes(), "{other:?}");
            assert_ne!(
                base.encryption_context(),
                other.encryption_context(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn remote_forms_are_bounded_and_spelled_as_specified() {
        let c = ctx("acme", &[0xab, 0x01], Classification::Confidential, b"abc");
        let map = c.encryption_context();
        assert_eq!(
            map,
            vec![
                ("kekring:v", "1".to_owned()),
                ("kekring:tenant", "acme".to_owned()),
                ("kekring:purpose", "docs".to_owned()),
                ("kekring:object", "ab01".to_owned()),
                ("kekring:class", "confidential".to_owned()),
                (
                    "kekring:aad-sha256",
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned()
                ),
            ]
        );
        let longest = BindingContext::new(
            Name::new("tenant", &"t".repeat(64)).unwrap(),
            Name::new("purpose", &"p".repeat(64)).unwrap(),
            &[0xff; MAX_OBJECT_ID_LEN],
            Classification::custom(&"c".repeat(MAX_LABEL_LEN)).unwrap(),
            &[7; MAX_AAD_LEN],
        )
        .unwrap();
        assert_eq!(longest.remote_bytes().len(), MAX_REMOTE_BINDING_LEN);
        let chars: usize = longest
            .encryption_context()
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        assert!(chars <= 2400, "{chars}");
    }
}
