//! Notification requests from a back end (docs/protocol.md § Notification requests,
//! docs/pusher.md § What is guaranteed).

use std::time::Duration;

use serde_json::{json, Value};

use super::{ensure, presence};
use crate::ws::Client;
use crate::{fail, skip, Outcome, Suite, Verdict};

const PUSHER_HINT: &str = "the pusher reads the notifications queue and topic and posts to the connections: check the pusher's log, its dead-letter queue, and that the request reached the queue";

/// `data`, tagged so the receiving check knows it.
fn data(nonce: &str) -> Value {
    json!({"conformance": nonce, "text": "hello", "nested": {"n": 2.5, "list": [true, null]}})
}

/// Waits until `client` gets `data` in a message frame: `{"type":"message","id":…,"data":…}`,
/// exactly these keys, a non-empty string id and the request's data.
async fn expect_data(client: &mut Client, data: &Value, how: &str) -> Result<(), Verdict> {
    let nonce = data["conformance"].clone();
    let frame = client
        .expect(&format!("notification sent {how}"), PUSHER_HINT, |frame| {
            frame["data"]["conformance"] == nonce || frame["conformance"] == nonce
        })
        .await?;
    let expected_keys = frame
        .as_object()
        .is_some_and(|object| object.len() == 3 && object.contains_key("data"));
    ensure(
        frame["type"] == "message"
            && frame["id"].as_str().is_some_and(|id| !id.is_empty())
            && expected_keys
            && &frame["data"] == data,
        || {
            format!(
                "{} got {frame}, expected {{\"type\":\"message\",\"id\":…,\"data\":{data}}}",
                client.label
            )
        },
    )
}

pub async fn user(suite: &Suite) -> Outcome {
    let mut first = suite.connect("a", "the user's first client").await?;
    let mut second = suite.connect("a", "the user's second client").await?;
    first.connection_id().await?;
    second.connection_id().await?;
    let data = data(&suite.nonce("notify-user"));
    let request = json!({"users": [suite.principal("a").await?], "data": data});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await?;
    expect_data(
        &mut first,
        &data,
        "to the user through the notifications queue",
    )
    .await?;
    expect_data(
        &mut second,
        &data,
        "to the user through the notifications queue",
    )
    .await?;
    first.close().await;
    second.close().await;
    Ok(())
}

pub async fn user_topic(suite: &Suite) -> Outcome {
    let Some(topic) = &suite.outputs.notifications_topic_arn else {
        return Err(skip("the outputs have no notifications_topic_arn"));
    };
    let mut client = suite.connect("a", "a client").await?;
    client.connection_id().await?;
    let data = data(&suite.nonce("notify-user-topic"));
    let request = json!({"users": [suite.principal("a").await?], "data": data});
    suite
        .backend
        .publish_to_topic(topic, &request.to_string())
        .await?;
    expect_data(
        &mut client,
        &data,
        "to the user through the notifications topic",
    )
    .await?;
    client.close().await;
    Ok(())
}

pub async fn connection(suite: &Suite) -> Outcome {
    let mut target = suite.connect("a", "the targeted client").await?;
    let mut other = suite.connect("a", "the same user's other client").await?;
    let target_id = target.connection_id().await?;
    other.connection_id().await?;
    let data = data(&suite.nonce("notify-connection"));
    let request = json!({"connections": [target_id], "data": data});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await?;
    expect_data(&mut target, &data, "to its connection id").await?;
    // The targeted client got it: a post to the other one would have been made by now.
    let nonce = data["conformance"].clone();
    other
        .quiet(
            suite.settings.quiet,
            "a notification addressed to another connection",
            "a request naming `connections` must reach only those (docs/protocol.md § Notification requests)",
            |frame| frame["conformance"] == nonce,
        )
        .await?;
    target.close().await;
    other.close().await;
    Ok(())
}

pub async fn broadcast(suite: &Suite) -> Outcome {
    if !suite.settings.broadcast.unwrap_or(suite.outputs.is_local()) {
        return Err(skip(
            "a broadcast reaches every connected user of the deployment; pass --broadcast to run it",
        ));
    }
    let mut first = suite.connect("a", "a client").await?;
    let mut second = suite.connect("b", "another user's client").await?;
    first.connection_id().await?;
    second.connection_id().await?;
    let data = data(&suite.nonce("notify-broadcast"));
    let request = json!({"data": data});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await?;
    expect_data(&mut first, &data, "as a broadcast").await?;
    expect_data(&mut second, &data, "as a broadcast").await?;
    first.close().await;
    second.close().await;
    Ok(())
}

