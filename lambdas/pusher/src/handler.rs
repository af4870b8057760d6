//! The Lambda entry points: an SQS batch or an SNS event in, each message through the one
//! per-message function ([`process_message`]: read it once into a request, then fan it out),
//! the invocation's counters to the pusher's [`MetricsSink`].

use std::time::Instant;

use aws_lambda_events::event::sns::{SnsEvent, SnsRecord};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;
use sumu_wire::{notification_attributes, Namespaces};
use tracing::Instrument;

use crate::deadline::Deadline;
use crate::emit::{self, Acknowledgement, Emit, EmitAttributes, Refusal};
use crate::fanout::{Pusher, PusherError};
use crate::history::HistoryStore;
use crate::metrics::{Metrics, MetricsSink};
use crate::outbox::Outbox;
use crate::poster::Poster;
use crate::request::{self, DataIs, Rejection, Request, Targets, SHARD_ATTRIBUTE};
use crate::store::ConnectionStore;
use crate::subscriptions::SubscriptionStore;

/// The events this function is given. SNS comes first: its records require their `Sns`
/// object, while every field of an SQS record is optional.
#[derive(Deserialize)]
#[serde(untagged)]
enum Event {
    Sns(SnsEvent),
    Sqs(SqsEvent),
}

/// The function's single entry point: one function may be subscribed to the notifications
/// topic and fed by the notifications queue, so the event's shape decides.
pub async fn handle<S, P, O, M>(
    event: LambdaEvent<Value>,
    pusher: &Pusher<S, P, O, M>,
) -> Result<Value, PusherError>
where
    S: ConnectionStore + SubscriptionStore + HistoryStore,
    P: Poster,
    O: Outbox,
    M: MetricsSink,
{
    let (payload, context) = event.into_parts();
    let event = serde_json::from_value(payload)
        .map_err(|e| PusherError::UnknownEvent(format!("not an SQS or SNS event: {e}")))?;
    let answer = match event {
        // An empty batch: nothing to do, nothing failed.
        Event::Sns(event) if event.records.is_empty() => SqsBatchResponse::default(),
        Event::Sns(event) => {
            handle_sns(LambdaEvent::new(event, context), pusher).await?;
            return Ok(Value::Null);
        }
        Event::Sqs(event) => {
            if let Some(record) = event
                .records
                .iter()
                .find(|record| record.event_source.as_deref() != Some("aws:sqs"))
            {
                return Err(PusherError::UnknownEvent(format!(
                    "unsupported event source {:?}",
                    record.event_source.as_deref().unwrap_or("")
                )));
            }
            handle_sqs(LambdaEvent::new(event, context), pusher).await
        }
    };
    serde_json::to_value(answer).map_err(|e| PusherError::UnknownEvent(e.to_string()))
}

/// An SQS batch: each message is fanned out on its own; the failed ones are reported so SQS
/// redelivers only them (and, after the queue's maximum receives, dead-letters them).
pub async fn handle_sqs<S, P, O, M>(
    event: LambdaEvent<SqsEvent>,
    pusher: &Pusher<S, P, O, M>,
) -> SqsBatchResponse
where
    S: ConnectionStore + SubscriptionStore + HistoryStore,
    P: Poster,
    O: Outbox,
    M: MetricsSink,
{
    let deadline = Deadline::from_epoch_ms(event.context.deadline);
    let messages = event.payload.records.into_iter().map(Message::from);
    let failed = process_batch(pusher, messages, deadline).await;
    let mut response = SqsBatchResponse::default();
    for message_id in failed {
        response.add_failure(message_id);
    }
    response
}

/// An SNS event (delivered asynchronously): an error makes Lambda retry the invocation and
/// then hand it to the function's dead-letter queue or on-failure destination.
pub async fn handle_sns<S, P, O, M>(
    event: LambdaEvent<SnsEvent>,
    pusher: &Pusher<S, P, O, M>,
) -> Result<(), PusherError>
where
    S: ConnectionStore + SubscriptionStore + HistoryStore,
    P: Poster,
    O: Outbox,
    M: MetricsSink,
{
    let deadline = Deadline::from_epoch_ms(event.context.deadline);
    let total = event.payload.records.len();
    let messages = event.payload.records.into_iter().map(Message::from);
    let failed = process_batch(pusher, messages, deadline).await;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(PusherError::RecordsFailed {
            failed: failed.len(),
            total,
        })
    }
}

