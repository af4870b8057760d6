use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = presence::Config::from_env()?;
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let deps = presence::SdkDeps::from_sdk_config(&sdk_config, config);
    lambda_runtime::run(service_fn(|event| presence::handle(event, &deps))).await
}
