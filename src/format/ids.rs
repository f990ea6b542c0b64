//! Frozen identifiers: wrap algorithms, algorithm families, backends, payload suites,
//! classifications and the names inside a KEK reference.
//!
//! Every number here is part of the wire format: it never changes meaning, and a number
//! not listed is an error when decoding (fail closed). New ids may be added in later
//! versions of the crate; old readers reject them.

use std::fmt;

use super::{ArgumentError, FormatError};

/// The family of a wrap algorithm: what the classification profiles reason about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Family {
    /// A 256-bit symmetric KEK (AES-256 in a KMS, an HSM or locally). Grover's algorithm
    /// leaves it about 128-bit security against a quantum adversary: quantum-resistant.
    Symmetric256,
    /// Classical public-key wraps (RSA-OAEP, elliptic-curve Diffie-Hellman): broken by a
    /// large quantum computer ("harvest now, decrypt later").
    ClassicalAsymmetric,
    /// A post-quantum KEM alone (ML-KEM, FIPS 203).
    PostQuantum,
    /// A classical KEM combined with a post-quantum KEM: secure while either one holds.
    Hybrid,
}

impl Family {
    /// Every family, in a stable order.
    pub const ALL: [Family; 4] = [
        Family::Symmetric256,
        Family::ClassicalAsymmetric,
        Family::PostQuantum,
        Family::Hybrid,
    ];

    /// Whether wraps of this family are believed to resist a quantum adversary.
    pub fn quantum_resistant(self) -> bool {
        !matches!(self, Family::ClassicalAsymmetric)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Symmetric256 => "symmetric-256",
            Family::ClassicalAsymmetric => "classical-asymmetric",
            Family::PostQuantum => "post-quantum",
            Family::Hybrid => "hybrid",
        })
    }
}

/// How long an algorithm's `params` and `wrapped` fields must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lengths {
    pub(crate) params: (usize, usize),
    pub(crate) wrapped: (usize, usize),
}

const fn exact(params: usize, wrapped: usize) -> Lengths {
    Lengths {
        params: (params, params),
        wrapped: (wrapped, wrapped),
    }
}

/// Upper bound on an opaque backend ciphertext (an AWS KMS ciphertext blob of a 32-byte
/// key is about 180 bytes; Vault Transit's `vault:vN:` strings about 90).
pub const MAX_OPAQUE_WRAPPED_LEN: usize = 4096;

