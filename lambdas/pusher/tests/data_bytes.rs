//! `data` travels byte for byte (docs/pusher.md, "Data travels byte for byte"): through the whole
//! pusher with real parts (moto's tables and queues, a real HTTP management API), what a
//! connection receives is exactly the bytes the back end or the emitting client's gateway
//! template wrote, in a notification, a publication's envelope, an emit, a narrowed re-queue and
//! the shards of a broadcast; the envelope's and an error frame's keys are in the documented
//! order.
//!
//! The sample has spaces inside, keys out of order, `1.0`, `2.50` and `1E3`, integers past `u64`
//! and `f64`, and `\u` escapes, so any re-serialization of `data` changes it in every build of
//! serde_json, with or without `preserve_order` (`the_sample_betrays_any_reserialization`).
//! The deployed Lambda is built on its own, without `preserve_order` (which `local/vtl` switches
//! on in workspace builds, for sumu-local): `scripts/test` also runs this file alone,
//! `SUMU_EXPECT_SERDE_JSON_MAPS=sorted cargo test -p pusher --test data_bytes`, and
//! `the_build_is_the_one_expected` fails if that run was not such a build.

mod support;

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use pusher::{Config, Limits, SdkPusher};
use serde_json::{json, Value};
use support::management_api::{self, Answer, ManagementApi};
use support::table::{
    create_subscriptions_table, create_table, dynamodb, put_items, put_subscriptions,
};
use support::{
    item, lambda_event, sns_event, sqs_event, subscription, RecordedMetrics, RecordingSdkPusher,
    LIVE,
};

/// The `data` every test sends, as the back end writes it.
const DATA: &str = r#"{ "z" : 1, "a":2, "n":1.0, "big":12345678901234567890,
 "bigger": 123456789012345678901234567890, "e":1E3, "d":2.50,
 "s":"caf\u00e9 \ud83d\ude00 \"q\" \/", "nested":{"y":[1, {"b":null,"a":true}], "x":{}} }"#;

struct Stack {
    api: ManagementApi,
    sqs: aws_sdk_sqs::Client,
    notifications: String,
    pusher: RecordingSdkPusher,
}

/// alice: `a1=` and `a2=`, both subscribed to `room/1`; bob: `b1=`, subscribed to `room/*`.
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
        ],
    )
    .await;
    put_subscriptions(
        &dynamodb,
        &subscriptions,
        &[
            subscription("room/1", "a1=", "alice", LIVE),
            subscription("room/1", "a2=", "alice", LIVE),
            subscription("room/*", "b1=", "bob", LIVE),
        ],
    )
    .await;
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let urls = support::notification_queues(&sqs).await;
    let pusher = SdkPusher::from_sdk_config(
        &config,
        &Config {
            connections_table: connections,
            subscriptions_table: subscriptions,
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
        sqs,
        notifications: urls[0].clone(),
        pusher,
    }
}

/// One failed attempt re-queues a connection (narrowed), and no time is lost waiting.
fn limits() -> Limits {
    Limits {
        max_post_attempts: 1,
        backoff_base: Duration::from_millis(2),
        backoff_cap: Duration::from_millis(20),
        requeue_delay: Duration::ZERO,
        ..Limits::default()
    }
}

impl Stack {
    /// What `connection` received, as text (every body the pusher posts is UTF-8 JSON).
    fn received(&self, connection: &str) -> Vec<String> {
        self.api
            .state
            .received_by(connection)
            .into_iter()
            .map(|bytes| String::from_utf8(bytes).unwrap())
            .collect()
    }

    /// Hands every message of the notifications queue (re-queues, shards, emits) to the
    /// handler with its attributes, as the event source mapping would, until it is empty.
    async fn drain_queue(&self) {
        for _ in 0..20 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.notifications)
                .message_attribute_names("All")
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                return;
            }
            for message in received.messages() {
                let response = pusher::handle_sqs(lambda_event(message), &self.pusher).await;
                assert!(response.batch_item_failures.is_empty());
                self.sqs
                    .delete_message()
                    .queue_url(&self.notifications)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        panic!("the notifications queue never emptied");
    }
}

#[test]
fn the_sample_betrays_any_reserialization() {
    // Whatever serde_json's features in this build, a trip through `Value` changes the sample
    // (spaces, escapes, number forms): a pusher that re-serialized `data` fails these tests.
    let again = serde_json::to_string(&serde_json::from_str::<Value>(DATA).unwrap()).unwrap();
    assert_ne!(again, DATA);
}

/// How serde_json orders a map in this build: `insertion` with `preserve_order`, else `sorted`.
fn map_order() -> &'static str {
    let text = serde_json::to_string(&json!({"b": 1, "a": 2})).unwrap();
    if text == r#"{"b":1,"a":2}"# {
        "insertion"
    } else {
        "sorted"
    }
}

#[test]
fn the_build_is_the_one_expected() {
    let order = map_order();
    println!("serde_json maps in this build: {order}");
    // Set by scripts/test for the run that stands for the Lambda's own build.
    if let Ok(expected) = std::env::var("SUMU_EXPECT_SERDE_JSON_MAPS") {
        assert_eq!(
            order, expected,
            "this run was meant to build the pusher as scripts/build-lambdas does"
        );
    }
}

