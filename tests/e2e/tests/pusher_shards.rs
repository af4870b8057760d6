//! A broadcast larger than the pusher's shard threshold, through sumu-local: split into Scan
//! segments that several queue pollers (concurrent "invocations") handle, with a
//! fault-injecting proxy (127.0.0.1:0) failing the posts of one shard. Every connection must
//! receive the broadcast exactly once, and no invocation may handle more than the threshold.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use e2e::notify::{Receiver, Via};
use e2e::Local;
use serde_json::json;
use sumu_wire::table;

/// Connection ids whose posts fail, and how: the nth post to a connection is answered by
/// `fault(id, n)` (a status) or forwarded (`None`).
type Policy = Box<dyn Fn(&str, usize) -> Option<StatusCode> + Send + Sync>;

struct Proxy {
    upstream: OnceLock<String>,
    policy: Policy,
    /// The status of every post, per connection id, in order.
    posts: Mutex<HashMap<String, Vec<u16>>>,
    http: reqwest::Client,
}

async fn start_proxy(policy: Policy) -> (Arc<Proxy>, String) {
    let proxy = Arc::new(Proxy {
        upstream: OnceLock::new(),
        policy,
        posts: Mutex::default(),
        http: reqwest::Client::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let address = listener.local_addr().expect("proxy address");
    let app = Router::new()
        .fallback(forward)
        .with_state(Arc::clone(&proxy));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (proxy, format!("http://{address}/dev"))
}

/// The id in `/dev/@connections/{id}`, `%XX` decoded (ids end in `=`, sent as `%3D`).
fn connection_id_of(uri: &Uri) -> Option<String> {
    let raw = uri.path().rsplit('/').next()?;
    let mut out = Vec::new();
    let mut bytes = raw.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).ok()?);
        } else {
            out.push(byte);
        }
    }
    String::from_utf8(out).ok()
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = (method == Method::POST)
        .then(|| connection_id_of(&uri))
        .flatten();
    let fault = id.as_ref().and_then(|id| {
        let earlier = proxy.posts.lock().unwrap().get(id).map_or(0, Vec::len);
        (proxy.policy)(id, earlier)
    });
    let response = match fault {
        Some(status) => {
            let error_type = if status == StatusCode::TOO_MANY_REQUESTS {
                "LimitExceededException"
            } else {
                "InternalServerErrorException"
            };
            (status, [("x-amzn-ErrorType", error_type)], "{}").into_response()
        }
        None => {
            let upstream = proxy.upstream.get().expect("the upstream is set");
            e2e::proxy::forward(&proxy.http, upstream, method, &uri, &headers, body).await
        }
    };
    if let Some(id) = id {
        proxy
            .posts
            .lock()
            .unwrap()
            .entry(id)
            .or_default()
            .push(response.status().as_u16());
    }
    response
}

/// The pusher's log events in this process (sumu-local runs it in-process): the message and
/// the fields of every event of the pusher's crate.
#[derive(Default, Clone)]
struct PusherLog(Arc<Mutex<Vec<HashMap<String, String>>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PusherLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target().starts_with("pusher") {
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

impl PusherLog {
    fn install() -> PusherLog {
        use tracing_subscriber::layer::SubscriberExt;
        let log = PusherLog::default();
        let subscriber =
            tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(
                log.clone(),
                tracing_subscriber::filter::LevelFilter::INFO,
            ));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        log
    }

    /// The `field` of every event whose message is `message`, as numbers.
    fn numbers(&self, message: &str, field: &str) -> Vec<u64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|fields| fields.get("message").map(String::as_str) == Some(message))
            .filter_map(|fields| fields.get(field)?.parse().ok())
            .collect()
    }
}

const THRESHOLD: u32 = 4;
const RECEIVERS: usize = 16;

