//! HashiCorp Vault / OpenBao Transit KEKs (feature `vault-transit`), on the backend
//! chassis ([`RemoteBackend`]): this file holds the locator, the configuration, the
//! error table and the [`Service`] implementation (speaking Transit's HTTP API through
//! the chassis's client); `vault_transit/session.rs` the logins and the authenticated requests.
//!
//! A KEK is one **version** of a Transit key: mount, key name and a pinned version,
//! written `{mount}/{name}@v{version}` (e.g. `transit/acme-docs@v3`, [`TransitLocator`]).
//! The key must be of type `aes256-gcm96` and **derived**: every wrap sends the DEK
//! with the binding's [remote form](crate::format::BindingContext::remote_bytes) as the
//! derivation context, so the wrap opens only under the same context (construction 1 of
//! FORMAT.md §11), and Transit's server-side `rewrap`, which keeps the context, keeps the
//! binding. Wraps are [`WrapAlgorithm::Aes256Opaque`]; the stored bytes are Transit's
//! `vault:vN:...` ciphertext, and both wrap and unwrap check that `N` is the pinned
//! version (an answer under another version is an answer for another key). The key's
//! identity is `{namespace}/{mount}/{name}@v{N}` in one spelling (`/transit/k@v01` is
//! `transit/k@v1`).
//!
//! Rotation maps onto Transit versions: a successor ([`KekSpec::successor_of`]) is made
//! by `rotate` and pins the new latest version. A Transit version below the key's
//! `min_decryption_version` (or, for wraps, `min_encryption_version`) answers
//! [`BackendError::KeyDisabled`]; that is how an operator disables old versions.
//! Retirement raises the key's floor past the retired version when it is the oldest one
//! still usable, unless another KEK still in use names the key at that version or below
//! (derived keys serve many tenants): then it says so and leaves the floor.
//!
//! Authentication ([`VaultAuth`]): a token, a token file (a Vault Agent sink, or the
//! CLI's `~/.vault-token`), AppRole, or a workload identity: the JWT method (a platform's
//! signed token) or the Kubernetes method (a pod's service-account token). The token
//! lives in the chassis's [`TokenCache`]: renewed, or obtained
//! again, on the first call after two thirds of its TTL. A token Vault no longer accepts
//! is replaced the same way within the call that found it, when it can be; a token
//! obtained during the call that Vault then refuses is a permission error, never an
//! outage. The backend spawns no task: a service that may stay idle longer than a third
//! of its token's TTL calls [`VaultTransitBackend::refresh`] from its own timer, or uses
//! a method that logs in again. Tokens, secret ids and JWTs live in the backend instance
//! only, never in a locator, the key ring, an error or a trace.
//!
//! Transport: the address passes the transport policy ([`Endpoint`]); the trusted roots
//! come from [`VaultTransitConfig::tls`] only. `VAULT_SKIP_VERIFY`, `VAULT_CACERT` and
//! `VAULT_CAPATH` change nothing by themselves: [`VaultTransitConfig::from_env`] reads
//! the two CA variables into the configuration (documented there), and refuses a
//! `VAULT_SKIP_VERIFY` that would turn verification off.
//!
//! The policy kekring needs: `update` on `{mount}/encrypt/*`, `{mount}/decrypt/*` and
//! `{mount}/rewrap/*`, `read` on `{mount}/keys/*`; to create KEKs `create` and `update`
//! on `{mount}/keys/*`, to rotate `update` on `{mount}/keys/*/rotate`, to raise the floor
//! at retirement `update` on `{mount}/keys/*/config`; and `auth/token/lookup-self` and
//! `auth/token/renew-self` (in Vault's `default` policy). Do not grant `create` on
//! `{mount}/encrypt/*`: with it, Transit creates a missing key on first encrypt
//! ("upsert"). kekring reads a key's configuration before its first wrap and refuses one
//! that does not exist, is not derived, is not AES-256-GCM, or can leave Transit
//! (exportable, plaintext backup), but only a policy closes that door for good.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use zeroize::Zeroizing;

