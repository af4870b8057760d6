//! Fakes for the three seams, and helpers to run the handler on fixture JSON.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{Context, LambdaEvent};
use presence::members::read_change;
use presence::subscriptions::{SubscribeOutcome, Subscription};
use presence::ChannelHistory;
use presence::{ChannelMembers, Gauges, Lifecycle, MembersError, SetChange};
use presence::{
    ConnectionCounter, Deps, EventSink, Invocation, PresenceError, Reply, SinkError, StoreError,
    SubscriptionError, SubscriptionStore,
};
use sumu_history::{HistoryError, Kept, Sequence};
use sumu_wire::members::JoinLeave;
use sumu_wire::{Channel, Namespaces, OfflineReason, PresenceEvent, PresenceStatus};

/// Live connection counts per user; users in `failing` make the Query fail.
#[derive(Default)]
pub struct FakeCounter {
    pub live: HashMap<String, u32>,
    pub failing: HashSet<String>,
    pub asked: Mutex<Vec<String>>,
}

impl FakeCounter {
    pub fn with(live: &[(&str, u32)]) -> Self {
        FakeCounter {
            live: live
                .iter()
                .map(|(user, n)| (user.to_string(), *n))
                .collect(),
            ..Default::default()
        }
    }
    pub fn failing_for(mut self, user_id: &str) -> Self {
        self.failing.insert(user_id.to_owned());
        self
    }
    pub fn asked(&self) -> Vec<String> {
        let mut asked = self.asked.lock().unwrap().clone();
        asked.sort();
        asked
    }
}

impl ConnectionCounter for FakeCounter {
    async fn live_connections(&self, user_id: &str, _now: i64) -> Result<u32, StoreError> {
        self.asked.lock().unwrap().push(user_id.to_owned());
        if self.failing.contains(user_id) {
            return Err(StoreError {
                user_id: user_id.to_owned(),
                message: "ProvisionedThroughputExceededException".into(),
            });
        }
        Ok(self.live.get(user_id).copied().unwrap_or(0))
    }
}

/// Records delivered events; events of users (or channels) in `failing` fail.
#[derive(Default)]
pub struct FakeSink {
    pub delivered: Mutex<Vec<PresenceEvent>>,
    pub lifecycle: Mutex<Vec<Lifecycle>>,
    pub announced: Mutex<Vec<JoinLeave>>,
    pub failing: HashSet<String>,
}

impl FakeSink {
    pub fn failing_for(user_id: &str) -> Self {
        FakeSink {
            failing: HashSet::from([user_id.to_owned()]),
            ..Default::default()
        }
    }
    /// (user, connection, status, connections, reason) of each delivered event, in order.
    pub fn summary(&self) -> Vec<(String, String, PresenceStatus, u32, Option<OfflineReason>)> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|event| {
                let m = &event.message;
                (
                    m.user_id.clone(),
                    m.connection_id.clone(),
                    m.status,
                    m.connections,
                    m.reason,
                )
            })
            .collect()
    }
}

impl EventSink for FakeSink {
    async fn deliver(&self, event: &PresenceEvent) -> Result<(), SinkError> {
        if self.failing.contains(&event.message.user_id) {
            return Err(SinkError {
                subject: event.message.user_id.clone(),
                message: "InternalError".into(),
            });
        }
        self.delivered.lock().unwrap().push(event.clone());
        Ok(())
    }

    async fn deliver_lifecycle(&self, event: &Lifecycle) -> Result<(), SinkError> {
        if self.failing.contains(event.channel()) {
            return Err(SinkError {
                subject: event.channel().to_owned(),
                message: "InternalError".into(),
            });
        }
        self.lifecycle.lock().unwrap().push(event.clone());
        Ok(())
    }

    async fn announce(&self, frame: &JoinLeave) -> Result<(), SinkError> {
        self.announced.lock().unwrap().push(frame.clone());
        Ok(())
    }
}

/// A set item of the fake members table: the set and `changed_by`.
pub type FakeSet = (BTreeSet<String>, Option<String>);

impl FakeSubscriptions {
    fn change_set(
        table: &Mutex<HashMap<(String, String), FakeSet>>,
        key: (String, String),
        element: &str,
        add: bool,
    ) -> SetChange {
        let mut table = table.lock().unwrap();
        let (set, changed_by) = table.entry(key).or_default();
        let before: Vec<String> = set.iter().cloned().collect();
        let previous = changed_by.replace(element.to_owned());
        if add {
            set.insert(element.to_owned());
            let after: Vec<&str> = set.iter().map(String::as_str).collect();
            read_change(&after, None, element, true)
        } else {
            set.remove(element);
            let before: Vec<&str> = before.iter().map(String::as_str).collect();
            read_change(&before, previous.as_deref(), element, false)
        }
    }
}

