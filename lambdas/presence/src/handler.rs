//! The Lambda handler: tells the invocation's shape apart and hands it to its module.

use std::time::SystemTime;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sumu_wire::frames::ErrorFrame;
use sumu_wire::PresenceAnswer;

use crate::deps::Deps;
use crate::history::ChannelHistory;
use crate::members::ChannelMembers;
use crate::query::PresenceError;
use crate::sink::EventSink;
use crate::store::ConnectionCounter;
use crate::stream::StreamBatch;
use crate::subscriptions::SubscriptionStore;
use crate::{channel_presence, channel_stream, channels, history_route, query, stream};

/// The three shapes the Lambda is invoked with, told apart by their keys: `Records` (a
/// stream batch), `requestContext` (a WebSocket route: `presence`, `subscribe` or
/// `unsubscribe`, told apart by its `routeKey` ([`Route`]); any other is refused), anything else (a back end's
/// question, validated by the handler so a bad one gets a clear `Validation` error).
#[derive(Debug, Clone)]
pub enum Invocation {
    Stream(StreamBatch),
    Route(Box<ApiGatewayWebsocketProxyRequest>),
    Direct(Value),
}

impl Invocation {
    pub fn from_value(value: Value) -> Result<Invocation, serde_json::Error> {
        if value.get("Records").is_some() {
            Ok(Invocation::Stream(serde_json::from_value(value)?))
        } else if value.get("requestContext").is_some() {
            Ok(Invocation::Route(Box::new(serde_json::from_value(value)?)))
        } else {
            Ok(Invocation::Direct(value))
        }
    }
}

impl<'de> Deserialize<'de> for Invocation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Invocation::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The answer, serialized as the invocation's own response shape.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `{"batchItemFailures":[{"itemIdentifier":SEQUENCE_NUMBER}]}`
    Stream(DynamoDbEventResponse),
    /// `{"statusCode":200,"body":"{\"type\":\"presence\",…}"}` (or a channels frame)
    Route(Box<ApiGatewayProxyResponse>),
    /// `{"type":"presence","users":[…]}`
    Direct(PresenceAnswer),
}

/// The Lambda handler.
pub async fn handle<
    C: ConnectionCounter,
    S: EventSink,
    U: SubscriptionStore + ChannelHistory + ChannelMembers,
>(
    event: LambdaEvent<Invocation>,
    deps: &Deps<C, S, U>,
) -> Result<Reply, PresenceError> {
    let now = SystemTime::now();
    match event.payload {
        Invocation::Stream(batch) if channel_stream::is_subscriptions_batch(&batch) => Ok(
            Reply::Stream(channel_stream::handle_batch(batch, deps, now).await),
        ),
        Invocation::Stream(batch) => {
            Ok(Reply::Stream(stream::handle_batch(batch, deps, now).await))
        }
        Invocation::Route(request) => {
            let route_key = request.request_context.route_key.as_deref();
            let response = match Route::from_key(route_key) {
                Some(Route::Presence) if channel_presence::asks_about_a_channel(&request) => {
                    channel_presence::answer_route(&request, deps, now).await
                }
                Some(Route::Presence) => query::answer_route(&request, deps, now).await,
                Some(Route::Channel(action)) => {
                    channels::answer_route(action, &request, deps, now).await
                }
                Some(Route::History) => history_route::answer_route(&request, deps, now).await,
                None => refuse_unknown_route(route_key, &request),
            };
            Ok(Reply::Route(Box::new(response)))
        }
        Invocation::Direct(question) => Ok(Reply::Direct(
            query::answer_direct(&question, deps, now).await?,
        )),
    }
}

/// The WebSocket routes this function answers, by route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `presence`: who is online ([`query`]).
    Presence,
    /// `subscribe` / `unsubscribe` ([`channels`]).
    Channel(channels::Action),
    /// `history` ([`history_route`]).
    History,
}

impl Route {
    /// The route of a route key; `None` for any other key (or none at all), which is a
    /// deployment routing a route here that this function does not serve.
    pub fn from_key(route_key: Option<&str>) -> Option<Route> {
        match route_key? {
            query::ROUTE => Some(Route::Presence),
            history_route::ROUTE => Some(Route::History),
            other => channels::Action::from_route_key(other).map(Route::Channel),
        }
    }
}

/// A route key this function does not serve: answering it as a presence question would
/// hide the misrouting behind a plausible frame, so it is refused (status 400, as a bad
/// question is) with an `unknown_route` error frame, and logged as an error for the
/// operator. Nothing is read or written.
fn refuse_unknown_route(
    route_key: Option<&str>,
    request: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let connection_id = query::connection_id_of(request);
    let route_key = route_key.unwrap_or_default();
    tracing::error!(
        route_key,
        connection_id,
        "refusing a request on a route the presence function does not serve"
    );
    let message = unknown_route_message(route_key);
    query::frame(
        400,
        ErrorFrame::new(ERROR_UNKNOWN_ROUTE, &message).to_text(),
    )
}

/// The `error` of the frame refusing a route key this function does not serve.
pub const ERROR_UNKNOWN_ROUTE: &str = "unknown_route";

/// The `message` of that frame.
pub fn unknown_route_message(route_key: &str) -> String {
    format!(
        "the presence function does not serve the route {route_key:?} (it serves {}, {}, {} and {}); nothing was done",
        query::ROUTE,
        channels::routes::SUBSCRIBE,
        channels::routes::UNSUBSCRIBE,
        history_route::ROUTE
    )
}
