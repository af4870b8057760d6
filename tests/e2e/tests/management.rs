//! The `@connections` management API of sumu-local, through the real
//! `aws-sdk-apigatewaymanagement` client (only its endpoint changed) and raw HTTP.

use aws_sdk_apigatewaymanagement::primitives::Blob;
use e2e::{close_frame, next_text, Local};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn post_reaches_the_socket() {
    let local = Local::start().await;
    let user = testkit::unique_name("receiver");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    local
        .management()
        .post_to_connection()
        .connection_id(&connection_id)
        .data(Blob::new(r#"{"type":"notification","n":1}"#))
        .send()
        .await
        .expect("PostToConnection succeeds");
    let frame = next_text(&mut client).await;
    assert_eq!(frame, serde_json::json!({"type":"notification","n":1}));
}

#[tokio::test]
async fn get_returns_connected_at_last_active_at_and_identity() {
    let local = Local::start().await;
    let user = testkit::unique_name("described");
    let _client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    let connection = local
        .management()
        .get_connection()
        .connection_id(&connection_id)
        .send()
        .await
        .expect("GetConnection succeeds");
    let connected_at = connection.connected_at().expect("connectedAt");
    let last_active_at = connection.last_active_at().expect("lastActiveAt");
    assert!(
        connected_at.secs() > 1_700_000_000,
        "a real date: {connected_at}"
    );
    assert!(last_active_at >= connected_at);
    let identity = connection.identity().expect("identity");
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    assert_eq!(identity.user_agent(), Some("sumu-e2e"));
}

#[tokio::test]
async fn delete_closes_with_1000_and_fires_disconnect() {
    let local = Local::start().await;
    let user = testkit::unique_name("deleted");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    local
        .management()
        .delete_connection()
        .connection_id(&connection_id)
        .send()
        .await
        .expect("DeleteConnection succeeds");
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.code, CloseCode::Normal);
    local.until_no_item(&user).await;

    // A closed connection is gone for the management API too.
    let error = local
        .management()
        .get_connection()
        .connection_id(&connection_id)
        .send()
        .await
        .expect_err("the connection is closed");
    assert!(error.into_service_error().is_gone_exception());
}

#[tokio::test]
async fn unknown_ids_are_gone_exceptions_for_every_call() {
    let local = Local::start().await;
    let management = local.management();
    let unknown = "Zm9yZ2VkIGlkIQ="; // '=' must be percent-encoded by the SDK and decoded by us

    let post = management
        .post_to_connection()
        .connection_id(unknown)
        .data(Blob::new("hi"))
        .send()
        .await
        .expect_err("unknown id");
    assert!(post.into_service_error().is_gone_exception());
    let get = management
        .get_connection()
        .connection_id(unknown)
        .send()
        .await
        .expect_err("unknown id");
    assert!(get.into_service_error().is_gone_exception());
    let delete = management
        .delete_connection()
        .connection_id(unknown)
        .send()
        .await
        .expect_err("unknown id");
    assert!(delete.into_service_error().is_gone_exception());
}

#[tokio::test]
async fn a_payload_over_128_kb_is_payload_too_large() {
    let local = Local::start().await;
    let user = testkit::unique_name("flooded");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;

    let error = local
        .management()
        .post_to_connection()
        .connection_id(&connection_id)
        .data(Blob::new(vec![b'x'; 128 * 1024 + 1]))
        .send()
        .await
        .expect_err("too large");
    assert!(error.into_service_error().is_payload_too_large_exception());

    // Exactly 128 KB is accepted.
    local
        .management()
        .post_to_connection()
        .connection_id(&connection_id)
        .data(Blob::new(vec![b'x'; 128 * 1024]))
        .send()
        .await
        .expect("128 KB is within the limit");
    let frame = next_text(&mut client).await;
    assert_eq!(frame.as_str().map(str::len), Some(128 * 1024));
}

#[tokio::test]
async fn raw_http_accepts_percent_encoded_paths_and_answers_aws_error_shapes() {
    let local = Local::start().await;
    let user = testkit::unique_name("raw");
    let mut client = local.connect(&user).await;
    let connection_id = local.connection_id_of(&user).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", local.endpoints.address);
    let encoded = connection_id.replace('=', "%3D");

    let posted = http
        .post(format!("{base}/dev/%40connections/{encoded}"))
        .body("via %40connections")
        .send()
        .await
        .expect("POST");
    assert_eq!(posted.status(), 200);
    assert_eq!(next_text(&mut client).await, "via %40connections");

    let wrong_stage = http
        .get(format!("{base}/prod/@connections/{encoded}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong_stage.status(), 403);
    assert_eq!(
        wrong_stage.headers()["x-amzn-ErrorType"],
        "ForbiddenException"
    );

    let gone = http
        .get(format!("{base}/dev/@connections/unknown%3D"))
        .send()
        .await
        .expect("GET");
    assert_eq!(gone.status(), 410);
    assert_eq!(gone.headers()["x-amzn-ErrorType"], "GoneException");
    let body: serde_json::Value = gone.json().await.expect("JSON body");
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn the_dev_jwks_is_served_on_the_same_port() {
    let local = Local::start().await;
    let jwks: serde_json::Value = reqwest::get(&local.endpoints.jwks_url)
        .await
        .expect("GET jwks")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks, local.idp.jwks());
}
