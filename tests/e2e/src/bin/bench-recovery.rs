//! `scripts/bench history` (second part): what recovering costs through sumu-local. sumu-local
//! and the presence and pusher handlers run in this process against moto, with `room/*`
//! keeping 1,000 publications; a back end publishes `--missed` publications to `room/bench`
//! through the notifications queue; then one client subscribes with `since` set `--missed`
//! offsets back, `--samples` times, and the time from sending the frame to receiving the
//! `subscribed` reply is measured (the presence handler's UpdateItem and one Query on moto
//! included). Prints p50/p99 and how many publications each reply carried (the items the
//! Query read: about the number missed, never the whole history).

use std::time::{Duration, Instant};

use clap::Parser;
use e2e::channels::grants;
use e2e::notify::Via;
use e2e::{next_text, send_text, Local};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "bench-recovery",
    about = "Reply time of a subscribe with since"
)]
struct Args {
    /// Publications the client missed.
    #[arg(long, default_value_t = 100)]
    missed: u64,
    /// Publications before those (history the reply must not read).
    #[arg(long, default_value_t = 400)]
    before: u64,
    /// Subscribes with since, measured one after the other.
    #[arg(long, default_value_t = 100)]
    samples: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let local = Local::start_with_namespaces(
        r#"[{"pattern":"room/*","history_size":1000,"history_ttl_seconds":3600}]"#,
    )
    .await;
    let mut watcher = local
        .receiver_with_grants("watcher", &grants(&["room/*"], &[]))
        .await;
    send_text(
        &mut watcher.client,
        &json!({"action":"subscribe","channel":"room/bench"}).to_string(),
    )
    .await;
    next_text(&mut watcher.client).await;
    let total = args.before + args.missed;
    for n in 1..=total {
        local
            .notify(
                Via::Queue,
                &json!({"channels":["room/bench"],"data":{"n":n,"text":"a chat line of some sixty bytes, as rooms have"}}).to_string(),
            )
            .await;
    }
    let mut epoch = Value::Null;
    let mut received = 0;
    while received < total {
        let frame = next_text(&mut watcher.client).await;
        if frame["type"] == "publication" {
            epoch = frame["epoch"].clone();
            received += 1;
        }
    }
    eprintln!(
        "{total} publications kept; measuring {} subscribes with since",
        args.samples
    );

    let mut client = local
        .receiver_with_grants("client", &grants(&["room/*"], &[]))
        .await;
    let since = json!({"offset": args.before, "epoch": epoch});
    let mut times = Vec::with_capacity(args.samples);
    let mut carried = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let started = Instant::now();
        send_text(
            &mut client.client,
            &json!({"action":"subscribe","channel":"room/bench","since":since}).to_string(),
        )
        .await;
        let reply = next_text(&mut client.client).await;
        times.push(started.elapsed());
        assert_eq!(reply["recovered"], true, "{reply}");
        carried.push(reply["publications"].as_array().map_or(0, Vec::len));
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "subscribe with since, {} missed of {total} kept: p50 {:.1} ms, p99 {:.1} ms over {} samples; publications per reply {:?}",
        args.missed,
        ms(at(0.5)),
        ms(at(0.99)),
        times.len(),
        carried.iter().min().zip(carried.iter().max()).map(|(a, b)| (*a, *b)),
    );
    println!(
        "{}",
        json!({"missed": args.missed, "kept": total, "p50_ms": ms(at(0.5)), "p99_ms": ms(at(0.99)),
               "samples": times.len(), "publications_per_reply": carried.first()})
    );
}
