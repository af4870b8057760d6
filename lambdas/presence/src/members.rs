//! Channel members and the live gauges (docs/presence.md § Channel presence): the members
//! table as the stream handler and the routes need it. The seam is [`ChannelMembers`], so the
//! handler's tests use a fake.
//!
//! # Why each transition is reported exactly once
//! Every change is one atomic UpdateItem that adds an element to a set or removes one, and
//! returns the item: DynamoDB applies updates of one item one at a time, so of two concurrent
//! changes exactly one sees the set go from empty to one element (or from one to empty). A
//! user *joins* when the member item's `connections` set becomes exactly `{this connection}`;
//! the channel is *occupied* when the channel item's `members` set becomes exactly
//! `{this user}`. Leaving is the mirror image. Both rules are also true when a stream record is
//! retried after the event was not delivered (the retry finds the set as the first attempt
//! left it, and `changed_by` says which change left it so), so a retry reports the transition
//! again instead of losing it: delivery is at least once, detection exactly once.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use sumu_wire::members::table as members;
use sumu_wire::subscriptions;
use thiserror::Error;

use crate::subscriptions::DynamoSubscriptionStore;

/// How long a member or channel item outlives its last change: 30 days, like a channel's
/// history state. TTL only collects what the stream has emptied, and the items must outlive
/// every way a member can stay: members who keep a channel occupied through overlapping
/// reconnects (which rewrite member items, not the channel item) and a connection whose
/// `$disconnect` never came, whose subscription goes only when DynamoDB's TTL removes it (up
/// to days later) — its leave is then still told.
pub const ITEM_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// What a change of a set did, read from the item after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetChange {
    /// The set went from empty to `{this element}` (or, for a removal, to empty).
    pub transition: bool,
    /// Elements in the set after the change.
    pub size: u32,
}

/// The live gauges after an adjustment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub connections: i64,
    pub subscriptions: i64,
}

#[derive(Debug, Error)]
#[error("{operation} on the members table failed: {message}")]
pub struct MembersError {
    pub operation: &'static str,
    pub message: String,
    /// DynamoDB refused the request itself (a `ValidationException`, e.g. a channel item that
    /// would pass 400 KB): retrying cannot fix it.
    pub permanent: bool,
}

impl MembersError {
    fn new(operation: &'static str, message: String) -> MembersError {
        MembersError {
            operation,
            message,
            permanent: false,
        }
    }

    /// From an SDK error: permanent when DynamoDB answered `ValidationException`.
    fn from_sdk<E, R>(
        operation: &'static str,
        error: aws_sdk_dynamodb::error::SdkError<E, R>,
    ) -> MembersError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let permanent = error.as_service_error().and_then(|service| service.code())
            == Some("ValidationException");
        MembersError {
            operation,
            message: DisplayErrorContext(error).to_string(),
            permanent,
        }
    }
}

/// The seam between the members logic and DynamoDB.
pub trait ChannelMembers: Send + Sync {
    /// Whether a members table is configured (without one, nothing is tracked or gauged).
    fn has_members_table(&self) -> bool;

