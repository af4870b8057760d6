use authorizer::{handle, Authorizer, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().without_time().init();
    let authorizer = Authorizer::new(Config::from_env()?);
    run(service_fn(|event: LambdaEvent<_>| {
        handle(event, &authorizer)
    }))
    .await
}
