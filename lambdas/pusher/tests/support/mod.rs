//! In-memory fakes of the pusher's seams, and events built from real fixtures.
#![allow(dead_code)]

// The fake management API belongs to the client's tests; the pusher's suites share it.
#[path = "../../../management-client/tests/support/management_api.rs"]
pub mod management_api;
pub mod metrics;
pub mod table;

pub use metrics::RecordedMetrics;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use management_client::ManagementClient;
use pusher::{
    ConnectionItem, ConnectionKey, ConnectionStore, DeleteOutcome, DynamoStore, HistoryStore,
    Limits, Offset, Outbox, OutboxError, PostOutcome, Poster, Pusher, ScanPage, SqsOutbox,
    StoreError, SubscriptionItem, SubscriptionKey, SubscriptionStore,
};
use serde_json::{json, Value};
use sumu_wire::{Channel, Namespaces};

pub const SQS_FIXTURE: &str = include_str!("../fixtures/sqs_event.json");
pub const SNS_FIXTURE: &str = include_str!("../fixtures/sns_event.json");

/// Far in the future: items that are live for the whole test.
pub const LIVE: Option<i64> = Some(4_000_000_000);
/// Long past.
pub const EXPIRED: Option<i64> = Some(1_000);

pub fn item(user: &str, connection: &str, expires_at: Option<i64>) -> ConnectionItem {
    ConnectionItem {
        key: ConnectionKey {
            user_id: user.into(),
            connection_id: connection.into(),
        },
        expires_at,
    }
}

#[derive(Default)]
pub struct FakeStore {
    pub items: Mutex<Vec<ConnectionItem>>,
    pub queried_users: Mutex<Vec<String>>,
    pub scanned_segments: Mutex<Vec<(u32, u32)>>,
    pub deleted: Mutex<Vec<ConnectionKey>>,
    pub largest_delete_batch: AtomicUsize,
    /// The next this-many delete batches leave their last key unprocessed.
    pub unprocessed_batches: AtomicUsize,
    /// Queries for these users fail.
    pub failing_users: Mutex<HashSet<String>>,
    /// What `approximate_count` answers (DescribeTable's `ItemCount`); `None`: unknown.
    pub approximate_count: Mutex<Option<u64>>,
    /// The most items one `scan_page` returned.
    pub largest_page: AtomicUsize,
    /// The subscriptions table.
    pub subscriptions: Mutex<Vec<SubscriptionItem>>,
    /// Every partition queried, in order.
    pub queried_patterns: Mutex<Vec<String>>,
    pub deleted_subscriptions: Mutex<Vec<SubscriptionKey>>,
    /// Queries of these partitions fail.
    pub failing_patterns: Mutex<HashSet<String>>,
    /// The history table: each channel's (top, epoch) and its kept publications
    /// `(channel, offset, epoch, frame, expires_at)`, in the order stored.
    pub history_state: Mutex<HashMap<String, (u64, String)>>,
    pub kept: Mutex<Vec<Kept>>,
    /// History writes fail.
    pub failing_history: AtomicBool,
    /// The subscription items that are `counted` (a client's own).
    pub counted: Mutex<HashSet<SubscriptionKey>>,
    /// Each connection's `subscriptions` counter.
    pub counters: Mutex<HashMap<String, i64>>,
    /// Subscription writes fail.
    pub failing_subscription_writes: AtomicBool,
}

/// A kept publication: `(channel, offset, epoch, frame, expires_at)`.
pub type Kept = (String, u64, String, String, i64);

impl HistoryStore for FakeStore {
    async fn next_offset(&self, channel: &Channel, _now: i64) -> Result<Offset, StoreError> {
        if self.failing_history.load(Ordering::SeqCst) {
            return Err(StoreError {
                operation: "history table",
                message: "throttled".into(),
            });
        }
        let mut state = self.history_state.lock().unwrap();
        let entry = state
            .entry(channel.to_string())
            .or_insert_with(|| (0, "e1".to_string()));
        entry.0 += 1;
        Ok(Offset {
            offset: entry.0,
            epoch: entry.1.clone(),
        })
    }

    async fn keep(
        &self,
        channel: &Channel,
        offset: &Offset,
        publication: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.kept.lock().unwrap().push((
            channel.to_string(),
            offset.offset,
            offset.epoch.clone(),
            publication.to_string(),
            expires_at,
        ));
        Ok(())
    }
}

impl FakeStore {
    pub fn with(items: Vec<ConnectionItem>) -> Self {
        FakeStore {
            items: Mutex::new(items),
            ..FakeStore::default()
        }
    }
}