pub use session::{KUBERNETES_TOKEN_FILE, VaultAuth};

use super::kit::http::JsonClient;
use super::kit::{
    Answer, CallError, CallPolicy, Described, Endpoint, ErrorClass, Locator, Operation,
    RemoteBackend, RemoteOptions, Secret, Service, ServiceFailure, TlsConfig, TokenCache,
    debug_redacted, invalid_locator,
};
use super::{BackendError, BackendInfo, KekLocator, KekSpec, KeyIdentity, ServiceOutcome};
use crate::error::{ConfigError, Error};
use crate::format::{BackendId, BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

mod session;
#[cfg(test)]
mod tests;

/// A Transit KEK: mount, key name, pinned version.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TransitLocator {
    mount: String,
    name: String,
    version: u64,
}

impl fmt::Debug for TransitLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_redacted(f, "TransitLocator", &self.to_locator())
    }
}

impl TransitLocator {
    /// Builds one; `mount` may hold `/` (a nested mount), `name` may not.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an empty mount or name, a name with `/` or `@`, or
    /// version 0.
    pub fn new(mount: &str, name: &str, version: u64) -> Result<Self, Error> {
        Self::checked(mount, name, version).map_err(|reason| ConfigError::Backend { reason }.into())
    }

    fn checked(mount: &str, name: &str, version: u64) -> Result<Self, String> {
        // No dot segments: the request path would normalise them away, giving one key
        // several spellings that identify differently.
        let ok_part = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let mount = mount.trim_matches('/');
        if !mount.split('/').all(ok_part) || !ok_part(name) || version == 0 {
            return Err("not a Transit KEK ({mount}/{name}@v{version}, version from 1)".into());
        }
        Ok(Self {
            mount: mount.to_owned(),
            name: name.to_owned(),
            version,
        })
    }

    /// The pinned version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The mount.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn prefix(&self) -> String {
        format!("vault:v{}:", self.version)
    }

    fn at(&self, version: u64) -> Self {
        Self {
            version,
            ..self.clone()
        }
    }

    fn same_key(&self, other: &Self) -> bool {
        self.mount == other.mount && self.name == other.name
    }
}

impl Locator for TransitLocator {
    /// Reads `{mount}/{name}@v{version}`.
    fn parse(locator: &KekLocator) -> Result<Self, BackendError> {
        let bad = || invalid_locator("a Transit KEK locator is {mount}/{name}@v{version}");
        let (path, version) = locator.as_str().rsplit_once("@v").ok_or_else(bad)?;
        let (mount, name) = path.rsplit_once('/').ok_or_else(bad)?;
        let version: u64 = version.parse().map_err(|_| bad())?;
        Self::checked(mount, name, version).map_err(invalid_locator)
    }

    fn to_locator(&self) -> KekLocator {
        KekLocator::new(format!("{}/{}@v{}", self.mount, self.name, self.version))
    }
}

/// A configured Transit backend: one Vault (or OpenBao) server.
pub struct VaultTransitConfig {
    address: String,
    auth: VaultAuth,
    namespace: Option<String>,
    mount: String,
    call: CallPolicy,
    tls: TlsConfig,
}

impl fmt::Debug for VaultTransitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransitConfig")
            .field("address", &super::kit::redacted_address(&self.address))
            .field("auth", &self.auth)
            .field("namespace", &self.namespace)
            .field("mount", &self.mount)
            .field("call", &self.call)
            .field("tls", &self.tls)
            .finish()
    }
}

