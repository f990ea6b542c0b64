//! One error classifier for every remote backend: what a service call failed with
//! ([`CallError`]) becomes the typed [`BackendError`] the envelope, the retry loop and
//! the caller act on, by the service's own error table
//! ([`Service::classify`](super::Service::classify)) first and the HTTP status second.
//! The source error is kept (never turned into a string), and nothing is invented: a
//! timeout carries the time the attempt took, measured here.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::backend::{BackendError, KekLocator};
use crate::format::WrapAlgorithm;

/// An error kept as the source of a [`BackendError`].
pub type Source = Box<dyn StdError + Send + Sync>;

/// A refusal the service answered: its HTTP status, its own error code, its message,
/// how long it asks the caller to wait, and the client library's error.
///
/// Only what the service said about the failure belongs here, never a response body that
/// could hold key material (a decrypt's answer).
#[derive(Debug)]
#[non_exhaustive]
pub struct ServiceFailure {
    /// The HTTP status, when the service answered over HTTP.
    pub status: Option<u16>,
    /// The service's error code (`NotFoundException`, `INVALID_ARGUMENT`, `CKR_PIN_INCORRECT`).
    pub code: Option<String>,
    /// The service's message (no secret: services do not echo key material).
    pub message: String,
    /// How long the service asked to wait before a retry (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The client library's error, kept as the source.
    pub source: Option<Source>,
}

impl ServiceFailure {
    /// A refusal with an HTTP status (or none), a service error code (or none) and a
    /// message.
    pub fn new(status: Option<u16>, code: Option<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// With the client library's error as the source.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// With the wait the service asked for.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// `code: message`, or whichever of them there is, or the status.
    fn text(&self) -> String {
        match (&self.code, self.message.is_empty()) {
            (Some(code), false) => format!("{code}: {}", self.message),
            (Some(code), true) => code.clone(),
            (None, false) => self.message.clone(),
            (None, true) => match self.status {
                Some(s) => format!("the service answered {s}"),
                None => "the service refused the call".to_owned(),
            },
        }
    }
}

/// Why one call to a service failed, as a [`Service`](super::Service) reports it.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The service answered with a refusal; its error table and status classify it.
    Service(ServiceFailure),
    /// No answer came: the connection was refused, reset or timed out (`timeout`), DNS
    /// or TLS failed. Transient.
    Transport {
        /// Whether the client gave up waiting.
        timeout: bool,
        /// What failed.
        source: Source,
    },
    /// Credentials could not be obtained (the credential chain found none, an identity
    /// provider refused), before any request reached the service.
    Credentials {
        /// Why (no secret).
        message: String,
        /// The credential provider's error.
        source: Option<Source>,
    },
    /// The answer could not be read.
    Malformed {
        /// What was malformed.
        what: &'static str,
    },
    /// The answer failed an integrity field (Cloud KMS CRC32C): corrupted on the way.
    /// Transient: the call is repeated.
    Corrupted {
        /// Which field.
        what: &'static str,
    },
    /// Already decided (the service checked something itself).
    Backend(BackendError),
}

impl CallError {
    /// An answer that could not be read.
    pub fn malformed(what: &'static str) -> Self {
        CallError::Malformed { what }
    }
}

/// What an answer must hold: a field it lacks makes it a malformed answer.
pub trait Required<T> {
    /// The value, or [`CallError::Malformed`] naming `what`.
    ///
    /// # Errors
    /// [`CallError::Malformed`] when there is none.
    fn required(self, what: &'static str) -> Result<T, CallError>;
}

impl<T> Required<T> for Option<T> {
    fn required(self, what: &'static str) -> Result<T, CallError> {
        self.ok_or(CallError::Malformed { what })
    }
}

impl From<BackendError> for CallError {
    fn from(e: BackendError) -> Self {
        CallError::Backend(e)
    }
}

impl From<ServiceFailure> for CallError {
    fn from(f: ServiceFailure) -> Self {
        CallError::Service(f)
    }
}

/// What a service's refusal means, as its error table says: the [`BackendError`] it
/// becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The key does not exist.
    KeyNotFound,
    /// The key is disabled, pending deletion, destroyed or otherwise unusable.
    KeyDisabled,
    /// The wrapped key or ciphertext was refused (tampered, another context, another
    /// key).
    Rejected,
    /// The credentials may not do this.
    PermissionDenied,
    /// The credentials are missing, unknown, invalid or expired.
    Credentials,
    /// Too many requests.
    Throttled,
    /// The service failed or is unavailable (transient).
    Unavailable,
    /// The service gave up waiting (transient).
    Timeout,
    /// The request was refused as invalid: configuration or a bug.
    InvalidRequest,
    /// The key is not of the kind or usage asked for.
    UnsupportedAlgorithm,
}

