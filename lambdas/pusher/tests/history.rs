//! Publications on channels that keep history (docs/channels.md § History and recovery): an
//! offset each, kept before anything is posted, kept across re-queues and deferrals; an emit's
//! ack carries its offset. In-memory fakes of the tables, the management API and the queues.

mod support;

use std::sync::atomic::Ordering;

use pusher::{handle_sqs, PostOutcome};
use serde_json::{json, Value};
use sumu_wire::Namespaces;
use support::*;

/// alice (a1) and bob (b1) subscribe to `room/*`; `room/*` keeps 10 publications for an hour,
/// `lobby` keeps none.
fn rooms() -> FakePusher {
    let mut pusher = channel_pusher(
        vec![item("alice", "a1", LIVE), item("bob", "b1", LIVE)],
        vec![
            subscription("room/*", "a1", "alice", LIVE),
            subscription("room/*", "b1", "bob", LIVE),
            subscription("lobby", "b1", "bob", LIVE),
        ],
    );
    pusher.namespaces =
        Namespaces::parse(r#"[{"pattern":"room/*","history_size":10,"history_ttl_seconds":3600}]"#)
            .unwrap();
    pusher
}

fn posted(pusher: &FakePusher, connection: &str) -> Vec<Value> {
    pusher
        .poster
        .posts
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == connection)
        .map(|(_, frame)| serde_json::from_slice(frame).unwrap())
        .collect()
}

#[tokio::test]
async fn each_publication_gets_the_next_offset_and_is_kept_as_delivered() {
    let pusher = rooms();
    for (id, data) in [("m1", 1), ("m2", 2)] {
        let body = json!({"channels": ["room/1"], "data": data}).to_string();
        let response = handle_sqs(sqs_event(&[(id, &body, None)]), &pusher).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let frames = posted(&pusher, "a1");
    assert_eq!(
        frames,
        [
            json!({"type":"publication","channel":"room/1","id":"m1","offset":1,"epoch":"e1","data":1}),
            json!({"type":"publication","channel":"room/1","id":"m2","offset":2,"epoch":"e1","data":2}),
        ]
    );
    // Kept byte for byte as delivered, for the history's time.
    let kept = pusher.store.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 2);
    let delivered = pusher.poster.posts.lock().unwrap().clone();
    for ((channel, offset, epoch, frame, expires_at), n) in kept.iter().zip(1u64..) {
        assert_eq!(
            (channel.as_str(), *offset, epoch.as_str()),
            ("room/1", n, "e1")
        );
        assert!(delivered
            .iter()
            .any(|(_, posted)| posted == frame.as_bytes()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now + 3590..=now + 3610).contains(expires_at),
            "{expires_at}"
        );
    }
}

