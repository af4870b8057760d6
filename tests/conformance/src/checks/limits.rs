//! API Gateway's limits (docs/protocol.md § Limits and timeouts): frames over 32 KB and
//! messages over 128 KB close with 1009, binary frames with 1003.

use tokio_tungstenite::tungstenite::Message;

use super::ensure;
use crate::{Outcome, Suite};

/// A `send` frame of about `bytes` bytes.
fn send_frame_of(bytes: usize) -> String {
    format!(
        r#"{{"action":"send","message":{{"pad":"{}"}}}}"#,
        "x".repeat(bytes.saturating_sub(40))
    )
}

async fn expect_close(suite: &Suite, what: &str, message: Message, code: u16) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    client.connection_id().await?;
    client.send(message).await?;
    let hint = "API Gateway closes the connection itself (docs/protocol.md § Limits and timeouts)";
    let got = client.close_code(hint).await?;
    ensure(got == code, || {
        format!("{what} closed the connection with {got}, expected {code}: {hint}")
    })
}

pub async fn frame_too_large(suite: &Suite) -> Outcome {
    expect_close(
        suite,
        "a 40 KB frame",
        Message::Text(send_frame_of(40 * 1024).into()),
        1009,
    )
    .await
}

pub async fn message_too_large(suite: &Suite) -> Outcome {
    let mut client = suite.connect("a", "a client").await?;
    client.connection_id().await?;
    // Every frame is within the 32 KB limit, the message is not.
    client
        .send_fragmented(&send_frame_of(200 * 1024), 16 * 1024)
        .await?;
    let hint = "API Gateway closes a message over 128 KB, whatever its frames (docs/protocol.md § Limits and timeouts)";
    let got = client.close_code(hint).await?;
    ensure(got == 1009, || {
        format!("a 200 KB message in 16 KB frames closed the connection with {got}, expected 1009: {hint}")
    })
}

pub async fn binary_frame(suite: &Suite) -> Outcome {
    expect_close(
        suite,
        "a binary frame",
        Message::Binary(b"{\"action\":\"ping\"}".to_vec().into()),
        1003,
    )
    .await
}
