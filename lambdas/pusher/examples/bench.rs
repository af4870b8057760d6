//! `scripts/bench pusher`: one broadcast through the real handler to N connection items in
//! moto, against a management endpoint that answers after a delay; beside it the endpoint's own
//! capacity with the same client and concurrency but no pusher logic.
//!
//! The lookup (parallel Scan in moto) and the posting phase of the same run are timed apart.
//!
//! Each measurement runs in its own child process (this binary, re-executed), so CPU time
//! (getrusage) and peak RSS are the pusher's alone: the fake endpoint and moto are other
//! processes.
//!
//! Usage: bench [--sizes 1000,10000,50000] [--delays 0,20] [--concurrency 200] [--segments 4]

#[path = "../tests/support/metrics.rs"]
mod metrics;
#[path = "../tests/support/table.rs"]
#[allow(dead_code)]
mod table;

// What the benchmarks share, the fake management endpoint among it: management-client's.
#[path = "../../management-client/examples/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use common::{
    connection_id, run_child, rusage, serve_endpoint, start_endpoint, EndpointArgs, Error, PAYLOAD,
};

use futures::StreamExt;
use lambda_runtime::{Context, LambdaEvent};
use management_client::ManagementClient;
use metrics::RecordedMetrics;
use pusher::{Config, ConnectionItem, ConnectionKey, ConnectionStore, Limits, SdkPusher};
use serde_json::{json, Value};

/// Without a role: the whole benchmark (it re-executes itself for each role).
#[derive(Parser)]
#[command(
    name = "bench",
    about = "scripts/bench pusher",
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
    /// One broadcast through the real handler (a child process).
    Fanout(FanoutArgs),
    /// The endpoint's capacity with the same client and concurrency (a child process).
    Capacity(CapacityArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Connection items per run.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    sizes: Vec<u64>,
    /// Endpoint delays in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "0,20")]
    delays: Vec<u64>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args, Clone)]
struct LimitArgs {
    /// Posts in flight.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Parallel Scan segments.
    #[arg(long, default_value_t = 4)]
    segments: u32,
}

impl LimitArgs {
    /// As child-process arguments.
    fn to_args(&self) -> [String; 4] {
        [
            "--concurrency".into(),
            self.concurrency.to_string(),
            "--segments".into(),
            self.segments.to_string(),
        ]
    }
}

#[derive(Args)]
struct FanoutArgs {
    #[arg(long)]
    table: String,
    #[arg(long)]
    endpoint: String,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args)]
struct CapacityArgs {
    #[arg(long)]
    endpoint: String,
    /// Posts to send.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.role {
        Some(Role::Endpoint(args)) => runtime.block_on(serve_endpoint(args.delay_ms)),
        Some(Role::Fanout(args)) => runtime.block_on(fanout(&args)),
        Some(Role::Capacity(args)) => runtime.block_on(capacity(&args)),
        None => runtime.block_on(orchestrate(&cli.run)),
    }
}

// ---- one broadcast through the real handler (child process) ----

/// Records when the handler logs "targets selected" (the end of the lookup), so the lookup and
/// the posting phase of the *same* run are timed apart.
struct LookupDone(Arc<std::sync::Mutex<Option<Instant>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LookupDone {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "pusher::fanout" {
            if let Ok(mut mark) = self.0.lock() {
                mark.get_or_insert_with(Instant::now);
            }
        }
    }
}

fn limits(args: &LimitArgs) -> Limits {
    Limits {
        post_concurrency: args.concurrency,
        scan_segments: args.segments,
        ..Limits::default()
    }
}

async fn fanout(args: &FanoutArgs) -> Result<(), Error> {
    let table = args.table.clone();
    let endpoint = args.endpoint.clone();
    let limits = limits(&args.limits);
    let segments = limits.scan_segments;
    let config = testkit::aws_config().await;
    let pusher = SdkPusher::from_sdk_config(
        &config,
        &Config {
            connections_table: table,
            // A broadcast never reads it.
            subscriptions_table: "bench-no-subscriptions".into(),
            management_endpoint: endpoint,
            notifications_queue_url: None,
            dead_letter_queue_url: None,
            history_table: None,
            namespaces: Default::default(),
            limits,
        },
    )
    .with_metrics(RecordedMetrics::default());
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(
        json!({"Records": [{
            "messageId": "bench", "body": json!({"data": serde_json::from_str::<Value>(PAYLOAD)?}).to_string(),
            "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}
        }]}),
    )?;

    use tracing_subscriber::layer::SubscriberExt;
    let mark = Arc::new(std::sync::Mutex::new(None));
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("pusher::fanout", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(
        LookupDone(mark.clone()),
        filter,
    ));
    tracing::subscriber::set_global_default(subscriber)?;

    let (cpu_before, _) = rusage();
    let started = Instant::now();
    let response = pusher::handle_sqs(LambdaEvent::new(event, Context::default()), &pusher).await;
    let metrics = pusher.metrics.last();
    let elapsed = started.elapsed();
    let in_run_lookup = mark
        .lock()
        .ok()
        .and_then(|m| *m)
        .map(|at| at.duration_since(started).as_secs_f64());
    let (cpu_after, max_rss_kib) = rusage();
    if !response.batch_item_failures.is_empty() {
        return Err("the broadcast failed".into());
    }

    // The same parallel Scan again, alone, for comparison with the in-run lookup.
    let lookup_started = Instant::now();
    let found: usize = futures::stream::iter(0..segments)
        .map(|segment| pusher.store.scan_segment(segment, segments))
        .buffer_unordered(segments as usize)
        .map(|page| page.map(|items| items.len()).unwrap_or(0))
        .fold(0, |sum, n| async move { sum + n })
        .await;
    let lookup = lookup_started.elapsed();

    println!(
        "{}",
        json!({
            "delivered": metrics.delivered, "failed": metrics.failed, "requeued": metrics.requeued,
            "retried": metrics.retried, "found": found,
            "elapsed_s": elapsed.as_secs_f64(), "rescan_s": lookup.as_secs_f64(),
            "lookup_s": in_run_lookup.unwrap_or(lookup.as_secs_f64()),
            "cpu_s": (cpu_after - cpu_before).as_secs_f64(), "max_rss_kib": max_rss_kib,
        })
    );
    Ok(())
}