impl ErrorClass {
    /// What an HTTP status alone says, when the service's table has nothing more
    /// precise: 401 credentials, 403 permission, 404 not found, 408 timeout, 429
    /// throttled, 5xx unavailable, any other 4xx an invalid request.
    pub fn of_status(status: u16) -> Option<Self> {
        Some(match status {
            401 => ErrorClass::Credentials,
            403 => ErrorClass::PermissionDenied,
            404 => ErrorClass::KeyNotFound,
            408 => ErrorClass::Timeout,
            429 => ErrorClass::Throttled,
            500..=599 => ErrorClass::Unavailable,
            400..=499 => ErrorClass::InvalidRequest,
            _ => return None,
        })
    }
}

/// Which service operation a call was, for the error table and the errors it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Looking a key up (its identity, algorithm and state).
    Describe,
    /// Encrypting a data key with the binding (construction 1).
    Encrypt,
    /// Decrypting it.
    Decrypt,
    /// Wrapping an intermediate key (construction 2).
    WrapKey,
    /// Unwrapping it.
    UnwrapKey,
    /// Fetching a public key (construction 3).
    PublicKey,
    /// Encapsulating in the service.
    Encapsulate,
    /// Decapsulating in the service.
    Decapsulate,
    /// Re-wrapping inside the service.
    Rewrap,
    /// Creating a key or a successor version.
    Create,
    /// Retiring a key in the service.
    Retire,
    /// Destroying a key.
    Destroy,
    /// Authenticating (a login, a token exchange).
    Login,
}

