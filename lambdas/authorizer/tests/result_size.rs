//! The whole authorizer result fits API Gateway's 8 KB limit (docs/authorizer.md, "The 8 KB
//! result limit"): measured as the JSON the Lambda returns, with the principal, the policy, every
//! claim copied by `JWT_CONTEXT_CLAIMS` and the grants together. A token whose Allow would not fit
//! is denied (403) with one log line naming the sizes. Real keys, a real key server, real tokens.

mod support;

use authorizer::{handle, Authorizer, Config, StaticGrants, MAX_RESULT_BYTES};
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
    config.context_claims = vec!["email".into(), "profile".into()];
    adjust(&mut config);
    config.validate().expect("a valid configuration");
    Setup {
        key,
        authorizer: Authorizer::new(config),
        _server: server,
    }
}

fn claims_with(changes: Value) -> Value {
    let mut claims = good_claims(ISSUER);
    for (key, value) in changes.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// What API Gateway receives: the response as the Lambda runtime serializes it.
fn bytes(response: &ApiGatewayCustomAuthorizerResponse) -> usize {
    serde_json::to_vec(response).unwrap().len()
}

fn effect(response: &ApiGatewayCustomAuthorizerResponse) -> IamPolicyEffect {
    response.policy_document.statement[0].effect.clone()
}

impl Setup {
    /// The answer to a token with `claims`, and the log lines written meanwhile.
    async fn answer(&self, claims: &Value) -> (ApiGatewayCustomAuthorizerResponse, Vec<Value>) {
        let token = self.key.sign(claims);
        let (outcome, lines) = logged(handle(connect_with_query(&token), &self.authorizer)).await;
        (outcome.expect("a policy, not an error"), lines)
    }

    /// The length of the `profile` claim that makes the Allow exactly `MAX_RESULT_BYTES` long.
    async fn profile_length_that_just_fits(&self, other: Value) -> usize {
        let mut probe = claims_with(other);
        probe["profile"] = json!("x");
        let (response, _) = self.answer(&probe).await;
        assert_eq!(effect(&response), IamPolicyEffect::Allow);
        1 + MAX_RESULT_BYTES - bytes(&response)
    }
}

/// The one "too large" line, with the sizes it names.
fn too_large_line(lines: &[Value]) -> &Value {
    let found = lines_saying(lines, "exceed API Gateway's 8 KB limit");
    assert_eq!(found.len(), 1, "{lines:?}");
    &found[0]["fields"]
}

#[test]
fn the_limit_is_eight_kibibytes() {
    assert_eq!(MAX_RESULT_BYTES, 8192);
}

#[tokio::test]
async fn copied_claims_up_to_the_limit_are_allowed_and_one_byte_more_is_denied() {
    let s = setup_with(|_| {}).await;
    let email = json!({"email": "alice@example.com"});
    let length = s.profile_length_that_just_fits(email.clone()).await;

    let mut claims = claims_with(email.clone());
    claims["profile"] = json!("x".repeat(length));
    let (response, lines) = s.answer(&claims).await;
    assert_eq!(effect(&response), IamPolicyEffect::Allow);
    assert_eq!(
        bytes(&response),
        MAX_RESULT_BYTES,
        "just under counts as fitting"
    );
    assert_eq!(response.context["profile"].as_str().unwrap().len(), length);
    assert_eq!(response.context["email"], "alice@example.com");
    assert!(lines_saying(&lines, "exceed").is_empty());

    claims["profile"] = json!("x".repeat(length + 1));
    let (response, lines) = s.answer(&claims).await;
    assert_eq!(effect(&response), IamPolicyEffect::Deny);
    assert_eq!(response.principal_id.as_deref(), Some("unknown"));
    assert_eq!(response.context, json!({}), "a Deny carries no claim");
    let line = too_large_line(&lines);
    assert_eq!(line["result_bytes"], MAX_RESULT_BYTES + 1);
    assert_eq!(line["limit"], MAX_RESULT_BYTES);
    assert_eq!(line["principal"], "user-1");
    assert_eq!(line["principal_bytes"], 6);
    let claims_bytes = json!({"email": "alice@example.com", "profile": "x".repeat(length + 1)})
        .to_string()
        .len();
    assert_eq!(line["claims_bytes"], claims_bytes);
    // No grant: the context is the copied claims plus two empty grant strings.
    assert!(line["context_bytes"].as_u64().unwrap() > claims_bytes as u64);
}

#[tokio::test]
async fn a_huge_principal_is_denied_and_logged_shortened() {
    let s = setup_with(|_| {}).await;
    let sub = "p".repeat(MAX_RESULT_BYTES);
    let (response, lines) = s.answer(&claims_with(json!({"sub": sub}))).await;
    assert_eq!(effect(&response), IamPolicyEffect::Deny);
    let line = too_large_line(&lines);
    assert_eq!(line["principal_bytes"], MAX_RESULT_BYTES);
    assert_eq!(
        line["principal"].as_str().unwrap(),
        format!("{}…", "p".repeat(64))
    );
    assert!(line["result_bytes"].as_u64().unwrap() > MAX_RESULT_BYTES as u64);
}

#[tokio::test]
async fn many_grants_count_with_the_claims_and_together_may_not_fit() {
    let s = setup_with(|config| {
        config.static_grants = StaticGrants {
            subscribe: vec!["user/{sub}".into()],
            publish: vec![],
        }
    })
    .await;
    // 250 patterns of 13 bytes: within the grants claim's own 4,096-byte budget.
    let many: Vec<String> = (0..250).map(|i| format!("room/lobby{i:03}")).collect();
    let grants = json!({"channels": {"subscribe": many}});
    let (response, _) = s.answer(&claims_with(grants.clone())).await;
    assert_eq!(effect(&response), IamPolicyEffect::Allow);
    let subscribe = response.context["channels_subscribe"].as_str().unwrap();
    assert_eq!(subscribe.split(' ').count(), 251);

    // The same grants with a profile that fits only without them: denied, not cut.
    let length = s.profile_length_that_just_fits(grants.clone()).await;
    let mut claims = claims_with(grants);
    claims["profile"] = json!("x".repeat(length + 1));
    let (response, lines) = s.answer(&claims).await;
    assert_eq!(effect(&response), IamPolicyEffect::Deny);
    let line = too_large_line(&lines);
    assert_eq!(line["result_bytes"], MAX_RESULT_BYTES + 1);
    let grants_bytes =
        line["context_bytes"].as_u64().unwrap() - line["claims_bytes"].as_u64().unwrap();
    assert!(grants_bytes > 250 * 13, "the grants are counted: {line}");
}
