//! How the Transit backend authenticates and calls Vault: [`VaultAuth`], the logins it
//! makes, the token it keeps in the chassis's [`TokenCache`](crate::backend::kit::TokenCache),
//! and the requests made with it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::backend::BackendError;
use crate::backend::kit::http::Reply;
use crate::backend::kit::{CallError, Issued, Token};
use crate::error::{ConfigError, Error};

/// The largest token or JWT file read: 64 KiB (a Kubernetes service-account token is
/// about 1 KiB).
pub(super) const MAX_TOKEN_FILE_LEN: u64 = 64 * 1024;

/// Where a Kubernetes pod finds its projected service-account token.
pub const KUBERNETES_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

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
    /// The JWT auth method: a JSON Web Token read from `jwt_file` at every login (a
    /// workload identity token a platform projects and rotates), exchanged at `mount`
    /// (usually `jwt`) for a token of `role`. Vault checks the JWT's signature against
    /// the keys the mount is configured with.
    Jwt {
        /// The auth mount.
        mount: String,
        /// The role.
        role: String,
        /// The file holding the JWT.
        jwt_file: PathBuf,
    },
    /// The Kubernetes auth method: the pod's service-account token, read from
    /// `jwt_file` at every login (by default [`KUBERNETES_TOKEN_FILE`]), exchanged at
    /// `mount` (usually `kubernetes`) for a token of `role`. Vault has the token checked
    /// by the cluster's TokenReview API.
    Kubernetes {
        /// The auth mount.
        mount: String,
        /// The role.
        role: String,
        /// The file holding the service-account token.
        jwt_file: PathBuf,
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
            VaultAuth::Jwt {
                mount,
                role,
                jwt_file,
            } => write!(
                f,
                "VaultAuth::Jwt {{ mount: {mount:?}, role: {role:?}, jwt_file: {jwt_file:?} }}"
            ),
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_file,
            } => write!(
                f,
                "VaultAuth::Kubernetes {{ mount: {mount:?}, role: {role:?}, jwt_file: {jwt_file:?} }}"
            ),
        }
    }
}

/// What the environment says, for [`VaultAuth::from_vars`].
pub(super) type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

fn var(vars: Vars<'_>, name: &str) -> Option<String> {
    vars(name).filter(|v| !v.is_empty())
}

/// Whether `mount` is a plain mount path (`a`, `a/b`): it goes into request paths, so no
/// empty or dot segment, no query, fragment or other punctuation.
pub(super) fn plain_mount(mount: &str) -> bool {
    !mount.is_empty()
        && mount.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

impl VaultAuth {
    /// The auth mount a login goes to, checked ([`plain_mount`]).
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let mount = match self {
            VaultAuth::Token(_) | VaultAuth::TokenFile(_) => return Ok(()),
            VaultAuth::AppRole { mount, .. }
            | VaultAuth::Jwt { mount, .. }
            | VaultAuth::Kubernetes { mount, .. } => mount,
        };
        if plain_mount(mount) {
            Ok(())
        } else {
            Err(ConfigError::Backend {
                reason: "the Vault auth mount must be a plain path (letters, digits, `-`, `_`, \
                         `.` and `/` between segments)"
                    .into(),
            })
        }
    }

    /// From the environment, in this order: `VAULT_TOKEN`; `VAULT_ROLE_ID` and
    /// `VAULT_SECRET_ID` (AppRole at `VAULT_APPROLE_MOUNT`, default `approle`);
    /// `KEKRING_VAULT_K8S_ROLE` (the Kubernetes method at `KEKRING_VAULT_K8S_MOUNT`,
    /// default `kubernetes`, with the token at `KEKRING_VAULT_K8S_TOKEN_FILE`, default
    /// [`KUBERNETES_TOKEN_FILE`]); `KEKRING_VAULT_JWT_ROLE` and `KEKRING_VAULT_JWT_FILE`
    /// (the JWT method at `KEKRING_VAULT_JWT_MOUNT`, default `jwt`); or else the file
    /// `$HOME/.vault-token` where the Vault CLI's default token helper keeps the token of
    /// `vault login`, if it exists.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] when none is set.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    pub(super) fn from_vars(vars: Vars<'_>) -> Result<Self, Error> {
        if let Some(t) = var(vars, "VAULT_TOKEN") {
            return Ok(VaultAuth::Token(SecretString::from(t)));
        }
        if let (Some(role_id), Some(secret_id)) =
            (var(vars, "VAULT_ROLE_ID"), var(vars, "VAULT_SECRET_ID"))
        {
            return Ok(VaultAuth::AppRole {
                mount: var(vars, "VAULT_APPROLE_MOUNT").unwrap_or_else(|| "approle".into()),
                role_id,
                secret_id: SecretString::from(secret_id),
            });
        }
        if let Some(role) = var(vars, "KEKRING_VAULT_K8S_ROLE") {
            return Ok(VaultAuth::Kubernetes {
                mount: var(vars, "KEKRING_VAULT_K8S_MOUNT").unwrap_or_else(|| "kubernetes".into()),
                role,
                jwt_file: var(vars, "KEKRING_VAULT_K8S_TOKEN_FILE")
                    .unwrap_or_else(|| KUBERNETES_TOKEN_FILE.into())
                    .into(),
            });
        }
        if let (Some(role), Some(file)) = (
            var(vars, "KEKRING_VAULT_JWT_ROLE"),
            var(vars, "KEKRING_VAULT_JWT_FILE"),
        ) {
            return Ok(VaultAuth::Jwt {
                mount: var(vars, "KEKRING_VAULT_JWT_MOUNT").unwrap_or_else(|| "jwt".into()),
                role,
                jwt_file: file.into(),
            });
        }
        match var(vars, "HOME") {
            Some(home) => {
                let path = PathBuf::from(home).join(".vault-token");
                if path.is_file() {
                    Ok(VaultAuth::TokenFile(path))
                } else {
                    Err(no_credentials())
                }
            }
            None => Err(no_credentials()),
        }
    }

    /// Whether a token Vault no longer accepts can be replaced without the operator.
    pub(super) fn can_log_in_again(&self) -> bool {
        !matches!(self, VaultAuth::Token(_))
    }

    /// The auth mount and the body of a login, for the methods that log in.
    async fn login_request(&self) -> Result<Option<(String, serde_json::Value)>, BackendError> {
        Ok(Some(match self {
            VaultAuth::Token(_) | VaultAuth::TokenFile(_) => return Ok(None),
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => (
                mount.clone(),
                serde_json::json!({"role_id": role_id, "secret_id": secret_id.expose_secret()}),
            ),
            VaultAuth::Jwt {
                mount,
                role,
                jwt_file,
            }
            | VaultAuth::Kubernetes {
                mount,
                role,
                jwt_file,
            } => {
                let jwt = read_secret_file(jwt_file, "JWT").await?;
                (
                    mount.clone(),
                    serde_json::json!({"role": role, "jwt": jwt.as_str()}),
                )
            }
        }))
    }
}

