//! Publications to channels and client emits through the real handler entry points, with the
//! in-memory fakes of the tables, the management API and the queues.

mod support;

use std::sync::atomic::Ordering;

use pusher::{handle_sns, handle_sqs, Metrics, PostOutcome, SubscriptionItem};
use serde_json::{json, Value};
use support::*;

fn ids(list: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// alice has two connections, bob one, carol one; their subscriptions:
/// - `a1` (alice): `room/42` and `room/*` (two patterns matching room/42)
/// - `a2` (alice): `room/42`
/// - `b1` (bob): `room/*`
/// - `c1` (carol): `*`
/// - `d1` (dave): `room/43` only
/// - `e1` (erin): `rooms/*` and `room/42/x` (neither matches room/42)
fn room() -> FakePusher {
    let connections = vec![
        item("alice", "a1", LIVE),
        item("alice", "a2", LIVE),
        item("bob", "b1", LIVE),
        item("carol", "c1", LIVE),
        item("dave", "d1", LIVE),
        item("erin", "e1", LIVE),
    ];
    let subscriptions = vec![
        subscription("room/42", "a1", "alice", LIVE),
        subscription("room/*", "a1", "alice", LIVE),
        subscription("room/42", "a2", "alice", LIVE),
        subscription("room/*", "b1", "bob", LIVE),
        subscription("*", "c1", "carol", LIVE),
        subscription("room/43", "d1", "dave", LIVE),
        subscription("rooms/*", "e1", "erin", LIVE),
        subscription("room/42/x", "e1", "erin", LIVE),
    ];
    channel_pusher(connections, subscriptions)
}

async fn run_sqs(pusher: &FakePusher, message_id: &str, body: &str) -> (Vec<String>, Metrics) {
    let response = handle_sqs(sqs_event(&[(message_id, body, None)]), pusher).await;
    let metrics = pusher.metrics.last();
    let failures = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    (failures, metrics)
}

/// What each connection was posted, parsed.
fn posted(pusher: &FakePusher, connection: &str) -> Vec<Value> {
    pusher
        .poster
        .posts
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == connection)
        .map(|(_, data)| serde_json::from_slice(data).unwrap())
        .collect()
}

fn sorted_patterns(pusher: &FakePusher) -> Vec<String> {
    let mut patterns = pusher.store.queried_patterns.lock().unwrap().clone();
    patterns.sort();
    patterns
}

#[tokio::test]
async fn a_publication_reaches_exact_and_wildcard_subscribers_once_each_and_nobody_else() {
    let pusher = room();
    let (failures, metrics) = run_sqs(
        &pusher,
        "m1",
        r#"{"channels":["room/42"],"data":{"text":"hi"}}"#,
    )
    .await;
    assert!(failures.is_empty());
    // a1 is subscribed through room/42 and room/*: it gets the publication once.
    assert_eq!(pusher.poster.received(), ids(&["a1", "a2", "b1", "c1"]));
    let envelope = json!({"type":"publication","channel":"room/42","id":"m1","data":{"text":"hi"}});
    for connection in ["a1", "a2", "b1", "c1"] {
        assert_eq!(
            posted(&pusher, connection),
            vec![envelope.clone()],
            "{connection}"
        );
    }
    // Every recipient gets the very same bytes.
    let posts = pusher.poster.posts.lock().unwrap().clone();
    assert!(posts.iter().all(|(_, data)| data == &posts[0].1));
    // One Query per partition of room/42, and nothing else read.
    assert_eq!(sorted_patterns(&pusher), ["*", "room/*", "room/42"]);
    assert!(pusher.store.scanned_segments.lock().unwrap().is_empty());
    assert!(pusher.store.queried_users.lock().unwrap().is_empty());
    assert_eq!(
        metrics,
        Metrics {
            delivered: 4,
            publications: 1,
            ..Metrics::default()
        }
    );
}

