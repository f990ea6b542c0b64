//! One transport policy for every remote backend: [`Endpoint`] (TLS required except to
//! a loopback address, no credentials in the URL; endpoints read from the environment
//! or an SDK profile pass the same check as configured ones) and [`TlsConfig`] (which
//! certificates are trusted, set from kekring's configuration only; certificate
//! verification is always on: no setting turns it off, and none is read from the
//! environment), and the bound on how large an answer may be.

use std::fmt;
use std::net::IpAddr;

use crate::error::ConfigError;

/// The largest answer body kekring reads from a service: 1 MiB (the largest answer it
/// expects, a 4096-bit RSA or ML-KEM-1024 public key in JSON, is under 4 KiB).
pub const MAX_ANSWER_LEN: usize = 1 << 20;

/// Whether a declared length `n` (a `Content-Length`, a file's size) is over
/// [`MAX_ANSWER_LEN`].
pub fn too_large(n: u64) -> bool {
    usize::try_from(n).map_or(true, |n| n > MAX_ANSWER_LEN)
}

/// A service's address, checked: `https://`, or `http://` only to a loopback IP address
/// (`127.0.0.0/8`, `::1`: a test server or a sidecar on the same host; not a name such
/// as `localhost`, which the resolver may map anywhere), with a host, without a user or
/// password (which would print wherever the address does), a query or a fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: url::Url,
}

