//! HashiCorp Vault / OpenBao Transit KEKs (feature `vault-transit`, over `vaultrs`).
//!
//! A KEK is one **version** of a Transit key: mount, key name and a pinned version,
//! written `{mount}/{name}@v{version}` (e.g. `transit/acme-docs@v3`). The key must be
//! of type `aes256-gcm96` and **derived**: every wrap sends the DEK with the binding's
//! [remote form](crate::format::BindingContext::remote_bytes) as the derivation
//! context, so the wrap opens only under the same context (construction 1 of FORMAT.md
//! §11), and Transit's server-side `rewrap`, which keeps the context but drops
//! `associated_data`, keeps the binding. Wraps are [`WrapAlgorithm::Aes256Opaque`]; the
//! stored bytes are Transit's `vault:vN:...` ciphertext, and both wrap and unwrap
//! check that `N` is the pinned version (an answer under another version is an answer
//! for another key).
//!
//! Rotation maps onto Transit versions: a successor ([`KekSpec::successor_of`]) is made
//! by `rotate` and pins the new latest version. A Transit version below the key's
//! `min_decryption_version` (or, for wraps, `min_encryption_version`) answers
//! [`BackendError::KeyDisabled`]; that is how an operator disables old versions.
//!
//! Authentication: a token ([`VaultAuth::Token`]), a token file ([`VaultAuth::TokenFile`]:
//! a Vault Agent sink, or the CLI's `~/.vault-token`) or AppRole ([`VaultAuth::AppRole`]).
//! The backend looks the token up once; on the first call after two thirds of its TTL
//! have passed it renews a renewable token, or logs in again (AppRole logs in, a token
//! file is read again, a plain token is looked up again). A token Vault no longer
//! accepts is replaced the same way within the call that found it, when it can be. The
//! backend spawns no task: a service that may stay idle longer than a third of its
//! token's TTL calls [`VaultTransitBackend::refresh`] from its own timer, or uses AppRole
//! or a token file kept fresh by Vault Agent.
//! Tokens and secret ids live in the backend instance only, never in a locator, the
//! key ring, an error or a trace.
//!
//! Timeouts: `vaultrs` gives its HTTP client one timeout per request, which is the
//! [`CallPolicy`]'s attempt timeout; the policy's connect timeout is not used here (the
//! attempt timeout bounds connecting too).
//!
//! The policy kekring needs: `update` on `{mount}/encrypt/*`, `{mount}/decrypt/*` and
//! `{mount}/rewrap/*`, `read` on `{mount}/keys/*`; to create KEKs `create` and `update`
//! on `{mount}/keys/*`, to rotate `update` on `{mount}/keys/*/rotate`, to raise the floor
//! at retirement `update` on `{mount}/keys/*/config`; and `auth/token/lookup-self` and
//! `auth/token/renew-self` (in Vault's `default` policy). Do not grant `create` on
//! `{mount}/encrypt/*`: with it,
//! Transit creates a missing key on first encrypt ("upsert"). kekring reads a key's
//! configuration before its first wrap and refuses one that does not exist, is not
//! derived, is not AES-256-GCM, or can leave Transit (exportable, plaintext backup), but
//! only a policy closes that door for good.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use vaultrs::api::transit::KeyType;
use vaultrs::api::transit::requests::{
    CreateKeyRequestBuilder, DecryptDataRequestBuilder, EncryptDataRequestBuilder,
    RewrapDataRequestBuilder, UpdateKeyConfigurationRequestBuilder,
};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use super::kit::{CallPolicy, unavailable};
use super::{
    BackendError, BackendInfo, KekDescriptor, KekLocator, KekSpec, KeyBackend, KeyIdentity,
    RewrapRequest, UnwrapRequest, UnwrapResponse, WrapRequest, WrapResponse,
};
use crate::error::{ConfigError, Error};
use crate::format::{BackendId, BindingContext, WrapAlgorithm};
use crate::secret::DataKey;

/// How the backend authenticates to Vault.
#[non_exhaustive]
pub enum VaultAuth {
    /// A token (renewed when renewable).
    Token(SecretString),
    /// A file holding a token, read at every login: when the token expires or Vault
    /// stops accepting it, the file is read again. For a Vault Agent sink, which the
    /// agent rewrites when it authenticates again, and for the CLI's `~/.vault-token`.
    TokenFile(PathBuf),
    /// AppRole: a role id and a secret id, logged in at `mount` (usually `approle`).
    AppRole {
        /// The auth mount.
        mount: String,
        /// The role id (not secret, but not printed either).
        role_id: String,
        /// The secret id.
        secret_id: SecretString,
    },
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("VaultAuth::Token([REDACTED])"),
            VaultAuth::TokenFile(path) => write!(f, "VaultAuth::TokenFile({path:?})"),
            VaultAuth::AppRole { mount, .. } => {
                write!(f, "VaultAuth::AppRole {{ mount: {mount:?}, .. }}")
            }
        }
    }
}

