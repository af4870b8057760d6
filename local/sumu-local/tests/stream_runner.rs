//! The stream runner against moto's DynamoDB stream, with a handler that records what it is
//! handed and fails one record on purpose: starting position LATEST, Lambda's event shape,
//! retry from the reported record, skip after `max_retry_attempts`, prompt stop; and keeping its
//! place: moto's cancelled transactions (real moto), and shard rollover, expired iterators,
//! replaced and vanished shards on a scripted DynamoDB Streams endpoint (moto has one shard that
//! never closes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::FutureExt;
use sumu_local::event_filter::{EventFilter, PRESENCE_STREAM_FILTER_FILE};
use sumu_local::provision;
use sumu_local::runners::RunnerContext;
use sumu_local::stream_runner::{BatchHandler, StreamPoller};
use sumu_local::{ResourceNames, StreamSettings};
use sumu_wire::table;

/// One record as handed over: (user, sequence number, event name, eventSourceARN).
type Handed = (String, String, String, Option<String>);

const POISON: &str = "poison";

fn recording_handler(batches: Arc<Mutex<Vec<Vec<Handed>>>>) -> BatchHandler {
    Arc::new(move |event: aws_lambda_events::dynamodb::Event| {
        let batches = Arc::clone(&batches);
        async move {
            let mut handed = Vec::new();
            let mut response = DynamoDbEventResponse::default();
            for record in &event.records {
                let user = match record.change.keys.get(table::USER_ID) {
                    Some(serde_dynamo::AttributeValue::S(user)) => user.clone(),
                    other => panic!("user_id key missing: {other:?}"),
                };
                let sequence = record.change.sequence_number.clone().unwrap_or_default();
                if user.ends_with(POISON) && response.batch_item_failures.is_empty() {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(sequence.clone());
                    response.batch_item_failures.push(failure);
                }
                handed.push((
                    user,
                    sequence,
                    record.event_name.clone(),
                    record.event_source_arn.clone(),
                ));
            }
            batches.lock().expect("lock").push(handed);
            Ok(response)
        }
        .boxed()
    })
}

async fn put(dynamodb: &aws_sdk_dynamodb::Client, table_name: &str, user: &str) {
    dynamodb
        .put_item()
        .table_name(table_name)
        .item(table::USER_ID, AttributeValue::S(user.to_string()))
        .item(table::CONNECTION_ID, AttributeValue::S("c1=".into()))
        .item(table::EXPIRES_AT, AttributeValue::N("4102444800".into()))
        .send()
        .await
        .expect("put an item");
}

/// The filter the module deploys on the presence stream's event source mapping.
fn presence_filter() -> EventFilter {
    EventFilter::load(
        &testkit::repo_root()
            .join("mapping-templates")
            .join(PRESENCE_STREAM_FILTER_FILE),
    )
    .expect("the presence stream filter loads")
}

/// A stream runner with the deployed filter, started on the table's stream at LATEST; the
/// sender stops it.
async fn start_runner(
    aws: &aws_config::SdkConfig,
    resources: sumu_local::Resources,
    settings: StreamSettings,
    handler: BatchHandler,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let poller = StreamPoller::at_latest(
        aws_sdk_dynamodbstreams::Client::new(aws),
        resources
            .connections_stream_arn
            .clone()
            .expect("the table has a stream"),
        settings,
        presence_filter(),
    )
    .await
    .expect("positioned at LATEST");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let context = RunnerContext {
        aws: aws.clone(),
        resources,
        management_url: "http://127.0.0.1:9/dev".into(),
        shutdown,
        pusher: Default::default(),
        namespaces: Default::default(),
    };
    (stop, tokio::spawn(poller.run(context, handler)))
}

fn handed_users(batches: &Mutex<Vec<Vec<Handed>>>) -> Vec<Vec<String>> {
    batches
        .lock()
        .expect("lock")
        .iter()
        .map(|batch| batch.iter().map(|handed| handed.0.clone()).collect())
        .collect()
}

