//! The generic SQS event source against a real moto server: the Lambda event shape, partial
//! batch failures, whole-batch failures, redrive to the dead-letter queue after
//! `maxReceiveCount`, and a prompt stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use sumu_local::runners::sqs::{self, SqsSource};
use sumu_local::runners::RunnerContext;
use sumu_local::{PusherSetup, Resources};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(30);

struct Queues {
    sqs: aws_sdk_sqs::Client,
    url: String,
    dlq_url: String,
}

/// A queue with a 1 s visibility timeout whose redrive policy moves a message to its DLQ
/// after `max_receives` receives.
async fn queues(max_receives: u32) -> Queues {
    let sqs = aws_sdk_sqs::Client::new(&testkit::aws_config().await);
    let dlq_url = sqs
        .create_queue()
        .queue_name(testkit::unique_name("runner-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let url = sqs
        .create_queue()
        .queue_name(testkit::unique_name("runner"))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Queues { sqs, url, dlq_url }
}

async fn context() -> (RunnerContext, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let aws = sumu_local::provision::sdk_config(&testkit::moto_endpoint(), "us-east-1").await;
    let resources = Resources {
        connections_table: String::new(),
        connections_stream_arn: None,
        subscriptions_table: "s".into(),
        subscriptions_stream_arn: None,
        history_table: "h".into(),
        members_table: "m".into(),
        messages_topic_arn: String::new(),
        messages_queue_url: String::new(),
        messages_dlq_url: String::new(),
        notifications_topic_arn: String::new(),
        notifications_queue_url: String::new(),
        notifications_dlq_url: String::new(),
    };
    let context = RunnerContext {
        aws,
        resources,
        management_url: String::new(),
        shutdown,
        pusher: PusherSetup::default(),
        namespaces: Default::default(),
    };
    (context, stop)
}

fn source(url: &str) -> SqsSource {
    let mut source = SqsSource::new(url);
    source.wait_time = Duration::from_secs(1);
    source
}

async fn send(queues: &Queues, body: &str) -> String {
    queues
        .sqs
        .send_message()
        .queue_url(&queues.url)
        .message_body(body)
        .message_attributes(
            "kind",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(format!("kind-{body}"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap()
}

/// Every record the handler saw, in order.
type Seen = Arc<Mutex<Vec<SqsMessage>>>;

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bodies(seen: &Seen, body: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|m| m.body.as_deref() == Some(body))
        .count()
}

async fn dlq_bodies(queues: &Queues, expected: usize) -> Vec<String> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while found.len() < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {expected} dead letters, got {found:?}"
        );
        let received = queues
            .sqs
            .receive_message()
            .queue_url(&queues.dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in received.messages.unwrap_or_default() {
            found.push(message.body.unwrap_or_default());
        }
    }
    found
}

#[tokio::test]
async fn partial_failures_are_redelivered_then_dead_lettered_and_the_rest_deleted() {
    let queues = queues(2).await;
    let (context, stop) = context().await;
    let seen: Seen = Arc::default();
    let recorder = Arc::clone(&seen);
    let runner = tokio::spawn(sqs::run(
        context,
        source(&queues.url),
        move |event: SqsEvent| {
            let recorder = Arc::clone(&recorder);
            async move {
                let mut response = SqsBatchResponse::default();
                for record in event.records {
                    if record.body.as_deref() == Some("poison") {
                        response.add_failure(record.message_id.clone().unwrap_or_default());
                    }
                    recorder.lock().unwrap().push(record);
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        },
    ));
    let good_id = send(&queues, "good").await;
    send(&queues, "poison").await;
    send(&queues, "fine").await;

    // The poison message is received maxReceiveCount (2) times, then moved by the redrive policy.
    assert_eq!(dlq_bodies(&queues, 1).await, vec!["poison".to_string()]);
    assert_eq!(bodies(&seen, "poison"), 2);
    // The others were deleted after their first, successful delivery.
    assert_eq!(bodies(&seen, "good"), 1);
    assert_eq!(bodies(&seen, "fine"), 1);

    // The Lambda event shape.
    let good = seen
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.message_id.as_deref() == Some(good_id.as_str()))
        .cloned()
        .expect("the good message was seen");
    assert_eq!(good.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(good.aws_region.as_deref(), Some("us-east-1"));
    let queue_name = queues.url.rsplit('/').next().unwrap();
    assert!(
        good.event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.starts_with("arn:aws:sqs:us-east-1:")
                && arn.ends_with(&format!(":{queue_name}"))),
        "{:?}",
        good.event_source_arn
    );
    assert!(good
        .receipt_handle
        .as_deref()
        .is_some_and(|h| !h.is_empty()));
    assert_eq!(
        good.attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("1")
    );
    assert!(good.attributes.contains_key("SentTimestamp"));
    let kind = &good.message_attributes["kind"];
    assert_eq!(kind.string_value.as_deref(), Some("kind-good"));
    assert_eq!(kind.data_type.as_deref(), Some("String"));
    // The poison message's second delivery carried its receive count.
    let counts: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.body.as_deref() == Some("poison"))
        .filter_map(|m| m.attributes.get("ApproximateReceiveCount").cloned())
        .collect();
    assert_eq!(counts, vec!["1".to_string(), "2".to_string()]);

    stop.send(true).unwrap();
    tokio::time::timeout(DEADLINE, runner)
        .await
        .expect("the runner stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn a_handler_error_fails_the_whole_batch() {
    let queues = queues(5).await;
    let (context, stop) = context().await;
    let seen: Seen = Arc::default();
    let recorder = Arc::clone(&seen);
    let runner = tokio::spawn(sqs::run(
        context,
        source(&queues.url),
        move |event: SqsEvent| {
            let recorder = Arc::clone(&recorder);
            async move {
                let mut recorded = recorder.lock().unwrap();
                let first_time = recorded.is_empty();
                recorded.extend(event.records);
                if first_time {
                    Err("the function crashed")
                } else {
                    Ok(SqsBatchResponse::default())
                }
            }
        },
    ));
    send(&queues, "one").await;

    // The failed invocation's message comes back after the visibility timeout, is handled, and
    // (deleted) never comes back again: nothing reaches the dead-letter queue.
    until("the message is delivered twice", || {
        bodies(&seen, "one") >= 2
    })
    .await;
    send(&queues, "marker").await;
    until("the marker is delivered", || bodies(&seen, "marker") == 1).await;
    // The marker went through a later receive; wait one more visibility timeout's worth of
    // receives by sending a second marker.
    send(&queues, "marker-2").await;
    until("the second marker is delivered", || {
        bodies(&seen, "marker-2") == 1
    })
    .await;
    assert_eq!(bodies(&seen, "one"), 2);

    stop.send(true).unwrap();
    tokio::time::timeout(DEADLINE, runner)
        .await
        .expect("the runner stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn shutdown_interrupts_a_long_poll() {
    let queues = queues(5).await;
    let (context, stop) = context().await;
    let mut source = SqsSource::new(&queues.url);
    source.wait_time = Duration::from_secs(20);
    let runner = tokio::spawn(sqs::run(context, source, |_event: SqsEvent| async {
        Ok::<_, std::convert::Infallible>(SqsBatchResponse::default())
    }));
    stop.send(true).unwrap();
    // Well under the 20 s long poll it was waiting in (not a timing assertion: a generous bound
    // that a runner ignoring shutdown would still exceed only if the poll were >30 s).
    tokio::time::timeout(Duration::from_secs(15), runner)
        .await
        .expect("the runner stops without waiting for its long poll")
        .unwrap();
}

#[test]
fn queue_urls_map_to_arns() {
    assert_eq!(
        sqs::queue_arn_of("http://localhost:5000/123456789012/q-1", "eu-west-1").as_deref(),
        Some("arn:aws:sqs:eu-west-1:123456789012:q-1")
    );
    assert_eq!(sqs::queue_arn_of("nonsense", "eu-west-1"), None);
}
