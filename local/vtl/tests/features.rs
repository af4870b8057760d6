//! One test per interpreter feature, with the edge cases people trip on. Each test renders a
//! template and asserts the exact output (or the exact error position).

use serde_json::json;
use vtl::{Params, RenderInput, Template, VtlError};

fn input(context: serde_json::Value, body: &str) -> RenderInput {
    RenderInput {
        context,
        body: body.to_owned(),
        ..RenderInput::default()
    }
}

fn render_with(source: &str, input: &RenderInput) -> String {
    match Template::parse(source) {
        Ok(template) => match template.render(input) {
            Ok(output) => output,
            Err(error) => panic!("render of {source:?} failed: {error}"),
        },
        Err(error) => panic!("parse of {source:?} failed: {error}"),
    }
}

fn render(source: &str) -> String {
    render_with(source, &RenderInput::default())
}

fn render_body(source: &str, body: &str) -> String {
    render_with(source, &input(json!({}), body))
}

fn parse_error(source: &str) -> VtlError {
    match Template::parse(source) {
        Ok(_) => panic!("{source:?} parsed, expected an error"),
        Err(error) => error,
    }
}

fn render_error(source: &str, input: &RenderInput) -> VtlError {
    let template = Template::parse(source).expect("parses");
    match template.render(input) {
        Ok(output) => panic!("{source:?} rendered {output:?}, expected an error"),
        Err(error) => error,
    }
}

// ------------------------------------------------------------------ references

#[test]
fn property_index_and_map_access() {
    let ctx = input(
        json!({"a": {"b": "B", "list": [10, 20, {"k": "v"}], "x-y": 1}}),
        "",
    );
    assert_eq!(render_with("$context.a.b", &ctx), "B");
    assert_eq!(render_with("$context.a['b']", &ctx), "B");
    assert_eq!(render_with("$context.a.list[1]", &ctx), "20");
    assert_eq!(render_with("$context.a.list[2].k", &ctx), "v");
    assert_eq!(render_with("$context.a.list[-1].k", &ctx), "v");
    assert_eq!(render_with("$context.a.list[9]|", &ctx), "|");
    assert_eq!(render_with("$context.a.get('b')", &ctx), "B");
}

#[test]
fn undefined_references_render_as_empty_strings() {
    assert_eq!(
        render("[$nothing][$!nothing][${nothing}][$!{nothing}]"),
        "[][][][]"
    );
    assert_eq!(render("[$nothing.deeper.still()]"), "[]");
    let ctx = input(json!({"a": null}), "");
    assert_eq!(
        render_with("[$context.a][$context.missing.x]", &ctx),
        "[][]"
    );
}

#[test]
fn formal_references_separate_names_from_text() {
    assert_eq!(
        render("#set($x = 'ab')${x}cd $x.cd ${x}.length()"),
        "abcd  ab.length()"
    );
}

#[test]
fn dollar_and_hash_that_start_nothing_are_text() {
    assert_eq!(
        render("cost: $5 #ff0000 # $ 100%"),
        "cost: $5 #ff0000 # $ 100%"
    );
    assert_eq!(render("\\$escaped \\#set"), "$escaped #set");
}

// ------------------------------------------------------------------ #set

#[test]
fn set_assigns_literals_of_every_kind() {
    assert_eq!(
        render("#set($a = 1)#set($b = 'two')#set($c = true)#set($d = [1, 'x'])#set($e = {'k': 'v'})$a $b $c $d $e"),
        "1 two true [1, x] {k=v}"
    );
}

#[test]
fn set_of_a_null_leaves_the_variable_unchanged() {
    // Velocity 1.7 (directive.set.null.allowed = false): a null right-hand side does not
    // assign. The classic trap: a value from the previous loop iteration survives.
    assert_eq!(render("#set($a = 'old')#set($a = $missing)$a"), "old");
    assert_eq!(render("#set($a = $missing)[$a]"), "[]");
    let out = render_body(
        "#foreach($i in [0..1])#set($v = $input.path(\"$.items[$i].v\"))$v;#end",
        r#"{"items":[{"v":"first"},{}]}"#,
    );
    assert_eq!(out, "first;first;");
}

