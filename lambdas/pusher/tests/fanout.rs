//! The fan-out logic through the real handler entry points, with in-memory fakes of the
//! table, the management API and the queues.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, LambdaEvent};
use pusher::{handle, handle_sns, handle_sqs, Metrics, PostOutcome};
use serde_json::{json, Value};
use support::*;

fn ids(list: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// Two users with two connections each, one with one.
fn small_table() -> Vec<pusher::ConnectionItem> {
    vec![
        item("u1", "u1-a", LIVE),
        item("u1", "u1-b", LIVE),
        item("u2", "u2-a", LIVE),
        item("u2", "u2-b", LIVE),
        item("u3", "u3-a", LIVE),
    ]
}

async fn run_sqs(pusher: &FakePusher, body: &str) -> (Vec<String>, Metrics) {
    let response = handle_sqs(sqs_event(&[("m1", body, None)]), pusher).await;
    let metrics = pusher.metrics.last();
    let failures = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    (failures, metrics)
}

#[tokio::test]
async fn unicast_reaches_every_connection_of_the_user_and_nobody_else() {
    let pusher = pusher(small_table());
    let (failures, metrics) = run_sqs(&pusher, r#"{"users":["u1"],"data":{"hello":"u1"}}"#).await;
    assert!(failures.is_empty());
    assert_eq!(pusher.poster.received(), ids(&["u1-a", "u1-b"]));
    for (_, frame) in pusher.poster.posts.lock().unwrap().iter() {
        assert_eq!(
            frame,
            br#"{"type":"message","id":"m1","data":{"hello":"u1"}}"#
        );
    }
    assert_eq!(
        metrics,
        Metrics {
            delivered: 2,
            ..Metrics::default()
        }
    );
}

#[tokio::test]
async fn multicast_honours_exclude_users_and_does_not_even_query_them() {
    let pusher = pusher(small_table());
    let (_, metrics) = run_sqs(
        &pusher,
        r#"{"users":["u1","u2","u1"],"exclude_users":["u2"],"data":1}"#,
    )
    .await;
    assert_eq!(pusher.poster.received(), ids(&["u1-a", "u1-b"]));
    assert_eq!(
        *pusher.store.queried_users.lock().unwrap(),
        vec!["u1".to_string()]
    );
    assert_eq!(metrics.delivered, 2);
}

#[tokio::test]
async fn connection_targeting_knows_the_owner_so_exclusions_apply() {
    let pusher = pusher(small_table());
    run_sqs(
        &pusher,
        r#"{"connections":["u1-a","u2-a","unknown"],"exclude_users":["u2"],"data":1}"#,
    )
    .await;
    assert_eq!(pusher.poster.received(), ids(&["u1-a"]));
}

#[tokio::test]
async fn users_and_connections_combined_post_once_per_connection() {
    let pusher = pusher(small_table());
    run_sqs(
        &pusher,
        r#"{"users":["u1","u3"],"connections":["u1-a","u3-a","u2-b","u2-b"],"data":1}"#,
    )
    .await;
    assert_eq!(
        pusher.poster.received(),
        ids(&["u1-a", "u1-b", "u2-b", "u3-a"])
    );
    assert!(
        pusher.poster.counts().values().all(|&n| n == 1),
        "{:?}",
        pusher.poster.counts()
    );
}

#[tokio::test]
async fn an_explicitly_empty_user_list_reaches_nobody() {
    let pusher = pusher(small_table());
    let (failures, metrics) = run_sqs(&pusher, r#"{"users":[],"data":1}"#).await;
    assert!(failures.is_empty());
    assert!(pusher.poster.posts.lock().unwrap().is_empty());
    assert!(pusher.store.scanned_segments.lock().unwrap().is_empty());
    assert_eq!(metrics, Metrics::default());
}

#[tokio::test]
async fn broadcast_with_150_excluded_users_reaches_exactly_the_others() {
    let mut items = Vec::new();
    for user in 0..300 {
        items.push(item(&format!("user-{user}"), &format!("c-{user}-a"), LIVE));
        items.push(item(&format!("user-{user}"), &format!("c-{user}-b"), LIVE));
    }
    let pusher = pusher(items);
    let excluded: Vec<String> = (0..300)
        .filter(|u| u % 2 == 0)
        .map(|u| format!("user-{u}"))
        .collect();
    assert_eq!(excluded.len(), 150);
    let body = json!({ "exclude_users": excluded, "data": {"n": 1} }).to_string();
    let (failures, metrics) = run_sqs(&pusher, &body).await;
    assert!(failures.is_empty());

    let mut expected: Vec<String> = (0..300)
        .filter(|u| u % 2 == 1)
        .flat_map(|u| [format!("c-{u}-a"), format!("c-{u}-b")])
        .collect();
    expected.sort();
    assert_eq!(pusher.poster.received(), expected);
    assert_eq!(metrics.delivered, 300);
    let mut segments = pusher.store.scanned_segments.lock().unwrap().clone();
    segments.sort();
    assert_eq!(
        segments,
        vec![(0, 4), (1, 4), (2, 4), (3, 4)],
        "a parallel Scan over every segment"
    );
}

#[tokio::test]
async fn expired_and_gone_connections_are_pruned_and_live_ones_still_receive() {
    let mut items = vec![
        item("u1", "live", LIVE),
        item("u1", "expired", EXPIRED),
        item("u1", "gone", LIVE),
    ];
    // Enough stale items for several delete batches, one of which DynamoDB leaves partly unprocessed.
    for n in 0..60 {
        items.push(item("u2", &format!("old-{n}"), EXPIRED));
    }
    let pusher = pusher(items);
    pusher.poster.always("gone", PostOutcome::Gone);
    pusher.store.unprocessed_batches.store(2, Ordering::SeqCst);

    let (failures, metrics) = run_sqs(&pusher, r#"{"users":["u1","u2"],"data":"x"}"#).await;
    assert!(failures.is_empty());
    assert_eq!(pusher.poster.received(), ids(&["live"]));
    assert!(
        !pusher.poster.counts().contains_key("expired"),
        "an expired connection is never posted to"
    );
    assert_eq!(metrics.stale, 62);
    assert_eq!(metrics.delivered, 1);
    let remaining: Vec<String> = pusher
        .store
        .items
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.key.connection_id.clone())
        .collect();
    assert_eq!(
        remaining,
        vec!["live".to_string()],
        "every stale item deleted, unprocessed ones retried"
    );
    assert!(pusher.store.largest_delete_batch.load(Ordering::SeqCst) <= 25);
}

#[tokio::test]
async fn only_the_failing_connection_is_retried() {
    let pusher = pusher(small_table());
    pusher.poster.script(
        "u1-b",
        vec![
            PostOutcome::Retryable("429 LimitExceededException".into()),
            PostOutcome::Retryable("500".into()),
        ],
    );
    let (failures, metrics) = run_sqs(&pusher, r#"{"users":["u1","u2"],"data":1}"#).await;
    assert!(failures.is_empty());
    let counts = pusher.poster.counts();
    assert_eq!(counts["u1-b"], 3);
    for other in ["u1-a", "u2-a", "u2-b"] {
        assert_eq!(
            counts[other], 1,
            "{other} must not be posted twice because of u1-b's failures"
        );
    }
    assert_eq!(
        pusher.poster.received(),
        ids(&["u1-a", "u1-b", "u2-a", "u2-b"])
    );
    assert_eq!(
        metrics,
        Metrics {
            delivered: 4,
            retried: 2,
            ..Metrics::default()
        }
    );
    assert!(pusher.outbox.requeued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_non_retryable_failure_is_counted_and_not_retried() {
    let pusher = pusher(small_table());
    pusher
        .poster
        .always("u1-a", PostOutcome::Failed("403 ForbiddenException".into()));
    let (failures, metrics) = run_sqs(&pusher, r#"{"users":["u1"],"data":1}"#).await;
    assert!(failures.is_empty());
    assert_eq!(pusher.poster.counts()["u1-a"], 1);
    assert_eq!(
        metrics,
        Metrics {
            delivered: 1,
            failed: 1,
            ..Metrics::default()
        }
    );
    assert!(pusher.outbox.requeued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn exhausted_connections_are_requeued_narrowed_and_the_next_generation_reaches_only_them() {
    let pusher = pusher(small_table());
    // Four attempts allowed per invocation; u2-a fails all of them, then recovers.
    pusher
        .poster
        .script("u2-a", vec![PostOutcome::Retryable("500".into()); 4]);
    let (failures, metrics) = run_sqs(&pusher, r#"{"users":["u1","u2"],"data":{"v":7}}"#).await;
    assert!(
        failures.is_empty(),
        "the record succeeded: its remainder is re-queued"
    );
    assert_eq!(
        metrics,
        Metrics {
            delivered: 3,
            retried: 3,
            requeued: 1,
            ..Metrics::default()
        }
    );

    let (body, generation, delay) = pusher.outbox.requeued.lock().unwrap().pop().unwrap();
    assert_eq!(narrowed_connections(&body), vec!["u2-a".to_string()]);
    // Its data is the frame the others got, with the same id.
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"],
        json!({"type": "message", "id": "m1", "data": {"v":7}})
    );
    assert_eq!(generation, 1);
    assert_eq!(delay, Duration::from_secs(5));

    // The re-queued request comes back with its generation attribute.
    let response = handle_sqs(sqs_event(&[("m2", &body, Some(generation))]), &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(metrics.delivered, 1);
    let counts = pusher.poster.counts();
    assert_eq!(counts["u2-a"], 5);
    for other in ["u1-a", "u1-b", "u2-b"] {
        assert_eq!(counts[other], 1, "{other} already had the message");
    }
    assert_eq!(
        pusher.poster.received(),
        ids(&["u1-a", "u1-b", "u2-a", "u2-b"])
    );
}

#[tokio::test]
async fn after_the_last_generation_the_remainder_goes_to_the_dead_letter_queue() {
    let pusher = pusher(small_table());
    pusher
        .poster
        .always("u1-a", PostOutcome::Retryable("503".into()));
    // max_generations = 2: a request already at generation 2 cannot be re-queued again.
    let body = r#"{"connections":["u1-a","u1-b"],"data":"late"}"#;
    let response = handle_sqs(sqs_event(&[("m1", body, Some(2))]), &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        metrics,
        Metrics {
            delivered: 1,
            failed: 1,
            retried: 3,
            ..Metrics::default()
        }
    );
    assert!(pusher.outbox.requeued.lock().unwrap().is_empty());
    let dead = pusher.outbox.dead_letters.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, "retries_exhausted");
    assert_eq!(narrowed_connections(&dead[0].0), vec!["u1-a".to_string()]);
}

#[tokio::test]
async fn a_failed_requeue_fails_the_record_so_sqs_redelivers_it() {
    let pusher = pusher(small_table());
    pusher
        .poster
        .always("u1-a", PostOutcome::Retryable("500".into()));
    pusher.outbox.fail_requeue.store(true, Ordering::SeqCst);
    let (failures, metrics) = run_sqs(&pusher, r#"{"users":["u1"],"data":1}"#).await;
    assert_eq!(failures, vec!["m1".to_string()]);
    assert_eq!(metrics.delivered, 1);
}

#[tokio::test]
async fn invalid_requests_go_to_the_dead_letter_queue_and_the_rest_of_the_batch_is_delivered() {
    let pusher = pusher(small_table());
    let too_big = json!({ "users": ["u2"], "data": "x".repeat(200 * 1024) }).to_string();
    let event = sqs_event(&[
        ("malformed", "{not json", None),
        ("no-data", r#"{"users":["u2"]}"#, None),
        ("too-big", &too_big, None),
        ("good", r#"{"users":["u1"],"data":"ok"}"#, None),
    ]);
    let response = handle_sqs(event, &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(
        response.batch_item_failures.is_empty(),
        "rejected requests are acknowledged once dead-lettered"
    );
    assert_eq!(pusher.poster.received(), ids(&["u1-a", "u1-b"]));
    assert_eq!(
        metrics,
        Metrics {
            delivered: 2,
            rejected: 3,
            ..Metrics::default()
        }
    );
    let dead = pusher.outbox.dead_letters.lock().unwrap().clone();
    let reasons: Vec<&str> = dead.iter().map(|(_, reason)| *reason).collect();
    assert_eq!(
        reasons,
        vec!["unparseable_body", "missing_data", "data_too_large"]
    );
    assert_eq!(
        dead[0].0, "{not json",
        "the original body is kept for inspection"
    );
    assert_eq!(dead[2].0, too_big);
}

#[tokio::test]
async fn a_rejection_that_cannot_reach_the_dead_letter_queue_is_a_batch_item_failure() {
    let pusher = pusher(small_table());
    pusher.outbox.fail_dead_letter.store(true, Ordering::SeqCst);
    let event = sqs_event(&[
        ("bad", r#"{"users":["u1"]}"#, None),
        ("good", r#"{"users":["u3"],"data":1}"#, None),
    ]);
    let response = handle_sqs(event, &pusher).await;
    let metrics = pusher.metrics.last();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["bad"]);
    assert_eq!(pusher.poster.received(), ids(&["u3-a"]));
    assert_eq!(metrics.rejected, 1);
}

#[tokio::test]
async fn a_failed_lookup_fails_only_its_record_before_anything_is_posted() {
    let pusher = pusher(small_table());
    pusher
        .store
        .failing_users
        .lock()
        .unwrap()
        .insert("u2".into());
    let event = sqs_event(&[
        ("m1", r#"{"users":["u1","u2"],"data":1}"#, None),
        ("m2", r#"{"users":["u3"],"data":1}"#, None),
    ]);
    let response = handle_sqs(event, &pusher).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["m1"]);
    // Nothing of m1 was posted, so its redelivery duplicates nothing.
    assert_eq!(pusher.poster.received(), ids(&["u3-a"]));
}

#[tokio::test]
async fn posts_run_concurrently_but_never_beyond_the_limit() {
    let items: Vec<_> = (0..100)
        .map(|n| item("u", &format!("c{n}"), LIVE))
        .collect();
    let mut pusher = pusher(items);
    pusher.limits.post_concurrency = 7;
    *pusher.poster.latency.lock().unwrap() = Duration::from_millis(2);
    let (_, metrics) = run_sqs(&pusher, r#"{"users":["u"],"data":1}"#).await;
    assert_eq!(metrics.delivered, 100);
    assert_eq!(pusher.poster.max_in_flight.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn connections_not_reached_before_the_deadline_are_requeued_not_lost() {
    let items: Vec<_> = (0..40)
        .map(|n| item("u", &format!("c{n:02}"), LIVE))
        .collect();
    let mut pusher = pusher(items);
    pusher.limits.post_concurrency = 1;
    pusher.limits.safety_margin = Duration::from_millis(1500);
    *pusher.poster.latency.lock().unwrap() = Duration::from_millis(100);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut event = sqs_event(&[("m1", r#"{"users":["u"],"data":1}"#, None)]);
    event.context.deadline = now_ms + 3000;
    let response = handle_sqs(event, &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());

    // Whatever the machine's speed: every connection was either delivered or handed on.
    let requeued: Vec<String> = pusher
        .outbox
        .requeued
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(body, _, _)| narrowed_connections(body))
        .collect();
    assert!(
        !requeued.is_empty(),
        "40 posts of 100 ms cannot fit in the 1.5 s before the margin"
    );
    let mut all = pusher.poster.received();
    all.extend(requeued.iter().cloned());
    all.sort();
    let expected: Vec<String> = (0..40).map(|n| format!("c{n:02}")).collect();
    assert_eq!(
        all, expected,
        "each connection exactly once: delivered here or re-queued"
    );
    assert_eq!(metrics.delivered + metrics.requeued, 40);
}

#[tokio::test]
async fn sns_events_are_fanned_out_and_failures_become_errors() {
    let pusher = pusher(small_table());
    let result = handle_sns(sns_event(r#"{"users":["u2"],"data":"hi"}"#), &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(result.is_ok());
    assert_eq!(metrics.delivered, 2);
    assert_eq!(pusher.poster.received(), ids(&["u2-a", "u2-b"]));

    pusher
        .store
        .failing_users
        .lock()
        .unwrap()
        .insert("u3".into());
    let result = handle_sns(sns_event(r#"{"users":["u3"],"data":"hi"}"#), &pusher).await;
    let error = result.unwrap_err();
    assert_eq!(error.error_type(), "Retryable");

    // A rejected SNS request is dead-lettered and acknowledged.
    let result = handle_sns(sns_event("nope"), &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(result.is_ok());
    assert_eq!(metrics.rejected, 1);
    assert_eq!(
        pusher.outbox.dead_letters.lock().unwrap()[0].1,
        "unparseable_body"
    );
}

#[tokio::test]
async fn the_entry_point_tells_sqs_from_sns_events() {
    let pusher = pusher(small_table());
    let mut sqs: Value = serde_json::from_str(SQS_FIXTURE).unwrap();
    sqs["Records"][0]["body"] = json!(r#"{"users":["u1"]}"#);
    let answer = handle(LambdaEvent::new(sqs, Context::default()), &pusher)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(
        pusher.outbox.dead_letters.lock().unwrap()[0].1,
        "missing_data"
    );

    let mut sns: Value = serde_json::from_str(SNS_FIXTURE).unwrap();
    sns["Records"][0]["Sns"]["Message"] = json!(r#"{"users":["u3"],"data":[1]}"#);
    let answer = handle(LambdaEvent::new(sns, Context::default()), &pusher)
        .await
        .unwrap();
    assert_eq!(answer, Value::Null);
    assert_eq!(pusher.poster.received(), ids(&["u3-a"]));

    let empty = handle(
        LambdaEvent::new(json!({"Records": []}), Context::default()),
        &pusher,
    )
    .await
    .unwrap();
    assert_eq!(empty, json!({"batchItemFailures": []}));
    let error = handle(
        LambdaEvent::new(json!({"detail-type": "x"}), Context::default()),
        &pusher,
    )
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "Validation");
}
