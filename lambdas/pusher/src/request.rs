//! The notification request as the pusher holds it (pure, no I/O): every kind — to users, to
//! connections, to everyone, to channels, a client's emit, a shard of a broadcast, a narrowed
//! re-queue — is read once into one [`Request`], and every body the pusher writes back to a
//! queue (a narrowed re-queue, a shard, a dead letter of exhausted retries) is serialized from
//! it, never spliced, so a field added to [`NotificationRequest`] travels through every hop.

use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;
use sumu_wire::frames::{Message, MAX_KEPT_PUBLICATION_BYTES};
use sumu_wire::{
    Channel, HistoryPolicy, Namespaces, NotificationRequest, Pattern, Publication, PublicationType,
    MAX_NOTIFICATION_DATA_BYTES,
};

use crate::store::ConnectionKey;

/// A request's fields as its body carries them: the wire type itself, `data` as the bytes the
/// back end sent (present for a `push`: [`parse_message`] rejects one without it).
pub type Fields = NotificationRequest<Option<Box<RawValue>>>;

/// What a notification request asks the pusher to do with its targets (`"action"`; absent or
/// `null` is `push`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Action {
    /// Deliver `data` (required) to the targets: users, connections, everyone or channels.
    #[default]
    Push,
    /// Close the target connections (after `data`, when present, as their last frame).
    Disconnect,
    /// Subscribe every live target connection to `channel`.
    Subscribe,
    /// Unsubscribe every live target connection from `channel`.
    Unsubscribe,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Push,
        Action::Disconnect,
        Action::Subscribe,
        Action::Unsubscribe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Disconnect => "disconnect",
            Action::Subscribe => "subscribe",
            Action::Unsubscribe => "unsubscribe",
        }
    }

    /// The action a request names (`None`: absent or `null`, a push).
    fn parse(text: Option<&str>) -> Result<Action, Rejection> {
        let Some(text) = text else {
            return Ok(Action::Push);
        };
        Action::ALL
            .into_iter()
            .find(|action| action.name() == text)
            .ok_or_else(|| {
                Rejection::InvalidRequest(format!(
                    "unknown `action` {text:?}: it is one of push, disconnect, subscribe, unsubscribe"
                ))
            })
    }
}

/// A valid request, ready to fan out.
#[derive(Debug, Clone)]
pub struct Request {
    /// The body's fields as read. Re-queues and shards are serialized from these: a field
    /// the pusher does not interpret is carried on unchanged.
    pub fields: Fields,
    /// Whom it is for, read from `fields` once (checked and deduplicated).
    pub targets: Targets,
    /// How many times this request has been narrowed and re-queued (0 for a back end's own).
    pub generation: u32,
    /// The part of a broadcast this message covers (the `sumu_shard` attribute); `None` for a
    /// back end's own request, which may be split here (docs/pusher.md, "Large fan-outs").
    pub shard: Option<Shard>,
    /// What every target of a request to users, connections or everyone receives; `None` for
    /// a publication, whose frames are its [`Planned`] envelopes.
    pub frame: Option<Frame>,
    /// A client's emit: when it was sent (epoch ms, the gateway's `timestamp`). Subscriptions
    /// made later do not get it (crate::targets).
    pub subscribed_before: Option<i64>,
    /// What to do with the targets (`fields.action`, read once).
    pub action: Action,
    /// The pattern of a `subscribe` or `unsubscribe` (validated; `None` for other actions).
    pub channel: Option<Pattern>,
}

/// The frame of a request to users, connections or everyone: `{"type":"message","id":…,
/// "data":…}`, or the request's `data` itself when it is a frame of sumu's own already (a
/// narrowed re-queue, an error frame from the gateway: the `sumu_frame` attribute).
#[derive(Debug, Clone)]
pub struct Frame {
    /// The message's id: the same in every generation, shard and redelivery.
    pub id: String,
    pub bytes: Box<RawValue>,
}

/// Whom a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Neither `users` nor `connections` nor `channels` present: every live connection.
    Broadcast,
    /// The connections of these users plus these connection ids (duplicates removed).
    Selected {
        users: Vec<String>,
        connections: Vec<String>,
    },
    /// `channels` (or a client's emit): one publication per channel (duplicates removed), to
    /// the connections subscribed to a matching pattern.
    Channels(Vec<Planned>),
}

/// One publication: a channel, its id and the envelope every subscriber gets (these bytes).
#[derive(Debug, Clone)]
pub struct Planned {
    pub channel: Channel,
    pub id: String,
    pub envelope: Box<RawValue>,
    /// The emitting client's principal (the envelope's `from`).
    pub from: Option<String>,
    /// The channel's history, when its namespace keeps one and this publication is not in it
    /// yet: the pusher gives it an offset and stores it before anything is posted, and
    /// [`Planned::kept`] rebuilds the envelope with them.
    pub history: Option<HistoryPolicy>,
    /// Its offset and epoch, once it has them.
    pub kept: Option<(u64, String)>,
}

impl PartialEq for Planned {
    fn eq(&self, other: &Planned) -> bool {
        self.channel == other.channel
            && self.id == other.id
            && self.envelope.get() == other.envelope.get()
            && self.kept == other.kept
    }
}

impl Planned {
    /// The publication once the channel's history gave it `offset` in `epoch`: the envelope
    /// carries them, and it is not stored again.
    pub fn kept(&self, data: &RawValue, offset: u64, epoch: &str) -> Planned {
        Planned {
            envelope: envelope(
                &self.channel,
                &self.id,
                data,
                self.from.as_deref(),
                Some((offset, epoch)),
            ),
            history: None,
            kept: Some((offset, epoch.to_string())),
            ..self.clone()
        }
    }
}