#[test]
fn set_on_map_entries_and_list_slots() {
    assert_eq!(
        render("#set($m = {})#set($m.a = 1)#set($m['b'] = 2)$m"),
        "{a=1, b=2}"
    );
    assert_eq!(render("#set($l = [1, 2])#set($l[0] = 9)$l"), "[9, 2]");
}

#[test]
fn set_swallows_the_newline_after_it() {
    assert_eq!(render("#set($a = 1)\n  #set($b = 2)  \nx$a$b\n"), "  x12\n");
}

#[test]
fn maps_and_lists_are_shared_like_java_objects() {
    assert_eq!(
        render("#set($a = {})#set($b = $a)$b.put('k', 1)$a"),
        "{k=1}"
    );
}

// ------------------------------------------------------------------ #if

#[test]
fn if_elseif_else() {
    let template =
        "#foreach($n in [1, 2, 3])#if($n == 1)one#elseif($n == 2)two#{else}many#end,#end";
    assert_eq!(render(template), "one,two,many,");
}

#[test]
fn truthiness_is_null_or_false() {
    assert_eq!(
        render("#if($missing)a#end#if('')b#end#if(0)c#end#if(false)d#end#if([])e#end"),
        "bce"
    );
}

#[test]
fn boolean_operators_and_word_forms() {
    assert_eq!(
        render("#if(true && !false)1#end#if(false || true)2#end#if(true and not false)3#end#if(false or false)4#end#if(!$missing)5#end"),
        "1235"
    );
}

#[test]
fn comparisons() {
    assert_eq!(
        render(
            "#if(1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3 && 1 lt 2 && 2 gt 1 && 2 eq 2 && 1 ne 2)ok#end"
        ),
        "ok"
    );
    assert_eq!(
        render("#if(1 == 1.0)a#end#if('x' == 'x')b#end#if(1 == '1')c#end"),
        "abc"
    );
    assert_eq!(
        render("#if($missing == $null)a#end#if($missing == '')b#end"),
        "a"
    );
    assert_eq!(render("#if('a' < 'b')x#{else}y#end"), "y");
}

// ------------------------------------------------------------------ #foreach

#[test]
fn foreach_exposes_index_count_has_next_and_velocity_count() {
    assert_eq!(
        render("#foreach($x in ['a', 'b'])$foreach.index/$foreach.count/$foreach.hasNext/$velocityCount:$x #end"),
        "0/1/true/1:a 1/2/false/2:b "
    );
}

#[test]
fn nested_foreach_keeps_each_loops_variables() {
    let out = render(
        "#foreach($a in [1, 2])#foreach($b in ['x', 'y'])$a$b$foreach.index#end|$foreach.index #end[$a][$foreach]",
    );
    assert_eq!(out, "1x01y1|0 2x02y1|1 [][]");
}

#[test]
fn foreach_over_maps_iterates_values_and_key_set_iterates_keys() {
    assert_eq!(
        render(
            "#set($m = {'a': 1, 'b': 2})#foreach($v in $m)$v#end #foreach($k in $m.keySet())$k#end"
        ),
        "12 ab"
    );
}

#[test]
fn foreach_over_null_or_a_scalar_does_nothing() {
    assert_eq!(
        render("#foreach($x in $missing)x#end#foreach($x in 5)y#end."),
        "."
    );
}

#[test]
fn ranges_count_up_and_down() {
    assert_eq!(
        render("#foreach($i in [3..1])$i#end #set($a = [1..3])$a #set($b = [-1..1])$b [1..3]"),
        "321 [1, 2, 3] [-1, 0, 1] [1..3]"
    );
    assert_eq!(render("#set($n = 2)#foreach($i in [0..$n])$i#end"), "012");
}

#[test]
fn foreach_stops_after_api_gateways_1000_iterations() {
    assert_eq!(render("#foreach($i in [1..5000])#end$velocityCount"), "");
    let out = render("#set($n = 0)#foreach($i in [1..5000])#set($n = $n + 1)#end$n");
    assert_eq!(out, vtl::MAX_FOREACH_ITERATIONS.to_string());
}

