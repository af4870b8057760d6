//! The emulator's configuration, as plain data: built by `main` from flags and environment, or
//! by tests directly. It names no behaviour (no runner, no handler: those are
//! [`Extensions`](crate::Extensions) given to `start`) and imports only the
//! leaf modules `resources` (the resource names) and `dev_idp` (the development signing key),
//! so it can be read first.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use sumu_wire::Namespaces;

use crate::dev_idp::DevIdentityProvider;
use crate::resources::ResourceNames;

/// Everything `start` needs to know, as data.
pub struct Config {
    /// The stage in every URL (`ws://HOST:PORT/{stage}`).
    pub stage: String,
    pub api_id: String,
    pub region: String,
    /// The AWS-compatible endpoint (moto) integrations call and resources are created on.
    pub aws_endpoint: String,
    /// Directory holding `routes.json` and the templates.
    pub templates_dir: PathBuf,
    pub names: ResourceNames,
    pub limits: Limits,
    /// All must be present and non-empty or `$connect` is refused with 401 (as on AWS).
    pub identity_sources: Vec<IdentitySource>,
    pub identity_provider: Arc<DevIdentityProvider>,
    pub authorizer: AuthorizerSetup,
    /// Channel grants every connection gets, `{sub}` = its principal (the module's
    /// `channels.static_subscribe` / `static_publish`). Applies to the development issuer's
    /// authorizer; `AuthorizerSetup::Custom` brings its own (`CHANNELS_STATIC_*`).
    pub static_grants: authorizer::StaticGrants,
    /// The presence handler on the `presence` route and the connections table's stream
    /// (docs/presence.md); `None` runs neither (the route then answers `Internal server error`).
    pub presence: Option<PresenceSetup>,
    /// How the pusher runners (notifications queue and topic) run.
    pub pusher: PusherSetup,
    /// Where the management API records the calls it answers ([`crate::call_log`]); none when
    /// `None`.
    pub aws_call_log: Option<PathBuf>,
    /// The channel namespaces (the module's `channel_namespaces`): which channels keep history.
    pub channel_namespaces: Namespaces,
}

impl Config {
    /// The defaults for an endpoint and a signing key: stage `dev`, resources prefixed
    /// `sumu-local`, AWS's limits, identity from the `authorization` query parameter, dev tokens
    /// only, the repository's `mapping-templates/`, presence and the pusher on.
    pub fn new(aws_endpoint: &str, identity_provider: Arc<DevIdentityProvider>) -> Config {
        Config {
            stage: "dev".into(),
            api_id: "sumulocal".into(),
            region: "us-east-1".into(),
            aws_endpoint: aws_endpoint.trim_end_matches('/').into(),
            templates_dir: default_templates_dir(),
            names: ResourceNames::with_prefix("sumu-local"),
            limits: Limits::default(),
            identity_sources: vec![IdentitySource::QueryString("authorization".into())],
            identity_provider,
            authorizer: AuthorizerSetup::DevIssuer,
            static_grants: authorizer::StaticGrants::default(),
            presence: Some(PresenceSetup::default()),
            pusher: Default::default(),
            aws_call_log: None,
            channel_namespaces: Namespaces::default(),
        }
    }
}

/// The repository's `mapping-templates/` directory (the default template location).
pub fn default_templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mapping-templates")
}

/// API Gateway's WebSocket limits; the timeouts are configurable so tests take seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(10 * 60),
            max_duration: Duration::from_secs(2 * 60 * 60),
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
        }
    }
}

/// Which tokens `$connect` accepts.
// Built once at start and read once: the size of the `Custom` variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AuthorizerSetup {
    /// Only tokens from the development identity provider (the default).
    DevIssuer,
    /// This authorizer configuration (e.g. `authorizer::Config::from_env()`, the Lambda's own
    /// variables), for trying a real identity provider locally.
    Custom(authorizer::Config),
}

/// An identity source, as API Gateway's `route.request.querystring.X` / `route.request.header.X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    QueryString(String),
    Header(String),
}