impl ChannelMembers for FakeSubscriptions {
    fn has_members_table(&self) -> bool {
        true
    }

    async fn add_connection(
        &self,
        channel: &str,
        user_id: &str,
        connection_id: &str,
        _now: i64,
    ) -> Result<SetChange, MembersError> {
        let key = (channel.to_owned(), user_id.to_owned());
        Ok(Self::change_set(
            &self.member_items,
            key,
            connection_id,
            true,
        ))
    }

    async fn remove_connection(
        &self,
        channel: &str,
        user_id: &str,
        connection_id: &str,
        _now: i64,
    ) -> Result<SetChange, MembersError> {
        let key = (channel.to_owned(), user_id.to_owned());
        Ok(Self::change_set(
            &self.member_items,
            key,
            connection_id,
            false,
        ))
    }

    async fn add_member(
        &self,
        channel: &str,
        user_id: &str,
        _now: i64,
    ) -> Result<SetChange, MembersError> {
        if self.failing_members.contains(channel) {
            return Err(MembersError {
                operation: "adding to a set",
                message: "InternalServerError".into(),
                permanent: false,
            });
        }
        let key = (channel.to_owned(), "#".to_owned());
        Ok(Self::change_set(&self.channel_items, key, user_id, true))
    }

    async fn remove_member(
        &self,
        channel: &str,
        user_id: &str,
        _now: i64,
    ) -> Result<SetChange, MembersError> {
        let key = (channel.to_owned(), "#".to_owned());
        Ok(Self::change_set(&self.channel_items, key, user_id, false))
    }

    async fn membership(&self, channel: &str, user_id: &str) -> Result<(bool, u32), MembersError> {
        let member = self
            .member_items
            .lock()
            .unwrap()
            .get(&(channel.to_owned(), user_id.to_owned()))
            .is_some_and(|(set, _)| !set.is_empty());
        let members = self
            .channel_items
            .lock()
            .unwrap()
            .get(&(channel.to_owned(), "#".to_owned()))
            .map_or(0, |(set, _)| set.len() as u32);
        Ok((member, members))
    }

    async fn adjust_gauges(
        &self,
        connections: i64,
        subscriptions: i64,
    ) -> Result<Gauges, MembersError> {
        let mut gauges = self.gauges.lock().unwrap();
        gauges.connections += connections;
        gauges.subscriptions += subscriptions;
        Ok(*gauges)
    }

    async fn subscribers(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<BTreeMap<String, u32>, MembersError> {
        if self.failing {
            return Err(MembersError {
                operation: "querying a channel's subscribers",
                message: "InternalServerError".into(),
                permanent: false,
            });
        }
        let mut users = BTreeMap::new();
        for ((item_channel, _), item) in self.items.lock().unwrap().iter() {
            if item_channel == channel && item.expires_at > now {
                *users.entry(item.user_id.clone()).or_insert(0) += 1;
            }
        }
        Ok(users)
    }

    async fn is_subscribed(
        &self,
        channel: &str,
        connection_id: &str,
    ) -> Result<bool, MembersError> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .contains_key(&(channel.to_owned(), connection_id.to_owned())))
    }
}

/// One subscription item of [`FakeSubscriptions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeItem {
    pub user_id: String,
    pub counted: bool,
    pub expires_at: i64,
}

/// The subscriptions table and the connection items' counters, in memory, with the
/// semantics of the two transactions (docs/channels.md § Subscribing).
#[derive(Default)]
pub struct FakeSubscriptions {
    /// (user, connection) → the `subscriptions` counter of each live connection item.
    pub connections: Mutex<HashMap<(String, String), u32>>,
    /// (channel, connection) → item.
    pub items: Mutex<BTreeMap<(String, String), FakeItem>>,
    /// Every call fails (DynamoDB is down).
    pub failing: bool,
    /// `remove_connection` fails for these connections.
    pub failing_cleanup: HashSet<String>,
    /// The connections `remove_connection` was called for, in order.
    pub removed: Mutex<Vec<String>>,
    /// The history table: channel → (top, epoch), and (channel, offset) → (epoch, frame,
    /// expires_at).
    pub sequences: Mutex<HashMap<String, (u64, String)>>,
    pub kept: Mutex<BTreeMap<(String, u64), KeptItem>>,
    /// Every history Query, as (channel, from, to, limit).
    pub history_reads: Mutex<Vec<(String, u64, u64, usize)>>,
    /// How long ago the latest publication was given its offset (0: just now).
    pub published_seconds_ago: Mutex<i64>,
    /// The members table: (channel, user) → member item; (channel, "#") → channel item.
    pub member_items: Mutex<HashMap<(String, String), FakeSet>>,
    pub channel_items: Mutex<HashMap<(String, String), FakeSet>>,
    /// `add_member` fails for these channels.
    pub failing_members: HashSet<String>,
    pub gauges: Mutex<Gauges>,
}