#[tokio::test]
async fn a_notification_arrives_as_sent_first_time_after_a_requeue_and_over_sns() {
    let stack = stack(limits()).await;
    // a2= fails once: it gets the bytes from the narrowed re-queue instead.
    stack.api.state.script("a2=", vec![Answer::ServerError]);
    let body = format!(r#"{{"users":["alice"],"data":{DATA}}}"#);
    let response = pusher::handle_sqs(sqs_event(&[("m1", &body, None)]), &stack.pusher).await;
    let metrics = stack.pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((metrics.delivered, metrics.requeued), (1, 1));
    stack.drain_queue().await;
    // The data as sent, inside the message frame; the re-queue delivers the same frame.
    let message = |id: &str| format!(r#"{{"type":"message","id":"{id}","data":{DATA}}}"#);
    assert_eq!(stack.received("a1="), [message("m1")]);
    assert_eq!(stack.received("a2="), [message("m1")]);

    pusher::handle_sns(sns_event(&body), &stack.pusher)
        .await
        .unwrap();
    // Over SNS the message id is the topic message's.
    let sns_id = "95df01b4-ee98-5cb9-9903-4c221d41eb5e";
    assert_eq!(stack.received("a1="), [message("m1"), message(sns_id)]);
    assert!(stack.received("b1=").is_empty());
}

#[tokio::test]
async fn a_sharded_broadcast_arrives_as_sent_in_every_shard() {
    // At most one connection per invocation: the broadcast travels on as shard messages.
    let stack = stack(Limits {
        shard_threshold: 1,
        ..limits()
    })
    .await;
    let body = format!(r#"{{"exclude_users":[],"data":{DATA}}}"#);
    let response = pusher::handle_sqs(sqs_event(&[("m1", &body, None)]), &stack.pusher).await;
    assert!(response.batch_item_failures.is_empty());
    stack.drain_queue().await;
    // Every shard envelopes the data as sent with the original message's id.
    let message = format!(r#"{{"type":"message","id":"m1","data":{DATA}}}"#);
    for connection in ["a1=", "a2=", "b1="] {
        assert_eq!(
            stack.received(connection),
            std::slice::from_ref(&message),
            "{connection}"
        );
    }
}

#[tokio::test]
async fn a_back_end_publication_wraps_the_bytes_as_sent_in_its_envelope() {
    let stack = stack(limits()).await;
    stack.api.state.script("b1=", vec![Answer::Throttle]);
    let body = format!(r#"{{"channels":["room/1"],"data":{DATA}}}"#);
    let response = pusher::handle_sqs(sqs_event(&[("m-7", &body, None)]), &stack.pusher).await;
    let metrics = stack.pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((metrics.delivered, metrics.requeued), (2, 1));
    stack.drain_queue().await;
    let envelope =
        format!(r#"{{"type":"publication","channel":"room/1","id":"m-7","data":{DATA}}}"#);
    for connection in ["a1=", "a2=", "b1="] {
        assert_eq!(
            stack.received(connection),
            [envelope.as_str()],
            "{connection}"
        );
    }
}

#[tokio::test]
async fn an_emit_wraps_the_bytes_the_gateway_wrote_with_its_sender() {
    let stack = stack(limits()).await;
    let attribute = |data_type: &str, value: &str| {
        MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .unwrap()
    };
    // The body mapping-templates/emit.request.vtl writes, with the attributes it sets.
    stack
        .sqs
        .send_message()
        .queue_url(&stack.notifications)
        .message_body(format!(r#"{{"channels":["room/1"],"data":{DATA}}}"#))
        .message_attributes("user_id", attribute("String", "bob"))
        .message_attributes("connection_id", attribute("String", "b1="))
        .message_attributes("timestamp", attribute("Number", "1700000000000"))
        .message_attributes("source", attribute("String", "apigw.route.emit"))
        .message_attributes("channels_publish", attribute("String", "room/*"))
        .send()
        .await
        .unwrap();
    stack.drain_queue().await;
    let received = stack.received("a1=");
    let [envelope] = received.as_slice() else {
        panic!("a1= got {received:?}")
    };
    let id: Value = serde_json::from_str(envelope).unwrap();
    let id = id["id"].as_str().unwrap();
    assert_eq!(
        envelope,
        &format!(
            r#"{{"type":"publication","channel":"room/1","id":"{id}","data":{DATA},"from":"bob"}}"#
        )
    );
    assert_eq!(stack.received("a2="), received);
    assert!(stack.received("b1=").is_empty(), "not back to its sender");

    // A refused emit: its error frame, keys in the documented order in every build.
    stack
        .sqs
        .send_message()
        .queue_url(&stack.notifications)
        .message_body(format!(r#"{{"channels":["lobby"],"data":{DATA}}}"#))
        .message_attributes("user_id", attribute("String", "bob"))
        .message_attributes("connection_id", attribute("String", "b1="))
        .message_attributes("timestamp", attribute("Number", "1700000000000"))
        .message_attributes("source", attribute("String", "apigw.route.emit"))
        .message_attributes("channels_publish", attribute("String", "room/*"))
        .send()
        .await
        .unwrap();
    stack.drain_queue().await;
    assert_eq!(
        stack.received("b1="),
        [
            r#"{"type":"error","error":"forbidden","channel":"lobby","message":"no publish grant covers lobby"}"#
        ]
    );
}
