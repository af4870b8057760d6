//! sumu's presence Lambda. One binary, three kinds of invocation:
//! - DynamoDB stream batches of the connections table → ONLINE/OFFLINE events on the
//!   *messages* topic or queue ([`stream`]);
//! - the `presence` WebSocket route (AWS_PROXY) → each asked user's status ([`query`]);
//! - the `subscribe` / `unsubscribe` routes (AWS_PROXY) → a subscription written or removed
//!   and its reply frame ([`channels`], storage in [`subscriptions`]);
//! - a direct invocation by a back end, `{"users":[…]}` → the same answer as JSON.
//!
//! The handler is a plain `async fn` over narrow seams ([`ConnectionCounter`],
//! [`EventSink`], [`SubscriptionStore`]), so tests call it with fakes and sumu-local runs it in-process with the SDK
//! implementations built by [`SdkDeps::from_sdk_config`].

pub mod channels;
pub mod config;
pub mod query;
pub mod sink;
pub mod store;
pub mod stream;
pub mod subscriptions;

use std::time::SystemTime;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sumu_wire::PresenceAnswer;
use thiserror::Error;

pub use config::{Config, ConfigError, Destination};
pub use query::InvalidQuery;
pub use sink::{EventSink, SdkEventSink, SinkError};
pub use store::{ConnectionCounter, DynamoConnectionStore, StoreError};
pub use stream::StreamBatch;
pub use subscriptions::{DynamoSubscriptionStore, SubscriptionError, SubscriptionStore};

/// What the handler works with.
#[derive(Debug, Clone)]
pub struct Deps<C, S, U> {
    pub counter: C,
    pub sink: S,
    /// The subscriptions table; `None` when channels are not configured (`subscribe` and
    /// `unsubscribe` answer `channels_unavailable`, the stream cleans nothing up).
    pub subscriptions: Option<U>,
    /// The cap `subscribe` enforces.
    pub max_subscriptions_per_connection: u32,
    /// Bound on concurrent Queries (and on concurrent subscription cleanups).
    pub query_concurrency: usize,
}

/// The deps of the deployed Lambda (and of sumu-local): DynamoDB, SNS/SQS.
pub type SdkDeps = Deps<DynamoConnectionStore, SdkEventSink, DynamoSubscriptionStore>;

impl SdkDeps {
    /// Builds the clients once from an SDK configuration and an explicit [`Config`] (no
    /// environment reads), so sumu-local can point them at its own endpoint.
    pub fn from_sdk_config(sdk_config: &aws_config::SdkConfig, config: Config) -> SdkDeps {
        let sink = match config.destination {
            Destination::Topic { topic_arn } => SdkEventSink::Topic {
                client: aws_sdk_sns::Client::new(sdk_config),
                topic_arn,
            },
            Destination::Queue { queue_url } => SdkEventSink::Queue {
                client: aws_sdk_sqs::Client::new(sdk_config),
                queue_url,
            },
            Destination::None => SdkEventSink::Discard,
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk_config);
        Deps {
            subscriptions: config.subscriptions_table.map(|subscriptions_table| {
                DynamoSubscriptionStore::new(
                    dynamodb.clone(),
                    config.connections_table.clone(),
                    subscriptions_table,
                )
            }),
            counter: DynamoConnectionStore::new(dynamodb, config.connections_table),
            sink,
            max_subscriptions_per_connection: config.max_subscriptions_per_connection,
            query_concurrency: config.query_concurrency,
        }
    }
}

/// The three shapes the Lambda is invoked with, told apart by their keys: `Records` (a
/// stream batch), `requestContext` (a WebSocket route: `presence`, `subscribe` or
/// `unsubscribe`, told apart by its `routeKey`), anything else (a back end's
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

/// The errors a whole invocation can end with (only direct invocations do).
#[derive(Debug, Error)]
pub enum PresenceError {
    #[error("invalid presence request: {0}")]
    InvalidRequest(#[from] InvalidQuery),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PresenceError> for Diagnostic {
    fn from(error: PresenceError) -> Diagnostic {
        let error_type = match error {
            PresenceError::InvalidRequest(_) => "Validation",
            PresenceError::Store(_) => "Retryable",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The Lambda handler.
pub async fn handle<C: ConnectionCounter, S: EventSink, U: SubscriptionStore>(
    event: LambdaEvent<Invocation>,
    deps: &Deps<C, S, U>,
) -> Result<Reply, PresenceError> {
    let now = SystemTime::now();
    match event.payload {
        Invocation::Stream(batch) => {
            Ok(Reply::Stream(stream::handle_batch(batch, deps, now).await))
        }
        Invocation::Route(request) => {
            // Every other route key (`presence`, or none at all) is the presence question,
            // as before channels existed.
            let action = request
                .request_context
                .route_key
                .as_deref()
                .and_then(channels::Action::from_route_key);
            let response = match action {
                Some(action) => channels::answer_route(action, &request, deps, now).await,
                None => query::answer_route(&request, deps, now).await,
            };
            Ok(Reply::Route(Box::new(response)))
        }
        Invocation::Direct(question) => Ok(Reply::Direct(
            query::answer_direct(&question, deps, now).await?,
        )),
    }
}
