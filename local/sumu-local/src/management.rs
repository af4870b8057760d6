//! The API Gateway Management API (`/{stage}/@connections/{id}`), with AWS's status codes and
//! error shapes (`x-amzn-ErrorType` + `{"message":…}`) so `aws-sdk-apigatewaymanagement` works
//! against it with only its endpoint changed. Requests are not signature-checked.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app_state::AppState;
use crate::protocol::iso8601;
use crate::state::{Connection, Outbound, Unreachable};
use crate::ws::CLOSE_NORMAL;

/// The path segment of the management API (`%40connections` arrives decoded).
const COLLECTION: &str = "@connections";

/// The account in the `execute-api` ARNs of recorded calls: moto's default account, where the
/// local stack's other resources live.
const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// Records the call for the IAM check (when sumu-local was asked to): on AWS every
/// `@connections` call is authorized as `execute-api:ManageConnections` on
/// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/@connections/{id}`, before the
/// connection is looked up, so every call is recorded whatever its answer.
fn record(state: &AppState, headers: &HeaderMap, method: Method, stage: &str, id: &str) {
    let Some(log) = &state.call_log else { return };
    let caller = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(crate::call_log::access_key_id)
        .unwrap_or("unsigned");
    let resource = format!(
        "arn:aws:execute-api:{}:{LOCAL_ACCOUNT_ID}:{}/{stage}/{method}/{COLLECTION}/{id}",
        state.region, state.api.api_id
    );
    log.record(
        caller,
        &format!("{method} /{COLLECTION}"),
        "execute-api:ManageConnections",
        &resource,
    );
}

fn aws_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", error_type),
            ("content-type", "application/json"),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn forbidden() -> Response {
    aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden")
}

fn gone(reason: Unreachable) -> Response {
    let message = match reason {
        Unreachable::Unknown => "The connection does not exist or is closed",
        Unreachable::StillConnecting => "The connection is still in $connect",
    };
    aws_error(StatusCode::GONE, "GoneException", message)
}

/// Why a path names no open connection.
enum Rejection {
    Forbidden,
    Gone(Unreachable),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Forbidden => forbidden(),
            Rejection::Gone(reason) => gone(reason),
        }
    }
}

/// The open connection a path names.
fn target(
    state: &AppState,
    stage: &str,
    collection: &str,
    id: &str,
) -> Result<Arc<Connection>, Rejection> {
    if stage != state.api.stage || collection != COLLECTION {
        return Err(Rejection::Forbidden);
    }
    state.registry.open(id).map_err(Rejection::Gone)
}

/// `POST /{stage}/@connections/{id}`: the body (≤ 128 KB) goes to the client as one frame —
/// text when it is UTF-8, binary otherwise.
pub async fn post(
    State(state): State<Arc<AppState>>,
    Path((stage, collection, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, &headers, Method::POST, &stage, &id);
    if stage != state.api.stage || collection != COLLECTION {
        return forbidden();
    }
    if body.len() > state.limits.max_message_bytes {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "Payload too large",
        );
    }
    let connection = match target(&state, &stage, &collection, &id) {
        Ok(connection) => connection,
        Err(rejection) => return rejection.into_response(),
    };
    let frame = match String::from_utf8(body.to_vec()) {
        Ok(text) => Outbound::Text(text),
        Err(error) => Outbound::Binary(error.into_bytes()),
    };
    if connection.send(frame) {
        StatusCode::OK.into_response()
    } else {
        gone(Unreachable::Unknown)
    }
}

/// `GET /{stage}/@connections/{id}`: `connectedAt`, `identity`, `lastActiveAt`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((stage, collection, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    record(&state, &headers, Method::GET, &stage, &id);
    let connection = match target(&state, &stage, &collection, &id) {
        Ok(connection) => connection,
        Err(rejection) => return rejection.into_response(),
    };
    let body = json!({
        "connectedAt": iso8601(connection.connected_at),
        "identity": {
            "sourceIp": connection.identity.source_ip,
            "userAgent": connection.identity.user_agent,
        },
        "lastActiveAt": iso8601(connection.last_active_at()),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `DELETE /{stage}/@connections/{id}`: 204; the client sees close 1000, `$disconnect` fires.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((stage, collection, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    record(&state, &headers, Method::DELETE, &stage, &id);
    let connection = match target(&state, &stage, &collection, &id) {
        Ok(connection) => connection,
        Err(rejection) => return rejection.into_response(),
    };
    let closing = connection.send(Outbound::Close {
        code: CLOSE_NORMAL,
        reason: String::new(),
    });
    if closing {
        StatusCode::NO_CONTENT.into_response()
    } else {
        gone(Unreachable::Unknown)
    }
}
