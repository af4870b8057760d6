//! Template source → syntax tree. VTL switches between text mode (everything is output
//! except `$references`, `#directives` and comments) and expression mode (inside directive
//! parentheses, method arguments and `[…]`), so scanning and parsing are one recursive-descent
//! pass over the source rather than a separate token stream.
//!
//! Whitespace follows Velocity 1.7 as API Gateway renders it: a directive (`#set`, `#if`,
//! `#elseif`, `#else`, `#end`, `#foreach`, `#break`, `#stop`) that is followed by optional
//! spaces and a newline swallows that newline; `##` comments swallow their newline.

use crate::ast::{BinaryOp, Expr, Node, Reference, Step};

/// Deepest nesting of blocks, expressions and strings: bounds the recursion so hostile input
/// cannot overflow the stack.
const MAX_DEPTH: usize = 64;

/// A syntax error at a byte offset of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

type Result<T> = std::result::Result<T, ParseError>;

pub fn parse(source: &str) -> Result<Vec<Node>> {
    let mut parser = Parser::new(source, 0, 0);
    let (nodes, end) = parser.block()?;
    match end {
        BlockEnd::Eof => Ok(nodes),
        BlockEnd::End(pos) => Err(ParseError {
            pos,
            message: "#end without a matching #if or #foreach".into(),
        }),
        BlockEnd::Else(pos) | BlockEnd::ElseIf(pos, _) => Err(ParseError {
            pos,
            message: "#else/#elseif without a matching #if".into(),
        }),
    }
}

/// How a block of nodes ended.
enum BlockEnd {
    Eof,
    End(usize),
    Else(usize),
    ElseIf(usize, Expr),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Offset of `src` in the template (for strings parsed on their own).
    base: usize,
    depth: usize,
}

fn is_ident_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

