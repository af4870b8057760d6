//! `sumu-local`: argument parsing, then the library's `start`/`serve`, `mint` or `render`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use sumu_wire::Namespaces;

use clap::{Args, Parser, Subcommand};
use sumu_local::banner::{self, BannerOptions};
use sumu_local::dev_idp::{parse_duration, DevIdentityProvider};
use sumu_local::{
    AuthorizerSetup, Config, Extensions, IdentitySource, PresenceDestination, PresenceSetup,
    ResourceNames,
};
use sumu_wire::{Grants, Pattern};

#[derive(Parser)]
#[command(
    name = "sumu-local",
    about = "API Gateway WebSocket emulator for sumu",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the WebSocket and management APIs (the default).
    Serve(Box<ServeArgs>),
    /// Print a development token the running emulator accepts.
    Token {
        #[arg(long, default_value = "alice")]
        sub: String,
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
        #[arg(long, env = "SUMU_LOCAL_KEY_FILE", default_value_os_t = default_key_file())]
        key_file: PathBuf,
        /// A channel or pattern the token may subscribe to (`room/42`, `room/*`, `*`); repeatable.
        #[arg(long = "subscribe", value_name = "PATTERN")]
        subscribe: Vec<Pattern>,
        /// A channel or pattern the token may emit on; repeatable.
        #[arg(long = "publish", value_name = "PATTERN")]
        publish: Vec<Pattern>,
    },
    /// Render a mapping template and print the result (or the error with its position).
    Render {
        template: PathBuf,
        /// JSON file with the `$context` object.
        #[arg(long)]
        context: Option<PathBuf>,
        /// File with the raw request body (`$input.body`).
        #[arg(long)]
        body: Option<PathBuf>,
        /// JSON file with an object of stage variables.
        #[arg(long)]
        stage_variables: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on (keep it local: nothing is authenticated but `$connect`).
    #[arg(long, env = "SUMU_LOCAL_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port for the WebSocket API, management API and JWKS (0: any free port).
    #[arg(long, env = "SUMU_LOCAL_PORT", default_value_t = 8080)]
    port: u16,
    /// The AWS-compatible endpoint (moto) integrations call.
    #[arg(
        long,
        env = "SUMU_AWS_ENDPOINT",
        default_value = "http://127.0.0.1:5000"
    )]
    aws_endpoint: String,
    #[arg(long, env = "SUMU_LOCAL_STAGE", default_value = "dev")]
    stage: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Prefix of the table, topic and queue names.
    #[arg(long, env = "SUMU_LOCAL_PREFIX", default_value = "sumu-local")]
    prefix: String,
    /// Directory with routes.json and the templates.
    #[arg(long, env = "SUMU_LOCAL_TEMPLATES", default_value_os_t = sumu_local::config::default_templates_dir())]
    templates: PathBuf,
    /// Idle timeout (API Gateway: 10 minutes).
    #[arg(long, env = "SUMU_LOCAL_IDLE_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Maximum connection duration (API Gateway: 2 hours).
    #[arg(long, env = "SUMU_LOCAL_MAX_DURATION", default_value = "2h", value_parser = parse_duration)]
    max_duration: Duration,
    /// Identity sources of the authorizer (all required, as on AWS).
    #[arg(
        long = "identity-source",
        env = "SUMU_LOCAL_IDENTITY_SOURCES",
        value_delimiter = ',',
        default_value = "route.request.querystring.authorization"
    )]
    identity_sources: Vec<IdentitySource>,
    /// The development signing key (created on first use).
    #[arg(long, env = "SUMU_LOCAL_KEY_FILE", default_value_os_t = default_key_file())]
    key_file: PathBuf,
    /// Configure the authorizer from the Lambda's environment variables (JWT_ISSUER …)
    /// instead of trusting only development tokens.
    #[arg(long, env = "SUMU_LOCAL_AUTHORIZER_FROM_ENV")]
    authorizer_from_env: bool,
    /// Where presence events go: `topic` (the messages topic, which the messages queue is
    /// subscribed to), `queue` (the messages queue only) or `none` (logged only).
    #[arg(long, env = "SUMU_LOCAL_PRESENCE_DESTINATION", default_value = "topic")]
    presence_destination: PresenceDestination,

    /// Channel patterns every connection may subscribe to, `{sub}` = its principal
    /// (comma-separated or repeated; the module's `channels.static_subscribe`).
    #[arg(long, env = "SUMU_LOCAL_STATIC_SUBSCRIBE", value_delimiter = ',')]
    static_subscribe: Vec<String>,
    /// Channel patterns every connection may emit on (the module's `channels.static_publish`).
    #[arg(long, env = "SUMU_LOCAL_STATIC_PUBLISH", value_delimiter = ',')]
    static_publish: Vec<String>,

    /// The channel namespaces, a JSON list like the module's `channel_namespaces`, e.g.
    /// '[{"pattern":"room/*","history_size":100,"history_ttl_seconds":3600}]' (docs/channels.md
    /// § History and recovery).
    #[arg(long, env = "SUMU_CHANNEL_NAMESPACES", value_parser = parse_namespaces, default_value = "[]")]
    channel_namespaces: Namespaces,

    /// A client's subscribes per connection at most (the module's
    /// `channels.max_subscriptions_per_connection`).
    #[arg(long, env = "SUMU_LOCAL_MAX_SUBSCRIPTIONS", default_value_t = presence::config::DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(presence::config::MAX_MAX_SUBSCRIPTIONS_PER_CONNECTION)))]
    max_subscriptions: u32,

    /// Run the demo back end on the messages queue (it consumes that queue: leave it off when
    /// your own back end reads it). `scripts/dev` turns it on.
    #[arg(long, env = "SUMU_LOCAL_DEMO")]
    demo: bool,

    /// Append every management-API call (who, which IAM action, which resource) to this file
    /// as JSON lines: `scripts/test` checks them against the roles of modules/sumu.
    #[arg(long, env = "SUMU_AWS_CALL_LOG")]
    aws_call_log: Option<PathBuf>,
}

