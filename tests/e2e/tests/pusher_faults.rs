//! The pusher against a management API that fails: a fault-injecting HTTP proxy (127.0.0.1:0)
//! sits between the pusher and sumu-local's management API and answers 429 or 500, in AWS's
//! error shapes, to chosen posts. Every live connection must still receive each request exactly
//! once, and no connection twice because another connection's post was retried or re-queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use e2e::notify::{Receiver, Via};
use e2e::Local;
use serde_json::json;

/// A fault the proxy answers instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Throttled,
    InternalError,
}

impl Fault {
    fn response(self) -> Response {
        let (status, error_type, message) = match self {
            Fault::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceededException",
                "Rate exceeded",
            ),
            Fault::InternalError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
                "Internal server error",
            ),
        };
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
}

/// Decides, from a connection id and how many posts to it came before, whether to fail a post.
type Policy = Box<dyn Fn(&str, usize) -> Option<Fault> + Send + Sync>;

/// What the proxy saw for one connection: the status of every post, in order.
type Log = HashMap<String, Vec<u16>>;

struct Proxy {
    /// `http://127.0.0.1:PORT` of sumu-local (known once it started).
    upstream: OnceLock<String>,
    policy: Policy,
    posts: Mutex<Log>,
    http: reqwest::Client,
}

/// Starts the proxy; returns it and its management endpoint (`http://127.0.0.1:PORT/dev`).
async fn start_proxy(policy: Policy) -> (Arc<Proxy>, String) {
    let proxy = Arc::new(Proxy {
        upstream: OnceLock::new(),
        policy,
        posts: Mutex::default(),
        http: reqwest::Client::new(),
    });
    let app = Router::new()
        .fallback(forward)
        .with_state(Arc::clone(&proxy));
    let address = e2e::serve_on_loopback(app).await;
    (proxy, format!("http://{address}/dev"))
}

/// `%XX` escapes decoded (connection ids end in `=`, which the SDK sends as `%3D`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let connection_id = (method == Method::POST)
        .then(|| uri.path().rsplit('/').next().map(percent_decode))
        .flatten();
    let fault = connection_id.as_ref().and_then(|id| {
        let earlier = proxy.posts.lock().unwrap().get(id).map_or(0, Vec::len);
        (proxy.policy)(id, earlier)
    });
    let response = match fault {
        Some(fault) => fault.response(),
        None => {
            let upstream = proxy.upstream.get().expect("the upstream is set");
            e2e::proxy::forward(&proxy.http, upstream, method, &uri, &headers, body).await
        }
    };
    if let Some(id) = connection_id {
        proxy
            .posts
            .lock()
            .unwrap()
            .entry(id)
            .or_default()
            .push(response.status().as_u16());
    }
    response
}

/// sumu-local whose pusher posts through a proxy with `policy`, with short backoffs and
/// re-queue delays so retries take seconds.
async fn local_behind_proxy(policy: Policy, via: Via) -> (Local, Arc<Proxy>) {
    let (proxy, endpoint) = start_proxy(policy).await;
    let local = Local::start_configured(|config| {
        config.pusher.management_endpoint = Some(endpoint);
        config.pusher.limits.backoff_base = Duration::from_millis(10);
        config.pusher.limits.backoff_cap = Duration::from_millis(100);
        config.pusher.limits.requeue_delay = Duration::from_secs(1);
    })
    .await;
    proxy
        .upstream
        .set(format!("http://{}", local.endpoints.address))
        .expect("set once");
    if via == Via::Topic {
        local.until_topic_subscribed().await;
    }
    (local, proxy)
}

fn statuses(proxy: &Proxy, connection_id: &str) -> Vec<u16> {
    proxy
        .posts
        .lock()
        .unwrap()
        .get(connection_id)
        .cloned()
        .unwrap_or_default()
}

/// The nth receiver's first post fails with 429 (n % 3 == 0) or 500 (n % 3 == 1), and every
/// fourth one's second post fails too; the rest are forwarded.
fn fault_for(n: usize, earlier: usize) -> Option<Fault> {
    match (n % 3, earlier) {
        (0, 0) => Some(Fault::Throttled),
        (1, 0) => Some(Fault::InternalError),
        (_, 1) if n.is_multiple_of(4) => Some(Fault::InternalError),
        _ => None,
    }
}

fn fraction_fails(ids: Arc<OnceLock<Vec<String>>>) -> Policy {
    Box::new(move |connection_id, earlier| {
        let n = ids.get()?.iter().position(|id| id == connection_id)?;
        fault_for(n, earlier)
    })
}

