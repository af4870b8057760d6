//! `scripts/bench poster`: CPU per post and posts/s of the management-API clients, in ONE run,
//! each on one core (a current-thread runtime in a child process of its own, so getrusage is
//! the client's alone), against the same endpoint process per delay:
//!
//! - `lean`: this crate's client ([`management_client::ManagementClient`]: its own HTTP/1.1
//!   exchange + SigV4 with cached keys);
//! - `sdk`: `aws-sdk-apigatewaymanagement` configured as the pusher's `SdkPoster` was;
//! - `floor`: the same HTTP connections as `lean` ([`management_client::http1::HttpPool`]),
//!   unsigned;
//!
//! and, with `--explore`, what the SDK's cost is made of: the SDK with stalled-stream
//! protection off, with a static endpoint resolver, with both, with both and an HTTP
//! connector that answers 200 at once (the SDK's own CPU, no I/O), hyper's connection-level client (the transport before), hyper-util's pooled client
//! and reqwest unsigned (the other transports), and signing alone (`aws-sigv4` against this
//! crate's signer, no I/O).
//!
//! Usage: bench_poster [--count 20000] [--concurrency 200] [--delays 0,20] [--rounds 3] [--explore]
//! Each figure is the median of `--rounds` rounds that interleave the clients.
//! The last lines are one JSON object per delay:
//! `{"bench":"poster","delay_ms":0,"lean_us":…,"sdk_us":…,"floor_us":…,"lean_per_s":…}`.

mod common;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use common::{
    connection_id, run_child, rusage, serve_endpoint, start_endpoint, EndpointArgs, Error,
};
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use management_client::http1::{HttpPool, Origin, IDLE_TIMEOUT};
use management_client::sigv4;
use management_client::{ManagementClient, PostOutcome};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(3);

/// Without a role: the whole benchmark (it re-executes itself for each role).
#[derive(Parser)]
#[command(
    name = "bench_poster",
    about = "scripts/bench poster",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Role {
    /// The fake management endpoint (a child process).
    Endpoint(EndpointArgs),
    /// One client posting `--count` times (a child process).
    Client(ClientArgs),
    /// Signing alone (a child process).
    Sign(SignArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Posts per client and round.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Posts in flight.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Endpoint delays in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "0,20")]
    delays: Vec<u64>,
    /// Rounds interleaving the clients; each figure is their median.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also measure what the SDK's cost is made of.
    #[arg(long)]
    explore: bool,
}

#[derive(Args)]
struct ClientArgs {
    /// Which client (`lean`, `sdk`, `floor`, or one of `--explore`'s).
    #[arg(long)]
    client: String,
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
}

#[derive(Args)]
struct SignArgs {
    /// `aws-sigv4` or this crate's signer (`lean`).
    #[arg(long)]
    signer: String,
    #[arg(long, default_value_t = 20_000)]
    count: u64,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    // One core per client: everything on this thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.role {
        Some(Role::Endpoint(args)) => {
            // The endpoint may use both cores: it must not be what limits the clients.
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve_endpoint(args.delay_ms))
        }
        Some(Role::Client(args)) => runtime.block_on(client(&args)),
        Some(Role::Sign(args)) => sign(&args),
        None => orchestrate(&cli.run),
    }
}

// ---- the clients (child processes) ----

/// `aws-sdk-apigatewaymanagement`, variations of the configuration the pusher used.
struct SdkPoster {
    client: aws_sdk_apigatewaymanagement::Client,
}

#[derive(Debug)]
struct StaticEndpoint(String);

impl aws_sdk_apigatewaymanagement::config::endpoint::ResolveEndpoint for StaticEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        _params: &'a aws_sdk_apigatewaymanagement::config::endpoint::Params,
    ) -> aws_smithy_runtime_api::client::endpoint::EndpointFuture<'a> {
        aws_smithy_runtime_api::client::endpoint::EndpointFuture::ready(Ok(
            aws_smithy_types::endpoint::Endpoint::builder()
                .url(self.0.clone())
                .build(),
        ))
    }
}

/// An HTTP client that answers every request 200 at once: what remains is the SDK's own work.
#[derive(Debug, Clone)]
struct Instant200;

