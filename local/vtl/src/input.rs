//! What a template is rendered with: the variables API Gateway makes available.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What API Gateway makes available to a mapping template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RenderInput {
    /// The `$context` object (nested: `identity`, `authorizer`).
    pub context: serde_json::Value,
    /// The raw request body (`$input.body`, `$input.json(…)`, `$input.path(…)`).
    pub body: String,
    /// `$stageVariables`.
    pub stage_variables: BTreeMap<String, String>,
    /// `$input.params()`: header, querystring and path parameters.
    pub params: Params,
}

/// The request parameters `$input.params()` exposes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    pub header: BTreeMap<String, String>,
    pub querystring: BTreeMap<String, String>,
    pub path: BTreeMap<String, String>,
}
