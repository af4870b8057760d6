//! Presence in sumu-local: the same handler as the deployed Lambda (`lambdas/presence`), run
//! in-process twice over: as the `presence` route's AWS_PROXY integration, and fed by a
//! [`StreamPoller`] on the connections table's stream as the event source mapping would.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::FutureExt;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use sumu_wire::Namespaces;

use crate::config::{PresenceDestination, PresenceSetup};
use crate::event_filter::EventFilter;
use crate::integration::ProxyHandler;
use crate::resources::Resources;
use crate::runners::Runner;
use crate::stream_runner::{BatchHandler, StreamError, StreamPoller};

/// The name routes.json's `presence` route gives its function.
pub const FUNCTION_NAME: &str = "presence";

#[derive(Debug, thiserror::Error)]
pub enum PresenceStartError {
    #[error("the {0} table has no stream: presence cannot watch it")]
    NoStream(&'static str),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// The presence Lambda's configuration for the provisioned resources.
pub fn lambda_config(
    resources: &Resources,
    setup: &PresenceSetup,
    namespaces: &Namespaces,
) -> presence::Config {
    presence::Config {
        connections_table: resources.connections_table.clone(),
        subscriptions_table: Some(resources.subscriptions_table.clone()),
        max_subscriptions_per_connection: setup.max_subscriptions_per_connection,
        namespaces: namespaces.clone(),
        history_table: Some(resources.history_table.clone()),
        members_table: Some(resources.members_table.clone()),
        notifications_queue_url: Some(resources.notifications_queue_url.clone()),
        destination: match setup.destination {
            PresenceDestination::Topic => presence::Destination::Topic {
                topic_arn: resources.messages_topic_arn.clone(),
            },
            PresenceDestination::Queue => presence::Destination::Queue {
                queue_url: resources.messages_queue_url.clone(),
            },
            PresenceDestination::None => presence::Destination::None,
        },
        query_concurrency: presence::config::DEFAULT_QUERY_CONCURRENCY,
    }
}

/// Invokes the handler with a JSON event as the Lambda runtime would: the event deserialized
/// into the handler's input type, the reply serialized back.
async fn invoke(deps: &presence::SdkDeps, event: Value) -> Result<Value, String> {
    let invocation = presence::Invocation::from_value(event).map_err(|error| error.to_string())?;
    let reply = presence::handle(LambdaEvent::new(invocation, Context::default()), deps)
        .await
        .map_err(|error| error.to_string())?;
    serde_json::to_value(reply).map_err(|error| error.to_string())
}

/// The `presence` route's in-process Lambda.
pub fn proxy_handler(deps: Arc<presence::SdkDeps>) -> ProxyHandler {
    Arc::new(move |event: Value| {
        let deps = Arc::clone(&deps);
        async move { invoke(&deps, event).await }.boxed()
    })
}

/// The stream batches' in-process Lambda.
pub fn batch_handler(deps: Arc<presence::SdkDeps>) -> BatchHandler {
    Arc::new(move |event| {
        let deps = Arc::clone(&deps);
        async move {
            let event = serde_json::to_value(event).map_err(|error| error.to_string())?;
            let reply = invoke(&deps, event).await?;
            serde_json::from_value::<DynamoDbEventResponse>(reply)
                .map_err(|error| format!("the handler's reply is not a batch response: {error}"))
        }
        .boxed()
    })
}

/// Builds the route handler and positions the two stream runners — the connections table's
/// and the subscriptions table's, as the module's two event source mappings — at LATEST
/// (during start, before any client connects: a change made once `start` returned is never
/// missed). Both streams get the same filter, as in the module.
pub async fn prepare(
    aws: &SdkConfig,
    resources: &Resources,
    setup: PresenceSetup,
    namespaces: &Namespaces,
    stream_filter: EventFilter,
) -> Result<(ProxyHandler, Vec<Runner>), PresenceStartError> {
    let streams = [
        resources
            .connections_stream_arn
            .clone()
            .ok_or(PresenceStartError::NoStream("connections"))?,
        resources
            .subscriptions_stream_arn
            .clone()
            .ok_or(PresenceStartError::NoStream("subscriptions"))?,
    ];
    let deps = Arc::new(presence::SdkDeps::from_sdk_config(
        aws,
        lambda_config(resources, &setup, namespaces),
    ));
    let mut runners = Vec::with_capacity(streams.len());
    for stream_arn in streams {
        let poller = StreamPoller::at_latest(
            aws_sdk_dynamodbstreams::Client::new(aws),
            stream_arn,
            setup.stream,
            stream_filter.clone(),
        )
        .await?;
        let handler = batch_handler(Arc::clone(&deps));
        let runner: Runner = Box::new(move |context| poller.run(context, handler).boxed());
        runners.push(runner);
    }
    tracing::info!(destination = ?setup.destination, "presence: route and stream runners ready");
    Ok((proxy_handler(deps), runners))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::{ApiInfo, EventType, RequestContext};
    use crate::state::{Identity, Principal};
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
    use serde_json::json;

    /// The event the `presence` route's integration builds (see `integration.rs`).
    fn route_event(body: &str) -> Value {
        let api = ApiInfo {
            api_id: "api".into(),
            stage: "dev".into(),
            domain_name: "127.0.0.1:1".into(),
        };
        let identity = Identity {
            source_ip: "127.0.0.1".into(),
            user_agent: "ua".into(),
        };
        let principal = Principal {
            principal_id: "alice".into(),
            context: serde_json::Map::new(),
        };
        let context = RequestContext {
            api: &api,
            event_type: EventType::Message,
            route_key: "presence",
            connection_id: "c1=",
            connected_at: 5,
            request_id: "r",
            message_id: Some("m"),
            request_time_epoch: 1_700_000_000_000,
            identity: &identity,
            principal: Some(&principal),
            disconnect: None,
        }
        .to_value();
        json!({"requestContext": context, "body": body, "isBase64Encoded": false,
               "stageVariables": {"connections_table": "t"}})
    }

    #[test]
    fn the_route_event_is_a_websocket_proxy_request() {
        let request: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(route_event(r#"{"action":"presence","users":["u1"]}"#))
                .expect("deserializes into the Lambda type");
        let context = &request.request_context;
        assert_eq!(context.connection_id.as_deref(), Some("c1="));
        assert_eq!(context.route_key.as_deref(), Some("presence"));
        assert_eq!(context.event_type.as_deref(), Some("MESSAGE"));
        assert_eq!(context.request_time_epoch, 1_700_000_000_000);
        assert_eq!(
            context.authorizer.fields.get("principalId"),
            Some(&json!("alice"))
        );
        assert!(matches!(
            presence::Invocation::from_value(route_event("{}")),
            Ok(presence::Invocation::Route(_))
        ));
    }

    #[tokio::test]
    async fn the_route_handler_answers_a_malformed_question_with_an_error_frame() {
        // A refused question never reaches DynamoDB: an unreachable endpoint is fine.
        let aws = crate::provision::sdk_config("http://127.0.0.1:9", "us-east-1").await;
        let deps = presence::SdkDeps::from_sdk_config(
            &aws,
            presence::Config {
                connections_table: "t".into(),
                subscriptions_table: None,
                max_subscriptions_per_connection: 100,
                destination: presence::Destination::None,
                query_concurrency: 1,
                namespaces: Namespaces::default(),
                history_table: None,
                members_table: None,
                notifications_queue_url: None,
            },
        );
        let handler = proxy_handler(Arc::new(deps));
        let answer = handler(route_event(r#"{"action":"presence","users":"u1"}"#))
            .await
            .expect("the handler answers");
        assert_eq!(answer["statusCode"], 400);
        let body: Value =
            serde_json::from_str(answer["body"].as_str().expect("a text body")).expect("JSON");
        assert_eq!(
            body,
            json!({"type": "error", "error": "invalid_request",
                   "message": "`users` must be an array of user ids"})
        );
    }

    fn setup(destination: PresenceDestination) -> PresenceSetup {
        PresenceSetup {
            destination,
            ..PresenceSetup::default()
        }
    }

    #[test]
    fn the_lambda_config_names_the_provisioned_resources() {
        let resources = Resources {
            connections_table: "t".into(),
            connections_stream_arn: Some("s".into()),
            subscriptions_table: "s".into(),
            subscriptions_stream_arn: None,
            history_table: "h".into(),
            members_table: "m".into(),
            messages_topic_arn: "arn:topic".into(),
            messages_queue_url: "http://queue".into(),
            messages_dlq_url: String::new(),
            notifications_topic_arn: String::new(),
            notifications_queue_url: String::new(),
            notifications_dlq_url: String::new(),
        };
        let config = lambda_config(
            &resources,
            &setup(PresenceDestination::Queue),
            &Namespaces::default(),
        );
        assert_eq!(config.connections_table, "t");
        assert_eq!(
            config.destination,
            presence::Destination::Queue {
                queue_url: "http://queue".into()
            }
        );
        assert_eq!(
            lambda_config(
                &resources,
                &setup(PresenceDestination::Topic),
                &Namespaces::default()
            )
            .destination,
            presence::Destination::Topic {
                topic_arn: "arn:topic".into()
            }
        );
    }
}
