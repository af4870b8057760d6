//! The back end's behaviour for each message kind and each push mode, with recording fakes for
//! the notifications queue and the online-users lookup: exact targets, exclusions and frames.

use std::sync::Mutex;

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use demo_backend::{
    DemoBackend, DemoError, DemoEvent, LookupError, Notifier, NotifyError, OnlineUser, OnlineUsers,
    MAX_LISTED_USERS, MAX_RECIPIENTS, MAX_TEXT_CHARS,
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use sumu_wire::NotificationRequest;

/// Records every request; fails those whose `data.text` is `"fail"` (a transient SQS error).
#[derive(Default)]
struct RecordingNotifier {
    sent: Mutex<Vec<NotificationRequest>>,
}

impl Notifier for RecordingNotifier {
    async fn notify(&self, request: &NotificationRequest) -> Result<(), NotifyError> {
        if request.data["text"] == "fail" {
            return Err(NotifyError::Serialize(serde_json::Error::io(
                std::io::Error::other("injected failure"),
            )));
        }
        self.sent.lock().unwrap().push(request.clone());
        Ok(())
    }
}

/// A fixed list of online users, or a failing lookup when `None`.
struct FixedOnlineUsers(Option<Vec<OnlineUser>>);

impl OnlineUsers for FixedOnlineUsers {
    async fn online_users(&self) -> Result<Vec<OnlineUser>, LookupError> {
        match &self.0 {
            Some(users) => Ok(users.clone()),
            // Any LookupError will do; build one from a real SDK error type.
            None => Err(LookupError::DynamoDb(Box::new(
                aws_sdk_dynamodb::Error::ResourceNotFoundException(
                    aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder()
                        .message("injected")
                        .build(),
                ),
            ))),
        }
    }
}

fn online(users: &[(&str, u32)]) -> FixedOnlineUsers {
    FixedOnlineUsers(Some(
        users
            .iter()
            .map(|(user_id, connections)| OnlineUser {
                user_id: (*user_id).into(),
                connections: *connections,
            })
            .collect(),
    ))
}

type Backend = DemoBackend<RecordingNotifier, FixedOnlineUsers>;

fn backend() -> Backend {
    DemoBackend::new(RecordingNotifier::default(), online(&[]))
}

fn sent(backend: &Backend) -> Vec<NotificationRequest> {
    // The notifier is private to the back end; reach it through a request we can observe.
    backend_notifier(backend).sent.lock().unwrap().clone()
}

fn backend_notifier(backend: &Backend) -> &RecordingNotifier {
    backend.notifier()
}

/// One SQS record as the messages queue delivers it.
fn sqs_record(id: &str, attributes: &[(&str, &str, &str)], body: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = attributes
        .iter()
        .map(|(name, data_type, value)| {
            (
                (*name).to_owned(),
                json!({"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": data_type}),
            )
        })
        .collect();
    json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:messages",
        "awsRegion": "us-east-1"
    })
}

/// A client message from `user` through `source` (`apigw.route.publish` / `…send`).
fn client_record(id: &str, user: &str, source: &str, body: Value) -> Value {
    sqs_record(
        id,
        &[
            ("user_id", "String", user),
            ("connection_id", "String", &format!("conn-{user}")),
            ("timestamp", "Number", "1700000000100"),
            ("source", "String", source),
        ],
        &body.to_string(),
    )
}

