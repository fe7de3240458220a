//! Mapping templates on HTTP integrations, end to end with curl against the `/mirror`
//! backend (which answers the body it received): the request template's output is what the
//! backend gets, the response template's is what the client gets (with
//! `$context.responseOverride`); every passthroughBehavior; a template that breaches its
//! limits is a 500 for that request only.

use std::net::SocketAddr;

use crate::support::*;

fn api(up: SocketAddr) -> String {
    let spec = format!(
        r##"  resources:
    /orders/{{id}}:
      POST:
        integration:
          type: HTTP
          uri: "http://{up}/mirror"
          requestTemplates:
            application/json: |
              #set($o = $input.path('$'))
              {{"orderId": "$input.params('id')", "customer": "$util.escapeJavaScript($o.customer)", "lines": [#foreach($l in $o.items){{"sku": "$l.sku", "qty": $l.qty}}#if($foreach.hasNext),#end#end], "stage": "$context.stage", "tier": "$stageVariables.tier"}}
          integrationResponses:
            - statusCode: "200"
              responseTemplates:
                application/json: |
                  #set($r = $input.path('$'))
                  #if($r.lines.size() > 2)
                  #set($context.responseOverride.status = 202)
                  #set($context.responseOverride.header.X-Order-Size = "large")
                  #end
                  {{"id": "$r.orderId", "count": $r.lines.size(), "first": $input.json('$.lines[0]')}}
    /match:
      POST:
        integration:
          type: HTTP
          uri: "http://{up}/mirror"
          passthroughBehavior: WHEN_NO_MATCH
          requestTemplates: {{application/json: '{{"wrapped": $input.json(''$'')}}'}}
    /templates:
      POST:
        integration:
          type: HTTP
          uri: "http://{up}/mirror"
          passthroughBehavior: WHEN_NO_TEMPLATES
          requestTemplates: {{application/json: '{{"wrapped": $input.json(''$'')}}'}}
    /none:
      POST:
        integration:
          type: HTTP
          uri: "http://{up}/mirror"
          passthroughBehavior: WHEN_NO_TEMPLATES
    /busy:
      POST:
        integration:
          type: HTTP
          uri: "http://{up}/mirror"
          requestTemplates:
            application/json: '#foreach($a in [1..1000])#foreach($b in [1..1000])$a#end#end'
"##
    );
    ApiSet::new(NS, "templated")
        .spec(&spec)
        .stage_with("prod", "  variables: {tier: gold}")
        .yaml()
}

async fn post(url: &str, content_type: &str, body: &str) -> (u16, String, String) {
    let (status, text) = curl(&[
        "-X",
        "POST",
        url,
        "-H",
        &format!("Content-Type: {content_type}"),
        "-d",
        body,
    ])
    .await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", &text));
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_templates_reshape_both_ways() {
    let up = Upstream::start().await;
    let mut gw = Gateway::start(table(&api(up.addr), 1)).await;
    let url = |path: &str| gw.plain_url(&api_id(NS, "templated"), "prod", path);

    let order = r#"{"customer": "Ann \"A\"", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}"#;
    let (status, head, body) = post(&url("/orders/o-7"), "application/json", order).await;
    assert_eq!(status, 200, "{head}{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let got: serde_json::Value = serde_json::from_str(&body).expect(&body);
    assert_eq!(
        got,
        serde_json::json!({"id": "o-7", "count": 2, "first": {"sku": "a", "qty": 1}})
    );

    // Three lines: the response template overrides the status and adds a header.
    let big = r#"{"customer": "Bo", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}, {"sku": "c", "qty": 3}]}"#;
    let (status, head, body) = post(&url("/orders/o-8"), "application/json; charset=utf-8", big).await;
    assert_eq!(status, 202, "{head}{body}");
    assert!(head.contains("x-order-size: large"), "{head}");
    assert!(body.contains(r#""count": 3"#), "{body}");

    // WHEN_NO_MATCH: a JSON body is wrapped, an XML one passes through untouched.
    let (status, _, body) = post(&url("/match"), "application/json", r#"{"a":1}"#).await;
    assert_eq!((status, body.trim()), (200, r#"{"wrapped": {"a":1}}"#));
    let (status, head, body) = post(&url("/match"), "application/xml", "<a>1</a>").await;
    assert_eq!((status, body.as_str()), (200, "<a>1</a>"));
    assert!(head.contains("content-type: application/xml"), "{head}");

    // WHEN_NO_TEMPLATES: with templates, an unmatched type is refused; without any, it passes.
    let (status, _, body) = post(&url("/templates"), "application/xml", "<a>1</a>").await;
    assert_eq!(
        (status, body.as_str()),
        (415, r#"{"message": "Unsupported Media Type"}"#)
    );
    let (status, _, body) = post(&url("/none"), "application/xml", "<a>1</a>").await;
    assert_eq!((status, body.as_str()), (200, "<a>1</a>"));

    // A template that runs past its step bound fails that request, not the gateway.
    let hits = up.hits();
    let (status, _, body) = post(&url("/busy"), "application/json", "{}").await;
    assert_eq!(
        (status, body.as_str()),
        (500, r#"{"message": "Internal server error"}"#)
    );
    assert_eq!(up.hits(), hits, "nothing reached the backend");
    let (status, _, _) = post(&url("/match"), "application/json", "{}").await;
    assert_eq!(status, 200);

    gw.shutdown().await;
}
