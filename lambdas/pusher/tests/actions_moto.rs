//! Server-side control (`action`: disconnect, subscribe, unsubscribe) through the whole pusher
//! with real parts: moto's connections and subscriptions tables and queues, and the management
//! client over real HTTP to a management API shaped like API Gateway's (POST and DELETE).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::Message;
use pusher::{Config, Limits, SdkPusher};
use sumu_wire::{notification_attributes, subscriptions, table};
use support::management_api::{self, Answer, Event, ManagementApi};
use support::table::{
    connection_ids, create_subscriptions_table, create_table, dynamodb, put_items,
    put_subscriptions,
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
    dead_letters: String,
    pusher: RecordingSdkPusher,
}

/// alice: `a1=` and `a2=` live, `a3=` ended (its `expires_at` passed); bob: `b1=` live.
/// `a2=` holds a client's own (counted) subscription to `room/1`, and its counter says 1.
async fn stack() -> Stack {
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
            item("alice", "a3=", EXPIRED),
            item("bob", "b1=", LIVE),
        ],
    )
    .await;
    put_subscriptions(
        &dynamodb,
        &subscriptions,
        &[subscription("room/1", "a2=", "alice", LIVE)],
    )
    .await;
    dynamodb
        .update_item()
        .table_name(&connections)
        .key(table::USER_ID, AttributeValue::S("alice".into()))
        .key(table::CONNECTION_ID, AttributeValue::S("a2=".into()))
        .update_expression("SET #s = :one")
        .expression_attribute_names("#s", table::SUBSCRIPTIONS)
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
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
            limits: Limits {
                post_concurrency: 8,
                max_post_attempts: 2,
                backoff_base: Duration::from_millis(2),
                backoff_cap: Duration::from_millis(20),
                requeue_delay: Duration::ZERO,
                ..Limits::default()
            },
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
        dead_letters: urls[1].clone(),
        pusher,
    }
}

impl Stack {
    async fn send(&self, message_id: &str, body: &str) -> pusher::Metrics {
        let response =
            pusher::handle_sqs(sqs_event(&[(message_id, body, None)]), &self.pusher).await;
        assert!(response.batch_item_failures.is_empty());
        self.pusher.metrics.last()
    }

    /// Every message waiting on `queue` (until one receive comes back empty).
    async fn drain(&self, queue: &str) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .message_attribute_names("All")
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                return all;
            }
            for message in received.messages() {
                self.sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            all.extend(received.messages().iter().cloned());
        }
    }

    /// Every attribute of every subscription item, by `(channel, connection_id)`.
    async fn subscription_items(
        &self,
    ) -> HashMap<(String, String), HashMap<String, AttributeValue>> {
        let output = self
            .dynamodb
            .scan()
            .table_name(&self.subscriptions)
            .send()
            .await
            .unwrap();
        output
            .items()
            .iter()
            .map(|item| {
                (
                    (
                        item[subscriptions::CHANNEL].as_s().unwrap().clone(),
                        item[subscriptions::CONNECTION_ID].as_s().unwrap().clone(),
                    ),
                    item.clone(),
                )
            })
            .collect()
    }

    /// The `subscriptions` counter of a connection item (`None`: no such attribute).
    async fn counter(&self, user: &str, connection: &str) -> Option<String> {
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.connections)
            .key(table::USER_ID, AttributeValue::S(user.into()))
            .key(table::CONNECTION_ID, AttributeValue::S(connection.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        item.item()
            .and_then(|item| item.get(table::SUBSCRIPTIONS))
            .map(|n| n.as_n().unwrap().clone())
    }
}

