//! The stream runner against moto's DynamoDB stream, with a handler that records what it is
//! handed and fails one record on purpose: starting position LATEST, Lambda's event shape,
//! retry from the reported record, skip after `max_retry_attempts`, prompt stop.

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
