//! A small JSON-over-HTTP client for services kekring speaks to without an SDK (Vault /
//! OpenBao Transit), under the transport policy: the [`Endpoint`] checked, the trusted
//! roots from the [`TlsConfig`] only, no proxy from the environment, answers read into
//! zeroizing memory and bounded by [`MAX_ANSWER_LEN`], one timeout per attempt.

use std::time::Duration;

use zeroize::Zeroizing;

use super::classify::{CallError, ServiceFailure, retry_after};
use super::transport::{Endpoint, MAX_ANSWER_LEN, TlsConfig, too_large};
use crate::backend::BackendError;
use crate::error::ConfigError;

/// An answer: its status, the `Retry-After` it asked for, and its body (zeroized on
/// drop: a decrypt's answer holds a data key).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

impl Reply {
    /// Whether the status is 2xx.
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON of type `T`.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
    ) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|_| CallError::Malformed { what })
    }

    /// A refusal with this status and `message` (what the service said).
    pub(crate) fn failure(&self, message: impl Into<String>) -> ServiceFailure {
        ServiceFailure::new(Some(self.status), None, message).with_retry_after(self.retry_after)
    }
}

/// A client for one service endpoint.
#[derive(Clone, Debug)]
pub(crate) struct JsonClient {
    client: reqwest::Client,
    base: String,
}

impl JsonClient {
    /// A client for `endpoint`, trusting what `tls` says, each request bounded by
    /// `timeout` (connecting included; `connect` bounds connecting alone).
    pub(crate) fn new(
        endpoint: &Endpoint,
        tls: &TlsConfig,
        connect: Duration,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let refuse = |why: String| ConfigError::Backend { reason: why };
        let mut certs = Vec::new();
        for pem in tls.cas() {
            let bundle = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| refuse("a CA bundle does not parse as PEM certificates".into()))?;
            certs.extend(bundle);
        }
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(connect)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!endpoint.is_plain_http());
        b = if tls.trusts_platform() {
            b.tls_certs_merge(certs)
        } else {
            b.tls_certs_only(certs)
        };
        let client = b
            .build()
            .map_err(|e| refuse(format!("the HTTP client could not be built: {e}")))?;
        Ok(Self {
            client,
            base: endpoint.base().to_owned(),
        })
    }

    /// Sends `method path` with `headers` and a JSON `body`, and reads the answer (at
    /// most [`MAX_ANSWER_LEN`] bytes).
    ///
    /// # Errors
    /// [`CallError::Transport`] when no answer came, [`CallError::Malformed`] for an
    /// answer that is too large or breaks off.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, CallError> {
        let mut req = self.client.request(method, format!("{}/{path}", self.base));
        for (name, value) in headers {
            // What callers pass here is a token or a namespace: never indexed by HPACK,
            // never shown by a `Debug` of the request.
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                CallError::Backend(BackendError::invalid_request(
                    "a request header value is not valid",
                ))
            })?;
            value.set_sensitive(true);
            req = req.header(*name, value);
        }
        if let Some(body) = body {
            let bytes = Zeroizing::new(
                serde_json::to_vec(body).map_err(|_| CallError::Malformed { what: "request" })?,
            );
            req = req
                .header("content-type", "application/json")
                .body(bytes.to_vec());
        }
        let transport = |e: reqwest::Error| CallError::Transport {
            timeout: e.is_timeout(),
            source: Box::new(e),
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let wait = retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        if resp.content_length().is_some_and(too_large) {
            return Err(CallError::Malformed {
                what: "answer larger than 1 MiB",
            });
        }
        // Reserved up front where the length is known, so that the body (a decrypt's
        // answer holds a data key) is not copied into a larger buffer and left behind.
        let expected = resp
            .content_length()
            .map_or(0, |n| usize::try_from(n).unwrap_or(0));
        let mut body = Zeroizing::new(Vec::with_capacity(expected));
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_ANSWER_LEN {
                return Err(CallError::Malformed {
                    what: "answer larger than 1 MiB",
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            retry_after: wait,
            body,
        })
    }
}
