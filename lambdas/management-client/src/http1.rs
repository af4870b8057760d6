//! HTTP/1.1 keep-alive connections to the management API ([`HttpPool`]), and the one exchange
//! the client needs on them: write a request, read the answer's status and `x-amzn-ErrorType`.
//!
//! Written on tokio's TCP and rustls (aws-lc-rs, the system's roots — the stack the SDK
//! brings) with `httparse` for the answer, instead of through hyper, because in a fan-out the
//! post path is the whole CPU bill and hyper's dispatch (a connection task per socket, a channel
//! to it and back per request, header maps) cost more than everything else in a post
//! (`scripts/bench poster --explore`, `hyper-floor` against `floor`; figures in README.md). A
//! post here runs in the task that awaits it: no task, channel or header map in between, one
//! write and (usually) one read per post.
//!
//! What a general client does and this one does not need: redirects, `Expect`, pipelining,
//! HTTP/2, request bodies of unknown length. What it must and does handle: `Content-Length`
//! and chunked answers, answers delimited by the connection's end, `Connection: close`, 1xx
//! interim answers, and kept-alive connections the server closed while they were idle.

use std::io;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long an idle kept-alive connection is reused. API Gateway closes idle connections
/// itself after a while (and a Lambda may be frozen for minutes between invocations).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// The most an answer may take, head and body: the management API's are a few hundred bytes
/// (an empty 200, or a small JSON error). A larger one is refused, not buffered.
const MAX_ANSWER: usize = 64 * 1024;

/// Headers read from one answer; more is refused (the management API sends about ten).
const MAX_HEADERS: usize = 64;

/// Why a request got no usable answer. Both are worth another try on a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Connecting, the TLS handshake, or writing the request failed, or the connection ended
    /// before any answer.
    Dispatch(String),
    /// The answer was cut short, malformed or too large.
    UnreadableResponse(String),
}

/// What the management API answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `x-amzn-ErrorType`, as sent (only error answers carry it).
    pub error_type: Option<String>,
}

/// Where the connections go: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// TLS for `https` origins; `None` for plain `http` (sumu-local).
struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One HTTP/1.1 connection (TCP, or TLS over TCP) with its buffer.
struct HttpConnection {
    stream: Stream,
    /// The request on its way out, then the answer on its way in: one buffer, kept with the
    /// connection, so a post allocates nothing for its I/O.
    buffer: Vec<u8>,
    idle_since: Instant,
}

/// Kept-alive HTTP/1.1 connections to one origin. A connection is opened only when no idle one
/// is ready, so a fan-out to 10 WebSocket connections opens at most 10 (each a TLS handshake on
/// AWS) and never more than the posts in flight; the most recently used one is reused first.
pub struct HttpPool {
    origin: Origin,
    /// `Err`: why https cannot work (every post then fails visibly).
    tls: Option<Result<Tls, String>>,
    idle: Mutex<Vec<HttpConnection>>,
}