impl VaultTransitConfig {
    /// A server at `address` (`https://`, or `http://` to a loopback IP address), new KEKs
    /// on mount `transit`, the platform's trusted roots.
    pub fn new(address: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            address: address.into(),
            auth,
            namespace: None,
            mount: "transit".into(),
            call: CallPolicy::default(),
            tls: TlsConfig::default(),
        }
    }

    /// From the environment: `VAULT_ADDR`, [`VaultAuth::from_env`], `VAULT_NAMESPACE`,
    /// `KEKRING_TRANSIT_MOUNT` for new KEKs (default `transit`), and the CA certificates
    /// named by `VAULT_CACERT` (a PEM file) and `VAULT_CAPATH` (a directory of PEM
    /// files), trusted instead of the platform's roots, as Vault's own tools read them.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] when `VAULT_ADDR` or the credentials are missing, a CA
    /// file cannot be read, or `VAULT_SKIP_VERIFY` is set to anything but a false value
    /// (`0`, `f`, `false`, any case): kekring never turns certificate verification off.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    fn from_vars(vars: session::Vars<'_>) -> Result<Self, Error> {
        let refuse = |reason: &str| -> Error {
            ConfigError::Backend {
                reason: reason.to_owned(),
            }
            .into()
        };
        if let Some(skip) = vars("VAULT_SKIP_VERIFY")
            && !matches!(skip.to_ascii_lowercase().as_str(), "" | "0" | "f" | "false")
        {
            return Err(refuse(
                "VAULT_SKIP_VERIFY is set: kekring does not turn certificate verification \
                 off; unset it and name the server's CA with VAULT_CACERT",
            ));
        }
        let address = vars("VAULT_ADDR")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| refuse("VAULT_ADDR is not set"))?;
        let mut c = Self::new(address, VaultAuth::from_vars(vars)?);
        c.namespace = vars("VAULT_NAMESPACE").filter(|s| !s.is_empty());
        if let Some(m) = vars("KEKRING_TRANSIT_MOUNT").filter(|m| !m.is_empty()) {
            c.mount = m;
        }
        // As Vault's own client: a CA named here replaces the platform's roots.
        let (cacert, capath) = (
            vars("VAULT_CACERT").filter(|f| !f.is_empty()),
            vars("VAULT_CAPATH").filter(|d| !d.is_empty()),
        );
        let mut tls = if cacert.is_some() || capath.is_some() {
            TlsConfig::only()
        } else {
            TlsConfig::default()
        };
        if let Some(file) = cacert {
            tls = tls.add_ca_file(std::path::Path::new(&file))?;
        }
        if let Some(dir) = capath {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| refuse(&format!("VAULT_CAPATH {dir}: {}", e.kind())))?;
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files.into_iter().filter(|p| p.is_file()) {
                tls = tls.add_ca_file(&f)?;
            }
        }
        c.tls = tls;
        Ok(c)
    }

    /// The Vault namespace (Enterprise / OpenBao namespaces).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// The mount new KEKs are created on.
    pub fn mount(mut self, mount: impl Into<String>) -> Self {
        self.mount = mount.into();
        self
    }

    /// Timeouts and retries.
    pub fn call_policy(mut self, call: CallPolicy) -> Self {
        self.call = call;
        self
    }

    /// Which certificates the connection trusts (default: the platform's roots).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }
}

/// The Transit [`Service`]: one server, one token.
pub struct VaultTransit {
    config: VaultTransitConfig,
    http: JsonClient,
    tokens: TokenCache,
}

impl fmt::Debug for VaultTransit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransit")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Transit KEKs on one Vault / OpenBao server: the chassis on [`VaultTransit`]. See the
/// module docs.
pub type VaultTransitBackend = RemoteBackend<VaultTransit>;

