//! Who is in a channel (docs/presence.md § Channel presence): the members table's names, the
//! `join`/`leave` frames subscribers receive, the lifecycle events back ends receive, and the
//! answer to a client's `{"action":"presence","channel":…}`.
//!
//! A *member* of a channel is a user with at least one live connection subscribed to the
//! channel itself; a subscription to a pattern (`room/*`) listens to the channel's frames but
//! makes nobody a member.

use serde::{Deserialize, Serialize};

/// Names of the members table `{name}-members` (written only by the presence Lambda).
pub mod table {
    /// Partition key: the channel of a member item, [`channel_item_key`] of a channel item,
    /// [`GAUGE_KEY`] of the gauge item.
    pub const CHANNEL: &str = "channel";
    /// Sort key: the member's user id; [`CHANNEL_ITEM_USER`] / [`GAUGE_USER`] on the others.
    pub const USER_ID: &str = "user_id";
    /// SS on a member item: the user's connection ids subscribed to the channel itself.
    pub const CONNECTIONS: &str = "connections";
    /// SS on a channel item: the channel's members' user ids.
    pub const MEMBERS: &str = "members";
    /// S: the connection (member item) or user (channel item) the last change was about, so a
    /// retried stream record recognises the change it already made.
    pub const CHANGED_BY: &str = "changed_by";
    /// N, epoch seconds: the TTL attribute (garbage collection only).
    pub const EXPIRES_AT: &str = "expires_at";
    /// The sort key of a channel item.
    pub const CHANNEL_ITEM_USER: &str = "#";
    /// The gauge item's keys, and its two numbers.
    pub const GAUGE_KEY: &str = "#";
    pub const GAUGE_USER: &str = "gauges";
    pub const GAUGE_CONNECTIONS: &str = "connections";
    pub const GAUGE_SUBSCRIPTIONS: &str = "subscriptions";

    /// The partition key of `channel`'s channel item: `#` never occurs in a channel name, so
    /// it cannot collide with a channel's member items.
    pub fn channel_item_key(channel: &str) -> String {
        format!("#{channel}")
    }
}

/// `{"type":"join"|"leave","channel":…,"user_id":…}`: sent to every subscription covering
/// `channel` (in a `join_leave` namespace) when `user_id`'s first connection subscribes to the
/// channel itself, or its last one leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinLeave {
    #[serde(rename = "type")]
    pub kind: JoinLeaveType,
    pub channel: String,
    pub user_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinLeaveType {
    Join,
    Leave,
}

/// `{"type":"channel","message":{"channel":…,"status":"OCCUPIED"|"VACATED","members":N,
/// "timestamp":T}}` on the messages topic/queue (attribute `source` =
/// [`SOURCE_CHANNELS`](crate::attributes::SOURCE_CHANNELS)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEvent {
    #[serde(rename = "type")]
    pub kind: ChannelEventType,
    pub message: ChannelStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelEventType {
    Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub channel: String,
    pub status: Occupancy,
    /// Members right after the change (1 on OCCUPIED, 0 on VACATED).
    pub members: u32,
    /// Epoch milliseconds of the change.
    pub timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Occupancy {
    Occupied,
    Vacated,
}

/// `{"type":"membership","message":{"channel":…,"user_id":…,"status":"JOINED"|"LEFT",
/// "timestamp":T}}` on the messages topic/queue, once per join and per leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipEvent {
    #[serde(rename = "type")]
    pub kind: MembershipEventType,
    pub message: Membership,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MembershipEventType {
    Membership,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub channel: String,
    pub user_id: String,
    pub status: MembershipStatus,
    /// Epoch milliseconds of the change.
    pub timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MembershipStatus {
    Joined,
    Left,
}

/// The answer to `{"action":"presence","channel":…}`:
/// `{"type":"presence","channel":…,"members":[{"user_id":…,"connections":N}],"more":false}`,
/// members in `user_id` order; with `more` the client asks again with `after` = the last
/// `user_id` it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPresence {
    #[serde(rename = "type")]
    pub kind: crate::PresenceEventType,
    pub channel: String,
    pub members: Vec<Member>,
    pub more: bool,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    /// The user's live connections subscribed to the channel itself.
    pub connections: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_events_keep_the_contract_names() {
        let join = JoinLeave {
            kind: JoinLeaveType::Join,
            channel: "room/42".into(),
            user_id: "alice".into(),
        };
        assert_eq!(
            serde_json::to_string(&join).unwrap(),
            r#"{"type":"join","channel":"room/42","user_id":"alice"}"#
        );
        let occupied = ChannelEvent {
            kind: ChannelEventType::Channel,
            message: ChannelStatus {
                channel: "room/42".into(),
                status: Occupancy::Vacated,
                members: 0,
                timestamp: 7,
            },
        };
        assert_eq!(
            serde_json::to_string(&occupied).unwrap(),
            r#"{"type":"channel","message":{"channel":"room/42","status":"VACATED","members":0,"timestamp":7}}"#
        );
        let left = MembershipEvent {
            kind: MembershipEventType::Membership,
            message: Membership {
                channel: "room/42".into(),
                user_id: "bob".into(),
                status: MembershipStatus::Left,
                timestamp: 8,
            },
        };
        assert_eq!(
            serde_json::to_string(&left).unwrap(),
            r#"{"type":"membership","message":{"channel":"room/42","user_id":"bob","status":"LEFT","timestamp":8}}"#
        );
        let answer = ChannelPresence {
            kind: crate::PresenceEventType::Presence,
            channel: "room/42".into(),
            members: vec![Member {
                user_id: "alice".into(),
                connections: 2,
            }],
            more: false,
            reference: None,
        };
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"type":"presence","channel":"room/42","members":[{"user_id":"alice","connections":2}],"more":false}"#
        );
        assert_eq!(table::channel_item_key("room/42"), "#room/42");
    }
}
