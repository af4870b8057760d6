//! The presence Lambda's configuration: read from the environment once, in `main`, or built
//! explicitly (sumu-local runs the same handler in-process with its own values).

use sumu_wire::namespaces::NamespaceError;
use sumu_wire::Namespaces;
use thiserror::Error;

/// Environment variable names (set by the Terraform module).
pub mod env {
    pub const CONNECTIONS_TABLE: &str = "CONNECTIONS_TABLE";
    /// `topic` | `queue` | `none`.
    pub const PRESENCE_DESTINATION: &str = "PRESENCE_DESTINATION";
    pub const MESSAGES_TOPIC_ARN: &str = "MESSAGES_TOPIC_ARN";
    pub const MESSAGES_QUEUE_URL: &str = "MESSAGES_QUEUE_URL";
    /// How many DynamoDB Queries run at once (default 16).
    pub const QUERY_CONCURRENCY: &str = "PRESENCE_QUERY_CONCURRENCY";
    /// The subscriptions table (optional: unset, `subscribe`/`unsubscribe` answer
    /// `channels_unavailable` and the stream does no subscription cleanup).
    pub const SUBSCRIPTIONS_TABLE: &str = "SUBSCRIPTIONS_TABLE";
    /// The per-connection cap on client subscriptions (default 100).
    pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: &str = "MAX_SUBSCRIPTIONS_PER_CONNECTION";
    /// The channel namespaces, a JSON list (docs/channels.md § History and recovery).
    pub const CHANNEL_NAMESPACES: &str = "CHANNEL_NAMESPACES";
    /// The history table; required when a namespace keeps history.
    pub const HISTORY_TABLE: &str = "HISTORY_TABLE";
    /// The members table (channel members, the live gauges); required when a namespace
    /// tracks members (`join_leave` or `lifecycle_events`).
    pub const MEMBERS_TABLE: &str = "MEMBERS_TABLE";
    /// The notifications queue, where `join`/`leave` frames go for the pusher to fan out;
    /// required when a namespace has `join_leave`.
    pub const NOTIFICATIONS_QUEUE_URL: &str = "NOTIFICATIONS_QUEUE_URL";
}

/// Queries in flight at once when none is configured: enough to answer 100 users in a few
/// round trips, far below DynamoDB's per-partition limits.
pub const DEFAULT_QUERY_CONCURRENCY: usize = 16;
/// Upper bound for `PRESENCE_QUERY_CONCURRENCY`, so a typo cannot open thousands of sockets.
pub const MAX_QUERY_CONCURRENCY: usize = 256;
/// The per-connection subscription cap when none is configured (DESIGN.md § Channels).
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 100;
/// Upper bound for `MAX_SUBSCRIPTIONS_PER_CONNECTION`: every subscription is an item the
/// cleanup deletes when the connection ends, so the cap bounds that work too.
pub const MAX_MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The connections table (partition key `user_id`, sort key `connection_id`).
    pub connections_table: String,
    /// Where presence events go.
    pub destination: Destination,
    /// Bound on concurrent Queries, for stream batches and presence questions alike.
    pub query_concurrency: usize,
    /// The subscriptions table (partition key `channel`, sort key `connection_id`, GSI
    /// `connection_id-index`); `None` when channels are not deployed.
    pub subscriptions_table: Option<String>,
    /// How many subscriptions one connection's `subscribe` may hold at once.
    pub max_subscriptions_per_connection: u32,
    /// Which channels keep history.
    pub namespaces: Namespaces,
    /// The history table (partition key `channel`, sort key `offset`); `None` when no
    /// namespace keeps history.
    pub history_table: Option<String>,
    /// The members table (partition key `channel`, sort key `user_id`); `None`: no member
    /// tracking and no gauges.
    pub members_table: Option<String>,
    /// The notifications queue `join`/`leave` frames are sent to.
    pub notifications_queue_url: Option<String>,
}

