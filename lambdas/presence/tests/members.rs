//! Channel members from the subscriptions stream, with fake seams: which records make a join,
//! a leave, an occupied or a vacated channel; what a retry after a failure tells again; which
//! subscriptions are listeners; and the gauges.

mod common;

use common::{deps, failures, invoke_stream, FakeCounter, FakeSink, FakeSubscriptions, TestDeps};
use serde_json::{json, Value};
use sumu_wire::members::JoinLeaveType;
use sumu_wire::Namespaces;

const NAMESPACES: &str = r#"[{"pattern":"room/*","join_leave":true,"lifecycle_events":true},
                             {"pattern":"quiet/*","lifecycle_events":true},
                             {"pattern":"loud/*","join_leave":true}]"#;

fn tracked(subscriptions: FakeSubscriptions) -> TestDeps {
    let mut deps = common::deps_with(
        FakeCounter::default(),
        FakeSink::default(),
        Some(subscriptions),
    );
    deps.namespaces = Namespaces::parse(NAMESPACES).unwrap();
    deps
}

/// One subscriptions-stream record (new and old images, as the table's stream sends them).
fn record(sequence: u64, event: &str, channel: &str, connection: &str, user: &str) -> Value {
    let keys = json!({"channel": {"S": channel}, "connection_id": {"S": connection}});
    let image = json!({"channel": {"S": channel}, "connection_id": {"S": connection},
                       "user_id": {"S": user}, "expires_at": {"N": "1700007200"}});
    let mut dynamodb = json!({"ApproximateCreationDateTime": 1_700_000_000 + sequence,
        "Keys": keys, "SequenceNumber": format!("{sequence:021}"), "SizeBytes": 90,
        "StreamViewType": "NEW_AND_OLD_IMAGES"});
    match event {
        "INSERT" => dynamodb["NewImage"] = image,
        "REMOVE" => dynamodb["OldImage"] = image,
        _ => {
            dynamodb["NewImage"] = image.clone();
            dynamodb["OldImage"] = image;
        }
    }
    json!({"eventID": format!("e{sequence}"), "eventName": event, "eventVersion": "1.1",
           "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dynamodb,
           "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/sumu-subscriptions/stream/x"})
}

fn batch(records: &[Value]) -> String {
    json!({"Records": records}).to_string()
}

/// (type, channel, status, user or members) of each lifecycle event, in order.
fn lifecycle(deps: &TestDeps) -> Vec<String> {
    deps.sink
        .lifecycle
        .lock()
        .unwrap()
        .iter()
        .map(|event| {
            let value = serde_json::to_value(event).unwrap();
            let message = &value["message"];
            let who = if value["type"] == "membership" {
                message["user_id"].as_str().unwrap().to_owned()
            } else {
                message["members"].to_string()
            };
            format!(
                "{} {} {}",
                message["channel"].as_str().unwrap(),
                message["status"].as_str().unwrap(),
                who
            )
        })
        .collect()
}

fn announced(deps: &TestDeps) -> Vec<String> {
    deps.sink
        .announced
        .lock()
        .unwrap()
        .iter()
        .map(|frame| {
            let kind = match frame.kind {
                JoinLeaveType::Join => "join",
                JoinLeaveType::Leave => "leave",
            };
            format!("{kind} {} {}", frame.channel, frame.user_id)
        })
        .collect()
}

