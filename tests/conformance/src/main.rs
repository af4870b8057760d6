//! `sumu-conformance`: runs the conformance checks against a deployment described by
//! `terraform output -json`, with tokens from a command the user supplies (README.md).

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use clap::Parser;
use conformance::outputs::Outputs;
use conformance::tokens::TokenCommand;
use conformance::{new_run_id, Settings, Suite, Verdict, CHECKS};

#[derive(Parser)]
#[command(
    name = "sumu-conformance",
    about = "Checks a sumu deployment's public contract through its WebSocket URL, queues and topics",
    version
)]
struct Cli {
    /// `terraform output -json` of the deployment: a file, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    outputs: Option<String>,
    /// Prints a JWT for a test user on stdout; `{user}` is replaced by the user's name. Run once
    /// per test user.
    #[arg(long, env = "SUMU_CONFORMANCE_TOKEN_COMMAND", value_name = "COMMAND")]
    token_command: Option<String>,
    /// Prints a JWT the deployment's issuer signed for ANOTHER audience (e.g. another app client
    /// of the same Cognito user pool); `{user}` as in --token-command. Without it
    /// upgrade-foreign-token (403) is skipped.
    #[arg(
        long,
        env = "SUMU_CONFORMANCE_FOREIGN_TOKEN_COMMAND",
        value_name = "COMMAND"
    )]
    foreign_token_command: Option<String>,
    /// Run only these checks (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "CHECK")]
    only: Vec<String>,
    /// Do not run these checks (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "CHECK")]
    skip: Vec<String>,
    /// List the checks and what each proves, then exit.
    #[arg(long)]
    list: bool,
    /// Run the broadcast check, which reaches every connected user of the deployment (on by
    /// default only against sumu-local, a loopback URL).
    #[arg(long)]
    broadcast: bool,
    /// The deployment's channels.max_subscriptions_per_connection.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_subscriptions: u32,
    /// Seconds anything that should arrive may take.
    #[arg(long, default_value_t = 30)]
    deadline: u64,
    /// Seconds a "nothing arrives" check listens.
    #[arg(long, default_value_t = 3)]
    quiet: u64,
    /// Connect here instead of the websocket_url output (e.g. the custom domain's URL).
    #[arg(long, value_name = "URL")]
    websocket_url: Option<String>,
    /// The token claim the deployment takes as the user id (its JWT_PRINCIPAL_CLAIM).
    #[arg(long, default_value = "sub", value_name = "CLAIM")]
    principal_claim: String,
    /// Name this run's channels and messages (default: random).
    #[arg(long, value_parser = parse_run_id)]
    run_id: Option<String>,
}

fn parse_run_id(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 16
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if valid {
        Ok(text.to_string())
    } else {
        Err("1-16 lowercase letters or digits".into())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list {
        for check in CHECKS {
            println!("{:<24} {}", check.name, check.proves);
        }
        return ExitCode::SUCCESS;
    }
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("sumu-conformance: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs the selected checks, one line each; `Ok(false)` when any failed.
async fn run(cli: Cli) -> Result<bool, String> {
    let selected = select(&cli.only, &cli.skip)?;
    let source = cli
        .outputs
        .ok_or("--outputs is required: `terraform output -json > outputs.json`, then --outputs outputs.json (or - for stdin)")?;
    let text = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| format!("reading the outputs from stdin: {error}"))?;
        text
    } else {
        std::fs::read_to_string(&source).map_err(|error| format!("{source}: {error}"))?
    };
    let mut outputs = Outputs::from_json(&text)?;
    if let Some(url) = cli.websocket_url {
        outputs.websocket_url = url;
    }
    let template = cli
        .token_command
        .ok_or("--token-command is required: a command printing a JWT for {user}, e.g. 'my-idp-token --subject {user}'")?;
    let tokens = TokenCommand::new(&template)?;
    let foreign_tokens = cli
        .foreign_token_command
        .map(|template| TokenCommand::named("the foreign token command", &template))
        .transpose()?;

    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &outputs.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let aws = loader.load().await;
    if aws.region().is_none() {
        return Err("no AWS region: the outputs have no `region`; set AWS_REGION".into());
    }

    let mut settings = Settings::new(&cli.run_id.unwrap_or_else(new_run_id));
    settings.deadline = Duration::from_secs(cli.deadline);
    settings.quiet = Duration::from_secs(cli.quiet);
    settings.max_subscriptions = cli.max_subscriptions;
    settings.broadcast = cli.broadcast.then_some(true);
    settings.principal_claim = cli.principal_claim;
    let mut suite = Suite::new(outputs, settings, tokens, &aws);
    if let Some(foreign_tokens) = foreign_tokens {
        suite = suite.with_foreign_tokens(foreign_tokens);
    }

    println!(
        "sumu-conformance: run {} against {} as {}",
        suite.settings.run_id,
        suite.outputs.websocket_url,
        conformance::ROLES
            .iter()
            .map(|role| conformance::user_name(role))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Instant::now();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for name in &selected {
        let check_started = Instant::now();
        let outcome = suite.run(name).await;
        let took = check_started.elapsed().as_secs_f32();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("PASS  {name} ({took:.1} s)");
            }
            Err(Verdict::Fail(message)) => {
                failed += 1;
                println!("FAIL  {name} ({took:.1} s): {message}");
            }
            Err(Verdict::Skip(reason)) => {
                skipped += 1;
                println!("SKIP  {name}: {reason}");
            }
        }
    }
    println!(
        "{} checks: {passed} passed, {failed} failed, {skipped} skipped in {:.0} s",
        selected.len(),
        started.elapsed().as_secs_f32()
    );
    Ok(failed == 0)
}

/// The checks to run, in their order: `--only` (or all) minus `--skip`; unknown names refused.
fn select(only: &[String], skip: &[String]) -> Result<Vec<&'static str>, String> {
    let known: Vec<&str> = CHECKS.iter().map(|check| check.name).collect();
    for name in only.iter().chain(skip) {
        if !known.contains(&name.as_str()) {
            return Err(format!(
                "there is no check named {name:?}; --list shows them: {}",
                known.join(", ")
            ));
        }
    }
    Ok(known
        .into_iter()
        .filter(|name| only.is_empty() || only.iter().any(|wanted| wanted == name))
        .filter(|name| !skip.iter().any(|unwanted| unwanted == name))
        .collect())
}
