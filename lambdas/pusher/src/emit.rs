//! A client's `emit`, as the gateway puts it on the notifications queue (pure, no I/O): the
//! body `{"channels":[<channel as sent>],"data":<data or null>}` and the sender's identity and
//! publish grants in message attributes taken from `$context` (mapping-templates/emit.request.vtl).
//! The gateway checks nothing, so every rule of DESIGN.md § Channels is enforced here, from
//! those trusted attributes, before anything is delivered.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessageAttribute;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sumu_wire::channels::reasons;
use sumu_wire::{attributes, Channel, Grants, MAX_NOTIFICATION_DATA_BYTES};

use crate::request::{not_an_object, plan_publications, Fields, Rejection, Request, Targets};

/// The message attributes of an SQS record whose `source` is `apigw.route.emit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitAttributes {
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
    /// `channels_publish`: the sender's publish grants, space-joined; absent = none.
    pub channels_publish: Option<String>,
}

impl EmitAttributes {
    /// `Some` iff the record is a client's emit (attribute `source` = `apigw.route.emit`).
    pub fn from_sqs(message_attributes: &HashMap<String, SqsMessageAttribute>) -> Option<Self> {
        let get = |name: &str| {
            message_attributes
                .get(name)
                .and_then(|attribute| attribute.string_value.clone())
        };
        (get(attributes::SOURCE).as_deref() == Some(attributes::SOURCE_EMIT)).then(|| {
            EmitAttributes {
                user_id: get(attributes::USER_ID),
                connection_id: get(attributes::CONNECTION_ID),
                channels_publish: get(attributes::CHANNELS_PUBLISH),
            }
        })
    }
}

/// The connection that emitted, and its principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub user_id: String,
    pub connection_id: String,
}

/// A refused emit: its error frame goes to the sender, and nothing to anybody else.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub sender: Sender,
    /// `forbidden`, `invalid_channel` or `invalid_message` (`sumu_wire::channels::reasons`).
    pub error: &'static str,
    /// The channel as the client sent it (any JSON value); `null` if it sent none.
    pub channel: Value,
    pub message: String,
}

/// An error frame, serialized as a struct so that its keys keep this order in every build (a
/// `json!` map would be sorted without serde_json's `preserve_order` and not with it).
#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: &'a str,
    channel: &'a Value,
    message: &'a str,
}

impl Refusal {
    /// `{"type":"error","error":E,"channel":…,"message":…}`.
    pub fn frame(&self) -> Vec<u8> {
        let frame = ErrorFrame {
            kind: "error",
            error: self.error,
            channel: &self.channel,
            message: &self.message,
        };
        // Strings and a `Value`: serializing cannot fail.
        serde_json::to_vec(&frame).unwrap_or_default()
    }
}

/// The body the gateway's template writes: `{"channels":[<channel as sent>],"data":<data or
/// null>}`. `data` stays the bytes the template wrote (never a `Value`), so the publication
/// carries them unchanged.
#[derive(Deserialize)]
struct EmitBody {
    #[serde(default)]
    channels: Option<Value>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

/// What an emit turns into.
#[derive(Debug, Clone)]
pub enum Emit {
    /// Accepted: one publication, `from` the sender, never to the sender's connection.
    Publish(Request),
    Refused(Refusal),
}

/// Checks an emit in the order channel, grant, data, and plans its publication. The id is
/// `message_id` (SQS keeps it across redeliveries). Only a record without the sender's
/// `user_id`/`connection_id` (the gateway's template did not run) is rejected: nobody can be
/// told, so it is dead-lettered as `invalid_request`.
pub fn parse_emit(
    body: &str,
    generation: u32,
    attributes: &EmitAttributes,
    message_id: &str,
) -> Result<Emit, Rejection> {
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let (Some(user_id), Some(connection_id)) = (
        non_empty(&attributes.user_id),
        non_empty(&attributes.connection_id),
    ) else {
        return Err(Rejection::InvalidRequest(
            "an emit without the sender's user_id and connection_id attributes".into(),
        ));
    };
    let sender = Sender {
        user_id,
        connection_id,
    };
    let refuse = |error: &'static str, channel: Value, message: String| {
        Ok(Emit::Refused(Refusal {
            sender: sender.clone(),
            error,
            channel,
            message,
        }))
    };