/// A KEK wrap algorithm. The numeric id (see [`WrapAlgorithm::id`]) is frozen.
///
/// | id | algorithm | family | `params` | `wrapped` |
/// |---|---|---|---|---|
/// | `0x0001` | AES-256 key wrap (RFC 3394), wrapping key derived from the KEK and the binding context by HKDF-SHA-256 | symmetric | 0 | 40 |
/// | `0x0002` | AES-256 key wrap with padding (RFC 5649), derived as above | symmetric | 0 | 40 |
/// | `0x0003` | AES-256-GCM under the KEK itself, random 96-bit nonce, binding context as AAD (at most 2^32 wraps per KEK; for keys a backend holds and cannot derive from) | symmetric | 12 (nonce) | 48 |
/// | `0x0004` | AES-256 held by a remote backend, opaque ciphertext (KMS, Transit) | symmetric | 0 | 1..=4096 |
/// | `0x0005` | AES-256-GCM under a per-wrap key derived from the KEK, a 256-bit random salt and the binding context by HKDF-SHA-256 | symmetric | 32 (salt) | 48 |
/// | `0x0006` | AES-256 key wrap (RFC 3394) of a fresh intermediate key by an AES key a service holds (PKCS#11 `C_WrapKey`, Azure Managed HSM `A256KW`); the DEK AES-256-GCM-sealed under it, binding as AAD | symmetric | 40 (wrapped intermediate key) | 60 |
/// | `0x0010` | RSA-OAEP-SHA-256, 2048-bit (remote backends only) | classical | 0 | 256 |
/// | `0x0011` | RSA-OAEP-SHA-256, 3072-bit | classical | 0 | 384 |
/// | `0x0012` | RSA-OAEP-SHA-256, 4096-bit | classical | 0 | 512 |
/// | `0x0013`, `0x0014`, `0x0015` | RSA-OAEP-SHA-256 (2048, 3072, 4096-bit, held by a service) of a fresh intermediate key; the DEK AES-256-GCM-sealed under it, binding as AAD | classical | 256, 384, 512 (RSA ciphertext) | 60 |
/// | `0x0020` | P-256 ECDH-ES, HKDF-SHA-256, AES-256 key wrap | classical | 65 (ephemeral SEC1 point) | 40 |
/// | `0x0030` | ML-KEM-768, HKDF-SHA-256, AES-256 key wrap | post-quantum | 1088 (KEM ciphertext) | 40 |
/// | `0x0031` | ML-KEM-1024, HKDF-SHA-256, AES-256 key wrap | post-quantum | 1568 | 40 |
/// | `0x0040` | hybrid P-256 + ML-KEM-768, HKDF-SHA-256, AES-256 key wrap | hybrid | 1153 (1088 + 65) | 40 |
/// | `0x0041` | X-Wing (X25519 + ML-KEM-768), AES-256 key wrap | hybrid | 1120 | 40 |
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WrapAlgorithm {
    /// `0x0001`: RFC 3394 AES-256 key wrap under an HKDF-derived, context-bound key.
    Aes256Kw,
    /// `0x0002`: RFC 5649 AES-256 key wrap with padding under an HKDF-derived key.
    Aes256Kwp,
    /// `0x0003`: AES-256-GCM under the KEK itself with the binding context as AAD and a
    /// random 96-bit nonce: at most 2^32 wraps per KEK (SP 800-38D). Not offered by the
    /// local backend (which uses [`WrapAlgorithm::Aes256GcmDerived`]); kept for backends
    /// that hold an AES key they can only encrypt under (an HSM's `CKM_AES_GCM`).
    Aes256Gcm,
    /// `0x0004`: AES-256 inside a remote backend; the ciphertext format is the backend's.
    Aes256Opaque,
    /// `0x0005`: AES-256-GCM under a fresh key per wrap, derived by HKDF-SHA-256 from the
    /// KEK, a 256-bit random salt (carried in `params`) and the binding context. No
    /// nonce ever repeats under a key, so a KEK has no practical wrap limit.
    Aes256GcmDerived,
    /// `0x0006`: a fresh intermediate key wrapped with RFC 3394 by an AES-256 key a service
    /// holds and cannot bind a context to (PKCS#11 `C_WrapKey` with `CKM_AES_KEY_WRAP`,
    /// Azure Managed HSM `wrapKey` with `A256KW`), the DEK AES-256-GCM-sealed under it
    /// with the binding as AAD (the intermediate-key construction). Never
    /// `aes256-opaque`, which says the service bound the context.
    Aes256KwIk,
    /// `0x0010`: RSA-OAEP with SHA-256 and MGF1-SHA-256, 2048-bit modulus.
    RsaOaepSha256_2048,
    /// `0x0011`: RSA-OAEP with SHA-256 and MGF1-SHA-256, 3072-bit modulus.
    RsaOaepSha256_3072,
    /// `0x0012`: RSA-OAEP with SHA-256 and MGF1-SHA-256, 4096-bit modulus.
    RsaOaepSha256_4096,
    /// `0x0013`: a fresh intermediate key RSA-OAEP-SHA-256-encrypted by a 2048-bit key a
    /// service holds, the DEK AES-256-GCM-sealed under it with the binding as AAD (the
    /// intermediate-key construction, for services that cannot bind a context).
    RsaOaepSha256Ik2048,
    /// `0x0014`: as `0x0013` with a 3072-bit key.
    RsaOaepSha256Ik3072,
    /// `0x0015`: as `0x0013` with a 4096-bit key.
    RsaOaepSha256Ik4096,
    /// `0x0020`: ephemeral-static ECDH on P-256, HKDF-SHA-256, AES-256 key wrap.
    P256EcdhEs,
    /// `0x0030`: ML-KEM-768 (FIPS 203), HKDF-SHA-256, AES-256 key wrap.
    MlKem768,
    /// `0x0031`: ML-KEM-1024 (FIPS 203), HKDF-SHA-256, AES-256 key wrap.
    MlKem1024,
    /// `0x0040`: P-256 ECDH combined with ML-KEM-768, HKDF-SHA-256, AES-256 key wrap.
    HybridP256MlKem768,
    /// `0x0041`: X-Wing (X25519 + ML-KEM-768), AES-256 key wrap.
    XWing,
}

