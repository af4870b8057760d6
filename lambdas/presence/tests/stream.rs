//! The stream watchdog on real keys-only stream-record fixtures, with fake seams.

mod common;

use common::{deps, failures, invoke_stream, sequence_number, FakeCounter, FakeSink};
use sumu_wire::OfflineReason::{Disconnected, Expired};
use sumu_wire::PresenceStatus::{Offline, Online};

const SINGLE_ONLINE: &str = include_str!("fixtures/single-device-online.json");
const SINGLE_OFFLINE: &str = include_str!("fixtures/single-device-offline.json");
const FIRST_CLOSES: &str = include_str!("fixtures/two-devices-first-closes.json");
const SECOND_CLOSES: &str = include_str!("fixtures/two-devices-second-closes.json");
const BOTH_CLOSE: &str = include_str!("fixtures/two-devices-both-close.json");
const CONNECT_DISCONNECT: &str = include_str!("fixtures/connect-disconnect-same-batch.json");
const TTL_REMOVAL: &str = include_str!("fixtures/ttl-removal.json");
const MALFORMED: &str = include_str!("fixtures/malformed-among-good.json");
const THREE_USERS: &str = include_str!("fixtures/three-users-connect.json");

/// Deps whose table holds `live` connections per user after the batch.
fn with_live(live: &[(&str, u32)]) -> common::TestDeps {
    deps(FakeCounter::with(live), FakeSink::default())
}

fn s(value: &str) -> String {
    value.to_owned()
}

#[tokio::test]
async fn single_device_connects_then_disconnects() {
    let deps = deps(FakeCounter::with(&[("u1", 1)]), FakeSink::default());
    let response = invoke_stream(SINGLE_ONLINE, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cA="), Online, 1, None)]
    );
    let online = deps.sink.delivered.lock().unwrap()[0].clone();
    // The record's ApproximateCreationDateTime (seconds) becomes the event's epoch ms.
    assert_eq!(online.message.timestamp, 1_700_000_000_000);
    assert_eq!(
        serde_json::to_value(&online).unwrap(),
        serde_json::json!({"type":"presence","message":{"user_id":"u1","status":"ONLINE",
            "connection_id":"cA=","connections":1,"timestamp":1_700_000_000_000_i64}})
    );

    let deps = with_live(&[("u1", 0)]);
    let response = invoke_stream(SINGLE_OFFLINE, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cA="), Offline, 0, Some(Disconnected))]
    );
    assert_eq!(deps.counter.asked(), vec![s("u1")]);
}

#[tokio::test]
async fn two_devices_first_closes_without_offline_then_second_closes_with_offline() {
    // cB is still live when cA closes.
    let deps = with_live(&[("u1", 1)]);
    let response = invoke_stream(FIRST_CLOSES, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(deps.sink.summary(), vec![]);

    let deps = with_live(&[("u1", 0)]);
    invoke_stream(SECOND_CLOSES, &deps).await;
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cB="), Offline, 0, Some(Disconnected))]
    );
}

#[tokio::test]
async fn two_devices_closing_in_one_batch_give_one_offline_on_the_last() {
    let deps = with_live(&[("u1", 0)]);
    let response = invoke_stream(BOTH_CLOSE, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cB="), Offline, 0, Some(Disconnected))]
    );
    // One Query for the user, not one per record.
    assert_eq!(deps.counter.asked(), vec![s("u1")]);
}

#[tokio::test]
async fn connect_and_disconnect_in_one_batch_give_online_then_offline() {
    // The table already lost cA when the batch is processed.
    let deps = with_live(&[("u1", 0)]);
    let response = invoke_stream(CONNECT_DISCONNECT, &deps).await;
    assert!(failures(&response).is_empty());
    // MODIFY (ping) yields nothing; the connection counted itself while it lived.
    assert_eq!(
        deps.sink.summary(),
        vec![
            (s("u1"), s("cA="), Online, 1, None),
            (s("u1"), s("cA="), Offline, 0, Some(Disconnected)),
        ]
    );
}