fn batch(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

async fn run_batch(backend: &Backend, records: Vec<Value>) -> Vec<String> {
    backend
        .handle_sqs(batch(records))
        .await
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect()
}

const PUBLISH: &str = "apigw.route.publish";
const SEND: &str = "apigw.route.send";
const PRESENCE: &str = "lambda.presence.watchdog";

fn request(
    users: &[&str],
    connections: &[&str],
    exclude: &[&str],
    data: Value,
) -> NotificationRequest {
    let strings =
        |values: &[&str]| -> Vec<String> { values.iter().map(|v| (*v).to_owned()).collect() };
    // The demo back end never sends an explicitly empty target list (that would reach nobody):
    // an empty slice here means "not given".
    let targets = |values: &[&str]| (!values.is_empty()).then(|| strings(values));
    NotificationRequest {
        users: targets(users),
        connections: targets(connections),
        exclude_users: strings(exclude),
        data,
        ..NotificationRequest::default()
    }
}

#[tokio::test]
async fn unicast_echoes_to_the_senders_own_user_only() {
    let backend = backend();
    let chat = json!({"type":"chat","mode":"unicast","to":["bob"],"text":"note to self"});
    let failures = run_batch(&backend, vec![client_record("m1", "alice", PUBLISH, chat)]).await;
    assert!(failures.is_empty());
    assert_eq!(
        sent(&backend),
        vec![request(
            &["alice"],
            &[],
            &[],
            json!({"type":"chat","from":"alice","mode":"unicast","text":"note to self",
                   "route":"publish","timestamp":1_700_000_000_100_i64}),
        )]
    );
}

#[tokio::test]
async fn multicast_goes_to_the_named_users_and_the_sender_without_duplicates() {
    let backend = backend();
    let chat =
        json!({"type":"chat","mode":"multicast","to":["bob","carol","bob","alice"],"text":"hi"});
    let failures = run_batch(&backend, vec![client_record("m1", "alice", SEND, chat)]).await;
    assert!(failures.is_empty());
    assert_eq!(
        sent(&backend),
        vec![request(
            &["bob", "carol", "alice"],
            &[],
            &[],
            json!({"type":"chat","from":"alice","mode":"multicast","to":["bob","carol"],"text":"hi",
                   "route":"send","timestamp":1_700_000_000_100_i64}),
        )]
    );
}

#[tokio::test]
async fn multicast_to_nobody_reaches_only_the_sender() {
    let backend = backend();
    let chat = json!({"type":"chat","mode":"multicast","text":"anyone?"});
    run_batch(&backend, vec![client_record("m1", "alice", SEND, chat)]).await;
    let requests = sent(&backend);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].users, Some(vec!["alice".to_owned()]));
    assert!(!requests[0].is_broadcast());
    assert_eq!(requests[0].data["to"], json!([]));
}

#[tokio::test]
async fn broadcast_goes_to_everyone_except_the_sender() {
    let backend = backend();
    let chat = json!({"type":"chat","mode":"broadcast","text":"hello all"});
    run_batch(&backend, vec![client_record("m1", "alice", SEND, chat)]).await;
    let requests = sent(&backend);
    assert_eq!(
        requests,
        vec![request(
            &[],
            &[],
            &["alice"],
            json!({"type":"chat","from":"alice","mode":"broadcast","text":"hello all",
                   "route":"send","timestamp":1_700_000_000_100_i64}),
        )]
    );
    assert!(requests[0].is_broadcast());
}

/// A publication request to `channels`, as the ROOM mode sends it.
fn publication(channels: &[&str], data: Value) -> NotificationRequest {
    NotificationRequest {
        channels: Some(channels.iter().map(|c| (*c).to_owned()).collect()),
        data,
        ..NotificationRequest::default()
    }
}

