//! The frames sumu sends to clients (docs/protocol.md § Frames): a closed set of `type`s, so a
//! back end's data, which is arbitrary JSON, always arrives inside a `message` or
//! `publication` envelope and can never be mistaken for one of sumu's own frames. Also the
//! `ref` a client may put on a request to match its answers.
//!
//! Frames are serialized from structs, never through a `Value`: their keys keep the order
//! written here whatever serde_json's features, and `data` (a `RawValue` in the pusher) keeps
//! the bytes it was sent.

use serde::Serialize;
use serde_json::Value;

/// Every `type` a frame from sumu may have. A new kind of frame is a change to this list and
/// to docs/protocol.md.
pub const TYPES: [&str; 11] = [
    "pong",
    "error",
    "subscribed",
    "unsubscribed",
    "publication",
    "message",
    "presence",
    "history",
    "ack",
    "join",
    "leave",
];

/// `{"type":"message","id":…,"data":…}`: what a connection receives for a notification
/// request to users, connections or everyone. `id` is the same across every retry, re-queue
/// and generation of the request (clients drop duplicates by it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message<D> {
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub id: String,
    pub data: D,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Message,
}

impl<D> Message<D> {
    pub fn new(id: String, data: D) -> Message<D> {
        Message {
            kind: MessageType::Message,
            id,
            data,
        }
    }
}

/// `{"type":"ack","ref":…,"channel":…,"id":…}`: the answer to an `emit` that carried a `ref`,
/// sent once the pusher accepted it; `id` is the publication's, and on a channel that keeps
/// history `offset` and `epoch` are its place in the channel's sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    #[serde(rename = "type")]
    pub kind: AckType,
    #[serde(rename = "ref")]
    pub reference: String,
    pub channel: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckType {
    Ack,
}

impl Ack {
    pub fn new(reference: String, channel: String, id: String) -> Ack {
        Ack {
            kind: AckType::Ack,
            reference,
            channel,
            id,
            offset: None,
            epoch: None,
        }
    }
}

/// The most bytes a publication on a channel that keeps history may have: it must fit, with
/// the reply around it, in one frame that replays it (`subscribed` with `since`, `history`),
/// and API Gateway's limit for one message is 128 KB. 1 KB is kept for the reply's own keys
/// (its channel, ref, offsets and epoch take under 500 bytes).
pub const MAX_KEPT_PUBLICATION_BYTES: usize = 128 * 1024 - 1024;

/// An error frame: `{"type":"error","error":E,"channel":…,"message":…,"ref":…}`. `channel` is
/// the one a channel request named, as sent (any JSON value, `null` if missing; absent on
/// other requests); `ref` the request's, when it had a valid one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    pub error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a Value>,
    pub message: &'a str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorType {
    Error,
}

impl<'a> ErrorFrame<'a> {
    pub fn new(error: &'a str, message: &'a str) -> ErrorFrame<'a> {
        ErrorFrame {
            kind: ErrorType::Error,
            error,
            channel: None,
            message,
            reference: None,
        }
    }

    pub fn channel(mut self, channel: &'a Value) -> ErrorFrame<'a> {
        self.channel = Some(channel);
        self
    }

    pub fn reference(mut self, reference: Option<&'a str>) -> ErrorFrame<'a> {
        self.reference = reference;
        self
    }

    /// The frame's text.
    pub fn to_text(&self) -> String {
        // Strings and a `Value`: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `error` of a frame refusing a request whose `ref` is not valid ([`parse_ref`]). Such a
/// frame carries no `ref`, and the request changed nothing.
pub const INVALID_REF: &str = "invalid_ref";

/// The longest `ref`.
pub const MAX_REF_CHARS: usize = 64;

/// Why a `ref` was refused; the message is safe to send back (it never quotes the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("`ref` must be a string")]
    NotAString,
    #[error("`ref` must have 1 to {MAX_REF_CHARS} characters")]
    Length,
    #[error("`ref` may contain only A-Z a-z 0-9 _ - . :")]
    Character,
}

/// Reads a request's `ref`: absent (or `null`) is `None`; otherwise a string of 1–64
/// characters of `A-Z a-z 0-9 _ - . :`, so it can be echoed into any frame without escaping.
pub fn parse_ref(value: Option<&Value>) -> Result<Option<String>, RefError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            if text.is_empty() || text.chars().count() > MAX_REF_CHARS {
                Err(RefError::Length)
            } else if !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
            {
                Err(RefError::Character)
            } else {
                Ok(Some(text.clone()))
            }
        }
        Some(_) => Err(RefError::NotAString),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_keeps_its_key_order_and_its_data_bytes() {
        let data =
            serde_json::value::RawValue::from_string(r#"{ "z":1, "a":1.0 }"#.into()).unwrap();
        let message = Message::new("m1".into(), &*data);
        assert_eq!(
            serde_json::to_string(&message).unwrap(),
            r#"{"type":"message","id":"m1","data":{ "z":1, "a":1.0 }}"#
        );
    }

    #[test]
    fn an_ack_and_error_frames_have_the_documented_shape() {
        let ack = Ack::new("r-1".into(), "room/1".into(), "p1".into());
        assert_eq!(
            serde_json::to_string(&ack).unwrap(),
            r#"{"type":"ack","ref":"r-1","channel":"room/1","id":"p1"}"#
        );
        let channel = json!("room/1");
        assert_eq!(
            ErrorFrame::new("forbidden", "no")
                .channel(&channel)
                .reference(Some("r:2"))
                .to_text(),
            r#"{"type":"error","error":"forbidden","channel":"room/1","message":"no","ref":"r:2"}"#
        );
        assert_eq!(
            ErrorFrame::new("invalid_ref", "bad").to_text(),
            r#"{"type":"error","error":"invalid_ref","message":"bad"}"#
        );
    }

    #[test]
    fn a_ref_is_1_to_64_safe_characters_or_absent() {
        assert_eq!(parse_ref(None), Ok(None));
        assert_eq!(parse_ref(Some(&Value::Null)), Ok(None));
        let longest = "a".repeat(MAX_REF_CHARS);
        for good in ["r", "A-z_0.9:x", longest.as_str()] {
            assert_eq!(parse_ref(Some(&json!(good))), Ok(Some(good.to_owned())));
        }
        for (bad, error) in [
            (json!(""), RefError::Length),
            (json!("a".repeat(MAX_REF_CHARS + 1)), RefError::Length),
            (json!("a\"b"), RefError::Character),
            (json!("a\\b"), RefError::Character),
            (json!("a b"), RefError::Character),
            (json!("é"), RefError::Character),
            (json!("a/b"), RefError::Character),
            (json!(7), RefError::NotAString),
            (json!({"r": 1}), RefError::NotAString),
            (json!(["r"]), RefError::NotAString),
            (json!(true), RefError::NotAString),
        ] {
            assert_eq!(parse_ref(Some(&bad)), Err(error), "{bad}");
        }
    }
}
