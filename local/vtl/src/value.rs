//! Runtime values, modelled on the Java objects Velocity handles: `Integer`, `Long`,
//! `Double`, `String`, `Boolean`, `ArrayList`, `LinkedHashMap`, and API Gateway's `$input`
//! and `$util`. Lists and maps live in a per-render arena ([`Heap`]) and values refer to them
//! by index, so aliasing (`#set($b = $a)` then `$b.put(…)`) behaves as in Java, and cycles
//! cannot leak: the arena is dropped with the render.

use std::fmt::Write as _;
use std::sync::Arc;

use indexmap::IndexMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(Arc<str>),
    List(usize),
    Map(usize),
    /// API Gateway's `$input`.
    Input,
    /// API Gateway's `$util`.
    Util,
    /// `$foreach` of the loop at this depth (its properties are computed, not stored).
    Loop(usize),
}

impl Value {
    pub fn str(text: impl Into<Arc<str>>) -> Value {
        Value::Str(text.into())
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Long(_) | Value::Double(_))
    }

    /// Velocity's truth: null and `false` are false, everything else is true.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    /// A whole number's value, if this is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(i64::from(*value)),
            Value::Long(value) => Some(*value),
            _ => None,
        }
    }

    /// The smallest of Integer/Long that holds `value` (Velocity widens on overflow).
    pub fn integer(value: i64) -> Value {
        match i32::try_from(value) {
            Ok(int) => Value::Int(int),
            Err(_) => Value::Long(value),
        }
    }
}

/// A `java.util.ArrayList`. Lists that come from a JSON document (`$input.path`,
/// `$util.parseJson`) print as JSON, as API Gateway's JSON arrays do; lists built by the
/// template print Java-style (`[a, b]`).
#[derive(Debug, Clone, Default)]
pub struct List {
    pub items: Vec<Value>,
    pub json: bool,
}

/// A `java.util.LinkedHashMap` with string keys (insertion order).
pub type Map = IndexMap<Arc<str>, Value>;

/// The lists and maps of one render.
#[derive(Debug, Default)]
pub struct Heap {
    pub lists: Vec<List>,
    pub maps: Vec<Map>,
}

/// Printing stops descending at this depth (a cycle through two containers would recurse
/// forever; Java would overflow its stack).
const MAX_PRINT_DEPTH: usize = 64;

#[derive(Debug)]
pub struct TooDeep;

impl Heap {
    pub fn new_list(&mut self, items: Vec<Value>, json: bool) -> Value {
        self.lists.push(List { items, json });
        Value::List(self.lists.len() - 1)
    }

    pub fn new_map(&mut self, map: Map) -> Value {
        self.maps.push(map);
        Value::Map(self.maps.len() - 1)
    }

    pub fn list(&self, id: usize) -> &[Value] {
        self.lists.get(id).map_or(&[], |list| list.items.as_slice())
    }

    pub fn list_mut(&mut self, id: usize) -> Option<&mut Vec<Value>> {
        self.lists.get_mut(id).map(|list| &mut list.items)
    }

    pub fn map(&self, id: usize) -> Option<&Map> {
        self.maps.get(id)
    }

    pub fn map_mut(&mut self, id: usize) -> Option<&mut Map> {
        self.maps.get_mut(id)
    }

    /// Java's `String.valueOf(value)`; null is `"null"` (the caller decides whether a null
    /// reference prints at all).
    pub fn to_java_string(&self, value: &Value) -> Result<String, TooDeep> {
        let mut out = String::new();
        self.write_java(&mut out, value, 0)?;
        Ok(out)
    }

