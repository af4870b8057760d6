//! Presence (docs/presence.md): the events on the messages queue, and the client's question.

use serde_json::{json, Value};

use super::ensure;
use crate::{fail, Outcome, Suite, Verdict};

const EVENTS_HINT: &str = "presence events go to the messages topic or queue when presence_destination is topic or queue (with none, skip this check); check the presence Lambda's log and its event source mapping on the connections table's stream";

pub async fn events(suite: &Suite) -> Outcome {
    let queue = &suite.outputs.messages_queue_url;
    suite
        .backend
        .queue_is_readable(queue, "messages_queue_url")
        .await?;
    let user = suite.principal("events").await?;
    let mut client = suite.connect("events", "a new client").await?;
    let connection_id = client.connection_id().await?;
    let event = |status: &'static str| {
        let (user, connection_id) = (user.clone(), connection_id.clone());
        move |received: &crate::backend::Received| {
            let message = &received.json["message"];
            received.json["type"] == "presence"
                && message["user_id"] == user.as_str()
                && message["connection_id"] == connection_id.as_str()
                && message["status"] == status
        }
    };
    let online = suite
        .backend
        .wait_for_message(
            queue,
            suite.settings.deadline,
            &format!("ONLINE event for {user}"),
            EVENTS_HINT,
            event("ONLINE"),
        )
        .await?;
    ensure(online.json["message"]["connections"] == 1, || {
        format!(
            "the ONLINE event {} has connections != 1 for the user's only connection (or did another run of the suite connect this user?)",
            online.body
        )
    })?;
    ensure(
        online.attributes.get("source").map(String::as_str) == Some("lambda.presence.watchdog"),
        || {
            format!("the ONLINE event's source attribute is {:?}, expected \"lambda.presence.watchdog\"", online.attributes.get("source"))
        },
    )?;
    client.close().await;
    let offline = suite
        .backend
        .wait_for_message(
            queue,
            suite.settings.deadline,
            &format!("OFFLINE event for {user} after its only connection closed"),
            EVENTS_HINT,
            event("OFFLINE"),
        )
        .await?;
    let message = &offline.json["message"];
    ensure(
        message["connections"] == 0 && message["reason"] == "disconnected",
        || {
            format!(
                "the OFFLINE event {} should say connections 0, reason disconnected",
                offline.body
            )
        },
    )
}

pub async fn query(suite: &Suite) -> Outcome {
    let watched = suite.principal("watched").await?;
    let never = suite.user("never-connected");
    let mut first = suite
        .connect("watched", "the watched user's first client")
        .await?;
    let mut second = suite
        .connect("watched", "the watched user's second client")
        .await?;
    // A pong means the connection is registered.
    first.connection_id().await?;
    second.connection_id().await?;
    let mut asker = suite.connect("a", "the asking client").await?;
    let users = ask(&mut asker, &[&watched, &never]).await?;
    let expected = json!([
        {"user_id": watched, "status": "ONLINE", "connections": 2},
        {"user_id": never, "status": "OFFLINE", "connections": 0},
    ]);
    ensure(users == expected, || {
        format!("presence answered {users}, expected {expected}: the watched user has exactly two open connections and the other never connected (docs/presence.md § Asking who is online); a connection of another run of the suite counts too")
    })?;
    first.close().await;
    second.close().await;
    asker.close().await;
    Ok(())
}

/// Asks `{"action":"presence","users":…}` and returns the answer's `users`.
pub async fn ask(client: &mut crate::ws::Client, users: &[&str]) -> Result<Value, Verdict> {
    client
        .send_json(&json!({"action": "presence", "users": users}))
        .await?;
    let answer = client
        .expect(
            "presence answer",
            "is the presence route deployed (it invokes the presence Lambda)? check the stage's integration errors and the presence Lambda's log",
            |frame| frame["type"] == "presence" || frame["type"] == "error",
        )
        .await?;
    if answer["type"] != "presence" {
        return Err(fail(format!(
            "the presence question was answered {answer}, expected {{\"type\":\"presence\",\"users\":[…]}}"
        )));
    }
    Ok(answer["users"].clone())
}

/// Who is in a channel: the members are the users subscribed to the channel itself, each with
/// how many of their connections are; a pattern subscriber listens without being a member.
pub async fn channel(suite: &Suite) -> Outcome {
    let channel = suite.channel("presence");
    let member = suite.principal("watched").await?;
    let mut first = suite
        .connect("watched", "the member's first client")
        .await?;
    let mut second = suite
        .connect("watched", "the member's second client")
        .await?;
    let mut listener = suite.connect("a", "a pattern subscriber").await?;
    super::channels::confirm(&mut first, "subscribe", &channel).await?;
    super::channels::confirm(&mut second, "subscribe", &channel).await?;
    let pattern = format!(
        "{}/*",
        channel.rsplit_once('/').map_or("", |(prefix, _)| prefix)
    );
    super::channels::confirm(&mut listener, "subscribe", &pattern).await?;
    listener
        .send_json(&json!({"action": "presence", "channel": channel, "ref": "members"}))
        .await?;
    let answer = listener
        .expect(
            "the channel's presence answer",
            "the presence route answers a question with `channel` from the subscriptions table (docs/presence.md § Channel presence): check the presence Lambda's log",
            |frame| frame["ref"] == "members",
        )
        .await?;
    let expected = json!({"type": "presence", "channel": channel,
        "members": [{"user_id": member, "connections": 2}], "more": false, "ref": "members"});
    ensure(answer == expected, || {
        format!("the channel presence question was answered {answer}, expected {expected}: one user subscribed from two connections, and a subscriber of {pattern} is a listener, not a member")
    })?;
    first.close().await;
    second.close().await;
    listener.close().await;
    Ok(())
}
