//! Mapping templates, the parts: the request and response templates of
//! `benches/proxy/templates.sh` (a typical JSON-to-JSON reshaping, about twenty lines in all)
//! rendered over the same 1 KiB order and the same backend answer, with a `$context` and
//! `$input.params()` the size of the proxy's.
//!
//! Run: `cargo bench -p turnpike-core --bench templates`.

#[path = "../../../benches/support/order.rs"]
mod order;

use criterion::{Criterion, criterion_group, criterion_main};
use turnpike_core::template::{Limits, Map, Request, Template, Value};

/// The templated route's request template (`benches/proxy/server.rs`).
const REQUEST_TEMPLATE: &str = r##"#set($o = $input.path('$'))
{
  "orderId": "$o.id",
  "customer": {"name": "$util.escapeJavaScript($o.customer.name)", "email": "$o.customer.email"},
  "lines": [
#foreach($i in $o.items)
    {"sku": "$i.sku", "quantity": $i.qty, "unitPrice": $i.price}#if($foreach.hasNext),#end
#end
  ],
  "total": $o.total,
  "requestId": "$context.requestId",
  "source": "$input.params('source')"
}
"##;

/// The templated route's response template.
const RESPONSE_TEMPLATE: &str = r##"#set($r = $input.path('$'))
{
  "order": "$r.id",
  "state": "$r.status.toUpperCase()",
  "etaDays": $r.eta.days,
  "lines": [#foreach($l in $r.items)"$l.sku:$l.state"#if($foreach.hasNext),#end#end],
  "stage": "$context.stage"
}
"##;

/// The upstream's answer on the templated route.
const BACKEND_ANSWER: &str = r#"{"id":"order-20261202-0001","status":"accepted","eta":{"days":3},"items":[{"sku":"sku-0000","state":"reserved"},{"sku":"sku-0001","state":"reserved"},{"sku":"sku-0002","state":"backordered"}]}"#;

/// `$input.params()` as the proxy builds it for the benchmark's POST.
fn params() -> Map {
    Request::params_of(
        [("proxy", "orders")],
        [("source", "bench")],
        [
            ("host", "abcdefghij.execute-api.local.turnpike.dev"),
            ("content-type", "application/json"),
            ("content-length", "1024"),
        ],
    )
}

/// `$context` as the proxy builds it: its sixteen variables, `identity` nested.
fn context() -> Map {
    let mut identity = Map::default();
    for (k, v) in [
        ("sourceIp", "127.0.0.1"),
        ("userAgent", ""),
        ("apiKey", ""),
        ("apiKeyId", ""),
    ] {
        identity.insert(k.into(), Value::str(v));
    }
    let mut map = Map::default();
    for (k, v) in [
        ("requestId", "c0ffee00-0000-4000-8000-000000000001"),
        ("extendedRequestId", "c0ffee00-0000-4000-8000-000000000001"),
        ("apiId", "abcdefghij"),
        ("resourceId", "abc123"),
        ("resourcePath", "/t/{proxy+}"),
        ("httpMethod", "POST"),
        ("path", "/prod/t/orders"),
        ("protocol", "HTTP/1.1"),
        ("stage", "prod"),
        ("domainName", "abcdefghij.execute-api.local.turnpike.dev"),
        ("domainPrefix", "abcdefghij"),
        ("requestTime", "02/Dec/2026:10:00:00 +0000"),
        ("requestTimeEpoch", "1796205600000"),
        ("accountId", "000000000000"),
    ] {
        map.insert(k.into(), Value::str(v));
    }
    map.insert("identity".into(), Value::Map(identity));
    map
}

fn templates(c: &mut Criterion) {
    let request_template = Template::parse(REQUEST_TEMPLATE).expect("the request template parses");
    let response_template = Template::parse(RESPONSE_TEMPLATE).expect("the response template parses");
    // Both have the common shape: they render by their programs.
    assert!(request_template.has_plan() && response_template.has_plan());
    let body = order::validated_body();
    assert_eq!(body.len(), 1024);
    let (params, context, stage_variables) = (params(), Value::Map(context()), Map::default());
    let limits = Limits::default();
    let render = |template: &Template, body: &str| {
        template
            .render(
                Request {
                    body,
                    params: &params,
                    context: &context,
                    stage_variables: &stage_variables,
                },
                &limits,
            )
            .expect("renders")
    };
    // The output is what the proxy benchmark checks for.
    assert!(
        render(&response_template, BACKEND_ANSWER)
            .body
            .contains(r#""state": "ACCEPTED""#)
    );
    assert!(
        render(&request_template, &body)
            .body
            .contains(r#""source": "bench""#)
    );
    c.bench_function("the 1 KiB order read into a tape", |b| {
        b.iter(|| turnpike_core::template::tape::read(std::hint::black_box(&body)))
    });
    c.bench_function("request template over a 1 KiB order", |b| {
        b.iter(|| render(&request_template, std::hint::black_box(&body)))
    });
    c.bench_function("response template over the backend's answer", |b| {
        b.iter(|| render(&response_template, std::hint::black_box(BACKEND_ANSWER)))
    });
}

criterion_group!(benches, templates);
criterion_main!(benches);
