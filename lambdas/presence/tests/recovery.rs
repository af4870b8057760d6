//! `subscribe` with `since` and the `history` route (docs/channels.md § History and recovery),
//! through the handler with fake seams; the table itself is checked against moto in
//! `history_moto.rs`.

mod common;

use aws_lambda_events::encodings::Body;
use common::{deps_with, invoke_route, FakeCounter, FakeSink, FakeSubscriptions, TestDeps};
use serde_json::{json, Value};
use sumu_wire::Namespaces;

const SUBSCRIBE: &str = include_str!("fixtures/subscribe-route-request.json");
/// The fixture's connection: principal `u9`, grants subscribe `room/* user/u9`.
const USER: &str = "u9";
const CONNECTION: &str = "TWf6Be3LoAMCF3A=";
/// Far in the future: kept items that have not expired.
const LATER: i64 = 4_000_000_000;

/// `room/*` keeps `size` publications; `user/*` keeps none.
fn deps(size: u32) -> TestDeps {
    let mut deps = deps_with(
        FakeCounter::default(),
        FakeSink::default(),
        Some(FakeSubscriptions::with_connections(&[(
            USER, CONNECTION, 0,
        )])),
    );
    deps.max_subscriptions_per_connection = 100;
    deps.namespaces = Namespaces::parse(&format!(
        r#"[{{"pattern":"room/*","history_size":{size},"history_ttl_seconds":3600}}]"#
    ))
    .unwrap();
    deps
}

fn store(deps: &TestDeps) -> &FakeSubscriptions {
    deps.subscriptions.as_ref().unwrap()
}

/// The reply frame's text.
async fn ask_text(deps: &TestDeps, route: &str, body: Value) -> String {
    let mut request: Value = serde_json::from_str(SUBSCRIBE).unwrap();
    request["requestContext"]["routeKey"] = json!(route);
    request["body"] = json!(body.to_string());
    let response = invoke_route(&request.to_string(), deps).await;
    assert_eq!(response.status_code, 200);
    match response.body {
        Some(Body::Text(text)) => text,
        other => panic!("expected a text body, got {other:?}"),
    }
}

async fn ask(deps: &TestDeps, route: &str, body: Value) -> Value {
    serde_json::from_str(&ask_text(deps, route, body).await).unwrap()
}

