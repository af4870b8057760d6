//! HTTP proxies in front of moto, on 127.0.0.1:0: the forwarding both share, and a proxy that
//! hands moto one DynamoDB request at a time.
//!
//! Why the serializing one: moto applies `TransactWriteItems` without a lock (a cancelled
//! transaction restores a copy of the table taken when it started, wiping out what a concurrent
//! one committed), while DynamoDB isolates transactions on the same items. Concurrent subscribes
//! through moto therefore lose writes that DynamoDB would never lose; one request at a time
//! makes moto behave as DynamoDB does, while the subscribes themselves still run concurrently.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// Sends the request on to `upstream` (scheme, host and port) and returns its answer, headers
/// included (an SDK reads error types from them).
pub async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http.request(method, format!("{upstream}{path}")).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = answer.bytes().await.unwrap_or_default();
            let mut response = (status, body).into_response();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// How many requests of each `X-Amz-Target` (e.g. `DynamoDB_20120810.UpdateItem`) the
/// serializing proxy forwarded, for benchmarks that count what an operation costs.
static FORWARDED: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A copy of the counts so far (see [`FORWARDED`]); the difference of two copies is what
/// happened in between.
pub fn forwarded_calls() -> std::collections::BTreeMap<String, u64> {
    FORWARDED
        .lock()
        .map(|counts| counts.clone())
        .unwrap_or_default()
}

struct Serial {
    upstream: String,
    http: reqwest::Client,
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// The proxy to moto that forwards one DynamoDB request at a time (everything else, such as the
/// runners' long polls of SQS, at once); returns its URL (an AWS endpoint). One proxy for the
/// whole test process, on a thread and runtime of its own: moto's cancelled transaction restores
/// its snapshot of every table, so transactions of concurrent tests must be serialized together,
/// and a proxy spawned on one test's runtime would die with that test.
pub fn serializing_moto_proxy() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the proxy's runtime");
            runtime.block_on(async move {
                let state = Arc::new(Serial {
                    upstream: testkit::moto_endpoint(),
                    http: reqwest::Client::new(),
                    one_at_a_time: tokio::sync::Mutex::new(()),
                });
                let app = Router::new()
                    .fallback(
                        |State(state): State<Arc<Serial>>,
                         method: Method,
                         uri: Uri,
                         headers: HeaderMap,
                         body: Bytes| async move {
                            let target = headers
                                .get("x-amz-target")
                                .and_then(|target| target.to_str().ok())
                                .unwrap_or_default();
                            if let Ok(mut counts) = FORWARDED.lock() {
                                *counts.entry(target.to_owned()).or_default() += 1;
                            }
                            let dynamodb = target.starts_with("DynamoDB_");
                            let _turn = if dynamodb {
                                Some(state.one_at_a_time.lock().await)
                            } else {
                                None
                            };
                            forward(&state.http, &state.upstream, method, &uri, &headers, body)
                                .await
                        },
                    )
                    .with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the proxy");
                let address = listener.local_addr().expect("proxy address");
                let _ = sender.send(format!("http://{address}"));
                let _ = axum::serve(listener, app).await;
            });
        });
        receiver.recv().expect("the proxy starts")
    })
    .clone()
}
