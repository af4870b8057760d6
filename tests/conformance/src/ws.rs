//! A test client's WebSocket: frames awaited with a deadline, quiet periods, close codes.
//! Every failure is a [`Verdict::Fail`] that says what was expected and what came instead.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::verdict::{fail, Verdict};

/// How the upgrade went.
pub enum Upgrade {
    Accepted(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// Refused with this HTTP status.
    Refused(u16),
}

/// Opens `url`: the socket, the refusal's status, or a failure naming the network error.
pub async fn upgrade(url: &str, deadline: Duration) -> Result<Upgrade, Verdict> {
    let request = url
        .into_client_request()
        .map_err(|error| fail(format!("{} is not a WebSocket URL: {error}", redact(url))))?;
    match tokio::time::timeout(deadline, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(fail(format!(
            "the upgrade to {} got no answer within {deadline:?}: is websocket_url right and reachable from here?",
            redact(url)
        ))),
        Ok(Ok((socket, _response))) => Ok(Upgrade::Accepted(Box::new(socket))),
        Ok(Err(WsError::Http(response))) => Ok(Upgrade::Refused(response.status().as_u16())),
        Ok(Err(error)) => Err(fail(format!(
            "the upgrade to {} failed: {error}: is websocket_url right and reachable from here?",
            redact(url)
        ))),
    }
}

/// The URL without the token, for messages.
pub fn redact(url: &str) -> String {
    match url.split_once("authorization=") {
        Some((before, _)) => format!("{before}authorization=<token>"),
        None => url.to_string(),
    }
}

/// One connected test client.
pub struct Client {
    socket: Box<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    /// Who it is, for messages: `user-a's first connection`.
    pub label: String,
    deadline: Duration,
}

impl Client {
    pub fn new(
        socket: Box<WebSocketStream<MaybeTlsStream<TcpStream>>>,
        label: String,
        deadline: Duration,
    ) -> Client {
        Client {
            socket,
            label,
            deadline,
        }
    }

    pub async fn send_json(&mut self, frame: &Value) -> Result<(), Verdict> {
        self.send(Message::Text(frame.to_string().into())).await
    }

    pub async fn send(&mut self, message: Message) -> Result<(), Verdict> {
        self.socket.send(message).await.map_err(|error| {
            fail(format!(
                "{} could not send a frame: {error} (the connection closed early?)",
                self.label
            ))
        })
    }

    /// Sends a text message as several frames: a first text frame and continuations.
    pub async fn send_fragmented(&mut self, text: &str, frame_bytes: usize) -> Result<(), Verdict> {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(frame_bytes).collect();
        let last = chunks.len().saturating_sub(1);
        for (index, chunk) in chunks.into_iter().enumerate() {
            let opcode = if index == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            let frame = Frame::message(chunk.to_vec(), opcode, index == last);
            if self.socket.send(Message::Frame(frame)).await.is_err() {
                // The server may close before the whole message is written: the close frame
                // (read next) is the answer.
                break;
            }
        }
        Ok(())
    }

    /// Pings and returns the connection id the `pong` frame carries: how a back end (and this
    /// suite) learns a connection's id through public interfaces.
    pub async fn connection_id(&mut self) -> Result<String, Verdict> {
        self.send_json(&json!({"action": "ping"})).await?;
        let pong = self
            .expect(
                "a pong frame",
                "is the ping route deployed (routes.json)? check the stage's integration errors",
                |frame| frame["type"] == "pong",
            )
            .await?;
        match pong["connection_id"].as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(fail(format!(
                "{}'s pong frame has no connection_id string: {pong}",
                self.label
            ))),
        }
    }

    /// Waits for a text frame `wanted` accepts, within the deadline; frames it does not accept
    /// are kept for the message (another run's broadcast may arrive at any time).
    pub async fn expect(
        &mut self,
        what: &str,
        hint: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Value, Verdict> {
        let deadline = self.deadline;
        let mut others = Vec::new();
        let until = Instant::now() + deadline;
        loop {
            match self.next_text(until).await {
                Next::Text(frame) if wanted(&frame) => return Ok(frame),
                Next::Text(frame) => others.push(frame.to_string()),
                Next::Timeout => {
                    return Err(fail(format!(
                        "{} got no {what} within {deadline:?}{}: {hint}",
                        self.label,
                        instead(&others)
                    )))
                }
                Next::Ended(how) => {
                    return Err(fail(format!(
                        "{} was closed ({how}) before {what} arrived{}: {hint}",
                        self.label,
                        instead(&others)
                    )))
                }
            }
        }
    }

    /// Reads for `period`; fails if a frame `unwanted` accepts arrives. A bounded wait: a frame
    /// arriving later than `period` is not seen.
    pub async fn quiet(
        &mut self,
        period: Duration,
        what: &str,
        hint: &str,
        unwanted: impl Fn(&Value) -> bool,
    ) -> Result<(), Verdict> {
        let until = Instant::now() + period;
        loop {
            match self.next_text(until).await {
                Next::Text(frame) if unwanted(&frame) => {
                    return Err(fail(format!(
                        "{} got {what}, which it must not: {frame}: {hint}",
                        self.label
                    )))
                }
                Next::Text(_) => continue,
                Next::Timeout | Next::Ended(_) => return Ok(()),
            }
        }
    }

    /// Waits for the server's close frame and returns its code.
    pub async fn close_code(&mut self, hint: &str) -> Result<u16, Verdict> {
        let deadline = self.deadline;
        let until = Instant::now() + deadline;
        loop {
            let next = tokio::time::timeout_at(until, self.socket.next()).await;
            match next {
                Err(_) => {
                    return Err(fail(format!(
                        "{} was not closed within {deadline:?}: {hint}",
                        self.label
                    )))
                }
                Ok(Some(Ok(Message::Close(Some(frame))))) => return Ok(u16::from(frame.code)),
                Ok(Some(Ok(Message::Close(None)))) => {
                    return Err(fail(format!(
                        "{} was closed without a close code: {hint}",
                        self.label
                    )))
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(error))) => {
                    return Err(fail(format!(
                        "{}'s connection failed before a close frame ({error}): {hint}",
                        self.label
                    )))
                }
                Ok(None) => {
                    return Err(fail(format!(
                        "{}'s connection ended without a close frame: {hint}",
                        self.label
                    )))
                }
            }
        }
    }

    /// Closes the connection normally (best effort: the server may already have).
    pub async fn close(mut self) {
        let _ = self.socket.close().await;
        let until = Instant::now() + self.deadline;
        // Read until the server's answer so the close is complete before the caller goes on.
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, self.socket.next()).await {}
    }

    async fn next_text(&mut self, until: Instant) -> Next {
        loop {
            match tokio::time::timeout_at(until, self.socket.next()).await {
                Err(_) => return Next::Timeout,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let text = text.as_str();
                    let frame = serde_json::from_str(text)
                        .unwrap_or_else(|_| Value::String(text.to_string()));
                    return Next::Text(frame);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Next::Ended(match frame {
                        Some(frame) => format!("code {}", u16::from(frame.code)),
                        None => "no code".into(),
                    })
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(error))) => return Next::Ended(error.to_string()),
                Ok(None) => return Next::Ended("the stream ended".into()),
            }
        }
    }
}

enum Next {
    Text(Value),
    Timeout,
    Ended(String),
}

fn instead(others: &[String]) -> String {
    if others.is_empty() {
        " (no frame at all)".into()
    } else {
        let shown: Vec<&str> = others.iter().take(3).map(String::as_str).collect();
        format!(" (got instead: {})", shown.join(", "))
    }
}
