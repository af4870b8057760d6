//! DynamoDB stream batches of the connections table → presence events.
//!
//! # What a batch produces
//! Every INSERT (a new connection) yields ONLINE with the user's live connection count after
//! it; a REMOVE yields OFFLINE only when the user has no live connection left after it; a
//! MODIFY (`ping` touching `last_seen_at`) yields nothing. The stream is keys-only, so the
//! counts come from one strongly consistent Query per user in the batch, made *after* the
//! batch's writes: that is the count after the user's last record. The count after each
//! earlier record of the same user is reconstructed backwards from it (an INSERT added one
//! live connection, a disconnect removed one, a TTL removal removed an already expired and
//! therefore not live one), so several records of one user produce the events that sequence
//! implies, in order: two devices closing in one batch give one OFFLINE, on the second; a
//! connect and disconnect of one connection in one batch give ONLINE then OFFLINE; two TTL
//! removals leaving nothing give one OFFLINE.
//!
//! # Subscriptions of ended connections
//! Every REMOVE (disconnect, pruning, TTL) also deletes the connection's subscription items
//! (`SubscriptionStore::remove_connection`: a Query of the subscriptions table's
//! `connection_id-index`, then BatchWriteItem deletes), whether or not the user stays
//! online. The batch's cleanups run concurrently (bounded by `query_concurrency`) and all
//! finish before any of its presence events is delivered; a failed cleanup fails its record
//! exactly like a failed delivery (the retry deletes again, which is harmless). Without a
//! subscriptions table nothing is cleaned up.
//!
//! # Failures and ordering
//! Lambda retries a stream batch *from the lowest sequence number reported as failed*: every
//! record after it comes back anyway. So records are delivered one at a time in stream order,
//! and at the first record that cannot be processed (its user's Query failed, its
//! subscriptions could not be deleted, or delivering its event failed) processing stops and only that record is reported. Nothing after it is
//! delivered now, so a retry does not deliver it twice, and a user's events never overtake
//! each other. A record that retrying cannot fix (no sequence number, unknown event name,
//! missing or non-string keys, not a stream record at all) is logged and skipped. A record
//! that keeps failing is retried until the event source mapping's `maximum_retry_attempts`
//! or `maximum_record_age_in_seconds` runs out, then handed to its on-failure destination.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Deserializer};
use serde_dynamo::AttributeValue;
use sumu_wire::{table, OfflineReason, Presence, PresenceEvent, PresenceEventType, PresenceStatus};
use thiserror::Error;
use tracing::{error, info, info_span, warn, Instrument};

use crate::members::ChannelMembers;
use crate::{gauges, ConnectionCounter, Deps, EventSink, SubscriptionStore};

/// The `userIdentity` DynamoDB puts on records of items its TTL process deleted.
pub const TTL_IDENTITY_TYPE: &str = "Service";
pub const TTL_IDENTITY_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// A stream batch whose records are read one by one, so that one record that is not even a
/// stream record cannot fail the whole batch.
#[derive(Debug, Clone, Default)]
pub struct StreamBatch {
    pub records: Vec<IncomingRecord>,
}

#[derive(Debug, Clone)]
pub enum IncomingRecord {
    Record(Box<EventRecord>),
    /// Not a DynamoDB stream record; kept only to be logged and skipped.
    Unreadable(String),
}

impl<'de> Deserialize<'de> for StreamBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct RawBatch {
            #[serde(rename = "Records")]
            records: Vec<serde_json::Value>,
        }
        let raw = RawBatch::deserialize(deserializer)?;
        let records = raw
            .records
            .into_iter()
            .map(
                |record| match serde_json::from_value::<EventRecord>(record) {
                    Ok(record) => IncomingRecord::Record(Box::new(record)),
                    Err(error) => IncomingRecord::Unreadable(error.to_string()),
                },
            )
            .collect();
        Ok(StreamBatch { records })
    }
}

/// sumu-local reads the stream with the SDK and hands over typed events.
impl From<Event> for StreamBatch {
    fn from(event: Event) -> Self {
        StreamBatch {
            records: event
                .records
                .into_iter()
                .map(|record| IncomingRecord::Record(Box::new(record)))
                .collect(),
        }
    }
}