/// The connection ids of Scan segment `segment` of `segments` of the connections table: what
/// one shard of the broadcast reads.
async fn segment_ids(local: &Local, segment: i32, segments: i32) -> HashSet<String> {
    let scanned = local
        .dynamodb
        .scan()
        .table_name(&local.endpoints.resources.connections_table)
        .segment(segment)
        .total_segments(segments)
        .send()
        .await
        .expect("scan a segment");
    scanned
        .items()
        .iter()
        .filter_map(|item| item.get(table::CONNECTION_ID)?.as_s().ok().cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_broadcast_is_sharded_and_reaches_everyone_once_despite_faults_in_one_shard() {
    let log = PusherLog::install();
    let faulty: Arc<OnceLock<(HashSet<String>, String)>> = Arc::new(OnceLock::new());
    let policy_faulty = Arc::clone(&faulty);
    // Every connection of the faulty shard fails its first post (500); one of them fails
    // more posts than one invocation tries (5), so it is re-queued narrowed, alone.
    let policy: Policy = Box::new(move |id, earlier| {
        let (shard, unlucky) = policy_faulty.get()?;
        if id == unlucky {
            (earlier < 6).then_some(if earlier % 2 == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::TOO_MANY_REQUESTS
            })
        } else {
            (shard.contains(id) && earlier == 0).then_some(StatusCode::INTERNAL_SERVER_ERROR)
        }
    });
    let (proxy, endpoint) = start_proxy(policy).await;
    let local = Local::start_configured(|config| {
        config.pusher.management_endpoint = Some(endpoint);
        config.pusher.limits.shard_threshold = THRESHOLD;
        config.pusher.limits.backoff_base = Duration::from_millis(10);
        config.pusher.limits.backoff_cap = Duration::from_millis(100);
        config.pusher.limits.requeue_delay = Duration::from_secs(1);
        config.pusher.queue_pollers = 3;
        // One message per invocation (limits.pusher_batch_size = 1), so shards spread over
        // the pollers instead of queueing up inside one batch.
        config.pusher.queue_batch_size = 1;
    })
    .await;
    proxy
        .upstream
        .set(format!("http://{}", local.endpoints.address))
        .expect("set once");

    let mut receivers = Vec::new();
    for _ in 0..RECEIVERS {
        receivers.push(Receiver::connect(&local, "shard").await);
    }
    // 16 items at a threshold of 4: 4 shards, Scan segments 0-3 of 4; the invocation that
    // splits keeps segment 0. Faults go to the largest other segment (moto segments by user).
    let segments = RECEIVERS.div_ceil(THRESHOLD as usize) as i32;
    let mut others = Vec::new();
    for segment in 1..segments {
        others.push(segment_ids(&local, segment, segments).await);
    }
    let shard = others
        .into_iter()
        .max_by_key(HashSet::len)
        .expect("segments");
    assert!(!shard.is_empty(), "one shard has connections");
    let unlucky = shard.iter().min().cloned().expect("an id");
    faulty
        .set((shard.clone(), unlucky.clone()))
        .expect("set once");

    let data = json!({"to": "everyone", "sharded": true});
    local
        .notify(Via::Queue, &json!({"data": data}).to_string())
        .await;
    for receiver in &mut receivers {
        receiver
            .received_exactly(&local, std::slice::from_ref(&data))
            .await;
    }

    let posts = proxy.posts.lock().unwrap().clone();
    for receiver in &receivers {
        let id = &receiver.connection_id;
        let expected: &[u16] = if *id == unlucky {
            &[500, 429, 500, 429, 500, 429, 200]
        } else if shard.contains(id) {
            &[500, 200]
        } else {
            &[200]
        };
        assert_eq!(
            posts.get(id).map(Vec::as_slice),
            Some(expected),
            "posts to {id}"
        );
    }
    // It was split: the first invocation handed at least the 3 other segments to the queue
    // (and a continuation of its own when moto's segment 0 holds more than 4)…
    let handed = log.numbers("broadcast shards handed to the queue", "shards");
    assert!(
        handed.first().is_some_and(|n| *n >= 3),
        "shards handed on: {handed:?}"
    );
    // …and no invocation delivered to more than the threshold.
    let delivered = log.numbers("notification request done", "delivered");
    assert!(delivered.len() >= segments as usize, "{delivered:?}");
    assert!(
        delivered.iter().all(|n| *n <= u64::from(THRESHOLD)),
        "{delivered:?}"
    );
    assert_eq!(delivered.iter().sum::<u64>(), RECEIVERS as u64);
    // Nothing was dead-lettered.
    let dlq = local
        .sqs
        .receive_message()
        .queue_url(&local.endpoints.resources.notifications_dlq_url)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive from the DLQ");
    assert!(dlq.messages.unwrap_or_default().is_empty());
}
