//! I/O: who is online, read from the connections table.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use sumu_wire::table;

use crate::plan::OnlineUser;

/// Listing failed; the message that asked is retried.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("DynamoDB Scan of the connections table failed: {}", DisplayErrorContext(.0.as_ref()))]
    DynamoDb(Box<aws_sdk_dynamodb::Error>),
}

/// Lists users with at least one live connection, sorted by user id.
pub trait OnlineUsers: Send + Sync {
    fn online_users(&self) -> impl Future<Output = Result<Vec<OnlineUser>, LookupError>> + Send;
}

/// Reads the connections table with a paginated **Scan** filtered on `expires_at` > now. A Scan
/// reads the whole table: fine for a demo, not for a large production table (there, keep a
/// per-user presence record or ask the `presence` route about the users you care about).
#[derive(Debug, Clone)]
pub struct DynamoOnlineUsers {
    client: aws_sdk_dynamodb::Client,
    table: String,
    page_size: Option<i32>,
}

impl DynamoOnlineUsers {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoOnlineUsers {
        DynamoOnlineUsers {
            client,
            table: table.into(),
            page_size: None,
        }
    }

    /// Caps the items DynamoDB evaluates per Scan page (its `Limit`); by default a page is 1 MB.
    pub fn with_page_size(mut self, items: i32) -> DynamoOnlineUsers {
        self.page_size = Some(items);
        self
    }
}

impl OnlineUsers for DynamoOnlineUsers {
    async fn online_users(&self) -> Result<Vec<OnlineUser>, LookupError> {
        let now_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let mut connections_per_user: BTreeMap<String, u32> = BTreeMap::new();
        let mut start_key = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                // Names, not literals: `#u`/`#e` cannot collide with DynamoDB's reserved words.
                .projection_expression("#u, #e")
                .filter_expression("#e > :now")
                .expression_attribute_names("#u", table::USER_ID)
                .expression_attribute_names("#e", table::EXPIRES_AT)
                .expression_attribute_values(":now", AttributeValue::N(now_seconds.to_string()))
                .set_limit(self.page_size)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| LookupError::DynamoDb(Box::new(error.into())))?;
            for item in page.items() {
                match item.get(table::USER_ID) {
                    Some(AttributeValue::S(user_id)) => {
                        *connections_per_user.entry(user_id.clone()).or_default() += 1;
                    }
                    _ => {
                        tracing::warn!(table = %self.table, "connection item without a string user_id")
                    }
                }
            }
            start_key = page.last_evaluated_key.filter(|key| !key.is_empty());
            if start_key.is_none() {
                break;
            }
        }
        Ok(connections_per_user
            .into_iter()
            .map(|(user_id, connections)| OnlineUser {
                user_id,
                connections,
            })
            .collect())
    }
}