/// Velocity 1.7 identifiers may contain `-` after the first character.
fn is_ident_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, base: usize, depth: usize) -> Parser<'a> {
        Parser {
            src,
            pos: 0,
            base,
            depth,
        }
    }

    fn error<T>(&self, pos: usize, message: impl Into<String>) -> Result<T> {
        Err(ParseError {
            pos: self.base + pos,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + offset).copied()
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn eat(&mut self, text: &str) -> bool {
        if self.rest().starts_with(text) {
            self.pos += text.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error(self.pos, "template nested too deeply");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Skips spaces, tabs and newlines (inside expressions).
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// After a directive: swallows `[ \t]*\r?\n` if the line ends there.
    fn gobble_line_end(&mut self) {
        let mut at = self.pos;
        let bytes = self.src.as_bytes();
        while matches!(bytes.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        if bytes.get(at) == Some(&b'\r') {
            at += 1;
        }
        if bytes.get(at) == Some(&b'\n') {
            self.pos = at + 1;
        }
    }

    fn identifier(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self.peek().is_some_and(is_ident_start) {
            return None;
        }
        while self.peek().is_some_and(is_ident_char) {
            self.pos += 1;
        }
        self.src.get(start..self.pos)
    }

    /// A directive name: letters only (`#end` in `#endif` is not `#end`, `#else-x` is `#else`).
    fn directive_name(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            self.pos += 1;
        }
        self.src
            .get(start..self.pos)
            .filter(|name| !name.is_empty())
    }

    // ---------------------------------------------------------------- text mode

    fn block(&mut self) -> Result<(Vec<Node>, BlockEnd)> {
        self.enter()?;
        let mut nodes = Vec::new();
        let mut text = String::new();
        let end = loop {
            let Some(byte) = self.peek() else {
                break BlockEnd::Eof;
            };
            match byte {
                b'$' => match self.text_reference()? {
                    Some(reference) => {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Reference(reference));
                    }
                    None => {
                        text.push('$');
                        self.pos += 1;
                    }
                },
                b'#' => match self.hash(&mut text, &mut nodes)? {
                    Some(end) => break end,
                    None => continue,
                },
                b'\\' if matches!(self.peek_at(1), Some(b'$' | b'#')) => {
                    // `\$x` and `\#x` are the literal text `$x` and `#x`.
                    self.pos += 1;
                    let start = self.pos;
                    self.pos += 1;
                    while self.peek().is_some_and(|byte| !byte.is_ascii_whitespace()) {
                        if matches!(self.peek(), Some(b'$' | b'#' | b'\\')) {
                            break;
                        }
                        self.pos += 1;
                    }
                    text.push_str(self.src.get(start..self.pos).unwrap_or(""));
                }
                _ => {
                    let start = self.pos;
                    self.pos += 1;
                    while self
                        .peek()
                        .is_some_and(|byte| !matches!(byte, b'$' | b'#' | b'\\'))
                    {
                        self.pos += 1;
                    }
                    text.push_str(self.src.get(start..self.pos).unwrap_or(""));
                }
            }
        };
        flush(&mut text, &mut nodes);
        self.leave();
        Ok((nodes, end))
    }

    /// At `#`: a comment, a directive, or literal text. Returns the end of the enclosing
    /// block when the directive closes it.
    fn hash(&mut self, text: &mut String, nodes: &mut Vec<Node>) -> Result<Option<BlockEnd>> {
        let start = self.pos;
        if self.eat("##") {
            match self.rest().find('\n') {
                Some(newline) => self.pos += newline + 1,
                None => self.pos = self.src.len(),
            }
            return Ok(None);
        }
        if self.eat("#*") {
            match self.rest().find("*#") {
                Some(end) => self.pos += end + 2,
                None => return self.error(start, "unterminated #* comment *#"),
            }
            self.gobble_line_end();
            return Ok(None);
        }
        if self.eat("#[[") {
            match self.rest().find("]]#") {
                Some(end) => {
                    text.push_str(self.rest().get(..end).unwrap_or(""));
                    self.pos += end + 3;
                }
                None => return self.error(start, "unterminated #[[ unparsed content ]]#"),
            }
            return Ok(None);
        }
        self.pos += 1;
        let braced = self.eat("{");
        let Some(name) = self.directive_name() else {
            self.pos = start + 1;
            text.push('#');
            return Ok(None);
        };
        if braced && !self.eat("}") {
            self.pos = start + 1;
            text.push('#');
            return Ok(None);
        }
        match name {
            "end" => {
                self.gobble_line_end();
                Ok(Some(BlockEnd::End(start)))
            }
            "else" => {
                self.gobble_line_end();
                Ok(Some(BlockEnd::Else(start)))
            }
            "elseif" => {
                let condition = self.condition(start)?;
                self.gobble_line_end();
                Ok(Some(BlockEnd::ElseIf(start, condition)))
            }
            "set" => {
                let node = self.set(start)?;
                flush(text, nodes);
                nodes.push(node);
                self.gobble_line_end();
                Ok(None)
            }
            "if" => {
                let node = self.if_directive(start)?;
                flush(text, nodes);
                nodes.push(node);
                Ok(None)
            }
            "foreach" => {
                let node = self.foreach(start)?;
                flush(text, nodes);
                nodes.push(node);
                Ok(None)
            }
            "break" | "stop" => {
                flush(text, nodes);
                nodes.push(if name == "break" {
                    Node::Break
                } else {
                    Node::Stop
                });
                self.gobble_line_end();
                Ok(None)
            }
            "macro" | "include" | "parse" | "evaluate" | "define" => self.error(
                start,
                format!("unsupported directive #{name} (API Gateway mapping templates are self-contained)"),
            ),
            _ => {
                let after_name = self.pos;
                self.skip_inline_space();
                if self.peek() == Some(b'(') {
                    return self.error(start, format!("unknown directive or macro #{name}"));
                }
                // Not a directive: literal text such as `#ff0000` or `#hashtag`.
                self.pos = after_name;
                text.push_str(self.src.get(start..after_name).unwrap_or(""));
                Ok(None)
            }
        }
    }

    fn skip_inline_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn open_paren(&mut self, directive: usize, name: &str) -> Result<()> {
        self.skip_inline_space();
        if !self.eat("(") {
            return self.error(directive, format!("expected ( after #{name}"));
        }
        self.skip_space();
        Ok(())
    }

    fn close_paren(&mut self, directive: usize, name: &str) -> Result<()> {
        self.skip_space();
        if !self.eat(")") {
            return self.error(
                self.pos,
                format!(
                    "expected ) to close #{name} (opened here: offset {})",
                    self.base + directive
                ),
            );
        }
        Ok(())
    }

    fn condition(&mut self, directive: usize) -> Result<Expr> {
        self.open_paren(directive, "if")?;
        let condition = self.expr()?;
        self.close_paren(directive, "if")?;
        Ok(condition)
    }

    fn set(&mut self, directive: usize) -> Result<Node> {
        self.open_paren(directive, "set")?;
        let at = self.pos;
        let target = match self.reference()? {
            Some(reference) => reference,
            None => return self.error(at, "expected a $reference to assign in #set"),
        };
        if matches!(target.steps.last(), Some(Step::Method { .. })) {
            return self.error(at, "cannot assign to a method call in #set");
        }
        self.skip_space();
        if !self.eat("=") {
            return self.error(self.pos, "expected = in #set");
        }
        self.skip_space();
        let value = self.expr()?;
        self.close_paren(directive, "set")?;
        Ok(Node::Set { target, value })
    }

    fn if_directive(&mut self, directive: usize) -> Result<Node> {
        let mut condition = self.condition(directive)?;
        self.gobble_line_end();
        let mut branches = Vec::new();
        loop {
            let (body, end) = self.block()?;
            branches.push((condition, body));
            match end {
                BlockEnd::End(_) => {
                    return Ok(Node::If {
                        branches,
                        otherwise: None,
                    })
                }
                BlockEnd::ElseIf(_, next) => condition = next,
                BlockEnd::Else(_) => {
                    let (otherwise, end) = self.block()?;
                    return match end {
                        BlockEnd::End(_) => Ok(Node::If {
                            branches,
                            otherwise: Some(otherwise),
                        }),
                        BlockEnd::Eof => self.error(directive, "#if without #end"),
                        BlockEnd::Else(at) | BlockEnd::ElseIf(at, _) => {
                            self.error(at, "#else/#elseif after #else")
                        }
                    };
                }
                BlockEnd::Eof => return self.error(directive, "#if without #end"),
            }
        }
    }

    fn foreach(&mut self, directive: usize) -> Result<Node> {
        self.open_paren(directive, "foreach")?;
        if !self.eat("$") {
            return self.error(self.pos, "expected $variable in #foreach");
        }
        let Some(var) = self.identifier() else {
            return self.error(self.pos, "expected a variable name in #foreach");
        };
        let var = var.to_owned();
        self.skip_space();
        if !(self.eat("in")
            && matches!(
                self.peek(),
                Some(b' ' | b'\t' | b'\r' | b'\n' | b'$' | b'[' | b'{' | b'(')
            ))
        {
            return self.error(self.pos, "expected `in` in #foreach");
        }
        self.skip_space();
        let iterable = self.expr()?;
        self.close_paren(directive, "foreach")?;
        self.gobble_line_end();
        let (body, end) = self.block()?;
        match end {
            BlockEnd::End(_) => Ok(Node::Foreach {
                var,
                iterable,
                body,
            }),
            BlockEnd::Eof => self.error(directive, "#foreach without #end"),
            BlockEnd::Else(at) | BlockEnd::ElseIf(at, _) => {
                self.error(at, "#else/#elseif inside #foreach without #if")
            }
        }
    }

    /// At `$` in text: a reference, or `None` (then `$` is literal text).
    fn text_reference(&mut self) -> Result<Option<Reference>> {
        let start = self.pos;
        match self.reference()? {
            Some(reference) => Ok(Some(reference)),
            None => {
                self.pos = start;
                Ok(None)
            }
        }
    }

    // ---------------------------------------------------------------- references

    /// `$name…`, `$!name…`, `${name…}`, `$!{name…}`; `None` if this is no reference.
    fn reference(&mut self) -> Result<Option<Reference>> {
        let start = self.pos;
        if !self.eat("$") {
            return Ok(None);
        }
        self.eat("!");
        let formal = self.eat("{");
        let Some(root) = self.identifier() else {
            self.pos = start;
            return Ok(None);
        };
        let root = root.to_owned();
        let steps = self.steps()?;
        if formal && !self.eat("}") {
            return self.error(self.pos, "expected } to close ${reference}");
        }
        Ok(Some(Reference {
            root,
            steps,
            pos: self.base + start,
        }))
    }

    fn steps(&mut self) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        loop {
            if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(is_ident_start) {
                self.pos += 1;
                let at = self.pos;
                let name = self.identifier().unwrap_or_default().to_owned();
                if self.peek() == Some(b'(') {
                    self.pos += 1;
                    let args = self.arguments(b')')?;
                    steps.push(Step::Method {
                        name,
                        args,
                        pos: self.base + at,
                    });
                } else {
                    steps.push(Step::Property(name));
                }
            } else if self.peek() == Some(b'[') {
                self.enter()?;
                self.pos += 1;
                self.skip_space();
                let index = self.expr()?;
                self.skip_space();
                if !self.eat("]") {
                    return self.error(self.pos, "expected ] after index");
                }
                self.leave();
                steps.push(Step::Index(index));
            } else {
                return Ok(steps);
            }
        }
    }

    /// Comma-separated expressions up to `close` (already past the opening bracket).
    fn arguments(&mut self, close: u8) -> Result<Vec<Expr>> {
        self.enter()?;
        let mut args = Vec::new();
        self.skip_space();
        if self.peek() == Some(close) {
            self.pos += 1;
            self.leave();
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            self.skip_space();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_space();
                }
                Some(byte) if byte == close => {
                    self.pos += 1;
                    self.leave();
                    return Ok(args);
                }
                _ => {
                    return self.error(
                        self.pos,
                        format!("expected , or {} in argument list", close as char),
                    )
                }
            }
        }
    }

    // ---------------------------------------------------------------- expressions

    fn expr(&mut self) -> Result<Expr> {
        self.enter()?;
        let expr = self.binary(0);
        self.leave();
        expr
    }

    /// Precedence climbing over the binary operators, lowest level first.
    fn binary(&mut self, level: usize) -> Result<Expr> {
        const LEVELS: usize = 6;
        if level == LEVELS {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let save = self.pos;
            self.skip_space();
            let at = self.pos;
            let Some(op) = self.operator(level) else {
                self.pos = save;
                return Ok(left);
            };
            self.skip_space();
            let right = self.binary(level + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right), self.base + at);
        }
    }

    fn word(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(word)
            && !rest
                .as_bytes()
                .get(word.len())
                .is_some_and(|byte| is_ident_char(*byte))
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn operator(&mut self, level: usize) -> Option<BinaryOp> {
        match level {
            0 => (self.eat("||") || self.word("or")).then_some(BinaryOp::Or),
            1 => (self.eat("&&") || self.word("and")).then_some(BinaryOp::And),
            2 => {
                if self.eat("==") || self.word("eq") {
                    Some(BinaryOp::Eq)
                } else if self.eat("!=") || self.word("ne") {
                    Some(BinaryOp::Ne)
                } else {
                    None
                }
            }
            3 => {
                if self.eat("<=") || self.word("le") {
                    Some(BinaryOp::Le)
                } else if self.eat(">=") || self.word("ge") {
                    Some(BinaryOp::Ge)
                } else if self.eat("<") || self.word("lt") {
                    Some(BinaryOp::Lt)
                } else if self.eat(">") || self.word("gt") {
                    Some(BinaryOp::Gt)
                } else {
                    None
                }
            }
            4 => {
                if self.eat("+") {
                    Some(BinaryOp::Add)
                } else if self.peek() == Some(b'-') {
                    self.pos += 1;
                    Some(BinaryOp::Sub)
                } else {
                    None
                }
            }
            _ => {
                if self.eat("*") {
                    Some(BinaryOp::Mul)
                } else if self.eat("/") {
                    Some(BinaryOp::Div)
                } else if self.eat("%") {
                    Some(BinaryOp::Mod)
                } else {
                    None
                }
            }
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        self.enter()?;
        let at = self.pos;
        let expr = if self.eat("!") || self.word("not") {
            self.skip_space();
            Ok(Expr::Not(Box::new(self.unary()?)))
        } else if self.peek() == Some(b'-') {
            self.pos += 1;
            self.skip_space();
            match self.unary()? {
                Expr::Int(value) => Ok(Expr::Int(value.wrapping_neg()).normalize_negated(value)),
                Expr::Long(value) => Ok(negate_long(value)),
                Expr::Double(value) => Ok(Expr::Double(-value)),
                other => Ok(Expr::Negate(Box::new(other), self.base + at)),
            }
        } else {
            self.primary()
        };
        self.leave();
        expr
    }

    fn primary(&mut self) -> Result<Expr> {
        let at = self.pos;
        match self.peek() {
            Some(b'$') => match self.reference()? {
                Some(reference) => Ok(Expr::Reference(reference)),
                None => self.error(at, "expected a reference after $"),
            },
            Some(b'\'') => self.single_quoted(),
            Some(b'"') => self.double_quoted(),
            Some(b'0'..=b'9') => self.number(),
            Some(b'(') => {
                self.pos += 1;
                self.skip_space();
                let inner = self.expr()?;
                self.skip_space();
                if !self.eat(")") {
                    return self.error(self.pos, "expected )");
                }
                Ok(inner)
            }
            Some(b'[') => self.list(),
            Some(b'{') => self.map(),
            _ => {
                if self.word("true") {
                    Ok(Expr::Bool(true))
                } else if self.word("false") {
                    Ok(Expr::Bool(false))
                } else if self.word("null") {
                    Ok(Expr::Null)
                } else {
                    self.error(
                        at,
                        "expected a value (reference, literal, list, map or ( … ))",
                    )
                }
            }
        }
    }

    fn number(&mut self) -> Result<Expr> {
        let start = self.pos;
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.pos += 1;
        }
        // A fraction needs a digit after the dot: `1..3` is a range.
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|byte| byte.is_ascii_digit()) {
            self.pos += 1;
            while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                self.pos += 1;
            }
            let text = self.src.get(start..self.pos).unwrap_or("0");
            return match text.parse::<f64>() {
                Ok(value) => Ok(Expr::Double(value)),
                Err(_) => self.error(start, "invalid number"),
            };
        }
        let text = self.src.get(start..self.pos).unwrap_or("0");
        if let Ok(value) = text.parse::<i32>() {
            Ok(Expr::Int(value))
        } else if let Ok(value) = text.parse::<i64>() {
            Ok(Expr::Long(value))
        } else {
            self.error(start, "integer literal out of range")
        }
    }

    /// `'…'`: literal text; `''` stands for one quote.
    fn single_quoted(&mut self) -> Result<Expr> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.rest().find('\'') {
                Some(end) => {
                    value.push_str(self.rest().get(..end).unwrap_or(""));
                    self.pos += end + 1;
                    if self.peek() == Some(b'\'') {
                        value.push('\'');
                        self.pos += 1;
                    } else {
                        return Ok(Expr::Str(value.into()));
                    }
                }
                None => return self.error(start, "unterminated string literal"),
            }
        }
    }

    /// `"…"`: references and directives inside are rendered; `""` stands for one quote.
    fn double_quoted(&mut self) -> Result<Expr> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.rest().find('"') {
                Some(end) => {
                    value.push_str(self.rest().get(..end).unwrap_or(""));
                    self.pos += end + 1;
                    if self.peek() == Some(b'"') {
                        value.push('"');
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                None => return self.error(start, "unterminated string literal"),
            }
        }
        if !value.contains(['$', '#']) {
            return Ok(Expr::Str(value.into()));
        }
        let mut inner = Parser::new(&value, self.base + start + 1, self.depth + 1);
        let (nodes, end) = inner.block()?;
        match end {
            BlockEnd::Eof => Ok(Expr::Interpolated(nodes)),
            BlockEnd::End(at) | BlockEnd::Else(at) | BlockEnd::ElseIf(at, _) => Err(ParseError {
                pos: at,
                message: "unbalanced #end/#else inside a string".into(),
            }),
        }
    }

    /// `[a, b]` or `[from..to]`.
    fn list(&mut self) -> Result<Expr> {
        let start = self.pos;
        self.pos += 1;
        self.enter()?;
        self.skip_space();
        if self.eat("]") {
            self.leave();
            return Ok(Expr::List(Vec::new()));
        }
        let first = self.expr()?;
        self.skip_space();
        if self.eat("..") {
            self.skip_space();
            let last = self.expr()?;
            self.skip_space();
            if !self.eat("]") {
                return self.error(self.pos, "expected ] to close the range");
            }
            self.leave();
            return Ok(Expr::Range(
                Box::new(first),
                Box::new(last),
                self.base + start,
            ));
        }
        let mut items = vec![first];
        loop {
            self.skip_space();
            if self.eat("]") {
                self.leave();
                return Ok(Expr::List(items));
            }
            if !self.eat(",") {
                return self.error(self.pos, "expected , or ] in list");
            }
            self.skip_space();
            items.push(self.expr()?);
        }
    }

    /// `{key: value, …}`.
    fn map(&mut self) -> Result<Expr> {
        self.pos += 1;
        self.enter()?;
        let mut entries = Vec::new();
        self.skip_space();
        if self.eat("}") {
            self.leave();
            return Ok(Expr::Map(entries));
        }
        loop {
            let key = self.expr()?;
            self.skip_space();
            if !self.eat(":") {
                return self.error(self.pos, "expected : in map");
            }
            self.skip_space();
            let value = self.expr()?;
            entries.push((key, value));
            self.skip_space();
            if self.eat("}") {
                self.leave();
                return Ok(Expr::Map(entries));
            }
            if !self.eat(",") {
                return self.error(self.pos, "expected , or } in map");
            }
            self.skip_space();
        }
    }
}

impl Expr {
    /// `-2147483648` is an int; negating any other int cannot overflow.
    fn normalize_negated(self, original: i32) -> Expr {
        if original == i32::MIN {
            Expr::Long(-(i64::from(original)))
        } else {
            self
        }
    }
}

fn negate_long(value: i64) -> Expr {
    let negated = -i128::from(value);
    if let Ok(int) = i32::try_from(negated) {
        Expr::Int(int)
    } else if let Ok(long) = i64::try_from(negated) {
        Expr::Long(long)
    } else {
        Expr::Double(negated as f64)
    }
}

fn flush(text: &mut String, nodes: &mut Vec<Node>) {
    if !text.is_empty() {
        nodes.push(Node::Text(std::mem::take(text)));
    }
}
