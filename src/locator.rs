//! [`KekLocator`]: where a KEK lives inside its backend. A leaf module: the error
//! types, the key ring and the backends all name locators, and none of them may depend
//! on another for it.

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
        let n = self.0.chars().count();
        if n <= 12 {
            self.0.clone()
        } else {
            let tail: String = self.0.chars().skip(n - 12).collect();
            format!("…{tail}")
        }
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
