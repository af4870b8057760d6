use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let pusher = pusher::SdkPusher::from_sdk_config(&sdk_config, &pusher::Config::from_env()?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        pusher::handle(event, &pusher)
    }))
    .await
}
