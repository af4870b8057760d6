//! The client over real HTTP against a management API shaped like API Gateway's.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use management_client::{DeleteOutcome, ManagementClient, PostOutcome};
use support::management_api::{self, Answer, Event};

/// Real API Gateway connection ids end in `=`, which the client percent-encodes in the path.
const CONNECTION: &str = "L0SM9cOFvHcCIhw=";

async fn client_for(endpoint: &str, timeout: Duration) -> ManagementClient {
    ManagementClient::new(&support::sdk_config().await, endpoint, timeout)
}

#[tokio::test]
async fn the_client_delivers_the_bytes_to_the_decoded_connection_id() {
    let api = management_api::start("dev").await;
    let client = client_for(&api.endpoint, Duration::from_secs(5)).await;
    let outcome = client.post(CONNECTION, br#"{"hello":"world"}"#).await;
    assert_eq!(outcome, PostOutcome::Delivered);
    assert_eq!(
        api.state.received_by(CONNECTION),
        vec![br#"{"hello":"world"}"#.to_vec()]
    );
}

#[tokio::test]
async fn the_client_classifies_aws_error_shapes() {
    let api = management_api::start("dev").await;
    let client = client_for(&api.endpoint, Duration::from_secs(5)).await;
    for (answer, expected) in [
        (Answer::Gone, PostOutcome::Gone),
        (
            Answer::Throttle,
            PostOutcome::Retryable("429 LimitExceededException".into()),
        ),
        (
            Answer::ServerError,
            PostOutcome::Retryable("500 InternalServerErrorException".into()),
        ),
        (
            Answer::Forbidden,
            PostOutcome::Failed("403 ForbiddenException".into()),
        ),
    ] {
        api.state.script("c1", vec![answer]);
        assert_eq!(client.post("c1", b"1").await, expected, "{answer:?}");
    }
    // One try per post: the client does not retry (its caller decides).
    assert_eq!(api.state.requests.load(Ordering::SeqCst), 4);
    assert!(api.state.received_by("c1").is_empty());
}

#[tokio::test]
async fn timeouts_and_unreachable_endpoints_are_retryable() {
    let api = management_api::start("dev").await;
    let client = client_for(&api.endpoint, Duration::from_millis(300)).await;
    api.state
        .script("slow", vec![Answer::Slow(Duration::from_secs(3))]);
    assert_eq!(
        client.post("slow", b"1").await,
        PostOutcome::Retryable("timeout".into())
    );

    let closed = format!("http://127.0.0.1:{}/dev", testkit::free_port());
    let client = ManagementClient::new(
        &support::sdk_config().await,
        &closed,
        Duration::from_secs(2),
    );
    assert!(matches!(
        client.post("c1", b"1").await,
        PostOutcome::Retryable(_)
    ));
}

#[tokio::test]
async fn a_delete_closes_the_connection_after_what_was_posted_and_classifies_aws_error_shapes() {
    let api = management_api::start("dev").await;
    let client = client_for(&api.endpoint, Duration::from_secs(5)).await;
    assert_eq!(
        client.post(CONNECTION, b"last").await,
        PostOutcome::Delivered
    );
    assert_eq!(client.delete(CONNECTION).await, DeleteOutcome::Closed);
    assert_eq!(
        api.state.events_of(CONNECTION),
        vec![Event::Received(b"last".to_vec()), Event::Closed]
    );
    // Closed: a second close and a post find it gone.
    assert_eq!(client.delete(CONNECTION).await, DeleteOutcome::Gone);
    assert_eq!(client.post(CONNECTION, b"1").await, PostOutcome::Gone);
    for (answer, expected) in [
        (
            Answer::Throttle,
            DeleteOutcome::Retryable("429 LimitExceededException".into()),
        ),
        (
            Answer::ServerError,
            DeleteOutcome::Retryable("500 InternalServerErrorException".into()),
        ),
        (
            Answer::Forbidden,
            DeleteOutcome::Failed("403 ForbiddenException".into()),
        ),
    ] {
        api.state.script("c1", vec![answer]);
        assert_eq!(client.delete("c1").await, expected, "{answer:?}");
    }
    assert!(api.state.events_of("c1").is_empty());
    assert_eq!(api.state.closes.load(Ordering::SeqCst), 1);

    let slow = client_for(&api.endpoint, Duration::from_millis(300)).await;
    api.state
        .script("slow", vec![Answer::Slow(Duration::from_secs(3))]);
    assert_eq!(
        slow.delete("slow").await,
        DeleteOutcome::Retryable("timeout".into())
    );
}