#[tokio::test]
async fn room_is_a_publication_to_the_rooms_channel_through_either_route() {
    let backend = backend();
    let records = vec![
        client_record(
            "m1",
            "alice",
            SEND,
            json!({"type":"chat","mode":"room","room":"A","text":"hello A"}),
        ),
        client_record(
            "m2",
            "bob",
            PUBLISH,
            json!({"type":"chat","mode":"room","room":"x_y-z.w:v@u=t+s|r","text":"hi"}),
        ),
    ];
    let failures = run_batch(&backend, records).await;
    assert!(failures.is_empty());
    assert_eq!(
        sent(&backend),
        vec![
            publication(
                &["room/A"],
                json!({"type":"chat","from":"alice","mode":"room","room":"A","text":"hello A",
                       "route":"send","timestamp":1_700_000_000_100_i64}),
            ),
            publication(
                &["room/x_y-z.w:v@u=t+s|r"],
                json!({"type":"chat","from":"bob","mode":"room","room":"x_y-z.w:v@u=t+s|r",
                       "text":"hi","route":"publish","timestamp":1_700_000_000_100_i64}),
            ),
        ]
    );
    // Neither a broadcast nor a user/connection list: the pusher finds the room's subscribers.
    for request in sent(&backend) {
        assert!(!request.is_broadcast());
        assert!(request.users.is_none() && request.connections.is_none());
        assert!(request.exclude_users.is_empty() && request.exclude_connections.is_empty());
        assert!(request.publication_id.is_none());
    }
}

#[tokio::test]
async fn room_ignores_to_and_other_modes_ignore_room() {
    let backend = backend();
    let records = vec![
        client_record(
            "m1",
            "alice",
            SEND,
            json!({"type":"chat","mode":"room","room":"A","to":["bob"],"text":"r"}),
        ),
        client_record(
            "m2",
            "alice",
            SEND,
            json!({"type":"chat","mode":"broadcast","room":"A","text":"b"}),
        ),
        client_record(
            "m3",
            "alice",
            SEND,
            json!({"type":"chat","mode":"unicast","room":"../*","text":"u"}),
        ),
    ];
    run_batch(&backend, records).await;
    let requests = sent(&backend);
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].channels, Some(vec!["room/A".to_owned()]));
    assert!(requests[0].users.is_none());
    assert_eq!(requests[0].data.get("to"), None);
    assert!(requests[1].is_broadcast());
    assert_eq!(requests[1].data.get("room"), None);
    assert_eq!(requests[2].users, Some(vec!["alice".to_owned()]));
    assert_eq!(requests[2].channels, None);
}

#[tokio::test]
async fn a_room_message_names_one_room_segment_or_is_skipped() {
    let backend = backend();
    let room = |room: Value| {
        let mut message = json!({"type":"chat","mode":"room","text":"x"});
        if !room.is_null() {
            message["room"] = room;
        }
        message
    };
    let bad = [
        ("no-room", Value::Null),
        ("empty", json!("")),
        ("wildcard", json!("*")),
        ("star-inside", json!("a*")),
        ("nested", json!("a/b")),
        ("leading-slash", json!("/a")),
        ("quote", json!("a\"b")),
        ("backslash", json!("a\\b")),
        ("space", json!("a b")),
        ("non-ascii", json!("huone-ä")),
        ("control", json!("a\u{1}")),
        ("too-long", json!("r".repeat(65))),
        ("number", json!(42)),
        ("object", json!({"name":"A"})),
    ];
    let mut records: Vec<Value> = bad
        .iter()
        .map(|(id, value)| client_record(id, "alice", SEND, room(value.clone())))
        .collect();
    records.push(client_record(
        "longest",
        "alice",
        SEND,
        room(json!("r".repeat(64))),
    ));
    let failures = run_batch(&backend, records).await;
    assert!(
        failures.is_empty(),
        "malformed input is never retried: {failures:?}"
    );
    let requests = sent(&backend);
    assert_eq!(
        requests
            .iter()
            .map(|request| request.channels.clone())
            .collect::<Vec<_>>(),
        vec![Some(vec![format!("room/{}", "r".repeat(64))])],
        "only the valid room is published to: {requests:?}"
    );
}

