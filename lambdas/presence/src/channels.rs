//! The `subscribe` and `unsubscribe` WebSocket routes (AWS_PROXY), DESIGN.md § Channels and
//! docs/channels.md § Subscribing.
//!
//! `{"action":"subscribe","channel":P,"ref":R}` → `{"type":"subscribed","channel":P,"ref":R}`;
//! `{"action":"unsubscribe","channel":P,"ref":R}` → `{"type":"unsubscribed","channel":P,"ref":R}`
//! (`ref` only when the request had one). A refusal is
//! `{"type":"error","error":E,"channel":<as sent, null if missing>,"message":…,"ref":R}` and
//! changes nothing. The order of the checks: the `ref` (`invalid_ref`, the one refusal without
//! a `ref`), the pattern (`invalid_channel`), then for `subscribe` the connection's grants
//! (`forbidden`), then the store (`channels_unavailable` when it is not configured or fails,
//! `too_many_subscriptions`, `connection_gone`). Every reply has status 200: API Gateway sends
//! the body as the frame whatever the status, and the frame says the outcome.

use std::time::SystemTime;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sumu_wire::channels::{context, reasons};
use sumu_wire::frames::{parse_ref, ErrorFrame, RefError, INVALID_REF};
use sumu_wire::{table, Channel, ChannelError, Grants, Pattern};
use tracing::{error, info, warn};

use crate::history::ChannelHistory;
use crate::members::ChannelMembers;
use crate::query::frame;
use crate::recovery::{self, parse_since, Replay, Since};
use crate::stream::epoch_millis;
use crate::subscriptions::{SubscribeOutcome, Subscription, SubscriptionStore};
use crate::Deps;

/// The route keys this module answers.
pub mod routes {
    pub const SUBSCRIBE: &str = "subscribe";
    pub const UNSUBSCRIBE: &str = "unsubscribe";
}

/// `error` values beyond DESIGN.md's (`sumu_wire::channels::reasons`).
pub mod errors {
    /// The connection item is gone: the connection ended while subscribing.
    pub const CONNECTION_GONE: &str = "connection_gone";
    /// DynamoDB failed, or channels are not configured: nothing changed; try again.
    pub const CHANNELS_UNAVAILABLE: &str = "channels_unavailable";
    /// A malformed `since`, `limit` or `after`.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// `subscribe`: the channel has its namespace's `max_members` members and the user is
    /// not one of them.
    pub const TOO_MANY_MEMBERS: &str = "too_many_members";
}

/// The `type` of the success frames.
pub const SUBSCRIBED: &str = "subscribed";
pub const UNSUBSCRIBED: &str = "unsubscribed";

/// The authorizer context key of the principal.
pub const PRINCIPAL_ID: &str = "principalId";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Subscribe,
    Unsubscribe,
}

impl Action {
    pub fn from_route_key(route_key: &str) -> Option<Action> {
        match route_key {
            routes::SUBSCRIBE => Some(Action::Subscribe),
            routes::UNSUBSCRIBE => Some(Action::Unsubscribe),
            _ => None,
        }
    }

    fn reply_type(self) -> &'static str {
        match self {
            Action::Subscribe => SUBSCRIBED,
            Action::Unsubscribe => UNSUBSCRIBED,
        }
    }
}

/// Why a request changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    InvalidRef(RefError),
    /// A malformed `since` (crate::recovery::parse_since).
    InvalidRequest(String),
    InvalidChannel(ChannelError),
    /// `since` on a pattern: only a channel has a sequence to recover.
    SinceOnPattern,
    /// No subscribe grant covers the pattern (or the request carries no principal).
    Forbidden(String),
    TooManySubscriptions {
        cap: u32,
    },
    TooManyMembers {
        cap: u32,
    },
    ConnectionGone,
    /// Channels are not configured, or DynamoDB failed.
    Unavailable(&'static str),
}

impl Refusal {
    /// No subscriptions table: the deployment has no channels.
    pub const NOT_CONFIGURED: Refusal =
        Refusal::Unavailable("channels are not configured on this deployment");
    /// DynamoDB failed: nothing changed, ask again.
    pub const TRY_AGAIN: Refusal =
        Refusal::Unavailable("channels are unavailable right now; try again");

