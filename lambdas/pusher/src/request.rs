//! Parsing and validating a notification request body (pure, no I/O).

use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;
use sumu_wire::{Channel, NotificationRequest, MAX_NOTIFICATION_DATA_BYTES};

use crate::store::ConnectionKey;

/// A valid request, ready to fan out.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub targets: Targets,
    /// Users whose connections never receive this request, in every mode.
    pub exclude_users: Vec<String>,
    /// Connections that never receive this request, in every mode.
    pub exclude_connections: Vec<String>,
    /// `data` serialized as JSON, once: every target receives these bytes.
    pub payload: Vec<u8>,
    /// How many times this request has been narrowed and re-queued (0 for a back end's own).
    pub generation: u32,
    /// `publication_id`: the id of a publication to channels (when absent, derived from the
    /// message id: `crate::publish`). On any other request it only names, in the logs, the
    /// publication whose narrowed re-queue this is (its `data` is the envelope already).
    pub publication_id: Option<String>,
    /// The part of a broadcast this message covers (the `sumu_shard` attribute); `None` for a
    /// back end's own request, which may be split here (docs/pusher.md, "Large fan-outs").
    pub shard: Option<Shard>,
}

/// The message attribute that restricts a broadcast to one shard.
pub const SHARD_ATTRIBUTE: &str = "sumu_shard";

/// One part of a broadcast: Scan segment `segment` of `segments`, from after `after` (from
/// its start when `None`). Disjoint by construction: DynamoDB's segments partition the table,
/// and a continuation starts where its predecessor stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    pub segment: u32,
    pub segments: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ShardKey>,
}

/// Where a shard starts: the last key its predecessor read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardKey {
    pub user_id: String,
    pub connection_id: String,
}

impl From<ConnectionKey> for ShardKey {
    fn from(key: ConnectionKey) -> ShardKey {
        ShardKey {
            user_id: key.user_id,
            connection_id: key.connection_id,
        }
    }
}

impl From<ShardKey> for ConnectionKey {
    fn from(key: ShardKey) -> ConnectionKey {
        ConnectionKey {
            user_id: key.user_id,
            connection_id: key.connection_id,
        }
    }
}

/// DynamoDB's largest `TotalSegments`.
const MAX_SEGMENTS: u32 = 1_000_000;

impl Shard {
    /// The `sumu_shard` attribute's value.
    pub fn attribute(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the `sumu_shard` attribute; only a broadcast can be sharded.
    pub fn parse(attribute: &str) -> Result<Shard, Rejection> {
        let shard: Shard = serde_json::from_str(attribute)
            .map_err(|e| Rejection::InvalidRequest(format!("`{SHARD_ATTRIBUTE}`: {e}")))?;
        if shard.segments == 0 || shard.segments > MAX_SEGMENTS || shard.segment >= shard.segments {
            return Err(Rejection::InvalidRequest(format!(
                "`{SHARD_ATTRIBUTE}`: segment {} of {} is not a Scan segment",
                shard.segment, shard.segments
            )));
        }
        Ok(shard)
    }
}

/// Parses a request body and its `sumu_shard` attribute, if any.
pub fn parse_message(body: &str, generation: u32, shard: Option<&str>) -> Result<Job, Rejection> {
    let mut job = parse(body, generation)?;
    if let Some(attribute) = shard {
        if job.targets != Targets::Broadcast {
            return Err(Rejection::InvalidRequest(format!(
                "`{SHARD_ATTRIBUTE}` on a request that is not a broadcast"
            )));
        }
        job.shard = Some(Shard::parse(attribute)?);
    }
    Ok(job)
}

/// Whom a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Neither `users` nor `connections` present: every live connection.
    Broadcast,
    /// The connections of these users plus these connection ids (duplicates removed).
    Selected {
        users: Vec<String>,
        connections: Vec<String>,
    },
    /// `channels`: one publication per channel (duplicates removed), to the connections
    /// subscribed to a matching pattern (`crate::publish`).
    Channels(Vec<Channel>),
}

/// The longest `publication_id` a back end may set on a publication to channels.
pub const MAX_PUBLICATION_ID_BYTES: usize = 256;

