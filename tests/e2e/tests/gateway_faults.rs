//! The gateway's integrations against an AWS endpoint that fails: a fault-injecting HTTP proxy
//! (127.0.0.1:0) sits between sumu-local and moto and answers chosen DynamoDB operations with
//! an error in DynamoDB's shape, forwarding everything else. A failed `ping` must never answer
//! `pong`, and a failed `$connect` must still refuse the upgrade although its integration has a
//! `$default` integration response.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use e2e::{next_text, send_text, Local};
use serde_json::json;

/// The DynamoDB operation to fail (`X-Amz-Target: DynamoDB_20120810.<operation>`) and how.
#[derive(Debug, Clone, Copy)]
struct Fault {
    operation: &'static str,
    status: StatusCode,
    error_type: &'static str,
}

const UPDATE_ITEM_5XX: Fault = Fault {
    operation: "UpdateItem",
    status: StatusCode::INTERNAL_SERVER_ERROR,
    error_type: "InternalServerError",
};
const UPDATE_ITEM_THROTTLED: Fault = Fault {
    operation: "UpdateItem",
    status: StatusCode::BAD_REQUEST,
    error_type: "ProvisionedThroughputExceededException",
};
const PUT_ITEM_5XX: Fault = Fault {
    operation: "PutItem",
    status: StatusCode::INTERNAL_SERVER_ERROR,
    error_type: "InternalServerError",
};

struct Proxy {
    upstream: String,
    fault: Mutex<Option<Fault>>,
    /// How many requests were answered with the fault.
    injected: Mutex<usize>,
    http: reqwest::Client,
}

impl Proxy {
    fn set(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap() = fault;
    }
    fn injected(&self) -> usize {
        *self.injected.lock().unwrap()
    }
}

/// Starts the proxy in front of moto; returns it and its URL (sumu-local's AWS endpoint).
async fn start_proxy() -> (Arc<Proxy>, String) {
    let proxy = Arc::new(Proxy {
        upstream: testkit::moto_endpoint(),
        fault: Mutex::new(None),
        injected: Mutex::new(0),
        http: reqwest::Client::new(),
    });
    let app = Router::new()
        .fallback(forward)
        .with_state(Arc::clone(&proxy));
    let address = e2e::serve_on_loopback(app).await;
    (proxy, format!("http://{address}"))
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let fault = *proxy.fault.lock().unwrap();
    if let Some(fault) = fault.filter(|fault| target.ends_with(&format!(".{}", fault.operation))) {
        *proxy.injected.lock().unwrap() += 1;
        return (
            fault.status,
            [("content-type", "application/x-amz-json-1.0")],
            json!({
                "__type": format!("com.amazonaws.dynamodb.v20120810#{}", fault.error_type),
                "message": "injected by the test",
            })
            .to_string(),
        )
            .into_response();
    }
    e2e::proxy::forward(&proxy.http, &proxy.upstream, method, &uri, &headers, body).await
}

async fn local_behind(proxy_url: &str) -> Local {
    let proxy_url = proxy_url.to_string();
    Local::start_configured(move |config| config.aws_endpoint = proxy_url).await
}

#[tokio::test]
async fn ping_answers_pong_only_when_dynamodb_recorded_it() {
    let (proxy, url) = start_proxy().await;
    let local = local_behind(&url).await;
    let user = testkit::unique_name("unlucky");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await["type"], "pong");

    for fault in [UPDATE_ITEM_5XX, UPDATE_ITEM_THROTTLED] {
        proxy.set(Some(fault));
        let before = proxy.injected();
        send_text(&mut client, r#"{"action":"ping"}"#).await;
        let frame = next_text(&mut client).await;
        assert_eq!(frame["type"], "error", "{fault:?} → {frame}");
        assert_eq!(frame["error"], "ping_failed", "{fault:?} → {frame}");
        assert_eq!(frame["connection_id"], connection_id.as_str());
        assert_eq!(proxy.injected(), before + 1, "the ping's UpdateItem failed");
    }

    proxy.set(None);
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await["type"], "pong", "recovered");
}

#[tokio::test]
async fn a_failed_connect_integration_refuses_the_upgrade_and_stores_nothing() {
    let (proxy, url) = start_proxy().await;
    let local = local_behind(&url).await;
    let user = testkit::unique_name("refused");

    proxy.set(Some(PUT_ITEM_5XX));
    let token = local.token(&user);
    assert_eq!(
        local.refused_status(&local.url_with_token(&token)).await,
        500
    );
    assert_eq!(proxy.injected(), 1);
    proxy.set(None);
    assert!(local.items_of(&user).await.is_empty());

    // The same token connects once DynamoDB is back.
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await["type"], "pong");
}
