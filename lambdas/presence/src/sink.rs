//! Where the presence Lambda's messages go: presence and lifecycle events to the *messages*
//! topic or queue, with the trusted attributes back ends filter on (`source`, `user_id`,
//! `channel`, `timestamp`), and `join`/`leave` frames to the *notifications* queue, as
//! notification requests the pusher fans out to the channel's subscribers.

use std::future::Future;

use serde::Serialize;
use sumu_wire::members::{ChannelEvent, JoinLeave, MembershipEvent};
use sumu_wire::{attributes, notification_attributes, PresenceEvent};
use thiserror::Error;

/// A lifecycle event of a channel (docs/presence.md § Lifecycle events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Lifecycle {
    Channel(ChannelEvent),
    Membership(MembershipEvent),
}

impl Lifecycle {
    pub fn channel(&self) -> &str {
        match self {
            Lifecycle::Channel(event) => &event.message.channel,
            Lifecycle::Membership(event) => &event.message.channel,
        }
    }

    pub fn timestamp(&self) -> i64 {
        match self {
            Lifecycle::Channel(event) => event.message.timestamp,
            Lifecycle::Membership(event) => event.message.timestamp,
        }
    }
}

/// The seam between the presence logic and the messaging services.
pub trait EventSink: Send + Sync {
    /// A presence event of a user, to the messages destination.
    fn deliver(&self, event: &PresenceEvent) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// A lifecycle event of a channel, to the messages destination.
    fn deliver_lifecycle(
        &self,
        event: &Lifecycle,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// A `join`/`leave` frame, to every subscriber of its channel (through the pusher).
    fn announce(&self, frame: &JoinLeave) -> impl Future<Output = Result<(), SinkError>> + Send;
}

#[derive(Debug, Error)]
#[error("delivering the event about {subject} failed: {message}")]
pub struct SinkError {
    /// The user or channel the event is about.
    pub subject: String,
    pub message: String,
}

/// Where events go (`presence_destination`).
#[derive(Debug, Clone)]
pub enum MessagesDestination {
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

/// [`EventSink`] over SNS and SQS.
#[derive(Debug, Clone)]
pub struct SdkEventSink {
    pub destination: MessagesDestination,
    /// The notifications queue (`None`: no namespace has `join_leave`, so nothing is ever
    /// announced; an announcement then fails loudly rather than vanishing).
    pub notifications: Option<(aws_sdk_sqs::Client, String)>,
}

/// One message attribute: (name, data type, value).
type Attribute<'a> = (&'a str, &'a str, String);

impl SdkEventSink {
    async fn send(&self, body: String, attributes: &[Attribute<'_>]) -> Result<(), String> {
        match &self.destination {
            MessagesDestination::Topic { client, topic_arn } => {
                let mut request = client.publish().topic_arn(topic_arn).message(body);
                for (name, data_type, value) in attributes {
                    let value = aws_sdk_sns::types::MessageAttributeValue::builder()
                        .data_type(*data_type)
                        .string_value(value)
                        .build()
                        .map_err(|error| error.to_string())?;
                    request = request.message_attributes(*name, value);
                }
                request
                    .send()
                    .await
                    .map_err(|error| aws_sdk_sns::error::DisplayErrorContext(error).to_string())?;
            }
            MessagesDestination::Queue { client, queue_url } => {
                send_to_queue(client, queue_url, body, attributes).await?;
            }
            MessagesDestination::Discard => {
                tracing::debug!("presence destination is none: event not delivered");
            }
        }
        Ok(())
    }
}

async fn send_to_queue(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    body: String,
    attributes: &[Attribute<'_>],
) -> Result<(), String> {
    let mut request = client
        .send_message()
        .queue_url(queue_url)
        .message_body(body);
    for (name, data_type, value) in attributes {
        let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type(*data_type)
            .string_value(value)
            .build()
            .map_err(|error| error.to_string())?;
        request = request.message_attributes(*name, value);
    }
    request
        .send()
        .await
        .map_err(|error| aws_sdk_sqs::error::DisplayErrorContext(error).to_string())?;
    Ok(())
}

/// The notification request that carries a `join`/`leave` frame to its channel:
/// `{"channels":[C],"data":<frame>}`, sent with `sumu_frame` = `verbatim` so the pusher
/// delivers the frame as it is instead of enveloping it in a publication.
#[derive(Serialize)]
struct Announcement<'a> {
    channels: [&'a str; 1],
    data: &'a JoinLeave,
}

impl EventSink for SdkEventSink {
    async fn deliver(&self, event: &PresenceEvent) -> Result<(), SinkError> {
        let failed = |message: String| SinkError {
            subject: event.message.user_id.clone(),
            message,
        };
        let body = serde_json::to_string(event).map_err(|error| failed(error.to_string()))?;
        let attributes = [
            (
                attributes::SOURCE,
                "String",
                attributes::SOURCE_PRESENCE.to_owned(),
            ),
            (attributes::USER_ID, "String", event.message.user_id.clone()),
            (
                attributes::TIMESTAMP,
                "Number",
                event.message.timestamp.to_string(),
            ),
        ];
        self.send(body, &attributes).await.map_err(failed)
    }

    async fn deliver_lifecycle(&self, event: &Lifecycle) -> Result<(), SinkError> {
        let failed = |message: String| SinkError {
            subject: event.channel().to_owned(),
            message,
        };
        let body = serde_json::to_string(event).map_err(|error| failed(error.to_string()))?;
        let mut attributes = vec![
            (
                attributes::SOURCE,
                "String",
                attributes::SOURCE_CHANNELS.to_owned(),
            ),
            (attributes::CHANNEL, "String", event.channel().to_owned()),
            (
                attributes::TIMESTAMP,
                "Number",
                event.timestamp().to_string(),
            ),
        ];
        if let Lifecycle::Membership(membership) = event {
            attributes.push((
                attributes::USER_ID,
                "String",
                membership.message.user_id.clone(),
            ));
        }
        self.send(body, &attributes).await.map_err(failed)
    }

    async fn announce(&self, frame: &JoinLeave) -> Result<(), SinkError> {
        let failed = |message: String| SinkError {
            subject: frame.channel.clone(),
            message,
        };
        let Some((client, queue_url)) = &self.notifications else {
            return Err(failed(
                "no notifications queue is configured (NOTIFICATIONS_QUEUE_URL)".into(),
            ));
        };
        let body = serde_json::to_string(&Announcement {
            channels: [&frame.channel],
            data: frame,
        })
        .map_err(|error| failed(error.to_string()))?;
        let attributes = [(
            notification_attributes::FRAME,
            "String",
            notification_attributes::FRAME_VERBATIM.to_owned(),
        )];
        send_to_queue(client, queue_url, body, &attributes)
            .await
            .map_err(failed)
    }
}