#[test]
fn break_leaves_the_innermost_loop_and_stop_ends_the_template() {
    assert_eq!(
        render(
            "#foreach($a in [1, 2])#foreach($b in [1, 2, 3])#if($b == 2)#break#end$a$b #end#end"
        ),
        "11 21 "
    );
    assert_eq!(render("a#foreach($x in [1, 2])$x#stop#end b"), "a1");
    assert_eq!(render("a\n#stop\nb"), "a\n");
}

#[test]
fn directive_lines_swallow_their_newline() {
    let template = "[\n#foreach($x in [1, 2])\n  $x#if($foreach.hasNext),#end\n\n#end\n]";
    assert_eq!(render(template), "[\n  1,\n  2\n]");
}

// ------------------------------------------------------------------ comments

#[test]
fn comments_render_nothing() {
    assert_eq!(render("a## line comment\nb#* block\ncomment *#c"), "abc");
    assert_eq!(render("a#**#b"), "ab");
    assert_eq!(render("#[[ $not #set(parsed) ]]#"), " $not #set(parsed) ");
}

// ------------------------------------------------------------------ strings

#[test]
fn double_quotes_interpolate_and_single_quotes_do_not() {
    assert_eq!(
        render("#set($n = 'W')#set($a = \"Hello $n ${n}!\")#set($b = 'Hello $n')$a|$b"),
        "Hello W W!|Hello $n"
    );
    assert_eq!(
        render("#set($q = \"say \"\"hi\"\"\")#set($s = 'it''s')$q $s"),
        "say \"hi\" it's"
    );
    assert_eq!(render("#set($x = \"#if(true)yes#end\")$x"), "yes");
}

#[test]
fn string_methods() {
    // Velocity calls methods on references only (`'x'.length()` is a syntax error).
    let cases = [
        ("#set($s = 'Hello')$s.length()", "5"),
        ("#set($s = '😀')$s.length()", "2"),
        ("#set($s = 'Hello')$s.contains('ell')", "true"),
        ("#set($s = 'Hello')$s.startsWith('He')", "true"),
        ("#set($s = 'Hello')$s.endsWith('lo')", "true"),
        ("#set($s = 'a-b-c')$s.replaceAll('-', '+')", "a+b+c"),
        (
            "#set($s = 'a1b2')$s.replaceAll('[0-9]', '<$0>')",
            "a<1>b<2>",
        ),
        ("#set($s = 'a.b')$s.replace('.', '/')", "a/b"),
        ("#set($s = 'MiXed')$s.toLowerCase()", "mixed"),
        ("#set($s = 'MiXed')$s.toUpperCase()", "MIXED"),
        ("#set($s = 'Hello')$s.substring(1, 3)", "el"),
        ("#set($s = 'Hello')$s.substring(2)", "llo"),
        ("#set($s = 'Hello')$s.indexOf('l')", "2"),
        ("#set($s = 'Hello')$s.indexOf('z')", "-1"),
        ("#set($s = '  pad ')$s.trim()", "pad"),
        ("#set($s = 'a,b,,')$s.split(',')", "[a, b]"),
        ("#set($s = 'a,b')$s.split(',').size()", "2"),
        ("#set($s = '')$s.isEmpty()", "true"),
        ("#set($s = 'x')$s.equals('x')", "true"),
        ("#set($s = 'x')$s.toString()", "x"),
        ("#set($s = 'abc')$s.matches('[a-c]+')", "true"),
        ("#set($s = 'abc')$s.charAt(1)", "b"),
        ("#set($s = 'abc')$s.noSuchMethod()", ""),
    ];
    for (template, expected) in cases {
        assert_eq!(render(template), expected, "{template}");
    }
}

#[test]
fn substring_out_of_range_names_the_call() {
    let error = render_error(
        "ok\n  #set($s = 'abc')$s.substring(5)",
        &RenderInput::default(),
    );
    assert_eq!((error.line, error.column), (2, 22));
    assert!(error.message.contains("out of range"), "{}", error.message);
}

// ------------------------------------------------------------------ lists and maps

