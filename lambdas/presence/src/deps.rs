//! What the handler works with: the three seams and the limits, and how the deployed Lambda
//! (and sumu-local) builds them from an SDK configuration.

use sumu_wire::Namespaces;

use crate::config::{Config, Destination};
use crate::sink::{self, SdkEventSink};
use crate::store::DynamoConnectionStore;
use crate::subscriptions::DynamoSubscriptionStore;

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
    /// Which channels keep history (read through `subscriptions`, crate::history).
    pub namespaces: Namespaces,
}

/// The deps of the deployed Lambda (and of sumu-local): DynamoDB, SNS/SQS.
pub type SdkDeps = Deps<DynamoConnectionStore, SdkEventSink, DynamoSubscriptionStore>;

impl SdkDeps {
    /// Builds the clients once from an SDK configuration and an explicit [`Config`] (no
    /// environment reads), so sumu-local can point them at its own endpoint.
    pub fn from_sdk_config(sdk_config: &aws_config::SdkConfig, config: Config) -> SdkDeps {
        let sqs = aws_sdk_sqs::Client::new(sdk_config);
        let sink = SdkEventSink {
            destination: match config.destination {
                Destination::Topic { topic_arn } => sink::MessagesDestination::Topic {
                    client: aws_sdk_sns::Client::new(sdk_config),
                    topic_arn,
                },
                Destination::Queue { queue_url } => sink::MessagesDestination::Queue {
                    client: sqs.clone(),
                    queue_url,
                },
                Destination::None => sink::MessagesDestination::Discard,
            },
            notifications: config
                .notifications_queue_url
                .map(|queue_url| (sqs, queue_url)),
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk_config);
        Deps {
            subscriptions: config.subscriptions_table.map(|subscriptions_table| {
                let store = DynamoSubscriptionStore::new(
                    dynamodb.clone(),
                    config.connections_table.clone(),
                    subscriptions_table,
                );
                let store = match config.history_table {
                    Some(history_table) => store.with_history_table(history_table),
                    None => store,
                };
                match config.members_table {
                    Some(members_table) => store.with_members_table(members_table),
                    None => store,
                }
            }),
            counter: DynamoConnectionStore::new(dynamodb, config.connections_table),
            sink,
            max_subscriptions_per_connection: config.max_subscriptions_per_connection,
            query_concurrency: config.query_concurrency,
            namespaces: config.namespaces,
        }
    }
}
