//! sumu-local: the API Gateway WebSocket emulator.
//!
//! One port serves what API Gateway serves on one domain: the WebSocket API
//! (`ws://HOST:PORT/{stage}`), the management API (`/{stage}/@connections/{id}`) and, for the
//! development identity provider, a JWKS (`/.well-known/jwks.json`), the demo page (`/demo/`) and
//! its token endpoint (`/dev/token?sub=…`).
//!
//! Module layout, bottom-up: each module imports only modules of its own or a lower layer, so it
//! can be read without the ones above it (the workspace's module-graph test,
//! `tests/testkit/tests/module_graph`, fails on any import cycle).
//! Plain data: [`resources`] (the resources' names and identifiers), [`dev_idp`] (the
//! development signing key) and [`config`] (the whole configuration, no behaviour in it).
//! In-process state and pure logic: [`state`] (the connection registry), [`protocol`] (frames,
//! selection, `$context`), [`routes`] (routes.json and its templates), [`event_filter`],
//! [`aws_service`] and [`integration`] (templates rendered, services called),
//! [`authorizer_bridge`]. Resource provisioning: [`provision`]. Background work, above it:
//! [`runners`] (the runner contract; the SQS and SNS event sources feeding the pusher and the
//! demo back end), [`stream_runner`] (the DynamoDB stream event source) and [`presence_local`].
//! Serving: [`app_state`] (what every handler shares), then the handlers [`ws`],
//! [`management`] and [`demo`]. The wiring is this file's [`start_with`] ([`start`] without
//! [`Extensions`]) alone: it provisions, wires presence's route and runner, the pusher's runners
//! and the extensions' behaviour, builds the state and mounts the handlers. [`banner`] only
//! formats [`start`]'s [`Endpoints`] for `main`.

pub mod app_state;
pub mod authorizer_bridge;
pub mod aws_service;
pub mod banner;
pub mod call_log;
pub mod config;
pub mod demo;
pub mod dev_idp;
pub mod event_filter;
pub mod integration;
pub mod management;
pub mod presence_local;
pub mod protocol;
pub mod provision;
pub mod resources;
pub mod roles;
pub mod routes;
pub mod runners;
pub mod state;
pub mod stream_runner;
pub mod ws;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authorizer::{Authorizer, IssuerConfig};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use app_state::{AppState, Sessions};
pub use config::{
    AuthorizerSetup, Config, IdentitySource, Limits, PresenceDestination, PresenceSetup,
    PusherSetup, StreamSettings,
};
use dev_idp::{DEV_AUDIENCE, DEV_ISSUER, JWKS_PATH};
use integration::ProxyHandler;
use protocol::ApiInfo;
pub use resources::{ResourceNames, Resources};
use routes::RouteTable;
use runners::{Runner, RunnerContext};

/// Behaviour `start_with` wires in besides the [`Config`], which is data only: more background
/// runners and in-process `AWS_PROXY` handlers. The default adds nothing; the pusher's runners
/// and presence's route and runner come from the configuration.
#[derive(Default)]
pub struct Extensions {
    /// Started with the server, besides the pusher's and presence's (e.g.
    /// [`runners::demo::demo_runner`]).
    pub runners: Vec<Runner>,
    /// In-process handlers of `AWS_PROXY` routes, by function name; one named
    /// [`presence_local::FUNCTION_NAME`] replaces presence's own.
    pub proxies: HashMap<String, ProxyHandler>,
}

/// The router: WebSocket API, management API and JWKS on one port. Unknown paths get API
/// Gateway's 403 `{"message":"Forbidden"}`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route(JWKS_PATH, get(jwks))
        .merge(demo::routes())
        .route("/{stage}", get(ws::connect))
        .route(
            "/{stage}/{collection}/{id}",
            get(management::get)
                .post(management::post)
                .delete(management::delete),
        )
        // Bodies over the 128 KB limit must reach the handler to get AWS's 413 shape.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .fallback(not_found)
        .with_state(state)
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    (
        [
            ("content-type", "application/json"),
            ("cache-control", "max-age=300"),
        ],
        state.identity_provider.jwks().to_string(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::FORBIDDEN,
        [
            ("x-amzn-ErrorType", "ForbiddenException"),
            ("content-type", "application/json"),
        ],
        r#"{"message":"Forbidden"}"#,
    )
        .into_response()
}

