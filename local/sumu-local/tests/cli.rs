//! The `sumu-local` binary's offline commands: `token` and `render`.

use std::path::PathBuf;
use std::process::Command;

use sumu_local::dev_idp::{DevIdentityProvider, DEV_AUDIENCE, DEV_ISSUER};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sumu-local"))
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sumu-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn token_prints_a_jwt_signed_by_the_key_the_server_serves() {
    let dir = scratch();
    let key_file = dir.join("key.p8");
    let output = binary()
        .args(["token", "--sub", "bob", "--ttl", "15m", "--key-file"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let token = token.trim();

    // The server loads the same file and serves this JWKS.
    let served = DevIdentityProvider::load_or_create(&key_file)
        .unwrap()
        .jwks();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(served["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[DEV_AUDIENCE]);
    validation.set_issuer(&[DEV_ISSUER]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "bob");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The claims of a token printed by `sumu-local token`, verified with the served key.
fn claims_of(output: &std::process::Output, key_file: &std::path::Path) -> serde_json::Value {
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout.clone()).unwrap();
    let served = DevIdentityProvider::load_or_create(key_file)
        .unwrap()
        .jwks();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(served["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[DEV_AUDIENCE]);
    jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

#[test]
fn token_puts_repeatable_subscribe_and_publish_flags_in_the_channels_claim() {
    let dir = scratch();
    let key_file = dir.join("key.p8");
    let output = binary()
        .args(["token", "--sub", "alice", "--subscribe", "room/*"])
        .args(["--subscribe", "user/alice", "--publish", "room/*"])
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    let claims = claims_of(&output, &key_file);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["channels"],
        serde_json::json!({"subscribe": ["room/*", "user/alice"], "publish": ["room/*"]})
    );

    let output = binary()
        .args(["token", "--sub", "bob", "--key-file"])
        .arg(&key_file)
        .output()
        .unwrap();
    let claims = claims_of(&output, &key_file);
    assert!(
        claims.get("channels").is_none(),
        "no flags, no claim: {claims}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn token_refuses_a_bad_pattern_with_a_clear_error() {
    let dir = scratch();
    for (flag, bad, why) in [
        ("--subscribe", "room/**", "`*` is only allowed"),
        ("--publish", "a/b/c/d/e/f", "6 segments"),
        ("--subscribe", "room 42", "not allowed"),
    ] {
        let output = binary()
            .args(["token", "--sub", "alice", flag, bad, "--key-file"])
            .arg(dir.join("key.p8"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad}");
        assert!(output.stdout.is_empty(), "no token printed for {bad}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(bad) && stderr.contains(flag), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn render_prints_the_output_and_reports_errors_with_their_position() {
    let dir = scratch();
    let template = dir.join("t.vtl");
    std::fs::write(
        &template,
        "#set($n = $context.requestTimeEpoch / 1000)$stageVariables.table:$n:$input.json('$.a')",
    )
    .unwrap();
    let context = dir.join("ctx.json");
    std::fs::write(&context, r#"{"requestTimeEpoch": 1700000000999}"#).unwrap();
    let body = dir.join("body.json");
    std::fs::write(&body, r#"{"a": {"b": 1}}"#).unwrap();
    let vars = dir.join("vars.json");
    std::fs::write(&vars, r#"{"table": "t1"}"#).unwrap();
    let output = binary()
        .arg("render")
        .arg(&template)
        .arg("--context")
        .arg(&context)
        .arg("--body")
        .arg(&body)
        .arg("--stage-variables")
        .arg(&vars)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        r#"t1:1700000000:{"b":1}"#
    );

    let broken = dir.join("broken.vtl");
    std::fs::write(&broken, "line one\n#if($x\n").unwrap();
    let output = binary().arg("render").arg(&broken).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("broken.vtl: line "), "{stderr}");
    assert!(stderr.contains("column"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// What a running process printed so far, one line at a time, from a reader thread.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Lines {
    fn read(from: impl std::io::Read + Send + 'static) -> Lines {
        use std::io::BufRead;
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (generously) for a line containing `text` and returns it.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            if let Some(line) = self.all().into_iter().find(|line| line.contains(text)) {
                return line;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no line with {text:?} in:\n{}",
                self.all().join("\n")
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The value printed after `label` on a banner line (`  Notifications queue  http://…   (…)`).
fn banner_value(line: &str, label: &str) -> String {
    line.trim_start()
        .trim_start_matches(label)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The ready-to-paste `websocat '…'` URL of the banner.
fn websocat_url(line: &str) -> String {
    line.split('\'').nth(1).expect("a quoted URL").to_string()
}

/// Sends SIGINT to a process, or to a process group when `pid` is negative (what Ctrl-C does).
fn interrupt(pid: i64) {
    let status = Command::new("kill")
        .args(["-INT", "--", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// A process a test started, stopped when the test ends, even half-way through a failure:
/// `scripts/dev` with SIGTERM (its trap stops sumu-local and moto, which run in process groups
/// of their own), anything else killed.
struct Running {
    child: std::process::Child,
    by_sigterm: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.by_sigterm {
                let _ = Command::new("kill")
                    .args(["-TERM", &self.child.id().to_string()])
                    .status();
            } else {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

fn wait_for_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "did not stop");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_default_log_filter_shows_the_warnings_of_every_crate_it_runs() {
    use futures::SinkExt;
    let dir = scratch();
    let child = binary()
        .args([
            "serve",
            "--port",
            "0",
            "--demo",
            "--presence-destination",
            "none",
        ])
        .args(["--aws-endpoint", &testkit::moto_endpoint()])
        .args(["--prefix", &testkit::unique_name("cli-log")])
        .arg("--key-file")
        .arg(dir.join("key.p8"))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sumu-local");
    let mut running = Running {
        child,
        by_sigterm: false,
    };
    let child = &mut running.child;
    let stdout = Lines::read(child.stdout.take().unwrap());
    let stderr = Lines::read(child.stderr.take().unwrap());
    let url = websocat_url(&stdout.wait_for("websocat '").await);
    let notifications = banner_value(
        &stdout.wait_for("Notifications queue").await,
        "Notifications queue",
    );

    // The demo back end skips a message it does not understand ...
    let (mut client, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    client
        .send(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"action":"send","message":{"type":"nonsense"}}"#.into(),
        ))
        .await
        .expect("send");
    stderr.wait_for("skipping a malformed message").await;
    // ... and the pusher rejects a notification request that is not JSON: both say so.
    let sqs = aws_sdk_sqs::Client::new(&testkit::aws_config().await);
    sqs.send_message()
        .queue_url(&notifications)
        .message_body("not JSON")
        .send()
        .await
        .expect("send to the notifications queue");
    stderr.wait_for("rejected notification request").await;

    // The event sources started long before those were consumed; their lines stay hidden, so
    // nothing follows the banner until there is traffic.
    let noise: Vec<String> = stderr
        .all()
        .into_iter()
        .filter(|line| line.contains("event source started") || line.contains("runner started"))
        .collect();
    assert!(noise.is_empty(), "{noise:?}");

    interrupt(i64::from(child.id()));
    assert!(wait_for_exit(child).success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn scripts_dev_stops_sumu_local_before_moto_on_ctrl_c() {
    use futures::{SinkExt, StreamExt};
    use std::os::unix::process::CommandExt;
    let dir = scratch();
    let root = testkit::repo_root();
    let mut command = Command::new(root.join("scripts/dev"));
    command
        .env("SUMU_LOCAL_BIN", env!("CARGO_BIN_EXE_sumu-local"))
        .env("SUMU_LOCAL_PORT", "0")
        .env_remove("SUMU_MOTO_PORT")
        .env("SUMU_LOCAL_PREFIX", testkit::unique_name("cli-dev"))
        .env("SUMU_LOCAL_KEY_FILE", dir.join("key.p8"))
        .env("MOTO_LOG", dir.join("moto.log"))
        .env("RUST_LOG", "warn,sumu_local::ws=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, as a terminal's foreground job: Ctrl-C signals the group.
        .process_group(0);
    // A test run in the background by a non-interactive shell inherits SIGINT ignored, and a
    // shell cannot trap a signal that was ignored when it started: give scripts/dev the default
    // disposition a terminal's foreground job has.
    // SAFETY: signal() is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = command.spawn().expect("start scripts/dev");
    let mut running = Running {
        child,
        by_sigterm: true,
    };
    let child = &mut running.child;
    let stdout = Lines::read(child.stdout.take().unwrap());
    let stderr = Lines::read(child.stderr.take().unwrap());
    let url = websocat_url(&stdout.wait_for("websocat '").await);

    // alice (the banner's token), then bob: the demo back end tells alice that bob came online.
    let bob = binary()
        .args(["token", "--sub", "bob", "--key-file"])
        .arg(dir.join("key.p8"))
        .output()
        .expect("mint a token for bob");
    let bob = String::from_utf8(bob.stdout).unwrap();
    let bob_url = format!(
        "{}{}",
        url.split("authorization=").next().unwrap(),
        "authorization="
    );
    let mut clients = Vec::new();
    for url in [url.clone(), format!("{bob_url}{}", bob.trim())] {
        let (mut client, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect");
        client
            .send(tokio_tungstenite::tungstenite::Message::Text(
                r#"{"action":"ping"}"#.into(),
            ))
            .await
            .expect("ping");
        clients.push(client);
    }
    // The demo back end answers each connect's presence event with a push to everyone: once
    // it arrives, the pusher has run (and printed its metric line, in Lambda's way).
    let mut frames = Vec::new();
    while !frames
        .iter()
        .any(|frame: &String| frame.contains("presence"))
        || !frames.iter().any(|frame| frame.contains("pong"))
    {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(30), clients[0].next())
            .await
            .expect("a frame in time")
            .expect("a frame")
            .expect("a valid frame");
        frames.push(frame.to_string());
    }

    interrupt(-i64::from(child.id()));
    let status = wait_for_exit(child);
    let output = stderr.all().join("\n");
    assert!(status.success(), "{status:?}\n{output}");
    let done = stderr
        .all()
        .iter()
        .filter(|line| line.contains("$disconnect integration done"))
        .count();
    assert_eq!(done, 2, "both $disconnects reached moto:\n{output}");
    assert!(
        !output.contains("$disconnect integration failed"),
        "{output}"
    );
    // The pusher's metric lines are left out of scripts/dev's output (SUMU_DEV_METRICS=true
    // shows them); the connects above invoked it (presence → demo back end → pusher).
    let stdout = stdout.all();
    assert!(
        stdout.iter().all(|line| !line.starts_with(r#"{"_aws":"#)),
        "{stdout:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