    pub fn error(&self) -> &'static str {
        match self {
            Refusal::InvalidRef(_) => INVALID_REF,
            Refusal::InvalidRequest(_) => errors::INVALID_REQUEST,
            Refusal::InvalidChannel(_) | Refusal::SinceOnPattern => reasons::INVALID_CHANNEL,
            Refusal::Forbidden(_) => reasons::FORBIDDEN,
            Refusal::TooManySubscriptions { .. } => reasons::TOO_MANY_SUBSCRIPTIONS,
            Refusal::TooManyMembers { .. } => errors::TOO_MANY_MEMBERS,
            Refusal::ConnectionGone => errors::CONNECTION_GONE,
            Refusal::Unavailable(_) => errors::CHANNELS_UNAVAILABLE,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::InvalidRef(error) => error.to_string(),
            Refusal::InvalidRequest(why) => why.clone(),
            Refusal::InvalidChannel(error) => error.to_string(),
            Refusal::SinceOnPattern => {
                "`since` needs one channel, not a pattern: a pattern has no sequence to recover"
                    .to_owned()
            }
            Refusal::Forbidden(why) => why.clone(),
            Refusal::TooManySubscriptions { cap } => {
                format!("at most {cap} subscriptions per connection; unsubscribe from one first")
            }
            Refusal::TooManyMembers { cap } => {
                format!("the channel has its maximum of {cap} members")
            }
            Refusal::ConnectionGone => "the connection has ended".to_owned(),
            Refusal::Unavailable(why) => (*why).to_owned(),
        }
    }
}

/// A channel request as sent: its `channel` (`null` when missing, or when the body is not a
/// JSON object), the pattern it names, and its `ref`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRequest {
    pub sent_channel: Value,
    pub pattern: Result<Pattern, ChannelError>,
    pub reference: Result<Option<String>, RefError>,
    /// `since` (subscribe with recovery, and `history`).
    pub since: Result<Option<Since>, String>,
    /// The whole body, for the fields only one route reads (`limit`).
    pub fields: serde_json::Map<String, Value>,
}

/// Reads a request body once.
pub fn read_request(body: Option<&str>) -> ChannelRequest {
    let mut fields = match serde_json::from_str::<Value>(body.unwrap_or_default()) {
        Ok(Value::Object(fields)) => fields,
        _ => Default::default(),
    };
    let sent_channel = fields.remove("channel").unwrap_or(Value::Null);
    let pattern = Pattern::from_json(Some(&sent_channel));
    let reference = parse_ref(fields.get("ref"));
    let since = parse_since(fields.get("since"));
    ChannelRequest {
        sent_channel,
        pattern,
        reference,
        since,
        fields,
    }
}

/// The connection's grants from the authorizer context (`channels_subscribe`,
/// `channels_publish`). The authorizer writes only valid patterns there; should a value ever
/// be unreadable the connection is treated as having no grant (refusing is the safe side).
pub fn grants_of(request: &ApiGatewayWebsocketProxyRequest) -> Grants {
    let fields = &request.request_context.authorizer.fields;
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    Grants::from_context_values(text(context::SUBSCRIBE), text(context::PUBLISH)).unwrap_or_else(
        |invalid| {
            error!(error = %invalid, "unreadable grants in the authorizer context: treated as none");
            Grants::default()
        },
    )
}

/// The principal the authorizer put in the context, if any.
pub fn principal_of(request: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    request
        .request_context
        .authorizer
        .fields
        .get(PRINCIPAL_ID)
        .and_then(Value::as_str)
        .filter(|principal| !principal.is_empty())
}

/// A subscription's `expires_at` (epoch seconds): the connection's `connectedAt` (ms) /
/// 1000, plus 7200. The `$connect` template computes the connection item's from the request
/// time, which is never earlier, so a subscription never outlives its connection.
pub fn expires_at(connected_at_ms: i64) -> i64 {
    connected_at_ms.div_euclid(1000) + table::MAX_CONNECTION_SECONDS
}

/// What a subscribe to a channel that keeps history answers besides `subscribed`: the
/// channel's latest offset and epoch, and with `since` whether it recovered and what it missed.
#[derive(Debug, Default)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
    /// `Some` iff the request had `since`: `Some(replay)` recovered, `None` not.
    pub recovery: Option<Option<Replay>>,
}

