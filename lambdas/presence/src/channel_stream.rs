//! DynamoDB stream batches of the subscriptions table → channel members, `join`/`leave`
//! frames, lifecycle events and the subscriptions gauge (docs/presence.md § Channel presence).
//!
//! Every subscription item that appears (INSERT) or goes (REMOVE) — whoever wrote or deleted
//! it: a client's `subscribe`/`unsubscribe`, the cleanup of an ended connection, a back end's
//! `subscribe`/`unsubscribe` request or its own item — passes through here, in the order
//! DynamoDB committed it. For an exact channel whose namespace tracks members the change is
//! applied to the members table (crate::members, which explains why each transition is seen
//! once), and each transition is told, in this order:
//! - joined: `OCCUPIED` (if the channel was empty), `JOINED`, then the `join` frame;
//! - left: `LEFT`, `VACATED` (if the channel is now empty), then the `leave` frame;
//!
//! lifecycle events only in a `lifecycle_events` namespace, frames only in a `join_leave` one.
//! Failures follow the connections stream's rule: records are handled one at a time, and at
//! the first that fails processing stops and only it is reported, so the stream retries from
//! it (a retry may tell a transition again; it never loses one).

use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;
use sumu_wire::members::{
    ChannelEvent, ChannelEventType, ChannelStatus, JoinLeave, JoinLeaveType, Membership,
    MembershipEvent, MembershipEventType, MembershipStatus, Occupancy,
};
use sumu_wire::{subscriptions, Channel, Namespace};
use tracing::{error, info, info_span, warn, Instrument};

use crate::members::ChannelMembers;
use crate::sink::{Lifecycle, SinkError};
use crate::stream::{epoch_millis, IncomingRecord, MalformedRecord, StreamBatch};
use crate::{gauges, Deps, EventSink};

/// Whether a batch comes from the subscriptions table: its records' keys name a channel.
pub fn is_subscriptions_batch(batch: &StreamBatch) -> bool {
    batch.records.iter().any(|incoming| {
        matches!(incoming, IncomingRecord::Record(record)
            if record.change.keys.contains_key(subscriptions::CHANNEL))
    })
}

/// One subscription item that appeared or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub sequence_number: String,
    /// The pattern's text, as the item's partition key holds it.
    pub channel: String,
    pub connection_id: String,
    pub user_id: String,
    /// `true`: INSERT; `false`: REMOVE.
    pub added: bool,
    /// Epoch milliseconds of the change.
    pub timestamp: i64,
}

/// Reads one record; `Ok(None)` for a MODIFY (a back end rewriting its item), which changes
/// no membership.
pub fn read_record(
    record: &EventRecord,
    now_ms: i64,
) -> Result<Option<SubscriptionChange>, MalformedRecord> {
    let sequence_number = record
        .change
        .sequence_number
        .clone()
        .filter(|sequence| !sequence.is_empty())
        .ok_or(MalformedRecord::NoSequenceNumber)?;
    let (added, image) = match record.event_name.as_str() {
        "INSERT" => (true, &record.change.new_image),
        "REMOVE" => (false, &record.change.old_image),
        "MODIFY" => return Ok(None),
        other => return Err(MalformedRecord::UnknownEventName(other.to_owned())),
    };
    let string = |item: &serde_dynamo::Item, name: &'static str| match item.get(name) {
        Some(AttributeValue::S(value)) if !value.is_empty() => Ok(value.clone()),
        _ => Err(MalformedRecord::MissingKey(name)),
    };
    let created_ms = record
        .change
        .approximate_creation_date_time
        .timestamp_millis();
    Ok(Some(SubscriptionChange {
        sequence_number,
        channel: string(&record.change.keys, subscriptions::CHANNEL)?,
        connection_id: string(&record.change.keys, subscriptions::CONNECTION_ID)?,
        user_id: string(image, subscriptions::USER_ID)?,
        added,
        timestamp: if created_ms > 0 { created_ms } else { now_ms },
    }))
}

