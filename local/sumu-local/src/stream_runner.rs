//! Plays a DynamoDB stream event source mapping: polls a table's stream on the AWS endpoint
//! and hands batches, in Lambda's event shape, to a handler.
//!
//! What it does as Lambda's event source mapping does: the starting position is LATEST *when
//! the mapping is created* ([`StreamPoller::at_latest`] runs during `start`, before the
//! emulator accepts connections, so no early change is missed); one batch per shard at a time,
//! in order; `batchItemFailures` re-reads the shard from the first failed sequence number; a
//! failing record is retried `max_retry_attempts` times, then logged and skipped (the
//! deployed mapping hands it to the presence failures queue instead). Shards roll over as
//! DynamoDB Streams does it: a shard whose GetRecords answers no `NextShardIterator` is closed
//! and drained; the stream is then described again and its children (`ParentShardId`) are read
//! from TRIM_HORIZON, a child never before its parent is drained.
//!
//! Keeping its place. Each shard remembers the last records it handed over (sequence number and
//! `eventID`), and the runner never trusts an iterator alone:
//! - an iterator GetRecords refuses (expired, trimmed, unknown, or failing three times in a row)
//!   is replaced by one AFTER_SEQUENCE_NUMBER of the last handled record;
//! - when a shard's iterator answers nothing, at most every [`CHECK_INTERVAL`] a fresh iterator
//!   AT_SEQUENCE_NUMBER of the last handled record is read: if that record is still there and
//!   records follow it that the held iterator does not return, the held iterator reads a shard
//!   object that was replaced (moto puts back a copy of a table, stream shard included, when a
//!   transaction is cancelled, under the same shard id) and is replaced; if the record is gone
//!   (moto's copy drops the records the cancelled transaction wrote, and reuses their sequence
//!   numbers), the runner goes back to the newest remembered record the shard still holds;
//! - a shard that vanishes from DescribeStream while being read, and a stream that is disabled
//!   or no longer the table's, are reported.
//!
//! Each of these is a `warn!` with the stream, the shard and the sequence numbers involved.
//! Records are never handed over twice because of it, and never skipped, except where the
//! stream itself lost them (the warning says so). One moto artefact remains: a record a cancelled
//! transaction wrote before moto rolled it back stays in the old shard object, and is handed over
//! if the runner was reading that object (sumu's transactions touch the connections table only
//! with MODIFYs, which the presence filter drops).
//!
//! What it does not: no batch bisection (per-record failures make it moot for the presence
//! handler), no batching window, no `maximum_record_age_in_seconds`, no parallelization factor.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::Engine;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::config::StreamSettings;
use crate::event_filter::EventFilter;
use crate::runners::RunnerContext;

/// The function a batch is handed to: Lambda's partial batch response, or an error for an
/// invocation that failed as a whole (the batch is retried from its first record).
pub type BatchHandler =
    Arc<dyn Fn(Event) -> BoxFuture<'static, Result<DynamoDbEventResponse, String>> + Send + Sync>;

/// How often an idle shard's place is checked with a fresh iterator (two extra calls each
/// time). It bounds how long presence stays quiet after moto replaced a shard.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Handled records remembered per shard. moto's cancelled transaction drops at most the records
/// it wrote (100 items at most), so the way back always ends within this many.
const HISTORY: usize = 128;
/// Empty pages a fresh iterator may answer before a record is taken to be absent ("it might
/// take multiple calls to get to a portion of the shard that contains stream records", says
/// GetRecords' reference; moto answers at once).
const EMPTY_PAGES: usize = 3;
/// GetRecords failures in a row after which the iterator is replaced whatever the error.
const ERRORS_BEFORE_REPOSITION: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{operation} on stream {stream_arn}: {message}")]
    Call {
        operation: &'static str,
        stream_arn: String,
        message: String,
    },
}

/// Where a shard was first read from: what "nothing handled yet" means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Open when the mapping was created: records from then on.
    Latest,
    /// Found later (a child, a new shard): all of it.
    TrimHorizon,
}

impl Start {
    fn iterator_type(self) -> ShardIteratorType {
        match self {
            Start::Latest => ShardIteratorType::Latest,
            Start::TrimHorizon => ShardIteratorType::TrimHorizon,
        }
    }
}

/// A record handed over (or skipped): enough to find it again and to tell it from another
/// record under the same sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    sequence: String,
    event_id: Option<String>,
}

impl Mark {
    fn of(record: &Record) -> Mark {
        Mark {
            sequence: sequence_number(record).unwrap_or_default().to_string(),
            event_id: record.event_id.clone(),
        }
    }
}