#[tokio::test]
async fn a_room_messages_sender_comes_from_the_attributes_and_data_cannot_add_targets() {
    let backend = backend();
    let chat = json!({"type":"chat","mode":"room","room":"A","text":"hi","from":"mallory",
                      "route":"emit","channels":["*"],"users":["carol"],"timestamp":1});
    run_batch(&backend, vec![client_record("m1", "alice", PUBLISH, chat)]).await;
    assert_eq!(
        sent(&backend),
        vec![publication(
            &["room/A"],
            json!({"type":"chat","from":"alice","mode":"room","room":"A","text":"hi",
                   "route":"publish","timestamp":1_700_000_000_100_i64}),
        )]
    );
}

#[tokio::test]
async fn the_sender_comes_from_the_attributes_never_from_the_body() {
    let backend = backend();
    let chat = json!({"type":"chat","mode":"broadcast","text":"hi","from":"mallory",
                      "user_id":"mallory","route":"publish","timestamp":1});
    run_batch(&backend, vec![client_record("m1", "alice", SEND, chat)]).await;
    let data = &sent(&backend)[0].data;
    assert_eq!(data["from"], "alice");
    assert_eq!(data["route"], "send");
    assert_eq!(data["timestamp"], 1_700_000_000_100_i64);
    assert_eq!(sent(&backend)[0].exclude_users, vec!["alice".to_owned()]);
}

#[tokio::test]
async fn presence_is_broadcast_to_everyone_but_its_subject() {
    let backend = backend();
    let online = json!({"type":"presence","message":{"user_id":"bob","status":"ONLINE",
        "connection_id":"c-bob","connections":2,"timestamp":1_700_000_000_000_i64}});
    let offline = json!({"type":"presence","message":{"user_id":"carol","status":"OFFLINE",
        "connection_id":"c-carol","connections":0,"timestamp":1_700_000_000_500_i64,"reason":"expired"}});
    let attributes = |user: &'static str| {
        [
            ("user_id", "String", user),
            ("timestamp", "Number", "1700000000000"),
            ("source", "String", PRESENCE),
        ]
    };
    let failures = run_batch(
        &backend,
        vec![
            sqs_record("p1", &attributes("bob"), &online.to_string()),
            sqs_record("p2", &attributes("carol"), &offline.to_string()),
        ],
    )
    .await;
    assert!(failures.is_empty());
    assert_eq!(
        sent(&backend),
        vec![
            request(
                &[],
                &[],
                &["bob"],
                json!({"type":"presence","users":[{"user_id":"bob","status":"ONLINE","connections":2}],
                       "timestamp":1_700_000_000_000_i64}),
            ),
            request(
                &[],
                &[],
                &["carol"],
                json!({"type":"presence","users":[{"user_id":"carol","status":"OFFLINE","connections":0}],
                       "timestamp":1_700_000_000_500_i64,"reason":"expired"}),
            ),
        ]
    );
}

#[tokio::test]
async fn who_is_online_answers_the_asking_connection_only() {
    let backend = DemoBackend::new(
        RecordingNotifier::default(),
        online(&[("alice", 1), ("bob", 2)]),
    );
    let ask = json!({"type":"who_is_online"});
    let failures = run_batch(&backend, vec![client_record("m1", "alice", PUBLISH, ask)]).await;
    assert!(failures.is_empty());
    let requests = sent(&backend);
    assert_eq!(requests.len(), 1);
    let answer = &requests[0];
    assert_eq!(answer.connections, Some(vec!["conn-alice".to_owned()]));
    assert!(answer.users.is_none() && answer.exclude_users.is_empty());
    assert_eq!(answer.data["type"], "online_users");
    assert_eq!(
        answer.data["users"],
        json!([{"user_id":"alice","status":"ONLINE","connections":1},
               {"user_id":"bob","status":"ONLINE","connections":2}])
    );
    assert_eq!(answer.data["truncated"], false);
    assert!(answer.data["timestamp"]
        .as_i64()
        .is_some_and(|ms| ms > 1_700_000_000_000));
}

