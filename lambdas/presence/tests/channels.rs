//! The `subscribe` / `unsubscribe` routes and the stream's subscription cleanup, with fake
//! seams (the DynamoDB transactions themselves are tested against moto in `moto.rs`).

mod common;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use common::{
    deps_with, failures, invoke_route, invoke_stream, sequence_number, FakeCounter, FakeItem,
    FakeSink, FakeSubscriptions, TestDeps,
};
use serde_json::{json, Value};
use sumu_wire::PresenceStatus::Offline;

const SUBSCRIBE: &str = include_str!("fixtures/subscribe-route-request.json");
const BOTH_CLOSE: &str = include_str!("fixtures/two-devices-both-close.json");
const SINGLE_ONLINE: &str = include_str!("fixtures/single-device-online.json");

/// The fixture's connection: principal `u9`, grants subscribe `room/* user/u9`.
const USER: &str = "u9";
const CONNECTION: &str = "TWf6Be3LoAMCF3A=";

/// A request on `route` with this body (any JSON, or raw text).
fn request(route: &str, body: &str) -> String {
    let mut request: Value = serde_json::from_str(SUBSCRIBE).unwrap();
    request["requestContext"]["routeKey"] = json!(route);
    request["body"] = json!(body);
    request.to_string()
}

fn subscribe(channel: Value) -> String {
    request(
        "subscribe",
        &json!({"action": "subscribe", "channel": channel}).to_string(),
    )
}

fn unsubscribe(channel: Value) -> String {
    request(
        "unsubscribe",
        &json!({"action": "unsubscribe", "channel": channel}).to_string(),
    )
}

/// The fixture with another authorizer context.
fn with_authorizer(request: &str, authorizer: Value) -> String {
    let mut request: Value = serde_json::from_str(request).unwrap();
    request["requestContext"]["authorizer"] = authorizer;
    request.to_string()
}

/// Deps whose connections table holds the fixture's connection (cap 3).
fn live() -> TestDeps {
    deps_with(
        FakeCounter::default(),
        FakeSink::default(),
        Some(FakeSubscriptions::with_connections(&[(
            USER, CONNECTION, 0,
        )])),
    )
}

fn store(deps: &TestDeps) -> &FakeSubscriptions {
    deps.subscriptions.as_ref().unwrap()
}

