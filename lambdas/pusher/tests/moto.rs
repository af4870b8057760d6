//! The DynamoDB store and the SQS outbox against a real moto server (via the testkit).

mod support;

use std::time::Duration;

use pusher::{
    ConnectionItem, ConnectionKey, ConnectionStore, DynamoStore, Outbox, Pusher, SqsOutbox,
};
use sumu_wire::notification_attributes;
use support::table::{connection_ids, create_table, dynamodb, put_items};
use support::{
    item, sqs_event, test_limits, FakeOutbox, FakePoster, RecordedMetrics, EXPIRED, LIVE,
};

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
    let store = DynamoStore::new(client, &table_name, "no-subscriptions");

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
    let store = DynamoStore::new(client, &table_name, "no-subscriptions");

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
    let store = DynamoStore::new(client.clone(), &table_name, "no-subscriptions");

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
    let store = DynamoStore::new(
        dynamodb().await,
        testkit::unique_name("no-such-table"),
        "no-subscriptions",
    );
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
        store: DynamoStore::new(client.clone(), &table_name, "no-subscriptions"),
        poster: FakePoster::default(),
        outbox: FakeOutbox::default(),
        metrics: RecordedMetrics::default(),
        limits: test_limits(),
        namespaces: Default::default(),
    };

    let event = sqs_event(&[(
        "m1",
        r#"{"exclude_users":["u3"],"data":{"hello":"all"}}"#,
        None,
    )]);
    let response = pusher::handle_sqs(event, &pusher).await;
    let metrics = pusher.metrics.last();
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
            true,
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
        .requeue("{}".into(), 1, Duration::ZERO, true)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "NOTIFICATIONS_QUEUE_URL is not configured"
    );
}

#[tokio::test]
async fn scan_pages_continue_where_they_stopped_and_cover_each_segment_once() {
    let client = dynamodb().await;
    let table_name = create_table(&client).await;
    let items: Vec<ConnectionItem> = (0..50)
        .map(|n| item(&format!("user-{}", n % 11), &format!("conn-{n:02}="), LIVE))
        .collect();
    put_items(&client, &table_name, &items).await;
    let store = DynamoStore::new(client, &table_name, "no-subscriptions-table");
    assert_eq!(store.approximate_count().await.unwrap(), Some(50));

    let mut seen = Vec::new();
    let mut pages = 0;
    for segment in 0..3 {
        let mut after = None;
        loop {
            let page = store.scan_page(segment, 3, after, 4).await.unwrap();
            assert!(page.items.len() <= 4, "{page:?}");
            pages += 1;
            seen.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    assert!(pages >= 13, "50 items in pages of at most 4: {pages}");
    seen.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected = items;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(seen, expected, "every item once");
}

#[tokio::test]
async fn a_broadcast_split_through_the_real_queue_reaches_every_connection_once() {
    let client = dynamodb().await;
    let table_name = create_table(&client).await;
    let items: Vec<ConnectionItem> = (0..30)
        .map(|n| item(&format!("user-{n:02}"), &format!("conn-{n:02}="), LIVE))
        .collect();
    put_items(&client, &table_name, &items).await;
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let notifications = sqs
        .create_queue()
        .queue_name(testkit::unique_name("notifications"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let mut limits = test_limits();
    limits.shard_threshold = 8;
    let pusher = Pusher {
        store: DynamoStore::new(client, &table_name, "no-subscriptions-table"),
        poster: FakePoster::default(),
        outbox: SqsOutbox::new(sqs.clone(), Some(notifications.clone()), None),
        metrics: RecordedMetrics::default(),
        limits,
        namespaces: Default::default(),
    };

    let response = pusher::handle_sqs(
        sqs_event(&[("m1", r#"{"data":{"to":"all"}}"#, None)]),
        &pusher,
    )
    .await;
    let first = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    // 30 items / 8 = 4 shards: this invocation kept one and queued three.
    assert_eq!(first.shards, 3);

    // Play the queue as the event source would, with the attributes SQS delivers.
    let mut invocations = 1;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&notifications)
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if received.messages().is_empty() {
            break;
        }
        for message in received.messages() {
            let attributes = message.message_attributes().unwrap();
            let mut record: serde_json::Value = serde_json::from_str(support::SQS_FIXTURE).unwrap();
            let mut record = record["Records"][0].take();
            record["body"] = message.body().unwrap().into();
            record["messageAttributes"] = serde_json::json!({
                "sumu_generation": {"stringValue": attributes["sumu_generation"].string_value(),
                    "dataType": "Number", "stringListValues": [], "binaryListValues": []},
                "sumu_shard": {"stringValue": attributes["sumu_shard"].string_value(),
                    "dataType": "String", "stringListValues": [], "binaryListValues": []},
            });
            if let Some(frame) = attributes.get("sumu_frame") {
                record["messageAttributes"]["sumu_frame"] = serde_json::json!({
                    "stringValue": frame.string_value(), "dataType": "String",
                    "stringListValues": [], "binaryListValues": []});
            }
            let event = lambda_runtime::LambdaEvent::new(
                serde_json::from_value(serde_json::json!({ "Records": [record] })).unwrap(),
                lambda_runtime::Context::default(),
            );
            let response = pusher::handle_sqs(event, &pusher).await;
            let metrics = pusher.metrics.last();
            assert!(response.batch_item_failures.is_empty());
            assert!(metrics.delivered <= 8, "{metrics:?}");
            invocations += 1;
            sqs.delete_message()
                .queue_url(&notifications)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        assert!(invocations < 50);
    }
    let received = pusher.poster.received();
    let expected: Vec<String> = (0..30).map(|n| format!("conn-{n:02}=")).collect();
    assert_eq!(received, expected, "each connection exactly once");
    assert!(invocations >= 4, "{invocations} invocations");
}