impl RemoteBackend<VaultTransit> {
    /// Connects (lazily: the first call logs in).
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an address that is not https (or http to a loopback
    /// address), carries a user or password, or a TLS configuration that does not load.
    pub fn new(config: VaultTransitConfig) -> Result<Self, Error> {
        let endpoint = Endpoint::parse(&config.address, "the Vault address")?;
        config.auth.check()?;
        if !session::plain_mount(&config.mount) {
            return Err(ConfigError::Backend {
                reason: "the Transit mount for new KEKs must be a plain path".into(),
            }
            .into());
        }
        let http = JsonClient::new(
            &endpoint,
            &config.tls,
            config.call.connect(),
            config.call.attempt(),
        )?;
        Ok(RemoteBackend::with_service(
            VaultTransit {
                config,
                http,
                tokens: TokenCache::new(),
            },
            RemoteOptions::new(),
        ))
    }

    /// Renews the token, or obtains another, if two thirds of its TTL have passed (what
    /// every call does first); for a service's own timer.
    ///
    /// # Errors
    /// [`BackendError::Credentials`] when the token expired and cannot be replaced;
    /// transient errors when Vault cannot be reached.
    pub async fn refresh(&self) -> Result<(), BackendError> {
        let s = self.service();
        s.tokens
            .get(|current| s.next_token(current))
            .await
            .map(|_| ())
    }
}

/// Transit's error table: it answers 400 for most refusals, so the message and the
/// operation decide between them.
fn error_class(f: &ServiceFailure, op: Operation) -> Option<ErrorClass> {
    let lower = f.message.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    // In a rewrap, the minimum *encryption* version concerns the target: a configuration
    // error, not the source KEK being disabled.
    let target_floor = op == Operation::Rewrap && has("less than the minimum encryption");
    let disabled = !target_floor
        && (has("disallowed by policy") || has("less than the minimum") || has("too old"));
    let token = has("invalid token") || has("token expired") || has("invalid secret id");
    Some(match f.status? {
        401 => ErrorClass::Credentials,
        403 if op == Operation::Login || token => ErrorClass::Credentials,
        403 => ErrorClass::PermissionDenied,
        400 | 409 if disabled => ErrorClass::KeyDisabled,
        400 if has("not found") || has("no existing key") => ErrorClass::KeyNotFound,
        400 if op == Operation::Rewrap
            && (target_floor || has("invalid key version") || has("requested version")) =>
        {
            ErrorClass::InvalidRequest
        }
        412 => ErrorClass::Unavailable,
        _ => return None,
    })
}

/// A key's configuration, as `GET {mount}/keys/{name}` answers it.
#[derive(Deserialize)]
struct KeyConfig {
    #[serde(rename = "type")]
    key_type: String,
    derived: bool,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    allow_plaintext_backup: bool,
    #[serde(default)]
    latest_version: u64,
    #[serde(default)]
    min_decryption_version: u64,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct Ciphertext {
    ciphertext: String,
}

#[derive(Deserialize)]
struct Plaintext {
    plaintext: String,
}

impl VaultTransit {
    fn context(binding: &BindingContext) -> String {
        B64.encode(binding.remote_bytes())
    }

    fn identity_of(&self, key: &TransitLocator) -> KeyIdentity {
        let ns = self
            .config
            .namespace
            .as_deref()
            .map(|n| n.trim_matches('/'))
            .filter(|n| !n.is_empty());
        KeyIdentity::new(match ns {
            Some(ns) => format!("{ns}/{}", key.to_locator().as_str()),
            None => key.to_locator().as_str().to_owned(),
        })
    }

    /// The identity a ciphertext Transit answered names: the key at the version of its
    /// `vault:vN:` prefix.
    fn answered(&self, key: &TransitLocator, ciphertext: &str) -> Result<KeyIdentity, CallError> {
        let version = ciphertext
            .strip_prefix("vault:v")
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(v, _)| v.parse::<u64>().ok())
            .ok_or(CallError::Malformed {
                what: "Transit ciphertext",
            })?;
        Ok(self.identity_of(&key.at(version)))
    }

    async fn key_config(&self, key: &TransitLocator) -> Result<KeyConfig, CallError> {
        let path = format!("{}/keys/{}", key.mount, key.name);
        let reply = self.call(reqwest::Method::GET, &path, None).await?;
        // Reading a key Transit does not hold answers 404 (classified as such) or, behind
        // some proxies, an empty 200/204. Any other answer that does not read is
        // malformed: never taken for a missing key, which would let an open fall
        // through to the next copy.
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return Err(CallError::Backend(BackendError::KeyNotFound(
                key.to_locator(),
            )));
        }
        Ok(reply.json::<Data<KeyConfig>>("Transit key")?.data)
    }