/// What happened to one connection, read from one stream record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionChange {
    pub sequence_number: String,
    pub user_id: String,
    pub connection_id: String,
    pub kind: ChangeKind,
    /// Epoch milliseconds of the change (the record's creation time).
    pub timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// INSERT: a new connection.
    Connected,
    /// REMOVE, with why.
    Removed(OfflineReason),
    /// MODIFY: `ping` updated `last_seen_at`.
    Touched,
}

/// Why a record is skipped instead of retried: retrying cannot fix any of these.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum MalformedRecord {
    #[error("not a DynamoDB stream record: {0}")]
    Unreadable(String),
    #[error("the record has no sequence number")]
    NoSequenceNumber,
    #[error("unknown event name {0:?}")]
    UnknownEventName(String),
    #[error("key {0} is missing or not a non-empty string")]
    MissingKey(&'static str),
}

/// Reads one stream record. `now_ms` stands in for a missing creation time.
pub fn read_record(record: &EventRecord, now_ms: i64) -> Result<ConnectionChange, MalformedRecord> {
    let sequence_number = record
        .change
        .sequence_number
        .clone()
        .filter(|sequence| !sequence.is_empty())
        .ok_or(MalformedRecord::NoSequenceNumber)?;
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Connected,
        "MODIFY" => ChangeKind::Touched,
        "REMOVE" if is_ttl_removal(record) => ChangeKind::Removed(OfflineReason::Expired),
        "REMOVE" => ChangeKind::Removed(OfflineReason::Disconnected),
        other => return Err(MalformedRecord::UnknownEventName(other.to_owned())),
    };
    let key = |name: &'static str| match record.change.keys.get(name) {
        Some(AttributeValue::S(value)) if !value.is_empty() => Ok(value.clone()),
        _ => Err(MalformedRecord::MissingKey(name)),
    };
    let created_ms = record
        .change
        .approximate_creation_date_time
        .timestamp_millis();
    Ok(ConnectionChange {
        sequence_number,
        user_id: key(table::USER_ID)?,
        connection_id: key(table::CONNECTION_ID)?,
        kind,
        // A record without ApproximateCreationDateTime deserializes to the epoch.
        timestamp: if created_ms > 0 { created_ms } else { now_ms },
    })
}

fn is_ttl_removal(record: &EventRecord) -> bool {
    record.user_identity.as_ref().is_some_and(|identity| {
        identity.type_ == TTL_IDENTITY_TYPE && identity.principal_id == TTL_IDENTITY_PRINCIPAL
    })
}

/// What to do for one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Deliver(PresenceEvent),
    /// The change implies no event (MODIFY, or a removal that leaves the user online).
    Nothing,
    /// The user's live connections could not be counted: the record must be retried.
    CountUnavailable,
}

/// The step each change implies, given each user's live connection count after the batch
/// (`final_counts`; a user missing from it could not be counted). See the module docs.
pub fn plan(changes: &[ConnectionChange], final_counts: &HashMap<String, u32>) -> Vec<Step> {
    let mut steps = vec![Step::Nothing; changes.len()];
    let mut by_user: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, change) in changes.iter().enumerate() {
        if change.kind != ChangeKind::Touched {
            by_user
                .entry(change.user_id.as_str())
                .or_default()
                .push(index);
        }
    }
    for (user_id, indices) in by_user {
        let Some(&final_count) = final_counts.get(user_id) else {
            for index in indices {
                steps[index] = Step::CountUnavailable;
            }
            continue;
        };
        // Live connections right after each of the user's changes, walking back from now.
        let mut live_after = vec![0_u32; indices.len()];
        let mut live = final_count;
        for (position, &index) in indices.iter().enumerate().rev() {
            live_after[position] = live;
            live = match changes[index].kind {
                ChangeKind::Connected => live.saturating_sub(1),
                ChangeKind::Removed(OfflineReason::Disconnected) => live.saturating_add(1),
                ChangeKind::Removed(OfflineReason::Expired) | ChangeKind::Touched => live,
            };
        }
        let mut reported_offline = false;
        for (position, &index) in indices.iter().enumerate() {
            let change = &changes[index];
            match change.kind {
                ChangeKind::Connected => {
                    // The connection itself is live when it arrives, even if the table has
                    // already moved on (its removal then follows in a later batch).
                    steps[index] = Step::Deliver(event(
                        change,
                        PresenceStatus::Online,
                        live_after[position].max(1),
                        None,
                    ));
                    reported_offline = false;
                }
                ChangeKind::Removed(reason) if live_after[position] == 0 && !reported_offline => {
                    steps[index] =
                        Step::Deliver(event(change, PresenceStatus::Offline, 0, Some(reason)));
                    reported_offline = true;
                }
                ChangeKind::Removed(_) | ChangeKind::Touched => {}
            }
        }
    }
    steps
}

