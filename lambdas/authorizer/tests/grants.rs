//! Channel grants at `$connect` (docs/channels.md, "Grants"): real keys, a real key server on
//! 127.0.0.1:0, real signed tokens. A grants claim that cannot be used leaves the connection
//! with the static grants only, is logged once, and never refuses the token.

mod support;

use authorizer::{handle, Authorizer, Config, StaticGrants};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
use aws_lambda_events::iam::IamPolicyEffect;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::*;

const ISSUER: &str = "https://issuer.test";

struct Setup {
    key: TestKey,
    authorizer: Authorizer,
    _server: KeyServer,
}

async fn setup_with(adjust: impl FnOnce(&mut Config)) -> Setup {
    let key = TestKey::generate(Algorithm::ES256, "ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let mut config = config(vec![issuer(ISSUER, server.uri())]);
    adjust(&mut config);
    config.validate().expect("a valid configuration");
    Setup {
        key,
        authorizer: Authorizer::new(config),
        _server: server,
    }
}

fn statics(subscribe: &[&str], publish: &[&str]) -> StaticGrants {
    StaticGrants {
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
    }
}

fn claims_with(changes: Value) -> Value {
    let mut claims = good_claims(ISSUER);
    for (key, value) in changes.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

impl Setup {
    /// Authorizes a token with `claims`; it must be allowed.
    async fn allow(&self, claims: &Value) -> ApiGatewayCustomAuthorizerResponse {
        let token = self.key.sign(claims);
        let response = handle(connect_with_query(&token), &self.authorizer)
            .await
            .expect("an Allow policy, not an error");
        assert_eq!(
            response.policy_document.statement[0].effect,
            IamPolicyEffect::Allow
        );
        response
    }
}

/// The two context entries: (channels_subscribe, channels_publish).
fn grants_of(response: &ApiGatewayCustomAuthorizerResponse) -> (String, String) {
    let entry = |key: &str| {
        response.context[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a string in {}", response.context))
            .to_string()
    };
    (entry("channels_subscribe"), entry("channels_publish"))
}

#[tokio::test]
async fn grants_from_the_claim_reach_the_context_as_two_strings() {
    let s = setup_with(|_| {}).await;
    let response = s
        .allow(&claims_with(json!({"channels": {
            "subscribe": ["room/*", "user/user-1", "room/*"],
            "publish": ["room/42"],
        }})))
        .await;
    assert_eq!(
        grants_of(&response),
        ("room/* user/user-1".to_string(), "room/42".to_string())
    );
}

#[tokio::test]
async fn without_a_claim_or_static_grants_there_is_no_grant_at_all() {
    let s = setup_with(|_| {}).await;
    let response = s.allow(&good_claims(ISSUER)).await;
    assert_eq!(grants_of(&response), (String::new(), String::new()));
}

#[tokio::test]
async fn static_grants_with_sub_come_first_and_merge_with_the_claim() {
    let s = setup_with(|config| {
        config.static_grants = statics(&["public/*", "user/{sub}"], &["user/{sub}/*"]);
    })
    .await;
    let response = s
        .allow(&claims_with(
            json!({"channels": {"subscribe": ["room/*", "public/*"]}}),
        ))
        .await;
    assert_eq!(
        grants_of(&response),
        (
            "public/* user/user-1 room/*".to_string(),
            "user/user-1/*".to_string()
        )
    );
    // Without a claim: the static grants alone.
    let response = s
        .allow(&claims_with(json!({"sub": "auth0|5f7c8ec7"})))
        .await;
    assert_eq!(
        grants_of(&response),
        (
            "public/* user/auth0|5f7c8ec7".to_string(),
            "user/auth0|5f7c8ec7/*".to_string()
        )
    );
}

#[tokio::test]
async fn the_claim_name_is_configurable() {
    let s = setup_with(|config| config.grants_claim = "https://example.com/channels".into()).await;
    let response = s
        .allow(&claims_with(json!({
            "https://example.com/channels": {"subscribe": ["room/*"]},
            "channels": {"subscribe": ["*"], "publish": ["*"]},
        })))
        .await;
    assert_eq!(
        grants_of(&response),
        ("room/*".to_string(), String::new()),
        "only the configured claim counts"
    );
}

#[tokio::test]
async fn a_bad_pattern_in_the_claim_leaves_only_the_static_grants() {
    let s = setup_with(|config| config.static_grants = statics(&["public/*"], &[])).await;
    for bad in [
        "room/**",
        "room/*/42",
        "room//42",
        "/room",
        "a/b/c/d/e/f",
        "room 42",
        "room\"42",
        "huone/ä",
        "",
    ] {
        let claims = claims_with(json!({"channels": {
            "subscribe": ["room/1", bad],
            "publish": ["room/1"],
        }}));
        let (response, lines) = logged(s.allow(&claims)).await;
        assert_eq!(
            grants_of(&response),
            ("public/*".to_string(), String::new()),
            "{bad:?}: the whole claim is dropped, not only the bad pattern"
        );
        let ignored = lines_saying(&lines, "grants claim ignored");
        assert_eq!(ignored.len(), 1, "{bad:?}: one log line, got {lines:?}");
        let reason = ignored[0]["fields"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("malformed grants claim `channels`"),
            "{reason}"
        );
        assert_eq!(ignored[0]["fields"]["principal"], "user-1");
    }
}

#[tokio::test]
async fn a_claim_that_is_not_an_object_of_the_documented_shape_leaves_only_the_static_grants() {
    let s = setup_with(|config| config.static_grants = statics(&["public/*"], &["public/*"])).await;
    for claim in [
        json!("room/*"),
        json!("{\"subscribe\":[\"room/*\"]}"),
        json!(["room/*"]),
        json!(42),
        json!(true),
        json!({"subscribe": "room/*"}),
        json!({"subscribe": [42]}),
        json!({"subscribe": [["room/*"]]}),
        json!({"subscribe": ["room/*"], "admin": ["*"]}),
    ] {
        let (response, lines) = logged(s.allow(&claims_with(json!({"channels": claim})))).await;
        assert_eq!(
            grants_of(&response),
            ("public/*".to_string(), "public/*".to_string()),
            "{claim}"
        );
        assert_eq!(
            lines_saying(&lines, "grants claim ignored").len(),
            1,
            "{claim}"
        );
    }
}

#[tokio::test]
async fn an_oversized_claim_leaves_only_the_static_grants() {
    let s = setup_with(|config| config.static_grants = statics(&["user/{sub}"], &[])).await;
    // 500 patterns of 13 bytes: 7 KB of context, in a token under the 16 KiB token limit.
    let many: Vec<String> = (0..500).map(|i| format!("room/lobby{i:03}")).collect();
    let claims = claims_with(json!({"channels": {"subscribe": many, "publish": ["room/*"]}}));
    let (response, lines) = logged(s.allow(&claims)).await;
    assert_eq!(
        grants_of(&response),
        ("user/user-1".to_string(), String::new())
    );
    let ignored = lines_saying(&lines, "grants claim ignored");
    assert_eq!(ignored.len(), 1);
    assert!(ignored[0]["fields"]["reason"]
        .as_str()
        .unwrap()
        .contains("too large"));
    // What the gateway gets stays far below API Gateway's 8 KB authorizer result limit.
    assert!(serde_json::to_vec(&response).unwrap().len() < 8 * 1024);

    // Up to the budget the claim is kept whole.
    let fitting: Vec<String> = (0..280).map(|i| format!("room/lobby{i:03}")).collect();
    let response = s
        .allow(&claims_with(json!({"channels": {"subscribe": fitting}})))
        .await;
    let (subscribe, _) = grants_of(&response);
    assert_eq!(subscribe.split(' ').count(), 281);
    assert!(serde_json::to_vec(&response).unwrap().len() < 8 * 1024);
}

#[tokio::test]
async fn a_principal_unfit_for_sub_loses_only_the_static_grants_that_use_it() {
    let s = setup_with(|config| {
        config.static_grants = statics(&["public/*", "user/{sub}"], &["user/{sub}/*"]);
    })
    .await;
    for principal in ["*", "a/b", "alice smith", "ääni", "{sub}", &"x".repeat(65)] {
        let claims = claims_with(json!({
            "sub": principal,
            "channels": {"subscribe": ["room/*"]},
        }));
        let (response, lines) = logged(s.allow(&claims)).await;
        assert_eq!(response.principal_id.as_deref(), Some(principal));
        assert_eq!(
            grants_of(&response),
            ("public/* room/*".to_string(), String::new()),
            "{principal:?}: never `user/*` or `user/a/b`"
        );
        let dropped = lines_saying(&lines, "static grants dropped");
        assert_eq!(dropped.len(), 1, "{principal:?}");
        assert_eq!(dropped[0]["fields"]["dropped"], "user/{sub},user/{sub}/*");
    }
}

#[tokio::test]
async fn a_denied_token_carries_no_grants() {
    let s = setup_with(|config| config.static_grants = statics(&["public/*"], &[])).await;
    let token = s.key.sign(&claims_with(json!({
        "aud": "another-app",
        "channels": {"subscribe": ["*"]},
    })));
    let response = handle(connect_with_query(&token), &s.authorizer)
        .await
        .unwrap();
    assert_eq!(
        response.policy_document.statement[0].effect,
        IamPolicyEffect::Deny
    );
    assert_eq!(response.context, json!({}));
}
