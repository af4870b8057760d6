//! The subscriptions table and the per-connection cap (docs/channels.md § Subscribing).
//!
//! - `subscribe` is one TransactWriteItems: the connection item's `subscriptions` counter goes
//!   up by one (only while the connection exists and is below the cap) together with the Put
//!   of the subscription item (only when it does not exist yet). DynamoDB serializes
//!   transactions touching the same item, so the cap holds under concurrent subscribes: of 20
//!   at 95, exactly 5 commit.
//! - `unsubscribe` deletes the item and takes one off the counter in one transaction when the
//!   item was counted; otherwise (absent, written by a back end, or the connection is gone) a
//!   plain DeleteItem, so it is idempotent.
//! - When a connection ends, [`SubscriptionStore::remove_connection`] deletes every item of
//!   it (a Query of the `connection_id-index` GSI, then BatchWriteItem deletes).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
use sumu_wire::{subscriptions, table};
use thiserror::Error;
use tracing::warn;

/// One subscription a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The pattern's text: the item's partition key.
    pub channel: String,
    pub connection_id: String,
    /// The connection's principal (the connections table's partition key).
    pub user_id: String,
    /// Epoch seconds: the connection's own end (see [`crate::channels::expires_at`]).
    pub expires_at: i64,
    /// Epoch milliseconds.
    pub subscribed_at: i64,
}

/// What a subscribe came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// The item was written and counted.
    Subscribed,
    /// The item already existed (counted or written by a back end): nothing changed.
    AlreadySubscribed,
    /// The connection already has `cap` subscriptions: nothing changed.
    TooMany,
    /// The connection item does not exist (any more): nothing changed.
    ConnectionGone,
}

/// The seam between the channel routes and stream cleanup on one side and DynamoDB on the
/// other.
pub trait SubscriptionStore: Send + Sync {
    /// Writes the subscription and counts it, unless it exists, the connection is at `cap`,
    /// or the connection is gone.
    fn subscribe(
        &self,
        subscription: &Subscription,
        cap: u32,
    ) -> impl Future<Output = Result<SubscribeOutcome, SubscriptionError>> + Send;

    /// Removes the subscription (uncounting it when it was counted). Idempotent.
    fn unsubscribe(
        &self,
        user_id: &str,
        connection_id: &str,
        channel: &str,
    ) -> impl Future<Output = Result<(), SubscriptionError>> + Send;

    /// Deletes every subscription of an ended connection; returns how many it deleted.
    fn remove_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<usize, SubscriptionError>> + Send;
}

#[derive(Debug, Error)]
#[error("the subscriptions of connection {connection_id} could not be changed: {message}")]
pub struct SubscriptionError {
    pub connection_id: String,
    pub message: String,
}

/// How often a transaction cancelled by a concurrent one (`TransactionConflict`) or by
/// throttling is tried in all before the request answers `channels_unavailable`.
pub const MAX_TRANSACTION_ATTEMPTS: u32 = 8;
/// How often a BatchWriteItem is sent in all while DynamoDB leaves items unprocessed.
pub const MAX_BATCH_ATTEMPTS: u32 = 8;
/// BatchWriteItem's limit.
pub const BATCH_WRITE_LIMIT: usize = 25;

/// The cancellation reason codes DynamoDB puts in a TransactionCanceledException.
pub mod codes {
    pub const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
    pub const TRANSACTION_CONFLICT: &str = "TransactionConflict";
    pub const THROTTLING: &str = "ThrottlingError";
    pub const THROUGHPUT_EXCEEDED: &str = "ProvisionedThroughputExceeded";
}

/// What a cancelled subscribe transaction (`[Update connection, Put subscription]`) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeCancellation {
    /// The Put's condition failed: the subscription exists.
    AlreadySubscribed,
    /// Cancelled by a concurrent transaction or throttling: try again.
    Retry,
    /// The Update's condition failed: at the cap, or the connection is gone (a consistent
    /// GetItem tells which).
    ConnectionRefused,
    /// Anything else (a validation error): not retried.
    Failed,
}