/// Processes one batch of the subscriptions stream; never fails as a whole.
pub async fn handle_batch<C, S: EventSink, U: ChannelMembers>(
    batch: StreamBatch,
    deps: &Deps<C, S, U>,
    now: std::time::SystemTime,
) -> DynamoDbEventResponse {
    let now_ms = epoch_millis(now);
    let mut response = DynamoDbEventResponse::default();
    let Some(store) = deps
        .subscriptions
        .as_ref()
        .filter(|s| s.has_members_table())
    else {
        return response;
    };
    let mut subscriptions_delta = 0_i64;
    for incoming in &batch.records {
        let record = match incoming {
            IncomingRecord::Record(record) => record,
            IncomingRecord::Unreadable(reason) => {
                warn!(error = %MalformedRecord::Unreadable(reason.clone()), "skipping a malformed subscriptions stream record");
                continue;
            }
        };
        let change = match read_record(record, now_ms) {
            Ok(Some(change)) => change,
            Ok(None) => continue,
            Err(error) => {
                warn!(event_id = %record.event_id, %error, "skipping a malformed subscriptions stream record: retrying cannot fix it");
                continue;
            }
        };
        let span = info_span!(
            "subscription",
            sequence_number = %change.sequence_number,
            channel = %change.channel,
            connection_id = %change.connection_id,
            user_id = %change.user_id,
        );
        let outcome = apply(&change, deps, store, now_ms)
            .instrument(span.clone())
            .await;
        match outcome {
            Ok(()) => {}
            Err(Failure::Members(failure)) if failure.permanent => {
                // E.g. a channel item that would pass DynamoDB's 400 KB: retrying would only
                // hold the shard back until the mapping gives up.
                span.in_scope(|| error!(%failure, "skipping the record: DynamoDB refused the change itself, retrying cannot fix it"));
            }
            Err(failure) => {
                span.in_scope(
                    || error!(%failure, "reporting the record as failed: the stream retries from it"),
                );
                let mut item = DynamoDbBatchItemFailure::default();
                item.item_identifier = Some(change.sequence_number.clone());
                response.batch_item_failures.push(item);
                break;
            }
        }
        subscriptions_delta += if change.added { 1 } else { -1 };
    }
    gauges::adjust(store, 0, subscriptions_delta).await;
    response
}

/// Why a record failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Members(#[from] crate::members::MembersError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// The member-tracking namespace of an exact channel, if it has one.
fn tracked<'n>(deps_namespaces: &'n sumu_wire::Namespaces, channel: &str) -> Option<&'n Namespace> {
    let channel = Channel::parse(channel).ok()?;
    deps_namespaces.members_of(&channel)
}

async fn apply<C, S: EventSink, U: ChannelMembers>(
    change: &SubscriptionChange,
    deps: &Deps<C, S, U>,
    store: &U,
    now_ms: i64,
) -> Result<(), Failure> {
    // A pattern does not parse as a channel: its subscribers listen, they are not members.
    let Some(namespace) = tracked(&deps.namespaces, &change.channel) else {
        return Ok(());
    };
    let now = now_ms.div_euclid(1000);
    let (channel, user_id) = (change.channel.as_str(), change.user_id.as_str());
    if change.added {
        let member = store
            .add_connection(channel, user_id, &change.connection_id, now)
            .await?;
        if !member.transition {
            return Ok(());
        }
        let occupancy = store.add_member(channel, user_id, now).await?;
        info!(members = occupancy.size, "a member joined");
        if namespace.lifecycle_events {
            if occupancy.transition {
                deliver(
                    deps,
                    channel_event(change, Occupancy::Occupied, occupancy.size),
                )
                .await?;
            }
            deliver(deps, membership_event(change, MembershipStatus::Joined)).await?;
        }
        if namespace.join_leave {
            deps.sink
                .announce(&frame(change, JoinLeaveType::Join))
                .await?;
        }
    } else {
        let member = store
            .remove_connection(channel, user_id, &change.connection_id, now)
            .await?;
        if !member.transition {
            return Ok(());
        }
        let occupancy = store.remove_member(channel, user_id, now).await?;
        info!(members = occupancy.size, "a member left");
        if namespace.lifecycle_events {
            deliver(deps, membership_event(change, MembershipStatus::Left)).await?;
            if occupancy.transition {
                deliver(
                    deps,
                    channel_event(change, Occupancy::Vacated, occupancy.size),
                )
                .await?;
            }
        }
        if namespace.join_leave {
            deps.sink
                .announce(&frame(change, JoinLeaveType::Leave))
                .await?;
        }
    }
    Ok(())
}

async fn deliver<C, S: EventSink, U>(
    deps: &Deps<C, S, U>,
    event: Lifecycle,
) -> Result<(), SinkError> {
    deps.sink.deliver_lifecycle(&event).await?;
    info!(event = %serde_json::to_string(&event).unwrap_or_default(), "lifecycle event emitted");
    Ok(())
}

fn channel_event(change: &SubscriptionChange, status: Occupancy, members: u32) -> Lifecycle {
    Lifecycle::Channel(ChannelEvent {
        kind: ChannelEventType::Channel,
        message: ChannelStatus {
            channel: change.channel.clone(),
            status,
            members,
            timestamp: change.timestamp,
        },
    })
}

fn membership_event(change: &SubscriptionChange, status: MembershipStatus) -> Lifecycle {
    Lifecycle::Membership(MembershipEvent {
        kind: MembershipEventType::Membership,
        message: Membership {
            channel: change.channel.clone(),
            user_id: change.user_id.clone(),
            status,
            timestamp: change.timestamp,
        },
    })
}

fn frame(change: &SubscriptionChange, kind: JoinLeaveType) -> JoinLeave {
    JoinLeave {
        kind,
        channel: change.channel.clone(),
        user_id: change.user_id.clone(),
    }
}
