//! "Are these users online?": the `presence` WebSocket route and direct invocations by back
//! ends. One strongly consistent Query per distinct asked user, at most
//! `query_concurrency` at once; never a Scan.

use std::time::SystemTime;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use futures::stream::{self, StreamExt};
use lambda_runtime::Diagnostic;
use serde_json::Value;
use sumu_wire::frames::{parse_ref, ErrorFrame, INVALID_REF};
use sumu_wire::{PresenceAnswer, PresenceEventType, PresenceStatus, UserPresence};
use thiserror::Error;
use tracing::{error, warn};

use crate::deps::Deps;
use crate::store::{ConnectionCounter, StoreError};
use crate::stream::epoch_millis;

/// The most users one question may name: one Query each, answered within API Gateway's
/// 29 s integration timeout even when DynamoDB is slow, and a bounded bill per message.
pub const MAX_USERS_PER_QUERY: usize = 100;
/// DynamoDB's limit for a partition key value; a longer id cannot be a user.
pub const MAX_USER_ID_BYTES: usize = 2048;

/// The route key this module answers.
pub const ROUTE: &str = "presence";

/// Error codes of the error frame (`{"type":"error","error":CODE,"message":…}`).
pub const ERROR_INVALID_REQUEST: &str = "invalid_request";
pub const ERROR_UNAVAILABLE: &str = "presence_unavailable";

/// Why a question was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InvalidQuery {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error(r#"the body must be a JSON object like {{"action":"presence","users":["u1"]}}"#)]
    NotAnObject,
    #[error("`users` must be an array of user ids")]
    UsersNotAnArray,
    #[error("at most {MAX_USERS_PER_QUERY} users per request (got {0})")]
    TooManyUsers(usize),
    #[error("`users[{0}]` must be a non-empty string")]
    NotAUserId(usize),
    #[error("`users[{0}]` is longer than {MAX_USER_ID_BYTES} bytes")]
    UserIdTooLong(usize),
}

/// The errors a whole invocation can end with (only direct invocations do).
#[derive(Debug, Error)]
pub enum PresenceError {
    #[error("invalid presence request: {0}")]
    InvalidRequest(#[from] InvalidQuery),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PresenceError> for Diagnostic {
    fn from(error: PresenceError) -> Diagnostic {
        let error_type = match error {
            PresenceError::InvalidRequest(_) => "Validation",
            PresenceError::Store(_) => "Retryable",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Reads the asked users from a question (`{"users":[…]}`, other fields ignored): distinct
/// ids in the order first asked.
pub fn parse_query(question: &Value) -> Result<Vec<String>, InvalidQuery> {
    let object = question.as_object().ok_or(InvalidQuery::NotAnObject)?;
    let users = object
        .get("users")
        .and_then(Value::as_array)
        .ok_or(InvalidQuery::UsersNotAnArray)?;
    if users.len() > MAX_USERS_PER_QUERY {
        return Err(InvalidQuery::TooManyUsers(users.len()));
    }
    let mut distinct: Vec<String> = Vec::with_capacity(users.len());
    for (index, user) in users.iter().enumerate() {
        let user_id = user
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or(InvalidQuery::NotAUserId(index))?;
        if user_id.len() > MAX_USER_ID_BYTES {
            return Err(InvalidQuery::UserIdTooLong(index));
        }
        if !distinct.iter().any(|seen| seen == user_id) {
            distinct.push(user_id.to_owned());
        }
    }
    Ok(distinct)
}

/// Counts each user's live connections, concurrently but bounded; the answer keeps the
/// asked order. Any failed Query fails the answer (a partial answer would read as OFFLINE).
pub async fn answer<C: ConnectionCounter>(
    users: &[String],
    counter: &C,
    concurrency: usize,
    now: SystemTime,
) -> Result<PresenceAnswer, StoreError> {
    let now_seconds = epoch_millis(now).div_euclid(1000);
    // Owned ids: see `stream::handle_batch` (keeps the future provably `Send`).
    let counts: Vec<Result<u32, StoreError>> = stream::iter(users.to_vec())
        .map(|user_id: String| async move { counter.live_connections(&user_id, now_seconds).await })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut answer = PresenceAnswer {
        kind: PresenceEventType::Presence,
        users: Vec::with_capacity(users.len()),
        reference: None,
    };
    for (user_id, count) in users.iter().zip(counts) {
        let connections = count?;
        answer.users.push(UserPresence {
            user_id: user_id.clone(),
            status: if connections > 0 {
                PresenceStatus::Online
            } else {
                PresenceStatus::Offline
            },
            connections,
        });
    }
    Ok(answer)
}

/// A back end's direct invocation: `{"users":[…]}` → the answer, or a `Validation` /
/// `Retryable` function error.
pub async fn answer_direct<C: ConnectionCounter, S, U>(
    question: &Value,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> Result<PresenceAnswer, PresenceError> {
    let users = parse_query(question)?;
    Ok(answer(&users, &deps.counter, deps.query_concurrency, now).await?)
}

/// The `presence` route (AWS_PROXY): API Gateway sends the proxy response's body to the
/// client as one frame whatever its status code, so every outcome is a JSON frame: the
/// answer (200), an `invalid_ref` or `invalid_request` error (400) or a
/// `presence_unavailable` error (500). Every frame but `invalid_ref` carries the question's
/// `ref` when it has one.
pub async fn answer_route<C: ConnectionCounter, S, U>(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> ApiGatewayProxyResponse {
    let connection_id = connection_id_of(request);
    let question = serde_json::from_str::<Value>(request.body.as_deref().unwrap_or_default())
        .map_err(|error| InvalidQuery::NotJson(error.to_string()));
    let reference = match question
        .as_ref()
        .map_or(Ok(None), |question| parse_ref(question.get("ref")))
    {
        Ok(reference) => reference,
        Err(invalid) => {
            warn!(connection_id, error = %invalid, "refusing a presence question");
            let message = invalid.to_string();
            return frame(400, ErrorFrame::new(INVALID_REF, &message).to_text());
        }
    };
    let refuse = |status: i64, code: &str, message: &str| {
        frame(
            status,
            ErrorFrame::new(code, message)
                .reference(reference.as_deref())
                .to_text(),
        )
    };
    let users = match question.and_then(|question| parse_query(&question)) {
        Ok(users) => users,
        Err(invalid) => {
            warn!(connection_id, error = %invalid, "refusing a presence question");
            return refuse(400, ERROR_INVALID_REQUEST, &invalid.to_string());
        }
    };
    match answer(&users, &deps.counter, deps.query_concurrency, now).await {
        Ok(mut answer) => {
            answer.reference = reference.clone();
            // Strings and numbers: serializing cannot fail.
            frame(200, serde_json::to_string(&answer).unwrap_or_default())
        }
        Err(failure) => {
            error!(connection_id, error = %failure, "answering a presence question failed");
            refuse(
                500,
                ERROR_UNAVAILABLE,
                "presence is unavailable right now; try again",
            )
        }
    }
}

/// The connection a route request came on (empty if API Gateway sent none), for the logs.
pub fn connection_id_of(request: &ApiGatewayWebsocketProxyRequest) -> &str {
    request
        .request_context
        .connection_id
        .as_deref()
        .unwrap_or_default()
}

/// A proxy response whose body is `text`, the frame the client receives.
pub fn frame(status_code: i64, text: String) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status_code;
    response.body = Some(Body::Text(text));
    response
}