/// Reads the cancellation reasons of a subscribe transaction, in item order. An existing
/// subscription wins over everything (re-subscribing is idempotent even at the cap).
pub fn read_subscribe_cancellation(reasons: &[Option<&str>]) -> SubscribeCancellation {
    let code = |index: usize| reasons.get(index).copied().flatten();
    if code(1) == Some(codes::CONDITIONAL_CHECK_FAILED) {
        SubscribeCancellation::AlreadySubscribed
    } else if reasons.iter().any(|reason| is_retryable(*reason)) {
        SubscribeCancellation::Retry
    } else if code(0) == Some(codes::CONDITIONAL_CHECK_FAILED) {
        SubscribeCancellation::ConnectionRefused
    } else {
        SubscribeCancellation::Failed
    }
}

/// What a cancelled unsubscribe transaction (`[Delete subscription, Update connection]`)
/// means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeCancellation {
    /// A condition failed (the item is absent or uncounted, or the connection is gone or its
    /// counter is 0): a plain DeleteItem finishes the job.
    PlainDelete,
    Retry,
    Failed,
}

pub fn read_unsubscribe_cancellation(reasons: &[Option<&str>]) -> UnsubscribeCancellation {
    if reasons.contains(&Some(codes::CONDITIONAL_CHECK_FAILED)) {
        UnsubscribeCancellation::PlainDelete
    } else if reasons.iter().any(|reason| is_retryable(*reason)) {
        UnsubscribeCancellation::Retry
    } else {
        UnsubscribeCancellation::Failed
    }
}

fn is_retryable(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(codes::TRANSACTION_CONFLICT | codes::THROTTLING | codes::THROUGHPUT_EXCEEDED)
    )
}

/// [`SubscriptionStore`] backed by DynamoDB: the subscriptions table and the counter on the
/// connections table.
#[derive(Debug, Clone)]
pub struct DynamoSubscriptionStore {
    pub(crate) client: aws_sdk_dynamodb::Client,
    connections_table: String,
    pub(crate) subscriptions_table: String,
    /// The history table, for channels that keep history (crate::history).
    pub(crate) history: Option<sumu_history::HistoryTable>,
    /// The members table, for channels that track members (crate::members).
    pub(crate) members_table: Option<String>,
}

/// How one transaction attempt ended.
enum Attempt<T> {
    Done(T),
    Retry(String),
}