impl aws_smithy_runtime_api::client::http::HttpConnector for Instant200 {
    fn call(
        &self,
        _request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Ok(
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(200).expect("200"),
                aws_smithy_types::body::SdkBody::empty(),
            ),
        ))
    }
}

impl aws_smithy_runtime_api::client::http::HttpClient for Instant200 {
    fn http_connector(
        &self,
        _settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
    }
}

impl SdkPoster {
    /// `sdk`: exactly the pusher's former `SdkPoster::new`; the flags change one thing each.
    fn new(
        sdk_config: &aws_config::SdkConfig,
        endpoint: &str,
        no_stall_protection: bool,
        static_endpoint: bool,
        instant_http: bool,
    ) -> Self {
        let mut config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk_config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(TIMEOUT)
                    .operation_attempt_timeout(TIMEOUT)
                    .build(),
            );
        config = if static_endpoint {
            config.endpoint_resolver(StaticEndpoint(endpoint.to_string()))
        } else {
            config.endpoint_url(endpoint)
        };
        if no_stall_protection {
            config = config.stalled_stream_protection(
                aws_sdk_apigatewaymanagement::config::StalledStreamProtectionConfig::disabled(),
            );
        }
        if instant_http {
            config = config.http_client(Instant200);
        }
        SdkPoster {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config.build()),
        }
    }

    async fn post(&self, connection_id: &str, data: &[u8]) -> bool {
        self.client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await
            .is_ok()
    }
}

/// `floor`: the client's HTTP connections ([`HttpPool`]), the same pool, no signing, no
/// classification beyond the status.
struct FloorPoster {
    pool: HttpPool,
    base_path: String,
}

impl FloorPoster {
    async fn post(&self, connection_id: &str, data: &[u8]) -> bool {
        let head = format!(
            "POST {}/@connections/{} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n",
            self.base_path,
            sigv4::encode_segment(connection_id),
            data.len()
        );
        matches!(
            tokio::time::timeout(TIMEOUT, self.pool.send(head.as_bytes(), data)).await,
            Ok(Ok(answer)) if (200..300).contains(&answer.status)
        )
    }
}

/// `http://127.0.0.1:PORT/stage` → `127.0.0.1:PORT` and `/stage`.
fn http_parts(endpoint: &str) -> Result<(&str, String), Error> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or("the bench is http only")?;
    let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((address, format!("/{path}")))
}

/// `127.0.0.1:PORT` as the HTTP pool's origin.
fn origin(address: &str) -> Result<Origin, Error> {
    let (host, port) = address.split_once(':').ok_or("no port")?;
    Ok(Origin {
        host: host.to_string(),
        port: port.parse()?,
        tls: false,
    })
}

/// The hyper stack the client's HTTP pool replaced: TCP (`TCP_NODELAY`), then TLS for
/// `https`, plain `http` here.
type HyperConnector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

