//! The history table, as the presence Lambda needs it (docs/channels.md § History and
//! recovery): a channel's sequence (made sure of when a client subscribes, so it always has
//! an epoch to recover from) and the kept publications a client missed. The table itself is
//! `sumu_history`; the seam is [`ChannelHistory`], so the handler's tests use a fake.

use std::future::Future;

use sumu_history::{HistoryError, HistoryTable, Kept, Sequence};
use sumu_wire::Channel;

use crate::subscriptions::DynamoSubscriptionStore;

/// The narrow seam between the channel routes and the history table.
pub trait ChannelHistory: Send + Sync {
    /// `channel`'s sequence, created (at offset 0, a new epoch) when it has none: one
    /// UpdateItem.
    fn ensure_sequence(
        &self,
        channel: &Channel,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<Sequence, HistoryError>> + Send;

    /// `channel`'s live sequence, if any: one consistent GetItem.
    fn sequence(
        &self,
        channel: &Channel,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<Option<Sequence>, HistoryError>> + Send;

    /// The kept publications of `epoch` with offsets in `range` (inclusive), oldest first or
    /// newest first, at most `limit` items read: one consistent Query.
    fn read(
        &self,
        channel: &Channel,
        epoch: &str,
        range: (u64, u64),
        limit: usize,
        oldest_first: bool,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<Vec<Kept>, HistoryError>> + Send;
}

fn table(store: &DynamoSubscriptionStore) -> Result<&HistoryTable, HistoryError> {
    store.history.as_ref().ok_or(HistoryError {
        operation: "configuration",
        message: "no history table is configured (HISTORY_TABLE)".into(),
    })
}

impl ChannelHistory for DynamoSubscriptionStore {
    async fn ensure_sequence(&self, channel: &Channel, now: i64) -> Result<Sequence, HistoryError> {
        table(self)?.advance(channel, 0, now).await
    }

    async fn sequence(
        &self,
        channel: &Channel,
        now: i64,
    ) -> Result<Option<Sequence>, HistoryError> {
        table(self)?.sequence(channel, now).await
    }

    async fn read(
        &self,
        channel: &Channel,
        epoch: &str,
        range: (u64, u64),
        limit: usize,
        oldest_first: bool,
        now: i64,
    ) -> Result<Vec<Kept>, HistoryError> {
        table(self)?
            .read(channel, epoch, range, limit, oldest_first, now)
            .await
    }
}