/// The log filter without `RUST_LOG`. Warnings of every crate sumu-local runs (the authorizer,
/// presence, the pusher, the demo back end, the VTL interpreter, its AWS clients) and of
/// everything else: a message the demo back end skips or a request the pusher rejects must leave
/// a trace. Besides that, sumu-local's own info lines and the authorizer's verdicts, but not the
/// event sources' start and stop lines, so the banner is the last thing printed at start.
const DEFAULT_LOG_FILTER: &str = "warn,sumu_local=info,sumu_local::runners=warn,\
                                  sumu_local::stream_runner=warn,authorizer=info";

/// `.tools/sumu-local/dev-signing-key.p8` in the repository: shared by `serve` and `token`.
fn default_key_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/sumu-local/dev-signing-key.p8")
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Token {
            sub,
            ttl,
            key_file,
            subscribe,
            publish,
        }) => token(&sub, &Grants { subscribe, publish }, ttl, &key_file),
        Some(Command::Render {
            template,
            context,
            body,
            stage_variables,
        }) => render(&template, context, body, stage_variables),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sumu-local: {error}");
            ExitCode::FAILURE
        }
    }
}

type Failure = Box<dyn std::error::Error>;

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let idp = Arc::new(DevIdentityProvider::load_or_create(&args.key_file)?);
    let mut config = Config::new(&args.aws_endpoint, Arc::clone(&idp));
    config.stage = args.stage;
    config.region = args.region;
    config.templates_dir = args.templates;
    config.names = ResourceNames::with_prefix(&args.prefix);
    config.limits.idle_timeout = args.idle_timeout;
    config.limits.max_duration = args.max_duration;
    config.identity_sources = args.identity_sources;
    config.aws_call_log = args.aws_call_log;
    config.static_grants = authorizer::StaticGrants {
        subscribe: trimmed(args.static_subscribe),
        publish: trimmed(args.static_publish),
    };
    config.channel_namespaces = args.channel_namespaces;
    config.presence = Some(PresenceSetup {
        destination: args.presence_destination,
        max_subscriptions_per_connection: args.max_subscriptions,
        ..PresenceSetup::default()
    });
    if args.authorizer_from_env {
        config.authorizer = AuthorizerSetup::Custom(authorizer::Config::from_env()?);
    }
    let mut extensions = Extensions::default();
    if args.demo {
        extensions
            .runners
            .push(sumu_local::runners::demo::demo_runner());
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    let emulator = sumu_local::start_with(listener, config, extensions).await?;
    // A development token only where the authorizer accepts one.
    let dev_token = if args.authorizer_from_env {
        None
    } else {
        Some(idp.mint("alice", Duration::from_secs(3600), now_secs())?)
    };
    let options = BannerOptions {
        demo: args.demo,
        dev_token,
    };
    println!("{}", banner::render(emulator.endpoints(), &options));
    emulator
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// A comma-separated list's entries without the spaces around them (`a/*, b` is two).
fn trimmed(patterns: Vec<String>) -> Vec<String> {
    patterns
        .into_iter()
        .map(|pattern| pattern.trim().to_string())
        .filter(|pattern| !pattern.is_empty())
        .collect()
}

fn now_secs() -> i64 {
    sumu_local::protocol::now_ms() / 1000
}

fn token(sub: &str, grants: &Grants, ttl: Duration, key_file: &Path) -> Result<(), Failure> {
    let idp = DevIdentityProvider::load_or_create(key_file)?;
    println!("{}", idp.mint_with_grants(sub, grants, ttl, now_secs())?);
    Ok(())
}

fn render(
    template: &Path,
    context: Option<PathBuf>,
    body: Option<PathBuf>,
    stage_variables: Option<PathBuf>,
) -> Result<(), Failure> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
    };
    let source = read(template)?;
    let mut input = vtl::RenderInput::default();
    if let Some(path) = context {
        input.context = serde_json::from_str(&read(&path)?)
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    if let Some(path) = body {
        input.body = read(&path)?;
    }
    if let Some(path) = stage_variables {
        input.stage_variables = serde_json::from_str(&read(&path)?)
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    let rendered = vtl::Template::parse(&source)
        .and_then(|parsed| parsed.render(&input))
        .map_err(|error| format!("{}: {error}", template.display()))?;
    print!("{rendered}");
    Ok(())
}

/// `--channel-namespaces`: validated as the Lambdas validate `CHANNEL_NAMESPACES`.
fn parse_namespaces(text: &str) -> Result<Namespaces, String> {
    Namespaces::parse(text).map_err(|error| error.to_string())
}
