//! A raw HTTP/1.1 server on 127.0.0.1:0 that answers each request with scripted bytes, to test
//! the client's own HTTP exchange on what a general server library would never send: answers
//! cut short, malformed or oversized, chunked and interim answers, and connections closed
//! at the worst moments. Generic over the stream, so the TLS test serves through it too.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What the server does after reading request number `n` (from 0).
#[derive(Debug, Clone)]
pub enum Reply {
    /// Writes these bytes and keeps the connection open.
    Answer(Vec<u8>),
    /// Writes these bytes, then closes the connection.
    AnswerAndClose(Vec<u8>),
    /// Closes the connection without a word.
    Close,
}

/// Requests and connections the server saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub accepted: AtomicUsize,
    pub requests: AtomicUsize,
    /// Connections the server closed (counted once closed).
    pub closed: AtomicUsize,
    /// Each request's head, as received.
    pub heads: std::sync::Mutex<Vec<String>>,
}

pub type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// Serves one connection: reads requests (head and `content-length` body), answers each.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    script: Script,
    seen: Arc<Seen>,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(length) = read_request(&mut stream, &mut buffer).await else {
            break;
        };
        let head = String::from_utf8_lossy(&buffer[..length]).into_owned();
        buffer.drain(..length);
        let n = seen.requests.fetch_add(1, Ordering::SeqCst);
        seen.heads.lock().unwrap().push(head);
        match script(n) {
            Reply::Answer(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Reply::AnswerAndClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                break;
            }
            Reply::Close => break,
        }
    }
    drop(stream);
    seen.closed.fetch_add(1, Ordering::SeqCst);
}

/// The length of the next whole request in `buffer` (reading more as needed), `None` at the end.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = request.parse(buffer) {
            let body: usize = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            if buffer.len() >= head + body {
                return Some(head + body);
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Starts the server over plain TCP; returns its `http://127.0.0.1:PORT/dev` endpoint.
pub async fn start(script: Script) -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let counters = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counters.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(socket, Arc::clone(&script), Arc::clone(&counters)));
        }
    });
    (format!("http://127.0.0.1:{port}/dev"), seen)
}

/// Waits (with a generous deadline) until `count` reaches `at_least`.
pub async fn until(count: &AtomicUsize, at_least: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while count.load(Ordering::SeqCst) < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} of {at_least}",
            count.load(Ordering::SeqCst)
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
