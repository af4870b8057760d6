//! The Java methods templates call on strings, lists, maps, numbers and booleans. A method
//! that does not exist (or gets arguments of the wrong kind) gives null, as in Velocity; a
//! method that throws in Java (index out of range, bad regex) is a render error, as it makes
//! API Gateway fail the request.

use std::sync::Arc;

use crate::eval::{list_slot, RenderError, Renderer, Result};
use crate::java;
use crate::value::Value;

fn error<T>(pos: usize, message: impl Into<String>) -> Result<T> {
    Err(RenderError {
        pos,
        message: message.into(),
    })
}

fn integer_arg(value: Option<&Value>) -> Option<i64> {
    value.and_then(Value::as_integer)
}

fn int_value(value: i64) -> Value {
    Value::integer(value)
}

pub fn call(
    r: &mut Renderer,
    target: Value,
    name: &str,
    args: &[Value],
    pos: usize,
) -> Result<Value> {
    // Methods every Java object has.
    match (name, args) {
        ("toString", []) => return Ok(Value::str(r.java_string(&target, pos)?)),
        ("equals", [other]) => {
            let same = match (&target, other) {
                (a, b) if a.is_number() && b.is_number() => {
                    // Integer.equals(Long) is false in Java.
                    std::mem::discriminant(a) == std::mem::discriminant(b) && a == b
                }
                _ => r.heap.java_equals(&target, other, 0),
            };
            return Ok(Value::Bool(same));
        }
        _ => {}
    }
    match target {
        Value::Str(text) => string_method(r, &text, name, args, pos),
        Value::List(id) => list_method(r, id, name, args, pos),
        Value::Map(id) => map_method(r, id, name, args, pos),
        Value::Int(_) | Value::Long(_) | Value::Double(_) => Ok(number_method(&target, name, args)),
        Value::Bool(value) if name == "booleanValue" && args.is_empty() => Ok(Value::Bool(value)),
        _ => Ok(Value::Null),
    }
}

fn string_arg(args: &[Value], index: usize) -> Option<&str> {
    match args.get(index) {
        Some(Value::Str(text)) => Some(text),
        _ => None,
    }
}

fn string_method(
    r: &mut Renderer,
    text: &str,
    name: &str,
    args: &[Value],
    pos: usize,
) -> Result<Value> {
    let first = string_arg(args, 0);
    let second = string_arg(args, 1);
    let java_error = |message: String| error(pos, format!("{name}: {message}"));
    // Work proportional to the string's length is paid for up front: a byte per step for
    // regular expressions (the slowest), a step per 64 bytes otherwise.
    let regex_method = matches!(name, "replaceAll" | "replaceFirst" | "matches" | "split");
    let cost = if regex_method {
        text.len()
    } else {
        text.len() / 64
    };
    r.spend(pos, cost as u64 + 1)?;
    Ok(match (name, args.len()) {
        ("length", 0) => int_value(text.encode_utf16().count() as i64),
        ("isEmpty", 0) => Value::Bool(text.is_empty()),
        ("toLowerCase", 0) => Value::str(text.to_lowercase()),
        ("toUpperCase", 0) => Value::str(text.to_uppercase()),
        ("trim", 0) => Value::str(java::trim(text)),
        ("contains", 1) => match first {
            Some(needle) => Value::Bool(text.contains(needle)),
            None => Value::Null,
        },
        ("startsWith", 1) => first.map_or(Value::Null, |p| Value::Bool(text.starts_with(p))),
        ("endsWith", 1) => first.map_or(Value::Null, |p| Value::Bool(text.ends_with(p))),
        ("equalsIgnoreCase", 1) => first.map_or(Value::Bool(false), |other| {
            Value::Bool(text.to_lowercase() == other.to_lowercase())
        }),
        ("indexOf", 1 | 2) => match (first, args.get(1)) {
            (Some(needle), None) => int_value(java::index_of(text, needle, 0)),
            (Some(needle), Some(from)) => match from.as_integer() {
                Some(from) => int_value(java::index_of(text, needle, from)),
                None => Value::Null,
            },
            _ => Value::Null,
        },
        ("lastIndexOf", 1) => {
            first.map_or(Value::Null, |n| int_value(java::last_index_of(text, n)))
        }
        ("substring", 1 | 2) => {
            let Some(begin) = integer_arg(args.first()) else {
                return Ok(Value::Null);
            };
            let end = match args.get(1) {
                Some(end) => match end.as_integer() {
                    Some(end) => Some(end),
                    None => return Ok(Value::Null),
                },
                None => None,
            };
            match java::substring(text, begin, end) {
                Ok(part) => Value::str(part),
                Err(message) => return java_error(message),
            }
        }
        ("charAt", 1) => {
            let Some(index) = integer_arg(args.first()) else {
                return Ok(Value::Null);
            };
            match java::substring(text, index, Some(index.saturating_add(1))) {
                Ok(part) => Value::str(part),
                Err(message) => return java_error(message),
            }
        }
        ("concat", 1) => first.map_or(Value::Null, |other| Value::str(format!("{text}{other}"))),
        ("replace", 2) => match (first, second) {
            (Some(from), Some(to)) => {
                let replaced = if from.is_empty() {
                    // Java inserts the replacement between every character.
                    let mut out = String::from(to);
                    for c in text.chars() {
                        out.push(c);
                        out.push_str(to);
                    }
                    out
                } else {
                    text.replace(from, to)
                };
                r.spend(pos, (replaced.len() / 1024) as u64)?;
                if replaced.len() > crate::eval::MAX_OUTPUT_BYTES {
                    return java_error("result too large".into());
                }
                Value::str(replaced)
            }
            _ => Value::Null,
        },
        ("replaceAll" | "replaceFirst", 2) => match (first, second) {
            (Some(pattern), Some(replacement)) => {
                let result = if name == "replaceAll" {
                    java::replace_all(text, pattern, replacement)
                } else {
                    java::replace_first(text, pattern, replacement)
                };
                match result {
                    Ok(replaced) if replaced.len() <= crate::eval::MAX_OUTPUT_BYTES => {
                        r.spend(pos, (replaced.len() / 1024) as u64)?;
                        Value::str(replaced)
                    }
                    Ok(_) => return java_error("result too large".into()),
                    Err(message) => return java_error(message),
                }
            }
            _ => Value::Null,
        },
        ("matches", 1) => match first {
            Some(pattern) => match java::regex(&format!("^(?:{pattern})$")) {
                Ok(regex) => Value::Bool(regex.is_match(text)),
                Err(message) => return java_error(message),
            },
            None => Value::Null,
        },
        ("split", 1) => match first {
            Some(pattern) => match java::split(text, pattern) {
                Ok(parts) => {
                    r.spend(pos, parts.len() as u64)?;
                    let parts = parts.into_iter().map(Value::str).collect();
                    r.heap.new_list(parts, false)
                }
                Err(message) => return java_error(message),
            },
            None => Value::Null,
        },
        ("compareTo", 1) => first.map_or(Value::Null, |other| int_value(java_compare(text, other))),
        _ => Value::Null,
    })
}