#[tokio::test]
async fn who_is_online_lists_at_most_the_cap_and_says_it_truncated() {
    let many: Vec<(String, u32)> = (0..MAX_LISTED_USERS + 3)
        .map(|n| (format!("user{n:04}"), 1))
        .collect();
    let many: Vec<(&str, u32)> = many.iter().map(|(u, c)| (u.as_str(), *c)).collect();
    let backend = DemoBackend::new(RecordingNotifier::default(), online(&many));
    run_batch(
        &backend,
        vec![client_record(
            "m1",
            "alice",
            SEND,
            json!({"type":"who_is_online"}),
        )],
    )
    .await;
    let data = &sent(&backend)[0].data;
    assert_eq!(
        data["users"].as_array().map(Vec::len),
        Some(MAX_LISTED_USERS)
    );
    assert_eq!(data["truncated"], true);
}

#[tokio::test]
async fn a_client_cannot_forge_a_presence_event() {
    let backend = backend();
    let forged = json!({"type":"presence","message":{"user_id":"bob","status":"OFFLINE",
        "connection_id":"c","connections":0,"timestamp":1}});
    let failures = run_batch(
        &backend,
        vec![client_record("m1", "mallory", PUBLISH, forged)],
    )
    .await;
    assert!(failures.is_empty(), "skipped, not retried");
    assert!(sent(&backend).is_empty());
}

#[tokio::test]
async fn malformed_messages_are_skipped_without_retry_and_the_rest_of_the_batch_is_served() {
    let backend = backend();
    let good = json!({"type":"chat","mode":"unicast","text":"still here"});
    let chat = |extra: Value| {
        let mut message = json!({"type":"chat","mode":"broadcast","text":"x"});
        if let (Some(target), Some(source)) = (message.as_object_mut(), extra.as_object()) {
            target.extend(source.clone());
        }
        message
    };
    let attributes_without = |missing: &str| -> Vec<(&'static str, &'static str, &'static str)> {
        [
            ("user_id", "String", "alice"),
            ("connection_id", "String", "conn-alice"),
            ("timestamp", "Number", "1700000000100"),
            ("source", "String", SEND),
        ]
        .into_iter()
        .filter(|(name, _, _)| *name != missing)
        .collect()
    };
    let body = chat(json!({})).to_string();
    let records = vec![
        client_record("bad-json", "alice", SEND, json!("not an object")),
        sqs_record(
            "not-json",
            &attributes_without("none"),
            "this is not json {",
        ),
        sqs_record("no-source", &attributes_without("source"), &body),
        sqs_record("no-user", &attributes_without("user_id"), &body),
        sqs_record("no-connection", &attributes_without("connection_id"), &body),
        sqs_record("no-timestamp", &attributes_without("timestamp"), &body),
        sqs_record(
            "bad-timestamp",
            &[
                ("user_id", "String", "alice"),
                ("connection_id", "String", "conn-alice"),
                ("timestamp", "Number", "soon"),
                ("source", "String", SEND),
            ],
            &body,
        ),
        sqs_record(
            "unknown-source",
            &[
                ("user_id", "String", "alice"),
                ("connection_id", "String", "conn-alice"),
                ("timestamp", "Number", "1700000000100"),
                ("source", "String", "somebody.else"),
            ],
            &body,
        ),
        client_record("unknown-type", "alice", SEND, json!({"type":"dance"})),
        client_record(
            "no-type",
            "alice",
            SEND,
            json!({"mode":"broadcast","text":"x"}),
        ),
        client_record(
            "no-text",
            "alice",
            SEND,
            json!({"type":"chat","mode":"broadcast"}),
        ),
        client_record("text-not-string", "alice", SEND, chat(json!({"text": 42}))),
        client_record("bad-mode", "alice", SEND, chat(json!({"mode": "anycast"}))),
        client_record(
            "to-not-list",
            "alice",
            SEND,
            chat(json!({"mode":"multicast","to":"bob"})),
        ),
        client_record(
            "empty-recipient",
            "alice",
            SEND,
            chat(json!({"mode":"multicast","to":["bob",""]})),
        ),
        client_record(
            "too-many-recipients",
            "alice",
            SEND,
            chat(
                json!({"mode":"multicast","to": (0..=MAX_RECIPIENTS).map(|n| format!("u{n}")).collect::<Vec<_>>()}),
            ),
        ),
        client_record(
            "text-too-long",
            "alice",
            SEND,
            chat(json!({"text": "x".repeat(MAX_TEXT_CHARS + 1)})),
        ),
        sqs_record(
            "presence-bad-body",
            &[
                ("user_id", "String", "bob"),
                ("timestamp", "Number", "1"),
                ("source", "String", PRESENCE),
            ],
            r#"{"type":"presence","message":{"user_id":"bob","status":"AWAY"}}"#,
        ),
        client_record("good", "alice", SEND, good),
    ];
    let failures = run_batch(&backend, records).await;
    assert!(
        failures.is_empty(),
        "malformed input is never retried: {failures:?}"
    );
    let requests = sent(&backend);
    assert_eq!(
        requests.len(),
        1,
        "only the good message is answered: {requests:?}"
    );
    assert_eq!(requests[0].data["text"], "still here");
}