impl Operation {
    /// A short name, as traces and errors show it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Describe => "describe",
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::WrapKey => "wrap-key",
            Operation::UnwrapKey => "unwrap-key",
            Operation::PublicKey => "public-key",
            Operation::Encapsulate => "encapsulate",
            Operation::Decapsulate => "decapsulate",
            Operation::Rewrap => "rewrap",
            Operation::Create => "create",
            Operation::Retire => "retire",
            Operation::Destroy => "destroy",
            Operation::Login => "login",
        }
    }

    /// Whether the operation opens something stored: a refusal then means the stored
    /// bytes are not a wrap under this key ([`ErrorClass::Rejected`]), not a bad
    /// request.
    pub fn opens(self) -> bool {
        matches!(
            self,
            Operation::Decrypt | Operation::UnwrapKey | Operation::Decapsulate | Operation::Rewrap
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a call was about, for the errors it makes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    pub(crate) kek: &'a KekLocator,
    pub(crate) operation: Operation,
    /// The backend operation this call serves (`wrap`, `unwrap`...), for timeouts.
    pub(crate) serves: &'static str,
    pub(crate) algorithm: WrapAlgorithm,
}

/// Classifies `err` by `table` (the service's error table) and the HTTP status.
/// `elapsed` is how long the attempt took (a timeout reports it).
pub(crate) fn classify(
    err: CallError,
    table: impl Fn(&ServiceFailure, Operation) -> Option<ErrorClass>,
    call: Call<'_>,
    elapsed: Duration,
) -> BackendError {
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match err {
        CallError::Backend(e) => e,
        CallError::Malformed { what } => BackendError::MalformedResponse { what },
        CallError::Corrupted { what } => BackendError::Unavailable {
            message: format!("the answer failed its integrity check ({what})"),
            source: None,
        },
        CallError::Credentials { message, source } => BackendError::Credentials { message, source },
        CallError::Transport { timeout: true, .. } => BackendError::Timeout {
            operation: call.serves,
            elapsed_ms,
        },
        CallError::Transport { source, .. } => BackendError::Unavailable {
            message: format!("{} could not reach the service", call.operation),
            source: Some(source),
        },
        CallError::Service(f) => {
            let class = table(&f, call.operation)
                .or_else(|| f.status.and_then(ErrorClass::of_status))
                .unwrap_or(ErrorClass::Unavailable);
            let class = match class {
                // A stored wrap the service refuses as a bad request is not a wrap
                // under this key.
                ErrorClass::InvalidRequest if call.operation.opens() && f.status == Some(400) => {
                    ErrorClass::Rejected
                }
                other => other,
            };
            from_class(class, f, call, elapsed_ms)
        }
    }
}

fn from_class(
    class: ErrorClass,
    f: ServiceFailure,
    call: Call<'_>,
    elapsed_ms: u64,
) -> BackendError {
    let message = f.text();
    let kek = call.kek.clone();
    match class {
        ErrorClass::KeyNotFound => BackendError::KeyNotFound(kek),
        ErrorClass::KeyDisabled => BackendError::KeyDisabled {
            kek,
            state: message,
        },
        ErrorClass::Rejected => BackendError::Rejected,
        ErrorClass::PermissionDenied => BackendError::PermissionDenied {
            kek,
            message,
            source: f.source,
        },
        ErrorClass::Credentials => BackendError::Credentials {
            message,
            source: f.source,
        },
        ErrorClass::Throttled => BackendError::Throttled {
            message,
            retry_after: f.retry_after,
            source: f.source,
        },
        ErrorClass::Unavailable => BackendError::Unavailable {
            message,
            source: f.source,
        },
        ErrorClass::Timeout => BackendError::Timeout {
            operation: call.serves,
            elapsed_ms,
        },
        ErrorClass::InvalidRequest => BackendError::InvalidRequest {
            message,
            source: f.source,
        },
        ErrorClass::UnsupportedAlgorithm => BackendError::UnsupportedAlgorithm {
            kek,
            algorithm: call.algorithm,
        },
    }
}

/// Whether `err` or any error below it is an `E`: how a backend classifies a client
/// library's error by kind (a credentials provider's error, a timeout) instead of by
/// searching its text.
pub fn caused_by<E: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The wait an HTTP `Retry-After` header asks for, in its delta-seconds form (the
/// HTTP-date form is not used by the services kekring calls and is ignored).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: Operation) -> Call<'static> {
        static KEK: std::sync::OnceLock<KekLocator> = std::sync::OnceLock::new();
        Call {
            kek: KEK.get_or_init(|| KekLocator::new("k")),
            operation: op,
            serves: "unwrap",
            algorithm: WrapAlgorithm::Aes256Opaque,
        }
    }

    fn no_table(_: &ServiceFailure, _: Operation) -> Option<ErrorClass> {
        None
    }

    #[derive(Debug)]
    struct Lib;
    impl fmt::Display for Lib {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the library's error")
        }
    }
    impl StdError for Lib {}

    #[test]
    fn statuses_classify_when_the_table_is_silent_and_sources_are_kept() {
        let failure = |status| {
            CallError::Service(ServiceFailure::new(Some(status), None, "").with_source(Lib))
        };
        let e = classify(
            failure(403),
            no_table,
            call(Operation::Encrypt),
            Duration::ZERO,
        );
        assert!(matches!(e, BackendError::PermissionDenied { .. }), "{e:?}");
        assert!(
            StdError::source(&e).is_some_and(|s| s.to_string() == "the library's error"),
            "the source is kept"
        );
        for (status, kind) in [
            (401, "credentials"),
            (404, "key-not-found"),
            (429, "throttled"),
            (503, "unavailable"),
            (409, "invalid-request"),
        ] {
            let e = classify(
                failure(status),
                no_table,
                call(Operation::Encrypt),
                Duration::ZERO,
            );
            assert_eq!(e.kind(), kind, "{status}");
        }
        // A 400 to an operation that opens stored bytes is a rejected wrap.
        let e = classify(
            failure(400),
            no_table,
            call(Operation::Decrypt),
            Duration::ZERO,
        );
        assert!(matches!(e, BackendError::Rejected));
        let e = classify(
            failure(400),
            no_table,
            call(Operation::Encrypt),
            Duration::ZERO,
        );
        assert!(matches!(e, BackendError::InvalidRequest { .. }));
    }

    #[test]
    fn the_table_wins_and_timeouts_report_the_time_measured() {
        let table = |f: &ServiceFailure, _: Operation| {
            (f.code.as_deref() == Some("DisabledException")).then_some(ErrorClass::KeyDisabled)
        };
        let f = ServiceFailure::new(Some(400), Some("DisabledException".into()), "off");
        let e = classify(
            CallError::Service(f),
            table,
            call(Operation::Encrypt),
            Duration::ZERO,
        );
        assert!(
            matches!(&e, BackendError::KeyDisabled { state, .. } if state == "DisabledException: off")
        );
        let t = CallError::Transport {
            timeout: true,
            source: Box::new(Lib),
        };
        let e = classify(
            t,
            no_table,
            call(Operation::Decrypt),
            Duration::from_millis(1500),
        );
        assert!(matches!(
            e,
            BackendError::Timeout {
                operation: "unwrap",
                elapsed_ms: 1500
            }
        ));
        let throttled = ServiceFailure::new(Some(429), None, "slow down")
            .with_retry_after(retry_after(Some("2")));
        let e = classify(
            CallError::Service(throttled),
            no_table,
            call(Operation::Encrypt),
            Duration::ZERO,
        );
        assert!(matches!(
            e,
            BackendError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(2)
        ));
        assert!(
            classify(
                CallError::Corrupted { what: "crc32c" },
                no_table,
                call(Operation::Decrypt),
                Duration::ZERO
            )
            .is_transient()
        );
    }

    #[test]
    fn causes_are_found_by_kind() {
        #[derive(Debug)]
        struct Outer(Lib);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        assert!(caused_by::<Lib>(&Outer(Lib)));
        assert!(!caused_by::<std::io::Error>(&Outer(Lib)));
    }
}
