//! Publications and emits through the whole pusher with real parts: moto's connections and
//! subscriptions tables (created here with the documented schema) and queues, and the SDK
//! over real HTTP to a management API shaped like API Gateway's.

mod support;

use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use pusher::{Config, Limits, SdkPusher};
use serde_json::{json, Value};
use support::management_api::{self, Answer, ManagementApi};
use support::table::{
    connection_ids, create_subscriptions_table, create_table, dynamodb, put_items,
    put_subscriptions, subscription_keys,
};
use support::{
    item, lambda_event, sqs_event, subscription, RecordedMetrics, RecordingSdkPusher, EXPIRED, LIVE,
};

struct Stack {
    api: ManagementApi,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    connections: String,
    subscriptions: String,
    notifications: String,
    pusher: RecordingSdkPusher,
}

/// alice: `a1=` (room/42 and room/*), `a2=` (room/42); bob: `b1=` (room/*); carol: `c1=` (*);
/// dave: `d1=` (room/43); erin: `e1=` (rooms/*); and `g1=`, whose connection and
/// subscription expired.
async fn stack(limits: Limits) -> Stack {
    let api = management_api::start("prod").await;
    let dynamodb = dynamodb().await;
    let connections = create_table(&dynamodb).await;
    let subscriptions = create_subscriptions_table(&dynamodb).await;
    put_items(
        &dynamodb,
        &connections,
        &[
            item("alice", "a1=", LIVE),
            item("alice", "a2=", LIVE),
            item("bob", "b1=", LIVE),
            item("carol", "c1=", LIVE),
            item("dave", "d1=", LIVE),
            item("erin", "e1=", LIVE),
            item("ghost", "g1=", EXPIRED),
        ],
    )
    .await;
    put_subscriptions(
        &dynamodb,
        &subscriptions,
        &[
            subscription("room/42", "a1=", "alice", LIVE),
            subscription("room/*", "a1=", "alice", LIVE),
            subscription("room/42", "a2=", "alice", LIVE),
            subscription("room/*", "b1=", "bob", LIVE),
            subscription("*", "c1=", "carol", LIVE),
            subscription("room/43", "d1=", "dave", LIVE),
            subscription("rooms/*", "e1=", "erin", LIVE),
            subscription("room/42", "g1=", "ghost", EXPIRED),
        ],
    )
    .await;
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let urls = support::notification_queues(&sqs).await;
    let pusher = SdkPusher::from_sdk_config(
        &config,
        &Config {
            connections_table: connections.clone(),
            subscriptions_table: subscriptions.clone(),
            management_endpoint: api.endpoint.clone(),
            notifications_queue_url: Some(urls[0].clone()),
            dead_letter_queue_url: Some(urls[1].clone()),
            history_table: None,
            namespaces: Default::default(),
            limits,
        },
    )
    .with_metrics(RecordedMetrics::default());
    Stack {
        api,
        dynamodb,
        sqs,
        connections,
        subscriptions,
        notifications: urls[0].clone(),
        pusher,
    }
}

fn limits() -> Limits {
    Limits {
        post_concurrency: 8,
        max_post_attempts: 2,
        backoff_base: Duration::from_millis(2),
        backoff_cap: Duration::from_millis(20),
        requeue_delay: Duration::ZERO,
        ..Limits::default()
    }
}

const EVERYONE: [&str; 7] = ["a1=", "a2=", "b1=", "c1=", "d1=", "e1=", "g1="];

impl Stack {
    /// What each connection received, parsed, for every connection of the room.
    fn received(&self) -> Vec<(&'static str, Vec<Value>)> {
        EVERYONE
            .iter()
            .map(|connection| {
                let got = self
                    .api
                    .state
                    .received_by(connection)
                    .iter()
                    .map(|bytes| serde_json::from_slice(bytes).unwrap())
                    .collect();
                (*connection, got)
            })
            .collect()
    }