#[tokio::test]
async fn the_longest_allowed_text_and_most_recipients_are_accepted() {
    let backend = backend();
    let to: Vec<String> = (0..MAX_RECIPIENTS).map(|n| format!("u{n}")).collect();
    let chat = json!({"type":"chat","mode":"multicast","to":to,"text":"é".repeat(MAX_TEXT_CHARS)});
    run_batch(&backend, vec![client_record("m1", "alice", SEND, chat)]).await;
    assert_eq!(
        sent(&backend)[0].users.as_ref().map(Vec::len),
        Some(MAX_RECIPIENTS + 1)
    );
}

#[tokio::test]
async fn a_failed_send_reports_only_that_message_for_retry() {
    let backend = backend();
    let records = vec![
        client_record(
            "ok-1",
            "alice",
            SEND,
            json!({"type":"chat","mode":"unicast","text":"one"}),
        ),
        client_record(
            "fails",
            "alice",
            SEND,
            json!({"type":"chat","mode":"unicast","text":"fail"}),
        ),
        client_record(
            "ok-2",
            "bob",
            PUBLISH,
            json!({"type":"chat","mode":"broadcast","text":"two"}),
        ),
    ];
    let failures = run_batch(&backend, records).await;
    assert_eq!(failures, vec!["fails".to_owned()]);
    let texts: Vec<Value> = sent(&backend)
        .iter()
        .map(|r| r.data["text"].clone())
        .collect();
    assert_eq!(texts, vec![json!("one"), json!("two")]);
}

#[tokio::test]
async fn a_failed_lookup_reports_the_question_for_retry() {
    let backend = DemoBackend::new(RecordingNotifier::default(), FixedOnlineUsers(None));
    let failures = run_batch(
        &backend,
        vec![client_record(
            "ask",
            "alice",
            SEND,
            json!({"type":"who_is_online"}),
        )],
    )
    .await;
    assert_eq!(failures, vec!["ask".to_owned()]);
    assert!(sent(&backend).is_empty());
}

#[tokio::test]
async fn a_real_sqs_batch_fixture_is_served_end_to_end() {
    let backend = backend();
    let event: Value =
        serde_json::from_str(include_str!("../fixtures/sqs-messages-batch.json")).unwrap();
    let response = demo_backend::handle(LambdaEvent::new(event, Context::default()), &backend)
        .await
        .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(
        sent(&backend),
        vec![
            request(
                &[],
                &[],
                &["alice"],
                json!({"type":"chat","from":"alice","mode":"broadcast","text":"hello everyone",
                       "route":"send","timestamp":1_700_000_000_100_i64}),
            ),
            request(
                &[],
                &[],
                &["bob"],
                json!({"type":"presence","users":[{"user_id":"bob","status":"OFFLINE","connections":0}],
                       "timestamp":1_700_000_000_200_i64,"reason":"disconnected"}),
            ),
        ]
    );
}

