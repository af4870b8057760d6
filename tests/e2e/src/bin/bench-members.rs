//! `scripts/bench members`: what channel members cost, through sumu-local and the real
//! presence and pusher handlers in this process against moto (every DynamoDB request counted
//! at the proxy in front of moto, by operation).
//!
//! 1. A join in a room of `--room` members (`join_leave` and `lifecycle_events`): the DynamoDB
//!    requests of everything the join sets off (the subscribe, the stream's member and channel
//!    items, the gauge, the pusher's lookup of the subscribers) and how many subscribers got
//!    the `join` frame.
//! 2. The extra cost of lifecycle detection: the DynamoDB requests of `--samples` subscribes to
//!    channels of a namespace without member tracking, then to channels of a `lifecycle_events`
//!    one, per subscribe, and the subscribe's reply time in both.
//! 3. A presence question on a channel of `--members` members (items written as a back end
//!    would): items read, pages, reply bytes and the time until the last page arrived.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use clap::Parser;
use e2e::channels::grants;
use e2e::proxy::forwarded_calls;
use e2e::{next_text, now_secs, send_text, Client, Local};
use futures::future::join_all;
use serde_json::{json, Value};
use sumu_wire::subscriptions;

#[derive(Parser)]
#[command(name = "bench-members", about = "What channel members cost")]
struct Args {
    /// Members of the room a user joins.
    #[arg(long, default_value_t = 100)]
    room: usize,
    /// Subscribes measured per kind of namespace.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Members of the channel the presence question is asked about.
    #[arg(long, default_value_t = 1000)]
    members: usize,
}

const NAMESPACES: &str = r#"[{"pattern":"room/*","join_leave":true,"lifecycle_events":true,"max_members":1000},
                             {"pattern":"quiet/*","lifecycle_events":true}]"#;

/// DynamoDB requests by operation since `before`.
fn dynamodb_since(before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    forwarded_calls()
        .into_iter()
        .filter_map(|(target, count)| {
            let operation = target.strip_prefix("DynamoDB_20120810.")?.to_owned();
            let new = count - before.get(&target).copied().unwrap_or(0);
            (new > 0).then_some((operation, new))
        })
        .collect()
}

/// Waits until no DynamoDB request has been forwarded for a second (the stream runners and the
/// pusher have finished with what the last action set off).
async fn settle() {
    let mut last = forwarded_calls();
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = forwarded_calls();
        let quiet = now
            .iter()
            .filter(|(target, _)| target.starts_with("DynamoDB_"))
            .all(|(target, count)| last.get(target) == Some(count));
        if quiet {
            return;
        }
        last = now;
    }
}

async fn subscribe(client: &mut Client, channel: &str) -> Duration {
    let started = Instant::now();
    send_text(
        client,
        &json!({"action":"subscribe","channel":channel}).to_string(),
    )
    .await;
    loop {
        let frame = next_text(client).await;
        if frame["type"] == "subscribed" {
            return started.elapsed();
        }
        assert_ne!(frame["type"], "error", "{frame}");
    }
}

/// Reads frames until the `join` of `user`.
async fn until_join(client: &mut Client, user: &str) {
    loop {
        let frame = next_text(client).await;
        if frame["type"] == "join" && frame["user_id"] == user {
            return;
        }
    }
}

fn per_subscribe(counts: &BTreeMap<String, u64>, samples: usize) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .map(|(operation, count)| format!("{operation} {:.2}", *count as f64 / samples as f64))
        .collect();
    format!(
        "{:.2} ({})",
        total as f64 / samples as f64,
        parts.join(", ")
    )
}

