//! Presence keeps flowing after a refused channel request. Each refusal below cancels a DynamoDB
//! transaction on the connections table; moto then puts back a copy of the table whose stream
//! shard is a new object under the same shard id, and a stream runner that kept reading the old
//! one would go quiet for good. After each refusal a new connection's `ONLINE` must still reach
//! a back end (a queue subscribed to the messages topic, as docs/presence.md shows) and a
//! watching client (the demo back end, fed by the messages queue, pushes presence to everyone
//! connected).

use e2e::channels::grants;
use e2e::{next_text, send_text, Client, Local};
use serde_json::{json, Value};
use sumu_local::{Extensions, PresenceSetup};

/// The per-connection cap in these tests: one subscription, so a second channel is refused.
const CAP: u32 = 1;

/// sumu-local with presence to the messages topic (its default), the cap at [`CAP`], the demo
/// back end on the messages queue, and the serializing proxy in front of moto (as the channel
/// suites use: a cancelled transaction restores its tables, so transactions must not overlap).
async fn start() -> Local {
    let endpoint = e2e::proxy::serializing_moto_proxy();
    Local::start_extended(
        |config| {
            config.aws_endpoint = endpoint;
            config.presence = Some(PresenceSetup {
                max_subscriptions_per_connection: CAP,
                ..PresenceSetup::default()
            });
        },
        Extensions {
            runners: vec![sumu_local::runners::demo::demo_runner()],
            ..Extensions::default()
        },
    )
    .await
}

/// A back end reading the messages topic through a queue of its own (the demo back end consumes
/// the messages queue itself).
struct Backend<'a> {
    local: &'a Local,
    queue_url: String,
    onlines: Vec<String>,
}

impl<'a> Backend<'a> {
    async fn subscribe(local: &'a Local) -> Backend<'a> {
        let queue_url = local
            .queue_subscribed_to(&local.endpoints.resources.messages_topic_arn)
            .await;
        Backend {
            local,
            queue_url,
            onlines: Vec::new(),
        }
    }

    /// Receives until `user`'s ONLINE has arrived; fails after the suites' deadline.
    async fn until_online(&mut self, user: &str) {
        let deadline = tokio::time::Instant::now() + e2e::DEADLINE;
        while !self.onlines.iter().any(|seen| seen == user) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the back end never got {user}'s ONLINE; it got ONLINE for {:?}",
                self.onlines
            );
            let received = self
                .local
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive from the back end's queue");
            for message in received.messages.unwrap_or_default() {
                let body: Value =
                    serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
                if body["type"] == "presence" && body["message"]["status"] == "ONLINE" {
                    let subject = body["message"]["user_id"].as_str().unwrap_or_default();
                    self.onlines.push(subject.to_string());
                }
            }
        }
    }
}

/// Reads the watcher's frames until the demo back end's presence frame saying `user` is ONLINE.
async fn watcher_sees_online(watcher: &mut Client, user: &str) {
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + e2e::DEADLINE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watching client never saw {user} come online; it got {frames:?}"
        );
        let frame = next_text(watcher).await;
        // The demo back end's push: its data inside a message frame.
        let online = frame["type"] == "message"
            && frame["data"]["type"] == "presence"
            && frame["data"]["users"].as_array().is_some_and(|users| {
                users
                    .iter()
                    .any(|entry| entry["user_id"] == user && entry["status"] == "ONLINE")
            });
        if online {
            return;
        }
        frames.push(frame);
    }
}

/// Sends `{"action":action,"channel":channel}` and returns the gateway's answer, passing over the
/// message frames the demo back end pushes meanwhile.
async fn answer(client: &mut Client, action: &str, channel: &str) -> Value {
    send_text(
        client,
        &json!({"action": action, "channel": channel}).to_string(),
    )
    .await;
    loop {
        let frame = next_text(client).await;
        if frame["type"] != "message" {
            return frame;
        }
    }
}

async fn subscribe(client: &mut Client, channel: &str) {
    assert_eq!(
        answer(client, "subscribe", channel).await,
        json!({"type": "subscribed", "channel": channel})
    );
}

/// Everything but the refusal: a watcher and the refusing user come online (so the runner has a
/// place in the stream), `refuse` runs, then a new user connects and must be seen by both.
async fn presence_survives(refuse: impl AsyncFnOnce(&mut Client)) {
    let local = start().await;
    let mut backend = Backend::subscribe(&local).await;
    let watcher_name = testkit::unique_name("watcher");
    let mut watcher = local.connect(&watcher_name).await;
    backend.until_online(&watcher_name).await;

    let refuser_name = testkit::unique_name("refuser");
    let mut refuser = local
        .connect_with_token(&local.token_with_grants(&refuser_name, &grants(&["room/*"], &[])))
        .await;
    backend.until_online(&refuser_name).await;
    watcher_sees_online(&mut watcher, &refuser_name).await;

    refuse(&mut refuser).await;

    let newcomer = testkit::unique_name("newcomer");
    let _newcomer = local.connect(&newcomer).await;
    backend.until_online(&newcomer).await;
    watcher_sees_online(&mut watcher, &newcomer).await;
}

#[tokio::test]
async fn presence_flows_after_subscribing_to_a_channel_twice() {
    presence_survives(async |client: &mut Client| {
        subscribe(client, "room/a").await;
        // The transaction is cancelled (the subscription exists); the answer is still `subscribed`.
        subscribe(client, "room/a").await;
    })
    .await;
}

#[tokio::test]
async fn presence_flows_after_unsubscribing_from_a_channel_never_joined() {
    presence_survives(async |client: &mut Client| {
        subscribe(client, "room/a").await;
        let reply = answer(client, "unsubscribe", "room/never").await;
        assert_eq!(
            reply,
            json!({"type": "unsubscribed", "channel": "room/never"})
        );
    })
    .await;
}

#[tokio::test]
async fn presence_flows_after_a_subscribe_refused_at_the_cap() {
    presence_survives(async |client: &mut Client| {
        subscribe(client, "room/a").await;
        let refused = answer(client, "subscribe", "room/b").await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["error"], "too_many_subscriptions", "{refused}");
        assert_eq!(refused["channel"], "room/b", "{refused}");
    })
    .await;
}