impl HttpPool {
    pub fn new(origin: Origin) -> HttpPool {
        let tls = origin.tls.then(|| tls_for(&origin.host));
        if let Some(Err(error)) = &tls {
            tracing::error!(%error, "no TLS configuration; https posts will fail");
        }
        HttpPool {
            origin,
            tls,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Writes `head` (the request line and headers, ending in an empty line) and `body`, and
    /// reads the whole answer, so the connection can serve the next request. A kept-alive
    /// connection found closed before the request is written is replaced (nothing was sent);
    /// one that ends after the request was written is an error, never silently re-sent: the
    /// server may have delivered it.
    ///
    /// Dropping the future (a timeout) drops the connection with it: it never returns to the
    /// pool in the middle of an exchange.
    pub async fn send(&self, head: &[u8], body: &[u8]) -> Result<Answer, SendError> {
        let mut connection = match self.checkout() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        connection.buffer.clear();
        connection.buffer.extend_from_slice(head);
        connection.buffer.extend_from_slice(body);
        connection
            .stream
            .write_all_and_flush(&connection.buffer)
            .await
            .map_err(|e| SendError::Dispatch(format!("writing the request: {e}")))?;
        let (answer, reusable) =
            read_answer(&mut connection.stream, &mut connection.buffer).await?;
        if reusable {
            self.checkin(connection);
        }
        Ok(answer)
    }

    fn checkout(&self) -> Option<HttpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(connection) = idle.pop() {
            if connection.idle_since.elapsed() < IDLE_TIMEOUT && connection.stream.is_open() {
                return Some(connection);
            }
        }
        None
    }

    fn checkin(&self, mut connection: HttpConnection) {
        connection.idle_since = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
    }

    async fn connect(&self) -> Result<HttpConnection, SendError> {
        let dispatch = |what: &str, error: &dyn std::fmt::Display| {
            SendError::Dispatch(format!(
                "{what} {}:{}: {error}",
                self.origin.host, self.origin.port
            ))
        };
        let tcp = TcpStream::connect((self.origin.host.as_str(), self.origin.port))
            .await
            .map_err(|e| dispatch("connecting to", &e))?;
        tcp.set_nodelay(true)
            .map_err(|e| dispatch("setting TCP_NODELAY on", &e))?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(Err(error)) => return Err(dispatch("no TLS for", error)),
            Some(Ok(tls)) => Stream::Tls(Box::new(
                tls.connector
                    .connect(tls.server_name.clone(), tcp)
                    .await
                    .map_err(|e| dispatch("TLS handshake with", &e))?,
            )),
        };
        Ok(HttpConnection {
            stream,
            buffer: Vec::with_capacity(4096),
            idle_since: Instant::now(),
        })
    }
}

