//! Large broadcasts split into shards that other invocations handle: the handler with fakes,
//! the queue played by hand (each shard and narrowed re-queue becomes the next invocation).

mod support;

use std::collections::{HashMap, VecDeque};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use pusher::{handle_sqs, Metrics, PostOutcome};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use support::{item, pusher, FakePusher, EXPIRED, LIVE, SQS_FIXTURE};

/// A queued message: body, generation, `sumu_shard`.
type Message = (String, u32, Option<String>);

fn event(message: &Message) -> LambdaEvent<SqsEvent> {
    let fixture: Value = serde_json::from_str(SQS_FIXTURE).unwrap();
    let mut record = fixture["Records"][0].clone();
    let (body, generation, shard) = message;
    record["body"] = json!(body);
    let attribute = |data_type: &str, value: &str| json!({"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": data_type});
    let mut attributes = json!({"sumu_generation": attribute("Number", &generation.to_string())});
    match shard {
        Some(shard) => attributes["sumu_shard"] = attribute("String", shard),
        // A narrowed re-queue carries its frame, as the outbox marks it.
        None if *generation > 0 => attributes["sumu_frame"] = attribute("String", "verbatim"),
        None => {}
    }
    record["messageAttributes"] = attributes;
    LambdaEvent::new(
        serde_json::from_value(json!({ "Records": [record] })).unwrap(),
        Context::default(),
    )
}

/// Runs `first` and then every message the invocations send to the queue (shards and
/// narrowed re-queues), one invocation each, until the queue is empty. Returns each
/// invocation's metrics.
async fn play(pusher: &FakePusher, first: Message) -> Vec<Metrics> {
    let mut queue = VecDeque::from([first]);
    let mut invocations = Vec::new();
    while let Some(message) = queue.pop_front() {
        let response = handle_sqs(event(&message), pusher).await;
        let metrics = pusher.metrics.last();
        assert!(
            response.batch_item_failures.is_empty(),
            "{message:?} failed"
        );
        invocations.push(metrics);
        for (body, shard, generation) in pusher.outbox.shards.lock().unwrap().drain(..) {
            queue.push_back((body, generation, Some(shard)));
        }
        for (body, generation, _) in pusher.outbox.requeued.lock().unwrap().drain(..) {
            queue.push_back((body, generation, None));
        }
        assert!(invocations.len() < 100, "the queue never empties");
    }
    invocations
}

fn table(live: usize) -> Vec<pusher::ConnectionItem> {
    let mut items: Vec<_> = (0..live)
        .map(|n| item(&format!("u{}", n % 7), &format!("c{n:03}="), LIVE))
        .collect();
    items.push(item("u1", "expired=", EXPIRED));
    items
}

fn sharding(items: Vec<pusher::ConnectionItem>, threshold: u32) -> FakePusher {
    let mut pusher = pusher(items);
    pusher.limits.shard_threshold = threshold;
    pusher.outbox.takes_shards.store(true, Ordering::SeqCst);
    pusher
}

fn broadcast(body: &str) -> Message {
    (body.to_string(), 0, None)
}