/// Where the stream's presence events are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// SNS `Publish` to the *messages* topic.
    Topic { topic_arn: String },
    /// SQS `SendMessage` to the *messages* queue.
    Queue { queue_url: String },
    /// Events are computed and logged, not delivered (the `presence` route still works).
    None,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} must be one of topic, queue, none (got {value:?})")]
    InvalidDestination { name: &'static str, value: String },
    #[error("{name} must be a whole number from 1 to {MAX_QUERY_CONCURRENCY} (got {value:?})")]
    InvalidConcurrency { name: &'static str, value: String },
    #[error(
        "{name} must be a whole number from 1 to {MAX_MAX_SUBSCRIPTIONS_PER_CONNECTION} (got {value:?})"
    )]
    InvalidSubscriptionCap { name: &'static str, value: String },
    #[error("CHANNEL_NAMESPACES is invalid: {0}")]
    Namespaces(#[from] NamespaceError),
}

impl Config {
    /// Reads the configuration from the process environment. Call it once, in `main`.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests). Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|value| !value.trim().is_empty());
        let require = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));

        let connections_table = require(env::CONNECTIONS_TABLE)?;
        let destination = match require(env::PRESENCE_DESTINATION)?.trim() {
            "topic" => Destination::Topic {
                topic_arn: require(env::MESSAGES_TOPIC_ARN)?,
            },
            "queue" => Destination::Queue {
                queue_url: require(env::MESSAGES_QUEUE_URL)?,
            },
            "none" => Destination::None,
            other => {
                return Err(ConfigError::InvalidDestination {
                    name: env::PRESENCE_DESTINATION,
                    value: other.to_owned(),
                })
            }
        };
        let query_concurrency = match get(env::QUERY_CONCURRENCY) {
            None => DEFAULT_QUERY_CONCURRENCY,
            Some(value) => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_QUERY_CONCURRENCY).contains(n))
                .ok_or(ConfigError::InvalidConcurrency {
                    name: env::QUERY_CONCURRENCY,
                    value,
                })?,
        };
        let max_subscriptions_per_connection = match get(env::MAX_SUBSCRIPTIONS_PER_CONNECTION) {
            None => DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            Some(value) => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_MAX_SUBSCRIPTIONS_PER_CONNECTION).contains(n))
                .ok_or(ConfigError::InvalidSubscriptionCap {
                    name: env::MAX_SUBSCRIPTIONS_PER_CONNECTION,
                    value,
                })?,
        };
        let namespaces = Namespaces::parse(&get(env::CHANNEL_NAMESPACES).unwrap_or_default())?;
        let history_table = get(env::HISTORY_TABLE).map(|name| name.trim().to_owned());
        if namespaces.keeps_history() && history_table.is_none() {
            return Err(ConfigError::Missing(env::HISTORY_TABLE));
        }
        let members_table = get(env::MEMBERS_TABLE).map(|name| name.trim().to_owned());
        if namespaces.tracks_members() && members_table.is_none() {
            return Err(ConfigError::Missing(env::MEMBERS_TABLE));
        }
        let notifications_queue_url =
            get(env::NOTIFICATIONS_QUEUE_URL).map(|url| url.trim().to_owned());
        if namespaces.announces_joins() && notifications_queue_url.is_none() {
            return Err(ConfigError::Missing(env::NOTIFICATIONS_QUEUE_URL));
        }
        Ok(Config {
            connections_table,
            destination,
            query_concurrency,
            subscriptions_table: get(env::SUBSCRIPTIONS_TABLE).map(|name| name.trim().to_owned()),
            max_subscriptions_per_connection,
            namespaces,
            history_table,
            members_table,
            notifications_queue_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(testkit::lookup_from(vars))
    }

    #[test]
    fn topic_destination_needs_the_topic_arn() {
        let base = [
            ("CONNECTIONS_TABLE", "t"),
            ("PRESENCE_DESTINATION", "topic"),
        ];
        assert_eq!(
            config(&base),
            Err(ConfigError::Missing("MESSAGES_TOPIC_ARN"))
        );
        let mut vars = base.to_vec();
        vars.push(("MESSAGES_TOPIC_ARN", "arn:aws:sns:us-east-1:1:m"));
        assert_eq!(
            config(&vars),
            Ok(Config {
                connections_table: "t".into(),
                destination: Destination::Topic {
                    topic_arn: "arn:aws:sns:us-east-1:1:m".into()
                },
                query_concurrency: DEFAULT_QUERY_CONCURRENCY,
                subscriptions_table: None,
                max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
                namespaces: Namespaces::default(),
                history_table: None,
                members_table: None,
                notifications_queue_url: None,
            })
        );
    }

    #[test]
    fn channels_settings_are_optional_and_the_cap_is_bounded() {
        let base = [("CONNECTIONS_TABLE", "t"), ("PRESENCE_DESTINATION", "none")];
        let defaults = config(&base).unwrap();
        assert_eq!(defaults.subscriptions_table, None);
        assert_eq!(defaults.max_subscriptions_per_connection, 100);

        let mut vars = base.to_vec();
        vars.push(("SUBSCRIPTIONS_TABLE", "sumu-subscriptions"));
        vars.push(("MAX_SUBSCRIPTIONS_PER_CONNECTION", "10000"));
        let set = config(&vars).unwrap();
        assert_eq!(
            set.subscriptions_table.as_deref(),
            Some("sumu-subscriptions")
        );
        assert_eq!(set.max_subscriptions_per_connection, 10_000);

        let mut blank = base.to_vec();
        blank.push(("SUBSCRIPTIONS_TABLE", "  "));
        assert_eq!(config(&blank).unwrap().subscriptions_table, None);

        for bad in ["0", "-1", "10001", "many", "1.5"] {
            let mut vars = base.to_vec();
            vars.push(("MAX_SUBSCRIPTIONS_PER_CONNECTION", bad));
            assert_eq!(
                config(&vars),
                Err(ConfigError::InvalidSubscriptionCap {
                    name: "MAX_SUBSCRIPTIONS_PER_CONNECTION",
                    value: bad.into()
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn queue_destination_needs_the_queue_url() {
        let vars = [
            ("CONNECTIONS_TABLE", "t"),
            ("PRESENCE_DESTINATION", "queue"),
            ("MESSAGES_QUEUE_URL", "http://q"),
            ("PRESENCE_QUERY_CONCURRENCY", "4"),
        ];
        let config = config(&vars).unwrap();
        assert_eq!(
            config.destination,
            Destination::Queue {
                queue_url: "http://q".into()
            }
        );
        assert_eq!(config.query_concurrency, 4);
    }

    #[test]
    fn missing_or_unknown_values_are_refused_with_their_name() {
        assert_eq!(
            config(&[("PRESENCE_DESTINATION", "none")]),
            Err(ConfigError::Missing("CONNECTIONS_TABLE"))
        );
        assert_eq!(
            config(&[("CONNECTIONS_TABLE", "t")]),
            Err(ConfigError::Missing("PRESENCE_DESTINATION"))
        );
        assert!(matches!(
            config(&[
                ("CONNECTIONS_TABLE", "t"),
                ("PRESENCE_DESTINATION", "kafka")
            ]),
            Err(ConfigError::InvalidDestination { .. })
        ));
        for bad in ["0", "-1", "many", "100000"] {
            assert!(
                matches!(
                    config(&[
                        ("CONNECTIONS_TABLE", "t"),
                        ("PRESENCE_DESTINATION", "none"),
                        ("PRESENCE_QUERY_CONCURRENCY", bad)
                    ]),
                    Err(ConfigError::InvalidConcurrency { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn member_tracking_namespaces_need_the_members_table_and_join_leave_the_queue() {
        let base = [
            ("CONNECTIONS_TABLE", "t"),
            ("PRESENCE_DESTINATION", "none"),
            (
                "CHANNEL_NAMESPACES",
                r#"[{"pattern":"room/*","join_leave":true}]"#,
            ),
        ];
        assert_eq!(config(&base), Err(ConfigError::Missing("MEMBERS_TABLE")));
        let mut vars = base.to_vec();
        vars.push(("MEMBERS_TABLE", "sumu-members"));
        assert_eq!(
            config(&vars),
            Err(ConfigError::Missing("NOTIFICATIONS_QUEUE_URL"))
        );
        vars.push(("NOTIFICATIONS_QUEUE_URL", "https://sqs/notifications"));
        let config = config(&vars).unwrap();
        assert_eq!(config.members_table.as_deref(), Some("sumu-members"));
        assert_eq!(
            config.notifications_queue_url.as_deref(),
            Some("https://sqs/notifications")
        );
    }
}
