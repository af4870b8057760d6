//! The history table, as the pusher needs it (docs/channels.md § History and recovery): the
//! next offset of a channel, and keeping a publication under it. Two writes per publication on
//! a channel that keeps history, whatever the number of subscribers; the table itself is
//! `sumu_history`.

use std::future::Future;

use sumu_wire::Channel;

use crate::store::{DynamoStore, StoreError};

/// Where a publication landed in its channel's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    pub offset: u64,
    pub epoch: String,
}

/// The narrow seam between publications and the history table.
pub trait HistoryStore: Sync {
    /// Gives out `channel`'s next offset, atomically (no two publications share one), with the
    /// epoch of its sequence.
    fn next_offset(
        &self,
        channel: &Channel,
        now_epoch_seconds: i64,
    ) -> impl Future<Output = Result<Offset, StoreError>> + Send;
    /// Keeps `publication` (the whole frame as delivered) under its offset until `expires_at`.
    fn keep(
        &self,
        channel: &Channel,
        offset: &Offset,
        publication: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn unavailable(error: impl ToString) -> StoreError {
    StoreError {
        operation: "history table",
        message: error.to_string(),
    }
}

impl HistoryStore for DynamoStore {
    async fn next_offset(&self, channel: &Channel, now: i64) -> Result<Offset, StoreError> {
        let table = self
            .history
            .as_ref()
            .ok_or_else(|| unavailable("no history table is configured (HISTORY_TABLE)"))?;
        let sequence = table.advance(channel, 1, now).await.map_err(unavailable)?;
        Ok(Offset {
            offset: sequence.top,
            epoch: sequence.epoch,
        })
    }

    async fn keep(
        &self,
        channel: &Channel,
        offset: &Offset,
        publication: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let table = self
            .history
            .as_ref()
            .ok_or_else(|| unavailable("no history table is configured (HISTORY_TABLE)"))?;
        table
            .keep(
                channel,
                offset.offset,
                &offset.epoch,
                publication,
                expires_at,
            )
            .await
            .map_err(unavailable)
    }
}