/// The frame, after checking the status every channels reply has.
fn frame(response: &ApiGatewayProxyResponse) -> Value {
    assert_eq!(response.status_code, 200);
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("the frame is JSON"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

async fn answer(json: &str, deps: &TestDeps) -> Value {
    frame(&invoke_route(json, deps).await)
}

fn error(error: &str, channel: Value, message: &str) -> Value {
    json!({"type": "error", "error": error, "channel": channel, "message": message})
}

#[tokio::test]
async fn subscribe_writes_one_counted_item_and_replies_subscribed() {
    let deps = live();
    assert_eq!(
        answer(SUBSCRIBE, &deps).await,
        json!({"type": "subscribed", "channel": "room/42"})
    );
    assert_eq!(store(&deps).counter(USER, CONNECTION), Some(1));
    assert_eq!(
        store(&deps).items.lock().unwrap()[&("room/42".to_owned(), CONNECTION.to_owned())],
        FakeItem {
            user_id: USER.into(),
            counted: true,
            // connectedAt 1700000000000 ms → seconds + the connection's 7200 s.
            expires_at: 1_700_000_000 + 7200,
        }
    );
    // The presence Query is not involved.
    assert!(deps.counter.asked().is_empty());
}

#[tokio::test]
async fn re_subscribing_answers_subscribed_and_changes_nothing() {
    let deps = live();
    answer(SUBSCRIBE, &deps).await;
    assert_eq!(
        answer(SUBSCRIBE, &deps).await,
        json!({"type": "subscribed", "channel": "room/42"})
    );
    assert_eq!(store(&deps).counter(USER, CONNECTION), Some(1));
    assert_eq!(store(&deps).channels_of(CONNECTION), ["room/42"]);
}

#[tokio::test]
async fn patterns_within_the_grants_are_subscribed_as_sent() {
    let deps = live();
    for channel in ["room/*", "room/a/*", "user/u9"] {
        assert_eq!(
            answer(&subscribe(json!(channel)), &deps).await,
            json!({"type": "subscribed", "channel": channel})
        );
    }
    assert_eq!(
        store(&deps).channels_of(CONNECTION),
        ["room/*", "room/a/*", "user/u9"]
    );
}

#[tokio::test]
async fn a_pattern_no_grant_covers_is_forbidden_and_writes_nothing() {
    let deps = live();
    for channel in ["*", "user/u8", "room", "rooms/*", "user/u9/*"] {
        assert_eq!(
            answer(&subscribe(json!(channel)), &deps).await,
            error(
                "forbidden",
                json!(channel),
                &format!("no subscribe grant covers {channel}")
            ),
            "{channel}"
        );
    }
    assert!(store(&deps).channels_of(CONNECTION).is_empty());
    assert_eq!(store(&deps).counter(USER, CONNECTION), Some(0));
}

#[tokio::test]
async fn without_grants_every_subscribe_is_forbidden() {
    let deps = live();
    for authorizer in [
        json!({"principalId": USER}),
        json!({"principalId": USER, "channels_subscribe": "", "channels_publish": "room/*"}),
        // Only the authorizer writes these; an unreadable value counts as no grant at all.
        json!({"principalId": USER, "channels_subscribe": "room/** room/*"}),
        json!({"principalId": USER, "channels_subscribe": ["room/*"]}),
    ] {
        assert_eq!(
            answer(&with_authorizer(SUBSCRIBE, authorizer.clone()), &deps).await,
            error(
                "forbidden",
                json!("room/42"),
                "no subscribe grant covers room/42"
            ),
            "{authorizer}"
        );
    }
    // A publish grant is not a subscribe grant.
    let publish_only =
        json!({"principalId": USER, "channels_subscribe": "", "channels_publish": "*"});
    assert_eq!(
        answer(&with_authorizer(SUBSCRIBE, publish_only), &deps).await["error"],
        "forbidden"
    );
    assert!(store(&deps).items.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_request_without_a_principal_is_forbidden() {
    let deps = live();
    let anonymous = json!({"channels_subscribe": "*"});
    assert_eq!(
        answer(&with_authorizer(SUBSCRIBE, anonymous), &deps).await,
        error(
            "forbidden",
            json!("room/42"),
            "the request carries no authorized connection"
        )
    );
    assert!(store(&deps).items.lock().unwrap().is_empty());
}

#[tokio::test]
async fn invalid_channels_are_refused_with_the_channel_as_sent() {
    let deps = live();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!("room\"42"),
            "character '\"' is not allowed (A-Z a-z 0-9 _ - . : @ = + |)",
        ),
        (
            json!("room\\42"),
            "character '\\\\' is not allowed (A-Z a-z 0-9 _ - . : @ = + |)",
        ),
        (
            json!("room'42"),
            "character '\\'' is not allowed (A-Z a-z 0-9 _ - . : @ = + |)",
        ),
        (
            json!("ro*om/1"),
            "`*` is only allowed alone or as the last segment of a pattern (`prefix/*`)",
        ),
        (
            json!("room/**"),
            "`*` is only allowed alone or as the last segment of a pattern (`prefix/*`)",
        ),
        (
            json!("room//42"),
            "empty segment (a leading, trailing or doubled `/`)",
        ),
        (
            json!("/room"),
            "empty segment (a leading, trailing or doubled `/`)",
        ),
        (
            json!("room/"),
            "empty segment (a leading, trailing or doubled `/`)",
        ),
        (
            json!("a/b/c/d/e/f"),
            "the channel has 6 segments (at most 5)",
        ),
        (
            json!(format!("room/{}", "x".repeat(65))),
            "a segment has 65 characters (at most 64)",
        ),
        (
            json!("x".repeat(257)),
            "the channel has 257 bytes (at most 256)",
        ),
        (
            json!("huone/ä"),
            "character 'ä' is not allowed (A-Z a-z 0-9 _ - . : @ = + |)",
        ),
        (
            json!("room\n42"),
            "character '\\n' is not allowed (A-Z a-z 0-9 _ - . : @ = + |)",
        ),
        (json!(""), "the channel is empty"),
        (json!(null), "no channel given"),
        (json!(42), "the channel must be a string"),
        (json!({"room": 42}), "the channel must be a string"),
        (json!(["room/42"]), "the channel must be a string"),
    ];
    for (channel, message) in cases {
        for (request, route) in [
            (subscribe(channel.clone()), "subscribe"),
            (unsubscribe(channel.clone()), "unsubscribe"),
        ] {
            assert_eq!(
                answer(&request, &deps).await,
                error("invalid_channel", channel.clone(), message),
                "{route} {channel}"
            );
        }
    }
    // A body without `channel`, or not even an object: the channel is missing.
    for body in [r#"{"action":"subscribe"}"#, "[1]", "not json", ""] {
        assert_eq!(
            answer(&request("subscribe", body), &deps).await,
            error("invalid_channel", json!(null), "no channel given"),
            "{body}"
        );
    }
    assert!(store(&deps).items.lock().unwrap().is_empty());
    assert_eq!(store(&deps).counter(USER, CONNECTION), Some(0));
}

#[tokio::test]
async fn at_the_cap_a_new_subscribe_is_refused_and_creates_nothing() {
    let deps = live(); // cap 3
    for channel in ["room/1", "room/2", "room/3"] {
        assert_eq!(
            answer(&subscribe(json!(channel)), &deps).await["type"],
            "subscribed"
        );
    }
    assert_eq!(
        answer(&subscribe(json!("room/4")), &deps).await,
        error(
            "too_many_subscriptions",
            json!("room/4"),
            "at most 3 subscriptions per connection; unsubscribe from one first"
        )
    );
    assert_eq!(store(&deps).counter(USER, CONNECTION), Some(3));
    assert_eq!(
        store(&deps).channels_of(CONNECTION),
        ["room/1", "room/2", "room/3"]
    );
    // Re-subscribing to one it has is still fine at the cap.
    assert_eq!(
        answer(&subscribe(json!("room/2")), &deps).await,
        json!({"type": "subscribed", "channel": "room/2"})
    );
    // Leaving one makes room for another.
    answer(&unsubscribe(json!("room/1")), &deps).await;
    assert_eq!(
        answer(&subscribe(json!("room/4")), &deps).await["type"],
        "subscribed"
    );
}

#[tokio::test]
async fn unsubscribe_removes_and_uncounts_and_is_idempotent() {
    let deps = live();
    answer(SUBSCRIBE, &deps).await;
    for _ in 0..2 {
        assert_eq!(
            answer(&unsubscribe(json!("room/42")), &deps).await,
            json!({"type": "unsubscribed", "channel": "room/42"})
        );
        assert!(store(&deps).channels_of(CONNECTION).is_empty());
        assert_eq!(store(&deps).counter(USER, CONNECTION), Some(0));
    }
    // Never subscribed: the same answer.
    assert_eq!(
        answer(&unsubscribe(json!("room/*")), &deps).await,
        json!({"type": "unsubscribed", "channel": "room/*"})
    );
}

#[tokio::test]
async fn unsubscribe_needs_no_grant_and_removes_a_back_end_subscription() {
    let deps = live();
    store(&deps).insert_item("announcements", CONNECTION, USER, false);
    let no_grants = with_authorizer(
        &unsubscribe(json!("announcements")),
        json!({"principalId": USER}),
    );
    assert_eq!(
        answer(&no_grants, &deps).await,
        json!({"type": "unsubscribed", "channel": "announcements"})
    );
    assert!(store(&deps).channels_of(CONNECTION).is_empty());
    assert_eq!(
        store(&deps).counter(USER, CONNECTION),
        Some(0),
        "an uncounted item is not taken off the counter"
    );
}

#[tokio::test]
async fn subscribe_after_the_connection_ended_is_connection_gone() {
    let deps = deps_with(
        FakeCounter::default(),
        FakeSink::default(),
        Some(FakeSubscriptions::default()),
    );
    assert_eq!(
        answer(SUBSCRIBE, &deps).await,
        error(
            "connection_gone",
            json!("room/42"),
            "the connection has ended"
        )
    );
    assert!(store(&deps).items.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_a_subscriptions_table_or_with_dynamodb_down_channels_are_unavailable() {
    let unconfigured = deps_with(FakeCounter::default(), FakeSink::default(), None);
    for request in [SUBSCRIBE.to_owned(), unsubscribe(json!("room/42"))] {
        assert_eq!(
            answer(&request, &unconfigured).await,
            error(
                "channels_unavailable",
                json!("room/42"),
                "channels are not configured on this deployment"
            )
        );
    }
    let down = deps_with(
        FakeCounter::default(),
        FakeSink::default(),
        Some(FakeSubscriptions {
            failing: true,
            ..FakeSubscriptions::with_connections(&[(USER, CONNECTION, 0)])
        }),
    );
    for request in [SUBSCRIBE.to_owned(), unsubscribe(json!("room/42"))] {
        assert_eq!(
            answer(&request, &down).await,
            error(
                "channels_unavailable",
                json!("room/42"),
                "channels are unavailable right now; try again"
            )
        );
    }
    // The checks that need no store still come first.
    assert_eq!(
        answer(&subscribe(json!("*")), &unconfigured).await["error"],
        "forbidden"
    );
    assert_eq!(
        answer(&subscribe(json!("room/**")), &unconfigured).await["error"],
        "invalid_channel"
    );
}

#[tokio::test]
async fn the_presence_route_key_is_still_the_presence_question() {
    let deps = live();
    let presence = request("presence", r#"{"action":"presence","users":["u1"]}"#);
    assert_eq!(
        answer(&presence, &deps).await,
        json!({"type":"presence","users":[{"user_id":"u1","status":"OFFLINE","connections":0}]})
    );
}

#[tokio::test]
async fn a_removed_connection_loses_its_subscriptions_and_others_keep_theirs() {
    let subscriptions = FakeSubscriptions::default();
    subscriptions.insert_item("room/42", "cA=", "u1", true);
    subscriptions.insert_item("room/*", "cA=", "u1", true);
    subscriptions.insert_item("announcements", "cA=", "u1", false);
    subscriptions.insert_item("room/42", "cB=", "u1", true);
    subscriptions.insert_item("room/42", "other", "u2", true);
    let deps = deps_with(
        FakeCounter::with(&[("u1", 0)]),
        FakeSink::default(),
        Some(subscriptions),
    );
    let response = invoke_stream(BOTH_CLOSE, &deps).await;
    assert!(failures(&response).is_empty());
    let mut removed = store(&deps).removed.lock().unwrap().clone();
    removed.sort();
    assert_eq!(removed, ["cA=", "cB="]);
    assert!(store(&deps).channels_of("cA=").is_empty());
    assert!(store(&deps).channels_of("cB=").is_empty());
    assert_eq!(store(&deps).channels_of("other"), ["room/42"]);
    assert_eq!(
        deps.sink.summary().len(),
        1,
        "the OFFLINE is still delivered"
    );
    assert_eq!(deps.sink.summary()[0].2, Offline);
}

#[tokio::test]
async fn a_failed_cleanup_fails_its_record_before_its_event_is_delivered() {
    let subscriptions = FakeSubscriptions {
        failing_cleanup: ["cB=".to_owned()].into(),
        ..Default::default()
    };
    subscriptions.insert_item("room/42", "cB=", "u1", true);
    let deps = deps_with(
        FakeCounter::with(&[("u1", 0)]),
        FakeSink::default(),
        Some(subscriptions),
    );
    let response = invoke_stream(BOTH_CLOSE, &deps).await;
    // cB='s record carries the OFFLINE: it is reported, and the OFFLINE is not delivered
    // until a retry has deleted the subscriptions.
    assert_eq!(failures(&response), [sequence_number(BOTH_CLOSE, 1)]);
    assert!(deps.sink.summary().is_empty());
    assert_eq!(store(&deps).channels_of("cB="), ["room/42"]);
}

#[tokio::test]
async fn inserts_clean_nothing_up_and_without_a_table_removals_still_work() {
    let deps = deps_with(
        FakeCounter::with(&[("u1", 1)]),
        FakeSink::default(),
        Some(FakeSubscriptions::default()),
    );
    invoke_stream(SINGLE_ONLINE, &deps).await;
    assert!(store(&deps).removed.lock().unwrap().is_empty());

    let deps = deps_with(FakeCounter::with(&[("u1", 0)]), FakeSink::default(), None);
    let response = invoke_stream(BOTH_CLOSE, &deps).await;
    assert!(failures(&response).is_empty());
    assert_eq!(deps.sink.summary().len(), 1);
}
