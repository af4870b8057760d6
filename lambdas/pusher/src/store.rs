//! The connections table, as the pusher needs it: find targets, delete stale items; and the
//! DynamoDB helpers both tables use (the subscriptions table's side is in its own module, which
//! builds on this one).

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use sumu_wire::table;

/// The primary key of a connection item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionKey {
    pub user_id: String,
    pub connection_id: String,
}

/// A connection item as read for fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionItem {
    pub key: ConnectionKey,
    /// Epoch seconds; `None` when the item has no TTL attribute (then it never expires).
    pub expires_at: Option<i64>,
}

impl ConnectionItem {
    /// A connection is live iff `expires_at` > now (DESIGN.md § Connections table).
    pub(crate) fn is_live(&self, now_epoch_seconds: i64) -> bool {
        self.expires_at
            .is_none_or(|expires_at| expires_at > now_epoch_seconds)
    }
}

#[derive(Debug, thiserror::Error)]
/// `operation` names the table when it is not the connections table.
#[error("{operation} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub message: String,
}

/// The narrow seam between the fan-out logic and the connections table. Every method returns
/// expired items too: the caller filters them (and prunes them).
pub trait ConnectionStore: Sync {
    /// All connection items of one user.
    fn query_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<ConnectionItem>, StoreError>> + Send;
    /// The item of one connection id (through the `connection_id` index), if it exists.
    fn find_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<ConnectionItem>, StoreError>> + Send;
    /// Every item of one segment of a parallel Scan.
    fn scan_segment(
        &self,
        segment: u32,
        total_segments: u32,
    ) -> impl Future<Output = Result<Vec<ConnectionItem>, StoreError>> + Send;
    /// Deletes up to 25 items in one batch; returns the keys DynamoDB left unprocessed.
    fn delete_batch(
        &self,
        keys: &[ConnectionKey],
    ) -> impl Future<Output = Result<Vec<ConnectionKey>, StoreError>> + Send;

    /// At most `limit` items of one Scan segment, read after `after` (from the start with
    /// `None`), and the key to go on from when the segment has more: one shard of a broadcast.
    /// A store that cannot page returns the whole segment (and no key).
    fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<ConnectionKey>,
        limit: u32,
    ) -> impl Future<Output = Result<ScanPage, StoreError>> + Send {
        let _ = (after, limit);
        async move {
            Ok(ScanPage {
                items: self.scan_segment(segment, total_segments).await?,
                next: None,
            })
        }
    }

    /// The table's item count as DynamoDB last computed it (about every six hours), if the
    /// store knows one: how many shards a broadcast is split into.
    fn approximate_count(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        async { Ok(None) }
    }
}

/// One page of a Scan segment.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub items: Vec<ConnectionItem>,
    /// Where the segment goes on; `None` when it is read to its end.
    pub next: Option<ConnectionKey>,
}

/// DynamoDB's BatchWriteItem limit.
pub const DELETE_BATCH_SIZE: usize = 25;

/// The connections and subscriptions tables in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    pub(crate) subscriptions_table: String,
    /// Where channels that keep history keep it (crate::history); `None`: no channel does.
    pub(crate) history: Option<sumu_history::HistoryTable>,
}

impl DynamoStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        subscriptions_table: impl Into<String>,
    ) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            subscriptions_table: subscriptions_table.into(),
            history: None,
        }
    }

    /// The same store, keeping channel history in `history_table`.
    pub fn with_history_table(mut self, history_table: impl Into<String>) -> Self {
        self.history = Some(sumu_history::HistoryTable::new(
            self.client.clone(),
            history_table,
        ));
        self
    }
}

pub(crate) fn error(operation: &'static str, err: impl std::error::Error) -> StoreError {
    // The SDK's Display says only "service error"; the source chain says which.
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    StoreError { operation, message }
}

/// Reads a key attribute; items without one are skipped (they cannot be addressed anyway).
pub(crate) fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|value| value.as_s().ok()).cloned()
}

/// Reads a TTL attribute (epoch seconds). TTL values are whole seconds, but a float written by
/// hand must not make an item immortal.
pub(crate) fn epoch_seconds(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|n| {
            n.parse::<i64>()
                .ok()
                .or_else(|| n.parse::<f64>().ok().map(|f| f as i64))
        })
}

