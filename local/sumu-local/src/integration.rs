//! Performs a route's integration the way API Gateway does: render the request template with
//! `vtl`, call the service through [`AwsService`] (or evaluate a MOCK), select the integration
//! response by status code and, when the route has a route response, render the frame that goes
//! back to the client.

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

/// What the client gets back, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationOutcome {
    pub status: u16,
    /// The rendered route response, when the route has one and an integration response matched.
    pub reply: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("rendering the request template: {0}")]
    RequestTemplate(vtl::VtlError),
    #[error("rendering the response template: {0}")]
    ResponseTemplate(vtl::VtlError),
    #[error(transparent)]
    Service(#[from] AwsServiceError),
    #[error("the service answered {status} and no integration response handles it: {body}")]
    Failed { status: u16, body: String },
    #[error("no in-process handler for the proxy integration {0}")]
    NoProxyHandler(String),
    #[error("proxy handler failed: {0}")]
    Proxy(String),
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

    /// Runs `route`'s integration for `request`. A status ≥ 400 that no integration response
    /// handles is an error (the client sees `Internal server error`; `$connect` is rejected).
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
                return Ok(IntegrationOutcome {
                    status,
                    reply: (route.route_response && !body.is_empty()).then_some(body),
                });
            }
        };
        let selected = route.response_for(status);
        // A failed call (≥ 400) is a failure unless an integration response turns it into a
        // frame for the client. On a route without a route response nothing can: its `$default`
        // integration response (which AWS requires) only acknowledges, so the client still gets
        // `Internal server error`, `$connect` is still rejected and `$disconnect` still logged.
        if status >= 400 && (selected.is_none() || !route.route_response) {
            return Err(IntegrationError::Failed {
                status,
                body: response_body,
            });
        }
        let reply = match selected.and_then(|response| response.template.as_ref()) {
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
        Ok(IntegrationOutcome { status, reply })
    }
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

    #[test]
    fn mock_status_reads_status_code() {
        assert_eq!(mock_status(r#"{"statusCode": 404}"#), 404);
        assert_eq!(mock_status("{}"), 200);
        assert_eq!(mock_status("not json"), 200);
    }
}
