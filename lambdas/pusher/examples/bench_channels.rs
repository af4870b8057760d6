//! `scripts/bench channels`: what one publication reads. moto holds 50,000 connection items and
//! a subscriptions table with every one of those connections subscribed somewhere; 1,000 of
//! them are subscribed to `room/big` (exactly, through `room/*`, through `*`, through two
//! patterns at once, or with an expired item). ONE publication to `room/big` runs through the
//! real handler (`handle_sqs` with `DynamoStore`, `ManagementClient`) against a management
//! endpoint answering 200, and every DynamoDB request the handler sends is counted by an
//! interceptor on its SDK client: the operation, the table, the partition queried, and the
//! `Count` and `ScannedCount` DynamoDB (here moto) answered. No FilterExpression is used, so
//! `ScannedCount` is the number of items read.
//!
//! Usage: bench_channels [--connections 50000] [--subscribers 1000]

#[path = "../tests/support/metrics.rs"]
mod metrics;
#[path = "../tests/support/table.rs"]
#[allow(dead_code)]
mod table;

// What the benchmarks share, the fake management endpoint among it: management-client's.
#[path = "../../management-client/examples/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::scan::{ScanInput, ScanOutput};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use clap::{Args, Parser, Subcommand};
use common::{connection_id, serve_endpoint, start_endpoint, EndpointArgs, Error, PAYLOAD};
use futures::StreamExt;
use lambda_runtime::{Context, LambdaEvent};
use management_client::ManagementClient;
use metrics::RecordedMetrics;
use pusher::{
    ConnectionItem, ConnectionKey, DynamoStore, Limits, Pusher, SqsOutbox, SubscriptionItem,
    SubscriptionKey,
};
use serde_json::{json, Value};

const CHANNEL: &str = "room/big";
const LIVE: i64 = 4_000_000_000;
const EXPIRED: i64 = 1_000;

/// Without a role: the benchmark.
#[derive(Parser)]
#[command(
    name = "bench_channels",
    about = "scripts/bench channels",
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
    /// Connection items in the table.
    #[arg(long, default_value_t = 50_000)]
    connections: u64,
    /// Of them, subscribed to the channel.
    #[arg(long, default_value_t = 1_000)]
    subscribers: u64,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.role {
        Some(Role::Endpoint(args)) => runtime.block_on(serve_endpoint(args.delay_ms)),
        None => runtime.block_on(run(&cli.run)),
    }
}

// ---- counting what the handler asks DynamoDB ----

/// One DynamoDB request of the handler, as its SDK client saw it.
#[derive(Debug, Clone, Default)]
struct Request {
    operation: String,
    table: String,
    /// The `:ch` value of a Query of the subscriptions table.
    partition: String,
    count: i32,
    scanned: i32,
}

#[derive(Debug, Default)]
struct Counter(Mutex<Vec<Request>>);

/// Which entry of the counter this operation fills in (kept in the operation's config bag).
#[derive(Debug, Clone, Copy)]
struct Slot(usize);

impl Storable for Slot {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug)]
struct Counting(Arc<Counter>);

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "bench_channels::Counting"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The operation is told by its input's type: the handler only Queries, Scans and
        // writes in batches.
        let input = context.input();
        let mut request = Request {
            operation: if input.downcast_ref::<QueryInput>().is_some() {
                "Query"
            } else if input.downcast_ref::<ScanInput>().is_some() {
                "Scan"
            } else if input.downcast_ref::<BatchWriteItemInput>().is_some() {
                "BatchWriteItem"
            } else {
                "other"
            }
            .to_string(),
            ..Request::default()
        };
        if let Some(query) = input.downcast_ref::<QueryInput>() {
            request.table = query.table_name().unwrap_or_default().to_string();
            request.partition = query
                .expression_attribute_values()
                .and_then(|values| values.get(":ch"))
                .and_then(|value| value.as_s().ok())
                .cloned()
                .unwrap_or_default();
        } else if let Some(scan) = input.downcast_ref::<ScanInput>() {
            request.table = scan.table_name().unwrap_or_default().to_string();
        }
        let mut requests = self.0 .0.lock().map_err(|_| "counter poisoned")?;
        cfg.interceptor_state().store_put(Slot(requests.len()));
        requests.push(request);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Slot(slot)) = cfg.load::<Slot>().copied() else {
            return Ok(());
        };
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        let counts = if let Some(query) = output.downcast_ref::<QueryOutput>() {
            Some((query.count(), query.scanned_count()))
        } else {
            output
                .downcast_ref::<ScanOutput>()
                .map(|scan| (scan.count(), scan.scanned_count()))
        };
        if let (Some((count, scanned)), Some(request)) = (
            counts,
            self.0
                 .0
                .lock()
                .map_err(|_| "counter poisoned")?
                .get_mut(slot),
        ) {
            request.count = count;
            request.scanned = scanned;
        }
        Ok(())
    }
}