impl VaultAuth {
    /// From the environment, as Vault's own tools read it: `VAULT_TOKEN`; or else
    /// `VAULT_ROLE_ID` and `VAULT_SECRET_ID` (AppRole at `VAULT_APPROLE_MOUNT`, default
    /// `approle`); or else the file `$HOME/.vault-token` where the Vault CLI's default
    /// token helper keeps the token of `vault login`, if it exists.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] when none is set.
    pub fn from_env() -> Result<Self, Error> {
        if let Ok(t) = std::env::var("VAULT_TOKEN")
            && !t.is_empty()
        {
            return Ok(VaultAuth::Token(SecretString::from(t)));
        }
        match (
            std::env::var("VAULT_ROLE_ID"),
            std::env::var("VAULT_SECRET_ID"),
        ) {
            (Ok(role_id), Ok(secret_id)) if !role_id.is_empty() && !secret_id.is_empty() => {
                Ok(VaultAuth::AppRole {
                    mount: std::env::var("VAULT_APPROLE_MOUNT")
                        .unwrap_or_else(|_| "approle".into()),
                    role_id,
                    secret_id: SecretString::from(secret_id),
                })
            }
            _ => match std::env::var_os("HOME") {
                Some(home) if !home.is_empty() => {
                    let path = PathBuf::from(home).join(".vault-token");
                    if path.is_file() {
                        Ok(VaultAuth::TokenFile(path))
                    } else {
                        Err(no_credentials())
                    }
                }
                _ => Err(no_credentials()),
            },
        }
    }

    /// Whether a token Vault no longer accepts can be replaced without the operator.
    fn can_log_in_again(&self) -> bool {
        match self {
            VaultAuth::Token(_) => false,
            VaultAuth::TokenFile(_) | VaultAuth::AppRole { .. } => true,
        }
    }
}

fn no_credentials() -> Error {
    ConfigError::Backend {
        reason: "set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID, or log in with the \
                 Vault CLI (~/.vault-token)"
            .into(),
    }
    .into()
}

/// Reads a token file: the token is the file's content without surrounding whitespace.
/// A file that cannot be read or is empty is [`BackendError::Credentials`], naming the
/// file (the path is not secret; the content never appears).
async fn read_token_file(path: &std::path::Path) -> Result<Zeroizing<String>, BackendError> {
    let text = Zeroizing::new(tokio::fs::read_to_string(path).await.map_err(|e| {
        BackendError::Credentials {
            message: format!("Vault token file {}: {}", path.display(), e.kind()),
        }
    })?);
    let token = Zeroizing::new(text.trim().to_owned());
    if token.is_empty() {
        return Err(BackendError::Credentials {
            message: format!("Vault token file {} is empty", path.display()),
        });
    }
    Ok(token)
}

/// A Transit KEK: mount, key name, pinned version.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TransitKey {
    mount: String,
    name: String,
    version: u64,
}

impl fmt::Debug for TransitKey {
    // As every locator: the last 12 characters only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransitKey({:?})", self.locator())
    }
}

impl TransitKey {
    /// Builds one; `mount` may hold `/` (a nested mount), `name` may not.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an empty mount or name, a name with `/` or `@`, or
    /// version 0.
    pub fn new(mount: &str, name: &str, version: u64) -> Result<Self, Error> {
        let ok_part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let mount = mount.trim_matches('/');
        if !mount.split('/').all(ok_part) || !ok_part(name) || version == 0 {
            return Err(ConfigError::Backend {
                reason: format!("not a Transit KEK: {mount}/{name}@v{version}"),
            }
            .into());
        }
        Ok(Self {
            mount: mount.to_owned(),
            name: name.to_owned(),
            version,
        })
    }

    /// Parses `{mount}/{name}@v{version}`.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for any other form.
    pub fn parse(locator: &KekLocator) -> Result<Self, Error> {
        let bad = || -> Error {
            ConfigError::Backend {
                reason: format!("not a Transit KEK locator ({{mount}}/{{name}}@v{{n}}): {locator}"),
            }
            .into()
        };
        let (path, version) = locator.as_str().rsplit_once("@v").ok_or_else(bad)?;
        let (mount, name) = path.rsplit_once('/').ok_or_else(bad)?;
        let version: u64 = version.parse().map_err(|_| bad())?;
        Self::new(mount, name, version).map_err(|_| bad())
    }

    /// The locator.
    pub fn locator(&self) -> KekLocator {
        KekLocator::new(format!("{}/{}@v{}", self.mount, self.name, self.version))
    }