/// The URLs and resources a user of the running emulator needs.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub address: SocketAddr,
    /// `ws://HOST:PORT/{stage}`
    pub websocket_url: String,
    /// `http://HOST:PORT/{stage}`: the management API's `endpoint_url`.
    pub management_url: String,
    pub jwks_url: String,
    /// `http://HOST:PORT/demo/?stage={stage}`: the demo page.
    pub demo_url: String,
    pub resources: Resources,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Routes(#[from] routes::RouteError),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error(transparent)]
    Presence(#[from] presence_local::PresenceStartError),
    #[error(transparent)]
    StreamFilter(#[from] event_filter::FilterError),
    #[error("static channel grants: {0}")]
    StaticGrants(String),
    #[error("AWS call log {path}: {source}")]
    CallLog {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A provisioned emulator, bound but not yet serving.
pub struct Emulator {
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown_sender: watch::Sender<bool>,
    runners: Vec<Runner>,
    runner_context: RunnerContext,
    endpoints: Endpoints,
}

/// Loads the route table, provisions the AWS resources and builds the state.
pub async fn start(listener: TcpListener, config: Config) -> Result<Emulator, StartError> {
    start_with(listener, config, Extensions::default()).await
}

/// [`start`] with more runners and proxy handlers: the one place where configuration,
/// resources, runners, presence and handlers are put together.
pub async fn start_with(
    listener: TcpListener,
    config: Config,
    extensions: Extensions,
) -> Result<Emulator, StartError> {
    let address = listener.local_addr()?;
    let routes = RouteTable::load(&config.templates_dir)?;
    let aws = provision::sdk_config(&config.aws_endpoint, &config.region).await;
    let resources = provision::provision(&aws, &config.names).await?;
    let Extensions {
        runners: extra_runners,
        mut proxies,
    } = extensions;
    // The pusher's runners first, then the caller's, then presence's (spawn order only).
    let mut runners = runners::default_runners();
    runners.extend(extra_runners);
    if let Some(setup) = config.presence {
        // The event source mapping's filter_criteria, from the file the module deploys.
        let stream_filter = event_filter::EventFilter::load(
            &config
                .templates_dir
                .join(event_filter::PRESENCE_STREAM_FILTER_FILE),
        )?;
        let presence_aws = roles::sdk_config_as(&aws, roles::Role::Presence);
        let (route, presence_runners) = presence_local::prepare(
            &presence_aws,
            &resources,
            setup,
            &config.channel_namespaces,
            stream_filter,
        )
        .await?;
        proxies
            .entry(presence_local::FUNCTION_NAME.to_string())
            .or_insert(route);
        runners.extend(presence_runners);
    }

    let base = format!("{address}");
    let endpoints = Endpoints {
        address,
        websocket_url: format!("ws://{base}/{}", config.stage),
        management_url: format!("http://{base}/{}", config.stage),
        jwks_url: format!("http://{base}{JWKS_PATH}"),
        demo_url: format!("http://{base}{}?stage={}", demo::DEMO_PATH, config.stage),
        resources: resources.clone(),
    };
    let authorizer_config = match config.authorizer {
        AuthorizerSetup::Custom(custom) => custom,
        AuthorizerSetup::DevIssuer => {
            let mut dev = dev_authorizer_config(&endpoints.jwks_url);
            config
                .static_grants
                .check()
                .map_err(StartError::StaticGrants)?;
            dev.static_grants = config.static_grants;
            dev
        }
    };
    let stage_variables = BTreeMap::from([
        (
            "connections_table".to_string(),
            resources.connections_table.clone(),
        ),
        (
            "messages_topic_arn".to_string(),
            resources.messages_topic_arn.clone(),
        ),
        (
            "messages_queue_url".to_string(),
            resources.messages_queue_url.clone(),
        ),
        (
            "notifications_topic_arn".to_string(),
            resources.notifications_topic_arn.clone(),
        ),
        (
            "notifications_queue_url".to_string(),
            resources.notifications_queue_url.clone(),
        ),
        ("actions".to_string(), routes.actions()),
    ]);
    for name in &routes.stage_variables {
        if !stage_variables.contains_key(name) {
            tracing::warn!(
                name,
                "routes.json names a stage variable sumu-local does not set"
            );
        }
    }
    let call_log = match &config.aws_call_log {
        Some(path) => {
            Some(
                call_log::CallLog::open(path).map_err(|source| StartError::CallLog {
                    path: path.display().to_string(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let (shutdown_sender, shutdown) = watch::channel(false);
    let state = Arc::new(AppState {
        api: ApiInfo {
            api_id: config.api_id,
            stage: config.stage,
            domain_name: base,
        },
        region: config.region.clone(),
        routes,
        integrations: integration::Integrations::new(
            aws_service::AwsService::new(&config.aws_endpoint, &config.region),
            stage_variables,
            proxies,
        ),
        registry: state::Registry::default(),
        sessions: Sessions::default(),
        authorizer: Authorizer::new(authorizer_config),
        identity_provider: config.identity_provider,
        identity_sources: config.identity_sources,
        limits: config.limits,
        shutdown: shutdown.clone(),
        call_log,
    });
    let runner_context = RunnerContext {
        aws,
        resources,
        management_url: endpoints.management_url.clone(),
        shutdown,
        pusher: config.pusher,
        namespaces: config.channel_namespaces,
    };
    Ok(Emulator {
        listener,
        state,
        shutdown_sender,
        runners,
        runner_context,
        endpoints,
    })
}

/// The authorizer configuration that trusts the development identity provider only.
pub fn dev_authorizer_config(jwks_url: &str) -> authorizer::Config {
    let mut config = authorizer::Config::new(vec![IssuerConfig {
        issuer: DEV_ISSUER.to_string(),
        jwks_uri: jwks_url.to_string(),
        audiences: vec![DEV_AUDIENCE.to_string()],
    }]);
    // The JWKS is served by this process: a short timeout is plenty.
    config.jwks_timeout = Duration::from_secs(2);
    config
}

impl Emulator {
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` resolves; then closes every connection with 1001, waits (bounded)
    /// for their `$disconnect` integrations and for the runners to stop.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut runner_tasks = Vec::new();
        for runner in self.runners {
            runner_tasks.push(tokio::spawn(runner(self.runner_context.clone())));
        }
        let sender = self.shutdown_sender;
        let signal = async move {
            shutdown.await;
            let _ = sender.send(true);
        };
        let state = Arc::clone(&self.state);
        // Frames are small and latency-bound: no Nagle delay on replies.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            app(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while state.sessions.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in runner_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        Ok(())
    }
}

/// Provisions, then serves on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    start(listener, config).await?.serve(shutdown).await?;
    Ok(())
}