// ---- the data ----

/// DynamoDB's size of an item (attribute names plus values; a number is about one byte per
/// two significant digits plus one), which is what a Query is billed by.
fn item_size(item: &SubscriptionItem) -> usize {
    let number = |n: i64| n.to_string().len().div_ceil(2) + 1;
    let expires_at = item.expires_at.unwrap_or(0);
    "channel".len()
        + item.key.channel.len()
        + "connection_id".len()
        + item.key.connection_id.len()
        + "user_id".len()
        + item.user_id.len()
        + "expires_at".len()
        + number(expires_at)
        + "subscribed_at".len()
        + number(1_700_000_000_000)
        + "counted".len()
        + 1
}

/// Connection n is user `user-{n/2}`'s. Connections 0..subscribers are subscribed to
/// `room/big`: 2 % through `*`, 38 % through `room/*`, 50 % exactly, 5 % through both `room/big`
/// and `room/*` (delivered once), 5 % with an expired `room/big` item. Every other connection
/// is subscribed to one of 1,000 other rooms, or below `lobby`.
fn subscriptions(connections: u64, subscribers: u64) -> Vec<SubscriptionItem> {
    let item = |pattern: &str, n: u64, expires_at: i64| SubscriptionItem {
        key: SubscriptionKey {
            channel: pattern.to_string(),
            connection_id: connection_id(n),
        },
        user_id: format!("user-{}", n / 2),
        expires_at: Some(expires_at),
        subscribed_at: None,
    };
    let mut items = Vec::new();
    for n in 0..connections {
        let share = if n < subscribers {
            n * 100 / subscribers
        } else {
            100
        };
        match share {
            0..=1 => items.push(item("*", n, LIVE)),
            2..=39 => items.push(item("room/*", n, LIVE)),
            40..=89 => items.push(item(CHANNEL, n, LIVE)),
            90..=94 => {
                items.push(item(CHANNEL, n, LIVE));
                items.push(item("room/*", n, LIVE));
            }
            95..=99 => items.push(item(CHANNEL, n, EXPIRED)),
            _ if n % 5 == 0 => items.push(item(&format!("lobby/{}", n % 100), n, LIVE)),
            _ => items.push(item(&format!("room/r{}", n % 1000), n, LIVE)),
        }
    }
    items
}

async fn load(
    client: &aws_sdk_dynamodb::Client,
    connections_table: &str,
    subscriptions_table: &str,
    connections: u64,
    subscriptions: &[SubscriptionItem],
) {
    let items: Vec<ConnectionItem> = (0..connections)
        .map(|n| ConnectionItem {
            key: ConnectionKey {
                user_id: format!("user-{}", n / 2),
                connection_id: connection_id(n),
            },
            expires_at: Some(LIVE),
        })
        .collect();
    futures::stream::iter(items.chunks(200))
        .map(|chunk| table::put_items(client, connections_table, chunk))
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    futures::stream::iter(subscriptions.chunks(200))
        .map(|chunk| table::put_subscriptions(client, subscriptions_table, chunk))
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
}

// ---- the run ----

