//! The tables sumu's tests create, defined once for every suite, with the shape
//! `modules/sumu/table.tf` and sumu-local's provisioning (`local/sumu-local/src/provision.rs`)
//! give them: on-demand billing and TTL on `expires_at`; the connections and subscriptions
//! tables with string partition and sort keys and the keys-only `connection_id-index` (the
//! connections table with a keys-only stream, the subscriptions table with a stream of new and
//! old images); the history table keyed by channel (string) and offset (number), and the members
//! table keyed by channel and user id, both without index or stream.
//!
//! Why not sumu-local's provisioning code itself: sumu-local depends on the pusher and presence,
//! whose tests depend on this kit, so the kit depending on sumu-local would close a loop between
//! crates. Instead `local/sumu-local/tests/tables.rs` checks that what these functions create and
//! what sumu-local provisions describe alike.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use sumu_wire::{history, members, subscriptions, table};

/// Creates a connections table with a name no other test uses (`…-connections`); returns
/// the name. Panics on failure: for tests.
pub async fn create_connections_table(dynamodb: &Client) -> String {
    let name = stack_name("connections");
    let shape = Shape {
        sort_key_type: ScalarAttributeType::S,
        connection_index: true,
        stream: Some(StreamViewType::KeysOnly),
    };
    create_shaped(dynamodb, &name, table::USER_ID, table::CONNECTION_ID, shape).await;
    name
}

/// Creates a subscriptions table (docs/channels.md § Storage) with a name no other test uses
/// (`…-subscriptions`); returns the name. Panics on failure: for tests.
pub async fn create_subscriptions_table(dynamodb: &Client) -> String {
    let name = stack_name("subscriptions");
    let shape = Shape {
        sort_key_type: ScalarAttributeType::S,
        connection_index: true,
        stream: Some(StreamViewType::NewAndOldImages),
    };
    create_shaped(
        dynamodb,
        &name,
        subscriptions::CHANNEL,
        subscriptions::CONNECTION_ID,
        shape,
    )
    .await;
    name
}

/// Creates a members table (docs/presence.md § Storage) with a name no other test uses
/// (`…-members`); returns the name. Panics on failure: for tests.
pub async fn create_members_table(dynamodb: &Client) -> String {
    let name = stack_name("members");
    let shape = Shape {
        sort_key_type: ScalarAttributeType::S,
        connection_index: false,
        stream: None,
    };
    let table = members::table::CHANNEL;
    create_shaped(dynamodb, &name, table, members::table::USER_ID, shape).await;
    name
}

/// Creates a history table (docs/channels.md § History and recovery) with a name no other test
/// uses (`…-history`); returns the name. Panics on failure: for tests.
pub async fn create_history_table(dynamodb: &Client) -> String {
    let name = stack_name("history");
    let shape = Shape {
        sort_key_type: ScalarAttributeType::N,
        connection_index: false,
        stream: None,
    };
    create_shaped(dynamodb, &name, history::CHANNEL, history::OFFSET, shape).await;
    name
}

/// What differs between the tables.
struct Shape {
    sort_key_type: ScalarAttributeType,
    connection_index: bool,
    stream: Option<StreamViewType>,
}

async fn create_shaped(
    dynamodb: &Client,
    name: &str,
    partition_key: &str,
    sort_key: &str,
    shape: Shape,
) {
    let attribute = |attribute: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(kind)
            .build()
            .expect("an attribute definition")
    };
    let key = |attribute: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(kind)
            .build()
            .expect("a key")
    };
    // Both tables name the index and its key alike (table:: and subscriptions:: agree).
    let index = GlobalSecondaryIndex::builder()
        .index_name(table::CONNECTION_INDEX)
        .key_schema(key(table::CONNECTION_ID, KeyType::Hash))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .expect("an index");
    let mut request = dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(attribute(partition_key, ScalarAttributeType::S))
        .attribute_definitions(attribute(sort_key, shape.sort_key_type))
        .key_schema(key(partition_key, KeyType::Hash))
        .key_schema(key(sort_key, KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest);
    if shape.connection_index {
        request = request.global_secondary_indexes(index);
    }
    if let Some(view) = shape.stream {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view)
                .build()
                .expect("a stream specification"),
        );
    }
    request
        .send()
        .await
        .unwrap_or_else(|error| panic!("create the table {name}: {error:?}"));
    dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(table::EXPIRES_AT)
                .enabled(true)
                .build()
                .expect("a TTL specification"),
        )
        .send()
        .await
        .unwrap_or_else(|error| panic!("enable TTL on {name}: {error:?}"));
}

/// `{unique}-{resource}`: the stack's naming (`{name}-connections`, …), which the IAM check
/// (tests/iam) relies on to tell which of the module's resources a recorded call used.
pub fn stack_name(resource: &str) -> String {
    format!("{}-{resource}", crate::unique_name("test"))
}