/// The statuses receiver `n` must see for one request, `earlier` posts into its log: its own
/// failures, then one 200.
fn expected_posts(n: usize, mut earlier: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    while let Some(fault) = fault_for(n, earlier) {
        statuses.push(match fault {
            Fault::Throttled => 429,
            Fault::InternalError => 500,
        });
        earlier += 1;
    }
    statuses.push(200);
    statuses
}

async fn throttled_and_failing_posts(via: Via) {
    let ids = Arc::new(OnceLock::new());
    let (local, proxy) = local_behind_proxy(fraction_fails(Arc::clone(&ids)), via).await;
    let mut receivers = Vec::new();
    for _ in 0..12 {
        receivers.push(Receiver::connect(&local, "faulty").await);
    }
    ids.set(
        receivers
            .iter()
            .map(|r| r.connection_id.clone())
            .collect::<Vec<_>>(),
    )
    .expect("set once");
    let users: Vec<String> = receivers.iter().map(|r| r.user.clone()).collect();
    let first = json!({"request": 1});
    let second = json!({"request": 2});

    local
        .notify(via, &json!({"users": users, "data": first}).to_string())
        .await;
    // The first request fully handled before the second (each receiver's log is per request).
    for receiver in &mut receivers {
        receiver
            .received_exactly(&local, std::slice::from_ref(&first))
            .await;
    }
    let after_first: Vec<Vec<u16>> = receivers
        .iter()
        .map(|r| statuses(&proxy, &r.connection_id))
        .collect();
    local
        .notify(via, &json!({"users": users, "data": second}).to_string())
        .await;
    for receiver in &mut receivers {
        receiver
            .received_exactly(&local, std::slice::from_ref(&second))
            .await;
    }

    for (n, receiver) in receivers.iter().enumerate() {
        // Per request: the connection's own failures, then exactly one forwarded post (200). A
        // connection that was not failed was posted to once: no retry of someone else's
        // failure reached it.
        let first_posts = expected_posts(n, 0);
        assert_eq!(
            after_first[n], first_posts,
            "posts to receiver {n}, request 1"
        );
        let mut all_posts = first_posts.clone();
        all_posts.extend(expected_posts(n, first_posts.len()));
        assert_eq!(
            statuses(&proxy, &receiver.connection_id),
            all_posts,
            "posts to receiver {n}, both requests"
        );
    }
    let faults = after_first
        .iter()
        .flatten()
        .filter(|status| **status != 200)
        .count();
    assert!(faults >= 8, "the proxy injected faults ({faults})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_failing_posts_via_queue_deliver_exactly_once() {
    throttled_and_failing_posts(Via::Queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_failing_posts_via_topic_deliver_exactly_once() {
    throttled_and_failing_posts(Via::Topic).await;
}

/// One connection fails more posts than one invocation tries (`max_post_attempts`, 5): the
/// request is re-queued narrowed to that connection alone, which then gets it; nobody else
/// gets it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_failing_past_its_attempts_is_requeued_alone() {
    let unlucky_id = Arc::new(OnceLock::<String>::new());
    let unlucky = Arc::clone(&unlucky_id);
    let policy: Policy = Box::new(move |connection_id, earlier| {
        (unlucky.get().map(String::as_str) == Some(connection_id) && earlier < 6).then_some(
            if earlier % 2 == 0 {
                Fault::InternalError
            } else {
                Fault::Throttled
            },
        )
    });
    let (local, proxy) = local_behind_proxy(policy, Via::Queue).await;
    let mut victim = Receiver::connect(&local, "unlucky").await;
    unlucky_id
        .set(victim.connection_id.clone())
        .expect("set once");
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(Receiver::connect(&local, "lucky").await);
    }
    let mut users = vec![victim.user.clone()];
    users.extend(others.iter().map(|r| r.user.clone()));
    let data = json!({"eventually": "delivered"});

    local
        .notify(
            Via::Queue,
            &json!({"users": users, "data": data}).to_string(),
        )
        .await;

    victim
        .received_exactly(&local, std::slice::from_ref(&data))
        .await;
    for other in &mut others {
        other
            .received_exactly(&local, std::slice::from_ref(&data))
            .await;
    }
    // Five failed attempts in the first invocation, a sixth in the narrowed generation 1,
    // then the delivery (the marker post went straight to sumu-local, not through the proxy).
    assert_eq!(
        statuses(&proxy, &victim.connection_id),
        vec![500, 429, 500, 429, 500, 429, 200]
    );
    for other in &others {
        assert_eq!(statuses(&proxy, &other.connection_id), vec![200]);
    }
    // Nothing was dead-lettered: the generation limit (3) was not reached.
    let dlq = local
        .sqs
        .receive_message()
        .queue_url(&local.endpoints.resources.notifications_dlq_url)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive from the DLQ");
    assert!(dlq.messages.unwrap_or_default().is_empty());
}