async fn run(args: &RunArgs) -> Result<(), Error> {
    let connections = args.connections;
    let subscribers = args.subscribers;
    if subscribers > connections {
        return Err("--subscribers cannot exceed --connections".into());
    }
    let moto = testkit::moto_endpoint();
    std::env::set_var(testkit::MOTO_ENDPOINT_VAR, &moto);
    let client = table::dynamodb().await;
    let connections_table = table::create_table(&client).await;
    let subscriptions_table = table::create_subscriptions_table(&client).await;
    let items = subscriptions(connections, subscribers);
    let started = std::time::Instant::now();
    load(
        &client,
        &connections_table,
        &subscriptions_table,
        connections,
        &items,
    )
    .await;
    eprintln!(
        "moto at {moto}: loaded {connections} connection items and {} subscription items in {:.0} s",
        items.len(),
        started.elapsed().as_secs_f64()
    );

    // The pusher as `SdkPusher::from_sdk_config` builds it, with the counter on its DynamoDB
    // client.
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
        store: DynamoStore::new(dynamodb, &connections_table, &subscriptions_table),
        poster: ManagementClient::new(&sdk_config, &endpoint.url, limits.post_timeout),
        outbox: SqsOutbox::new(aws_sdk_sqs::Client::new(&sdk_config), None, None),
        metrics: RecordedMetrics::default(),
        limits,
        namespaces: Default::default(),
    };
    let body = json!({"channels": [CHANNEL], "data": serde_json::from_str::<Value>(PAYLOAD)?});
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(json!({
        "Records": [{"messageId": "bench", "body": body.to_string(), "eventSource": "aws:sqs",
            "attributes": {}, "messageAttributes": {}}]
    }))?;
    let started = std::time::Instant::now();
    let response = pusher::handle_sqs(LambdaEvent::new(event, Context::default()), &pusher).await;
    let metrics = pusher.metrics.last();
    let elapsed = started.elapsed();
    drop(endpoint);
    if !response.batch_item_failures.is_empty() {
        return Err("the publication failed".into());
    }

    let requests = counter.0.lock().map_err(|_| "counter poisoned")?.clone();
    let mut by_operation: BTreeMap<String, usize> = BTreeMap::new();
    for request in &requests {
        *by_operation.entry(request.operation.clone()).or_default() += 1;
    }
    let queries: Vec<&Request> = requests
        .iter()
        .filter(|r| r.operation == "Query" && r.table == subscriptions_table)
        .collect();
    let read: i64 = queries.iter().map(|q| i64::from(q.scanned)).sum();
    let scanned_elsewhere: i64 = requests
        .iter()
        .filter(|r| !(r.operation == "Query" && r.table == subscriptions_table))
        .map(|r| i64::from(r.scanned))
        .sum();
    // Billing, by DynamoDB's rules: one page per partition here (each under 1 MB), rounded
    // up to 4 KB, half a read unit per 4 KB (eventually consistent).
    let mut bytes: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        *bytes.entry(item.key.channel.as_str()).or_default() += item_size(item);
    }
    let mut read_units = 0.0;
    for query in &queries {
        let size = bytes.get(query.partition.as_str()).copied().unwrap_or(0);
        read_units += 0.5 * size.div_ceil(4096).max(1) as f64;
    }

    println!(
        "one publication to {CHANNEL}: {connections} connection items, {} subscription items, {subscribers} connections subscribed to {CHANNEL}",
        items.len()
    );
    println!("DynamoDB requests the handler sent (counted on its SDK client): {by_operation:?}");
    for query in &queries {
        println!(
            "  Query {:<10} read {:>6} items (ScannedCount), returned {:>6} (Count)",
            query.partition, query.scanned, query.count
        );
    }
    println!("subscription items read: {read} (by {} Queries); items read by any other request: {scanned_elsewhere}", queries.len());
    println!(
        "delivered {}, stale (expired items pruned) {}, failed {}; {:.2} s end to end in moto",
        metrics.delivered,
        metrics.stale,
        metrics.failed,
        elapsed.as_secs_f64()
    );
    println!(
        "read cost by DynamoDB's sizing rules (moto does not bill): {read_units} read request units for {:.0} KB of items",
        queries
            .iter()
            .map(|q| bytes.get(q.partition.as_str()).copied().unwrap_or(0))
            .sum::<usize>() as f64
            / 1000.0
    );
    println!(
        "{}",
        json!({"connections": connections, "subscription_items": items.len(),
            "subscribers": subscribers, "queries": queries.len(), "items_read": read,
            "items_read_elsewhere": scanned_elsewhere, "requests": by_operation,
            "delivered": metrics.delivered, "stale": metrics.stale,
            "read_request_units": read_units})
    );
    Ok(())
}