impl WrapAlgorithm {
    /// Every assigned algorithm, in id order.
    pub const ALL: [WrapAlgorithm; 17] = [
        WrapAlgorithm::Aes256Kw,
        WrapAlgorithm::Aes256Kwp,
        WrapAlgorithm::Aes256Gcm,
        WrapAlgorithm::Aes256Opaque,
        WrapAlgorithm::Aes256GcmDerived,
        WrapAlgorithm::Aes256KwIk,
        WrapAlgorithm::RsaOaepSha256_2048,
        WrapAlgorithm::RsaOaepSha256_3072,
        WrapAlgorithm::RsaOaepSha256_4096,
        WrapAlgorithm::RsaOaepSha256Ik2048,
        WrapAlgorithm::RsaOaepSha256Ik3072,
        WrapAlgorithm::RsaOaepSha256Ik4096,
        WrapAlgorithm::P256EcdhEs,
        WrapAlgorithm::MlKem768,
        WrapAlgorithm::MlKem1024,
        WrapAlgorithm::HybridP256MlKem768,
        WrapAlgorithm::XWing,
    ];

    /// The frozen wire id.
    pub const fn id(self) -> u16 {
        match self {
            WrapAlgorithm::Aes256Kw => 0x0001,
            WrapAlgorithm::Aes256Kwp => 0x0002,
            WrapAlgorithm::Aes256Gcm => 0x0003,
            WrapAlgorithm::Aes256Opaque => 0x0004,
            WrapAlgorithm::Aes256GcmDerived => 0x0005,
            WrapAlgorithm::Aes256KwIk => 0x0006,
            WrapAlgorithm::RsaOaepSha256_2048 => 0x0010,
            WrapAlgorithm::RsaOaepSha256_3072 => 0x0011,
            WrapAlgorithm::RsaOaepSha256_4096 => 0x0012,
            WrapAlgorithm::RsaOaepSha256Ik2048 => 0x0013,
            WrapAlgorithm::RsaOaepSha256Ik3072 => 0x0014,
            WrapAlgorithm::RsaOaepSha256Ik4096 => 0x0015,
            WrapAlgorithm::P256EcdhEs => 0x0020,
            WrapAlgorithm::MlKem768 => 0x0030,
            WrapAlgorithm::MlKem1024 => 0x0031,
            WrapAlgorithm::HybridP256MlKem768 => 0x0040,
            WrapAlgorithm::XWing => 0x0041,
        }
    }

    /// The algorithm with wire id `id`.
    ///
    /// # Errors
    /// [`FormatError::UnknownAlgorithm`] for an id this version does not know.
    pub fn from_id(id: u16) -> Result<Self, FormatError> {
        Self::ALL
            .into_iter()
            .find(|a| a.id() == id)
            .ok_or(FormatError::UnknownAlgorithm(id))
    }

    /// The family the classification profiles see.
    pub const fn family(self) -> Family {
        match self {
            WrapAlgorithm::Aes256Kw
            | WrapAlgorithm::Aes256Kwp
            | WrapAlgorithm::Aes256Gcm
            | WrapAlgorithm::Aes256Opaque
            | WrapAlgorithm::Aes256GcmDerived
            | WrapAlgorithm::Aes256KwIk => Family::Symmetric256,
            WrapAlgorithm::RsaOaepSha256_2048
            | WrapAlgorithm::RsaOaepSha256_3072
            | WrapAlgorithm::RsaOaepSha256_4096
            | WrapAlgorithm::RsaOaepSha256Ik2048
            | WrapAlgorithm::RsaOaepSha256Ik3072
            | WrapAlgorithm::RsaOaepSha256Ik4096
            | WrapAlgorithm::P256EcdhEs => Family::ClassicalAsymmetric,
            WrapAlgorithm::MlKem768 | WrapAlgorithm::MlKem1024 => Family::PostQuantum,
            WrapAlgorithm::HybridP256MlKem768 | WrapAlgorithm::XWing => Family::Hybrid,
        }
    }

