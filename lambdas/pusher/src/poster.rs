//! Posting to one connection through the API Gateway management API.

use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

/// What one post achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// 410: the socket is gone; the item must be pruned.
    Gone,
    /// Worth another try: 429 (throttled), 5xx, a timeout or a broken connection.
    Retryable(String),
    /// Trying again cannot help (403, 413, a malformed request).
    Failed(String),
}

/// The narrow seam between the fan-out logic and the management API.
pub trait Poster: Sync {
    fn post(&self, connection_id: &str, data: &[u8]) -> impl Future<Output = PostOutcome> + Send;
}

/// The management API through `aws-sdk-apigatewaymanagement`, with the SDK's own retries
/// off: the fan-out retries itself, per connection, within the Lambda's remaining time.
#[derive(Debug, Clone)]
pub struct SdkPoster {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl SdkPoster {
    /// `endpoint` is `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` (or
    /// sumu-local's `http://127.0.0.1:PORT/{stage}`).
    pub fn new(sdk_config: &SdkConfig, endpoint: &str, attempt_timeout: Duration) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk_config)
            .endpoint_url(endpoint)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(attempt_timeout)
                    .operation_attempt_timeout(attempt_timeout)
                    .build(),
            )
            .build();
        SdkPoster {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }
}

impl Poster for SdkPoster {
    async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await;
        match result {
            Ok(_) => PostOutcome::Delivered,
            Err(err) => classify(err),
        }
    }
}

fn classify(err: SdkError<PostToConnectionError, HttpResponse>) -> PostOutcome {
    match err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            match context.err() {
                PostToConnectionError::GoneException(_) => PostOutcome::Gone,
                PostToConnectionError::LimitExceededException(_) => {
                    PostOutcome::Retryable("429 LimitExceededException".into())
                }
                other => {
                    let what = format!(
                        "{status} {}",
                        other.meta().code().unwrap_or("unknown error")
                    );
                    match status {
                        410 => PostOutcome::Gone,
                        429 | 500..=599 => PostOutcome::Retryable(what),
                        _ => PostOutcome::Failed(what),
                    }
                }
            }
        }
        SdkError::TimeoutError(_) => PostOutcome::Retryable("timeout".into()),
        SdkError::DispatchFailure(failure) => {
            PostOutcome::Retryable(format!("dispatch failure: {failure:?}"))
        }
        SdkError::ResponseError(_) => PostOutcome::Retryable("unreadable response".into()),
        other => PostOutcome::Failed(other.to_string()),
    }
}