/// A kept publication: its epoch, frame and `expires_at`.
pub type KeptItem = (String, String, i64);

impl FakeSubscriptions {
    /// `count` publications kept on `channel` in epoch `epoch` (offsets 1..=count), each
    /// `{"type":"publication","channel":…,"id":"p<n>","offset":n,"epoch":…,"data":n}`.
    pub fn publish(&self, channel: &str, epoch: &str, count: u64, expires_at: i64) {
        let mut sequences = self.sequences.lock().unwrap();
        let entry = sequences
            .entry(channel.to_owned())
            .or_insert((0, epoch.to_owned()));
        for _ in 0..count {
            entry.0 += 1;
            let offset = entry.0;
            let frame = serde_json::json!({"type":"publication","channel":channel,"id":format!("p{offset}"),
                "offset":offset,"epoch":epoch,"data":offset})
            .to_string();
            self.kept.lock().unwrap().insert(
                (channel.to_owned(), offset),
                (epoch.to_owned(), frame, expires_at),
            );
        }
    }
}

impl ChannelHistory for FakeSubscriptions {
    async fn ensure_sequence(&self, channel: &Channel, now: i64) -> Result<Sequence, HistoryError> {
        self.history_check()?;
        let mut sequences = self.sequences.lock().unwrap();
        let (top, epoch) = sequences
            .entry(channel.to_string())
            .or_insert((0, "fresh".to_owned()))
            .clone();
        Ok(Sequence {
            top,
            epoch,
            published_at: self.published_at(now),
        })
    }

    async fn sequence(
        &self,
        channel: &Channel,
        now: i64,
    ) -> Result<Option<Sequence>, HistoryError> {
        self.history_check()?;
        Ok(self
            .sequences
            .lock()
            .unwrap()
            .get(channel.as_str())
            .map(|(top, epoch)| Sequence {
                top: *top,
                epoch: epoch.clone(),
                published_at: self.published_at(now),
            }))
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
        self.history_check()?;
        self.history_reads
            .lock()
            .unwrap()
            .push((channel.to_string(), range.0, range.1, limit));
        let kept = self.kept.lock().unwrap();
        let mut items: Vec<Kept> = kept
            .range((channel.to_string(), range.0)..=(channel.to_string(), range.1))
            .filter(|(_, (item_epoch, _, _))| item_epoch == epoch)
            .map(|((_, offset), (_, frame, expires_at))| Kept {
                offset: *offset,
                publication: frame.clone(),
                expired: *expires_at <= now,
            })
            .collect();
        if !oldest_first {
            items.reverse();
        }
        items.truncate(limit);
        Ok(items)
    }
}

impl FakeSubscriptions {
    /// When the latest publication was: `published_seconds_ago` before `now`.
    fn published_at(&self, now: i64) -> i64 {
        now - *self.published_seconds_ago.lock().unwrap()
    }

    fn history_check(&self) -> Result<(), HistoryError> {
        if self.failing {
            return Err(HistoryError {
                operation: "Query",
                message: "InternalServerError".into(),
            });
        }
        Ok(())
    }
}

