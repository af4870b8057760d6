//! sumu-local: the API Gateway WebSocket emulator.
//!
//! One port serves what API Gateway serves on one domain: the WebSocket API
//! (`ws://HOST:PORT/{stage}`), the management API (`/{stage}/@connections/{id}`) and, for the
//! development identity provider, a JWKS (`/.well-known/jwks.json`), the demo page (`/demo/`) and
//! its token endpoint (`/dev/token?sub=…`).
//!
//! Layout: [`protocol`] (pure frames/selection/context), [`state`] (the connection registry),
//! [`ws`] and [`management`] (I/O handlers), [`integration`] + [`routes`] (templates and service
//! calls), [`authorizer_bridge`], [`dev_idp`], [`provision`], [`runners`], [`demo`].

pub mod authorizer_bridge;
pub mod aws_service;
pub mod banner;
pub mod config;
pub mod demo;
pub mod dev_idp;
pub mod event_filter;
pub mod integration;
pub mod management;
pub mod presence_local;
pub mod protocol;
pub mod provision;
pub mod routes;
pub mod runners;
pub mod state;
pub mod stream_runner;
pub mod ws;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
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

pub use config::{AuthorizerSetup, Config, Limits, ResourceNames};
use dev_idp::{DevIdentityProvider, DEV_AUDIENCE, DEV_ISSUER, JWKS_PATH};
use protocol::ApiInfo;
pub use provision::Resources;
use routes::RouteTable;
use runners::{Runner, RunnerContext};

/// Counts sessions from `$connect` until their `$disconnect` finished, so shutdown can wait
/// for the last `$disconnect` integrations.
#[derive(Debug, Default)]
pub struct Sessions(AtomicUsize);

impl Sessions {
    pub fn started(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn ended(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Shared by every handler and session.
pub struct AppState {
    pub api: ApiInfo,
    pub region: String,
    pub routes: RouteTable,
    pub integrations: integration::Integrations,
    pub registry: state::Registry,
    pub sessions: Sessions,
    pub authorizer: Authorizer,
    pub identity_provider: Arc<DevIdentityProvider>,
    pub identity_sources: Vec<authorizer_bridge::IdentitySource>,
    pub limits: Limits,
    /// Turns `true` when the emulator shuts down: sessions close with 1001.
    pub shutdown: watch::Receiver<bool>,
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
pub async fn start(listener: TcpListener, mut config: Config) -> Result<Emulator, StartError> {
    let address = listener.local_addr()?;
    let routes = RouteTable::load(&config.templates_dir)?;
    let aws = provision::sdk_config(&config.aws_endpoint, &config.region).await;
    let resources = provision::provision(&aws, &config.names).await?;
    if let Some(setup) = config.presence {
        // The event source mapping's filter_criteria, from the file the module deploys.
        let stream_filter = event_filter::EventFilter::load(
            &config
                .templates_dir
                .join(event_filter::PRESENCE_STREAM_FILTER_FILE),
        )?;
        let (route, runner) =
            presence_local::prepare(&aws, &resources, setup, stream_filter).await?;
        config
            .proxies
            .entry(presence_local::FUNCTION_NAME.to_string())
            .or_insert(route);
        config.runners.push(runner);
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
            config.proxies,
        ),
        registry: state::Registry::default(),
        sessions: Sessions::default(),
        authorizer: Authorizer::new(authorizer_config),
        identity_provider: config.identity_provider,
        identity_sources: config.identity_sources,
        limits: config.limits,
        shutdown: shutdown.clone(),
    });
    let runner_context = RunnerContext {
        aws,
        resources,
        management_url: endpoints.management_url.clone(),
        shutdown,
        pusher: config.pusher,
    };
    Ok(Emulator {
        listener,
        state,
        shutdown_sender,
        runners: config.runners,
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
