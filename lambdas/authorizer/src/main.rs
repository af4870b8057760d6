use authorizer::{handle, Authorizer, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines for CloudWatch; level from RUST_LOG (default info).
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .without_time()
        .init();
    let authorizer = Authorizer::new(Config::from_env()?);
    run(service_fn(|event: LambdaEvent<_>| {
        handle(event, &authorizer)
    }))
    .await
}
