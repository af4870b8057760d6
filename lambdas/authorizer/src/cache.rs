//! One issuer's key set, cached across invocations.
//!
//! - A fetched set is used for `min(Cache-Control max-age, max_cache_age)` (or `max_cache_age`
//!   when the endpoint sends no max-age); then the next request tries to refresh it.
//! - An unknown `kid` triggers a refresh too (the issuer may have rotated its keys).
//! - Every fetch attempt, for whatever reason, is at most one per `refetch_interval`, so tokens
//!   with made-up `kid`s cannot turn the authorizer into a flood against the issuer.
//! - A failed refresh keeps the previous keys: an unreachable issuer does not lock users out.
//! - Each fetch is bounded by `jwks_timeout` (connect, headers and body).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::CACHE_CONTROL;
use tokio::sync::Mutex;

use crate::keys::{parse_key_document, KeySet, VerificationKey};

/// Key documents larger than this are refused (real ones are a few KB).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    pub refetch_interval: Duration,
    pub max_cache_age: Duration,
}

pub struct KeyCache {
    uri: String,
    policy: CachePolicy,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    keys: Option<Arc<KeySet>>,
    fresh_until: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// The answer to "which keys may verify this token?".
pub enum KeyLookup {
    Found(Vec<Arc<VerificationKey>>),
    /// Keys are known, but none has this `kid` (and a refresh is not due or did not help).
    UnknownKid,
    /// No key set could ever be obtained: endpoint down, too slow or broken, nothing cached.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("endpoint answered HTTP {0}")]
    Status(u16),
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Document(#[from] crate::keys::KeyDocumentError),
}

impl KeyCache {
    pub fn new(uri: String, policy: CachePolicy) -> KeyCache {
        KeyCache {
            uri,
            policy,
            state: Mutex::new(CacheState::default()),
        }
    }

    pub async fn lookup(&self, client: &reqwest::Client, kid: Option<&str>) -> KeyLookup {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let fresh = state.fresh_until.is_some_and(|until| now < until);
        if fresh {
            if let Some(keys) = &state.keys {
                let candidates = keys.candidates(kid);
                if !candidates.is_empty() {
                    return KeyLookup::Found(candidates);
                }
            }
        }
        let may_fetch = state
            .last_attempt
            .is_none_or(|last| now.duration_since(last) >= self.policy.refetch_interval);
        if may_fetch {
            state.last_attempt = Some(now);
            match self.fetch(client).await {
                Ok((keys, max_age)) => {
                    let lifetime = max_age
                        .unwrap_or(self.policy.max_cache_age)
                        .min(self.policy.max_cache_age);
                    tracing::info!(uri = %self.uri, keys = keys.len(), lifetime_s = lifetime.as_secs(), "fetched keys");
                    state.keys = Some(Arc::new(keys));
                    state.fresh_until = Some(now + lifetime);
                }
                Err(error) => {
                    tracing::warn!(uri = %self.uri, %error, cached = state.keys.is_some(), "key fetch failed")
                }
            }
        }
        match &state.keys {
            None => KeyLookup::Unavailable,
            Some(keys) => {
                let candidates = keys.candidates(kid);
                if candidates.is_empty() {
                    KeyLookup::UnknownKid
                } else {
                    KeyLookup::Found(candidates)
                }
            }
        }
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
    ) -> Result<(KeySet, Option<Duration>), FetchError> {
        let mut response = client.get(&self.uri).send().await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((parse_key_document(&body)?, max_age))
    }
}

/// The lifetime a `Cache-Control` header grants: `max-age=N`, or zero for `no-cache`/`no-store`.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut granted = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            granted = seconds
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=19845, must-revalidate, no-transform"),
            Some(Duration::from_secs(19845))
        );
        assert_eq!(max_age("Max-Age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("max-age=60, no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
