//! The WebSocket API (`ws://HOST:PORT/{stage}`): the `$connect` handshake (authorizer, then the
//! `$connect` integration, then the upgrade), one session task per connection (limits, timeouts,
//! outbound frames from the management API), message routing, and `$disconnect` on every close.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use vtl::Params;

use crate::app_state::AppState;
use crate::authorizer_bridge::{
    authorize, authorizer_event, identity_present, method_arn, Refusal, UpgradeRequest,
};
use crate::integration::{is_success, IntegrationError, IntegrationOutcome, IntegrationRequest};
use crate::protocol::{
    error_frame, new_connection_id, new_request_id, now_ms, select_route, EventType,
    RequestContext, CONNECT_ROUTE, DISCONNECT_ROUTE, FORBIDDEN, INTERNAL_SERVER_ERROR,
};
use crate::routes::{Integration, Route};
use crate::state::{Connection, Identity, Outbound};

/// Close codes API Gateway uses.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
pub const CLOSE_NO_STATUS: u16 = 1005;
pub const CLOSE_ABNORMAL: u16 = 1006;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Small socket buffers: tungstenite's defaults (128 KiB each) would cost far more than the
/// connection itself; they grow on demand for big messages.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 0;

/// A JSON error answer to the upgrade request, as API Gateway sends (`{"message":"…"}`).
fn refuse(refusal: Refusal) -> Response {
    let status =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-amzn-ErrorType", error_type(refusal)),
        ],
        serde_json::json!({"message": refusal.to_string()}).to_string(),
    )
        .into_response()
}

fn error_type(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Unauthorized => "UnauthorizedException",
        Refusal::Forbidden => "ForbiddenException",
        Refusal::Internal => "InternalServerErrorException",
    }
}

