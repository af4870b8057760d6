//! The JWT REQUEST authorizer for sumu's WebSocket `$connect` route.
//!
//! Public surface (fixed in the interfaces brief): [`Config`], [`IssuerConfig`], [`Authorizer`],
//! [`handle`] and [`AuthorizerError`]. The handler is pure: configuration is read once in `main`.
//!
//! Outcomes (see docs/authorizer.md):
//! - `Ok(Allow)`: the token is authentic, current and for this API → the upgrade proceeds;
//! - `Err(Unauthorized)` → HTTP 401, "get a fresh token": missing, oversized, malformed, unknown
//!   algorithm, unknown issuer, unknown `kid`, bad signature, expired, not yet valid;
//! - `Ok(Deny)` → HTTP 403, "not for you": authentic but wrong audience, no usable principal, or
//!   an Allow that would not fit API Gateway's 8 KB authorizer result limit
//!   ([`MAX_RESULT_BYTES`]: principal, policy, copied claims and grants together);
//! - `Err(KeysUnavailable)` → HTTP 500, "try again later": no keys could be obtained for the
//!   issuer (endpoint down, too slow, or broken, with nothing cached);
//! - `Err(InvalidRequest)` → HTTP 500: the event has no usable `methodArn` (not a client's fault).
//!
//! An Allow always carries the connection's channel grants in its context ([`grants`]); a grants
//! claim that cannot be used leaves the connection with the static grants only, never a refusal.

mod cache;
mod claims;
mod config;
pub mod grants;
mod keys;
mod policy;
pub mod token;

pub use config::{Config, ConfigError, IssuerConfig, DEFAULT_ALGORITHMS};
pub use grants::StaticGrants;
pub use policy::MAX_RESULT_BYTES;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::IamPolicyEffect;
use jsonwebtoken::{Algorithm, DecodingKey};
use lambda_runtime::LambdaEvent;
use serde_json::Map;

use cache::{CachePolicy, KeyCache, KeyLookup};
use claims::ClaimError;
use token::TokenError;

/// What the Lambda answers besides an Allow/Deny policy. API Gateway maps an error whose message is
/// exactly `Unauthorized` to HTTP 401 and any other error to HTTP 500.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// Missing, malformed, badly signed, expired or otherwise unusable token: "get a fresh token".
    #[error("Unauthorized")]
    Unauthorized,
    /// No verification keys could be obtained for the token's issuer (endpoint down and nothing
    /// cached): a server-side problem, so clients should retry later with the same token.
    #[error("verification keys unavailable for issuer {issuer}")]
    KeysUnavailable { issuer: String },
    /// The event is not a REQUEST authorizer event with a usable `methodArn`.
    #[error("invalid authorizer event: {0}")]
    InvalidRequest(&'static str),
}

impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    /// The error message is what API Gateway inspects: exactly `Unauthorized` means 401.
    fn from(error: AuthorizerError) -> Self {
        let error_type = match error {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::KeysUnavailable { .. } => "KeysUnavailable",
            AuthorizerError::InvalidRequest(_) => "InvalidRequest",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: error.to_string(),
        }
    }
}

struct TrustedIssuer {
    config: IssuerConfig,
    /// `None` when the issuer publishes no keys (HS256-only).
    keys: Option<KeyCache>,
}

/// Holds the configuration, the HTTP client and the JWKS cache; shared by reference across
/// invocations.
pub struct Authorizer {
    config: Config,
    issuers: Vec<TrustedIssuer>,
    hs256_key: Option<DecodingKey>,
    client: reqwest::Client,
}