fn offsets(frame: &Value) -> Vec<u64> {
    frame["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect()
}

fn subscribed(deps: &TestDeps, channel: &str) -> bool {
    store(deps)
        .channels_of(CONNECTION)
        .contains(&channel.to_owned())
}

#[tokio::test]
async fn a_subscribe_on_a_history_channel_answers_its_position_and_makes_sure_it_has_one() {
    let deps = deps(10);
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/1","ref":"s1"}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type":"subscribed","channel":"room/1","offset":0,"epoch":"fresh","ref":"s1"})
    );
    store(&deps).publish("room/2", "E", 4, LATER);
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/2"}),
    )
    .await;
    assert_eq!(
        (&reply["offset"], &reply["epoch"]),
        (&json!(4), &json!("E"))
    );
    // A pattern and a channel without history have no position.
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/*"}),
    )
    .await;
    assert_eq!(reply, json!({"type":"subscribed","channel":"room/*"}));
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"user/u9"}),
    )
    .await;
    assert_eq!(reply, json!({"type":"subscribed","channel":"user/u9"}));
}

#[tokio::test]
async fn since_replays_what_was_missed_in_order_and_reads_about_as_many_items() {
    let deps = deps(100);
    store(&deps).publish("room/1", "E", 10, LATER);
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/1","since":{"offset":3,"epoch":"E"}}),
    )
    .await;
    assert_eq!(reply["recovered"], true);
    assert_eq!(reply["more"], false);
    assert_eq!(
        (&reply["offset"], &reply["epoch"]),
        (&json!(10), &json!("E"))
    );
    assert_eq!(offsets(&reply), [4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(reply["publications"][0]["id"], "p4");
    // One Query of the 7 missed items and the last one it had (the anchor), not the whole
    // history.
    assert_eq!(
        *store(&deps).history_reads.lock().unwrap(),
        [("room/1".to_owned(), 3, 10, 8)]
    );
    assert!(subscribed(&deps, "room/1"));
    // Nothing missed: recovered, nothing to replay.
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/1","since":{"offset":10,"epoch":"E"}}),
    )
    .await;
    assert_eq!(
        (&reply["recovered"], offsets(&reply).len()),
        (&json!(true), 0)
    );
}

#[tokio::test]
async fn since_outside_the_window_is_recovered_false_and_still_subscribes() {
    let deps = deps(5);
    store(&deps).publish("room/1", "E", 10, LATER);
    for (since, why) in [
        (json!({"offset":3,"epoch":"other"}), "another epoch"),
        (json!({"offset":2,"epoch":"E"}), "older than the 5 kept"),
        (json!({"offset":11,"epoch":"E"}), "a future offset"),
    ] {
        let reply = ask(
            &deps,
            "subscribe",
            json!({"action":"subscribe","channel":"room/1","since":since}),
        )
        .await;
        assert_eq!(
            reply,
            json!({"type":"subscribed","channel":"room/1","offset":10,"epoch":"E","recovered":false}),
            "{why}"
        );
    }
    assert!(subscribed(&deps, "room/1"));
    // The oldest kept one is 6: since 5 recovers all five.
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/1","since":{"offset":5,"epoch":"E"}}),
    )
    .await;
    assert_eq!(offsets(&reply), [6, 7, 8, 9, 10]);
}

#[tokio::test]
async fn an_expired_publication_is_never_served_and_makes_recovery_fail() {
    let deps = deps(100);
    store(&deps).publish("room/1", "E", 3, 1); // expired long ago
    store(&deps).publish("room/1", "E", 2, LATER); // 4 and 5
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/1","since":{"offset":1,"epoch":"E"}}),
    )
    .await;
    assert_eq!(reply["recovered"], false);
    let reply = ask(
        &deps,
        "history",
        json!({"action":"history","channel":"room/1"}),
    )
    .await;
    assert_eq!(offsets(&reply), [4, 5]);
}

#[tokio::test]
async fn since_on_a_pattern_or_a_channel_without_history() {
    let deps = deps(10);
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/*","since":{"offset":1,"epoch":"E"},"ref":"r"}),
    )
    .await;
    assert_eq!(reply["error"], "invalid_channel");
    assert_eq!(
        (&reply["channel"], &reply["ref"]),
        (&json!("room/*"), &json!("r"))
    );
    assert!(!subscribed(&deps, "room/*"), "nothing stored");
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"user/u9","since":{"offset":1,"epoch":"E"}}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type":"subscribed","channel":"user/u9","recovered":false})
    );
}

#[tokio::test]
async fn hostile_since_values_are_refused_and_nothing_is_stored() {
    let deps = deps(10);
    let two_to_the_64: Value = serde_json::from_str("18446744073709551616").unwrap();
    for since in [
        json!({"offset":-1,"epoch":"E"}),
        json!({"offset":two_to_the_64,"epoch":"E"}),
        json!({"offset":"4","epoch":"E"}),
        json!({"offset":{"n":4},"epoch":"E"}),
        json!({"epoch":"E"}),
        json!({"offset":4}),
        json!({"offset":4,"epoch":""}),
        json!("4"),
        json!([4, "E"]),
    ] {
        let reply = ask(
            &deps,
            "subscribe",
            json!({"action":"subscribe","channel":"room/1","since":since,"ref":"h"}),
        )
        .await;
        assert_eq!(reply["type"], "error", "{since}");
        assert_eq!(reply["error"], "invalid_request", "{since}");
        assert_eq!(
            (&reply["channel"], &reply["ref"]),
            (&json!("room/1"), &json!("h"))
        );
        assert!(
            reply["message"].as_str().unwrap().contains("since"),
            "{reply}"
        );
    }
    assert!(
        store(&deps).channels_of(CONNECTION).is_empty(),
        "nothing stored"
    );
    assert!(
        store(&deps).sequences.lock().unwrap().is_empty(),
        "nothing created"
    );
}

#[tokio::test]
async fn more_pages_through_everything_once() {
    let deps = deps(1000);
    store(&deps).publish("room/1", "E", 250, LATER);
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/1","since":{"offset":0,"epoch":"E"}}),
    )
    .await;
    assert_eq!(
        (&reply["recovered"], &reply["more"]),
        (&json!(true), &json!(true))
    );
    let mut seen = offsets(&reply);
    while let Some(&last) = seen.last().filter(|&&last| last < 250) {
        let page = ask(
            &deps,
            "history",
            json!({"action":"history","channel":"room/1","since":{"offset":last,"epoch":"E"},"limit":100}),
        )
        .await;
        assert_eq!(page["type"], "history");
        assert_eq!(page["more"], json!(last + 100 < 250));
        seen.extend(offsets(&page));
    }
    assert_eq!(
        seen,
        (1..=250).collect::<Vec<u64>>(),
        "everything, once, in order"
    );
}

#[tokio::test]
async fn history_gives_the_latest_oldest_first_within_its_limit_and_grant() {
    let deps = deps(10);
    store(&deps).publish("room/1", "E", 12, LATER);
    let text = ask_text(
        &deps,
        "history",
        json!({"action":"history","channel":"room/1","limit":2,"ref":"q"}),
    )
    .await;
    assert!(
        text.starts_with(
            r#"{"type":"history","channel":"room/1","offset":12,"epoch":"E","publications":[{"#
        ) && text.ends_with(r#"}],"more":true,"ref":"q"}"#),
        "{text}"
    );
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(offsets(&reply), [11, 12]);
    assert_eq!((&reply["more"], &reply["ref"]), (&json!(true), &json!("q")));
    // Never more than history_size: 10 of the 12.
    let reply = ask(
        &deps,
        "history",
        json!({"action":"history","channel":"room/1"}),
    )
    .await;
    assert_eq!(offsets(&reply), (3..=12).collect::<Vec<u64>>());
    assert_eq!(reply["more"], false);
    for (body, error) in [
        (json!({"action":"history","channel":"lobby"}), "forbidden"),
        (
            json!({"action":"history","channel":"room/*"}),
            "invalid_channel",
        ),
        (
            json!({"action":"history","channel":"room/1","limit":0}),
            "invalid_request",
        ),
        (
            json!({"action":"history","channel":"room/1","limit":101}),
            "invalid_request",
        ),
        (
            json!({"action":"history","channel":"room/1","limit":"5"}),
            "invalid_request",
        ),
        (
            json!({"action":"history","channel":"room/1","ref":"a b"}),
            "invalid_ref",
        ),
    ] {
        let reply = ask(&deps, "history", body.clone()).await;
        assert_eq!(reply["error"], error, "{body}");
    }
    // A channel without history, or never published to: nothing, and no position.
    let reply = ask(
        &deps,
        "history",
        json!({"action":"history","channel":"room/9"}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type":"history","channel":"room/9","publications":[],"more":false})
    );
}

#[tokio::test]
async fn a_reply_never_passes_the_frame_budget() {
    let deps = deps(100);
    store(&deps).publish("room/1", "E", 1, LATER);
    // Replace the kept frames by big ones: 40 KB each, so three fit and the fourth does not.
    {
        let mut kept = store(&deps).kept.lock().unwrap();
        kept.clear();
        for offset in 1..=5u64 {
            let frame = json!({"type":"publication","channel":"room/1","id":format!("b{offset}"),
                "offset":offset,"epoch":"E","data":"x".repeat(40 * 1024)})
            .to_string();
            kept.insert(("room/1".into(), offset), ("E".into(), frame, LATER));
        }
        store(&deps)
            .sequences
            .lock()
            .unwrap()
            .insert("room/1".into(), (5, "E".into()));
    }
    let reply = ask(
        &deps,
        "subscribe",
        json!({"action":"subscribe","channel":"room/1","since":{"offset":0,"epoch":"E"}}),
    )
    .await;
    assert_eq!(offsets(&reply), [1, 2, 3]);
    assert_eq!(reply["more"], true);
    assert!(reply.to_string().len() <= 128 * 1024);
}

#[tokio::test]
async fn a_hole_after_the_last_publication_it_had_is_skipped_not_taken_for_a_loss() {
    let deps = deps(100);
    store(&deps).publish("room/1", "E", 5, LATER);
    // 3 was given its offset and never stored (its pusher stopped between the two writes); 6
    // and 7 have their offsets and are being stored (they reach the subscription live).
    store(&deps)
        .kept
        .lock()
        .unwrap()
        .remove(&("room/1".to_owned(), 3));
    store(&deps)
        .sequences
        .lock()
        .unwrap()
        .insert("room/1".into(), (7, "E".into()));
    let since = |offset: u64| json!({"action":"subscribe","channel":"room/1","since":{"offset":offset,"epoch":"E"}});
    let reply = ask(&deps, "subscribe", since(1)).await;
    assert_eq!(offsets(&reply), [2, 4, 5]);
    assert_eq!(
        (&reply["recovered"], &reply["more"]),
        (&json!(true), &json!(false))
    );
    let reply = ask(&deps, "subscribe", since(5)).await;
    assert_eq!(
        (&reply["recovered"], offsets(&reply).len()),
        (&json!(true), 0)
    );
    // Without the anchor (the last one it had is not kept) a hole cannot be told from a loss.
    let reply = ask(&deps, "subscribe", since(3)).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    // An expired anchor: everything older is gone too.
    store(&deps)
        .kept
        .lock()
        .unwrap()
        .get_mut(&("room/1".to_owned(), 4))
        .unwrap()
        .2 = 1;
    let reply = ask(&deps, "subscribe", since(4)).await;
    assert_eq!(reply["recovered"], false, "{reply}");
}

#[tokio::test]
async fn with_nothing_had_yet_only_a_couple_of_recent_ones_on_their_way_count_as_recovered() {
    let deps = deps(100);
    let since0 = json!({"action":"subscribe","channel":"room/1","since":{"offset":0,"epoch":"E"}});
    // Two given their offsets a moment ago, not stored yet.
    store(&deps)
        .sequences
        .lock()
        .unwrap()
        .insert("room/1".into(), (2, "E".into()));
    let reply = ask(&deps, "subscribe", since0.clone()).await;
    assert_eq!(
        (&reply["recovered"], offsets(&reply).len()),
        (&json!(true), 0)
    );
    // More than a couple, or a latest publication older than the history's time: lost.
    store(&deps)
        .sequences
        .lock()
        .unwrap()
        .insert("room/1".into(), (3, "E".into()));
    assert_eq!(
        ask(&deps, "subscribe", since0.clone()).await["recovered"],
        false
    );
    store(&deps)
        .sequences
        .lock()
        .unwrap()
        .insert("room/1".into(), (2, "E".into()));
    *store(&deps).published_seconds_ago.lock().unwrap() = 3600;
    assert_eq!(ask(&deps, "subscribe", since0).await["recovered"], false);
}
