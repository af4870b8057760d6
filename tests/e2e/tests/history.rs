//! Channel history and recovery through sumu-local + moto with raw WebSocket clients
//! (docs/channels.md § History and recovery): publications on a history channel carry
//! consecutive offsets; a client that was away resubscribes with `since` and gets exactly what
//! it missed, in order, once; outside the window it is told `recovered:false`; `history` pages.

use e2e::channels::grants;
use e2e::notify::Via;
use e2e::{next_text, send_text, Client, Local};
use serde_json::{json, Value};

const NAMESPACES: &str = r#"[{"pattern":"room/*","history_size":100,"history_ttl_seconds":3600},
                             {"pattern":"small/*","history_size":3,"history_ttl_seconds":3600}]"#;

/// Sends `frame` and returns the first answer that is not a publication (publications read
/// meanwhile are returned too).
async fn request(client: &mut Client, frame: Value) -> (Value, Vec<Value>) {
    send_text(client, &frame.to_string()).await;
    let mut publications = Vec::new();
    loop {
        let answer = next_text(client).await;
        if answer["type"] == "publication" {
            publications.push(answer);
        } else {
            return (answer, publications);
        }
    }
}

async fn publish(local: &Local, channel: &str, n: u64) {
    local
        .notify(
            Via::Queue,
            &json!({"channels": [channel], "data": {"n": n}}).to_string(),
        )
        .await;
}