/// `String.compareTo`: the difference of the first differing UTF-16 units, else of lengths.
fn java_compare(a: &str, b: &str) -> i64 {
    let (a, b) = (java::utf16(a), java::utf16(b));
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            return i64::from(*x) - i64::from(*y);
        }
    }
    a.len() as i64 - b.len() as i64
}

fn list_method(
    r: &mut Renderer,
    id: usize,
    name: &str,
    args: &[Value],
    pos: usize,
) -> Result<Value> {
    let length = r.heap.list(id).len();
    let out_of_range = |index: &Value| {
        let index = index
            .as_integer()
            .map_or_else(|| "?".to_owned(), |i| i.to_string());
        error(
            pos,
            format!("{name}: index {index} out of bounds for length {length}"),
        )
    };
    Ok(match (name, args) {
        ("size", []) => int_value(length as i64),
        ("isEmpty", []) => Value::Bool(length == 0),
        ("get", [index]) => {
            let Some(i) = index.as_integer() else {
                return Ok(Value::Null);
            };
            match usize::try_from(i).ok().and_then(|i| r.heap.list(id).get(i)) {
                Some(item) => item.clone(),
                None => return out_of_range(index),
            }
        }
        ("contains", [item]) => {
            let found = r
                .heap
                .list(id)
                .iter()
                .any(|x| r.heap.java_equals(x, item, 0));
            Value::Bool(found)
        }
        ("indexOf", [item]) => {
            let found = r
                .heap
                .list(id)
                .iter()
                .position(|x| r.heap.java_equals(x, item, 0));
            int_value(found.map_or(-1, |i| i as i64))
        }
        ("add", [item]) => {
            r.spend(pos, 1)?;
            if let Some(items) = r.heap.list_mut(id) {
                items.push(item.clone());
            }
            // `List.add` returns true, which a bare `$list.add(…)` prints.
            Value::Bool(true)
        }
        ("add", [index, item]) => {
            let slot = index.as_integer().and_then(|i| usize::try_from(i).ok());
            match (slot, r.heap.list_mut(id)) {
                (Some(slot), Some(items)) if slot <= items.len() => {
                    items.insert(slot, item.clone());
                    Value::Null
                }
                _ => return out_of_range(index),
            }
        }
        ("addAll", [Value::List(other)]) => {
            let extra = r.heap.list(*other).to_vec();
            r.spend(pos, extra.len() as u64)?;
            if let Some(items) = r.heap.list_mut(id) {
                items.extend(extra);
            }
            Value::Bool(true)
        }
        ("set", [index, item]) => {
            match list_slot(length, index).filter(|_| index.as_integer() >= Some(0)) {
                Some(slot) => match r.heap.list_mut(id).and_then(|items| items.get_mut(slot)) {
                    Some(existing) => std::mem::replace(existing, item.clone()),
                    None => Value::Null,
                },
                None => return out_of_range(index),
            }
        }
        ("remove", [index]) if index.as_integer().is_some() => {
            match index
                .as_integer()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < length)
            {
                Some(slot) => r
                    .heap
                    .list_mut(id)
                    .map(|items| items.remove(slot))
                    .unwrap_or(Value::Null),
                None => return out_of_range(index),
            }
        }
        ("clear", []) => {
            if let Some(items) = r.heap.list_mut(id) {
                items.clear();
            }
            Value::Null
        }
        _ => Value::Null,
    })
}