fn event(
    change: &ConnectionChange,
    status: PresenceStatus,
    connections: u32,
    reason: Option<OfflineReason>,
) -> PresenceEvent {
    PresenceEvent {
        kind: PresenceEventType::Presence,
        message: Presence {
            user_id: change.user_id.clone(),
            status,
            connection_id: change.connection_id.clone(),
            connections,
            timestamp: change.timestamp,
            reason,
        },
    }
}

/// The batch's changes in stream order; malformed records are logged and left out.
fn read_changes(batch: &StreamBatch, now_ms: i64) -> Vec<ConnectionChange> {
    let mut changes = Vec::with_capacity(batch.records.len());
    for incoming in &batch.records {
        match incoming {
            IncomingRecord::Record(record) => match read_record(record, now_ms) {
                Ok(change) => changes.push(change),
                Err(error) => warn!(
                    event_id = %record.event_id,
                    sequence_number = record.change.sequence_number.as_deref(),
                    %error,
                    "skipping a malformed stream record: retrying cannot fix it"
                ),
            },
            IncomingRecord::Unreadable(reason) => warn!(
                error = %MalformedRecord::Unreadable(reason.clone()),
                "skipping a malformed stream record: retrying cannot fix it"
            ),
        }
    }
    changes
}

/// Processes one stream batch; never fails as a whole (see the module docs).
pub async fn handle_batch<
    C: ConnectionCounter,
    S: EventSink,
    U: SubscriptionStore + ChannelMembers,
>(
    batch: StreamBatch,
    deps: &Deps<C, S, U>,
    now: SystemTime,
) -> DynamoDbEventResponse {
    let now_ms = epoch_millis(now);
    let changes = read_changes(&batch, now_ms);

    let users: HashSet<&str> = changes
        .iter()
        .filter(|change| change.kind != ChangeKind::Touched)
        .map(|change| change.user_id.as_str())
        .collect();
    let now_seconds = now_ms.div_euclid(1000);
    // Owned ids: a closure over borrowed ones makes the future's `Send` unprovable (rustc's
    // higher-ranked lifetime limitation), and sumu-local spawns this handler.
    let counter = &deps.counter;
    let counted: Vec<(String, Result<u32, _>)> = stream::iter(users.into_iter().map(str::to_owned))
        .map(|user_id: String| async move {
            let live = counter.live_connections(&user_id, now_seconds).await;
            (user_id, live)
        })
        .buffer_unordered(deps.query_concurrency.max(1))
        .collect()
        .await;
    let mut final_counts = HashMap::new();
    for (user_id, result) in counted {
        match result {
            Ok(live) => {
                final_counts.insert(user_id, live);
            }
            Err(error) => error!(user_id, %error, "counting live connections failed"),
        }
    }

    let cleaned = remove_subscriptions(&changes, deps).await;

    let mut response = DynamoDbEventResponse::default();
    // The live-connections gauge moves by the records handled (not by one reported failed,
    // nor those after it: the retry brings them back).
    let mut connections_delta = 0_i64;
    for (change, step) in changes.iter().zip(plan(&changes, &final_counts)) {
        // One span per record, so every line about it carries its identity.
        let span = info_span!(
            "record",
            sequence_number = %change.sequence_number,
            user_id = %change.user_id,
            connection_id = %change.connection_id,
        );
        let cleanup_failed = matches!(change.kind, ChangeKind::Removed(_))
            && !cleaned.contains(change.connection_id.as_str());
        let failed = cleanup_failed
            || match step {
                Step::Nothing => false,
                Step::CountUnavailable => true,
                Step::Deliver(event) => deliver(&deps.sink, &event).instrument(span.clone()).await,
            };
        if failed {
            span.in_scope(|| {
                error!(
                    "reporting the record as failed: the stream retries from it \
                     (bounded by the event source mapping's retry settings)"
                )
            });
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(change.sequence_number.clone());
            response.batch_item_failures.push(failure);
            break;
        }
        connections_delta += match change.kind {
            ChangeKind::Connected => 1,
            ChangeKind::Removed(_) => -1,
            ChangeKind::Touched => 0,
        };
    }
    if let Some(store) = deps
        .subscriptions
        .as_ref()
        .filter(|s| s.has_members_table())
    {
        gauges::adjust(store, connections_delta, 0).await;
    }
    response
}