pub async fn too_large(suite: &Suite) -> Outcome {
    let Some(dlq) = &suite.outputs.notifications_dlq_url else {
        return Err(skip(
            "the outputs have no notifications_dlq_url (terraform/aws has it; the module's output is notifications_dlq_url)",
        ));
    };
    suite
        .backend
        .queue_is_readable(dlq, "notifications_dlq_url")
        .await?;
    let mut client = suite.connect("a", "the addressed client").await?;
    client.connection_id().await?;
    let nonce = suite.nonce("notification-too-large");
    // Over 131,072 bytes serialized, well under SQS's message size limit.
    let data = json!({"conformance": nonce, "pad": "x".repeat(131_072)});
    let request = json!({"users": [suite.principal("a").await?], "data": data});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await?;
    let dead = suite
        .backend
        .wait_for_message(
            dlq,
            suite.settings.deadline,
            "dead-lettered request with data over 128 KB",
            "the pusher dead-letters such a request with rejection_reason = data_too_large (docs/pusher.md): check the pusher's log and its DEAD_LETTER_QUEUE_URL",
            |received| received.body.contains(nonce.as_str()),
        )
        .await?;
    let reason = dead.attributes.get("rejection_reason").map(String::as_str);
    ensure(reason == Some("data_too_large"), || {
        format!("the dead-lettered request has rejection_reason {reason:?}, expected \"data_too_large\"")
    })?;
    client
        .quiet(
            suite.settings.quiet,
            "the oversized notification",
            "data over 128 KB must reach no client (API Gateway refuses such a message)",
            |frame| frame["conformance"] == nonce.as_str(),
        )
        .await?;
    client.close().await;
    Ok(())
}

pub async fn cleanup_after_close(suite: &Suite) -> Outcome {
    let leaver = suite.principal("leaver").await?;
    let mut leaving = suite.connect("leaver", "the client that closes").await?;
    let gone_id = leaving.connection_id().await?;
    let mut live = suite.connect("a", "a client that stays").await?;
    let live_id = live.connection_id().await?;
    leaving.close().await;

    // Presence is read from the connections table: OFFLINE once the close has been processed.
    let until = tokio::time::Instant::now() + suite.settings.deadline;
    loop {
        let users = presence::ask(&mut live, &[&leaver]).await?;
        if users[0]["status"] == "OFFLINE" {
            break;
        }
        if tokio::time::Instant::now() >= until {
            return Err(fail(format!(
                "{:?} after the user's only connection closed, presence still answers {users}, expected OFFLINE: $disconnect should delete the connection item (check the $disconnect route's integration errors)",
                suite.settings.deadline
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A request naming the closed connection and a live one: the gone target (410, pruned)
    // must not keep the live one from getting it.
    let first = data(&suite.nonce("cleanup-first"));
    let request = json!({"connections": [gone_id, live_id], "data": first});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await?;
    expect_data(&mut live, &first, "to a closed and a live connection").await?;

    // And the next request is delivered as usual.
    let next = data(&suite.nonce("cleanup-next"));
    let request = json!({"users": [suite.principal("a").await?], "data": next});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await?;
    expect_data(
        &mut live,
        &next,
        "after a request naming a closed connection",
    )
    .await?;
    live.close().await;
    Ok(())
}

/// `"action":"disconnect"` with `data`: the target gets the data as its last frame, then the
/// close; the user's other connection is untouched.
pub async fn disconnect(suite: &Suite) -> Outcome {
    let mut target = suite.connect("a", "the connection to close").await?;
    let mut other = suite.connect("a", "the user's other connection").await?;
    let connection_id = target.connection_id().await?;
    other.connection_id().await?;
    let data = data(&suite.nonce("notify-disconnect"));
    let request = json!({"action": "disconnect", "connections": [connection_id], "data": data});
    suite
        .backend
        .send_to_queue(&suite.outputs.notifications_queue_url, &request.to_string())
        .await?;
    expect_data(&mut target, &data, "as the last frame before a disconnect").await?;
    let code = target
        .close_code("the pusher closes the target with the management API's DELETE after posting the data (docs/pusher.md § Server-side control)")
        .await?;
    ensure(code == 1000, || {
        format!("the disconnected connection was closed with {code}, expected 1000 (a management-API DELETE)")
    })?;
    // The other connection still answers.
    other.connection_id().await?;
    other.close().await;
    Ok(())
}
