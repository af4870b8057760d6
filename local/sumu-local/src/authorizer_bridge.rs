//! Runs the `authorizer` crate's Lambda handler in-process, as API Gateway runs a REQUEST
//! authorizer on `$connect`: the identity sources must be present (else 401 without calling
//! it), the event is the JSON API Gateway sends, and the answer maps to 401/403/500 or an
//! allowed principal.

use std::collections::BTreeMap;

use authorizer::{Authorizer, AuthorizerError};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::IamPolicyEffect;
use axum::http::HeaderMap;
use serde_json::{json, Map, Value};

use crate::config::IdentitySource;
use crate::protocol::{common_log_time, ApiInfo};
use crate::state::{Identity, Principal};

/// The upgrade request, as the authorizer and the `$connect` templates see it.
#[derive(Debug, Clone, Default)]
pub struct UpgradeRequest {
    pub headers: HeaderMap,
    /// Query parameters in order, percent-decoded (a name may repeat).
    pub query: Vec<(String, String)>,
}

impl UpgradeRequest {
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Single-value header map (last value wins, as API Gateway's `headers`).
    pub fn single_headers(&self) -> BTreeMap<String, String> {
        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            if let Ok(value) = value.to_str() {
                headers.insert(name.as_str().to_string(), value.to_string());
            }
        }
        headers
    }

    pub fn single_query(&self) -> BTreeMap<String, String> {
        self.query.iter().cloned().collect()
    }
}

/// Why a `$connect` is refused, as the HTTP status of the upgrade response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("Forbidden")]
    Forbidden,
    #[error("Internal server error")]
    Internal,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthorized => 401,
            Refusal::Forbidden => 403,
            Refusal::Internal => 500,
        }
    }
}

/// True when every identity source is present and non-empty.
pub fn identity_present(sources: &[IdentitySource], request: &UpgradeRequest) -> bool {
    sources.iter().all(|source| {
        let value = match source {
            IdentitySource::QueryString(name) => request.query_value(name),
            IdentitySource::Header(name) => request.header_value(name),
        };
        value.is_some_and(|value| !value.trim().is_empty())
    })
}

/// The method ARN the policy must allow.
pub fn method_arn(region: &str, api: &ApiInfo) -> String {
    format!(
        "arn:aws:execute-api:{region}:000000000000:{}/{}/$connect",
        api.api_id, api.stage
    )
}

