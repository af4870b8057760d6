//! Plays a DynamoDB stream event source mapping: polls a table's stream on the AWS endpoint
//! and hands batches, in Lambda's event shape, to a handler.
//!
//! What it does as Lambda's event source mapping does: the starting position is LATEST *when
//! the mapping is created* ([`StreamPoller::at_latest`] runs during `start`, before the
//! emulator accepts connections, so no early change is missed); one batch per shard at a time,
//! in order; `batchItemFailures` re-reads the shard from the first failed sequence number; a
//! failing record is retried `max_retry_attempts` times, then logged and skipped (the
//! deployed mapping hands it to the presence failures queue instead); closed shards are
//! drained, then their children found by describing the stream again.
//!
//! What it does not: no batch bisection (per-record failures make it moot for the presence
//! handler), no batching window, no `maximum_record_age_in_seconds`, no parallelization factor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::Engine;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

use crate::config::StreamSettings;
use crate::event_filter::EventFilter;
use crate::runners::RunnerContext;

/// The function a batch is handed to: Lambda's partial batch response, or an error for an
/// invocation that failed as a whole (the batch is retried from its first record).
pub type BatchHandler =
    Arc<dyn Fn(Event) -> BoxFuture<'static, Result<DynamoDbEventResponse, String>> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{operation} on stream {stream_arn}: {message}")]
    Call {
        operation: &'static str,
        stream_arn: String,
        message: String,
    },
}

/// Where one shard is read from.
#[derive(Debug, Clone, Default)]
struct ShardState {
    /// The next GetRecords iterator; `None` once the shard is closed and drained.
    iterator: Option<String>,
    /// The last sequence number handed over successfully (or skipped).
    last_sequence: Option<String>,
    /// The sequence number that failed last, and how many times it failed in a row.
    failing: Option<(String, u32)>,
}