    /// The connections that received anything.
    fn reached(&self) -> Vec<&'static str> {
        self.received()
            .into_iter()
            .filter(|(_, got)| !got.is_empty())
            .map(|(connection, _)| connection)
            .collect()
    }

    async fn publish(&self, message_id: &str, body: &str) -> pusher::Metrics {
        let response =
            pusher::handle_sqs(sqs_event(&[(message_id, body, None)]), &self.pusher).await;
        let metrics = self.pusher.metrics.last();
        assert!(response.batch_item_failures.is_empty());
        metrics
    }

    /// Sends `body` to the real notifications queue with the attributes the emit template
    /// sets, receives it back and hands it to the handler as Lambda would.
    async fn emit(
        &self,
        body: &str,
        user_id: &str,
        connection_id: &str,
        publish: Option<&str>,
    ) -> pusher::Metrics {
        let attribute = |data_type: &str, value: &str| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .unwrap()
        };
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.notifications)
            .message_body(body)
            .message_attributes("user_id", attribute("String", user_id))
            .message_attributes("connection_id", attribute("String", connection_id))
            .message_attributes("timestamp", attribute("Number", "1700000000000"))
            .message_attributes("source", attribute("String", "apigw.route.emit"));
        if let Some(grants) = publish {
            send = send.message_attributes("channels_publish", attribute("String", grants));
        }
        send.send().await.unwrap();
        let message = self.receive_one().await;
        let response = pusher::handle_sqs(lambda_event(&message), &self.pusher).await;
        let metrics = self.pusher.metrics.last();
        assert!(response.batch_item_failures.is_empty());
        metrics
    }

    async fn receive_one(&self) -> Message {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.notifications)
            .message_attribute_names("All")
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap();
        let message = received.messages().first().cloned().expect("a message");
        self.sqs
            .delete_message()
            .queue_url(&self.notifications)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
        message
    }
}