/// Deletes up to 25 items of `table` by key in one BatchWriteItem; returns the keys DynamoDB
/// left unprocessed.
pub(crate) async fn delete_keys(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    operation: &'static str,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let requests = keys
        .into_iter()
        .map(|key| {
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map_err(|e| error(operation, e))?;
            Ok(WriteRequest::builder().delete_request(delete).build())
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let output = client
        .batch_write_item()
        .request_items(table, requests)
        .send()
        .await
        .map_err(|e| error(operation, e))?;
    Ok(output
        .unprocessed_items()
        .and_then(|tables| tables.get(table))
        .map(|requests| {
            requests
                .iter()
                .filter_map(|request| request.delete_request())
                .map(|delete| delete.key().clone())
                .collect()
        })
        .unwrap_or_default())
}

fn connection_item(item: &HashMap<String, AttributeValue>) -> Option<ConnectionItem> {
    let key = ConnectionKey {
        user_id: string(item, table::USER_ID)?,
        connection_id: string(item, table::CONNECTION_ID)?,
    };
    let expires_at = epoch_seconds(item, table::EXPIRES_AT);
    Some(ConnectionItem { key, expires_at })
}

fn items(raw: &[HashMap<String, AttributeValue>]) -> impl Iterator<Item = ConnectionItem> + '_ {
    raw.iter().filter_map(|item| {
        let parsed = connection_item(item);
        if parsed.is_none() {
            tracing::warn!("skipped a connection item without string user_id/connection_id");
        }
        parsed
    })
}

/// The primary key as DynamoDB attributes (an `ExclusiveStartKey`).
fn key_attributes(key: &ConnectionKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            table::USER_ID.to_string(),
            AttributeValue::S(key.user_id.clone()),
        ),
        (
            table::CONNECTION_ID.to_string(),
            AttributeValue::S(key.connection_id.clone()),
        ),
    ])
}

/// `#u, #c, #e` and their names: only what fan-out needs crosses the wire.
fn projection_names() -> HashMap<String, String> {
    HashMap::from([
        ("#u".to_string(), table::USER_ID.to_string()),
        ("#c".to_string(), table::CONNECTION_ID.to_string()),
        ("#e".to_string(), table::EXPIRES_AT.to_string()),
    ])
}

impl ConnectionStore for DynamoStore {
    async fn query_user(&self, user_id: &str) -> Result<Vec<ConnectionItem>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#u = :u")
                .projection_expression("#u, #c, #e")
                .set_expression_attribute_names(Some(projection_names()))
                .expression_attribute_values(":u", AttributeValue::S(user_id.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| error("Query", e))?;
            found.extend(items(page.items()));
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    async fn find_connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        // The index is keys-only, so it yields the user; `expires_at` needs the item itself.
        let index = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::CONNECTION_INDEX)
            .key_condition_expression("#c = :c")
            .expression_attribute_names("#c", table::CONNECTION_ID)
            .expression_attribute_values(":c", AttributeValue::S(connection_id.to_string()))
            .limit(1)
            .send()
            .await
            .map_err(|e| error("Query (connection_id index)", e))?;
        let Some(key) = items(index.items()).next().map(|item| item.key) else {
            return Ok(None);
        };
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(table::USER_ID, AttributeValue::S(key.user_id.clone()))
            .key(
                table::CONNECTION_ID,
                AttributeValue::S(key.connection_id.clone()),
            )
            .projection_expression("#u, #c, #e")
            .set_expression_attribute_names(Some(projection_names()))
            .send()
            .await
            .map_err(|e| error("GetItem", e))?;
        Ok(item.item().and_then(connection_item))
    }

    async fn scan_segment(
        &self,
        segment: u32,
        total_segments: u32,
    ) -> Result<Vec<ConnectionItem>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .segment(segment as i32)
                .total_segments(total_segments as i32)
                .projection_expression("#u, #c, #e")
                .set_expression_attribute_names(Some(projection_names()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| error("Scan", e))?;
            found.extend(items(page.items()));
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<ConnectionKey>,
        limit: u32,
    ) -> Result<ScanPage, StoreError> {
        let limit = limit.clamp(1, i32::MAX as u32);
        let mut found = Vec::new();
        let mut start = after.map(|key| key_attributes(&key));
        loop {
            // `Limit` counts the items read, so no request reads past the shard's end.
            let wanted = limit - found.len() as u32;
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .segment(segment as i32)
                .total_segments(total_segments as i32)
                .projection_expression("#u, #c, #e")
                .set_expression_attribute_names(Some(projection_names()))
                .set_exclusive_start_key(start)
                .limit(wanted as i32)
                .send()
                .await
                .map_err(|e| error("Scan", e))?;
            found.extend(items(page.items()));
            start = page.last_evaluated_key;
            match &start {
                None => {
                    return Ok(ScanPage {
                        items: found,
                        next: None,
                    })
                }
                Some(key) if found.len() as u32 >= limit => {
                    let next = connection_item(key).map(|item| item.key);
                    if next.is_none() {
                        return Err(StoreError {
                            operation: "Scan",
                            message: "LastEvaluatedKey without user_id/connection_id".into(),
                        });
                    }
                    return Ok(ScanPage { items: found, next });
                }
                // A page ended at DynamoDB's 1 MB before the shard's limit: read on.
                Some(_) => {}
            }
        }
    }

    async fn approximate_count(&self) -> Result<Option<u64>, StoreError> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| error("DescribeTable", e))?;
        Ok(described
            .table()
            .and_then(|table| table.item_count())
            .and_then(|count| u64::try_from(count).ok()))
    }

    async fn delete_batch(&self, keys: &[ConnectionKey]) -> Result<Vec<ConnectionKey>, StoreError> {
        let keys = keys.iter().map(key_attributes).collect();
        let unprocessed = delete_keys(&self.client, &self.table, "BatchWriteItem", keys).await?;
        Ok(unprocessed
            .iter()
            .filter_map(|key| connection_item(key).map(|item| item.key))
            .collect())
    }
}