/// Why a request was refused. It goes to the dead-letter queue with [`Rejection::reason`] as
/// its `rejection_reason` attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the body is not a JSON object: {0}")]
    UnparseableBody(String),
    #[error("the request has no `data` (or `data` is null)")]
    MissingData,
    #[error(
        "`data` is {bytes} bytes as JSON, more than the {MAX_NOTIFICATION_DATA_BYTES} allowed"
    )]
    DataTooLarge { bytes: usize },
    #[error(
        "the publication is {bytes} bytes as JSON with its envelope, more than the {MAX_NOTIFICATION_DATA_BYTES} a WebSocket message may have"
    )]
    EnvelopeTooLarge { bytes: usize },
    #[error("the request is malformed: {0}")]
    InvalidRequest(String),
}

impl Rejection {
    /// A stable, machine-readable reason (the DLQ message's `rejection_reason` attribute).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::UnparseableBody(_) => "unparseable_body",
            Rejection::MissingData => "missing_data",
            Rejection::DataTooLarge { .. } | Rejection::EnvelopeTooLarge { .. } => "data_too_large",
            Rejection::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// Parses a request body. `generation` comes from the message's attribute.
///
/// An explicitly empty `users` or `connections` list targets nobody: only a request naming
/// neither key is a broadcast, so a back end whose computed audience is empty never reaches
/// every connection by accident.
///
/// `data` is kept as the bytes the back end sent (a `RawValue`): it is never parsed into a
/// `Value` and serialized again, so no key is reordered, no number rewritten and no escape or
/// space changed, whatever serde_json's features in the build (docs/pusher.md, "Data travels
/// byte for byte").
pub fn parse(body: &str, generation: u32) -> Result<Job, Rejection> {
    if let Some(found) = not_an_object(body) {
        return Err(Rejection::UnparseableBody(format!("found {found}")));
    }
    let request: NotificationRequest<Option<Box<RawValue>>> =
        serde_json::from_str(body).map_err(|e| match e.classify() {
            Category::Data => Rejection::InvalidRequest(e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                Rejection::UnparseableBody(e.to_string())
            }
        })?;
    // `null` reads as absent (serde's `Option`): both are a request without data.
    let Some(data) = &request.data else {
        return Err(Rejection::MissingData);
    };
    let no_ids = Vec::new();
    for (field, ids) in [
        ("users", request.users.as_ref().unwrap_or(&no_ids)),
        (
            "connections",
            request.connections.as_ref().unwrap_or(&no_ids),
        ),
        ("exclude_users", &request.exclude_users),
        ("exclude_connections", &request.exclude_connections),
    ] {
        if ids.iter().any(|id| id.is_empty()) {
            return Err(Rejection::InvalidRequest(format!(
                "`{field}` contains an empty id"
            )));
        }
    }
    let payload = data.get().as_bytes().to_vec();
    if payload.len() > MAX_NOTIFICATION_DATA_BYTES {
        return Err(Rejection::DataTooLarge {
            bytes: payload.len(),
        });
    }
    let targets = if let Some(channels) = request.channels {
        if request.users.is_some() || request.connections.is_some() {
            return Err(Rejection::InvalidRequest(
                "`channels` cannot be combined with `users` or `connections`".into(),
            ));
        }
        if let Some(id) = &request.publication_id {
            if id.is_empty() || id.len() > MAX_PUBLICATION_ID_BYTES {
                return Err(Rejection::InvalidRequest(format!(
                    "`publication_id` must have 1 to {MAX_PUBLICATION_ID_BYTES} bytes"
                )));
            }
        }
        let channels = channels
            .iter()
            .map(|text| {
                Channel::parse(text).map_err(|error| {
                    Rejection::InvalidRequest(format!("`channels`: {text:?}: {error}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::HashSet::with_capacity(channels.len());
        Targets::Channels(
            channels
                .into_iter()
                .filter(|channel| seen.insert(channel.clone()))
                .collect(),
        )
    } else if request.is_broadcast() {
        Targets::Broadcast
    } else {
        Targets::Selected {
            users: dedup(request.users.unwrap_or_default()),
            connections: dedup(request.connections.unwrap_or_default()),
        }
    };
    Ok(Job {
        targets,
        exclude_users: request.exclude_users,
        exclude_connections: request.exclude_connections,
        payload,
        generation,
        publication_id: request.publication_id,
        shard: None,
    })
}

impl Job {
    /// The connections of one publication that still have to get its `envelope`: the job a
    /// narrowed re-queue is made from (`targets` are not used there).
    pub fn narrowed_publication(envelope: Vec<u8>, generation: u32, id: String) -> Job {
        Job {
            targets: Targets::Selected {
                users: Vec::new(),
                connections: Vec::new(),
            },
            exclude_users: Vec::new(),
            exclude_connections: Vec::new(),
            payload: envelope,
            generation,
            publication_id: Some(id),
            shard: None,
        }
    }
}

/// The body of a broadcast shard: the same exclusions and the same bytes of `data`.
pub fn shard_body(
    exclude_users: &[String],
    exclude_connections: &[String],
    payload: &[u8],
) -> String {
    let users = serde_json::to_string(exclude_users).unwrap_or_else(|_| "[]".into());
    let connections = serde_json::to_string(exclude_connections).unwrap_or_else(|_| "[]".into());
    let data = String::from_utf8_lossy(payload);
    format!(r#"{{"exclude_users":{users},"exclude_connections":{connections},"data":{data}}}"#)
}

/// The body of a narrowed request: only `connections` and the same `data`.
pub fn narrowed_body(connections: &[String], payload: &[u8]) -> String {
    // `payload` is the JSON we produced ourselves, so splicing it in keeps it byte-identical
    // and avoids a re-parse.
    let connections = serde_json::to_string(connections).unwrap_or_else(|_| "[]".into());
    let data = String::from_utf8_lossy(payload);
    format!(r#"{{"connections":{connections},"data":{data}}}"#)
}

/// The body of a narrowed request for `job`: a publication's keeps its `publication_id` (its
/// `payload` is the envelope, whose `id` therefore survives every generation).
pub fn requeue_body(job: &Job, connections: &[String]) -> String {
    match &job.publication_id {
        None => narrowed_body(connections, &job.payload),
        Some(id) => {
            let connections = serde_json::to_string(connections).unwrap_or_else(|_| "[]".into());
            let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
            let data = String::from_utf8_lossy(&job.payload);
            format!(r#"{{"connections":{connections},"publication_id":{id},"data":{data}}}"#)
        }
    }
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// What a body that is not a JSON object starts with, if it is not one. Checked before the
/// request is read, because a derived struct would also accept a JSON array of its fields in
/// order. Anything that starts like an object is left to the parser.
pub(crate) fn not_an_object(body: &str) -> Option<&'static str> {
    match body
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .bytes()
        .next()
    {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("a boolean or other text"),
        Some(b'n') => Some("null or other text"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        Some(_) => Some("text that is not JSON"),
        None => Some("an empty body"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_targets_is_a_broadcast_and_data_is_serialized_once() {
        let job = parse(r#"{"exclude_users":["u3"],"data":{"a":[1,2]}}"#, 0).unwrap();
        assert_eq!(job.targets, Targets::Broadcast);
        assert_eq!(job.exclude_users, vec!["u3"]);
        assert_eq!(job.payload, br#"{"a":[1,2]}"#);
    }

    #[test]
    fn data_keeps_the_bytes_the_back_end_sent_through_every_body_the_pusher_writes() {
        let data = r#"{ "z" : 1, "a":2, "n":1.0, "big":12345678901234567890, "s":"caf\u00e9" }"#;
        let job = parse(&format!(r#"{{"users":["u1"],"data":{data}}}"#), 0).unwrap();
        assert_eq!(job.payload, data.as_bytes());
        let narrowed = parse(&narrowed_body(&["c1".into()], &job.payload), 1).unwrap();
        assert_eq!(narrowed.payload, data.as_bytes());
        let shard = parse(&shard_body(&["u2".into()], &[], &job.payload), 1).unwrap();
        assert_eq!(shard.payload, data.as_bytes());
        // The size checked is the size delivered: spaces count.
        let spaced = format!(
            r#"{{"data":"{}"     }}"#,
            "x".repeat(MAX_NOTIFICATION_DATA_BYTES - 2)
        );
        assert!(parse(&spaced, 0).is_ok());
        let spaced = format!(
            r#"{{"data": {{"k":"{}" }} }}"#,
            "x".repeat(MAX_NOTIFICATION_DATA_BYTES - 8)
        );
        assert_eq!(
            parse(&spaced, 0).unwrap_err(),
            Rejection::DataTooLarge {
                bytes: MAX_NOTIFICATION_DATA_BYTES + 1
            }
        );
    }

    #[test]
    fn targets_are_deduplicated() {
        let job = parse(
            r#"{"users":["u1","u2","u1"],"connections":["c","c"],"data":"hi"}"#,
            2,
        )
        .unwrap();
        assert_eq!(
            job.targets,
            Targets::Selected {
                users: vec!["u1".into(), "u2".into()],
                connections: vec!["c".into()]
            }
        );
        assert_eq!(job.generation, 2);
        assert_eq!(job.payload, br#""hi""#);
    }

    #[test]
    fn an_explicitly_empty_audience_is_nobody_not_everybody() {
        let job = parse(r#"{"users":[],"data":1}"#, 0).unwrap();
        assert_eq!(
            job.targets,
            Targets::Selected {
                users: vec![],
                connections: vec![]
            }
        );
        let job = parse(r#"{"users":null,"data":1}"#, 0).unwrap();
        assert_eq!(job.targets, Targets::Broadcast);
    }

    #[test]
    fn malformed_bodies_are_rejected_with_a_reason() {
        for (body, reason) in [
            ("not json", "unparseable_body"),
            ("", "unparseable_body"),
            ("[1,2]", "unparseable_body"),
            (r#""data""#, "unparseable_body"),
            (r#"{"users":["u1"]}"#, "missing_data"),
            (r#"{"users":["u1"],"data":null}"#, "missing_data"),
            (r#"{"users":"u1","data":1}"#, "invalid_request"),
            (r#"{"users":[1],"data":1}"#, "invalid_request"),
            (r#"{"connections":[""],"data":1}"#, "invalid_request"),
            // A derived struct would read an array as its fields in order: not here.
            (r#"[null,null,null,[],[],null,1]"#, "unparseable_body"),
            (r#"{"data":1"#, "unparseable_body"),
            (r#"{"data":1} x"#, "unparseable_body"),
            (r#"{"data":1,"data":2}"#, "invalid_request"),
            (r#"{"exclude_users":null,"users":null,"data":{}}"#, "ok"),
        ] {
            match parse(body, 0) {
                Ok(_) => assert_eq!(reason, "ok", "{body:?}"),
                Err(rejection) => assert_eq!(rejection.reason(), reason, "{body:?}: {rejection}"),
            }
        }
    }

    #[test]
    fn data_over_128_kb_is_rejected_and_exactly_128_kb_is_accepted() {
        let too_big = format!(r#"{{"data":"{}"}}"#, "x".repeat(200 * 1024));
        assert_eq!(
            parse(&too_big, 0).unwrap_err(),
            Rejection::DataTooLarge {
                bytes: 200 * 1024 + 2
            }
        );
        let just_fits = format!(
            r#"{{"data":"{}"}}"#,
            "x".repeat(MAX_NOTIFICATION_DATA_BYTES - 2)
        );
        assert_eq!(
            parse(&just_fits, 0).unwrap().payload.len(),
            MAX_NOTIFICATION_DATA_BYTES
        );
    }

    #[test]
    fn a_shard_travels_as_an_attribute_of_a_broadcast_body() {
        let job = parse(r#"{"exclude_users":["u3"],"data":{"k":1}}"#, 0).unwrap();
        let body = shard_body(&job.exclude_users, &job.exclude_connections, &job.payload);
        let shard = Shard {
            segment: 3,
            segments: 40,
            after: Some(ShardKey {
                user_id: "u\"1".into(),
                connection_id: "c=".into(),
            }),
        };
        let again = parse_message(&body, 0, Some(&shard.attribute())).unwrap();
        assert_eq!(again.shard, Some(shard));
        assert_eq!(again.targets, Targets::Broadcast);
        assert_eq!(again.exclude_users, job.exclude_users);
        assert_eq!(again.payload, job.payload);
        assert_eq!(
            Shard::parse(r#"{"segment":0,"segments":2}"#).unwrap().after,
            None
        );
    }

    #[test]
    fn channels_are_exact_deduplicated_and_never_combined_with_users_or_connections() {
        let job = parse(
            r#"{"channels":["room/42","lobby","room/42"],"exclude_connections":["c1"],"publication_id":"p-1","data":1}"#,
            0,
        )
        .unwrap();
        assert_eq!(
            job.targets,
            Targets::Channels(vec![
                Channel::parse("room/42").unwrap(),
                Channel::parse("lobby").unwrap()
            ])
        );
        assert_eq!(job.exclude_connections, vec!["c1"]);
        assert_eq!(job.publication_id.as_deref(), Some("p-1"));
        let long_id = format!(
            r#"{{"channels":["a"],"publication_id":"{}","data":1}}"#,
            "x".repeat(MAX_PUBLICATION_ID_BYTES + 1)
        );
        for body in [
            r#"{"channels":["room/42"],"users":["u1"],"data":1}"#,
            r#"{"channels":["room/42"],"connections":[],"data":1}"#,
            r#"{"channels":["room/*"],"data":1}"#,
            r#"{"channels":["*"],"data":1}"#,
            r#"{"channels":["room//42"],"data":1}"#,
            r#"{"channels":[""],"data":1}"#,
            r#"{"channels":[42],"data":1}"#,
            r#"{"channels":"room/42","data":1}"#,
            r#"{"channels":["a"],"publication_id":"","data":1}"#,
            r#"{"exclude_connections":[""],"data":1}"#,
            &long_id,
        ] {
            let rejection = parse(body, 0).unwrap_err();
            assert_eq!(rejection.reason(), "invalid_request", "{body}: {rejection}");
        }
        // An empty list of channels publishes nothing (and is not a broadcast).
        assert_eq!(
            parse(r#"{"channels":[],"data":1}"#, 0).unwrap().targets,
            Targets::Channels(vec![])
        );
    }

    #[test]
    fn a_shard_of_anything_but_a_broadcast_or_outside_the_segments_is_rejected() {
        for (body, attribute) in [
            (
                r#"{"users":["u1"],"data":1}"#,
                r#"{"segment":0,"segments":2}"#,
            ),
            (r#"{"data":1}"#, r#"{"segment":2,"segments":2}"#),
            (r#"{"data":1}"#, r#"{"segment":0,"segments":0}"#),
            (r#"{"data":1}"#, r#"{"segment":0}"#),
            (r#"{"data":1}"#, r#"{"segment":0,"segments":2,"extra":1}"#),
            (r#"{"data":1}"#, "not json"),
        ] {
            let rejection = parse_message(body, 0, Some(attribute)).unwrap_err();
            assert_eq!(rejection.reason(), "invalid_request", "{body} {attribute}");
        }
    }

    #[test]
    fn a_narrowed_publication_keeps_its_id_and_its_envelope_bytes() {
        let envelope = crate::publish::envelope(
            &Channel::parse("a").unwrap(),
            "m\"1",
            serde_json::from_str(r#"{"z": 1, "a": [2]}"#).unwrap(),
            Some("u1"),
        );
        let job = Job::narrowed_publication(envelope.clone(), 1, "m\"1".into());
        let body = requeue_body(&job, &["c1".into()]);
        let again = parse(&body, 2).unwrap();
        assert_eq!(again.publication_id.as_deref(), Some("m\"1"));
        assert_eq!(again.payload, envelope);
        assert_eq!(
            again.targets,
            Targets::Selected {
                users: vec![],
                connections: vec!["c1".into()]
            }
        );
    }

    #[test]
    fn a_narrowed_body_parses_back_to_the_same_data_and_connections() {
        let job = parse(r#"{"users":["u1"],"data":{"k":"v\"q"}}"#, 0).unwrap();
        let body = narrowed_body(&["c1".into(), "c\"2".into()], &job.payload);
        let again = parse(&body, 1).unwrap();
        assert_eq!(
            again.targets,
            Targets::Selected {
                users: vec![],
                connections: vec!["c1".into(), "c\"2".into()]
            }
        );
        assert_eq!(again.payload, job.payload);
    }
}
