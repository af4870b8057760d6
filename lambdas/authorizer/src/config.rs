//! Configuration, read from environment variables once at start (see the root README,
//! "Authorizer configuration").

use std::time::Duration;

/// One trusted token issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// Exact value the token's `iss` claim must have.
    pub issuer: String,
    /// Where the issuer's keys are published: a JWKS (`{"keys":[…]}`) or a Google/Firebase x509
    /// certificate map (`{"kid":"-----BEGIN CERTIFICATE-----…"}`); the format is detected.
    pub jwks_uri: String,
    /// Accepted audiences (`aud`, or `client_id` when `aud` is absent). Empty = any audience.
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub issuers: Vec<IssuerConfig>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Claim whose value becomes the `principalId` (default `sub`).
    pub principal_claim: String,
    /// Claims copied into the authorizer context (strings, numbers, booleans).
    pub context_claims: Vec<String>,
    /// Shared secret enabling HS256; HS256 tokens are refused when `None`.
    pub hs256_secret: Option<String>,
    /// Upper bound on one key-set fetch (connect + response).
    pub jwks_timeout: Duration,
    /// Minimum time between two fetches triggered by an unknown `kid`.
    pub refetch_interval: Duration,
    /// Upper bound on how long a fetched key set is trusted without re-fetching, whatever the
    /// endpoint's `Cache-Control: max-age` says; also the lifetime when it sends none.
    pub max_cache_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Err(ConfigError::Invalid {
            name: "JWT_ISSUER",
            reason: "not implemented yet".to_string(),
        })
    }
}
