#![doc = "End-to-end suites: real WebSocket clients against sumu-local and a real moto server."]
//! [`Local`] starts sumu-local in-process on 127.0.0.1:0 against the test moto server, with
//! resource names of its own, and offers what the suites share: tokens, WebSocket clients,
//! reads of the connections table, polling with a generous deadline.

pub mod channels;
pub mod notify;
pub mod proxy;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt};
use sumu_local::dev_idp::DevIdentityProvider;
use sumu_local::{Config, Endpoints, Limits, ResourceNames};
use sumu_wire::table;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Item = HashMap<String, AttributeValue>;

/// How long a polled condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running sumu-local with its own table, topics and queues; stops when dropped.
pub struct Local {
    pub endpoints: Endpoints,
    pub idp: Arc<DevIdentityProvider>,
    pub aws: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Local {
    pub async fn start() -> Local {
        Local::start_with(Limits::default()).await
    }

    /// Starts with these limits (tests shorten the idle timeout and maximum duration).
    pub async fn start_with(limits: Limits) -> Local {
        Local::start_configured(|config| config.limits = limits).await
    }

    /// Starts with the test defaults changed by `configure`.
    pub async fn start_configured(configure: impl FnOnce(&mut Config)) -> Local {
        Local::start_extended(configure, sumu_local::Extensions::default()).await
    }

    /// [`Local::start_configured`] with more runners or handlers (e.g. the demo back end's).
    pub async fn start_extended(
        configure: impl FnOnce(&mut Config),
        extensions: sumu_local::Extensions,
    ) -> Local {
        let endpoint = testkit::moto_endpoint();
        let idp = Arc::new(DevIdentityProvider::generate().expect("generate a dev key"));
        let mut config = Config::new(&endpoint, Arc::clone(&idp));
        config.names = ResourceNames::with_prefix(&testkit::unique_name("e2e"));
        config.templates_dir = testkit::repo_root().join("mapping-templates");
        // Off unless a suite turns it on (tests/presence.rs): its ONLINE/OFFLINE events would
        // land on the messages topic and queue other suites read.
        config.presence = None;
        config.aws_call_log = testkit::aws_call_log();
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let emulator = sumu_local::start_with(listener, config, extensions)
            .await
            .expect("sumu-local starts");
        let endpoints = emulator.endpoints().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(emulator.serve(async {
            let _ = stopped.await;
        }));
        let aws = testkit::aws_config().await;
        Local {
            endpoints,
            idp,
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            sqs: aws_sdk_sqs::Client::new(&aws),
            sns: aws_sdk_sns::Client::new(&aws),
            aws,
            stop: Some(stop),
        }
    }

    /// A valid development token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.idp
            .mint(sub, Duration::from_secs(3600), now_secs())
            .expect("mint a token")
    }

    pub fn url_with_token(&self, token: &str) -> String {
        format!("{}?authorization={token}", self.endpoints.websocket_url)
    }