/// What a request that was done answers.
#[derive(Debug)]
pub struct Done {
    pub pattern: Pattern,
    /// On a channel that keeps history (subscribe only).
    pub position: Option<Position>,
    /// `since` on a channel that keeps no history: it cannot recover.
    pub unrecoverable: bool,
}

/// `{"type":"subscribed"|"unsubscribed","channel":P,"offset":N,"epoch":E,"recovered":B,
/// "publications":[…],"more":B,"ref":R}` (each key only where it applies), serialized as a
/// struct so its keys keep this order in every build.
#[derive(Debug, Serialize)]
struct Reply<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publications: Option<&'a [Box<RawValue>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    more: Option<bool>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

/// The frame answering a request that was done.
pub fn reply_frame(action: Action, done: &Done, reference: Option<&str>) -> String {
    let mut reply = Reply {
        kind: action.reply_type(),
        channel: done.pattern.to_string(),
        offset: None,
        epoch: None,
        recovered: done.unrecoverable.then_some(false),
        publications: None,
        more: None,
        reference,
    };
    if let Some(position) = &done.position {
        reply.offset = Some(position.offset);
        reply.epoch = Some(&position.epoch);
        match &position.recovery {
            None => {}
            Some(None) => reply.recovered = Some(false),
            Some(Some(replay)) => {
                reply.recovered = Some(true);
                reply.publications = Some(&replay.publications);
                reply.more = Some(replay.more);
            }
        }
    }
    // Strings, numbers and raw JSON: serializing cannot fail.
    serde_json::to_string(&reply).unwrap_or_default()
}

/// `{"type":"error","error":E,"channel":<as sent>,"message":…,"ref":R}`.
pub fn error_frame(refusal: &Refusal, channel: &Value, reference: Option<&str>) -> String {
    let message = refusal.message();
    ErrorFrame::new(refusal.error(), &message)
        .channel(channel)
        .reference(reference)
        .to_text()
}

/// Decides one request (its `ref` already read).
async fn decide<C, S, U: SubscriptionStore + ChannelHistory + ChannelMembers>(
    action: Action,
    request: &ApiGatewayWebsocketProxyRequest,
    read: ChannelRequest,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> Result<Done, Refusal> {
    let since = match action {
        Action::Subscribe => read.since.map_err(Refusal::InvalidRequest)?,
        // Unsubscribe ignores what it has no use for.
        Action::Unsubscribe => None,
    };
    let pattern = read.pattern.map_err(Refusal::InvalidChannel)?;
    if since.is_some() && !matches!(pattern, Pattern::Exact(_)) {
        return Err(Refusal::SinceOnPattern);
    }
    let principal = principal_of(request);
    let connection_id = request
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty());
    let (Some(user_id), Some(connection_id)) = (principal, connection_id) else {
        return Err(Refusal::Forbidden(
            "the request carries no authorized connection".to_owned(),
        ));
    };
    if action == Action::Subscribe && !grants_of(request).may_subscribe(&pattern) {
        return Err(Refusal::Forbidden(format!(
            "no subscribe grant covers {pattern}"
        )));
    }
    let Some(store) = &deps.subscriptions else {
        return Err(Refusal::NOT_CONFIGURED);
    };
    match action {
        Action::Subscribe => {
            if let Pattern::Exact(channel) = &pattern {
                check_members_cap(store, channel, user_id, connection_id, &deps.namespaces).await?;
            }
            let subscription = Subscription {
                channel: pattern.to_string(),
                connection_id: connection_id.to_owned(),
                user_id: user_id.to_owned(),
                expires_at: expires_at(request.request_context.connected_at),
                subscribed_at: epoch_millis(now),
            };
            match store
                .subscribe(&subscription, deps.max_subscriptions_per_connection)
                .await
            {
                Ok(SubscribeOutcome::Subscribed | SubscribeOutcome::AlreadySubscribed) => {}
                Ok(SubscribeOutcome::TooMany) => {
                    return Err(Refusal::TooManySubscriptions {
                        cap: deps.max_subscriptions_per_connection,
                    })
                }
                Ok(SubscribeOutcome::ConnectionGone) => return Err(Refusal::ConnectionGone),
                Err(failure) => {
                    error!(error = %failure, "subscribing failed");
                    return Err(Refusal::TRY_AGAIN);
                }
            }
            // Stored before history is read: whatever is published from now on reaches the
            // subscription, and what came before is in the reply (the client drops doubles).
            let Pattern::Exact(channel) = &pattern else {
                return Ok(Done {
                    pattern,
                    position: None,
                    unrecoverable: false,
                });
            };
            let Some(policy) = deps.namespaces.history(channel) else {
                return Ok(Done {
                    unrecoverable: since.is_some(),
                    pattern,
                    position: None,
                });
            };
            match position(store, channel, policy, since.as_ref(), now).await {
                Ok(position) => Ok(Done {
                    pattern,
                    position: Some(position),
                    unrecoverable: false,
                }),
                Err(failure) => {
                    // The subscription stays (a retry answers `subscribed` with the position).
                    error!(error = %failure, %channel, "reading the channel's history failed");
                    Err(Refusal::TRY_AGAIN)
                }
            }
        }
        Action::Unsubscribe => {
            match store
                .unsubscribe(user_id, connection_id, &pattern.to_string())
                .await
            {
                Ok(()) => Ok(Done {
                    pattern,
                    position: None,
                    unrecoverable: false,
                }),
                Err(failure) => {
                    error!(error = %failure, "unsubscribing failed");
                    Err(Refusal::TRY_AGAIN)
                }
            }
        }
    }
}

