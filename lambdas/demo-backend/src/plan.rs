//! Pure logic: which notification request answers each inbound message. No I/O here, so every
//! mode's exact targets and exclusions are tested directly.

use serde_json::{json, Value};
use sumu_wire::{NotificationRequest, Presence};

use crate::inbound::{Chat, Mode, Sender};

/// The most users an `online_users` answer lists, so the frame stays far below the pusher's
/// 128 KB `data` limit; the answer says `"truncated": true` when there were more.
pub const MAX_LISTED_USERS: usize = 500;

/// A user with at least one live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineUser {
    pub user_id: String,
    /// Live connections of this user (`expires_at` > now).
    pub connections: u32,
}

/// A presence change goes to everyone online except its subject, in the same `users` shape the
/// `presence` route answers with, so a client handles both alike.
pub fn presence_request(presence: &Presence) -> NotificationRequest {
    let mut data = json!({
        "type": "presence",
        "users": [{
            "user_id": presence.user_id,
            "status": presence.status,
            "connections": presence.connections,
        }],
        "timestamp": presence.timestamp,
    });
    if let (Some(reason), Some(object)) = (presence.reason, data.as_object_mut()) {
        object.insert("reason".into(), json!(reason));
    }
    NotificationRequest {
        users: None,
        connections: None,
        exclude_users: vec![presence.user_id.clone()],
        data,
        ..NotificationRequest::default()
    }
}

/// A chat message becomes one request whose targets follow its mode:
/// - UNICAST: the sender's own user (all of their connections);
/// - MULTICAST: the users in `to` plus the sender, so they see their own message;
/// - BROADCAST: everyone online except the sender;
/// - ROOM: a publication to the channel `room/<room>`: every connection subscribed to it (the
///   sender's too, so they see their message arrive), found by the pusher, not by us.
pub fn chat_request(sender: &Sender, chat: &Chat) -> NotificationRequest {
    let mut frame = json!({
        "type": "chat",
        "from": sender.user_id,
        "mode": chat.mode,
        "text": chat.text,
        "route": sender.route,
        "timestamp": sender.timestamp,
    });
    let mut request = NotificationRequest::default();
    match chat.mode {
        Mode::Unicast => request.users = Some(vec![sender.user_id.clone()]),
        Mode::Multicast => {
            let recipients = distinct_without(&chat.to, &sender.user_id);
            insert(&mut frame, "to", json!(recipients));
            let mut users = recipients;
            users.push(sender.user_id.clone());
            request.users = Some(users);
        }
        Mode::Broadcast => request.exclude_users = vec![sender.user_id.clone()],
        Mode::Room => {
            if let Some(room) = &chat.room {
                insert(&mut frame, "room", json!(room));
            }
            // Never `None`: a request without targets is a broadcast. A room message without
            // a room (refused by `Inbound::parse` already) names no channel and reaches nobody.
            request.channels = Some(chat.room_channel().into_iter().collect());
        }
    }
    request.data = frame;
    request
}

fn insert(frame: &mut Value, key: &str, value: Value) {
    if let Some(object) = frame.as_object_mut() {
        object.insert(key.into(), value);
    }
}

/// The answer to `who_is_online` goes to the asking connection only.
pub fn online_users_request(
    sender: &Sender,
    online: &[OnlineUser],
    now_ms: i64,
) -> NotificationRequest {
    let users: Vec<Value> = online
        .iter()
        .take(MAX_LISTED_USERS)
        .map(|user| {
            json!({"user_id": user.user_id, "status": "ONLINE", "connections": user.connections})
        })
        .collect();
    NotificationRequest {
        users: None,
        connections: Some(vec![sender.connection_id.clone()]),
        exclude_users: Vec::new(),
        data: json!({
            "type": "online_users",
            "users": users,
            "truncated": online.len() > MAX_LISTED_USERS,
            "timestamp": now_ms,
        }),
        ..NotificationRequest::default()
    }
}

/// `users` in first-seen order, without duplicates and without `excluded`.
fn distinct_without(users: &[String], excluded: &str) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::with_capacity(users.len());
    for user in users {
        if user != excluded && !distinct.contains(user) {
            distinct.push(user.clone());
        }
    }
    distinct
}