/// rustls with aws-lc-rs and the system's roots, HTTP/1.1 by ALPN.
fn tls_for(host: &str) -> Result<Tls, String> {
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a system root certificate could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        return Err(format!(
            "no usable system root certificates ({ignored} unparsable)"
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether an idle connection can take a request: nothing is waiting on it, neither the
    /// server's end nor stray bytes. A real `recv(MSG_PEEK)` on the non-blocking socket, not
    /// tokio's readiness, which is only as fresh as the reactor's last poll: a close that
    /// arrived since would be missed, and the request written into a closed connection.
    fn is_open(&self) -> bool {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        match socket2::SockRef::from(self.tcp()).peek(&mut byte) {
            Err(error) => error.kind() == io::ErrorKind::WouldBlock,
            // 0: the server's end; more: bytes no request asked for (or a TLS alert).
            Ok(_) => false,
        }
    }

    async fn write_all_and_flush(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await?;
        self.flush().await
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => std::pin::Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => std::pin::Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => std::pin::Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => std::pin::Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How the answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// No length: the body runs to the connection's end (which cannot then be reused).
    UntilClose,
}

/// The parsed head of one final (non-1xx) answer.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    answer: Answer,
    framing: Framing,
    /// Whether the server lets the connection serve another request.
    keep_alive: bool,
    /// Where the body starts in the buffer.
    body_start: usize,
}

/// Reads one answer into `buffer` (cleared first): its head, then its body to the end, which
/// is discarded (the status and error type are all a post needs). Returns whether the
/// connection can be reused.
async fn read_answer(
    stream: &mut Stream,
    buffer: &mut Vec<u8>,
) -> Result<(Answer, bool), SendError> {
    buffer.clear();
    let mut start = 0;
    let head = loop {
        match parse_head(&buffer[start..]) {
            Ok(Some(head)) if (100..200).contains(&head.answer.status) => {
                // An interim answer (100 Continue…): the final one follows it.
                start += head.body_start;
            }
            Ok(Some(head)) => {
                break Head {
                    body_start: start + head.body_start,
                    ..head
                }
            }
            Ok(None) => {
                if read_more(stream, buffer).await? == 0 {
                    return Err(if buffer.is_empty() {
                        SendError::Dispatch("the connection closed before any answer".into())
                    } else {
                        SendError::UnreadableResponse("the answer's head was cut short".into())
                    });
                }
            }
            Err(error) => return Err(SendError::UnreadableResponse(error)),
        }
    };
    let complete = match head.framing {
        Framing::Length(length) => {
            let end = head
                .body_start
                .checked_add(length)
                .filter(|end| *end <= MAX_ANSWER)
                .ok_or_else(|| too_large(length))?;
            while buffer.len() < end {
                if read_more(stream, buffer).await? == 0 {
                    return Err(cut_short());
                }
            }
            // Bytes after the answer were never asked for: the connection is not reused.
            buffer.len() == end
        }
        Framing::Chunked => {
            let mut at = head.body_start;
            loop {
                match chunked_end(buffer, at) {
                    Ok(Chunks::End(end)) => break buffer.len() == end,
                    Ok(Chunks::NeedMore(resume)) => {
                        at = resume;
                        if read_more(stream, buffer).await? == 0 {
                            return Err(cut_short());
                        }
                    }
                    Err(error) => return Err(SendError::UnreadableResponse(error)),
                }
            }
        }
        Framing::UntilClose => {
            while read_more(stream, buffer).await? > 0 {}
            false
        }
    };
    Ok((head.answer, complete && head.keep_alive))
}

/// Reads what is available into `buffer`'s spare room; 0 at the connection's end.
async fn read_more(stream: &mut Stream, buffer: &mut Vec<u8>) -> Result<usize, SendError> {
    if buffer.len() >= MAX_ANSWER {
        return Err(too_large(buffer.len()));
    }
    buffer.reserve(4096.min(MAX_ANSWER - buffer.len()));
    stream
        .read_buf(buffer)
        .await
        .map_err(|e| SendError::UnreadableResponse(format!("reading the answer: {e}")))
}

fn too_large(length: usize) -> SendError {
    SendError::UnreadableResponse(format!(
        "an answer of {length} bytes or more (at most {MAX_ANSWER} are read)"
    ))
}

fn cut_short() -> SendError {
    SendError::UnreadableResponse("the answer's body was cut short".into())
}

/// The answer's head at the start of `bytes`, `None` while it is incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let body_start = match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_ANSWER => {
            return Err("the answer's head is too large".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(format!("a malformed answer: {error}")),
    };
    let status = response.code.unwrap_or_default();
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = response.version == Some(1);
    let mut error_type = None;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or_default().trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed: usize = value
                .parse()
                .map_err(|_| format!("a malformed Content-Length: {value:?}"))?;
            if length.is_some_and(|earlier| earlier != parsed) {
                return Err("conflicting Content-Length headers".into());
            }
            length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked as the last coding frames the body (RFC 9112 § 6.3).
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if header.name.eq_ignore_ascii_case("x-amzn-errortype") {
            error_type = Some(value.to_string());
        }
    }
    // RFC 9112 § 6.3: no body after 1xx, 204 or 304; chunked wins over a length (and then
    // the connection must not be reused, as a length beside it may be a smuggling attempt).
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        keep_alive &= length.is_none();
        Framing::Chunked
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    Ok(Some(Head {
        answer: Answer { status, error_type },
        framing,
        keep_alive,
        body_start,
    }))
}

#[derive(Debug, PartialEq, Eq)]
enum Chunks {
    /// The chunked body (trailers included) ends at this offset.
    End(usize),
    /// Incomplete: parse again from this offset (a chunk's start) once more is read.
    NeedMore(usize),
}