#[tokio::test]
async fn records_after_start_are_handed_over_retried_from_the_failure_then_skipped() {
    let endpoint = testkit::moto_endpoint();
    let aws = testkit::aws_config_for(&endpoint).await;
    let names = ResourceNames::with_prefix(&testkit::unique_name("runner"));
    let resources = provision::provision(&aws, &names).await.expect("provision");
    let stream_arn = resources
        .connections_stream_arn
        .clone()
        .expect("the table has a stream");
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table_name = resources.connections_table.clone();
    let prefix = testkit::unique_name("u");
    let before = format!("{prefix}-before");
    let good = format!("{prefix}-good");
    let poison = format!("{prefix}-{POISON}");
    let after = format!("{prefix}-after");

    // Written before the mapping exists: LATEST never hands it over.
    put(&dynamodb, &table_name, &before).await;
    let settings = StreamSettings {
        poll_interval: Duration::from_millis(50),
        batch_size: 10,
        max_retry_attempts: 2,
        describe_interval: Duration::from_secs(10),
    };
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_runner(
        &aws,
        resources,
        settings,
        recording_handler(Arc::clone(&batches)),
    )
    .await;

    put(&dynamodb, &table_name, &good).await;
    put(&dynamodb, &table_name, &poison).await;
    put(&dynamodb, &table_name, &after).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !handed_users(&batches)
        .iter()
        .any(|batch| batch.contains(&after) && !batch.contains(&poison))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record after the poison one was never handed over alone: {:?}",
            handed_users(&batches)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the runner stops on shutdown")
        .expect("the runner does not panic");

    let all: Vec<Handed> = batches.lock().expect("lock").concat();
    let times = |user: &str| all.iter().filter(|handed| handed.0 == user).count();
    assert_eq!(times(&before), 0, "written before start: {all:?}");
    assert_eq!(
        times(&good),
        1,
        "handled before the failure, never again: {all:?}"
    );
    assert_eq!(
        times(&poison),
        1 + 2,
        "the first attempt and max_retry_attempts retries: {all:?}"
    );
    for handed in &all {
        assert_eq!(handed.2, "INSERT");
        assert_eq!(handed.3.as_deref(), Some(stream_arn.as_str()));
    }
    // Every retry starts at the poison record itself.
    for batch in handed_users(&batches) {
        if batch.contains(&poison) && !batch.contains(&good) {
            assert_eq!(batch.first(), Some(&poison), "{batch:?}");
        }
    }
}

/// The real presence handler behind the runner, counting its invocations so the test knows a
/// delivery has failed before it repairs the destination.
#[tokio::test]
async fn a_failed_presence_delivery_is_retried_from_its_record_until_it_succeeds() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use sumu_local::presence_local::{batch_handler, lambda_config};
    use sumu_local::PresenceDestination;

    let endpoint = testkit::moto_endpoint();
    let aws = testkit::aws_config_for(&endpoint).await;
    let names = ResourceNames::with_prefix(&testkit::unique_name("retry"));
    let resources = provision::provision(&aws, &names).await.expect("provision");
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue_url = resources.messages_queue_url.clone();
    sqs.delete_queue()
        .queue_url(&queue_url)
        .send()
        .await
        .expect("delete the messages queue");

    let deps = Arc::new(presence::SdkDeps::from_sdk_config(
        &aws,
        lambda_config(
            &resources,
            &sumu_local::PresenceSetup {
                destination: PresenceDestination::Queue,
                ..Default::default()
            },
            &Default::default(),
        ),
    ));
    let invocations = Arc::new(AtomicUsize::new(0));
    let inner = batch_handler(deps);
    let counted = Arc::clone(&invocations);
    let handler: BatchHandler = Arc::new(move |event| {
        counted.fetch_add(1, Ordering::SeqCst);
        inner(event)
    });
    let settings = StreamSettings {
        poll_interval: Duration::from_millis(50),
        max_retry_attempts: 1_000_000,
        ..StreamSettings::default()
    };
    let table_name = resources.connections_table.clone();
    let (stop, running) = start_runner(&aws, resources, settings, handler).await;

    let user = testkit::unique_name("patient");
    put(&aws_sdk_dynamodb::Client::new(&aws), &table_name, &user).await;
    // Two invocations with the queue missing: the first failed and the record was retried.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while invocations.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retry seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The queue comes back under the same name (and URL): the next retry delivers.
    let name = queue_url.rsplit('/').next().expect("queue name");
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("re-create the messages queue");
    let message = loop {
        assert!(tokio::time::Instant::now() < deadline, "no ONLINE arrived");
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(message) = received.messages.and_then(|m| m.into_iter().next()) {
            break message;
        }
    };
    let body: serde_json::Value =
        serde_json::from_str(message.body().unwrap_or_default()).expect("JSON");
    assert_eq!(body["message"]["user_id"], user.as_str());
    assert_eq!(body["message"]["status"], "ONLINE");
    assert_eq!(body["message"]["connections"], 1);
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the runner stops on shutdown")
        .expect("the runner does not panic");
}

