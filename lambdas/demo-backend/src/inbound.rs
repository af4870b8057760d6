//! Protocol: turns one SQS or SNS message into what the demo back end acts on. Who sent a
//! message and through which route comes only from the message attributes set by the gateway
//! or the presence Lambda, never from the body a client wrote.

use std::collections::BTreeMap;

use aws_lambda_events::event::sns::SnsMessage;
use aws_lambda_events::event::sqs::SqsMessage;
use serde::{Deserialize, Serialize};
use sumu_wire::channels::validate_segment;
use sumu_wire::{attributes, Presence, PresenceEvent};

/// The longest chat text the demo relays, in characters. Keeps every frame far below the
/// pusher's 128 KB `data` limit, whatever the sender's user id.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The most users a multicast may name.
pub const MAX_RECIPIENTS: usize = 100;
/// The longest user id a multicast may name, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Every room is the channel `room/<name>`: the prefix the demo page's grants (`room/*`) cover.
pub const ROOM_CHANNEL_PREFIX: &str = "room/";

/// Why a message is skipped rather than retried: retrying it could never succeed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("message attribute `{0}` is missing")]
    MissingAttribute(&'static str),
    #[error("message attribute `timestamp` is not an integer: {0:?}")]
    BadTimestamp(String),
    #[error("message source {0:?} is not one the demo handles")]
    UnknownSource(String),
    #[error("message has no body")]
    NoBody,
    #[error("body is not a valid {kind}: {reason}")]
    BadBody { kind: &'static str, reason: String },
    #[error("chat message is invalid: {0}")]
    InvalidChat(String),
}

/// The trusted attributes and the body of one message, whichever way it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Attribute name → string value (numbers arrive as their decimal text).
    pub attributes: BTreeMap<String, String>,
    pub body: Option<String>,
}

impl Envelope {
    /// An SQS message from the messages queue. When a topic delivers into the queue without raw
    /// message delivery, the attributes are inside the SNS JSON envelope in the body: unwrap it.
    pub fn from_sqs(message: &SqsMessage) -> Envelope {
        let attributes: BTreeMap<String, String> = message
            .message_attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
            .collect();
        if !attributes.contains_key(attributes::SOURCE) {
            if let Some(unwrapped) = message.body.as_deref().and_then(unwrap_sns_envelope) {
                return unwrapped;
            }
        }
        Envelope {
            attributes,
            body: message.body.clone(),
        }
    }

    /// An SNS notification delivered by the messages topic.
    pub fn from_sns(message: &SnsMessage) -> Envelope {
        Envelope {
            attributes: message
                .message_attributes
                .iter()
                .map(|(name, attribute)| (name.clone(), attribute.value.clone()))
                .collect(),
            body: Some(message.message.clone()),
        }
    }

    fn attribute(&self, name: &'static str) -> Result<&str, Malformed> {
        self.attributes
            .get(name)
            .map(String::as_str)
            .ok_or(Malformed::MissingAttribute(name))
    }

    fn body(&self) -> Result<&str, Malformed> {
        self.body.as_deref().ok_or(Malformed::NoBody)
    }
}

/// The JSON an SNS subscription without raw delivery puts in an SQS body.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    message: String,
    #[serde(default)]
    message_attributes: BTreeMap<String, SnsEnvelopeAttribute>,
}

#[derive(Deserialize)]
struct SnsEnvelopeAttribute {
    #[serde(rename = "Value")]
    value: String,
}

fn unwrap_sns_envelope(body: &str) -> Option<Envelope> {
    let envelope: SnsEnvelope = serde_json::from_str(body).ok()?;
    if envelope.kind != "Notification" {
        return None;
    }
    Some(Envelope {
        attributes: envelope
            .message_attributes
            .into_iter()
            .map(|(name, attribute)| (name, attribute.value))
            .collect(),
        body: Some(envelope.message),
    })
}

/// The client route a message came through, from its trusted `source` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Publish,
    Send,
}

/// Who sent a client message, as the gateway vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub user_id: String,
    pub connection_id: String,
    /// Epoch milliseconds at which the gateway received the message.
    pub timestamp: i64,
    pub route: Route,
}

