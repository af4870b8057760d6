//! `$connect` / `$disconnect` through sumu-local: the authorizer, the connection item in
//! DynamoDB, and its removal on every kind of close.

use e2e::{number, string, Local};
use serde_json::json;
use sumu_local::dev_idp::{DevIdentityProvider, DEV_AUDIENCE, DEV_ISSUER};
use sumu_wire::table;

#[tokio::test]
async fn a_valid_token_stores_the_connection_and_closing_removes_it() {
    let local = Local::start().await;
    let user = testkit::unique_name("alice");
    let before = e2e::now_secs();
    let mut client = local.connect(&user).await;

    let item = local.item_of(&user).await;
    assert_eq!(string(&item, table::USER_ID), user);
    let connection_id = string(&item, table::CONNECTION_ID);
    assert_eq!(connection_id.len(), 16, "an API Gateway-shaped id");
    let connected_at = number(&item, table::CONNECTED_AT);
    assert!(
        connected_at >= before * 1000,
        "connected_at is epoch milliseconds"
    );
    let expires_at = number(&item, table::EXPIRES_AT);
    assert_eq!(
        expires_at,
        connected_at / 1000 + table::MAX_CONNECTION_SECONDS,
        "expires_at is epoch seconds, connect time + 2 h"
    );
    assert_eq!(string(&item, table::SOURCE_IP), "127.0.0.1");
    assert_eq!(string(&item, table::USER_AGENT), "sumu-e2e");

    client.close(None).await.expect("close");
    local.until_no_item(&user).await;
}

#[tokio::test]
async fn a_client_that_vanishes_without_a_close_frame_is_removed() {
    let local = Local::start().await;
    let user = testkit::unique_name("vanishing");
    let client = local.connect(&user).await;
    local.item_of(&user).await;

    // Reset the TCP connection: no close frame, no FIN handshake, as a killed process or a
    // dropped network would.
    let stream = client.into_inner();
    match stream {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => {
            // Zero linger never blocks: the kernel sends RST at once.
            #[allow(deprecated)]
            tcp.set_linger(Some(std::time::Duration::ZERO))
                .expect("linger");
            drop(tcp);
        }
        _ => unreachable!("plain ws:// connection"),
    }
    local.until_no_item(&user).await;
}

#[tokio::test]
async fn no_token_is_refused_with_401_and_nothing_is_written() {
    let local = Local::start().await;
    assert_eq!(
        local.refused_status(&local.endpoints.websocket_url).await,
        401
    );
    let empty = format!("{}?authorization=", local.endpoints.websocket_url);
    assert_eq!(local.refused_status(&empty).await, 401);
    assert!(local.all_items().await.is_empty());
}

#[tokio::test]
async fn expired_and_foreign_tokens_are_refused_and_nothing_is_written() {
    let local = Local::start().await;
    let now = e2e::now_secs();
    let expired = local
        .idp
        .mint_claims(
            &json!({"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": "late",
            "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
        )
        .expect("mint");
    assert_eq!(
        local.refused_status(&local.url_with_token(&expired)).await,
        401
    );

    let foreign = DevIdentityProvider::generate()
        .expect("key")
        .mint("mallory", std::time::Duration::from_secs(3600), now)
        .expect("mint");
    assert_eq!(
        local.refused_status(&local.url_with_token(&foreign)).await,
        401
    );

    let wrong_audience = local
        .idp
        .mint_claims(
            &json!({"iss": DEV_ISSUER, "aud": "someone-else", "sub": "x",
            "iat": now, "exp": now + 600}),
        )
        .expect("mint");
    let status = local
        .refused_status(&local.url_with_token(&wrong_audience))
        .await;
    assert!(status == 401 || status == 403, "got {status}");

    assert_eq!(
        local.refused_status(&local.url_with_token("garbage")).await,
        401
    );
    assert!(local.all_items().await.is_empty());
}

#[tokio::test]
async fn a_wrong_stage_is_forbidden() {
    let local = Local::start().await;
    let url = format!(
        "ws://{}/prod?authorization={}",
        local.endpoints.address,
        local.token("alice")
    );
    assert_eq!(local.refused_status(&url).await, 403);
    assert!(local.all_items().await.is_empty());
}

/// A client that sends no User-Agent (tokio-tungstenite sends none) still connects: the connect
/// template renders an empty string, not broken JSON.
#[tokio::test]
async fn a_client_without_a_user_agent_connects_with_an_empty_user_agent() {
    let local = Local::start().await;
    let user = testkit::unique_name("anonymous-agent");
    let url = local.url_with_token(&local.token(&user));
    let (_client, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade is accepted");
    assert_eq!(response.status(), 101);
    let item = local.item_of(&user).await;
    assert_eq!(string(&item, table::USER_AGENT), "");
    assert_eq!(string(&item, table::SOURCE_IP), "127.0.0.1");
}