#[test]
fn list_and_map_methods() {
    let cases = [
        ("#set($l = [1, 2])$l.size()", "2"),
        ("#set($l = [1, 2])$l.get(1)", "2"),
        ("#set($l = [1, 2])$l.contains(2)", "true"),
        ("#set($l = [])$l.isEmpty()", "true"),
        ("#set($l = [])$l.add('x')$l", "true[x]"),
        ("#set($l = [])#set($ignored = $l.add('x'))$l", "[x]"),
        ("#set($m = {'a': 1})$m.keySet()", "[a]"),
        (
            "#set($m = {'a': 1, 'b': [1, {'c': true}]})$m.values()",
            "[1, [1, {c=true}]]",
        ),
        ("#set($m = {'a': 1})$m.get('a')", "1"),
        ("#set($m = {'a': 1})$m.put('a', 2)$m", "1{a=2}"),
        ("#set($m = {})$m.put('a', 2)$m", "{a=2}"),
        (
            "#set($m = {'a': 1})$m.isEmpty() $m.size() $m.containsKey('a')",
            "false 1 true",
        ),
        ("#set($m = {'a': 1})$m.toString()", "{a=1}"),
        (
            "#set($m = {'a': 1})#foreach($e in $m.entrySet())$e.key=$e.value#end",
            "a=1",
        ),
    ];
    for (template, expected) in cases {
        assert_eq!(render(template), expected, "{template}");
    }
}

#[test]
fn list_index_out_of_bounds_is_an_error() {
    let error = render_error("#set($l = [1])$l.get(3)", &RenderInput::default());
    assert_eq!((error.line, error.column), (1, 18));
}

#[test]
fn maps_and_lists_print_java_style() {
    assert_eq!(
        render("#set($m = {'a': 1, 'b': 'x', 'c': [1, 2], 'd': {}, 'e': $null})$m"),
        "{a=1, b=x, c=[1, 2], d={}, e=null}"
    );
    assert_eq!(
        render("#set($l = [1, 'two', 3.5, true, [ ]])$l"),
        "[1, two, 3.5, true, []]"
    );
}

// ------------------------------------------------------------------ arithmetic

