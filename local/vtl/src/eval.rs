//! Renders a syntax tree with Velocity 1.7 semantics as API Gateway applies them:
//! undefined references print nothing, `#set` with a null value leaves the variable
//! unchanged, integer arithmetic is Java's (`int` widening to `long` on overflow, division
//! truncating), `#foreach` stops after 1,000 iterations.
//!
//! Every render has a budget (steps, output size, string size, collection elements), so
//! any template on any input ends, with an error if it would exceed the budget.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ast::{BinaryOp, Expr, Node, Reference, Step};
use crate::input::RenderInput;
use crate::value::{Heap, Map, Value};

// The built-in methods (`$input`, `$util`, and Java's on strings, lists and maps) are the
// evaluator's own parts: they call back into the renderer (its budget, Java's `toString`), so
// they live inside it rather than beside it.
mod apigw;
mod methods;

/// API Gateway's documented quota: "Number of iterations in a #foreach … #end loop in
/// mapping templates: 1,000". Velocity's `directive.foreach.maxloops` ends the loop there.
pub const MAX_FOREACH_ITERATIONS: usize = 1_000;
/// API Gateway's payload limit is 10 MB; no rendered body can usefully be larger.
pub const MAX_OUTPUT_BYTES: usize = 10 * 1024 * 1024;
/// Evaluation steps (nodes, expressions, collection elements) per render.
/// A legitimate template takes a few thousand; a million keeps the worst case in the tens of
/// milliseconds.
pub const MAX_STEPS: u64 = 1_000_000;

/// An evaluation error at a byte offset of the source.
#[derive(Debug)]
pub struct RenderError {
    pub pos: usize,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, RenderError>;

fn error<T>(pos: usize, message: impl Into<String>) -> Result<T> {
    Err(RenderError {
        pos,
        message: message.into(),
    })
}

/// Where a `#foreach` loop is: `$foreach.index`, `.count`, `.hasNext`, `.first`, `.last`.
#[derive(Debug, Clone, Copy)]
struct LoopState {
    index: usize,
    total: usize,
}

/// What a rendered node asks of its enclosing nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Stop,
}

pub struct Renderer<'a> {
    pub(crate) input: &'a RenderInput,
    pub(crate) heap: Heap,
    vars: HashMap<String, Value>,
    /// The running `#foreach` loops, innermost last (what `$foreach` describes).
    loops: Vec<LoopState>,
    steps: u64,
    /// The parsed request body, parsed on first use (`None` inside: not JSON).
    pub(crate) body: Option<Option<serde_json::Value>>,
}

pub fn render(nodes: &[Node], input: &RenderInput) -> Result<String> {
    let mut renderer = Renderer::new(input);
    let mut out = String::new();
    renderer.nodes(nodes, &mut out)?;
    Ok(out)
}

