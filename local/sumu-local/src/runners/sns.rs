//! A generic SNS event source: plays Lambda's SNS subscription for any handler of `SnsEvent`.
//!
//! moto cannot invoke a function, so the topic is subscribed (non-raw: the SNS envelope is kept)
//! to an internal queue, and the [`sqs`](super::sqs) runner turns each envelope into a one-record
//! `SnsEvent`, as Lambda delivers them. Lambda invokes SNS subscribers asynchronously and retries
//! a failed invocation twice before giving up to the function's dead-letter queue; here a failed
//! envelope stays on the internal queue, reappears after its visibility timeout and, after
//! [`SNS_ATTEMPTS`] receives, the internal queue's redrive policy moves the envelope to the
//! dead-letter queue given.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sns::{SnsEvent, SnsRecord};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::{json, Value};

use super::sqs::{self, SqsSource};
use super::RunnerContext;

/// Lambda's asynchronous invocation: the first attempt and two retries.
pub const SNS_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
#[error("subscribing {topic_arn} to an internal queue: {message}")]
pub struct SubscribeError {
    pub topic_arn: String,
    pub message: String,
}

/// The internal queue behind a topic subscription.
#[derive(Debug, Clone)]
pub struct TopicTap {
    pub topic_arn: String,
    /// The internal queue's name (created if missing).
    pub queue_name: String,
    /// Where envelopes go after [`SNS_ATTEMPTS`] failed attempts.
    pub dead_letter_queue_url: String,
    /// How long a failed envelope stays invisible before the next attempt.
    pub retry_after: Duration,
}

/// Creates the internal queue (redrive to the dead-letter queue) and subscribes it to the
/// topic without raw delivery. Returns the queue URL.
pub async fn subscribe(context: &RunnerContext, tap: &TopicTap) -> Result<String, SubscribeError> {
    let failed = |error: &dyn std::error::Error| SubscribeError {
        topic_arn: tap.topic_arn.clone(),
        message: DisplayErrorContext(error).to_string(),
    };
    let sqs = aws_sdk_sqs::Client::new(&context.aws);
    let sns = aws_sdk_sns::Client::new(&context.aws);
    let dlq_arn = queue_arn(&sqs, &tap.dead_letter_queue_url)
        .await
        .map_err(|error| failed(&error))?;
    let created = sqs
        .create_queue()
        .queue_name(&tap.queue_name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            tap.retry_after.as_secs().max(1).to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": SNS_ATTEMPTS}).to_string(),
        )
        .send()
        .await
        .map_err(|error| failed(&error))?;
    let url = created.queue_url.unwrap_or_default();
    let arn = queue_arn(&sqs, &url)
        .await
        .map_err(|error| failed(&error))?;
    sns.subscribe()
        .topic_arn(&tap.topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .map_err(|error| failed(&error))?;
    Ok(url)
}

#[derive(Debug, thiserror::Error)]
enum ArnError {
    #[error("GetQueueAttributes: {0}")]
    Sdk(String),
    #[error("GetQueueAttributes returned no QueueArn")]
    Missing,
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, ArnError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| ArnError::Sdk(DisplayErrorContext(&error).to_string()))?
        .attributes
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or(ArnError::Missing)
}

/// Why an internal-queue message is not an SNS notification.
#[derive(Debug, thiserror::Error)]
#[error("not an SNS notification envelope: {0}")]
pub struct EnvelopeError(String);

/// The Lambda SNS record for one SNS→SQS envelope (`{"Type":"Notification","Message":…}`).
pub fn record_of(envelope: &str, subscription_arn: &str) -> Result<SnsRecord, EnvelopeError> {
    let envelope: Value =
        serde_json::from_str(envelope).map_err(|error| EnvelopeError(error.to_string()))?;
    let field = |name: &str| envelope.get(name).cloned().unwrap_or(json!(""));
    let message = envelope
        .get("Message")
        .and_then(Value::as_str)
        .ok_or_else(|| EnvelopeError("no Message string".to_string()))?;
    let sns = json!({
        "Type": field("Type"),
        "MessageId": field("MessageId"),
        "TopicArn": field("TopicArn"),
        "Subject": envelope.get("Subject").cloned().unwrap_or(Value::Null),
        "Timestamp": envelope.get("Timestamp").cloned().unwrap_or(json!("1970-01-01T00:00:00Z")),
        "SignatureVersion": field("SignatureVersion"),
        "Signature": field("Signature"),
        "SigningCertUrl": field("SigningCertURL"),
        "UnsubscribeUrl": field("UnsubscribeURL"),
        "Message": message,
        "MessageAttributes": envelope.get("MessageAttributes").cloned().unwrap_or(json!({})),
    });
    serde_json::from_value(json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": sns,
    }))
    .map_err(|error| EnvelopeError(error.to_string()))
}

/// Feeds `handler` one `SnsEvent` per message published to `tap.topic_arn` until shutdown.
pub async fn run<H, Fut, E>(context: RunnerContext, tap: TopicTap, handler: H)
where
    H: Fn(SnsEvent) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let queue_url = match subscribe(&context, &tap).await {
        Ok(url) => url,
        Err(error) => {
            tracing::error!(%error, "the topic runner cannot start");
            return;
        }
    };
    let subscription_arn = format!("{}:sumu-local", tap.topic_arn);
    let handler = &handler;
    let subscription_arn = &subscription_arn;
    sqs::run(
        context,
        SqsSource::new(queue_url),
        move |batch: SqsEvent| async move {
            let mut response = SqsBatchResponse::default();
            // One invocation per notification, as Lambda invokes SNS subscribers.
            for message in batch.records {
                let id = message.message_id.unwrap_or_default();
                let body = message.body.unwrap_or_default();
                let outcome = match record_of(&body, subscription_arn) {
                    Ok(record) => {
                        let mut event = SnsEvent::default();
                        event.records.push(record);
                        handler(event).await.map_err(|error| error.to_string())
                    }
                    Err(error) => Err(error.to_string()),
                };
                if let Err(error) = outcome {
                    tracing::warn!(message_id = %id, %error,
                        "SNS handler failed; the notification will be retried");
                    response.add_failure(id);
                }
            }
            Ok::<_, Infallible>(response)
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_becomes_a_lambda_sns_record() {
        let envelope = json!({
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
            "Message": "{\"users\":[\"u\"],\"data\":1}",
            "Timestamp": "2026-11-21T22:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "sig",
            "SigningCertURL": "https://cert",
            "UnsubscribeURL": "https://unsub",
            "MessageAttributes": {"a": {"Type": "String", "Value": "v"}}
        })
        .to_string();
        let record = record_of(&envelope, "arn:sub").unwrap();
        assert_eq!(record.event_source, "aws:sns");
        assert_eq!(record.event_subscription_arn, "arn:sub");
        assert_eq!(record.sns.message_id, "m-1");
        assert_eq!(record.sns.message, "{\"users\":[\"u\"],\"data\":1}");
        assert_eq!(record.sns.topic_arn, "arn:aws:sns:us-east-1:123456789012:t");
        assert_eq!(record.sns.message_attributes["a"].value, "v");
    }

    #[test]
    fn a_body_that_is_not_an_envelope_is_refused() {
        assert!(record_of("{not json", "s").is_err());
        assert!(record_of("{\"Type\":\"Notification\"}", "s").is_err());
    }
}
