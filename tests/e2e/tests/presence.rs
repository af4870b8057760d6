//! Presence through sumu-local: real WebSocket clients, the connections table's stream on moto
//! polled by sumu-local's stream runner into the presence handler, and a back end reading the
//! messages queue with `MessageAttributeNames=All`; plus the `presence` route.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use e2e::{eventually, next_text, send_text, vanish, Local};
use serde_json::{json, Value};
use sumu_local::{PresenceDestination, PresenceSetup};
use sumu_wire::{attributes, subscriptions};

/// One presence event as a back end sees it on the messages queue.
#[derive(Debug, Clone)]
struct Seen {
    body: Value,
    attributes: HashMap<String, MessageAttributeValue>,
}

impl Seen {
    fn user(&self) -> &str {
        self.body["message"]["user_id"].as_str().unwrap_or_default()
    }
    fn status(&self) -> &str {
        self.body["message"]["status"].as_str().unwrap_or_default()
    }
    fn connection(&self) -> &str {
        self.body["message"]["connection_id"]
            .as_str()
            .unwrap_or_default()
    }
    fn attribute(&self, name: &str) -> (&str, &str) {
        let value = self
            .attributes
            .get(name)
            .unwrap_or_else(|| panic!("attribute {name} missing from {self:?}"));
        (value.data_type(), value.string_value().unwrap_or_default())
    }
}

/// A back end reading the messages queue: keeps every presence event it received, in order.
struct Backend<'a> {
    local: &'a Local,
    queue_url: String,
    seen: Vec<Seen>,
}

