//! A management API on 127.0.0.1:0, shaped like API Gateway's: `POST /{stage}/@connections/{id}`
//! (and `DELETE`, which closes the connection: it is gone afterwards) with AWS's error shapes, so the real `aws-sdk-apigatewaymanagement` client talks to it.
//! The pusher's suites use it too (lambdas/pusher/tests/support/mod.rs).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

/// How the endpoint answers one post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Gone,
    Throttle,
    ServerError,
    Forbidden,
    /// Answers 200, but only after this long (to provoke client timeouts).
    Slow(Duration),
}

#[derive(Default)]
pub struct ApiState {
    /// Answers per connection id, consumed in order; then `Accept` (unless gone).
    pub scripts: Mutex<HashMap<String, VecDeque<Answer>>>,
    /// Connections whose socket is gone: always 410.
    pub gone: Mutex<HashSet<String>>,
    /// Every Nth post (counted over all connections) is answered 429, every Mth 500 — a
    /// fault-injecting endpoint; 0 disables.
    pub throttle_every: AtomicUsize,
    pub fail_every: AtomicUsize,
    posts: AtomicUsize,
    /// What each connection received (only accepted posts): a second entry is a duplicate.
    pub received: Mutex<HashMap<String, Vec<Vec<u8>>>>,
    pub requests: AtomicUsize,
    /// What happened to each connection, in the order it happened: every accepted post and
    /// every accepted close (a close makes the connection gone).
    pub events: Mutex<HashMap<String, Vec<Event>>>,
    /// Accepted closes (DELETE answered 204), over all connections.
    pub closes: AtomicUsize,
}

/// One thing that happened to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Received(Vec<u8>),
    Closed,
}

impl ApiState {
    pub fn script(&self, connection: &str, answers: Vec<Answer>) {
        self.scripts
            .lock()
            .unwrap()
            .insert(connection.into(), answers.into());
    }
    pub fn received_by(&self, connection: &str) -> Vec<Vec<u8>> {
        self.received
            .lock()
            .unwrap()
            .get(connection)
            .cloned()
            .unwrap_or_default()
    }
    pub fn events_of(&self, connection: &str) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .get(connection)
            .cloned()
            .unwrap_or_default()
    }
}

pub struct ManagementApi {
    pub state: Arc<ApiState>,
    /// `http://127.0.0.1:PORT/{stage}`: the management endpoint a client is given.
    pub endpoint: String,
}

pub async fn start(stage: &str) -> ManagementApi {
    let state = Arc::new(ApiState::default());
    let app = Router::new()
        .route(
            "/{stage}/@connections/{id}",
            post(post_to_connection).delete(close_connection),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Dies with the test's runtime.
    tokio::spawn(async move { axum::serve(listener, app).await });
    ManagementApi {
        state,
        endpoint: format!("http://127.0.0.1:{port}/{stage}"),
    }
}

fn error(status: StatusCode, kind: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", kind),
            ("content-type", "application/json"),
        ],
        format!(r#"{{"message":"{kind}"}}"#),
    )
        .into_response()
}

async fn post_to_connection(
    State(state): State<Arc<ApiState>>,
    Path((_stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let scripted = state
        .scripts
        .lock()
        .unwrap()
        .get_mut(&id)
        .and_then(VecDeque::pop_front);
    let answer = scripted.unwrap_or_else(|| {
        if state.gone.lock().unwrap().contains(&id) {
            return Answer::Gone;
        }
        let n = state.posts.fetch_add(1, Ordering::SeqCst) + 1;
        let (throttle, fail) = (
            state.throttle_every.load(Ordering::SeqCst),
            state.fail_every.load(Ordering::SeqCst),
        );
        if throttle > 0 && n % throttle == 0 {
            Answer::Throttle
        } else if fail > 0 && n % fail == 0 {
            Answer::ServerError
        } else {
            Answer::Accept
        }
    });
    match answer {
        Answer::Accept | Answer::Slow(_) => {
            if let Answer::Slow(delay) = answer {
                tokio::time::sleep(delay).await;
            }
            state
                .events
                .lock()
                .unwrap()
                .entry(id.clone())
                .or_default()
                .push(Event::Received(body.to_vec()));
            state
                .received
                .lock()
                .unwrap()
                .entry(id)
                .or_default()
                .push(body.to_vec());
            StatusCode::OK.into_response()
        }
        Answer::Gone => error(StatusCode::GONE, "GoneException"),
        Answer::Throttle => error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException"),
        Answer::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
        ),
        Answer::Forbidden => error(StatusCode::FORBIDDEN, "ForbiddenException"),
    }
}

/// `DELETE`: answered from the connection's script like a post (then 204, or 410 once gone);
/// an accepted close makes the connection gone. The fault injection counts posts only.
async fn close_connection(
    State(state): State<Arc<ApiState>>,
    Path((_stage, id)): Path<(String, String)>,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let scripted = state
        .scripts
        .lock()
        .unwrap()
        .get_mut(&id)
        .and_then(VecDeque::pop_front);
    let answer = scripted.unwrap_or_else(|| {
        if state.gone.lock().unwrap().contains(&id) {
            Answer::Gone
        } else {
            Answer::Accept
        }
    });
    match answer {
        Answer::Accept | Answer::Slow(_) => {
            if let Answer::Slow(delay) = answer {
                tokio::time::sleep(delay).await;
            }
            state.gone.lock().unwrap().insert(id.clone());
            state
                .events
                .lock()
                .unwrap()
                .entry(id)
                .or_default()
                .push(Event::Closed);
            state.closes.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT.into_response()
        }
        Answer::Gone => error(StatusCode::GONE, "GoneException"),
        Answer::Throttle => error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException"),
        Answer::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
        ),
        Answer::Forbidden => error(StatusCode::FORBIDDEN, "ForbiddenException"),
    }
}