impl FromStr for IdentitySource {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix("route.request.querystring.") {
            Ok(IdentitySource::QueryString(name.to_string()))
        } else if let Some(name) = text.strip_prefix("route.request.header.") {
            Ok(IdentitySource::Header(name.to_ascii_lowercase()))
        } else {
            Err(format!(
                "identity source {text:?}: expected route.request.querystring.NAME or route.request.header.NAME"
            ))
        }
    }
}

/// Where the stream's ONLINE/OFFLINE events go (the module's `presence_destination`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresenceDestination {
    /// The messages topic; the messages queue is subscribed to it, so both see the events.
    #[default]
    Topic,
    /// The messages queue only.
    Queue,
    /// Computed and logged, not delivered.
    None,
}

impl FromStr for PresenceDestination {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "topic" => Ok(PresenceDestination::Topic),
            "queue" => Ok(PresenceDestination::Queue),
            "none" => Ok(PresenceDestination::None),
            other => Err(format!("expected topic, queue or none, got {other:?}")),
        }
    }
}

/// How sumu-local runs presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceSetup {
    pub destination: PresenceDestination,
    pub stream: StreamSettings,
    /// A client's subscribes per connection at most (the module's
    /// `channels.max_subscriptions_per_connection`).
    pub max_subscriptions_per_connection: u32,
}

impl Default for PresenceSetup {
    fn default() -> Self {
        PresenceSetup {
            destination: PresenceDestination::default(),
            stream: StreamSettings::default(),
            max_subscriptions_per_connection:
                presence::config::DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
        }
    }
}

/// The settings of the connections table stream's event source mapping (`stream_runner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Pause between polls of a shard that had nothing new (Lambda polls about 4 times a second).
    pub poll_interval: Duration,
    /// Records per batch at most (`batch_size`; the module's default is 100).
    pub batch_size: i32,
    /// Retries of a failing record before it is skipped (`maximum_retry_attempts`; module: 5).
    pub max_retry_attempts: u32,
    /// How often the stream is described again to find new shards.
    pub describe_interval: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            poll_interval: Duration::from_millis(200),
            batch_size: 100,
            max_retry_attempts: 5,
            describe_interval: Duration::from_secs(10),
        }
    }
}

/// How sumu-local runs the pusher.
#[derive(Debug, Clone)]
pub struct PusherSetup {
    /// Run the queue and topic runners at all.
    pub enabled: bool,
    /// The management API the pusher posts to; `None`: sumu-local's own.
    pub management_endpoint: Option<String>,
    /// The pusher's tunables (`PUSHER_*` on AWS).
    pub limits: pusher::Limits,
    /// The function timeout: every invocation gets this deadline.
    pub timeout: Duration,
    /// How long a failed topic notification waits before its next attempt.
    pub sns_retry_after: Duration,
    /// Pollers of the notifications queue, each an invocation at a time on a thread of its own:
    /// the event source's `maximum_concurrency` (the module's `limits.pusher_max_concurrency`).
    /// One keeps local runs deterministic; the shards of a large broadcast run concurrently
    /// with more.
    pub queue_pollers: usize,
    /// Messages per queue invocation (the module's `limits.pusher_batch_size`, 1–10). An
    /// invocation handles its messages one after another, so shards spread over pollers only
    /// as far as batches let them (docs/pusher.md).
    pub queue_batch_size: i32,
}

impl Default for PusherSetup {
    fn default() -> Self {
        PusherSetup {
            enabled: true,
            management_endpoint: None,
            limits: pusher::Limits::default(),
            timeout: Duration::from_secs(30),
            sns_retry_after: Duration::from_secs(5),
            queue_pollers: 1,
            queue_batch_size: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_from_their_flag_values() {
        assert_eq!("topic".parse(), Ok(PresenceDestination::Topic));
        assert_eq!("queue".parse(), Ok(PresenceDestination::Queue));
        assert_eq!("none".parse(), Ok(PresenceDestination::None));
        assert!("kafka".parse::<PresenceDestination>().is_err());
    }
}