/// A `ping` is a MODIFY of `last_seen_at`: the deployed filter keeps presence from being invoked
/// for it. Only the INSERT and the REMOVE reach the handler, and the MODIFYs count as handled.
#[tokio::test]
async fn the_presence_filter_hands_over_inserts_and_removals_never_modifications() {
    let endpoint = testkit::moto_endpoint();
    let aws = testkit::aws_config_for(&endpoint).await;
    let names = ResourceNames::with_prefix(&testkit::unique_name("filter"));
    let resources = provision::provision(&aws, &names).await.expect("provision");
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table_name = resources.connections_table.clone();
    let settings = StreamSettings {
        poll_interval: Duration::from_millis(50),
        ..StreamSettings::default()
    };
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_runner(
        &aws,
        resources,
        settings,
        recording_handler(Arc::clone(&batches)),
    )
    .await;

    let user = testkit::unique_name("pinger");
    let marker = testkit::unique_name("marker");
    put(&dynamodb, &table_name, &user).await;
    for now in ["1700000001000", "1700000002000", "1700000003000"] {
        dynamodb
            .update_item()
            .table_name(&table_name)
            .key(table::USER_ID, AttributeValue::S(user.clone()))
            .key(table::CONNECTION_ID, AttributeValue::S("c1=".into()))
            .update_expression("SET last_seen_at = :now")
            .expression_attribute_values(":now", AttributeValue::N(now.into()))
            .send()
            .await
            .expect("a ping's update");
    }
    dynamodb
        .delete_item()
        .table_name(&table_name)
        .key(table::USER_ID, AttributeValue::S(user.clone()))
        .key(table::CONNECTION_ID, AttributeValue::S("c1=".into()))
        .send()
        .await
        .expect("delete");
    // Written last: once it is handed over, everything before it was read.
    put(&dynamodb, &table_name, &marker).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !handed_users(&batches).concat().contains(&marker) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the marker never arrived: {:?}",
            handed_users(&batches)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the runner stops on shutdown")
        .expect("the runner does not panic");

    let events: Vec<(String, String)> = batches
        .lock()
        .expect("lock")
        .concat()
        .into_iter()
        .map(|handed| (handed.0, handed.2))
        .collect();
    assert_eq!(
        events,
        vec![
            (user.clone(), "INSERT".to_string()),
            (user, "REMOVE".to_string()),
            (marker, "INSERT".to_string()),
        ]
    );
}

/// The runner's log lines (warnings included), captured for the test's thread.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Captures everything logged on this thread (the tests' runtime is single-threaded, so
    /// the runner's task included) until the guard drops.
    fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    /// The WARN lines.
    fn warnings(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .filter(|line| line.contains(" WARN "))
            .map(str::to_string)
            .collect()
    }
}