/// Where one shard is read from.
#[derive(Debug)]
struct ShardState {
    /// The next GetRecords iterator; `None` once the shard is closed and drained.
    iterator: Option<String>,
    start: Start,
    /// The last records handled, oldest first, at most [`HISTORY`].
    handled: VecDeque<Mark>,
    /// The sequence number that failed last, and how many times it failed in a row.
    failing: Option<(String, u32)>,
    /// GetRecords failures in a row.
    errors_in_a_row: u32,
    /// When the place may be checked next.
    next_check: Instant,
}

impl ShardState {
    fn new(iterator: Option<String>, start: Start) -> ShardState {
        ShardState {
            iterator,
            start,
            handled: VecDeque::new(),
            failing: None,
            errors_in_a_row: 0,
            next_check: Instant::now() + CHECK_INTERVAL,
        }
    }

    fn last(&self) -> Option<&Mark> {
        self.handled.back()
    }

    fn last_sequence(&self) -> Option<&str> {
        self.last().map(|mark| mark.sequence.as_str())
    }

    fn remember<'a>(&mut self, marks: impl IntoIterator<Item = &'a Mark>) {
        self.handled.extend(marks.into_iter().cloned());
        while self.handled.len() > HISTORY {
            self.handled.pop_front();
        }
    }
}

/// What checking an idle shard's place found.
enum Checked {
    /// Nothing to do.
    Fine,
    /// The held iterator was replaced; read on at the next poll.
    Repositioned,
    /// Read again, the held iterator had records after all: hand them over.
    Pending(Vec<Record>, Option<String>),
}

/// The stream as DescribeStream shows it.
#[derive(Debug)]
struct Description {
    shards: Vec<ShardInfo>,
    status: Option<String>,
    label: Option<String>,
}

/// The poller of one stream.
pub struct StreamPoller {
    client: Client,
    stream_arn: String,
    settings: StreamSettings,
    /// The mapping's `filter_criteria`: records it does not match are skipped, never handed over.
    filter: EventFilter,
    shards: BTreeMap<String, ShardState>,
    /// Shards drained completely (or gone): their children start at TRIM_HORIZON.
    finished: BTreeSet<String>,
    /// The stream's (status, label) as last described, to warn once per change.
    stream_seen: Option<(String, String)>,
}

impl StreamPoller {
    /// Takes a LATEST iterator for every open shard of the stream: changes from now on are
    /// delivered, earlier ones never.
    pub async fn at_latest(
        client: Client,
        stream_arn: String,
        settings: StreamSettings,
        filter: EventFilter,
    ) -> Result<StreamPoller, StreamError> {
        let mut poller = StreamPoller {
            client,
            stream_arn,
            settings,
            filter,
            shards: BTreeMap::new(),
            finished: BTreeSet::new(),
            stream_seen: None,
        };
        let description = poller.describe().await?;
        poller.note_stream_state(&description);
        for shard in description.shards {
            if shard.closed {
                // A closed shard holds nothing newer than now.
                poller.finished.insert(shard.id);
                continue;
            }
            let iterator = poller
                .iterator(&shard.id, ShardIteratorType::Latest, None)
                .await?;
            poller
                .shards
                .insert(shard.id, ShardState::new(iterator, Start::Latest));
        }
        Ok(poller)
    }

