//! Configuration, read from environment variables once at start (the table is in
//! docs/authorizer.md). [`Config::from_lookup`] takes any variable source, so
//! tests never touch the process environment.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use sumu_wire::channels::{context as grants_context, DEFAULT_GRANTS_CLAIM};

use crate::grants::{check_templates, StaticGrants};

/// One trusted token issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact value the token's `iss` claim must have.
    pub issuer: String,
    /// Where the issuer's keys are published: a JWKS (`{"keys":[…]}`) or a Google/Firebase x509
    /// certificate map (`{"kid":"-----BEGIN CERTIFICATE-----…"}`); the format is detected from
    /// the document. Empty: the issuer publishes no keys (only HS256 with the shared secret).
    #[serde(default)]
    pub jwks_uri: String,
    /// Accepted audiences (`aud`, or `client_id` when `aud` is absent). Empty = any audience.
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub issuers: Vec<IssuerConfig>,
    /// Signature algorithms accepted in the token header (never `none`; HS256 only with a secret).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Claim whose value becomes the `principalId` (default `sub`).
    pub principal_claim: String,
    /// Claims copied into the authorizer context (strings, numbers and booleans as they are,
    /// arrays and objects as their JSON text, null or absent skipped).
    pub context_claims: Vec<String>,
    /// Shared secret enabling HS256; HS256 tokens are refused when `None`.
    pub hs256_secret: Option<String>,
    /// Upper bound on one key-set fetch (connect, request and response body).
    pub jwks_timeout: Duration,
    /// Minimum time between two fetch attempts of one issuer's keys (unknown `kid`, expired
    /// cache, or retry after a failure), so a flood of bad tokens cannot hammer the issuer.
    pub refetch_interval: Duration,
    /// Upper bound on how long a fetched key set is used without trying to refresh it, whatever
    /// the endpoint's `Cache-Control: max-age` says; also the lifetime when it sends none.
    pub max_cache_age: Duration,
    /// Claim holding the token's channel grants (default `channels`):
    /// `{"subscribe":[patterns],"publish":[patterns]}`.
    pub grants_claim: String,
    /// Channel grants of every connection, `{sub}` standing for its principal.
    pub static_grants: StaticGrants,
}