/// Waits until everything in `expected` was handed over (one way or another).
async fn until_handed(batches: &Mutex<Vec<Vec<Handed>>>, expected: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let handed = handed_users(batches).concat();
        if expected.iter().all(|user| handed.iter().any(|h| h == user)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiting for {expected:?}; handed over so far: {handed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop_runner(stop: tokio::sync::watch::Sender<bool>, running: tokio::task::JoinHandle<()>) {
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the runner stops on shutdown")
        .expect("the runner does not panic");
}

/// A cancelled transaction on the table makes moto put back a copy of it, stream shard included:
/// a new shard object under the same id. Two kinds: one that wrote nothing before it failed, and
/// one whose Put went through before the condition failed (moto drops that record with the
/// rollback). Every record written afterwards is handed over once, in order, and the runner says
/// what happened.
#[tokio::test]
async fn records_after_a_cancelled_transaction_are_handed_over_once_in_order() {
    let (log, _guard) = Log::capture();
    let endpoint = testkit::moto_endpoint();
    let aws = testkit::aws_config_for(&endpoint).await;
    let names = ResourceNames::with_prefix(&testkit::unique_name("cancel"));
    let resources = provision::provision(&aws, &names).await.expect("provision");
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table_name = resources.connections_table.clone();
    let settings = StreamSettings {
        poll_interval: Duration::from_millis(50),
        ..StreamSettings::default()
    };
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_runner(
        &aws,
        resources,
        settings,
        recording_handler(Arc::clone(&batches)),
    )
    .await;
    let prefix = testkit::unique_name("u");
    let user = |n: u32| format!("{prefix}-{n}");
    let missing_key = |_: ()| {
        aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&table_name)
            .key(
                table::USER_ID,
                AttributeValue::S(format!("{prefix}-absent")),
            )
            .key(table::CONNECTION_ID, AttributeValue::S("c1=".into()))
            .condition_expression("attribute_exists(user_id)")
            .build()
            .expect("a condition check")
    };

    put(&dynamodb, &table_name, &user(1)).await;
    put(&dynamodb, &table_name, &user(2)).await;
    until_handed(&batches, &[&user(1), &user(2)]).await;

    // Cancelled, writing nothing.
    let cancelled = dynamodb
        .transact_write_items()
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .condition_check(missing_key(()))
                .build(),
        )
        .send()
        .await;
    assert!(cancelled.is_err(), "the transaction is cancelled");
    put(&dynamodb, &table_name, &user(3)).await;
    put(&dynamodb, &table_name, &user(4)).await;
    until_handed(&batches, &[&user(3), &user(4)]).await;

    // Cancelled after its Put went through (moto applies it, then restores the copy).
    let rolled_back = format!("{prefix}-rolled-back");
    let cancelled = dynamodb
        .transact_write_items()
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(
                    aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&table_name)
                        .item(table::USER_ID, AttributeValue::S(rolled_back.clone()))
                        .item(table::CONNECTION_ID, AttributeValue::S("c1=".into()))
                        .build()
                        .expect("a put"),
                )
                .build(),
        )
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .condition_check(missing_key(()))
                .build(),
        )
        .send()
        .await;
    assert!(cancelled.is_err(), "the transaction is cancelled");
    for n in 5..=7 {
        put(&dynamodb, &table_name, &user(n)).await;
    }
    until_handed(&batches, &[&user(5), &user(6), &user(7)]).await;
    stop_runner(stop, running).await;

    // The runner was reading the shard object the second transaction wrote its Put to before
    // moto swapped it out, so that record is handed over (moto's, not DynamoDB's, behaviour: a
    // cancelled transaction writes nothing to a real stream). Nothing is lost or repeated.
    let mut expected: Vec<String> = (1..=4).map(user).collect();
    expected.push(rolled_back);
    expected.extend((5..=7).map(user));
    assert_eq!(handed_users(&batches).concat(), expected);
    let warnings = log.warnings();
    let replaced: Vec<&String> = warnings
        .iter()
        .filter(|line| line.contains("the shard was replaced under the same id"))
        .collect();
    let gone: Vec<&String> = warnings
        .iter()
        .filter(|line| line.contains("the shard no longer holds the last records handed over"))
        .collect();
    assert_eq!(replaced.len(), 1, "{warnings:#?}");
    assert_eq!(gone.len(), 1, "{warnings:#?}");
    assert!(gone[0].contains("records_gone=1"), "{gone:?}");
}

/// A DynamoDB Streams endpoint whose shards the test scripts: what moto never does (closed
/// shards, children, expired iterators, vanishing shards), spoken over HTTP in the service's
/// JSON protocol to the real SDK client. Shard objects are kept apart from shard ids so that a
/// shard can be replaced under the same id, as moto does.
mod scripted {
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use serde_json::{json, Value};

    #[derive(Clone)]
    struct Row {
        sequence: u64,
        event_id: String,
        user: String,
    }

    #[derive(Clone)]
    struct Object {
        rows: Vec<Row>,
        closed: bool,
    }

    struct Listed {
        id: String,
        parent: Option<String>,
        object: usize,
        base: u64,
    }

    #[derive(Default)]
    struct State {
        objects: Vec<Object>,
        listed: Vec<Listed>,
        /// Iterators issued before this generation are expired.
        expired_before: u64,
        generation: u64,
        label: String,
        events: u64,
    }