impl ConnectionStore for FakeStore {
    async fn query_user(&self, user_id: &str) -> Result<Vec<ConnectionItem>, StoreError> {
        self.queried_users.lock().unwrap().push(user_id.to_string());
        if self.failing_users.lock().unwrap().contains(user_id) {
            return Err(StoreError {
                operation: "Query",
                message: "ProvisionedThroughputExceededException".into(),
            });
        }
        tokio::task::yield_now().await;
        Ok(self
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.key.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn find_connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.key.connection_id == connection_id)
            .cloned())
    }

    async fn scan_segment(
        &self,
        segment: u32,
        total: u32,
    ) -> Result<Vec<ConnectionItem>, StoreError> {
        self.scanned_segments.lock().unwrap().push((segment, total));
        let items = self.items.lock().unwrap();
        Ok(items
            .iter()
            .enumerate()
            .filter(|(n, _)| *n as u32 % total == segment)
            .map(|(_, i)| i.clone())
            .collect())
    }

    /// Segment membership as in `scan_segment`, in table order; `after` is the last key read.
    async fn scan_page(
        &self,
        segment: u32,
        total: u32,
        after: Option<ConnectionKey>,
        limit: u32,
    ) -> Result<ScanPage, StoreError> {
        self.scanned_segments.lock().unwrap().push((segment, total));
        let items = self.items.lock().unwrap();
        let in_segment: Vec<&ConnectionItem> = items
            .iter()
            .enumerate()
            .filter(|(n, _)| *n as u32 % total == segment)
            .map(|(_, i)| i)
            .collect();
        let start = match &after {
            Some(key) => in_segment
                .iter()
                .position(|i| &i.key == key)
                .map_or(in_segment.len(), |p| p + 1),
            None => 0,
        };
        let page: Vec<ConnectionItem> = in_segment[start..]
            .iter()
            .take(limit as usize)
            .map(|i| (*i).clone())
            .collect();
        let next = (start + page.len() < in_segment.len())
            .then(|| page.last().map(|i| i.key.clone()))
            .flatten();
        self.largest_page.fetch_max(page.len(), Ordering::SeqCst);
        Ok(ScanPage { items: page, next })
    }

    async fn approximate_count(&self) -> Result<Option<u64>, StoreError> {
        Ok(*self.approximate_count.lock().unwrap())
    }

    async fn delete_batch(&self, keys: &[ConnectionKey]) -> Result<Vec<ConnectionKey>, StoreError> {
        self.largest_delete_batch
            .fetch_max(keys.len(), Ordering::SeqCst);
        let leave_one = self
            .unprocessed_batches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let (done, unprocessed) = match keys.split_last() {
            Some((last, rest)) if leave_one => (rest.to_vec(), vec![last.clone()]),
            _ => (keys.to_vec(), vec![]),
        };
        self.items
            .lock()
            .unwrap()
            .retain(|i| !done.contains(&i.key));
        self.deleted.lock().unwrap().extend(done);
        Ok(unprocessed)
    }
}

pub fn subscription(
    pattern: &str,
    connection: &str,
    user: &str,
    expires_at: Option<i64>,
) -> SubscriptionItem {
    SubscriptionItem {
        key: SubscriptionKey {
            channel: pattern.into(),
            connection_id: connection.into(),
        },
        user_id: user.into(),
        expires_at,
        subscribed_at: Some(0),
    }
}