impl FakeSubscriptions {
    /// Live connection items with these counters.
    pub fn with_connections(connections: &[(&str, &str, u32)]) -> Self {
        FakeSubscriptions {
            connections: Mutex::new(
                connections
                    .iter()
                    .map(|(user, connection, count)| {
                        ((user.to_string(), connection.to_string()), *count)
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }
    pub fn counter(&self, user_id: &str, connection_id: &str) -> Option<u32> {
        self.connections
            .lock()
            .unwrap()
            .get(&(user_id.to_owned(), connection_id.to_owned()))
            .copied()
    }
    pub fn channels_of(&self, connection_id: &str) -> Vec<String> {
        self.items
            .lock()
            .unwrap()
            .keys()
            .filter(|(_, connection)| connection == connection_id)
            .map(|(channel, _)| channel.clone())
            .collect()
    }
    pub fn insert_item(&self, channel: &str, connection_id: &str, user_id: &str, counted: bool) {
        self.items.lock().unwrap().insert(
            (channel.to_owned(), connection_id.to_owned()),
            FakeItem {
                user_id: user_id.to_owned(),
                counted,
                expires_at: 0,
            },
        );
    }
    fn check(&self, connection_id: &str) -> Result<(), SubscriptionError> {
        if self.failing {
            return Err(SubscriptionError {
                connection_id: connection_id.to_owned(),
                message: "InternalServerError".into(),
            });
        }
        Ok(())
    }
}

impl SubscriptionStore for FakeSubscriptions {
    async fn subscribe(
        &self,
        subscription: &Subscription,
        cap: u32,
    ) -> Result<SubscribeOutcome, SubscriptionError> {
        self.check(&subscription.connection_id)?;
        let key = (
            subscription.channel.clone(),
            subscription.connection_id.clone(),
        );
        let mut items = self.items.lock().unwrap();
        if items.contains_key(&key) {
            return Ok(SubscribeOutcome::AlreadySubscribed);
        }
        let mut connections = self.connections.lock().unwrap();
        let Some(count) = connections.get_mut(&(
            subscription.user_id.clone(),
            subscription.connection_id.clone(),
        )) else {
            return Ok(SubscribeOutcome::ConnectionGone);
        };
        if *count >= cap {
            return Ok(SubscribeOutcome::TooMany);
        }
        *count += 1;
        items.insert(
            key,
            FakeItem {
                user_id: subscription.user_id.clone(),
                counted: true,
                expires_at: subscription.expires_at,
            },
        );
        Ok(SubscribeOutcome::Subscribed)
    }

    async fn unsubscribe(
        &self,
        user_id: &str,
        connection_id: &str,
        channel: &str,
    ) -> Result<(), SubscriptionError> {
        self.check(connection_id)?;
        let removed = self
            .items
            .lock()
            .unwrap()
            .remove(&(channel.to_owned(), connection_id.to_owned()));
        if removed.is_some_and(|item| item.counted) {
            if let Some(count) = self
                .connections
                .lock()
                .unwrap()
                .get_mut(&(user_id.to_owned(), connection_id.to_owned()))
            {
                *count = count.saturating_sub(1);
            }
        }
        Ok(())
    }

    async fn remove_connection(&self, connection_id: &str) -> Result<usize, SubscriptionError> {
        self.check(connection_id)?;
        self.removed.lock().unwrap().push(connection_id.to_owned());
        if self.failing_cleanup.contains(connection_id) {
            return Err(SubscriptionError {
                connection_id: connection_id.to_owned(),
                message: "ProvisionedThroughputExceededException".into(),
            });
        }
        let mut items = self.items.lock().unwrap();
        let before = items.len();
        items.retain(|(_, connection), _| connection != connection_id);
        Ok(before - items.len())
    }
}

pub type TestDeps = Deps<FakeCounter, FakeSink, FakeSubscriptions>;

pub fn deps(counter: FakeCounter, sink: FakeSink) -> TestDeps {
    deps_with(counter, sink, Some(FakeSubscriptions::default()))
}

pub fn deps_with(
    counter: FakeCounter,
    sink: FakeSink,
    subscriptions: Option<FakeSubscriptions>,
) -> TestDeps {
    Deps {
        counter,
        sink,
        subscriptions,
        max_subscriptions_per_connection: 3,
        query_concurrency: 4,
        namespaces: Namespaces::default(),
    }
}

/// Runs the handler on an invocation payload given as JSON, the way the runtime does.
pub async fn invoke(json: &str, deps: &TestDeps) -> Result<Reply, PresenceError> {
    let invocation: Invocation =
        serde_json::from_str(json).expect("the payload is JSON the runtime accepts");
    presence::handle(LambdaEvent::new(invocation, Context::default()), deps).await
}

pub async fn invoke_stream(json: &str, deps: &TestDeps) -> DynamoDbEventResponse {
    match invoke(json, deps).await {
        Ok(Reply::Stream(response)) => response,
        other => panic!("expected a stream response, got {other:?}"),
    }
}

pub async fn invoke_route(json: &str, deps: &TestDeps) -> ApiGatewayProxyResponse {
    match invoke(json, deps).await {
        Ok(Reply::Route(response)) => *response,
        other => panic!("expected a proxy response, got {other:?}"),
    }
}

/// The sequence numbers reported as failed.
pub fn failures(response: &DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone().unwrap_or_default())
        .collect()
}

/// The sequence number of the record at `index` of a fixture.
pub fn sequence_number(fixture: &str, index: usize) -> String {
    let value: serde_json::Value = serde_json::from_str(fixture).unwrap();
    value["Records"][index]["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}
