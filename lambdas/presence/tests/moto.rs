//! The SDK-backed seams against a real moto server (started by the testkit unless
//! `SUMU_MOTO_ENDPOINT` names one): the store counts only live connections, the sinks
//! deliver events with their attributes, and the deployed deps run the whole handler.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use lambda_runtime::{Context, LambdaEvent};
use presence::sink::MessagesDestination;
use presence::{
    Config, ConnectionCounter, Destination, DynamoConnectionStore, EventSink, Invocation, Reply,
    SdkDeps, SdkEventSink,
};
use sumu_wire::{table, Presence, PresenceEvent, PresenceEventType, PresenceStatus};

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn put_connection(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    user_id: &str,
    connection_id: &str,
    expires_at: i64,
) {
    client
        .put_item()
        .table_name(table_name)
        .item(table::USER_ID, AttributeValue::S(user_id.into()))
        .item(
            table::CONNECTION_ID,
            AttributeValue::S(connection_id.into()),
        )
        .item(
            table::CONNECTED_AT,
            AttributeValue::N(((expires_at - 7200) * 1000).to_string()),
        )
        .item(table::EXPIRES_AT, AttributeValue::N(expires_at.to_string()))
        .send()
        .await
        .expect("put a connection");
}

async fn create_queue(client: &aws_sdk_sqs::Client) -> String {
    client
        .create_queue()
        .queue_name(testkit::unique_name("messages"))
        .send()
        .await
        .expect("create a queue")
        .queue_url
        .expect("a queue url")
}

/// Polls the queue until one message arrives (generous deadline, no fixed sleep).
async fn receive_one(client: &aws_sdk_sqs::Client, queue_url: &str) -> Message {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
            return message;
        }
        assert!(Instant::now() < deadline, "no message on {queue_url}");
    }
}

fn attributes(message: &Message) -> HashMap<String, (String, String)> {
    message
        .message_attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value): (String, MessageAttributeValue)| {
            (
                name,
                (value.data_type, value.string_value.unwrap_or_default()),
            )
        })
        .collect()
}

fn sample_event() -> PresenceEvent {
    PresenceEvent {
        kind: PresenceEventType::Presence,
        message: Presence {
            user_id: "u1".into(),
            status: PresenceStatus::Online,
            connection_id: "cA=".into(),
            connections: 2,
            timestamp: 1_700_000_000_000,
            reason: None,
        },
    }
}

fn assert_delivered(message: &Message, event: &PresenceEvent) {
    let body: PresenceEvent =
        serde_json::from_str(message.body().unwrap()).expect("the body is a presence event");
    assert_eq!(&body, event);
    let attributes = attributes(message);
    assert_eq!(
        attributes["source"],
        ("String".into(), "lambda.presence.watchdog".into())
    );
    assert_eq!(
        attributes["user_id"],
        ("String".into(), event.message.user_id.clone())
    );
    assert_eq!(
        attributes["timestamp"],
        ("Number".into(), event.message.timestamp.to_string())
    );
}

#[tokio::test]
async fn the_store_counts_only_live_connections_with_a_strongly_consistent_count_query() {
    let config = testkit::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table_name = testkit::create_connections_table(&client).await;
    let now = now_seconds();
    put_connection(&client, &table_name, "u1", "live-1", now + 3600).await;
    put_connection(&client, &table_name, "u1", "live-2", now + 10).await;
    // Expired but not yet deleted by TTL (which may take 48 h): not live.
    put_connection(&client, &table_name, "u1", "expired", now - 60).await;
    put_connection(&client, &table_name, "u1", "expires-now", now).await;
    put_connection(&client, &table_name, "u2", "live-3", now + 3600).await;
    put_connection(&client, &table_name, "u3", "expired", now - 1).await;

    let store = DynamoConnectionStore::new(client, &table_name);
    assert_eq!(store.live_connections("u1", now).await.unwrap(), 2);
    assert_eq!(store.live_connections("u2", now).await.unwrap(), 1);
    assert_eq!(store.live_connections("u3", now).await.unwrap(), 0);
    assert_eq!(store.live_connections("nobody", now).await.unwrap(), 0);

    let query = store.live_connections_query("u1", now);
    assert_eq!(query.get_consistent_read(), &Some(true));
    assert_eq!(query.get_select(), &Some(Select::Count));
    assert_eq!(
        query.get_filter_expression().as_deref(),
        Some("#expires > :now")
    );
    assert_eq!(
        query.get_expression_attribute_names().as_ref().unwrap()["#expires"],
        "expires_at"
    );
}