/// The poller of one stream.
pub struct StreamPoller {
    client: Client,
    stream_arn: String,
    settings: StreamSettings,
    /// The mapping's `filter_criteria`: records it does not match are skipped, never handed over.
    filter: EventFilter,
    shards: BTreeMap<String, ShardState>,
    /// Shards drained completely: their children start at TRIM_HORIZON.
    finished: BTreeSet<String>,
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
        };
        for shard in poller.describe().await? {
            if shard.closed {
                // A closed shard holds nothing newer than now.
                poller.finished.insert(shard.id);
                continue;
            }
            let iterator = poller
                .iterator(&shard.id, ShardIteratorType::Latest, None)
                .await?;
            poller.shards.insert(
                shard.id,
                ShardState {
                    iterator,
                    ..ShardState::default()
                },
            );
        }
        Ok(poller)
    }

    /// Polls until the context's shutdown, handing every batch to `handler`.
    pub async fn run(mut self, mut context: RunnerContext, handler: BatchHandler) {
        tracing::info!(stream_arn = %self.stream_arn, "stream runner started");
        let mut next_describe = tokio::time::Instant::now() + self.settings.describe_interval;
        loop {
            let mut busy = false;
            let shard_ids: Vec<String> = self.shards.keys().cloned().collect();
            for shard_id in shard_ids {
                if *context.shutdown.borrow() {
                    break;
                }
                busy |= self.poll_shard(&shard_id, &handler).await;
            }
            if tokio::time::Instant::now() >= next_describe || self.has_drained_shards() {
                self.discover_shards().await;
                next_describe = tokio::time::Instant::now() + self.settings.describe_interval;
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
        let page = match self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(self.settings.batch_size)
            .send()
            .await
        {
            Ok(page) => page,
            Err(error) => {
                let error = error.into_service_error();
                tracing::warn!(
                    shard_id,
                    error = %DisplayErrorContext(&error),
                    "GetRecords failed: reading the shard again from the last handled record"
                );
                if error.is_expired_iterator_exception() || error.is_trimmed_data_access_exception()
                {
                    self.reposition(shard_id).await;
                }
                return false;
            }
        };
        let next_iterator = page.next_shard_iterator.clone();
        let records = page.records.unwrap_or_default();
        if records.is_empty() {
            self.set_iterator(shard_id, next_iterator);
            return false;
        }
        let full = i32::try_from(records.len()).is_ok_and(|n| n >= self.settings.batch_size);
        let last_read = records.last().and_then(sequence_number).map(str::to_string);
        // As Lambda does, filtering comes first: records the pattern rejects count as handled.
        let (sequences, kept): (Vec<String>, Vec<Value>) = records
            .iter()
            .map(|record| {
                let sequence = sequence_number(record).unwrap_or_default().to_string();
                (sequence, record_json(record, &self.stream_arn))
            })
            .filter(|(_, record)| self.filter.matches(record))
            .unzip();
        if kept.is_empty() {
            if let Some(shard) = self.shards.get_mut(shard_id) {
                shard.last_sequence = last_read;
                shard.failing = None;
            }
            self.set_iterator(shard_id, next_iterator);
            return full;
        }
        let outcome = match event_of(kept) {
            Ok(event) => handler(event).await,
            Err(error) => Err(format!("stream records do not convert: {error}")),
        };
        let first_failed = match outcome {
            Ok(response) => first_failure(&response, &sequences),
            Err(error) => {
                tracing::error!(shard_id, %error, "the handler failed the whole batch");
                Some(sequences.first().cloned().unwrap_or_default())
            }
        };
        match first_failed {
            None => {
                if let Some(shard) = self.shards.get_mut(shard_id) {
                    shard.last_sequence = last_read;
                    shard.failing = None;
                }
                self.set_iterator(shard_id, next_iterator);
                full
            }
            Some(failed) => {
                self.retry_or_skip(shard_id, &failed, &sequences).await;
                false
            }
        }
    }

    /// After a reported failure at `failed`: read again from it, or after it once it has
    /// failed more than `max_retry_attempts` times in a row.
    async fn retry_or_skip(&mut self, shard_id: &str, failed: &str, sequences: &[String]) {
        let attempts = match self
            .shards
            .get(shard_id)
            .and_then(|shard| shard.failing.as_ref())
        {
            Some((sequence, attempts)) if sequence == failed => attempts + 1,
            _ => 1,
        };
        // Records before the failed one were handled.
        let handled_before = sequences
            .iter()
            .take_while(|sequence| sequence.as_str() != failed)
            .last()
            .cloned();
        if let Some(shard) = self.shards.get_mut(shard_id) {
            if handled_before.is_some() {
                shard.last_sequence = handled_before;
            }
            shard.failing = Some((failed.to_string(), attempts));
        }
        let (kind, skipped) = if attempts > self.settings.max_retry_attempts {
            tracing::error!(
                shard_id,
                sequence_number = failed,
                attempts,
                "skipping a stream record that kept failing (the deployed mapping sends it to \
                 the presence failures queue)"
            );
            if let Some(shard) = self.shards.get_mut(shard_id) {
                shard.last_sequence = Some(failed.to_string());
                shard.failing = None;
            }
            (ShardIteratorType::AfterSequenceNumber, true)
        } else {
            tracing::warn!(
                shard_id,
                sequence_number = failed,
                attempts,
                "stream record failed: retrying from it"
            );
            (ShardIteratorType::AtSequenceNumber, false)
        };
        if !skipped {
            // Back off a little so a failing destination is not hammered.
            tokio::time::sleep(self.settings.poll_interval).await;
        }
        match self.iterator(shard_id, kind, Some(failed)).await {
            Ok(iterator) => self.set_iterator(shard_id, iterator),
            Err(error) => tracing::warn!(shard_id, %error, "repositioning the shard failed"),
        }
    }

    /// After an expired iterator: continue after the last handled record (or at LATEST).
    async fn reposition(&mut self, shard_id: &str) {
        let last = self
            .shards
            .get(shard_id)
            .and_then(|shard| shard.last_sequence.clone());
        let result = match &last {
            Some(sequence) => {
                self.iterator(
                    shard_id,
                    ShardIteratorType::AfterSequenceNumber,
                    Some(sequence),
                )
                .await
            }
            None => {
                self.iterator(shard_id, ShardIteratorType::Latest, None)
                    .await
            }
        };
        match result {
            Ok(iterator) => self.set_iterator(shard_id, iterator),
            Err(error) => tracing::warn!(shard_id, %error, "repositioning the shard failed"),
        }
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

    /// Moves drained shards to `finished` and starts reading new shards from their start.
    async fn discover_shards(&mut self) {
        let drained: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, shard)| shard.iterator.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in drained {
            tracing::info!(shard_id = %id, "shard closed and drained");
            self.shards.remove(&id);
            self.finished.insert(id);
        }
        let shards = match self.describe().await {
            Ok(shards) => shards,
            Err(error) => {
                tracing::warn!(%error, "describing the stream failed");
                return;
            }
        };
        for shard in shards {
            if self.shards.contains_key(&shard.id) || self.finished.contains(&shard.id) {
                continue;
            }
            // Read a child only after its parent is drained, to keep a key's records in order.
            if let Some(parent) = &shard.parent {
                if self.shards.contains_key(parent) {
                    continue;
                }
            }
            match self
                .iterator(&shard.id, ShardIteratorType::TrimHorizon, None)
                .await
            {
                Ok(iterator) => {
                    tracing::info!(shard_id = %shard.id, "reading a new shard");
                    self.shards.insert(
                        shard.id,
                        ShardState {
                            iterator,
                            ..ShardState::default()
                        },
                    );
                }
                Err(error) => tracing::warn!(%error, "opening a new shard failed"),
            }
        }
    }

    async fn describe(&self) -> Result<Vec<ShardInfo>, StreamError> {
        let mut shards = Vec::new();
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
            let Some(description) = described.stream_description else {
                return Ok(shards);
            };
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                shards.push(ShardInfo {
                    id,
                    parent: shard.parent_shard_id,
                    closed: shard
                        .sequence_number_range
                        .is_some_and(|range| range.ending_sequence_number.is_some()),
                });
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(shards),
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
