//! The subscriptions table, as the pusher needs it: the subscribers of one partition (one
//! pattern), deleting stale subscription items, and a back end's `subscribe`/`unsubscribe`
//! (docs/pusher.md, "Server-side control"). Schema: docs/channels.md § Storage.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use sumu_wire::{subscriptions, table};

use crate::store::{
    delete_keys, epoch_seconds, error, string, ConnectionKey, DynamoStore, StoreError,
};

/// The primary key of a subscription item: the pattern's text and the connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionKey {
    /// The partition: the subscription's pattern as written (`room/42`, `room/*`, `*`).
    pub channel: String,
    pub connection_id: String,
}

/// A subscription item as read for a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionItem {
    pub key: SubscriptionKey,
    /// The connection's principal: for `exclude_users`, and to prune its connection item.
    pub user_id: String,
    /// Epoch seconds; `None` when the item has no number there.
    pub expires_at: Option<i64>,
    /// Epoch milliseconds; `None` when the item has none (a back end may leave it out).
    pub subscribed_at: Option<i64>,
}

impl SubscriptionItem {
    /// Live iff `expires_at` > now. Unlike a connection item, a subscription item without
    /// `expires_at` is not live: the attribute is required (docs/channels.md § Storage), and a
    /// subscription must never outlive its connection.
    pub(crate) fn is_live(&self, now_epoch_seconds: i64) -> bool {
        self.expires_at
            .is_some_and(|expires_at| expires_at > now_epoch_seconds)
    }
}

