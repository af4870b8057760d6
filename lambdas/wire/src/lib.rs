//! The wire contract shared by sumu's Lambdas, `sumu-local` and back ends: names of table
//! attributes and message attributes, and the JSON shapes of presence events and
//! notification requests (see DESIGN.md). One definition here, so a rename cannot drift.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod channels;
pub mod frames;
pub mod members;
pub mod namespaces;
pub use channels::{Channel, ChannelError, Grants, Pattern};
pub use namespaces::{HistoryPolicy, Namespace, Namespaces};

/// Attribute names of the connections table.
pub mod table {
    /// Partition key: the authorizer's `principalId`.
    pub const USER_ID: &str = "user_id";
    /// Sort key: API Gateway's connection id.
    pub const CONNECTION_ID: &str = "connection_id";
    /// Epoch milliseconds.
    pub const CONNECTED_AT: &str = "connected_at";
    /// Epoch **seconds**: the TTL attribute. A connection is live iff `expires_at > now`.
    pub const EXPIRES_AT: &str = "expires_at";
    /// Epoch milliseconds, updated by `ping`.
    pub const LAST_SEEN_AT: &str = "last_seen_at";
    pub const SOURCE_IP: &str = "source_ip";
    pub const USER_AGENT: &str = "user_agent";
    /// Global secondary index keyed by `connection_id` (keys only).
    pub const CONNECTION_INDEX: &str = "connection_id-index";
    /// API Gateway's hard maximum connection duration, the item's lifetime.
    pub const MAX_CONNECTION_SECONDS: i64 = 7200;
    /// Number: how many subscriptions the connection made itself (`subscribe`), kept by the
    /// presence Lambda in the same transaction as each subscription item, so the
    /// per-connection cap holds under concurrent subscribes. Absent = 0.
    pub const SUBSCRIPTIONS: &str = "subscriptions";
}

/// The subscriptions table (docs/channels.md § Storage): one item per (pattern, connection).
/// A back end may subscribe a live connection itself by writing such an item (without
/// `counted`); the same cleanup applies.
pub mod subscriptions {
    /// Partition key: the subscription's pattern as written (`room/42`, `room/*`, `*`). A
    /// publication to a channel reads one partition per pattern that matches it
    /// (`Channel::partitions`).
    pub const CHANNEL: &str = "channel";
    /// Sort key: API Gateway's connection id.
    pub const CONNECTION_ID: &str = "connection_id";
    /// The connection's principal (for `exclude_users` and pruning its connection item).
    pub const USER_ID: &str = "user_id";
    /// Epoch **seconds**: the connection's own `expires_at`; the TTL attribute. Readers
    /// never deliver past it.
    pub const EXPIRES_AT: &str = "expires_at";
    /// Epoch milliseconds.
    pub const SUBSCRIBED_AT: &str = "subscribed_at";
    /// Boolean `true` on items a client's `subscribe` wrote: they count toward the
    /// connection's cap (`table::SUBSCRIPTIONS`). Items a back end writes leave it out.
    pub const COUNTED: &str = "counted";
    /// Global secondary index keyed by `connection_id` (keys only): a connection's
    /// subscriptions, for the cleanup when it ends.
    pub const CONNECTION_INDEX: &str = "connection_id-index";
}

/// The history table (docs/channels.md § History and recovery): per channel, its state at
/// offset 0 and one item per kept publication at its offset.
pub mod history {
    /// Partition key: the channel (exact, never a pattern).
    pub const CHANNEL: &str = "channel";
    /// Sort key (N): 0 for the channel's state, the publication's offset (≥ 1) otherwise.
    pub const OFFSET: &str = "offset";
    /// The state item's offset.
    pub const STATE_OFFSET: u64 = 0;
    /// State (N): the latest offset given out.
    pub const TOP: &str = "top";
    /// State and publications (S): the epoch of the offset sequence.
    pub const EPOCH: &str = "epoch";
    /// Publication (S): the whole publication frame as delivered.
    pub const PUBLICATION: &str = "publication";
    /// Epoch **seconds**, the TTL attribute: readers ignore an item past it.
    pub const EXPIRES_AT: &str = "expires_at";
    /// How long a channel's state outlives its last publication: past it, the next
    /// publication starts a new epoch. Much longer than any history, so a client that missed
    /// nothing is told so even after its history expired.
    pub const STATE_TTL_SECONDS: i64 = 30 * 24 * 3600;
}

/// Message attributes every message on the *messages* topic/queue carries. They are set by
/// the gateway or a Lambda, never by a client.
pub mod attributes {
    pub const USER_ID: &str = "user_id";
    pub const CONNECTION_ID: &str = "connection_id";
    /// Number: epoch milliseconds.
    pub const TIMESTAMP: &str = "timestamp";
    pub const SOURCE: &str = "source";

