use super::*;

/// `$input.params()`, `$context` and `$stageVariables` of every test request.
static SCOPE: std::sync::LazyLock<(Map, Value, Map)> = std::sync::LazyLock::new(|| {
    (
        Request::params_of(
            [("id", "42")],
            [("q", "cats"), ("limit", "10")],
            [("Content-Type", "application/json"), ("X-Trace", "abc")],
        ),
        Value::Map(Map(vec![
            ("requestId".into(), Value::str("req-1")),
            ("stage".into(), Value::str("prod")),
            (
                "identity".into(),
                Value::Map(Map(vec![("sourceIp".into(), Value::str("127.0.0.1"))])),
            ),
        ])),
        Map::of_strings([("env", "test")]),
    )
});

/// [`Template::render`], checking on the way that a template's program, when it has one,
/// renders what the evaluator renders (or gives up, and the evaluator's answer is the one).
trait RenderChecked {
    fn render_checked(&self, request: Request<'_>, limits: &Limits) -> Result<Rendered, RenderError>;
}

impl RenderChecked for Template {
    fn render_checked(&self, request: Request<'_>, limits: &Limits) -> Result<Rendered, RenderError> {
        let rendered = self.render(request, limits);
        assert_eq!(
            rendered,
            self.render_evaluated(request, limits),
            "{:?} over {:?}",
            self.source(),
            request.body
        );
        rendered
    }
}

fn request(body: &str) -> Request<'_> {
    let (params, context, stage_variables) = &*SCOPE;
    Request {
        body,
        params,
        context,
        stage_variables,
    }
}

fn render_with(src: &str, body: &str) -> String {
    let t = Template::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    t.render_checked(request(body), &Limits::default())
        .unwrap_or_else(|e| panic!("{src:?}: {e}"))
        .body
}

fn render(src: &str) -> String {
    render_with(
        src,
        r#"{"name":"Rex","tags":["a","b","c"],"owner":{"id":7},"price":1.5}"#,
    )
}

/// `src` rendered over the payload `body` within `max_steps` steps.
fn render_within(src: &str, body: &str, max_steps: u64) -> Result<String, RenderError> {
    Template::parse(src)
        .expect("parse")
        .render_checked(
            request(body),
            &Limits {
                max_steps,
                ..Limits::default()
            },
        )
        .map(|r| r.body)
}

/// `fast` renders over `body` as `call` does with the steps `call` needs (at most `most`),
/// and fails as it does with one step fewer.
fn renders_as_at_the_step_bound(fast: &str, call: &str, body: &str, most: u64) {
    let needed = (1..most)
        .find(|&n| render_within(call, body, n).is_ok())
        .expect("renders within the steps given");
    for steps in [needed, needed - 1] {
        assert_eq!(
            render_within(fast, body, steps),
            render_within(call, body, steps),
            "{fast} / {call} in {steps} steps"
        );
    }
}

#[test]
fn text_and_references() {
    assert_eq!(render("plain $5 text #1 50%"), "plain $5 text #1 50%");
    assert_eq!(
        render("$context.requestId/${context.stage}/$stageVariables.env"),
        "req-1/prod/test"
    );
    assert_eq!(render("$context.identity.sourceIp."), "127.0.0.1.");
    assert_eq!(render("[$context.missing]"), "[]");
    assert_eq!(
        render("[$undefined] [$!undefined] [$!{undefined}]"),
        "[$undefined] [] []"
    );
    assert_eq!(render(r"\$context.stage"), "$context.stage");
}