    /// A stable lowercase name, e.g. `aes256-kw`.
    pub const fn name(self) -> &'static str {
        match self {
            WrapAlgorithm::Aes256Kw => "aes256-kw",
            WrapAlgorithm::Aes256Kwp => "aes256-kwp",
            WrapAlgorithm::Aes256Gcm => "aes256-gcm",
            WrapAlgorithm::Aes256Opaque => "aes256-opaque",
            WrapAlgorithm::Aes256GcmDerived => "aes256-gcm-derived",
            WrapAlgorithm::Aes256KwIk => "aes256-kw-ik",
            WrapAlgorithm::RsaOaepSha256_2048 => "rsa2048-oaep-sha256",
            WrapAlgorithm::RsaOaepSha256_3072 => "rsa3072-oaep-sha256",
            WrapAlgorithm::RsaOaepSha256_4096 => "rsa4096-oaep-sha256",
            WrapAlgorithm::RsaOaepSha256Ik2048 => "rsa2048-oaep-sha256-ik",
            WrapAlgorithm::RsaOaepSha256Ik3072 => "rsa3072-oaep-sha256-ik",
            WrapAlgorithm::RsaOaepSha256Ik4096 => "rsa4096-oaep-sha256-ik",
            WrapAlgorithm::P256EcdhEs => "p256-ecdh-es",
            WrapAlgorithm::MlKem768 => "ml-kem-768",
            WrapAlgorithm::MlKem1024 => "ml-kem-1024",
            WrapAlgorithm::HybridP256MlKem768 => "p256-ml-kem-768",
            WrapAlgorithm::XWing => "x-wing",
        }
    }

    pub(crate) const fn lengths(self) -> Lengths {
        match self {
            WrapAlgorithm::Aes256Kw | WrapAlgorithm::Aes256Kwp => exact(0, 40),
            WrapAlgorithm::Aes256Gcm => exact(12, 48),
            WrapAlgorithm::Aes256GcmDerived => exact(32, 48),
            // RFC 3394 of the 32-byte intermediate key; nonce, sealed DEK, tag.
            WrapAlgorithm::Aes256KwIk => exact(40, 60),
            WrapAlgorithm::Aes256Opaque => Lengths {
                params: (0, 0),
                wrapped: (1, MAX_OPAQUE_WRAPPED_LEN),
            },
            WrapAlgorithm::RsaOaepSha256_2048 => exact(0, 256),
            WrapAlgorithm::RsaOaepSha256_3072 => exact(0, 384),
            WrapAlgorithm::RsaOaepSha256_4096 => exact(0, 512),
            // The service's RSA ciphertext of the intermediate key; nonce, sealed DEK, tag.
            WrapAlgorithm::RsaOaepSha256Ik2048 => exact(256, 60),
            WrapAlgorithm::RsaOaepSha256Ik3072 => exact(384, 60),
            WrapAlgorithm::RsaOaepSha256Ik4096 => exact(512, 60),
            WrapAlgorithm::P256EcdhEs => exact(65, 40),
            WrapAlgorithm::MlKem768 => exact(1088, 40),
            WrapAlgorithm::MlKem1024 => exact(1568, 40),
            WrapAlgorithm::HybridP256MlKem768 => exact(65 + 1088, 40),
            WrapAlgorithm::XWing => exact(1120, 40),
        }
    }
}

impl fmt::Display for WrapAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of backend holds a KEK. The numeric id is frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum BackendId {
    /// `1`: the embedded local software backend.
    Local,
    /// `2`: AWS KMS.
    AwsKms,
    /// `3`: Google Cloud KMS.
    GcpKms,
    /// `4`: Azure Key Vault.
    AzureKeyVault,
    /// `5`: HashiCorp Vault / OpenBao Transit.
    VaultTransit,
    /// `6`: a PKCS#11 token (HSM).
    Pkcs11,
    /// `0x80..=0xFE`: an in-house backend (a company KMS, an internal key service), with
    /// an id the deployment chooses from the private-use range; kekring never assigns
    /// one there. Written into wrapped DEKs like any id: a copy under it opens only where
    /// a backend reporting the same id is configured. Make one with
    /// [`BackendId::private`] (a [`PrivateId`] is always in the range).
    Private(PrivateId),
}