/// A user who is not yet a member may join a member-tracking channel only below its
/// namespace's `max_members`: two consistent GetItems (and at the cap, a consistent Query of
/// the connection's own subscription, which lets a repeated subscribe through). The count is
/// the stream's, so joins racing within the stream's lag can overshoot the cap by as many as
/// race (docs/presence.md § The members cap).
async fn check_members_cap<U: ChannelMembers>(
    store: &U,
    channel: &Channel,
    user_id: &str,
    connection_id: &str,
    namespaces: &sumu_wire::Namespaces,
) -> Result<(), Refusal> {
    let Some(namespace) = namespaces.members_of(channel) else {
        return Ok(());
    };
    let failed = |failure: crate::members::MembersError| {
        error!(error = %failure, %channel, "reading the channel's members failed");
        Refusal::TRY_AGAIN
    };
    let channel_text = channel.to_string();
    let (is_member, members) = store
        .membership(&channel_text, user_id)
        .await
        .map_err(failed)?;
    if is_member || members < namespace.max_members {
        return Ok(());
    }
    // A repeated subscribe whose first one the stream has not applied yet is no new member.
    if store
        .is_subscribed(&channel_text, connection_id)
        .await
        .map_err(failed)?
    {
        return Ok(());
    }
    Err(Refusal::TooManyMembers {
        cap: namespace.max_members,
    })
}

/// The channel's position for a subscriber (its sequence made sure of: one UpdateItem), and
/// with `since` what it missed (one Query of about as many items as it missed).
async fn position<H: ChannelHistory>(
    history: &H,
    channel: &Channel,
    policy: sumu_wire::HistoryPolicy,
    since: Option<&Since>,
    now: SystemTime,
) -> Result<Position, sumu_history::HistoryError> {
    let now_seconds = epoch_millis(now).div_euclid(1000);
    let sequence = history.ensure_sequence(channel, now_seconds).await?;
    let recovery = match since {
        None => None,
        Some(since) => Some(
            recovery::after(
                history,
                channel,
                &sequence,
                policy,
                since,
                recovery::MAX_LIMIT,
                now_seconds,
            )
            .await?,
        ),
    };
    Ok(Position {
        offset: sequence.top,
        epoch: sequence.epoch,
        recovery,
    })
}

