//! Performs a route's integration the way API Gateway does: render the request template with
//! `vtl`, call the service through [`AwsService`] (or evaluate a MOCK), select the integration
//! response by status code and, when the route has a route response, render the frame that goes
//! back to the client.
//!
//! Whether a non-proxy integration succeeded is decided by that selection alone, as on AWS: a
//! status no integration response matches is a failed integration (API Gateway logs "No match
//! for output mapping and no default output mapping"), whatever the status; a status one
//! matches is a success, even a 5xx caught by `$default`. So `routes.json` keys `$connect` and
//! `$disconnect` `/2\d\d/`: a failed `PutItem` then matches nothing and the upgrade is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use vtl::{Params, RenderInput};

use crate::aws_service::{AwsService, AwsServiceError};
use crate::routes::{Integration, Route};

/// An in-process Lambda proxy handler (issue 5's presence route registers one): gets the API
/// Gateway proxy event, answers `{"statusCode":…, "body":…}`.
pub type ProxyHandler =
    Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// The request an integration works on.
#[derive(Debug, Clone, Default)]
pub struct IntegrationRequest {
    pub context: Value,
    pub body: String,
    /// Headers and query string: only on `$connect`, as on AWS.
    pub params: Params,
}

/// A successful integration: an integration response was selected (or a proxy answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationOutcome {
    /// The integration's status: the service's HTTP status, a MOCK's `statusCode`, or a proxy
    /// answer's `statusCode`. Not 2xx when `$default` caught a failure (`ping`, one-way routes).
    pub status: u16,
    /// The rendered route response, when the route has one and an integration response matched.
    pub reply: Option<String>,
    /// The service's answer when `status` is not 2xx, for the log: a one-way route sends nothing
    /// back, so the log is where a local developer sees why a `send` went nowhere.
    pub failure: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("rendering the request template: {0}")]
    RequestTemplate(vtl::VtlError),
    #[error("rendering the response template: {0}")]
    ResponseTemplate(vtl::VtlError),
    #[error(transparent)]
    Service(#[from] AwsServiceError),
    #[error("the integration answered {status} and no integration response matches it: {body}")]
    NoMatchingResponse { status: u16, body: String },
    #[error("no in-process handler for the proxy integration {0}")]
    NoProxyHandler(String),
    #[error("proxy handler failed: {0}")]
    Proxy(String),
}

impl IntegrationError {
    /// The integration's status, when it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            IntegrationError::NoMatchingResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Everything integrations need, shared by all connections.
pub struct Integrations {
    aws: AwsService,
    stage_variables: BTreeMap<String, String>,
    proxies: HashMap<String, ProxyHandler>,
}

impl Integrations {
    pub fn new(
        aws: AwsService,
        stage_variables: BTreeMap<String, String>,
        proxies: HashMap<String, ProxyHandler>,
    ) -> Integrations {
        Integrations {
            aws,
            stage_variables,
            proxies,
        }
    }

    pub fn stage_variables(&self) -> &BTreeMap<String, String> {
        &self.stage_variables
    }