    /// Adds `connection_id` to `user_id`'s member item of `channel`; `transition` = the user
    /// just joined.
    fn add_connection(
        &self,
        channel: &str,
        user_id: &str,
        connection_id: &str,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<SetChange, MembersError>> + Send;

    /// Removes it; `transition` = the user just left.
    fn remove_connection(
        &self,
        channel: &str,
        user_id: &str,
        connection_id: &str,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<SetChange, MembersError>> + Send;

    /// Adds `user_id` to `channel`'s members; `transition` = the channel just became occupied.
    fn add_member(
        &self,
        channel: &str,
        user_id: &str,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<SetChange, MembersError>> + Send;

    /// Removes it; `transition` = the channel just became vacant.
    fn remove_member(
        &self,
        channel: &str,
        user_id: &str,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<SetChange, MembersError>> + Send;

    /// Whether `user_id` is a member of `channel`, and how many members it has: two
    /// consistent GetItems (the members cap of `subscribe`).
    fn membership(
        &self,
        channel: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<(bool, u32), MembersError>> + Send;

    /// Adds to the live gauges and returns them: one UpdateItem.
    fn adjust_gauges(
        &self,
        connections: i64,
        subscriptions: i64,
    ) -> impl Future<Output = Result<Gauges, MembersError>> + Send;

    /// Every user with a live subscription to `channel` itself, with how many of their
    /// connections have one, in user id order: a Query of the subscriptions table's
    /// partition `channel` (all pages).
    fn subscribers(
        &self,
        channel: &str,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<BTreeMap<String, u32>, MembersError>> + Send;

    /// Whether `connection_id` already has a subscription to `channel`: a consistent Query
    /// of that one item (the members cap lets a repeated subscribe through).
    fn is_subscribed(
        &self,
        channel: &str,
        connection_id: &str,
    ) -> impl Future<Output = Result<bool, MembersError>> + Send;
}

/// Which set of which item a change touches.
struct SetTarget<'a> {
    partition: String,
    sort: &'a str,
    set: &'static str,
    element: &'a str,
}

impl<'a> SetTarget<'a> {
    /// `connection_id` in `user_id`'s member item of `channel`.
    fn connection(channel: &str, user_id: &'a str, connection_id: &'a str) -> SetTarget<'a> {
        SetTarget {
            partition: channel.to_owned(),
            sort: user_id,
            set: members::CONNECTIONS,
            element: connection_id,
        }
    }

    /// `user_id` in `channel`'s channel item.
    fn member(channel: &str, user_id: &'a str) -> SetTarget<'a> {
        SetTarget {
            partition: members::channel_item_key(channel),
            sort: members::CHANNEL_ITEM_USER,
            set: members::MEMBERS,
            element: user_id,
        }
    }
}

impl DynamoSubscriptionStore {
    fn members_table(&self, operation: &'static str) -> Result<&str, MembersError> {
        self.members_table.as_deref().ok_or_else(|| {
            MembersError::new(
                operation,
                "no members table is configured (MEMBERS_TABLE)".into(),
            )
        })
    }

    /// `ADD` (or `DELETE`) the element, noting it in `changed_by`; reads the transition from
    /// the item before (a removal) or after (an addition) — see the module docs.
    async fn change_set(
        &self,
        target: SetTarget<'_>,
        add: bool,
        now: i64,
    ) -> Result<SetChange, MembersError> {
        let operation = if add {
            "adding to a set"
        } else {
            "removing from a set"
        };
        let table = self.members_table(operation)?;
        let expression = format!(
            "{} #set :element SET #changed_by = :changed_by, #expires_at = :expires_at",
            if add { "ADD" } else { "DELETE" }
        );
        let output = self
            .client
            .update_item()
            .table_name(table)
            .key(members::CHANNEL, AttributeValue::S(target.partition))
            .key(members::USER_ID, AttributeValue::S(target.sort.to_owned()))
            .update_expression(expression)
            .expression_attribute_names("#set", target.set)
            .expression_attribute_names("#changed_by", members::CHANGED_BY)
            .expression_attribute_names("#expires_at", members::EXPIRES_AT)
            .expression_attribute_values(
                ":element",
                AttributeValue::Ss(vec![target.element.to_owned()]),
            )
            .expression_attribute_values(
                ":changed_by",
                AttributeValue::S(target.element.to_owned()),
            )
            .expression_attribute_values(
                ":expires_at",
                AttributeValue::N((now + ITEM_TTL_SECONDS).to_string()),
            )
            .return_values(if add {
                ReturnValue::AllNew
            } else {
                ReturnValue::AllOld
            })
            .send()
            .await
            .map_err(|error| MembersError::from_sdk(operation, error))?;
        let item = output.attributes.unwrap_or_default();
        let set: Vec<&str> = match item.get(target.set) {
            Some(AttributeValue::Ss(values)) => values.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let changed_by = match item.get(members::CHANGED_BY) {
            Some(AttributeValue::S(value)) => Some(value.as_str()),
            _ => None,
        };
        Ok(read_change(&set, changed_by, target.element, add))
    }

    async fn consistent_set_size(
        &self,
        partition: String,
        sort: &str,
        set: &'static str,
    ) -> Result<u32, MembersError> {
        let operation = "reading a member or channel item";
        let output = self
            .client
            .get_item()
            .table_name(self.members_table(operation)?)
            .key(members::CHANNEL, AttributeValue::S(partition))
            .key(members::USER_ID, AttributeValue::S(sort.to_owned()))
            .consistent_read(true)
            .projection_expression("#set")
            .expression_attribute_names("#set", set)
            .send()
            .await
            .map_err(|error| MembersError::from_sdk(operation, error))?;
        Ok(match output.item.as_ref().and_then(|item| item.get(set)) {
            Some(AttributeValue::Ss(values)) => u32::try_from(values.len()).unwrap_or(u32::MAX),
            _ => 0,
        })
    }
}

/// The transition rule of the module docs. `set` is the set after an addition, or before a
/// removal (with `changed_by` as it was before the removal).
pub fn read_change(set: &[&str], changed_by: Option<&str>, element: &str, add: bool) -> SetChange {
    let size_after = |set: &[&str]| {
        let others = set.iter().filter(|value| **value != element).count();
        if add {
            others + 1
        } else {
            others
        }
    };
    let size = u32::try_from(size_after(set)).unwrap_or(u32::MAX);
    let transition = if add {
        size == 1
    } else {
        // Emptied now (it held the element), or emptied by this same change before (a retry).
        size == 0 && (set.contains(&element) || changed_by == Some(element))
    };
    SetChange { transition, size }
}

impl ChannelMembers for DynamoSubscriptionStore {
    fn has_members_table(&self) -> bool {
        self.members_table.is_some()
    }

    async fn add_connection(
        &self,
        channel: &str,
        user_id: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<SetChange, MembersError> {
        let target = SetTarget::connection(channel, user_id, connection_id);
        self.change_set(target, true, now).await
    }

    async fn remove_connection(
        &self,
        channel: &str,
        user_id: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<SetChange, MembersError> {
        let target = SetTarget::connection(channel, user_id, connection_id);
        self.change_set(target, false, now).await
    }

    async fn add_member(
        &self,
        channel: &str,
        user_id: &str,
        now: i64,
    ) -> Result<SetChange, MembersError> {
        self.change_set(SetTarget::member(channel, user_id), true, now)
            .await
    }

    async fn remove_member(
        &self,
        channel: &str,
        user_id: &str,
        now: i64,
    ) -> Result<SetChange, MembersError> {
        self.change_set(SetTarget::member(channel, user_id), false, now)
            .await
    }

    async fn membership(&self, channel: &str, user_id: &str) -> Result<(bool, u32), MembersError> {
        let connections = self
            .consistent_set_size(channel.to_owned(), user_id, members::CONNECTIONS)
            .await?;
        let members = self
            .consistent_set_size(
                members::channel_item_key(channel),
                members::CHANNEL_ITEM_USER,
                members::MEMBERS,
            )
            .await?;
        Ok((connections > 0, members))
    }

    async fn adjust_gauges(
        &self,
        connections: i64,
        subscriptions: i64,
    ) -> Result<Gauges, MembersError> {
        let operation = "adjusting the live gauges";
        let output = self
            .client
            .update_item()
            .table_name(self.members_table(operation)?)
            .key(
                members::CHANNEL,
                AttributeValue::S(members::GAUGE_KEY.into()),
            )
            .key(
                members::USER_ID,
                AttributeValue::S(members::GAUGE_USER.into()),
            )
            .update_expression("ADD #connections :connections, #subscriptions :subscriptions")
            .expression_attribute_names("#connections", members::GAUGE_CONNECTIONS)
            .expression_attribute_names("#subscriptions", members::GAUGE_SUBSCRIPTIONS)
            .expression_attribute_values(":connections", AttributeValue::N(connections.to_string()))
            .expression_attribute_values(
                ":subscriptions",
                AttributeValue::N(subscriptions.to_string()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|error| MembersError::from_sdk(operation, error))?;
        let item = output.attributes.unwrap_or_default();
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(value)) => value.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(Gauges {
            connections: number(members::GAUGE_CONNECTIONS),
            subscriptions: number(members::GAUGE_SUBSCRIPTIONS),
        })
    }

    async fn subscribers(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<BTreeMap<String, u32>, MembersError> {
        let operation = "querying a channel's subscribers";
        let mut users = BTreeMap::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.subscriptions_table)
                .key_condition_expression("#channel = :channel")
                .expression_attribute_names("#channel", subscriptions::CHANNEL)
                .expression_attribute_names("#user_id", subscriptions::USER_ID)
                .expression_attribute_names("#expires_at", subscriptions::EXPIRES_AT)
                .expression_attribute_values(":channel", AttributeValue::S(channel.to_owned()))
                .projection_expression("#user_id, #expires_at")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| MembersError::from_sdk(operation, error))?;
            for item in output.items.unwrap_or_default() {
                let live = matches!(
                    item.get(subscriptions::EXPIRES_AT),
                    Some(AttributeValue::N(value)) if value.parse::<i64>().is_ok_and(|at| at > now)
                );
                if let (true, Some(AttributeValue::S(user_id))) =
                    (live, item.get(subscriptions::USER_ID))
                {
                    *users.entry(user_id.clone()).or_insert(0) += 1;
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(users);
            }
        }
    }

    async fn is_subscribed(
        &self,
        channel: &str,
        connection_id: &str,
    ) -> Result<bool, MembersError> {
        let operation = "reading a subscription";
        let output = self
            .client
            .query()
            .table_name(&self.subscriptions_table)
            .key_condition_expression("#channel = :channel AND #connection_id = :connection_id")
            .expression_attribute_names("#channel", subscriptions::CHANNEL)
            .expression_attribute_names("#connection_id", subscriptions::CONNECTION_ID)
            .expression_attribute_values(":channel", AttributeValue::S(channel.to_owned()))
            .expression_attribute_values(
                ":connection_id",
                AttributeValue::S(connection_id.to_owned()),
            )
            .consistent_read(true)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .map_err(|error| MembersError::from_sdk(operation, error))?;
        Ok(output.count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_leaves_are_read_from_the_set_once_even_when_retried() {
        // The user's first connection: joined.
        assert_eq!(
            read_change(&["c1"], None, "c1", true),
            SetChange {
                transition: true,
                size: 1
            }
        );
        // A second one: not a join.
        assert!(!read_change(&["c1", "c2"], Some("c2"), "c2", true).transition);
        // The last one leaves: left.
        assert_eq!(
            read_change(&["c2"], Some("c2"), "c2", false),
            SetChange {
                transition: true,
                size: 0
            }
        );
        // One of two leaves: not a leave.
        assert!(!read_change(&["c1", "c2"], Some("c2"), "c1", false).transition);
        // The same removal retried: the set is already empty and says who emptied it.
        assert!(read_change(&[], Some("c2"), "c2", false).transition);
        // A removal of an element that was never added (a subscription from before the
        // namespace tracked members): nothing to report.
        assert!(!read_change(&[], Some("c9"), "c2", false).transition);
        assert!(!read_change(&[], None, "c2", false).transition);
    }
}
