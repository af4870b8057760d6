use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = demo_backend::Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let backend = demo_backend::AwsDemoBackend::from_sdk_config(&sdk, config);
    lambda_runtime::run(service_fn(|event| demo_backend::handle(event, &backend))).await
}
