//! I/O: handing notification requests to the pusher through the notifications queue.

use std::future::Future;

use aws_sdk_sqs::error::DisplayErrorContext;
use sumu_wire::NotificationRequest;

/// Sending failed; the message that caused the request is retried.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("could not serialize the notification request: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("SQS SendMessage to the notifications queue failed: {}", DisplayErrorContext(.0.as_ref()))]
    Sqs(Box<aws_sdk_sqs::Error>),
}

/// Where notification requests go. The seam lets the logic be tested with a recording fake.
pub trait Notifier: Send + Sync {
    fn notify(
        &self,
        request: &NotificationRequest,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// Sends each request as the JSON body of one message on the notifications queue.
#[derive(Debug, Clone)]
pub struct SqsNotifier {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsNotifier {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> SqsNotifier {
        SqsNotifier {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl Notifier for SqsNotifier {
    async fn notify(&self, request: &NotificationRequest) -> Result<(), NotifyError> {
        let body = serde_json::to_string(request)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|error| NotifyError::Sqs(Box::new(error.into())))?;
        Ok(())
    }
}
