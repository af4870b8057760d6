//! The DynamoDB store and the SQS outbox against a real moto server (via the testkit).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType, WriteRequest,
};
use pusher::{
    ConnectionItem, ConnectionKey, ConnectionStore, DynamoStore, Outbox, Pusher, SqsOutbox,
};
use sumu_wire::{notification_attributes, table};
use support::{sqs_event, test_limits, FakeOutbox, FakePoster, EXPIRED, LIVE};

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&testkit::aws_config().await)
}

/// A connections table shaped as DESIGN.md says: keys, and the keys-only `connection_id` index.
async fn create_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = testkit::unique_name("connections");
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(table::USER_ID))
        .attribute_definitions(attribute(table::CONNECTION_ID))
        .key_schema(key(table::USER_ID, KeyType::Hash))
        .key_schema(key(table::CONNECTION_ID, KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(table::CONNECTION_INDEX)
                .key_schema(key(table::CONNECTION_ID, KeyType::Hash))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
    name
}

/// Writes items the way the `$connect` template does (plus the attributes the pusher ignores).
async fn put_items(client: &aws_sdk_dynamodb::Client, table_name: &str, items: &[ConnectionItem]) {
    for batch in items.chunks(25) {
        let requests: Vec<WriteRequest> = batch
            .iter()
            .map(|item| {
                let mut attributes = HashMap::from([
                    (
                        table::USER_ID.to_string(),
                        AttributeValue::S(item.key.user_id.clone()),
                    ),
                    (
                        table::CONNECTION_ID.to_string(),
                        AttributeValue::S(item.key.connection_id.clone()),
                    ),
                    (
                        table::CONNECTED_AT.to_string(),
                        AttributeValue::N("1700000000000".into()),
                    ),
                    (
                        table::SOURCE_IP.to_string(),
                        AttributeValue::S("203.0.113.9".into()),
                    ),
                ]);
                if let Some(expires_at) = item.expires_at {
                    attributes.insert(
                        table::EXPIRES_AT.to_string(),
                        AttributeValue::N(expires_at.to_string()),
                    );
                }
                let put = PutRequest::builder()
                    .set_item(Some(attributes))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let output = client
            .batch_write_item()
            .request_items(table_name, requests)
            .send()
            .await
            .unwrap();
        assert!(output.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
}

async fn connection_ids(client: &aws_sdk_dynamodb::Client, table_name: &str) -> Vec<String> {
    let output = client.scan().table_name(table_name).send().await.unwrap();
    let mut ids: Vec<String> = output
        .items()
        .iter()
        .map(|item| item[table::CONNECTION_ID].as_s().unwrap().clone())
        .collect();
    ids.sort();
    ids
}

fn item(user: &str, connection: &str, expires_at: Option<i64>) -> ConnectionItem {
    support::item(user, connection, expires_at)
}

#[tokio::test]
async fn query_and_index_lookup_return_keys_and_expiry() {
    let client = dynamodb().await;
    let table_name = create_table(&client).await;
    put_items(
        &client,
        &table_name,
        &[
            item("u1", "c1", LIVE),
            item("u1", "c2", EXPIRED),
            item("u2", "c3", LIVE),
            item("u3", "c4", None),
        ],
    )
    .await;
    let store = DynamoStore::new(client, &table_name);

    let mut found = store.query_user("u1").await.unwrap();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        found,
        vec![item("u1", "c1", LIVE), item("u1", "c2", EXPIRED)]
    );
    assert!(store.query_user("nobody").await.unwrap().is_empty());

    assert_eq!(
        store.find_connection("c3").await.unwrap(),
        Some(item("u2", "c3", LIVE))
    );
    assert_eq!(
        store.find_connection("c4").await.unwrap(),
        Some(item("u3", "c4", None))
    );
    assert_eq!(store.find_connection("missing").await.unwrap(), None);
}

#[tokio::test]
async fn a_parallel_scan_sees_every_item_exactly_once() {
    let client = dynamodb().await;
    let table_name = create_table(&client).await;
    let items: Vec<ConnectionItem> = (0..240)
        .map(|n| item(&format!("user-{}", n % 37), &format!("conn-{n:03}"), LIVE))
        .collect();
    put_items(&client, &table_name, &items).await;
    let store = DynamoStore::new(client, &table_name);

    let mut seen = Vec::new();
    for segment in 0..3 {
        seen.extend(store.scan_segment(segment, 3).await.unwrap());
    }
    seen.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected = items;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn batch_delete_removes_the_items() {
    let client = dynamodb().await;
    let table_name = create_table(&client).await;
    let items: Vec<ConnectionItem> = (0..30)
        .map(|n| item("u", &format!("c{n:02}"), LIVE))
        .collect();
    put_items(&client, &table_name, &items).await;
    let store = DynamoStore::new(client.clone(), &table_name);

    let doomed: Vec<ConnectionKey> = items[..25].iter().map(|i| i.key.clone()).collect();
    let unprocessed = store.delete_batch(&doomed).await.unwrap();
    assert!(unprocessed.is_empty());
    assert_eq!(
        connection_ids(&client, &table_name).await,
        vec!["c25", "c26", "c27", "c28", "c29"]
    );
}

#[tokio::test]
async fn a_missing_table_is_a_lookup_error_that_names_the_cause() {
    let store = DynamoStore::new(dynamodb().await, testkit::unique_name("no-such-table"));
    let error = store.query_user("u1").await.unwrap_err();
    assert_eq!(error.operation, "Query");
    assert!(
        error.message.contains("ResourceNotFound") || error.message.contains("not found"),
        "{error}"
    );
}

#[tokio::test]
async fn a_broadcast_through_the_real_table_prunes_expired_items_and_reaches_the_live_ones() {
    let client = dynamodb().await;
    let table_name = create_table(&client).await;
    let mut items = vec![
        item("u1", "live-1", LIVE),
        item("u2", "live-2", LIVE),
        item("u3", "excluded", LIVE),
    ];
    items.extend((0..30).map(|n| item("old", &format!("expired-{n:02}"), EXPIRED)));
    put_items(&client, &table_name, &items).await;
    let pusher = Pusher {
        store: DynamoStore::new(client.clone(), &table_name),
        poster: FakePoster::default(),
        outbox: FakeOutbox::default(),
        limits: test_limits(),
    };

    let event = sqs_event(&[(
        "m1",
        r#"{"exclude_users":["u3"],"data":{"hello":"all"}}"#,
        None,
    )]);
    let (response, metrics) = pusher::process_sqs(event, &pusher).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(pusher.poster.received(), vec!["live-1", "live-2"]);
    assert_eq!(metrics.stale, 30);
    assert_eq!(
        connection_ids(&client, &table_name).await,
        vec!["excluded", "live-1", "live-2"]
    );
}

#[tokio::test]
async fn the_outbox_marks_requeued_and_dead_lettered_messages() {
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        }
    };
    let notifications = queue(testkit::unique_name("notifications")).await;
    let dead_letters = queue(testkit::unique_name("notifications-dlq")).await;
    let outbox = SqsOutbox::new(
        sqs.clone(),
        Some(notifications.clone()),
        Some(dead_letters.clone()),
    );

    outbox
        .requeue(
            r#"{"connections":["c1"],"data":1}"#.into(),
            2,
            Duration::ZERO,
        )
        .await
        .unwrap();
    outbox
        .dead_letter("{oops".into(), "unparseable_body")
        .await
        .unwrap();

    let receive = |url: String| {
        let sqs = sqs.clone();
        async move {
            let output = sqs
                .receive_message()
                .queue_url(url)
                .message_attribute_names("All")
                .wait_time_seconds(5)
                .send()
                .await
                .unwrap();
            output
                .messages
                .unwrap_or_default()
                .into_iter()
                .next()
                .expect("a message")
        }
    };
    let requeued = receive(notifications).await;
    assert_eq!(requeued.body(), Some(r#"{"connections":["c1"],"data":1}"#));
    let generation = &requeued.message_attributes().unwrap()[notification_attributes::GENERATION];
    assert_eq!(
        (generation.data_type(), generation.string_value()),
        ("Number", Some("2"))
    );

    let dead = receive(dead_letters).await;
    assert_eq!(dead.body(), Some("{oops"));
    let reason = &dead.message_attributes().unwrap()[notification_attributes::REJECTION_REASON];
    assert_eq!(reason.string_value(), Some("unparseable_body"));

    let unconfigured = SqsOutbox::new(sqs, None, None);
    let error = unconfigured
        .requeue("{}".into(), 1, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "NOTIFICATIONS_QUEUE_URL is not configured"
    );
}
