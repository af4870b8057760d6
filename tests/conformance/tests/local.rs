//! The conformance suite against sumu-local (in-process, on 127.0.0.1:0, with moto): every
//! check passes when run as a user runs it — the `sumu-conformance` binary reading a
//! `terraform output -json`-shaped file and taking tokens from a command — and a check against a
//! wrong setup fails with a message that says what to look at.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use conformance::outputs::Outputs;
use conformance::tokens::TokenCommand;
use conformance::{new_run_id, user_name, Settings, Suite, Verdict, CHECKS, ROLES};
use serde_json::json;
use sumu_local::dev_idp::{DevIdentityProvider, DEV_AUDIENCE, DEV_ISSUER};
use sumu_local::{Config, Endpoints, ResourceNames};
use tokio::sync::oneshot;

/// A running sumu-local with the grants the suite needs; stops when dropped.
struct Local {
    endpoints: Endpoints,
    idp: Arc<DevIdentityProvider>,
    _stop: oneshot::Sender<()>,
}

impl Local {
    async fn start() -> Local {
        let idp = Arc::new(DevIdentityProvider::generate().expect("generate a dev key"));
        let mut config = Config::new(&testkit::moto_endpoint(), Arc::clone(&idp));
        config.names = ResourceNames::with_prefix(&testkit::unique_name("conformance"));
        config.templates_dir = testkit::repo_root().join("mapping-templates");
        config.aws_call_log = testkit::aws_call_log();
        // What docs/deploying.md § Check a deployment asks of a deployment.
        config.static_grants = authorizer::StaticGrants {
            subscribe: vec!["conformance/*".into()],
            publish: vec!["conformance/*".into()],
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let emulator = sumu_local::start(listener, config)
            .await
            .expect("sumu-local starts");
        let endpoints = emulator.endpoints().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(emulator.serve(async {
            let _ = stopped.await;
        }));
        Local {
            endpoints,
            idp,
            _stop: stop,
        }
    }

    /// The deployment as `terraform output -json` would describe it.
    fn terraform_outputs(&self) -> serde_json::Value {
        let resources = &self.endpoints.resources;
        let output = |value: &str| json!({"sensitive": false, "type": "string", "value": value});
        json!({
            "websocket_url": output(&self.endpoints.websocket_url),
            "messages_queue_url": output(&resources.messages_queue_url),
            "messages_topic_arn": output(&resources.messages_topic_arn),
            "notifications_queue_url": output(&resources.notifications_queue_url),
            "notifications_topic_arn": output(&resources.notifications_topic_arn),
            "notifications_dlq_url": output(&resources.notifications_dlq_url),
            "region": output(testkit::REGION),
        })
    }
}

/// A directory holding one token file per test user (`cat DIR/{user}` is the token command),
/// signed by `idp`. Each token's `sub` is a fresh UUID, not the user's name, as with Cognito: the
/// suite must take the user id from the token.
fn token_files(idp: &DevIdentityProvider) -> PathBuf {
    let directory = std::env::temp_dir().join(testkit::unique_name("conformance-tokens"));
    std::fs::create_dir_all(&directory).expect("create the token directory");
    let now = sumu_local::protocol::now_ms() / 1000;
    for role in ROLES {
        let principal = uuid::Uuid::new_v4().to_string();
        let token = idp
            .mint(&principal, Duration::from_secs(3600), now)
            .expect("mint a token");
        std::fs::write(directory.join(user_name(role)), token).expect("write a token");
    }
    directory
}

/// Below `directory`, in `foreign/`: one token per test user that `idp` signed as the dev issuer
/// but for another audience, as another app client of the same Cognito user pool would get.
/// Returns the `foreign/` directory.
fn foreign_token_files(idp: &DevIdentityProvider, directory: &Path) -> PathBuf {
    let foreign = directory.join("foreign");
    std::fs::create_dir_all(&foreign).expect("create the foreign token directory");
    let now = sumu_local::protocol::now_ms() / 1000;
    for role in ROLES {
        let claims = json!({
            "iss": DEV_ISSUER, "aud": "sumu-conformance-another-client",
            "sub": uuid::Uuid::new_v4().to_string(),
            "iat": now, "nbf": now, "exp": now + 3600,
        });
        assert_ne!(claims["aud"], DEV_AUDIENCE);
        let token = idp.mint_claims(&claims).expect("mint a foreign token");
        std::fs::write(foreign.join(user_name(role)), token).expect("write a token");
    }
    foreign
}

fn cat_command(directory: &Path) -> String {
    format!("cat {}/{{user}}", directory.display())
}

/// Twice against the same sumu-local: a refusal of the first run (the subscription cap's
/// cancelled transaction) must not stop what the second run checks (presence events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_against_sumu_local_through_the_binary_twice() {
    let local = Local::start().await;
    every_check_passes(&local).await;
    every_check_passes(&local).await;
}

async fn every_check_passes(local: &Local) {
    let run_id = new_run_id();
    let tokens = token_files(&local.idp);
    let foreign = foreign_token_files(&local.idp, &tokens);
    let outputs_file = tokens.join("outputs.json");
    std::fs::write(&outputs_file, local.terraform_outputs().to_string()).expect("write outputs");

    let moto = testkit::moto_endpoint();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sumu-conformance"))
        .arg("--outputs")
        .arg(&outputs_file)
        .arg("--token-command")
        .arg(cat_command(&tokens))
        .arg("--foreign-token-command")
        .arg(cat_command(&foreign))
        .args(["--run-id", &run_id, "--quiet", "2"])
        // The SDK's own configuration, as a user's shell would give it.
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run sumu-conformance");
    let _ = std::fs::remove_dir_all(&tokens);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture: what a user sees.
    println!("{stdout}");
    assert!(
        output.status.success(),
        "sumu-conformance failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for check in CHECKS {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(&format!("PASS  {} ", check.name))),
            "{} did not pass:\n{stdout}\n{stderr}",
            check.name
        );
    }
    assert!(
        !stdout.contains("FAIL") && !stdout.contains("SKIP"),
        "{stdout}"
    );
}

