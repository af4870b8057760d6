//! A generic SQS event source: plays Lambda's SQS event source mapping for any handler of
//! `SqsEvent → SqsBatchResponse`.
//!
//! Like Lambda: long polls (`WaitTimeSeconds`), receives batches of up to 10 with every system
//! and message attribute, hands the handler the Lambda event shape, then deletes exactly the
//! messages the handler did not list in `batchItemFailures` (a handler error fails the whole
//! batch). Failed messages are left alone: they reappear after the queue's visibility timeout
//! and, after its `maxReceiveCount`, the queue's `RedrivePolicy` moves them to the dead-letter
//! queue. moto enforces the redrive policy on receive exactly as SQS does (a message received
//! `maxReceiveCount` times moves on the next receive), so the runner does not re-implement it;
//! `tests` below prove it.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use aws_smithy_types::error::display::DisplayErrorContext;

use super::RunnerContext;

/// SQS's (and Lambda's) largest batch for a standard queue without a batching window.
pub const MAX_BATCH: i32 = 10;

/// Which queue to poll and how.
#[derive(Debug, Clone)]
pub struct SqsSource {
    pub queue_url: String,
    /// 1..=10 messages per event.
    pub batch_size: i32,
    /// Long-poll wait (Lambda uses 20 s; shutdown does not wait for it).
    pub wait_time: Duration,
    /// A pause after a failed `ReceiveMessage` (e.g. the endpoint is down).
    pub error_backoff: Duration,
}

impl SqsSource {
    pub fn new(queue_url: impl Into<String>) -> SqsSource {
        SqsSource {
            queue_url: queue_url.into(),
            batch_size: MAX_BATCH,
            wait_time: Duration::from_secs(20),
            error_backoff: Duration::from_secs(1),
        }
    }
}

/// The queue ARN (the event's `eventSourceARN`) of a queue URL
/// `http(s)://host/{account}/{name}`; `None` if the URL has no such path.
pub fn queue_arn_of(queue_url: &str, region: &str) -> Option<String> {
    let mut parts = queue_url.trim_end_matches('/').rsplit('/');
    let name = parts.next().filter(|name| !name.is_empty())?;
    let account = parts.next().filter(|account| !account.is_empty())?;
    Some(format!("arn:aws:sqs:{region}:{account}:{name}"))
}

/// Turns received messages into the event Lambda would deliver.
pub fn to_event(
    messages: Vec<aws_sdk_sqs::types::Message>,
    queue_arn: &str,
    region: &str,
) -> SqsEvent {
    let mut event = SqsEvent::default();
    for message in messages {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id;
        record.receipt_handle = message.receipt_handle;
        record.body = message.body;
        record.md5_of_body = message.md5_of_body;
        record.md5_of_message_attributes = message.md5_of_message_attributes;
        record.attributes = message
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.as_str().to_string(), value))
            .collect();
        record.message_attributes = message
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let mut attribute = SqsMessageAttribute::default();
                attribute.string_value = value.string_value;
                attribute.data_type = Some(value.data_type);
                attribute.string_list_values = value.string_list_values.unwrap_or_default();
                if let Some(binary) = value.binary_value {
                    let mut data = Base64Data::default();
                    *data = binary.into_inner();
                    attribute.binary_value = Some(data);
                }
                (name, attribute)
            })
            .collect();
        record.event_source = Some("aws:sqs".to_string());
        record.event_source_arn = Some(queue_arn.to_string());
        record.aws_region = Some(region.to_string());
        event.records.push(record);
    }
    event
}

/// The (message id, receipt handle) pairs to delete: every message of the batch except those
/// the handler reported as failed. Nothing if the handler failed or, as Lambda does, if a
/// reported identifier is empty or names no message of the batch (the whole batch failed).
pub fn to_delete<E>(
    event: &SqsEvent,
    outcome: &Result<SqsBatchResponse, E>,
) -> Vec<(String, String)> {
    let failed: HashSet<&str> = match outcome {
        Ok(response) => response
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.as_str())
            .collect(),
        Err(_) => return Vec::new(),
    };
    let in_batch: HashSet<&str> = event
        .records
        .iter()
        .filter_map(|record| record.message_id.as_deref())
        .collect();
    if failed.iter().any(|id| !in_batch.contains(id)) {
        tracing::warn!(
            "batchItemFailures names a message that is not in the batch: the whole batch failed"
        );
        return Vec::new();
    }
    event
        .records
        .iter()
        .filter_map(|record| {
            let id = record.message_id.as_deref()?;
            let handle = record.receipt_handle.as_deref()?;
            (!failed.contains(id)).then(|| (id.to_string(), handle.to_string()))
        })
        .collect()
}