impl<'a> Renderer<'a> {
    fn new(input: &'a RenderInput) -> Renderer<'a> {
        let mut heap = Heap::default();
        let mut vars = HashMap::new();
        let context = heap.alloc_json(&input.context);
        let context = if context == Value::Null {
            heap.new_map(Map::new())
        } else {
            context
        };
        vars.insert("context".to_owned(), context);
        let stage_variables = input
            .stage_variables
            .iter()
            .map(|(key, value)| (Arc::from(key.as_str()), Value::str(value.as_str())))
            .collect();
        vars.insert("stageVariables".to_owned(), heap.new_map(stage_variables));
        vars.insert("input".to_owned(), Value::Input);
        vars.insert("util".to_owned(), Value::Util);
        Renderer {
            input,
            heap,
            vars,
            loops: Vec::new(),
            steps: 0,
            body: None,
        }
    }

    /// Counts `cost` steps against the render's budget.
    pub(crate) fn spend(&mut self, pos: usize, cost: u64) -> Result<()> {
        self.steps = self.steps.saturating_add(cost);
        if self.steps > MAX_STEPS {
            return error(
                pos,
                format!("template exceeds the evaluation budget of {MAX_STEPS} steps"),
            );
        }
        Ok(())
    }

    pub(crate) fn java_string(&self, value: &Value, pos: usize) -> Result<String> {
        self.heap
            .to_java_string(value)
            .or_else(|_| error(pos, "value nested too deeply (or cyclic) to print"))
    }

    fn write(&mut self, out: &mut String, text: &str, pos: usize) -> Result<()> {
        if out.len() + text.len() > MAX_OUTPUT_BYTES {
            return error(
                pos,
                format!("rendered output exceeds {MAX_OUTPUT_BYTES} bytes"),
            );
        }
        out.push_str(text);
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node], out: &mut String) -> Result<Flow> {
        for node in nodes {
            let flow = self.node(node, out)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, node: &Node, out: &mut String) -> Result<Flow> {
        match node {
            Node::Text(text) => {
                self.spend(0, 1)?;
                self.write(out, text, 0)?;
            }
            Node::Reference(reference) => {
                let value = self.reference(reference)?;
                if value != Value::Null {
                    let text = self.java_string(&value, reference.pos)?;
                    self.write(out, &text, reference.pos)?;
                }
            }
            Node::Set { target, value } => self.set(target, value)?,
            Node::If {
                branches,
                otherwise,
            } => {
                for (condition, body) in branches {
                    if self.expr(condition)?.truthy() {
                        return self.nodes(body, out);
                    }
                }
                if let Some(body) = otherwise {
                    return self.nodes(body, out);
                }
            }
            Node::Foreach {
                var,
                iterable,
                body,
            } => return self.foreach(var, iterable, body, out),
            Node::Break => return Ok(Flow::Break),
            Node::Stop => return Ok(Flow::Stop),
        }
        Ok(Flow::Normal)
    }

    fn set(&mut self, target: &Reference, value: &Expr) -> Result<()> {
        let value = self.expr(value)?;
        // Velocity 1.7 (`directive.set.null.allowed = false`): a null right-hand side leaves
        // the left-hand side as it was.
        if value == Value::Null {
            return Ok(());
        }
        let Some((last, path)) = target.steps.split_last() else {
            self.vars.insert(target.root.clone(), value);
            return Ok(());
        };
        let container = self.walk(target.root_value(&self.vars), path, target.pos)?;
        match (container, last) {
            (Value::Map(id), Step::Property(key)) => {
                if let Some(map) = self.heap.map_mut(id) {
                    map.insert(Arc::from(key.as_str()), value);
                }
            }
            (Value::Map(id), Step::Index(index)) => {
                let key = self.expr(index)?;
                let key: Arc<str> = self.java_string(&key, target.pos)?.into();
                if let Some(map) = self.heap.map_mut(id) {
                    map.insert(key, value);
                }
            }
            (Value::List(id), Step::Index(index)) => {
                let index = self.expr(index)?;
                if let Some(items) = self.heap.list_mut(id) {
                    if let Some(slot) =
                        list_slot(items.len(), &index).and_then(|i| items.get_mut(i))
                    {
                        *slot = value;
                    }
                }
            }
            // Velocity logs an invalid assignment target and renders on.
            _ => {}
        }
        Ok(())
    }

    fn foreach(
        &mut self,
        var: &str,
        iterable: &Expr,
        body: &[Node],
        out: &mut String,
    ) -> Result<Flow> {
        let items: Vec<Value> = match self.expr(iterable)? {
            Value::List(id) => self
                .heap
                .list(id)
                .iter()
                .take(MAX_FOREACH_ITERATIONS)
                .cloned()
                .collect(),
            // Velocity iterates a map's values.
            Value::Map(id) => self
                .heap
                .map(id)
                .map(|map| map.values().take(MAX_FOREACH_ITERATIONS).cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let saved: Vec<(&str, Option<Value>)> =
            [var, "foreach", "velocityCount", "velocityHasNext"]
                .into_iter()
                .map(|name| (name, self.vars.get(name).cloned()))
                .collect();
        let total = items.len().min(MAX_FOREACH_ITERATIONS);
        let mut flow = Flow::Normal;
        let depth = self.loops.len();
        self.loops.push(LoopState { index: 0, total });
        for (index, item) in items.into_iter().take(total).enumerate() {
            self.spend(0, 1)?;
            let has_next = index + 1 < total;
            let count = Value::integer(i64::try_from(index + 1).unwrap_or(i64::MAX));
            if let Some(state) = self.loops.get_mut(depth) {
                state.index = index;
            }
            self.vars.insert("foreach".to_owned(), Value::Loop(depth));
            self.vars.insert("velocityCount".to_owned(), count);
            self.vars
                .insert("velocityHasNext".to_owned(), Value::Bool(has_next));
            self.vars.insert(var.to_owned(), item);
            match self.nodes(body, out)? {
                Flow::Normal => {}
                Flow::Break => break,
                Flow::Stop => {
                    flow = Flow::Stop;
                    break;
                }
            }
        }
        self.loops.truncate(depth);
        for (name, value) in saved {
            match value {
                Some(value) => self.vars.insert(name.to_owned(), value),
                None => self.vars.remove(name),
            };
        }
        Ok(flow)
    }

    pub(crate) fn reference(&mut self, reference: &Reference) -> Result<Value> {
        self.spend(reference.pos, 1)?;
        let root = reference.root_value(&self.vars);
        self.walk(root, &reference.steps, reference.pos)
    }

    fn walk(&mut self, mut value: Value, steps: &[Step], pos: usize) -> Result<Value> {
        for step in steps {
            if value == Value::Null {
                return Ok(Value::Null);
            }
            value = match step {
                Step::Property(name) => self.property(&value, name),
                Step::Method { name, args, pos } => {
                    let mut values = Vec::with_capacity(args.len());
                    for arg in args {
                        values.push(self.expr(arg)?);
                    }
                    self.spend(*pos, 1)?;
                    self.call(value, name, values, *pos)?
                }
                Step::Index(index) => {
                    let index = self.expr(index)?;
                    self.spend(pos, 1)?;
                    self.index(&value, &index, pos)?
                }
            };
        }
        Ok(value)
    }

    /// `$x.name`: a map entry, or a bean property (`isEmpty()` as `.empty`, `$input.body`).
    fn property(&mut self, value: &Value, name: &str) -> Value {
        match value {
            Value::Loop(depth) => {
                let Some(state) = self.loops.get(*depth) else {
                    return Value::Null;
                };
                let position = |n: usize| Value::integer(i64::try_from(n).unwrap_or(i64::MAX));
                match name {
                    "index" => position(state.index),
                    "count" => position(state.index + 1),
                    "hasNext" => Value::Bool(state.index + 1 < state.total),
                    "first" => Value::Bool(state.index == 0),
                    "last" => Value::Bool(state.index + 1 == state.total),
                    "parent" if *depth > 0 => Value::Loop(depth - 1),
                    _ => Value::Null,
                }
            }
            Value::Map(id) => self
                .heap
                .map(*id)
                .and_then(|map| map.get(name))
                .cloned()
                .unwrap_or(Value::Null),
            Value::Input if name == "body" => Value::str(self.input.body.as_str()),
            Value::Str(text) if name == "empty" => Value::Bool(text.is_empty()),
            Value::List(id) if name == "empty" => Value::Bool(self.heap.list(*id).is_empty()),
            _ => Value::Null,
        }
    }

    fn index(&mut self, value: &Value, index: &Value, pos: usize) -> Result<Value> {
        Ok(match value {
            Value::List(id) => {
                let items = self.heap.list(*id);
                list_slot(items.len(), index)
                    .and_then(|i| items.get(i))
                    .cloned()
                    .unwrap_or(Value::Null)
            }
            Value::Map(id) => {
                let key = self.java_string(index, pos)?;
                self.heap
                    .map(*id)
                    .and_then(|map| map.get(key.as_str()))
                    .cloned()
                    .unwrap_or(Value::Null)
            }
            _ => Value::Null,
        })
    }

    pub(crate) fn expr(&mut self, expr: &Expr) -> Result<Value> {
        Ok(match expr {
            Expr::Null => Value::Null,
            Expr::Bool(value) => Value::Bool(*value),
            Expr::Int(value) => Value::Int(*value),
            Expr::Long(value) => Value::Long(*value),
            Expr::Double(value) => Value::Double(*value),
            Expr::Str(text) => Value::Str(text.clone()),
            Expr::Interpolated(nodes) => {
                let mut text = String::new();
                self.nodes(nodes, &mut text)?;
                Value::str(text)
            }
            Expr::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.expr(item)?);
                }
                self.spend(0, values.len() as u64)?;
                self.heap.new_list(values, false)
            }
            Expr::Range(from, to, pos) => {
                let from = self.expr(from)?;
                let to = self.expr(to)?;
                let (Some(from), Some(to)) = (from.as_integer(), to.as_integer()) else {
                    return Ok(Value::Null);
                };
                let length = from.abs_diff(to).saturating_add(1);
                self.spend(*pos, length)?;
                let values = if from <= to {
                    (from..=to).map(Value::integer).collect()
                } else {
                    (to..=from).rev().map(Value::integer).collect()
                };
                self.heap.new_list(values, false)
            }
            Expr::Map(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    let key = self.expr(key)?;
                    let key = self.java_string(&key, 0)?;
                    let value = self.expr(value)?;
                    map.insert(Arc::from(key), value);
                }
                self.spend(0, map.len() as u64)?;
                self.heap.new_map(map)
            }
            Expr::Reference(reference) => self.reference(reference)?,
            Expr::Not(inner) => Value::Bool(!self.expr(inner)?.truthy()),
            Expr::Negate(inner, pos) => match self.expr(inner)? {
                Value::Int(value) => Value::integer(-i64::from(value)),
                Value::Long(value) => match value.checked_neg() {
                    Some(negated) => Value::Long(negated),
                    None => return error(*pos, "long overflow"),
                },
                Value::Double(value) => Value::Double(-value),
                _ => Value::Null,
            },
            Expr::Binary(op, left, right, pos) => self.binary(*op, left, right, *pos)?,
        })
    }

    fn binary(&mut self, op: BinaryOp, left: &Expr, right: &Expr, pos: usize) -> Result<Value> {
        self.spend(pos, 1)?;
        match op {
            BinaryOp::And => {
                let value = self.expr(left)?.truthy() && self.expr(right)?.truthy();
                return Ok(Value::Bool(value));
            }
            BinaryOp::Or => {
                let value = self.expr(left)?.truthy() || self.expr(right)?.truthy();
                return Ok(Value::Bool(value));
            }
            _ => {}
        }
        let left = self.expr(left)?;
        let right = self.expr(right)?;
        match op {
            BinaryOp::Eq => Ok(Value::Bool(self.equals(&left, &right, pos)?)),
            BinaryOp::Ne => Ok(Value::Bool(!self.equals(&left, &right, pos)?)),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                // Velocity compares numbers only; anything else is logged and false.
                let Some(ordering) = compare_numbers(&left, &right) else {
                    return Ok(Value::Bool(false));
                };
                Ok(Value::Bool(match op {
                    BinaryOp::Lt => ordering.is_lt(),
                    BinaryOp::Le => ordering.is_le(),
                    BinaryOp::Gt => ordering.is_gt(),
                    _ => ordering.is_ge(),
                }))
            }
            BinaryOp::Add if !left.is_number() || !right.is_number() => {
                // Velocity concatenates when either side is a string; null poisons the sum.
                if matches!(left, Value::Str(_)) || matches!(right, Value::Str(_)) {
                    if left == Value::Null || right == Value::Null {
                        return Ok(Value::Null);
                    }
                    let mut text = self.java_string(&left, pos)?;
                    text.push_str(&self.java_string(&right, pos)?);
                    if text.len() > MAX_OUTPUT_BYTES {
                        return error(pos, format!("string exceeds {MAX_OUTPUT_BYTES} bytes"));
                    }
                    self.spend(pos, (text.len() / 1024) as u64)?;
                    Ok(Value::str(text))
                } else {
                    Ok(Value::Null)
                }
            }
            _ => arithmetic(op, &left, &right, pos),
        }
    }

    /// Velocity's `==`: numbers by value, same-kind values by `equals`, otherwise by their
    /// text (`1 == "1"` is true); null equals only null.
    fn equals(&self, left: &Value, right: &Value, pos: usize) -> Result<bool> {
        Ok(match (left, right) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            _ if left.is_number() && right.is_number() => {
                compare_numbers(left, right).is_some_and(|ordering| ordering.is_eq())
            }
            (Value::Str(_), Value::Str(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::List(_), Value::List(_))
            | (Value::Map(_), Value::Map(_))
            | (Value::Input, Value::Input)
            | (Value::Util, Value::Util) => self.heap.java_equals(left, right, 0),
            _ => self.java_string(left, pos)? == self.java_string(right, pos)?,
        })
    }

    fn call(&mut self, target: Value, name: &str, args: Vec<Value>, pos: usize) -> Result<Value> {
        match target {
            Value::Input => apigw::input_method(self, name, &args, pos),
            Value::Util => apigw::util_method(self, name, &args, pos),
            _ => methods::call(self, target, name, &args, pos),
        }
    }
}