impl SubscriptionStore for FakeStore {
    async fn query_subscriptions(
        &self,
        pattern: &str,
    ) -> Result<Vec<SubscriptionItem>, StoreError> {
        self.queried_patterns
            .lock()
            .unwrap()
            .push(pattern.to_string());
        if self.failing_patterns.lock().unwrap().contains(pattern) {
            return Err(StoreError {
                operation: "Query (subscriptions table)",
                message: "ProvisionedThroughputExceededException".into(),
            });
        }
        tokio::task::yield_now().await;
        Ok(self
            .subscriptions
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.key.channel == pattern)
            .cloned()
            .collect())
    }

    async fn delete_subscriptions(
        &self,
        keys: &[SubscriptionKey],
    ) -> Result<Vec<SubscriptionKey>, StoreError> {
        self.largest_delete_batch
            .fetch_max(keys.len(), Ordering::SeqCst);
        let leave_one = self
            .unprocessed_batches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let (done, unprocessed) = match keys.split_last() {
            Some((last, rest)) if leave_one => (rest.to_vec(), vec![last.clone()]),
            _ => (keys.to_vec(), vec![]),
        };
        self.subscriptions
            .lock()
            .unwrap()
            .retain(|s| !done.contains(&s.key));
        self.deleted_subscriptions.lock().unwrap().extend(done);
        Ok(unprocessed)
    }

    async fn put_subscription(&self, item: &SubscriptionItem) -> Result<bool, StoreError> {
        self.fail_subscription_write()?;
        let mut subscriptions = self.subscriptions.lock().unwrap();
        if subscriptions.iter().any(|s| s.key == item.key) {
            return Ok(false);
        }
        subscriptions.push(item.clone());
        Ok(true)
    }

    async fn remove_subscription(&self, key: &SubscriptionKey) -> Result<Option<bool>, StoreError> {
        self.fail_subscription_write()?;
        let mut subscriptions = self.subscriptions.lock().unwrap();
        let before = subscriptions.len();
        subscriptions.retain(|s| &s.key != key);
        if subscriptions.len() == before {
            return Ok(None);
        }
        Ok(Some(self.counted.lock().unwrap().remove(key)))
    }

    async fn uncount_subscription(&self, connection: &ConnectionKey) -> Result<bool, StoreError> {
        let mut counters = self.counters.lock().unwrap();
        match counters.get_mut(&connection.connection_id) {
            Some(count) if *count > 0 => {
                *count -= 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl FakeStore {
    fn fail_subscription_write(&self) -> Result<(), StoreError> {
        if self.failing_subscription_writes.load(Ordering::SeqCst) {
            return Err(StoreError {
                operation: "PutItem (subscriptions table)",
                message: "ProvisionedThroughputExceededException".into(),
            });
        }
        Ok(())
    }
}

/// Records every post; answers from a per-connection script, then `Delivered`.
#[derive(Default)]
pub struct FakePoster {
    pub scripts: Mutex<HashMap<String, VecDeque<PostOutcome>>>,
    /// Connections that answer this forever.
    pub always: Mutex<HashMap<String, PostOutcome>>,
    pub posts: Mutex<Vec<(String, Vec<u8>)>>,
    /// Connections that got a `Delivered` answer, once per such answer.
    pub delivered: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Each post takes this long (for concurrency and deadline tests).
    pub latency: Mutex<Duration>,
    /// Answers to closes per connection, then `Closed`.
    pub close_scripts: Mutex<HashMap<String, VecDeque<DeleteOutcome>>>,
    /// Every close attempt's connection.
    pub closes: Mutex<Vec<String>>,
    /// What each connection saw, in order: `"message <bytes>"` per delivered post, `"closed"`
    /// per accepted close.
    pub log: Mutex<Vec<(String, String)>>,
}

impl FakePoster {
    pub fn script(&self, connection: &str, outcomes: Vec<PostOutcome>) {
        self.scripts
            .lock()
            .unwrap()
            .insert(connection.into(), outcomes.into());
    }
    pub fn always(&self, connection: &str, outcome: PostOutcome) {
        self.always
            .lock()
            .unwrap()
            .insert(connection.into(), outcome);
    }
    /// How many posts each connection got.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (connection, _) in self.posts.lock().unwrap().iter() {
            *counts.entry(connection.clone()).or_insert(0) += 1;
        }
        counts
    }
    pub fn script_close(&self, connection: &str, outcomes: Vec<DeleteOutcome>) {
        self.close_scripts
            .lock()
            .unwrap()
            .insert(connection.into(), outcomes.into());
    }
    /// What `connection` saw, in order (see `log`).
    pub fn seen_by(&self, connection: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == connection)
            .map(|(_, what)| what.clone())
            .collect()
    }
    /// Every `Delivered` answer's connection, sorted (a duplicate delivery shows twice).
    pub fn received(&self) -> Vec<String> {
        let mut received: Vec<String> = self.delivered.lock().unwrap().clone();
        received.sort();
        received
    }
}

impl Poster for FakePoster {
    async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let latency = *self.latency.lock().unwrap();
        if latency.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(latency).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.posts
            .lock()
            .unwrap()
            .push((connection_id.to_string(), data.to_vec()));
        let scripted = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(connection_id)
            .and_then(VecDeque::pop_front);
        let outcome = scripted
            .or_else(|| self.always.lock().unwrap().get(connection_id).cloned())
            .unwrap_or(PostOutcome::Delivered);
        if outcome == PostOutcome::Delivered {
            self.delivered
                .lock()
                .unwrap()
                .push(connection_id.to_string());
            self.log.lock().unwrap().push((
                connection_id.to_string(),
                format!("message {}", String::from_utf8_lossy(data)),
            ));
        }
        outcome
    }

    async fn close(&self, connection_id: &str) -> DeleteOutcome {
        tokio::task::yield_now().await;
        self.closes.lock().unwrap().push(connection_id.to_string());
        let outcome = self
            .close_scripts
            .lock()
            .unwrap()
            .get_mut(connection_id)
            .and_then(VecDeque::pop_front)
            .unwrap_or(DeleteOutcome::Closed);
        if outcome == DeleteOutcome::Closed {
            self.log
                .lock()
                .unwrap()
                .push((connection_id.to_string(), "closed".into()));
        }
        outcome
    }
}