fn percentile(times: &mut [Duration], q: f64) -> f64 {
    times.sort();
    let index = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
    times[index].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let local = Local::start_with_members(NAMESPACES).await;
    let all = grants(&["room/*", "quiet/*", "plain/*", "big/*"], &[]);

    // 1. A join in a room of `--room` members.
    let mut members = join_all((1..args.room).map(|_| {
        let (local, all) = (&local, &all);
        async move {
            let mut member = local.receiver_with_grants("member", all).await;
            subscribe(&mut member.client, "room/bench").await;
            member
        }
    }))
    .await;
    settle().await;
    for member in &mut members {
        // Drain the joins of the others.
        while tokio::time::timeout(Duration::from_millis(20), next_text(&mut member.client))
            .await
            .is_ok()
        {}
    }
    let mut joiner = local.receiver_with_grants("joiner", &all).await;
    settle().await;
    let before = forwarded_calls();
    subscribe(&mut joiner.client, "room/bench").await;
    let joiner_user = joiner.user.clone();
    join_all(
        members
            .iter_mut()
            .map(|member| until_join(&mut member.client, &joiner_user)),
    )
    .await;
    until_join(&mut joiner.client, &joiner_user).await;
    settle().await;
    let join = dynamodb_since(&before);
    println!(
        "a join in a room of {} members: {} join frames delivered; DynamoDB requests {}",
        args.room,
        members.len() + 1,
        per_subscribe(&join, 1)
    );

    // 2. The extra cost of lifecycle detection on a subscribe.
    let mut results = Vec::new();
    for prefix in ["plain", "quiet"] {
        let mut times = Vec::with_capacity(args.samples);
        settle().await;
        let before = forwarded_calls();
        for n in 0..args.samples {
            let mut client = local.receiver_with_grants("sub", &all).await;
            times.push(subscribe(&mut client.client, &format!("{prefix}/{n}")).await);
            settle().await;
            drop(client);
            settle().await;
        }
        let counts = dynamodb_since(&before);
        results.push((prefix, counts, percentile(&mut times, 0.5)));
    }
    for (prefix, counts, p50) in &results {
        println!(
            "{prefix}/*: per connect + subscribe + disconnect: DynamoDB requests {}; subscribe reply p50 {p50:.1} ms",
            per_subscribe(counts, args.samples)
        );
    }

    // 3. A presence question on a channel of `--members` members.
    let expires_at = (now_secs() + 3600).to_string();
    let items: Vec<WriteRequest> = (0..args.members)
        .map(|n| {
            let item = [
                (subscriptions::CHANNEL, "big/room".to_owned()),
                (subscriptions::CONNECTION_ID, format!("conn-{n:05}=")),
                (subscriptions::USER_ID, format!("user-{n:05}@example.com")),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), AttributeValue::S(value)))
            .chain([(
                subscriptions::EXPIRES_AT.to_owned(),
                AttributeValue::N(expires_at.clone()),
            )])
            .collect();
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in items.chunks(25) {
        local
            .dynamodb
            .batch_write_item()
            .request_items(
                &local.endpoints.resources.subscriptions_table,
                chunk.to_vec(),
            )
            .send()
            .await
            .expect("write subscription items");
    }
    settle().await;
    let mut times = Vec::new();
    let mut pages = 0;
    let mut bytes = 0;
    let mut queries = 0;
    for _ in 0..args.samples {
        let before = forwarded_calls();
        let started = Instant::now();
        let mut after: Option<String> = None;
        let mut answered = 0;
        loop {
            let mut question = json!({"action":"presence","channel":"big/room"});
            if let Some(after) = &after {
                question["after"] = json!(after);
            }
            send_text(&mut joiner.client, &question.to_string()).await;
            let answer: Value = loop {
                let frame = next_text(&mut joiner.client).await;
                if frame["type"] == "presence" {
                    break frame;
                }
            };
            pages += 1;
            bytes += answer.to_string().len();
            let page = answer["members"].as_array().unwrap();
            answered += page.len();
            after = page
                .last()
                .map(|m| m["user_id"].as_str().unwrap().to_owned());
            if answer["more"] != true {
                break;
            }
        }
        times.push(started.elapsed());
        assert_eq!(answered, args.members);
        queries += dynamodb_since(&before).get("Query").copied().unwrap_or(0);
    }
    println!(
        "presence question on {} members: {:.1} pages and {:.1} DynamoDB Query pages ({} items read) per question, {:.0} bytes per reply frame; until the last page p50 {:.1} ms, p99 {:.1} ms over {} questions",
        args.members,
        pages as f64 / args.samples as f64,
        queries as f64 / args.samples as f64,
        args.members,
        bytes as f64 / pages as f64,
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.99),
        args.samples
    );
}