/// The Lambda event API Gateway sends a REQUEST authorizer for a WebSocket `$connect`.
#[allow(clippy::too_many_arguments)]
pub fn authorizer_event(
    request: &UpgradeRequest,
    api: &ApiInfo,
    region: &str,
    connection_id: &str,
    request_id: &str,
    now_ms: i64,
    identity: &Identity,
    stage_variables: &BTreeMap<String, String>,
) -> Value {
    let mut multi_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &request.headers {
        if let Ok(value) = value.to_str() {
            multi_headers
                .entry(name.as_str().to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    let mut multi_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &request.query {
        multi_query
            .entry(name.clone())
            .or_default()
            .push(value.clone());
    }
    json!({
        "type": "REQUEST",
        "methodArn": method_arn(region, api),
        "headers": request.single_headers(),
        "multiValueHeaders": multi_headers,
        "queryStringParameters": request.single_query(),
        "multiValueQueryStringParameters": multi_query,
        "stageVariables": stage_variables,
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "extendedRequestId": request_id,
            "requestTime": common_log_time(now_ms),
            "messageDirection": "IN",
            "stage": api.stage,
            "connectedAt": now_ms,
            "requestTimeEpoch": now_ms,
            "identity": {"sourceIp": identity.source_ip, "userAgent": identity.user_agent},
            "requestId": request_id,
            "domainName": api.domain_name,
            "connectionId": connection_id,
            "apiId": api.api_id,
        },
    })
}

/// Calls the authorizer with `event` and maps its answer.
pub async fn authorize(
    authorizer: &Authorizer,
    event: Value,
    method_arn: &str,
) -> Result<Principal, Refusal> {
    let event: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(event)
        .map_err(|error| {
            tracing::error!(%error, "cannot build the authorizer event");
            Refusal::Internal
        })?;
    let answer = authorizer::handle(
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
        authorizer,
    )
    .await;
    match answer {
        Ok(response) => map_response(&response, method_arn),
        Err(AuthorizerError::Unauthorized) => Err(Refusal::Unauthorized),
        Err(error) => {
            tracing::warn!(%error, "authorizer failed");
            Err(Refusal::Internal)
        }
    }
}

/// Allow → the principal; Deny (or no statement allowing this method) → 403; a malformed answer
/// (no principal, context values that are not strings/numbers/booleans) → 500.
pub fn map_response(
    response: &ApiGatewayCustomAuthorizerResponse,
    method_arn: &str,
) -> Result<Principal, Refusal> {
    let principal_id = match response.principal_id.as_deref() {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => {
            tracing::warn!("authorizer answer without principalId");
            return Err(Refusal::Internal);
        }
    };
    let context = match &response.context {
        Value::Null => Map::new(),
        Value::Object(map) => {
            let mut strings = Map::new();
            for (key, value) in map {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    _ => {
                        tracing::warn!(key, "authorizer context value is not a scalar");
                        return Err(Refusal::Internal);
                    }
                };
                strings.insert(key.clone(), Value::String(text));
            }
            strings
        }
        _ => {
            tracing::warn!("authorizer context is not an object");
            return Err(Refusal::Internal);
        }
    };
    let applies = |statement: &aws_lambda_events::iam::IamPolicyStatement| {
        statement
            .action
            .iter()
            .any(|action| wildcard_match(action, "execute-api:Invoke"))
            && statement
                .resource
                .iter()
                .any(|resource| wildcard_match(resource, method_arn))
    };
    let statements = &response.policy_document.statement;
    let denied = statements
        .iter()
        .any(|s| s.effect == IamPolicyEffect::Deny && applies(s));
    let allowed = statements
        .iter()
        .any(|s| s.effect == IamPolicyEffect::Allow && applies(s));
    if denied || !allowed {
        return Err(Refusal::Forbidden);
    }
    Ok(Principal {
        principal_id,
        context,
    })
}

/// IAM-style matching: `*` any run of characters, `?` one character.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some(p);
                mark = t;
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    mark += 1;
                    t = mark;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:api/dev/$connect";

    fn response(value: Value) -> ApiGatewayCustomAuthorizerResponse {
        serde_json::from_value(value).unwrap()
    }

    fn policy(effect: &str, resource: &str) -> Value {
        json!({"Version":"2012-10-17","Statement":[{"Action":"execute-api:Invoke","Effect":effect,"Resource":resource}]})
    }

    #[test]
    fn allow_for_the_stage_gives_the_principal_and_string_context() {
        let answer = response(json!({
            "principalId":"alice",
            "policyDocument": policy("Allow", "arn:aws:execute-api:us-east-1:000000000000:api/dev/*"),
            "context": {"n": 3, "admin": true, "email": "a@x"}
        }));
        let principal = map_response(&answer, ARN).unwrap();
        assert_eq!(principal.principal_id, "alice");
        assert_eq!(principal.context["n"], "3");
        assert_eq!(principal.context["admin"], "true");
    }

    #[test]
    fn deny_or_a_policy_for_another_resource_is_forbidden() {
        let deny = response(json!({"principalId":"a","policyDocument": policy("Deny", "*")}));
        assert_eq!(map_response(&deny, ARN).unwrap_err(), Refusal::Forbidden);
        let other = response(
            json!({"principalId":"a","policyDocument": policy("Allow", "arn:aws:execute-api:us-east-1:000000000000:api/prod/*")}),
        );
        assert_eq!(map_response(&other, ARN).unwrap_err(), Refusal::Forbidden);
    }

    #[test]
    fn malformed_answers_are_internal_errors() {
        let no_principal = response(json!({"policyDocument": policy("Allow", "*")}));
        assert_eq!(
            map_response(&no_principal, ARN).unwrap_err(),
            Refusal::Internal
        );
        let nested = response(
            json!({"principalId":"a","policyDocument": policy("Allow", "*"),
            "context": {"groups": ["x"]}}),
        );
        assert_eq!(map_response(&nested, ARN).unwrap_err(), Refusal::Internal);
    }

    #[test]
    fn identity_sources_must_be_present_and_non_empty() {
        let sources = vec![IdentitySource::QueryString("authorization".into())];
        let mut request = UpgradeRequest::default();
        assert!(!identity_present(&sources, &request));
        request.query.push(("authorization".into(), " ".into()));
        assert!(!identity_present(&sources, &request));
        request.query.push(("authorization".into(), "tok".into()));
        assert!(identity_present(&sources, &request));
        let header: IdentitySource = "route.request.header.Authorization".parse().unwrap();
        assert_eq!(header, IdentitySource::Header("authorization".into()));
        assert!("route.request.body.x".parse::<IdentitySource>().is_err());
    }

    #[test]
    fn the_event_deserializes_into_the_lambda_type() {
        let api = ApiInfo {
            api_id: "api".into(),
            stage: "dev".into(),
            domain_name: "127.0.0.1:9".into(),
        };
        let mut request = UpgradeRequest::default();
        request.query.push(("authorization".into(), "tok".into()));
        request
            .headers
            .insert("user-agent", "test".parse().unwrap());
        let event = authorizer_event(
            &request,
            &api,
            "us-east-1",
            "c=",
            "r",
            1_700_000_000_000,
            &Identity::default(),
            &BTreeMap::new(),
        );
        let typed: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(event).unwrap();
        assert_eq!(typed.method_arn.as_deref(), Some(ARN));
        assert_eq!(
            typed.query_string_parameters.first("authorization"),
            Some("tok")
        );
        assert_eq!(typed.headers.get("user-agent").unwrap(), "test");
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("arn:*/dev/*", "arn:x/dev/$connect"));
        assert!(!wildcard_match("arn:*/prod/*", "arn:x/dev/$connect"));
        assert!(wildcard_match("execute-api:*", "execute-api:Invoke"));
        assert!(wildcard_match("a?c", "abc"));
    }
}