impl Endpoint {
    /// Checks `address`; `what` names it in the refusal (`"the KMS endpoint"`,
    /// `"AWS_ENDPOINT_URL_KMS"`). The refusal never repeats the address, which may hold
    /// anything.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an address that is not an http(s) URL with a host,
    /// carries a user or password, or is plain http to a host that is not loopback.
    pub fn parse(address: &str, what: &str) -> Result<Self, ConfigError> {
        let refuse = |why: &str| ConfigError::Backend {
            reason: format!("{what}: {why}"),
        };
        let url = url::Url::parse(address).map_err(|_| refuse("not a URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("must not carry a user or password"));
        }
        let host = url.host_str().filter(|h| !h.is_empty());
        if host.is_none() {
            return Err(refuse("has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("must not carry a query or a fragment"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(refuse(
                    "plain http is allowed to a loopback IP address only (127.0.0.1, [::1]); \
                     use https",
                ));
            }
            _ => return Err(refuse("must be an https:// URL")),
        }
        Ok(Self { url })
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The address without the trailing slash a bare host gets.
    pub fn base(&self) -> &str {
        self.url.as_str().trim_end_matches('/')
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Whether it is plain http (to a loopback address).
    pub fn is_plain_http(&self) -> bool {
        self.url.scheme() == "http"
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(_)) | None => false,
    }
}

/// An address as a configuration's `Debug` may show it before it is checked: without a
/// user or password, and nothing of it when it is not a URL at all (it may then be a
/// secret pasted into the wrong field).
pub fn redacted_address(address: &str) -> String {
    match url::Url::parse(address) {
        Ok(mut url) => {
            if !url.username().is_empty() || url.password().is_some() {
                let _ = url.set_username("[REDACTED]");
                let _ = url.set_password(None);
            }
            url.to_string()
        }
        Err(_) => "[not a URL]".to_owned(),
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({:?})", self.url.as_str())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// Which certificates a backend trusts when it connects over TLS. Verification is
/// always on; what changes is the set of roots:
///
/// - the platform's (the default: the operating system's trust store, as the TLS
///   library reads it; on Linux that includes the bundle `SSL_CERT_FILE` or the
///   directory `SSL_CERT_DIR` names, which is how a container image sets its trust
///   store: use [`TlsConfig::only`] where the environment must not widen it);
/// - the platform's and also one or more private CAs ([`TlsConfig::add_ca_pem`]);
/// - only the private CAs ([`TlsConfig::only`]).
///
/// Nothing here is read from the environment: a `VAULT_SKIP_VERIFY`, `VAULT_CACERT` or
/// `VAULT_CAPATH` in it changes nothing (a backend's `from_env` may read a CA file named
/// by such a variable into a `TlsConfig`, and documents it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    platform: bool,
    cas: Vec<Vec<u8>>,
    set: bool,
}

impl TlsConfig {
    /// The platform's roots.
    pub fn platform() -> Self {
        Self {
            platform: true,
            cas: Vec::new(),
            set: true,
        }
    }

    /// Only the CAs added with [`TlsConfig::add_ca_pem`] (no platform roots).
    pub fn only() -> Self {
        Self {
            platform: false,
            cas: Vec::new(),
            set: true,
        }
    }

    /// Also trusts the CA certificates in `pem` (one or more PEM certificates).
    ///
    /// # Errors
    /// [`ConfigError::Backend`] when `pem` holds no certificate.
    pub fn add_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let pem = pem.into();
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::Backend {
                reason: "a CA bundle must hold PEM certificates".into(),
            });
        }
        if !self.set {
            self.platform = true;
            self.set = true;
        }
        self.cas.push(pem);
        Ok(self)
    }

    /// Also trusts the CA certificates in the PEM file at `path` (read now, at most
    /// 1 MiB).
    ///
    /// # Errors
    /// [`ConfigError::Backend`] when the file cannot be read, is larger, or holds no
    /// certificate.
    pub fn add_ca_file(self, path: &std::path::Path) -> Result<Self, ConfigError> {
        let refuse = |why: String| ConfigError::Backend {
            reason: format!("CA file {}: {why}", path.display()),
        };
        let meta = std::fs::metadata(path).map_err(|e| refuse(e.kind().to_string()))?;
        if too_large(meta.len()) {
            return Err(refuse("larger than 1 MiB".into()));
        }
        let pem = std::fs::read(path).map_err(|e| refuse(e.kind().to_string()))?;
        self.add_ca_pem(pem)
    }

    /// Whether the platform's roots are trusted.
    pub fn trusts_platform(&self) -> bool {
        !self.set || self.platform
    }

    /// The private CAs, PEM.
    pub fn cas(&self) -> &[Vec<u8>] {
        &self.cas
    }

    /// Whether this is the default (the platform's roots and nothing else).
    pub fn is_default(&self) -> bool {
        self.trusts_platform() && self.cas.is_empty()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("platform_roots", &self.trusts_platform())
            .field("private_cas", &self.cas.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_required_except_to_loopback() {
        for ok in [
            "https://kms.eu-west-1.amazonaws.com",
            "https://vault.example:8200/",
            "http://127.0.0.1:8200",
            "http://127.9.9.9",
            "http://[::1]:8200",
            "https://localhost:8200",
        ] {
            assert!(Endpoint::parse(ok, "e").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1:8200",
            "ftp://host",
            "http://",
            "http://vault.example:8200",
            "http://10.0.0.5:8200",
            "http://127.0.0.1.nip.io",
            "https://user:hunter2@vault.example",
            "hunter2",
            // A name is resolved by whatever DNS says: plain http to an address only.
            "http://localhost:4566",
            "http://LOCALHOST",
            // A query or a fragment would be carried into every request path.
            "https://vault.example:8200/?hunter2",
            "https://vault.example:8200/#hunter2",
        ] {
            let err = Endpoint::parse(bad, "e").unwrap_err().to_string();
            assert!(
                !err.contains("hunter2") && !err.contains("vault.example"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn roots_are_the_platform_unless_told() {
        assert!(TlsConfig::default().is_default());
        let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec();
        let with = TlsConfig::default().add_ca_pem(pem.clone()).unwrap();
        assert!(with.trusts_platform() && with.cas().len() == 1);
        let only = TlsConfig::only().add_ca_pem(pem).unwrap();
        assert!(!only.trusts_platform());
        assert!(
            TlsConfig::default()
                .add_ca_pem(b"not pem".to_vec())
                .is_err()
        );
    }
}
