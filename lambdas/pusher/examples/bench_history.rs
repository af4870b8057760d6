//! `scripts/bench history`: what channel history costs the pusher. moto holds `--subscribers`
//! connections, each subscribed to `room/kept` (a namespace keeping history) and to
//! `lobby/plain` (none). Publications alternate between the two channels, through the real
//! handler (`handle_sqs` with `DynamoStore` and `ManagementClient`), against a management
//! endpoint answering 200 in a child process (so its CPU is not counted here). Per mode it
//! prints the DynamoDB requests the handler sent (counted by an interceptor on its SDK client),
//! the write units they cost (computed from the items written, by DynamoDB's 1 KB rule: moto
//! does not bill), and the handler's CPU time per delivery (getrusage of this process, one
//! current-thread runtime).
//!
//! Usage: bench_history [--subscribers 1000] [--publications 20]

#[path = "../tests/support/metrics.rs"]
mod metrics;
#[path = "../tests/support/table.rs"]
#[allow(dead_code)]
mod table;

#[path = "../../management-client/examples/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use clap::{Args, Parser, Subcommand};
use common::{connection_id, rusage, serve_endpoint, start_endpoint, EndpointArgs, Error, PAYLOAD};
use lambda_runtime::{Context, LambdaEvent};
use management_client::ManagementClient;
use metrics::RecordedMetrics;
use pusher::{
    ConnectionItem, ConnectionKey, DynamoStore, Limits, Pusher, SqsOutbox, SubscriptionItem,
    SubscriptionKey,
};
use serde_json::{json, Value};
use sumu_wire::Namespaces;

const KEPT: &str = "room/kept";
const PLAIN: &str = "lobby/plain";
const LIVE: i64 = 4_000_000_000;

#[derive(Parser)]
#[command(
    name = "bench_history",
    about = "scripts/bench history",
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
}

#[derive(Args)]
struct RunArgs {
    /// Connections, each subscribed to both channels.
    #[arg(long, default_value_t = 1_000)]
    subscribers: u64,
    /// Publications per channel.
    #[arg(long, default_value_t = 20)]
    publications: u64,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    match cli.role {
        Some(Role::Endpoint(args)) => {
            tokio::runtime::Runtime::new()?.block_on(serve_endpoint(args.delay_ms))
        }
        // One thread: getrusage of the process is the handler's CPU.
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(run(&cli.run)),
    }
}

/// Every DynamoDB request of the handler: its operation and, for a write, the bytes of the
/// item it writes (key and attribute names included, as DynamoDB sizes an item).
#[derive(Debug, Default)]
struct Counter(Mutex<Vec<(&'static str, usize)>>);

#[derive(Debug)]
struct Counting(Arc<Counter>);

fn item_bytes(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    aws_sdk_dynamodb::types::AttributeValue::S(s) => s.len(),
                    aws_sdk_dynamodb::types::AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    _ => 1,
                }
        })
        .sum()
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "bench_history::Counting"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let entry = if let Some(put) = input.downcast_ref::<PutItemInput>() {
            ("PutItem", put.item().map_or(0, item_bytes))
        } else if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
            // The state item: channel, offset 0, top, epoch, expires_at (~60 bytes).
            ("UpdateItem", update.key().map_or(0, item_bytes) + 40)
        } else {
            ("read", 0)
        };
        self.0
             .0
            .lock()
            .map_err(|_| "counter poisoned")?
            .push(entry);
        Ok(())
    }
}

