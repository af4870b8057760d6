//! API Gateway's template objects: `$input` (body, JSONPath, parameters) and `$util`.

use std::sync::Arc;

use base64::Engine as _;

use crate::eval::{RenderError, Renderer, Result};
use crate::java;
use crate::value::{Map, Value};

fn error<T>(pos: usize, message: impl Into<String>) -> Result<T> {
    Err(RenderError {
        pos,
        message: message.into(),
    })
}

/// `$input.json(path)`, `$input.path(path)`, `$input.params()`, `$input.params(name)`.
pub fn input_method(r: &mut Renderer, name: &str, args: &[Value], pos: usize) -> Result<Value> {
    match (name, args) {
        ("json", [path]) => {
            let path = r.java_string(path, pos)?;
            let found = select(r, &path, pos)?;
            // A path that matches nothing renders as the empty string.
            Ok(match found {
                Some(json) => Value::str(json.to_string()),
                None => Value::str(""),
            })
        }
        ("path", [path]) => {
            let path = r.java_string(path, pos)?;
            match select(r, &path, pos)? {
                Some(json) => Ok(r.heap.alloc_json(&json)),
                None => Ok(Value::Null),
            }
        }
        ("params", []) => {
            let input = r.input;
            let params = &input.params;
            let mut all = Map::new();
            for (kind, values) in [
                ("path", &params.path),
                ("querystring", &params.querystring),
                ("header", &params.header),
            ] {
                let map: Map = values
                    .iter()
                    .map(|(key, value)| (Arc::from(key.as_str()), Value::str(value.as_str())))
                    .collect();
                let map = r.heap.new_map(map);
                all.insert(Arc::from(kind), map);
            }
            Ok(r.heap.new_map(all))
        }
        ("params", [name]) => {
            // Path, then query string, then header, as API Gateway documents.
            let name = r.java_string(name, pos)?;
            let input = r.input;
            let params = &input.params;
            let found = [&params.path, &params.querystring, &params.header]
                .into_iter()
                .find_map(|values| values.get(&name));
            Ok(Value::str(found.map_or("", String::as_str)))
        }
        _ => Ok(Value::Null),
    }
}

/// `$util.escapeJavaScript`, `parseJson`, `urlEncode`, `urlDecode`, `base64Encode`,
/// `base64Decode`. A null argument gives null.
pub fn util_method(r: &mut Renderer, name: &str, args: &[Value], pos: usize) -> Result<Value> {
    let [arg] = args else {
        return Ok(Value::Null);
    };
    if *arg == Value::Null {
        return Ok(Value::Null);
    }
    let text = r.java_string(arg, pos)?;
    Ok(match name {
        "escapeJavaScript" => Value::str(java::escape_javascript(&text)),
        "urlEncode" => Value::str(java::url_encode(&text)),
        "urlDecode" => match java::url_decode(&text) {
            Ok(decoded) => Value::str(decoded),
            Err(message) => return error(pos, format!("$util.urlDecode: {message}")),
        },
        "base64Encode" => Value::str(base64::engine::general_purpose::STANDARD.encode(text)),
        "base64Decode" => match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) => Value::str(String::from_utf8_lossy(&bytes).into_owned()),
            Err(cause) => return error(pos, format!("$util.base64Decode: {cause}")),
        },
        "parseJson" => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(json) => {
                r.spend(pos, (text.len() / 64) as u64)?;
                r.heap.alloc_json(&json)
            }
            Err(cause) => return error(pos, format!("$util.parseJson: invalid JSON: {cause}")),
        },
        _ => Value::Null,
    })
}

/// Evaluates a JSONPath on the request body; `None` when the body is not JSON or nothing
/// matches.
fn select(r: &mut Renderer, path: &str, pos: usize) -> Result<Option<serde_json::Value>> {
    let segments = match parse_path(path) {
        Ok(segments) => segments,
        Err(message) => return error(pos, format!("JSONPath `{path}`: {message}")),
    };
    if r.body.is_none() {
        let parsed = serde_json::from_str(&r.input.body).ok();
        r.spend(pos, (r.input.body.len() / 64) as u64)?;
        r.body = Some(parsed);
    }
    let Some(Some(mut current)) = r.body.as_ref().map(Option::as_ref) else {
        return Ok(None);
    };
    for segment in &segments {
        let next = match (segment, current) {
            (Segment::Key(key), serde_json::Value::Object(object)) => object.get(key.as_str()),
            (Segment::Index(index), serde_json::Value::Array(items)) => {
                let length = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let index = if *index < 0 { length + index } else { *index };
                usize::try_from(index).ok().and_then(|i| items.get(i))
            }
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current.clone()))
}

#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(i64),
}

/// The JSONPath subset templates use: `$`, `.key`, `['key']`, `["key"]`, `[index]`.
fn parse_path(path: &str) -> std::result::Result<Vec<Segment>, String> {
    let path = path.trim();
    let mut rest = path
        .strip_prefix('$')
        .ok_or_else(|| "must start with $".to_owned())?;
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = after.get(..end).unwrap_or("");
            if key.is_empty() || key == "*" || after.starts_with('.') {
                return Err("wildcards, deep scans and empty keys are not supported".into());
            }
            segments.push(Segment::Key(key.to_owned()));
            rest = after.get(end..).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or("missing ]")?;
            let inside = after.get(..end).unwrap_or("").trim();
            let quoted = inside
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            match quoted {
                Some(key) => segments.push(Segment::Key(key.to_owned())),
                None => match inside.parse::<i64>() {
                    Ok(index) => segments.push(Segment::Index(index)),
                    Err(_) => return Err(format!("unsupported selector [{inside}]")),
                },
            }
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            return Err(format!("unexpected `{rest}`"));
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert_eq!(
            parse_path("$.a['b c'][2][\"d\"]").unwrap(),
            vec![
                Segment::Key("a".into()),
                Segment::Key("b c".into()),
                Segment::Index(2),
                Segment::Key("d".into())
            ]
        );
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$..a").is_err());
        assert!(parse_path("$.a[*]").is_err());
        assert!(parse_path("$[").is_err());
    }
}