/// The algorithms accepted when `JWT_ALGORITHMS` is not set: every asymmetric one.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Config {
    /// A configuration for the given issuers with every other setting at its default.
    pub fn new(issuers: Vec<IssuerConfig>) -> Config {
        Config {
            issuers,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(30),
            principal_claim: "sub".to_string(),
            context_claims: Vec::new(),
            hs256_secret: None,
            jwks_timeout: Duration::from_millis(2000),
            refetch_interval: Duration::from_secs(30),
            max_cache_age: Duration::from_secs(3600),
            grants_claim: DEFAULT_GRANTS_CLAIM.to_string(),
            static_grants: StaticGrants::default(),
        }
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from `lookup(variable name)`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let issuers = match (var("JWT_ISSUERS"), var("JWT_ISSUER")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "JWT_ISSUERS",
                    "set either JWT_ISSUERS or JWT_ISSUER, not both",
                ))
            }
            (Some(json), None) => serde_json::from_str::<Vec<IssuerConfig>>(&json)
                .map_err(|error| invalid("JWT_ISSUERS", error))?,
            (None, Some(issuer)) => vec![IssuerConfig {
                issuer: issuer.trim().to_string(),
                jwks_uri: var("JWT_JWKS_URI").unwrap_or_default().trim().to_string(),
                audiences: var("JWT_AUDIENCES")
                    .map(|list| comma_list(&list))
                    .unwrap_or_default(),
            }],
            (None, None) => {
                return Err(invalid(
                    "JWT_ISSUER",
                    "no issuer configured (set JWT_ISSUER or JWT_ISSUERS)",
                ))
            }
        };

        let mut config = Config::new(issuers);
        config.hs256_secret = var("JWT_HS256_SECRET");
        if let Some(list) = var("JWT_ALGORITHMS") {
            config.algorithms = comma_list(&list)
                .iter()
                .map(|name| name.parse::<Algorithm>())
                .collect::<Result<_, _>>()
                .map_err(|error| invalid("JWT_ALGORITHMS", error))?;
        } else if config.hs256_secret.is_some() {
            config.algorithms.push(Algorithm::HS256);
        }
        if let Some(seconds) = var("JWT_LEEWAY_SECONDS") {
            config.leeway = Duration::from_secs(number("JWT_LEEWAY_SECONDS", &seconds)?);
        }
        if let Some(claim) = var("JWT_PRINCIPAL_CLAIM") {
            config.principal_claim = claim.trim().to_string();
        }
        if let Some(list) = var("JWT_CONTEXT_CLAIMS") {
            config.context_claims = comma_list(&list);
        }
        if let Some(ms) = var("JWKS_TIMEOUT_MS") {
            config.jwks_timeout = Duration::from_millis(number("JWKS_TIMEOUT_MS", &ms)?);
        }
        if let Some(seconds) = var("JWKS_REFETCH_INTERVAL_SECONDS") {
            config.refetch_interval =
                Duration::from_secs(number("JWKS_REFETCH_INTERVAL_SECONDS", &seconds)?);
        }
        if let Some(seconds) = var("JWKS_MAX_CACHE_AGE_SECONDS") {
            config.max_cache_age =
                Duration::from_secs(number("JWKS_MAX_CACHE_AGE_SECONDS", &seconds)?);
        }
        if let Some(claim) = var("JWT_GRANTS_CLAIM") {
            config.grants_claim = claim.trim().to_string();
        }
        if let Some(list) = var("CHANNELS_STATIC_SUBSCRIBE") {
            config.static_grants.subscribe = comma_list(&list);
        }
        if let Some(list) = var("CHANNELS_STATIC_PUBLISH") {
            config.static_grants.publish = comma_list(&list);
        }
        config.validate()?;
        Ok(config)
    }

    /// Rejects configurations under which the authorizer would be unsafe or could never allow.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.issuers.is_empty() {
            return Err(invalid("JWT_ISSUERS", "the issuer list is empty"));
        }
        for issuer in &self.issuers {
            if issuer.issuer.is_empty() {
                return Err(invalid("JWT_ISSUERS", "an issuer has an empty `issuer`"));
            }
            if issuer.jwks_uri.is_empty() && self.hs256_secret.is_none() {
                return Err(invalid(
                    "JWT_JWKS_URI",
                    format!(
                        "issuer {} has no JWKS URI and no HS256 secret is set: no token could verify",
                        issuer.issuer
                    ),
                ));
            }
        }
        if self.algorithms.is_empty() {
            return Err(invalid("JWT_ALGORITHMS", "the algorithm list is empty"));
        }
        for algorithm in &self.algorithms {
            match algorithm {
                Algorithm::HS256 if self.hs256_secret.is_none() => {
                    return Err(invalid(
                        "JWT_ALGORITHMS",
                        "HS256 is listed but JWT_HS256_SECRET is not set",
                    ))
                }
                Algorithm::HS384 | Algorithm::HS512 => {
                    return Err(invalid(
                        "JWT_ALGORITHMS",
                        "only HS256 is supported among HMAC algorithms",
                    ))
                }
                _ => {}
            }
        }
        if self.principal_claim.is_empty() {
            return Err(invalid("JWT_PRINCIPAL_CLAIM", "empty claim name"));
        }
        if self.grants_claim.is_empty() {
            return Err(invalid("JWT_GRANTS_CLAIM", "empty claim name"));
        }
        // The grants entries of the context are the authorizer's own: a token claim copied
        // under their names would hand out unvalidated grants.
        if let Some(name) = self.context_claims.iter().find(|name| {
            [grants_context::SUBSCRIBE, grants_context::PUBLISH].contains(&name.as_str())
        }) {
            return Err(invalid(
                "JWT_CONTEXT_CLAIMS",
                format!("`{name}` is the authorizer's own context entry for channel grants"),
            ));
        }
        check_templates(&self.static_grants.subscribe)
            .map_err(|reason| invalid("CHANNELS_STATIC_SUBSCRIBE", reason))?;
        check_templates(&self.static_grants.publish)
            .map_err(|reason| invalid("CHANNELS_STATIC_PUBLISH", reason))?;
        self.static_grants
            .check_size()
            .map_err(|reason| invalid("CHANNELS_STATIC_SUBSCRIBE", reason))?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn invalid(name: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.to_string(),
    }
}

fn number(name: &'static str, value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, format!("`{value}` is not a whole number")))
}