#[test]
fn integer_arithmetic_is_java_int_and_long() {
    let cases = [
        ("7 / 2", "3"),
        ("-7 / 2", "-3"),
        ("-7 % 2", "-1"),
        ("7 % 3", "1"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("10 - 2 - 3", "5"),
        ("7.0 / 2", "3.5"),
        ("1.5 + 1", "2.5"),
        ("2147483647 + 1", "2147483648"),
        ("2147483647 * 2147483647", "4611686014132420609"),
        ("-2147483648 - 1", "-2147483649"),
        ("1700000000123 / 1000 + 7200", "1700007200"),
        ("'n=' + 1", "n=1"),
        ("1 + 'x'", "1x"),
    ];
    for (expr, expected) in cases {
        assert_eq!(render(&format!("#set($r = {expr})$r")), expected, "{expr}");
    }
}

#[test]
fn division_by_zero_and_null_operands_give_null() {
    assert_eq!(
        render("#set($r = 'unchanged')#set($r = 1 / 0)$r"),
        "unchanged"
    );
    assert_eq!(render("#set($r = 1 % 0)[$!r]"), "[]");
    assert_eq!(render("#set($r = $missing + 1)[$!r]"), "[]");
}

#[test]
fn long_overflow_is_an_error() {
    let error = render_error(
        "#set($r = 9223372036854775807 + 1)",
        &RenderInput::default(),
    );
    assert_eq!((error.line, error.column), (1, 31));
    assert!(error.message.contains("overflow"));
}

#[test]
fn request_time_epoch_is_a_long_and_divides_to_whole_seconds() {
    let ctx = input(json!({"requestTimeEpoch": 1_700_000_000_999_i64}), "");
    assert_eq!(
        render_with(
            "#set($s = $context.requestTimeEpoch / 1000)$s $context.requestTimeEpoch",
            &ctx
        ),
        "1700000000 1700000000999"
    );
}

#[test]
fn doubles_print_like_java() {
    let cases = [
        ("1.0", "1.0"),
        ("249.99", "249.99"),
        ("10000000.0", "1.0E7"),
        ("0.0001", "1.0E-4"),
        ("1.5 * 2", "3.0"),
    ];
    for (expr, expected) in cases {
        assert_eq!(render(&format!("#set($r = {expr})$r")), expected, "{expr}");
    }
}

// ------------------------------------------------------------------ $input

#[test]
fn input_body_json_and_path() {
    let body = r#"{"action":"publish","message":{"b":2,"a":[1,{"x":"y"}]},"n":1.5,"s":"t"}"#;
    assert_eq!(render_body("$input.body", body), body);
    assert_eq!(
        render_body("$input.json('$.message')", body),
        r#"{"b":2,"a":[1,{"x":"y"}]}"#
    );
    assert_eq!(render_body("$input.json('$')", body), body);
    assert_eq!(render_body("$input.json('$.s')", body), "\"t\"");
    assert_eq!(render_body("$input.path('$.s')", body), "t");
    assert_eq!(render_body("$input.path('$.n')", body), "1.5");
    assert_eq!(render_body("$input.path('$.message.a[1].x')", body), "y");
    assert_eq!(render_body("$input.path(\"$['message']['b']\")", body), "2");
    // Objects print Java-style, arrays as JSON (API Gateway's JSON array type).
    assert_eq!(
        render_body("$input.path('$.message')", body),
        "{b=2, a=[1,{\"x\":\"y\"}]}"
    );
    assert_eq!(render_body("$input.path('$.message.a').size()", body), "2");
}

#[test]
fn input_json_of_a_missing_path_is_empty() {
    let body = r#"{"a":1}"#;
    assert_eq!(render_body("[$input.json('$.missing')]", body), "[]");
    assert_eq!(render_body("[$input.json('$.a.b.c')]", body), "[]");
    assert_eq!(render_body("[$input.path('$.missing')]", body), "[]");
    assert_eq!(render_body("[$input.json('$.a')]", "not json"), "[]");
}

#[test]
fn unsupported_json_path_is_an_error() {
    let error = render_error("\n $input.json('$..deep')", &input(json!({}), "{}"));
    assert_eq!((error.line, error.column), (2, 9));
    assert!(error.message.contains("JSONPath"), "{}", error.message);
}

#[test]
fn input_params() {
    let mut params = Params::default();
    params.path.insert("id".into(), "p".into());
    params.querystring.insert("id".into(), "q".into());
    params.querystring.insert("token".into(), "t".into());
    params.header.insert("Host".into(), "h".into());
    let input = RenderInput {
        params,
        ..RenderInput::default()
    };
    assert_eq!(render_with("$input.params('id') $input.params('token') $input.params('Host') [$input.params('none')]", &input), "p t h []");
    assert_eq!(
        render_with("$input.params()", &input),
        "{path={id=p}, querystring={id=q, token=t}, header={Host=h}}"
    );
    assert_eq!(render_with("$input.params().header.Host", &input), "h");
}

// ------------------------------------------------------------------ $util

#[test]
fn escape_javascript_quotes_and_newlines() {
    let ctx = input(json!({"v": "He said \"hi\"\nit's\ta\\b/c"}), "");
    assert_eq!(
        render_with("$util.escapeJavaScript($context.v)", &ctx),
        "He said \\\"hi\\\"\\nit\\'s\\ta\\\\b\\/c"
    );
    // AWS's documented fix-up for JSON, which has no \' escape.
    assert_eq!(
        render_with(
            "$util.escapeJavaScript($context.v).replaceAll(\"\\\\'\", \"'\")",
            &ctx
        ),
        "He said \\\"hi\\\"\\nit's\\ta\\\\b\\/c"
    );
    assert_eq!(render("[$util.escapeJavaScript($missing)]"), "[]");
}

#[test]
fn url_encode_handles_unicode_like_java() {
    let ctx = input(json!({"v": "a b&c=ü/😀~*"}), "");
    assert_eq!(
        render_with("$util.urlEncode($context.v)", &ctx),
        "a+b%26c%3D%C3%BC%2F%F0%9F%98%80%7E*"
    );
    assert_eq!(render("$util.urlDecode('a+b%26c%3D%C3%BC')"), "a b&c=ü");
}

#[test]
fn base64_round_trip_and_errors() {
    assert_eq!(render("$util.base64Encode('hello ü')"), "aGVsbG8gw7w=");
    assert_eq!(render("$util.base64Decode('aGVsbG8gw7w=')"), "hello ü");
    let error = render_error("$util.base64Decode('***')", &RenderInput::default());
    assert_eq!((error.line, error.column), (1, 7));
}

#[test]
fn parse_json_gives_maps_and_lists() {
    assert_eq!(
        render(
            "#set($o = $util.parseJson('{\"a\":{\"b\":[1,2]},\"c\":\"d\"}'))$o.a.b[1] $o.c $o.a.b"
        ),
        "2 d [1,2]"
    );
    let error = render_error("\n\n   $util.parseJson('{nope')", &RenderInput::default());
    assert_eq!((error.line, error.column), (3, 10));
    assert!(error.message.contains("invalid JSON"));
}

// ------------------------------------------------------------------ $context, $stageVariables

#[test]
fn context_and_stage_variables() {
    let mut input = input(
        json!({"connectionId": "c1", "identity": {"sourceIp": "1.2.3.4"}, "authorizer": {"principalId": "u1", "tier": "gold"}}),
        "",
    );
    input
        .stage_variables
        .insert("connections_table".into(), "t1".into());
    assert_eq!(
        render_with(
            "$context.connectionId $context.identity.sourceIp $context.authorizer.principalId $context.authorizer.tier $stageVariables.connections_table [$stageVariables.none]",
            &input
        ),
        "c1 1.2.3.4 u1 gold t1 []"
    );
}

#[test]
fn render_input_deserializes_from_json_with_defaults() {
    let input: RenderInput = serde_json::from_str(
        r#"{"context":{"stage":"dev"},"stage_variables":{"x":"y"},"params":{"header":{"h":"v"}}}"#,
    )
    .expect("deserializes");
    assert_eq!(input.body, "");
    assert_eq!(
        render_with(
            "$context.stage $stageVariables.x $input.params('h')",
            &input
        ),
        "dev y v"
    );
}

// ------------------------------------------------------------------ errors

#[test]
fn syntax_errors_name_line_and_column() {
    let cases: [(&str, usize, usize, &str); 9] = [
        ("#if(true)\nx", 1, 1, "#if without #end"),
        ("ok\n#end", 2, 1, "#end without"),
        ("#set($a = )", 1, 11, "expected a value"),
        ("a\n  #foreach($x $list)#end", 2, 15, "expected `in`"),
        ("#set($a = 'x)", 1, 11, "unterminated string"),
        ("#* never closed", 1, 1, "unterminated #*"),
        ("x\n #unknownMacro('a')", 2, 2, "unknown directive"),
        ("#macro(m)x#end", 1, 1, "unsupported directive"),
        ("$a.b(1,", 1, 8, "expected a value"),
    ];
    for (source, line, column, message) in cases {
        let error = parse_error(source);
        assert_eq!(
            (error.line, error.column),
            (line, column),
            "{source:?}: {error}"
        );
        assert!(error.message.contains(message), "{source:?}: {error}");
        assert!(error
            .to_string()
            .starts_with(&format!("line {line}, column {column}: ")));
    }
}

#[test]
fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
    let source = format!("#set($x = {}1{})", "(".repeat(10_000), ")".repeat(10_000));
    let error = parse_error(&source);
    assert!(error.message.contains("nested too deeply"));
    let source = "#if(true)".repeat(5_000);
    assert!(parse_error(&source).message.contains("nested too deeply"));
}

#[test]
fn runaway_templates_hit_the_budget() {
    let error = render_error(
        "#foreach($a in [1..1000])#foreach($b in [1..1000])#foreach($c in [1..1000])x#end#end#end",
        &RenderInput::default(),
    );
    assert!(
        error.message.contains("budget") || error.message.contains("exceeds"),
        "{error}"
    );
    let error = render_error(
        "#set($s = 'xxxxxxxxxxxxxxxx')#foreach($i in [1..30])#set($s = \"$s$s\")#end",
        &RenderInput::default(),
    );
    assert!(error.message.contains("exceeds"), "{error}");
    let error = render_error("#set($r = [1..100000000])", &RenderInput::default());
    assert!(error.message.contains("budget"), "{error}");
}

#[test]
fn cyclic_structures_print_without_recursing_forever() {
    assert_eq!(
        render("#set($m = {})$m.put('self', $m)$m"),
        "{self=(this Map)}"
    );
    let error = render_error(
        "#set($a = {})#set($b = {})$a.put('b', $b)$b.put('a', $a)$a",
        &RenderInput::default(),
    );
    assert!(error.message.contains("too deeply"), "{error}");
}