fn offsets(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| f["offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_was_away_gets_exactly_what_it_missed_in_order() {
    let local = Local::start_with_namespaces(NAMESPACES).await;
    let watcher_grants = grants(&["room/*", "small/*"], &[]);
    let mut watcher = local.receiver_with_grants("watcher", &watcher_grants).await;
    let (reply, _) = request(
        &mut watcher.client,
        json!({"action":"subscribe","channel":"room/1","ref":"w"}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type":"subscribed","channel":"room/1","offset":0,"epoch":reply["epoch"],"ref":"w"})
    );
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    assert_eq!(epoch.len(), 16, "{reply}");

    // Five while connected: offsets 1..=5 in this epoch.
    let mut away = local.receiver_with_grants("away", &watcher_grants).await;
    request(
        &mut away.client,
        json!({"action":"subscribe","channel":"room/1"}),
    )
    .await;
    for n in 1..=5 {
        publish(&local, "room/1", n).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(next_text(&mut away.client).await);
    }
    assert_eq!(offsets(&seen), [1, 2, 3, 4, 5]);
    assert!(seen.iter().all(|p| p["epoch"] == epoch.as_str()));

    // It goes away; seven more are published.
    drop(away);
    for n in 6..=12 {
        publish(&local, "room/1", n).await;
    }
    let mut watched = Vec::new();
    while watched.len() < 12 {
        watched.push(next_text(&mut watcher.client).await);
    }
    assert_eq!(offsets(&watched), (1..=12).collect::<Vec<u64>>());

    // Back, from offset 5: exactly 6..=12, in order, each once, byte for byte as delivered live.
    let mut back = local.receiver_with_grants("back", &watcher_grants).await;
    let (reply, live) = request(
        &mut back.client,
        json!({"action":"subscribe","channel":"room/1","since":{"offset":5,"epoch":epoch},"ref":"b"}),
    )
    .await;
    assert!(live.is_empty());
    assert_eq!(reply["type"], "subscribed");
    assert_eq!(
        (&reply["recovered"], &reply["more"]),
        (&json!(true), &json!(false))
    );
    assert_eq!((&reply["offset"], &reply["ref"]), (&json!(12), &json!("b")));
    let recovered: Vec<Value> = reply["publications"].as_array().unwrap().clone();
    assert_eq!(recovered, watched[5..].to_vec());

    // A later publication continues the sequence.
    publish(&local, "room/1", 13).await;
    let next = next_text(&mut back.client).await;
    assert_eq!(
        (&next["offset"], &next["data"]),
        (&json!(13), &json!({"n": 13}))
    );

    // Another epoch, a future offset, a pattern with since, a malformed since.
    for (since, expected) in [
        (json!({"offset":5,"epoch":"0000000000000000"}), json!(false)),
        (json!({"offset":99,"epoch":epoch}), json!(false)),
    ] {
        let (reply, _) = request(
            &mut back.client,
            json!({"action":"subscribe","channel":"room/1","since":since}),
        )
        .await;
        assert_eq!(reply["recovered"], expected, "{reply}");
        assert!(reply.get("publications").is_none(), "{reply}");
    }
    let (reply, _) = request(
        &mut back.client,
        json!({"action":"subscribe","channel":"room/*","since":{"offset":1,"epoch":epoch}}),
    )
    .await;
    assert_eq!(reply["error"], "invalid_channel");
    let (reply, _) = request(
        &mut back.client,
        json!({"action":"subscribe","channel":"room/2","since":{"offset":-1,"epoch":epoch}}),
    )
    .await;
    assert_eq!(reply["error"], "invalid_request");
    assert!(
        local
            .subscriptions_of(&back.connection_id)
            .await
            .iter()
            .all(|item| e2e::string(item, "channel") != "room/2"),
        "a refused subscribe stores nothing"
    );

    // `history`: the latest two, older first.
    let (reply, _) = request(
        &mut back.client,
        json!({"action":"history","channel":"room/1","limit":2,"ref":"h"}),
    )
    .await;
    assert_eq!(reply["type"], "history");
    assert_eq!(offsets(reply["publications"].as_array().unwrap()), [12, 13]);
    assert_eq!((&reply["more"], &reply["ref"]), (&json!(true), &json!("h")));

    // Outside the window (small/* keeps 3): recovered:false, and nothing silently missing.
    request(
        &mut watcher.client,
        json!({"action":"subscribe","channel":"small/1"}),
    )
    .await;
    for n in 1..=6 {
        publish(&local, "small/1", n).await;
    }
    let mut small = Vec::new();
    while small.len() < 6 {
        let frame = next_text(&mut watcher.client).await;
        if frame["channel"] == "small/1" {
            small.push(frame);
        }
    }
    let small_epoch = small[0]["epoch"].clone();
    let (reply, _) = request(
        &mut back.client,
        json!({"action":"subscribe","channel":"small/1","since":{"offset":1,"epoch":small_epoch}}),
    )
    .await;
    assert_eq!(reply["recovered"], false, "{reply}");
    let (reply, _) = request(
        &mut back.client,
        json!({"action":"subscribe","channel":"small/1","since":{"offset":3,"epoch":small_epoch}}),
    )
    .await;
    assert_eq!(
        offsets(reply["publications"].as_array().unwrap()),
        [4, 5, 6]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_on_a_history_channel_is_acked_with_its_offset() {
    let local = Local::start_with_namespaces(NAMESPACES).await;
    let both = grants(&["room/*"], &["room/*"]);
    let mut alice = local.receiver_with_grants("alice", &both).await;
    let mut bob = local.receiver_with_grants("bob", &both).await;
    request(
        &mut alice.client,
        json!({"action":"subscribe","channel":"room/7"}),
    )
    .await;
    request(
        &mut bob.client,
        json!({"action":"subscribe","channel":"room/7"}),
    )
    .await;
    let (ack, _) = request(
        &mut alice.client,
        json!({"action":"emit","channel":"room/7","data":{"t":1},"ref":"e1"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!((&ack["offset"], &ack["ref"]), (&json!(1), &json!("e1")));
    let publication = next_text(&mut bob.client).await;
    assert_eq!(
        (
            &publication["id"],
            &publication["offset"],
            &publication["epoch"]
        ),
        (&ack["id"], &ack["offset"], &ack["epoch"])
    );
}