#[test]
fn input_functions() {
    assert_eq!(render("$input.json('$.name')"), r#""Rex""#);
    assert_eq!(render("$input.json('$.owner')"), r#"{"id":7}"#);
    assert_eq!(render("$input.json('$.missing')"), "null");
    assert_eq!(render("$input.path('$.name')"), "Rex");
    assert_eq!(render("$input.path('$.owner')"), "{id=7}");
    assert_eq!(render("$input.path('$.owner').id"), "7");
    assert_eq!(render("$input.path('$.tags').size()"), "3");
    assert_eq!(render("$input.path('$.tags[*]')"), "[a, b, c]");
    assert_eq!(render("$input.path('$.price')"), "1.5");
    assert_eq!(
        render("$input.params('id') $input.params('q') $input.params('x-trace') [$input.params('no')]"),
        "42 cats abc []"
    );
    assert_eq!(
        render("$input.params().querystring.limit $input.params().path.keySet()"),
        "10 [id]"
    );
    assert_eq!(render("$input.params().header.get('X-Trace')"), "abc");
    assert_eq!(render_with("$input.body", "<xml/>"), "<xml/>");
    assert_eq!(render_with("$input.json('$')", ""), "{}");
}

#[test]
fn invalid_json_payload_is_an_error() {
    let t = Template::parse("$input.json('$.a')").expect("parse");
    let err = t
        .render_checked(request("{not json"), &Limits::default())
        .expect_err("not json");
    assert!(matches!(err, RenderError::Payload(_)));
    // A template that never reads the payload as JSON does not care.
    assert_eq!(render_with("$input.body", "{not json"), "{not json");
}

#[test]
fn util_functions() {
    assert_eq!(
        render(r#"$util.escapeJavaScript("it's \"q\" a/b é")"#),
        r#"it\'s \"q\" a\/b \u00E9"#
    );
    assert_eq!(render("$util.urlEncode('a b&c=d/é')"), "a+b%26c%3Dd%2F%C3%A9");
    assert_eq!(render("$util.urlDecode('a+b%26c')"), "a b&c");
    assert_eq!(render("$util.base64Encode('hello')"), "aGVsbG8=");
    assert_eq!(render("$util.base64Decode('aGVsbG8=')"), "hello");
    assert_eq!(render(r#"$util.parseJson('{"a":[1,2]}').a.get(1)"#), "2");
    let t = Template::parse("$util.base64Decode('***')").expect("parse");
    assert!(t.render_checked(request(""), &Limits::default()).is_err());
}

#[test]
fn directives() {
    assert_eq!(render("#set($a = 1)#set($b = $a + 2)$b"), "3");
    assert_eq!(
        render("#if($input.path('$.name') == 'Rex')yes#{else}no#end"),
        "yes"
    );
    assert_eq!(render("#if(false)a#elseif(1 < 2)b#else c#end"), "b");
    assert_eq!(render("#if(!$nothing)empty#end"), "empty");
    assert_eq!(render("#if($a && $b || true)t#end"), "t");
    assert_eq!(
        render("#foreach($t in $input.path('$.tags'))$t#if($foreach.hasNext),#end#end"),
        "a,b,c"
    );
    assert_eq!(
        render("#foreach($i in [1..3])$foreach.index:$velocityCount #end"),
        "0:1 1:2 2:3 "
    );
    // Each entry of `$foreach` tested as `#if` tests its value; outside a loop, nothing. Read
    // from the loop's state, and (an entry that is not one of its five) from the map.
    let tests = "#foreach($i in [1..3])#if($foreach.first)F#end#if($foreach.last)L#end\
                 #if($foreach.index)I#end#if($foreach.count)C#end#if($foreach.hasNext)N#end;#end\
                 #if($foreach.first)x#end";
    assert_eq!(render(tests), "FICN;ICN;LIC;");
    assert_eq!(render(&format!("{tests}$!foreach.other")), "FICN;ICN;LIC;");
    assert_eq!(render("#foreach($i in [5..1])#if($i == 3)#break#end$i#end"), "54");
    assert_eq!(render("a#stop b"), "a");
    assert_eq!(render("x## comment\ny#* block\ncomment *#z"), "x\nyz");
    assert_eq!(render("#[[$not #set]]#"), "$not #set");
    assert_eq!(render("#set($s = \"n=$context.stage\")$s"), "n=prod");
    assert_eq!(render("#set($s = 'n=$context.stage')$s"), "n=$context.stage");
}

#[test]
fn lines_with_only_a_directive_write_nothing() {
    let src = "{\n  #set($x = 'v')\n  #if(true)\n  \"a\": \"$x\"\n  #end\n  ## note\n}\n";
    assert_eq!(render(src), "{\n  \"a\": \"v\"\n}\n");
}

#[test]
fn set_null_keeps_the_old_value() {
    assert_eq!(render("#set($a = 'x')#set($a = $input.path('$.none'))$a"), "x");
}

#[test]
fn maps_lists_and_mutation() {
    assert_eq!(
        render("#set($m = {'a': 1, 'b': [1, 2]})$m $m.b $m.size() $m.keySet()"),
        "{a=1, b=[1, 2]} [1, 2] 2 [a, b]"
    );
    assert_eq!(
        render("#set($m = {})#set($d = $m.put('k', 'v'))$m.k $m.containsKey('k')"),
        "v true"
    );
    assert_eq!(
        render("#set($l = [])#set($d = $l.add(1))#set($d = $l.add(2))$l $l.get(1) $l[0]"),
        "[1, 2] 2 1"
    );
    assert_eq!(render("#set($m = {})#set($m.a.b = 3)$m"), "{a={b=3}}");
    assert_eq!(
        render("#set($m = {'x': 1})#foreach($e in $m.entrySet())$e.key=$e.value#end"),
        "x=1"
    );
}

#[test]
fn string_methods() {
    assert_eq!(
        render("#set($s = 'Hello World')$s.toLowerCase() $s.toUpperCase() $s.length()"),
        "hello world HELLO WORLD 11"
    );
    assert_eq!(
        render("#set($s = 'Hello World')$s.substring(6) $s.substring(0, 5) $s.indexOf('o')"),
        "World Hello 4"
    );
    assert_eq!(
        render("#set($s = 'a-b-c')$s.replaceAll('-', '+') $s.replace('-', '') $s.split('-').size()"),
        "a+b+c abc 3"
    );
    assert_eq!(
        render("#set($s = 'abc123')$s.replaceAll('([a-z]+)(\\d+)', '$2$1') $s.matches('[a-z]+\\d+')"),
        "123abc true"
    );
    assert_eq!(
        render("'$s.contains('x')' '${context.stage.startsWith('pr')}'"),
        "'$s.contains('x')' 'true'"
    );
    let t = Template::parse("$context.stage.substring(9)").expect("parse");
    assert!(t.render_checked(request(""), &Limits::default()).is_err());
}

#[test]
fn arithmetic_and_comparison() {
    assert_eq!(
        render("#set($a = 7)$a / 2 = #set($b = $a / 2)$b, #set($c = $a % 4)$c, #set($d = 1.5 * 2)$d"),
        "7 / 2 = 3, 3, 3.0"
    );
    assert_eq!(
        render("#if(2 >= 2 && 'a' < 'b' && 3 != 4 && 1 == 1.0)ok#end"),
        "ok"
    );
    assert_eq!(
        render("#set($n = 9223372036854775807 + 1)$n"),
        "9.223372036854776E18"
    );
    assert_eq!(render("#set($x = 1 / 0)[$!x]"), "[]");
}

#[test]
fn response_override() {
    let t = Template::parse(
        "#set($context.responseOverride.status = 418)#set($context.responseOverride.header.X-Kind = 'teapot')ok",
    )
    .expect("parse");
    let out = t.render_checked(request(""), &Limits::default()).expect("render");
    assert_eq!(out.body, "ok");
    assert_eq!(out.status_override(), Some(418));
    assert_eq!(
        out.header_overrides(),
        vec![("X-Kind".to_string(), "teapot".to_string())]
    );
}

#[test]
fn parse_errors_have_line_and_column() {
    let cases = [
        ("#if(true)\nno end", 1, 1, "#if without its #end"),
        ("ok\n  #end", 2, 3, "#end without"),
        ("a\n#set($x 1)", 2, 9, "expected '='"),
        ("#foreach($x)\n#end", 1, 12, "expected 'in'"),
        ("x ${a.b", 1, 3, "without its closing"),
        ("#macro(x)#end", 1, 1, "not supported"),
        ("#* never closed", 1, 1, "closing *#"),
        ("#set($x = 'open)", 1, 11, "unclosed string"),
    ];
    for (src, line, column, message) in cases {
        let e = Template::parse(src).expect_err(src);
        assert_eq!((e.line, e.column), (line, column), "{src:?}: {e}");
        assert!(e.message.contains(message), "{src:?}: {e}");
    }
}

#[test]
fn limits_hold() {
    let big = "x".repeat(MAX_TEMPLATE_BYTES + 1);
    assert!(Template::parse(&big).is_err());
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(Template::parse(&format!("#set($x = {deep})")).is_err());
    let nested = "#if(true)".repeat(100) + &"#end".repeat(100);
    assert!(Template::parse(&nested).is_err());

    // #foreach stops after 1,000 iterations.
    let out = render("#set($n = 0)#foreach($i in [1..5000])#set($n = $n + 1)#end$n");
    assert_eq!(out, "1000");
    // Doubling a string runs into the output bound, not out of memory.
    let t = Template::parse("#set($s = 'xxxxxxxxxxxxxxxx')#foreach($i in [1..100])#set($s = \"$s$s\")#end$s")
        .expect("parse");
    assert!(matches!(
        t.render_checked(request(""), &Limits::default()),
        Err(RenderError::Limit(_))
    ));
    // Nested loops run into the step bound.
    let t = Template::parse("#foreach($a in [1..1000])#foreach($b in [1..1000])#set($x = $a)#end#end")
        .expect("parse");
    assert!(matches!(
        t.render_checked(request(""), &Limits::default()),
        Err(RenderError::Limit(_))
    ));
    // Output bound.
    let limits = Limits {
        max_output: 10,
        ..Limits::default()
    };
    let t = Template::parse("#foreach($i in [1..100])abc#end").expect("parse");
    assert!(matches!(
        t.render_checked(request(""), &limits),
        Err(RenderError::Limit(_))
    ));
    // A big range literal outside a loop.
    assert!(
        Template::parse("#set($r = [1..100000000])")
            .expect("parse")
            .render_checked(request(""), &Limits::default())
            .is_err()
    );
}

#[test]
fn payload_json_reads_as_serde_json_would() {
    // Keys sorted, a repeated key's last value, integers that fit are integers.
    for text in [
        r#"{"b":1,"a":{"d":[1,2.5,"x"],"c":null},"b":3,"e":true}"#,
        r#"[18446744073709551615, -9223372036854775808, 1e400, 0.1, "\u00e9\n"]"#,
        r#"{"z":{},"y":[],"x":"","a":{"b":{"a":1,"a":2}}}"#,
        "7",
    ] {
        let expected = serde_json::from_str::<serde_json::Value>(text).map(|j| Value::from_json(&j));
        let got = Value::parse_json(text);
        assert_eq!(got.ok(), expected.ok(), "{text}");
    }
    // Errors are serde_json's, depth bound included.
    let deep = "[".repeat(200) + &"]".repeat(200);
    for bad in ["{", "{\"a\":}", "[1,]", deep.as_str()] {
        let expected = serde_json::from_str::<serde_json::Value>(bad).map_err(|e| e.to_string());
        assert_eq!(
            Value::parse_json(bad).map_err(|e| e.to_string()).err(),
            expected.err(),
            "{bad}"
        );
    }
}

#[test]
fn whole_payload_read_twice() {
    // `$input.path('$')` hands the parsed payload over; a second read parses it again.
    assert_eq!(
        render(
            "#set($a = $input.path('$'))#set($b = $input.path('$'))$a.name $b.name $input.json('$.owner') $input.path('$.tags[1]')"
        ),
        r#"Rex Rex {"id":7} b"#
    );
    assert_eq!(
        render("$input.json('$')$input.json('$')")
            .matches("\"Rex\"")
            .count(),
        2
    );
}

#[test]
fn foreach_state_updated_in_place_or_rebuilt() {
    assert_eq!(
        render(
            "#foreach($t in $input.path('$.tags'))$foreach.index$foreach.count$foreach.hasNext$foreach.first$foreach.last;#end"
        ),
        "01truetruefalse;12truefalsefalse;23falsefalsetrue;"
    );
    // A template that changes `$foreach` still sees a fresh one each iteration.
    assert_eq!(
        render("#foreach($t in [1..3])#set($foreach.extra = 'x')$foreach.count$foreach.size()#end"),
        "162636"
    );
    assert_eq!(
        render("#foreach($t in [1..2])#set($foreach.index = 9)$foreach.index#end"),
        "99"
    );
    // Renamed keys (the count unchanged): still a fresh `$foreach` each iteration.
    assert_eq!(
        render(
            "#foreach($t in [1..2])#set($r = $foreach.remove('index'))$foreach.put('indey', 7)($foreach.indey/$foreach.index)#end"
        ),
        "(7/)(7/)"
    );
    assert!(!Template::parse("$foreach.put('a', 1)").unwrap().foreach_untouched);
    assert!(!Template::parse("#set($foreach.a = 1)").unwrap().foreach_untouched);
    assert!(
        Template::parse("#foreach($i in [1])$foreach.hasNext $foreach.toString().length()#end")
            .unwrap()
            .foreach_untouched
    );
    // The loop variable may be named like the loop's own.
    assert_eq!(render("#foreach($foreach in [1..2])$velocityCount#end"), "12");
    assert_eq!(
        render("#foreach($velocityCount in ['a','b'])$velocityCount#end"),
        "12"
    );
}

#[test]
fn foreach_read_entry_by_entry_renders_as_the_map_does() {
    let state_only = |src: &str| Template::parse(src).expect("parse").foreach_state_only;
    assert!(state_only(
        "#foreach($i in [1])$foreach.hasNext #if($foreach.last)x#end#end"
    ));
    assert!(state_only("no loop at all"));
    for src in [
        "$foreach",
        "$foreach.size()",
        "$foreach.index.toString()",
        "$foreach.other",
        "#set($foreach.index = 1)",
        "#set($f = $foreach)",
        "#foreach($foreach in [1])#end",
    ] {
        assert!(!state_only(src), "{src}");
    }
    // Each template renders the same read from the loop's state and, with a bare `$foreach`
    // that never runs added, from the map.
    for src in [
        "#foreach($t in $input.path('$.tags'))$foreach.index$foreach.count$foreach.hasNext$foreach.first$foreach.last;#end",
        "#foreach($a in [1..3])#foreach($b in ['x','y'])$a$b$foreach.index$foreach.hasNext,#end|$foreach.index$foreach.last;#end",
        "#foreach($a in [1..5])#if($foreach.index == 2)#break#end$foreach.count#end$foreach.index",
        "$foreach.hasNext #foreach($a in [])$foreach.first#end $!foreach.count.",
        "#foreach($a in [1..2])#set($s = \"$foreach.index/$foreach.last\")$s #end",
        "#foreach($t in $input.path('$.tags'))#if($foreach.hasNext && !$foreach.first)$t#end#end",
    ] {
        assert!(state_only(src), "{src}");
        let with_map = format!("{src}#if(false)$foreach#end");
        assert!(!state_only(&with_map));
        assert_eq!(render(src), render(&with_map), "{src}");
    }
}

#[test]
fn payload_properties_read_on_the_tape_or_as_values() {
    // `render`'s payload: {"name":"Rex","tags":[…],"owner":{"id":7},"price":1.5}.
    for (src, want) in [
        ("#set($o = $input.path('$'))$o.owner.id", "7"),
        // A missing member, and anything read from it, is null: written as nothing.
        (
            "#set($o = $input.path('$'))[$o.nope][$o.nope.deeper][$!o.owner.nope]",
            "[][][]",
        ),
        // A property of a string or a list is the value's own.
        (
            "#set($o = $input.path('$'))$o.name.empty $o.tags.empty $o.owner.id.class.",
            "false false .",
        ),
        (
            "#set($o = $input.path('$'))#if($o.owner.id)y#end#if($o.nope)n#end",
            "y",
        ),
    ] {
        assert_eq!(render(src), want, "{src}");
    }
}

#[test]
fn only_the_context_read_is_copied() {
    let rendered = |src: &str| {
        Template::parse(src)
            .expect("parse")
            .render_checked(request(""), &Limits::default())
            .expect("render")
    };
    // `$context.key…` copies only `key`; what the template sets comes back too.
    let r = rendered("$context.stage#set($context.responseOverride.status = 404)");
    assert_eq!(r.body, "prod");
    assert_eq!(r.status_override(), Some(404));
    assert_eq!(r.context.get("stage"), Some(&Value::str("prod")));
    assert!(r.context.get("requestId").is_none());
    // A template that changes `$context` any other way starts from all of it.
    for src in [
        "#foreach($context in [1])#end$context.put('k', 'v')",
        "$context.put('k', 'v')",
        "#set($context = {'k': 'v'})",
    ] {
        let r = rendered(src);
        assert!(r.context.get("k").is_some(), "{src}");
    }
    let r = rendered("$context.put('k', 'v')");
    assert_eq!(r.context.get("requestId"), Some(&Value::str("req-1")));
    // One that only reads it reads the request's in place, whichever way: nothing comes
    // back.
    for (src, body) in [
        ("$context.keySet()", "[requestId, stage, identity]"),
        ("$context['stage']", "prod"),
        ("#set($c = $context)$c.stage", "prod"),
        (
            "#foreach($v in $context)$v,#end",
            "req-1,prod,{sourceIp=127.0.0.1},",
        ),
        ("$util.escapeJavaScript(\"$context.stage\")", "prod"),
    ] {
        let r = rendered(src);
        assert_eq!(r.body, body, "{src}");
        assert!(r.context.0.is_empty(), "{src}");
    }
    // A copy changed is not the request's `$context`.
    assert_eq!(
        rendered("#set($c = $context)#set($old = $c.put('stage', 'x'))$c.stage $context.stage").body,
        "x prod"
    );
    assert_eq!(
        rendered("$context").body,
        "{requestId=req-1, stage=prod, identity={sourceIp=127.0.0.1}}"
    );
    assert_eq!(
        rendered("$context['stage'] $context.identity.sourceIp").body,
        "prod 127.0.0.1"
    );
    // Not mentioned: nothing copied; `$stageVariables` likewise.
    assert!(rendered("plain").context.0.is_empty());
    assert_eq!(
        rendered("$stageVariables.env $stageVariables").body,
        "test {env=test}"
    );
    assert_eq!(rendered("$stageVariables.env $stageVariables.none").body, "test ");
}

#[test]
fn reads_of_a_template() {
    use super::ast::Reads;
    let reads = |src: &str| Reads::of(&parser::parse(src).expect("parse").0, "context");
    assert_eq!(reads("$input.body"), Reads::Nothing);
    assert_eq!(
        reads("#if($context.a == 1)$context.b.c#end#set($x = \"${context.a}\")"),
        Reads::Keys(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        reads("$util.urlEncode($context.a)$input.params($context.b)"),
        Reads::Keys(vec!["a".into(), "b".into()])
    );
    for src in [
        "$context",
        "$!{context}",
        "$context.get('a')",
        "#set($context = {})",
        "#foreach($context in [1])#end",
        "#set($l = [$context])",
    ] {
        assert_eq!(reads(src), Reads::All, "{src}");
    }
}

#[test]
fn params_read_by_name_or_whole() {
    let names = |src: &str| {
        Template::parse(src)
            .expect("parse")
            .param_reads()
            .map(<[_]>::to_vec)
    };
    assert_eq!(
        names("$input.body $input.json('$') $input.path('$.a')"),
        Some(vec![])
    );
    assert_eq!(
        names("$input.params('id')#if($input.params(\"q\") == '')$input.params('id')#end"),
        Some(vec!["id".into(), "q".into()])
    );
    for src in [
        "$input.params()",
        "$input.params().header.get('x')",
        "$input.params($name)",
        "$input.params",
        "#set($i = $input)$i.params('id')",
        "#foreach($input in [1])#end",
        "$input",
    ] {
        assert_eq!(names(src), None, "{src}");
    }
    // What a named read finds is all a caller need put in.
    let params = Request::params_of([("id", "7")], [("q", "x")], [("X-Id", "h")]);
    let only = Request::params_of([], [], [("x-id", "h")]);
    for (src, map) in [("$input.params('x-id')", &only), ("$input.params('X-ID')", &only)] {
        let render = |params: &Map| {
            Template::parse(src)
                .expect("parse")
                .render_checked(
                    Request {
                        params,
                        ..request("")
                    },
                    &Limits::default(),
                )
                .expect("render")
                .body
        };
        assert_eq!(render(map), render(&params), "{src}");
        assert_eq!(render(map), "h");
    }
}

/// Whether the template's top-level `#foreach` lends its items.
fn lends(src: &str) -> bool {
    let t = Template::parse(src).expect("parse");
    t.body
        .iter()
        .find_map(|n| match n {
            ast::Node::Foreach { lend, .. } => Some(*lend),
            _ => None,
        })
        .expect("a #foreach")
}

#[test]
fn foreach_lends_a_variables_list_only_when_unobservable() {
    let set = "#set($o = $input.path('$'))";
    // Read-only bodies over a variable's list, by properties and indexes: lent.
    assert!(lends(&format!("{set}#foreach($t in $o.tags)$t#end")));
    assert!(lends(&format!("{set}#foreach($t in $o['tags'])$t.length()#end")));
    // Anything that could see the list or change the item: copied.
    for src in [
        "#foreach($t in $input.path('$.tags'))$t#end",
        "#foreach($t in [1..3])$t#end",
        "#foreach($t in $o.tags.subList(0, 1))$t#end",
        "#foreach($t in $o.tags)$o.tags.size()#end",
        "#foreach($t in $o.tags)#set($o.x = 1)#end",
        "#foreach($t in $o.tags)#set($t = 'x')#end",
        "#foreach($t in $o.tags)#set($t.x = 'x')#end",
        "#foreach($t in $o.list)$t.add('x')#end",
        "#foreach($t in $o.list)#foreach($t in [1])#end#end",
        "#foreach($o in $o.list)$o#end",
        "#foreach($foreach in $o.list)$foreach#end",
        "#foreach($t in $context.list)$t#end",
    ] {
        assert!(!lends(&format!("{set}{src}")), "{src}");
    }
}

#[test]
fn lent_items_render_as_copied_ones_and_go_back() {
    let body = r#"{"tags":["a","b","c"],"items":[{"sku":"x","n":[1,2]},{"sku":"y","n":[3]}],"m":{"k":"v"}}"#;
    let cases = [
        // Each item, the loop state, and the list as it was after the loop.
        (
            "#set($o = $input.path('$'))#foreach($t in $o.tags)$t$foreach.hasNext,#end $o.tags $t",
            "atrue,btrue,cfalse, [a, b, c] $t",
        ),
        // Nested lending loops; an inner loop over the outer item's list.
        (
            "#set($o = $input.path('$'))#foreach($i in $o.items)$i.sku:#foreach($n in $i.n)$n#end;#end$o.items",
            "x:12;y:3;[{n=[1, 2], sku=x}, {n=[3], sku=y}]",
        ),
        // #break and #stop put the item back.
        (
            "#set($o = $input.path('$'))#foreach($t in $o.tags)#if($t == 'b')#break#end$t#end$o.tags",
            "a[a, b, c]",
        ),
        (
            "#set($o = $input.path('$'))#foreach($t in $o.tags)$t#if($t == 'b')#stop#end#end$o.tags",
            "ab",
        ),
        // Not a list: the fallback reads the value (a map's values; nothing for others).
        ("#set($o = $input.path('$'))#foreach($v in $o.m)$v#end", "v"),
        (
            "#set($o = $input.path('$'))#foreach($v in $o.missing)$v#end.",
            ".",
        ),
        ("#foreach($v in $never.set)$v#end.", "."),
        // An index evaluated once, before the loop.
        (
            "#set($o = $input.path('$'))#set($k = 'tags')#foreach($t in $o[$k])$t#end",
            "abc",
        ),
        // The loop variable's earlier value comes back after the loop.
        (
            "#set($o = $input.path('$'))#set($t = 'before')#foreach($t in $o.tags)#end$t",
            "before",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render_with(src, body), want, "{src}");
    }
}

#[test]
fn lent_loops_count_the_same_steps_as_copying_ones() {
    let run = |src: &str, max_steps| render_within(src, r#"{"tags":["a","b","c"]}"#, max_steps);
    let lent = "#set($o = $input.path('$'))#foreach($t in $o.tags)$t#end";
    let copied = "#set($o = $input.path('$'))#foreach($t in $o.tags)$t#if(false)$o#end#end";
    assert!(lends(lent) && !lends(copied));
    // The copying loop runs its extra `#if` three times (a node and a condition each).
    let needed = (1..100)
        .find(|&n| run(lent, n).is_ok())
        .expect("renders within 100 steps");
    assert_eq!(run(copied, needed + 6).as_deref(), Ok("abc"));
    assert!(run(copied, needed + 5).is_err());
}

#[test]
fn variables_have_slots_shared_by_interpolated_strings() {
    let t = Template::parse("#set($a = 1)#set($b = \"$a-$c\")$b#foreach($i in [1])$i#end").expect("parse");
    assert_eq!(t.names.len(), ast::Names::default().len() + 4);
    assert_eq!(render("#set($a = 1)#set($b = \"$a-$c\")$b"), "1-$c");
}

/// The payload is read through its JSON tape: what a template reads, changes, compares and
/// passes to methods is what the built value would give.
#[test]
fn payload_values_read_in_place_behave_as_built_ones() {
    let body = r#"{"b":{"n":2,"s":"x\ty","l":[3,"q",{"k":true}],"nul":null,"f":2.50},"a":[1,2],"b":{"n":5,"s":"last","l":[1,2,3],"e":"","m":{"z":1,"y":2}}}"#;
    let r = |src: &str| render_with(src, body);
    // A repeated key: the last one, as the built value keeps it.
    assert_eq!(
        r("#set($o = $input.path('$'))$o.b.n $o.b.s $o.b.l $o.b.m"),
        "5 last [1, 2, 3] {y=2, z=1}"
    );
    assert_eq!(
        r("#set($o = $input.path('$'))$o"),
        "{a=[1, 2], b={e=, l=[1, 2, 3], m={y=2, z=1}, n=5, s=last}}"
    );
    // Methods and operators see built values.
    assert_eq!(
        r("#set($o = $input.path('$'))$o.b.l.size() $o.b.s.toUpperCase() $o.b.m.keySet() $o.a.contains(2)"),
        "3 LAST [y, z] true"
    );
    assert_eq!(
        r("#set($o = $input.path('$'))#if($o.b.s == 'last')eq#end #if($o.b.e)set#end"),
        "eq set"
    );
    assert_eq!(
        r("#set($o = $input.path('$.b'))#foreach($i in $o.l)$i#if($foreach.hasNext),#end#end"),
        "1,2,3"
    );
    assert_eq!(r("#foreach($v in $input.path('$.b.m'))$v;#end"), "2;1;");
    assert_eq!(
        r("$input.path('$.b.l[-1]') $input.path('$.a[5]') $input.json('$.b.m') $input.json('$.b.s')"),
        "3  {\"y\":2,\"z\":1} \"last\""
    );
    assert_eq!(r("$input.path('$..n') $input.path('$.a[*]')"), "[5] [1, 2]");
    // Changes build the value in its variable; the payload itself is untouched.
    assert_eq!(
        r(
            "#set($o = $input.path('$'))#set($o.b.n = 9)$o.b.l.add(4)$o.b.put('t', 1)$o.b.n $o.b.l $o.b.t $input.path('$.b.n') $input.path('$.b.l')"
        ),
        "true9 [1, 2, 3, 4] 1 5 [1, 2, 3]"
    );
    // A JSON value set into a map, and one given back through `$context`.
    let t = Template::parse("#set($m = {})#set($m.x = $input.path('$.b'))$m.x.s #set($context.responseOverride.status = $input.path('$.b.n'))#set($context.responseOverride.header.X = $input.path('$.b.s'))").unwrap();
    let out = t
        .render_checked(request(&body.replace("\"n\":5", "\"n\":201")), &Limits::default())
        .unwrap();
    assert_eq!(out.body, "last ");
    assert_eq!(out.status_override(), Some(201));
    assert_eq!(out.header_overrides(), [("X".to_string(), "last".to_string())]);
    // `$util.parseJson` reads the same way.
    assert_eq!(
        r(r#"#set($j = $util.parseJson('{"k":[1.0,"\u00e9"],"k":[2.5e0,"v"]}'))$j.k[0] $j.k[1] $j.k.size()"#),
        "2.5 v 2"
    );
    // A payload that is not JSON fails with serde_json's message.
    let t = Template::parse("$input.path('$')").unwrap();
    assert!(
        matches!(t.render_checked(request("{\"a\":"), &Limits::default()), Err(RenderError::Payload(m)) if m.contains("EOF"))
    );
}

#[test]
fn context_read_in_place_and_from_a_copy_renders_the_same() {
    // A `#set` of `$context` to a variable never set leaves it as it was and writes nothing,
    // but makes the template copy it (as the fuzz target `mapping_template` does).
    let body = r#"{"errorMessage": "{\"errorType\": \"NotFound\"}", "n": [1, 2]}"#;
    for src in [
        "#set($e = $util.parseJson($input.path('$.errorMessage')))\n{\"type\": \"$e.errorType\", \"id\": \"$context.requestId\"}\n",
        "$context $context.identity.sourceIp #foreach($k in $context.keySet())$k #end",
        "#foreach($i in $input.path('$.n'))$context.stage$i#end",
    ] {
        let copied = format!("#set($context = $fuzzContextCopy)\n{src}");
        assert_eq!(render_with(src, body), render_with(&copied, body), "{src}");
    }
}

#[test]
fn escaped_straight_into_the_output_as_through_a_call() {
    // `$util.escapeJavaScript($ref)` is written without a call; through another variable
    // holding `$util` it is the call itself. Each pair renders alike, within the same steps.
    let body = r#"{"s":"a\"b'c/d\\e\u00e9\ud83d\ude00\n","n":2.50,"o":{"k":[1,"x"]},"z":null,"p":"plain"}"#;
    for arg in [
        "$o.s",
        "$o.p",
        "$o.n",
        "$o.o",
        "$o.o.k",
        "$o.z",
        "$o.missing",
        "$undefined",
        "$context.requestId",
        "$m",
        "$l",
        "$input.path('$.s')",
        "$input.json('$.o')",
        "$o.p.length()",
        "$foreach.index",
    ] {
        let head = "#set($o = $input.path('$'))#set($m = {'a': \"q'\"})#set($l = [1, 'x/y'])";
        let fast = format!("{head}#set($v = $util)[$util.escapeJavaScript({arg})]");
        let call = format!("{head}#set($u = $util)[$u.escapeJavaScript({arg})]");
        renders_as_at_the_step_bound(&fast, &call, body, 200);
    }
    assert_eq!(
        render_with("$util.escapeJavaScript($input.path('$.s'))", body),
        r#"a\"b\'c\/d\\e\u00E9\uD83D\uDE00\n"#
    );
    // A string escaped past the output bound fails as the call does.
    let limits = Limits {
        max_output: 8,
        ..Limits::default()
    };
    let long = Template::parse("#set($o = $input.path('$'))$util.escapeJavaScript($o.s)").expect("parse");
    let called = Template::parse("#set($o = $input.path('$'))#set($u = $util)$u.escapeJavaScript($o.s)")
        .expect("parse");
    assert_eq!(
        long.render_checked(request(body), &limits).map(|r| r.body),
        called.render_checked(request(body), &limits).map(|r| r.body)
    );
}

#[test]
fn params_written_straight_into_the_output_as_through_a_call() {
    for args in [
        "'id'",
        "'q'",
        "'x-trace'",
        "'missing'",
        "''",
        "1",
        "'id', 'q'",
        "$context.stage",
        "",
    ] {
        let fast = format!("#set($v = $input)[$input.params({args})]");
        let call = format!("#set($i = $input)[$i.params({args})]");
        renders_as_at_the_step_bound(&fast, &call, "{}", 100);
    }
    assert_eq!(
        render("$input.params('id')/$input.params('limit')/$input.params('X-TRACE')/$input.params('no')."),
        "42/10/abc/."
    );
    // Written past the output bound, it fails as the call does.
    let limits = Limits {
        max_output: 3,
        ..Limits::default()
    };
    let t = Template::parse("ab$input.params('q')").expect("parse");
    assert_eq!(
        t.render_checked(request("{}"), &limits).map(|r| r.body),
        Err(RenderError::Limit("the output is larger than allowed"))
    );
}

#[test]
fn case_changed_by_the_byte_for_ascii_as_by_the_unicode_mappings() {
    let ascii: String = (0u8..128).map(char::from).collect();
    assert_eq!(ascii.to_ascii_uppercase(), ascii.to_uppercase());
    assert_eq!(ascii.to_ascii_lowercase(), ascii.to_lowercase());
    assert_eq!(
        render_with(
            "$input.path('$.a').toUpperCase()|$input.path('$.a').toLowerCase()|$input.path('$.b').toUpperCase()|$input.path('$.b').toLowerCase()",
            r#"{"a":"Mixed Case 9!","b":"straße ÉTÉ ǅ"}"#
        ),
        "MIXED CASE 9!|mixed case 9!|STRASSE ÉTÉ Ǆ|straße été ǆ"
    );
}

#[test]
fn output_buffer_sized_by_the_last_rendering() {
    let t = Template::parse("#foreach($i in [1..$input.path('$.n')])x#end").expect("parse");
    for n in [3, 1, 200, 2, 0, 50] {
        let body = format!(r#"{{"n":{n}}}"#);
        let want = if n == 0 { "xx".to_string() } else { "x".repeat(n) };
        assert_eq!(
            t.render_checked(request(&body), &Limits::default())
                .map(|r| r.body),
            Ok(want)
        );
    }
}

#[test]
fn a_json_loop_variable_moves_from_item_to_item_whatever_the_body_does_with_it() {
    let body = r#"{"a": [{"k": 1}, "s", [2, 3], 4, {"k": 5}, null, {"k": 6}]}"#;
    // Objects, strings and arrays of the payload move in place; scalars replace them.
    assert_eq!(
        render_with("#foreach($i in $input.path('$.a'))[$i]#end", body),
        "[{k=1}][s][[2, 3]][4][{k=5}][][{k=6}]"
    );
    // A copy the body keeps is its own; the variable set to something else is replaced.
    assert_eq!(
        render_with(
            "#foreach($i in $input.path('$.a'))#if($foreach.first)#set($first = $i)#end\
             #if($foreach.index == 2)#set($i = 'x')#end$i.k;#end $first",
            body
        ),
        "1;;;;5;;6; {k=1}"
    );
    // Nested loops over the same payload keep their own variables.
    assert_eq!(
        render_with(
            "#foreach($i in $input.path('$.a'))#foreach($j in $input.path('$.a'))#end$i.k#end",
            body
        ),
        "156"
    );
}

/// What a rendering gives with a program that may give up: the same as the evaluator (checked
/// by [`RenderChecked`]).
fn planned(src: &str, body: &str, limits: &Limits) -> Result<String, RenderError> {
    let t = Template::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    assert!(t.has_plan(), "{src:?} has the common shape");
    t.render_checked(request(body), limits).map(|r| r.body)
}

#[test]
fn templates_of_the_common_shape_render_by_their_programs_as_the_evaluator_does() {
    let order = r#"{"id":"o-1","customer":{"name":"Ann \"A\" Example","email":"ann@example.com"},
        "items":[{"sku":"a","qty":1,"price":0.5},{"sku":"b","qty":2,"price":1e2},{"sku":"c","qty":3,"price":7}],
        "total":1234.5,"flags":{"gift":true,"rush":false},"tags":["x","y"],"status":"accepted"}"#;
    let template = r##"#set($o = $input.path('$'))
{"id": "$o.id", "name": "$util.escapeJavaScript($o.customer.name)", "mail": "$o.customer.email",
 "lines": [#foreach($i in $o.items){"sku": "$i.sku", "qty": $i.qty, "price": $i.price}#if($foreach.hasNext),#end#end],
 "total": $o.total, "state": "$o.status.toUpperCase()", "lower": "$o.id.toLowerCase()",
 "gift": #if($o.flags.gift)"yes"#elseif($o.flags.rush)"rush"#else"no"#end,
 "rush": #if($o.flags.rush)"yes"#elseif($o.missing)"?"#else"no"#end,
 "tags": "#foreach($t in $o.tags)#if($foreach.first)<#end$t#if($foreach.last)>#else|#end#end",
 "request": "$context.requestId", "ip": "$context.identity.sourceIp", "env": "$stageVariables.env",
 "q": "$input.params('q')", "none": "$o.nothing$o.customer.nothing$context.nothing$stageVariables.nothing",
 "id2": "$input.path('$.id')"}"##;
    let limits = Limits::default();
    let out = planned(
        &template.replace("\"id2\": \"$input.path('$.id')\"", "\"x\": 1"),
        order,
        &limits,
    )
    .expect("renders");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(json["name"], r#"Ann "A" Example"#);
    assert_eq!(json["lines"][1]["price"], 100.0);
    assert_eq!(json["lines"][2]["qty"], 3);
    assert_eq!(
        (
            &json["state"],
            &json["lower"],
            &json["gift"],
            &json["rush"],
            &json["tags"]
        ),
        (
            &"ACCEPTED".into(),
            &"o-1".into(),
            &"yes".into(),
            &"no".into(),
            &"<x|y>".into()
        )
    );
    assert_eq!(
        (
            &json["request"],
            &json["ip"],
            &json["env"],
            &json["q"],
            &json["none"]
        ),
        (
            &"req-1".into(),
            &"127.0.0.1".into(),
            &"test".into(),
            &"cats".into(),
            &"".into()
        )
    );
    // A template with anything else has no program.
    assert!(!Template::parse(template).expect("parse").has_plan());
    for other in [
        "#set($x = 1)$x",
        "#set($o = $input.path('$..a'))$o",
        "#set($o = $input.json('$'))$o",
        "#foreach($i in [1..3])$i#end",
        "#set($o = $input.path('$'))#foreach($i in $o.a)#break#end",
        "#set($o = $input.path('$'))#foreach($i in $o.a)$foreach.index#end",
        "#set($o = $input.path('$'))#foreach($i in $o.a)$velocityCount#end",
        "#set($o = $input.path('$'))$o.a.substring(1)",
        "#set($o = $input.path('$'))$o.a[0]",
        "#set($o = $input.path('$'))#if($o.a == 1)x#end",
        "#set($context.responseOverride.status = 201)",
        "#if($foreach.hasNext)x#end",
        "$util.base64Encode('x')",
        "#stop",
    ] {
        assert!(!Template::parse(other).expect("parse").has_plan(), "{other}");
    }
}

#[test]
fn a_program_gives_up_where_the_evaluator_knows_better() {
    let limits = Limits::default();
    let reads = "#set($o = $input.path('$'))[$o.a.b]#foreach($i in $o.l)($i.k $i)#end[$util.escapeJavaScript($o.s)][$o.s.toUpperCase()]";
    for body in [
        // The usual shape.
        r#"{"a":{"b":1},"l":[{"k":1},{"k":2}],"s":"x"}"#,
        // Members missing, `null`, of another type; items that are not objects.
        r#"{"a":null,"l":null,"s":null}"#,
        r#"{"a":"str","l":"str","s":5}"#,
        r#"{"a":[1],"l":[1,"two",[3],null,{"k":{"x":1}}],"s":"\u00e9\"\n"}"#,
        r#"{"a":{"b":{"c":[1,2.50,-0,1E400]}},"l":{"k":1,"j":2},"s":"straße"}"#,
        // Repeated keys: the last one is the value.
        r#"{"a":{"b":1,"b":2},"l":[],"s":"x","s":"y"}"#,
        // Not an object, not JSON, empty.
        "[1,2]",
        "\"text\"",
        "42",
        "{\"a\":",
        "",
    ] {
        let _ = planned(reads, body, &limits);
    }
    // A variable never set renders as written (or not at all, quiet), as the evaluator has it.
    for src in [
        "$o.a|$!o.a",
        "#set($o = $input.path('$.missing'))$o.a|$!o.a|#foreach($i in $o.l)x#end",
        "#set($o = $input.path('$'))#foreach($i in $o.l)#end$i.k",
        "#set($o = $input.path('$'))#if($o.a)yes#else no#end#if($u.a)yes#end",
    ] {
        assert_eq!(
            planned(src, r#"{"a":1,"l":[{"k":1}]}"#, &limits),
            Template::parse(src)
                .expect("parse")
                .render_evaluated(request(r#"{"a":1,"l":[{"k":1}]}"#), &limits)
                .map(|r| r.body)
        );
    }
    // Loops hold to the iteration bound; nested loops see their own `$foreach`.
    let nested = "#set($o = $input.path('$'))#foreach($r in $o.rows)#foreach($c in $r.cells)$c#if($foreach.hasNext),#end#end#if($foreach.hasNext);#end#end";
    let rows = r#"{"rows":[{"cells":[1,2,3]},{"cells":[4]},{"cells":[]},{"cells":[5,6]}]}"#;
    assert_eq!(planned(nested, rows, &limits), Ok("1,2,3;4;;5,6".into()));
    let few = Limits {
        max_iterations: 2,
        ..Limits::default()
    };
    assert_eq!(planned(nested, rows, &few), Ok("1,2;4".into()));
    // The step and output bounds: the program gives up near them, and the evaluator's answer
    // is the one, at every bound.
    for max_steps in 1..120 {
        let _ = planned(
            nested,
            rows,
            &Limits {
                max_steps,
                ..Limits::default()
            },
        );
    }
    for max_output in 0..16 {
        let _ = planned(
            nested,
            rows,
            &Limits {
                max_output,
                ..Limits::default()
            },
        );
    }
    // `$context` or `$stageVariables` of another shape than the proxy's.
    let context = Value::Map(Map(vec![
        ("a".into(), Value::str("x")),
        ("m".into(), Value::Map(Map(vec![("b".into(), Value::Int(1))]))),
        ("n".into(), Value::Null),
        ("l".into(), Value::List(vec![Value::Int(1)])),
    ]));
    let t =
        Template::parse("$context.a.b|$context.m.b|$context.n.b|$context.l|$context.m|$stageVariables.env.x")
            .expect("parse");
    assert!(t.has_plan());
    let (params, _, stage_variables) = &*SCOPE;
    for context in [context, Value::Null, Value::str("c")] {
        let request = Request {
            body: "{}",
            params,
            context: &context,
            stage_variables,
        };
        let _ = t.render_checked(request, &limits);
    }
    // `$input.body` and `$input.params`, which need no JSON.
    assert_eq!(
        planned(
            "$input.body|$input.params('id')|$input.params('none')",
            "not json",
            &limits
        ),
        Ok("not json|42|".into())
    );
}