/// Deletes the subscriptions of every connection the batch removed, concurrently but
/// bounded; returns the connections whose subscriptions are gone (all of them when there is
/// no subscriptions table). A failure is logged here and fails its record in the caller.
async fn remove_subscriptions<C, S, U: SubscriptionStore>(
    changes: &[ConnectionChange],
    deps: &Deps<C, S, U>,
) -> HashSet<String> {
    let removed: HashSet<String> = changes
        .iter()
        .filter(|change| matches!(change.kind, ChangeKind::Removed(_)))
        .map(|change| change.connection_id.clone())
        .collect();
    let Some(store) = &deps.subscriptions else {
        return removed;
    };
    let results: Vec<(String, Result<usize, _>)> = stream::iter(removed)
        .map(|connection_id: String| async move {
            let deleted = store.remove_connection(&connection_id).await;
            (connection_id, deleted)
        })
        .buffer_unordered(deps.query_concurrency.max(1))
        .collect()
        .await;
    let mut cleaned = HashSet::with_capacity(results.len());
    for (connection_id, result) in results {
        match result {
            Ok(deleted) => {
                if deleted > 0 {
                    info!(
                        connection_id,
                        deleted, "subscriptions of an ended connection deleted"
                    );
                }
                cleaned.insert(connection_id);
            }
            Err(error) => error!(connection_id, %error, "deleting subscriptions failed"),
        }
    }
    cleaned
}

/// Delivers one event; `true` when it failed.
async fn deliver<S: EventSink>(sink: &S, event: &PresenceEvent) -> bool {
    match sink.deliver(event).await {
        Ok(()) => {
            info!(
                status = ?event.message.status,
                connections = event.message.connections,
                reason = ?event.message.reason,
                "presence event emitted"
            );
            false
        }
        Err(error) => {
            error!(%error, "delivering a presence event failed");
            true
        }
    }
}