    /// Polls until the context's shutdown, handing every batch to `handler`.
    pub async fn run(mut self, mut context: RunnerContext, handler: BatchHandler) {
        tracing::info!(stream_arn = %self.stream_arn, "stream runner started");
        let mut next_describe = Instant::now() + self.settings.describe_interval;
        loop {
            let mut busy = false;
            let shard_ids: Vec<String> = self.shards.keys().cloned().collect();
            for shard_id in shard_ids {
                if *context.shutdown.borrow() {
                    break;
                }
                busy |= self.poll_shard(&shard_id, &handler).await;
            }
            if Instant::now() >= next_describe || self.has_drained_shards() {
                self.discover_shards().await;
                next_describe = Instant::now() + self.settings.describe_interval;
            }
            // A full batch means more is waiting: read on at once.
            let pause = if busy {
                Duration::ZERO
            } else {
                self.settings.poll_interval
            };
            tokio::select! {
                _ = context.stopped() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(stream_arn = %self.stream_arn, "stream runner stopped");
    }

    /// One GetRecords on a shard and its batch; `true` when the batch was full.
    async fn poll_shard(&mut self, shard_id: &str, handler: &BatchHandler) -> bool {
        let Some(iterator) = self
            .shards
            .get(shard_id)
            .and_then(|shard| shard.iterator.clone())
        else {
            return false;
        };
        let (records, next_iterator) =
            match self.get_records(&iterator, self.settings.batch_size).await {
                Ok(page) => page,
                Err(error) => {
                    self.get_records_failed(shard_id, &error).await;
                    return false;
                }
            };
        if let Some(shard) = self.shards.get_mut(shard_id) {
            shard.errors_in_a_row = 0;
        }
        if !records.is_empty() {
            return self
                .hand_over(shard_id, records, next_iterator, handler)
                .await;
        }
        self.set_iterator(shard_id, next_iterator.clone());
        let Some(held) = next_iterator else {
            return false;
        };
        if !self.check_due(shard_id) {
            return false;
        }
        match self.check_place(shard_id, &held).await {
            Checked::Fine | Checked::Repositioned => false,
            Checked::Pending(records, next_iterator) => {
                self.hand_over(shard_id, records, next_iterator, handler)
                    .await
            }
        }
    }

    /// Filters a page, hands the rest to the handler and moves the shard's place; `true` when
    /// the page was full.
    async fn hand_over(
        &mut self,
        shard_id: &str,
        records: Vec<Record>,
        next_iterator: Option<String>,
        handler: &BatchHandler,
    ) -> bool {
        let full = i32::try_from(records.len()).is_ok_and(|n| n >= self.settings.batch_size);
        let marks: Vec<Mark> = records.iter().map(Mark::of).collect();
        // As Lambda does, filtering comes first: records the pattern rejects count as handled.
        let (sequences, kept): (Vec<String>, Vec<Value>) = records
            .iter()
            .map(|record| {
                let sequence = sequence_number(record).unwrap_or_default().to_string();
                (sequence, record_json(record, &self.stream_arn))
            })
            .filter(|(_, record)| self.filter.matches(record))
            .unzip();
        let first_failed = if kept.is_empty() {
            None
        } else {
            let outcome = match event_of(kept) {
                Ok(event) => handler(event).await,
                Err(error) => Err(format!("stream records do not convert: {error}")),
            };
            match outcome {
                Ok(response) => first_failure(&response, &sequences),
                Err(error) => {
                    tracing::error!(shard_id, %error, "the handler failed the whole batch");
                    Some(sequences.first().cloned().unwrap_or_default())
                }
            }
        };
        let Some(failed) = first_failed else {
            if let Some(shard) = self.shards.get_mut(shard_id) {
                shard.remember(&marks);
                shard.failing = None;
            }
            self.set_iterator(shard_id, next_iterator);
            return full;
        };
        // Records before the failed one (filtered ones included) were handled.
        let at = marks
            .iter()
            .position(|mark| mark.sequence == failed)
            .unwrap_or(0);
        if let Some(shard) = self.shards.get_mut(shard_id) {
            shard.remember(&marks[..at]);
        }
        let failed_mark = marks.get(at).cloned().unwrap_or(Mark {
            sequence: failed,
            event_id: None,
        });
        self.retry_or_skip(shard_id, failed_mark).await;
        false
    }

    /// After a reported failure at `failed`: read again from it, or after it once it has
    /// failed more than `max_retry_attempts` times in a row.
    async fn retry_or_skip(&mut self, shard_id: &str, failed: Mark) {
        let attempts = match self
            .shards
            .get(shard_id)
            .and_then(|shard| shard.failing.as_ref())
        {
            Some((sequence, attempts)) if *sequence == failed.sequence => attempts + 1,
            _ => 1,
        };
        if let Some(shard) = self.shards.get_mut(shard_id) {
            shard.failing = Some((failed.sequence.clone(), attempts));
        }
        let kind = if attempts > self.settings.max_retry_attempts {
            tracing::error!(
                shard_id,
                sequence_number = %failed.sequence,
                attempts,
                "skipping a stream record that kept failing (the deployed mapping sends it to \
                 the presence failures queue)"
            );
            if let Some(shard) = self.shards.get_mut(shard_id) {
                shard.remember([&failed]);
                shard.failing = None;
            }
            ShardIteratorType::AfterSequenceNumber
        } else {
            tracing::warn!(
                shard_id,
                sequence_number = %failed.sequence,
                attempts,
                "stream record failed: retrying from it"
            );
            // Back off a little so a failing destination is not hammered.
            tokio::time::sleep(self.settings.poll_interval).await;
            ShardIteratorType::AtSequenceNumber
        };
        match self.iterator(shard_id, kind, Some(&failed.sequence)).await {
            Ok(iterator) => self.set_iterator(shard_id, iterator),
            Err(error) => tracing::warn!(shard_id, %error, "repositioning the shard failed"),
        }
    }

    /// After a failed GetRecords: keep the iterator for a passing error, replace it (after the
    /// last handled record) when it is spent or keeps failing.
    async fn get_records_failed(&mut self, shard_id: &str, error: &GetRecordsError) {
        let Some(shard) = self.shards.get_mut(shard_id) else {
            return;
        };
        shard.errors_in_a_row += 1;
        let errors_in_a_row = shard.errors_in_a_row;
        let spent = error.is_expired_iterator_exception()
            || error.is_trimmed_data_access_exception()
            || error.is_resource_not_found_exception()
            || errors_in_a_row >= ERRORS_BEFORE_REPOSITION;
        // A streak of failures (moto down) logs on the 1st, 2nd, 4th, 8th… only.
        if !errors_in_a_row.is_power_of_two() {
            if spent {
                self.reposition(shard_id, false).await;
            }
            return;
        }
        if spent {
            tracing::warn!(
                stream_arn = %self.stream_arn,
                shard_id,
                last_handled = shard.last_sequence(),
                errors_in_a_row,
                error = %DisplayErrorContext(error),
                "the shard iterator is no longer usable: reading on after the last handled record"
            );
            self.reposition(shard_id, true).await;
        } else {
            tracing::warn!(
                stream_arn = %self.stream_arn,
                shard_id,
                errors_in_a_row,
                error = %DisplayErrorContext(error),
                "GetRecords failed: trying the same iterator again"
            );
        }
    }

    /// A fresh iterator after the last handled record (or at the shard's start point).
    async fn reposition(&mut self, shard_id: &str, log: bool) {
        let Some(shard) = self.shards.get(shard_id) else {
            return;
        };
        let result = match shard.last_sequence().map(str::to_string) {
            Some(sequence) => {
                self.iterator(
                    shard_id,
                    ShardIteratorType::AfterSequenceNumber,
                    Some(&sequence),
                )
                .await
            }
            None => {
                self.iterator(shard_id, shard.start.iterator_type(), None)
                    .await
            }
        };
        match result {
            Ok(iterator) => self.set_iterator(shard_id, iterator),
            Err(error) if log => {
                tracing::warn!(shard_id, %error, "repositioning the shard failed")
            }
            Err(_) => {}
        }
    }

    fn check_due(&mut self, shard_id: &str) -> bool {
        let Some(shard) = self.shards.get_mut(shard_id) else {
            return false;
        };
        let now = Instant::now();
        if now < shard.next_check {
            return false;
        }
        shard.next_check = now + CHECK_INTERVAL;
        true
    }

    /// Checks, with a fresh iterator, that the held one (`held`, which just answered nothing)
    /// still reads the shard where the last handled record is.
    async fn check_place(&mut self, shard_id: &str, held: &str) -> Checked {
        let Some(shard) = self.shards.get(shard_id) else {
            return Checked::Fine;
        };
        let last = shard.last().cloned();
        let (kind, sequence) = match (&last, shard.start) {
            (Some(mark), _) => (
                ShardIteratorType::AtSequenceNumber,
                Some(mark.sequence.clone()),
            ),
            (None, Start::TrimHorizon) => (ShardIteratorType::TrimHorizon, None),
            // Nothing handled since LATEST: there is no place to check.
            (None, Start::Latest) => return Checked::Fine,
        };
        let fresh = match self.read_fresh(shard_id, kind, sequence.as_deref()).await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(
                    stream_arn = %self.stream_arn,
                    shard_id,
                    %error,
                    "checking the shard's place failed"
                );
                return Checked::Fine;
            }
        };
        let beyond = match &last {
            Some(mark) => {
                if fresh.first().map(Mark::of).as_ref() != Some(mark) {
                    self.recover(shard_id).await;
                    return Checked::Repositioned;
                }
                fresh.len() > 1
            }
            None => !fresh.is_empty(),
        };
        if !beyond {
            return Checked::Fine;
        }
        // Records follow the last handled one. They may have been written since the held
        // iterator's empty answer: ask it once more before calling it stale.
        match self.get_records(held, self.settings.batch_size).await {
            Ok((records, next)) if !records.is_empty() => Checked::Pending(records, next),
            Ok(_) => {
                tracing::warn!(
                    stream_arn = %self.stream_arn,
                    shard_id,
                    last_handled = last.as_ref().map(|mark| mark.sequence.as_str()),
                    "the shard iterator returns nothing while the shard holds newer records: the \
                     shard was replaced under the same id (moto does this when a transaction is \
                     cancelled); reading on after the last handled record"
                );
                self.reposition(shard_id, true).await;
                Checked::Repositioned
            }
            Err(error) => {
                self.get_records_failed(shard_id, &error).await;
                Checked::Fine
            }
        }
    }