#[tokio::test]
async fn two_connections_of_a_user_join_once_and_leave_once() {
    let deps = tracked(FakeSubscriptions::default());
    let response = invoke_stream(
        &batch(&[
            record(1, "INSERT", "room/1", "cA", "alice"),
            record(2, "INSERT", "room/1", "cB", "alice"),
            record(3, "INSERT", "room/1", "cC", "bob"),
        ]),
        &deps,
    )
    .await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        lifecycle(&deps),
        [
            "room/1 OCCUPIED 1",
            "room/1 JOINED alice",
            "room/1 JOINED bob"
        ]
    );
    assert_eq!(announced(&deps), ["join room/1 alice", "join room/1 bob"]);

    let response = invoke_stream(
        &batch(&[
            record(4, "REMOVE", "room/1", "cA", "alice"),
            record(5, "REMOVE", "room/1", "cC", "bob"),
            record(6, "REMOVE", "room/1", "cB", "alice"),
        ]),
        &deps,
    )
    .await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        lifecycle(&deps)[3..],
        ["room/1 LEFT bob", "room/1 LEFT alice", "room/1 VACATED 0"]
    );
    assert_eq!(
        announced(&deps)[2..],
        ["leave room/1 bob", "leave room/1 alice"]
    );
    assert_eq!(
        deps.subscriptions
            .as_ref()
            .unwrap()
            .gauges
            .lock()
            .unwrap()
            .subscriptions,
        0
    );
}

#[tokio::test]
async fn patterns_are_listeners_and_namespaces_choose_frames_or_events() {
    let deps = tracked(FakeSubscriptions::default());
    let response = invoke_stream(
        &batch(&[
            record(1, "INSERT", "room/*", "cA", "alice"),
            record(2, "INSERT", "elsewhere", "cA", "alice"),
            record(3, "INSERT", "quiet/1", "cA", "alice"),
            record(4, "INSERT", "loud/1", "cA", "alice"),
            record(5, "MODIFY", "loud/1", "cA", "alice"),
        ]),
        &deps,
    )
    .await;
    assert!(failures(&response).is_empty());
    // quiet/* has lifecycle events only, loud/* join/leave frames only; a pattern and an
    // untracked channel make no member.
    assert_eq!(
        lifecycle(&deps),
        ["quiet/1 OCCUPIED 1", "quiet/1 JOINED alice"]
    );
    assert_eq!(announced(&deps), ["join loud/1 alice"]);
    // Every INSERT counts as a subscription (the MODIFY does not).
    assert_eq!(
        deps.subscriptions
            .as_ref()
            .unwrap()
            .gauges
            .lock()
            .unwrap()
            .subscriptions,
        4
    );
}

#[tokio::test]
async fn a_failed_record_is_retried_and_its_transition_told_then() {
    let mut subscriptions = FakeSubscriptions::default();
    subscriptions.failing_members.insert("room/1".to_owned());
    let deps = tracked(subscriptions);
    let records = [
        record(1, "INSERT", "room/2", "cA", "alice"),
        record(2, "INSERT", "room/1", "cB", "bob"),
        record(3, "INSERT", "room/2", "cC", "carol"),
    ];
    let response = invoke_stream(&batch(&records), &deps).await;
    // Bob's join could not be counted: his record is reported, carol's waits for the retry.
    assert_eq!(failures(&response), [format!("{:021}", 2)]);
    assert_eq!(
        lifecycle(&deps),
        ["room/2 OCCUPIED 1", "room/2 JOINED alice"]
    );
    assert_eq!(
        deps.subscriptions
            .as_ref()
            .unwrap()
            .gauges
            .lock()
            .unwrap()
            .subscriptions,
        1
    );

    // The retry (from bob's record) with the table healthy again: bob's member item already
    // holds his connection, and his join is still told — once more, never lost.
    let mut healthy = deps;
    if let Some(store) = healthy.subscriptions.as_mut() {
        store.failing_members.clear();
    }
    let response = invoke_stream(&batch(&records[1..]), &healthy).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        lifecycle(&healthy)[2..],
        [
            "room/1 OCCUPIED 1",
            "room/1 JOINED bob",
            "room/2 JOINED carol"
        ]
    );
    assert_eq!(
        healthy
            .subscriptions
            .as_ref()
            .unwrap()
            .gauges
            .lock()
            .unwrap()
            .subscriptions,
        3
    );
}

