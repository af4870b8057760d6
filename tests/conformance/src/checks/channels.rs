//! Channels (docs/channels.md): subscribing, publications, emits and their refusals. The
//! deployment grants `conformance/*` to subscribe and publish, and nothing covering
//! `conformance-denied/…` (README.md § What the deployment needs).

use serde_json::{json, Value};

use super::{ensure, is_any_error, is_error};
use crate::ws::Client;
use crate::{Outcome, Suite, Verdict, DENIED_PREFIX};

const GRANT_HINT: &str = "the deployment must grant subscribe and publish on conformance/* (terraform/aws: conformance_grants = true; the module: channels.static_subscribe/static_publish; sumu-local: --static-subscribe/--static-publish), and the subscribe route invokes the presence Lambda: check its log";

const PUBLICATION_HINT: &str = "publications are posted by the pusher after one Query per partition of the channel on the subscriptions table: check the pusher's log";

/// Subscribes (or unsubscribes) and waits for the confirming frame.
pub(super) async fn confirm(
    client: &mut Client,
    action: &str,
    channel: &str,
) -> Result<(), Verdict> {
    client
        .send_json(&json!({"action": action, "channel": channel}))
        .await?;
    let confirmed = format!("{action}d");
    let reply = client
        .expect(
            &format!("reply to {action} {channel}"),
            GRANT_HINT,
            |frame| {
                (frame["type"] == confirmed.as_str() && frame["channel"] == channel)
                    || is_any_error(frame)
            },
        )
        .await?;
    ensure(reply["type"] == confirmed.as_str(), || {
        format!(
            "{} sent {action} {channel} and got {reply}, expected {{\"type\":\"{confirmed}\",\"channel\":\"{channel}\"}}: {GRANT_HINT}",
            client.label
        )
    })
}

/// Waits for the publication carrying `data` on `channel`.
pub(super) async fn expect_publication(
    client: &mut Client,
    channel: &str,
    data: &Value,
) -> Result<Value, Verdict> {
    let nonce = data["conformance"].clone();
    let frame = client
        .expect(
            &format!("publication on {channel}"),
            PUBLICATION_HINT,
            |frame| frame["data"]["conformance"] == nonce,
        )
        .await?;
    ensure(
        frame["type"] == "publication"
            && frame["channel"] == channel
            && frame["data"] == *data
            && frame["id"].as_str().is_some_and(|id| !id.is_empty()),
        || {
            format!(
            "{} got {frame}, expected {{\"type\":\"publication\",\"channel\":\"{channel}\",\"id\":…,\"data\":{data}}} (docs/channels.md § The envelope and its id)",
            client.label
        )
        },
    )?;
    Ok(frame)
}

/// Fails if `client` gets the publication carrying `data` within the quiet period.
async fn expect_no_publication(
    suite: &Suite,
    client: &mut Client,
    data: &Value,
    rule: &str,
) -> Outcome {
    let nonce = data["conformance"].clone();
    client
        .quiet(suite.settings.quiet, "a publication", rule, |frame| {
            frame["data"]["conformance"] == nonce
        })
        .await
}

pub(super) async fn publish_from_backend(suite: &Suite, channel: &str, data: &Value) -> Outcome {
    let request = json!({"channels": [channel], "data": data});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await
}

pub async fn publication(suite: &Suite) -> Outcome {
    let channel = suite.channel("publication/room");
    let pattern = suite.channel("publication/*");
    let mut exact = suite.connect("a", "a subscriber of the channel").await?;
    let mut below = suite
        .connect("b", "a subscriber of a pattern above it")
        .await?;
    confirm(&mut exact, "subscribe", &channel).await?;
    confirm(&mut below, "subscribe", &pattern).await?;
    let data = json!({"conformance": suite.nonce("publication"), "text": "hi"});
    publish_from_backend(suite, &channel, &data).await?;
    let first = expect_publication(&mut exact, &channel, &data).await?;
    let second = expect_publication(&mut below, &channel, &data).await?;
    ensure(first["id"] == second["id"], || {
        format!(
            "the two subscribers got the ids {} and {}: every recipient gets the same id",
            first["id"], second["id"]
        )
    })?;
    ensure(first.get("from").is_none(), || {
        format!("a back end's publication carries `from`: {first} (only a client's emit has one)")
    })?;
    exact.close().await;
    below.close().await;
    Ok(())
}

pub async fn unsubscribe(suite: &Suite) -> Outcome {
    let channel = suite.channel("unsubscribe/room");
    let mut leaving = suite.connect("a", "the client that unsubscribes").await?;
    let mut staying = suite.connect("b", "a client that stays subscribed").await?;
    confirm(&mut leaving, "subscribe", &channel).await?;
    confirm(&mut staying, "subscribe", &channel).await?;
    confirm(&mut leaving, "unsubscribe", &channel).await?;
    let data = json!({"conformance": suite.nonce("unsubscribe")});
    publish_from_backend(suite, &channel, &data).await?;
    // The one still subscribed got it: a post to the other would have been made by now.
    expect_publication(&mut staying, &channel, &data).await?;
    expect_no_publication(
        suite,
        &mut leaving,
        &data,
        "it unsubscribed before the publication (docs/channels.md § Frames)",
    )
    .await?;
    leaving.close().await;
    staying.close().await;
    Ok(())
}

