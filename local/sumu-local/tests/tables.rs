//! The tables the test suites create (testkit's one definition) are the tables sumu-local
//! provisions, as DynamoDB describes them: same keys, attribute types, billing mode, index,
//! stream and TTL. Only the names differ.

use aws_sdk_dynamodb::Client;
use sumu_local::provision;
use sumu_local::ResourceNames;

/// What DynamoDB says of a table's shape, without its name, ARNs, dates and counters.
async fn shape(dynamodb: &Client, name: &str) -> String {
    let table = dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .expect("describe the table")
        .table
        .expect("a table description");
    let mut attributes: Vec<String> = table
        .attribute_definitions()
        .iter()
        .map(|attribute| {
            format!(
                "{} {}",
                attribute.attribute_name(),
                attribute.attribute_type()
            )
        })
        .collect();
    attributes.sort();
    let keys = |keys: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<String> {
        keys.iter()
            .map(|key| format!("{} {}", key.attribute_name(), key.key_type()))
            .collect()
    };
    let indexes: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            format!(
                "{:?} {:?} {:?}",
                index.index_name(),
                keys(index.key_schema()),
                index
                    .projection()
                    .and_then(|projection| projection.projection_type())
            )
        })
        .collect();
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .expect("describe the TTL")
        .time_to_live_description
        .map(|ttl| format!("{:?} {:?}", ttl.attribute_name(), ttl.time_to_live_status()));
    format!(
        "attributes {attributes:?}\nkeys {:?}\nbilling {:?}\nindexes {indexes:?}\nstream {:?}\nttl {ttl:?}",
        keys(table.key_schema()),
        table
            .billing_mode_summary()
            .and_then(|billing| billing.billing_mode()),
        table.stream_specification(),
    )
}

#[tokio::test]
async fn the_tests_tables_are_the_provisioned_tables() {
    let aws = testkit::aws_config().await;
    let dynamodb = Client::new(&aws);
    let names = ResourceNames::with_prefix(&testkit::unique_name("tables"));
    provision::provision(&aws, &names).await.expect("provision");
    let connections = testkit::create_connections_table(&dynamodb).await;
    let subscriptions = testkit::create_subscriptions_table(&dynamodb).await;

    let provisioned = shape(&dynamodb, &names.connections_table).await;
    assert_eq!(shape(&dynamodb, &connections).await, provisioned);
    // Guards the comparison: it sees the stream, the index and the TTL.
    for part in [
        "stream_enabled: true, stream_view_type: Some(KeysOnly)",
        "connection_id-index",
        "expires_at",
    ] {
        assert!(provisioned.contains(part), "{part} in {provisioned}");
    }
    assert_eq!(
        shape(&dynamodb, &subscriptions).await,
        shape(&dynamodb, &names.subscriptions_table).await
    );
    assert_ne!(
        shape(&dynamodb, &connections).await,
        shape(&dynamodb, &subscriptions).await,
        "the two tables differ (keys, stream): the comparison would see a swap"
    );
    let history = testkit::create_history_table(&dynamodb).await;
    let provisioned = shape(&dynamodb, &names.history_table).await;
    assert_eq!(shape(&dynamodb, &history).await, provisioned);
    assert!(provisioned.contains("offset N"), "{provisioned}");
    assert!(provisioned.contains("indexes []"), "{provisioned}");
    let members = testkit::create_members_table(&dynamodb).await;
    let provisioned = shape(&dynamodb, &names.members_table).await;
    assert_eq!(shape(&dynamodb, &members).await, provisioned);
    assert!(provisioned.contains("user_id S"), "{provisioned}");
    let subscriptions = shape(&dynamodb, &names.subscriptions_table).await;
    assert!(
        subscriptions.contains("stream_view_type: Some(NewAndOldImages)"),
        "{subscriptions}"
    );
}