#[tokio::test]
async fn a_remove_of_a_connection_never_counted_tells_nothing() {
    // A subscription made before its namespace tracked members goes away.
    let deps = tracked(FakeSubscriptions::default());
    let response = invoke_stream(
        &batch(&[record(1, "REMOVE", "room/1", "cA", "alice")]),
        &deps,
    )
    .await;
    assert!(failures(&response).is_empty());
    assert!(lifecycle(&deps).is_empty());
    assert!(announced(&deps).is_empty());
}

#[tokio::test]
async fn connects_disconnects_and_ttl_removals_move_the_live_connections_gauge() {
    let connections = |deps: &TestDeps| {
        deps.subscriptions
            .as_ref()
            .unwrap()
            .gauges
            .lock()
            .unwrap()
            .connections
    };
    let deps = deps(FakeCounter::with(&[("u1", 1)]), FakeSink::default());
    let online = include_str!("fixtures/single-device-online.json");
    let response = invoke_stream(online, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(connections(&deps), 1);
    // DynamoDB's TTL deleting an expired item is a REMOVE like any other: one less.
    let response = invoke_stream(include_str!("fixtures/ttl-removal.json"), &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(connections(&deps), 0);
    // A record reported failed (its user's count failed) does not move the gauge: the stream
    // brings it back, and it counts then.
    let failing = common::deps(
        FakeCounter::with(&[]).failing_for("u1"),
        FakeSink::default(),
    );
    let response = invoke_stream(online, &failing).await;
    assert_eq!(failures(&response).len(), 1);
    assert_eq!(connections(&failing), 0);
}

/// The subscribe fixture (principal `u9`, connection `TWf6Be3LoAMCF3A=`, grants `room/*`) to
/// `room/42`, a channel of a namespace capped at 2 members.
const SUBSCRIBE: &str = include_str!("fixtures/subscribe-route-request.json");
const USER: &str = "u9";
const CONNECTION: &str = "TWf6Be3LoAMCF3A=";

fn capped() -> TestDeps {
    let mut deps = common::deps_with(
        FakeCounter::default(),
        FakeSink::default(),
        Some(FakeSubscriptions::with_connections(&[(
            USER, CONNECTION, 0,
        )])),
    );
    deps.namespaces =
        Namespaces::parse(r#"[{"pattern":"room/*","join_leave":true,"max_members":2}]"#).unwrap();
    let store = deps.subscriptions.as_ref().unwrap();
    store.channel_items.lock().unwrap().insert(
        ("room/42".into(), "#".into()),
        (["a".to_owned(), "b".to_owned()].into(), None),
    );
    deps
}

async fn subscribe_frame(deps: &TestDeps) -> Value {
    match common::invoke_route(SUBSCRIBE, deps).await.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => {
            serde_json::from_str(&text).unwrap()
        }
        other => panic!("expected a text body, got {other:?}"),
    }
}

#[tokio::test]
async fn a_full_channel_refuses_a_new_member_and_lets_a_repeated_subscribe_through() {
    let deps = capped();
    assert_eq!(
        subscribe_frame(&deps).await,
        json!({"type":"error","error":"too_many_members","channel":"room/42",
               "message":"the channel has its maximum of 2 members"})
    );
    assert!(deps
        .subscriptions
        .as_ref()
        .unwrap()
        .items
        .lock()
        .unwrap()
        .is_empty());

    // The connection's subscription exists but the stream has not applied it yet (the channel
    // item still shows 2 others): subscribing again is idempotent, not a new member.
    deps.subscriptions
        .as_ref()
        .unwrap()
        .insert_item("room/42", CONNECTION, USER, true);
    assert_eq!(
        subscribe_frame(&deps).await,
        json!({"type":"subscribed","channel":"room/42"})
    );

    // A member (another tab's connection is in the member item) is never refused.
    let deps = capped();
    deps.subscriptions
        .as_ref()
        .unwrap()
        .member_items
        .lock()
        .unwrap()
        .insert(
            ("room/42".into(), USER.into()),
            (["other-tab".to_owned()].into(), None),
        );
    assert_eq!(
        subscribe_frame(&deps).await,
        json!({"type":"subscribed","channel":"room/42"})
    );
}
