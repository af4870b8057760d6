//! The route table: `mapping-templates/routes.json` (the file the Terraform module reads too)
//! and the templates it names, parsed once at start so a broken template fails the start, not
//! a client's request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vtl::Template;

use crate::protocol::{SelectionExpression, UnsupportedExpression};

/// `routes.json` as written.
#[derive(Debug, Clone, Deserialize)]
pub struct RouteFile {
    pub route_selection_expression: String,
    #[serde(default)]
    pub stage_variables: Vec<String>,
    pub routes: BTreeMap<String, RouteSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RouteSpec {
    #[serde(default)]
    pub authorizer: bool,
    pub integration: IntegrationSpec,
    /// Integration responses: `$default` or `/regex/` on the status code → response template,
    /// or `null` for a response without one (a route that sends nothing back).
    #[serde(default)]
    pub integration_responses: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub route_response: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IntegrationSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub request_template: Option<String>,
    /// For `AWS_PROXY` routes: the name of the in-process handler (see `lib.rs`).
    #[serde(default)]
    pub function: Option<String>,
}

/// How a route's integration is performed.
#[derive(Debug, Clone)]
pub enum Integration {
    /// A direct service integration: render the request template, call the service.
    Aws {
        service: String,
        action: String,
        request: Template,
    },
    /// API Gateway's MOCK: the rendered request template's `statusCode` is the status.
    Mock { request: Option<Template> },
    /// A Lambda proxy integration, run by an in-process handler registered under this name.
    Proxy { function: String },
}

/// One integration response: the status pattern it is selected by and its template, if any.
#[derive(Debug, Clone)]
pub struct IntegrationResponse {
    pattern: StatusPattern,
    pub template: Option<Template>,
}

#[derive(Debug, Clone)]
enum StatusPattern {
    Default,
    Regex(regex_lite::Regex),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub key: String,
    pub integration: Integration,
    responses: Vec<IntegrationResponse>,
    pub route_response: bool,
}

impl Route {
    /// The integration response for a status code: the first `/regex/` key that matches the
    /// whole status code, else `$default`, else none.
    pub fn response_for(&self, status: u16) -> Option<&IntegrationResponse> {
        let status = status.to_string();
        self.responses
            .iter()
            .find(|response| match &response.pattern {
                StatusPattern::Regex(regex) => regex
                    .find(&status)
                    .is_some_and(|found| found.start() == 0 && found.end() == status.len()),
                StatusPattern::Default => false,
            })
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|response| matches!(response.pattern, StatusPattern::Default))
            })
    }
}

/// The parsed routes, by key.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub selection: SelectionExpression,
    pub stage_variables: Vec<String>,
    routes: BTreeMap<String, Route>,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid route table: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Template {
        path: PathBuf,
        #[source]
        source: vtl::VtlError,
    },
    #[error(transparent)]
    Selection(#[from] UnsupportedExpression),
    #[error("route {route}: {problem}")]
    Invalid { route: String, problem: String },
}

impl RouteTable {
    /// Reads `routes.json` and every template it names from `dir`.
    pub fn load(dir: &Path) -> Result<RouteTable, RouteError> {
        let path = dir.join("routes.json");
        let text = read(&path)?;
        let file: RouteFile =
            serde_json::from_str(&text).map_err(|source| RouteError::Json { path, source })?;
        let selection = SelectionExpression::parse(&file.route_selection_expression)?;
        let mut routes = BTreeMap::new();
        for (key, spec) in file.routes {
            let route = build_route(dir, &key, spec)?;
            routes.insert(key, route);
        }
        Ok(RouteTable {
            selection,
            stage_variables: file.stage_variables,
            routes,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Route> {
        self.routes.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.routes.contains_key(key)
    }

    /// The `actions` stage variable: the route keys a client may send (every key without a
    /// leading `$`), sorted and comma-separated, as the Terraform module derives it.
    pub fn actions(&self) -> String {
        self.routes
            .keys()
            .filter(|key| !key.starts_with('$'))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn read(path: &Path) -> Result<String, RouteError> {
    std::fs::read_to_string(path).map_err(|source| RouteError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses one template file.
pub fn load_template(path: &Path) -> Result<Template, RouteError> {
    let source = read(path)?;
    Template::parse(&source).map_err(|source| RouteError::Template {
        path: path.to_path_buf(),
        source,
    })
}

fn build_route(dir: &Path, key: &str, spec: RouteSpec) -> Result<Route, RouteError> {
    let invalid = |problem: &str| RouteError::Invalid {
        route: key.to_string(),
        problem: problem.to_string(),
    };
    let request = spec
        .integration
        .request_template
        .as_deref()
        .map(|name| load_template(&dir.join(name)))
        .transpose()?;
    let integration = match spec.integration.kind.as_str() {
        "AWS" => Integration::Aws {
            service: spec
                .integration
                .service
                .ok_or_else(|| invalid("AWS integration without service"))?,
            action: spec
                .integration
                .action
                .ok_or_else(|| invalid("AWS integration without action"))?,
            request: request.ok_or_else(|| invalid("AWS integration without request_template"))?,
        },
        "MOCK" => Integration::Mock { request },
        "AWS_PROXY" => Integration::Proxy {
            function: spec.integration.function.unwrap_or_else(|| key.to_string()),
        },
        other => return Err(invalid(&format!("unsupported integration type {other}"))),
    };
    let mut responses = Vec::new();
    for (selector, template) in spec.integration_responses {
        let pattern = if selector == "$default" {
            StatusPattern::Default
        } else {
            let regex = selector
                .strip_prefix('/')
                .and_then(|rest| rest.strip_suffix('/'))
                .ok_or_else(|| {
                    invalid(&format!(
                        "response key {selector} is not $default or /regex/"
                    ))
                })?;
            StatusPattern::Regex(
                regex_lite::Regex::new(regex)
                    .map_err(|error| invalid(&format!("response key {selector}: {error}")))?,
            )
        };
        let template = template
            .map(|name| load_template(&dir.join(name)))
            .transpose()?;
        responses.push(IntegrationResponse { pattern, template });
    }
    Ok(Route {
        key: key.to_string(),
        integration,
        responses,
        route_response: spec.route_response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_disconnect_succeed_on_2xx_only() {
        let table = RouteTable::load(&crate::config::default_templates_dir()).unwrap();
        for key in ["$connect", "$disconnect"] {
            let route = table.get(key).unwrap();
            for status in [200, 204] {
                assert!(route.response_for(status).is_some(), "{key} {status}");
            }
            // A failed PutItem/DeleteItem matches nothing: the integration fails.
            for status in [400, 404, 500, 503] {
                assert!(route.response_for(status).is_none(), "{key} {status}");
            }
        }
    }

    #[test]
    fn regex_keys_match_the_whole_status_and_default_catches_the_rest() {
        let table = RouteTable::load(&crate::config::default_templates_dir()).unwrap();
        let ping = table.get("ping").unwrap();
        let template = |status| {
            ping.response_for(status)
                .and_then(|response| response.template.as_ref())
                .map(|template| format!("{template:?}"))
        };
        assert_ne!(template(200), template(400));
        assert_ne!(template(400), template(500));
        // `/2\d\d/` does not match 2000, `$default` does.
        assert_eq!(template(2000), template(500));
    }
}
