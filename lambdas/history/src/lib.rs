//! The history table (docs/channels.md § History and recovery), the one place that reads and
//! writes it: the pusher gives a publication its offset and keeps it; the presence Lambda
//! makes sure a channel has a sequence before a client subscribes, and reads what a client
//! missed. Attribute names are `sumu_wire::history`.
//!
//! Per channel: a state item at offset 0 (`top`, the latest offset given out; `epoch`, the
//! sequence's name; `expires_at`, pushed on by every write) and one item per kept publication at
//! its offset (`epoch`, `publication` = the whole frame, `expires_at`). A state past its
//! `expires_at` is lost: the next writer starts a new epoch at 0 (TTL may not have removed it
//! yet: DynamoDB deletes expired items "typically within 48 hours").

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use sumu_wire::{history, Channel};

/// A channel's sequence right now: the latest offset given out, its epoch, and when the
/// latest publication was given its offset (epoch seconds; the sequence's creation when none
/// was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub top: u64,
    pub epoch: String,
    pub published_at: i64,
}

/// When the state was last moved on by a publication: its `expires_at` less the state's TTL.
fn published_at(expires_at: i64) -> i64 {
    expires_at - history::STATE_TTL_SECONDS
}

/// A kept publication: its offset and the frame as it was delivered. `expired`: past its
/// `expires_at` (DynamoDB's TTL has not removed it yet): never to be served, but it tells
/// that the publication at that offset is gone, not missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub offset: u64,
    pub publication: String,
    pub expired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history table {operation} failed: {message}")]
pub struct HistoryError {
    pub operation: &'static str,
    pub message: String,
}

/// A new epoch: random, so a channel whose sequence was lost never reuses one.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// How many times a write starts over when another writer replaced an expired state at the
/// same moment.
const STATE_ATTEMPTS: usize = 3;

/// The table, through the SDK.
#[derive(Debug, Clone)]
pub struct HistoryTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(channel: &Channel, offset: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            history::CHANNEL.to_string(),
            AttributeValue::S(channel.to_string()),
        ),
        (history::OFFSET.to_string(), number(offset)),
    ])
}