    /// The last handled record is no longer in the shard: goes back to the newest remembered
    /// record the shard still holds and reads on after it.
    async fn recover(&mut self, shard_id: &str) {
        let Some(shard) = self.shards.get(shard_id) else {
            return;
        };
        let marks: Vec<Mark> = shard.handled.iter().cloned().collect();
        let start = shard.start;
        let last_handled = marks
            .last()
            .map(|mark| mark.sequence.clone())
            .unwrap_or_default();
        // Newest first, skipping the newest: it is the last handled record, found gone.
        for (index, mark) in marks.iter().enumerate().rev().skip(1) {
            let still_there = match self
                .read_fresh(
                    shard_id,
                    ShardIteratorType::AtSequenceNumber,
                    Some(&mark.sequence),
                )
                .await
            {
                Ok(records) => records.first().map(Mark::of).as_ref() == Some(mark),
                Err(error) => {
                    tracing::warn!(
                        stream_arn = %self.stream_arn,
                        shard_id,
                        %error,
                        "looking for the last handled record still in the shard failed; \
                         trying again later"
                    );
                    return;
                }
            };
            if !still_there {
                continue;
            }
            let records_gone = marks.len() - 1 - index;
            tracing::warn!(
                stream_arn = %self.stream_arn,
                shard_id,
                last_handled = %last_handled,
                resumed_after = %mark.sequence,
                records_gone,
                "the shard no longer holds the last records handed over (moto puts back a copy \
                 of a table when a transaction is cancelled, without that transaction's \
                 records): reading on after the newest one it still holds"
            );
            let resume = mark.sequence.clone();
            let result = self
                .iterator(
                    shard_id,
                    ShardIteratorType::AfterSequenceNumber,
                    Some(&resume),
                )
                .await;
            match result {
                Ok(iterator) => {
                    if let Some(shard) = self.shards.get_mut(shard_id) {
                        shard.handled.truncate(index + 1);
                        shard.failing = None;
                        shard.iterator = iterator;
                    }
                }
                Err(error) => tracing::warn!(shard_id, %error, "repositioning the shard failed"),
            }
            return;
        }
        tracing::warn!(
            stream_arn = %self.stream_arn,
            shard_id,
            last_handled = %last_handled,
            remembered = marks.len(),
            start = ?start,
            "the shard holds none of the records handed over lately (the stream changed): \
             reading it again from its start point; records may be missed or repeated"
        );
        match self.iterator(shard_id, start.iterator_type(), None).await {
            Ok(iterator) => {
                if let Some(shard) = self.shards.get_mut(shard_id) {
                    shard.handled.clear();
                    shard.failing = None;
                    shard.iterator = iterator;
                }
            }
            Err(error) => tracing::warn!(shard_id, %error, "repositioning the shard failed"),
        }
    }

