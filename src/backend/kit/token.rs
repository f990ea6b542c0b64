//! [`TokenCache`]: a bearer token shared by every call of a backend instance (a Vault
//! token, an OAuth access token for Cloud KMS or Key Vault), renewed or fetched again
//! before it expires, one refresh at a time.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use crate::backend::BackendError;

/// A bearer token and how long it lives. Its `Debug` prints neither the token nor its
/// length.
pub struct Token {
    secret: SecretString,
    lifetime: Option<Duration>,
    renewable: bool,
}

impl Token {
    /// A token that lives `lifetime` from now (`None`: it does not expire).
    pub fn new(secret: SecretString, lifetime: Option<Duration>) -> Self {
        Self {
            secret,
            lifetime,
            renewable: false,
        }
    }

    /// Whether the service can extend its life (Vault `renew-self`).
    #[must_use]
    pub fn renewable(mut self, renewable: bool) -> Self {
        self.renewable = renewable;
        self
    }

    /// The token, to put in a request header.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Whether the service can extend its life.
    pub fn is_renewable(&self) -> bool {
        self.renewable
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"[REDACTED]")
            .field("lifetime", &self.lifetime)
            .field("renewable", &self.renewable)
            .finish()
    }
}

/// A token as the cache handed it out: the token, when it was issued, and when it is
/// due for a refresh.
#[derive(Debug)]
pub struct Issued {
    token: Token,
    at: Instant,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
}

impl Issued {
    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// When the cache received it.
    pub fn issued_at(&self) -> Instant {
        self.at
    }

    /// Whether it has expired at `now` (a renewal is then no longer possible).
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

/// One bearer token for a backend instance. [`TokenCache::get`] hands out the current
/// token, refreshing it first when its time has come: after `refresh_fraction` of its
/// lifetime (two thirds by default) or when it was [invalidated](TokenCache::invalidate).
/// Concurrent calls wait for one refresh. The refresh is the caller's `fetch`: given the
/// current token (to renew, if it can) or nothing, it returns the next one. No
/// background task: an idle instance refreshes on its next call.
pub struct TokenCache {
    current: tokio::sync::Mutex<Option<Arc<Issued>>>,
    refresh_fraction: (u32, u32),
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("refresh_fraction", &self.refresh_fraction)
            .finish_non_exhaustive()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    /// An empty cache that refreshes after two thirds of a token's lifetime.
    pub fn new() -> Self {
        Self {
            current: tokio::sync::Mutex::new(None),
            refresh_fraction: (2, 3),
        }
    }

    /// Refreshes after `numerator / denominator` of a token's lifetime (clamped to
    /// `(0, 1]`).
    #[must_use]
    pub fn refresh_after(mut self, numerator: u32, denominator: u32) -> Self {
        let d = denominator.max(1);
        self.refresh_fraction = (numerator.clamp(1, d), d);
        self
    }

    /// The current token, refreshed first when due, and whether this call fetched it
    /// (a token fetched during the call that then is refused was refused for what it
    /// may do, not for having expired).
    ///
    /// # Errors
    /// `fetch`'s.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<(Arc<Issued>, bool), BackendError>
    where
        F: FnOnce(Option<Arc<Issued>>) -> Fut,
        Fut: Future<Output = Result<Token, BackendError>>,
    {
        let mut current = self.current.lock().await;
        let now = Instant::now();
        if let Some(issued) = current.as_ref()
            && issued.refresh_at.is_none_or(|t| now < t)
        {
            return Ok((issued.clone(), false));
        }
        let token = fetch(current.clone()).await?;
        let at = Instant::now();
        let (n, d) = self.refresh_fraction;
        let issued = Arc::new(Issued {
            refresh_at: token.lifetime.map(|l| at + l * n / d),
            expires_at: token.lifetime.map(|l| at + l),
            token,
            at,
        });
        *current = Some(issued.clone());
        Ok((issued, true))
    }

    /// Drops `issued` if it is still the current token (a sibling call may have
    /// replaced it already), so that the next [`TokenCache::get`] fetches another.
    pub async fn invalidate(&self, issued: &Arc<Issued>) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, issued)) {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn token(s: &str, lifetime: Option<Duration>) -> Token {
        Token::new(SecretString::from(s.to_owned()), lifetime)
    }

    #[tokio::test]
    async fn tokens_are_refreshed_when_due_and_after_invalidation_only() {
        let cache = TokenCache::new();
        let fetches = AtomicU32::new(0);
        let fetch = |life: Option<Duration>| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok(token(&format!("t{n}"), life)) }
        };
        let (a, fresh) = cache.get(|_| fetch(None)).await.unwrap();
        assert!(fresh);
        let (b, fresh) = cache.get(|_| fetch(None)).await.unwrap();
        assert!(!fresh && Arc::ptr_eq(&a, &b));
        cache.invalidate(&a).await;
        let (c, fresh) = cache.get(|_| fetch(None)).await.unwrap();
        assert!(fresh && c.token().expose() == "t1");
        // Invalidating a token that is no longer current changes nothing.
        cache.invalidate(&a).await;
        assert!(!cache.get(|_| fetch(None)).await.unwrap().1);

        // A short-lived token is refreshed after two thirds of its life, and the fetch
        // sees the token it replaces (to renew it).
        let cache = TokenCache::new();
        let life = Some(Duration::from_millis(150));
        cache.get(|_| fetch(life)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(110)).await;
        let seen = std::sync::Mutex::new(None);
        let (d, fresh) = cache
            .get(|old| {
                *seen.lock().unwrap() = old.map(|o| o.token().expose().to_owned());
                fetch(life)
            })
            .await
            .unwrap();
        assert!(fresh, "not refreshed after two thirds of its life");
        assert_eq!(seen.lock().unwrap().as_deref(), Some("t2"));
        assert!(!d.expired(Instant::now()));
        assert!(!format!("{d:?}").contains(d.token().expose()));
    }
}
