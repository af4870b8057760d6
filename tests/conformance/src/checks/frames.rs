//! Typed frames, `ref` and acks (docs/protocol.md § Frames): a back end's data never looks like
//! one of sumu's frames, a request's `ref` comes back on its answer, a bad `ref` changes
//! nothing, and an emit with a `ref` is acked with its publication's id.

use serde_json::{json, Value};

use super::channels::{confirm, expect_publication, publish_from_backend};
use super::{ensure, is_any_error, is_error};
use crate::ws::Client;
use crate::{Outcome, Suite, Verdict};

const ENVELOPE_HINT: &str = "the pusher wraps a notification request's data in {\"type\":\"message\",\"id\":…,\"data\":…}: is the deployed pusher older than this suite?";

const REF_HINT: &str = "the subscribe, unsubscribe and presence routes invoke the presence Lambda, which echoes a valid ref and refuses a bad one with invalid_ref: is the deployed Lambda older than this suite?";

/// Payloads a back end might push that look like sumu's own frames.
fn lookalikes(channel: &str) -> Vec<Value> {
    vec![
        json!({"type": "error", "channel": channel}),
        json!({"type": "error", "error": "forbidden", "channel": channel, "message": "x"}),
        json!({"type": "subscribed", "channel": channel}),
        json!({"type": "unsubscribed", "channel": channel}),
        json!({"type": "publication", "channel": channel, "id": "fake", "data": 1}),
        json!({"type": "presence", "users": []}),
        json!({"type": "ack", "ref": "r", "channel": channel, "id": "fake"}),
        json!({"type": "pong"}),
    ]
}

/// Every lookalike pushed to a subscribed user arrives as one `message` frame around it, and the
/// subscription still gets the next publication.
pub async fn typed_frames(suite: &Suite) -> Outcome {
    let channel = suite.channel("typed/room");
    let mut client = suite.connect("a", "a subscribed client").await?;
    confirm(&mut client, "subscribe", &channel).await?;
    let user = suite.principal("a").await?;
    let nonce = suite.nonce("typed-frames");
    for (index, payload) in lookalikes(&channel).into_iter().enumerate() {
        let mut data = payload;
        data["conformance"] = json!(format!("{nonce}-{index}"));
        let request = json!({"users": [user], "data": data});
        suite
            .backend
            .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
            .await?;
        let tag = data["conformance"].clone();
        let frame = client
            .expect("the pushed lookalike", ENVELOPE_HINT, |frame| {
                frame["conformance"] == tag || frame["data"]["conformance"] == tag
            })
            .await?;
        ensure(
            frame["type"] == "message"
                && frame["id"].as_str().is_some_and(|id| !id.is_empty())
                && frame["data"] == data,
            || {
                format!(
                    "{} got {frame} for the data {data}: {ENVELOPE_HINT}",
                    client.label
                )
            },
        )?;
    }
    let data = json!({"conformance": suite.nonce("typed-frames-after"), "text": "still here"});
    publish_from_backend(suite, &channel, &data).await?;
    expect_publication(&mut client, &channel, &data).await?;
    client.close().await;
    Ok(())
}