#[derive(Default)]
pub struct FakeOutbox {
    pub requeued: Mutex<Vec<(String, u32, Duration)>>,
    /// Whether each re-queued body (in the same order) carries `sumu_frame`.
    pub requeued_verbatim: Mutex<Vec<bool>>,
    pub dead_letters: Mutex<Vec<(String, &'static str)>>,
    pub fail_requeue: AtomicBool,
    pub fail_dead_letter: AtomicBool,
    /// Shards sent: `(body, sumu_shard attribute, generation)`.
    pub shards: Mutex<Vec<(String, String, u32)>>,
    /// Whether there is a queue for shards (`can_enqueue_shards`).
    pub takes_shards: AtomicBool,
    /// Shard sends fail once this many succeeded (`None`: never).
    pub shards_fail_after: Mutex<Option<usize>>,
}

impl Outbox for FakeOutbox {
    async fn requeue(
        &self,
        body: String,
        generation: u32,
        delay: Duration,
        verbatim: bool,
    ) -> Result<(), OutboxError> {
        if self.fail_requeue.load(Ordering::SeqCst) {
            return Err(OutboxError::Send {
                queue: "NOTIFICATIONS_QUEUE_URL",
                message: "throttled".into(),
            });
        }
        self.requeued
            .lock()
            .unwrap()
            .push((body, generation, delay));
        self.requeued_verbatim.lock().unwrap().push(verbatim);
        Ok(())
    }

    fn can_enqueue_shards(&self) -> bool {
        self.takes_shards.load(Ordering::SeqCst)
    }

    async fn enqueue_shard(
        &self,
        body: String,
        shard: String,
        generation: u32,
    ) -> Result<(), OutboxError> {
        let mut shards = self.shards.lock().unwrap();
        if !self.takes_shards.load(Ordering::SeqCst)
            || self
                .shards_fail_after
                .lock()
                .unwrap()
                .is_some_and(|n| shards.len() >= n)
        {
            return Err(OutboxError::Send {
                queue: "NOTIFICATIONS_QUEUE_URL",
                message: "throttled".into(),
            });
        }
        shards.push((body, shard, generation));
        Ok(())
    }