    #[derive(Clone)]
    pub struct Stream(Arc<Mutex<State>>);

    pub const LABEL: &str = "2024-01-01T00:00:00.000";
    pub const ARN: &str =
        "arn:aws:dynamodb:us-east-1:123456789012:table/scripted/stream/2024-01-01T00:00:00.000";

    impl Stream {
        /// Serves the stream on 127.0.0.1 (port 0); returns it and its endpoint URL.
        pub async fn serve() -> (Stream, String) {
            let stream = Stream(Arc::new(Mutex::new(State {
                label: LABEL.into(),
                ..State::default()
            })));
            let served = stream.clone();
            let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
                let stream = served.clone();
                async move { stream.answer(&headers, &body) }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            tokio::spawn(async move { axum::serve(listener, app).await });
            (stream, format!("http://{address}"))
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().expect("lock")
        }

        /// A new open shard; its sequence numbers start at `base`.
        pub fn open(&self, id: &str, parent: Option<&str>, base: u64) {
            let mut state = self.state();
            state.objects.push(Object {
                rows: Vec::new(),
                closed: false,
            });
            let object = state.objects.len() - 1;
            state.listed.push(Listed {
                id: id.into(),
                parent: parent.map(str::to_string),
                object,
                base,
            });
        }

        /// Appends an INSERT of `user`: the next sequence number after the shard's last.
        pub fn write(&self, shard: &str, user: &str) {
            let mut state = self.state();
            state.events += 1;
            let event_id = format!("event-{}", state.events);
            let listed = state
                .listed
                .iter()
                .find(|listed| listed.id == shard)
                .expect("a listed shard");
            let (object, base) = (listed.object, listed.base);
            let rows = &mut state.objects[object].rows;
            let sequence = rows.last().map_or(base, |row| row.sequence + 1);
            rows.push(Row {
                sequence,
                event_id,
                user: user.into(),
            });
        }

        pub fn close(&self, shard: &str) {
            let mut state = self.state();
            let object = self.object_of(&state, shard);
            state.objects[object].closed = true;
        }

        /// Puts a copy of the shard without its last `drop` records in its place, under the
        /// same id (as moto does when a transaction is cancelled): iterators of the old object
        /// read it as it is, and see nothing written from now on.
        pub fn replace(&self, shard: &str, drop: usize) {
            let mut state = self.state();
            let object = self.object_of(&state, shard);
            let mut copy = state.objects[object].clone();
            copy.rows.truncate(copy.rows.len().saturating_sub(drop));
            state.objects.push(copy);
            let new = state.objects.len() - 1;
            state
                .listed
                .iter_mut()
                .filter(|listed| listed.id == shard)
                .for_each(|listed| listed.object = new);
        }

        /// Expires every iterator handed out so far.
        pub fn expire_iterators(&self) {
            let mut state = self.state();
            state.generation += 1;
            state.expired_before = state.generation;
        }

        /// Takes the shard out of DescribeStream (trimmed).
        pub fn unlist(&self, shard: &str) {
            self.state().listed.retain(|listed| listed.id != shard);
        }

        /// The stream's label changes (the table got a new stream).
        pub fn relabel(&self, label: &str) {
            self.state().label = label.into();
        }

        fn object_of(&self, state: &State, shard: &str) -> usize {
            state
                .listed
                .iter()
                .find(|listed| listed.id == shard)
                .expect("a listed shard")
                .object
        }

