//! Creates, idempotently, what the Terraform module would create and the templates need: the
//! connections table (keys, TTL on `expires_at`, keys-only stream, `connection_id` index), the
//! subscriptions table (pattern and connection, TTL, `connection_id` index), the
//! messages topic and queue (the queue subscribed to the topic with raw delivery, so a back end
//! reading the queue sees `publish` and `send` alike), the notifications topic and queue, and a
//! dead-letter queue behind each queue.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::error::display::DisplayErrorContext;
use sumu_wire::{history, subscriptions, table};

use crate::resources::{ResourceNames, Resources};
use crate::roles::Role;

/// Receives before a message moves to its dead-letter queue.
const MAX_RECEIVE_COUNT: u32 = 5;

#[derive(Debug, thiserror::Error)]
#[error("provisioning {resource} on the AWS endpoint: {message}")]
pub struct ProvisionError {
    pub resource: String,
    pub message: String,
}

fn failed(resource: &str, error: impl std::error::Error) -> ProvisionError {
    ProvisionError {
        resource: resource.to_string(),
        // The SDK's Display hides the cause ("unhandled error"); show the whole chain.
        message: DisplayErrorContext(&error).to_string(),
    }
}

fn missing(resource: &str, what: &str) -> ProvisionError {
    ProvisionError {
        resource: resource.to_string(),
        message: what.to_string(),
    }
}

/// The SDK configuration for the local endpoint, signing as sumu-local itself
/// ([`Role::Emulator`]); [`sdk_config_as`](crate::roles::sdk_config_as) gives a component's.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Role::Emulator.credentials())
        .load()
        .await
}

pub async fn provision(
    aws: &SdkConfig,
    names: &ResourceNames,
) -> Result<Resources, ProvisionError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sns = aws_sdk_sns::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);

    let connections_stream_arn = connections_table(&dynamodb, &names.connections_table).await?;
    let subscriptions_stream_arn =
        subscriptions_table(&dynamodb, &names.subscriptions_table).await?;
    history_table(&dynamodb, &names.history_table).await?;
    members_table(&dynamodb, &names.members_table).await?;

    let messages_topic_arn = topic(&sns, &names.messages_topic).await?;
    let messages_dlq_url = queue(&sqs, &names.messages_dlq, None).await?;
    let messages_dlq_arn = queue_arn(&sqs, &messages_dlq_url).await?;
    let messages_queue_url = queue(&sqs, &names.messages_queue, Some(&messages_dlq_arn)).await?;
    let messages_queue_arn = queue_arn(&sqs, &messages_queue_url).await?;
    sns.subscribe()
        .topic_arn(&messages_topic_arn)
        .protocol("sqs")
        .endpoint(&messages_queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .map_err(|error| failed(&names.messages_queue, error))?;

    let notifications_topic_arn = topic(&sns, &names.notifications_topic).await?;
    let notifications_dlq_url = queue(&sqs, &names.notifications_dlq, None).await?;
    let notifications_dlq_arn = queue_arn(&sqs, &notifications_dlq_url).await?;
    let notifications_queue_url = queue(
        &sqs,
        &names.notifications_queue,
        Some(&notifications_dlq_arn),
    )
    .await?;

    Ok(Resources {
        connections_table: names.connections_table.clone(),
        connections_stream_arn,
        subscriptions_table: names.subscriptions_table.clone(),
        subscriptions_stream_arn,
        history_table: names.history_table.clone(),
        members_table: names.members_table.clone(),
        messages_topic_arn,
        messages_queue_url,
        messages_dlq_url,
        notifications_topic_arn,
        notifications_queue_url,
        notifications_dlq_url,
    })
}

/// The shape sumu's tables share: a string partition key, a sort key, on demand, TTL on
/// `expires_at`. The connections and subscriptions tables have a string sort key and a
/// keys-only `connection_id-index`; the connections table has a keys-only stream and the
/// subscriptions table one with both images; the history table's sort key (the offset) is a
/// number.
struct TableShape<'a> {
    name: &'a str,
    partition_key: &'a str,
    sort_key: &'a str,
    sort_key_type: ScalarAttributeType,
    connection_index: bool,
    stream: Option<StreamViewType>,
}

/// The connections table (keys-only stream: presence's input); returns its stream ARN.
async fn connections_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<Option<String>, ProvisionError> {
    let shape = TableShape {
        name,
        partition_key: table::USER_ID,
        sort_key: table::CONNECTION_ID,
        sort_key_type: ScalarAttributeType::S,
        connection_index: true,
        stream: Some(StreamViewType::KeysOnly),
    };
    create_table(dynamodb, &shape).await
}