fn hyper_connector() -> HyperConnector {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs has the default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// `hyper-floor`: hyper's connection-level client with the same pool (a stack of ready
/// connections, opened on demand), unsigned — the client's transport before its own.
struct HyperFloor {
    connector: HyperConnector,
    origin: hyper::Uri,
    base_path: String,
    idle: std::sync::Mutex<Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>,
}

impl HyperFloor {
    async fn post(&self, connection_id: &str, data: &[u8]) -> bool {
        let work = async {
            let path = format!(
                "{}/@connections/{}",
                self.base_path,
                sigv4::encode_segment(connection_id)
            );
            let request = hyper::Request::post(path)
                .header(hyper::header::HOST, "127.0.0.1")
                .body(Full::new(Bytes::copy_from_slice(data)))
                .ok()?;
            let ready = self.idle.lock().ok()?.pop();
            let mut sender = match ready.filter(|sender| sender.is_ready()) {
                Some(sender) => sender,
                None => {
                    use tower_service::Service;
                    let mut connector = self.connector.clone();
                    let io = connector.call(self.origin.clone()).await.ok()?;
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(io).await.ok()?;
                    tokio::spawn(connection);
                    sender
                }
            };
            let response = sender.try_send_request(request).await.ok()?;
            let ok = response.status().is_success();
            response.into_body().collect().await.ok()?;
            self.idle.lock().ok()?.push(sender);
            Some(ok)
        };
        matches!(tokio::time::timeout(TIMEOUT, work).await, Ok(Some(true)))
    }
}

/// `hyper-util-floor`: hyper-util's pooled client (what the pusher used first), unsigned, with
/// the same TLS connector and idle timeout.
struct HyperUtilFloor {
    client: hyper_util::client::legacy::Client<HyperConnector, Full<Bytes>>,
    base: String,
}

impl HyperUtilFloor {
    fn new(base: &str) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(IDLE_TIMEOUT)
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(hyper_connector());
        HyperUtilFloor {
            client,
            base: base.to_string(),
        }
    }

    async fn post(&self, connection_id: &str, data: &[u8]) -> bool {
        let uri = format!(
            "{}/@connections/{}",
            self.base,
            sigv4::encode_segment(connection_id)
        );
        let Ok(request) = hyper::Request::post(uri).body(Full::new(Bytes::copy_from_slice(data)))
        else {
            return false;
        };
        let work = async {
            let response = self.client.request(request).await.ok()?;
            let ok = response.status().is_success();
            response.into_body().collect().await.ok()?;
            Some(ok)
        };
        matches!(tokio::time::timeout(TIMEOUT, work).await, Ok(Some(true)))
    }
}

/// `reqwest-floor`: reqwest (the project's other HTTP client), unsigned.
struct ReqwestPoster {
    client: reqwest::Client,
    base: String,
}

impl ReqwestPoster {
    async fn post(&self, connection_id: &str, data: &[u8]) -> bool {
        let uri = format!(
            "{}/@connections/{}",
            self.base,
            sigv4::encode_segment(connection_id)
        );
        match self.client.post(uri).body(data.to_vec()).send().await {
            Ok(response) => {
                let ok = response.status().is_success();
                response.bytes().await.is_ok() && ok
            }
            Err(_) => false,
        }
    }
}

// One value per process: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Client {
    Lean(ManagementClient),
    Sdk(SdkPoster),
    Floor(FloorPoster),
    Reqwest(ReqwestPoster),
    HyperUtil(HyperUtilFloor),
    Hyper(HyperFloor),
}

impl Client {
    async fn post(&self, connection_id: &str, data: &[u8]) -> bool {
        match self {
            Client::Lean(poster) => {
                poster.post(connection_id, data).await == PostOutcome::Delivered
            }
            Client::Sdk(poster) => poster.post(connection_id, data).await,
            Client::Floor(poster) => poster.post(connection_id, data).await,
            Client::Reqwest(poster) => poster.post(connection_id, data).await,
            Client::HyperUtil(poster) => poster.post(connection_id, data).await,
            Client::Hyper(poster) => poster.post(connection_id, data).await,
        }
    }
}