    /// The pinned version.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn prefix(&self) -> String {
        format!("vault:v{}:", self.version)
    }

    /// A stored wrap as a Transit ciphertext of this version: anything else is not a
    /// wrap under this KEK and is refused before Transit sees it.
    fn pinned<'a>(&self, params: &[u8], wrapped: &'a [u8]) -> Result<&'a str, BackendError> {
        let ciphertext = std::str::from_utf8(wrapped).map_err(|_| BackendError::Rejected)?;
        if !params.is_empty() || !ciphertext.starts_with(&self.prefix()) {
            return Err(BackendError::Rejected);
        }
        Ok(ciphertext)
    }

    /// Checks that a ciphertext Transit answered is of this version: one of another
    /// version is an answer for another key.
    fn check_answer(&self, asked: &KekLocator, ciphertext: &str) -> Result<(), BackendError> {
        if ciphertext.starts_with(&self.prefix()) {
            return Ok(());
        }
        let answered = ciphertext
            .split(':')
            .nth(1)
            .unwrap_or("?")
            .trim_start_matches('v')
            .to_owned();
        Err(BackendError::KeyMismatch {
            asked: asked.clone(),
            answered: KekLocator::new(format!("{}/{}@v{answered}", self.mount, self.name)),
        })
    }
}

/// A configured Transit backend: one Vault (or OpenBao) server.
pub struct VaultTransitConfig {
    address: String,
    auth: VaultAuth,
    namespace: Option<String>,
    mount: String,
    call: CallPolicy,
}

impl fmt::Debug for VaultTransitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransitConfig")
            .field("address", &self.address)
            .field("auth", &self.auth)
            .field("namespace", &self.namespace)
            .field("mount", &self.mount)
            .field("call", &self.call)
            .finish()
    }
}

impl VaultTransitConfig {
    /// A server at `address` (`http://` or `https://`), new KEKs on mount `transit`.
    pub fn new(address: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            address: address.into(),
            auth,
            namespace: None,
            mount: "transit".into(),
            call: CallPolicy::default(),
        }
    }

    /// From the environment: `VAULT_ADDR`, [`VaultAuth::from_env`], `VAULT_NAMESPACE`,
    /// and `KEKRING_TRANSIT_MOUNT` for new KEKs (default `transit`).
    ///
    /// # Errors
    /// [`ConfigError::Backend`] when `VAULT_ADDR` or the credentials are missing.
    pub fn from_env() -> Result<Self, Error> {
        let address = std::env::var("VAULT_ADDR").map_err(|_| ConfigError::Backend {
            reason: "VAULT_ADDR is not set".into(),
        })?;
        let mut c = Self::new(address, VaultAuth::from_env()?);
        c.namespace = std::env::var("VAULT_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty());
        if let Ok(m) = std::env::var("KEKRING_TRANSIT_MOUNT")
            && !m.is_empty()
        {
            c.mount = m;
        }
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
}

struct Session {
    client: Arc<VaultClient>,
    /// When to renew or log in again (`None`: the token does not expire).
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    renewable: bool,
}

/// Transit KEKs on one Vault / OpenBao server. See the module docs.
pub struct VaultTransitBackend {
    info: BackendInfo,
    config: VaultTransitConfig,
    session: tokio::sync::Mutex<Option<Session>>,
    /// The keys (`mount/name`) already checked, once per backend instance, to be derived
    /// AES-256-GCM keys that cannot leave Transit. Type and derivation never change;
    /// `exportable` can be turned on later, which this check does not see again: keep
    /// `update` on `{mount}/keys/*/config` away from anyone who should not (README).
    checked: Mutex<HashSet<String>>,
}

impl fmt::Debug for VaultTransitBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransitBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a call was, for mapping Transit's errors (it answers 400 for most refusals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
    /// A rewrap: `kek` is the source; refusals that concern the target version are
    /// configuration errors, not a rejected wrap.
    Rewrap,
    Admin,
    Auth,
}

/// Maps a `vaultrs` error. Only the status and Vault's `errors` strings are kept (never
/// a response body, which on a decrypt would hold the plaintext).
fn map_err(e: ClientError, op: Op, kek: &KekLocator) -> BackendError {
    match e {
        ClientError::APIError { code, errors } => map_status(code, &errors.join("; "), op, kek),
        ClientError::RestClientError { source } => match source {
            // An error status whose body is not Vault's `errors` list (a proxy, a load
            // balancer): the same rules, with no message to go on.
            rustify::errors::ClientError::ServerResponseError { code, .. } => {
                map_status(code, "", op, kek)
            }
            rustify::errors::ClientError::ResponseParseError { .. }
            | rustify::errors::ClientError::ResponseConversionError { .. } => {
                BackendError::MalformedResponse {
                    what: "Vault response",
                }
            }
            // Connection refused or reset, TLS, the client's own timeout.
            other => unavailable(format!("Vault request failed: {other}")),
        },
        ClientError::ResponseEmptyError
        | ClientError::ResponseDataEmptyError
        | ClientError::JsonParseError { .. } => BackendError::MalformedResponse {
            what: "Vault response",
        },
        other => BackendError::InvalidRequest {
            message: format!("Vault client: {other}"),
        },
    }
}