async fn run(args: &RunArgs) -> Result<(), Error> {
    let moto = testkit::moto_endpoint();
    std::env::set_var(testkit::MOTO_ENDPOINT_VAR, &moto);
    let client = table::dynamodb().await;
    let connections_table = table::create_table(&client).await;
    let subscriptions_table = table::create_subscriptions_table(&client).await;
    let history_table = testkit::create_history_table(&client).await;
    let connections: Vec<ConnectionItem> = (0..args.subscribers)
        .map(|n| ConnectionItem {
            key: ConnectionKey {
                user_id: format!("user-{n}"),
                connection_id: connection_id(n),
            },
            expires_at: Some(LIVE),
        })
        .collect();
    let subscriptions: Vec<SubscriptionItem> = [KEPT, PLAIN]
        .iter()
        .flat_map(|channel| {
            (0..args.subscribers).map(move |n| SubscriptionItem {
                key: SubscriptionKey {
                    channel: channel.to_string(),
                    connection_id: connection_id(n),
                },
                user_id: format!("user-{n}"),
                expires_at: Some(LIVE),
                subscribed_at: None,
            })
        })
        .collect();
    for chunk in connections.chunks(200) {
        table::put_items(&client, &connections_table, chunk).await;
    }
    for chunk in subscriptions.chunks(200) {
        table::put_subscriptions(&client, &subscriptions_table, chunk).await;
    }

    let endpoint = start_endpoint(0)?;
    let sdk_config = testkit::aws_config().await;
    let counter = Arc::new(Counter::default());
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .interceptor(Counting(counter.clone()))
            .build(),
    );
    let limits = Limits::default();
    let pusher = Pusher {
        store: DynamoStore::new(dynamodb, &connections_table, &subscriptions_table)
            .with_history_table(&history_table),
        poster: ManagementClient::new(&sdk_config, &endpoint.url, limits.post_timeout),
        outbox: SqsOutbox::new(aws_sdk_sqs::Client::new(&sdk_config), None, None),
        metrics: RecordedMetrics::default(),
        limits,
        namespaces: Namespaces::parse(&format!(
            r#"[{{"pattern":"{KEPT}","history_size":1000,"history_ttl_seconds":3600}}]"#
        ))?,
    };
    let data: Value = serde_json::from_str(PAYLOAD)?;

    // Warm up both paths once (connections, TLS-free HTTP pools, allocations).
    for channel in [KEPT, PLAIN] {
        publish(&pusher, channel, &data, "warm").await?;
    }
    let mut cpu: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut delivered: BTreeMap<&str, u64> = BTreeMap::new();
    let mut requests: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut write_units: BTreeMap<&str, usize> = BTreeMap::new();
    for n in 0..args.publications {
        // Alternating, so both modes see the same machine.
        for channel in [KEPT, PLAIN] {
            counter.0.lock().map_err(|_| "counter poisoned")?.clear();
            let (before, _) = rusage();
            let count = publish(&pusher, channel, &data, &n.to_string()).await?;
            let (after, _) = rusage();
            *cpu.entry(channel).or_default() += after - before;
            *delivered.entry(channel).or_default() += count;
            for (operation, bytes) in counter.0.lock().map_err(|_| "counter poisoned")?.iter() {
                *requests
                    .entry(channel)
                    .or_default()
                    .entry(operation)
                    .or_default() += 1;
                if *operation != "read" {
                    *write_units.entry(channel).or_default() += bytes.div_ceil(1024).max(1);
                }
            }
        }
    }
    drop(endpoint);
    let per = |total: usize| total as f64 / args.publications as f64;
    let mut summary = Vec::new();
    for channel in [KEPT, PLAIN] {
        let ops = requests.get(channel).cloned().unwrap_or_default();
        let delivered = delivered[channel];
        let cpu_us = cpu[channel].as_secs_f64() * 1e6;
        println!(
            "{channel}: per publication {:?} DynamoDB requests ({}), {:.1} write units; {} subscribers; CPU {:.2} µs per delivery",
            ops.values().sum::<usize>() as f64 / args.publications as f64,
            ops.iter().map(|(op, n)| format!("{op} {:.1}", per(*n))).collect::<Vec<_>>().join(", "),
            per(write_units.get(channel).copied().unwrap_or(0)),
            args.subscribers,
            cpu_us / delivered as f64,
        );
        summary.push(json!({
            "channel": channel,
            "history": channel == KEPT,
            "requests_per_publication": ops.iter().map(|(op, n)| (op.to_string(), per(*n))).collect::<BTreeMap<_, _>>(),
            "write_units_per_publication": per(write_units.get(channel).copied().unwrap_or(0)),
            "cpu_us_per_delivery": cpu_us / delivered as f64,
            "deliveries": delivered,
        }));
    }
    println!("{}", Value::Array(summary));
    Ok(())
}

/// One publication through the handler; returns how many connections it reached.
async fn publish(
    pusher: &Pusher<DynamoStore, ManagementClient, SqsOutbox, RecordedMetrics>,
    channel: &str,
    data: &Value,
    id: &str,
) -> Result<u64, Error> {
    let body = json!({"channels": [channel], "data": data});
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(json!({
        "Records": [{"messageId": format!("{channel}-{id}"), "body": body.to_string(),
            "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}}]
    }))?;
    let response = pusher::handle_sqs(LambdaEvent::new(event, Context::default()), pusher).await;
    if !response.batch_item_failures.is_empty() {
        return Err(format!("the publication to {channel} failed").into());
    }
    Ok(pusher.metrics.last().delivered)
}