    pub const SOURCE_PUBLISH: &str = "apigw.route.publish";
    pub const SOURCE_SEND: &str = "apigw.route.send";
    pub const SOURCE_PRESENCE: &str = "lambda.presence.watchdog";
    /// Lifecycle events of channels (`channel` and `membership`), which also carry
    /// [`CHANNEL`] and `timestamp` (and `user_id` on a membership event).
    pub const SOURCE_CHANNELS: &str = "lambda.presence.channels";
    /// String: the channel a lifecycle event is about.
    pub const CHANNEL: &str = "channel";
    /// On the *notifications* queue: a client's `emit`, turned into a notification request
    /// by the gateway. It carries `user_id`, `connection_id`, `timestamp` and
    /// [`CHANNELS_PUBLISH`] too, all from `$context`.
    pub const SOURCE_EMIT: &str = "apigw.route.emit";
    /// String: the emitting connection's publish grants as the authorizer encoded them
    /// (`channels::encode_patterns`), for the pusher to enforce.
    pub const CHANNELS_PUBLISH: &str = "channels_publish";
}

/// Message attributes the pusher sets on the notification requests it sends itself (a
/// narrowed re-queue, or a rejection to the dead-letter queue).
pub mod notification_attributes {
    /// Number: how many times this request was narrowed to its failed connections and
    /// re-queued. Absent on a back end's request (generation 0).
    pub const GENERATION: &str = "sumu_generation";
    /// String: why the pusher sent this request to the dead-letter queue.
    pub const REJECTION_REASON: &str = "rejection_reason";
    /// String [`FRAME_VERBATIM`]: the request's `data` is a whole frame of sumu's own, to be
    /// delivered as it is rather than enveloped in a `message`. Set by the pusher on a
    /// narrowed re-queue (whose `data` is the envelope already delivered to the others) and
    /// by the gateway's templates on the error frames they send through the pusher. A back
    /// end's request never carries it, so its data is always enveloped.
    pub const FRAME: &str = "sumu_frame";
    pub const FRAME_VERBATIM: &str = "verbatim";
}

/// The largest `data` a notification request may carry, serialized as JSON: API Gateway's
/// WebSocket message limit (128 KB).
pub const MAX_NOTIFICATION_DATA_BYTES: usize = 128 * 1024;

/// A presence event as published on the *messages* topic/queue:
/// `{"type":"presence","message":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEvent {
    #[serde(rename = "type")]
    pub kind: PresenceEventType,
    pub message: Presence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceEventType {
    Presence,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub user_id: String,
    pub status: PresenceStatus,
    /// The connection whose arrival or departure caused the event.
    pub connection_id: String,
    /// The user's live connections after the change.
    pub connections: u32,
    /// Epoch milliseconds of the change.
    pub timestamp: i64,
    /// Why an OFFLINE happened; absent for ONLINE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<OfflineReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PresenceStatus {
    Online,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfflineReason {
    /// The item was deleted (`$disconnect`, a management-API DELETE, pusher pruning).
    Disconnected,
    /// DynamoDB's TTL removed the item: the connection outlived `expires_at`.
    Expired,
}

/// The question "are these users online?", asked by a client on the `presence` route
/// (`{"action":"presence","users":[…]}`) or by a back end invoking the presence Lambda
/// directly (`{"users":[…]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceQuery {
    pub users: Vec<String>,
}

/// The answer to a [`PresenceQuery`]: `{"type":"presence","users":[{…}],"ref":…}`, one entry
/// per distinct asked user, in the order they were asked; `ref` when the question had one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceAnswer {
    #[serde(rename = "type")]
    pub kind: PresenceEventType,
    pub users: Vec<UserPresence>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// One user's presence right now: ONLINE iff at least one live connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPresence {
    pub user_id: String,
    pub status: PresenceStatus,
    pub connections: u32,
}

/// A back end's request to push `data` to connections (body of an SNS/SQS message on the
/// *notifications* topic/queue). With neither `users` nor `connections` it is a broadcast; an
/// explicitly empty list targets nobody, so an audience that happens to be empty never reaches
/// everyone by accident (`None` and `Some(vec![])` serialize differently for that reason).
///
/// `D` is how `data` is held: a back end builds it as a [`Value`]; the pusher reads it as
/// `Box<serde_json::value::RawValue>`, the bytes as sent, so that what it delivers never depends
/// on how serde_json would re-serialize a `Value` (key order, number forms, escapes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRequest<D = Value> {
    /// What to do with the targets: `push` (absent or `null`: the default) delivers `data`;
    /// `disconnect` closes them, after `data` as their last frame when there is some;
    /// `subscribe` / `unsubscribe` change their subscription to `channel` (docs/pusher.md,
    /// "Server-side control"). The pusher dead-letters any other name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The channel (or pattern) of a `subscribe` or `unsubscribe`; no other action takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<String>>,
    /// A publication to these channels (exact channels, not patterns): every connection
    /// subscribed to a matching pattern gets the [`Publication`] envelope. Never combined
    /// with `users`/`connections` (such a request is invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// `null` reads as absent, like the lists above.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub exclude_users: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub exclude_connections: Vec<String>,
    /// The `id` of the `message` or `publication` frames this request delivers: set by the
    /// pusher on a narrowed re-queue or a shard (so every retry keeps the original's id), or
    /// by a back end that wants its own; otherwise derived from the original message's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication_id: Option<String>,
    /// Sent to every target as JSON. Required for `push`: such a request without it is
    /// rejected.
    pub data: D,
}