fn comma_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(testkit::lookup_from(vars))
    }

    #[test]
    fn simple_variables_configure_one_issuer() {
        let config = from(&[
            ("JWT_ISSUER", "https://issuer.example"),
            ("JWT_JWKS_URI", "https://issuer.example/jwks"),
            ("JWT_AUDIENCES", "app1, app2,"),
            ("JWT_LEEWAY_SECONDS", "5"),
            ("JWT_CONTEXT_CLAIMS", "email,groups"),
            ("JWKS_TIMEOUT_MS", "750"),
        ])
        .unwrap();
        assert_eq!(config.issuers.len(), 1);
        assert_eq!(config.issuers[0].audiences, vec!["app1", "app2"]);
        assert_eq!(config.leeway, Duration::from_secs(5));
        assert_eq!(config.context_claims, vec!["email", "groups"]);
        assert_eq!(config.jwks_timeout, Duration::from_millis(750));
        assert_eq!(config.principal_claim, "sub");
        assert!(!config.algorithms.contains(&Algorithm::HS256));
    }

    #[test]
    fn json_variable_configures_several_issuers() {
        let config = from(&[(
            "JWT_ISSUERS",
            r#"[{"issuer":"a","jwks_uri":"https://a/jwks","audiences":["x"]},
                {"issuer":"b","jwks_uri":"https://b/certs"}]"#,
        )])
        .unwrap();
        assert_eq!(config.issuers.len(), 2);
        assert!(config.issuers[1].audiences.is_empty());
    }

    #[test]
    fn hs256_needs_an_explicit_secret() {
        let error = from(&[
            ("JWT_ISSUER", "a"),
            ("JWT_JWKS_URI", "https://a/jwks"),
            ("JWT_ALGORITHMS", "RS256,HS256"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("JWT_HS256_SECRET"), "{error}");
        let config = from(&[("JWT_ISSUER", "a"), ("JWT_HS256_SECRET", "s3cret")]).unwrap();
        assert!(config.algorithms.contains(&Algorithm::HS256));
    }

    #[test]
    fn none_is_not_an_algorithm() {
        assert!(from(&[
            ("JWT_ISSUER", "a"),
            ("JWT_JWKS_URI", "https://a/jwks"),
            ("JWT_ALGORITHMS", "none")
        ])
        .is_err());
    }

    #[test]
    fn channel_grants_are_configured_and_checked() {
        let base = [("JWT_ISSUER", "a"), ("JWT_JWKS_URI", "https://a/jwks")];
        let config = from(&base).unwrap();
        assert_eq!(config.grants_claim, "channels");
        assert!(config.static_grants.is_empty());

        let config = from(&[
            base[0],
            base[1],
            ("JWT_GRANTS_CLAIM", "https://example.com/channels"),
            ("CHANNELS_STATIC_SUBSCRIBE", "public/*, user/{sub}"),
            ("CHANNELS_STATIC_PUBLISH", "user/{sub}/*"),
        ])
        .unwrap();
        assert_eq!(config.grants_claim, "https://example.com/channels");
        assert_eq!(config.static_grants.subscribe, ["public/*", "user/{sub}"]);
        assert_eq!(config.static_grants.publish, ["user/{sub}/*"]);

        for (name, value) in [
            ("CHANNELS_STATIC_SUBSCRIBE", "room/**"),
            ("CHANNELS_STATIC_PUBLISH", "a/b/c/d/e/f"),
            ("JWT_CONTEXT_CLAIMS", "email,channels_subscribe"),
        ] {
            let error = from(&[base[0], base[1], (name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn ambiguous_or_missing_issuers_are_refused() {
        assert!(from(&[]).is_err());
        assert!(from(&[("JWT_ISSUER", "a")]).is_err(), "no keys, no secret");
        assert!(from(&[
            ("JWT_ISSUER", "a"),
            ("JWT_JWKS_URI", "https://a/jwks"),
            ("JWT_ISSUERS", "[]")
        ])
        .is_err());
        assert!(from(&[("JWT_ISSUERS", "[]")]).is_err());
        assert!(from(&[
            ("JWT_ISSUER", "a"),
            ("JWT_JWKS_URI", "https://a/jwks"),
            ("JWKS_TIMEOUT_MS", "soon")
        ])
        .is_err());
    }
}
