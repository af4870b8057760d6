//! Helpers shared by the test suites: a real moto server for DynamoDB/SNS/SQS, an AWS SDK
//! configuration that points at it, unique resource names so tests can share one server, and
//! the one definition of the tables tests create ([`tables`]).
//!
//! `scripts/test` starts one moto server and exports `SUMU_MOTO_ENDPOINT`; a plain
//! `cargo test` without it starts a private moto server per test process (from the project's
//! virtualenv) that dies with the process.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

pub mod tables;

pub use tables::{
    create_connections_table, create_history_table, create_members_table,
    create_subscriptions_table,
};

/// Environment variable naming an already running moto server (`http://127.0.0.1:PORT`).
pub const MOTO_ENDPOINT_VAR: &str = "SUMU_MOTO_ENDPOINT";

/// The region every test resource lives in.
pub const REGION: &str = "us-east-1";

/// The repository root (tests run from their crate's directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project's virtualenv `bin/` directory, where `scripts/test` installs moto,
/// airspeed-ext and cargo-lambda.
pub fn venv_bin() -> PathBuf {
    repo_root().join(".venv/bin")
}

/// Environment variable naming the file where `scripts/test` collects the AWS calls of sumu's
/// components for the IAM check (tests/iam); sumu-local started by a test records its
/// management-API calls there too.
pub const AWS_CALL_LOG_VAR: &str = "SUMU_AWS_CALL_LOG";

/// The call log of this run, when `scripts/test` set one.
pub fn aws_call_log() -> Option<PathBuf> {
    std::env::var_os(AWS_CALL_LOG_VAR)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// The endpoint of a running moto server: `SUMU_MOTO_ENDPOINT`, or one started now.
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| match std::env::var(MOTO_ENDPOINT_VAR) {
            Ok(endpoint) if !endpoint.is_empty() => endpoint,
            _ => start_private_moto(),
        })
        .clone()
}

fn start_private_moto() -> String {
    let server = venv_bin().join("moto_server");
    assert!(
        server.exists(),
        "{} not found: run scripts/test (it installs moto into .venv) or set {MOTO_ENDPOINT_VAR}",
        server.display()
    );
    let port = free_port();
    let mut command = Command::new(&server);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; the child only asks to be killed with its parent,
    // so no moto server outlives the test process that started it.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    // PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, and a test's
    // thread ends with its test: spawn from a thread that lives as long as the server (it
    // waits on it, which also reaps it so it cannot linger as a zombie).
    let (spawned, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || match command.spawn() {
        Ok(mut child) => {
            let _ = spawned.send(Ok(()));
            let _ = child.wait();
        }
        Err(error) => {
            let _ = spawned.send(Err(error));
        }
    });
    started
        .recv()
        .expect("moto spawner thread")
        .expect("start moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_for_port(port, Duration::from_secs(30));
    endpoint
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until something accepts TCP connections on `port`, or panics after `deadline`.
pub fn wait_for_port(port: u16, deadline: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < deadline,
            "nothing listens on 127.0.0.1:{port} after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An SDK configuration for the moto server, with fixed test credentials.
pub async fn aws_config() -> SdkConfig {
    aws_config_for(&moto_endpoint()).await
}

/// An SDK configuration for any AWS-compatible endpoint, with fixed test credentials.
pub async fn aws_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "sumu-tests"))
        .load()
        .await
}

/// A resource name no other test uses, so tests can share one moto server.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The `lookup` a Lambda's `Config::from_lookup` takes, over fixed variables: how the config
/// tests stand in for the process environment.
pub fn lookup_from(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// Subscribes the SQS queue at `queue_url` to `topic_arn` with raw delivery (a back end's
/// subscription: the SQS message is the SNS message, its attributes SQS attributes), with an
/// optional filter policy. Panics on failure: for tests.
pub async fn subscribe_queue_to_topic(
    aws: &SdkConfig,
    topic_arn: &str,
    queue_url: &str,
    filter_policy: Option<&str>,
) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let queue_arn = aws_sdk_sqs::Client::new(aws)
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    let mut subscribe = aws_sdk_sns::Client::new(aws)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true");
    if let Some(policy) = filter_policy {
        subscribe = subscribe.attributes("FilterPolicy", policy);
    }
    subscribe
        .send()
        .await
        .expect("subscribe the queue to the topic");
}