    let parsed = match not_an_object(body) {
        None => serde_json::from_str::<EmitBody>(body).ok(),
        Some(_) => None,
    };
    let Some(request) = parsed else {
        return refuse(
            reasons::INVALID_MESSAGE,
            Value::Null,
            "the emit is not a JSON object".into(),
        );
    };
    // The template sends `[]` when the frame has no `channel`, else `[<channel as sent>]`.
    let sent = match &request.channels {
        Some(Value::Array(channels)) if channels.len() > 1 => {
            return refuse(
                reasons::INVALID_CHANNEL,
                channels[0].clone(),
                "an emit names exactly one channel".into(),
            );
        }
        Some(Value::Array(channels)) => channels.first().cloned(),
        _ => None,
    };
    let sent_channel = sent.clone().unwrap_or(Value::Null);
    let channel = match Channel::from_json(sent.as_ref()) {
        Ok(channel) => channel,
        Err(error) => return refuse(error.reason(), sent_channel, error.to_string()),
    };
    let grants = match Grants::from_context_values(None, attributes.channels_publish.as_deref()) {
        Ok(grants) => grants,
        Err(error) => {
            // The authorizer validated them: a bad value means a broken gateway, so no grant.
            tracing::error!(%error, "unreadable channels_publish attribute; treated as no grant");
            Grants::default()
        }
    };
    if !grants.may_publish(&channel) {
        return refuse(
            reasons::FORBIDDEN,
            sent_channel,
            format!("no publish grant covers {channel}"),
        );
    }
    // `null` reads as absent.
    let Some(data) = &request.data else {
        return refuse(
            reasons::INVALID_MESSAGE,
            sent_channel,
            "an emit needs `data`".into(),
        );
    };
    let data_bytes = data.get().len();
    if data_bytes > MAX_NOTIFICATION_DATA_BYTES {
        return refuse(
            reasons::INVALID_MESSAGE,
            sent_channel,
            format!(
                "`data` is {data_bytes} bytes as JSON, more than the {MAX_NOTIFICATION_DATA_BYTES} allowed"
            ),
        );
    }
    let id = message_id.to_string();
    let planned = match plan_publications(&id, vec![channel], data, Some(&sender.user_id)) {
        Ok(planned) => planned,
        Err(Rejection::EnvelopeTooLarge { bytes }) => {
            return refuse(
                reasons::INVALID_MESSAGE,
                sent_channel,
                format!(
                    "the publication is {bytes} bytes as JSON with its envelope, more than the {MAX_NOTIFICATION_DATA_BYTES} a WebSocket message may have"
                ),
            );
        }
        Err(other) => return Err(other),
    };
    let fields = Fields {
        channels: Some(planned.iter().map(|p| p.channel.to_string()).collect()),
        // An emit is not delivered back to the connection that sent it.
        exclude_connections: vec![sender.connection_id],
        publication_id: Some(id),
        data: request.data,
        ..Fields::default()
    };
    Ok(Emit::Publish(Request {
        fields,
        targets: Targets::Channels(planned),
        generation,
        shard: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(publish: Option<&str>) -> EmitAttributes {
        EmitAttributes {
            user_id: Some("alice".into()),
            connection_id: Some("c-alice=".into()),
            channels_publish: publish.map(str::to_string),
        }
    }

    fn refusal(body: &str, publish: Option<&str>) -> Refusal {
        match parse_emit(body, 0, &attributes(publish), "m1").unwrap() {
            Emit::Refused(refusal) => refusal,
            Emit::Publish(publish) => panic!("accepted: {publish:?}"),
        }
    }

    #[test]
    fn an_accepted_emit_is_one_publication_from_the_sender_and_not_to_it() {
        let Emit::Publish(publish) = parse_emit(
            r#"{"channels":["room/42"],"data":{ "text": "hi", "from":"mallory", "n":1.0 }}"#,
            0,
            &attributes(Some("user/alice room/*")),
            "m1",
        )
        .unwrap() else {
            panic!("refused")
        };
        assert_eq!(
            publish.fields.exclude_connections,
            vec!["c-alice=".to_string()]
        );
        let Targets::Channels(publications) = &publish.targets else {
            panic!("not a publication")
        };
        assert_eq!(publications.len(), 1);
        // `data` exactly as the gateway wrote it; `from` is the sender's principal.
        assert_eq!(
            publications[0].envelope.get(),
            r#"{"type":"publication","channel":"room/42","id":"m1","data":{ "text": "hi", "from":"mallory", "n":1.0 },"from":"alice"}"#
        );
    }

    #[test]
    fn refusals_name_the_rule_and_echo_the_channel_as_sent() {
        let grants = Some("room/*");
        for (body, error, channel) in [
            (
                r#"{"channels":[],"data":1}"#,
                "invalid_channel",
                Value::Null,
            ),
            (
                r#"{"channels":[null],"data":1}"#,
                "invalid_channel",
                Value::Null,
            ),
            (
                r#"{"channels":[42],"data":1}"#,
                "invalid_channel",
                json!(42),
            ),
            (
                r#"{"channels":[{"a":1}],"data":1}"#,
                "invalid_channel",
                json!({"a":1}),
            ),
            (
                r#"{"channels":["room/*"],"data":1}"#,
                "invalid_channel",
                json!("room/*"),
            ),
            (
                r#"{"channels":["room//1"],"data":1}"#,
                "invalid_channel",
                json!("room//1"),
            ),
            (
                r#"{"channels":["lobby"],"data":1}"#,
                "forbidden",
                json!("lobby"),
            ),
            (
                r#"{"channels":["room/1"],"data":null}"#,
                "invalid_message",
                json!("room/1"),
            ),
            (
                r#"{"channels":["room/1"]}"#,
                "invalid_message",
                json!("room/1"),
            ),
            ("not json", "invalid_message", Value::Null),
            (r#"[["room/1"],1]"#, "invalid_message", Value::Null),
        ] {
            let refused = refusal(body, grants);
            assert_eq!(
                (refused.error, &refused.channel),
                (error, &channel),
                "{body}"
            );
            assert_eq!(refused.sender.connection_id, "c-alice=");
        }
        // Without a publish grant at all, every valid channel is forbidden.
        assert_eq!(
            refusal(r#"{"channels":["room/1"],"data":1}"#, None).error,
            "forbidden"
        );
    }

    #[test]
    fn the_error_frame_has_the_documented_shape() {
        let refused = refusal(r#"{"channels":["lobby"],"data":1}"#, Some("room/*"));
        assert_eq!(
            std::str::from_utf8(&refused.frame()).unwrap(),
            r#"{"type":"error","error":"forbidden","channel":"lobby","message":"no publish grant covers lobby"}"#
        );
    }

    #[test]
    fn data_over_128_kb_or_an_envelope_that_does_not_fit_is_refused() {
        let body = |n: usize| json!({"channels":["room/1"],"data":"x".repeat(n)}).to_string();
        let refused = refusal(&body(MAX_NOTIFICATION_DATA_BYTES), Some("room/*"));
        assert_eq!(refused.error, "invalid_message");
        assert!(
            refused.message.contains("131074 bytes"),
            "{}",
            refused.message
        );
        // Fits as data, not with the envelope around it: refused rather than failing at every post.
        let refused = refusal(&body(MAX_NOTIFICATION_DATA_BYTES - 2), Some("room/*"));
        assert_eq!(refused.error, "invalid_message");
        assert!(refused.message.contains("envelope"), "{}", refused.message);
        assert!(matches!(
            parse_emit(&body(1000), 0, &attributes(Some("room/*")), "m1").unwrap(),
            Emit::Publish(_)
        ));
    }

    #[test]
    fn a_record_without_the_senders_identity_is_rejected() {
        let mut attributes = attributes(Some("room/*"));
        attributes.connection_id = None;
        let rejection =
            parse_emit(r#"{"channels":["room/1"],"data":1}"#, 0, &attributes, "m1").unwrap_err();
        assert_eq!(rejection.reason(), "invalid_request");
    }

    #[test]
    fn only_the_emit_source_marks_an_emit() {
        let attribute = |value: &str| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = Some(value.to_string());
            attribute.data_type = Some("String".into());
            attribute
        };
        let mut attrs = HashMap::from([
            ("source".to_string(), attribute("apigw.route.emit")),
            ("user_id".to_string(), attribute("alice")),
            ("connection_id".to_string(), attribute("c=")),
        ]);
        assert_eq!(
            EmitAttributes::from_sqs(&attrs),
            Some(EmitAttributes {
                user_id: Some("alice".into()),
                connection_id: Some("c=".into()),
                channels_publish: None
            })
        );
        attrs.insert("source".into(), attribute("apigw.route.send"));
        assert_eq!(EmitAttributes::from_sqs(&attrs), None);
        assert_eq!(EmitAttributes::from_sqs(&HashMap::new()), None);
    }
}