/// One message of either source, as [`process_message`] reads it.
#[derive(Debug, Clone, Default)]
struct Message {
    /// The SQS `messageId` or SNS `MessageId`: the base of a publication's id.
    id: String,
    body: String,
    /// How many times the request was narrowed and re-queued (the `generation` attribute).
    generation: u32,
    /// The `sumu_shard` attribute: this message is one shard of a large broadcast.
    shard: Option<String>,
    /// The `sumu_frame` attribute: its data is a frame of sumu's own, delivered as it is.
    data_is: DataIs,
    /// Set when the record is a client's emit (SQS attribute `source` = `apigw.route.emit`).
    emit: Option<EmitAttributes>,
}

/// [`DataIs::Frame`] iff the `sumu_frame` attribute says `verbatim`.
fn data_is(frame_attribute: Option<&str>) -> DataIs {
    if frame_attribute == Some(notification_attributes::FRAME_VERBATIM) {
        DataIs::Frame
    } else {
        DataIs::Application
    }
}

impl From<SqsMessage> for Message {
    fn from(message: SqsMessage) -> Message {
        let attributes = &message.message_attributes;
        let string = |name: &str| {
            attributes
                .get(name)
                .and_then(|attribute| attribute.string_value.clone())
        };
        Message {
            generation: string(notification_attributes::GENERATION)
                .and_then(|value| value.trim().parse::<u32>().ok())
                .unwrap_or(0),
            shard: string(SHARD_ATTRIBUTE),
            data_is: data_is(string(notification_attributes::FRAME).as_deref()),
            emit: EmitAttributes::from_sqs(attributes),
            id: message.message_id.unwrap_or_default(),
            body: message.body.unwrap_or_default(),
        }
    }
}

impl From<SnsRecord> for Message {
    /// A topic message is a back end's own request (generation 0, never an emit nor a
    /// shard) or the gateway's error frame for a refused `publish` (`sumu_frame`).
    fn from(record: SnsRecord) -> Message {
        let frame = record
            .sns
            .message_attributes
            .get(notification_attributes::FRAME)
            .map(|attribute| attribute.value.as_str());
        Message {
            data_is: data_is(frame),
            id: record.sns.message_id,
            body: record.sns.message,
            ..Message::default()
        }
    }
}

/// The per-message function lifted over a batch: each message on its own, in order. The
/// batch's counters go to the pusher's [`MetricsSink`] (one report per invocation); returns
/// the ids of the messages that failed (to be delivered again).
async fn process_batch<S, P, O, M>(
    pusher: &Pusher<S, P, O, M>,
    messages: impl Iterator<Item = Message>,
    deadline: Deadline,
) -> Vec<String>
where
    S: ConnectionStore + SubscriptionStore + HistoryStore,
    P: Poster,
    O: Outbox,
    M: MetricsSink,
{
    let started = Instant::now();
    let mut metrics = Metrics::default();
    let mut failed = Vec::new();
    for message in messages {
        let span = tracing::info_span!(
            "message",
            message_id = %message.id,
            generation = message.generation
        );
        // Boxed: the SDK's futures nest deep, and unboxed the handler's state machine passes
        // the compiler's layout depth limit.
        let (counted, result) = Box::pin(process_message(pusher, &message, deadline))
            .instrument(span.clone())
            .await;
        metrics += counted;
        if let Err(error) = result {
            span.in_scope(|| tracing::error!(%error, "message failed; it will be delivered again"));
            failed.push(message.id);
        }
    }
    pusher.metrics.record(&metrics, started.elapsed());
    failed
}

/// What a message turns into.
#[derive(Debug)]
enum Prepared {
    /// A request of any kind (crate::fanout).
    Fan(Box<Request>),
    /// A client's accepted emit: its `ack` first when it had a `ref`.
    Emit {
        request: Box<Request>,
        ack: Option<Acknowledgement>,
    },
    /// A refused emit: an error frame to its sender only.
    Refused(Refusal),
}

/// Reads a message once: an emit by the rules of crate::emit, anything else as a back end's
/// notification request (crate::request).
fn prepare(message: &Message, namespaces: &Namespaces) -> Result<Prepared, Rejection> {
    if let Some(attributes) = &message.emit {
        let id = request::base_id(&message.id);
        return Ok(
            match emit::parse_emit(
                &message.body,
                message.generation,
                attributes,
                &id,
                namespaces,
            )? {
                Emit::Publish { request, ack } => Prepared::Emit { request, ack },
                Emit::Refused(refusal) => Prepared::Refused(refusal),
            },
        );
    }
    request::parse_message(
        &message.body,
        message.generation,
        message.shard.as_deref(),
        message.data_is,
        &message.id,
        namespaces,
    )
    .map(|request| Prepared::Fan(Box::new(request)))
}

