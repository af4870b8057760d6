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
use serde_json::Value;
use sumu_wire::channels::{context, reasons};
use sumu_wire::frames::{parse_ref, ErrorFrame, RefError, INVALID_REF};
use sumu_wire::{table, ChannelError, Grants, Pattern};
use tracing::{error, info, warn};

use crate::query::frame;
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
    InvalidChannel(ChannelError),
    /// No subscribe grant covers the pattern (or the request carries no principal).
    Forbidden(String),
    TooManySubscriptions {
        cap: u32,
    },
    ConnectionGone,
    /// Channels are not configured, or DynamoDB failed.
    Unavailable(&'static str),
}

impl Refusal {
    pub fn error(&self) -> &'static str {
        match self {
            Refusal::InvalidRef(_) => INVALID_REF,
            Refusal::InvalidChannel(_) => reasons::INVALID_CHANNEL,
            Refusal::Forbidden(_) => reasons::FORBIDDEN,
            Refusal::TooManySubscriptions { .. } => reasons::TOO_MANY_SUBSCRIPTIONS,
            Refusal::ConnectionGone => errors::CONNECTION_GONE,
            Refusal::Unavailable(_) => errors::CHANNELS_UNAVAILABLE,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::InvalidRef(error) => error.to_string(),
            Refusal::InvalidChannel(error) => error.to_string(),
            Refusal::Forbidden(why) => why.clone(),
            Refusal::TooManySubscriptions { cap } => {
                format!("at most {cap} subscriptions per connection; unsubscribe from one first")
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
    ChannelRequest {
        sent_channel,
        pattern,
        reference,
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

/// `{"type":"subscribed"|"unsubscribed","channel":P,"ref":R}`, serialized as a struct so its
/// keys keep this order in every build.
#[derive(Debug, Serialize)]
struct Reply<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: String,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

/// The frame answering a request that was done.
pub fn reply_frame(action: Action, pattern: &Pattern, reference: Option<&str>) -> String {
    let reply = Reply {
        kind: action.reply_type(),
        channel: pattern.to_string(),
        reference,
    };
    // Strings only: serializing cannot fail.
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

/// Decides one request; `Ok` is the pattern subscribed to or unsubscribed from.
async fn decide<C, S, U: SubscriptionStore>(
    action: Action,
    request: &ApiGatewayWebsocketProxyRequest,
    pattern: Result<Pattern, ChannelError>,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> Result<Pattern, Refusal> {
    let pattern = pattern.map_err(Refusal::InvalidChannel)?;
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
        return Err(Refusal::Unavailable(
            "channels are not configured on this deployment",
        ));
    };
    let unavailable = Refusal::Unavailable("channels are unavailable right now; try again");
    match action {
        Action::Subscribe => {
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
                Ok(SubscribeOutcome::Subscribed | SubscribeOutcome::AlreadySubscribed) => {
                    Ok(pattern)
                }
                Ok(SubscribeOutcome::TooMany) => Err(Refusal::TooManySubscriptions {
                    cap: deps.max_subscriptions_per_connection,
                }),
                Ok(SubscribeOutcome::ConnectionGone) => Err(Refusal::ConnectionGone),
                Err(failure) => {
                    error!(error = %failure, "subscribing failed");
                    Err(unavailable)
                }
            }
        }
        Action::Unsubscribe => {
            match store
                .unsubscribe(user_id, connection_id, &pattern.to_string())
                .await
            {
                Ok(()) => Ok(pattern),
                Err(failure) => {
                    error!(error = %failure, "unsubscribing failed");
                    Err(unavailable)
                }
            }
        }
    }
}

/// Answers a `subscribe` or `unsubscribe` request with its frame.
pub async fn answer_route<C, S, U: SubscriptionStore>(
    action: Action,
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> ApiGatewayProxyResponse {
    let connection_id = request
        .request_context
        .connection_id
        .as_deref()
        .unwrap_or_default();
    let read = read_request(request.body.as_deref());
    let (reference, outcome) = match read.reference {
        Err(invalid) => (None, Err(Refusal::InvalidRef(invalid))),
        Ok(reference) => (
            reference,
            decide(action, request, read.pattern, deps, now).await,
        ),
    };
    let body = match outcome {
        Ok(pattern) => {
            info!(connection_id, ?action, channel = %pattern, "channel request done");
            reply_frame(action, &pattern, reference.as_deref())
        }
        Err(refusal) => {
            warn!(
                connection_id,
                ?action,
                error = refusal.error(),
                message = %refusal.message(),
                "channel request refused"
            );
            error_frame(&refusal, &read.sent_channel, reference.as_deref())
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
        assert_eq!(
            reply_frame(Action::Subscribe, &pattern, None),
            r#"{"type":"subscribed","channel":"room/42"}"#
        );
        assert_eq!(
            reply_frame(Action::Unsubscribe, &pattern, Some("r-1")),
            r#"{"type":"unsubscribed","channel":"room/42","ref":"r-1"}"#
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