pub(crate) fn epoch_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        sequence: u32,
        user_id: &str,
        connection_id: &str,
        kind: ChangeKind,
    ) -> ConnectionChange {
        ConnectionChange {
            sequence_number: sequence.to_string(),
            user_id: user_id.into(),
            connection_id: connection_id.into(),
            kind,
            timestamp: i64::from(sequence),
        }
    }

    /// (connection, status, connections, reason) per delivered step, in order.
    fn delivered(steps: &[Step]) -> Vec<(String, PresenceStatus, u32, Option<OfflineReason>)> {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Deliver(event) => Some((
                    event.message.connection_id.clone(),
                    event.message.status,
                    event.message.connections,
                    event.message.reason,
                )),
                _ => None,
            })
            .collect()
    }

    fn counts(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs
            .iter()
            .map(|(user, n)| (user.to_string(), *n))
            .collect()
    }

    use ChangeKind::{Connected, Removed, Touched};
    use OfflineReason::{Disconnected, Expired};
    use PresenceStatus::{Offline, Online};

    #[test]
    fn two_connects_in_one_batch_count_up() {
        let changes = [
            change(1, "u1", "a", Connected),
            change(2, "u1", "b", Connected),
        ];
        assert_eq!(
            delivered(&plan(&changes, &counts(&[("u1", 2)]))),
            vec![("a".into(), Online, 1, None), ("b".into(), Online, 2, None)]
        );
    }

    #[test]
    fn a_reconnect_in_one_batch_gives_offline_then_online() {
        let changes = [
            change(1, "u1", "a", Removed(Disconnected)),
            change(2, "u1", "b", Connected),
        ];
        assert_eq!(
            delivered(&plan(&changes, &counts(&[("u1", 1)]))),
            vec![
                ("a".into(), Offline, 0, Some(Disconnected)),
                ("b".into(), Online, 1, None)
            ]
        );
    }

    #[test]
    fn two_ttl_removals_leaving_nothing_give_one_offline() {
        let changes = [
            change(1, "u1", "a", Removed(Expired)),
            change(2, "u1", "b", Removed(Expired)),
        ];
        assert_eq!(
            delivered(&plan(&changes, &counts(&[("u1", 0)]))),
            vec![("a".into(), Offline, 0, Some(Expired))]
        );
    }

    #[test]
    fn a_ttl_removal_does_not_count_as_a_live_connection_going_away() {
        // The expired item was not live: the new connection is the user's only one.
        let changes = [
            change(1, "u1", "a", Connected),
            change(2, "u1", "old", Removed(Expired)),
        ];
        assert_eq!(
            delivered(&plan(&changes, &counts(&[("u1", 1)]))),
            vec![("a".into(), Online, 1, None)]
        );
    }

    #[test]
    fn users_are_planned_independently_and_pings_yield_nothing() {
        let changes = [
            change(1, "u1", "a", Touched),
            change(2, "u2", "b", Removed(Disconnected)),
            change(3, "u1", "a", Removed(Disconnected)),
        ];
        let steps = plan(&changes, &counts(&[("u1", 1), ("u2", 0)]));
        assert_eq!(steps[0], Step::Nothing);
        assert!(matches!(&steps[1], Step::Deliver(event) if event.message.user_id == "u2"));
        assert_eq!(steps[2], Step::Nothing, "u1 still has a live connection");
    }

    #[test]
    fn an_uncounted_user_cannot_be_planned() {
        let changes = [
            change(1, "u1", "a", Touched),
            change(2, "u1", "a", Removed(Disconnected)),
        ];
        assert_eq!(
            plan(&changes, &counts(&[])),
            vec![Step::Nothing, Step::CountUnavailable]
        );
    }

    #[test]
    fn only_the_dynamodb_service_identity_marks_a_ttl_removal() {
        let record = |identity: serde_json::Value| -> EventRecord {
            serde_json::from_value(serde_json::json!({
                "eventID": "1", "eventName": "REMOVE", "awsRegion": "us-east-1",
                "userIdentity": identity,
                "dynamodb": {"Keys": {"user_id": {"S": "u1"}, "connection_id": {"S": "a"}},
                             "SequenceNumber": "7", "SizeBytes": 10}
            }))
            .unwrap()
        };
        let ttl =
            record(serde_json::json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"}));
        assert_eq!(read_record(&ttl, 5).unwrap().kind, Removed(Expired));
        let other =
            record(serde_json::json!({"type": "Service", "principalId": "lambda.amazonaws.com"}));
        assert_eq!(read_record(&other, 5).unwrap().kind, Removed(Disconnected));
        // No creation time in the record: the processing time stands in.
        assert_eq!(read_record(&other, 5).unwrap().timestamp, 5);
    }

    #[test]
    fn records_retrying_cannot_fix_are_named() {
        let record = |dynamodb: serde_json::Value, name: &str| -> EventRecord {
            serde_json::from_value(serde_json::json!({
                "eventID": "1", "eventName": name, "awsRegion": "us-east-1", "dynamodb": dynamodb
            }))
            .unwrap()
        };
        let keys = serde_json::json!({"user_id": {"S": "u1"}, "connection_id": {"S": "a"}});
        assert_eq!(
            read_record(
                &record(serde_json::json!({"Keys": keys, "SizeBytes": 1}), "INSERT"),
                0
            ),
            Err(MalformedRecord::NoSequenceNumber)
        );
        assert_eq!(
            read_record(
                &record(
                    serde_json::json!({"Keys": keys, "SequenceNumber": "1", "SizeBytes": 1}),
                    "TRUNCATE"
                ),
                0
            ),
            Err(MalformedRecord::UnknownEventName("TRUNCATE".into()))
        );
        assert_eq!(
            read_record(
                &record(
                    serde_json::json!({"Keys": {"user_id": {"S": "u1"}}, "SequenceNumber": "1", "SizeBytes": 1}),
                    "INSERT"
                ),
                0
            ),
            Err(MalformedRecord::MissingKey("connection_id"))
        );
    }
}