    /// Runs `route`'s integration for `request`. A status no integration response matches is
    /// an error ([`IntegrationError::NoMatchingResponse`]): the caller refuses `$connect`, logs
    /// `$disconnect`, answers `Internal server error` on a route with a route response and sends
    /// nothing on a one-way route.
    pub async fn invoke(
        &self,
        route: &Route,
        request: IntegrationRequest,
    ) -> Result<IntegrationOutcome, IntegrationError> {
        let mut input = RenderInput {
            context: request.context,
            body: request.body,
            stage_variables: self.stage_variables.clone(),
            params: request.params,
        };
        let (status, response_body) = match &route.integration {
            Integration::Aws {
                service,
                action,
                request,
            } => {
                let rendered = request
                    .render(&input)
                    .map_err(IntegrationError::RequestTemplate)?;
                let response = self.aws.call(service, action, rendered).await?;
                (response.status, response.body)
            }
            Integration::Mock { request } => {
                let status = match request {
                    Some(template) => mock_status(
                        &template
                            .render(&input)
                            .map_err(IntegrationError::RequestTemplate)?,
                    ),
                    None => 200,
                };
                (status, String::new())
            }
            Integration::Proxy { function } => {
                let handler = self
                    .proxies
                    .get(function)
                    .ok_or_else(|| IntegrationError::NoProxyHandler(function.clone()))?;
                let event = serde_json::json!({
                    "requestContext": input.context,
                    "body": input.body,
                    "isBase64Encoded": false,
                    "stageVariables": input.stage_variables,
                });
                let answer = handler(event).await.map_err(IntegrationError::Proxy)?;
                let status = answer
                    .get("statusCode")
                    .and_then(Value::as_u64)
                    .and_then(|code| u16::try_from(code).ok())
                    .unwrap_or(200);
                let body = match answer.get("body") {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                // A proxy integration's body is the route response as is.
                let failure = (!is_success(status)).then(|| body.clone());
                return Ok(IntegrationOutcome {
                    status,
                    reply: (route.route_response && !body.is_empty()).then_some(body),
                    failure,
                });
            }
        };
        let Some(selected) = route.response_for(status) else {
            return Err(IntegrationError::NoMatchingResponse {
                status,
                body: response_body,
            });
        };
        let failure = (!is_success(status)).then(|| response_body.clone());
        let reply = match &selected.template {
            Some(template) if route.route_response => {
                input.body = response_body;
                Some(
                    template
                        .render(&input)
                        .map_err(IntegrationError::ResponseTemplate)?,
                )
            }
            _ => None,
        };
        Ok(IntegrationOutcome {
            status,
            reply,
            failure,
        })
    }
}

/// A 2xx status.
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A MOCK integration's status: `statusCode` of the rendered request template when it is JSON
/// with one, else 200 (API Gateway's behaviour for a template that sets none).
fn mock_status(rendered: &str) -> u16 {
    serde_json::from_str::<Value>(rendered)
        .ok()
        .and_then(|value| value.get("statusCode").and_then(Value::as_u64))
        .and_then(|code| u16::try_from(code).ok())
        .unwrap_or(200)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route table of MOCK routes whose status is the request body, in a fresh directory.
    fn mock_routes() -> crate::routes::RouteTable {
        let dir = std::env::temp_dir().join(format!("sumu-integration-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status.vtl"), r#"{"statusCode": $input.body}"#).unwrap();
        std::fs::write(dir.join("reply.vtl"), r#"{"ok":true}"#).unwrap();
        let mock = serde_json::json!({"type": "MOCK", "request_template": "status.vtl"});
        let routes = serde_json::json!({
            "route_selection_expression": "$request.body.action",
            "routes": {
                "only_2xx": {"integration": mock, "integration_responses": {"/2\\d\\d/": null}},
                "catch_all": {"integration": mock, "integration_responses": {"$default": null}},
                "answers": {"integration": mock, "integration_responses": {"/2\\d\\d/": "reply.vtl"},
                            "route_response": true}
            }
        });
        std::fs::write(dir.join("routes.json"), routes.to_string()).unwrap();
        let table = crate::routes::RouteTable::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        table
    }

    async fn invoke(key: &str, status: u16) -> Result<IntegrationOutcome, IntegrationError> {
        let integrations = Integrations::new(
            AwsService::new("http://127.0.0.1:9", "us-east-1"),
            BTreeMap::new(),
            HashMap::new(),
        );
        let routes = mock_routes();
        let request = IntegrationRequest {
            body: status.to_string(),
            ..IntegrationRequest::default()
        };
        integrations.invoke(routes.get(key).unwrap(), request).await
    }

    #[tokio::test]
    async fn a_status_no_integration_response_matches_is_a_failed_integration() {
        let ok = invoke("only_2xx", 200).await.unwrap();
        assert_eq!((ok.status, ok.reply, ok.failure), (200, None, None));
        for status in [400, 500] {
            let error = invoke("only_2xx", status).await.unwrap_err();
            assert!(
                matches!(error, IntegrationError::NoMatchingResponse { .. }),
                "{error}"
            );
            assert_eq!(error.status(), Some(status));
        }
        let error = invoke("answers", 404).await.unwrap_err();
        assert_eq!(error.status(), Some(404));
    }

    #[tokio::test]
    async fn a_status_default_catches_is_a_success_that_still_reports_the_failure() {
        // What AWS does with `$default`: the integration response is selected, so the
        // integration succeeded as far as API Gateway is concerned; the caller decides.
        let caught = invoke("catch_all", 500).await.unwrap();
        assert_eq!(caught.status, 500);
        assert_eq!(caught.reply, None);
        assert!(caught.failure.is_some());
        let answered = invoke("answers", 204).await.unwrap();
        assert_eq!(answered.reply.as_deref(), Some(r#"{"ok":true}"#));
    }

    #[test]
    fn mock_status_reads_status_code() {
        assert_eq!(mock_status(r#"{"statusCode": 404}"#), 404);
        assert_eq!(mock_status("{}"), 200);
        assert_eq!(mock_status("not json"), 200);
    }
}
