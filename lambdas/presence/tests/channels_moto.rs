//! The subscriptions store and the channel routes against a real moto server (started by the
//! testkit unless `SUMU_MOTO_ENDPOINT` names one): the two tables are testkit's (the module's
//! shape), and the whole handler runs with the deployed deps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use lambda_runtime::{Context, LambdaEvent};
use presence::{Config, Destination, Invocation, Reply, SdkDeps};
use serde_json::{json, Value};
use sumu_wire::{subscriptions, table};

const SUBSCRIBE: &str = include_str!("fixtures/subscribe-route-request.json");
const REMOVE: &str = include_str!("fixtures/single-device-offline.json");
/// The fixture's `connectedAt`, in ms.
const CONNECTED_AT_MS: i64 = 1_700_000_000_000;
const USER: &str = "u9";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The connections table and the subscriptions table (docs/channels.md § Subscribing).
struct Tables {
    client: Client,
    connections: String,
    subscriptions: String,
}

impl Tables {
    async fn create() -> Tables {
        let config = testkit::aws_config().await;
        let client = Client::new(&config);
        let connections = testkit::create_connections_table(&client).await;
        let subscriptions = testkit::create_subscriptions_table(&client).await;
        Tables {
            client,
            connections,
            subscriptions,
        }
    }

    async fn deps(&self, max_subscriptions_per_connection: u32) -> SdkDeps {
        self.deps_via(&testkit::moto_endpoint(), max_subscriptions_per_connection)
            .await
    }

    /// Deps whose DynamoDB client talks to `endpoint`.
    async fn deps_via(&self, endpoint: &str, max_subscriptions_per_connection: u32) -> SdkDeps {
        SdkDeps::from_sdk_config(
            &testkit::aws_config_for(endpoint).await,
            Config {
                connections_table: self.connections.clone(),
                destination: Destination::None,
                query_concurrency: 4,
                subscriptions_table: Some(self.subscriptions.clone()),
                max_subscriptions_per_connection,
                namespaces: Default::default(),
                history_table: None,
                members_table: None,
                notifications_queue_url: None,
            },
        )
    }

    /// The connection item `$connect` writes.
    async fn connect(&self, user_id: &str, connection_id: &str) {
        self.client
            .put_item()
            .table_name(&self.connections)
            .item(table::USER_ID, AttributeValue::S(user_id.into()))
            .item(
                table::CONNECTION_ID,
                AttributeValue::S(connection_id.into()),
            )
            .item(
                table::CONNECTED_AT,
                AttributeValue::N(CONNECTED_AT_MS.to_string()),
            )
            .item(
                table::EXPIRES_AT,
                AttributeValue::N((CONNECTED_AT_MS / 1000 + 7200).to_string()),
            )
            .send()
            .await
            .expect("put a connection");
    }