    /// A stored wrap as a Transit ciphertext of this version: anything else is not a
    /// wrap under this KEK and is refused before Transit sees it.
    fn pinned<'a>(key: &TransitLocator, wrapped: &'a [u8]) -> Result<&'a str, CallError> {
        let ciphertext = std::str::from_utf8(wrapped).map_err(|_| BackendError::Rejected)?;
        if !ciphertext.starts_with(&key.prefix()) {
            return Err(CallError::Backend(BackendError::Rejected));
        }
        Ok(ciphertext)
    }
}

#[async_trait]
impl Service for VaultTransit {
    type Locator = TransitLocator;
    type Key = TransitLocator;

    fn info(&self) -> BackendInfo {
        let mut info = BackendInfo::new(
            BackendId::VaultTransit,
            "Vault / OpenBao Transit (derived aes256-gcm96 keys)",
            vec![WrapAlgorithm::Aes256Opaque],
        );
        info.local_operations = "none: Transit encrypts the DEK with the binding as its \
            derivation context"
            .into();
        info
    }

    fn call_policy(&self) -> &CallPolicy {
        &self.config.call
    }

    fn classify(&self, failure: &ServiceFailure, operation: Operation) -> Option<ErrorClass> {
        error_class(failure, operation)
    }

    /// `{namespace}/{mount}/{name}@v{version}` in one spelling.
    fn identity(&self, locator: &TransitLocator) -> Result<KeyIdentity, BackendError> {
        Ok(self.identity_of(locator))
    }

    /// Checks the key: it exists, is derived AES-256-GCM, cannot leave Transit, and has
    /// the version pinned (a missing key must never be created by an encrypt).
    async fn describe(
        &self,
        locator: &TransitLocator,
    ) -> Result<Described<TransitLocator>, CallError> {
        let cfg = self.key_config(locator).await?;
        if cfg.exportable || cfg.allow_plaintext_backup {
            return Err(CallError::Backend(BackendError::invalid_request(format!(
                "Transit key {} is exportable or allows plaintext backup",
                locator.to_locator()
            ))));
        }
        if cfg.key_type != "aes256-gcm96" || !cfg.derived {
            return Err(CallError::Backend(BackendError::UnsupportedAlgorithm {
                kek: locator.to_locator(),
                algorithm: WrapAlgorithm::Aes256Opaque,
            }));
        }
        if cfg.latest_version != 0 && locator.version > cfg.latest_version {
            return Err(CallError::Backend(BackendError::KeyNotFound(
                locator.to_locator(),
            )));
        }
        Ok(Described::new(
            locator.clone(),
            self.identity_of(locator),
            WrapAlgorithm::Aes256Opaque,
            locator.to_locator(),
        ))
    }

    async fn encrypt(
        &self,
        key: &TransitLocator,
        plaintext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        let encoded = Zeroizing::new(B64.encode(plaintext));
        let body = serde_json::json!({
            "plaintext": encoded.as_str(),
            "context": Self::context(binding),
            "key_version": key.version,
        });
        let path = format!("{}/encrypt/{}", key.mount, key.name);
        let reply = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        let ct = reply
            .json::<Data<Ciphertext>>("Transit encrypt answer")?
            .data
            .ciphertext;
        Ok(Answer::new(self.answered(key, &ct)?, ct.into_bytes()))
    }

