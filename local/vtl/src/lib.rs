//! A Velocity Template Language (VTL) interpreter that renders API Gateway mapping templates
//! the way API Gateway does: `$context`, `$input`, `$util`, `$stageVariables`, Java-style
//! integer arithmetic, undefined references rendering as the empty string.
//!
//! Pure: no I/O. Parse once with [`Template::parse`], render many times with
//! [`Template::render`].

mod ast;
mod eval;
mod input;
mod java;
mod parser;
mod value;

pub use eval::{MAX_FOREACH_ITERATIONS, MAX_OUTPUT_BYTES, MAX_STEPS};
pub use input::{Params, RenderInput};

/// A parsed template, ready to render any number of times.
#[derive(Debug, Clone)]
pub struct Template {
    /// Kept to turn byte offsets into line and column when rendering fails.
    source: String,
    nodes: Vec<ast::Node>,
}

impl Template {
    /// Parses a template; a syntax error names its line and column.
    pub fn parse(source: &str) -> Result<Template, VtlError> {
        match parser::parse(source) {
            Ok(nodes) => Ok(Template {
                source: source.to_owned(),
                nodes,
            }),
            Err(error) => Err(VtlError::at(source, error.pos, error.message)),
        }
    }

    /// Renders the template with API Gateway's variables taken from `input`. An error
    /// (a Java method that throws, invalid JSON for `$util.parseJson`, the render budget
    /// exceeded) names the line and column of the expression that failed.
    pub fn render(&self, input: &RenderInput) -> Result<String, VtlError> {
        eval::render(&self.nodes, input)
            .map_err(|error| VtlError::at(&self.source, error.pos, error.message))
    }
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
    /// An error at byte offset `pos` of `source`; the column counts characters, from 1.
    fn at(source: &str, pos: usize, message: String) -> VtlError {
        let mut pos = pos.min(source.len());
        while !source.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = source.get(..pos).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
        VtlError {
            line,
            column,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    /// sumu-local parses templates once and shares them between connections.
    #[test]
    fn templates_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<super::Template>();
        shareable::<super::RenderInput>();
        shareable::<super::VtlError>();
    }
}
