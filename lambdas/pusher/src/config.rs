//! The pusher's configuration: read from the environment once in `main`, or built explicitly
//! (sumu-local and the tests construct it directly).

use std::time::Duration;

use sumu_wire::namespaces::NamespaceError;
use sumu_wire::Namespaces;

/// Where the pusher reads, posts and re-queues, and how hard it pushes.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CONNECTIONS_TABLE`: the connections table name.
    pub connections_table: String,
    /// `SUBSCRIPTIONS_TABLE`: the subscriptions table name (docs/channels.md § Storage),
    /// where a publication to a channel finds its subscribers.
    pub subscriptions_table: String,
    /// `MANAGEMENT_ENDPOINT` (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`),
    /// or derived from `WEBSOCKET_API_ID`, `WEBSOCKET_STAGE` and `AWS_REGION`.
    pub management_endpoint: String,
    /// `NOTIFICATIONS_QUEUE_URL`: where narrowed requests (only the connections that still
    /// failed) are re-queued. Without it such a request fails as a whole and is redelivered.
    pub notifications_queue_url: Option<String>,
    /// `DEAD_LETTER_QUEUE_URL`: where rejected requests and exhausted ones are sent. Without
    /// it they are reported as failures, so the queue's own redrive policy dead-letters them.
    pub dead_letter_queue_url: Option<String>,
    /// `HISTORY_TABLE`: where channels that keep history keep it (docs/channels.md § History
    /// and recovery). Required when a namespace keeps history.
    pub history_table: Option<String>,
    /// `CHANNEL_NAMESPACES`: the JSON list of channel namespaces (which channels keep history).
    pub namespaces: Namespaces,
    /// The tunables.
    pub limits: Limits,
}

/// How hard the pusher pushes and how long it keeps trying.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `PUSHER_LOOKUP_CONCURRENCY`: DynamoDB Queries (per user / per connection id) and
    /// delete batches in flight at once.
    pub lookup_concurrency: usize,
    /// `PUSHER_POST_CONCURRENCY`: management-API posts in flight at once.
    pub post_concurrency: usize,
    /// `PUSHER_SCAN_SEGMENTS`: parallel Scan segments for a broadcast.
    pub scan_segments: u32,
    /// `PUSHER_MAX_ATTEMPTS`: posts to one connection within one invocation (first try
    /// included) before it counts as failed for this generation.
    pub max_post_attempts: u32,
    /// `PUSHER_MAX_GENERATIONS`: how many times the failed remainder of a request is
    /// re-queued before it goes to the dead-letter queue.
    pub max_generations: u32,
    /// `PUSHER_BACKOFF_BASE_MS`: the first retry waits up to this long (full jitter).
    pub backoff_base: Duration,
    /// `PUSHER_BACKOFF_CAP_MS`: no retry waits longer than this.
    pub backoff_cap: Duration,
    /// `PUSHER_SAFETY_MARGIN_MS`: time kept free before the Lambda's deadline to prune,
    /// re-queue and log; no post or retry starts inside it.
    pub safety_margin: Duration,
    /// `PUSHER_POST_TIMEOUT_MS`: one post attempt (connect + request + response).
    pub post_timeout: Duration,
    /// `PUSHER_REQUEUE_DELAY_S`: SQS delay of a re-queued request, doubled per generation
    /// (capped at SQS's 900 s).
    pub requeue_delay: Duration,
    /// `PUSHER_SHARD_THRESHOLD`: the most connection items one invocation reads for a
    /// broadcast. A larger broadcast is split into shards of at most this many that other
    /// invocations handle concurrently (docs/pusher.md); 0 never splits.
    pub shard_threshold: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lookup_concurrency: 16,
            post_concurrency: 200,
            scan_segments: 4,
            max_post_attempts: 5,
            max_generations: 3,
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_secs(2),
            safety_margin: Duration::from_secs(1),
            post_timeout: Duration::from_secs(3),
            requeue_delay: Duration::from_secs(5),
            shard_threshold: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("CHANNEL_NAMESPACES is invalid: {0}")]
    Namespaces(#[from] NamespaceError),
}