async fn client(args: &ClientArgs) -> Result<(), Error> {
    let kind = args.client.clone();
    let endpoint = args.endpoint.clone();
    let count = args.count;
    let concurrency = args.concurrency;
    // As the pusher's main loads it (defaults: identity cache, stalled-stream protection…), with
    // static credentials carrying a session token as in Lambda, so no network is needed.
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN".repeat(20)),
            Some(SystemTime::now() + Duration::from_secs(3600)),
            "bench",
        ))
        .load()
        .await;
    let client = match kind.as_str() {
        "lean" => Client::Lean(ManagementClient::new(&sdk_config, &endpoint, TIMEOUT)),
        "sdk" => Client::Sdk(SdkPoster::new(&sdk_config, &endpoint, false, false, false)),
        "sdk-no-stall-protection" => {
            Client::Sdk(SdkPoster::new(&sdk_config, &endpoint, true, false, false))
        }
        "sdk-static-endpoint" => {
            Client::Sdk(SdkPoster::new(&sdk_config, &endpoint, false, true, false))
        }
        "sdk-tuned" => Client::Sdk(SdkPoster::new(&sdk_config, &endpoint, true, true, false)),
        "sdk-tuned-no-io" => Client::Sdk(SdkPoster::new(&sdk_config, &endpoint, true, true, true)),
        "floor" => {
            let (address, path) = http_parts(&endpoint)?;
            Client::Floor(FloorPoster {
                pool: HttpPool::new(origin(address)?),
                base_path: path,
            })
        }
        "hyper-floor" => {
            let (address, path) = http_parts(&endpoint)?;
            Client::Hyper(HyperFloor {
                connector: hyper_connector(),
                origin: format!("http://{address}").parse()?,
                base_path: path,
                idle: std::sync::Mutex::new(Vec::new()),
            })
        }
        "hyper-util-floor" => Client::HyperUtil(HyperUtilFloor::new(&endpoint)),
        "reqwest-floor" => Client::Reqwest(ReqwestPoster {
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(50))
                .timeout(TIMEOUT)
                .build()?,
            base: endpoint.clone(),
        }),
        other => return Err(format!("unknown client {other:?}").into()),
    };
    let payload = serde_json::to_vec(&serde_json::from_str::<Value>(common::PAYLOAD)?)?;
    // A short warm-up opens the pool, so every client is measured kept-alive.
    for n in 0..concurrency.min(50) as u64 {
        client.post(&connection_id(n), &payload).await;
    }
    let (cpu_before, _) = rusage();
    let started = Instant::now();
    let delivered = futures::stream::iter(0..count)
        .map(|n| {
            let (client, payload) = (&client, &payload);
            async move { client.post(&connection_id(n), payload).await }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let elapsed = started.elapsed();
    let (cpu_after, max_rss_kib) = rusage();
    println!(
        "{}",
        json!({"delivered": delivered, "elapsed_s": elapsed.as_secs_f64(),
            "cpu_s": (cpu_after - cpu_before).as_secs_f64(), "max_rss_kib": max_rss_kib})
    );
    Ok(())
}

/// Signing alone, `--count` times: `aws-sigv4` (what the SDK runs per request) or this crate's
/// signer with its day key cached.
fn sign(args: &SignArgs) -> Result<(), Error> {
    let signer = args.signer.clone();
    let count = args.count;
    let payload = common::PAYLOAD.as_bytes();
    let keys = sigv4::Keys {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN".repeat(20)),
    };
    let host = "abc123.execute-api.us-east-1.amazonaws.com";
    let mut total = 0usize;
    let (cpu_before, _) = rusage();
    match signer.as_str() {
        "aws-sigv4" => {
            let identity = aws_credential_types::Credentials::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                keys.session_token.clone(),
                None,
                "bench",
            )
            .into();
            for n in 0..count {
                let url = format!(
                    "https://{host}/prod/@connections/{}",
                    sigv4::encode_segment(&connection_id(n))
                );
                let params = aws_sigv4::sign::v4::SigningParams::builder()
                    .identity(&identity)
                    .region("us-east-1")
                    .name("execute-api")
                    .time(SystemTime::now())
                    .settings(aws_sigv4::http_request::SigningSettings::default())
                    .build()?
                    .into();
                let request = aws_sigv4::http_request::SignableRequest::new(
                    "POST",
                    &url,
                    [("host", host)].into_iter(),
                    aws_sigv4::http_request::SignableBody::Bytes(payload),
                )?;
                let (instructions, _) =
                    aws_sigv4::http_request::sign(request, &params)?.into_parts();
                total += instructions.headers().count();
            }
        }
        "lean" => {
            let key = sigv4::DayKey::new(keys, "us-east-1", sigv4::Timestamp::now());
            // The client hashes a fan-out's payload once (PayloadCache), not per post.
            let hash = sigv4::sha256_hex(payload);
            for n in 0..count {
                let path = format!(
                    "/prod/@connections/{}",
                    sigv4::encode_segment(&connection_id(n))
                );
                let at = sigv4::Timestamp::now();
                total += key.authorization(host, &path, &at.amz_date(), &hash).len();
            }
        }
        other => return Err(format!("unknown signer {other:?}").into()),
    }
    let (cpu_after, _) = rusage();
    println!(
        "{}",
        json!({"signed": count, "check": total, "cpu_s": (cpu_after - cpu_before).as_secs_f64()})
    );
    Ok(())
}

// ---- the orchestrator ----