/// One message: rejected to the dead-letter queue, or fanned out (a refused emit: its error
/// frame to the sender).
async fn process_message<S, P, O, M>(
    pusher: &Pusher<S, P, O, M>,
    message: &Message,
    deadline: Deadline,
) -> (Metrics, Result<(), PusherError>)
where
    S: ConnectionStore + SubscriptionStore + HistoryStore,
    P: Poster,
    O: Outbox,
{
    let limits = &pusher.limits;
    if !deadline.allows(limits.post_timeout, limits.safety_margin) {
        // Not started: redelivery cannot duplicate anything.
        return (Metrics::default(), Err(PusherError::OutOfTime));
    }
    match prepare(message, &pusher.namespaces) {
        Err(rejection) => {
            tracing::warn!(
                reason = rejection.reason(),
                detail = %rejection,
                body_bytes = message.body.len(),
                "rejected notification request; sending it to the dead-letter queue"
            );
            let metrics = Metrics {
                rejected: 1,
                ..Metrics::default()
            };
            match pusher
                .outbox
                .dead_letter(message.body.clone(), rejection.reason())
                .await
            {
                Ok(()) => (metrics, Ok(())),
                Err(error) => (metrics, Err(PusherError::DeadLetter(error))),
            }
        }
        Ok(Prepared::Refused(refusal)) => pusher.refuse_emit(&refusal, deadline).await,
        Ok(Prepared::Fan(request)) => {
            let (metrics, result) = pusher.publish(&request, None, deadline).await;
            log_done(&request, &metrics);
            (metrics, result)
        }
        Ok(Prepared::Emit { request, ack }) => {
            let (metrics, result) = pusher.publish(&request, ack.as_ref(), deadline).await;
            log_done(&request, &metrics);
            (metrics, result)
        }
    }
}