    /// The first records a fresh iterator of this kind reads (a couple at most), following
    /// empty pages a few times.
    async fn read_fresh(
        &self,
        shard_id: &str,
        kind: ShardIteratorType,
        sequence: Option<&str>,
    ) -> Result<Vec<Record>, StreamError> {
        let mut iterator = self.iterator(shard_id, kind, sequence).await?;
        for _ in 0..EMPTY_PAGES {
            let Some(current) = iterator else { break };
            let (records, next) = self
                .get_records(&current, 2)
                .await
                .map_err(|error| self.failed("GetRecords", error))?;
            if !records.is_empty() {
                return Ok(records);
            }
            iterator = next;
        }
        Ok(Vec::new())
    }

    async fn get_records(
        &self,
        iterator: &str,
        limit: i32,
    ) -> Result<(Vec<Record>, Option<String>), GetRecordsError> {
        let page = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|error| error.into_service_error())?;
        Ok((page.records.unwrap_or_default(), page.next_shard_iterator))
    }

    /// A `None` next iterator means the shard is closed and drained.
    fn set_iterator(&mut self, shard_id: &str, iterator: Option<String>) {
        if let Some(shard) = self.shards.get_mut(shard_id) {
            shard.iterator = iterator;
        }
    }

    fn has_drained_shards(&self) -> bool {
        self.shards.values().any(|shard| shard.iterator.is_none())
    }

    /// Moves drained shards to `finished`, reports shards that vanished and a stream that
    /// changed, and starts reading new shards from their start, each after its parent.
    async fn discover_shards(&mut self) {
        let drained: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, shard)| shard.iterator.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in drained {
            tracing::info!(stream_arn = %self.stream_arn, shard_id = %id, "shard closed and drained");
            self.shards.remove(&id);
            self.finished.insert(id);
        }
        let description = match self.describe().await {
            Ok(description) => description,
            Err(error) => {
                tracing::warn!(%error, "describing the stream failed");
                return;
            }
        };
        self.note_stream_state(&description);
        let described: BTreeSet<String> = description
            .shards
            .iter()
            .map(|shard| shard.id.clone())
            .collect();
        let vanished: Vec<String> = self
            .shards
            .keys()
            .filter(|id| !described.contains(*id))
            .cloned()
            .collect();
        for id in vanished {
            if let Some(shard) = self.shards.remove(&id) {
                tracing::warn!(
                    stream_arn = %self.stream_arn,
                    shard_id = %id,
                    last_handled = shard.last_sequence(),
                    "a shard being read is no longer in the stream (trimmed after 24 hours, or the \
                     stream changed): its records not read yet are lost"
                );
            }
            self.finished.insert(id);
        }
        // Forget shards the stream no longer lists (a child whose parent is gone starts at once).
        self.finished.retain(|id| described.contains(id));
        for shard in description.shards {
            if self.shards.contains_key(&shard.id) || self.finished.contains(&shard.id) {
                continue;
            }
            // Read a child only after its parent is drained, to keep a key's records in order.
            if let Some(parent) = &shard.parent {
                if described.contains(parent) && !self.finished.contains(parent) {
                    continue;
                }
            }
            match self
                .iterator(&shard.id, ShardIteratorType::TrimHorizon, None)
                .await
            {
                Ok(iterator) => {
                    tracing::info!(
                        stream_arn = %self.stream_arn,
                        shard_id = %shard.id,
                        parent_shard_id = shard.parent.as_deref(),
                        "reading a new shard"
                    );
                    self.shards
                        .insert(shard.id, ShardState::new(iterator, Start::TrimHorizon));
                }
                Err(error) => tracing::warn!(%error, "opening a new shard failed"),
            }
        }
    }

    /// Warns once per change when the stream is not enabled or no longer the one the runner
    /// was started on (its label is the end of its ARN).
    fn note_stream_state(&mut self, description: &Description) {
        let status = description.status.clone().unwrap_or_default();
        let label = description.label.clone().unwrap_or_default();
        let own_label = self
            .stream_arn
            .rsplit_once("/stream/")
            .map(|(_, label)| label)
            .unwrap_or_default();
        let enabled = matches!(status.as_str(), "ENABLED" | "ENABLING");
        let state = (status, label);
        if (!enabled || state.1 != own_label) && self.stream_seen.as_ref() != Some(&state) {
            tracing::warn!(
                stream_arn = %self.stream_arn,
                status = %state.0,
                latest_label = %state.1,
                "the stream is disabled or was replaced by another: records written to the \
                 table from now on may never reach this runner (restart sumu-local)"
            );
        }
        self.stream_seen = Some(state);
    }

    async fn describe(&self) -> Result<Description, StreamError> {
        let mut description = Description {
            shards: Vec::new(),
            status: None,
            label: None,
        };
        let mut start = None;
        loop {
            let described = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .map_err(|error| self.failed("DescribeStream", error))?;
            let Some(page) = described.stream_description else {
                return Ok(description);
            };
            description.status = page.stream_status.map(|status| status.as_str().to_string());
            description.label = page.stream_label;
            for shard in page.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                description.shards.push(ShardInfo {
                    id,
                    parent: shard.parent_shard_id,
                    closed: shard
                        .sequence_number_range
                        .is_some_and(|range| range.ending_sequence_number.is_some()),
                });
            }
            match page.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(description),
            }
        }
    }

    async fn iterator(
        &self,
        shard_id: &str,
        kind: ShardIteratorType,
        sequence: Option<&str>,
    ) -> Result<Option<String>, StreamError> {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence.map(str::to_string))
            .send()
            .await
            .map(|answer| answer.shard_iterator)
            .map_err(|error| self.failed("GetShardIterator", error))
    }

    fn failed(&self, operation: &'static str, error: impl std::error::Error) -> StreamError {
        StreamError::Call {
            operation,
            stream_arn: self.stream_arn.clone(),
            message: DisplayErrorContext(&error).to_string(),
        }
    }
}