/// Polls `source` and feeds `handler` until the emulator shuts down. An in-flight handler is
/// abandoned at shutdown: its undeleted messages reappear later (at-least-once, as on AWS).
pub async fn run<H, Fut, E>(mut context: RunnerContext, source: SqsSource, handler: H)
where
    H: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse, E>>,
    E: Display,
{
    let sqs = aws_sdk_sqs::Client::new(&context.aws);
    let region = context
        .aws
        .region()
        .map(|region| region.to_string())
        .unwrap_or_else(|| "us-east-1".to_string());
    let queue_arn = queue_arn_of(&source.queue_url, &region).unwrap_or_default();
    let stopped = context.stopped();
    tokio::pin!(stopped);
    let wait_seconds = source.wait_time.as_secs().min(20) as i32;
    tracing::info!(queue = %source.queue_url, "SQS event source started");
    loop {
        let receive = sqs
            .receive_message()
            .queue_url(&source.queue_url)
            .max_number_of_messages(source.batch_size.clamp(1, MAX_BATCH))
            .wait_time_seconds(wait_seconds)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send();
        let received = tokio::select! {
            _ = &mut stopped => break,
            received = receive => received,
        };
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(queue = %source.queue_url, error = %DisplayErrorContext(&error), "ReceiveMessage failed");
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(source.error_backoff) => continue,
                }
            }
        };
        if messages.is_empty() {
            continue;
        }
        let event = to_event(messages, &queue_arn, &region);
        let outcome = tokio::select! {
            _ = &mut stopped => break,
            outcome = handler(event.clone()) => outcome,
        };
        if let Err(error) = &outcome {
            tracing::warn!(queue = %source.queue_url, %error, messages = event.records.len(),
                "handler failed: the whole batch will be redelivered");
        }
        delete(&sqs, &source.queue_url, to_delete(&event, &outcome)).await;
    }
    tracing::info!(queue = %source.queue_url, "SQS event source stopped");
}

/// Deletes the handled messages (one `DeleteMessageBatch`: at most 10 entries).
async fn delete(sqs: &aws_sdk_sqs::Client, queue_url: &str, handled: Vec<(String, String)>) {
    if handled.is_empty() {
        return;
    }
    let mut entries = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    for (index, (message_id, handle)) in handled.into_iter().enumerate() {
        // Batch entry ids allow only [A-Za-z0-9_-]: number them and remember the message.
        let entry_id = index.to_string();
        ids.insert(entry_id.clone(), message_id);
        match DeleteMessageBatchRequestEntry::builder()
            .id(entry_id)
            .receipt_handle(handle)
            .build()
        {
            Ok(entry) => entries.push(entry),
            Err(error) => tracing::warn!(%error, "cannot build a delete entry"),
        }
    }
    match sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(output) => {
            for failure in output.failed {
                tracing::warn!(queue = %queue_url,
                    message_id = ids.get(&failure.id).map(String::as_str).unwrap_or(""),
                    code = %failure.code, "DeleteMessageBatch entry failed: the message will reappear");
            }
        }
        Err(error) => tracing::warn!(queue = %queue_url, error = %DisplayErrorContext(&error),
            "DeleteMessageBatch failed: the batch will reappear"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::{Message, MessageAttributeValue};

    fn message(id: &str, body: &str) -> Message {
        Message::builder()
            .message_id(id)
            .receipt_handle(format!("handle-{id}"))
            .body(body)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .message_attributes(
                "sumu_generation",
                MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value("1")
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn batch() -> SqsEvent {
        to_event(
            vec![message("a", "1"), message("b", "2"), message("c", "3")],
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        )
    }

    #[test]
    fn messages_take_the_lambda_event_shape() {
        let event = batch();
        let json = serde_json::to_value(&event).unwrap();
        let first = &json["Records"][0];
        assert_eq!(first["messageId"], "a");
        assert_eq!(first["receiptHandle"], "handle-a");
        assert_eq!(first["body"], "1");
        assert_eq!(first["attributes"]["ApproximateReceiveCount"], "3");
        assert_eq!(
            first["messageAttributes"]["sumu_generation"]["stringValue"],
            "1"
        );
        assert_eq!(
            first["messageAttributes"]["sumu_generation"]["dataType"],
            "Number"
        );
        assert_eq!(first["eventSource"], "aws:sqs");
        assert_eq!(
            first["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(first["awsRegion"], "us-east-1");
    }

    fn ids(deleted: Vec<(String, String)>) -> Vec<String> {
        deleted.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn all_but_the_reported_failures_are_deleted() {
        let event = batch();
        let mut response = SqsBatchResponse::default();
        response.add_failure("b");
        assert_eq!(
            ids(to_delete(&event, &Ok::<_, ()>(response))),
            vec!["a".to_string(), "c".to_string()]
        );
        assert_eq!(
            ids(to_delete(&event, &Ok::<_, ()>(SqsBatchResponse::default()))),
            vec!["a".to_string(), "b".to_string(), "c".to_string()]
        );
    }

    #[test]
    fn a_handler_error_or_an_unknown_failure_id_fails_the_whole_batch() {
        let event = batch();
        assert!(to_delete(&event, &Err::<SqsBatchResponse, _>("crashed")).is_empty());
        let mut response = SqsBatchResponse::default();
        response.add_failure("not-in-the-batch");
        assert!(to_delete(&event, &Ok::<_, ()>(response)).is_empty());
        let mut response = SqsBatchResponse::default();
        response.add_failure("");
        assert!(to_delete(&event, &Ok::<_, ()>(response)).is_empty());
    }
}
