//! The back end's side, through the deployment's queues and topics only: notification requests
//! sent to the notifications queue or topic, messages read from the messages queue and the
//! pusher's dead-letter queue.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_config::SdkConfig;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use tokio::time::Instant;

use crate::verdict::{fail, Verdict};

/// Every test user's name starts with this; messages on the queues about such a user, or
/// carrying it, are the suite's (and are deleted when met).
pub const USER_PREFIX: &str = "sumu-conformance-";

/// A message read from a queue.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    /// The body as JSON, `Null` when it is not JSON.
    pub json: Value,
    /// Message attributes by name (their string values).
    pub attributes: HashMap<String, String>,
}

impl Received {
    fn from_sqs(message: &aws_sdk_sqs::types::Message) -> Received {
        let body = message.body().unwrap_or_default().to_string();
        let attributes = message
            .message_attributes()
            .map(|attributes| {
                attributes
                    .iter()
                    .filter_map(|(name, value)| {
                        value
                            .string_value()
                            .map(|text| (name.clone(), text.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Received {
            json: serde_json::from_str(&body).unwrap_or(Value::Null),
            body,
            attributes,
        }
    }
}

pub struct Backend {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    /// The user ids of the suite's users met so far (their tokens' principals).
    principals: Mutex<HashSet<String>>,
}

impl Backend {
    pub fn new(aws: &SdkConfig) -> Backend {
        Backend {
            sqs: aws_sdk_sqs::Client::new(aws),
            sns: aws_sdk_sns::Client::new(aws),
            principals: Mutex::new(HashSet::new()),
        }
    }

    pub fn remember_principal(&self, principal: &str) {
        if let Ok(mut principals) = self.principals.lock() {
            principals.insert(principal.to_string());
        }
    }

    /// Made by this suite (any run): tagged by a check, or about one of its users (presence
    /// events, messages of its clients). Such messages are deleted when met; others are put
    /// back at once.
    fn is_the_suites(&self, received: &Received) -> bool {
        let user = received.attributes.get("user_id");
        received.body.contains(USER_PREFIX)
            || user.is_some_and(|user| user.starts_with(USER_PREFIX))
            || user.is_some_and(|user| {
                self.principals
                    .lock()
                    .is_ok_and(|principals| principals.contains(user))
            })
    }

    pub async fn send_to_queue(&self, queue_url: &str, body: &str) -> Result<(), Verdict> {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| {
                fail(format!(
                    "sending a notification request to {queue_url} failed: {}: is notifications_queue_url right, and may these AWS credentials sqs:SendMessage to it?",
                    aws_sdk_sqs::error::DisplayErrorContext(&error)
                ))
            })
    }

    pub async fn publish_to_topic(&self, topic_arn: &str, body: &str) -> Result<(), Verdict> {
        self.sns
            .publish()
            .topic_arn(topic_arn)
            .message(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| {
                fail(format!(
                    "publishing a notification request to {topic_arn} failed: {}: is notifications_topic_arn right, and may these AWS credentials sns:Publish to it?",
                    aws_sdk_sns::error::DisplayErrorContext(&error)
                ))
            })
    }

    /// Reads `queue_url` until a message `wanted` accepts arrives (deleted, and returned) or the
    /// deadline passes. Messages of this suite that are not wanted are deleted; anyone else's
    /// are made visible again at once (they still count a receive: see the README).
    pub async fn wait_for_message(
        &self,
        queue_url: &str,
        deadline: Duration,
        what: &str,
        hint: &str,
        wanted: impl Fn(&Received) -> bool,
    ) -> Result<Received, Verdict> {
        let until = Instant::now() + deadline;
        let mut seen_of_ours = Vec::new();
        while Instant::now() < until {
            let answer = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|error| {
                    fail(format!(
                        "reading {queue_url} failed: {}: is the queue URL in the outputs right, and may these AWS credentials sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility on it?",
                        aws_sdk_sqs::error::DisplayErrorContext(&error)
                    ))
                })?;
            let mut found = None;
            for message in answer.messages() {
                let received = Received::from_sqs(message);
                let handle = message.receipt_handle().unwrap_or_default();
                if found.is_none() && wanted(&received) {
                    self.delete(queue_url, handle).await;
                    found = Some(received);
                } else if self.is_the_suites(&received) {
                    self.delete(queue_url, handle).await;
                    seen_of_ours.push(received.body);
                } else {
                    self.release(queue_url, handle).await;
                }
            }
            if let Some(received) = found {
                return Ok(received);
            }
        }
        let instead = if seen_of_ours.is_empty() {
            String::new()
        } else {
            let shown: Vec<&str> = seen_of_ours.iter().take(3).map(String::as_str).collect();
            format!(" (other messages of the suite came: {})", shown.join(", "))
        };
        Err(fail(format!(
            "{queue_url} got no {what} within {deadline:?}{instead}: {hint}"
        )))
    }

    /// Whether the queue exists and can be read: checked before a check waits on it, so a wrong
    /// URL is named at once.
    pub async fn queue_is_readable(&self, queue_url: &str, output: &str) -> Result<(), Verdict> {
        self.sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| {
                fail(format!(
                    "the queue {queue_url} ({output}) cannot be read: {}: is the output right, and may these AWS credentials sqs:GetQueueAttributes and sqs:ReceiveMessage on it?",
                    aws_sdk_sqs::error::DisplayErrorContext(&error)
                ))
            })
    }

    async fn delete(&self, queue_url: &str, handle: &str) {
        // Best effort: a message left behind is met (and deleted) by a later read.
        let _ = self
            .sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .send()
            .await;
    }

    async fn release(&self, queue_url: &str, handle: &str) {
        let _ = self
            .sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
}