    async fn decrypt(
        &self,
        key: &TransitLocator,
        ciphertext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Secret>, CallError> {
        let ciphertext = Self::pinned(key, ciphertext)?;
        let body = serde_json::json!({"ciphertext": ciphertext, "context": Self::context(binding)});
        let path = format!("{}/decrypt/{}", key.mount, key.name);
        let reply = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        let plain = Zeroizing::new(
            reply
                .json::<Data<Plaintext>>("Transit decrypt answer")?
                .data
                .plaintext,
        );
        let bytes = Zeroizing::new(
            B64.decode(plain.as_bytes())
                .map_err(|_| CallError::Malformed { what: "plaintext" })?,
        );
        // A ciphertext of this key and context that holds no data key is not a wrap.
        DataKey::from_slice(&bytes).map_err(|_| BackendError::Rejected)?;
        // The version decrypted is the one the (pinned) ciphertext names.
        Ok(Answer::new(self.identity_of(key), Secret::from(bytes)))
    }

    /// Transit's `rewrap` between two versions of one key, with the same derivation
    /// context (the binding); other pairs are unsupported.
    async fn rewrap(
        &self,
        from: &TransitLocator,
        to: &TransitLocator,
        ciphertext: &[u8],
        binding: &BindingContext,
    ) -> Result<Answer<Vec<u8>>, CallError> {
        if !from.same_key(to) {
            return Err(CallError::Backend(BackendError::Unsupported {
                operation: "rewrap across Transit keys",
            }));
        }
        let ciphertext = Self::pinned(from, ciphertext)?;
        let body = serde_json::json!({
            "ciphertext": ciphertext,
            "context": Self::context(binding),
            "key_version": to.version,
        });
        let path = format!("{}/rewrap/{}", to.mount, to.name);
        let reply = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        let ct = reply
            .json::<Data<Ciphertext>>("Transit rewrap answer")?
            .data
            .ciphertext;
        Ok(Answer::new(self.answered(to, &ct)?, ct.into_bytes()))
    }

    /// A successor is the next version (`rotate`, then the version read back); a new KEK
    /// is a new derived key named after the hint.
    async fn create(
        &self,
        spec: &KekSpec,
        successor_of: Option<&TransitLocator>,
    ) -> Result<TransitLocator, CallError> {
        if spec.algorithm != WrapAlgorithm::Aes256Opaque {
            return Err(CallError::Backend(BackendError::UnsupportedAlgorithm {
                kek: KekLocator::new(spec.name_hint.clone()),
                algorithm: spec.algorithm,
            }));
        }
        if let Some(current) = successor_of {
            self.describe(current).await?;
            let path = format!("{}/keys/{}/rotate", current.mount, current.name);
            self.call(reqwest::Method::POST, &path, None).await?;
            let latest = self.key_config(current).await?.latest_version;
            if latest <= current.version {
                return Err(CallError::Malformed {
                    what: "Transit key versions",
                });
            }
            return Ok(current.at(latest));
        }
        let suffix = super::kit::random::<6>()?;
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let base: String = spec
            .name_hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let key = TransitLocator::checked(&self.config.mount, &format!("{base}-{hex}"), 1)
            .map_err(|_| {
                BackendError::invalid_request("cannot name a Transit key after the hint")
            })?;
        let body = serde_json::json!({"type": "aes256-gcm96", "derived": true});
        let path = format!("{}/keys/{}", key.mount, key.name);
        self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        Ok(key)
    }

    /// Raises the key's minimum decryption and encryption versions past this version
    /// when it is the oldest one still usable and no KEK in use names the key at this
    /// version or below.
    async fn retire(
        &self,
        key: &Described<TransitLocator>,
        in_use: &[TransitLocator],
    ) -> Result<ServiceOutcome, CallError> {
        let k = &key.key;
        if let Some(other) = in_use
            .iter()
            .find(|o| o.same_key(k) && o.version <= k.version)
        {
            return Ok(ServiceOutcome::Skipped {
                reason: format!(
                    "{} is still in use: raising the key's floor would stop it",
                    other.to_locator()
                ),
            });
        }
        let cfg = self.key_config(k).await?;
        let floor = cfg.min_decryption_version.max(1);
        if floor != k.version || k.version >= cfg.latest_version {
            return Ok(ServiceOutcome::Skipped {
                reason: format!(
                    "v{} is not the oldest version below the latest (floor v{floor}, latest v{})",
                    k.version, cfg.latest_version
                ),
            });
        }
        let next = k.version + 1;
        let body =
            serde_json::json!({"min_decryption_version": next, "min_encryption_version": next});
        let path = format!("{}/keys/{}/config", k.mount, k.name);
        self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        Ok(ServiceOutcome::Applied)
    }
}
