//! The pusher: fans notification requests from back ends (SQS batches, SNS events) out to
//! WebSocket connections through the API Gateway management API, publications to channels and
//! client emits included. See docs/pusher.md and docs/channels.md § Publications.
//!
//! The handler is [`handle`] (or [`handle_sqs`] / [`handle_sns`]) with a [`Pusher`] holding
//! its three seams: [`ConnectionStore`] (DynamoDB, with [`SubscriptionStore`] for the
//! subscriptions table), [`Poster`] (management API) and
//! [`Outbox`] (SQS re-queue and dead-letter queue). [`SdkPusher::from_sdk_config`] builds the
//! real one from an SDK configuration and an explicit [`Config`], so sumu-local can run the
//! same handler in-process.

pub mod config;
pub mod connections;
pub mod deadline;
pub mod emit;
pub mod fanout;
pub mod handler;
pub mod metrics;
pub mod outbox;
pub mod poster;
pub mod request;
pub mod sigv4;
pub mod store;
pub mod subscriptions;
pub mod targets;

pub use config::{Config, ConfigError, Limits};
pub use deadline::Deadline;
pub use fanout::{Pusher, PusherError};
pub use handler::{handle, handle_sns, handle_sqs, process_sns, process_sqs};
pub use metrics::Metrics;
pub use outbox::{Outbox, OutboxError, SqsOutbox};
pub use poster::{LeanPoster, PostOutcome, Poster};
pub use store::{ConnectionItem, ConnectionKey, ConnectionStore, DynamoStore, StoreError};
pub use subscriptions::{SubscriptionItem, SubscriptionKey, SubscriptionStore};

/// The pusher with its AWS-backed seams: DynamoDB and SQS through the SDK, the management API
/// through [`LeanPoster`] (the SDK's credentials).
pub type SdkPusher = Pusher<DynamoStore, LeanPoster, SqsOutbox>;

impl SdkPusher {
    /// Builds the clients once; `config` is explicit (not read from the environment).
    pub fn from_sdk_config(sdk_config: &aws_config::SdkConfig, config: &Config) -> SdkPusher {
        Pusher {
            store: DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk_config),
                &config.connections_table,
                &config.subscriptions_table,
            ),
            poster: LeanPoster::new(
                sdk_config,
                &config.management_endpoint,
                config.limits.post_timeout,
            ),
            outbox: SqsOutbox::new(
                aws_sdk_sqs::Client::new(sdk_config),
                config.notifications_queue_url.clone(),
                config.dead_letter_queue_url.clone(),
            ),
            limits: config.limits.clone(),
        }
    }
}
