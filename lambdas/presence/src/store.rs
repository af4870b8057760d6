//! Counting a user's live connections: one strongly consistent Query per user on the
//! connections table, filtered by `expires_at` (TTL only garbage-collects, up to 48 h late).

use std::future::Future;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use sumu_wire::table;
use thiserror::Error;

/// The seam between the presence logic and the connections table.
pub trait ConnectionCounter: Send + Sync {
    /// How many of `user_id`'s connections are live (`expires_at > now_epoch_seconds`),
    /// read with strong consistency so a connection written a moment ago is seen.
    fn live_connections(
        &self,
        user_id: &str,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
}

#[derive(Debug, Error)]
#[error("counting the connections of user {user_id} failed: {message}")]
pub struct StoreError {
    pub user_id: String,
    pub message: String,
}

/// [`ConnectionCounter`] backed by DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoConnectionStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoConnectionStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoConnectionStore {
            client,
            table: table.into(),
        }
    }

    /// The Query counting one user's live connections (one page of it). Exposed so a test can
    /// show it is strongly consistent, counts only, and filters on `expires_at`.
    pub fn live_connections_query(
        &self,
        user_id: &str,
        now_epoch_seconds: i64,
    ) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .select(Select::Count)
            .key_condition_expression("#user = :user")
            .filter_expression("#expires > :now")
            .expression_attribute_names("#user", table::USER_ID)
            .expression_attribute_names("#expires", table::EXPIRES_AT)
            .expression_attribute_values(":user", AttributeValue::S(user_id.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now_epoch_seconds.to_string()))
    }
}

impl ConnectionCounter for DynamoConnectionStore {
    async fn live_connections(
        &self,
        user_id: &str,
        now_epoch_seconds: i64,
    ) -> Result<u32, StoreError> {
        let mut live: u32 = 0;
        let mut start_key = None;
        // A Query reads at most 1 MB per page before filtering; keep going until the user's
        // whole partition is counted.
        loop {
            let page = self
                .live_connections_query(user_id, now_epoch_seconds)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| StoreError {
                    user_id: user_id.to_owned(),
                    message: aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string(),
                })?;
            live = live.saturating_add(u32::try_from(page.count()).unwrap_or(0));
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(live),
            }
        }
    }
}