/// A back end may write an absent list as `null`.
fn null_as_empty<'de, De: serde::Deserializer<'de>>(
    deserializer: De,
) -> Result<Vec<String>, De::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

impl<D> NotificationRequest<D> {
    /// A request naming no user list, no connection list and no channel goes to every live
    /// connection.
    pub fn is_broadcast(&self) -> bool {
        self.users.is_none() && self.connections.is_none() && self.channels.is_none()
    }
}

/// What a subscriber receives for a publication to a channel:
/// `{"type":"publication","channel":"room/42","id":"…","data":…,"from":"u1"}`.
///
/// Serialized as a struct, its keys keep this order whatever serde_json's features; the pusher
/// holds `data` as the raw bytes it was sent (`D` = `&RawValue`), so they reach the subscriber
/// unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication<D = Value> {
    #[serde(rename = "type")]
    pub kind: PublicationType,
    /// The channel it was published to (not the subscriber's pattern).
    pub channel: String,
    /// The same for every recipient and across every retry: clients drop duplicates by it.
    pub id: String,
    /// On a channel that keeps history: the publication's place in the channel's sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// With `offset`: the sequence it belongs to (it changes when the sequence is lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    pub data: D,
    /// The emitting client's principal; absent for a back end's publication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicationType {
    Publication,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_event_has_the_documented_shape() {
        let event = PresenceEvent {
            kind: PresenceEventType::Presence,
            message: Presence {
                user_id: "u1".into(),
                status: PresenceStatus::Online,
                connection_id: "c1".into(),
                connections: 2,
                timestamp: 1_700_000_000_000,
                reason: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type":"presence","message":{"user_id":"u1","status":"ONLINE",
                "connection_id":"c1","connections":2,"timestamp":1_700_000_000_000_i64}})
        );
    }

    #[test]
    fn presence_answer_has_the_documented_shape() {
        let answer = PresenceAnswer {
            kind: PresenceEventType::Presence,
            users: vec![UserPresence {
                user_id: "u1".into(),
                status: PresenceStatus::Offline,
                connections: 0,
            }],
            reference: None,
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"type":"presence","users":[{"user_id":"u1","status":"OFFLINE","connections":0}]})
        );
        let query: PresenceQuery =
            serde_json::from_str(r#"{"action":"presence","users":["u1"]}"#).unwrap();
        assert_eq!(query.users, vec!["u1".to_owned()]);
    }

    #[test]
    fn notification_request_without_targets_is_a_broadcast() {
        let request: NotificationRequest =
            serde_json::from_str(r#"{"exclude_users":["u3"],"data":{"x":1}}"#).unwrap();
        assert!(request.is_broadcast());
        let request: NotificationRequest =
            serde_json::from_str(r#"{"users":["u1"],"data":1}"#).unwrap();
        assert!(!request.is_broadcast());
    }

    #[test]
    fn an_empty_user_list_targets_nobody_and_stays_empty_on_the_wire() {
        let request: NotificationRequest =
            serde_json::from_str(r#"{"users":[],"data":1}"#).unwrap();
        assert!(!request.is_broadcast());
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"users": [], "data": 1})
        );
    }

    #[test]
    fn null_exclusion_lists_read_as_absent() {
        let request: NotificationRequest =
            serde_json::from_str(r#"{"exclude_users":null,"exclude_connections":null,"data":1}"#)
                .unwrap();
        assert!(request.exclude_users.is_empty() && request.exclude_connections.is_empty());
    }

    #[test]
    fn raw_data_and_a_publication_keep_their_bytes_and_key_order() {
        let sent = r#"{"data": { "z" : 1, "a":2, "n":1.0 }}"#;
        let request: NotificationRequest<Box<serde_json::value::RawValue>> =
            serde_json::from_str(sent).unwrap();
        assert_eq!(request.data.get(), r#"{ "z" : 1, "a":2, "n":1.0 }"#);
        let publication = Publication {
            kind: PublicationType::Publication,
            channel: "room/1".into(),
            id: "m1".into(),
            offset: None,
            epoch: None,
            data: &*request.data,
            from: Some("u1".into()),
        };
        assert_eq!(
            serde_json::to_string(&publication).unwrap(),
            r#"{"type":"publication","channel":"room/1","id":"m1","data":{ "z" : 1, "a":2, "n":1.0 },"from":"u1"}"#
        );
        let kept = Publication {
            offset: Some(42),
            epoch: Some("e1".into()),
            ..publication
        };
        assert_eq!(
            serde_json::to_string(&kept).unwrap(),
            r#"{"type":"publication","channel":"room/1","id":"m1","offset":42,"epoch":"e1","data":{ "z" : 1, "a":2, "n":1.0 },"from":"u1"}"#
        );
    }

    #[test]
    fn notification_request_requires_data() {
        assert!(serde_json::from_str::<NotificationRequest>(r#"{"users":["u1"]}"#).is_err());
    }
}