/// The line that says how a request ended.
fn log_done(request: &Request, metrics: &Metrics) {
    if matches!(request.targets, Targets::Channels(_)) {
        tracing::info!(
            publications = metrics.publications,
            delivered = metrics.delivered,
            stale = metrics.stale,
            failed = metrics.failed,
            retried = metrics.retried,
            requeued = metrics.requeued,
            "publication done"
        );
    } else {
        tracing::info!(
            action = request.action().name(),
            delivered = metrics.delivered,
            closed = metrics.closed,
            subscribed = metrics.subscribed,
            unsubscribed = metrics.unsubscribed,
            stale = metrics.stale,
            failed = metrics.failed,
            retried = metrics.retried,
            requeued = metrics.requeued,
            shards = metrics.shards,
            "notification request done"
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use sumu_wire::NotificationRequest;

    use super::*;
    use crate::request::{body, Fields, Shard, ShardKey};

    /// Every field of a notification request, set (the audience as given). A field added to
    /// `NotificationRequest` does not compile here until it is given a value; the round trips
    /// below then check that it survives every body the pusher writes.
    fn every_field(
        users: Option<Vec<String>>,
        connections: Option<Vec<String>>,
        channels: Option<Vec<String>>,
    ) -> Fields {
        NotificationRequest {
            action: None,
            channel: None,
            users,
            connections,
            channels,
            exclude_users: vec!["u-x".into()],
            exclude_connections: vec!["c-x".into()],
            publication_id: Some("p\"1".into()),
            data: Some(
                RawValue::from_string(r#"{ "z": 1, "a": [1.0, "caf\u00e9"] }"#.into()).unwrap(),
            ),
        }
    }

    fn ids(ids: &[&str]) -> Option<Vec<String>> {
        Some(ids.iter().map(|id| id.to_string()).collect())
    }

    fn message(body: String, generation: u32, shard: Option<String>) -> Message {
        Message {
            id: "m-1".into(),
            body,
            generation,
            shard,
            data_is: DataIs::Application,
            emit: None,
        }
    }

    /// A narrowed re-queue as the outbox sends it (`sumu_frame`).
    fn requeued(body: String, generation: u32) -> Message {
        Message {
            data_is: DataIs::Frame,
            ..message(body, generation, None)
        }
    }

    fn request(message: &Message) -> Request {
        match prepare(message, &Namespaces::default()) {
            Ok(Prepared::Fan(request)) => *request,
            Ok(Prepared::Emit { request, .. }) => *request,
            other => panic!("not a request: {other:?}"),
        }
    }

    /// Every kind of request, as its message arrives.
    fn every_kind() -> Vec<(&'static str, Message)> {
        let plain = |fields: Fields| message(body(&fields), 0, None);
        let emit = Message {
            emit: Some(EmitAttributes {
                user_id: Some("alice".into()),
                connection_id: Some("c-alice".into()),
                channels_publish: Some("room/*".into()),
                timestamp: None,
            }),
            ..message(
                r#"{"channels":["room/1"],"data":{ "text": "hi" }}"#.into(),
                0,
                None,
            )
        };
        let shard = Shard {
            segment: 2,
            segments: 5,
            after: Some(ShardKey {
                user_id: "u\"1".into(),
                connection_id: "c=".into(),
            }),
        };
        vec![
            ("users", plain(every_field(ids(&["u1", "u2"]), None, None))),
            ("connections", plain(every_field(None, ids(&["c1"]), None))),
            (
                "users and connections",
                plain(every_field(ids(&["u1"]), ids(&["c1"]), None)),
            ),
            ("broadcast", plain(every_field(None, None, None))),
            (
                "shard",
                message(
                    body(&every_field(None, None, None)),
                    1,
                    Some(shard.attribute()),
                ),
            ),
            (
                "channels",
                plain(every_field(None, None, ids(&["room/1", "room/2"]))),
            ),
            ("emit", emit),
            (
                "narrowed generation",
                requeued(body(&every_field(None, ids(&["c1"]), None)), 2),
            ),
        ]
    }

    #[test]
    fn every_kind_of_request_keeps_every_field_through_a_requeue_and_a_shard() {
        let remainder = vec!["c-9".to_string(), "c\"10".to_string()];
        for (kind, sent) in every_kind() {
            let request = request(&sent);
            let publications = match &request.targets {
                Targets::Channels(planned) => planned.iter().map(Some).collect(),
                _ => vec![None],
            };
            for publication in publications {
                // The expected re-queue: the request as read, its audience only the remainder
                // (exclusions applied already); its data is the frame the others got, with its id.
                let mut expected = request.fields.clone();
                expected.users = None;
                expected.channels = None;
                expected.connections = Some(remainder.clone());
                expected.exclude_users = Vec::new();
                expected.exclude_connections = Vec::new();
                let (id, frame) = match (publication, &request.frame) {
                    (Some(planned), _) => (&planned.id, &planned.envelope),
                    (None, Some(frame)) => (&frame.id, &frame.bytes),
                    (None, None) => panic!("{kind}: neither a publication nor a frame"),
                };
                expected.publication_id = Some(id.clone());
                expected.data = Some(frame.clone());
                let body_sent = body(&request.narrowed(publication, remainder.clone()));
                let again = self::request(&requeued(body_sent, request.generation + 1));
                assert_eq!(body(&again.fields), body(&expected), "{kind}");
                assert_eq!(again.generation, request.generation + 1, "{kind}");
                assert_eq!(
                    again.targets,
                    Targets::Selected {
                        users: vec![],
                        connections: remainder.clone()
                    },
                    "{kind}"
                );
                assert_eq!(
                    again.frame(),
                    frame.get().as_bytes(),
                    "{kind}: byte for byte"
                );
            }
            if request.targets == Targets::Broadcast {
                let shard = Shard {
                    segment: 1,
                    segments: 3,
                    after: None,
                };
                let again = self::request(&message(
                    request.shard_body(),
                    request.generation,
                    Some(shard.attribute()),
                ));
                assert_eq!(body(&again.fields), request.shard_body(), "{kind}");
                assert_eq!(again.shard, Some(shard), "{kind}");
                assert_eq!(again.frame(), request.frame(), "{kind}: byte for byte");
            }
        }
    }

    #[test]
    fn the_request_read_from_a_message_has_every_field_it_was_sent() {
        for (kind, sent) in every_kind() {
            let request = request(&sent);
            if sent.emit.is_none() {
                assert_eq!(body(&request.fields), sent.body, "{kind}");
            }
            assert_eq!(request.generation, sent.generation, "{kind}");
            assert_eq!(
                request.shard.map(|shard| shard.attribute()),
                sent.shard,
                "{kind}"
            );
        }
    }
}
