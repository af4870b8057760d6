//! What the benchmarks share: CPU time and RSS from getrusage, the endpoint role's arguments, and the fake
//! management endpoint (a child process, so its CPU is not the client's).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A notification of 131 bytes, the size docs/benchmarks.md's figures use.
pub const PAYLOAD: &str = r#"{"type":"notification","id":123456,"title":"Build finished","body":"main is green again","url":"https://example.com/builds/42"}"#;

/// The fake management endpoint's role, the same in every benchmark binary:
/// `<binary> endpoint --delay-ms N` (started by [`start_endpoint`]).
#[derive(clap::Args, Debug)]
pub struct EndpointArgs {
    /// Milliseconds the endpoint waits before answering each post.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
}

/// CPU time (user + system) of this process so far, and its peak RSS in KiB.
pub fn rusage() -> (Duration, u64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (
        time(usage.ru_utime) + time(usage.ru_stime),
        usage.ru_maxrss as u64,
    )
}

/// Shaped like API Gateway's ids (16 characters ending in `=`).
pub fn connection_id(n: u64) -> String {
    format!("{n:015X}=")
}

/// Serves `POST /{stage}/@connections/{id}` (200 after `delay_ms`) until stdin closes. Run as
/// `<bench> endpoint --delay-ms N`; prints `PORT p` first.
pub async fn serve_endpoint(delay_ms: u64) -> Result<(), Error> {
    use axum::extract::Path;
    use axum::routing::post;
    let posts = Arc::new(AtomicU64::new(0));
    let counter = posts.clone();
    let app = axum::Router::new().route(
        "/{stage}/@connections/{id}",
        post(
            move |Path((_stage, _id)): Path<(String, String)>, _body: axum::body::Bytes| {
                let counter = counter.clone();
                async move {
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("PORT {}", listener.local_addr()?.port());
    // Serve until the parent closes our stdin (or dies).
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    server.abort();
    Ok(())
}

/// The endpoint child process; stops when dropped.
pub struct Endpoint {
    child: std::process::Child,
    pub url: String,
}

pub fn start_endpoint(delay_ms: u64) -> Result<Endpoint, Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["endpoint", "--delay-ms", &delay_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .ok_or(format!("endpoint said {line:?}"))?;
    Ok(Endpoint {
        child,
        url: format!("http://127.0.0.1:{port}/bench"),
    })
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Runs this binary with `args` and returns the last JSON line it printed (not an EMF line).
pub fn run_child(args: &[String]) -> Result<Value, Error> {
    let output = Command::new(std::env::current_exe()?)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stdout)
        )
        .into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{') && !l.contains("\"_aws\""));
    Ok(serde_json::from_str(
        last.ok_or(format!("no result from {args:?}: {stdout}"))?,
    )?)
}
