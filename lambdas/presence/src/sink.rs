//! Delivering presence events to the *messages* topic or queue, with the trusted attributes
//! back ends filter on (`source`, `user_id`, `timestamp`).

use std::future::Future;

use sumu_wire::{attributes, PresenceEvent};
use thiserror::Error;

/// The seam between the presence logic and the messaging service.
pub trait EventSink: Send + Sync {
    fn deliver(&self, event: &PresenceEvent) -> impl Future<Output = Result<(), SinkError>> + Send;
}

#[derive(Debug, Error)]
#[error("delivering the presence event of user {user_id} failed: {message}")]
pub struct SinkError {
    pub user_id: String,
    pub message: String,
}

/// [`EventSink`] for the configured destination.
#[derive(Debug, Clone)]
pub enum SdkEventSink {
    Topic {
        client: aws_sdk_sns::Client,
        topic_arn: String,
    },
    Queue {
        client: aws_sdk_sqs::Client,
        queue_url: String,
    },
    /// `presence_destination = "none"`: events are only logged.
    Discard,
}

impl EventSink for SdkEventSink {
    async fn deliver(&self, event: &PresenceEvent) -> Result<(), SinkError> {
        let failed = |message: String| SinkError {
            user_id: event.message.user_id.clone(),
            message,
        };
        let body = serde_json::to_string(event).map_err(|error| failed(error.to_string()))?;
        let user_id = event.message.user_id.as_str();
        let timestamp = event.message.timestamp.to_string();
        match self {
            SdkEventSink::Topic { client, topic_arn } => {
                let attribute = |data_type: &str, value: &str| {
                    aws_sdk_sns::types::MessageAttributeValue::builder()
                        .data_type(data_type)
                        .string_value(value)
                        .build()
                        .map_err(|error| failed(error.to_string()))
                };
                client
                    .publish()
                    .topic_arn(topic_arn)
                    .message(body)
                    .message_attributes(
                        attributes::SOURCE,
                        attribute("String", attributes::SOURCE_PRESENCE)?,
                    )
                    .message_attributes(attributes::USER_ID, attribute("String", user_id)?)
                    .message_attributes(attributes::TIMESTAMP, attribute("Number", &timestamp)?)
                    .send()
                    .await
                    .map_err(|error| {
                        failed(aws_sdk_sns::error::DisplayErrorContext(error).to_string())
                    })?;
            }
            SdkEventSink::Queue { client, queue_url } => {
                let attribute = |data_type: &str, value: &str| {
                    aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type(data_type)
                        .string_value(value)
                        .build()
                        .map_err(|error| failed(error.to_string()))
                };
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body)
                    .message_attributes(
                        attributes::SOURCE,
                        attribute("String", attributes::SOURCE_PRESENCE)?,
                    )
                    .message_attributes(attributes::USER_ID, attribute("String", user_id)?)
                    .message_attributes(attributes::TIMESTAMP, attribute("Number", &timestamp)?)
                    .send()
                    .await
                    .map_err(|error| {
                        failed(aws_sdk_sqs::error::DisplayErrorContext(error).to_string())
                    })?;
            }
            SdkEventSink::Discard => {
                tracing::debug!(user_id, "presence destination is none: event not delivered");
            }
        }
        Ok(())
    }
}
