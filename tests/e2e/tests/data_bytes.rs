//! `data` reaches a real WebSocket client byte for byte through sumu-local, whose in-process
//! pusher is built with serde_json's `preserve_order` (switched on by `local/vtl`): a back end's
//! notification to a user (via the queue and the topic) and its publication to a channel arrive
//! exactly as sent; a client's emit arrives exactly as the gateway's template wrote it. The
//! deployed Lambda's build, without that feature, is checked by lambdas/pusher/tests/data_bytes.rs
//! with the same sample.

use e2e::channels::{grants, subscribe};
use e2e::notify::Via;
use e2e::{send_text, Client, Local, DEADLINE};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Spaces inside, keys out of order, `1.0`, `2.50`, `1E3`, integers past `u64` and `f64`, and
/// `\u` escapes: any re-serialization changes it, with or without `preserve_order`.
const DATA: &str = r#"{ "z" : 1, "a":2, "n":1.0, "big":12345678901234567890,
 "bigger": 123456789012345678901234567890, "e":1E3, "d":2.50,
 "s":"caf\u00e9 \ud83d\ude00 \"q\" \/", "nested":{"y":[1, {"b":null,"a":true}], "x":{}} }"#;

/// What `$input.json('$.data')` makes of [`DATA`] in sumu-local's template engine (local/vtl):
/// compact JSON in the client's key order, numbers and escapes as serde_json writes them. API
/// Gateway documents only "a JSON string" here (docs/channels.md, "Emit data and the gateway").
const DATA_AS_THE_GATEWAY_WROTE_IT: &str = r#"{"z":1,"a":2,"n":1.0,"big":12345678901234567890,"bigger":1.2345678901234568e+29,"e":1000.0,"d":2.5,"s":"café 😀 \"q\" /","nested":{"y":[1,{"b":null,"a":true}],"x":{}}}"#;

/// The next text frame exactly as it came over the socket (skipping pings and pongs).
async fn next_raw_text(client: &mut Client) -> String {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a text frame arrives")
}

/// The `id` of a publication frame (different per publication, so not part of the sample).
fn id_of(frame: &str) -> String {
    let value: Value = serde_json::from_str(frame).expect("a JSON frame");
    value["id"].as_str().expect("an id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_publications_and_emits_arrive_with_the_bytes_sent() {
    let local = Local::start_with_channels().await;
    local.until_topic_subscribed().await;
    let mut alice = local
        .receiver_with_grants("alice", &grants(&["room/*"], &[]))
        .await;
    let mut bob = local
        .receiver_with_grants("bob", &grants(&["room/*"], &["room/*"]))
        .await;
    subscribe(&mut alice.client, "room/1").await;
    subscribe(&mut bob.client, "room/1").await;

    // A notification to one user: a message frame around `data` as the back end sent it, by
    // either way in.
    for via in [Via::Queue, Via::Topic] {
        let body = format!(r#"{{"users":["{}"],"data":{DATA}}}"#, alice.user);
        local.notify(via, &body).await;
        let frame = next_raw_text(&mut alice.client).await;
        let id = id_of(&frame);
        assert_eq!(
            frame,
            format!(r#"{{"type":"message","id":"{id}","data":{DATA}}}"#),
            "{via:?}"
        );
    }

    // A back end's publication: the envelope around the same bytes.
    local
        .notify(
            Via::Queue,
            &format!(r#"{{"channels":["room/1"],"data":{DATA}}}"#),
        )
        .await;
    for client in [&mut alice.client, &mut bob.client] {
        let frame = next_raw_text(client).await;
        let id = id_of(&frame);
        assert_eq!(
            frame,
            format!(r#"{{"type":"publication","channel":"room/1","id":"{id}","data":{DATA}}}"#)
        );
    }

    // A client's emit: the gateway's `$input.json` writes `data` into the request; from there
    // the pusher adds only the envelope.
    send_text(
        &mut bob.client,
        &format!(r#"{{"action":"emit","channel":"room/1","data":{DATA}}}"#),
    )
    .await;
    let frame = next_raw_text(&mut alice.client).await;
    let id = id_of(&frame);
    assert_eq!(
        frame,
        format!(
            r#"{{"type":"publication","channel":"room/1","id":"{id}","data":{DATA_AS_THE_GATEWAY_WROTE_IT},"from":"{}"}}"#,
            bob.user
        )
    );
    // Nothing else reached either client (the emit is not sent back to bob).
    alice.received_publications(&local, &[]).await;
    bob.received_publications(&local, &[]).await;
}