/// Sends `frame` and returns the first answer `wanted` accepts or an error frame.
async fn answer(
    client: &mut Client,
    frame: Value,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Result<Value, Verdict> {
    client.send_json(&frame).await?;
    client
        .expect(what, REF_HINT, |reply| wanted(reply) || is_any_error(reply))
        .await
}

/// `subscribe`, `unsubscribe` and `presence` echo their `ref`; a bad `ref` answers
/// `invalid_ref` without one and subscribes nothing.
pub async fn refs(suite: &Suite) -> Outcome {
    let channel = suite.channel("refs/room");
    let mut client = suite.connect("a", "a client").await?;
    for (action, reply_type) in [("subscribe", "subscribed"), ("unsubscribe", "unsubscribed")] {
        let reference = format!("{action}-1.a:Z_");
        let reply = answer(
            &mut client,
            json!({"action": action, "channel": channel, "ref": reference}),
            &format!("the reply to {action} with a ref"),
            |reply| reply["type"] == reply_type,
        )
        .await?;
        ensure(
            reply["type"] == reply_type
                && reply["channel"] == channel.as_str()
                && reply["ref"] == reference.as_str(),
            || {
                format!(
                    "{} sent {action} with ref {reference:?} and got {reply}: {REF_HINT}",
                    client.label
                )
            },
        )?;
    }
    let user = suite.principal("a").await?;
    let reply = answer(
        &mut client,
        json!({"action": "presence", "users": [user], "ref": "who-1"}),
        "the presence answer with a ref",
        |reply| reply["type"] == "presence",
    )
    .await?;
    ensure(
        reply["type"] == "presence" && reply["ref"] == "who-1",
        || {
            format!(
                "{} asked presence with ref \"who-1\" and got {reply}: {REF_HINT}",
                client.label
            )
        },
    )?;

    let bad_refs = [
        json!("with\"quote"),
        json!("back\\slash"),
        json!("r".repeat(65)),
        json!(42),
        json!({"ref": "r"}),
    ];
    for bad in bad_refs {
        let reply = answer(
            &mut client,
            json!({"action": "subscribe", "channel": channel, "ref": bad}),
            "the invalid_ref error",
            |_| false,
        )
        .await?;
        ensure(
            is_error(&reply, "invalid_ref") && reply.get("ref").is_none(),
            || {
                format!("{} subscribed with the ref {bad} and got {reply}, expected the invalid_ref error frame without a ref: {REF_HINT}", client.label)
            },
        )?;
    }
    // Nothing was subscribed: a publication to the channel does not arrive.
    let data = json!({"conformance": suite.nonce("refs"), "text": "nobody subscribed"});
    publish_from_backend(suite, &channel, &data).await?;
    let nonce = data["conformance"].clone();
    client
        .quiet(
            suite.settings.quiet,
            "a publication on a channel it only tried to subscribe to with bad refs",
            "a request with an invalid ref changes nothing (docs/protocol.md § ref)",
            |frame| frame["data"]["conformance"] == nonce,
        )
        .await?;
    client.close().await;
    Ok(())
}

/// An emit with a `ref` is acked with its publication's id; `exclude_connections` keeps it from
/// the named connection; an emit with a bad `ref` answers `invalid_ref` and reaches nobody.
pub async fn emit_ack(suite: &Suite) -> Outcome {
    let channel = suite.channel("ack/room");
    let mut sender = suite.connect("a", "the emitting client").await?;
    let mut receiver = suite.connect("b", "a subscriber").await?;
    let mut excluded = suite.connect("b", "a subscriber the emit excludes").await?;
    for client in [&mut sender, &mut receiver, &mut excluded] {
        confirm(client, "subscribe", &channel).await?;
    }
    let excluded_id = excluded.connection_id().await?;
    let data = json!({"conformance": suite.nonce("emit-ack"), "text": "acked"});
    let ack = answer(
        &mut sender,
        json!({"action": "emit", "channel": channel, "data": data, "ref": "e-1",
               "exclude_connections": [excluded_id]}),
        "the ack of an emit with a ref",
        |reply| reply["type"] == "ack",
    )
    .await?;
    ensure(
        ack["type"] == "ack"
            && ack["ref"] == "e-1"
            && ack["channel"] == channel.as_str()
            && ack["id"].as_str().is_some_and(|id| !id.is_empty()),
        || {
            format!("{} emitted with ref \"e-1\" and got {ack}, expected {{\"type\":\"ack\",\"ref\":\"e-1\",\"channel\":\"{channel}\",\"id\":…}}", sender.label)
        },
    )?;
    let publication = expect_publication(&mut receiver, &channel, &data).await?;
    ensure(publication["id"] == ack["id"], || {
        format!(
            "the ack's id {} is not the publication's {}",
            ack["id"], publication["id"]
        )
    })?;
    let nonce = data["conformance"].clone();
    excluded
        .quiet(
            suite.settings.quiet,
            "the emit that excluded it",
            "an emit is not delivered to the connections it names in exclude_connections",
            |frame| frame["data"]["conformance"] == nonce,
        )
        .await?;

    let refused = json!({"conformance": suite.nonce("emit-bad-ref"), "text": "never"});
    let reply = answer(
        &mut sender,
        json!({"action": "emit", "channel": channel, "data": refused, "ref": "bad ref"}),
        "the invalid_ref error of an emit",
        |_| false,
    )
    .await?;
    ensure(
        is_error(&reply, "invalid_ref") && reply.get("ref").is_none(),
        || {
            format!("{} emitted with the ref \"bad ref\" and got {reply}, expected the invalid_ref error frame", sender.label)
        },
    )?;
    let nonce = refused["conformance"].clone();
    receiver
        .quiet(
            suite.settings.quiet,
            "an emit refused for its ref",
            "a refused emit reaches nobody",
            |frame| frame["data"]["conformance"] == nonce,
        )
        .await?;
    for client in [sender, receiver, excluded] {
        client.close().await;
    }
    Ok(())
}
