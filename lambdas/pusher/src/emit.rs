//! A client's `emit`, as the gateway puts it on the notifications queue (pure, no I/O): the
//! body `{"channels":[<channel as sent>],"data":<data or null>,"ref":…,"exclude_connections":…}`
//! (the last two only when the frame had them) and the sender's identity and publish grants in
//! message attributes taken from `$context` (mapping-templates/emit.request.vtl). The gateway
//! checks nothing, so every rule of docs/channels.md § Emits is enforced here, from those
//! trusted attributes, before anything is delivered.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessageAttribute;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sumu_wire::channels::reasons;
use sumu_wire::frames::{parse_ref, Ack, ErrorFrame, INVALID_REF};
use sumu_wire::{attributes, Channel, Grants, Namespaces, MAX_NOTIFICATION_DATA_BYTES};

use crate::request::{
    not_an_object, plan_publications, Action, Fields, Rejection, Request, Targets,
};

/// The message attributes of an SQS record whose `source` is `apigw.route.emit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitAttributes {
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
    /// `channels_publish`: the sender's publish grants, space-joined; absent = none.
    pub channels_publish: Option<String>,
    /// `timestamp`: when the gateway received the emit (epoch ms).
    pub timestamp: Option<i64>,
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
                timestamp: get(attributes::TIMESTAMP).and_then(|t| t.trim().parse().ok()),
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
    /// `forbidden`, `invalid_channel`, `invalid_message` (`sumu_wire::channels::reasons`) or
    /// `invalid_ref`.
    pub error: &'static str,
    /// The channel as the client sent it (any JSON value); `null` if it sent none.
    pub channel: Value,
    pub message: String,
    /// The emit's `ref`, echoed (never for an `invalid_ref`).
    pub reference: Option<String>,
}

impl Refusal {
    /// `{"type":"error","error":E,"channel":…,"message":…,"ref":…}`.
    pub fn frame(&self) -> Vec<u8> {
        ErrorFrame::new(self.error, &self.message)
            .channel(&self.channel)
            .reference(self.reference.as_deref())
            .to_text()
            .into_bytes()
    }
}

/// The most connection ids an emit may exclude besides its own: a client holds at most two
/// connections at once (during a proactive reconnect), so a handful is plenty.
pub const MAX_EXCLUDED_CONNECTIONS: usize = 10;

/// The longest connection id an emit may exclude (API Gateway's are 16 characters).
pub const MAX_CONNECTION_ID_BYTES: usize = 128;

/// The body the gateway's template writes: `{"channels":[<channel as sent>],"data":<data or
/// null>}`, plus `ref` and `exclude_connections` as sent when the frame has them. `data`
/// stays the bytes the template wrote (never a `Value`), so the publication carries them
/// unchanged.
#[derive(Deserialize)]
struct EmitBody {
    #[serde(default)]
    channels: Option<Value>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default, rename = "ref")]
    reference: Option<Value>,
    #[serde(default)]
    exclude_connections: Option<Value>,
}

/// What an emit turns into.
#[derive(Debug, Clone)]
pub enum Emit {
    /// Accepted: one publication, `from` the sender, never to the sender's connection nor to
    /// the connections it excluded; `ack` when the emit had a `ref`.
    Publish {
        request: Box<Request>,
        ack: Option<Acknowledgement>,
    },
    Refused(Refusal),
}

/// The `ack` of an accepted emit that had a `ref`, and the connection it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledgement {
    pub sender: Sender,
    pub ack: Ack,
}

impl Acknowledgement {
    /// `{"type":"ack","ref":…,"channel":…,"id":…}`, plus the `offset` and `epoch` the
    /// publication got when its channel keeps history (`request` as kept).
    pub fn frame(&self, request: &Request) -> Vec<u8> {
        let mut ack = self.ack.clone();
        if let Targets::Channels(planned) = &request.targets {
            if let Some((offset, epoch)) = planned.first().and_then(|p| p.kept.clone()) {
                ack.offset = Some(offset);
                ack.epoch = Some(epoch);
            }
        }
        // Strings and numbers: serializing cannot fail.
        serde_json::to_vec(&ack).unwrap_or_default()
    }
}

