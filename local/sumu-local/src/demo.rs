//! The demo page and the development token endpoint it signs in with.
//!
//! The page's files (`local/sumu-local/demo/`) are compiled into the binary, so `sumu-local`
//! serves them from anywhere. `sumu-client.js` is `@sumu/client` (`clients/js`) bundled and
//! committed, so building sumu-local needs no Node; the package's tests fail when it is stale. `GET /dev/token?sub=alice` mints a development token like
//! `sumu-local token --sub alice`: anyone who can reach the emulator can sign in as anyone,
//! which is the point of a local development identity provider (sumu-local binds 127.0.0.1).
//! Channel grants are repeatable parameters, like the command's flags:
//! `/dev/token?sub=alice&subscribe=room/*&publish=room/*` (`*` and `/` need no escaping).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sumu_wire::{Grants, Pattern};

use crate::app_state::AppState;

/// Where the page is served.
pub const DEMO_PATH: &str = "/demo/";
/// Where the page gets its development tokens.
pub const TOKEN_PATH: &str = "/dev/token";

/// Longest `sub` the token endpoint accepts (a DynamoDB key is at most 2 KB; names are short).
const MAX_SUBJECT_BYTES: usize = 256;
/// Tokens from the endpoint live as long as a connection may (API Gateway's 2 h maximum).
const TOKEN_TTL: Duration = Duration::from_secs(2 * 60 * 60);

const INDEX_HTML: &str = include_str!("../demo/index.html");
const APP_JS: &str = include_str!("../demo/app.js");
const STYLE_CSS: &str = include_str!("../demo/style.css");
const SUMU_CLIENT_JS: &str = include_str!("../demo/sumu-client.js");

/// The demo page's routes, merged into the emulator's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            DEMO_PATH,
            get(|| static_file("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/demo",
            get(|| async { axum::response::Redirect::permanent(DEMO_PATH) }),
        )
        .route(
            "/demo/app.js",
            get(|| static_file("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/demo/sumu-client.js",
            get(|| static_file("text/javascript; charset=utf-8", SUMU_CLIENT_JS)),
        )
        .route(
            "/demo/style.css",
            get(|| static_file("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route(TOKEN_PATH, get(token))
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// What `/dev/token` was asked for: `sub` (required, trimmed, at most 256 bytes) and the
/// repeatable `subscribe` and `publish` patterns. Other parameters are ignored.
#[derive(Debug, PartialEq)]
struct TokenRequest {
    sub: String,
    grants: Grants,
}

fn token_request(query: &str) -> Result<TokenRequest, String> {
    let mut sub = None;
    let mut grants = Grants::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let list = match name.as_ref() {
            "sub" => {
                sub = Some(value.trim().to_string());
                continue;
            }
            "subscribe" => &mut grants.subscribe,
            "publish" => &mut grants.publish,
            _ => continue,
        };
        let pattern = Pattern::parse(&value)
            .map_err(|error| format!("{name}={value:?} is not a channel pattern: {error}"))?;
        list.push(pattern);
    }
    match sub {
        Some(sub) if !sub.is_empty() && sub.len() <= MAX_SUBJECT_BYTES => {
            Ok(TokenRequest { sub, grants })
        }
        _ => Err("sub must be a non-empty name of at most 256 bytes".to_string()),
    }
}

async fn token(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let request = match token_request(query.as_deref().unwrap_or("")) {
        Ok(request) => request,
        Err(message) => {
            return (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
        }
    };
    let now_secs = crate::protocol::now_ms() / 1000;
    match state.identity_provider.mint_with_grants(
        &request.sub,
        &request.grants,
        TOKEN_TTL,
        now_secs,
    ) {
        Ok(token) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"token": token})),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "minting a development token failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": "could not mint a token"})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(texts: &[&str]) -> Vec<Pattern> {
        texts.iter().map(|t| Pattern::parse(t).unwrap()).collect()
    }

    #[test]
    fn grants_are_repeatable_parameters() {
        let request =
            token_request("sub=alice&subscribe=room/*&subscribe=user%2Falice&publish=room/*")
                .unwrap();
        assert_eq!(request.sub, "alice");
        assert_eq!(
            request.grants.subscribe,
            patterns(&["room/*", "user/alice"])
        );
        assert_eq!(request.grants.publish, patterns(&["room/*"]));
        let plain = token_request("sub=%20bob%20&other=1").unwrap();
        assert_eq!(plain.sub, "bob");
        assert!(plain.grants.is_empty());
        let auth0 = token_request("sub=auth0%7C42&subscribe=user/auth0%7C42").unwrap();
        assert_eq!(auth0.grants.subscribe, patterns(&["user/auth0|42"]));
    }

    #[test]
    fn a_bad_pattern_or_name_is_refused_with_a_reason() {
        let error = token_request("sub=alice&subscribe=room/**").unwrap_err();
        assert!(error.contains("subscribe=\"room/**\""), "{error}");
        let error = token_request("sub=alice&publish=").unwrap_err();
        assert!(error.contains("publish"), "{error}");
        assert!(
            token_request("sub=alice&publish=a+b").is_err(),
            "`+` is a space here"
        );
        for query in [
            "",
            "sub=",
            "sub=%20%20",
            &format!("sub={}", "x".repeat(257)),
        ] {
            assert!(token_request(query).is_err(), "{query:?}");
        }
    }
}
