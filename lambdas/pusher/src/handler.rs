//! The Lambda entry points: SQS batches and SNS events in, one EMF line out per invocation.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use sumu_wire::notification_attributes;
use tracing::Instrument;

use crate::deadline::Deadline;
use crate::emit::EmitAttributes;
use crate::fanout::{Pusher, PusherError};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::poster::Poster;
use crate::publish::{self, Origin, Prepared};
use crate::store::ConnectionStore;

/// The function's single entry point: one function may be subscribed to the notifications
/// topic and fed by the notifications queue, so the event's source decides.
pub async fn handle<S, P, O>(
    event: LambdaEvent<Value>,
    pusher: &Pusher<S, P, O>,
) -> Result<Value, PusherError>
where
    S: ConnectionStore,
    P: Poster,
    O: Outbox,
{
    let (payload, context) = event.into_parts();
    let first = payload.get("Records").and_then(|records| records.get(0));
    let source = first
        .and_then(|record| {
            record
                .get("eventSource")
                .or_else(|| record.get("EventSource"))
        })
        .and_then(Value::as_str)
        .unwrap_or("");
    match source {
        "aws:sns" => {
            let event: SnsEvent = serde_json::from_value(payload)
                .map_err(|e| PusherError::UnknownEvent(e.to_string()))?;
            handle_sns(LambdaEvent::new(event, context), pusher).await?;
            Ok(Value::Null)
        }
        "aws:sqs" => {
            let event: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| PusherError::UnknownEvent(e.to_string()))?;
            let response = handle_sqs(LambdaEvent::new(event, context), pusher).await;
            serde_json::to_value(response).map_err(|e| PusherError::UnknownEvent(e.to_string()))
        }
        // An empty batch: nothing to do, nothing failed.
        _ if first.is_none() && payload.get("Records").is_some_and(Value::is_array) => {
            serde_json::to_value(SqsBatchResponse::default())
                .map_err(|e| PusherError::UnknownEvent(e.to_string()))
        }
        other => Err(PusherError::UnknownEvent(format!(
            "unsupported event source {other:?}"
        ))),
    }
}

/// An SQS batch: each message is fanned out on its own; the failed ones are reported so SQS
/// redelivers only them (and, after the queue's maximum receives, dead-letters them).
pub async fn handle_sqs<S, P, O>(
    event: LambdaEvent<SqsEvent>,
    pusher: &Pusher<S, P, O>,
) -> SqsBatchResponse
where
    S: ConnectionStore,
    P: Poster,
    O: Outbox,
{
    let started = Instant::now();
    let (response, metrics) = process_sqs(event, pusher).await;
    log_metrics(&metrics, started);
    response
}

/// [`handle_sqs`] without the metrics line: the counters are returned instead.
pub async fn process_sqs<S, P, O>(
    event: LambdaEvent<SqsEvent>,
    pusher: &Pusher<S, P, O>,
) -> (SqsBatchResponse, Metrics)
where
    S: ConnectionStore,
    P: Poster,
    O: Outbox,
{
    let deadline = Deadline::from_epoch_ms(event.context.deadline);
    let mut response = SqsBatchResponse::default();
    let mut metrics = Metrics::default();
    for message in event.payload.records {
        let message_id = message.message_id.unwrap_or_default();
        let generation = message
            .message_attributes
            .get(notification_attributes::GENERATION)
            .and_then(|attribute| attribute.string_value.as_deref())
            .and_then(|value| value.trim().parse::<u32>().ok())
            .unwrap_or(0);
        let origin = Origin {
            message_id: message_id.clone(),
            emit: EmitAttributes::from_sqs(&message.message_attributes),
            shard: message
                .message_attributes
                .get(crate::request::SHARD_ATTRIBUTE)
                .and_then(|attribute| attribute.string_value.clone()),
        };
        let body = message.body.unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %message_id, generation);
        let (counted, result) = process_body(pusher, &body, generation, &origin, deadline)
            .instrument(span.clone())
            .await;
        metrics += counted;
        if let Err(error) = result {
            span.in_scope(|| tracing::error!(%error, "message failed; SQS will redeliver it"));
            response.add_failure(message_id);
        }
    }
    (response, metrics)
}

