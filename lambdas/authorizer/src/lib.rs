//! The JWT REQUEST authorizer for sumu's WebSocket `$connect` route.
//!
//! Public surface (fixed in the interfaces brief): [`Config`], [`IssuerConfig`], [`Authorizer`],
//! [`handle`] and [`AuthorizerError`]. The handler is pure: configuration is read once in `main`.

mod config;

pub use config::{Config, ConfigError, IssuerConfig};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use lambda_runtime::LambdaEvent;

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
}

impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    /// The error message is what API Gateway inspects: exactly `Unauthorized` means 401.
    fn from(error: AuthorizerError) -> Self {
        let error_type = match error {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::KeysUnavailable { .. } => "KeysUnavailable",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: error.to_string(),
        }
    }
}

/// Holds the configuration, the HTTP client and the JWKS cache; shared by reference across
/// invocations.
pub struct Authorizer {
    config: Config,
}

impl Authorizer {
    pub fn new(config: Config) -> Self {
        Authorizer { config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Authorizes one `$connect` request.
pub async fn handle(
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
    authorizer: &Authorizer,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    let _ = (event, authorizer);
    Err(AuthorizerError::Unauthorized)
}