    async fn dead_letter(&self, body: String, reason: &'static str) -> Result<(), OutboxError> {
        if self.fail_dead_letter.load(Ordering::SeqCst) {
            return Err(OutboxError::Send {
                queue: "DEAD_LETTER_QUEUE_URL",
                message: "access denied".into(),
            });
        }
        self.dead_letters.lock().unwrap().push((body, reason));
        Ok(())
    }
}

pub type FakePusher = Pusher<FakeStore, FakePoster, FakeOutbox, RecordedMetrics>;

/// The pusher as the Lambda builds it (`SdkPusher::from_sdk_config`), its metrics recorded
/// rather than printed.
pub type RecordingSdkPusher = Pusher<DynamoStore, ManagementClient, SqsOutbox, RecordedMetrics>;

/// Small backoffs so retry tests run fast; no safety margin needed without a deadline.
pub fn test_limits() -> Limits {
    Limits {
        lookup_concurrency: 4,
        post_concurrency: 8,
        scan_segments: 4,
        max_post_attempts: 4,
        max_generations: 2,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(4),
        safety_margin: Duration::from_millis(0),
        post_timeout: Duration::from_millis(0),
        requeue_delay: Duration::from_secs(5),
        shard_threshold: 0,
    }
}

pub fn pusher(items: Vec<ConnectionItem>) -> FakePusher {
    Pusher {
        store: FakeStore::with(items),
        poster: FakePoster::default(),
        outbox: FakeOutbox::default(),
        metrics: RecordedMetrics::default(),
        limits: test_limits(),
        namespaces: Namespaces::default(),
    }
}

/// A pusher over `connections` and the subscriptions `subscriptions`.
pub fn channel_pusher(
    connections: Vec<ConnectionItem>,
    subscriptions: Vec<SubscriptionItem>,
) -> FakePusher {
    let pusher = pusher(connections);
    *pusher.store.subscriptions.lock().unwrap() = subscriptions;
    pusher
}

/// An SQS record carrying a client's emit as the gateway's template sends it: the body and
/// the message attributes `user_id`, `connection_id`, `timestamp`, `source` and (when given)
/// `channels_publish`.
pub fn emit_event(
    message_id: &str,
    body: &str,
    user_id: &str,
    connection_id: &str,
    channels_publish: Option<&str>,
) -> LambdaEvent<SqsEvent> {
    let fixture: Value = serde_json::from_str(SQS_FIXTURE).unwrap();
    let mut record = fixture["Records"][0].clone();
    record["messageId"] = json!(message_id);
    record["body"] = json!(body);
    let attribute = |data_type: &str, value: &str| {
        json!({"stringValue": value, "stringListValues": [], "binaryListValues": [],
            "dataType": data_type})
    };
    let mut attributes = json!({
        "user_id": attribute("String", user_id),
        "connection_id": attribute("String", connection_id),
        "timestamp": attribute("Number", "1700000000000"),
        "source": attribute("String", "apigw.route.emit"),
    });
    if let Some(grants) = channels_publish {
        attributes["channels_publish"] = attribute("String", grants);
    }
    record["messageAttributes"] = attributes;
    LambdaEvent::new(
        serde_json::from_value(json!({ "Records": [record] })).unwrap(),
        Context::default(),
    )
}

/// An SQS event from the real fixture with one record per `(message id, body, generation)`.
/// A record with a generation is a narrowed re-queue, as the pusher's outbox sends it: its
/// `sumu_generation` attribute and `sumu_frame` = `verbatim` (its data is the frame).
pub fn sqs_event(messages: &[(&str, &str, Option<u32>)]) -> LambdaEvent<SqsEvent> {
    let fixture: Value = serde_json::from_str(SQS_FIXTURE).unwrap();
    let template = fixture["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body, generation)| {
            let mut record = template.clone();
            record["messageId"] = json!(id);
            record["body"] = json!(body);
            if let Some(generation) = generation {
                record["messageAttributes"] = json!({
                    "sumu_generation": {"stringValue": generation.to_string(), "stringListValues": [],
                        "binaryListValues": [], "dataType": "Number"},
                    "sumu_frame": {"stringValue": "verbatim", "stringListValues": [],
                        "binaryListValues": [], "dataType": "String"}
                });
            }
            record
        })
        .collect();
    LambdaEvent::new(
        serde_json::from_value(json!({ "Records": records })).unwrap(),
        Context::default(),
    )
}

/// An SNS event from the real fixture carrying `message`.
pub fn sns_event(message: &str) -> LambdaEvent<SnsEvent> {
    let mut fixture: Value = serde_json::from_str(SNS_FIXTURE).unwrap();
    fixture["Records"][0]["Sns"]["Message"] = json!(message);
    LambdaEvent::new(serde_json::from_value(fixture).unwrap(), Context::default())
}

/// The ids a narrowed body targets.
pub fn narrowed_connections(body: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(body).unwrap();
    assert!(
        value.get("users").is_none(),
        "a narrowed request names no users: {body}"
    );
    let mut ids: Vec<String> = serde_json::from_value(value["connections"].clone()).unwrap();
    ids.sort();
    ids
}

/// The Lambda event of one SQS message received from a real queue, its message attributes as
/// Lambda passes them.
pub fn lambda_event(message: &aws_sdk_sqs::types::Message) -> LambdaEvent<SqsEvent> {
    let attributes: serde_json::Map<String, Value> = message
        .message_attributes()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            (
                name,
                json!({"stringValue": value.string_value(), "stringListValues": [],
                    "binaryListValues": [], "dataType": value.data_type()}),
            )
        })
        .collect();
    let event = json!({"Records": [{
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": {},
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:notifications",
        "awsRegion": "us-east-1",
    }]});
    LambdaEvent::new(serde_json::from_value(event).unwrap(), Context::default())
}

/// A notifications queue and its dead-letter queue on moto, named for this test only:
/// `[notifications, dead letters]`.
pub async fn notification_queues(sqs: &aws_sdk_sqs::Client) -> [String; 2] {
    let mut urls = Vec::new();
    for name in ["notifications", "notifications-dlq"] {
        let url = sqs
            .create_queue()
            .queue_name(testkit::unique_name(name))
            .send()
            .await
            .expect("create a queue")
            .queue_url
            .expect("the queue's URL");
        urls.push(url);
    }
    [urls[0].clone(), urls[1].clone()]
}
