//! What an operator does to the test OpenBao out of band (create and rotate keys, raise
//! a key's floor, make and revoke tokens, configure auth methods), over its HTTP API.

use serde_json::{Value, json};

/// The test server's address and root token (from `scripts/servers.py`).
pub fn admin() -> Admin {
    Admin {
        addr: super::env("KEKRING_TEST_VAULT_ADDR"),
        token: super::env("KEKRING_TEST_VAULT_TOKEN"),
        http: reqwest::Client::new(),
    }
}

/// An operator's client.
pub struct Admin {
    addr: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    /// `method /v1/path` with a JSON body; the JSON answer (`{}` for none). Panics on an
    /// error status: the operator's steps must work.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/v1/{path}", self.addr))
            .header("x-vault-token", &self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// A derived aes256-gcm96 Transit key.
    pub async fn create_key(&self, mount: &str, name: &str) {
        self.post(
            &format!("{mount}/keys/{name}"),
            json!({"type": "aes256-gcm96", "derived": true}),
        )
        .await;
    }

    pub async fn rotate(&self, mount: &str, name: &str) {
        self.post(&format!("{mount}/keys/{name}/rotate"), json!({}))
            .await;
    }

    /// Sets a key's minimum decryption and encryption versions.
    pub async fn floor(&self, mount: &str, name: &str, version: u64) {
        self.post(
            &format!("{mount}/keys/{name}/config"),
            json!({"min_decryption_version": version, "min_encryption_version": version}),
        )
        .await;
    }

    /// A key's configuration (`data` of `GET keys/{name}`).
    pub async fn key(&self, mount: &str, name: &str) -> Value {
        self.get(&format!("{mount}/keys/{name}")).await["data"].clone()
    }

    /// A token with `policies`, `ttl` to live.
    pub async fn token(&self, policies: &[&str], ttl: &str, renewable: bool) -> String {
        let out = self
            .post(
                "auth/token/create",
                json!({
                    "policies": policies,
                    "ttl": ttl,
                    "explicit_max_ttl": "10m",
                    "renewable": renewable,
                }),
            )
            .await;
        out["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    pub async fn revoke(&self, token: &str) {
        self.post("auth/token/revoke", json!({"token": token}))
            .await;
    }
}