/// Query parameters, percent-decoded (`+` is a space, as in forms and API Gateway).
fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (decode(name), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// `GET /{stage}` with an upgrade: the `$connect` route.
pub async fn connect(
    State(state): State<Arc<AppState>>,
    Path(stage): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if stage != state.api.stage {
        return refuse(Refusal::Forbidden);
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let request = UpgradeRequest {
        query: parse_query(query.as_deref()),
        headers,
    };
    if !identity_present(&state.identity_sources, &request) {
        tracing::info!(%peer, "identity source missing: 401 without calling the authorizer");
        return refuse(Refusal::Unauthorized);
    }
    let connection_id = new_connection_id();
    let request_id = new_request_id();
    let connected_at = now_ms();
    let identity = Identity {
        source_ip: peer.ip().to_string(),
        user_agent: request
            .header_value("user-agent")
            .unwrap_or_default()
            .to_string(),
    };
    let event = authorizer_event(
        &request,
        &state.api,
        &state.region,
        &connection_id,
        &request_id,
        connected_at,
        &identity,
        state.integrations.stage_variables(),
    );
    let arn = method_arn(&state.region, &state.api);
    let principal = match authorize(&state.authorizer, event, &arn).await {
        Ok(principal) => principal,
        Err(refusal) => {
            tracing::info!(%peer, status = refusal.status(), "$connect refused by the authorizer");
            return refuse(refusal);
        }
    };

    let (sender, receiver) = mpsc::unbounded_channel();
    let connection = Arc::new(Connection::new(
        connection_id,
        connected_at,
        identity,
        principal,
        sender,
    ));
    // Registered (but not open) during `$connect`: management calls get 410 meanwhile.
    state.registry.insert(Arc::clone(&connection));
    state.sessions.started();
    let mut handshake = Handshake {
        state: Arc::clone(&state),
        connection: Arc::clone(&connection),
        armed: true,
    };

    if let Some(route) = state.routes.get(CONNECT_ROUTE) {
        let context = request_context(
            &state,
            &connection,
            EventType::Connect,
            CONNECT_ROUTE,
            &request_id,
            None,
            None,
        );
        let params = Params {
            header: request.single_headers(),
            querystring: request.single_query(),
            ..Params::default()
        };
        let outcome = state
            .integrations
            .invoke(
                route,
                IntegrationRequest {
                    context,
                    body: String::new(),
                    params,
                },
            )
            .await;
        if let Err(refused) = connect_accepted(route, &outcome) {
            tracing::warn!(
                connection_id = %connection.id,
                user_id = %connection.principal.principal_id,
                status = refused.status,
                error = %refused.error,
                "$connect integration failed: upgrade refused with 500"
            );
            handshake.armed = false;
            state.registry.remove(&connection.id);
            state.sessions.ended();
            return refuse(Refusal::Internal);
        }
    }

    handshake.armed = false;
    let limits = state.limits;
    let failed_state = Arc::clone(&state);
    let failed_connection = Arc::clone(&connection);
    upgrade
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_failed_upgrade(move |error| {
            tracing::warn!(connection_id = %failed_connection.id, %error, "upgrade failed after $connect");
            tokio::spawn(async move {
                failed_state.registry.remove(&failed_connection.id);
                disconnect(&failed_state, &failed_connection, CLOSE_ABNORMAL, "Upgrade failed")
                    .await;
                failed_state.sessions.ended();
            });
        })
        .on_upgrade(move |socket| session(state, connection, receiver, socket))
}

/// Why `$connect` was refused: the integration's status (when it answered) and the error.
struct ConnectRefused {
    status: Option<u16>,
    error: String,
}

/// Whether the `$connect` integration lets the upgrade through. A non-proxy integration
/// succeeds exactly when an integration response was selected for its status (`routes.json`
/// keys `$connect` `/2\d\d/`, so a failed `PutItem` selects none): the selection decides, as on
/// AWS. A Lambda proxy has no integration responses: its `statusCode` decides (non-2xx refuses).
fn connect_accepted(
    route: &Route,
    outcome: &Result<IntegrationOutcome, IntegrationError>,
) -> Result<(), ConnectRefused> {
    match outcome {
        Err(error) => Err(ConnectRefused {
            status: error.status(),
            error: error.to_string(),
        }),
        Ok(outcome)
            if matches!(route.integration, Integration::Proxy { .. })
                && !is_success(outcome.status) =>
        {
            Err(ConnectRefused {
                status: Some(outcome.status),
                error: outcome.failure.clone().unwrap_or_default(),
            })
        }
        Ok(_) => Ok(()),
    }
}

/// Cleans up after a handshake abandoned during `$connect` (the client went away, so the handler
/// was dropped mid-way): the connection is unregistered and `$disconnect` runs, so no item is
/// left behind for a connection that never opened.
struct Handshake {
    state: Arc<AppState>,
    connection: Arc<Connection>,
    armed: bool,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let state = Arc::clone(&self.state);
        let connection = Arc::clone(&self.connection);
        runtime.spawn(async move {
            state.registry.remove(&connection.id);
            disconnect(&state, &connection, CLOSE_ABNORMAL, "Connection lost").await;
            state.sessions.ended();
        });
    }
}

/// The `$context` of a request on `connection`.
fn request_context(
    state: &AppState,
    connection: &Connection,
    event_type: EventType,
    route_key: &str,
    request_id: &str,
    message_id: Option<&str>,
    disconnect: Option<(u16, &str)>,
) -> serde_json::Value {
    RequestContext {
        api: &state.api,
        event_type,
        route_key,
        connection_id: &connection.id,
        connected_at: connection.connected_at,
        request_id,
        message_id,
        request_time_epoch: now_ms(),
        identity: &connection.identity,
        principal: Some(&connection.principal),
        disconnect,
    }
    .to_value()
}

/// Why a session ended: the close code and reason `$disconnect` reports, and the close frame we
/// still owe the client (none when the client closed or vanished).
struct Ending {
    code: u16,
    reason: String,
    send_close: bool,
}

impl Ending {
    fn ours(code: u16, reason: &str) -> Ending {
        Ending {
            code,
            reason: reason.to_string(),
            send_close: true,
        }
    }
    fn theirs(code: u16, reason: &str) -> Ending {
        Ending {
            code,
            reason: reason.to_string(),
            send_close: false,
        }
    }
}

/// True when a read failed because a frame or message exceeded the limits.
fn is_too_big(error: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        error.into_inner().downcast_ref::<Error>(),
        Some(Error::Capacity(_))
    )
}

async fn session(
    state: Arc<AppState>,
    connection: Arc<Connection>,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    mut socket: WebSocket,
) {
    connection.mark_open();
    tracing::debug!(connection_id = %connection.id, "connected");
    let started = Instant::now();
    let max_deadline = started + state.limits.max_duration;
    let mut idle_deadline = started + state.limits.idle_timeout;
    let mut shutdown = state.shutdown.clone();

    let ending = loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                None => break Ending::theirs(CLOSE_ABNORMAL, "Connection lost"),
                Some(Err(error)) => {
                    if is_too_big(error) {
                        break Ending::ours(CLOSE_TOO_BIG, "Message too big");
                    }
                    break Ending::theirs(CLOSE_ABNORMAL, "Connection lost");
                }
                Some(Ok(Message::Text(text))) => {
                    idle_deadline = Instant::now() + state.limits.idle_timeout;
                    connection.touch(now_ms());
                    tokio::spawn(route_message(
                        Arc::clone(&state),
                        Arc::clone(&connection),
                        text.as_str().to_string(),
                    ));
                }
                Some(Ok(Message::Binary(_))) => {
                    break Ending::ours(CLOSE_UNSUPPORTED_DATA, "Binary frames are not supported");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    idle_deadline = Instant::now() + state.limits.idle_timeout;
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|frame| (frame.code, frame.reason.as_str().to_string()))
                        .unwrap_or((CLOSE_NO_STATUS, String::new()));
                    break Ending::theirs(code, &reason);
                }
            },
            Some(message) = outbound.recv() => {
                let sent = match message {
                    Outbound::Text(text) => socket.send(Message::Text(text.into())).await,
                    Outbound::Binary(bytes) => socket.send(Message::Binary(bytes.into())).await,
                    Outbound::Close { code, reason } => break Ending::ours(code, &reason),
                };
                if sent.is_err() {
                    break Ending::theirs(CLOSE_ABNORMAL, "Connection lost");
                }
            }
            _ = sleep_until(idle_deadline) => break Ending::ours(CLOSE_GOING_AWAY, "Going away"),
            _ = sleep_until(max_deadline) => break Ending::ours(CLOSE_GOING_AWAY, "Going away"),
            _ = shutdown.changed() => break Ending::ours(CLOSE_GOING_AWAY, "Going away"),
        }
    };

    // Unreachable for the management API from here on, like a closed connection on AWS.
    state.registry.remove(&connection.id);
    if ending.send_close {
        let frame = CloseFrame {
            code: ending.code,
            reason: ending.reason.clone().into(),
        };
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
    } else {
        // Completes the closing handshake the client started (its close frame is answered).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), socket.close()).await;
    }
    drop(socket);
    tracing::debug!(connection_id = %connection.id, code = ending.code, "disconnected");
    disconnect(&state, &connection, ending.code, &ending.reason).await;
    state.sessions.ended();
}

