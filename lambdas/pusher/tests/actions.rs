//! Server-side control (`action`) through the real handler with in-memory fakes: the failure
//! paths a real endpoint is slow to provoke. The paths through real parts are in
//! actions_moto.rs.

mod support;

use std::sync::atomic::Ordering;

use pusher::{handle_sqs, DeleteOutcome, Metrics, PostOutcome};
use support::*;

async fn run(pusher: &FakePusher, body: &str, generation: Option<u32>) -> (usize, Metrics) {
    let response = handle_sqs(sqs_event_plain(body, generation), pusher).await;
    (response.batch_item_failures.len(), pusher.metrics.last())
}

/// An SQS record of a back end's request (or a re-queued disconnect: a generation, and no
/// `sumu_frame`).
fn sqs_event_plain(
    body: &str,
    generation: Option<u32>,
) -> lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent> {
    let mut event = sqs_event(&[("m1", body, None)]);
    if let Some(generation) = generation {
        let attribute = serde_json::from_value(serde_json::json!({
            "stringValue": generation.to_string(), "stringListValues": [],
            "binaryListValues": [], "dataType": "Number"}))
        .unwrap();
        event.payload.records[0]
            .message_attributes
            .insert("sumu_generation".into(), attribute);
    }
    event
}

fn alice() -> FakePusher {
    pusher(vec![
        item("alice", "a1", LIVE),
        item("alice", "a2", LIVE),
        item("alice", "a3", EXPIRED),
    ])
}

#[tokio::test]
async fn a_refused_post_still_closes_and_a_refused_close_is_failed_not_requeued() {
    let pusher = alice();
    pusher
        .poster
        .always("a1", PostOutcome::Failed("403 ForbiddenException".into()));
    pusher.poster.script_close(
        "a2",
        vec![DeleteOutcome::Failed("403 ForbiddenException".into())],
    );
    let (failures, metrics) = run(
        &pusher,
        r#"{"action":"disconnect","users":["alice"],"data":1}"#,
        None,
    )
    .await;
    assert_eq!(failures, 0);
    assert_eq!(pusher.poster.seen_by("a1"), ["closed"]);
    assert_eq!(
        pusher.poster.seen_by("a2"),
        [r#"message {"type":"message","id":"m1","data":1}"#]
    );
    assert_eq!(
        (
            metrics.delivered,
            metrics.closed,
            metrics.failed,
            metrics.stale
        ),
        (1, 1, 2, 1)
    );
    assert!(pusher.outbox.requeued.lock().unwrap().is_empty());
    // The ended connection is pruned, never posted to nor closed.
    assert!(!pusher.poster.closes.lock().unwrap().contains(&"a3".into()));
    assert_eq!(pusher.store.deleted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_close_failing_in_the_last_generation_is_dead_lettered_with_its_action() {
    let pusher = alice();
    let failing = || DeleteOutcome::Retryable("500 InternalServerErrorException".into());
    pusher
        .poster
        .script_close("a1", (0..4).map(|_| failing()).collect());
    let generation = pusher.limits.max_generations;
    let (failures, metrics) = run(
        &pusher,
        r#"{"action":"disconnect","connections":["a1"]}"#,
        Some(generation),
    )
    .await;
    assert_eq!(failures, 0);
    assert_eq!(metrics.failed, 1);
    assert_eq!(metrics.retried, 3);
    let dead = pusher.outbox.dead_letters.lock().unwrap().clone();
    assert_eq!(
        dead,
        [(
            r#"{"action":"disconnect","connections":["a1"],"data":null}"#.to_string(),
            "retries_exhausted"
        )]
    );
}

#[tokio::test]
async fn a_requeued_disconnect_is_not_a_frame_and_spends_a_generation() {
    let pusher = alice();
    let throttled = || PostOutcome::Retryable("429 LimitExceededException".into());
    pusher
        .poster
        .script("a1", (0..4).map(|_| throttled()).collect());
    let (failures, metrics) = run(
        &pusher,
        r#"{"action":"disconnect","users":["alice"],"data":"bye"}"#,
        None,
    )
    .await;
    assert_eq!(failures, 0);
    assert_eq!((metrics.closed, metrics.requeued), (1, 1));
    let requeued = pusher.outbox.requeued.lock().unwrap().clone();
    assert_eq!(requeued.len(), 1);
    assert_eq!(
        requeued[0].0,
        r#"{"action":"disconnect","connections":["a1"],"publication_id":"m1","data":"bye"}"#
    );
    assert_eq!(requeued[0].1, 1);
    assert_eq!(*pusher.outbox.requeued_verbatim.lock().unwrap(), [false]);
}

#[tokio::test]
async fn a_failed_subscription_write_fails_the_record_before_anything_is_posted() {
    let pusher = alice();
    pusher
        .store
        .failing_subscription_writes
        .store(true, Ordering::SeqCst);
    let (failures, metrics) = run(
        &pusher,
        r#"{"action":"subscribe","channel":"room/1","users":["alice"],"data":1}"#,
        None,
    )
    .await;
    assert_eq!(failures, 1, "SQS redelivers it");
    assert_eq!(metrics.subscribed, 0);
    assert!(pusher.poster.posts.lock().unwrap().is_empty());

    // Once the table answers, the redelivery does it all, once.
    pusher
        .store
        .failing_subscription_writes
        .store(false, Ordering::SeqCst);
    let (failures, metrics) = run(
        &pusher,
        r#"{"action":"subscribe","channel":"room/1","users":["alice"],"data":1}"#,
        None,
    )
    .await;
    assert_eq!(failures, 0);
    assert_eq!((metrics.subscribed, metrics.delivered), (2, 2));
    let mut subscribed: Vec<String> = pusher
        .store
        .subscriptions
        .lock()
        .unwrap()
        .iter()
        .map(|s| format!("{} {} {}", s.key.channel, s.key.connection_id, s.user_id))
        .collect();
    subscribed.sort();
    assert_eq!(subscribed, ["room/1 a1 alice", "room/1 a2 alice"]);
}

#[tokio::test]
async fn a_subscribe_whose_data_is_not_delivered_requeues_a_push_of_the_frame() {
    let pusher = alice();
    let throttled = || PostOutcome::Retryable("429 LimitExceededException".into());
    pusher
        .poster
        .script("a2", (0..4).map(|_| throttled()).collect());
    let (failures, metrics) = run(
        &pusher,
        r#"{"action":"subscribe","channel":"room/*","users":["alice"],"data":1}"#,
        None,
    )
    .await;
    assert_eq!(failures, 0);
    assert_eq!(
        (metrics.subscribed, metrics.delivered, metrics.requeued),
        (2, 1, 1)
    );
    let requeued = pusher.outbox.requeued.lock().unwrap().clone();
    assert_eq!(
        requeued[0].0,
        r#"{"connections":["a2"],"publication_id":"m1","data":{"type":"message","id":"m1","data":1}}"#
    );
    assert_eq!(*pusher.outbox.requeued_verbatim.lock().unwrap(), [true]);
}

#[tokio::test]
async fn an_action_that_is_not_a_string_is_dead_lettered() {
    let pusher = alice();
    let body = r#"{"action":1,"users":["u1"],"data":1}"#;
    let (failures, metrics) = run(&pusher, body, None).await;
    assert_eq!((failures, metrics.rejected), (0, 1));
    assert_eq!(
        *pusher.outbox.dead_letters.lock().unwrap(),
        [(body.to_string(), "invalid_request")]
    );
}