fn message(id: &str, data: &str) -> Vec<u8> {
    format!(r#"{{"type":"message","id":"{id}","data":{data}}}"#).into_bytes()
}

#[tokio::test]
async fn a_disconnect_closes_every_connection_of_a_user_after_its_last_frame() {
    let stack = stack().await;
    let metrics = stack
        .send(
            "m-ban",
            r#"{"action":"disconnect","users":["alice","bob"],"exclude_users":["bob"],"data":{"reason":"banned"}}"#,
        )
        .await;
    let last_frame = message("m-ban", r#"{"reason":"banned"}"#);
    for connection in ["a1=", "a2="] {
        assert_eq!(
            stack.api.state.events_of(connection),
            vec![Event::Received(last_frame.clone()), Event::Closed],
            "{connection}: the last frame, then the close"
        );
    }
    assert!(stack.api.state.events_of("b1=").is_empty(), "excluded");
    assert!(stack.api.state.events_of("a3=").is_empty(), "ended");
    assert_eq!(
        (
            metrics.delivered,
            metrics.closed,
            metrics.stale,
            metrics.failed
        ),
        (2, 2, 1, 0)
    );
    // The ended connection's item is pruned; the closed ones are left to `$disconnect`.
    assert_eq!(
        connection_ids(&stack.dynamodb, &stack.connections).await,
        ["a1=", "a2=", "b1="]
    );
    // Without data: only closes. A connection gone already (410) counts as closed and is pruned.
    stack.api.state.gone.lock().unwrap().insert("b1=".into());
    let metrics = stack
        .send("m-kick", r#"{"action":"disconnect","connections":["b1="]}"#)
        .await;
    assert!(stack.api.state.events_of("b1=").is_empty());
    assert_eq!(
        (metrics.delivered, metrics.closed, metrics.stale),
        (0, 1, 1)
    );
    assert_eq!(
        connection_ids(&stack.dynamodb, &stack.connections).await,
        ["a1=", "a2="]
    );
    assert!(stack.drain(&stack.notifications).await.is_empty());
}

#[tokio::test]
async fn a_requeued_disconnect_gives_the_data_only_to_those_who_lack_it() {
    let stack = stack().await;
    // a1=: both posts throttled (data and close left); a2=: the post accepted, both closes
    // failing (only the close left). Two attempts each in this invocation.
    stack
        .api
        .state
        .script("a1=", vec![Answer::Throttle, Answer::Throttle]);
    stack.api.state.script(
        "a2=",
        vec![Answer::Accept, Answer::ServerError, Answer::Throttle],
    );
    let metrics = stack
        .send(
            "m-bye",
            r#"{"action":"disconnect","users":["alice"],"data":"bye"}"#,
        )
        .await;
    assert_eq!(
        (metrics.delivered, metrics.closed, metrics.requeued),
        (1, 0, 2)
    );
    let requeued = stack.drain(&stack.notifications).await;
    let mut bodies: Vec<&str> = requeued.iter().map(|m| m.body().unwrap()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            r#"{"action":"disconnect","connections":["a1="],"publication_id":"m-bye","data":"bye"}"#,
            r#"{"action":"disconnect","connections":["a2="],"data":null}"#,
        ]
    );
    for message in &requeued {
        let attributes = message.message_attributes().unwrap();
        assert_eq!(
            attributes[notification_attributes::GENERATION].string_value(),
            Some("1")
        );
        // Read like a back end's own request, not as a frame.
        assert!(!attributes.contains_key(notification_attributes::FRAME));
        let response = pusher::handle_sqs(lambda_event(message), &stack.pusher).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let frame = message("m-bye", r#""bye""#);
    for connection in ["a1=", "a2="] {
        assert_eq!(
            stack.api.state.events_of(connection),
            vec![Event::Received(frame.clone()), Event::Closed],
            "{connection}: the data once, with its id, then the close"
        );
    }
    assert!(stack.drain(&stack.notifications).await.is_empty());
}

#[tokio::test]
async fn a_subscribe_reaches_every_live_connection_of_a_user_once_and_no_ended_one() {
    let stack = stack().await;
    let before = stack.subscription_items().await;
    let request = r#"{"action":"subscribe","channel":"room/1","users":["alice"],"connections":["vanished="],"data":{"joined":"room/1"}}"#;
    let metrics = stack.send("m-sub", request).await;
    assert_eq!((metrics.subscribed, metrics.delivered), (1, 2));
    let items = stack.subscription_items().await;
    let mut keys: Vec<_> = items.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("room/1".to_string(), "a1=".to_string()),
            ("room/1".to_string(), "a2=".to_string())
        ],
        "a3= ended and vanished= has no connection item: neither is subscribed"
    );
    // The new item is a back end's: the connection's user and end, no `counted`.
    let written = &items[&("room/1".to_string(), "a1=".to_string())];
    assert_eq!(written[subscriptions::USER_ID].as_s().unwrap(), "alice");
    assert_eq!(
        written[subscriptions::EXPIRES_AT].as_n().unwrap(),
        &LIVE.unwrap().to_string()
    );
    assert!(
        written[subscriptions::SUBSCRIBED_AT]
            .as_n()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 1_700_000_000_000
    );
    assert!(!written.contains_key(subscriptions::COUNTED));
    // The client's own item is left as it was.
    let own = ("room/1".to_string(), "a2=".to_string());
    assert_eq!(items[&own], before[&own]);
    // The data after the change, to both connections.
    for connection in ["a1=", "a2="] {
        assert_eq!(
            stack.api.state.received_by(connection),
            vec![message("m-sub", r#"{"joined":"room/1"}"#)]
        );
    }
    assert_eq!(stack.counter("alice", "a2=").await.as_deref(), Some("1"));
    assert_eq!(stack.counter("alice", "a1=").await, None);

    // Repeated: nothing more changes.
    let metrics = stack
        .send(
            "m-sub-2",
            r#"{"action":"subscribe","channel":"room/1","users":["alice"]}"#,
        )
        .await;
    assert_eq!((metrics.subscribed, metrics.delivered), (0, 0));
    assert_eq!(stack.subscription_items().await, items);
    assert_eq!(stack.counter("alice", "a2=").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn an_unsubscribe_deletes_the_items_and_uncounts_a_counted_one_once() {
    let stack = stack().await;
    stack
        .send(
            "m-sub",
            r#"{"action":"subscribe","channel":"room/1","users":["alice"]}"#,
        )
        .await;
    assert_eq!(stack.subscription_items().await.len(), 2);
    let metrics = stack
        .send(
            "m-unsub",
            r#"{"action":"unsubscribe","channel":"room/1","users":["alice"],"data":"left"}"#,
        )
        .await;
    assert_eq!((metrics.unsubscribed, metrics.delivered), (2, 2));
    assert!(stack.subscription_items().await.is_empty());
    // a2='s item was counted: its counter went from 1 to 0; a1='s was a back end's.
    assert_eq!(stack.counter("alice", "a2=").await.as_deref(), Some("0"));
    assert_eq!(stack.counter("alice", "a1=").await, None);
    // Repeated: nothing to delete, nothing uncounted (never below zero).
    let metrics = stack
        .send(
            "m-unsub-2",
            r#"{"action":"unsubscribe","channel":"room/1","users":["alice"]}"#,
        )
        .await;
    assert_eq!(metrics.unsubscribed, 0);
    assert_eq!(stack.counter("alice", "a2=").await.as_deref(), Some("0"));
}

#[tokio::test]
async fn an_invalid_action_is_dead_lettered_with_its_reason_and_touches_nobody() {
    let stack = stack().await;
    let body = r#"{"action":"subscribe","users":["alice"],"data":1}"#;
    let metrics = stack.send("m-bad", body).await;
    assert_eq!(metrics.rejected, 1);
    let dead = stack.drain(&stack.dead_letters).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some(body));
    assert_eq!(
        dead[0].message_attributes().unwrap()[notification_attributes::REJECTION_REASON]
            .string_value(),
        Some("invalid_request")
    );
    assert!(stack.api.state.events_of("a1=").is_empty());
    assert_eq!(stack.subscription_items().await.len(), 1);
}
