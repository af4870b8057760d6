//! API Gateway's limits in sumu-local: frame and message size (1009), binary frames (1003),
//! idle timeout and maximum duration (1001) — each followed by `$disconnect`.

use std::time::Duration;

use e2e::{close_frame, Local};
use futures::SinkExt;
use sumu_local::Limits;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

fn text_of(bytes: usize) -> String {
    format!(
        r#"{{"action":"send","message":"{}"}}"#,
        "x".repeat(bytes.saturating_sub(32))
    )
}

#[tokio::test]
async fn a_40_kb_frame_closes_with_1009() {
    let local = Local::start().await;
    let user = testkit::unique_name("big-frame");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;

    client
        .send(Message::Text(text_of(40 * 1024).into()))
        .await
        .expect("send");
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Size);
    local.until_no_item(&user).await;
}

#[tokio::test]
async fn a_200_kb_message_in_small_frames_closes_with_1009() {
    let local = Local::start().await;
    let user = testkit::unique_name("big-message");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;

    // 200 KB in 16 KB frames: every frame is within the 32 KB limit, the message is not.
    let text = text_of(200 * 1024);
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(16 * 1024).collect();
    let last = chunks.len() - 1;
    for (index, chunk) in chunks.into_iter().enumerate() {
        let opcode = if index == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let sent = client
            .send(Message::Frame(Frame::message(
                chunk.to_vec(),
                opcode,
                index == last,
            )))
            .await;
        if sent.is_err() {
            break; // the server may close before the whole message is written
        }
    }
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Size);
    local.until_no_item(&user).await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let local = Local::start().await;
    let user = testkit::unique_name("binary");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;

    client
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Unsupported);
    local.until_no_item(&user).await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_1001_and_removed() {
    let local = Local::start_with(Limits {
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    let user = testkit::unique_name("idle");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;

    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Away);
    local.until_no_item(&user).await;
}

#[tokio::test]
async fn the_maximum_duration_closes_an_active_connection_with_1001() {
    let local = Local::start_with(Limits {
        max_duration: Duration::from_secs(3),
        ..Limits::default()
    })
    .await;
    let user = testkit::unique_name("long");
    let mut client = local.connect(&user).await;
    local.item_of(&user).await;

    // Stay active (pings every 500 ms) so only the maximum duration can end the connection.
    let frame = tokio::time::timeout(e2e::DEADLINE, async {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let _ = client.send(Message::Text(r#"{"action":"ping"}"#.into())).await;
                }
                message = futures::StreamExt::next(&mut client) => match message {
                    Some(Ok(Message::Close(Some(frame)))) => return frame,
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended without a close frame: {other:?}"),
                },
            }
        }
    })
    .await
    .expect("closed by the maximum duration");
    assert_eq!(frame.code, CloseCode::Away);
    local.until_no_item(&user).await;
}
