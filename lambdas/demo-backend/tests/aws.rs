//! The SDK-backed seams against a real moto server: requests land on the notifications queue as
//! the pusher reads them, and "who is online" counts exactly the live connections.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use demo_backend::{
    AwsDemoBackend, Config, DynamoOnlineUsers, Notifier, NotifyError, OnlineUser, OnlineUsers,
    SqsNotifier,
};
use serde_json::{json, Value};
use sumu_wire::{table, NotificationRequest};

/// The SDK configuration for the shared (or private) moto server.
async fn aws_config() -> aws_config::SdkConfig {
    testkit::aws_config().await
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(testkit::unique_name(prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn receive_bodies(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    received
        .messages()
        .iter()
        .map(|message| serde_json::from_str(message.body().unwrap()).unwrap())
        .collect()
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A connection item as `$connect` writes it, expiring `expires_in` seconds from now.
async fn put_connection(
    dynamodb: &aws_sdk_dynamodb::Client,
    table_name: &str,
    user: &str,
    connection: &str,
    expires_in: i64,
) {
    dynamodb
        .put_item()
        .table_name(table_name)
        .item(table::USER_ID, AttributeValue::S(user.into()))
        .item(table::CONNECTION_ID, AttributeValue::S(connection.into()))
        .item(
            table::CONNECTED_AT,
            AttributeValue::N("1700000000000".into()),
        )
        .item(
            table::EXPIRES_AT,
            AttributeValue::N((now_seconds() + expires_in).to_string()),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sqs_notifier_puts_the_request_on_the_queue_as_json() {
    let sdk = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = create_queue(&sqs, "demo-notifications").await;
    let request = NotificationRequest {
        users: Some(vec!["bob".into(), "alice".into()]),
        connections: None,
        exclude_users: vec!["carol".into()],
        data: json!({"type":"chat","text":"héllo \"quoted\" <b>&</b>"}),
        ..NotificationRequest::default()
    };
    SqsNotifier::new(sqs.clone(), &queue_url)
        .notify(&request)
        .await
        .unwrap();
    let bodies = receive_bodies(&sqs, &queue_url).await;
    assert_eq!(
        bodies,
        vec![json!({"users":["bob","alice"],"exclude_users":["carol"],
                    "data":{"type":"chat","text":"héllo \"quoted\" <b>&</b>"}})]
    );
    let parsed: NotificationRequest = serde_json::from_value(bodies[0].clone()).unwrap();
    assert_eq!(parsed, request);
}

#[tokio::test]
async fn sqs_notifier_reports_a_missing_queue_as_an_error() {
    let sdk = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let missing = format!(
        "{}/123456789012/{}",
        testkit::moto_endpoint(),
        testkit::unique_name("no-such-queue")
    );
    let error = SqsNotifier::new(sqs, missing)
        .notify(&NotificationRequest {
            users: None,
            connections: None,
            exclude_users: vec![],
            data: json!(1),
            ..NotificationRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(error, NotifyError::Sqs(_)), "{error}");
}

#[tokio::test]
async fn online_users_counts_live_connections_only_across_scan_pages() {
    let sdk = aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table_name = testkit::create_connections_table(&dynamodb).await;
    put_connection(&dynamodb, &table_name, "alice", "a1", 7200).await;
    put_connection(&dynamodb, &table_name, "alice", "a2", 60).await;
    put_connection(&dynamodb, &table_name, "bob", "b1", 7200).await;
    put_connection(&dynamodb, &table_name, "bob", "b2-expired", -5).await;
    put_connection(&dynamodb, &table_name, "carol", "c1-expired", -3600).await;
    put_connection(&dynamodb, &table_name, "dave", "d1", 10).await;

    // Two items per page: four pages, so pagination must be followed to see everyone.
    let online = DynamoOnlineUsers::new(dynamodb, &table_name)
        .with_page_size(2)
        .online_users()
        .await
        .unwrap();
    let expected = [("alice", 2), ("bob", 1), ("dave", 1)]
        .map(|(user_id, connections)| OnlineUser {
            user_id: user_id.into(),
            connections,
        })
        .to_vec();
    assert_eq!(online, expected);
}

#[tokio::test]
async fn online_users_of_an_empty_table_is_empty_and_of_a_missing_table_an_error() {
    let sdk = aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table_name = testkit::create_connections_table(&dynamodb).await;
    let online = DynamoOnlineUsers::new(dynamodb.clone(), &table_name);
    assert_eq!(online.online_users().await.unwrap(), vec![]);
    let missing = DynamoOnlineUsers::new(dynamodb, testkit::unique_name("no-such-table"));
    assert!(missing.online_users().await.is_err());
}

/// The whole back end as sumu-local runs it: built from an `SdkConfig`, fed a message read
/// from a real messages queue, answering on a real notifications queue.
#[tokio::test]
async fn the_aws_backend_answers_who_is_online_from_a_real_queue_message() {
    let sdk = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table_name = testkit::create_connections_table(&dynamodb).await;
    put_connection(&dynamodb, &table_name, "alice", "conn-alice", 7200).await;
    put_connection(&dynamodb, &table_name, "bob", "conn-bob", 7200).await;
    let messages_queue = create_queue(&sqs, "demo-messages").await;
    let notifications_queue = create_queue(&sqs, "demo-notifications").await;

    let string = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    };
    sqs.send_message()
        .queue_url(&messages_queue)
        .message_body(r#"{"type":"who_is_online"}"#)
        .message_attributes("user_id", string("alice"))
        .message_attributes("connection_id", string("conn-alice"))
        .message_attributes(
            "timestamp",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("1700000000100")
                .build()
                .unwrap(),
        )
        .message_attributes("source", string("apigw.route.send"))
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&messages_queue)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    // Shape the received message as the Lambda event source mapping does.
    let records: Vec<Value> = received
        .messages()
        .iter()
        .map(|message| {
            let attributes: serde_json::Map<String, Value> = message
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        json!({"stringValue": value.string_value(), "dataType": value.data_type(),
                               "stringListValues": [], "binaryListValues": []}),
                    )
                })
                .collect();
            json!({"messageId": message.message_id(), "receiptHandle": message.receipt_handle(),
                   "body": message.body(), "attributes": {}, "messageAttributes": attributes,
                   "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
        })
        .collect();
    assert_eq!(records.len(), 1);
    let batch = serde_json::from_value(json!({ "Records": records })).unwrap();

    let backend = AwsDemoBackend::from_sdk_config(
        &sdk,
        Config {
            notifications_queue_url: notifications_queue.clone(),
            connections_table: table_name,
        },
    );
    let response = backend.handle_sqs(batch).await;
    assert!(response.batch_item_failures.is_empty());

    let bodies = receive_bodies(&sqs, &notifications_queue).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["connections"], json!(["conn-alice"]));
    assert_eq!(bodies[0].get("users"), None);
    assert_eq!(bodies[0]["data"]["type"], "online_users");
    assert_eq!(
        bodies[0]["data"]["users"],
        json!([{"user_id":"alice","status":"ONLINE","connections":1},
               {"user_id":"bob","status":"ONLINE","connections":1}])
    );
}

/// sumu-local runs the back end in-process on a multi-threaded runtime: its futures must be
/// `Send` and the back end shareable (`Send + Sync`), or `tokio::spawn` will not take them.
#[tokio::test]
async fn the_aws_backend_can_be_spawned_on_a_multi_threaded_runtime() {
    fn spawnable<T: std::future::Future + Send + 'static>(future: T) -> T {
        future
    }
    let sdk = aws_config().await;
    let backend = std::sync::Arc::new(AwsDemoBackend::from_sdk_config(
        &sdk,
        Config {
            notifications_queue_url: "unused".into(),
            connections_table: "unused".into(),
        },
    ));
    let empty: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(json!({"Records": []})).unwrap();
    let response = tokio::spawn(spawnable({
        let backend = backend.clone();
        async move { backend.handle_sqs(empty).await }
    }))
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
}