fn no_credentials() -> Error {
    ConfigError::Backend {
        reason: "set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID, or \
                 KEKRING_VAULT_K8S_ROLE, or KEKRING_VAULT_JWT_ROLE and KEKRING_VAULT_JWT_FILE, \
                 or log in with the Vault CLI (~/.vault-token)"
            .into(),
    }
    .into()
}

/// Reads a token or JWT file (at most [`MAX_TOKEN_FILE_LEN`]): its content without
/// surrounding whitespace. A file that cannot be read, is larger or is empty is
/// [`BackendError::Credentials`], naming the file (the path is not secret; the content
/// never appears).
pub(super) async fn read_secret_file(
    path: &Path,
    what: &str,
) -> Result<Zeroizing<String>, BackendError> {
    let refuse = |why: String| {
        BackendError::credentials(format!("Vault {what} file {}: {why}", path.display()))
    };
    // Bounded by what is read, not by the size the file system reports (a device or a
    // FIFO reports 0 and may not end).
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| refuse(e.kind().to_string()))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_TOKEN_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| refuse(e.kind().to_string()))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_TOKEN_FILE_LEN) {
        return Err(refuse("larger than 64 KiB".into()));
    }
    let text = Zeroizing::new(
        String::from_utf8(std::mem::take(&mut *bytes)).map_err(|_| refuse("not UTF-8".into()))?,
    );
    let token = Zeroizing::new(text.trim().to_owned());
    if token.is_empty() {
        return Err(refuse("empty".into()));
    }
    Ok(token)
}

/// Vault's `auth` block of a login or renewal.
#[derive(Deserialize)]
struct AuthData {
    client_token: String,
    lease_duration: u64,
    renewable: bool,
}

#[derive(Deserialize)]
struct AuthReply {
    auth: AuthData,
}

/// `lookup-self`'s data.
#[derive(Deserialize)]
struct LookupData {
    ttl: u64,
    #[serde(default)]
    renewable: Option<bool>,
}

#[derive(Deserialize)]
struct LookupReply {
    data: LookupData,
}