/// Walks a chunked body from `at` (the start of a chunk) through what `buffer` holds.
fn chunked_end(buffer: &[u8], mut at: usize) -> Result<Chunks, String> {
    loop {
        let (line, size) = match httparse::parse_chunk_size(&buffer[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(Chunks::NeedMore(at)),
            Err(_) => return Err("a malformed chunk size".into()),
        };
        if size == 0 {
            // The last chunk, then trailers (usually none) and an empty line.
            let mut trailers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            return match httparse::parse_headers(&buffer[at + line..], &mut trailers) {
                Ok(httparse::Status::Complete((length, _))) => Ok(Chunks::End(at + line + length)),
                Ok(httparse::Status::Partial) => Ok(Chunks::NeedMore(at)),
                Err(error) => Err(format!("malformed trailers: {error}")),
            };
        }
        let data_end = usize::try_from(size)
            .ok()
            .and_then(|size| (at + line).checked_add(size))
            .filter(|end| *end <= MAX_ANSWER)
            .ok_or_else(|| format!("a chunk of {size} bytes"))?;
        if buffer.len() < data_end + 2 {
            return Ok(Chunks::NeedMore(at));
        }
        if &buffer[data_end..data_end + 2] != b"\r\n" {
            return Err("a chunk not followed by CRLF".into());
        }
        at = data_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &str) -> Head {
        parse_head(bytes.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn heads_give_status_error_type_framing_and_reuse() {
        let ok = head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            ok.answer,
            Answer {
                status: 200,
                error_type: None
            }
        );
        assert_eq!(
            (ok.framing, ok.keep_alive, ok.body_start),
            (Framing::Length(0), true, 38)
        );

        let gone = head(
            "HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException:http://internal.amazon.com/\r\n\
             content-length: 2\r\nConnection: close\r\n\r\n{}",
        );
        assert_eq!(gone.answer.status, 410);
        assert_eq!(
            gone.answer.error_type.as_deref(),
            Some("GoneException:http://internal.amazon.com/")
        );
        assert_eq!((gone.framing, gone.keep_alive), (Framing::Length(2), false));

        let chunked = head("HTTP/1.1 500 Oops\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(
            (chunked.framing, chunked.keep_alive),
            (Framing::Chunked, true)
        );
        let smuggled =
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            (smuggled.framing, smuggled.keep_alive),
            (Framing::Chunked, false)
        );

        let until_close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(until_close.framing, Framing::UntilClose);
        let no_content = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(no_content.framing, Framing::Length(0));
        let old = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(
            !old.keep_alive,
            "HTTP/1.0 closes unless asked to keep alive"
        );
        let old_kept =
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(old_kept.keep_alive);
    }

    #[test]
    fn incomplete_heads_wait_and_bad_ones_are_refused() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len"), Ok(None));
        assert_eq!(parse_head(b""), Ok(None));
        for bad in [
            "HTTP/1.1 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(parse_head(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let endless = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_ANSWER));
        assert!(parse_head(endless.as_bytes()).is_err());
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_its_trailers() {
        let body = b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n";
        assert_eq!(chunked_end(body, 0), Ok(Chunks::End(body.len())));
        let with_trailer = b"1\r\na\r\n0\r\nx-checksum: 1\r\n\r\n";
        assert_eq!(
            chunked_end(with_trailer, 0),
            Ok(Chunks::End(with_trailer.len()))
        );
        // Cut anywhere, it asks for more from the chunk it stopped in.
        assert_eq!(chunked_end(b"4\r\nab", 0), Ok(Chunks::NeedMore(0)));
        assert_eq!(
            chunked_end(b"4\r\nabcd\r\n3\r\nef", 0),
            Ok(Chunks::NeedMore(9))
        );
        assert_eq!(
            chunked_end(b"4\r\nabcd\r\n0\r\n", 0),
            Ok(Chunks::NeedMore(9))
        );
        assert!(chunked_end(b"zz\r\n", 0).is_err());
        assert!(
            chunked_end(b"2\r\nabcd", 0).is_err(),
            "data longer than its size"
        );
        assert!(
            chunked_end(b"ffffffffffff\r\n", 0).is_err(),
            "a chunk beyond the bound"
        );
    }
}