impl DynamoSubscriptionStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        connections_table: impl Into<String>,
        subscriptions_table: impl Into<String>,
    ) -> Self {
        DynamoSubscriptionStore {
            client,
            connections_table: connections_table.into(),
            subscriptions_table: subscriptions_table.into(),
            history: None,
            members_table: None,
        }
    }

    /// The same store, tracking channel members and the live gauges in `members_table`.
    pub fn with_members_table(mut self, members_table: impl Into<String>) -> Self {
        self.members_table = Some(members_table.into());
        self
    }

    /// The same store, reading and extending channel history in `history_table`.
    pub fn with_history_table(mut self, history_table: impl Into<String>) -> Self {
        self.history = Some(sumu_history::HistoryTable::new(
            self.client.clone(),
            history_table,
        ));
        self
    }

    fn connection_key(user_id: &str, connection_id: &str) -> [(String, AttributeValue); 2] {
        [
            (table::USER_ID.into(), AttributeValue::S(user_id.into())),
            (
                table::CONNECTION_ID.into(),
                AttributeValue::S(connection_id.into()),
            ),
        ]
    }

    fn subscription_key(channel: &str, connection_id: &str) -> [(String, AttributeValue); 2] {
        [
            (
                subscriptions::CHANNEL.into(),
                AttributeValue::S(channel.into()),
            ),
            (
                subscriptions::CONNECTION_ID.into(),
                AttributeValue::S(connection_id.into()),
            ),
        ]
    }

    /// `[Update connection (count, guarded by existence and the cap), Put subscription
    /// (guarded by absence)]`.
    fn subscribe_items(
        &self,
        subscription: &Subscription,
        cap: u32,
    ) -> Result<Vec<TransactWriteItem>, String> {
        let count = Update::builder()
            .table_name(&self.connections_table)
            .set_key(Some(
                Self::connection_key(&subscription.user_id, &subscription.connection_id).into(),
            ))
            .update_expression("SET #count = if_not_exists(#count, :zero) + :one")
            .condition_expression(
                "attribute_exists(#connection) AND (attribute_not_exists(#count) OR #count < :cap)",
            )
            .expression_attribute_names("#count", table::SUBSCRIPTIONS)
            .expression_attribute_names("#connection", table::CONNECTION_ID)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":cap", AttributeValue::N(cap.to_string()))
            .build()
            .map_err(|error| error.to_string())?;
        let put = Put::builder()
            .table_name(&self.subscriptions_table)
            .set_item(Some(
                Self::subscription_key(&subscription.channel, &subscription.connection_id).into(),
            ))
            .item(
                subscriptions::USER_ID,
                AttributeValue::S(subscription.user_id.clone()),
            )
            .item(
                subscriptions::EXPIRES_AT,
                AttributeValue::N(subscription.expires_at.to_string()),
            )
            .item(
                subscriptions::SUBSCRIBED_AT,
                AttributeValue::N(subscription.subscribed_at.to_string()),
            )
            .item(subscriptions::COUNTED, AttributeValue::Bool(true))
            .condition_expression("attribute_not_exists(#connection)")
            .expression_attribute_names("#connection", subscriptions::CONNECTION_ID)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(vec![
            TransactWriteItem::builder().update(count).build(),
            TransactWriteItem::builder().put(put).build(),
        ])
    }

    /// `[Delete subscription (only a counted one), Update connection (uncount, never below
    /// zero)]`.
    fn unsubscribe_items(
        &self,
        user_id: &str,
        connection_id: &str,
        channel: &str,
    ) -> Result<Vec<TransactWriteItem>, String> {
        let delete = Delete::builder()
            .table_name(&self.subscriptions_table)
            .set_key(Some(Self::subscription_key(channel, connection_id).into()))
            .condition_expression("#counted = :true")
            .expression_attribute_names("#counted", subscriptions::COUNTED)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(|error| error.to_string())?;
        let uncount = Update::builder()
            .table_name(&self.connections_table)
            .set_key(Some(Self::connection_key(user_id, connection_id).into()))
            .update_expression("SET #count = #count - :one")
            .condition_expression("#count > :zero")
            .expression_attribute_names("#count", table::SUBSCRIPTIONS)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(|error| error.to_string())?;
        Ok(vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(uncount).build(),
        ])
    }

    /// Sends one transaction: `Ok(None)` when it committed, `Ok(Some(codes))` when it was
    /// cancelled (one reason code per item), `Err` for any other failure.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<Option<String>>>, String> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(failure)) => match failure.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => Ok(Some(
                    cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|reason| reason.code().map(str::to_owned))
                        .collect(),
                )),
                other => Err(DisplayErrorContext(other).to_string()),
            },
            Err(other) => Err(DisplayErrorContext(other).to_string()),
        }
    }

    async fn connection_exists(&self, user_id: &str, connection_id: &str) -> Result<bool, String> {
        let found = self
            .client
            .get_item()
            .table_name(&self.connections_table)
            .set_key(Some(Self::connection_key(user_id, connection_id).into()))
            .consistent_read(true)
            .projection_expression("#connection")
            .expression_attribute_names("#connection", table::CONNECTION_ID)
            .send()
            .await
            .map_err(|error| DisplayErrorContext(error).to_string())?;
        Ok(found.item.is_some_and(|item| !item.is_empty()))
    }

    async fn subscribe_once(
        &self,
        subscription: &Subscription,
        cap: u32,
    ) -> Result<Attempt<SubscribeOutcome>, String> {
        let Some(reasons) = self
            .transact(self.subscribe_items(subscription, cap)?)
            .await?
        else {
            return Ok(Attempt::Done(SubscribeOutcome::Subscribed));
        };
        let codes: Vec<Option<&str>> = reasons.iter().map(Option::as_deref).collect();
        match read_subscribe_cancellation(&codes) {
            SubscribeCancellation::AlreadySubscribed => {
                Ok(Attempt::Done(SubscribeOutcome::AlreadySubscribed))
            }
            SubscribeCancellation::Retry => Ok(Attempt::Retry(format!("cancelled: {codes:?}"))),
            SubscribeCancellation::ConnectionRefused => {
                let exists = self
                    .connection_exists(&subscription.user_id, &subscription.connection_id)
                    .await?;
                Ok(Attempt::Done(if exists {
                    SubscribeOutcome::TooMany
                } else {
                    SubscribeOutcome::ConnectionGone
                }))
            }
            SubscribeCancellation::Failed => Err(format!("transaction cancelled: {codes:?}")),
        }
    }

    async fn unsubscribe_once(
        &self,
        user_id: &str,
        connection_id: &str,
        channel: &str,
    ) -> Result<Attempt<()>, String> {
        let items = self.unsubscribe_items(user_id, connection_id, channel)?;
        let Some(reasons) = self.transact(items).await? else {
            return Ok(Attempt::Done(()));
        };
        let codes: Vec<Option<&str>> = reasons.iter().map(Option::as_deref).collect();
        match read_unsubscribe_cancellation(&codes) {
            UnsubscribeCancellation::PlainDelete => {
                self.client
                    .delete_item()
                    .table_name(&self.subscriptions_table)
                    .set_key(Some(Self::subscription_key(channel, connection_id).into()))
                    .send()
                    .await
                    .map_err(|error| DisplayErrorContext(error).to_string())?;
                Ok(Attempt::Done(()))
            }
            UnsubscribeCancellation::Retry => Ok(Attempt::Retry(format!("cancelled: {codes:?}"))),
            UnsubscribeCancellation::Failed => Err(format!("transaction cancelled: {codes:?}")),
        }
    }

    /// The channels (partition keys) of every subscription item of the connection, read from
    /// the keys-only GSI, all pages.
    async fn channels_of(&self, connection_id: &str) -> Result<Vec<String>, String> {
        let mut channels = Vec::new();
        let mut start_key = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.subscriptions_table)
                .index_name(subscriptions::CONNECTION_INDEX)
                .key_condition_expression("#connection = :connection")
                .expression_attribute_names("#connection", subscriptions::CONNECTION_ID)
                .expression_attribute_values(
                    ":connection",
                    AttributeValue::S(connection_id.to_owned()),
                )
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| DisplayErrorContext(error).to_string())?;
            for item in page.items() {
                match item.get(subscriptions::CHANNEL) {
                    Some(AttributeValue::S(channel)) => channels.push(channel.clone()),
                    // The index always projects the table's keys; nothing to delete otherwise.
                    _ => warn!(
                        connection_id,
                        "a subscription index entry without a channel"
                    ),
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(channels),
            }
        }
    }

    /// Deletes up to 25 subscription items, resending what DynamoDB leaves unprocessed.
    async fn delete_batch(&self, connection_id: &str, channels: &[String]) -> Result<(), String> {
        let mut requests = channels
            .iter()
            .map(|channel| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(Self::subscription_key(channel, connection_id).into()))
                    .build()
                    .map_err(|error| error.to_string())?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, String>>()?;
        for attempt in 0..MAX_BATCH_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.subscriptions_table, requests)
                .send()
                .await
                .map_err(|error| DisplayErrorContext(error).to_string())?;
            requests = output
                .unprocessed_items
                .and_then(|mut unprocessed| unprocessed.remove(&self.subscriptions_table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
        }
        Err(format!(
            "{} deletes still unprocessed after {MAX_BATCH_ATTEMPTS} attempts",
            requests.len()
        ))
    }
}

