//! The Lambda handler: reads SQS batches and SNS events, acts on each message, and reports
//! which messages must be retried.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

use crate::inbound::{ClientMessage, Envelope, Inbound, Malformed};
use crate::notifier::{Notifier, NotifyError};
use crate::online::{LookupError, OnlineUsers};
use crate::plan;
use crate::DemoBackend;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Skipped with a log line, never retried: it could never succeed.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("the event is neither an SQS batch nor an SNS event")]
    UnknownEvent,
    #[error("{failed} of {total} SNS records failed and will be retried")]
    SnsRecordsFailed { failed: usize, total: usize },
}

impl From<DemoError> for Diagnostic {
    fn from(error: DemoError) -> Diagnostic {
        let error_type = match error {
            DemoError::Malformed(_) | DemoError::UnknownEvent => "Validation",
            _ => "Retryable",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What one invocation of the Lambda receives: the messages queue (SQS event source mapping)
/// or the messages topic (SNS subscription).
#[derive(Debug, Clone)]
pub enum DemoEvent {
    Sqs(SqsEvent),
    Sns(SnsEvent),
}

impl DemoEvent {
    /// Tells the two apart by the first record's event source (`aws:sqs` / `aws:sns`).
    pub fn from_json(value: Value) -> Result<DemoEvent, DemoError> {
        let first = value
            .get("Records")
            .and_then(|records| records.get(0))
            .ok_or(DemoError::UnknownEvent)?;
        let source = first
            .get("eventSource")
            .or_else(|| first.get("EventSource"))
            .and_then(Value::as_str);
        match source {
            Some("aws:sqs") => serde_json::from_value(value)
                .map(DemoEvent::Sqs)
                .map_err(|_| DemoError::UnknownEvent),
            Some("aws:sns") => serde_json::from_value(value)
                .map(DemoEvent::Sns)
                .map_err(|_| DemoError::UnknownEvent),
            _ => Err(DemoError::UnknownEvent),
        }
    }
}

/// The Lambda entry point: an SQS batch answers with its partial batch failures, an SNS event
/// with `null` (or an error, so Lambda retries it).
pub async fn handle<N: Notifier, U: OnlineUsers>(
    event: LambdaEvent<Value>,
    backend: &DemoBackend<N, U>,
) -> Result<Value, DemoError> {
    match DemoEvent::from_json(event.payload)? {
        DemoEvent::Sqs(batch) => {
            let response = backend.handle_sqs(batch).await;
            Ok(serde_json::to_value(response).unwrap_or(Value::Null))
        }
        DemoEvent::Sns(sns) => backend.handle_sns(sns).await.map(|()| Value::Null),
    }
}

impl<N: Notifier, U: OnlineUsers> DemoBackend<N, U> {
    /// Processes every message of the batch; only the ones that failed for a transient reason
    /// are reported, so SQS redelivers just those. Malformed messages are logged and dropped.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in &batch.records {
            let message_id = message.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!("message", message_id = %message_id);
            let outcome = self
                .process(&Envelope::from_sqs(message))
                .instrument(span)
                .await;
            if let Err(error) = outcome {
                if message_id.is_empty() {
                    tracing::error!(%error, "a failed SQS message has no message id; cannot report it for retry");
                } else {
                    response.add_failure(message_id);
                }
            }
        }
        response
    }

    /// Processes every record of an SNS event; fails the invocation (so Lambda retries it) when
    /// any record failed for a transient reason.
    pub async fn handle_sns(&self, event: SnsEvent) -> Result<(), DemoError> {
        let total = event.records.len();
        let mut failed = 0;
        for record in &event.records {
            let span = tracing::info_span!("message", message_id = %record.sns.message_id);
            let outcome = self
                .process(&Envelope::from_sns(&record.sns))
                .instrument(span)
                .await;
            if outcome.is_err() {
                failed += 1;
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(DemoError::SnsRecordsFailed { failed, total })
        }
    }

    /// Acts on one message. `Err` means "retry it": malformed input is logged and counts as done.
    pub async fn process(&self, envelope: &Envelope) -> Result<(), DemoError> {
        match self.act(envelope).await {
            Err(DemoError::Malformed(reason)) => {
                tracing::warn!(%reason, "skipping a malformed message");
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "message failed; it will be retried");
                Err(error)
            }
            Ok(()) => Ok(()),
        }
    }

    async fn act(&self, envelope: &Envelope) -> Result<(), DemoError> {
        let request = match Inbound::parse(envelope)? {
            Inbound::Presence(presence) => {
                tracing::info!(user_id = %presence.user_id, status = ?presence.status, "presence");
                plan::presence_request(&presence)
            }
            Inbound::Client {
                sender,
                message: ClientMessage::Chat(chat),
            } => {
                tracing::info!(user_id = %sender.user_id, mode = ?chat.mode, route = ?sender.route, "chat");
                plan::chat_request(&sender, &chat)
            }
            Inbound::Client {
                sender,
                message: ClientMessage::WhoIsOnline,
            } => {
                let online = self.online.online_users().await?;
                tracing::info!(user_id = %sender.user_id, online = online.len(), "who is online");
                plan::online_users_request(&sender, &online, now_ms())
            }
        };
        self.notifier.notify(&request).await?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
