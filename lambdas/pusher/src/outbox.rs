//! Where requests go when they cannot finish here: the notifications queue (a narrowed
//! re-queue) and the dead-letter queue (a rejection, or retries exhausted).

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use sumu_wire::notification_attributes;

use crate::request::SHARD_ATTRIBUTE;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error("SendMessage to {queue} failed: {message}")]
    Send {
        queue: &'static str,
        message: String,
    },
}

/// The narrow seam between the fan-out logic and SQS.
pub trait Outbox: Sync {
    /// Sends a narrowed request back to the notifications queue, marked with `generation`,
    /// after `delay`; `verbatim`: its `data` is the frame the others got (`sumu_frame`),
    /// otherwise the back end's own (a narrowed `disconnect`).
    fn requeue(
        &self,
        body: String,
        generation: u32,
        delay: Duration,
        verbatim: bool,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;
    /// Sends `body` to the dead-letter queue with a `rejection_reason` attribute.
    fn dead_letter(
        &self,
        body: String,
        reason: &'static str,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Whether [`Outbox::enqueue_shard`] has a queue to send to.
    fn can_enqueue_shards(&self) -> bool {
        false
    }

    /// Sends one shard of a broadcast to the notifications queue, at once: `body` with the
    /// `sumu_shard` attribute `shard` and `generation`.
    fn enqueue_shard(
        &self,
        body: String,
        shard: String,
        generation: u32,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send {
        let _ = (body, shard, generation);
        async { Err(OutboxError::NotConfigured("NOTIFICATIONS_QUEUE_URL")) }
    }
}

/// The two queues in SQS.
#[derive(Debug, Clone)]
pub struct SqsOutbox {
    client: aws_sdk_sqs::Client,
    notifications_queue_url: Option<String>,
    dead_letter_queue_url: Option<String>,
}

impl SqsOutbox {
    pub fn new(
        client: aws_sdk_sqs::Client,
        notifications_queue_url: Option<String>,
        dead_letter_queue_url: Option<String>,
    ) -> Self {
        SqsOutbox {
            client,
            notifications_queue_url,
            dead_letter_queue_url,
        }
    }
}

/// SQS's maximum `DelaySeconds`.
const MAX_DELAY_SECONDS: u64 = 900;

fn attribute(data_type: &str, value: String) -> Result<MessageAttributeValue, OutboxError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| OutboxError::Send {
            queue: "SQS",
            message: e.to_string(),
        })
}

fn describe(err: impl std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl Outbox for SqsOutbox {
    async fn requeue(
        &self,
        body: String,
        generation: u32,
        delay: Duration,
        verbatim: bool,
    ) -> Result<(), OutboxError> {
        let queue = "NOTIFICATIONS_QUEUE_URL";
        let url = self
            .notifications_queue_url
            .as_deref()
            .ok_or(OutboxError::NotConfigured(queue))?;
        let mut message = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(delay.as_secs().min(MAX_DELAY_SECONDS) as i32)
            .message_attributes(
                notification_attributes::GENERATION,
                attribute("Number", generation.to_string())?,
            );
        if verbatim {
            // Its data is the frame the other targets got: delivered as it is.
            message = message.message_attributes(
                notification_attributes::FRAME,
                attribute(
                    "String",
                    notification_attributes::FRAME_VERBATIM.to_string(),
                )?,
            );
        }
        message.send().await.map_err(|e| OutboxError::Send {
            queue,
            message: describe(e),
        })?;
        Ok(())
    }

    fn can_enqueue_shards(&self) -> bool {
        self.notifications_queue_url.is_some()
    }

    async fn enqueue_shard(
        &self,
        body: String,
        shard: String,
        generation: u32,
    ) -> Result<(), OutboxError> {
        let queue = "NOTIFICATIONS_QUEUE_URL";
        let url = self
            .notifications_queue_url
            .as_deref()
            .ok_or(OutboxError::NotConfigured(queue))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes(
                notification_attributes::GENERATION,
                attribute("Number", generation.to_string())?,
            )
            .message_attributes(SHARD_ATTRIBUTE, attribute("String", shard)?)
            .send()
            .await
            .map_err(|e| OutboxError::Send {
                queue,
                message: describe(e),
            })?;
        Ok(())
    }

    async fn dead_letter(&self, body: String, reason: &'static str) -> Result<(), OutboxError> {
        let queue = "DEAD_LETTER_QUEUE_URL";
        let url = self
            .dead_letter_queue_url
            .as_deref()
            .ok_or(OutboxError::NotConfigured(queue))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes(
                notification_attributes::REJECTION_REASON,
                attribute("String", reason.to_string())?,
            )
            .send()
            .await
            .map_err(|e| OutboxError::Send {
                queue,
                message: describe(e),
            })?;
        Ok(())
    }
}