/// The narrow seam between publications and the subscriptions table. A lookup returns expired
/// items too: the caller filters them (and prunes them).
pub trait SubscriptionStore: Sync {
    /// Every item of one partition (one pattern's text), read to the end.
    fn query_subscriptions(
        &self,
        pattern: &str,
    ) -> impl Future<Output = Result<Vec<SubscriptionItem>, StoreError>> + Send;
    /// Deletes up to 25 subscription items in one batch; returns the keys DynamoDB left
    /// unprocessed.
    fn delete_subscriptions(
        &self,
        keys: &[SubscriptionKey],
    ) -> impl Future<Output = Result<Vec<SubscriptionKey>, StoreError>> + Send;
    /// Writes `item` as a back end's subscription (no `counted`) unless an item with its key
    /// exists (counted or not: it is left alone). Returns whether it was written.
    fn put_subscription(
        &self,
        item: &SubscriptionItem,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes one subscription item. Returns `None` when there was none, otherwise whether
    /// the deleted item was `counted` (then its connection's counter is to be decremented).
    fn remove_subscription(
        &self,
        key: &SubscriptionKey,
    ) -> impl Future<Output = Result<Option<bool>, StoreError>> + Send;
    /// Decrements the connection item's `subscriptions` counter, never below zero and never
    /// creating the item. Returns whether it was decremented.
    fn uncount_subscription(
        &self,
        connection: &ConnectionKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

fn key_of(item: &HashMap<String, AttributeValue>) -> Option<SubscriptionKey> {
    Some(SubscriptionKey {
        channel: string(item, subscriptions::CHANNEL)?,
        connection_id: string(item, subscriptions::CONNECTION_ID)?,
    })
}

fn subscription_item(item: &HashMap<String, AttributeValue>) -> Option<SubscriptionItem> {
    let key = key_of(item)?;
    let user_id = string(item, subscriptions::USER_ID)?;
    let expires_at = epoch_seconds(item, subscriptions::EXPIRES_AT);
    let subscribed_at = epoch_seconds(item, subscriptions::SUBSCRIBED_AT);
    Some(SubscriptionItem {
        key,
        user_id,
        expires_at,
        subscribed_at,
    })
}

impl SubscriptionStore for DynamoStore {
    async fn query_subscriptions(
        &self,
        pattern: &str,
    ) -> Result<Vec<SubscriptionItem>, StoreError> {
        let names = HashMap::from([
            ("#ch".to_string(), subscriptions::CHANNEL.to_string()),
            ("#c".to_string(), subscriptions::CONNECTION_ID.to_string()),
            ("#u".to_string(), subscriptions::USER_ID.to_string()),
            ("#e".to_string(), subscriptions::EXPIRES_AT.to_string()),
            ("#s".to_string(), subscriptions::SUBSCRIBED_AT.to_string()),
        ]);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            // `expires_at` is filtered here, in code, not by a FilterExpression: the expired
            // items are wanted too, to be deleted.
            let page = self
                .client
                .query()
                .table_name(&self.subscriptions_table)
                .key_condition_expression("#ch = :ch")
                .projection_expression("#ch, #c, #u, #e, #s")
                .set_expression_attribute_names(Some(names.clone()))
                .expression_attribute_values(":ch", AttributeValue::S(pattern.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| error("Query (subscriptions table)", e))?;
            for raw in page.items() {
                match subscription_item(raw) {
                    Some(item) => found.push(item),
                    None => tracing::warn!(
                        pattern,
                        "skipped a subscription item without string channel/connection_id/user_id"
                    ),
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    async fn delete_subscriptions(
        &self,
        keys: &[SubscriptionKey],
    ) -> Result<Vec<SubscriptionKey>, StoreError> {
        let keys = keys
            .iter()
            .map(|key| {
                HashMap::from([
                    (
                        subscriptions::CHANNEL.to_string(),
                        AttributeValue::S(key.channel.clone()),
                    ),
                    (
                        subscriptions::CONNECTION_ID.to_string(),
                        AttributeValue::S(key.connection_id.clone()),
                    ),
                ])
            })
            .collect();
        let unprocessed = delete_keys(
            &self.client,
            &self.subscriptions_table,
            "BatchWriteItem (subscriptions table)",
            keys,
        )
        .await?;
        Ok(unprocessed.iter().filter_map(key_of).collect())
    }

    async fn put_subscription(&self, item: &SubscriptionItem) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.subscriptions_table)
            .item(
                subscriptions::CHANNEL,
                AttributeValue::S(item.key.channel.clone()),
            )
            .item(
                subscriptions::CONNECTION_ID,
                AttributeValue::S(item.key.connection_id.clone()),
            )
            .item(
                subscriptions::USER_ID,
                AttributeValue::S(item.user_id.clone()),
            )
            .condition_expression("attribute_not_exists(#c)")
            .expression_attribute_names("#c", subscriptions::CONNECTION_ID);
        if let Some(expires_at) = item.expires_at {
            put = put.item(
                subscriptions::EXPIRES_AT,
                AttributeValue::N(expires_at.to_string()),
            );
        }
        if let Some(subscribed_at) = item.subscribed_at {
            put = put.item(
                subscriptions::SUBSCRIBED_AT,
                AttributeValue::N(subscribed_at.to_string()),
            );
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                Ok(false)
            }
            Err(e) => Err(error("PutItem (subscriptions table)", e)),
        }
    }

    async fn remove_subscription(&self, key: &SubscriptionKey) -> Result<Option<bool>, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.subscriptions_table)
            .key(
                subscriptions::CHANNEL,
                AttributeValue::S(key.channel.clone()),
            )
            .key(
                subscriptions::CONNECTION_ID,
                AttributeValue::S(key.connection_id.clone()),
            )
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| error("DeleteItem (subscriptions table)", e))?;
        Ok(deleted.attributes().map(|old| {
            matches!(
                old.get(subscriptions::COUNTED),
                Some(AttributeValue::Bool(true))
            )
        }))
    }

    async fn uncount_subscription(&self, connection: &ConnectionKey) -> Result<bool, StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                table::USER_ID,
                AttributeValue::S(connection.user_id.clone()),
            )
            .key(
                table::CONNECTION_ID,
                AttributeValue::S(connection.connection_id.clone()),
            )
            .update_expression("SET #s = #s - :one")
            .condition_expression("#s > :zero")
            .expression_attribute_names("#s", table::SUBSCRIPTIONS)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                Ok(false)
            }
            Err(e) => Err(error("UpdateItem", e)),
        }
    }
}