fn map_method(
    r: &mut Renderer,
    id: usize,
    name: &str,
    args: &[Value],
    pos: usize,
) -> Result<Value> {
    let key = match args.first() {
        Some(key) => Some(Arc::<str>::from(r.java_string(key, pos)?)),
        None => None,
    };
    let Some(map) = r.heap.map(id) else {
        return Ok(Value::Null);
    };
    Ok(match (name, args.len(), key) {
        ("size", 0, _) => int_value(map.len() as i64),
        ("isEmpty", 0, _) => Value::Bool(map.is_empty()),
        ("get", 1, Some(key)) => map.get(&key).cloned().unwrap_or(Value::Null),
        ("containsKey", 1, Some(key)) => Value::Bool(map.contains_key(&key)),
        ("containsValue", 1, _) => {
            let wanted = args.first().cloned().unwrap_or(Value::Null);
            Value::Bool(map.values().any(|x| r.heap.java_equals(x, &wanted, 0)))
        }
        ("keySet", 0, _) => {
            let keys = map.keys().map(|key| Value::Str(key.clone())).collect();
            r.heap.new_list(keys, false)
        }
        ("values", 0, _) => {
            let values = map.values().cloned().collect();
            r.heap.new_list(values, false)
        }
        ("entrySet", 0, _) => {
            let entries: Vec<(Arc<str>, Value)> =
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            r.spend(pos, entries.len() as u64)?;
            let entries = entries
                .into_iter()
                .map(|(key, value)| {
                    let mut entry = crate::value::Map::new();
                    entry.insert(Arc::from("key"), Value::Str(key));
                    entry.insert(Arc::from("value"), value);
                    r.heap.new_map(entry)
                })
                .collect();
            r.heap.new_list(entries, false)
        }
        ("put", 2, Some(key)) => {
            r.spend(pos, 1)?;
            let value = args.get(1).cloned().unwrap_or(Value::Null);
            r.heap
                .map_mut(id)
                .and_then(|map| map.insert(key, value))
                .unwrap_or(Value::Null)
        }
        ("putAll", 1, _) => {
            if let Some(Value::Map(other)) = args.first() {
                let entries: Vec<(Arc<str>, Value)> = r
                    .heap
                    .map(*other)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                r.spend(pos, entries.len() as u64)?;
                if let Some(map) = r.heap.map_mut(id) {
                    map.extend(entries);
                }
            }
            Value::Null
        }
        ("remove", 1, Some(key)) => r
            .heap
            .map_mut(id)
            .and_then(|map| map.shift_remove(&key))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

fn number_method(target: &Value, name: &str, args: &[Value]) -> Value {
    if !args.is_empty() {
        return Value::Null;
    }
    match (name, target) {
        ("intValue", Value::Int(v)) => Value::Int(*v),
        ("intValue", Value::Long(v)) => Value::Int(*v as i32),
        ("intValue", Value::Double(v)) => Value::Int(*v as i32),
        ("longValue", Value::Int(v)) => Value::Long(i64::from(*v)),
        ("longValue", Value::Long(v)) => Value::Long(*v),
        ("longValue", Value::Double(v)) => Value::Long(*v as i64),
        ("doubleValue", Value::Int(v)) => Value::Double(f64::from(*v)),
        ("doubleValue", Value::Long(v)) => Value::Double(*v as f64),
        ("doubleValue", Value::Double(v)) => Value::Double(*v),
        _ => Value::Null,
    }
}