/// Maps an HTTP error status and Vault's message (Transit answers 400 for most refusals,
/// so the message and the operation decide between them).
fn map_status(code: u16, msg: &str, op: Op, kek: &KekLocator) -> BackendError {
    let msg = msg.to_owned();
    let lower = msg.to_ascii_lowercase();
    // In a rewrap, the minimum *encryption* version concerns the target, which is a
    // configuration error (below), not the source KEK being disabled.
    let target_floor = op == Op::Rewrap && lower.contains("less than the minimum encryption");
    let disabled = !target_floor
        && (lower.contains("disallowed by policy")
            || lower.contains("less than the minimum")
            || lower.contains("too old"));
    let missing = lower.contains("not found") || lower.contains("no existing key");
    match code {
        401 => BackendError::Credentials { message: msg },
        403 if op == Op::Auth
            || lower.contains("invalid token")
            || lower.contains("token expired")
            || lower.contains("invalid secret id")
            || lower.contains("invalid role or secret id") =>
        {
            BackendError::Credentials { message: msg }
        }
        // Vault answers 403 for an expired token too: `classify` tells the two apart.
        403 => BackendError::PermissionDenied {
            kek: kek.clone(),
            message: msg,
        },
        404 => BackendError::KeyNotFound(kek.clone()),
        400 | 409 if disabled => BackendError::KeyDisabled {
            kek: kek.clone(),
            state: msg,
        },
        400 if missing => BackendError::KeyNotFound(kek.clone()),
        400 if op == Op::Rewrap
            && (target_floor
                || lower.contains("invalid key version")
                || lower.contains("requested version")) =>
        {
            BackendError::InvalidRequest {
                message: format!("Transit refused the target version: {msg}"),
            }
        }
        400 if matches!(op, Op::Decrypt | Op::Rewrap) => BackendError::Rejected,
        400 if op == Op::Auth => BackendError::Credentials { message: msg },
        429 => BackendError::Throttled { message: msg },
        412 | 500..=599 => unavailable(format!("Vault answered {code}: {msg}")),
        _ => BackendError::InvalidRequest {
            message: format!("Vault answered {code}: {msg}"),
        },
    }
}

