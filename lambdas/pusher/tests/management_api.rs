//! The whole pusher (moto table and queues, real HTTP) under injected faults, against a
//! management API shaped like API Gateway's. The client's own tests are in
//! lambdas/management-client/tests/management_api.rs.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use pusher::{Config, Limits, SdkPusher};
use serde_json::json;
use support::management_api::{self, Answer};
use support::table::{connection_ids, create_table, dynamodb, put_items};
use support::{item, sqs_event, RecordedMetrics, RecordingSdkPusher, EXPIRED, LIVE};

/// The real handler with every real part: moto's table and queues, real HTTP.
async fn real_pusher(
    api_endpoint: &str,
    table: &str,
    limits: Limits,
) -> (RecordingSdkPusher, String, String) {
    let config = testkit::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let urls = support::notification_queues(&sqs).await;
    let pusher = SdkPusher::from_sdk_config(
        &config,
        &Config {
            connections_table: table.to_string(),
            // These suites publish to no channel.
            subscriptions_table: "no-subscriptions".to_string(),
            management_endpoint: api_endpoint.to_string(),
            notifications_queue_url: Some(urls[0].clone()),
            dead_letter_queue_url: Some(urls[1].clone()),
            history_table: None,
            namespaces: Default::default(),
            limits,
        },
    )
    .with_metrics(RecordedMetrics::default());
    (pusher, urls[0].clone(), urls[1].clone())
}

fn fast_limits() -> Limits {
    Limits {
        post_concurrency: 8,
        max_post_attempts: 6,
        backoff_base: Duration::from_millis(2),
        backoff_cap: Duration::from_millis(20),
        ..Limits::default()
    }
}

#[tokio::test]
async fn under_injected_429s_and_500s_every_live_connection_receives_exactly_once() {
    let api = management_api::start("prod").await;
    // Roughly a third of all posts fail.
    api.state.throttle_every.store(4, Ordering::SeqCst);
    api.state.fail_every.store(7, Ordering::SeqCst);
    api.state.gone.lock().unwrap().insert("gone=".into());

    let client = dynamodb().await;
    let table = create_table(&client).await;
    let mut items: Vec<_> = (0..40)
        .map(|n| item(&format!("u{}", n % 10), &format!("conn-{n:02}="), LIVE))
        .collect();
    items.push(item("u1", "gone=", LIVE));
    items.push(item("u2", "expired=", EXPIRED));
    items.push(item("u9", "excluded=", LIVE));
    put_items(&client, &table, &items).await;
    let limits = Limits {
        requeue_delay: Duration::ZERO,
        ..fast_limits()
    };
    let (pusher, notifications, _) = real_pusher(&api.endpoint, &table, limits).await;

    let body = json!({"users": (0..10).map(|u| format!("u{u}")).collect::<Vec<_>>(),
        "exclude_users": ["u9"], "data": {"news": "ünïcode ✓"}})
    .to_string();
    let response = pusher::handle_sqs(sqs_event(&[("m1", &body, None)]), &pusher).await;
    let mut metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    // A connection unlucky in every attempt is re-queued, narrowed: play the queue until it
    // is empty, as the event source mapping would.
    let sqs = aws_sdk_sqs::Client::new(&testkit::aws_config().await);
    for _ in 0..10 {
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
            let generation = message.message_attributes().unwrap()["sumu_generation"]
                .string_value()
                .unwrap();
            let event = sqs_event(&[(
                "again",
                message.body().unwrap(),
                Some(generation.parse().unwrap()),
            )]);
            let response = pusher::handle_sqs(event, &pusher).await;
            let again = pusher.metrics.last();
            assert!(response.batch_item_failures.is_empty());
            metrics.delivered += again.delivered;
            metrics.retried += again.retried;
            sqs.delete_message()
                .queue_url(&notifications)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    let expected_data = format!(
        r#"{{"type":"message","id":"m1","data":{}}}"#,
        json!({"news": "ünïcode ✓"})
    )
    .into_bytes();
    for n in 0..40 {
        let connection = format!("conn-{n:02}=");
        let received = api.state.received_by(&connection);
        if n % 10 == 9 {
            assert!(
                received.is_empty(),
                "{connection} belongs to an excluded user"
            );
        } else {
            assert_eq!(
                received,
                vec![expected_data.clone()],
                "{connection} must receive exactly once"
            );
        }
    }
    assert!(api.state.received_by("excluded=").is_empty());
    assert!(api.state.received_by("expired=").is_empty());
    assert!(
        metrics.retried > 0,
        "the endpoint injected faults: {metrics:?}"
    );
    assert_eq!(metrics.delivered, 36);
    assert_eq!(metrics.stale, 2, "{metrics:?}");
    let remaining = connection_ids(&client, &table).await;
    assert!(
        !remaining.contains(&"gone=".to_string()) && !remaining.contains(&"expired=".to_string())
    );
    assert_eq!(remaining.len(), 41, "only the two stale items were deleted");
}

#[tokio::test]
async fn a_connection_still_failing_after_retries_is_requeued_alone_and_delivered_by_the_next_generation(
) {
    let api = management_api::start("prod").await;
    let client = dynamodb().await;
    let table = create_table(&client).await;
    put_items(
        &client,
        &table,
        &[
            item("u1", "ok-1=", LIVE),
            item("u1", "flaky=", LIVE),
            item("u2", "ok-2=", LIVE),
        ],
    )
    .await;
    let limits = Limits {
        max_post_attempts: 2,
        requeue_delay: Duration::ZERO,
        ..fast_limits()
    };
    let (pusher, notifications, _) = real_pusher(&api.endpoint, &table, limits).await;
    api.state
        .script("flaky=", vec![Answer::ServerError, Answer::Throttle]);

    let response = pusher::handle_sqs(
        sqs_event(&[("m1", r#"{"users":["u1","u2"],"data":"v1"}"#, None)]),
        &pusher,
    )
    .await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((metrics.delivered, metrics.requeued), (2, 1));
    assert!(api.state.received_by("flaky=").is_empty());

    // The narrowed request sits in the real notifications queue with its generation.
    let sqs = aws_sdk_sqs::Client::new(&testkit::aws_config().await);
    let received = sqs
        .receive_message()
        .queue_url(&notifications)
        .message_attribute_names("All")
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let message = received.messages().first().expect("a narrowed request");
    let generation = message.message_attributes().unwrap()["sumu_generation"]
        .string_value()
        .unwrap();
    assert_eq!(generation, "1");
    let body = message.body().unwrap();
    assert_eq!(
        support::narrowed_connections(body),
        vec!["flaky=".to_string()]
    );

    let response = pusher::handle_sqs(sqs_event(&[("m2", body, Some(1))]), &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(metrics.delivered, 1);
    for connection in ["ok-1=", "ok-2=", "flaky="] {
        assert_eq!(
            api.state.received_by(connection),
            vec![br#"{"type":"message","id":"m1","data":"v1"}"#.to_vec()],
            "{connection}"
        );
    }
}