#[tokio::test]
async fn a_real_sns_event_fixture_is_served_end_to_end() {
    let backend = backend();
    let event: Value =
        serde_json::from_str(include_str!("../fixtures/sns-messages-event.json")).unwrap();
    let response = demo_backend::handle(LambdaEvent::new(event, Context::default()), &backend)
        .await
        .unwrap();
    assert_eq!(response, Value::Null);
    assert_eq!(
        sent(&backend),
        vec![request(
            &["bob", "carol", "alice"],
            &[],
            &[],
            json!({"type":"chat","from":"alice","mode":"multicast","to":["bob","carol"],
                   "text":"hi you two","route":"publish","timestamp":1_700_000_000_100_i64}),
        )]
    );
}

#[tokio::test]
async fn an_sns_record_that_fails_fails_the_invocation_so_lambda_retries_it() {
    let backend = backend();
    let mut event: Value =
        serde_json::from_str(include_str!("../fixtures/sns-messages-event.json")).unwrap();
    event["Records"][0]["Sns"]["Message"] =
        json!(r#"{"type":"chat","mode":"unicast","text":"fail"}"#);
    let event: SnsEvent = serde_json::from_value(event).unwrap();
    let error = backend.handle_sns(event).await.unwrap_err();
    assert!(matches!(
        error,
        DemoError::SnsRecordsFailed {
            failed: 1,
            total: 1
        }
    ));
}

#[tokio::test]
async fn a_malformed_sns_record_is_skipped_not_retried() {
    let backend = backend();
    let mut event: Value =
        serde_json::from_str(include_str!("../fixtures/sns-messages-event.json")).unwrap();
    event["Records"][0]["Sns"]["Message"] = json!("garbage");
    let event: SnsEvent = serde_json::from_value(event).unwrap();
    backend.handle_sns(event).await.unwrap();
    assert!(sent(&backend).is_empty());
}

#[tokio::test]
async fn a_topic_delivered_into_the_queue_without_raw_delivery_is_unwrapped() {
    let backend = backend();
    let envelope = json!({
        "Type": "Notification",
        "MessageId": "8d9a3c1e",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:messages",
        "Message": r#"{"type":"chat","mode":"unicast","text":"via the topic"}"#,
        "Timestamp": "2023-11-14T22:13:20.100Z",
        "MessageAttributes": {
            "user_id": {"Type": "String", "Value": "alice"},
            "connection_id": {"Type": "String", "Value": "conn-alice"},
            "timestamp": {"Type": "Number", "Value": "1700000000100"},
            "source": {"Type": "String", "Value": PUBLISH}
        }
    });
    let failures = run_batch(&backend, vec![sqs_record("m1", &[], &envelope.to_string())]).await;
    assert!(failures.is_empty());
    let requests = sent(&backend);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].users, Some(vec!["alice".to_owned()]));
    assert_eq!(requests[0].data["text"], "via the topic");
    assert_eq!(requests[0].data["route"], "publish");
}

#[tokio::test]
async fn events_that_are_neither_sqs_nor_sns_are_rejected() {
    for event in [
        json!({}),
        json!({"Records": []}),
        json!({"Records": [{"eventSource": "aws:dynamodb"}]}),
        json!({"Records": [{"eventSource": "aws:sqs", "messageAttributes": 3}]}),
    ] {
        assert!(
            matches!(
                DemoEvent::from_json(event.clone()),
                Err(DemoError::UnknownEvent)
            ),
            "{event}"
        );
    }
    let backend = backend();
    let error = demo_backend::handle(
        LambdaEvent::new(json!({"detail": 1}), Context::default()),
        &backend,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, DemoError::UnknownEvent));
}