impl<'a> Backend<'a> {
    fn new(local: &'a Local) -> Backend<'a> {
        Backend {
            local,
            queue_url: local.endpoints.resources.messages_queue_url.clone(),
            seen: Vec::new(),
        }
    }

    /// One receive (long poll of 1 s), deleting what it read.
    async fn receive(&mut self) {
        let received = self
            .local
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the messages queue");
        for message in received.messages.unwrap_or_default() {
            if let Some(handle) = message.receipt_handle() {
                self.local
                    .sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete a read message");
            }
            let body: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
            if body["type"] == "presence" {
                self.seen.push(Seen {
                    body,
                    attributes: message.message_attributes.unwrap_or_default(),
                });
            }
        }
    }

    fn count(&self, user: &str, status: &str) -> usize {
        self.seen
            .iter()
            .filter(|seen| seen.user() == user && seen.status() == status)
            .count()
    }
}

/// Waits (receiving as it goes) for the `nth` (0-based) event of `user` with `status`.
async fn expect_event(backend: &mut Backend<'_>, user: &str, status: &str, nth: usize) -> Seen {
    let deadline = tokio::time::Instant::now() + e2e::DEADLINE;
    loop {
        if let Some(seen) = backend
            .seen
            .iter()
            .filter(|seen| seen.user() == user && seen.status() == status)
            .nth(nth)
        {
            return seen.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {status} #{nth} of {user}; seen: {:?}",
            backend.seen.iter().map(|s| &s.body).collect::<Vec<_>>()
        );
        backend.receive().await;
    }
}

/// sumu-local as `sumu-local serve` runs it: presence on, events to the messages topic.
async fn with_presence() -> Local {
    Local::start_configured(|config| config.presence = Some(PresenceSetup::default())).await
}

#[tokio::test]
async fn one_device_goes_online_then_offline_with_the_trusted_attributes() {
    let local = with_presence().await;
    let mut backend = Backend::new(&local);
    let user = testkit::unique_name("solo");
    let before = sumu_local::protocol::now_ms();
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    let online = expect_event(&mut backend, &user, "ONLINE", 0).await;
    assert_eq!(online.connection(), connection_id, "{:?}", online.body);
    assert_eq!(online.body["message"]["connections"], 1);
    assert!(online.body["message"].get("reason").is_none());
    assert_eq!(
        online.attribute(attributes::SOURCE),
        ("String", attributes::SOURCE_PRESENCE)
    );
    assert_eq!(
        online.attribute(attributes::USER_ID),
        ("String", user.as_str())
    );
    let (kind, timestamp) = online.attribute(attributes::TIMESTAMP);
    assert_eq!(kind, "Number");
    let timestamp: i64 = timestamp.parse().expect("a whole number");
    assert_eq!(json!(timestamp), online.body["message"]["timestamp"]);
    // The stream record's creation time, to the second.
    assert!(timestamp >= before / 1000 * 1000, "{timestamp} vs {before}");

    client.close(None).await.expect("close");
    let offline = expect_event(&mut backend, &user, "OFFLINE", 0).await;
    assert_eq!(offline.connection(), connection_id);
    assert_eq!(offline.body["message"]["connections"], 0);
    assert_eq!(offline.body["message"]["reason"], "disconnected");
    assert_eq!(
        offline.attribute(attributes::SOURCE),
        ("String", attributes::SOURCE_PRESENCE)
    );
    assert_eq!(
        offline.attribute(attributes::USER_ID),
        ("String", user.as_str())
    );
    assert_eq!(offline.attribute(attributes::TIMESTAMP).0, "Number");
}

#[tokio::test]
async fn two_devices_go_offline_only_when_the_last_one_closes() {
    let local = with_presence().await;
    let mut backend = Backend::new(&local);
    let user = testkit::unique_name("duo");

    let mut phone = local.connect(&user).await;
    let phone_id = local.connection_id_of(&user).await;
    let first = expect_event(&mut backend, &user, "ONLINE", 0).await;
    assert_eq!(first.connection(), phone_id);
    assert_eq!(first.body["message"]["connections"], 1);

    let mut laptop = local.connect(&user).await;
    let second = expect_event(&mut backend, &user, "ONLINE", 1).await;
    assert_ne!(second.connection(), phone_id);
    assert_eq!(second.body["message"]["connections"], 2);
    let laptop_id = second.connection().to_string();

    // A subscription item for the phone, as a back end may write one: the presence handler
    // removes it after counting the user's live connections for the phone's removal, so once it
    // is gone that count was made (with the laptop still live). Without this wait the laptop
    // could close before the stream runner reached the phone's record, and both removals would
    // be counted at 0.
    local
        .dynamodb
        .put_item()
        .table_name(&local.endpoints.resources.subscriptions_table)
        .item(subscriptions::CHANNEL, AttributeValue::S("room/duo".into()))
        .item(
            subscriptions::CONNECTION_ID,
            AttributeValue::S(phone_id.clone()),
        )
        .item(subscriptions::USER_ID, AttributeValue::S(user.clone()))
        .item(
            subscriptions::EXPIRES_AT,
            AttributeValue::N((e2e::now_secs() + 3600).to_string()),
        )
        .send()
        .await
        .expect("write the phone's subscription item");
    phone.close(None).await.expect("close the phone");
    local.until_no_subscriptions(&phone_id).await;
    laptop.close(None).await.expect("close the laptop");
    let offline = expect_event(&mut backend, &user, "OFFLINE", 0).await;
    assert_eq!(offline.connection(), laptop_id, "{:?}", offline.body);
    assert_eq!(offline.body["message"]["reason"], "disconnected");

    // The phone's removal is earlier in the stream than the laptop's and the runner delivers in
    // stream order, so an OFFLINE for it would have been sent, and received, before this one.
    assert_eq!(
        backend.count(&user, "OFFLINE"),
        1,
        "closing the first device must not emit OFFLINE: {:?}",
        backend.seen.iter().map(|s| &s.body).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_client_vanishing_without_a_close_frame_goes_offline() {
    let local = with_presence().await;
    let mut backend = Backend::new(&local);
    let user = testkit::unique_name("vanisher");
    let client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;
    expect_event(&mut backend, &user, "ONLINE", 0).await;

    vanish(client);
    let offline = expect_event(&mut backend, &user, "OFFLINE", 0).await;
    assert_eq!(offline.connection(), connection_id);
    assert_eq!(offline.body["message"]["reason"], "disconnected");
}

#[tokio::test]
async fn with_the_queue_destination_events_reach_the_messages_queue() {
    let local = Local::start_configured(|config| {
        config.presence = Some(PresenceSetup {
            destination: PresenceDestination::Queue,
            ..PresenceSetup::default()
        })
    })
    .await;
    // Nothing goes through the topic: a tap on it would stay empty; the queue gets the events.
    let mut backend = Backend::new(&local);
    let user = testkit::unique_name("queued");
    let mut client = local.connect(&user).await;
    let online = expect_event(&mut backend, &user, "ONLINE", 0).await;
    assert_eq!(
        online.attribute(attributes::SOURCE),
        ("String", attributes::SOURCE_PRESENCE)
    );
    client.close(None).await.expect("close");
    expect_event(&mut backend, &user, "OFFLINE", 0).await;
}

#[tokio::test]
async fn the_presence_route_answers_each_asked_user() {
    let local = with_presence().await;
    let asker_name = testkit::unique_name("asker");
    let online_user = testkit::unique_name("here");
    let absent_user = testkit::unique_name("away");
    let mut asker = local.connect(&asker_name).await;
    let _first = local.connect(&online_user).await;
    let mut second = local.connect(&online_user).await;
    eventually("both devices are stored", || async {
        (local.items_of(&online_user).await.len() == 2).then_some(())
    })
    .await;

    let question = json!({"action": "presence", "users": [online_user, absent_user, online_user]});
    send_text(&mut asker, &question.to_string()).await;
    let answer = next_text(&mut asker).await;
    assert_eq!(
        answer,
        json!({"type": "presence", "users": [
            {"user_id": online_user, "status": "ONLINE", "connections": 2},
            {"user_id": absent_user, "status": "OFFLINE", "connections": 0},
        ]})
    );

    // One device leaves: the count follows the table.
    second.close(None).await.expect("close");
    eventually("one device is left", || async {
        (local.items_of(&online_user).await.len() == 1).then_some(())
    })
    .await;
    send_text(
        &mut asker,
        &json!({"action": "presence", "users": [online_user]}).to_string(),
    )
    .await;
    assert_eq!(
        next_text(&mut asker).await["users"][0],
        json!({"user_id": online_user, "status": "ONLINE", "connections": 1})
    );
}

#[tokio::test]
async fn a_malformed_presence_question_gets_an_error_frame() {
    let local = with_presence().await;
    let user = testkit::unique_name("curious");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;

    let too_many: Vec<String> = (0..101).map(|n| format!("u{n}")).collect();
    let cases = [
        (
            json!({"action": "presence"}).to_string(),
            "`users` must be an array of user ids",
        ),
        (
            json!({"action": "presence", "users": "u1"}).to_string(),
            "`users` must be an array of user ids",
        ),
        (
            json!({"action": "presence", "users": ["u1", 7]}).to_string(),
            "`users[1]` must be a non-empty string",
        ),
        (
            json!({"action": "presence", "users": [""]}).to_string(),
            "`users[0]` must be a non-empty string",
        ),
        (
            json!({"action": "presence", "users": too_many}).to_string(),
            "at most 100 users per request (got 101)",
        ),
    ];
    for (text, message) in cases {
        send_text(&mut client, &text).await;
        let frame = next_text(&mut client).await;
        assert_eq!(
            frame,
            json!({"type": "error", "error": "invalid_request", "message": message}),
            "{text}"
        );
    }
    // The connection stays usable.
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await["type"], "pong");
}