impl Config {
    /// Reads the configuration from the process environment (see docs/pusher.md).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment in production, a map in
    /// tests). Empty values count as unset.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let connections_table =
            get("CONNECTIONS_TABLE").ok_or(ConfigError::Missing("CONNECTIONS_TABLE"))?;
        let subscriptions_table =
            get("SUBSCRIPTIONS_TABLE").ok_or(ConfigError::Missing("SUBSCRIPTIONS_TABLE"))?;
        let management_endpoint = match get("MANAGEMENT_ENDPOINT") {
            Some(endpoint) => endpoint,
            None => {
                let api_id = get("WEBSOCKET_API_ID").ok_or(ConfigError::Missing(
                    "MANAGEMENT_ENDPOINT (or WEBSOCKET_API_ID)",
                ))?;
                let stage =
                    get("WEBSOCKET_STAGE").ok_or(ConfigError::Missing("WEBSOCKET_STAGE"))?;
                let region = get("AWS_REGION").ok_or(ConfigError::Missing("AWS_REGION"))?;
                format!("https://{api_id}.execute-api.{region}.amazonaws.com/{stage}")
            }
        };
        let defaults = Limits::default();
        let number = |name: &'static str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n >= min => Ok(n),
                    Ok(_) => Err(ConfigError::Invalid {
                        name,
                        value,
                        reason: "below the minimum",
                    }),
                    Err(_) => Err(ConfigError::Invalid {
                        name,
                        value,
                        reason: "not a whole number",
                    }),
                },
            }
        };
        let millis = |d: Duration| d.as_millis() as u64;
        let limits = Limits {
            lookup_concurrency: number(
                "PUSHER_LOOKUP_CONCURRENCY",
                defaults.lookup_concurrency as u64,
                1,
            )? as usize,
            post_concurrency: number(
                "PUSHER_POST_CONCURRENCY",
                defaults.post_concurrency as u64,
                1,
            )? as usize,
            scan_segments: number("PUSHER_SCAN_SEGMENTS", defaults.scan_segments.into(), 1)?
                .min(1_000_000) as u32,
            max_post_attempts: number("PUSHER_MAX_ATTEMPTS", defaults.max_post_attempts.into(), 1)?
                .min(100) as u32,
            max_generations: number("PUSHER_MAX_GENERATIONS", defaults.max_generations.into(), 0)?
                .min(100) as u32,
            backoff_base: Duration::from_millis(number(
                "PUSHER_BACKOFF_BASE_MS",
                millis(defaults.backoff_base),
                1,
            )?),
            backoff_cap: Duration::from_millis(number(
                "PUSHER_BACKOFF_CAP_MS",
                millis(defaults.backoff_cap),
                1,
            )?),
            safety_margin: Duration::from_millis(number(
                "PUSHER_SAFETY_MARGIN_MS",
                millis(defaults.safety_margin),
                0,
            )?),
            post_timeout: Duration::from_millis(number(
                "PUSHER_POST_TIMEOUT_MS",
                millis(defaults.post_timeout),
                1,
            )?),
            requeue_delay: Duration::from_secs(number(
                "PUSHER_REQUEUE_DELAY_S",
                defaults.requeue_delay.as_secs(),
                0,
            )?),
            shard_threshold: number("PUSHER_SHARD_THRESHOLD", defaults.shard_threshold.into(), 0)?
                .min(u64::from(u32::MAX)) as u32,
        };
        let namespaces = Namespaces::parse(&get("CHANNEL_NAMESPACES").unwrap_or_default())?;
        let history_table = get("HISTORY_TABLE");
        if namespaces.keeps_history() && history_table.is_none() {
            return Err(ConfigError::Missing(
                "HISTORY_TABLE (a channel namespace keeps history)",
            ));
        }
        Ok(Config {
            connections_table,
            subscriptions_table,
            management_endpoint,
            notifications_queue_url: get("NOTIFICATIONS_QUEUE_URL"),
            dead_letter_queue_url: get("DEAD_LETTER_QUEUE_URL"),
            history_table,
            namespaces,
            limits,
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
    fn the_management_endpoint_is_derived_from_api_id_stage_and_region() {
        let config = config(&[
            ("CONNECTIONS_TABLE", "conns"),
            ("SUBSCRIPTIONS_TABLE", "subs"),
            ("WEBSOCKET_API_ID", "abc123"),
            ("WEBSOCKET_STAGE", "prod"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(
            config.management_endpoint,
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
        );
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.subscriptions_table, "subs");
        assert_eq!(config.notifications_queue_url, None);
    }

    #[test]
    fn an_explicit_endpoint_and_limits_are_honoured() {
        let config = config(&[
            ("CONNECTIONS_TABLE", "conns"),
            ("SUBSCRIPTIONS_TABLE", "subs"),
            ("MANAGEMENT_ENDPOINT", "http://127.0.0.1:9/dev"),
            ("PUSHER_POST_CONCURRENCY", "64"),
            ("PUSHER_SCAN_SEGMENTS", "8"),
            ("PUSHER_MAX_GENERATIONS", "0"),
            ("PUSHER_SHARD_THRESHOLD", "500"),
            ("NOTIFICATIONS_QUEUE_URL", "http://q/notifications"),
        ])
        .unwrap();
        assert_eq!(config.limits.shard_threshold, 500);
        assert_eq!(config.management_endpoint, "http://127.0.0.1:9/dev");
        assert_eq!(config.limits.post_concurrency, 64);
        assert_eq!(config.limits.scan_segments, 8);
        assert_eq!(config.limits.max_generations, 0);
        assert_eq!(
            config.notifications_queue_url.as_deref(),
            Some("http://q/notifications")
        );
    }

    #[test]
    fn missing_and_invalid_values_are_named() {
        assert_eq!(
            config(&[]).unwrap_err(),
            ConfigError::Missing("CONNECTIONS_TABLE")
        );
        assert_eq!(
            config(&[("CONNECTIONS_TABLE", "t")]).unwrap_err(),
            ConfigError::Missing("SUBSCRIPTIONS_TABLE")
        );
        assert_eq!(
            config(&[("CONNECTIONS_TABLE", "t"), ("SUBSCRIPTIONS_TABLE", "s")]).unwrap_err(),
            ConfigError::Missing("MANAGEMENT_ENDPOINT (or WEBSOCKET_API_ID)")
        );
        let error = config(&[
            ("CONNECTIONS_TABLE", "t"),
            ("SUBSCRIPTIONS_TABLE", "s"),
            ("MANAGEMENT_ENDPOINT", "http://x"),
            ("PUSHER_POST_CONCURRENCY", "0"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    name: "PUSHER_POST_CONCURRENCY",
                    ..
                }
            ),
            "{error:?}"
        );
        let error = config(&[
            ("CONNECTIONS_TABLE", "t"),
            ("SUBSCRIPTIONS_TABLE", "s"),
            ("MANAGEMENT_ENDPOINT", "http://x"),
            ("PUSHER_SCAN_SEGMENTS", "four"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    name: "PUSHER_SCAN_SEGMENTS",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}
