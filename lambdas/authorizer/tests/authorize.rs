//! The authorizer end to end: real keys, a real key server on 127.0.0.1:0, real `$connect` events.
//! Each hostile input has its exact outcome: `Err(Unauthorized)` (401), a Deny policy (403) or
//! `Err(KeysUnavailable)` (500).

mod support;

use std::time::Duration;

use authorizer::{handle, Authorizer, AuthorizerError, Config};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
use aws_lambda_events::iam::IamPolicyEffect;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::*;

const ISSUER: &str = "https://issuer.test";

type Outcome = Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError>;

fn assert_allow(outcome: Outcome) -> ApiGatewayCustomAuthorizerResponse {
    let response = outcome.expect("expected an Allow policy");
    let statement = &response.policy_document.statement[0];
    assert_eq!(statement.effect, IamPolicyEffect::Allow);
    assert_eq!(statement.action, vec!["execute-api:Invoke"]);
    assert_eq!(statement.resource, vec![STAGE_RESOURCE]);
    response
}

fn assert_deny(outcome: Outcome) {
    let response = outcome.expect("expected a Deny policy (403)");
    assert_eq!(response.policy_document.statement.len(), 1);
    assert_eq!(
        response.policy_document.statement[0].effect,
        IamPolicyEffect::Deny
    );
}

fn assert_unauthorized(outcome: Outcome) {
    match outcome {
        Err(AuthorizerError::Unauthorized) => {}
        other => panic!("expected Err(Unauthorized) (401), got {other:?}"),
    }
}

fn assert_keys_unavailable(outcome: Outcome) {
    match outcome {
        Err(AuthorizerError::KeysUnavailable { issuer }) => assert_eq!(issuer, ISSUER),
        other => panic!("expected Err(KeysUnavailable) (500), got {other:?}"),
    }
}

/// An RSA key served as a JWKS, and an authorizer trusting it.
struct Setup {
    rsa: TestKey,
    server: KeyServer,
    authorizer: Authorizer,
}

