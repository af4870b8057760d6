//! What back ends receive from clients (docs/protocol.md § What back ends receive).

use serde_json::{json, Value};

use super::{ensure, is_error};
use crate::backend::Received;
use crate::{Outcome, Suite};

/// What to look at when a client's message does not reach the messages queue.
const QUEUE_HINT: &str = "is the route wired to the messages queue/topic? check the stage's integration errors (execution log, the IntegrationError metric); does another consumer read the queue (terraform/aws: apply with create_demo_backend = false)?";

pub async fn send(suite: &Suite) -> Outcome {
    reaches_messages_queue(suite, "send", "apigw.route.send", QUEUE_HINT).await
}

pub async fn publish(suite: &Suite) -> Outcome {
    reaches_messages_queue(
        suite,
        "publish",
        "apigw.route.publish",
        "is the messages queue subscribed to the messages topic with raw message delivery (the module does it when it creates both)? check the stage's integration errors; does another consumer read the queue (terraform/aws: create_demo_backend = false)?",
    )
    .await
}

async fn reaches_messages_queue(suite: &Suite, action: &str, source: &str, hint: &str) -> Outcome {
    let queue = &suite.outputs.messages_queue_url;
    suite
        .backend
        .queue_is_readable(queue, "messages_queue_url")
        .await?;
    let mut client = suite.connect("a", "a client").await?;
    let connection_id = client.connection_id().await?;
    let nonce = suite.nonce(action);
    let message = json!({"conformance": nonce, "nested": {"n": 1.5, "list": [1, "two", null]}});
    client
        .send_json(&json!({"action": action, "message": message}))
        .await?;
    let received = suite
        .backend
        .wait_for_message(
            queue,
            suite.settings.deadline,
            &format!("`{action}` message from {}", client.label),
            hint,
            |received| received.json["conformance"] == nonce.as_str(),
        )
        .await?;
    ensure(received.json == message, || {
        format!(
            "the messages queue got {}, expected the client's message {message} as the body",
            received.body
        )
    })?;
    expect_attributes(
        &received,
        &suite.principal("a").await?,
        &connection_id,
        source,
    )?;
    client.close().await;
    Ok(())
}

/// The four attributes the gateway sets, never the client.
fn expect_attributes(
    received: &Received,
    user: &str,
    connection_id: &str,
    source: &str,
) -> Outcome {
    let attribute = |name: &str| received.attributes.get(name).map(String::as_str);
    let wrong = |name: &str, expected: &str| {
        format!(
            "the message's {name} attribute is {:?}, expected {expected:?} (all attributes: {:?}): the route's request template sets it (mapping-templates/); with the topic, the queue's subscription must use raw message delivery",
            attribute(name),
            received.attributes
        )
    };
    ensure(attribute("user_id") == Some(user), || {
        wrong("user_id", user)
    })?;
    ensure(attribute("connection_id") == Some(connection_id), || {
        wrong("connection_id", connection_id)
    })?;
    ensure(attribute("source") == Some(source), || {
        wrong("source", source)
    })?;
    // Epoch milliseconds: 13 digits from 2001 until 2286.
    ensure(
        attribute("timestamp")
            .and_then(|value| value.parse::<i64>().ok())
            .is_some_and(|ms| ms >= 1_000_000_000_000),
        || wrong("timestamp", "epoch milliseconds"),
    )
}

pub async fn invalid_message(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    for (frame, what) in [
        (json!({"action": "send"}), "`send` without a message"),
        (
            json!({"action": "publish", "message": "text"}),
            "`publish` with a string message",
        ),
    ] {
        client.send_json(&frame).await?;
        let reply = client
            .expect(
                &format!("invalid_message frame for {what}"),
                "the route's template answers through the notifications queue (send) or topic (publish) and the pusher: check the pusher's log and the stage's integration errors",
                |frame: &Value| frame["type"] == "error",
            )
            .await?;
        ensure(is_error(&reply, "invalid_message"), || {
            format!("{what} was answered {reply}, expected {{\"type\":\"error\",\"error\":\"invalid_message\",…}}")
        })?;
    }
    client.close().await;
    Ok(())
}
