//! Property tests: arbitrary input never panics, and parsing plus rendering always ends
//! (proptest's per-case timeout turns a hang into a failure). Two generators: any Unicode
//! text, and text built from VTL's own tokens, which reaches deep into the parser and the
//! evaluator.

use proptest::prelude::*;
use serde_json::json;
use vtl::{RenderInput, Template};

fn input() -> RenderInput {
    let mut input = RenderInput {
        context: json!({"connectionId": "c1", "requestTimeEpoch": 1_700_000_000_000_i64,
            "authorizer": {"principalId": "u1"}, "list": [1, 2, 3]}),
        body: r#"{"action":"publish","message":{"a":[1,{"b":"c"}]}}"#.into(),
        ..RenderInput::default()
    };
    input.stage_variables.insert("t".into(), "table".into());
    input
}

/// Parses and, if that worked, renders. Errors are fine; panics and hangs are not.
fn exercise(source: &str) {
    if let Ok(template) = Template::parse(source) {
        if let Err(error) = template.render(&input()) {
            assert!(error.line >= 1 && error.column >= 1);
        }
    } else if let Err(error) = Template::parse(source) {
        assert!(error.line >= 1 && error.column >= 1, "{error}");
        assert!(error.line <= source.lines().count().max(1) + 1, "{error}");
    }
}

const TOKENS: &[&str] = &[
    "$",
    "$!",
    "${",
    "}",
    "$a",
    "$a.b",
    "$a.b(",
    "$context.",
    "$input.json('$.message')",
    "$input.path('$.message.a')",
    "$util.escapeJavaScript(",
    "$util.parseJson(",
    "$foreach.index",
    "$context.list",
    "#",
    "##",
    "#*",
    "*#",
    "#[[",
    "]]#",
    "#set(",
    "#if(",
    "#elseif(",
    "#else",
    "#end",
    "#foreach(",
    " in ",
    "#break",
    "#stop",
    "#{end}",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    "..",
    ".",
    "'",
    "\"",
    "''",
    "\"\"",
    "a",
    "b",
    "1",
    "0",
    "-",
    "2147483647",
    "9223372036854775807",
    " ",
    "\n",
    "\\",
    "+",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    ">=",
    "&&",
    "||",
    "!",
    "not",
    "and",
    "true",
    "null",
    "=",
    "$a.add(",
    "$a.put(",
    ".size()",
    ".substring(",
    ".replaceAll(",
    "[1..1000]",
    "😀",
    "ü",
];

fn vtl_like() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, timeout: 30_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_or_hangs(source in any::<String>()) {
        exercise(&source);
    }

    #[test]
    fn vtl_like_text_never_panics_or_hangs(source in vtl_like()) {
        exercise(&source);
    }
}

/// Shapes that once looked risky, kept as fixed cases.
#[test]
fn known_hostile_inputs_end() {
    for source in [
        "#foreach($a in [1..1000])#foreach($b in [1..1000])$a$b#end#end",
        "#set($l = [])#foreach($i in [1..1000])$l.add($l)#end$l",
        "#set($m = {})#foreach($i in [1..1000])#set($m = {'m': $m})#end$m",
        "#set($s = 'x')#foreach($i in [1..1000])#set($s = \"$s$s\")#end",
        "#set($s = 'x')#foreach($i in [1..1000])#set($s = $s.replace('x', 'xx'))#end",
        "#set($s = 'x')#foreach($i in [1..1000])#set($s = $s.replaceAll('x', 'xx'))#end",
        "#set($a = [1..1000])#foreach($x in $a)#foreach($y in $a)#foreach($z in $a)#end#end#end",
        "$util.parseJson('[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]')",
    ] {
        exercise(source);
    }
}