/// The library's suite against `outputs`, with tokens from `command` and short waits.
async fn suite(outputs: Outputs, command: &str, run_id: &str) -> Suite {
    let mut settings = Settings::new(run_id);
    settings.deadline = Duration::from_secs(3);
    settings.quiet = Duration::from_secs(1);
    let aws = testkit::aws_config().await;
    Suite::new(
        outputs,
        settings,
        TokenCommand::new(command).expect("token command"),
        &aws,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_messages_queue_fails_send_with_what_to_look_at() {
    let local = Local::start().await;
    let run_id = new_run_id();
    let tokens = token_files(&local.idp);
    let mut outputs = Outputs::from_json(&local.terraform_outputs().to_string()).expect("outputs");
    // A real queue, but not the one `send` writes to: nothing will ever arrive there.
    outputs.messages_queue_url = local.endpoints.resources.notifications_dlq_url.clone();
    let suite = suite(outputs, &cat_command(&tokens), &run_id).await;

    let outcome = suite.run("send").await;
    let _ = std::fs::remove_dir_all(&tokens);
    let Err(Verdict::Fail(message)) = outcome else {
        panic!("send against the wrong queue should fail, got {outcome:?}");
    };
    assert!(
        message.contains("got no `send` message from a client")
            && message.contains("within 3s")
            && message.contains("is the route wired to the messages queue/topic?"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_another_issuer_fails_the_upgrade_with_401_and_says_why() {
    let local = Local::start().await;
    let run_id = new_run_id();
    let stranger = DevIdentityProvider::generate().expect("another key");
    let tokens = token_files(&stranger);
    let outputs = Outputs::from_json(&local.terraform_outputs().to_string()).expect("outputs");
    let suite = suite(outputs, &cat_command(&tokens), &run_id).await;

    let outcome = suite.run("upgrade-valid-token").await;
    let _ = std::fs::remove_dir_all(&tokens);
    let Err(Verdict::Fail(message)) = outcome else {
        panic!("a token signed by an unknown key should fail the check, got {outcome:?}");
    };
    assert!(
        message.contains("refused with HTTP 401 (expected 101)")
            && message.contains("is its issuer (iss) one of the deployment's issuers"),
        "{message}"
    );
}

/// Skipped without the command; given a token for this API (101) or from an unknown key (401)
/// instead of a foreign one, it fails and says what to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_foreign_token_check_says_why_a_token_is_not_refused_with_403() {
    let local = Local::start().await;
    let run_id = new_run_id();
    let tokens = token_files(&local.idp);
    let stranger = token_files(&DevIdentityProvider::generate().expect("another key"));
    let outputs = Outputs::from_json(&local.terraform_outputs().to_string()).expect("outputs");

    let without = suite(outputs.clone(), &cat_command(&tokens), &run_id).await;
    let skipped = without.run("upgrade-foreign-token").await;

    // The token command's own tokens: the right audience, so the upgrade succeeds.
    let same_audience = suite(outputs.clone(), &cat_command(&tokens), &run_id)
        .await
        .with_foreign_tokens(
            TokenCommand::named("the foreign token command", &cat_command(&tokens))
                .expect("command"),
        );
    let accepted = same_audience.run("upgrade-foreign-token").await;

    let unknown_key = suite(outputs, &cat_command(&tokens), &run_id)
        .await
        .with_foreign_tokens(
            TokenCommand::named("the foreign token command", &cat_command(&stranger))
                .expect("command"),
        );
    let unauthentic = unknown_key.run("upgrade-foreign-token").await;
    let _ = std::fs::remove_dir_all(&tokens);
    let _ = std::fs::remove_dir_all(&stranger);

    let Err(Verdict::Skip(reason)) = skipped else {
        panic!("without --foreign-token-command the check should be skipped, got {skipped:?}");
    };
    assert!(reason.contains("needs --foreign-token-command"), "{reason}");

    let Err(Verdict::Fail(message)) = accepted else {
        panic!("a token for this API should fail the check, got {accepted:?}");
    };
    assert!(
        message.contains("(audience aud \"sumu-local\") was accepted with 101, expected 403")
            && message.contains("the deployment accepts tokens of another audience")
            && message.contains("Check the issuer's `audiences`")
            && message.contains("the token command's token has the same audience"),
        "{message}"
    );

    let Err(Verdict::Fail(message)) = unauthentic else {
        panic!("a token from an unknown key should fail the check, got {unauthentic:?}");
    };
    assert!(
        message.contains("refused with HTTP 401, expected 403")
            && message.contains("did not accept the token's signature or issuer")
            && message.contains("Is the command's token from the same issuer"),
        "{message}"
    );
}

#[tokio::test]
async fn the_binary_refuses_an_unknown_check_and_lists_the_known_ones() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sumu-conformance"))
        .args([
            "--only",
            "pinng",
            "--outputs",
            "-",
            "--token-command",
            "x {user}",
        ])
        .output()
        .await
        .expect("run sumu-conformance");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no check named \"pinng\"") && stderr.contains("ping"),
        "{stderr}"
    );

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sumu-conformance"))
        .arg("--list")
        .output()
        .await
        .expect("run sumu-conformance --list");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), CHECKS.len(), "{stdout}");
}
