//! Channel history with real parts: moto's tables (the documented schema, testkit's one
//! definition) and the SDK over real HTTP to a management API shaped like API Gateway's. Two
//! pushers publish to one channel at once, as two pollers of the notifications queue do.

mod support;

use std::collections::HashSet;

use pusher::{Config, Limits, SdkPusher};
use serde_json::{json, Value};
use sumu_wire::Namespaces;
use support::management_api;
use support::table::{
    create_subscriptions_table, create_table, dynamodb, put_items, put_subscriptions,
};
use support::{item, sqs_event, subscription, RecordedMetrics, RecordingSdkPusher, LIVE};

/// Handles each message in its own invocation; returns how many failed.
async fn run(pusher: &RecordingSdkPusher, messages: Vec<(String, String)>) -> usize {
    let mut failures = 0;
    for (id, body) in messages {
        let response = pusher::handle_sqs(sqs_event(&[(&id, &body, None)]), pusher).await;
        failures += response.batch_item_failures.len();
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publications_get_unique_offsets_without_gaps_and_arrive_once() {
    let api = management_api::start("prod").await;
    let dynamodb = dynamodb().await;
    let connections = create_table(&dynamodb).await;
    let subscriptions = create_subscriptions_table(&dynamodb).await;
    let history = testkit::create_history_table(&dynamodb).await;
    put_items(&dynamodb, &connections, &[item("alice", "a1=", LIVE)]).await;
    put_subscriptions(
        &dynamodb,
        &subscriptions,
        &[subscription("room/*", "a1=", "alice", LIVE)],
    )
    .await;
    let aws = testkit::aws_config().await;
    let config = Config {
        connections_table: connections,
        subscriptions_table: subscriptions,
        management_endpoint: api.endpoint.clone(),
        notifications_queue_url: None,
        dead_letter_queue_url: None,
        history_table: Some(history.clone()),
        namespaces: Namespaces::parse(
            r#"[{"pattern":"room/*","history_size":100,"history_ttl_seconds":60}]"#,
        )
        .unwrap(),
        limits: Limits::default(),
    };
    // Two pollers, each with its own clients.
    let first = SdkPusher::from_sdk_config(&aws, &config).with_metrics(RecordedMetrics::default());
    let second = SdkPusher::from_sdk_config(&aws, &config).with_metrics(RecordedMetrics::default());
    const EACH: usize = 20;
    let batch = |poller: &str| -> Vec<(String, String)> {
        (0..EACH)
            .map(|n| {
                (
                    format!("{poller}-{n}"),
                    json!({"channels": ["room/1"], "data": {"from": poller, "n": n}}).to_string(),
                )
            })
            .collect()
    };
    // Both pollers at once, on one task: their DynamoDB calls interleave at every await.
    let (a, b) = tokio::join!(run(&first, batch("first")), run(&second, batch("second")));
    assert_eq!((a, b), (0, 0));

    let received: Vec<Value> = api
        .state
        .received_by("a1=")
        .iter()
        .map(|frame| serde_json::from_slice(frame).unwrap())
        .collect();
    assert_eq!(received.len(), 2 * EACH, "each delivered once");
    let mut offsets: Vec<u64> = received
        .iter()
        .map(|frame| frame["offset"].as_u64().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (1..=(2 * EACH) as u64).collect::<Vec<u64>>(),
        "unique, no gap"
    );
    let ids: HashSet<&str> = received.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2 * EACH);
    let epochs: HashSet<&str> = received
        .iter()
        .map(|f| f["epoch"].as_str().unwrap())
        .collect();
    assert_eq!(epochs.len(), 1, "one sequence");

    // Each kept under its offset, as delivered: 2 writes per publication.
    let kept = dynamodb
        .query()
        .table_name(&history)
        .key_condition_expression("#c = :c AND #o > :zero")
        .expression_attribute_names("#c", "channel")
        .expression_attribute_names("#o", "offset")
        .expression_attribute_values(
            ":c",
            aws_sdk_dynamodb::types::AttributeValue::S("room/1".into()),
        )
        .expression_attribute_values(
            ":zero",
            aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.count(), (2 * EACH) as i32);
    for stored in kept.items() {
        let frame = stored["publication"].as_s().unwrap();
        assert!(
            api.state
                .received_by("a1=")
                .iter()
                .any(|posted| posted == frame.as_bytes()),
            "kept as delivered: {frame}"
        );
    }
}