fn read_u64(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn read_i64(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn read_string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn failure(operation: &'static str, err: impl std::error::Error) -> HistoryError {
    // The SDK's Display says only "service error"; the source chain says which.
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    HistoryError { operation, message }
}

impl HistoryTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> HistoryTable {
        HistoryTable {
            client,
            table: table.into(),
        }
    }

    /// Moves `channel`'s sequence on by `step` (1: a publication's offset; 0: make sure the
    /// sequence exists, as a subscriber needs an epoch to recover from) and returns it, in one
    /// atomic UpdateItem: no two publications get the same offset. A channel without a live
    /// sequence starts a new epoch at `step`.
    pub async fn advance(
        &self,
        channel: &Channel,
        step: u64,
        now_epoch_seconds: i64,
    ) -> Result<Sequence, HistoryError> {
        for _ in 0..STATE_ATTEMPTS {
            if let Some(sequence) = self.update_state(channel, step, now_epoch_seconds).await? {
                return Ok(sequence);
            }
            // The state expired (TTL has not removed it yet): its sequence is lost.
            if let Some(sequence) = self.restart_state(channel, step, now_epoch_seconds).await? {
                tracing::info!(%channel, epoch = %sequence.epoch, "the channel's history sequence had expired: a new epoch starts");
                return Ok(sequence);
            }
        }
        Err(HistoryError {
            operation: "UpdateItem",
            message: format!(
                "the state of {channel} kept changing under {STATE_ATTEMPTS} attempts"
            ),
        })
    }

    /// `top` + `step` on a live (or absent) state, its epoch kept (or set), its expiry pushed
    /// on by a publication (`step` > 0; a subscriber's `step` 0 only sets it on a new state, so
    /// it keeps telling when the latest publication was). `None` when the state exists but has
    /// expired.
    async fn update_state(
        &self,
        channel: &Channel,
        step: u64,
        now: i64,
    ) -> Result<Option<Sequence>, HistoryError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(channel, history::STATE_OFFSET)))
            .update_expression(if step > 0 {
                "SET #epoch = if_not_exists(#epoch, :epoch), #exp = :exp ADD #top :step"
            } else {
                "SET #epoch = if_not_exists(#epoch, :epoch), #exp = if_not_exists(#exp, :exp) ADD #top :step"
            })
            .condition_expression("attribute_not_exists(#top) OR #exp > :now")
            .expression_attribute_names("#epoch", history::EPOCH)
            .expression_attribute_names("#exp", history::EXPIRES_AT)
            .expression_attribute_names("#top", history::TOP)
            .expression_attribute_values(":epoch", AttributeValue::S(new_epoch()))
            .expression_attribute_values(":exp", number(now + history::STATE_TTL_SECONDS))
            .expression_attribute_values(":step", number(step))
            .expression_attribute_values(":now", number(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let state = output.attributes.unwrap_or_default();
                match (
                    read_u64(&state, history::TOP),
                    read_string(&state, history::EPOCH),
                    read_i64(&state, history::EXPIRES_AT),
                ) {
                    (Some(top), Some(epoch), Some(expires_at)) => Ok(Some(Sequence {
                        top,
                        epoch,
                        published_at: published_at(expires_at),
                    })),
                    _ => Err(HistoryError {
                        operation: "UpdateItem",
                        message: format!("the state of {channel} has no top or epoch"),
                    }),
                }
            }
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(None),
                other => Err(failure("UpdateItem", other)),
            },
        }
    }

    /// Replaces an expired state by a new epoch at `step`, unless another writer did first.
    async fn restart_state(
        &self,
        channel: &Channel,
        step: u64,
        now: i64,
    ) -> Result<Option<Sequence>, HistoryError> {
        let sequence = Sequence {
            top: step,
            epoch: new_epoch(),
            published_at: now,
        };
        let mut item = key(channel, history::STATE_OFFSET);
        item.insert(history::TOP.to_string(), number(sequence.top));
        item.insert(
            history::EPOCH.to_string(),
            AttributeValue::S(sequence.epoch.clone()),
        );
        item.insert(
            history::EXPIRES_AT.to_string(),
            number(now + history::STATE_TTL_SECONDS),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#exp <= :now")
            .expression_attribute_names("#exp", history::EXPIRES_AT)
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(sequence)),
            Err(err) => match err.into_service_error() {
                PutItemError::ConditionalCheckFailedException(_) => Ok(None),
                other => Err(failure("PutItem", other)),
            },
        }
    }

    /// `channel`'s live sequence, read strongly consistent; `None` when it has none (never
    /// published to, or its state expired).
    pub async fn sequence(
        &self,
        channel: &Channel,
        now_epoch_seconds: i64,
    ) -> Result<Option<Sequence>, HistoryError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(channel, history::STATE_OFFSET)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("GetItem", e))?;
        let Some(state) = output.item else {
            return Ok(None);
        };
        let Some(expires_at) = read_i64(&state, history::EXPIRES_AT) else {
            return Ok(None);
        };
        if expires_at <= now_epoch_seconds {
            return Ok(None);
        }
        Ok(
            match (
                read_u64(&state, history::TOP),
                read_string(&state, history::EPOCH),
            ) {
                (Some(top), Some(epoch)) => Some(Sequence {
                    top,
                    epoch,
                    published_at: published_at(expires_at),
                }),
                _ => None,
            },
        )
    }

    /// Keeps `publication` (the whole frame as delivered) at `offset` of `epoch` until
    /// `expires_at` (epoch seconds).
    pub async fn keep(
        &self,
        channel: &Channel,
        offset: u64,
        epoch: &str,
        publication: &str,
        expires_at: i64,
    ) -> Result<(), HistoryError> {
        let mut item = key(channel, offset);
        item.insert(history::EPOCH.to_string(), AttributeValue::S(epoch.into()));
        item.insert(
            history::PUBLICATION.to_string(),
            AttributeValue::S(publication.into()),
        );
        item.insert(history::EXPIRES_AT.to_string(), number(expires_at));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| failure("PutItem", e))?;
        Ok(())
    }

    /// The kept publications of `epoch` with offsets from `from` to `to` (inclusive), oldest
    /// first (`oldest_first`) or newest first, at most `limit` items read: one strongly
    /// consistent Query. Items of another epoch are left out (so fewer may come back); items
    /// past their `expires_at` come back marked `expired`.
    pub async fn read(
        &self,
        channel: &Channel,
        epoch: &str,
        range: (u64, u64),
        limit: usize,
        oldest_first: bool,
        now_epoch_seconds: i64,
    ) -> Result<Vec<Kept>, HistoryError> {
        let (from, to) = range;
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#ch = :ch AND #off BETWEEN :from AND :to")
            .expression_attribute_names("#ch", history::CHANNEL)
            .expression_attribute_names("#off", history::OFFSET)
            .expression_attribute_values(":ch", AttributeValue::S(channel.to_string()))
            .expression_attribute_values(":from", number(from))
            .expression_attribute_values(":to", number(to))
            .scan_index_forward(oldest_first)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| failure("Query", e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .iter()
            .filter(|item| read_string(item, history::EPOCH).as_deref() == Some(epoch))
            .filter_map(|item| {
                Some(Kept {
                    offset: read_u64(item, history::OFFSET)?,
                    publication: read_string(item, history::PUBLICATION)?,
                    expired: read_i64(item, history::EXPIRES_AT)
                        .is_none_or(|at| at <= now_epoch_seconds),
                })
            })
            .collect())
    }
}