/// A backend id from the private-use range `0x80..=0xFE`; only
/// [`BackendId::private`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrivateId(u8);

impl PrivateId {
    /// The id.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl BackendId {
    /// Every assigned backend id.
    pub const ALL: [BackendId; 6] = [
        BackendId::Local,
        BackendId::AwsKms,
        BackendId::GcpKms,
        BackendId::AzureKeyVault,
        BackendId::VaultTransit,
        BackendId::Pkcs11,
    ];

    /// The private-use range of backend ids, for in-house backends.
    pub const PRIVATE_RANGE: std::ops::RangeInclusive<u8> = 0x80..=0xFE;

    /// An in-house backend's id, from the private-use range `0x80..=0xFE`.
    ///
    /// # Errors
    /// [`ArgumentError`] for an id outside the range.
    pub fn private(id: u8) -> Result<Self, ArgumentError> {
        if Self::PRIVATE_RANGE.contains(&id) {
            Ok(BackendId::Private(PrivateId(id)))
        } else {
            Err(ArgumentError(FormatError::UnknownBackend(id)))
        }
    }

    /// The frozen wire id.
    pub const fn id(self) -> u8 {
        match self {
            BackendId::Local => 1,
            BackendId::AwsKms => 2,
            BackendId::GcpKms => 3,
            BackendId::AzureKeyVault => 4,
            BackendId::VaultTransit => 5,
            BackendId::Pkcs11 => 6,
            BackendId::Private(id) => id.0,
        }
    }

    /// The backend with wire id `id`: an assigned one, or a private-use one.
    ///
    /// # Errors
    /// [`FormatError::UnknownBackend`] for an id neither assigned nor private-use.
    pub fn from_id(id: u8) -> Result<Self, FormatError> {
        if Self::PRIVATE_RANGE.contains(&id) {
            return Ok(BackendId::Private(PrivateId(id)));
        }
        Self::ALL
            .into_iter()
            .find(|b| b.id() == id)
            .ok_or(FormatError::UnknownBackend(id))
    }

    /// A stable lowercase name (`private` for every private-use id; its [`Display`]
    /// form, `private-<id>`, tells them apart).
    ///
    /// [`Display`]: fmt::Display
    pub const fn name(self) -> &'static str {
        match self {
            BackendId::Local => "local",
            BackendId::AwsKms => "aws-kms",
            BackendId::GcpKms => "gcp-kms",
            BackendId::AzureKeyVault => "azure-key-vault",
            BackendId::VaultTransit => "vault-transit",
            BackendId::Pkcs11 => "pkcs11",
            BackendId::Private(_) => "private",
        }
    }
}

/// The name of an assigned backend; `private-<id>` (decimal) for a private-use one.
impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendId::Private(id) => write!(f, "private-{}", id.0),
            other => f.write_str(other.name()),
        }
    }
}

/// The payload suite of a sealed object. The numeric id is frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// `0x0001`: whole-object AES-256-GCM; payload key and key commitment derived from the
    /// DEK and the nonce with HKDF-SHA-256.
    Aes256GcmHkdfSha256Commit,
    /// `0x0002`: segmented AES-256-GCM for streaming (section 4.2 of the format spec):
    /// the same key schedule, the payload cut into segments of a size the header states,
    /// each sealed under a nonce derived from its index and a last-segment flag.
    Aes256GcmSegmented,
}

impl Suite {
    /// The frozen wire id.
    pub const fn id(self) -> u16 {
        match self {
            Suite::Aes256GcmHkdfSha256Commit => 0x0001,
            Suite::Aes256GcmSegmented => 0x0002,
        }
    }

    /// The suite with wire id `id`.
    ///
    /// # Errors
    /// [`FormatError::UnknownSuite`] for an id this version does not know.
    pub fn from_id(id: u16) -> Result<Self, FormatError> {
        match id {
            0x0001 => Ok(Suite::Aes256GcmHkdfSha256Commit),
            0x0002 => Ok(Suite::Aes256GcmSegmented),
            other => Err(FormatError::UnknownSuite(other)),
        }
    }
}

/// Longest tenant or purpose name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest custom classification label, in bytes.
pub const MAX_LABEL_LEN: usize = 32;

