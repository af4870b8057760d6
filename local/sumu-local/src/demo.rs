//! The demo page and the development token endpoint it signs in with.
//!
//! The page's files (`local/sumu-local/demo/`) are compiled into the binary, so `sumu-local`
//! serves them from anywhere. `sumu-client.js` is `@sumu/client` (`clients/js`) bundled and
//! committed, so building sumu-local needs no Node; the package's tests fail when it is stale. `GET /dev/token?sub=alice` mints a development token like
//! `sumu-local token --sub alice`: anyone who can reach the emulator can sign in as anyone,
//! which is the point of a local development identity provider (sumu-local binds 127.0.0.1).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

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

#[derive(Debug, Deserialize)]
struct TokenQuery {
    sub: Option<String>,
}

async fn token(State(state): State<Arc<AppState>>, Query(query): Query<TokenQuery>) -> Response {
    let sub = query.sub.unwrap_or_default();
    let sub = sub.trim();
    if sub.is_empty() || sub.len() > MAX_SUBJECT_BYTES {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "sub must be a non-empty name of at most 256 bytes"})),
        )
            .into_response();
    }
    let now_secs = crate::protocol::now_ms() / 1000;
    match state.identity_provider.mint(sub, TOKEN_TTL, now_secs) {
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