impl Authorizer {
    pub fn new(config: Config) -> Self {
        let policy = CachePolicy {
            refetch_interval: config.refetch_interval,
            max_cache_age: config.max_cache_age,
        };
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| {
                if issuer.audiences.is_empty() {
                    tracing::warn!(
                        issuer = %issuer.issuer,
                        "no audiences configured: tokens for ANY audience of this issuer are accepted"
                    );
                }
                TrustedIssuer {
                    config: issuer.clone(),
                    keys: (!issuer.jwks_uri.is_empty())
                        .then(|| KeyCache::new(issuer.jwks_uri.clone(), policy)),
                }
            })
            .collect();
        let client = reqwest::Client::builder()
            .timeout(config.jwks_timeout)
            .connect_timeout(config.jwks_timeout)
            .build()
            .unwrap_or_default();
        Authorizer {
            hs256_key: config
                .hs256_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.as_bytes())),
            config,
            issuers,
            client,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Why a request is not allowed, before it is turned into the answer API Gateway understands.
#[derive(Debug)]
enum Refusal {
    /// 401
    Unauthenticated(String),
    /// 403
    Forbidden(String),
    /// 500
    KeysUnavailable(String),
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        Refusal::Unauthenticated(error.to_string())
    }
}

/// Authorizes one `$connect` request.
pub async fn handle(
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
    authorizer: &Authorizer,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    let request = &event.payload;
    let resource = request
        .method_arn
        .as_deref()
        .and_then(policy::stage_resource)
        .ok_or(AuthorizerError::InvalidRequest(
            "missing or malformed methodArn",
        ))?;
    let request_id = request.request_context.request_id.as_deref().unwrap_or("");
    match authorize(request, authorizer).await {
        Ok(allowed) => {
            let principal_bytes = allowed.principal.len();
            let shown = shortened(&allowed.principal);
            let context_bytes = serde_json::to_vec(&allowed.context).map_or(0, |b| b.len());
            let response = policy::response(
                IamPolicyEffect::Allow,
                allowed.principal,
                resource.clone(),
                allowed.context,
            );
            let result_bytes = policy::result_bytes(&response);
            if result_bytes > policy::MAX_RESULT_BYTES {
                // API Gateway would fail the handshake with a 500 and no reason; a 403 tells the
                // client not to retry this token, and this line tells the operator why.
                tracing::warn!(
                    principal = %shown,
                    request_id,
                    result_bytes,
                    limit = policy::MAX_RESULT_BYTES,
                    principal_bytes,
                    context_bytes,
                    claims_bytes = allowed.claims_bytes,
                    "deny: the authorizer result would exceed API Gateway's 8 KB limit (principal, policy, copied claims and grants together)"
                );
                return Ok(deny(resource));
            }
            tracing::info!(principal = %shown, request_id, result_bytes, "allow");
            Ok(response)
        }
        Err(Refusal::Unauthenticated(reason)) => {
            tracing::info!(reason, request_id, "unauthorized");
            Err(AuthorizerError::Unauthorized)
        }
        Err(Refusal::Forbidden(reason)) => {
            tracing::info!(reason, request_id, "deny");
            Ok(deny(resource))
        }
        Err(Refusal::KeysUnavailable(issuer)) => {
            tracing::error!(issuer, request_id, "no keys available");
            Err(AuthorizerError::KeysUnavailable { issuer })
        }
    }
}

/// A Deny policy for the stage: small whatever the token, so it always fits.
fn deny(resource: String) -> ApiGatewayCustomAuthorizerResponse {
    policy::response(
        IamPolicyEffect::Deny,
        "unknown".to_string(),
        resource,
        Map::new(),
    )
}

/// At most the first 64 characters of a principal, for a log line.
fn shortened(principal: &str) -> String {
    match principal.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &principal[..at]),
        None => principal.to_string(),
    }
}

/// An authenticated connection's principal and authorizer context (copied claims and grants).
struct Allowed {
    principal: String,
    context: Map<String, serde_json::Value>,
    /// The copied claims alone, as JSON: for the log line of a result that does not fit.
    claims_bytes: usize,
}