impl VaultTransitBackend {
    /// Connects (lazily: the first call logs in).
    ///
    /// # Errors
    /// [`ConfigError::Backend`] for an address that is not an `http://` or `https://`
    /// URL.
    pub fn new(config: VaultTransitConfig) -> Result<Self, Error> {
        // The address is not echoed in these refusals: a malformed one may hold anything.
        let refuse = |reason: &str| -> Error {
            ConfigError::Backend {
                reason: reason.to_owned(),
            }
            .into()
        };
        let parsed = url::Url::parse(&config.address)
            .map_err(|_| refuse("the Vault address is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(refuse("the Vault address must be http(s)://host[:port]"));
        }
        // Vault takes no credentials in its URL; one there would print wherever the
        // address does (this backend's Debug among them).
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse(
                "the Vault address must not carry a user or password",
            ));
        }
        let mut info = BackendInfo::new(
            BackendId::VaultTransit,
            "Vault / OpenBao Transit (derived aes256-gcm96 keys)",
            vec![WrapAlgorithm::Aes256Opaque],
        );
        info.hardware_backed = false;
        Ok(Self {
            info,
            config,
            session: tokio::sync::Mutex::new(None),
            checked: Mutex::new(HashSet::new()),
        })
    }

    fn client(&self, token: &str) -> Result<VaultClient, BackendError> {
        let mut s = VaultClientSettingsBuilder::default();
        s.address(&self.config.address)
            .token(token)
            .timeout(Some(self.config.call.attempt()));
        if let Some(ns) = &self.config.namespace {
            s.set_namespace(ns.clone());
        }
        let settings = s.build().map_err(|e| BackendError::InvalidRequest {
            message: format!("Vault client settings: {e}"),
        })?;
        VaultClient::new(settings).map_err(|e| unavailable(format!("Vault client: {e}")))
    }

    /// A client with a live token: logs in, renews or logs in again as needed.
    async fn session(&self) -> Result<Arc<VaultClient>, BackendError> {
        let mut guard = self.session.lock().await;
        let now = Instant::now();
        if let Some(s) = guard.as_ref() {
            match s.refresh_at {
                None => return Ok(s.client.clone()),
                Some(t) if now < t => return Ok(s.client.clone()),
                _ => {}
            }
            if s.renewable && s.expires_at.is_some_and(|e| now < e) {
                let renewed = vaultrs::token::renew_self(s.client.as_ref(), None).await;
                if let Ok(a) = renewed
                    && a.lease_duration > 0
                {
                    let client = s.client.clone();
                    *guard = Some(Self::timed(client.clone(), a.lease_duration, a.renewable));
                    return Ok(client);
                }
            }
        }
        let fresh = self.login().await?;
        let client = fresh.client.clone();
        *guard = Some(fresh);
        Ok(client)
    }

    /// Renews the token, or logs in again, if two thirds of its TTL have passed (what
    /// every call does first); for a service's own timer.
    ///
    /// # Errors
    /// [`BackendError::Credentials`] when the token expired and cannot be replaced;
    /// transient errors when Vault cannot be reached.
    pub async fn refresh(&self) -> Result<(), BackendError> {
        self.session().await.map(|_| ())
    }

    fn timed(client: Arc<VaultClient>, ttl_secs: u64, renewable: bool) -> Session {
        let now = Instant::now();
        let ttl = Duration::from_secs(ttl_secs);
        Session {
            client,
            refresh_at: Some(now + ttl * 2 / 3),
            expires_at: Some(now + ttl),
            renewable,
        }
    }

    async fn login(&self) -> Result<Session, BackendError> {
        let locator = KekLocator::new("auth");
        let (client, ttl, renewable) = match &self.config.auth {
            VaultAuth::Token(token) => self.look_up(token.expose_secret(), &locator).await?,
            VaultAuth::TokenFile(path) => {
                let token = read_token_file(path).await?;
                self.look_up(&token, &locator).await?
            }
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let anon = self.client("")?;
                let auth =
                    vaultrs::auth::approle::login(&anon, mount, role_id, secret_id.expose_secret())
                        .await
                        .map_err(|e| map_err(e, Op::Auth, &locator))?;
                let token = Zeroizing::new(auth.client_token);
                let client = Arc::new(self.client(&token)?);
                (client, auth.lease_duration, auth.renewable)
            }
        };
        if ttl == 0 {
            return Ok(Session {
                client,
                refresh_at: None,
                expires_at: None,
                renewable: false,
            });
        }
        Ok(Self::timed(client, ttl, renewable))
    }

    /// A client for `token`, with the token's remaining TTL and whether it is renewable.
    async fn look_up(
        &self,
        token: &str,
        locator: &KekLocator,
    ) -> Result<(Arc<VaultClient>, u64, bool), BackendError> {
        let client = Arc::new(self.client(token)?);
        let me = vaultrs::token::lookup_self(client.as_ref())
            .await
            .map_err(|e| map_err(e, Op::Auth, locator))?;
        Ok((client, me.ttl, me.renewable.unwrap_or(false)))
    }

    /// Vault answers 403 "permission denied" both for a token without the policy and
    /// for an expired or revoked token. Tells them apart by looking the token up: when
    /// that fails too, the token is the problem (and the session is dropped, so the next
    /// call logs in again).
    ///
    /// Only a 403 from the lookup itself condemns the token (a network failure leaves the
    /// error as it was). The session is dropped only if it still holds this client (a
    /// sibling call may have logged in already). Under AppRole or a token file the next
    /// attempt logs in again (or reads the file again), so the failure is reported as
    /// transient and the call retried; a plain token cannot be replaced, so it is
    /// [`BackendError::Credentials`].
    async fn classify(&self, client: &Arc<VaultClient>, err: BackendError) -> BackendError {
        let BackendError::PermissionDenied { message, .. } = &err else {
            return err;
        };
        match vaultrs::token::lookup_self(client.as_ref()).await {
            Err(ClientError::APIError { code: 403, .. }) => {
                let mut session = self.session.lock().await;
                if session
                    .as_ref()
                    .is_some_and(|s| Arc::ptr_eq(&s.client, client))
                {
                    *session = None;
                }
                let message = format!("{message} (the token is no longer valid)");
                if self.config.auth.can_log_in_again() {
                    unavailable(message)
                } else {
                    BackendError::Credentials { message }
                }
            }
            _ => err,
        }
    }

    /// Checks once per key that it exists, is derived and is AES-256-GCM (a missing key
    /// must never be created by an encrypt).
    async fn check_key(
        &self,
        client: &VaultClient,
        key: &TransitKey,
        kek: &KekLocator,
    ) -> Result<(), BackendError> {
        let id = format!("{}/{}", key.mount, key.name);
        if self
            .checked
            .lock()
            .map(|m| m.contains(&id))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let read = vaultrs::transit::key::read(client, &key.mount, &key.name)
            .await
            .map_err(|e| match map_err(e, Op::Admin, kek) {
                // Reading a key Transit does not hold answers 404 or an empty 200.
                BackendError::MalformedResponse { .. } => BackendError::KeyNotFound(kek.clone()),
                other => other,
            })?;
        // A key that can leave Transit (exported, or backed up in plaintext) is no KEK.
        if read.exportable || read.allow_plaintext_backup {
            return Err(BackendError::InvalidRequest {
                message: format!("Transit key {kek} is exportable or allows plaintext backup"),
            });
        }
        if !matches!(read.key_type, KeyType::Aes256Gcm96) || !read.derived {
            return Err(BackendError::UnsupportedAlgorithm {
                kek: kek.clone(),
                algorithm: WrapAlgorithm::Aes256Opaque,
            });
        }
        if let Ok(mut m) = self.checked.lock() {
            m.insert(id);
        }
        Ok(())
    }

    fn context(binding: &BindingContext) -> String {
        B64.encode(binding.remote_bytes())
    }

    fn check_algorithm(kek: &KekLocator, algorithm: WrapAlgorithm) -> Result<(), BackendError> {
        if algorithm != WrapAlgorithm::Aes256Opaque {
            return Err(BackendError::UnsupportedAlgorithm {
                kek: kek.clone(),
                algorithm,
            });
        }
        Ok(())
    }

    fn parse(kek: &KekLocator) -> Result<TransitKey, BackendError> {
        TransitKey::parse(kek).map_err(|e| BackendError::InvalidLocator {
            reason: e.to_string(),
        })
    }

    async fn wrap_once(
        &self,
        key: &TransitKey,
        kek: &KekLocator,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<WrapResponse, BackendError> {
        let client = self.session().await?;
        match self.wrap_with(&client, key, kek, dek, binding).await {
            Err(e) => Err(self.classify(&client, e).await),
            ok => ok,
        }
    }

    async fn wrap_with(
        &self,
        client: &VaultClient,
        key: &TransitKey,
        kek: &KekLocator,
        dek: &DataKey,
        binding: &BindingContext,
    ) -> Result<WrapResponse, BackendError> {
        self.check_key(client, key, kek).await?;
        let plaintext = Zeroizing::new(B64.encode(dek.expose_secret()));
        let mut opts = EncryptDataRequestBuilder::default();
        opts.context(Self::context(binding))
            .key_version(key.version);
        let resp = vaultrs::transit::data::encrypt(
            client,
            &key.mount,
            &key.name,
            &plaintext,
            Some(&mut opts),
        )
        .await
        .map_err(|e| map_err(e, Op::Encrypt, kek))?;
        key.check_answer(kek, &resp.ciphertext)?;
        Ok(WrapResponse::new(
            kek.clone(),
            Vec::new(),
            resp.ciphertext.into_bytes(),
        ))
    }

    async fn unwrap_once(
        &self,
        key: &TransitKey,
        kek: &KekLocator,
        ciphertext: &str,
        binding: &BindingContext,
    ) -> Result<UnwrapResponse, BackendError> {
        let client = self.session().await?;
        let mut opts = DecryptDataRequestBuilder::default();
        opts.context(Self::context(binding));
        let resp = match vaultrs::transit::data::decrypt(
            client.as_ref(),
            &key.mount,
            &key.name,
            ciphertext,
            Some(&mut opts),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                let e = map_err(e, Op::Decrypt, kek);
                return Err(self.classify(&client, e).await);
            }
        };
        let plaintext = Zeroizing::new(resp.plaintext);
        let bytes = Zeroizing::new(
            B64.decode(plaintext.as_bytes())
                .map_err(|_| BackendError::MalformedResponse { what: "plaintext" })?,
        );
        // A ciphertext of this key and context that holds no 32-byte key is not a wrap.
        let dek = DataKey::from_slice(&bytes).map_err(|_| BackendError::Rejected)?;
        Ok(UnwrapResponse::new(kek.clone(), dek))
    }
}

