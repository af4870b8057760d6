//! Lambda event filtering, as an event source mapping's `filter_criteria` applies it before a
//! batch reaches the function, for the part of the pattern language sumu uses: a pattern is a
//! JSON object whose values are either nested patterns or arrays of exact values, and a record
//! matches when every field the pattern names matches (`{"eventName": ["INSERT", "REMOVE"]}`).
//!
//! The pattern is read from the same file the Terraform module deploys
//! (`mapping-templates/presence-stream-filter.json`), so sumu-local filters exactly what AWS
//! filters. Content filters (`prefix`, `numeric`, `exists`, `anything-but`, …) are refused when
//! the file is loaded rather than silently treated as "match": written by hand here, this stays
//! small, and no crate implements Lambda's (EventBridge-style) pattern language for Rust.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The presence stream's filter, next to `routes.json`.
pub const PRESENCE_STREAM_FILTER_FILE: &str = "presence-stream-filter.json";

#[derive(Debug, Clone, PartialEq)]
pub struct EventFilter {
    pattern: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a filter pattern: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

impl EventFilter {
    /// Reads and checks a pattern file.
    pub fn load(path: &Path) -> Result<EventFilter, FilterError> {
        let text = std::fs::read_to_string(path).map_err(|source| FilterError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        EventFilter::parse(&text).map_err(|problem| FilterError::Invalid {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses a pattern; the error says which part is not supported.
    pub fn parse(text: &str) -> Result<EventFilter, String> {
        let value: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
        let Value::Object(pattern) = value else {
            return Err("a pattern is a JSON object".into());
        };
        check(&pattern, "")?;
        Ok(EventFilter { pattern })
    }

    /// True when `record` (the record's JSON, as the function would receive it) matches.
    pub fn matches(&self, record: &Value) -> bool {
        matches_object(&self.pattern, record)
    }
}

fn check(pattern: &Map<String, Value>, at: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err(format!("empty pattern at `{at}`"));
    }
    for (key, value) in pattern {
        let path = format!("{at}/{key}");
        match value {
            Value::Object(nested) => check(nested, &path)?,
            Value::Array(values) if values.is_empty() => {
                return Err(format!("`{path}` lists no value"));
            }
            Value::Array(values) => {
                if let Some(other) = values
                    .iter()
                    .find(|v| v.is_object() || v.is_array() || v.is_null())
                {
                    return Err(format!(
                        "`{path}`: only exact values are supported by sumu-local, not {other}"
                    ));
                }
            }
            other => {
                return Err(format!(
                    "`{path}` must be an array or an object, not {other}"
                ))
            }
        }
    }
    Ok(())
}

fn matches_object(pattern: &Map<String, Value>, record: &Value) -> bool {
    pattern.iter().all(|(key, expected)| {
        let Some(field) = record.get(key) else {
            return false;
        };
        match expected {
            Value::Object(nested) => matches_object(nested, field),
            Value::Array(values) => values.contains(field),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exact_values_match_top_level_and_nested_fields() {
        let filter = EventFilter::parse(r#"{"eventName": ["INSERT", "REMOVE"]}"#).unwrap();
        assert!(filter.matches(&json!({"eventName": "INSERT", "dynamodb": {}})));
        assert!(filter.matches(&json!({"eventName": "REMOVE"})));
        assert!(!filter.matches(&json!({"eventName": "MODIFY"})));
        assert!(!filter.matches(&json!({"dynamodb": {}})));

        let nested =
            EventFilter::parse(r#"{"dynamodb": {"StreamViewType": ["KEYS_ONLY"]}}"#).unwrap();
        assert!(nested.matches(&json!({"dynamodb": {"StreamViewType": "KEYS_ONLY"}})));
        assert!(!nested.matches(&json!({"dynamodb": {"StreamViewType": "NEW_IMAGE"}})));
        assert!(!nested.matches(&json!({"dynamodb": "KEYS_ONLY"})));
    }

    #[test]
    fn unsupported_patterns_are_refused_not_ignored() {
        for pattern in [
            "[]",
            "{}",
            r#"{"eventName": "INSERT"}"#,
            r#"{"eventName": []}"#,
            r#"{"eventName": [{"prefix": "IN"}]}"#,
            r#"{"eventName": [null]}"#,
            r#"{"dynamodb": {}}"#,
            "not json",
        ] {
            assert!(EventFilter::parse(pattern).is_err(), "{pattern}");
        }
    }

    #[test]
    fn the_deployed_presence_filter_keeps_inserts_and_removals_only() {
        let path = crate::config::default_templates_dir().join(PRESENCE_STREAM_FILTER_FILE);
        let filter = EventFilter::load(&path).unwrap();
        for (name, kept) in [("INSERT", true), ("REMOVE", true), ("MODIFY", false)] {
            assert_eq!(filter.matches(&json!({"eventName": name})), kept, "{name}");
        }
    }
}