impl SubscriptionStore for DynamoSubscriptionStore {
    async fn subscribe(
        &self,
        subscription: &Subscription,
        cap: u32,
    ) -> Result<SubscribeOutcome, SubscriptionError> {
        let failed = |message: String| SubscriptionError {
            connection_id: subscription.connection_id.clone(),
            message,
        };
        let mut last = String::new();
        for attempt in 0..MAX_TRANSACTION_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            match self
                .subscribe_once(subscription, cap)
                .await
                .map_err(failed)?
            {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Retry(why) => last = why,
            }
        }
        Err(failed(format!(
            "still conflicting after {MAX_TRANSACTION_ATTEMPTS} attempts ({last})"
        )))
    }

    async fn unsubscribe(
        &self,
        user_id: &str,
        connection_id: &str,
        channel: &str,
    ) -> Result<(), SubscriptionError> {
        let failed = |message: String| SubscriptionError {
            connection_id: connection_id.to_owned(),
            message,
        };
        let mut last = String::new();
        for attempt in 0..MAX_TRANSACTION_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            match self
                .unsubscribe_once(user_id, connection_id, channel)
                .await
                .map_err(failed)?
            {
                Attempt::Done(()) => return Ok(()),
                Attempt::Retry(why) => last = why,
            }
        }
        Err(failed(format!(
            "still conflicting after {MAX_TRANSACTION_ATTEMPTS} attempts ({last})"
        )))
    }

    async fn remove_connection(&self, connection_id: &str) -> Result<usize, SubscriptionError> {
        let failed = |message: String| SubscriptionError {
            connection_id: connection_id.to_owned(),
            message,
        };
        let channels = self.channels_of(connection_id).await.map_err(failed)?;
        for batch in channels.chunks(BATCH_WRITE_LIMIT) {
            self.delete_batch(connection_id, batch)
                .await
                .map_err(failed)?;
        }
        Ok(channels.len())
    }
}