#[tokio::test]
async fn the_store_reports_a_failed_query() {
    let config = testkit::aws_config().await;
    let store = DynamoConnectionStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        testkit::unique_name("missing"),
    );
    let error = store
        .live_connections("u1", now_seconds())
        .await
        .unwrap_err();
    assert_eq!(error.user_id, "u1");
    assert!(
        error.message.contains("ResourceNotFound"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn the_queue_sink_sends_the_event_with_its_three_attributes() {
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = create_queue(&sqs).await;
    let sink = SdkEventSink {
        destination: MessagesDestination::Queue {
            client: sqs.clone(),
            queue_url: queue_url.clone(),
        },
        notifications: None,
    };
    let event = sample_event();
    sink.deliver(&event).await.unwrap();
    assert_delivered(&receive_one(&sqs, &queue_url).await, &event);
}

#[tokio::test]
async fn the_topic_sink_publishes_the_event_with_its_three_attributes() {
    let config = testkit::aws_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic_arn = sns
        .create_topic()
        .name(testkit::unique_name("messages"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = create_queue(&sqs).await;
    // A back end's subscription: raw delivery, filtered on the source attribute.
    testkit::subscribe_queue_to_topic(
        &config,
        &topic_arn,
        &queue_url,
        Some(r#"{"source":["lambda.presence.watchdog"]}"#),
    )
    .await;

    let sink = SdkEventSink {
        destination: MessagesDestination::Topic {
            client: sns,
            topic_arn,
        },
        notifications: None,
    };
    let event = sample_event();
    sink.deliver(&event).await.unwrap();
    assert_delivered(&receive_one(&sqs, &queue_url).await, &event);
}

#[tokio::test]
async fn a_sink_failure_names_the_user() {
    let config = testkit::aws_config().await;
    let sink = SdkEventSink {
        destination: MessagesDestination::Queue {
            client: aws_sdk_sqs::Client::new(&config),
            queue_url: format!(
                "{}/123456789012/{}",
                testkit::moto_endpoint(),
                testkit::unique_name("missing")
            ),
        },
        notifications: None,
    };
    let error = sink.deliver(&sample_event()).await.unwrap_err();
    assert_eq!(error.subject, "u1");
}

/// The deps sumu-local builds (explicit config, no environment) run the whole handler: a
/// stream record in, an event on the messages queue out; then the queue disappears and the
/// record is reported for retry.
#[tokio::test]
async fn the_deployed_deps_turn_a_stream_record_into_a_queued_event() {
    let config = testkit::aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let table_name = testkit::create_connections_table(&dynamodb).await;
    let queue_url = create_queue(&sqs).await;
    put_connection(&dynamodb, &table_name, "u1", "cA=", now_seconds() + 7200).await;

    let deps = SdkDeps::from_sdk_config(
        &config,
        Config {
            connections_table: table_name.clone(),
            destination: Destination::Queue {
                queue_url: queue_url.clone(),
            },
            query_concurrency: 4,
            subscriptions_table: None,
            max_subscriptions_per_connection: 100,
            namespaces: Default::default(),
            history_table: None,
            members_table: None,
            notifications_queue_url: None,
        },
    );
    let fixture = include_str!("fixtures/single-device-online.json");
    let invocation: Invocation = serde_json::from_str(fixture).unwrap();
    let reply = presence::handle(LambdaEvent::new(invocation, Context::default()), &deps)
        .await
        .unwrap();
    let Reply::Stream(response) = reply else {
        panic!("expected a stream response")
    };
    assert!(response.batch_item_failures.is_empty());
    let mut expected = sample_event();
    expected.message.connections = 1;
    assert_delivered(&receive_one(&sqs, &queue_url).await, &expected);

    sqs.delete_queue()
        .queue_url(&queue_url)
        .send()
        .await
        .unwrap();
    let invocation: Invocation = serde_json::from_str(fixture).unwrap();
    let reply = presence::handle(LambdaEvent::new(invocation, Context::default()), &deps)
        .await
        .unwrap();
    let Reply::Stream(response) = reply else {
        panic!("expected a stream response")
    };
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({"batchItemFailures":[{"itemIdentifier":"100000000000000000001"}]})
    );

    // The same deps answer a back end's question from the table.
    let invocation: Invocation = serde_json::from_str(r#"{"users":["u1","u2"]}"#).unwrap();
    let reply = presence::handle(LambdaEvent::new(invocation, Context::default()), &deps)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&reply).unwrap(),
        serde_json::json!({"type":"presence","users":[
            {"user_id":"u1","status":"ONLINE","connections":1},
            {"user_id":"u2","status":"OFFLINE","connections":0}
        ]})
    );
}
