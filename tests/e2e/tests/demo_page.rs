//! The demo page and its development token endpoint, served by sumu-local.

use e2e::Local;
use sumu_wire::table;

fn base_url(local: &Local) -> String {
    format!("http://{}", local.endpoints.address)
}

#[tokio::test]
async fn the_demo_page_and_its_scripts_are_served() {
    let local = Local::start().await;
    let http = reqwest::Client::new();
    for (path, content_type, marker) in [
        ("/demo/", "text/html", "app.js"),
        ("/demo/app.js", "text/javascript", "WebSocket"),
        ("/demo/style.css", "text/css", "{"),
    ] {
        let response = http
            .get(format!("{}{path}", base_url(&local)))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        let header = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(header.starts_with(content_type), "{path}: {header}");
        assert!(response.text().await.unwrap().contains(marker), "{path}");
    }
}

#[tokio::test]
async fn a_token_from_the_endpoint_opens_a_connection_for_that_user() {
    let local = Local::start().await;
    let user = testkit::unique_name("carol");
    let answer: serde_json::Value =
        reqwest::get(format!("{}/dev/token?sub={user}", base_url(&local)))
            .await
            .expect("GET /dev/token")
            .json()
            .await
            .expect("JSON");
    let token = answer["token"].as_str().expect("a token");

    let (_client, response) = tokio_tungstenite::connect_async(local.url_with_token(token))
        .await
        .expect("the upgrade is accepted");
    assert_eq!(response.status(), 101);
    let item = local.item_of(&user).await;
    assert_eq!(e2e::string(&item, table::USER_ID), user);
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_missing_or_oversized_name() {
    let local = Local::start().await;
    for query in [
        "",
        "?sub=",
        "?sub=%20%20",
        &format!("?sub={}", "x".repeat(257)),
    ] {
        let response = reqwest::get(format!("{}/dev/token{query}", base_url(&local)))
            .await
            .expect("GET /dev/token");
        assert_eq!(response.status(), 400, "query {query:?}");
    }
}

#[tokio::test]
async fn the_token_endpoint_mints_channel_grants_from_repeatable_parameters() {
    let local = Local::start().await;
    let user = testkit::unique_name("dana");
    let answer: serde_json::Value = reqwest::get(format!(
        "{}/dev/token?sub={user}&subscribe=room/*&subscribe=user/{user}&publish=room/*",
        base_url(&local)
    ))
    .await
    .expect("GET /dev/token")
    .json()
    .await
    .expect("JSON");
    let token = answer["token"].as_str().expect("a token");

    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(local.idp.jwks()["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[sumu_local::dev_idp::DEV_AUDIENCE]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(
        claims["channels"],
        serde_json::json!({"subscribe": ["room/*", format!("user/{user}")], "publish": ["room/*"]})
    );
    // The authorizer accepts the token with its grants.
    let (_client, response) = tokio_tungstenite::connect_async(local.url_with_token(token))
        .await
        .expect("the upgrade is accepted");
    assert_eq!(response.status(), 101);
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_bad_pattern_with_the_reason() {
    let local = Local::start().await;
    for (query, why) in [
        ("sub=eve&subscribe=room/**", "`*` is only allowed"),
        ("sub=eve&publish=a/b/c/d/e/f", "6 segments"),
        ("sub=eve&subscribe=room%2F%2F42", "empty segment"),
    ] {
        let response = reqwest::get(format!("{}/dev/token?{query}", base_url(&local)))
            .await
            .expect("GET /dev/token");
        assert_eq!(response.status(), 400, "query {query:?}");
        let answer: serde_json::Value = response.json().await.expect("JSON");
        let message = answer["message"].as_str().expect("a message");
        assert!(message.contains(why), "{query}: {message}");
    }
}