        fn answer(&self, headers: &HeaderMap, body: &str) -> Response {
            let target = headers
                .get("x-amz-target")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            let request: Value = serde_json::from_str(body).unwrap_or_default();
            let result = match target.rsplit('.').next().unwrap_or_default() {
                "DescribeStream" => Ok(self.describe()),
                "GetShardIterator" => self.shard_iterator(&request),
                "GetRecords" => self.records(&request),
                other => Err(("UnknownOperationException", other.to_string())),
            };
            let (status, body) = match result {
                Ok(body) => (StatusCode::OK, body),
                Err((kind, message)) => (
                    StatusCode::BAD_REQUEST,
                    json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message}),
                ),
            };
            (
                status,
                [("content-type", "application/x-amz-json-1.0")],
                body.to_string(),
            )
                .into_response()
        }

        fn describe(&self) -> Value {
            let state = self.state();
            let shards: Vec<Value> = state
                .listed
                .iter()
                .map(|listed| {
                    let object = &state.objects[listed.object];
                    let mut range = json!({"StartingSequenceNumber": listed.base.to_string()});
                    if object.closed {
                        let end = object.rows.last().map_or(listed.base, |row| row.sequence);
                        range["EndingSequenceNumber"] = json!(end.to_string());
                    }
                    let mut shard = json!({"ShardId": listed.id, "SequenceNumberRange": range});
                    if let Some(parent) = &listed.parent {
                        shard["ParentShardId"] = json!(parent);
                    }
                    shard
                })
                .collect();
            json!({"StreamDescription": {
                "StreamArn": ARN, "StreamLabel": state.label, "StreamStatus": "ENABLED",
                "StreamViewType": "KEYS_ONLY", "TableName": "scripted",
                "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
                "Shards": shards,
            }})
        }

        fn shard_iterator(&self, request: &Value) -> Result<Value, (&'static str, String)> {
            let state = self.state();
            let shard = request["ShardId"].as_str().unwrap_or_default();
            let listed = state
                .listed
                .iter()
                .find(|listed| listed.id == shard)
                .ok_or(("ResourceNotFoundException", format!("no shard {shard}")))?;
            let rows = &state.objects[listed.object].rows;
            let sequence: u64 = request["SequenceNumber"]
                .as_str()
                .and_then(|text| text.parse().ok())
                .unwrap_or(0);
            let position = match request["ShardIteratorType"].as_str().unwrap_or_default() {
                "TRIM_HORIZON" => 0,
                "LATEST" => rows.len(),
                "AT_SEQUENCE_NUMBER" => rows.iter().take_while(|r| r.sequence < sequence).count(),
                "AFTER_SEQUENCE_NUMBER" => {
                    rows.iter().take_while(|r| r.sequence <= sequence).count()
                }
                other => return Err(("ValidationException", format!("type {other}"))),
            };
            Ok(
                json!({"ShardIterator": format!("{}|{}|{}", listed.object, position, state.generation)}),
            )
        }

        fn records(&self, request: &Value) -> Result<Value, (&'static str, String)> {
            let state = self.state();
            let text = request["ShardIterator"].as_str().unwrap_or_default();
            let parts: Vec<usize> = text.split('|').filter_map(|p| p.parse().ok()).collect();
            let [object, position, generation] = parts[..] else {
                return Err(("ValidationException", format!("iterator {text}")));
            };
            if (generation as u64) < state.expired_before {
                return Err(("ExpiredIteratorException", "Iterator expired".into()));
            }
            let limit = request["Limit"].as_u64().unwrap_or(1000) as usize;
            let object_state = &state.objects[object];
            let end = (position + limit).min(object_state.rows.len());
            let records: Vec<Value> = object_state.rows[position.min(end)..end]
                .iter()
                .map(|row| {
                    json!({
                        "eventID": row.event_id, "eventName": "INSERT", "eventVersion": "1.1",
                        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                        "dynamodb": {
                            "ApproximateCreationDateTime": 1700000000,
                            "Keys": {"user_id": {"S": row.user}, "connection_id": {"S": "c1="}},
                            "SequenceNumber": row.sequence.to_string(), "SizeBytes": 20,
                            "StreamViewType": "KEYS_ONLY",
                        },
                    })
                })
                .collect();
            let mut page = json!({"Records": records});
            // A closed shard read to its end answers no next iterator.
            if !(object_state.closed && end >= object_state.rows.len()) {
                page["NextShardIterator"] = json!(format!("{object}|{end}|{}", state.generation));
            }
            Ok(page)
        }
    }
}