/// A validated tenant or purpose name: 1 to 64 bytes of `A-Z a-z 0-9 . _ - :`.
///
/// The restricted alphabet keeps names printable in audit trails, file names and KMS
/// encryption contexts, and makes their encoding unambiguous.
///
/// Cheap to clone (shared, immutable): names are copied into every wrapped DEK, audit
/// event and key-ring record.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(std::sync::Arc<str>);

impl Name {
    /// Validates `s` as a tenant or purpose name.
    ///
    /// # Errors
    /// [`FormatError::InvalidName`] (in an [`ArgumentError`]) if `s` is empty, longer
    /// than 64 bytes, or holds a character outside the alphabet.
    pub fn new(field: &'static str, s: &str) -> Result<Self, ArgumentError> {
        Self::from_bytes(field, s.as_bytes()).map_err(ArgumentError)
    }

    pub(crate) fn from_bytes(field: &'static str, b: &[u8]) -> Result<Self, FormatError> {
        let ok = !b.is_empty()
            && b.len() <= MAX_NAME_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b':'));
        if !ok {
            return Err(FormatError::InvalidName { field });
        }
        // The alphabet is ASCII, so this cannot fail; map it anyway rather than unwrap.
        let s = std::str::from_utf8(b).map_err(|_| FormatError::InvalidName { field })?;
        Ok(Self(std::sync::Arc::from(s)))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A data classification. Built-in levels have frozen ids; custom labels are carried as
/// text (tag `0x80`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Classification {
    /// `0x01`: may be published.
    Public,
    /// `0x02`: internal to the organisation.
    Internal,
    /// `0x03`: confidential (customer data).
    Confidential,
    /// `0x04`: restricted (the most sensitive class; long-lived secrets).
    Restricted,
    /// `0x80`: an organisation-specific label; profiles must name it explicitly.
    Custom(Label),
}

impl Classification {
    /// A custom classification.
    ///
    /// # Errors
    /// [`FormatError::InvalidLabel`] (in an [`ArgumentError`]) for an empty, over-long or
    /// ill-formed label, or one that spells a built-in level (compared without case).
    pub fn custom(label: &str) -> Result<Self, ArgumentError> {
        Ok(Classification::Custom(Label::new(label)?))
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Restricted => "restricted",
            Classification::Custom(l) => l.as_str(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Classification::Public => out.push(0x01),
            Classification::Internal => out.push(0x02),
            Classification::Confidential => out.push(0x03),
            Classification::Restricted => out.push(0x04),
            Classification::Custom(l) => {
                out.push(0x80);
                super::reader::put_vec_u8(out, l.0.as_bytes());
            }
        }
    }

