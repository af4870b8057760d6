//! Finding the token in the `$connect` request and taking it apart, without trusting it yet.
//! Everything here runs on attacker-controlled bytes: no panics, and the size check comes first.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Tokens longer than this are refused before any decoding. Real ID/access tokens are 1–4 KB;
/// API Gateway itself refuses request headers above roughly 10 KB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token in the Authorization header or the authorization query parameter")]
    Missing,
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is not three base64url segments")]
    Malformed,
    #[error("token header is not valid JSON with an `alg`")]
    BadHeader,
    #[error("token algorithm `{0}` is not supported")]
    UnsupportedAlgorithm(String),
    #[error("token payload is not a JSON object")]
    BadPayload,
}

/// The token as found in the request (the `Bearer ` prefix removed).
pub fn extract(request: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> Result<&str, TokenError> {
    let from_header = match request.headers.get("authorization") {
        // A header that is not visible ASCII cannot hold a JWT.
        Some(value) => Some(value.to_str().map_err(|_| TokenError::Malformed)?),
        None => None,
    };
    let raw = from_header
        .or_else(|| request.query_string_parameters.first("authorization"))
        .ok_or(TokenError::Missing)?;
    token_from_credentials(raw)
}

/// Strips an optional, case-insensitive `Bearer ` scheme and surrounding blanks.
pub fn token_from_credentials(raw: &str) -> Result<&str, TokenError> {
    if raw.len() > MAX_TOKEN_BYTES + "Bearer ".len() {
        return Err(TokenError::TooLarge);
    }
    let raw = raw.trim();
    let token = match (raw.get(..6), raw.get(6..)) {
        (Some(scheme), Some(rest))
            if scheme.eq_ignore_ascii_case("bearer")
                && (rest.is_empty() || rest.starts_with(char::is_whitespace)) =>
        {
            rest.trim()
        }
        _ => raw,
    };
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    Ok(token)
}

/// A structurally valid JWS compact token whose signature is not verified yet.
#[derive(Debug, Clone)]
pub struct UnverifiedToken<'a> {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The third segment, still base64url.
    pub signature: &'a str,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Splits and decodes a token. Unknown algorithms (including `none`) are refused here.
pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed);
    }
    let header: Header =
        serde_json::from_slice(&decode_segment(header)?).map_err(|_| TokenError::BadHeader)?;
    let algorithm = header
        .alg
        .parse::<Algorithm>()
        .map_err(|_| TokenError::UnsupportedAlgorithm(header.alg.chars().take(16).collect()))?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&decode_segment(payload)?).map_err(|_| TokenError::BadPayload)?;
    let signing_input_len = token.len() - signature.len() - 1;
    Ok(UnverifiedToken {
        algorithm,
        kid: header.kid,
        claims,
        signing_input: token
            .get(..signing_input_len)
            .ok_or(TokenError::Malformed)?,
        signature,
    })
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn bearer_prefix_is_optional_and_case_insensitive() {
        assert_eq!(token_from_credentials("Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(token_from_credentials("bearer  a.b.c "), Ok("a.b.c"));
        assert_eq!(token_from_credentials("a.b.c"), Ok("a.b.c"));
        assert_eq!(token_from_credentials("Bearer "), Err(TokenError::Missing));
        assert_eq!(token_from_credentials("  "), Err(TokenError::Missing));
    }

    #[test]
    fn parse_splits_a_well_formed_token() {
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256","kid":"k1"}"#),
            b64(r#"{"sub":"u1"}"#)
        );
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::RS256);
        assert_eq!(parsed.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.claims["sub"], "u1");
        assert_eq!(parsed.signature, "c2ln");
        assert_eq!(
            format!("{}.{}", parsed.signing_input, parsed.signature),
            token
        );
    }

    #[test]
    fn parse_refuses_none_and_bad_shapes() {
        let none = format!("{}.{}.c2ln", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert_eq!(
            parse(&none).unwrap_err(),
            TokenError::UnsupportedAlgorithm("none".into())
        );
        assert_eq!(parse("a.b").unwrap_err(), TokenError::Malformed);
        assert_eq!(parse("a.b.c.d").unwrap_err(), TokenError::Malformed);
        assert_eq!(parse("!!.??.##").unwrap_err(), TokenError::Malformed);
        let array_payload = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("[1]"));
        assert_eq!(parse(&array_payload).unwrap_err(), TokenError::BadPayload);
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(parse(&big).unwrap_err(), TokenError::TooLarge);
        assert_eq!(token_from_credentials(&big), Err(TokenError::TooLarge));
    }
}
