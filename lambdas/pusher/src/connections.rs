//! The pusher's HTTP/1.1 keep-alive connections to the management API: hyper's
//! connection-level client over rustls (aws-lc-rs, the system's roots — the stack the SDK
//! brings), with a pool of ready connections of its own.
//!
//! Why not hyper-util's pooled `Client`: on the same transport it cost 20–28 % more CPU per
//! request (`scripts/bench poster --explore`, `hyper-util-floor` against `floor`; figures in
//! docs/pusher.md), for features a fan-out to one origin does not use (pools keyed by origin,
//! racing connects against checkouts, absolute-URI handling).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

/// How long an idle kept-alive connection is reused. API Gateway closes idle connections
/// itself after a while (and a Lambda may be frozen for minutes between invocations).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// TCP (`TCP_NODELAY`), then TLS for `https`; plain `http` for sumu-local.
pub type Connector = HttpsConnector<HttpConnector>;

pub fn connector() -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let builder =
        match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider) {
            Ok(builder) => builder,
            Err(error) => {
                // Without roots https cannot verify anyone: every post fails visibly (retryable
                // dispatch failures), while plain http (sumu-local) keeps working.
                tracing::error!(%error, "no TLS root certificates; https posts will fail");
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions();
                match config {
                    Ok(config) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                        config
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    ),
                    Err(error) => {
                        tracing::error!(%error, "no TLS configuration; https posts will fail");
                        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                            rustls::ClientConfig::builder()
                                .with_root_certificates(rustls::RootCertStore::empty())
                                .with_no_client_auth(),
                        )
                    }
                }
            }
        };
    builder.https_or_http().enable_http1().wrap_connector(http)
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Connecting, the TLS handshake, or writing the request failed.
    Dispatch(String),
    /// The answer's body could not be read to its end.
    UnreadableResponse(String),
}

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// Kept-alive connections to one origin. A connection is opened only when no idle one is
/// ready, so a fan-out to 10 connections opens at most 10 (each a TLS handshake on AWS) and
/// never more than the posts in flight; the most recently used one is reused first.
pub struct Connections {
    connector: Connector,
    origin: Uri,
    idle: Mutex<Vec<Idle>>,
}

impl Connections {
    /// `origin` is `scheme://host[:port]`; requests then carry only their path.
    pub fn new(origin: Uri) -> Connections {
        Connections {
            connector: connector(),
            origin,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// How many idle connections the pool holds (open or not yet noticed closed).
    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    /// Sends `request` (an origin-form URI: the path) and reads the whole answer, so the
    /// connection can serve the next request. A kept-alive connection the server closed
    /// before the request was written is replaced transparently (nothing was sent).
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Bytes>, SendError> {
        let mut request = request;
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map_err(|e| SendError::UnreadableResponse(e.to_string()))?
                        .to_bytes();
                    self.checkin(sender);
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Dispatch(chain(error.error()))),
                },
            }
        }
    }

    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(Idle { sender, since }) = idle.pop() {
            if sender.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Idle {
                sender,
                since: Instant::now(),
            });
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let mut connector = self.connector.clone();
        let dispatch = |error: &dyn std::error::Error| SendError::Dispatch(chain(error));
        futures::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| dispatch(&*e))?;
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(|e| dispatch(&*e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| dispatch(&e))?;
        // Drives the connection until the sender is dropped or the server closes it.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "management API connection ended");
            }
        });
        Ok(sender)
    }
}

/// The error and its causes (hyper's Display alone says only "client error (Connect)").
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
