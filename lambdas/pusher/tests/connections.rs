//! The poster's kept-alive connections: they ramp with demand and are reused, against a real
//! HTTP server on 127.0.0.1:0 that counts the TCP connections it accepts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::serve::ListenerExt;
use futures::StreamExt;
use pusher::{LeanPoster, PostOutcome, Poster};

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

async fn post_all(poster: &LeanPoster, count: usize, concurrency: usize) {
    let outcomes: Vec<PostOutcome> = futures::stream::iter(0..count)
        .map(|n| async move { poster.post(&format!("c{n}="), b"{}").await })
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
    let poster = LeanPoster::new(
        &testkit::aws_config().await,
        &endpoint,
        Duration::from_secs(5),
    );

    post_all(&poster, 1, 1).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one post, one connection"
    );
    post_all(&poster, 5, 1).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one at a time reuses it"
    );

    // A fan-out to 10 connections opens at most 10, and 200 more posts 10 at a time open none.
    post_all(&poster, 10, 10).await;
    let after_ten = accepted.load(Ordering::SeqCst);
    assert!((2..=10).contains(&after_ten), "{after_ten} connections");
    post_all(&poster, 200, 10).await;
    assert!(
        accepted.load(Ordering::SeqCst) <= 10,
        "{} connections",
        accepted.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_endpoint_that_answers_at_once_still_gets_its_connections_reused() {
    let (endpoint, accepted) = counting_endpoint_with(Duration::ZERO).await;
    let poster = LeanPoster::new(
        &testkit::aws_config().await,
        &endpoint,
        Duration::from_secs(5),
    );
    post_all(&poster, 2_000, 20).await;
    let opened = accepted.load(Ordering::SeqCst);
    assert!(
        opened <= 20,
        "{opened} connections for 2,000 posts, 20 at a time"
    );
}
