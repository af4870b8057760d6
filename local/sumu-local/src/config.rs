//! The emulator's configuration: built by `main` from flags/environment, or by tests directly.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::authorizer_bridge::IdentitySource;
use crate::dev_idp::DevIdentityProvider;
use crate::integration::ProxyHandler;
use crate::presence_local::PresenceSetup;
use crate::runners::Runner;

/// Names of the AWS resources the emulator creates and uses. Tests give each run its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    pub connections_table: String,
    pub subscriptions_table: String,
    pub messages_topic: String,
    pub messages_queue: String,
    pub messages_dlq: String,
    pub notifications_topic: String,
    pub notifications_queue: String,
    pub notifications_dlq: String,
}

impl ResourceNames {
    /// `{prefix}-connections`, `{prefix}-subscriptions`, `{prefix}-messages`, `{prefix}-messages-dlq`,
    /// `{prefix}-notifications`, `{prefix}-notifications-dlq`.
    pub fn with_prefix(prefix: &str) -> ResourceNames {
        ResourceNames {
            connections_table: format!("{prefix}-connections"),
            subscriptions_table: format!("{prefix}-subscriptions"),
            messages_topic: format!("{prefix}-messages"),
            messages_queue: format!("{prefix}-messages"),
            messages_dlq: format!("{prefix}-messages-dlq"),
            notifications_topic: format!("{prefix}-notifications"),
            notifications_queue: format!("{prefix}-notifications"),
            notifications_dlq: format!("{prefix}-notifications-dlq"),
        }
    }
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
    /// Background tasks started with the server (event-source pollers of issues 5 and 6).
    pub runners: Vec<Runner>,
    /// In-process handlers of `AWS_PROXY` routes, by function name.
    pub proxies: HashMap<String, ProxyHandler>,
    /// The presence handler on the `presence` route and the connections table's stream
    /// (issue 5); `None` runs neither (the route then answers `Internal server error`).
    pub presence: Option<PresenceSetup>,

    /// How the pusher runners (notifications queue and topic) run.
    pub pusher: crate::runners::pusher::PusherSetup,
}

impl Config {
    /// The defaults for an endpoint and a signing key: stage `dev`, resources prefixed
    /// `sumu-local`, AWS's limits, identity from the `authorization` query parameter, dev tokens
    /// only, the repository's `mapping-templates/`, the default runners.
    pub fn new(aws_endpoint: &str, identity_provider: Arc<DevIdentityProvider>) -> Config {
        Config {
            stage: "dev".into(),
            api_id: "sumulocal".into(),
            region: "us-east-1".into(),
            aws_endpoint: aws_endpoint.trim_end_matches('/').into(),
            templates_dir: crate::routes::default_templates_dir(),
            names: ResourceNames::with_prefix("sumu-local"),
            limits: Limits::default(),
            identity_sources: vec![IdentitySource::QueryString("authorization".into())],
            identity_provider,
            authorizer: AuthorizerSetup::DevIssuer,
            static_grants: authorizer::StaticGrants::default(),
            runners: crate::runners::default_runners(),
            proxies: HashMap::new(),
            presence: Some(PresenceSetup::default()),

            pusher: Default::default(),
        }
    }
}