impl Eq for Planned {}

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

/// How a message's `data` reaches its targets (the `sumu_frame` attribute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DataIs {
    /// A back end's data: enveloped in a `message` (or a `publication`).
    #[default]
    Application,
    /// A whole frame of sumu's own, delivered as it is: only on a request to `users` or
    /// `connections` (never a broadcast or a publication).
    Frame,
}

/// Parses a back end's request body with its message's attributes: `shard` is the
/// `sumu_shard` attribute, `data_is` the `sumu_frame` one, and `message_id` is the base of a
/// message's or publication's id when the request sets no `publication_id` (SQS keeps it
/// across redeliveries).
///
/// An explicitly empty `users` or `connections` list targets nobody: only a request naming
/// neither key is a broadcast, so a back end whose computed audience is empty never reaches
/// every connection by accident.
///
/// `data` is kept as the bytes the back end sent (a `RawValue`): it is never parsed into a
/// `Value` and serialized again, so no key is reordered, no number rewritten and no escape or
/// space changed, whatever serde_json's features in the build (docs/pusher.md, "Data travels
/// byte for byte").
///
/// `action` (docs/pusher.md, "Server-side control"): `push` (the default) needs `data`;
/// `disconnect`, `subscribe` and `unsubscribe` need `users` and/or `connections`, take `data`
/// optionally, and never `channels` or a frame; `channel` belongs to `subscribe` and
/// `unsubscribe` only, and they need it.
pub fn parse_message(
    body: &str,
    generation: u32,
    shard: Option<&str>,
    data_is: DataIs,
    message_id: &str,
    namespaces: &Namespaces,
) -> Result<Request, Rejection> {
    let fields = read_fields(body)?;
    let action = Action::parse(fields.action.as_deref())?;
    let pattern = if action == Action::Push {
        if fields.channel.is_some() {
            return Err(Rejection::InvalidRequest(
                "`channel` is only for the actions `subscribe` and `unsubscribe` (to publish, name `channels`)"
                    .into(),
            ));
        }
        None
    } else {
        check_control(&fields, action, data_is)?
    };
    // `null` reads as absent (serde's `Option`): both are a request without data.
    if action == Action::Push && fields.data.is_none() {
        return Err(Rejection::MissingData);
    }
    let no_ids = Vec::new();
    for (field, ids) in [
        ("users", fields.users.as_ref().unwrap_or(&no_ids)),
        (
            "connections",
            fields.connections.as_ref().unwrap_or(&no_ids),
        ),
        ("exclude_users", &fields.exclude_users),
        ("exclude_connections", &fields.exclude_connections),
    ] {
        if ids.iter().any(|id| id.is_empty()) {
            return Err(Rejection::InvalidRequest(format!(
                "`{field}` contains an empty id"
            )));
        }
    }
    if let Some(data) = &fields.data {
        let bytes = data.get().len();
        if bytes > MAX_NOTIFICATION_DATA_BYTES {
            return Err(Rejection::DataTooLarge { bytes });
        }
    }
    let base_id = match &fields.publication_id {
        Some(id) => {
            if id.is_empty() || id.len() > MAX_PUBLICATION_ID_BYTES {
                return Err(Rejection::InvalidRequest(format!(
                    "`publication_id` must have 1 to {MAX_PUBLICATION_ID_BYTES} bytes"
                )));
            }
            id.clone()
        }
        None => base_id(message_id),
    };
    if action != Action::Push {
        return control_request(fields, action, pattern, base_id, generation, shard);
    }
    let Some(data) = &fields.data else {
        return Err(Rejection::MissingData);
    };
    if data_is == DataIs::Frame && fields.is_broadcast() {
        return Err(Rejection::InvalidRequest(format!(
            "a request whose data is a frame (`{}`) must name `users`, `connections` or one channel",
            sumu_wire::notification_attributes::FRAME
        )));
    }
    let mut frame = None;
    let targets = if let Some(channels) = &fields.channels {
        if fields.users.is_some() || fields.connections.is_some() {
            return Err(Rejection::InvalidRequest(
                "`channels` cannot be combined with `users` or `connections`".into(),
            ));
        }
        let channels = channels
            .iter()
            .map(|text| {
                Channel::parse(text).map_err(|error| {
                    Rejection::InvalidRequest(format!("`channels`: {text:?}: {error}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        match data_is {
            DataIs::Application => Targets::Channels(plan_publications(
                &base_id,
                dedup(channels),
                data,
                None,
                namespaces,
            )?),
            // A publication deferred after it was kept in history: its envelope as it is.
            DataIs::Frame => match <[Channel; 1]>::try_from(channels) {
                Ok([channel]) => Targets::Channels(vec![Planned {
                    channel,
                    id: base_id,
                    envelope: data.clone(),
                    from: None,
                    history: None,
                    kept: None,
                }]),
                Err(_) => {
                    return Err(Rejection::InvalidRequest(
                        "a publication whose data is its frame names exactly one channel".into(),
                    ))
                }
            },
        }
    } else {
        frame = Some(match data_is {
            DataIs::Frame => Frame {
                id: base_id,
                bytes: data.clone(),
            },
            DataIs::Application => message_frame(base_id, data)?,
        });
        if fields.is_broadcast() {
            Targets::Broadcast
        } else {
            selected(&fields)
        }
    };
    let shard = match shard {
        None => None,
        Some(_) if targets != Targets::Broadcast => {
            return Err(Rejection::InvalidRequest(format!(
                "`{SHARD_ATTRIBUTE}` on a request that is not a broadcast"
            )))
        }
        Some(attribute) => Some(Shard::parse(attribute)?),
    };
    Ok(Request {
        fields,
        targets,
        generation,
        shard,
        frame,
        subscribed_before: None,
        action: Action::Push,
        channel: None,
    })
}

/// Reads the body as the wire type: `data` as the bytes sent, every other field checked.
fn read_fields(body: &str) -> Result<Fields, Rejection> {
    if let Some(found) = not_an_object(body) {
        return Err(Rejection::UnparseableBody(format!("found {found}")));
    }
    let classify = |e: serde_json::Error| match e.classify() {
        Category::Data => Rejection::InvalidRequest(e.to_string()),
        Category::Syntax | Category::Eof | Category::Io => {
            Rejection::UnparseableBody(e.to_string())
        }
    };
    serde_json::from_str(body).map_err(classify)
}

/// The combinations a `disconnect`, `subscribe` or `unsubscribe` may not have; the pattern of a
/// `subscribe` or `unsubscribe`.
fn check_control(
    fields: &Fields,
    action: Action,
    data_is: DataIs,
) -> Result<Option<Pattern>, Rejection> {
    let name = action.name();
    if fields.channels.is_some() {
        return Err(Rejection::InvalidRequest(format!(
            "`channels` is only for the action `push`, not `{name}`"
        )));
    }
    if data_is == DataIs::Frame {
        return Err(Rejection::InvalidRequest(format!(
            "a request whose data is a frame (`{}`) can only be pushed, not `{name}`",
            sumu_wire::notification_attributes::FRAME
        )));
    }
    if fields.users.is_none() && fields.connections.is_none() {
        return Err(Rejection::InvalidRequest(format!(
            "the action `{name}` needs `users` and/or `connections`"
        )));
    }
    match (action, &fields.channel) {
        (Action::Subscribe | Action::Unsubscribe, None) => Err(Rejection::InvalidRequest(format!(
            "the action `{name}` needs `channel`"
        ))),
        (Action::Subscribe | Action::Unsubscribe, Some(text)) => Pattern::parse(text)
            .map(Some)
            .map_err(|error| Rejection::InvalidRequest(format!("`channel`: {text:?}: {error}"))),
        (_, Some(_)) => Err(Rejection::InvalidRequest(format!(
            "`channel` is only for the actions `subscribe` and `unsubscribe`, not `{name}`"
        ))),
        (_, None) => Ok(None),
    }
}

/// A checked `disconnect`, `subscribe` or `unsubscribe`: its targets, its pattern, and the
/// message frame of its optional `data`.
fn control_request(
    fields: Fields,
    action: Action,
    channel: Option<Pattern>,
    base_id: String,
    generation: u32,
    shard: Option<&str>,
) -> Result<Request, Rejection> {
    if shard.is_some() {
        return Err(Rejection::InvalidRequest(format!(
            "`{SHARD_ATTRIBUTE}` on a request that is not a broadcast"
        )));
    }
    let frame = match &fields.data {
        Some(data) => Some(message_frame(base_id, data)?),
        None => None,
    };
    Ok(Request {
        targets: selected(&fields),
        fields,
        generation,
        shard: None,
        frame,
        subscribed_before: None,
        action,
        channel,
    })
}

/// The users and connections a request names, each once.
fn selected(fields: &Fields) -> Targets {
    Targets::Selected {
        users: dedup(fields.users.clone().unwrap_or_default()),
        connections: dedup(fields.connections.clone().unwrap_or_default()),
    }
}

/// `{"type":"message","id":…,"data":…}` with `data` as the bytes it was sent, serialized as
/// a struct (keys in this order in every build). One that does not fit in a WebSocket
/// message is rejected.
fn message_frame(id: String, data: &RawValue) -> Result<Frame, Rejection> {
    // A string and a raw value that was valid JSON: serializing cannot fail.
    let bytes =
        serde_json::value::to_raw_value(&Message::new(id.clone(), data)).unwrap_or_default();
    let size = bytes.get().len();
    if size > MAX_NOTIFICATION_DATA_BYTES {
        return Err(Rejection::EnvelopeTooLarge { bytes: size });
    }
    Ok(Frame { id, bytes })
}

/// The base of a publication's id: the message id. Lambda always sets one; without it, an id
/// unique to this delivery still lets a client tell publications apart.
pub fn base_id(message_id: &str) -> String {
    if message_id.is_empty() {
        format!("{:032x}", rand::random::<u128>())
    } else {
        message_id.to_string()
    }
}

/// One publication per channel, each with its id and envelope (`from` for a client's emit)
/// and its channel's history policy. A publication whose envelope does not fit in a WebSocket
/// message is rejected; on a channel that keeps history, one that would not fit in the frame
/// that replays it ([`MAX_KEPT_PUBLICATION_BYTES`], counted with room for its offset and
/// epoch).
pub fn plan_publications(
    base_id: &str,
    channels: Vec<Channel>,
    data: &RawValue,
    from: Option<&str>,
    namespaces: &Namespaces,
) -> Result<Vec<Planned>, Rejection> {
    let ids = publication_ids(base_id, &channels);
    channels
        .into_iter()
        .zip(ids)
        .map(|(channel, id)| {
            let history = namespaces.history(&channel);
            let envelope = envelope(&channel, &id, data, from, None);
            let bytes = envelope.get().len();
            let limit = match history {
                Some(_) => MAX_KEPT_PUBLICATION_BYTES - OFFSET_AND_EPOCH_BYTES,
                None => MAX_NOTIFICATION_DATA_BYTES,
            };
            if bytes > limit {
                return Err(Rejection::EnvelopeTooLarge { bytes });
            }
            Ok(Planned {
                channel,
                id,
                envelope,
                from: from.map(str::to_string),
                history,
                kept: None,
            })
        })
        .collect()
}

/// The most bytes the offset and epoch add to an envelope: the keys and punctuation of
/// `,"offset":N,"epoch":"E"` (21), N up to 20 digits, E the history store's 16 characters.
const OFFSET_AND_EPOCH_BYTES: usize = 21 + 20 + 16;

/// The id of each channel's publication: the base id for a one-channel request,
/// `<base id>#<channel>` per channel otherwise (so each of them is unique and stable).
pub fn publication_ids(base_id: &str, channels: &[Channel]) -> Vec<String> {
    match channels {
        [_] => vec![base_id.to_string()],
        _ => channels
            .iter()
            .map(|channel| format!("{base_id}#{channel}"))
            .collect(),
    }
}

/// `{"type":"publication","channel":…,"id":…,"offset":…,"epoch":…,"data":…,"from":…}`
/// (`offset`/`epoch` only on a channel that keeps history, `from` only for an emit), with
/// `data` as the bytes it was sent. The envelope is serialized as a struct, never
/// through a `Value`, so its keys keep this order whatever serde_json's features (a `Value`
/// map is sorted without `preserve_order` and in insertion order with it). A narrowed
/// re-queue carries these bytes as its `data`, so later generations deliver them unchanged.
pub fn envelope(
    channel: &Channel,
    id: &str,
    data: &RawValue,
    from: Option<&str>,
    kept: Option<(u64, &str)>,
) -> Box<RawValue> {
    let publication = Publication {
        kind: PublicationType::Publication,
        channel: channel.to_string(),
        id: id.to_string(),
        offset: kept.map(|(offset, _)| offset),
        epoch: kept.map(|(_, epoch)| epoch.to_string()),
        data,
        from: from.map(str::to_string),
    };
    // Strings and a raw value that was valid JSON: serializing cannot fail.
    serde_json::value::to_raw_value(&publication).unwrap_or_default()
}

impl Request {
    /// The bytes every target of a request to users, connections or everyone gets: its
    /// [`Frame`] (empty for a publication, whose targets get their envelope).
    pub fn frame(&self) -> &[u8] {
        self.frame
            .as_ref()
            .map_or(b"", |frame| frame.bytes.get().as_bytes())
    }

    /// The request that takes over `connections` (and nobody else) in the next generation:
    /// every field kept but the audience, which is only those connections (the exclusions
    /// were applied already). Its `data` is the frame the others got (the publication's
    /// envelope, or the message frame) and its `publication_id` that frame's id, and it
    /// travels with the `sumu_frame` attribute (crate::outbox), so every generation delivers
    /// the same bytes with the same id.
    ///
    /// Whatever the request's action, the narrowed one only pushes: the remainder of a
    /// `subscribe` or `unsubscribe` are connections whose subscription changed already and
    /// who did not get the data yet (a `disconnect`'s remainder is
    /// [`Request::narrowed_disconnect`]).
    pub fn narrowed(&self, publication: Option<&Planned>, connections: Vec<String>) -> Fields {
        let mut fields = self.fields.clone();
        fields.action = None;
        fields.channel = None;
        fields.users = None;
        fields.channels = None;
        fields.connections = Some(connections);
        fields.exclude_users = Vec::new();
        fields.exclude_connections = Vec::new();
        let (id, frame) = match (publication, &self.frame) {
            (Some(planned), _) => (&planned.id, &planned.envelope),
            (None, Some(frame)) => (&frame.id, &frame.bytes),
            // A publication always names its planned part: keep the fields as they are.
            (None, None) => return fields,
        };
        fields.publication_id = Some(id.clone());
        fields.data = Some(frame.clone());
        fields
    }

    /// The `disconnect` that takes over `connections` in the next generation: only those
    /// connections (the exclusions were applied already), with the back end's `data` and the
    /// frame's id as `publication_id` when they have not received it yet (`with_data`), so the
    /// next generation builds the same frame, byte for byte with the same id; without `data`
    /// when they did and only their close failed, so nobody gets the data twice. Not a frame
    /// (`sumu_frame`): a disconnect is read like a back end's own.
    pub fn narrowed_disconnect(&self, connections: Vec<String>, with_data: bool) -> Fields {
        let mut fields = self.fields.clone();
        fields.action = Some(Action::Disconnect.name().to_owned());
        fields.channel = None;
        fields.users = None;
        fields.channels = None;
        fields.connections = Some(connections);
        fields.exclude_users = Vec::new();
        fields.exclude_connections = Vec::new();
        match (&self.frame, with_data) {
            (Some(frame), true) => fields.publication_id = Some(frame.id.clone()),
            _ => {
                fields.publication_id = None;
                fields.data = None;
            }
        }
        fields
    }

    /// The request's action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The body of every shard of this broadcast: its fields as read, with the message's id
    /// as `publication_id` so every shard envelopes the data with the same id (the shard
    /// itself is the `sumu_shard` attribute).
    pub fn shard_body(&self) -> String {
        let mut fields = self.fields.clone();
        if let Some(frame) = &self.frame {
            fields.publication_id = Some(frame.id.clone());
        }
        body(&fields)
    }
}

/// A request body, serialized from its fields (`data` as its bytes).
pub fn body(fields: &Fields) -> String {
    // Strings, lists and a raw value that was valid JSON: serializing cannot fail.
    serde_json::to_string(fields).unwrap_or_default()
}

fn dedup<T: Clone + Eq + std::hash::Hash>(ids: Vec<T>) -> Vec<T> {
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

    /// `{"type":"message","id":"m1","data":}` around the data (the tests' message id).
    const MESSAGE_ENVELOPE_BYTES: usize = r#"{"type":"message","id":"m1","data":}"#.len();

    /// The request's `data` as text.
    fn data_of(request: &Request) -> &str {
        request.fields.data.as_deref().map_or("null", RawValue::get)
    }

    /// A back end's body without a shard, from the message `m1`.
    fn parse(body: &str, generation: u32) -> Result<Request, Rejection> {
        parse_message(
            body,
            generation,
            None,
            DataIs::Application,
            "m1",
            &Namespaces::default(),
        )
    }

    /// A narrowed re-queue as the outbox sends it: its data is the frame already.
    fn parse_requeued(body: &str, generation: u32) -> Result<Request, Rejection> {
        parse_message(
            body,
            generation,
            None,
            DataIs::Frame,
            "m1",
            &Namespaces::default(),
        )
    }

    fn channels(targets: &Targets) -> Vec<Channel> {
        match targets {
            Targets::Channels(planned) => planned.iter().map(|p| p.channel.clone()).collect(),
            other => panic!("not a publication: {other:?}"),
        }
    }

    fn envelopes(targets: &Targets) -> Vec<&str> {
        match targets {
            Targets::Channels(planned) => planned.iter().map(|p| p.envelope.get()).collect(),
            other => panic!("not a publication: {other:?}"),
        }
    }

    #[test]
    fn a_request_without_targets_is_a_broadcast_and_data_is_enveloped_once() {
        let job = parse_message(
            r#"{"exclude_users":["u3"],"data":{"a":[1,2]}}"#,
            0,
            None,
            DataIs::Application,
            "m1",
            &Namespaces::default(),
        )
        .unwrap();
        assert_eq!(job.targets, Targets::Broadcast);
        assert_eq!(job.fields.exclude_users, vec!["u3"]);
        assert_eq!(
            job.frame(),
            br#"{"type":"message","id":"m1","data":{"a":[1,2]}}"#
        );
    }

    #[test]
    fn data_that_looks_like_a_frame_of_sumus_own_is_still_only_data() {
        for data in [
            r#"{"type":"error","channel":"room/1"}"#,
            r#"{"type":"publication","channel":"room/1","id":"x","data":1}"#,
            r#"{"type":"subscribed","channel":"room/1"}"#,
        ] {
            let job = parse_message(
                &format!(r#"{{"users":["u1"],"data":{data}}}"#),
                0,
                None,
                DataIs::Application,
                "m1",
                &Namespaces::default(),
            )
            .unwrap();
            assert_eq!(
                job.frame(),
                format!(r#"{{"type":"message","id":"m1","data":{data}}}"#).as_bytes()
            );
        }
    }

    #[test]
    fn a_frame_request_is_delivered_as_it_is_to_users_connections_or_one_channel() {
        let frame = r#"{"type":"error","error":"invalid_message","message":"m"}"#;
        let job =
            parse_requeued(&format!(r#"{{"connections":["c1"],"data":{frame}}}"#), 0).unwrap();
        assert_eq!(job.frame(), frame.as_bytes());
        // A publication deferred after it was kept: its envelope as it is, its id kept, not
        // to be kept again.
        let envelope = r#"{"type":"publication","channel":"room/1","id":"p1","offset":7,"epoch":"e","data":1}"#;
        let job = parse_requeued(
            &format!(r#"{{"channels":["room/1"],"publication_id":"p1","data":{envelope}}}"#),
            1,
        )
        .unwrap();
        let Targets::Channels(planned) = &job.targets else {
            panic!("not a publication")
        };
        assert_eq!(planned[0].envelope.get(), envelope);
        assert_eq!((planned[0].id.as_str(), planned[0].history), ("p1", None));
        for body in [
            format!(r#"{{"data":{frame}}}"#),
            format!(r#"{{"channels":["room/1","room/2"],"data":{frame}}}"#),
        ] {
            let rejection = parse_requeued(&body, 1).unwrap_err();
            assert_eq!(rejection.reason(), "invalid_request", "{body}");
        }
    }

    #[test]
    fn data_keeps_the_bytes_the_back_end_sent_through_every_body_the_pusher_writes() {
        let data = r#"{ "z" : 1, "a":2, "n":1.0, "big":12345678901234567890, "s":"caf\u00e9" }"#;
        let job = parse(&format!(r#"{{"users":["u1"],"data":{data}}}"#), 0).unwrap();
        assert_eq!(data_of(&job), data);
        let narrowed = parse_requeued(&body(&job.narrowed(None, vec!["c1".into()])), 1).unwrap();
        assert_eq!(narrowed.frame(), job.frame());
        let broadcast = parse(&format!(r#"{{"exclude_users":["u2"],"data":{data}}}"#), 0).unwrap();
        let shard = parse(&broadcast.shard_body(), 1).unwrap();
        assert_eq!(shard.frame(), broadcast.frame());
        assert_eq!(data_of(&shard), data);
        // The size checked is the size delivered: spaces count.
        let spaced = format!(
            r#"{{"data":"{}"     }}"#,
            "x".repeat(MAX_NOTIFICATION_DATA_BYTES - 2 - MESSAGE_ENVELOPE_BYTES)
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
        assert_eq!(data_of(&job), r#""hi""#);
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
    fn data_over_128_kb_or_a_message_over_128_kb_is_rejected() {
        let too_big = format!(r#"{{"data":"{}"}}"#, "x".repeat(200 * 1024));
        assert_eq!(
            parse(&too_big, 0).unwrap_err(),
            Rejection::DataTooLarge {
                bytes: 200 * 1024 + 2
            }
        );
        // The message frame must fit in one WebSocket message: its envelope counts.
        let just_fits = format!(
            r#"{{"data":"{}"}}"#,
            "x".repeat(MAX_NOTIFICATION_DATA_BYTES - 2 - MESSAGE_ENVELOPE_BYTES)
        );
        assert_eq!(
            parse(&just_fits, 0).unwrap().frame().len(),
            MAX_NOTIFICATION_DATA_BYTES
        );
        let one_more = format!(
            r#"{{"data":"{}"}}"#,
            "x".repeat(MAX_NOTIFICATION_DATA_BYTES - 1 - MESSAGE_ENVELOPE_BYTES)
        );
        assert_eq!(parse(&one_more, 0).unwrap_err().reason(), "data_too_large");
    }

    #[test]
    fn a_shard_travels_as_an_attribute_of_a_broadcast_body() {
        let job = parse(r#"{"exclude_users":["u3"],"data":{"k":1}}"#, 0).unwrap();
        let body = job.shard_body();
        let shard = Shard {
            segment: 3,
            segments: 40,
            after: Some(ShardKey {
                user_id: "u\"1".into(),
                connection_id: "c=".into(),
            }),
        };
        let again = parse_message(
            &body,
            0,
            Some(&shard.attribute()),
            DataIs::Application,
            "m2",
            &Namespaces::default(),
        )
        .unwrap();
        assert_eq!(again.shard, Some(shard));
        assert_eq!(again.targets, Targets::Broadcast);
        assert_eq!(again.fields.exclude_users, job.fields.exclude_users);
        // Every shard envelopes the data with the original message's id.
        assert_eq!(again.frame(), job.frame());
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
            channels(&job.targets),
            vec![
                Channel::parse("room/42").unwrap(),
                Channel::parse("lobby").unwrap()
            ]
        );
        assert_eq!(job.fields.exclude_connections, vec!["c1"]);
        assert_eq!(job.fields.publication_id.as_deref(), Some("p-1"));
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
            let rejection = parse_message(
                body,
                0,
                Some(attribute),
                DataIs::Application,
                "m1",
                &Namespaces::default(),
            )
            .unwrap_err();
            assert_eq!(rejection.reason(), "invalid_request", "{body} {attribute}");
        }
    }

    #[test]
    fn a_narrowed_publication_keeps_its_id_and_its_envelope_bytes() {
        let job = parse(
            r#"{"channels":["a"],"publication_id":"m\"1","data":{"z": 1, "a": [2]}}"#,
            1,
        )
        .unwrap();
        let Targets::Channels(planned) = &job.targets else {
            panic!("not a publication")
        };
        let envelope = planned[0].envelope.get().as_bytes().to_vec();
        let body = body(&job.narrowed(Some(&planned[0]), vec!["c1".into()]));
        let again = parse_requeued(&body, 2).unwrap();
        assert_eq!(again.fields.publication_id.as_deref(), Some("m\"1"));
        assert_eq!(again.frame(), envelope);
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
        let body = body(&job.narrowed(None, vec!["c1".into(), "c\"2".into()]));
        let again = parse_requeued(&body, 1).unwrap();
        assert_eq!(
            again.targets,
            Targets::Selected {
                users: vec![],
                connections: vec!["c1".into(), "c\"2".into()]
            }
        );
        assert_eq!(again.frame(), job.frame());
        assert_eq!(again.frame.unwrap().id, job.frame.unwrap().id);
    }

    #[test]
    fn one_channel_keeps_the_base_id_and_several_get_one_each() {
        let channels: Vec<Channel> = ["room/1", "room/2"]
            .iter()
            .map(|c| Channel::parse(c).unwrap())
            .collect();
        assert_eq!(publication_ids("m1", &channels[..1]), ["m1"]);
        assert_eq!(publication_ids("m1", &channels), ["m1#room/1", "m1#room/2"]);
    }

    #[test]
    fn a_back_end_publication_is_planned_per_channel_without_from() {
        let publish = parse_message(
            r#"{"channels":["room/1","room/2","room/1"],"exclude_users":["u3"],"exclude_connections":["c9"],"data":{"k":1}}"#,
            0,
            None,
            DataIs::Application,
            "m1",
            &Namespaces::default(),
        )
        .unwrap();
        assert_eq!(publish.fields.exclude_users, ["u3"]);
        assert_eq!(publish.fields.exclude_connections, ["c9"]);
        assert_eq!(
            envelopes(&publish.targets),
            [
                r#"{"type":"publication","channel":"room/1","id":"m1#room/1","data":{"k":1}}"#,
                r#"{"type":"publication","channel":"room/2","id":"m1#room/2","data":{"k":1}}"#,
            ]
        );
        // A back end's own id wins over the message id.
        let publish = parse_message(
            r#"{"channels":["room/1"],"publication_id":"order-7","data":1}"#,
            0,
            None,
            DataIs::Application,
            "m1",
            &Namespaces::default(),
        )
        .unwrap();
        let Targets::Channels(planned) = &publish.targets else {
            panic!("not a publication")
        };
        assert_eq!(planned[0].id, "order-7");
    }

    #[test]
    fn a_publication_whose_envelope_does_not_fit_is_rejected_as_too_large() {
        let body = serde_json::json!({"channels":["room/1"],
            "data":"x".repeat(MAX_NOTIFICATION_DATA_BYTES - 2)})
        .to_string();
        let rejection = parse(&body, 0).unwrap_err();
        assert_eq!(rejection.reason(), "data_too_large");
    }

    #[test]
    fn every_action_parses_with_its_targets_pattern_and_optional_data() {
        let push = parse(r#"{"action":"push","users":["u1"],"data":1}"#, 0).unwrap();
        assert_eq!(push.action(), Action::Push);
        let push = parse(r#"{"action":null,"users":["u1"],"data":1}"#, 0).unwrap();
        assert_eq!(push.action(), Action::Push);
        // A push's body has no `action`: today's bodies are unchanged.
        assert_eq!(body(&push.fields), r#"{"users":["u1"],"data":1}"#);

        let disconnect = parse(
            r#"{"action":"disconnect","users":["u1","u1"],"connections":["c9"],"exclude_connections":["c2"]}"#,
            0,
        )
        .unwrap();
        assert_eq!(disconnect.action(), Action::Disconnect);
        assert_eq!(
            disconnect.targets,
            Targets::Selected {
                users: vec!["u1".into()],
                connections: vec!["c9".into()]
            }
        );
        assert!(disconnect.frame.is_none());
        assert_eq!(disconnect.frame(), b"");
        let last_frame = parse(
            r#"{"action":"disconnect","connections":["c1"],"data":{"bye": true}}"#,
            0,
        )
        .unwrap();
        assert_eq!(
            last_frame.frame(),
            br#"{"type":"message","id":"m1","data":{"bye": true}}"#
        );

        for (action, expected) in [
            ("subscribe", Action::Subscribe),
            ("unsubscribe", Action::Unsubscribe),
        ] {
            for channel in ["room/42", "room/*", "*"] {
                let request = parse(
                    &format!(r#"{{"action":"{action}","channel":"{channel}","users":["u1"]}}"#),
                    0,
                )
                .unwrap();
                assert_eq!(request.action(), expected);
                assert_eq!(request.channel.as_ref().unwrap().to_string(), channel);
                assert!(request.frame.is_none());
            }
            let with_data = parse(
                &format!(
                    r#"{{"action":"{action}","channel":"room/1","connections":["c1"],"data":[1]}}"#
                ),
                0,
            )
            .unwrap();
            assert_eq!(
                with_data.frame(),
                br#"{"type":"message","id":"m1","data":[1]}"#
            );
            // Serialized back with its action and channel.
            assert_eq!(
                body(&with_data.fields),
                format!(
                    r#"{{"action":"{action}","channel":"room/1","connections":["c1"],"data":[1]}}"#
                )
            );
        }
        // An explicitly empty audience is nobody, as for a push.
        let nobody = parse(r#"{"action":"disconnect","users":[]}"#, 0).unwrap();
        assert_eq!(
            nobody.targets,
            Targets::Selected {
                users: vec![],
                connections: vec![]
            }
        );
    }

    #[test]
    fn every_invalid_combination_is_rejected_with_a_message_saying_what_is_wrong() {
        let frame = r#"{"type":"message","id":"x","data":1}"#;
        for (body, data_is, message) in [
            (
                r#"{"action":"kick","users":["u1"]}"#,
                DataIs::Application,
                r#"the request is malformed: unknown `action` "kick": it is one of push, disconnect, subscribe, unsubscribe"#,
            ),
            (
                r#"{"action":"","users":["u1"],"data":1}"#,
                DataIs::Application,
                r#"the request is malformed: unknown `action` "": it is one of push, disconnect, subscribe, unsubscribe"#,
            ),
            (
                r#"{"action":"Disconnect","users":["u1"]}"#,
                DataIs::Application,
                r#"the request is malformed: unknown `action` "Disconnect": it is one of push, disconnect, subscribe, unsubscribe"#,
            ),
            (
                r#"{"users":["u1"],"channel":"room/1","data":1}"#,
                DataIs::Application,
                "the request is malformed: `channel` is only for the actions `subscribe` and `unsubscribe` (to publish, name `channels`)",
            ),
            (
                r#"{"action":"disconnect","users":["u1"],"channel":"room/1"}"#,
                DataIs::Application,
                "the request is malformed: `channel` is only for the actions `subscribe` and `unsubscribe`, not `disconnect`",
            ),
            (
                r#"{"action":"subscribe","users":["u1"]}"#,
                DataIs::Application,
                "the request is malformed: the action `subscribe` needs `channel`",
            ),
            (
                r#"{"action":"unsubscribe","connections":["c1"],"channel":null}"#,
                DataIs::Application,
                "the request is malformed: the action `unsubscribe` needs `channel`",
            ),
            (
                r#"{"action":"subscribe","users":["u1"],"channel":"room//1"}"#,
                DataIs::Application,
                &format!(
                    "the request is malformed: `channel`: \"room//1\": {}",
                    Pattern::parse("room//1").unwrap_err()
                ),
            ),
            (
                r#"{"action":"unsubscribe","users":["u1"],"channel":"room/*/x"}"#,
                DataIs::Application,
                &format!(
                    "the request is malformed: `channel`: \"room/*/x\": {}",
                    Pattern::parse("room/*/x").unwrap_err()
                ),
            ),
            (
                r#"{"action":"disconnect","channels":["room/1"]}"#,
                DataIs::Application,
                "the request is malformed: `channels` is only for the action `push`, not `disconnect`",
            ),
            (
                r#"{"action":"subscribe","channel":"room/1","channels":["room/1"],"users":["u1"]}"#,
                DataIs::Application,
                "the request is malformed: `channels` is only for the action `push`, not `subscribe`",
            ),
            (
                r#"{"action":"disconnect","data":1}"#,
                DataIs::Application,
                "the request is malformed: the action `disconnect` needs `users` and/or `connections`",
            ),
            (
                r#"{"action":"subscribe","channel":"room/1","exclude_users":["u1"]}"#,
                DataIs::Application,
                "the request is malformed: the action `subscribe` needs `users` and/or `connections`",
            ),
            (
                r#"{"action":"unsubscribe","channel":"room/1","users":null}"#,
                DataIs::Application,
                "the request is malformed: the action `unsubscribe` needs `users` and/or `connections`",
            ),
            (
                &format!(r#"{{"action":"disconnect","connections":["c1"],"data":{frame}}}"#),
                DataIs::Frame,
                "the request is malformed: a request whose data is a frame (`sumu_frame`) can only be pushed, not `disconnect`",
            ),
            (
                &format!(
                    r#"{{"action":"subscribe","channel":"a","connections":["c1"],"data":{frame}}}"#
                ),
                DataIs::Frame,
                "the request is malformed: a request whose data is a frame (`sumu_frame`) can only be pushed, not `subscribe`",
            ),
            (
                r#"{"action":"disconnect","users":[""]}"#,
                DataIs::Application,
                "the request is malformed: `users` contains an empty id",
            ),
        ] {
            let rejection = parse_message(
                body,
                0,
                None,
                data_is,
                "m1",
                &Namespaces::default(),
            )
            .unwrap_err();
            assert_eq!(rejection.reason(), "invalid_request", "{body}");
            assert_eq!(rejection.to_string(), message, "{body}");
        }
        // A push still needs its data (the reason it always had).
        for body in [
            r#"{"action":"push","users":["u1"]}"#,
            r#"{"users":["u1"],"data":null}"#,
        ] {
            assert_eq!(
                parse(body, 0).unwrap_err(),
                Rejection::MissingData,
                "{body}"
            );
        }
        // `action` must be a string.
        let rejection = parse(r#"{"action":1,"users":["u1"],"data":1}"#, 0).unwrap_err();
        assert_eq!(rejection.reason(), "invalid_request");
        assert_eq!(
            rejection.to_string(),
            "the request is malformed: invalid type: integer `1`, expected a string at line 1 column 11"
        );
        // A shard is a broadcast's, never an action's.
        let rejection = parse_message(
            r#"{"action":"disconnect","users":["u1"]}"#,
            0,
            Some(r#"{"segment":0,"segments":2}"#),
            DataIs::Application,
            "m1",
            &Namespaces::default(),
        )
        .unwrap_err();
        assert_eq!(
            rejection.to_string(),
            "the request is malformed: `sumu_shard` on a request that is not a broadcast"
        );
        // Data over the limit, with an action as without.
        let too_big = format!(
            r#"{{"action":"disconnect","users":["u1"],"data":"{}"}}"#,
            "x".repeat(MAX_NOTIFICATION_DATA_BYTES)
        );
        assert_eq!(parse(&too_big, 0).unwrap_err().reason(), "data_too_large");
    }

    #[test]
    fn a_narrowed_disconnect_keeps_its_action_and_the_data_only_for_those_who_lack_it() {
        let request = parse(
            r#"{"action":"disconnect","users":["u1"],"exclude_users":["u2"],"data":{ "bye" : 1 }}"#,
            0,
        )
        .unwrap();
        let with_data = body(&request.narrowed_disconnect(vec!["c1".into()], true));
        assert_eq!(
            with_data,
            r#"{"action":"disconnect","connections":["c1"],"publication_id":"m1","data":{ "bye" : 1 }}"#
        );
        // Read back as a back end's own (not a frame): the same frame, byte for byte.
        let again = parse_message(
            &with_data,
            1,
            None,
            DataIs::Application,
            "m-other",
            &Namespaces::default(),
        )
        .unwrap();
        assert_eq!(again.action(), Action::Disconnect);
        assert_eq!(again.frame(), request.frame());
        let close_only = body(&request.narrowed_disconnect(vec!["c2".into()], false));
        // `data` is always written (the wire type's), `null` reading as absent.
        assert_eq!(
            close_only,
            r#"{"action":"disconnect","connections":["c2"],"data":null}"#
        );
        let again = parse(&close_only, 1).unwrap();
        assert!(again.frame.is_none());
        // A subscribe's remainder (the change made, the data not delivered) is a plain push of
        // the frame.
        let subscribe = parse(
            r#"{"action":"subscribe","channel":"room/1","users":["u1"],"data":2}"#,
            0,
        )
        .unwrap();
        let narrowed = body(&subscribe.narrowed(None, vec!["c3".into()]));
        assert_eq!(
            narrowed,
            r#"{"connections":["c3"],"publication_id":"m1","data":{"type":"message","id":"m1","data":2}}"#
        );
        let again = parse_requeued(&narrowed, 1).unwrap();
        assert_eq!(
            (again.action(), again.frame()),
            (Action::Push, subscribe.frame())
        );
    }
}