fn lifetime(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

impl super::VaultTransit {
    /// One request, with `token` when given, the namespace when configured.
    pub(super) async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, CallError> {
        let mut headers = Vec::with_capacity(2);
        if let Some(t) = token {
            headers.push(("x-vault-token", t));
        }
        if let Some(ns) = &self.config.namespace {
            headers.push(("x-vault-namespace", ns.as_str()));
        }
        self.http
            .send(method, &format!("v1/{path}"), &headers, body)
            .await
    }

    /// One request with a live token. A 403 whose token Vault no longer accepts drops the
    /// token: under a method that can log in again the call is retried (a transient
    /// error), with a plain token it is a credentials error; a token obtained during this
    /// very call that is refused is refused for what it may do (a permission error).
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, CallError> {
        let (issued, fresh) = self.tokens.get(|current| self.next_token(current)).await?;
        let reply = self
            .raw(method, path, Some(issued.token().expose()), body)
            .await?;
        if reply.ok() {
            return Ok(reply);
        }
        let failure = reply.failure(errors(&reply));
        if reply.status == 403 && !fresh && self.token_refused(issued.token().expose()).await {
            self.tokens.invalidate(&issued).await;
            let message = format!("{} (the token is no longer valid)", failure.message);
            return Err(CallError::Backend(if self.config.auth.can_log_in_again() {
                BackendError::unavailable(message)
            } else {
                BackendError::credentials(message)
            }));
        }
        Err(CallError::Service(failure))
    }

    /// The next token: the current one renewed when it is renewable and alive, else a
    /// new one (a login, the token file read again, or the configured token looked up).
    pub(super) async fn next_token(
        &self,
        current: Option<std::sync::Arc<Issued>>,
    ) -> Result<Token, BackendError> {
        if let Some(c) = current
            && c.token().is_renewable()
            && !c.expired(std::time::Instant::now())
            && let Ok(reply) = self
                .raw(
                    reqwest::Method::POST,
                    "auth/token/renew-self",
                    Some(c.token().expose()),
                    None,
                )
                .await
            && reply.ok()
            && let Ok(r) = reply.json::<AuthReply>("renewal")
            && r.auth.lease_duration > 0
        {
            return Ok(Token::new(
                SecretString::from(r.auth.client_token),
                lifetime(r.auth.lease_duration),
            )
            .renewable(r.auth.renewable));
        }
        let token = match &self.config.auth {
            VaultAuth::Token(t) => Zeroizing::new(t.expose_secret().to_owned()),
            VaultAuth::TokenFile(path) => read_secret_file(path, "token").await?,
            auth => {
                let Some((mount, body)) = auth.login_request().await? else {
                    return Err(BackendError::credentials("no login for this auth method"));
                };
                let path = format!("auth/{}/login", mount.trim_matches('/'));
                let reply = self
                    .raw(reqwest::Method::POST, &path, None, Some(&body))
                    .await
                    .map_err(login_failure)?;
                if !reply.ok() {
                    return Err(login_refused(&reply, &mount));
                }
                let r: AuthReply = reply.json("login").map_err(login_failure)?;
                return Ok(Token::new(
                    SecretString::from(r.auth.client_token),
                    lifetime(r.auth.lease_duration),
                )
                .renewable(r.auth.renewable));
            }
        };
        // A token given as such: looked up for its remaining life.
        let reply = self
            .raw(
                reqwest::Method::GET,
                "auth/token/lookup-self",
                Some(&token),
                None,
            )
            .await
            .map_err(login_failure)?;
        if !reply.ok() {
            return Err(login_refused(&reply, "token"));
        }
        let me: LookupReply = reply.json("lookup-self").map_err(login_failure)?;
        Ok(
            Token::new(SecretString::from(token.to_string()), lifetime(me.data.ttl))
                .renewable(me.data.renewable.unwrap_or(false)),
        )
    }

    /// Whether Vault still accepts `token` (a `lookup-self` that answers 403 says no; a
    /// call that could not be made says nothing, so it keeps the token).
    pub(super) async fn token_refused(&self, token: &str) -> bool {
        matches!(
            self.raw(reqwest::Method::GET, "auth/token/lookup-self", Some(token), None).await,
            Ok(reply) if reply.status == 403
        )
    }
}

/// A login that got no answer: transient as any call's.
fn login_failure(e: CallError) -> BackendError {
    match e {
        CallError::Transport { source, .. } => BackendError::Unavailable {
            message: "Vault could not be reached to log in".into(),
            source: Some(source),
        },
        CallError::Malformed { what } => BackendError::MalformedResponse { what },
        CallError::Backend(b) => b,
        _ => BackendError::unavailable("the Vault login failed"),
    }
}

/// A login Vault answered with a refusal: its credentials are wrong (4xx), or Vault is
/// failing (5xx, 429).
fn login_refused(reply: &Reply, method: &str) -> BackendError {
    let errors = errors(reply);
    match reply.status {
        429 => BackendError::Throttled {
            message: errors,
            retry_after: reply.retry_after,
            source: None,
        },
        500..=599 | 412 => {
            BackendError::unavailable(format!("Vault answered {}: {errors}", reply.status))
        }
        _ => BackendError::credentials(format!("Vault refused the {method} login: {errors}")),
    }
}

/// Vault's error answer: `{"errors": [...]}`, joined (never a body that could hold key
/// material: only that list is read).
pub(super) fn errors(reply: &Reply) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    serde_json::from_slice::<Errors>(&reply.body)
        .map(|e| e.errors.join("; "))
        .unwrap_or_default()
}