/// A runner on the scripted stream, with the recording handler.
async fn start_scripted(
    endpoint: &str,
    batches: &Arc<Mutex<Vec<Vec<Handed>>>>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let aws = testkit::aws_config_for(endpoint).await;
    let settings = StreamSettings {
        poll_interval: Duration::from_millis(20),
        batch_size: 2,
        max_retry_attempts: 2,
        describe_interval: Duration::from_millis(200),
    };
    let poller = StreamPoller::at_latest(
        aws_sdk_dynamodbstreams::Client::new(&aws),
        scripted::ARN.to_string(),
        settings,
        presence_filter(),
    )
    .await
    .expect("positioned at LATEST");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let context = RunnerContext {
        aws: aws.clone(),
        resources: sumu_local::Resources {
            connections_table: "scripted".into(),
            connections_stream_arn: Some(scripted::ARN.into()),
            subscriptions_table: String::new(),
            subscriptions_stream_arn: None,
            history_table: String::new(),
            members_table: String::new(),
            messages_topic_arn: String::new(),
            messages_queue_url: String::new(),
            messages_dlq_url: String::new(),
            notifications_topic_arn: String::new(),
            notifications_queue_url: String::new(),
            notifications_dlq_url: String::new(),
        },
        management_url: "http://127.0.0.1:9/dev".into(),
        shutdown,
        pusher: Default::default(),
        namespaces: Default::default(),
    };
    let handler = recording_handler(Arc::clone(batches));
    (stop, tokio::spawn(poller.run(context, handler)))
}

/// Shard rollover as DynamoDB Streams does it: the parent closes, two children open (one of
/// which closes in turn and has a child of its own). The children's records are written before
/// the parent is read to its end, and the grandchild is listed first, yet every parent record
/// comes before any child's, every child's before its own child's, and every record is handed
/// over once.
#[tokio::test]
async fn closed_shards_are_read_to_their_end_before_their_children() {
    let (stream, endpoint) = scripted::Stream::serve().await;
    stream.open("parent", None, 100);
    stream.write("parent", "before-start");
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_scripted(&endpoint, &batches).await;

    for n in 1..=5 {
        stream.write("parent", &format!("p{n}"));
    }
    stream.close("parent");
    // DescribeStream promises no order: a grandchild listed before its parent waits for it.
    stream.open("left-child", Some("left"), 400);
    stream.open("left", Some("parent"), 200);
    stream.open("right", Some("parent"), 300);
    for n in 1..=3 {
        stream.write("left", &format!("l{n}"));
        stream.write("right", &format!("r{n}"));
        stream.write("left-child", &format!("c{n}"));
    }
    stream.close("left");
    until_handed(&batches, &["p5", "l3", "r3", "c3"]).await;
    // Written after the rollover: still read.
    stream.write("right", "r4");
    stream.write("left-child", "c4");
    until_handed(&batches, &["r4", "c4"]).await;
    stop_runner(stop, running).await;

    let handed = handed_users(&batches).concat();
    let mut sorted = handed.clone();
    sorted.sort();
    let mut expected: Vec<String> = ["p1", "p2", "p3", "p4", "p5", "l1", "l2", "l3"]
        .into_iter()
        .chain(["r1", "r2", "r3", "r4", "c1", "c2", "c3", "c4"])
        .map(str::to_string)
        .collect();
    expected.sort();
    assert_eq!(sorted, expected, "each record once: {handed:?}");
    let order_of = |prefix: char| -> Vec<usize> {
        handed
            .iter()
            .enumerate()
            .filter(|(_, user)| user.starts_with(prefix))
            .map(|(index, _)| index)
            .collect()
    };
    let in_order = |prefix: char| {
        let users: Vec<&String> = handed.iter().filter(|u| u.starts_with(prefix)).collect();
        let mut sorted = users.clone();
        sorted.sort();
        assert_eq!(users, sorted, "{prefix}… in stream order: {handed:?}");
    };
    for prefix in ['p', 'l', 'r', 'c'] {
        in_order(prefix);
    }
    let last_parent = *order_of('p').last().expect("parent records");
    for child in ['l', 'r', 'c'] {
        assert!(
            order_of(child).iter().all(|index| *index > last_parent),
            "{handed:?}"
        );
    }
    let last_left = *order_of('l').last().expect("left records");
    assert!(
        order_of('c').iter().all(|index| *index > last_left),
        "{handed:?}"
    );
}

/// An expired iterator: the runner reads on after the last record it handled.
#[tokio::test]
async fn an_expired_iterator_is_replaced_after_the_last_handled_record() {
    let (log, _guard) = Log::capture();
    let (stream, endpoint) = scripted::Stream::serve().await;
    stream.open("only", None, 100);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_scripted(&endpoint, &batches).await;
    stream.write("only", "a1");
    stream.write("only", "a2");
    until_handed(&batches, &["a1", "a2"]).await;
    stream.expire_iterators();
    stream.write("only", "a3");
    until_handed(&batches, &["a3"]).await;
    stop_runner(stop, running).await;

    assert_eq!(handed_users(&batches).concat(), ["a1", "a2", "a3"]);
    let warnings = log.warnings();
    assert!(
        warnings.iter().any(
            |line| line.contains("the shard iterator is no longer usable")
                && line.contains("ExpiredIteratorException")
        ),
        "{warnings:#?}"
    );
}