#[derive(Debug)]
struct ShardInfo {
    id: String,
    parent: Option<String>,
    closed: bool,
}

fn sequence_number(record: &Record) -> Option<&str> {
    record
        .dynamodb
        .as_ref()
        .and_then(|change| change.sequence_number.as_deref())
}

/// The first sequence number to read again, per Lambda's rules: the lowest reported one; an
/// identifier that is empty or names no record of the batch fails the whole batch.
pub fn first_failure(response: &DynamoDbEventResponse, sequences: &[String]) -> Option<String> {
    if response.batch_item_failures.is_empty() {
        return None;
    }
    let reported: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_deref().unwrap_or_default())
        .collect();
    let whole_batch = sequences.first().cloned().unwrap_or_default();
    if reported
        .iter()
        .any(|id| id.is_empty() || !sequences.iter().any(|sequence| sequence == id))
    {
        return Some(whole_batch);
    }
    sequences
        .iter()
        .find(|sequence| reported.contains(&sequence.as_str()))
        .cloned()
        .or(Some(whole_batch))
}

/// Stream records as the Lambda event an event source mapping delivers.
pub fn to_event(records: &[Record], stream_arn: &str) -> Result<Event, serde_json::Error> {
    event_of(
        records
            .iter()
            .map(|record| record_json(record, stream_arn))
            .collect(),
    )
}

