//! The `presence` route and direct invocations, with fake seams.

mod common;

use aws_lambda_events::encodings::Body;
use common::{deps, invoke, invoke_route, FakeCounter, FakeSink};
use lambda_runtime::Diagnostic;
use presence::{Invocation, PresenceError, Reply};
use serde_json::{json, Value};

const ROUTE_REQUEST: &str = include_str!("fixtures/presence-route-request.json");

/// The route fixture with another body.
fn route_request(body: &str) -> String {
    let mut request: Value = serde_json::from_str(ROUTE_REQUEST).unwrap();
    request["body"] = Value::String(body.to_owned());
    request.to_string()
}

fn body_json(response: &aws_lambda_events::apigw::ApiGatewayProxyResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("the frame is JSON"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

#[test]
fn the_three_invocation_shapes_are_told_apart() {
    let stream = include_str!("fixtures/single-device-online.json");
    assert!(
        matches!(serde_json::from_str(stream).unwrap(), Invocation::Stream(batch) if batch.records.len() == 1)
    );
    assert!(matches!(
        serde_json::from_str(ROUTE_REQUEST).unwrap(),
        Invocation::Route(_)
    ));
    assert!(matches!(
        serde_json::from_str(r#"{"users":["u1"]}"#).unwrap(),
        Invocation::Direct(_)
    ));
    // Anything else is a (bad) direct question, refused by the handler with a clear error.
    assert!(matches!(
        serde_json::from_str("[1,2]").unwrap(),
        Invocation::Direct(_)
    ));
}

#[tokio::test]
async fn the_route_answers_each_distinct_user_in_asked_order() {
    let deps = deps(FakeCounter::with(&[("u1", 2)]), FakeSink::default());
    let response = invoke_route(ROUTE_REQUEST, &deps).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(
        body_json(&response),
        json!({"type":"presence","users":[
            {"user_id":"u1","status":"ONLINE","connections":2},
            {"user_id":"u2","status":"OFFLINE","connections":0}
        ]})
    );
    // u1 was asked twice but queried once.
    assert_eq!(deps.counter.asked(), vec!["u1".to_owned(), "u2".to_owned()]);
    assert!(
        deps.sink.summary().is_empty(),
        "a question publishes nothing"
    );
}

#[tokio::test]
async fn the_route_refuses_malformed_questions_with_an_error_frame() {
    let cases = [
        ("not json", "the body is not JSON"),
        (r#"["u1"]"#, "the body must be a JSON object"),
        (
            r#"{"action":"presence"}"#,
            "`users` must be an array of user ids",
        ),
        (
            r#"{"action":"presence","users":"u1"}"#,
            "`users` must be an array of user ids",
        ),
        (
            r#"{"action":"presence","users":["u1",7]}"#,
            "`users[1]` must be a non-empty string",
        ),
        (
            r#"{"action":"presence","users":[""]}"#,
            "`users[0]` must be a non-empty string",
        ),
    ];
    for (body, message) in cases {
        let deps = deps(FakeCounter::default(), FakeSink::default());
        let response = invoke_route(&route_request(body), &deps).await;
        assert_eq!(response.status_code, 400, "{body}");
        let frame = body_json(&response);
        assert_eq!(frame["type"], "error", "{body}");
        assert_eq!(frame["error"], "invalid_request", "{body}");
        let text = frame["message"].as_str().unwrap();
        assert!(text.starts_with(message), "{body}: {text}");
        assert!(
            deps.counter.asked().is_empty(),
            "{body}: nothing is queried"
        );
    }
}

#[tokio::test]
async fn the_route_refuses_more_than_100_users_and_overlong_ids() {
    let users: Vec<String> = (0..101).map(|n| format!("u{n}")).collect();
    let deps = deps(FakeCounter::default(), FakeSink::default());
    let response = invoke_route(
        &route_request(&json!({"action":"presence","users":users}).to_string()),
        &deps,
    )
    .await;
    assert_eq!(response.status_code, 400);
    assert_eq!(
        body_json(&response)["message"],
        "at most 100 users per request (got 101)"
    );
    assert!(deps.counter.asked().is_empty());

    let hundred = &users[..100];
    let response = invoke_route(
        &route_request(&json!({"action":"presence","users":hundred}).to_string()),
        &deps,
    )
    .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(body_json(&response)["users"].as_array().unwrap().len(), 100);

    let long = "x".repeat(2049);
    let response = invoke_route(&route_request(&json!({"users":[long]}).to_string()), &deps).await;
    assert_eq!(
        body_json(&response)["message"],
        "`users[0]` is longer than 2048 bytes"
    );
}

#[tokio::test]
async fn the_route_says_unavailable_when_a_query_fails() {
    let deps = deps(
        FakeCounter::with(&[("u1", 1)]).failing_for("u2"),
        FakeSink::default(),
    );
    let response = invoke_route(ROUTE_REQUEST, &deps).await;
    assert_eq!(response.status_code, 500);
    let frame = body_json(&response);
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["error"], "presence_unavailable");
}

#[tokio::test]
async fn a_back_end_gets_the_same_answer_by_direct_invocation() {
    let deps = deps(FakeCounter::with(&[("u2", 3)]), FakeSink::default());
    let reply = invoke(r#"{"users":["u1","u2"]}"#, &deps).await.unwrap();
    assert!(matches!(reply, Reply::Direct(_)));
    assert_eq!(
        serde_json::to_value(&reply).unwrap(),
        json!({"type":"presence","users":[
            {"user_id":"u1","status":"OFFLINE","connections":0},
            {"user_id":"u2","status":"ONLINE","connections":3}
        ]})
    );
    let empty = invoke(r#"{"users":[]}"#, &deps).await.unwrap();
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"type":"presence","users":[]})
    );
}

#[tokio::test]
async fn a_bad_direct_question_is_a_validation_error_and_a_failed_query_is_retryable() {
    let deps = deps(
        FakeCounter::default().failing_for("u2"),
        FakeSink::default(),
    );
    let error = invoke(r#"{"user":"u1"}"#, &deps).await.unwrap_err();
    assert!(matches!(error, PresenceError::InvalidRequest(_)));
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "Validation");
    assert_eq!(
        diagnostic.error_message,
        "invalid presence request: `users` must be an array of user ids"
    );

    let error = invoke(r#"{"users":["u2"]}"#, &deps).await.unwrap_err();
    assert_eq!(Diagnostic::from(error).error_type, "Retryable");
}