/// moto's cancelled transaction, made exact: the shard is replaced by a copy without the last
/// record the runner handed over, and the next record reuses its sequence number. The runner
/// goes back to the newest record the copy still holds and skips nothing after it.
#[tokio::test]
async fn a_shard_replaced_without_its_last_records_is_read_on_from_the_newest_it_holds() {
    let (log, _guard) = Log::capture();
    let (stream, endpoint) = scripted::Stream::serve().await;
    stream.open("only", None, 100);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_scripted(&endpoint, &batches).await;
    stream.write("only", "a1");
    stream.write("only", "a2");
    stream.write("only", "rolled-back-1");
    stream.write("only", "rolled-back-2");
    until_handed(&batches, &["rolled-back-2"]).await;
    stream.replace("only", 2);
    stream.write("only", "a3");
    stream.write("only", "a4");
    stream.write("only", "a5");
    until_handed(&batches, &["a5"]).await;
    stop_runner(stop, running).await;

    assert_eq!(
        handed_users(&batches).concat(),
        [
            "a1",
            "a2",
            "rolled-back-1",
            "rolled-back-2",
            "a3",
            "a4",
            "a5"
        ]
    );
    let warnings = log.warnings();
    assert!(
        warnings.iter().any(|line| line
            .contains("the shard no longer holds the last records handed over")
            && line.contains("last_handled=103")
            && line.contains("resumed_after=101")
            && line.contains("records_gone=2")),
        "{warnings:#?}"
    );
}

/// A shard replaced by a copy that keeps every record: the held iterator goes quiet while the
/// shard grows. The runner notices, says so, and hands the new records over once.
#[tokio::test]
async fn a_shard_replaced_under_the_same_id_is_read_on_after_the_last_handled_record() {
    let (log, _guard) = Log::capture();
    let (stream, endpoint) = scripted::Stream::serve().await;
    stream.open("only", None, 100);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_scripted(&endpoint, &batches).await;
    stream.write("only", "a1");
    until_handed(&batches, &["a1"]).await;
    stream.replace("only", 0);
    stream.write("only", "a2");
    stream.write("only", "a3");
    stream.write("only", "a4");
    until_handed(&batches, &["a4"]).await;
    stop_runner(stop, running).await;

    assert_eq!(handed_users(&batches).concat(), ["a1", "a2", "a3", "a4"]);
    let warnings = log.warnings();
    assert!(
        warnings.iter().any(
            |line| line.contains("the shard was replaced under the same id")
                && line.contains("last_handled=\"100\"")
        ),
        "{warnings:#?}"
    );
}

/// A shard that vanishes from the stream while being read, and a stream whose label changes,
/// are reported; a new shard is read from its start.
#[tokio::test]
async fn a_vanished_shard_and_a_changed_stream_are_reported() {
    let (log, _guard) = Log::capture();
    let (stream, endpoint) = scripted::Stream::serve().await;
    stream.open("old", None, 100);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (stop, running) = start_scripted(&endpoint, &batches).await;
    stream.write("old", "o1");
    until_handed(&batches, &["o1"]).await;
    stream.unlist("old");
    stream.relabel("2024-06-01T00:00:00.000");
    stream.open("new", None, 500);
    stream.write("new", "n1");
    until_handed(&batches, &["n1"]).await;
    stop_runner(stop, running).await;

    assert_eq!(handed_users(&batches).concat(), ["o1", "n1"]);
    let warnings = log.warnings();
    assert!(
        warnings.iter().any(
            |line| line.contains("a shard being read is no longer in the stream")
                && line.contains("shard_id=old")
                && line.contains("last_handled=\"100\"")
        ),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|line| line
            .contains("the stream is disabled or was replaced by another")
            && line.contains("latest_label=2024-06-01T00:00:00.000")),
        "{warnings:#?}"
    );
}