    /// Opens a WebSocket for `sub` with a fresh token and the user agent `sumu-e2e`.
    pub async fn connect(&self, sub: &str) -> Client {
        let mut request = self
            .url_with_token(&self.token(sub))
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("user-agent", "sumu-e2e".parse().expect("header"));
        let (client, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the upgrade is accepted");
        assert_eq!(response.status(), 101);
        client
    }

    /// The HTTP status the upgrade is refused with (panics if it is accepted).
    pub async fn refused_status(&self, url: &str) -> u16 {
        match tokio_tungstenite::connect_async(url).await {
            Ok(_) => panic!("the upgrade to {url} was accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    /// The user's connection items (strongly consistent).
    pub async fn items_of(&self, user: &str) -> Vec<Item> {
        self.dynamodb
            .query()
            .table_name(&self.endpoints.resources.connections_table)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", table::USER_ID)
            .expression_attribute_values(":u", AttributeValue::S(user.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("query the connections table")
            .items
            .unwrap_or_default()
    }

    /// Every item of the connections table.
    pub async fn all_items(&self) -> Vec<Item> {
        self.dynamodb
            .scan()
            .table_name(&self.endpoints.resources.connections_table)
            .send()
            .await
            .expect("scan the connections table")
            .items
            .unwrap_or_default()
    }

    /// Waits for the user's single connection item and returns it.
    pub async fn item_of(&self, user: &str) -> Item {
        eventually("the connection item exists", || async {
            self.items_of(user).await.into_iter().next()
        })
        .await
    }

    /// Waits until the user has no connection item left.
    pub async fn until_no_item(&self, user: &str) {
        eventually("the connection item is gone", || async {
            self.items_of(user).await.is_empty().then_some(())
        })
        .await
    }

    /// The connection id of the user's single connection.
    pub async fn connection_id_of(&self, user: &str) -> String {
        string(&self.item_of(user).await, table::CONNECTION_ID)
    }

    /// The management API client, configured with only the endpoint, as a back end would.
    pub fn management(&self) -> aws_sdk_apigatewaymanagement::Client {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(&self.aws)
            .endpoint_url(&self.endpoints.management_url)
            .build();
        aws_sdk_apigatewaymanagement::Client::from_conf(config)
    }

    /// A new queue subscribed (raw delivery) to `topic_arn`: how a test reads a topic.
    pub async fn queue_subscribed_to(&self, topic_arn: &str) -> String {
        let url = self
            .sqs
            .create_queue()
            .queue_name(testkit::unique_name("e2e-tap"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        testkit::subscribe_queue_to_topic(&self.aws, topic_arn, &url, None).await;
        url
    }

    /// Waits for one message on `queue_url`, with its message attributes.
    pub async fn receive_one(&self, queue_url: &str) -> aws_sdk_sqs::types::Message {
        eventually("a message arrives on the queue", || async {
            self.sqs
                .receive_message()
                .queue_url(queue_url)
                .message_attribute_names("All")
                .max_number_of_messages(1)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive")
                .messages
                .and_then(|messages| messages.into_iter().next())
        })
        .await
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `app` on 127.0.0.1 at a free port, in the background, for the rest of the test (the
/// fault-injecting proxies); returns its address.
pub async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

pub fn now_secs() -> i64 {
    sumu_local::protocol::now_ms() / 1000
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next text frame (skipping pings/pongs), failing on close or after [`DEADLINE`].
pub async fn next_text(client: &mut Client) -> serde_json::Value {
    let frame = tokio::time::timeout(DEADLINE, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a text frame arrives");
    serde_json::from_str(&frame).unwrap_or(serde_json::Value::String(frame))
}

/// The `data` of a `message` frame (`{"type":"message","id":<string>,"data":…}`, exactly these
/// keys), failing on any other frame.
pub fn message_data(frame: &serde_json::Value) -> serde_json::Value {
    let fields = frame.as_object().map(|object| {
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    });
    assert!(
        frame["type"] == "message"
            && frame["id"].as_str().is_some_and(|id| !id.is_empty())
            && fields.as_deref() == Some(&["data", "id", "type"][..]),
        "expected a message frame, got {frame}"
    );
    frame["data"].clone()
}

/// Reads until the server's close frame and returns it.
pub async fn close_frame(client: &mut Client) -> CloseFrame {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame,
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => continue,
                Some(Err(error)) => panic!("connection failed before a close frame: {error}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    })
    .await
    .expect("a close frame arrives")
}

/// Resets the TCP connection: no close frame, as a killed process or a dropped network would.
pub fn vanish(client: Client) {
    match client.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => {
            #[allow(deprecated)]
            tcp.set_linger(Some(std::time::Duration::ZERO))
                .expect("linger");
            drop(tcp);
        }
        _ => unreachable!("plain ws:// connection"),
    }
}

pub async fn send_text(client: &mut Client, text: &str) {
    client
        .send(Message::Text(text.into()))
        .await
        .expect("send a text frame");
}

pub fn string(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value.clone(),
        other => panic!("{name} is not a string attribute: {other:?}"),
    }
}

pub fn number(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().expect("a whole number"),
        other => panic!("{name} is not a number attribute: {other:?}"),
    }
}
