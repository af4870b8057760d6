//! What the channel suites share: a sumu-local with presence (the subscribe routes and the
//! subscription cleanup run in the presence handler), tokens with grants, the subscribe and
//! unsubscribe round trips, and reads of the subscriptions table.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sumu_local::{PresenceDestination, PresenceSetup};
use sumu_wire::{subscriptions, Grants, Pattern};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::notify::Receiver;
use crate::{eventually, next_text, now_secs, send_text, Client, Item, Local};

/// Grants from pattern texts (panics on an invalid one: tests write valid ones).
pub fn grants(subscribe: &[&str], publish: &[&str]) -> Grants {
    let parse = |patterns: &[&str]| -> Vec<Pattern> {
        patterns
            .iter()
            .map(|p| Pattern::parse(p).expect("a valid pattern"))
            .collect()
    };
    Grants {
        subscribe: parse(subscribe),
        publish: parse(publish),
    }
}

impl Local {
    /// sumu-local with presence on (events discarded: other suites read the messages queue),
    /// its AWS calls through [`crate::proxy::serializing_moto_proxy`] so that moto's
    /// transactions are isolated as DynamoDB's are.
    pub async fn start_with_channels() -> Local {
        let endpoint = crate::proxy::serializing_moto_proxy();
        Local::start_configured(|config| {
            config.aws_endpoint = endpoint;
            config.presence = Some(PresenceSetup {
                destination: PresenceDestination::None,
                ..PresenceSetup::default()
            })
        })
        .await
    }

    /// [`Local::start_with_channels`] with channel namespaces (a JSON list, as
    /// `--channel-namespaces` takes it).
    pub async fn start_with_namespaces(namespaces: &str) -> Local {
        let endpoint = crate::proxy::serializing_moto_proxy();
        let namespaces = sumu_wire::Namespaces::parse(namespaces).expect("valid namespaces");
        Local::start_configured(|config| {
            config.aws_endpoint = endpoint;
            config.presence = Some(PresenceSetup {
                destination: PresenceDestination::None,
                ..PresenceSetup::default()
            });
            config.channel_namespaces = namespaces;
        })
        .await
    }

    /// [`Local::start_with_namespaces`] with presence and lifecycle events delivered to the
    /// messages queue (a suite that reads them starts its own sumu-local, so no other suite's
    /// events are mixed in).
    pub async fn start_with_members(namespaces: &str) -> Local {
        let endpoint = crate::proxy::serializing_moto_proxy();
        let namespaces = sumu_wire::Namespaces::parse(namespaces).expect("valid namespaces");
        Local::start_configured(|config| {
            config.aws_endpoint = endpoint;
            config.presence = Some(PresenceSetup {
                destination: PresenceDestination::Queue,
                ..PresenceSetup::default()
            });
            config.channel_namespaces = namespaces;
        })
        .await
    }

    /// A development token for `sub` carrying `grants` in its `channels` claim.
    pub fn token_with_grants(&self, sub: &str, grants: &Grants) -> String {
        self.idp
            .mint_with_grants(sub, grants, Duration::from_secs(3600), now_secs())
            .expect("mint a token with grants")
    }

    /// Opens a WebSocket with this token.
    pub async fn connect_with_token(&self, token: &str) -> Client {
        let request = self
            .url_with_token(token)
            .into_client_request()
            .expect("request");
        let (client, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the upgrade is accepted");
        assert_eq!(response.status(), 101);
        client
    }

    /// A connected user with these grants.
    pub async fn receiver_with_grants(&self, prefix: &str, grants: &Grants) -> Receiver {
        let user = testkit::unique_name(prefix);
        let client = self
            .connect_with_token(&self.token_with_grants(&user, grants))
            .await;
        let connection_id = self.connection_id_of(&user).await;
        Receiver {
            user,
            connection_id,
            client,
        }
    }

    /// The subscription items of one connection (the table's GSI is eventually consistent, so
    /// this scans the test's own small table instead).
    pub async fn subscriptions_of(&self, connection_id: &str) -> Vec<Item> {
        self.dynamodb
            .scan()
            .table_name(&self.endpoints.resources.subscriptions_table)
            .filter_expression("#c = :c")
            .expression_attribute_names("#c", subscriptions::CONNECTION_ID)
            .expression_attribute_values(":c", AttributeValue::S(connection_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("scan the subscriptions table")
            .items
            .unwrap_or_default()
    }

    /// Waits until the connection has no subscription item left.
    pub async fn until_no_subscriptions(&self, connection_id: &str) {
        eventually("the connection's subscriptions are gone", || async {
            self.subscriptions_of(connection_id)
                .await
                .is_empty()
                .then_some(())
        })
        .await;
    }
}

/// Sends `{"action":action,"channel":channel}` and returns the reply frame.
pub async fn round_trip(client: &mut Client, action: &str, channel: &Value) -> Value {
    send_text(
        client,
        &json!({"action": action, "channel": channel}).to_string(),
    )
    .await;
    next_text(client).await
}

/// Subscribes and asserts the `subscribed` reply.
pub async fn subscribe(client: &mut Client, channel: &str) {
    let reply = round_trip(client, "subscribe", &json!(channel)).await;
    assert_eq!(
        reply,
        json!({"type": "subscribed", "channel": channel}),
        "subscribe {channel}"
    );
}

/// Unsubscribes and asserts the `unsubscribed` reply.
pub async fn unsubscribe(client: &mut Client, channel: &str) {
    let reply = round_trip(client, "unsubscribe", &json!(channel)).await;
    assert_eq!(
        reply,
        json!({"type": "unsubscribed", "channel": channel}),
        "unsubscribe {channel}"
    );
}

/// A publication as a subscriber receives it, without its id (compared separately).
pub fn publication(channel: &str, data: &Value, from: Option<&str>) -> Value {
    let mut frame = json!({"type": "publication", "channel": channel, "data": data});
    if let Some(from) = from {
        frame["from"] = json!(from);
    }
    frame
}

/// `frame` without its `id` (and that id), for comparing publications.
pub fn without_id(mut frame: Value) -> (Value, String) {
    let id = frame
        .as_object_mut()
        .and_then(|object| object.remove("id"))
        .and_then(|id| id.as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("a publication has a string id: {frame}"));
    (frame, id)
}

impl Receiver {
    /// Asserts the client received exactly these publications (any order; ids aside) and
    /// nothing else, as `received_exactly` does; returns their ids in arrival order.
    pub async fn received_publications(
        &mut self,
        local: &Local,
        expected: &[Value],
    ) -> Vec<String> {
        let mut got = Vec::new();
        let mut ids = Vec::new();
        for _ in expected {
            let (frame, id) = without_id(next_text(&mut self.client).await);
            got.push(frame);
            ids.push(id);
        }
        local.until_pusher_idle().await;
        let marker = json!({"marker": testkit::unique_name("marker")});
        local.post_marker(&self.connection_id, &marker).await;
        let next = next_text(&mut self.client).await;
        assert_eq!(
            next, marker,
            "{} received {next} after {got:?}, expected only {expected:?}",
            self.user
        );
        // Key order is not part of the contract: compare with keys sorted.
        let sorted = |frames: &[Value]| {
            let mut texts: Vec<String> = frames.iter().map(canonical).collect();
            texts.sort();
            texts
        };
        assert_eq!(
            sorted(&got),
            sorted(expected),
            "what {} received",
            self.user
        );
        ids
    }
}

/// `value` as JSON text with every object's keys sorted.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{}:{}", Value::from(key.as_str()), canonical(&object[key])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}
