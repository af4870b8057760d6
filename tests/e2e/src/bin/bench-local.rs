//! `scripts/bench local`: opens N WebSocket clients with development tokens against a running
//! sumu-local and reports connections per second, sumu-local's RSS per 1,000 open connections,
//! and round-trip times: `ping` (a DynamoDB UpdateItem on moto, so moto's time is included) and
//! an unknown action (the MOCK `$default` route: no AWS call, so it is sumu-local's own cost),
//! and `subscribe` / `unsubscribe` (the presence Lambda in-process, one TransactWriteItems on
//! moto each). Every token carries a subscribe grant for `bench/*`; each sample subscribes one
//! client to its own channel and unsubscribes it again, so no client nears the cap.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{stream, SinkExt, StreamExt};
use sumu_local::dev_idp::DevIdentityProvider;
use sumu_wire::{Grants, Pattern};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// `scripts/bench local` runs this against the sumu-local process it started.
#[derive(Parser)]
#[command(
    name = "bench-local",
    about = "Connections, memory and round trips of a running sumu-local"
)]
struct Args {
    /// The WebSocket API (`ws://127.0.0.1:PORT/STAGE`).
    #[arg(long)]
    url: String,
    /// The development signing key sumu-local uses (tokens are minted with it).
    #[arg(long)]
    key_file: PathBuf,
    /// sumu-local's process id (its RSS is read from /proc).
    #[arg(long)]
    pid: u32,
    /// Clients to open and hold.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Handshakes at a time.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Round trips per measured figure.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn round_trips(clients: &mut [Client], text: &str, samples: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(samples);
    let count = clients.len().max(1);
    for sample in 0..samples {
        let Some(client) = clients.get_mut(sample % count) else {
            break;
        };
        let start = Instant::now();
        if client.send(Message::Text(text.into())).await.is_err() {
            continue;
        }
        loop {
            match client.next().await {
                Some(Ok(Message::Text(_))) => break,
                Some(Ok(_)) => continue,
                _ => break,
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    times
}

/// Sends `text` and waits for the reply frame of `type` `expected` (frames of other types, such
/// as presence events, are skipped). `Err` on an error frame or a closed connection.
async fn request(client: &mut Client, text: &str, expected: &str) -> Result<Duration, String> {
    let start = Instant::now();
    client
        .send(Message::Text(text.into()))
        .await
        .map_err(|error| error.to_string())?;
    loop {
        match client.next().await {
            Some(Ok(Message::Text(reply))) => {
                let reply: serde_json::Value =
                    serde_json::from_str(reply.as_str()).unwrap_or_default();
                match reply["type"].as_str() {
                    Some(kind) if kind == expected => return Ok(start.elapsed()),
                    Some("error") => return Err(reply.to_string()),
                    _ => continue,
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("connection closed".into()),
        }
    }
}

/// `samples` subscribe round trips, each followed by the unsubscribe round trip of the same
/// channel; returns both sorted, and the number of refused or failed requests.
async fn subscribe_round_trips(
    clients: &mut [Client],
    samples: usize,
) -> (Vec<Duration>, Vec<Duration>, usize) {
    let (mut subscribes, mut unsubscribes, mut failures) = (Vec::new(), Vec::new(), 0);
    let count = clients.len().max(1);
    for sample in 0..samples {
        let index = sample % count;
        let Some(client) = clients.get_mut(index) else {
            break;
        };
        let channel = format!("bench/{index}");
        let subscribe = format!(r#"{{"action":"subscribe","channel":"{channel}"}}"#);
        let unsubscribe = format!(r#"{{"action":"unsubscribe","channel":"{channel}"}}"#);
        for (text, expected, times) in [
            (&subscribe, "subscribed", &mut subscribes),
            (&unsubscribe, "unsubscribed", &mut unsubscribes),
        ] {
            match request(client, text, expected).await {
                Ok(time) => times.push(time),
                Err(error) => {
                    if failures < 3 {
                        eprintln!("{expected}: {error}");
                    }
                    failures += 1;
                }
            }
        }
    }
    subscribes.sort();
    unsubscribes.sort();
    (subscribes, unsubscribes, failures)
}

fn report(name: &str, times: &[Duration]) {
    println!(
        "{name:<40} p50 {:>8.3} ms   p99 {:>8.3} ms   ({} samples)",
        percentile(times, 0.50).as_secs_f64() * 1000.0,
        percentile(times, 0.99).as_secs_f64() * 1000.0,
        times.len()
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let idp = DevIdentityProvider::load_or_create(&args.key_file)?;
    let now = sumu_local::protocol::now_ms() / 1000;
    let grants = Grants {
        subscribe: vec![Pattern::parse("bench/*")?],
        publish: Vec::new(),
    };
    let tokens: Vec<String> = (0..args.clients)
        .map(|index| {
            idp.mint_with_grants(
                &format!("bench-{index}"),
                &grants,
                Duration::from_secs(7200),
                now,
            )
        })
        .collect::<Result<_, _>>()?;

    let rss_before = rss_kib(args.pid);
    let started = Instant::now();
    let results: Vec<Result<Client, String>> = stream::iter(tokens)
        .map(|token| {
            let url = format!("{}?authorization={token}", args.url);
            async move {
                // Small client buffers: 10,000 clients at tungstenite's 128 KiB default would
                // take more memory than the server under test.
                let config = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(0);
                tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                    .await
                    .map(|(client, _)| client)
                    .map_err(|error| error.to_string())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut clients = Vec::with_capacity(results.len());
    let mut failures = 0;
    for result in results {
        match result {
            Ok(client) => clients.push(client),
            Err(error) => {
                if failures < 3 {
                    eprintln!("connect failed: {error}");
                }
                failures += 1;
            }
        }
    }
    // Let the sessions settle before measuring memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(args.pid);
    let open = clients.len();
    println!("open connections                         {open} ({failures} failed)");
    println!(
        "connections per second                   {:.0}  ({open} in {:.1} s, {} at a time; each runs the authorizer and a PutItem on moto)",
        open as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        args.concurrency
    );
    println!(
        "sumu-local RSS                           {:.1} MiB before, {:.1} MiB with {open} open",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    if open > 0 {
        let per_connection = rss_after.saturating_sub(rss_before) as f64 / open as f64;
        println!(
            "sumu-local RSS per 1,000 connections     {:.1} MiB  ({per_connection:.1} KiB per connection)",
            per_connection * 1000.0 / 1024.0
        );
    }

    let sample_clients = clients.len().min(50);
    let (probe, _) = clients.split_at_mut(sample_clients);
    let mock = round_trips(probe, r#"{"action":"bench-unknown"}"#, args.samples).await;
    let ping = round_trips(probe, r#"{"action":"ping"}"#, args.samples).await;
    println!("round trips with {open} connections open:");
    report("unknown action ($default, MOCK: no moto)", &mock);
    report("ping (UpdateItem on moto included)", &ping);
    let (subscribes, unsubscribes, failures) = subscribe_round_trips(probe, args.samples).await;
    report("subscribe (TransactWriteItems on moto)", &subscribes);
    report("unsubscribe (TransactWriteItems on moto)", &unsubscribes);
    if failures > 0 {
        println!("subscribe/unsubscribe refused or failed: {failures}");
    }
    drop(clients);
    Ok(())
}
