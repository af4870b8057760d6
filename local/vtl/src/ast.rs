//! The syntax tree of a template. Positions are byte offsets into the source; they become
//! line and column only when an error is reported.

/// One element of a template body.
#[derive(Debug, Clone)]
pub enum Node {
    /// Literal text, written as is.
    Text(String),
    /// `$ref`, `$!ref`, `${ref}`: the value is written; null writes nothing.
    Reference(Reference),
    /// `#set($target = value)`.
    Set { target: Reference, value: Expr },
    /// `#if (…) … #elseif (…) … #else … #end`.
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    /// `#foreach($var in iterable) … #end`.
    Foreach {
        var: String,
        iterable: Expr,
        body: Vec<Node>,
    },
    /// `#break`: leaves the innermost `#foreach` (or the template).
    Break,
    /// `#stop`: ends rendering; what was written so far is the output.
    Stop,
}

/// `$root.step.step…`
#[derive(Debug, Clone)]
pub struct Reference {
    pub root: String,
    pub steps: Vec<Step>,
    pub pos: usize,
}

#[derive(Debug, Clone)]
pub enum Step {
    /// `.name`: a map entry or a bean-style property.
    Property(String),
    /// `.name(args)`.
    Method {
        name: String,
        args: Vec<Expr>,
        pos: usize,
    },
    /// `[index]`.
    Index(Expr),
}

#[derive(Debug, Clone)]
pub enum Expr {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    /// A single-quoted string, or a double-quoted one without references or directives
    /// (shared, so evaluating it does not allocate).
    Str(std::sync::Arc<str>),
    /// A double-quoted string with references or directives, rendered on evaluation.
    Interpolated(Vec<Node>),
    List(Vec<Expr>),
    Range(Box<Expr>, Box<Expr>, usize),
    Map(Vec<(Expr, Expr)>),
    Reference(Reference),
    Not(Box<Expr>),
    Negate(Box<Expr>, usize),
    Binary(BinaryOp, Box<Expr>, Box<Expr>, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}