/// An SNS event (delivered asynchronously): an error makes Lambda retry the invocation and
/// then hand it to the function's dead-letter queue or on-failure destination.
pub async fn handle_sns<S, P, O>(
    event: LambdaEvent<SnsEvent>,
    pusher: &Pusher<S, P, O>,
) -> Result<(), PusherError>
where
    S: ConnectionStore,
    P: Poster,
    O: Outbox,
{
    let started = Instant::now();
    let (metrics, result) = process_sns(event, pusher).await;
    log_metrics(&metrics, started);
    result
}

/// [`handle_sns`] without the metrics line.
pub async fn process_sns<S, P, O>(
    event: LambdaEvent<SnsEvent>,
    pusher: &Pusher<S, P, O>,
) -> (Metrics, Result<(), PusherError>)
where
    S: ConnectionStore,
    P: Poster,
    O: Outbox,
{
    let deadline = Deadline::from_epoch_ms(event.context.deadline);
    let total = event.payload.records.len();
    let mut failed = 0;
    let mut metrics = Metrics::default();
    for record in event.payload.records {
        let span = tracing::info_span!("message", message_id = %record.sns.message_id);
        // A topic message is always a back end's own request: generation 0, never an emit.
        let origin = Origin {
            message_id: record.sns.message_id.clone(),
            emit: None,
            shard: None,
        };
        let (counted, result) = process_body(pusher, &record.sns.message, 0, &origin, deadline)
            .instrument(span.clone())
            .await;
        metrics += counted;
        if let Err(error) = result {
            span.in_scope(
                || tracing::error!(%error, "SNS message failed; Lambda will retry the event"),
            );
            failed += 1;
        }
    }
    let result = if failed == 0 {
        Ok(())
    } else {
        Err(PusherError::RecordsFailed { failed, total })
    };
    (metrics, result)
}

/// One message body: rejected to the dead-letter queue, or fanned out (a refused emit: its
/// error frame to the sender).
async fn process_body<S, P, O>(
    pusher: &Pusher<S, P, O>,
    body: &str,
    generation: u32,
    origin: &Origin,
    deadline: Deadline,
) -> (Metrics, Result<(), PusherError>)
where
    S: ConnectionStore,
    P: Poster,
    O: Outbox,
{
    let limits = &pusher.limits;
    if !deadline.allows(limits.post_timeout, limits.safety_margin) {
        // Not started: redelivery cannot duplicate anything.
        return (Metrics::default(), Err(PusherError::OutOfTime));
    }
    match publish::prepare(body, generation, origin) {
        Err(rejection) => {
            tracing::warn!(
                reason = rejection.reason(),
                detail = %rejection,
                body_bytes = body.len(),
                "rejected notification request; sending it to the dead-letter queue"
            );
            let metrics = Metrics {
                rejected: 1,
                ..Metrics::default()
            };
            match pusher
                .outbox
                .dead_letter(body.to_string(), rejection.reason())
                .await
            {
                Ok(()) => (metrics, Ok(())),
                Err(error) => (metrics, Err(PusherError::DeadLetter(error))),
            }
        }
        Ok(Prepared::Refused(refusal)) => pusher.refuse_emit(&refusal, deadline).await,
        Ok(Prepared::Publish(publications)) => {
            let (metrics, result) = pusher.publish(&publications, deadline).await;
            tracing::info!(
                publications = metrics.publications,
                delivered = metrics.delivered,
                stale = metrics.stale,
                failed = metrics.failed,
                retried = metrics.retried,
                requeued = metrics.requeued,
                "publication done"
            );
            (metrics, result)
        }
        Ok(Prepared::Push(job)) => {
            let (metrics, result) = pusher.push(&job, deadline).await;
            tracing::info!(
                delivered = metrics.delivered,
                stale = metrics.stale,
                failed = metrics.failed,
                retried = metrics.retried,
                requeued = metrics.requeued,
                shards = metrics.shards,
                "notification request done"
            );
            (metrics, result)
        }
    }
}

/// Prints the invocation's EMF line straight to stdout: CloudWatch only extracts metrics
/// from a log event that *is* the EMF object, so it must not be wrapped by the log formatter.
fn log_metrics(metrics: &Metrics, started: Instant) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    println!(
        "{}",
        metrics.emf_line(started.elapsed().as_millis() as u64, now_ms)
    );
}