    async fn connection_item(
        &self,
        user_id: &str,
        connection_id: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.client
            .get_item()
            .table_name(&self.connections)
            .key(table::USER_ID, AttributeValue::S(user_id.into()))
            .key(
                table::CONNECTION_ID,
                AttributeValue::S(connection_id.into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// The connection's `subscriptions` counter (`None` when the attribute is absent).
    async fn counter(&self, connection_id: &str) -> Option<i64> {
        let item = self.connection_item(USER, connection_id).await?;
        match item.get(table::SUBSCRIPTIONS)? {
            AttributeValue::N(n) => Some(n.parse().unwrap()),
            other => panic!("the counter is not a number: {other:?}"),
        }
    }

    async fn subscription(
        &self,
        channel: &str,
        connection_id: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.client
            .get_item()
            .table_name(&self.subscriptions)
            .key(subscriptions::CHANNEL, AttributeValue::S(channel.into()))
            .key(
                subscriptions::CONNECTION_ID,
                AttributeValue::S(connection_id.into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// Every subscription item's (channel, connection), read with a Scan (a test may).
    async fn all_subscriptions(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.subscriptions)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                let text = |name: &str| item[name].as_s().unwrap().clone();
                found.push((
                    text(subscriptions::CHANNEL),
                    text(subscriptions::CONNECTION_ID),
                ));
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        found.sort();
        found
    }

    async fn channels_of(&self, connection_id: &str) -> Vec<String> {
        self.all_subscriptions()
            .await
            .into_iter()
            .filter(|(_, connection)| connection == connection_id)
            .map(|(channel, _)| channel)
            .collect()
    }
}

/// A route request of the fixture's principal (grants `room/* user/u9`) on `connection_id`.
fn route(route_key: &str, connection_id: &str, channel: &str) -> Value {
    let mut request: Value = serde_json::from_str(SUBSCRIBE).unwrap();
    request["requestContext"]["routeKey"] = json!(route_key);
    request["requestContext"]["connectionId"] = json!(connection_id);
    request["body"] = json!(json!({"action": route_key, "channel": channel}).to_string());
    request
}

async fn invoke(deps: &SdkDeps, event: Value) -> Reply {
    let invocation = Invocation::from_value(event).unwrap();
    presence::handle(LambdaEvent::new(invocation, Context::default()), deps)
        .await
        .unwrap()
}

async fn frame(deps: &SdkDeps, event: Value) -> Value {
    let Reply::Route(response) = invoke(deps, event).await else {
        panic!("expected a proxy response")
    };
    assert_eq!(response.status_code, 200);
    let Some(aws_lambda_events::encodings::Body::Text(text)) = &response.body else {
        panic!("expected a text body")
    };
    serde_json::from_str(text).unwrap()
}

async fn subscribe(deps: &SdkDeps, connection_id: &str, channel: &str) -> Value {
    frame(deps, route("subscribe", connection_id, channel)).await
}

async fn unsubscribe(deps: &SdkDeps, connection_id: &str, channel: &str) -> Value {
    frame(deps, route("unsubscribe", connection_id, channel)).await
}

#[tokio::test]
async fn subscribe_writes_the_item_and_counts_it_and_re_subscribing_changes_nothing() {
    let tables = Tables::create().await;
    let deps = tables.deps(100).await;
    let connection = testkit::unique_name("c");
    tables.connect(USER, &connection).await;

    let before = now_ms();
    assert_eq!(
        subscribe(&deps, &connection, "room/42").await,
        json!({"type": "subscribed", "channel": "room/42"})
    );
    let after = now_ms();
    let item = tables
        .subscription("room/42", &connection)
        .await
        .expect("the subscription item");
    assert_eq!(item[subscriptions::USER_ID], AttributeValue::S(USER.into()));
    assert_eq!(
        item[subscriptions::EXPIRES_AT],
        AttributeValue::N((CONNECTED_AT_MS / 1000 + 7200).to_string())
    );
    assert_eq!(item[subscriptions::COUNTED], AttributeValue::Bool(true));
    let subscribed_at: i64 = item[subscriptions::SUBSCRIBED_AT]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert!((before..=after).contains(&subscribed_at));
    assert_eq!(item.len(), 6, "exactly the documented attributes: {item:?}");
    assert_eq!(tables.counter(&connection).await, Some(1));

    assert_eq!(
        subscribe(&deps, &connection, "room/42").await,
        json!({"type": "subscribed", "channel": "room/42"})
    );
    assert_eq!(tables.counter(&connection).await, Some(1));
    assert_eq!(
        tables.subscription("room/42", &connection).await.unwrap(),
        item,
        "the item is not rewritten"
    );

    // A wildcard is stored under its own text.
    subscribe(&deps, &connection, "room/*").await;
    assert_eq!(tables.channels_of(&connection).await, ["room/*", "room/42"]);
    assert_eq!(tables.counter(&connection).await, Some(2));
}

#[tokio::test]
async fn the_101st_subscribe_is_refused_and_creates_nothing() {
    let tables = Tables::create().await;
    let deps = tables.deps(100).await;
    let connection = testkit::unique_name("c");
    tables.connect(USER, &connection).await;
    for n in 0..100 {
        assert_eq!(
            subscribe(&deps, &connection, &format!("room/{n}")).await["type"],
            "subscribed"
        );
    }
    assert_eq!(
        subscribe(&deps, &connection, "room/100").await,
        json!({"type": "error", "error": "too_many_subscriptions", "channel": "room/100",
               "message": "at most 100 subscriptions per connection; unsubscribe from one first"})
    );
    assert!(tables.subscription("room/100", &connection).await.is_none());
    assert_eq!(tables.channels_of(&connection).await.len(), 100);
    assert_eq!(tables.counter(&connection).await, Some(100));
    // One it has is still answered `subscribed`.
    assert_eq!(
        subscribe(&deps, &connection, "room/7").await["type"],
        "subscribed"
    );
}

/// moto applies a TransactWriteItems without any lock: a cancelled transaction rolls its
/// tables back to a copy taken when *it* started, which erases whatever a concurrent
/// transaction committed meanwhile (seen here: without this proxy 3 runs in 16 failed, e.g.
/// 99 items after 5 successes).
/// DynamoDB's transactions are serializable, so to model it this proxy hands moto one
/// request at a time. The 20 subscribes still run concurrently and their requests
/// interleave arbitrarily, so a non-atomic check-then-write (Get the counter, then Put)
/// would still let more than 5 through.
struct OneAtATime {
    upstream: String,
    http: reqwest::Client,
    turn: tokio::sync::Mutex<()>,
}

/// Starts the proxy on 127.0.0.1:0 (it stops with the test's runtime); returns its endpoint.
async fn one_at_a_time_proxy() -> String {
    let proxy = Arc::new(OneAtATime {
        upstream: testkit::moto_endpoint(),
        http: reqwest::Client::new(),
        turn: tokio::sync::Mutex::new(()),
    });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

async fn forward(
    State(proxy): State<Arc<OneAtATime>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _turn = proxy.turn.lock().await;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .http
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let upstream = request.send().await.expect("moto answers");
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    let body = upstream.bytes().await.expect("moto's body");
    (status, headers, body).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_subscribes_at_95_let_exactly_5_through() {
    let tables = Tables::create().await;
    let deps = tables.deps_via(&one_at_a_time_proxy().await, 100).await;
    let connection = testkit::unique_name("c");
    tables.connect(USER, &connection).await;
    for n in 0..95 {
        subscribe(&deps, &connection, &format!("room/old{n}")).await;
    }
    assert_eq!(tables.counter(&connection).await, Some(95));

    let channels: Vec<String> = (0..20).map(|n| format!("room/new{n}")).collect();
    let frames = futures::future::join_all(
        channels
            .iter()
            .map(|channel| subscribe(&deps, &connection, channel)),
    )
    .await;
    let outcome = |kind: &str| {
        frames
            .iter()
            .filter(|frame| frame["type"] == kind || frame["error"] == kind)
            .count()
    };
    assert_eq!(outcome("subscribed"), 5, "{frames:?}");
    assert_eq!(outcome("too_many_subscriptions"), 15, "{frames:?}");
    assert_eq!(tables.channels_of(&connection).await.len(), 100);
    assert_eq!(tables.counter(&connection).await, Some(100));
}

#[tokio::test]
async fn unsubscribe_removes_and_uncounts_and_twice_is_fine() {
    let tables = Tables::create().await;
    let deps = tables.deps(100).await;
    let connection = testkit::unique_name("c");
    tables.connect(USER, &connection).await;
    subscribe(&deps, &connection, "room/42").await;
    subscribe(&deps, &connection, "room/43").await;
    assert_eq!(tables.counter(&connection).await, Some(2));

    for _ in 0..2 {
        assert_eq!(
            unsubscribe(&deps, &connection, "room/42").await,
            json!({"type": "unsubscribed", "channel": "room/42"})
        );
        assert!(tables.subscription("room/42", &connection).await.is_none());
        assert_eq!(tables.counter(&connection).await, Some(1));
    }
    // A back end's item (no `counted`) is removed without touching the counter.
    tables
        .client
        .put_item()
        .table_name(&tables.subscriptions)
        .item(
            subscriptions::CHANNEL,
            AttributeValue::S("announcements".into()),
        )
        .item(
            subscriptions::CONNECTION_ID,
            AttributeValue::S(connection.clone()),
        )
        .item(subscriptions::USER_ID, AttributeValue::S(USER.into()))
        .item(
            subscriptions::EXPIRES_AT,
            AttributeValue::N("1700007200".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        unsubscribe(&deps, &connection, "announcements").await["type"],
        "unsubscribed"
    );
    assert_eq!(tables.channels_of(&connection).await, ["room/43"]);
    assert_eq!(tables.counter(&connection).await, Some(1));
}

#[tokio::test]
async fn subscribe_after_the_connection_item_is_gone_writes_nothing() {
    let tables = Tables::create().await;
    let deps = tables.deps(100).await;
    let connection = testkit::unique_name("c");
    assert_eq!(
        subscribe(&deps, &connection, "room/42").await,
        json!({"type": "error", "error": "connection_gone", "channel": "room/42",
               "message": "the connection has ended"})
    );
    assert!(tables.all_subscriptions().await.is_empty());
    assert!(
        tables.connection_item(USER, &connection).await.is_none(),
        "the counter update must not create a connection item"
    );
    // Unsubscribing then is fine, and creates nothing either.
    assert_eq!(
        unsubscribe(&deps, &connection, "room/42").await["type"],
        "unsubscribed"
    );
    assert!(tables.connection_item(USER, &connection).await.is_none());
}

/// The fixture's REMOVE record, for `connection_id` of `user_id`.
fn remove_record(user_id: &str, connection_id: &str) -> Value {
    let mut batch: Value = serde_json::from_str(REMOVE).unwrap();
    let keys = &mut batch["Records"][0]["dynamodb"]["Keys"];
    keys["user_id"] = json!({"S": user_id});
    keys["connection_id"] = json!({"S": connection_id});
    batch
}

#[tokio::test]
async fn a_remove_record_deletes_every_subscription_of_that_connection_only() {
    let tables = Tables::create().await;
    let deps = tables.deps(100).await;
    let gone = testkit::unique_name("gone");
    let other = testkit::unique_name("other");
    tables.connect(USER, &gone).await;
    tables.connect(USER, &other).await;
    // More than one BatchWriteItem's worth (25), including a back end's uncounted item.
    for n in 0..30 {
        subscribe(&deps, &gone, &format!("room/{n}")).await;
    }
    tables
        .client
        .put_item()
        .table_name(&tables.subscriptions)
        .item(
            subscriptions::CHANNEL,
            AttributeValue::S("announcements".into()),
        )
        .item(
            subscriptions::CONNECTION_ID,
            AttributeValue::S(gone.clone()),
        )
        .item(subscriptions::USER_ID, AttributeValue::S(USER.into()))
        .item(
            subscriptions::EXPIRES_AT,
            AttributeValue::N("1700007200".into()),
        )
        .send()
        .await
        .unwrap();
    subscribe(&deps, &other, "room/1").await;
    subscribe(&deps, &other, "room/*").await;
    assert_eq!(tables.channels_of(&gone).await.len(), 31);

    let Reply::Stream(response) = invoke(&deps, remove_record(USER, &gone)).await else {
        panic!("expected a stream response")
    };
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(tables.channels_of(&gone).await.is_empty());
    assert_eq!(tables.channels_of(&other).await, ["room/*", "room/1"]);

    // The same record again (a retry): nothing left to delete, still fine.
    let Reply::Stream(response) = invoke(&deps, remove_record(USER, &gone)).await else {
        panic!("expected a stream response")
    };
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn a_failed_cleanup_fails_the_record() {
    let tables = Tables::create().await;
    let deps = SdkDeps::from_sdk_config(
        &testkit::aws_config().await,
        Config {
            connections_table: tables.connections.clone(),
            destination: Destination::None,
            query_concurrency: 4,
            subscriptions_table: Some(testkit::unique_name("missing")),
            max_subscriptions_per_connection: 100,
            namespaces: Default::default(),
            history_table: None,
            members_table: None,
            notifications_queue_url: None,
        },
    );
    let Reply::Stream(response) = invoke(&deps, remove_record(USER, "cA=")).await else {
        panic!("expected a stream response")
    };
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures":[{"itemIdentifier":"100000000000000000002"}]})
    );
    // And a subscribe then answers `channels_unavailable`, not a panic or a hang.
    tables.connect(USER, "cA=").await;
    assert_eq!(
        subscribe(&deps, "cA=", "room/42").await["error"],
        "channels_unavailable"
    );
}