/// Runs the `$disconnect` integration (best effort: failures are logged, as on AWS).
async fn disconnect(state: &AppState, connection: &Connection, code: u16, reason: &str) {
    let Some(route) = state.routes.get(DISCONNECT_ROUTE) else {
        return;
    };
    let request_id = new_request_id();
    let context = request_context(
        state,
        connection,
        EventType::Disconnect,
        DISCONNECT_ROUTE,
        &request_id,
        None,
        Some((code, reason)),
    );
    let request = IntegrationRequest {
        context,
        ..IntegrationRequest::default()
    };
    match state.integrations.invoke(route, request).await {
        Ok(outcome) => {
            tracing::debug!(connection_id = %connection.id, status = outcome.status, "$disconnect integration done");
        }
        Err(error) => {
            tracing::warn!(connection_id = %connection.id, status = error.status(), %error, "$disconnect integration failed");
        }
    }
}

/// Routes one text message and sends the route response or the error frame, if any.
async fn route_message(state: Arc<AppState>, connection: Arc<Connection>, body: String) {
    let request_id = new_request_id();
    let Some(route_key) = select_route(&state.routes.selection, &body, |key| {
        state.routes.contains(key)
    }) else {
        connection.send(Outbound::Text(error_frame(
            FORBIDDEN,
            &connection.id,
            &request_id,
        )));
        return;
    };
    let Some(route) = state.routes.get(&route_key) else {
        return;
    };
    let message_id = new_connection_id();
    let context = request_context(
        &state,
        &connection,
        EventType::Message,
        &route_key,
        &request_id,
        Some(&message_id),
        None,
    );
    let request = IntegrationRequest {
        context,
        body,
        ..IntegrationRequest::default()
    };
    match state.integrations.invoke(route, request).await {
        Ok(outcome) => {
            if let Some(reply) = outcome.reply {
                connection.send(Outbound::Text(reply));
            } else if let Some(failure) = outcome.failure.filter(|_| !route.route_response) {
                // `$default` caught the failure: nothing to send on a one-way route.
                warn_one_way_failure(&connection, &route_key, Some(outcome.status), &failure);
            }
        }
        Err(error) if route.route_response => {
            tracing::warn!(connection_id = %connection.id, route = %route_key, status = error.status(), %error, "integration failed: Internal server error frame sent");
            connection.send(Outbound::Text(error_frame(
                INTERNAL_SERVER_ERROR,
                &connection.id,
                &request_id,
            )));
        }
        Err(error) => {
            warn_one_way_failure(&connection, &route_key, error.status(), &error.to_string());
        }
    }
}

/// A one-way route (no route response: `send`, `publish`, `emit`) whose integration failed. AWS
/// sends the client nothing ("regardless of any integration response configuration, no response
/// will be returned over the WebSocket channel") and counts it in the stage's `IntegrationError`
/// metric; locally the log is the only trace, so it says what was lost.
fn warn_one_way_failure(connection: &Connection, route: &str, status: Option<u16>, error: &str) {
    tracing::warn!(
        connection_id = %connection.id,
        route,
        status,
        error,
        "integration failed on a one-way route: the message went nowhere and the client is told nothing, as on AWS"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            parse_query(Some("authorization=a%2Bb&x&y=1+2")),
            vec![
                ("authorization".to_string(), "a+b".to_string()),
                ("x".to_string(), String::new()),
                ("y".to_string(), "1 2".to_string()),
            ]
        );
        assert!(parse_query(None).is_empty());
    }
}