#[tokio::test]
async fn a_subscriber_of_room_42_gets_nothing_from_room_43() {
    let pusher = room();
    run_sqs(&pusher, "m1", r#"{"channels":["room/43"],"data":1}"#).await;
    // a1 has room/* as well; a2 only room/42.
    assert_eq!(pusher.poster.received(), ids(&["a1", "b1", "c1", "d1"]));
    assert!(posted(&pusher, "a2").is_empty());
}

#[tokio::test]
async fn every_partition_of_a_deep_channel_is_queried() {
    let pusher = room();
    run_sqs(&pusher, "m1", r#"{"channels":["a/b/c/d/e"],"data":1}"#).await;
    assert_eq!(
        sorted_patterns(&pusher),
        ["*", "a/*", "a/b/*", "a/b/c/*", "a/b/c/d/*", "a/b/c/d/e"]
    );
    assert_eq!(pusher.poster.received(), ids(&["c1"]));
}

#[tokio::test]
async fn exclude_users_and_exclude_connections_apply_to_publications() {
    let pusher = room();
    run_sqs(
        &pusher,
        "m1",
        r#"{"channels":["room/42"],"exclude_users":["bob"],"exclude_connections":["a2"],"data":1}"#,
    )
    .await;
    assert_eq!(pusher.poster.received(), ids(&["a1", "c1"]));
}

#[tokio::test]
async fn exclude_connections_applies_to_user_connection_and_broadcast_requests_too() {
    let pusher = room();
    run_sqs(
        &pusher,
        "m1",
        r#"{"users":["alice"],"exclude_connections":["a1"],"data":1}"#,
    )
    .await;
    assert_eq!(pusher.poster.received(), ids(&["a2"]));

    let pusher = room();
    run_sqs(
        &pusher,
        "m1",
        r#"{"connections":["b1","c1"],"exclude_connections":["c1"],"data":1}"#,
    )
    .await;
    assert_eq!(pusher.poster.received(), ids(&["b1"]));

    let pusher = room();
    run_sqs(
        &pusher,
        "m1",
        r#"{"exclude_connections":["a1","d1"],"exclude_users":["erin"],"data":1}"#,
    )
    .await;
    assert_eq!(pusher.poster.received(), ids(&["a2", "b1", "c1"]));
}

#[tokio::test]
async fn channels_with_users_or_connections_or_a_pattern_are_dead_lettered_as_invalid_request() {
    let pusher = room();
    let event = sqs_event(&[
        (
            "with-users",
            r#"{"channels":["room/42"],"users":["bob"],"data":1}"#,
            None,
        ),
        (
            "with-connections",
            r#"{"channels":["room/42"],"connections":["b1"],"data":1}"#,
            None,
        ),
        (
            "empty-users",
            r#"{"channels":["room/42"],"users":[],"data":1}"#,
            None,
        ),
        ("pattern", r#"{"channels":["room/*"],"data":1}"#, None),
        ("all", r#"{"channels":["*"],"data":1}"#, None),
        ("bad-name", r#"{"channels":["room 42"],"data":1}"#, None),
    ]);
    let response = handle_sqs(event, &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert!(pusher.poster.posts.lock().unwrap().is_empty());
    assert!(pusher.store.queried_patterns.lock().unwrap().is_empty());
    let dead = pusher.outbox.dead_letters.lock().unwrap().clone();
    assert_eq!(dead.len(), 6);
    assert!(
        dead.iter().all(|(_, reason)| *reason == "invalid_request"),
        "{dead:?}"
    );
    assert_eq!(
        dead[0].0,
        r#"{"channels":["room/42"],"users":["bob"],"data":1}"#
    );
    assert_eq!(metrics.rejected, 6);
}

#[tokio::test]
async fn several_channels_are_one_publication_each_with_their_own_id() {
    let pusher = room();
    let (_, metrics) = run_sqs(
        &pusher,
        "m7",
        r#"{"channels":["room/42","room/43"],"data":"x"}"#,
    )
    .await;
    assert_eq!(metrics.publications, 2);
    // b1 (room/*) and c1 (*) match both channels: one envelope per channel.
    let mut got: Vec<(String, String)> = posted(&pusher, "b1")
        .iter()
        .map(|e| {
            (
                e["channel"].as_str().unwrap().into(),
                e["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("room/42".to_string(), "m7#room/42".to_string()),
            ("room/43".to_string(), "m7#room/43".to_string())
        ]
    );
    assert_eq!(posted(&pusher, "c1").len(), 2);
    assert_eq!(posted(&pusher, "a2").len(), 1);
    assert_eq!(posted(&pusher, "d1").len(), 1);
}

#[tokio::test]
async fn the_id_is_the_back_ends_publication_id_or_the_message_id_and_survives_redelivery() {
    let pusher = room();
    run_sqs(
        &pusher,
        "m1",
        r#"{"channels":["room/43"],"publication_id":"order-7","data":1}"#,
    )
    .await;
    assert_eq!(posted(&pusher, "d1")[0]["id"], "order-7");

    // The same SQS message delivered twice (a redelivery) has the same id both times.
    let pusher = room();
    run_sqs(&pusher, "m-same", r#"{"channels":["room/43"],"data":1}"#).await;
    run_sqs(&pusher, "m-same", r#"{"channels":["room/43"],"data":1}"#).await;
    let ids: Vec<Value> = posted(&pusher, "d1")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, [json!("m-same"), json!("m-same")]);

    // Over SNS the id is the topic message's MessageId.
    let pusher = room();
    let event = sns_event(r#"{"channels":["room/43"],"data":1}"#);
    let message_id = event.payload.records[0].sns.message_id.clone();
    let result = handle_sns(event, &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(result.is_ok());
    assert_eq!(metrics.publications, 1);
    assert_eq!(posted(&pusher, "d1")[0]["id"], json!(message_id));
    assert!(posted(&pusher, "d1")[0].get("from").is_none());
}

#[tokio::test]
async fn a_narrowed_requeue_keeps_the_id_and_the_bytes_across_generations() {
    let pusher = room();
    pusher
        .poster
        .script("b1", vec![PostOutcome::Retryable("500".into()); 4]);
    let (failures, metrics) =
        run_sqs(&pusher, "m1", r#"{"channels":["room/42"],"data":{"v":1}}"#).await;
    assert!(failures.is_empty());
    assert_eq!((metrics.delivered, metrics.requeued), (3, 1));
    let first = pusher.poster.posts.lock().unwrap()[0].1.clone();

    let (body, generation, _) = pusher.outbox.requeued.lock().unwrap().pop().unwrap();
    assert_eq!(generation, 1);
    let narrowed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(narrowed["publication_id"], "m1");
    assert_eq!(narrowed_connections(&body), vec!["b1".to_string()]);

    // The next generation is a different SQS message: the id stays the original's.
    let response = handle_sqs(sqs_event(&[("m2", &body, Some(generation))]), &pusher).await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(metrics.delivered, 1);
    let delivered_to_b1 = pusher.poster.posts.lock().unwrap().last().cloned().unwrap();
    assert_eq!(delivered_to_b1.0, "b1");
    assert_eq!(delivered_to_b1.1, first, "byte-identical envelope, same id");
    assert_eq!(posted(&pusher, "b1").last().unwrap()["id"], "m1");
    assert_eq!(pusher.poster.received(), ids(&["a1", "a2", "b1", "c1"]));

    // And a generation that fails again re-queues it with the same id once more.
    pusher
        .poster
        .script("b1", vec![PostOutcome::Retryable("500".into()); 4]);
    handle_sqs(sqs_event(&[("m3", &body, Some(1))]), &pusher).await;
    let (again, generation, _) = pusher.outbox.requeued.lock().unwrap().pop().unwrap();
    assert_eq!(generation, 2);
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), narrowed);
}

#[tokio::test]
async fn a_gone_subscriber_loses_its_connection_item_and_every_subscription_it_was_found_through() {
    let pusher = room();
    pusher.poster.always("a1", PostOutcome::Gone);
    let (_, metrics) = run_sqs(&pusher, "m1", r#"{"channels":["room/42"],"data":1}"#).await;
    assert_eq!(pusher.poster.received(), ids(&["a2", "b1", "c1"]));
    assert_eq!(metrics.stale, 1);
    let mut deleted = pusher.store.deleted_subscriptions.lock().unwrap().clone();
    deleted.sort();
    let keys: Vec<(&str, &str)> = deleted
        .iter()
        .map(|k| (k.channel.as_str(), k.connection_id.as_str()))
        .collect();
    assert_eq!(keys, [("room/*", "a1"), ("room/42", "a1")]);
    let connections: Vec<String> = pusher
        .store
        .deleted
        .lock()
        .unwrap()
        .iter()
        .map(|k| format!("{}/{}", k.user_id, k.connection_id))
        .collect();
    assert_eq!(connections, ["alice/a1"]);
    // Nobody else's subscriptions were touched.
    assert_eq!(pusher.store.subscriptions.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn expired_subscriptions_are_never_posted_to_and_are_deleted_in_batches() {
    let mut subscriptions: Vec<SubscriptionItem> = (0..60)
        .map(|n| subscription("room/42", &format!("old-{n:02}"), "ghost", EXPIRED))
        .collect();
    subscriptions.push(subscription("room/42", "live", "u1", LIVE));
    let mut without_expiry = subscription("room/*", "no-ttl", "u2", None);
    without_expiry.expires_at = None;
    subscriptions.push(without_expiry);
    let pusher = channel_pusher(vec![item("u1", "live", LIVE)], subscriptions);
    pusher.store.unprocessed_batches.store(2, Ordering::SeqCst);

    let (failures, metrics) = run_sqs(&pusher, "m1", r#"{"channels":["room/42"],"data":1}"#).await;
    assert!(failures.is_empty());
    assert_eq!(pusher.poster.received(), ids(&["live"]));
    assert_eq!(pusher.poster.posts.lock().unwrap().len(), 1);
    assert_eq!(metrics.stale, 61);
    let left: Vec<String> = pusher
        .store
        .subscriptions
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.key.connection_id.clone())
        .collect();
    assert_eq!(
        left,
        ["live"],
        "every expired item deleted, unprocessed ones retried"
    );
    assert!(pusher.store.largest_delete_batch.load(Ordering::SeqCst) <= 25);
    // Expired subscriptions are not a reason to touch connection items.
    assert!(pusher.store.deleted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_partition_query_fails_the_record_before_anything_is_posted() {
    let pusher = room();
    pusher
        .store
        .failing_patterns
        .lock()
        .unwrap()
        .insert("*".into());
    let event = sqs_event(&[
        ("m1", r#"{"channels":["room/43","lobby"],"data":1}"#, None),
        ("m2", r#"{"users":["dave"],"data":2}"#, None),
    ]);
    let response = handle_sqs(event, &pusher).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m1"]);
    assert_eq!(pusher.poster.received(), ids(&["d1"]));
    assert_eq!(
        posted(&pusher, "d1"),
        [json!({"type": "message", "id": "m2", "data": 2})]
    );
}

#[tokio::test]
async fn an_emit_reaches_the_other_subscribers_with_the_trusted_from_and_never_the_sender() {
    let pusher = room();
    let body = r#"{"channels":["room/42"],"data":{"text":"hello","from":"mallory"}}"#;
    let response = handle_sqs(
        emit_event("e1", body, "alice", "a1", Some("room/* user/alice")),
        &pusher,
    )
    .await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    // alice's other connection a2 gets it; a1, which sent it, does not.
    assert_eq!(pusher.poster.received(), ids(&["a2", "b1", "c1"]));
    assert!(posted(&pusher, "a1").is_empty());
    assert_eq!(
        posted(&pusher, "b1"),
        [json!({"type":"publication","channel":"room/42","id":"e1",
            "data":{"text":"hello","from":"mallory"},"from":"alice"})]
    );
    assert_eq!(
        metrics,
        Metrics {
            delivered: 3,
            publications: 1,
            ..Metrics::default()
        }
    );
    assert!(pusher.outbox.dead_letters.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_emit_body_cannot_add_targets_or_exclusions() {
    let pusher = room();
    // Keys a template can never produce are ignored: an emit is exactly one channel's publication.
    let body = r#"{"channels":["room/43"],"users":["erin"],"connections":["e1"],"exclude_users":["dave"],"publication_id":"forged","data":1}"#;
    handle_sqs(emit_event("e1", body, "bob", "b1", Some("room/*")), &pusher).await;
    assert_eq!(pusher.poster.received(), ids(&["a1", "c1", "d1"]));
    assert_eq!(posted(&pusher, "d1")[0]["id"], "e1");
}

#[tokio::test]
async fn a_refused_emit_gets_exactly_its_error_frame_and_reaches_nobody() {
    for (body, grants, frame) in [
        (
            r#"{"channels":["room/42"],"data":1}"#,
            None,
            json!({"type":"error","error":"forbidden","channel":"room/42",
                "message":"no publish grant covers room/42"}),
        ),
        (
            r#"{"channels":["room/42"],"data":1}"#,
            Some("user/bob room/43"),
            json!({"type":"error","error":"forbidden","channel":"room/42",
                "message":"no publish grant covers room/42"}),
        ),
        (
            r#"{"channels":[],"data":1}"#,
            Some("*"),
            json!({"type":"error","error":"invalid_channel","channel":null,
                "message":"no channel given"}),
        ),
        (
            r#"{"channels":["room/*"],"data":1}"#,
            Some("*"),
            json!({"type":"error","error":"invalid_channel","channel":"room/*",
                "message":"a channel cannot contain a wildcard"}),
        ),
        (
            r#"{"channels":[{"channels":["*"]}],"data":1}"#,
            Some("*"),
            json!({"type":"error","error":"invalid_channel","channel":{"channels":["*"]},
                "message":"the channel must be a string"}),
        ),
        (
            r#"{"channels":["room/42"],"data":null}"#,
            Some("room/*"),
            json!({"type":"error","error":"invalid_message","channel":"room/42",
                "message":"an emit needs `data`"}),
        ),
    ] {
        let pusher = room();
        let response = handle_sqs(emit_event("e1", body, "bob", "b1", grants), &pusher).await;
        let metrics = pusher.metrics.last();
        assert!(response.batch_item_failures.is_empty(), "{body}");
        let posts = pusher.poster.posts.lock().unwrap().clone();
        assert_eq!(posts.len(), 1, "{body}: only the sender is told: {posts:?}");
        assert_eq!(posts[0].0, "b1");
        assert_eq!(
            serde_json::from_slice::<Value>(&posts[0].1).unwrap(),
            frame,
            "{body}"
        );
        assert!(pusher.store.queried_patterns.lock().unwrap().is_empty());
        assert!(
            pusher.outbox.dead_letters.lock().unwrap().is_empty(),
            "the client was told"
        );
        assert_eq!(
            metrics,
            Metrics {
                refused_emits: 1,
                ..Metrics::default()
            },
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_emit_over_128_kb_is_refused_as_invalid_message() {
    let pusher = room();
    let body = json!({"channels":["room/42"],"data":"x".repeat(128 * 1024)}).to_string();
    handle_sqs(
        emit_event("e1", &body, "bob", "b1", Some("room/*")),
        &pusher,
    )
    .await;
    let posts = pusher.poster.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    let frame: Value = serde_json::from_slice(&posts[0].1).unwrap();
    assert_eq!(frame["error"], "invalid_message");
    assert_eq!(frame["channel"], "room/42");
}

#[tokio::test]
async fn a_refusal_to_a_vanished_sender_prunes_it_and_an_emit_without_identity_is_dead_lettered() {
    let pusher = room();
    pusher.poster.always("b1", PostOutcome::Gone);
    handle_sqs(
        emit_event(
            "e1",
            r#"{"channels":["room/42"],"data":1}"#,
            "bob",
            "b1",
            None,
        ),
        &pusher,
    )
    .await;
    let metrics = pusher.metrics.last();
    assert_eq!((metrics.refused_emits, metrics.stale), (1, 1));
    let deleted: Vec<String> = pusher
        .store
        .deleted
        .lock()
        .unwrap()
        .iter()
        .map(|k| k.connection_id.clone())
        .collect();
    assert_eq!(deleted, ["b1"]);

    let pusher = room();
    let response = handle_sqs(
        emit_event(
            "e1",
            r#"{"channels":["room/42"],"data":1}"#,
            "",
            "b1",
            Some("*"),
        ),
        &pusher,
    )
    .await;
    let metrics = pusher.metrics.last();
    assert!(response.batch_item_failures.is_empty());
    assert!(pusher.poster.posts.lock().unwrap().is_empty());
    assert_eq!(metrics.rejected, 1);
    assert_eq!(
        pusher.outbox.dead_letters.lock().unwrap()[0].1,
        "invalid_request"
    );
}

#[tokio::test]
async fn an_emit_never_reaches_a_subscription_made_after_it_was_sent() {
    let pusher = room();
    // b1's subscription is made after the emit (its timestamp is 1_700_000_000_000): like a
    // client's new connection during a proactive reconnect, subscribing once its old one
    // had sent the emit.
    for item in pusher.store.subscriptions.lock().unwrap().iter_mut() {
        if item.key.connection_id == "b1" {
            item.subscribed_at = Some(1_700_000_000_001);
        }
    }
    let body = r#"{"channels":["room/42"],"data":1}"#;
    handle_sqs(
        emit_event("e1", body, "alice", "a1", Some("room/*")),
        &pusher,
    )
    .await;
    assert_eq!(pusher.poster.received(), ids(&["a2", "c1"]));
    // A back end's publication has no such cutoff.
    handle_sqs(
        sqs_event(&[("m1", r#"{"channels":["room/42"],"data":2}"#, None)]),
        &pusher,
    )
    .await;
    assert_eq!(posted(&pusher, "b1").len(), 1);
}