impl Reference {
    fn root_value(&self, vars: &HashMap<String, Value>) -> Value {
        vars.get(&self.root).cloned().unwrap_or(Value::Null)
    }
}

/// A list position from an index value; negative counts from the end (Velocity 1.7).
pub(crate) fn list_slot(length: usize, index: &Value) -> Option<usize> {
    let index = index.as_integer()?;
    let length = i64::try_from(length).ok()?;
    let index = if index < 0 { length + index } else { index };
    usize::try_from(index).ok().filter(|&i| (i as i64) < length)
}

fn compare_numbers(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    match (left.as_integer(), right.as_integer()) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => {
            let a = as_f64(left)?;
            let b = as_f64(right)?;
            a.partial_cmp(&b)
        }
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Int(value) => Some(f64::from(*value)),
        Value::Long(value) => Some(*value as f64),
        Value::Double(value) => Some(*value),
        _ => None,
    }
}

/// Java arithmetic as Velocity's `MathUtils` does it: integers stay integers (an `int`
/// result that overflows widens to `long`), any double makes a double, division by zero
/// gives null.
fn arithmetic(op: BinaryOp, left: &Value, right: &Value, pos: usize) -> Result<Value> {
    if let (Some(a), Some(b)) = (left.as_integer(), right.as_integer()) {
        let both_int = matches!((left, right), (Value::Int(_), Value::Int(_)));
        let result = match op {
            BinaryOp::Add => a.checked_add(b),
            BinaryOp::Sub => a.checked_sub(b),
            BinaryOp::Mul => a.checked_mul(b),
            BinaryOp::Div if b == 0 => return Ok(Value::Null),
            BinaryOp::Mod if b == 0 => return Ok(Value::Null),
            BinaryOp::Div => a.checked_div(b),
            BinaryOp::Mod => a.checked_rem(b),
            _ => return Ok(Value::Null),
        };
        return match result {
            Some(result) if both_int => Ok(Value::integer(result)),
            Some(result) => Ok(Value::Long(result)),
            None => error(pos, "arithmetic overflow beyond the range of a Java long"),
        };
    }
    let (Some(a), Some(b)) = (as_f64(left), as_f64(right)) else {
        return Ok(Value::Null);
    };
    if matches!(op, BinaryOp::Div | BinaryOp::Mod) && b == 0.0 {
        return Ok(Value::Null);
    }
    Ok(Value::Double(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        _ => return Ok(Value::Null),
    }))
}