#[tokio::test]
async fn connect_and_disconnect_while_another_device_stays_gives_online_only() {
    let deps = with_live(&[("u1", 1)]);
    invoke_stream(CONNECT_DISCONNECT, &deps).await;
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cA="), Online, 2, None)]
    );
}

#[tokio::test]
async fn ttl_removal_is_an_offline_that_says_expired() {
    let deps = with_live(&[("u1", 0)]);
    let response = invoke_stream(TTL_REMOVAL, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cA="), Offline, 0, Some(Expired))]
    );
    let event = serde_json::to_value(&deps.sink.delivered.lock().unwrap()[0]).unwrap();
    assert_eq!(event["message"]["reason"], "expired");
}

#[tokio::test]
async fn ttl_removal_of_an_expired_connection_while_another_lives_gives_nothing() {
    let deps = with_live(&[("u1", 1)]);
    invoke_stream(TTL_REMOVAL, &deps).await;
    assert_eq!(deps.sink.summary(), vec![]);
}

#[tokio::test]
async fn malformed_records_are_skipped_and_the_good_ones_still_produce_events() {
    let deps = deps(
        FakeCounter::with(&[("u1", 1), ("u2", 1)]),
        FakeSink::default(),
    );
    let response = invoke_stream(MALFORMED, &deps).await;
    // Nothing is reported: retrying cannot fix a record without keys, with a numeric user
    // id, without its `dynamodb` part or with an unknown event name.
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(
        deps.sink.summary(),
        vec![
            (s("u1"), s("cA="), Online, 1, None),
            (s("u2"), s("cB="), Online, 1, None)
        ]
    );
    assert_eq!(deps.counter.asked(), vec![s("u1"), s("u2")]);
}

#[tokio::test]
async fn a_transient_delivery_failure_is_reported_and_stops_the_batch_there() {
    let deps = deps(
        FakeCounter::with(&[("u1", 1), ("u2", 1), ("u3", 1)]),
        FakeSink::failing_for("u2"),
    );
    let response = invoke_stream(THREE_USERS, &deps).await;
    // Lambda retries from u2's record; u3's record comes back with it, so it is not
    // delivered now (that would deliver it twice).
    assert_eq!(failures(&response), vec![sequence_number(THREE_USERS, 1)]);
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cA="), Online, 1, None)]
    );
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(
        wire,
        serde_json::json!({"batchItemFailures":[{"itemIdentifier": sequence_number(THREE_USERS, 1)}]})
    );
}

#[tokio::test]
async fn a_failed_query_is_reported_at_that_users_first_record() {
    let deps = deps(
        FakeCounter::with(&[("u1", 1), ("u3", 1)]).failing_for("u2"),
        FakeSink::default(),
    );
    let response = invoke_stream(THREE_USERS, &deps).await;
    assert_eq!(failures(&response), vec![sequence_number(THREE_USERS, 1)]);
    assert_eq!(
        deps.sink.summary(),
        vec![(s("u1"), s("cA="), Online, 1, None)]
    );
}

#[tokio::test]
async fn the_retried_batch_delivers_what_was_left() {
    // The retry starts at the failed record: u2 and u3, now deliverable.
    let value: serde_json::Value = serde_json::from_str(THREE_USERS).unwrap();
    let records = value["Records"].as_array().unwrap()[1..].to_vec();
    let retry = serde_json::json!({ "Records": records }).to_string();
    let deps = deps(
        FakeCounter::with(&[("u2", 1), ("u3", 1)]),
        FakeSink::default(),
    );
    let response = invoke_stream(&retry, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        deps.sink.summary(),
        vec![
            (s("u2"), s("cB="), Online, 1, None),
            (s("u3"), s("cC="), Online, 1, None)
        ]
    );
}
