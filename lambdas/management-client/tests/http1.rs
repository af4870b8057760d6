//! The client's kept-alive HTTP connections: they ramp with demand and are reused, against a real
//! HTTP server on 127.0.0.1:0 that counts the TCP connections it accepts; and its HTTP client
//! on answers a server library would never send, from a raw scripted server.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::serve::ListenerExt;
use futures::StreamExt;
use management_client::{ManagementClient, PostOutcome};
use support::raw_http::{self, Reply, OK};

/// `http://127.0.0.1:PORT/dev` and the number of connections accepted so far.
async fn counting_endpoint() -> (String, Arc<AtomicUsize>) {
    counting_endpoint_with(Duration::from_millis(20)).await
}

async fn counting_endpoint_with(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let app = axum::Router::new().route(
        "/{stage}/@connections/{id}",
        post(move || async move {
            // Long enough that concurrent posts overlap.
            tokio::time::sleep(delay).await;
            axum::http::StatusCode::OK
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}/dev"), accepted)
}

async fn post_all(client: &ManagementClient, count: usize, concurrency: usize) {
    let outcomes: Vec<PostOutcome> = futures::stream::iter(0..count)
        .map(|n| async move { client.post(&format!("c{n}="), b"{}").await })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    assert!(
        outcomes.iter().all(|o| *o == PostOutcome::Delivered),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn connections_ramp_with_demand_and_are_reused() {
    let (endpoint, accepted) = counting_endpoint().await;
    let client = ManagementClient::new(
        &support::sdk_config().await,
        &endpoint,
        Duration::from_secs(5),
    );

    post_all(&client, 1, 1).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one post, one connection"
    );
    post_all(&client, 5, 1).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one at a time reuses it"
    );

    // A fan-out to 10 connections opens at most 10, and 200 more posts 10 at a time open none.
    post_all(&client, 10, 10).await;
    let after_ten = accepted.load(Ordering::SeqCst);
    assert!((2..=10).contains(&after_ten), "{after_ten} connections");
    post_all(&client, 200, 10).await;
    assert!(
        accepted.load(Ordering::SeqCst) <= 10,
        "{} connections",
        accepted.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_endpoint_that_answers_at_once_still_gets_its_connections_reused() {
    let (endpoint, accepted) = counting_endpoint_with(Duration::ZERO).await;
    let client = ManagementClient::new(
        &support::sdk_config().await,
        &endpoint,
        Duration::from_secs(5),
    );
    post_all(&client, 2_000, 20).await;
    let opened = accepted.load(Ordering::SeqCst);
    assert!(
        opened <= 20,
        "{opened} connections for 2,000 posts, 20 at a time"
    );
}

fn script(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> raw_http::Script {
    Arc::new(reply)
}

async fn client_for(endpoint: &str) -> ManagementClient {
    ManagementClient::new(
        &support::sdk_config().await,
        endpoint,
        Duration::from_secs(5),
    )
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_and_nothing_is_sent_twice() {
    // The first answer ends its connection (without saying so): the client must notice before
    // writing the next request into it.
    let (endpoint, seen) = raw_http::start(script(|n| match n {
        0 => Reply::AnswerAndClose(OK.to_vec()),
        _ => Reply::Answer(OK.to_vec()),
    }))
    .await;
    let client = client_for(&endpoint).await;
    assert_eq!(client.post("a", b"1").await, PostOutcome::Delivered);
    raw_http::until(&seen.closed, 1).await;
    assert_eq!(client.post("b", b"2").await, PostOutcome::Delivered);
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        2,
        "each post sent once"
    );
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_answers_and_stray_bytes_end_the_connection() {
    let (endpoint, seen) = raw_http::start(script(|n| match n {
        0 => Reply::Answer(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ),
        // An answer followed by bytes no request asked for.
        1 => Reply::Answer([OK, b"HTTP/1.1 200 OK\r\n"].concat()),
        _ => Reply::Answer(OK.to_vec()),
    }))
    .await;
    let client = client_for(&endpoint).await;
    for id in ["a", "b", "c", "d"] {
        assert_eq!(client.post(id, b"{}").await, PostOutcome::Delivered);
    }
    // a, b: one connection each, not reused; c opens the third, which d reuses.
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 3);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn chunked_and_interim_answers_are_read_to_their_end_and_classified() {
    let (endpoint, seen) = raw_http::start(script(|n| {
        Reply::Answer(match n {
            0 => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
            1 => b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException:http://internal.amazon.com/coral/com.amazonaws.apigateway.management/\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"message\":null}\r\n0\r\n\r\n".to_vec(),
            2 => b"HTTP/1.1 429 Too Many Requests\r\nx-amzn-ErrorType: LimitExceededException\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
            3 => b"HTTP/1.1 403 Forbidden\r\nx-amzn-ErrorType: ForbiddenException\r\ncontent-length: 0\r\n\r\n".to_vec(),
            _ => OK.to_vec(),
        })
    }))
    .await;
    let client = client_for(&endpoint).await;
    assert_eq!(client.post("a", b"{}").await, PostOutcome::Delivered);
    assert_eq!(client.post("b", b"{}").await, PostOutcome::Gone);
    assert_eq!(
        client.post("c", b"{}").await,
        PostOutcome::Retryable("429 LimitExceededException".into())
    );
    assert_eq!(
        client.post("d", b"{}").await,
        PostOutcome::Failed("403 ForbiddenException".into())
    );
    assert_eq!(client.post("e", b"{}").await, PostOutcome::Delivered);
    assert_eq!(
        seen.accepted.load(Ordering::SeqCst),
        1,
        "every answer left the connection reusable"
    );
}

#[tokio::test]
async fn broken_answers_are_retryable_errors_and_never_resent() {
    let cases: [(Reply, &str); 5] = [
        (
            Reply::Close,
            "dispatch failure: the connection closed before any answer",
        ),
        (
            Reply::Answer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
            "unreadable response: a malformed answer",
        ),
        (
            Reply::AnswerAndClose(b"HTTP/1.1 200 OK\r\ncontent-le".to_vec()),
            "unreadable response: the answer's head was cut short",
        ),
        (
            Reply::AnswerAndClose(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}".to_vec()),
            "unreadable response: the answer's body was cut short",
        ),
        (
            Reply::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n".to_vec()),
            "unreadable response: an answer of 10000000 bytes or more",
        ),
    ];
    for (reply, expected) in cases {
        let (endpoint, seen) = raw_http::start(script(move |_| reply.clone())).await;
        let client = client_for(&endpoint).await;
        match client.post("a", b"{}").await {
            PostOutcome::Retryable(reason) => {
                assert!(reason.starts_with(expected), "{reason:?} for {expected:?}")
            }
            other => panic!("{other:?} for {expected:?}"),
        }
        assert_eq!(
            seen.requests.load(Ordering::SeqCst),
            1,
            "{expected}: sent once, not again"
        );
        assert!(matches!(
            client.post("b", b"{}").await,
            PostOutcome::Retryable(_)
        ));
        assert_eq!(
            seen.accepted.load(Ordering::SeqCst),
            2,
            "{expected}: the broken connection was not reused"
        );
    }
}

#[tokio::test]
async fn the_request_is_signed_http_1_1_with_its_length_and_an_encoded_id() {
    let (endpoint, seen) = raw_http::start(script(|_| Reply::Answer(OK.to_vec()))).await;
    let client = client_for(&endpoint).await;
    assert_eq!(
        client.post("L0SM9cOFvHcCIhw=", b"{\"a\":1}").await,
        PostOutcome::Delivered
    );
    let head = seen.heads.lock().unwrap()[0].to_ascii_lowercase();
    let port = endpoint
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert!(
        head.starts_with("post /dev/@connections/l0sm9cofvhccihw%3d http/1.1\r\n"),
        "{head}"
    );
    for header in [
        format!("host: 127.0.0.1:{port}\r\n"),
        "content-length: 7\r\n".to_string(),
        "content-type: application/octet-stream\r\n".to_string(),
        "x-amz-date: ".to_string(),
        "authorization: aws4-hmac-sha256 credential=".to_string(),
    ] {
        assert!(head.contains(&header), "{header:?} missing from {head}");
    }
    assert!(head.ends_with("\r\n\r\n{\"a\":1}"), "{head}");
}