/// Answers a `subscribe` or `unsubscribe` request with its frame.
pub async fn answer_route<C, S, U: SubscriptionStore + ChannelHistory + ChannelMembers>(
    action: Action,
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> ApiGatewayProxyResponse {
    let connection_id = crate::query::connection_id_of(request);
    let read = read_request(request.body.as_deref());
    let sent_channel = read.sent_channel.clone();
    let (reference, outcome) = match read.reference.clone() {
        Err(invalid) => (None, Err(Refusal::InvalidRef(invalid))),
        Ok(reference) => (reference, decide(action, request, read, deps, now).await),
    };
    let body = match outcome {
        Ok(done) => {
            info!(connection_id, ?action, channel = %done.pattern, "channel request done");
            reply_frame(action, &done, reference.as_deref())
        }
        Err(refusal) => {
            warn!(
                connection_id,
                ?action,
                error = refusal.error(),
                message = %refusal.message(),
                "channel request refused"
            );
            error_frame(&refusal, &sent_channel, reference.as_deref())
        }
    };
    frame(200, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_channel_and_the_ref_are_read_as_sent() {
        let read = read_request(Some(
            r#"{"action":"subscribe","channel":"room/*","ref":"r1"}"#,
        ));
        assert_eq!(read.sent_channel, json!("room/*"));
        assert_eq!(read.pattern, Pattern::parse("room/*"));
        assert_eq!(read.reference, Ok(Some("r1".to_owned())));
        let read = read_request(Some(r#"{"action":"subscribe","channel":42,"ref":{"a":1}}"#));
        assert_eq!(read.sent_channel, json!(42));
        assert_eq!(read.pattern, Err(ChannelError::NotAString));
        assert_eq!(read.reference, Err(RefError::NotAString));
        for body in [
            None,
            Some(""),
            Some("not json"),
            Some("[1]"),
            Some(r#"{"action":"subscribe"}"#),
        ] {
            let read = read_request(body);
            assert_eq!(read.sent_channel, Value::Null, "{body:?}");
            assert_eq!(read.pattern, Err(ChannelError::Missing), "{body:?}");
            assert_eq!(read.reference, Ok(None), "{body:?}");
        }
    }

    #[test]
    fn expiry_is_the_connection_start_plus_two_hours() {
        assert_eq!(expires_at(1_700_000_000_999), 1_700_000_000 + 7200);
    }

    #[test]
    fn frames_have_the_documented_shape_and_key_order() {
        let pattern = Pattern::parse("room/42").unwrap();
        let done = |position: Option<Position>, unrecoverable: bool| Done {
            pattern: pattern.clone(),
            position,
            unrecoverable,
        };
        assert_eq!(
            reply_frame(Action::Subscribe, &done(None, false), None),
            r#"{"type":"subscribed","channel":"room/42"}"#
        );
        assert_eq!(
            reply_frame(Action::Unsubscribe, &done(None, false), Some("r-1")),
            r#"{"type":"unsubscribed","channel":"room/42","ref":"r-1"}"#
        );
        assert_eq!(
            reply_frame(Action::Subscribe, &done(None, true), None),
            r#"{"type":"subscribed","channel":"room/42","recovered":false}"#
        );
        let at = |recovery| Position {
            offset: 7,
            epoch: "e".into(),
            recovery,
        };
        assert_eq!(
            reply_frame(Action::Subscribe, &done(Some(at(None)), false), None),
            r#"{"type":"subscribed","channel":"room/42","offset":7,"epoch":"e"}"#
        );
        assert_eq!(
            reply_frame(
                Action::Subscribe,
                &done(Some(at(Some(None))), false),
                Some("r")
            ),
            r#"{"type":"subscribed","channel":"room/42","offset":7,"epoch":"e","recovered":false,"ref":"r"}"#
        );
        let replay = Replay {
            publications: vec![RawValue::from_string(
                r#"{"type":"publication","offset":7}"#.into(),
            )
            .unwrap()],
            more: false,
        };
        assert_eq!(
            reply_frame(
                Action::Subscribe,
                &done(Some(at(Some(Some(replay)))), false),
                None
            ),
            r#"{"type":"subscribed","channel":"room/42","offset":7,"epoch":"e","recovered":true,"publications":[{"type":"publication","offset":7}],"more":false}"#
        );
        assert_eq!(
            error_frame(
                &Refusal::TooManySubscriptions { cap: 100 },
                &json!("room/42"),
                Some("r:2")
            ),
            r#"{"type":"error","error":"too_many_subscriptions","channel":"room/42","message":"at most 100 subscriptions per connection; unsubscribe from one first","ref":"r:2"}"#
        );
    }
}