async fn authorize(
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    authorizer: &Authorizer,
) -> Result<Allowed, Refusal> {
    let config = &authorizer.config;
    let raw = token::extract(request)?;
    let token = token::parse(raw)?;
    if !config.algorithms.contains(&token.algorithm) {
        return Err(Refusal::Unauthenticated(format!(
            "algorithm {:?} not allowed",
            token.algorithm
        )));
    }
    // The issuer is read before the signature is checked only to pick the keys; a forged `iss`
    // then fails verification against that issuer's keys.
    let issuer = token
        .claims
        .get("iss")
        .and_then(|iss| iss.as_str())
        .and_then(|iss| {
            authorizer
                .issuers
                .iter()
                .find(|trusted| trusted.config.issuer == iss)
        })
        .ok_or_else(|| Refusal::Unauthenticated("unknown or missing issuer".to_string()))?;

    verify_signature(&token, issuer, authorizer).await?;

    claims::check_times(&token.claims, now_seconds(), config.leeway)
        .map_err(|error| Refusal::Unauthenticated(error.to_string()))?;
    claims::check_audience(&token.claims, &issuer.config.audiences).map_err(
        |error| match error {
            ClaimError::WrongAudience => Refusal::Forbidden(error.to_string()),
            other => Refusal::Unauthenticated(other.to_string()),
        },
    )?;
    let principal = claims::principal(&token.claims, &config.principal_claim).ok_or_else(|| {
        Refusal::Forbidden(format!(
            "no usable principal claim `{}`",
            config.principal_claim
        ))
    })?;
    let mut context = claims::context(&token.claims, &config.context_claims);
    let claims_bytes = serde_json::to_vec(&context).map_or(0, |b| b.len());
    let resolved = grants::resolve(
        &token.claims,
        &config.grants_claim,
        &config.static_grants,
        &principal,
    );
    let request_id = request.request_context.request_id.as_deref().unwrap_or("");
    if let Some(reason) = &resolved.claim_ignored {
        tracing::warn!(
            principal = %principal,
            request_id,
            reason = %reason,
            "grants claim ignored: the connection keeps only the static grants"
        );
    }
    if !resolved.static_dropped.is_empty() {
        tracing::warn!(
            principal = %principal,
            request_id,
            dropped = %resolved.static_dropped.join(","),
            "static grants dropped: the principal cannot stand for {{sub}} (not a channel segment) or the grant gets too long"
        );
    }
    grants::write_context(&resolved.grants, &mut context);
    Ok(Allowed {
        principal,
        context,
        claims_bytes,
    })
}

async fn verify_signature(
    token: &token::UnverifiedToken<'_>,
    issuer: &TrustedIssuer,
    authorizer: &Authorizer,
) -> Result<(), Refusal> {
    let verifies = |key: &DecodingKey| {
        jsonwebtoken::crypto::verify(
            token.signature,
            token.signing_input.as_bytes(),
            key,
            token.algorithm,
        )
        .unwrap_or(false)
    };
    if token.algorithm == Algorithm::HS256 {
        // Only the configured shared secret verifies HMAC; published keys never do.
        let secret = authorizer
            .hs256_key
            .as_ref()
            .ok_or_else(|| Refusal::Unauthenticated("HS256 without a configured secret".into()))?;
        return if verifies(secret) {
            Ok(())
        } else {
            Err(Refusal::Unauthenticated("bad HS256 signature".into()))
        };
    }
    let cache = issuer
        .keys
        .as_ref()
        .ok_or_else(|| Refusal::Unauthenticated("issuer publishes no keys".into()))?;
    match cache.lookup(&authorizer.client, token.kid.as_deref()).await {
        KeyLookup::Found(candidates) => {
            let verified = candidates
                .iter()
                .filter(|candidate| candidate.allows(token.algorithm))
                .any(|candidate| verifies(&candidate.key));
            if verified {
                Ok(())
            } else {
                Err(Refusal::Unauthenticated("bad signature".into()))
            }
        }
        KeyLookup::UnknownKid => Err(Refusal::Unauthenticated("unknown kid".into())),
        KeyLookup::Unavailable => Err(Refusal::KeysUnavailable(issuer.config.issuer.clone())),
    }
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
