//! The pusher: fans notification requests from back ends (SQS batches, SNS events) out to
//! WebSocket connections through the API Gateway management API, publications to channels and
//! client emits included. See docs/pusher.md and docs/channels.md § Publications.
//!
//! One path, in the order a message travels it:
//! - `handler`: the Lambda entry points ([`handle`], [`handle_sqs`], [`handle_sns`]). SQS and
//!   SNS records become one `Message` each and go through one per-message function.
//! - `request` (pure): a message read once into one typed `Request`, whatever its kind (users,
//!   connections, broadcast, shard, channels, narrowed generation); its fields are the wire
//!   `NotificationRequest` with `data` as its raw bytes. Re-queue and shard bodies are
//!   serialized from it, so a field added to `NotificationRequest` travels through every hop.
//!   `emit` (pure) reads a client's emit into the same `Request`, or a refusal.
//! - `targets`: the reads that plan a request's deliveries (connections table or
//!   subscriptions table) and the one filter over what they found.
//! - `fanout`: [`Pusher`] and its one pipeline: post, prune, re-queue.
//!
//! The seams a [`Pusher`] holds: [`ConnectionStore`], [`SubscriptionStore`] and
//! [`HistoryStore`] (DynamoDB, `store`, `subscriptions` and `history`), [`Poster`] (management API), [`Outbox`] (SQS re-queue and
//! dead-letter queue) and [`MetricsSink`] (where an invocation's [`Metrics`] go: an EMF line
//! in the Lambda, a recorder in the tests). [`SdkPusher::from_sdk_config`] builds the real one
//! from an SDK configuration and an explicit [`Config`], so sumu-local can run the same
//! handler in-process.
//!
//! Public is what other crates use: the entry points, the [`Pusher`] and its seams (the tests
//! fake them), [`SdkPusher`] and [`Config`]. Everything else stays inside the crate.

mod config;
mod deadline;
mod emit;
mod fanout;
mod handler;
mod history;
mod metrics;
mod outbox;
mod poster;
mod request;
mod store;
mod subscriptions;
mod targets;

pub use config::{Config, ConfigError, Limits};
pub use fanout::{Pusher, PusherError};
pub use handler::{handle, handle_sns, handle_sqs};
pub use history::{HistoryStore, Offset};
pub use metrics::{EmfLog, Metrics, MetricsSink};
pub use outbox::{Outbox, OutboxError, SqsOutbox};
pub use poster::{DeleteOutcome, PostOutcome, Poster};
pub use store::{
    ConnectionItem, ConnectionKey, ConnectionStore, DynamoStore, ScanPage, StoreError,
};
pub use subscriptions::{SubscriptionItem, SubscriptionKey, SubscriptionStore};

use management_client::ManagementClient;

/// The pusher with its AWS-backed seams: DynamoDB and SQS through the SDK, the management API
/// through [`ManagementClient`] (the SDK's credentials), metrics as EMF lines on stdout.
pub type SdkPusher = Pusher<DynamoStore, ManagementClient, SqsOutbox, EmfLog>;

impl SdkPusher {
    /// Builds the clients once; `config` is explicit (not read from the environment).
    pub fn from_sdk_config(sdk_config: &aws_config::SdkConfig, config: &Config) -> SdkPusher {
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk_config),
            &config.connections_table,
            &config.subscriptions_table,
        );
        let store = match &config.history_table {
            Some(table) => store.with_history_table(table),
            None => store,
        };
        Pusher {
            store,
            poster: ManagementClient::new(
                sdk_config,
                &config.management_endpoint,
                config.limits.post_timeout,
            ),
            outbox: SqsOutbox::new(
                aws_sdk_sqs::Client::new(sdk_config),
                config.notifications_queue_url.clone(),
                config.dead_letter_queue_url.clone(),
            ),
            metrics: EmfLog,
            limits: config.limits.clone(),
            namespaces: config.namespaces.clone(),
        }
    }
}