fn orchestrate(args: &RunArgs) -> Result<(), Error> {
    let count = args.count;
    let concurrency = args.concurrency;
    let delays = args.delays.clone();
    let explore = args.explore;
    let rounds = args.rounds;
    let mut clients = vec!["lean", "sdk", "floor"];
    if explore {
        clients.extend([
            "sdk-no-stall-protection",
            "sdk-static-endpoint",
            "sdk-tuned",
            "sdk-tuned-no-io",
            "hyper-floor",
            "hyper-util-floor",
            "reqwest-floor",
        ]);
    }
    eprintln!("{count} posts per client and round, {rounds} rounds, concurrency {concurrency}, one core each");
    println!("| endpoint delay | client | CPU per post, median (min–max) of {rounds} | posts/s (one core) | peak RSS |");
    println!("|---:|---|---:|---:|---:|");
    let mut summaries = Vec::new();
    for &delay in &delays {
        let endpoint = start_endpoint(delay)?;
        // Rounds interleave the clients, so a change in the machine's load hits them alike;
        // each figure is the median of its rounds.
        let mut runs: std::collections::HashMap<&str, Vec<(f64, f64, f64)>> =
            std::collections::HashMap::new();
        for _ in 0..rounds {
            for client in &clients {
                let result = run_child(&[
                    "client".into(),
                    "--client".into(),
                    client.to_string(),
                    "--endpoint".into(),
                    endpoint.url.clone(),
                    "--count".into(),
                    count.to_string(),
                    "--concurrency".into(),
                    concurrency.to_string(),
                ])?;
                let number = |key: &str| result[key].as_f64().unwrap_or(f64::NAN);
                let delivered = number("delivered");
                if delivered as u64 != count {
                    eprintln!("warning: {client} delivered {delivered} of {count}");
                }
                runs.entry(client).or_default().push((
                    number("cpu_s") * 1e6 / count as f64,
                    delivered / number("elapsed_s"),
                    number("max_rss_kib") / 1024.0,
                ));
            }
        }
        let mut figures = std::collections::HashMap::new();
        for client in &clients {
            let rounds = &runs[client];
            let cpu: Vec<f64> = rounds.iter().map(|r| r.0).collect();
            let (cpu_us, per_s) = (
                median(&cpu),
                median(&rounds.iter().map(|r| r.1).collect::<Vec<_>>()),
            );
            let spread = cpu.iter().cloned().fold(f64::INFINITY, f64::min)
                ..=cpu.iter().cloned().fold(0.0, f64::max);
            println!(
                "| {delay} ms | {client} | {cpu_us:.1} µs ({:.1}–{:.1}) | {per_s:.0} | {:.1} MiB |",
                spread.start(),
                spread.end(),
                rounds.iter().map(|r| r.2).fold(0.0, f64::max)
            );
            figures.insert(*client, (cpu_us, per_s));
        }
        drop(endpoint);
        let (lean_us, lean_per_s) = figures["lean"];
        let (sdk_us, _) = figures["sdk"];
        let (floor_us, _) = figures["floor"];
        eprintln!(
            "delay {delay} ms: sdk/lean {:.2}×, lean/floor {:.2}×",
            sdk_us / lean_us,
            lean_us / floor_us
        );
        // Written out (not json!), so the keys keep the issue's order.
        summaries.push(format!(
            r#"{{"bench":"poster","delay_ms":{delay},"lean_us":{lean_us:.1},"sdk_us":{sdk_us:.1},"floor_us":{floor_us:.1},"lean_per_s":{lean_per_s:.0}}}"#
        ));
    }
    if explore {
        println!();
        println!("| signing alone | CPU per signature |");
        println!("|---|---:|");
        for signer in ["aws-sigv4", "lean"] {
            let result = run_child(&[
                "sign".into(),
                "--signer".into(),
                signer.into(),
                "--count".into(),
                count.to_string(),
            ])?;
            let cpu_us = result["cpu_s"].as_f64().unwrap_or(f64::NAN) * 1e6 / count as f64;
            println!("| {signer} | {cpu_us:.2} µs |");
        }
    }
    for summary in summaries {
        println!("{summary}");
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