fn deliveries(pusher: &FakePusher) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for connection in pusher.poster.received() {
        *counts.entry(connection).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn a_broadcast_over_the_threshold_is_split_and_every_connection_gets_it_once() {
    let pusher = sharding(table(45), 10);
    *pusher.store.approximate_count.lock().unwrap() = Some(46);

    let invocations = play(
        &pusher,
        broadcast(r#"{"exclude_users":["u6"],"data":"hi"}"#),
    )
    .await;

    // 46 items / 10 = 5 shards: the first invocation keeps segment 0 and sends 1..4.
    assert_eq!(invocations[0].shards, 4);
    assert_eq!(invocations.len(), 5);
    let expected: Vec<String> = (0..45)
        .filter(|n| n % 7 != 6)
        .map(|n| format!("c{n:03}="))
        .collect();
    let counts = deliveries(&pusher);
    assert_eq!(counts.len(), expected.len(), "{counts:?}");
    for connection in &expected {
        assert_eq!(counts.get(connection), Some(&1), "{connection}");
    }
    for invocation in &invocations {
        assert!(invocation.delivered <= 10, "{invocations:?}");
    }
    assert!(pusher.store.largest_page.load(Ordering::SeqCst) <= 10);
    // The expired item was pruned by the shard that read it, once.
    assert_eq!(pusher.store.deleted.lock().unwrap().len(), 1);
    // Every shard carried the same data and exclusions, in one message frame with one id.
    let posts = pusher.poster.posts.lock().unwrap();
    let first: Value = serde_json::from_slice(&posts[0].1).unwrap();
    assert_eq!(
        (&first["type"], &first["data"]),
        (&json!("message"), &json!("hi"))
    );
    for (_, frame) in posts.iter() {
        assert_eq!(frame, &posts[0].1);
    }
}

#[tokio::test]
async fn a_stale_estimate_still_bounds_each_invocation_through_continuations() {
    // DynamoDB's ItemCount lags by hours: it says 5, the table has 60.
    let pusher = sharding(table(60), 10);
    *pusher.store.approximate_count.lock().unwrap() = Some(5);

    let invocations = play(&pusher, broadcast(r#"{"data":{"n":1}}"#)).await;

    let counts = deliveries(&pusher);
    assert_eq!(counts.len(), 60);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert!(invocations.len() >= 6, "{} invocations", invocations.len());
    for invocation in &invocations {
        assert!(invocation.delivered <= 10, "{invocations:?}");
    }
}

#[tokio::test]
async fn faults_in_one_shard_are_retried_and_requeued_for_that_shard_only() {
    let pusher = sharding(table(40), 10);
    *pusher.store.approximate_count.lock().unwrap() = Some(40);
    // Segment 2 of 4 is c002, c006, …: each fails its first post, and c010 fails every
    // post of its first invocation (then it is re-queued, narrowed, alone).
    for n in (2..40).step_by(4) {
        let connection = format!("c{n:03}=");
        if n == 10 {
            pusher.poster.script(
                &connection,
                vec![PostOutcome::Retryable("500 InternalServerErrorException".into()); 4],
            );
        } else {
            pusher.poster.script(
                &connection,
                vec![PostOutcome::Retryable("429 LimitExceededException".into())],
            );
        }
    }

    let invocations = play(&pusher, broadcast(r#"{"data":"once"}"#)).await;

    let counts = deliveries(&pusher);
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    // Nobody outside the faulty shard was posted to more than once.
    for (connection, posts) in pusher.poster.counts() {
        let n: usize = connection[1..4].parse().unwrap();
        match n {
            10 => assert_eq!(posts, 5, "{connection}"),
            n if n % 4 == 2 => assert_eq!(posts, 2, "{connection}"),
            _ => assert_eq!(posts, 1, "{connection}"),
        }
    }
    let requeued: u64 = invocations.iter().map(|m| m.requeued).sum();
    assert_eq!(requeued, 1, "only c010 was re-queued: {invocations:?}");
    // 4 shards, the continuation of segment 0 (it holds the expired item too: 11 > 10) and
    // the narrowed re-queue.
    assert_eq!(invocations.len(), 6, "{invocations:?}");
}

#[tokio::test]
async fn a_shard_that_cannot_be_queued_fails_the_message_before_anything_is_posted() {
    let pusher = sharding(table(30), 10);
    *pusher.store.approximate_count.lock().unwrap() = Some(30);
    *pusher.outbox.shards_fail_after.lock().unwrap() = Some(1);

    let response = handle_sqs(event(&broadcast(r#"{"data":1}"#)), &pusher).await;
    let metrics = pusher.metrics.last();

    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(pusher.poster.posts.lock().unwrap().is_empty());
    assert_eq!(metrics.delivered, 0);
}

#[tokio::test]
async fn without_a_queue_or_a_threshold_a_broadcast_is_read_whole_as_before() {
    for (threshold, takes_shards) in [(10, false), (0, true)] {
        let pusher = sharding(table(30), threshold);
        pusher
            .outbox
            .takes_shards
            .store(takes_shards, Ordering::SeqCst);
        *pusher.store.approximate_count.lock().unwrap() = Some(30);

        let invocations = play(&pusher, broadcast(r#"{"data":1}"#)).await;

        assert_eq!(invocations.len(), 1);
        assert_eq!(invocations[0].delivered, 30);
        assert_eq!(invocations[0].shards, 0);
    }
}

#[tokio::test]
async fn a_shard_attribute_on_a_targeted_request_is_dead_lettered() {
    let pusher = sharding(table(5), 10);
    let message = (
        r#"{"users":["u1"],"data":1}"#.to_string(),
        0,
        Some(r#"{"segment":0,"segments":2}"#.to_string()),
    );
    let response = handle_sqs(event(&message), &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(metrics.rejected, 1);
    assert_eq!(
        pusher.outbox.dead_letters.lock().unwrap()[0].1,
        "invalid_request"
    );
    assert!(pusher.poster.posts.lock().unwrap().is_empty());
}