/// Records already in Lambda's JSON shape, as one event.
fn event_of(records: Vec<Value>) -> Result<Event, serde_json::Error> {
    serde_json::from_value(json!({ "Records": records }))
}

/// One record in Lambda's JSON shape (`eventSourceARN`, `dynamodb.Keys` as typed attribute
/// values, `ApproximateCreationDateTime` in epoch seconds, `userIdentity` for TTL removals).
fn record_json(record: &Record, stream_arn: &str) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.to_string(), value);
        }
    };
    put("eventID", record.event_id.clone().map(Value::from));
    put(
        "eventName",
        record
            .event_name
            .as_ref()
            .map(|name| Value::from(name.as_str())),
    );
    put(
        "eventVersion",
        record.event_version.clone().map(Value::from),
    );
    put("eventSource", record.event_source.clone().map(Value::from));
    put("awsRegion", record.aws_region.clone().map(Value::from));
    put("eventSourceARN", Some(Value::from(stream_arn)));
    put(
        "userIdentity",
        record
            .user_identity
            .as_ref()
            .map(|identity| json!({"type": identity.r#type, "principalId": identity.principal_id})),
    );
    if let Some(change) = &record.dynamodb {
        let mut dynamodb = Map::new();
        if let Some(created) = change.approximate_creation_date_time {
            dynamodb.insert(
                "ApproximateCreationDateTime".into(),
                json!(created.as_secs_f64()),
            );
        }
        for (name, image) in [
            ("Keys", &change.keys),
            ("NewImage", &change.new_image),
            ("OldImage", &change.old_image),
        ] {
            if let Some(image) = image {
                dynamodb.insert(name.into(), item_json(image));
            }
        }
        if let Some(sequence) = &change.sequence_number {
            dynamodb.insert("SequenceNumber".into(), sequence.as_str().into());
        }
        dynamodb.insert("SizeBytes".into(), change.size_bytes.unwrap_or(0).into());
        if let Some(view) = &change.stream_view_type {
            dynamodb.insert("StreamViewType".into(), view.as_str().into());
        }
        out.insert("dynamodb".into(), Value::Object(dynamodb));
    }
    Value::Object(out)
}

fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect(),
    )
}