// ---- the endpoint's capacity: same client and concurrency, no pusher (child process) ----

async fn capacity(args: &CapacityArgs) -> Result<(), Error> {
    let endpoint = &args.endpoint;
    let count = args.count;
    let limits = limits(&args.limits);
    let config = testkit::aws_config().await;
    let poster = ManagementClient::new(&config, endpoint, limits.post_timeout);
    let payload = serde_json::to_vec(&serde_json::from_str::<Value>(PAYLOAD)?)?;
    let (cpu_before, _) = rusage();
    let started = Instant::now();
    let delivered = futures::stream::iter(0..count)
        .map(|n| {
            let poster = &poster;
            let payload = &payload;
            async move { poster.post(&connection_id(n), payload).await }
        })
        .buffer_unordered(limits.post_concurrency)
        .filter(|outcome| futures::future::ready(*outcome == pusher::PostOutcome::Delivered))
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

// ---- the orchestrator ----

async fn load(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    count: u64,
) -> Result<(), Error> {
    let items: Vec<ConnectionItem> = (0..count)
        .map(|n| ConnectionItem {
            key: ConnectionKey {
                user_id: format!("user-{}", n / 2),
                connection_id: connection_id(n),
            },
            expires_at: Some(4_000_000_000),
        })
        .collect();
    let chunks: Vec<&[ConnectionItem]> = items.chunks(25 * 8).collect();
    futures::stream::iter(chunks)
        .map(|chunk| table::put_items(client, table_name, chunk))
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    Ok(())
}

async fn orchestrate(args: &RunArgs) -> Result<(), Error> {
    let sizes = &args.sizes;
    let delays = &args.delays;
    let concurrency = args.limits.concurrency;
    let segments = args.limits.segments;
    // Children find moto through the variable; the testkit starts one if none is given.
    let moto = testkit::moto_endpoint();
    std::env::set_var(testkit::MOTO_ENDPOINT_VAR, &moto);
    let client = table::dynamodb().await;
    eprintln!("moto at {moto}; post concurrency {concurrency}, {segments} scan segments");

    println!("| connections | endpoint delay | pusher: deliveries/s (end to end) | lookup (Scan in moto) | posting phase: deliveries/s | endpoint capacity: deliveries/s | posting / capacity | CPU per 1,000 deliveries (pusher) | CPU per 1,000 (bare client) | peak RSS (pusher) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &size in sizes {
        let table_name = table::create_table(&client).await;
        let loading = Instant::now();
        load(&client, &table_name, size).await?;
        eprintln!(
            "loaded {size} items in {:.1} s",
            loading.elapsed().as_secs_f64()
        );
        for &delay in delays {
            let endpoint = start_endpoint(delay)?;
            let common = args.limits.to_args();
            let mut fanout_args = vec![
                "fanout".into(),
                "--table".into(),
                table_name.clone(),
                "--endpoint".into(),
                endpoint.url.clone(),
            ];
            fanout_args.extend(common.iter().cloned());
            let fan = run_child(&fanout_args)?;
            let mut capacity_args = vec![
                "capacity".into(),
                "--endpoint".into(),
                endpoint.url.clone(),
                "--count".into(),
                size.to_string(),
            ];
            capacity_args.extend(common.iter().cloned());
            let cap = run_child(&capacity_args)?;
            drop(endpoint);

            let number = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
            let delivered = number(&fan, "delivered");
            if delivered as u64 != size {
                eprintln!("warning: delivered {delivered} of {size}: {fan}");
            }
            let elapsed = number(&fan, "elapsed_s");
            let lookup = number(&fan, "lookup_s");
            let capacity_rate = number(&cap, "delivered") / number(&cap, "elapsed_s");
            // The lookup is timed inside the run, until the handler logs "targets selected".
            let posting = elapsed - lookup;
            let (posting_rate, fraction) = if posting > 0.1 * elapsed {
                let rate = delivered / posting;
                (
                    format!("{rate:.0}"),
                    format!("{:.0} %", 100.0 * rate / capacity_rate),
                )
            } else {
                ("n/a".to_string(), "n/a".to_string())
            };
            println!(
                "| {size} | {delay} ms | {:.0} ({elapsed:.2} s) | {lookup:.2} s | {posting_rate} | {capacity_rate:.0} | {fraction} | {:.1} ms | {:.1} ms | {:.1} MiB |",
                delivered / elapsed,
                1000.0 * number(&fan, "cpu_s") * 1000.0 / delivered,
                1000.0 * number(&cap, "cpu_s") * 1000.0 / number(&cap, "delivered"),
                number(&fan, "max_rss_kib") / 1024.0,
            );
            eprintln!("fanout {fan}\ncapacity {cap}");
        }
    }
    Ok(())
}