/// Sleeps a random time up to 10 ms × 2^attempt (at most 1 s): full jitter, so transactions
/// that conflicted once do not collide again in lockstep.
async fn backoff(attempt: u32) {
    let ceiling_ms = 10_u64.saturating_mul(1 << attempt.min(10)).min(1000);
    // A fresh RandomState is randomly seeded: enough for jitter, without a dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    tokio::time::sleep(Duration::from_millis(random % (ceiling_ms + 1))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const CCF: Option<&str> = Some(codes::CONDITIONAL_CHECK_FAILED);
    const NONE: Option<&str> = Some("None");
    const CONFLICT: Option<&str> = Some(codes::TRANSACTION_CONFLICT);

    #[test]
    fn subscribe_cancellations() {
        use SubscribeCancellation::*;
        assert_eq!(read_subscribe_cancellation(&[NONE, CCF]), AlreadySubscribed);
        assert_eq!(
            read_subscribe_cancellation(&[CCF, CCF]),
            AlreadySubscribed,
            "an existing subscription is answered `subscribed` even at the cap"
        );
        assert_eq!(
            read_subscribe_cancellation(&[CONFLICT, CCF]),
            AlreadySubscribed
        );
        assert_eq!(read_subscribe_cancellation(&[CCF, NONE]), ConnectionRefused);
        assert_eq!(read_subscribe_cancellation(&[CONFLICT, NONE]), Retry);
        assert_eq!(read_subscribe_cancellation(&[CCF, CONFLICT]), Retry);
        assert_eq!(
            read_subscribe_cancellation(&[Some(codes::THROTTLING), NONE]),
            Retry
        );
        assert_eq!(
            read_subscribe_cancellation(&[Some("ValidationError"), NONE]),
            Failed
        );
        assert_eq!(read_subscribe_cancellation(&[]), Failed);
    }

    #[test]
    fn unsubscribe_cancellations() {
        use UnsubscribeCancellation::*;
        assert_eq!(read_unsubscribe_cancellation(&[CCF, NONE]), PlainDelete);
        assert_eq!(read_unsubscribe_cancellation(&[NONE, CCF]), PlainDelete);
        assert_eq!(read_unsubscribe_cancellation(&[CONFLICT, NONE]), Retry);
        assert_eq!(read_unsubscribe_cancellation(&[None, None]), Failed);
    }
}
