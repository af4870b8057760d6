//! Connections tables in moto, shaped as DESIGN.md says.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use pusher::ConnectionItem;
use sumu_wire::table;

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&testkit::aws_config().await)
}

/// A connections table: testkit's one definition (the module's and sumu-local's shape).
pub async fn create_table(client: &aws_sdk_dynamodb::Client) -> String {
    testkit::create_connections_table(client).await
}

/// Writes items the way the `$connect` template does (plus the attributes the pusher ignores).
pub async fn put_items(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    items: &[ConnectionItem],
) {
    for batch in items.chunks(25) {
        let requests: Vec<WriteRequest> = batch
            .iter()
            .map(|item| {
                let mut attributes = HashMap::from([
                    (
                        table::USER_ID.to_string(),
                        AttributeValue::S(item.key.user_id.clone()),
                    ),
                    (
                        table::CONNECTION_ID.to_string(),
                        AttributeValue::S(item.key.connection_id.clone()),
                    ),
                    (
                        table::CONNECTED_AT.to_string(),
                        AttributeValue::N("1700000000000".into()),
                    ),
                    (
                        table::SOURCE_IP.to_string(),
                        AttributeValue::S("203.0.113.9".into()),
                    ),
                ]);
                if let Some(expires_at) = item.expires_at {
                    attributes.insert(
                        table::EXPIRES_AT.to_string(),
                        AttributeValue::N(expires_at.to_string()),
                    );
                }
                let put = PutRequest::builder()
                    .set_item(Some(attributes))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let output = client
            .batch_write_item()
            .request_items(table_name, requests)
            .send()
            .await
            .unwrap();
        assert!(output.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
}

pub async fn connection_ids(client: &aws_sdk_dynamodb::Client, table_name: &str) -> Vec<String> {
    let output = client.scan().table_name(table_name).send().await.unwrap();
    let mut ids: Vec<String> = output
        .items()
        .iter()
        .map(|item| item[table::CONNECTION_ID].as_s().unwrap().clone())
        .collect();
    ids.sort();
    ids
}

/// A subscriptions table: testkit's one definition (docs/channels.md § Storage).
pub async fn create_subscriptions_table(client: &aws_sdk_dynamodb::Client) -> String {
    testkit::create_subscriptions_table(client).await
}

/// Writes subscription items as a client's `subscribe` does (with `subscribed_at` and
/// `counted`).
pub async fn put_subscriptions(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    items: &[pusher::SubscriptionItem],
) {
    use sumu_wire::subscriptions;
    for batch in items.chunks(25) {
        let requests: Vec<WriteRequest> = batch
            .iter()
            .map(|item| {
                let mut attributes = HashMap::from([
                    (
                        subscriptions::CHANNEL.to_string(),
                        AttributeValue::S(item.key.channel.clone()),
                    ),
                    (
                        subscriptions::CONNECTION_ID.to_string(),
                        AttributeValue::S(item.key.connection_id.clone()),
                    ),
                    (
                        subscriptions::USER_ID.to_string(),
                        AttributeValue::S(item.user_id.clone()),
                    ),
                    (
                        subscriptions::SUBSCRIBED_AT.to_string(),
                        AttributeValue::N("1700000000000".into()),
                    ),
                    (
                        subscriptions::COUNTED.to_string(),
                        AttributeValue::Bool(true),
                    ),
                ]);
                if let Some(expires_at) = item.expires_at {
                    attributes.insert(
                        subscriptions::EXPIRES_AT.to_string(),
                        AttributeValue::N(expires_at.to_string()),
                    );
                }
                let put = PutRequest::builder()
                    .set_item(Some(attributes))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let output = client
            .batch_write_item()
            .request_items(table_name, requests)
            .send()
            .await
            .unwrap();
        assert!(output.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
}

/// Every `(channel, connection_id)` in a subscriptions table, sorted.
pub async fn subscription_keys(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
) -> Vec<(String, String)> {
    use sumu_wire::subscriptions;
    let output = client.scan().table_name(table_name).send().await.unwrap();
    let mut keys: Vec<(String, String)> = output
        .items()
        .iter()
        .map(|item| {
            (
                item[subscriptions::CHANNEL].as_s().unwrap().clone(),
                item[subscriptions::CONNECTION_ID].as_s().unwrap().clone(),
            )
        })
        .collect();
    keys.sort();
    keys
}