/// `exclude_connections` as sent: absent or `null` is none; otherwise a list of at most
/// [`MAX_EXCLUDED_CONNECTIONS`] non-empty strings of at most [`MAX_CONNECTION_ID_BYTES`].
fn excluded_connections(value: Option<&Value>) -> Result<Vec<String>, String> {
    let invalid = || {
        format!(
            "`exclude_connections` must be a list of at most {MAX_EXCLUDED_CONNECTIONS} connection ids"
        )
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) if ids.len() <= MAX_EXCLUDED_CONNECTIONS => ids
            .iter()
            .map(|id| match id {
                Value::String(id) if !id.is_empty() && id.len() <= MAX_CONNECTION_ID_BYTES => {
                    Ok(id.clone())
                }
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// Checks an emit in the order ref, channel, grant, exclusions, data, and plans its
/// publication. The id is
/// `message_id` (SQS keeps it across redeliveries). Only a record without the sender's
/// `user_id`/`connection_id` (the gateway's template did not run) is rejected: nobody can be
/// told, so it is dead-lettered as `invalid_request`.
pub fn parse_emit(
    body: &str,
    generation: u32,
    attributes: &EmitAttributes,
    message_id: &str,
    namespaces: &Namespaces,
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
    let refuse_with =
        |error: &'static str, channel: Value, message: String, reference: Option<String>| {
            Ok(Emit::Refused(Refusal {
                sender: sender.clone(),
                error,
                channel,
                message,
                reference,
            }))
        };

    let parsed = match not_an_object(body) {
        None => serde_json::from_str::<EmitBody>(body).ok(),
        Some(_) => None,
    };
    let Some(request) = parsed else {
        return refuse_with(
            reasons::INVALID_MESSAGE,
            Value::Null,
            "the emit is not a JSON object".into(),
            None,
        );
    };
    let first_channel = match &request.channels {
        Some(Value::Array(channels)) => channels.first().cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let reference = match parse_ref(request.reference.as_ref()) {
        Ok(reference) => reference,
        Err(error) => {
            return refuse_with(INVALID_REF, first_channel, error.to_string(), None);
        }
    };
    let refuse = |error: &'static str, channel: Value, message: String| {
        refuse_with(error, channel, message, reference.clone())
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
    let excluded = match excluded_connections(request.exclude_connections.as_ref()) {
        Ok(excluded) => excluded,
        Err(message) => return refuse(reasons::INVALID_MESSAGE, sent_channel, message),
    };
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
    let planned = match plan_publications(
        &id,
        vec![channel.clone()],
        data,
        Some(&sender.user_id),
        namespaces,
    ) {
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
    let ack = reference.map(|reference| Acknowledgement {
        sender: sender.clone(),
        ack: Ack::new(reference, channel.to_string(), id.clone()),
    });
    // An emit is not delivered back to the connection that sent it, nor to the ones it
    // excluded (the client's other connection during a proactive reconnect).
    let mut exclude_connections = vec![sender.connection_id];
    exclude_connections.extend(excluded);
    let fields = Fields {
        channels: Some(planned.iter().map(|p| p.channel.to_string()).collect()),
        exclude_connections,
        publication_id: Some(id),
        data: request.data,
        ..Fields::default()
    };
    Ok(Emit::Publish {
        request: Box::new(Request {
            fields,
            targets: Targets::Channels(planned),
            generation,
            shard: None,
            frame: None,
            subscribed_before: attributes.timestamp,
            action: Action::Push,
            channel: None,
        }),
        ack,
    })
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
            timestamp: Some(1_700_000_000_000),
        }
    }

    fn refusal(body: &str, publish: Option<&str>) -> Refusal {
        match parse_emit(body, 0, &attributes(publish), "m1", &Namespaces::default()).unwrap() {
            Emit::Refused(refusal) => refusal,
            Emit::Publish { request, .. } => panic!("accepted: {request:?}"),
        }
    }

    #[test]
    fn an_accepted_emit_is_one_publication_from_the_sender_and_not_to_it() {
        let Emit::Publish {
            request: publish,
            ack: None,
        } = parse_emit(
            r#"{"channels":["room/42"],"data":{ "text": "hi", "from":"mallory", "n":1.0 }}"#,
            0,
            &attributes(Some("user/alice room/*")),
            "m1",
            &Namespaces::default(),
        )
        .unwrap()
        else {
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
    fn an_emit_with_a_ref_is_acked_with_its_publication_id_and_excludes_what_it_names() {
        let Emit::Publish {
            request,
            ack: Some(ack),
        } = parse_emit(
            r#"{"channels":["room/1"],"data":1,"ref":"r-1","exclude_connections":["c-old="]}"#,
            0,
            &attributes(Some("room/*")),
            "m1",
            &Namespaces::default(),
        )
        .unwrap()
        else {
            panic!("refused or not acked")
        };
        assert_eq!(ack.sender.connection_id, "c-alice=");
        assert_eq!(
            std::str::from_utf8(&ack.frame(&request)).unwrap(),
            r#"{"type":"ack","ref":"r-1","channel":"room/1","id":"m1"}"#
        );
        assert_eq!(request.fields.exclude_connections, ["c-alice=", "c-old="]);
    }

    #[test]
    fn a_bad_ref_or_bad_exclusions_refuse_the_emit() {
        let too_long = "r".repeat(65);
        let many: Vec<String> = (0..=MAX_EXCLUDED_CONNECTIONS)
            .map(|i| format!("c{i}"))
            .collect();
        for (extra, error, reference) in [
            (json!({"ref": "a\"b"}), "invalid_ref", None),
            (json!({"ref": "a\\b"}), "invalid_ref", None),
            (json!({"ref": too_long}), "invalid_ref", None),
            (json!({"ref": 7}), "invalid_ref", None),
            (json!({"ref": {"r": 1}}), "invalid_ref", None),
            (json!({"ref": ""}), "invalid_ref", None),
            (
                json!({"ref": "r1", "exclude_connections": "c1"}),
                "invalid_message",
                Some("r1"),
            ),
            (
                json!({"ref": "r1", "exclude_connections": [1]}),
                "invalid_message",
                Some("r1"),
            ),
            (
                json!({"ref": "r1", "exclude_connections": [""]}),
                "invalid_message",
                Some("r1"),
            ),
            (
                json!({"ref": "r1", "exclude_connections": many}),
                "invalid_message",
                Some("r1"),
            ),
            // The other rules still answer with the ref.
            (
                json!({"ref": "r1", "channels": ["lobby"]}),
                "forbidden",
                Some("r1"),
            ),
        ] {
            let mut body = json!({"channels": ["room/1"], "data": 1});
            for (key, value) in extra.as_object().unwrap() {
                body[key] = value.clone();
            }
            let refused = refusal(&body.to_string(), Some("room/*"));
            assert_eq!(refused.error, error, "{body}");
            assert_eq!(refused.reference.as_deref(), reference, "{body}");
            let frame: Value = serde_json::from_slice(&refused.frame()).unwrap();
            assert_eq!(
                frame.get("ref").and_then(Value::as_str),
                reference,
                "{body}"
            );
        }
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
            parse_emit(
                &body(1000),
                0,
                &attributes(Some("room/*")),
                "m1",
                &Namespaces::default()
            )
            .unwrap(),
            Emit::Publish { .. }
        ));
    }

    #[test]
    fn a_record_without_the_senders_identity_is_rejected() {
        let mut attributes = attributes(Some("room/*"));
        attributes.connection_id = None;
        let rejection = parse_emit(
            r#"{"channels":["room/1"],"data":1}"#,
            0,
            &attributes,
            "m1",
            &Namespaces::default(),
        )
        .unwrap_err();
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
                channels_publish: None,
                timestamp: None,
            })
        );
        attrs.insert("source".into(), attribute("apigw.route.send"));
        assert_eq!(EmitAttributes::from_sqs(&attrs), None);
        assert_eq!(EmitAttributes::from_sqs(&HashMap::new()), None);
    }
}
