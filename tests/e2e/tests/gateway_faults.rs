//! The gateway's integrations against an AWS endpoint that fails: a fault-injecting HTTP proxy
//! (127.0.0.1:0) sits between sumu-local and moto and answers one chosen operation with an error
//! in that service's shape (DynamoDB's JSON, SQS's and SNS's Query XML), forwarding everything
//! else. What each route then does is API Gateway's:
//! - a failed `ping` never answers `pong` (its integration responses turn the failure into an
//!   error frame);
//! - a failed `PutItem` refuses the upgrade with 500 and stores nothing, because `$connect`'s
//!   only integration response is keyed `/2\d\d/` and a status no integration response matches
//!   fails the integration (with a `$default` key the same failure would be accepted);
//! - a failed `DeleteItem` on `$disconnect` is logged;
//! - a one-way route (`send`, `publish`, `emit`) whose service refuses the call sends the client
//!   nothing and delivers nothing; sumu-local logs a warning with the route and status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use e2e::channels::{grants, subscribe};
use e2e::{eventually, next_text, send_text, Client, Local};
use serde_json::{json, Value};
use sumu_local::{PresenceDestination, PresenceSetup};

/// The operation to fail and how. DynamoDB names it in `X-Amz-Target:
/// DynamoDB_20120810.<operation>`; SQS and SNS, as API Gateway calls them (Query protocol), in
/// the form body's `Action=<operation>`.
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
const PUT_ITEM_THROTTLED: Fault = Fault {
    operation: "PutItem",
    status: StatusCode::BAD_REQUEST,
    error_type: "ProvisionedThroughputExceededException",
};
const DELETE_ITEM_5XX: Fault = Fault {
    operation: "DeleteItem",
    status: StatusCode::INTERNAL_SERVER_ERROR,
    error_type: "InternalServerError",
};
const SEND_MESSAGE_5XX: Fault = Fault {
    operation: "SendMessage",
    status: StatusCode::INTERNAL_SERVER_ERROR,
    error_type: "InternalError",
};
/// What SNS answers a role without `sns:Publish` (or without the topic key's KMS grant).
const PUBLISH_DENIED: Fault = Fault {
    operation: "Publish",
    status: StatusCode::FORBIDDEN,
    error_type: "AuthorizationError",
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

/// Starts the proxy in front of `upstream`; returns it and its URL (sumu-local's AWS endpoint).
async fn start_proxy_to(upstream: String) -> (Arc<Proxy>, String) {
    let proxy = Arc::new(Proxy {
        upstream,
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

async fn start_proxy() -> (Arc<Proxy>, String) {
    start_proxy_to(testkit::moto_endpoint()).await
}

/// The operation a request asks for, in whichever protocol it speaks.
fn operation_of(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(target) = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
    {
        return target.rsplit('.').next().map(str::to_string);
    }
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
}

/// The error answer, in the shape the failing service uses.
fn fault_answer(fault: Fault, json_protocol: bool) -> Response {
    if json_protocol {
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
    let side = if fault.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    (
        fault.status,
        [("content-type", "text/xml")],
        format!(
            "<ErrorResponse><Error><Type>{side}</Type><Code>{}</Code>\
             <Message>injected by the test</Message></Error>\
             <RequestId>e2e-fault</RequestId></ErrorResponse>",
            fault.error_type
        ),
    )
        .into_response()
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = *proxy.fault.lock().unwrap();
    if let Some(fault) = fault {
        if operation_of(&headers, &body).as_deref() == Some(fault.operation) {
            *proxy.injected.lock().unwrap() += 1;
            return fault_answer(fault, headers.contains_key("x-amz-target"));
        }
    }
    e2e::proxy::forward(&proxy.http, &proxy.upstream, method, &uri, &headers, body).await
}

async fn local_behind(proxy_url: &str) -> Local {
    let proxy_url = proxy_url.to_string();
    Local::start_configured(move |config| config.aws_endpoint = proxy_url).await
}

/// sumu-local's warnings in this process (it runs in-process): the message and the fields of
/// every event of level WARN or above whose target is sumu-local's.
#[derive(Default, Clone)]
struct Warnings(Arc<Mutex<Vec<HashMap<String, String>>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target().starts_with("sumu_local") {
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

/// The process's one subscriber, installed by the first test that reads warnings.
fn warnings() -> &'static Warnings {
    static WARNINGS: OnceLock<Warnings> = OnceLock::new();
    WARNINGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let warnings = Warnings::default();
        let subscriber =
            tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(
                warnings.clone(),
                tracing_subscriber::filter::LevelFilter::WARN,
            ));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        warnings
    })
}

impl Warnings {
    /// Waits for the warning whose `field` is `value` and whose message starts with `message`.
    async fn find(&self, field: &str, value: &str, message: &str) -> HashMap<String, String> {
        eventually(
            &format!("a warning {message:?} with {field}={value}"),
            || async {
                self.0
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|fields| {
                        fields.get(field).map(String::as_str) == Some(value)
                            && fields
                                .get("message")
                                .is_some_and(|text| text.starts_with(message))
                    })
                    .cloned()
            },
        )
        .await
    }
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
async fn a_failed_put_item_refuses_the_upgrade_with_500_and_stores_nothing() {
    warnings();
    let (proxy, url) = start_proxy().await;
    let local = local_behind(&url).await;

    for fault in [PUT_ITEM_5XX, PUT_ITEM_THROTTLED] {
        let user = testkit::unique_name("refused");
        proxy.set(Some(fault));
        let before = proxy.injected();
        let token = local.token(&user);
        assert_eq!(
            local.refused_status(&local.url_with_token(&token)).await,
            500,
            "{fault:?}"
        );
        assert_eq!(proxy.injected(), before + 1, "the PutItem failed");
        let warning = warnings()
            .find("user_id", &user, "$connect integration failed")
            .await;
        assert_eq!(
            warning.get("status"),
            Some(&fault.status.as_u16().to_string())
        );
        proxy.set(None);
        assert!(local.items_of(&user).await.is_empty(), "{fault:?}");

        // The same token connects once DynamoDB is back.
        let mut client = local.connect(&user).await;
        local.item_of(&user).await;
        send_text(&mut client, r#"{"action":"ping"}"#).await;
        assert_eq!(next_text(&mut client).await["type"], "pong");
    }
}

/// A copy of `mapping-templates/` whose `$connect` integration response is keyed `$default`,
/// the key the route had before.
fn templates_with_a_default_connect_response() -> std::path::PathBuf {
    let templates = std::env::temp_dir().join(testkit::unique_name("templates"));
    std::fs::create_dir_all(&templates).expect("mkdir");
    let source = testkit::repo_root().join("mapping-templates");
    for entry in std::fs::read_dir(&source).expect("read mapping-templates") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, templates.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let mut routes: Value = serde_json::from_str(
        &std::fs::read_to_string(source.join("routes.json")).expect("routes.json"),
    )
    .expect("JSON");
    routes["routes"]["$connect"]["integration_responses"] = json!({"$default": null});
    std::fs::write(templates.join("routes.json"), routes.to_string()).expect("write");
    templates
}

#[tokio::test]
async fn with_a_default_integration_response_a_failed_put_item_would_be_accepted() {
    // Why routes.json keys $connect `/2\d\d/`: `$default` matches the failure too, the
    // integration counts as a success, and the client is connected without an item — no
    // notification, presence or pusher lookup would ever find it.
    let templates = templates_with_a_default_connect_response();
    let (proxy, url) = start_proxy().await;
    let local = Local::start_configured(|config| {
        config.aws_endpoint = url;
        config.templates_dir = templates.clone();
    })
    .await;
    let user = testkit::unique_name("unstored");
    proxy.set(Some(PUT_ITEM_5XX));
    let mut client = local.connect(&user).await;
    assert_eq!(proxy.injected(), 1, "the PutItem failed");
    proxy.set(None);
    assert!(local.items_of(&user).await.is_empty());
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    let frame = next_text(&mut client).await;
    assert_eq!(frame["error"], "connection_gone", "{frame}");
    std::fs::remove_dir_all(templates).expect("cleanup");
}

#[tokio::test]
async fn a_failed_delete_item_on_disconnect_is_logged_and_leaves_the_item() {
    warnings();
    let (proxy, url) = start_proxy().await;
    let local = local_behind(&url).await;
    let user = testkit::unique_name("lingering");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    proxy.set(Some(DELETE_ITEM_5XX));
    client.close(None).await.expect("close");
    let warning = warnings()
        .find(
            "connection_id",
            &connection_id,
            "$disconnect integration failed",
        )
        .await;
    assert_eq!(warning.get("status").map(String::as_str), Some("500"));
    assert_eq!(proxy.injected(), 1, "the DeleteItem failed");
    proxy.set(None);
    // Nothing deleted it: the item stays until its expires_at (readers ignore it from then on).
    assert_eq!(local.items_of(&user).await.len(), 1);
}

/// Reads the messages queue until a body containing `until` arrives; returns every body read.
async fn messages_until(local: &Local, until: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + e2e::DEADLINE;
    let mut bodies: Vec<String> = Vec::new();
    while !bodies.iter().any(|body| body.contains(until)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {until} on the messages queue; read {bodies:?}"
        );
        let received = local
            .sqs
            .receive_message()
            .queue_url(&local.endpoints.resources.messages_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        bodies.extend(
            received
                .messages
                .unwrap_or_default()
                .into_iter()
                .map(|message| message.body.unwrap_or_default()),
        );
    }
    bodies
}

/// Sends `text` on a one-way route while `fault` is injected, and proves the client is told
/// nothing: once sumu-local has logged the failure (where the old `Internal server error` frame
/// was sent), a `ping` is answered and its `pong` is the very next frame.
async fn one_way_failure_sends_nothing(
    proxy: &Proxy,
    client: &mut Client,
    connection_id: &str,
    route: &str,
    text: &str,
    fault: Fault,
) {
    proxy.set(Some(fault));
    let before = proxy.injected();
    send_text(client, text).await;
    let warning = eventually(&format!("the {route} failure is logged"), || async {
        warnings()
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|fields| {
                fields.get("connection_id").map(String::as_str) == Some(connection_id)
                    && fields.get("route").map(String::as_str) == Some(route)
            })
            .cloned()
    })
    .await;
    assert_eq!(
        warning.get("status"),
        Some(&fault.status.as_u16().to_string()),
        "{warning:?}"
    );
    assert!(
        warning
            .get("error")
            .is_some_and(|error| error.contains(fault.error_type)),
        "the service's answer is in the log: {warning:?}"
    );
    assert_eq!(proxy.injected(), before + 1, "{route}: the call failed");
    proxy.set(None);
    send_text(client, r#"{"action":"ping"}"#).await;
    let frame = next_text(client).await;
    assert_eq!(
        frame["type"], "pong",
        "{route}: nothing came before {frame}"
    );
}

#[tokio::test]
async fn a_one_way_route_whose_service_fails_sends_nothing_and_delivers_nothing() {
    warnings();
    // Presence runs the subscribe route; its events go nowhere (the messages queue is read here).
    let (proxy, url) = start_proxy_to(e2e::proxy::serializing_moto_proxy()).await;
    let local = Local::start_configured(|config| {
        config.aws_endpoint = url;
        config.presence = Some(PresenceSetup {
            destination: PresenceDestination::None,
            ..PresenceSetup::default()
        });
    })
    .await;
    let user = testkit::unique_name("sender");
    let token = local.token_with_grants(&user, &grants(&[], &["room/*"]));
    let mut client = local.connect_with_token(&token).await;
    let connection_id = local.connection_id_of(&user).await;
    let mut listener = local
        .receiver_with_grants("listener", &grants(&["room/*"], &[]))
        .await;
    subscribe(&mut listener.client, "room/faults").await;

    let cases = [
        ("send", SEND_MESSAGE_5XX),
        ("publish", PUBLISH_DENIED),
        ("emit", SEND_MESSAGE_5XX),
    ];
    for (route, fault) in cases {
        let text = match route {
            "emit" => json!({"action":"emit","channel":"room/faults","data":{"lost":route}}),
            _ => json!({"action":route,"message":{"lost":route}}),
        };
        one_way_failure_sends_nothing(
            &proxy,
            &mut client,
            &connection_id,
            route,
            &text.to_string(),
            fault,
        )
        .await;
    }

    // Nothing reached a queue: once the services are back, the next message of each route
    // arrives and none of the lost ones came before it.
    for route in ["send", "publish"] {
        let text = json!({"action":route,"message":{"kept":route}});
        send_text(&mut client, &text.to_string()).await;
        let bodies = messages_until(&local, &format!(r#""kept":"{route}""#)).await;
        assert!(
            bodies.iter().all(|body| !body.contains("lost")),
            "{bodies:?}"
        );
    }
    let emit = json!({"action":"emit","channel":"room/faults","data":{"kept":"emit"}});
    send_text(&mut client, &emit.to_string()).await;
    let publication = next_text(&mut listener.client).await;
    assert_eq!(publication["data"], json!({"kept":"emit"}), "{publication}");
}

#[tokio::test]
async fn a_one_way_route_whose_queue_is_gone_sends_nothing() {
    warnings();
    let local = Local::start().await;
    let user = testkit::unique_name("queueless");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    // The messages queue disappears: SQS answers 400 (no such queue). On AWS a one-way route
    // sends nothing back whatever the integration answered.
    local
        .sqs
        .delete_queue()
        .queue_url(&local.endpoints.resources.messages_queue_url)
        .send()
        .await
        .expect("delete the messages queue");
    send_text(&mut client, r#"{"action":"send","message":{"x":1}}"#).await;
    let warning = eventually("the send failure is logged", || async {
        warnings()
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|fields| {
                fields.get("connection_id").map(String::as_str) == Some(connection_id.as_str())
            })
            .cloned()
    })
    .await;
    assert_eq!(warning.get("route").map(String::as_str), Some("send"));
    assert!(warning
        .get("status")
        .is_some_and(|status| status.starts_with('4')));
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await["type"], "pong");
}