#[async_trait]
impl KeyBackend for VaultTransitBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    /// `{namespace}/{mount}/{name}@v{version}` with no slash at either end of a part and
    /// the version in decimal without leading zeros: `/transit/k@v01` and `transit/k@v1`
    /// are one key.
    fn key_identity(&self, kek: &KekLocator) -> Result<KeyIdentity, BackendError> {
        let key = Self::parse(kek)?;
        let ns = self
            .config
            .namespace
            .as_deref()
            .map(|n| n.trim_matches('/'))
            .filter(|n| !n.is_empty());
        Ok(KeyIdentity::new(match ns {
            Some(ns) => format!("{ns}/{}", key.locator().as_str()),
            None => key.locator().as_str().to_owned(),
        }))
    }

    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        Self::check_algorithm(req.kek, req.algorithm)?;
        let key = Self::parse(req.kek)?;
        self.config
            .call
            .run("wrap", || {
                self.wrap_once(&key, req.kek, req.dek, req.binding)
            })
            .await
    }

    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        Self::check_algorithm(req.kek, req.algorithm)?;
        let key = Self::parse(req.kek)?;
        let ciphertext = key.pinned(req.params, req.wrapped)?;
        self.config
            .call
            .run("unwrap", || {
                self.unwrap_once(&key, req.kek, ciphertext, req.binding)
            })
            .await
    }

    /// The canonical spelling (`/transit/k@v01` becomes `transit/k@v1`).
    async fn resolve_kek(&self, kek: &KekLocator) -> Result<KekLocator, BackendError> {
        Ok(Self::parse(kek)?.locator())
    }

    /// Transit's `rewrap` between two versions of one key: the ciphertext is decrypted
    /// and encrypted again under `req.to`'s version inside Vault, with the same
    /// derivation context (the binding). Other pairs are unsupported.
    async fn rewrap(&self, req: RewrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        Self::check_algorithm(req.to, req.from.algorithm)?;
        let (from, to) = (Self::parse(req.from.kek)?, Self::parse(req.to)?);
        if from.mount != to.mount || from.name != to.name {
            return Err(BackendError::Unsupported {
                operation: "rewrap across Transit keys",
            });
        }
        let ciphertext = from.pinned(req.from.params, req.from.wrapped)?;
        self.config
            .call
            .run("rewrap", || async {
                let client = self.session().await?;
                let mut opts = RewrapDataRequestBuilder::default();
                opts.context(Self::context(req.from.binding))
                    .key_version(to.version);
                let resp = match vaultrs::transit::data::rewrap(
                    client.as_ref(),
                    &to.mount,
                    &to.name,
                    ciphertext,
                    Some(&mut opts),
                )
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        let e = map_err(e, Op::Rewrap, req.from.kek);
                        return Err(self.classify(&client, e).await);
                    }
                };
                to.check_answer(req.to, &resp.ciphertext)?;
                Ok(WrapResponse::new(
                    req.to.clone(),
                    Vec::new(),
                    resp.ciphertext.into_bytes(),
                ))
            })
            .await
    }

    /// Raises the key's minimum decryption and encryption versions past this version
    /// when it is the oldest one still usable: Transit then refuses it too. Versions
    /// retire oldest first in a rotation; a version retired out of order leaves the
    /// floor where it is (the key ring refuses it regardless).
    async fn retire_kek(&self, kek: &KekLocator) -> Result<(), BackendError> {
        let key = Self::parse(kek)?;
        self.config
            .call
            .run("retire_kek", || async {
                let client = self.session().await?;
                let read = vaultrs::transit::key::read(client.as_ref(), &key.mount, &key.name)
                    .await
                    .map_err(|e| map_err(e, Op::Admin, kek))?;
                let latest = latest_version(&read.keys).unwrap_or(0);
                let floor = read.min_decryption_version.max(1);
                if floor != key.version || key.version >= latest {
                    return Ok(());
                }
                let mut opts = UpdateKeyConfigurationRequestBuilder::default();
                opts.min_decryption_version(key.version + 1)
                    .min_encryption_version(key.version + 1);
                vaultrs::transit::key::update(
                    client.as_ref(),
                    &key.mount,
                    &key.name,
                    Some(&mut opts),
                )
                .await
                .map_err(|e| map_err(e, Op::Admin, kek))
            })
            .await
    }

    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        let hint = KekLocator::new(spec.name_hint.clone());
        Self::check_algorithm(&hint, spec.algorithm)?;
        if let Some(current) = &spec.successor_of {
            let key = Self::parse(current)?;
            // Not retried: a rotate that timed out may have happened; a second would skip
            // a version. The version is read back after it.
            let rotated = self
                .config
                .call
                .clone()
                .no_retries()
                .run("rotate", || async {
                    let client = self.session().await?;
                    self.check_key(&client, &key, current).await?;
                    vaultrs::transit::key::rotate(client.as_ref(), &key.mount, &key.name)
                        .await
                        .map_err(|e| map_err(e, Op::Admin, current))?;
                    vaultrs::transit::key::read(client.as_ref(), &key.mount, &key.name)
                        .await
                        .map_err(|e| map_err(e, Op::Admin, current))
                })
                .await?;
            let latest = latest_version(&rotated.keys).ok_or(BackendError::MalformedResponse {
                what: "Transit key versions",
            })?;
            let next = TransitKey::new(&key.mount, &key.name, latest).map_err(|_| {
                BackendError::MalformedResponse {
                    what: "Transit key",
                }
            })?;
            return Ok(KekDescriptor::new(next.locator(), spec.algorithm));
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
        let key =
            TransitKey::new(&self.config.mount, &format!("{base}-{hex}"), 1).map_err(|_| {
                BackendError::InvalidRequest {
                    message: format!("cannot name a Transit key after {:?}", spec.name_hint),
                }
            })?;
        let kek = key.locator();
        self.config
            .call
            .run("create_kek", || async {
                let client = self.session().await?;
                let mut opts = CreateKeyRequestBuilder::default();
                opts.key_type(KeyType::Aes256Gcm96).derived(true);
                vaultrs::transit::key::create(
                    client.as_ref(),
                    &key.mount,
                    &key.name,
                    Some(&mut opts),
                )
                .await
                .map_err(|e| map_err(e, Op::Admin, &kek))
            })
            .await?;
        Ok(KekDescriptor::new(kek, spec.algorithm))
    }
}

