//! [`KekLocator`]: where a KEK lives inside its backend, and [`KeyIdentity`]: which key
//! that is. A leaf module: the error types, the key ring and the backends all name
//! locators and identities, and none of them may depend on another for it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies a KEK inside its backend: a local key name, a KMS key ARN, a key URL, a
/// Transit key name, a PKCS#11 label.
///
/// Not secret, but long and environment-revealing: [`KekLocator::redacted`] gives the last
/// 12 characters, the only form audit events may carry.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KekLocator(String);

impl KekLocator {
    /// Wraps a backend-specific key identifier.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last 12 characters, prefixed with `…` when shortened.
    pub fn redacted(&self) -> String {
        tail(&self.0)
    }
}

/// The last 12 characters of `s`, prefixed with `…` when shortened.
fn tail(s: &str) -> String {
    let n = s.chars().count();
    if n <= 12 {
        s.to_owned()
    } else {
        let tail: String = s.chars().skip(n - 12).collect();
        format!("…{tail}")
    }
}

/// The canonical identity of a backend key: what its backend resolves every spelling
/// of a locator naming that key to (an AWS KMS key ARN, whatever alias, key id or role
/// reached it; a Transit key version without leading zeros or slashes; a local key's
/// fingerprint). Two locators of one backend instance name the same key exactly when
/// their identities are equal; the key ring compares identities, never locator strings
/// (see [`KeyBackend::key_identity`](crate::KeyBackend::key_identity)).
///
/// Not secret, but like a locator it may reveal an environment: [`KeyIdentity::tail`]
/// gives the last 12 characters, the only form audit events, inventories and traces
/// carry, and `Debug` and `Display` print that.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyIdentity(String);

impl KeyIdentity {
    /// An identity, in the backend's canonical form.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The identity.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last 12 characters, prefixed with `…` when shortened.
    pub fn tail(&self) -> String {
        tail(&self.0)
    }
}

impl fmt::Debug for KeyIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyIdentity({:?})", self.tail())
    }
}

impl fmt::Display for KeyIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tail())
    }
}

impl fmt::Debug for KekLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekLocator({:?})", self.redacted())
    }
}

impl fmt::Display for KekLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl From<String> for KekLocator {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for KekLocator {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<&String> for KekLocator {
    fn from(s: &String) -> Self {
        Self(s.clone())
    }
}

impl From<&KekLocator> for KekLocator {
    fn from(l: &KekLocator) -> Self {
        l.clone()
    }
}