/// How a chat message is to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Back to the sender's own user (every connection of theirs).
    Unicast,
    /// To the users named in `to`, and the sender.
    Multicast,
    /// To everyone online except the sender.
    Broadcast,
    /// To every connection subscribed to the channel `room/<room>` (the sender too, when they
    /// are in the room): a channel publication, so the back end never lists the room's members.
    Room,
}

/// What a client may ask of the demo back end (the `message` of `publish`/`send`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Chat(Chat),
    WhoIsOnline,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Chat {
    pub mode: Mode,
    /// Recipients of a multicast; ignored by the other modes.
    #[serde(default)]
    pub to: Vec<String>,
    /// The room of a ROOM message: one channel segment (`A-Z a-z 0-9 _ - . : @ = + |`, 1–64
    /// characters), published to `room/<room>`; ignored by the other modes.
    #[serde(default)]
    pub room: Option<String>,
    pub text: String,
}

impl Chat {
    /// The channel a ROOM message is published to; `None` for the other modes (and for a ROOM
    /// message without a room, which [`Inbound::parse`] refuses).
    pub fn room_channel(&self) -> Option<String> {
        match (self.mode, &self.room) {
            (Mode::Room, Some(room)) => Some(format!("{ROOM_CHANNEL_PREFIX}{room}")),
            _ => None,
        }
    }
}

/// One message from the messages topic/queue, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Presence(Presence),
    Client {
        sender: Sender,
        message: ClientMessage,
    },
}

impl Inbound {
    /// Reads the trusted `source` attribute first: it alone decides whether the body is a
    /// presence event or a client message, so a client cannot forge presence.
    pub fn parse(envelope: &Envelope) -> Result<Inbound, Malformed> {
        let source = envelope.attribute(attributes::SOURCE)?;
        let route = match source {
            attributes::SOURCE_PRESENCE => return parse_presence(envelope.body()?),
            attributes::SOURCE_PUBLISH => Route::Publish,
            attributes::SOURCE_SEND => Route::Send,
            other => return Err(Malformed::UnknownSource(other.to_owned())),
        };
        let timestamp = envelope.attribute(attributes::TIMESTAMP)?;
        let sender = Sender {
            user_id: envelope.attribute(attributes::USER_ID)?.to_owned(),
            connection_id: envelope.attribute(attributes::CONNECTION_ID)?.to_owned(),
            timestamp: timestamp
                .trim()
                .parse()
                .map_err(|_| Malformed::BadTimestamp(timestamp.to_owned()))?,
            route,
        };
        let message: ClientMessage =
            serde_json::from_str(envelope.body()?).map_err(|error| Malformed::BadBody {
                kind: "client message",
                reason: error.to_string(),
            })?;
        if let ClientMessage::Chat(chat) = &message {
            validate_chat(chat)?;
        }
        Ok(Inbound::Client { sender, message })
    }
}

fn parse_presence(body: &str) -> Result<Inbound, Malformed> {
    let event: PresenceEvent = serde_json::from_str(body).map_err(|error| Malformed::BadBody {
        kind: "presence event",
        reason: error.to_string(),
    })?;
    Ok(Inbound::Presence(event.message))
}

fn validate_chat(chat: &Chat) -> Result<(), Malformed> {
    let invalid = |reason: String| Err(Malformed::InvalidChat(reason));
    if chat.text.chars().count() > MAX_TEXT_CHARS {
        return invalid(format!("text longer than {MAX_TEXT_CHARS} characters"));
    }
    if chat.mode == Mode::Multicast {
        if chat.to.len() > MAX_RECIPIENTS {
            return invalid(format!("more than {MAX_RECIPIENTS} recipients"));
        }
        if chat
            .to
            .iter()
            .any(|user| user.is_empty() || user.len() > MAX_USER_ID_BYTES)
        {
            return invalid(format!(
                "a recipient is empty or longer than {MAX_USER_ID_BYTES} bytes"
            ));
        }
    }
    if chat.mode == Mode::Room {
        // One segment, so `room/<room>` is always a valid channel and a room name cannot
        // reach another part of the channel tree (`room/a/b`, `room/*`).
        let Some(room) = &chat.room else {
            return invalid("a room message needs a `room`".into());
        };
        if let Err(reason) = validate_segment(room) {
            return invalid(format!("room {room:?} is not a valid room name: {reason}"));
        }
    }
    Ok(())
}