/// The subscriptions table (docs/channels.md § Storage), with its stream (REMOVE records need
/// the old image's `user_id`: docs/presence.md § Channel presence); returns the stream's ARN.
async fn subscriptions_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<Option<String>, ProvisionError> {
    let shape = TableShape {
        name,
        partition_key: subscriptions::CHANNEL,
        sort_key: subscriptions::CONNECTION_ID,
        sort_key_type: ScalarAttributeType::S,
        connection_index: true,
        stream: Some(StreamViewType::NewAndOldImages),
    };
    create_table(dynamodb, &shape).await
}

/// The history table (docs/channels.md § History and recovery): per channel, its state at
/// offset 0 and its kept publications by offset.
async fn history_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    let shape = TableShape {
        name,
        partition_key: history::CHANNEL,
        sort_key: history::OFFSET,
        sort_key_type: ScalarAttributeType::N,
        connection_index: false,
        stream: None,
    };
    create_table(dynamodb, &shape).await.map(|_| ())
}

/// The members table (docs/presence.md § Storage): channel members, channel items and the
/// live gauges.
async fn members_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    let shape = TableShape {
        name,
        partition_key: sumu_wire::members::table::CHANNEL,
        sort_key: sumu_wire::members::table::USER_ID,
        sort_key_type: ScalarAttributeType::S,
        connection_index: false,
        stream: None,
    };
    create_table(dynamodb, &shape).await.map(|_| ())
}

/// Creates the table unless it exists; returns its stream ARN, if it has one.
async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    shape: &TableShape<'_>,
) -> Result<Option<String>, ProvisionError> {
    let name = shape.name;
    let attribute = |attribute: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(kind)
            .build()
            .map_err(|error| failed(name, error))
    };
    let key = |attribute: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(kind)
            .build()
            .map_err(|error| failed(name, error))
    };
    // Both tables name the index and its key alike (table:: and subscriptions:: agree).
    let index = GlobalSecondaryIndex::builder()
        .index_name(table::CONNECTION_INDEX)
        .key_schema(key(table::CONNECTION_ID, KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|error| failed(name, error))?;
    let mut request = dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(attribute(shape.partition_key, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(shape.sort_key, shape.sort_key_type.clone())?)
        .key_schema(key(shape.partition_key, KeyType::Hash)?)
        .key_schema(key(shape.sort_key, KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest);
    if shape.connection_index {
        request = request.global_secondary_indexes(index);
    }
    let stream = match &shape.stream {
        Some(view) => Some(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view.clone())
                .build()
                .map_err(|error| failed(name, error))?,
        ),
        None => None,
    };
    if let Some(stream) = &stream {
        request = request.stream_specification(stream.clone());
    }
    match request.send().await {
        Ok(_) => {
            dynamodb
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(table::EXPIRES_AT)
                        .enabled(true)
                        .build()
                        .map_err(|error| failed(name, error))?,
                )
                .send()
                .await
                .map_err(|error| failed(name, error))?;
        }
        Err(error) => {
            let error = error.into_service_error();
            if !error.is_resource_in_use_exception() {
                return Err(failed(name, error));
            }
        }
    }
    let described = dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|error| failed(name, error))?;
    let stream_arn = described
        .table()
        .filter(|table| {
            table
                .stream_specification()
                .is_some_and(|stream| stream.stream_enabled())
        })
        .and_then(|table| table.latest_stream_arn())
        .map(str::to_string);
    match (stream, stream_arn) {
        // A table an earlier version provisioned without the stream it now needs.
        (Some(stream), None) => {
            let updated = dynamodb
                .update_table()
                .table_name(name)
                .stream_specification(stream)
                .send()
                .await
                .map_err(|error| failed(name, error))?;
            Ok(updated
                .table_description()
                .and_then(|table| table.latest_stream_arn())
                .map(str::to_string))
        }
        (_, stream_arn) => Ok(stream_arn),
    }
}

async fn topic(sns: &aws_sdk_sns::Client, name: &str) -> Result<String, ProvisionError> {
    let created = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|error| failed(name, error))?;
    created
        .topic_arn()
        .map(str::to_string)
        .ok_or_else(|| missing(name, "CreateTopic returned no ARN"))
}

async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter_arn: Option<&str>,
) -> Result<String, ProvisionError> {
    let mut request = sqs.create_queue().queue_name(name);
    if let Some(arn) = dead_letter_arn {
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
                .to_string(),
        );
    }
    match request.send().await {
        Ok(created) => created
            .queue_url()
            .map(str::to_string)
            .ok_or_else(|| missing(name, "CreateQueue returned no URL")),
        // An existing queue with other attributes: keep it as it is.
        Err(error) => {
            let error = error.into_service_error();
            let existing = sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|_| failed(name, error))?;
            existing
                .queue_url()
                .map(str::to_string)
                .ok_or_else(|| missing(name, "GetQueueUrl returned no URL"))
        }
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, ProvisionError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| failed(url, error))?;
    attributes
        .attributes()
        .and_then(|map| map.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| missing(url, "GetQueueAttributes returned no QueueArn"))
}