pub async fn emit(suite: &Suite) -> Outcome {
    let channel = suite.channel("emit/room");
    let mut sender = suite.connect("a", "the emitting client").await?;
    let mut receiver = suite.connect("b", "another subscriber").await?;
    confirm(&mut sender, "subscribe", &channel).await?;
    confirm(&mut receiver, "subscribe", &channel).await?;
    let data = json!({"conformance": suite.nonce("emit"), "text": "from a client"});
    sender
        .send_json(&json!({"action": "emit", "channel": channel, "data": data}))
        .await?;
    let publication = expect_publication(&mut receiver, &channel, &data).await?;
    let sender_user = suite.principal("a").await?;
    ensure(publication["from"] == sender_user.as_str(), || {
        format!("the emit's publication has from = {}, expected the sender's user id {sender_user:?} (set by the gateway, never by the client)", publication["from"])
    })?;
    expect_no_publication(
        suite,
        &mut sender,
        &data,
        "an emit reaches every subscriber except the sending connection (docs/channels.md § Emits)",
    )
    .await?;
    sender.close().await;
    receiver.close().await;
    Ok(())
}

/// Sends `frame` and waits for the error frame `code` with `channel` echoed as sent.
async fn expect_refusal(client: &mut Client, frame: Value, code: &str, hint: &str) -> Outcome {
    client.send_json(&frame).await?;
    let reply = client
        .expect(&format!("{code} error for {frame}"), hint, is_any_error)
        .await?;
    ensure(
        is_error(&reply, code) && reply["channel"] == frame["channel"],
        || {
            format!(
            "{} sent {frame} and got {reply}, expected {{\"type\":\"error\",\"error\":\"{code}\",\"channel\":{},…}}: {hint}",
            client.label, frame["channel"]
        )
        },
    )?;
    ensure(reply["message"].is_string(), || {
        format!("the {code} frame {reply} has no message")
    })
}

pub async fn subscribe_forbidden(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    let denied = format!("{DENIED_PREFIX}/{}", suite.settings.run_id);
    expect_refusal(
        &mut client,
        json!({"action": "subscribe", "channel": denied}),
        "forbidden",
        "no grant of the deployment may cover conformance-denied/… (a grant of `*` does): the check needs one channel nobody may use",
    )
    .await?;
    client.close().await;
    Ok(())
}

pub async fn invalid_channel(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    let hint =
        "channel names are checked by the presence Lambda (docs/channels.md § Names and patterns)";
    expect_refusal(
        &mut client,
        json!({"action": "subscribe", "channel": "conformance//empty-segment"}),
        "invalid_channel",
        hint,
    )
    .await?;
    expect_refusal(
        &mut client,
        json!({"action": "unsubscribe", "channel": 42}),
        "invalid_channel",
        hint,
    )
    .await?;
    client.close().await;
    Ok(())
}

pub async fn emit_forbidden(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    let denied = format!("{DENIED_PREFIX}/{}", suite.settings.run_id);
    expect_refusal(
        &mut client,
        json!({"action": "emit", "channel": denied, "data": {"conformance": suite.nonce("emit-forbidden")}}),
        "forbidden",
        "the pusher refuses an emit without a publish grant with an error frame to the sender; no grant may cover conformance-denied/…: check the pusher's log",
    )
    .await?;
    client.close().await;
    Ok(())
}

pub async fn emit_invalid_message(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    expect_refusal(
        &mut client,
        json!({"action": "emit", "channel": suite.channel("emit-invalid/room")}),
        "invalid_message",
        "the pusher refuses an emit without data with an error frame to the sender: check the pusher's log and that conformance/* is granted to publish",
    )
    .await?;
    client.close().await;
    Ok(())
}

pub async fn too_many_subscriptions(suite: &Suite) -> Outcome {
    let cap = suite.settings.max_subscriptions;
    let mut client = suite.connect("a", "a client").await?;
    // One at a time: the cap's bookkeeping is per request, and replies may overtake each other.
    for index in 0..cap {
        confirm(&mut client, "subscribe", &suite.channel(&format!("cap/{index}")))
            .await
            .map_err(|verdict| match verdict {
                Verdict::Fail(message) if message.contains("too_many_subscriptions") => Verdict::Fail(format!(
                    "subscription {} of {cap}: {message} (a lower channels.max_subscriptions_per_connection? pass --max-subscriptions N)",
                    index + 1
                )),
                other => other,
            })?;
    }
    let extra = suite.channel("cap/one-too-many");
    client
        .send_json(&json!({"action": "subscribe", "channel": extra}))
        .await?;
    let reply = client
        .expect("reply to the subscribe over the cap", GRANT_HINT, |frame| {
            frame["channel"] == extra.as_str()
        })
        .await?;
    ensure(is_error(&reply, "too_many_subscriptions"), || {
        format!(
            "subscribe number {} was answered {reply}, expected the error too_many_subscriptions: is channels.max_subscriptions_per_connection {cap}? pass --max-subscriptions N",
            cap + 1
        )
    })?;
    client.close().await;
    Ok(())
}