#[tokio::test]
async fn a_channel_without_history_gets_no_offset_and_nothing_is_kept() {
    let pusher = rooms();
    handle_sqs(
        sqs_event(&[("m1", r#"{"channels":["lobby"],"data":1}"#, None)]),
        &pusher,
    )
    .await;
    assert_eq!(
        posted(&pusher, "b1"),
        [json!({"type":"publication","channel":"lobby","id":"m1","data":1})]
    );
    assert!(pusher.store.kept.lock().unwrap().is_empty());
    assert!(pusher.store.history_state.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_emit_with_a_ref_is_acked_with_its_offset_before_the_fan_out() {
    let pusher = rooms();
    let body = r#"{"channels":["room/1"],"data":{"t":1},"ref":"r-1"}"#;
    let response = handle_sqs(
        emit_event("e1", body, "alice", "a1", Some("room/*")),
        &pusher,
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        posted(&pusher, "a1"),
        [json!({"type":"ack","ref":"r-1","channel":"room/1","id":"e1","offset":1,"epoch":"e1"})]
    );
    assert_eq!(
        posted(&pusher, "b1"),
        [
            json!({"type":"publication","channel":"room/1","id":"e1","offset":1,"epoch":"e1",
                "data":{"t":1},"from":"alice"})
        ]
    );
    // The ack went out first.
    assert_eq!(pusher.poster.posts.lock().unwrap()[0].0, "a1");
}

#[tokio::test]
async fn a_narrowed_requeue_keeps_the_offset_and_is_not_kept_again() {
    let pusher = rooms();
    pusher
        .poster
        .script("b1", vec![PostOutcome::Retryable("500".into()); 4]);
    handle_sqs(
        sqs_event(&[("m1", r#"{"channels":["room/1"],"data":"x"}"#, None)]),
        &pusher,
    )
    .await;
    let (body, generation, _) = pusher.outbox.requeued.lock().unwrap().pop().unwrap();
    handle_sqs(sqs_event(&[("m2", &body, Some(generation))]), &pusher).await;
    let expected = json!({"type":"publication","channel":"room/1","id":"m1","offset":1,"epoch":"e1","data":"x"});
    assert_eq!(posted(&pusher, "a1"), std::slice::from_ref(&expected));
    assert_eq!(posted(&pusher, "b1").last(), Some(&expected));
    assert_eq!(pusher.store.kept.lock().unwrap().len(), 1, "kept once");
}

#[tokio::test]
async fn a_lookup_failing_after_the_offset_was_given_defers_the_publication_with_it() {
    let pusher = rooms();
    pusher
        .store
        .failing_patterns
        .lock()
        .unwrap()
        .insert("room/*".into());
    let response = handle_sqs(
        sqs_event(&[(
            "m1",
            r#"{"channels":["room/1"],"exclude_users":["bob"],"data":"x"}"#,
            None,
        )]),
        &pusher,
    )
    .await;
    // Not redelivered (that would give it a second offset): re-queued as it was kept.
    assert!(response.batch_item_failures.is_empty());
    assert!(pusher.poster.posts.lock().unwrap().is_empty());
    let (body, generation, _) = pusher.outbox.requeued.lock().unwrap().pop().unwrap();
    let deferred: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(deferred["channels"], json!(["room/1"]));
    assert_eq!(deferred["exclude_users"], json!(["bob"]));
    assert_eq!(deferred["data"]["offset"], 1);

    pusher.store.failing_patterns.lock().unwrap().clear();
    let response = handle_sqs(sqs_event(&[("m2", &body, Some(generation))]), &pusher).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        posted(&pusher, "a1"),
        [
            json!({"type":"publication","channel":"room/1","id":"m1","offset":1,"epoch":"e1","data":"x"})
        ]
    );
    assert!(posted(&pusher, "b1").is_empty(), "exclusions kept");
    assert_eq!(pusher.store.kept.lock().unwrap().len(), 1, "kept once");
}

#[tokio::test]
async fn a_history_failure_fails_the_record_before_anything_is_posted() {
    let pusher = rooms();
    pusher.store.failing_history.store(true, Ordering::SeqCst);
    let response = handle_sqs(
        sqs_event(&[("m1", r#"{"channels":["room/1"],"data":"x"}"#, None)]),
        &pusher,
    )
    .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(pusher.poster.posts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_publication_too_large_to_replay_is_refused_on_a_history_channel_only() {
    let pusher = rooms();
    // Fits in a WebSocket message, not in a reply that replays it.
    let data = "x".repeat(128 * 1024 - 600);
    for (channel, dead_lettered) in [("room/1", true), ("lobby", false)] {
        let before = pusher.outbox.dead_letters.lock().unwrap().len();
        let body = json!({"channels": [channel], "data": data}).to_string();
        handle_sqs(sqs_event(&[("m1", &body, None)]), &pusher).await;
        let after = pusher.outbox.dead_letters.lock().unwrap().len();
        assert_eq!(after - before == 1, dead_lettered, "{channel}");
    }
    assert_eq!(
        posted(&pusher, "b1").len(),
        1,
        "only lobby's publication went out"
    );
}
