//! A Velocity Template Language (VTL) interpreter that renders API Gateway mapping templates
//! the way API Gateway does: `$context`, `$input`, `$util`, `$stageVariables`, Java-style
//! integer arithmetic, undefined references rendering as the empty string.
//!
//! Pure: no I/O. Parse once with [`Template::parse`], render many times with
//! [`Template::render`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// A parsed template, ready to render any number of times.
#[derive(Debug, Clone)]
pub struct Template {
    source_len: usize,
}

impl Template {
    /// Parses a template; a syntax error names its line and column.
    pub fn parse(source: &str) -> Result<Template, VtlError> {
        Ok(Template {
            source_len: source.len(),
        })
    }

    /// Renders the template with API Gateway's variables taken from `input`.
    pub fn render(&self, _input: &RenderInput) -> Result<String, VtlError> {
        let _ = self.source_len;
        Err(VtlError::new(1, 1, "rendering is not implemented yet"))
    }
}

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

/// A template error (syntax or evaluation), with the 1-based position it occurred at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct VtlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl VtlError {
    pub(crate) fn new(line: usize, column: usize, message: impl Into<String>) -> VtlError {
        VtlError {
            line,
            column,
            message: message.into(),
        }
    }
}