/// The newest version of a symmetric key (the only kind kekring uses).
fn latest_version(keys: &vaultrs::api::transit::responses::ReadKeyData) -> Option<u64> {
    let vaultrs::api::transit::responses::ReadKeyData::Symmetric(m) = keys else {
        return None;
    };
    m.keys().filter_map(|k| k.parse::<u64>().ok()).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip_and_bad_ones_are_refused() {
        let k = TransitKey::parse(&KekLocator::new("transit/acme-docs@v3")).unwrap();
        assert_eq!(
            (k.mount.as_str(), k.name.as_str(), k.version),
            ("transit", "acme-docs", 3)
        );
        assert_eq!(k.locator().as_str(), "transit/acme-docs@v3");
        let nested = TransitKey::parse(&KekLocator::new("team/transit/k@v12")).unwrap();
        let long = TransitKey::parse(&KekLocator::new("transit/tenant-acme-payroll@v3")).unwrap();
        assert!(!format!("{long:?}").contains("tenant-acme"), "{long:?}");
        assert_eq!(nested.mount, "team/transit");
        for bad in [
            "transit/k",
            "k@v1",
            "transit/k@v0",
            "transit/k@vx",
            "/k@v1",
            "transit/@v1",
            "tr ansit/k@v1",
        ] {
            assert!(TransitKey::parse(&KekLocator::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_the_typed_errors_with_or_without_a_message() {
        let k = KekLocator::new("transit/k@v1");
        let m = |code, msg: &str, op| map_status(code, msg, op, &k);
        assert!(matches!(
            m(403, "", Op::Decrypt),
            BackendError::PermissionDenied { .. }
        ));
        assert!(matches!(
            m(403, "invalid token", Op::Decrypt),
            BackendError::Credentials { .. }
        ));
        assert!(matches!(
            m(401, "", Op::Encrypt),
            BackendError::Credentials { .. }
        ));
        assert!(matches!(
            m(429, "", Op::Encrypt),
            BackendError::Throttled { .. }
        ));
        assert!(m(503, "", Op::Encrypt).is_transient());
        assert!(m(412, "", Op::Decrypt).is_transient());
        assert!(matches!(m(400, "", Op::Decrypt), BackendError::Rejected));
        assert!(matches!(
            m(400, "", Op::Encrypt),
            BackendError::InvalidRequest { .. }
        ));
        assert!(matches!(
            m(
                400,
                "ciphertext or signature version is disallowed by policy (too old)",
                Op::Decrypt
            ),
            BackendError::KeyDisabled { .. }
        ));
        assert!(matches!(
            m(
                400,
                "requested version for encryption is less than the minimum encryption key version",
                Op::Rewrap
            ),
            BackendError::InvalidRequest { .. }
        ));
        assert!(matches!(
            m(400, "encryption key not found", Op::Encrypt),
            BackendError::KeyNotFound(_)
        ));
    }

    #[test]
    fn no_token_in_debug() {
        let auth = VaultAuth::Token(SecretString::from("s.super-secret-token".to_owned()));
        let cfg = VaultTransitConfig::new("http://127.0.0.1:8200", auth);
        let b = VaultTransitBackend::new(cfg).unwrap();
        assert!(!format!("{b:?}").contains("super-secret"));
        let approle = VaultAuth::AppRole {
            mount: "approle".into(),
            role_id: "role-id-1234".into(),
            secret_id: SecretString::from("secret-id-5678".to_owned()),
        };
        let shown = format!("{approle:?}");
        assert!(
            !shown.contains("5678") && !shown.contains("1234"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_token_file_is_trimmed_and_a_bad_one_is_a_credentials_error() {
        let dir = std::env::temp_dir().join(format!("kekring-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "  s.file-token-4711\n").unwrap();
        assert_eq!(
            read_token_file(&path).await.unwrap().as_str(),
            "s.file-token-4711"
        );
        let shown = format!("{:?}", VaultAuth::TokenFile(path.clone()));
        assert!(
            shown.contains("token") && !shown.contains("4711"),
            "{shown}"
        );

        std::fs::write(&path, " \n").unwrap();
        let empty = read_token_file(&path).await.unwrap_err();
        assert!(
            matches!(&empty, BackendError::Credentials { message } if message.contains("empty")),
            "{empty:?}"
        );
        let missing = read_token_file(&dir.join("absent")).await.unwrap_err();
        assert!(
            matches!(&missing, BackendError::Credentials { message } if message.contains("absent")),
            "{missing:?}"
        );
        assert!(!missing.is_transient() && !missing.try_next_copy());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_address_that_is_not_http_is_refused() {
        for bad in [
            "",
            "127.0.0.1:8200",
            "ftp://host",
            "http://",
            "http://user:hunter2@127.0.0.1:8200",
            "hunter2",
        ] {
            let cfg =
                VaultTransitConfig::new(bad, VaultAuth::Token(SecretString::from("t".to_owned())));
            let err = VaultTransitBackend::new(cfg).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
    }
}