    pub(crate) fn decode(r: &mut super::reader::Reader<'_>) -> Result<Self, FormatError> {
        match r.u8()? {
            0x01 => Ok(Classification::Public),
            0x02 => Ok(Classification::Internal),
            0x03 => Ok(Classification::Confidential),
            0x04 => Ok(Classification::Restricted),
            0x80 => {
                let b = r.vec_u8("classification label", 1, MAX_LABEL_LEN)?;
                Ok(Classification::Custom(Label::from_bytes(b)?))
            }
            other => Err(FormatError::UnknownClassification(other)),
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated custom classification label: 1 to 32 bytes of `A-Z a-z 0-9 . _ -`,
/// never equal (ignoring case) to a built-in level.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

impl Label {
    /// Validates a custom label.
    ///
    /// # Errors
    /// As for [`Classification::custom`].
    pub fn new(s: &str) -> Result<Self, ArgumentError> {
        Self::from_bytes(s.as_bytes()).map_err(ArgumentError)
    }

    fn from_bytes(b: &[u8]) -> Result<Self, FormatError> {
        let well_formed = !b.is_empty()
            && b.len() <= MAX_LABEL_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        let builtin = ["public", "internal", "confidential", "restricted"]
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(b));
        if !well_formed || builtin {
            return Err(FormatError::InvalidLabel);
        }
        let s = std::str::from_utf8(b).map_err(|_| FormatError::InvalidLabel)?;
        Ok(Self(s.to_owned()))
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant and purpose: what has one active KEK, one route and one wrap plan. Inside
/// the crate only; the public API names the two parts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Scope {
    pub(crate) tenant: Name,
    pub(crate) purpose: Name,
}

impl Scope {
    pub(crate) fn new(tenant: &Name, purpose: &Name) -> Self {
        Self {
            tenant: tenant.clone(),
            purpose: purpose.clone(),
        }
    }
}

/// Names a KEK: tenant, purpose and version. Metadata only: `open` checks it against the
/// caller's context and the configured keys; it never authorises anything by itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KekRef {
    tenant: Name,
    purpose: Name,
    version: u32,
}

impl KekRef {
    /// The same reference with its own copies of the names (no reference count shared
    /// with `self`).
    pub(crate) fn detached(&self) -> Self {
        Self {
            tenant: Name(std::sync::Arc::from(&*self.tenant.0)),
            purpose: Name(std::sync::Arc::from(&*self.purpose.0)),
            version: self.version,
        }
    }

    /// A reference to version `version` (at least 1) of the KEK for `tenant` and `purpose`.
    ///
    /// # Errors
    /// An [`ArgumentError`]: [`FormatError::InvalidName`] for an ill-formed name,
    /// [`FormatError::ZeroVersion`] for version 0.
    pub fn new(tenant: &str, purpose: &str, version: u32) -> Result<Self, ArgumentError> {
        Self::from_parts(
            Name::new("tenant", tenant)?,
            Name::new("purpose", purpose)?,
            version,
        )
    }

    /// Builds a reference from validated names.
    ///
    /// # Errors
    /// [`FormatError::ZeroVersion`] (in an [`ArgumentError`]) for version 0.
    pub fn from_parts(tenant: Name, purpose: Name, version: u32) -> Result<Self, ArgumentError> {
        Self::checked(tenant, purpose, version).map_err(ArgumentError)
    }

    fn checked(tenant: Name, purpose: Name, version: u32) -> Result<Self, FormatError> {
        if version == 0 {
            return Err(FormatError::ZeroVersion);
        }
        Ok(Self {
            tenant,
            purpose,
            version,
        })
    }

    /// Its tenant and purpose.
    pub(crate) fn scope(&self) -> Scope {
        Scope::new(&self.tenant, &self.purpose)
    }

    /// The tenant.
    pub fn tenant(&self) -> &Name {
        &self.tenant
    }

    /// The purpose.
    pub fn purpose(&self) -> &Name {
        &self.purpose
    }

    /// The version (1 and up).
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        super::reader::put_vec_u8(out, self.tenant.0.as_bytes());
        super::reader::put_vec_u8(out, self.purpose.0.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
    }

    pub(crate) fn decode(r: &mut super::reader::Reader<'_>) -> Result<Self, FormatError> {
        let tenant = Name::from_bytes("tenant", r.vec_u8("tenant", 1, MAX_NAME_LEN)?)?;
        let purpose = Name::from_bytes("purpose", r.vec_u8("purpose", 1, MAX_NAME_LEN)?)?;
        Self::checked(tenant, purpose, r.u32()?)
    }
}

impl fmt::Display for KekRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/v{}", self.tenant, self.purpose, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for a in WrapAlgorithm::ALL {
            assert_eq!(WrapAlgorithm::from_id(a.id()), Ok(a));
            assert!(seen.insert(a.id()), "duplicate id {:#06x}", a.id());
        }
        for b in BackendId::ALL {
            assert_eq!(BackendId::from_id(b.id()), Ok(b));
        }
        assert_eq!(
            WrapAlgorithm::from_id(0),
            Err(FormatError::UnknownAlgorithm(0))
        );
        assert_eq!(BackendId::from_id(0), Err(FormatError::UnknownBackend(0)));
        assert_eq!(Suite::from_id(3), Err(FormatError::UnknownSuite(3)));
    }

    #[test]
    fn frozen_ids_never_change() {
        // The wire meaning of these numbers is fixed forever.
        assert_eq!(WrapAlgorithm::Aes256Kw.id(), 0x0001);
        assert_eq!(WrapAlgorithm::MlKem768.id(), 0x0030);
        assert_eq!(WrapAlgorithm::HybridP256MlKem768.id(), 0x0040);
        assert_eq!(BackendId::Pkcs11.id(), 6);
        assert_eq!(Suite::Aes256GcmHkdfSha256Commit.id(), 1);
        assert_eq!(Suite::Aes256GcmSegmented.id(), 2);
    }

    #[test]
    fn names_and_labels_are_validated() {
        assert!(Name::new("tenant", "acme-corp_1.eu:prod").is_ok());
        assert!(Name::new("tenant", "").is_err());
        assert!(Name::new("tenant", "a b").is_err());
        assert!(Name::new("tenant", "é").is_err());
        assert!(Name::new("tenant", &"a".repeat(65)).is_err());
        assert!(Classification::custom("pci").is_ok());
        assert!(Classification::custom("Restricted").is_err());
        assert!(Classification::custom("PUBLIC").is_err());
        assert!(Classification::custom("a/b").is_err());
        assert_eq!(
            KekRef::new("a", "b", 0),
            Err(ArgumentError(FormatError::ZeroVersion))
        );
    }
}