    pub fn write_java(&self, out: &mut String, value: &Value, depth: usize) -> Result<(), TooDeep> {
        if depth > MAX_PRINT_DEPTH {
            return Err(TooDeep);
        }
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Value::Int(value) => {
                let _ = write!(out, "{value}");
            }
            Value::Long(value) => {
                let _ = write!(out, "{value}");
            }
            Value::Double(value) => out.push_str(&java_double(*value)),
            Value::Str(text) => out.push_str(text),
            Value::List(id) => {
                let json = self.lists.get(*id).is_some_and(|list| list.json);
                if json {
                    let json = self.to_json(value, depth)?;
                    out.push_str(&json.to_string());
                } else {
                    out.push('[');
                    for (index, item) in self.list(*id).iter().enumerate() {
                        if index > 0 {
                            out.push_str(", ");
                        }
                        if *item == Value::List(*id) {
                            out.push_str("(this Collection)");
                        } else {
                            self.write_java(out, item, depth + 1)?;
                        }
                    }
                    out.push(']');
                }
            }
            Value::Map(id) => {
                out.push('{');
                if let Some(map) = self.map(*id) {
                    for (index, (key, item)) in map.iter().enumerate() {
                        if index > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(key);
                        out.push('=');
                        if *item == Value::Map(*id) {
                            out.push_str("(this Map)");
                        } else {
                            self.write_java(out, item, depth + 1)?;
                        }
                    }
                }
                out.push('}');
            }
            // The Java objects behind `$input`, `$util` and `$foreach` have no useful text form.
            Value::Input | Value::Util | Value::Loop(_) => {}
        }
        Ok(())
    }

    /// The value as JSON (for JSON arrays and `$input.json`).
    pub fn to_json(&self, value: &Value, depth: usize) -> Result<serde_json::Value, TooDeep> {
        if depth > MAX_PRINT_DEPTH {
            return Err(TooDeep);
        }
        Ok(match value {
            Value::Null | Value::Input | Value::Util | Value::Loop(_) => serde_json::Value::Null,
            Value::Bool(value) => serde_json::Value::Bool(*value),
            Value::Int(value) => (*value).into(),
            Value::Long(value) => (*value).into(),
            Value::Double(value) => serde_json::Number::from_f64(*value)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(text) => serde_json::Value::String(text.to_string()),
            Value::List(id) => serde_json::Value::Array(
                self.list(*id)
                    .iter()
                    .map(|item| self.to_json(item, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(id) => {
                let mut object = serde_json::Map::new();
                if let Some(map) = self.map(*id) {
                    for (key, item) in map {
                        object.insert(key.to_string(), self.to_json(item, depth + 1)?);
                    }
                }
                serde_json::Value::Object(object)
            }
        })
    }

    /// A JSON document as values: objects become maps, arrays JSON-printing lists, integral
    /// numbers Integer or Long, others Double (as API Gateway's JSON parser does).
    pub fn alloc_json(&mut self, json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(value) => Value::Bool(*value),
            serde_json::Value::Number(number) => {
                if let Some(value) = number.as_i64() {
                    Value::integer(value)
                } else {
                    Value::Double(number.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(text) => Value::str(text.as_str()),
            serde_json::Value::Array(items) => {
                let items = items.iter().map(|item| self.alloc_json(item)).collect();
                self.new_list(items, true)
            }
            serde_json::Value::Object(object) => {
                let map = object
                    .iter()
                    .map(|(key, item)| (Arc::from(key.as_str()), self.alloc_json(item)))
                    .collect();
                self.new_map(map)
            }
        }
    }

    /// Java `equals` for values of the same kind (lists and maps compare their contents).
    pub fn java_equals(&self, left: &Value, right: &Value, depth: usize) -> bool {
        if depth > MAX_PRINT_DEPTH {
            return false;
        }
        match (left, right) {
            (Value::List(a), Value::List(b)) => {
                a == b || {
                    let (a, b) = (self.list(*a), self.list(*b));
                    a.len() == b.len()
                        && a.iter()
                            .zip(b)
                            .all(|(x, y)| self.java_equals(x, y, depth + 1))
                }
            }
            (Value::Map(a), Value::Map(b)) => {
                a == b
                    || match (self.map(*a), self.map(*b)) {
                        (Some(a), Some(b)) => {
                            a.len() == b.len()
                                && a.iter().all(|(key, x)| {
                                    b.get(key)
                                        .is_some_and(|y| self.java_equals(x, y, depth + 1))
                                })
                        }
                        _ => false,
                    }
            }
            (Value::Int(_) | Value::Long(_), Value::Int(_) | Value::Long(_)) => {
                left.as_integer() == right.as_integer()
            }
            _ => left == right,
        }
    }
}

/// Java's `Double.toString`: `1.0`, `249.99`, `1.0E10`, `1.0E-5`, `NaN`, `Infinity`.
pub fn java_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .into();
    }
    let magnitude = value.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let text = format!("{value}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        // Shortest round-trip digits in scientific form, with Java's mantissa and exponent.
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}