async fn setup_with(adjust: impl FnOnce(&mut Config)) -> Setup {
    let rsa = TestKey::generate(Algorithm::RS256, "rsa-1");
    let server = KeyServer::start(jwks(&[&rsa])).await;
    let mut config = config(vec![issuer(ISSUER, server.uri())]);
    adjust(&mut config);
    Setup {
        rsa,
        authorizer: Authorizer::new(config),
        server,
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

fn with(claims: Value, changes: Value) -> Value {
    let mut claims = claims;
    for (key, value) in changes.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

#[test]
fn unauthorized_displays_exactly_what_api_gateway_turns_into_401() {
    assert_eq!(AuthorizerError::Unauthorized.to_string(), "Unauthorized");
    let diagnostic = lambda_runtime::Diagnostic::from(AuthorizerError::Unauthorized);
    assert_eq!(diagnostic.error_message, "Unauthorized");
}

#[tokio::test]
async fn every_key_type_from_a_jwks_verifies() {
    let keys = [
        TestKey::generate(Algorithm::RS256, "rsa-1"),
        TestKey::generate(Algorithm::ES256, "p256"),
        TestKey::generate(Algorithm::ES384, "p384"),
        TestKey::generate(Algorithm::EdDSA, "ed25519"),
    ];
    let server = KeyServer::start(jwks(&keys.iter().collect::<Vec<_>>())).await;
    let authorizer = Authorizer::new(config(vec![issuer(ISSUER, server.uri())]));
    for key in &keys {
        let token = key.sign(&good_claims(ISSUER));
        let response = assert_allow(handle(connect_with_header(&token), &authorizer).await);
        assert_eq!(
            response.principal_id.as_deref(),
            Some("user-1"),
            "{:?}",
            key.algorithm
        );
    }
    assert_eq!(server.hits(), 1, "one fetch serves every later token");
}

#[tokio::test]
async fn google_firebase_certificate_map_verifies() {
    let rsa = TestKey::generate(Algorithm::RS256, "cert-rsa");
    let ec = TestKey::generate(Algorithm::ES256, "cert-ec");
    let server = KeyServer::start(certificate_map(&[&rsa, &ec])).await;
    let authorizer = Authorizer::new(config(vec![issuer(ISSUER, server.uri())]));
    for key in [&rsa, &ec] {
        let token = key.sign(&good_claims(ISSUER));
        assert_allow(handle(connect_with_header(&token), &authorizer).await);
    }
    // Another key under a published kid.
    let stranger = TestKey::generate(Algorithm::RS256, "stranger").renamed("cert-rsa");
    assert_unauthorized(
        handle(
            connect_with_header(&stranger.sign(&good_claims(ISSUER))),
            &authorizer,
        )
        .await,
    );
}

#[tokio::test]
async fn token_from_query_parameter_or_raw_header() {
    let s = setup().await;
    let token = s.rsa.sign(&good_claims(ISSUER));
    assert_allow(handle(connect_with_query(&token), &s.authorizer).await);
    let mut raw = connect_with_header(&token);
    raw.payload
        .headers
        .insert("authorization", token.parse().unwrap());
    assert_allow(handle(raw, &s.authorizer).await);
}

#[tokio::test]
async fn missing_token_is_unauthorized() {
    let s = setup().await;
    assert_unauthorized(handle(connect_without_token(), &s.authorizer).await);
    assert_unauthorized(handle(connect_with_header(""), &s.authorizer).await);
    assert_eq!(s.server.hits(), 0);
}

#[tokio::test]
async fn alg_none_is_unauthorized() {
    let s = setup().await;
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "rsa-1"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(good_claims(ISSUER).to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.c2ln"),
    ] {
        assert_unauthorized(handle(connect_with_header(&token), &s.authorizer).await);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_unauthorized() {
    let s = setup().await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(s.rsa.kid.clone());
    let forged = jsonwebtoken::encode(
        &header,
        &good_claims(ISSUER),
        &EncodingKey::from_secret(s.rsa.public_pem.as_bytes()),
    )
    .unwrap();
    // Without a configured secret HS256 is not even an allowed algorithm.
    assert_unauthorized(handle(connect_with_header(&forged), &s.authorizer).await);

    // With a shared secret configured, HS256 verifies against that secret only, never against
    // a published key.
    let secret = "a-shared-secret-of-reasonable-length";
    let rsa = s.rsa;
    let authorizer = Authorizer::new({
        let mut config = config(vec![issuer(ISSUER, s.server.uri())]);
        config.hs256_secret = Some(secret.to_string());
        config.algorithms.push(Algorithm::HS256);
        config
    });
    assert_unauthorized(handle(connect_with_header(&forged), &authorizer).await);
    let genuine = jsonwebtoken::encode(
        &header,
        &good_claims(ISSUER),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_allow(handle(connect_with_header(&genuine), &authorizer).await);
    // And RS256 still works beside it.
    assert_allow(
        handle(
            connect_with_header(&rsa.sign(&good_claims(ISSUER))),
            &authorizer,
        )
        .await,
    );
}

#[tokio::test]
async fn expired_token_is_unauthorized_beyond_the_leeway() {
    let s = setup().await;
    let claims = good_claims(ISSUER);
    let expired = s
        .rsa
        .sign(&with(claims.clone(), json!({"exp": now() - 3600})));
    assert_unauthorized(handle(connect_with_header(&expired), &s.authorizer).await);
    let within_leeway = s.rsa.sign(&with(claims.clone(), json!({"exp": now() - 5})));
    assert_allow(handle(connect_with_header(&within_leeway), &s.authorizer).await);
    let no_exp = {
        let mut c = claims;
        c.as_object_mut().unwrap().remove("exp");
        s.rsa.sign(&c)
    };
    assert_unauthorized(handle(connect_with_header(&no_exp), &s.authorizer).await);
}

#[tokio::test]
async fn not_yet_valid_token_is_unauthorized() {
    let s = setup().await;
    let future = s
        .rsa
        .sign(&with(good_claims(ISSUER), json!({"nbf": now() + 3600})));
    assert_unauthorized(handle(connect_with_header(&future), &s.authorizer).await);
    let issued_in_future = s
        .rsa
        .sign(&with(good_claims(ISSUER), json!({"iat": now() + 3600})));
    assert_unauthorized(handle(connect_with_header(&issued_in_future), &s.authorizer).await);
}

#[tokio::test]
async fn wrong_issuer_is_unauthorized() {
    let s = setup().await;
    let token = s.rsa.sign(&with(
        good_claims(ISSUER),
        json!({"iss": "https://evil.test"}),
    ));
    assert_unauthorized(handle(connect_with_header(&token), &s.authorizer).await);
    let mut claims = good_claims(ISSUER);
    claims.as_object_mut().unwrap().remove("iss");
    assert_unauthorized(handle(connect_with_header(&s.rsa.sign(&claims)), &s.authorizer).await);
}

#[tokio::test]
async fn a_token_is_verified_only_with_its_own_issuers_keys() {
    let a = TestKey::generate(Algorithm::ES256, "a-key");
    let b = TestKey::generate(Algorithm::ES256, "b-key");
    let server_a = KeyServer::start(jwks(&[&a])).await;
    let server_b = KeyServer::start(jwks(&[&b])).await;
    let authorizer = Authorizer::new(config(vec![
        issuer("https://a.test", server_a.uri()),
        issuer("https://b.test", server_b.uri()),
    ]));
    assert_allow(
        handle(
            connect_with_header(&b.sign(&good_claims("https://b.test"))),
            &authorizer,
        )
        .await,
    );
    // Signed by A's key but claiming to come from B: B's key set has no such key.
    let cross = a.sign(&good_claims("https://b.test"));
    assert_unauthorized(handle(connect_with_header(&cross), &authorizer).await);
}

#[tokio::test]
async fn wrong_audience_is_denied() {
    let s = setup().await;
    let claims = good_claims(ISSUER);
    let wrong = s
        .rsa
        .sign(&with(claims.clone(), json!({"aud": "another-app"})));
    assert_deny(handle(connect_with_header(&wrong), &s.authorizer).await);
    let wrong_array = s
        .rsa
        .sign(&with(claims.clone(), json!({"aud": ["x", "y"]})));
    assert_deny(handle(connect_with_header(&wrong_array), &s.authorizer).await);
    let array = s
        .rsa
        .sign(&with(claims.clone(), json!({"aud": ["x", AUDIENCE]})));
    assert_allow(handle(connect_with_header(&array), &s.authorizer).await);

    let mut cognito = claims;
    cognito.as_object_mut().unwrap().remove("aud");
    let no_aud = s.rsa.sign(&cognito);
    assert_deny(handle(connect_with_header(&no_aud), &s.authorizer).await);
    let client_id = s
        .rsa
        .sign(&with(cognito.clone(), json!({"client_id": AUDIENCE})));
    assert_allow(handle(connect_with_header(&client_id), &s.authorizer).await);
    let wrong_client = s
        .rsa
        .sign(&with(cognito, json!({"client_id": "another-app"})));
    assert_deny(handle(connect_with_header(&wrong_client), &s.authorizer).await);
}

#[tokio::test]
async fn empty_audience_list_accepts_any_audience() {
    let s = setup_with(|config| config.issuers[0].audiences.clear()).await;
    let token = s
        .rsa
        .sign(&with(good_claims(ISSUER), json!({"aud": "whatever"})));
    assert_allow(handle(connect_with_header(&token), &s.authorizer).await);
}

#[tokio::test]
async fn missing_principal_claim_is_denied_and_the_claim_is_configurable() {
    let s = setup().await;
    let mut claims = good_claims(ISSUER);
    claims.as_object_mut().unwrap().remove("sub");
    assert_deny(handle(connect_with_header(&s.rsa.sign(&claims)), &s.authorizer).await);

    let s = setup_with(|config| config.principal_claim = "email".to_string()).await;
    let token = s.rsa.sign(&with(
        good_claims(ISSUER),
        json!({"email": "a@example.com"}),
    ));
    let response = assert_allow(handle(connect_with_header(&token), &s.authorizer).await);
    assert_eq!(response.principal_id.as_deref(), Some("a@example.com"));
}

#[tokio::test]
async fn selected_claims_reach_the_context_as_scalars() {
    let s = setup_with(|config| {
        config.context_claims = [
            "email", "tier", "admin", "groups", "address", "nothing", "absent",
        ]
        .map(String::from)
        .to_vec()
    })
    .await;
    let claims = with(
        good_claims(ISSUER),
        json!({"email": "a@example.com", "tier": 3, "admin": false, "groups": ["a", "b"],
               "address": {"city": "Oulu"}, "nothing": null, "secret": "not selected"}),
    );
    let response =
        assert_allow(handle(connect_with_header(&s.rsa.sign(&claims)), &s.authorizer).await);
    assert_eq!(
        response.context,
        json!({"email": "a@example.com", "tier": 3, "admin": false,
               "groups": "[\"a\",\"b\"]", "address": "{\"city\":\"Oulu\"}",
               "channels_subscribe": "", "channels_publish": ""})
    );
}

#[tokio::test]
async fn tampered_payload_is_unauthorized() {
    let s = setup().await;
    let token = s.rsa.sign(&good_claims(ISSUER));
    let parts: Vec<&str> = token.split('.').collect();
    let tampered_payload =
        URL_SAFE_NO_PAD.encode(with(good_claims(ISSUER), json!({"sub": "admin"})).to_string());
    let tampered = format!("{}.{}.{}", parts[0], tampered_payload, parts[2]);
    assert_unauthorized(handle(connect_with_header(&tampered), &s.authorizer).await);
}

#[tokio::test]
async fn truncated_token_is_unauthorized() {
    let s = setup().await;
    let token = s.rsa.sign(&good_claims(ISSUER));
    for cut in [
        &token[..token.len() - 8],
        &token[..token.rfind('.').unwrap()],
        &token[..token.len() / 2],
    ] {
        assert_unauthorized(handle(connect_with_header(cut), &s.authorizer).await);
    }
}

#[tokio::test]
async fn non_base64_garbage_is_unauthorized() {
    let s = setup().await;
    for garbage in [
        "%%%.***.$$$",
        "not-a-jwt",
        "a.b.c",
        "....",
        "eyJ!!.eyJ??.sig",
        "Bearer Bearer",
    ] {
        assert_unauthorized(handle(connect_with_header(garbage), &s.authorizer).await);
    }
    assert_eq!(s.server.hits(), 0, "garbage never causes a key fetch");
}

#[tokio::test]
async fn one_megabyte_token_is_unauthorized_before_any_work() {
    let s = setup().await;
    // A genuinely signed, otherwise valid token: only the size check stands in its way.
    let padding = "x".repeat(1024 * 1024);
    let token = s
        .rsa
        .sign(&with(good_claims(ISSUER), json!({"padding": padding})));
    assert!(token.len() > 1024 * 1024);
    assert_unauthorized(handle(connect_with_header(&token), &s.authorizer).await);
    assert_unauthorized(handle(connect_with_query(&token), &s.authorizer).await);
    assert_eq!(s.server.hits(), 0, "refused before any key lookup");
}

#[tokio::test]
async fn unknown_kid_is_refetched_and_found_after_rotation() {
    let s = setup().await;
    assert_allow(
        handle(
            connect_with_header(&s.rsa.sign(&good_claims(ISSUER))),
            &s.authorizer,
        )
        .await,
    );
    let rotated = TestKey::generate(Algorithm::RS256, "rsa-2");
    let token = rotated.sign(&good_claims(ISSUER));
    s.server.publish(jwks(&[&s.rsa, &rotated]));
    assert_allow(handle(connect_with_header(&token), &s.authorizer).await);
    assert_eq!(s.server.hits(), 2);
    // A kid nobody publishes is a 401 after the re-fetch.
    let stranger = TestKey::generate(Algorithm::RS256, "stranger").renamed("rsa-3");
    assert_unauthorized(
        handle(
            connect_with_header(&stranger.sign(&good_claims(ISSUER))),
            &s.authorizer,
        )
        .await,
    );
}

#[tokio::test]
async fn unknown_kid_refetch_is_rate_limited() {
    let s = setup_with(|config| config.refetch_interval = Duration::from_secs(3600)).await;
    assert_allow(
        handle(
            connect_with_header(&s.rsa.sign(&good_claims(ISSUER))),
            &s.authorizer,
        )
        .await,
    );
    let rotated = TestKey::generate(Algorithm::RS256, "rsa-2");
    s.server.publish(jwks(&[&s.rsa, &rotated]));
    for _ in 0..3 {
        let token = rotated.sign(&good_claims(ISSUER));
        assert_unauthorized(handle(connect_with_header(&token), &s.authorizer).await);
    }
    assert_eq!(s.server.hits(), 1, "no re-fetch within the interval");
    // The known key keeps working meanwhile.
    assert_allow(
        handle(
            connect_with_header(&s.rsa.sign(&good_claims(ISSUER))),
            &s.authorizer,
        )
        .await,
    );
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_and_bounded() {
    // max-age=3600 under a 1 h bound: one fetch for two tokens.
    let s = setup().await;
    s.server.set_cache_control(Some("public, max-age=3600"));
    for _ in 0..2 {
        assert_allow(
            handle(
                connect_with_header(&s.rsa.sign(&good_claims(ISSUER))),
                &s.authorizer,
            )
            .await,
        );
    }
    assert_eq!(s.server.hits(), 1);

    // max-age=0: every token re-fetches (the rate limit is zero in these tests).
    let s = setup().await;
    s.server.set_cache_control(Some("max-age=0"));
    for _ in 0..2 {
        assert_allow(
            handle(
                connect_with_header(&s.rsa.sign(&good_claims(ISSUER))),
                &s.authorizer,
            )
            .await,
        );
    }
    assert_eq!(s.server.hits(), 2);

    // max-age=3600 but a configured bound of zero: the bound wins.
    let s = setup_with(|config| config.max_cache_age = Duration::ZERO).await;
    s.server.set_cache_control(Some("max-age=3600"));
    for _ in 0..2 {
        assert_allow(
            handle(
                connect_with_header(&s.rsa.sign(&good_claims(ISSUER))),
                &s.authorizer,
            )
            .await,
        );
    }
    assert_eq!(s.server.hits(), 2);
}

#[tokio::test]
async fn cached_keys_still_verify_when_the_endpoint_fails_or_goes_down() {
    // Keys always due for refresh, so each token makes the authorizer try the endpoint.
    let s = setup_with(|config| config.max_cache_age = Duration::ZERO).await;
    let token = s.rsa.sign(&good_claims(ISSUER));
    assert_allow(handle(connect_with_header(&token), &s.authorizer).await);

    s.server.set_mode(Mode::Failing);
    assert_allow(handle(connect_with_header(&token), &s.authorizer).await);
    assert_eq!(s.server.hits(), 2, "the refresh was attempted and failed");

    s.server.shut_down().await;
    assert_allow(handle(connect_with_header(&token), &s.authorizer).await);
}

#[tokio::test]
async fn no_keys_and_endpoint_down_is_a_500_class_error() {
    let rsa = TestKey::generate(Algorithm::RS256, "rsa-1");
    let token = rsa.sign(&good_claims(ISSUER));

    let refused = Authorizer::new(config(vec![issuer(ISSUER, closed_port_uri().await)]));
    assert_keys_unavailable(handle(connect_with_header(&token), &refused).await);

    let server = KeyServer::start(jwks(&[&rsa])).await;
    server.set_mode(Mode::Failing);
    let failing = Authorizer::new(config(vec![issuer(ISSUER, server.uri())]));
    assert_keys_unavailable(handle(connect_with_header(&token), &failing).await);

    server.set_mode(Mode::Normal);
    server.publish("<html>maintenance</html>".to_string());
    assert_keys_unavailable(handle(connect_with_header(&token), &failing).await);
}

#[tokio::test]
async fn endpoint_that_never_answers_gives_up_within_the_timeout() {
    let rsa = TestKey::generate(Algorithm::RS256, "rsa-1");
    let server = KeyServer::start(jwks(&[&rsa])).await;
    server.set_mode(Mode::Silent);
    let mut config = config(vec![issuer(ISSUER, server.uri())]);
    config.jwks_timeout = Duration::from_millis(300);
    let authorizer = Authorizer::new(config);
    let token = rsa.sign(&good_claims(ISSUER));
    // The outer deadline only keeps a broken build from hanging the suite; the assertion is on
    // the outcome.
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        handle(connect_with_header(&token), &authorizer),
    )
    .await
    .expect("the authorizer must give up on its own");
    assert_keys_unavailable(outcome);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn malformed_method_arn_is_an_error_not_an_allow() {
    let s = setup().await;
    let mut event = connect_with_header(&s.rsa.sign(&good_claims(ISSUER)));
    event.payload.method_arn = Some("arn:aws:lambda:eu-west-1:1:function:f".to_string());
    assert!(matches!(
        handle(event, &s.authorizer).await,
        Err(AuthorizerError::InvalidRequest(_))
    ));
}
