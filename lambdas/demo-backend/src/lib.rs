//! The demo back end: reads client messages and presence events from the *messages*
//! topic/queue and answers with notification requests on the *notifications* queue.
//!
//! - presence events → broadcast `{"type":"presence",…}` to everyone except their subject;
//! - `{"type":"chat","mode":…}` → unicast (echo to the sender), multicast (`to` + the sender)
//!   or broadcast (everyone except the sender), each frame naming the trusted sender; mode
//!   `room` → a channel publication to `room/<room>` (every subscriber of that room);
//! - `{"type":"who_is_online"}` → `{"type":"online_users",…}` to the asking connection.
//!
//! See docs/demo.md. [`DemoBackend::from_sdk_config`] is how `sumu-local` runs it in-process.

mod handler;
mod inbound;
mod notifier;
mod online;
mod plan;

pub use handler::{handle, DemoError, DemoEvent};
pub use inbound::{
    Chat, ClientMessage, Envelope, Inbound, Malformed, Mode, Route, Sender, MAX_RECIPIENTS,
    MAX_TEXT_CHARS, MAX_USER_ID_BYTES, ROOM_CHANNEL_PREFIX,
};
pub use notifier::{Notifier, NotifyError, SqsNotifier};
pub use online::{DynamoOnlineUsers, LookupError, OnlineUsers};
pub use plan::{
    chat_request, online_users_request, presence_request, OnlineUser, MAX_LISTED_USERS,
};

use aws_config::SdkConfig;

/// Where the back end writes and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The pusher's input: notification requests are sent here.
    pub notifications_queue_url: String,
    /// The connections table, scanned to answer "who is online".
    pub connections_table: String,
}

#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is not set")]
pub struct ConfigError(pub &'static str);

impl Config {
    /// `NOTIFICATIONS_QUEUE_URL` and `CONNECTIONS_TABLE`.
    pub fn from_env() -> Result<Config, ConfigError> {
        let required = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .ok_or(ConfigError(name))
        };
        Ok(Config {
            notifications_queue_url: required("NOTIFICATIONS_QUEUE_URL")?,
            connections_table: required("CONNECTIONS_TABLE")?,
        })
    }
}

/// The back end with its two seams: where requests go, and who is online.
#[derive(Debug, Clone)]
pub struct DemoBackend<N, U> {
    notifier: N,
    online: U,
}

impl<N: Notifier, U: OnlineUsers> DemoBackend<N, U> {
    pub fn new(notifier: N, online: U) -> DemoBackend<N, U> {
        DemoBackend { notifier, online }
    }

    /// Where this back end sends notification requests.
    pub fn notifier(&self) -> &N {
        &self.notifier
    }
}

/// The back end as deployed: SQS for requests, DynamoDB for who is online.
pub type AwsDemoBackend = DemoBackend<SqsNotifier, DynamoOnlineUsers>;

impl AwsDemoBackend {
    /// Builds the AWS clients from `sdk` (which carries region, credentials and any endpoint
    /// override, e.g. sumu-local's moto endpoint).
    pub fn from_sdk_config(sdk: &SdkConfig, config: Config) -> AwsDemoBackend {
        DemoBackend::new(
            SqsNotifier::new(
                aws_sdk_sqs::Client::new(sdk),
                config.notifications_queue_url,
            ),
            DynamoOnlineUsers::new(aws_sdk_dynamodb::Client::new(sdk), config.connections_table),
        )
    }
}