impl WrapAlgorithm {
    /// The algorithm with the stable name `name` (as [`WrapAlgorithm::name`] gives).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl BackendId {
    /// The backend named `name` as its `Display` form gives it (`aws-kms`,
    /// `private-144`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        if let Some(id) = name.strip_prefix("private-") {
            // One spelling per id: decimal, no sign or leading zeros.
            let n: u8 = id.parse().ok()?;
            return (n.to_string() == id)
                .then(|| Self::private(n).ok())
                .flatten();
        }
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl Classification {
    /// Parses `public`, `internal`, `confidential`, `restricted` (any case) or a custom
    /// label.
    ///
    /// # Errors
    /// As [`Classification::custom`] for an invalid custom label.
    pub fn parse(s: &str) -> Result<Self, ArgumentError> {
        match s.to_ascii_lowercase().as_str() {
            "public" => Ok(Classification::Public),
            "internal" => Ok(Classification::Internal),
            "confidential" => Ok(Classification::Confidential),
            "restricted" => Ok(Classification::Restricted),
            _ => Classification::custom(s),
        }
    }
}

/// Serde forms: names and labels as strings, a KEK reference as
/// `{"tenant", "purpose", "version"}`; every value is validated when read.
mod serde_impls {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{BackendId, Classification, Family, KekRef, Name, WrapAlgorithm};

    impl Serialize for Name {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.as_str())
        }
    }

    impl<'de> Deserialize<'de> for Name {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            Name::new("name", &s).map_err(D::Error::custom)
        }
    }

    #[derive(Serialize, Deserialize)]
    struct KekRefRepr {
        tenant: Name,
        purpose: Name,
        version: u32,
    }

    impl Serialize for KekRef {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            KekRefRepr {
                tenant: self.tenant().clone(),
                purpose: self.purpose().clone(),
                version: self.version(),
            }
            .serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for KekRef {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let r = KekRefRepr::deserialize(d)?;
            KekRef::from_parts(r.tenant, r.purpose, r.version).map_err(D::Error::custom)
        }
    }

    macro_rules! by_name {
        ($t:ty, $from:expr, $what:literal) => {
            impl Serialize for $t {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_str(self.name())
                }
            }

            impl<'de> Deserialize<'de> for $t {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    let s = String::deserialize(d)?;
                    $from(&s).ok_or_else(|| D::Error::custom(format!("unknown {}: {s}", $what)))
                }
            }
        };
    }

    by_name!(WrapAlgorithm, WrapAlgorithm::from_name, "wrap algorithm");

    impl Serialize for BackendId {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for BackendId {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            BackendId::from_name(&s)
                .ok_or_else(|| D::Error::custom(format!("unknown backend: {s}")))
        }
    }

    impl Family {
        fn name(&self) -> &'static str {
            match self {
                Family::Symmetric256 => "symmetric-256",
                Family::ClassicalAsymmetric => "classical-asymmetric",
                Family::PostQuantum => "post-quantum",
                Family::Hybrid => "hybrid",
            }
        }

        fn from_name(s: &str) -> Option<Self> {
            Family::ALL.into_iter().find(|f| f.name() == s)
        }
    }

    by_name!(Family, Family::from_name, "family");

    impl Serialize for Classification {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.as_str())
        }
    }

    impl<'de> Deserialize<'de> for Classification {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            Classification::parse(&s).map_err(D::Error::custom)
        }
    }
}
