//! Which WebSocket routes the handler answers: `presence`, `subscribe` and `unsubscribe`; any
//! other route key is refused, never taken for a presence question.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_lambda_events::encodings::Body;
use common::{deps_with, invoke_route, FakeCounter, FakeSink, FakeSubscriptions, TestDeps};
use serde_json::{json, Value};

const ROUTE_REQUEST: &str = include_str!("fixtures/presence-route-request.json");
/// The fixture's connection and principal.
const CONNECTION: &str = "TWf6Be3LoAMCF3A=";
const USER: &str = "u9";

/// The presence fixture (a question a client could send) on another route key; `None` leaves
/// the key out.
fn on_route(route_key: Option<&str>) -> String {
    let mut request: Value = serde_json::from_str(ROUTE_REQUEST).unwrap();
    match route_key {
        Some(key) => request["requestContext"]["routeKey"] = json!(key),
        None => {
            request["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("routeKey");
        }
    }
    request.to_string()
}

/// Deps where u1 is online and the fixture's connection is live, so any read or write would
/// show.
fn deps() -> TestDeps {
    deps_with(
        FakeCounter::with(&[("u1", 2)]),
        FakeSink::default(),
        Some(FakeSubscriptions::with_connections(&[(
            USER, CONNECTION, 0,
        )])),
    )
}

/// The log lines written while `run` runs, as JSON objects.
async fn logged<T>(run: impl std::future::Future<Output = T>) -> (T, Vec<Value>) {
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded: the default subscriber covers the whole future.
    let result = {
        let _guard = tracing::subscriber::set_default(subscriber);
        run.await
    };
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect();
    (result, lines)
}

#[tokio::test]
async fn an_unknown_route_key_is_refused_and_nothing_is_read_or_written() {
    for (route_key, logged_key) in [
        (Some("sendmessage"), "sendmessage"),
        (Some("$default"), "$default"),
        (Some("Presence"), "Presence"),
        (None, ""),
    ] {
        let deps = deps();
        let (response, logs) = logged(invoke_route(&on_route(route_key), &deps)).await;
        assert_eq!(response.status_code, 400, "{route_key:?}");
        let Some(Body::Text(frame)) = &response.body else {
            panic!(
                "{route_key:?}: expected a text frame, got {:?}",
                response.body
            );
        };
        let frame: Value = serde_json::from_str(frame).unwrap();
        assert_eq!(
            frame,
            json!({
                "type": "error",
                "error": "unknown_route",
                "message": format!(
                    "the presence function does not serve the route {logged_key:?} (it serves \
                     presence, subscribe, unsubscribe and history); nothing was done"
                ),
            }),
            "{route_key:?}"
        );
        assert!(
            deps.counter.asked().is_empty(),
            "{route_key:?}: nothing is read"
        );
        assert!(
            deps.sink.summary().is_empty(),
            "{route_key:?}: nothing is published"
        );
        let subscriptions = deps.subscriptions.as_ref().unwrap();
        assert!(
            subscriptions.items.lock().unwrap().is_empty()
                && subscriptions.removed.lock().unwrap().is_empty()
                && subscriptions.counter(USER, CONNECTION) == Some(0),
            "{route_key:?}: nothing is written"
        );
        let refusal: Vec<&Value> = logs
            .iter()
            .filter(|line| line["level"] == "ERROR")
            .collect();
        assert_eq!(refusal.len(), 1, "{route_key:?}: {logs:?}");
        assert_eq!(refusal[0]["fields"]["route_key"], logged_key);
        assert_eq!(refusal[0]["fields"]["connection_id"], CONNECTION);
        assert_eq!(
            refusal[0]["fields"]["message"],
            "refusing a request on a route the presence function does not serve"
        );
    }
}

#[tokio::test]
async fn the_same_question_on_the_presence_route_is_answered() {
    let deps = deps();
    let response = invoke_route(&on_route(Some("presence")), &deps).await;
    assert_eq!(response.status_code, 200);
    let Some(Body::Text(frame)) = &response.body else {
        panic!("expected a text frame");
    };
    assert_eq!(
        serde_json::from_str::<Value>(frame).unwrap(),
        json!({"type":"presence","users":[
            {"user_id":"u1","status":"ONLINE","connections":2},
            {"user_id":"u2","status":"OFFLINE","connections":0}
        ]})
    );
}