#[tokio::test]
async fn exact_and_wildcard_subscribers_get_one_envelope_and_room_43_stays_out() {
    let stack = stack(limits()).await;
    let metrics = stack
        .publish("m-42", r#"{"channels":["room/42"],"data":{"text":"hi"}}"#)
        .await;
    let envelope =
        json!({"type":"publication","channel":"room/42","id":"m-42","data":{"text":"hi"}});
    for (connection, got) in stack.received() {
        match connection {
            // a1= is subscribed through room/42 and room/*: once.
            "a1=" | "a2=" | "b1=" | "c1=" => {
                assert_eq!(got, vec![envelope.clone()], "{connection}")
            }
            // d1= (room/43 only), e1= (rooms/*), g1= (expired): nothing.
            _ => assert!(got.is_empty(), "{connection} got {got:?}"),
        }
    }
    assert_eq!((metrics.delivered, metrics.publications), (4, 1));
    // The expired subscription was deleted as it was met; everything else is still there.
    assert!(!subscription_keys(&stack.dynamodb, &stack.subscriptions)
        .await
        .contains(&("room/42".to_string(), "g1=".to_string())));
    assert_eq!(metrics.stale, 1);

    // A subscriber of room/42 only gets nothing from room/43.
    stack
        .publish("m-43", r#"{"channels":["room/43"],"data":"other room"}"#)
        .await;
    assert_eq!(stack.api.state.received_by("a2=").len(), 1);
    let d1 = &stack.received()[4];
    assert_eq!(d1.0, "d1=");
    assert_eq!(
        d1.1,
        [json!({"type":"publication","channel":"room/43","id":"m-43","data":"other room"})]
    );
}

#[tokio::test]
async fn exclude_users_and_exclude_connections_keep_them_out() {
    let stack = stack(limits()).await;
    stack
        .publish(
            "m1",
            r#"{"channels":["room/42"],"exclude_users":["bob"],"exclude_connections":["a2="],"data":1}"#,
        )
        .await;
    assert_eq!(stack.reached(), ["a1=", "c1="]);
}

#[tokio::test]
async fn an_emit_reaches_the_others_with_the_trusted_from_and_never_the_sender() {
    let stack = stack(limits()).await;
    let metrics = stack
        .emit(
            r#"{"channels":["room/42"],"data":{"text":"hello","from":"mallory"}}"#,
            "alice",
            "a1=",
            Some("room/* user/alice"),
        )
        .await;
    assert_eq!((metrics.delivered, metrics.refused_emits), (3, 0));
    assert_eq!(stack.reached(), ["a2=", "b1=", "c1="]);
    let got = &stack.received()[2].1;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["from"], "alice");
    assert_eq!(got[0]["data"], json!({"text":"hello","from":"mallory"}));
    assert_eq!(got[0]["channel"], "room/42");
    assert!(got[0]["id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn an_emit_without_a_publish_grant_gets_its_error_frame_and_reaches_nobody() {
    let stack = stack(limits()).await;
    for grants in [None, Some("room/43 user/bob")] {
        let metrics = stack
            .emit(
                r#"{"channels":["room/42"],"data":"psst"}"#,
                "bob",
                "b1=",
                grants,
            )
            .await;
        assert_eq!(metrics.refused_emits, 1);
    }
    assert_eq!(stack.reached(), ["b1="]);
    let frame = json!({"type":"error","error":"forbidden","channel":"room/42",
        "message":"no publish grant covers room/42"});
    assert_eq!(stack.received()[2].1, [frame.clone(), frame]);
}

#[tokio::test]
async fn the_id_and_the_bytes_survive_a_narrowed_requeue_through_the_real_queue() {
    let stack = stack(limits()).await;
    // Two attempts per invocation: b1= fails both, then recovers.
    stack
        .api
        .state
        .script("b1=", vec![Answer::ServerError, Answer::Throttle]);
    let metrics = stack
        .publish("m-first", r#"{"channels":["room/42"],"data":{"n":1}}"#)
        .await;
    assert_eq!((metrics.delivered, metrics.requeued), (3, 1));
    assert!(stack.api.state.received_by("b1=").is_empty());

    let message = stack.receive_one().await;
    let generation = message.message_attributes().unwrap()["sumu_generation"]
        .string_value()
        .unwrap()
        .to_string();
    assert_eq!(generation, "1");
    let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(body["publication_id"], "m-first");
    assert_eq!(body["connections"], json!(["b1="]));

    let response = pusher::handle_sqs(
        sqs_event(&[("m-second", message.body().unwrap(), Some(1))]),
        &stack.pusher,
    )
    .await;
    let metrics = stack.pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(metrics.delivered, 1);
    let b1 = stack.api.state.received_by("b1=");
    assert_eq!(b1, stack.api.state.received_by("a2="), "the same bytes");
    let envelope: Value = serde_json::from_slice(&b1[0]).unwrap();
    assert_eq!(envelope["id"], "m-first");
}

#[tokio::test]
async fn a_410_deletes_the_connection_item_and_every_subscription_it_was_found_through() {
    let stack = stack(limits()).await;
    stack.api.state.gone.lock().unwrap().insert("a1=".into());
    let metrics = stack
        .publish("m1", r#"{"channels":["room/42"],"data":1}"#)
        .await;
    assert_eq!(stack.reached(), ["a2=", "b1=", "c1="]);
    // a1= (gone) and g1='s expired subscription.
    assert_eq!(metrics.stale, 2);
    let left = subscription_keys(&stack.dynamodb, &stack.subscriptions).await;
    let pairs: Vec<(&str, &str)> = left.iter().map(|(c, k)| (c.as_str(), k.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("*", "c1="),
            ("room/*", "b1="),
            ("room/42", "a2="),
            ("room/43", "d1="),
            ("rooms/*", "e1="),
        ]
    );
    let connections = connection_ids(&stack.dynamodb, &stack.connections).await;
    assert!(!connections.contains(&"a1=".to_string()));
    assert!(connections.contains(&"a2=".to_string()));
    assert_eq!(connections.len(), 6);
}
