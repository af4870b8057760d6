//! The resources' names and identifiers, as plain data: what provisioning is given
//! (the names, from the configuration) and what it returns (the tables' names, the topics'
//! ARNs and the queues' URLs the integrations, runners and presence use).

/// Names of the AWS resources the emulator creates and uses. Tests give each run its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    pub connections_table: String,
    pub subscriptions_table: String,
    pub history_table: String,
    pub members_table: String,
    pub messages_topic: String,
    pub messages_queue: String,
    pub messages_dlq: String,
    pub notifications_topic: String,
    pub notifications_queue: String,
    pub notifications_dlq: String,
}

impl ResourceNames {
    /// `{prefix}-connections`, `{prefix}-subscriptions`, `{prefix}-history`, `{prefix}-members`,
    /// `{prefix}-messages`,
    /// `{prefix}-messages-dlq`, `{prefix}-notifications`, `{prefix}-notifications-dlq`.
    pub fn with_prefix(prefix: &str) -> ResourceNames {
        ResourceNames {
            connections_table: format!("{prefix}-connections"),
            subscriptions_table: format!("{prefix}-subscriptions"),
            history_table: format!("{prefix}-history"),
            members_table: format!("{prefix}-members"),
            messages_topic: format!("{prefix}-messages"),
            messages_queue: format!("{prefix}-messages"),
            messages_dlq: format!("{prefix}-messages-dlq"),
            notifications_topic: format!("{prefix}-notifications"),
            notifications_queue: format!("{prefix}-notifications"),
            notifications_dlq: format!("{prefix}-notifications-dlq"),
        }
    }
}

/// Identifiers of the provisioned resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub connections_table: String,
    pub connections_stream_arn: Option<String>,
    pub subscriptions_table: String,
    /// The subscriptions table's stream (new and old images): channel members' input.
    pub subscriptions_stream_arn: Option<String>,
    pub history_table: String,
    pub members_table: String,
    pub messages_topic_arn: String,
    pub messages_queue_url: String,
    pub messages_dlq_url: String,
    pub notifications_topic_arn: String,
    pub notifications_queue_url: String,
    pub notifications_dlq_url: String,
}