/// An attribute value in DynamoDB's JSON (`{"S":"…"}`, `{"N":"1"}`, `{"B":"base64"}` …).
fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |blob: &aws_smithy_types::Blob| {
        base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(blob) => json!({ "B": b64(blob) }),
        AttributeValue::Bool(flag) => json!({ "BOOL": flag }),
        AttributeValue::Null(flag) => json!({ "NULL": flag }),
        AttributeValue::Ss(values) => json!({ "SS": values }),
        AttributeValue::Ns(values) => json!({ "NS": values }),
        AttributeValue::Bs(values) => {
            json!({ "BS": values.iter().map(b64).collect::<Vec<_>>() })
        }
        AttributeValue::L(values) => {
            json!({ "L": values.iter().map(attribute_json).collect::<Vec<_>>() })
        }
        AttributeValue::M(values) => json!({ "M": item_json(values) }),
        // A type newer than this SDK: keep the record readable, the handler decides.
        _ => json!({ "NULL": true }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::streams::DynamoDbBatchItemFailure;
    use aws_sdk_dynamodbstreams::primitives::DateTime;
    use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamRecord, StreamViewType};

    fn failures(ids: &[Option<&str>]) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for id in ids {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = id.map(str::to_string);
            response.batch_item_failures.push(failure);
        }
        response
    }

    fn sequences() -> Vec<String> {
        vec!["100".into(), "200".into(), "300".into()]
    }

    #[test]
    fn no_failure_means_the_batch_is_done() {
        assert_eq!(first_failure(&failures(&[]), &sequences()), None);
    }

    #[test]
    fn the_lowest_reported_sequence_number_is_read_again() {
        assert_eq!(
            first_failure(&failures(&[Some("300"), Some("200")]), &sequences()),
            Some("200".into())
        );
    }

    #[test]
    fn an_empty_or_unknown_identifier_fails_the_whole_batch() {
        for bad in [None, Some(""), Some("999")] {
            assert_eq!(
                first_failure(&failures(&[Some("300"), bad]), &sequences()),
                Some("100".into()),
                "{bad:?}"
            );
        }
    }

    fn record(event: OperationType, identity: Option<Identity>) -> Record {
        let change = StreamRecord::builder()
            .keys("user_id", AttributeValue::S("u1".into()))
            .keys("connection_id", AttributeValue::S("c1=".into()))
            .sequence_number("4200")
            .size_bytes(42)
            .stream_view_type(StreamViewType::KeysOnly)
            .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
            .build();
        Record::builder()
            .event_id("e1")
            .event_name(event)
            .event_source("aws:dynamodb")
            .event_version("1.1")
            .aws_region("us-east-1")
            .dynamodb(change)
            .set_user_identity(identity)
            .build()
    }

    #[test]
    fn records_become_the_lambda_event_shape() {
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026";
        let event = to_event(&[record(OperationType::Insert, None)], arn).expect("converts");
        let record = event.records.first().expect("one record");
        assert_eq!(record.event_name, "INSERT");
        assert_eq!(record.event_id, "e1");
        assert_eq!(record.event_source_arn.as_deref(), Some(arn));
        assert_eq!(record.change.sequence_number.as_deref(), Some("4200"));
        assert_eq!(record.change.size_bytes, 42);
        assert_eq!(
            record.change.approximate_creation_date_time.timestamp(),
            1_700_000_000
        );
        assert_eq!(
            record.change.keys.get("user_id"),
            Some(&serde_dynamo::AttributeValue::S("u1".into()))
        );
        assert_eq!(
            record.change.keys.get("connection_id"),
            Some(&serde_dynamo::AttributeValue::S("c1=".into()))
        );
        assert!(record.user_identity.is_none());
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(
            json["Records"][0]["dynamodb"]["StreamViewType"],
            "KEYS_ONLY"
        );
    }

    #[test]
    fn a_ttl_removal_keeps_its_user_identity() {
        let identity = Identity::builder()
            .r#type("Service")
            .principal_id("dynamodb.amazonaws.com")
            .build();
        let event =
            to_event(&[record(OperationType::Remove, Some(identity))], "arn").expect("converts");
        let identity = event.records[0].user_identity.clone().expect("identity");
        assert_eq!(identity.type_, "Service");
        assert_eq!(identity.principal_id, "dynamodb.amazonaws.com");
    }

    #[test]
    fn every_attribute_type_converts() {
        let blob = aws_smithy_types::Blob::new(vec![1, 2, 3]);
        let value = AttributeValue::M(std::collections::HashMap::from([
            ("b".to_string(), AttributeValue::B(blob.clone())),
            (
                "l".to_string(),
                AttributeValue::L(vec![AttributeValue::Bool(true)]),
            ),
            ("ns".to_string(), AttributeValue::Ns(vec!["1".into()])),
            ("bs".to_string(), AttributeValue::Bs(vec![blob])),
            ("z".to_string(), AttributeValue::Null(true)),
        ]));
        assert_eq!(
            attribute_json(&value),
            json!({"M": {"b": {"B": "AQID"}, "l": {"L": [{"BOOL": true}]}, "ns": {"NS": ["1"]},
                  "bs": {"BS": ["AQID"]}, "z": {"NULL": true}}})
        );
    }
}
