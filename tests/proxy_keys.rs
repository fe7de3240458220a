//! API keys end to end: methods with `apiKeyRequired` admit only an enabled key that is in a
//! usage plan of the stage; every refusal is the same AWS answer (403 Forbidden).

#[path = "support/proxy.rs"]
mod support;

use std::net::SocketAddr;

use support::*;
use turnpike_controller::ingest::world_from_yaml;
use turnpike_core::compile::{CompileConfig, compile};
use turnpike_core::model::KeyId;

const NS: &str = "keys";
const GOOD: &str = "GoodKey0123456789abcdefXYZ";
const OFF: &str = "DisabledKey0123456789abcd";
const ELSEWHERE: &str = "ElsewhereKey0123456789abc";
const NO_PLAN: &str = "NoPlanKey0123456789abcdef";
const PARTNER: &str = "PartnerKey0123456789abcde";

fn yaml(up: SocketAddr) -> String {
    let api = ApiSet::new(NS, "shop")
        .keyed_proxy("/pets", "GET", &format!("http://{up}/echo/pets"))
        .proxy("/open", "GET", &format!("http://{up}/echo/open"))
        .stage("prod")
        .stage("dev")
        .stage("beta")
        .yaml();
    // In the beta plan by its labels (the plan's apiKeySelector), naming no plan itself.
    let partner = api_key_yaml(NS, "partner", PARTNER, &[], true).replace(
        &format!("metadata: {{name: partner, namespace: {NS}}}"),
        &format!("metadata: {{name: partner, namespace: {NS}, labels: {{tier: partner}}}}"),
    );
    [
        api,
        usage_plan_yaml(NS, "gold", &[("shop", "prod")], ""),
        usage_plan_yaml(NS, "devplan", &[("shop", "dev")], ""),
        api_key_yaml(NS, "good", GOOD, &["gold"], true),
        api_key_yaml(NS, "off", OFF, &["gold"], false),
        api_key_yaml(NS, "elsewhere", ELSEWHERE, &["devplan"], true),
        api_key_yaml(NS, "noplan", NO_PLAN, &[], true),
        usage_plan_yaml(
            NS,
            "partners",
            &[("shop", "beta")],
            "  apiKeySelector: {matchLabels: {tier: partner}}",
        ),
        partner,
    ]
    .concat()
}

/// Compiles without insisting that every object is ready (a disabled key is reported so).
fn lenient_table(yaml: &str) -> turnpike_core::routing::RoutingTable {
    let world = world_from_yaml(yaml).expect("yaml");
    compile(&world, &CompileConfig::default(), 1).table
}

fn assert_forbidden(a: &Answer, what: &str) {
    assert_eq!(a.status, 403, "{what}: {}", a.body);
    assert_eq!(a.body, r#"{"message":"Forbidden"}"#, "{what}");
    assert_eq!(a.header("x-amzn-errortype"), Some("ForbiddenException"), "{what}");
    assert_eq!(a.header("content-type"), Some("application/json"), "{what}");
    assert!(a.header("x-amzn-requestid").is_some(), "{what}");
    assert!(a.header("x-amz-apigw-id").is_some(), "{what}");
}

#[tokio::test]
async fn keys_are_required_valid_enabled_and_in_a_plan_of_the_stage() {
    let up = Upstream::start().await;
    let gw = Gateway::start(lenient_table(&yaml(up.addr))).await;
    let api = api_id(NS, "shop");
    let client = client(false);
    let pets = gw.url(&api, "prod", "/pets");

    let ok = get_with_key(&client, &pets, Some(GOOD)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.header("x-amzn-errortype").is_none());
    // The key reaches the backend like any other header (AWS forwards it).
    assert_eq!(ok.json()["headers"]["x-api-key"], GOOD);

    for (what, key) in [
        ("missing", None),
        ("unknown", Some("UnknownKey0123456789abcdef")),
        ("too short to be a key", Some("x")),
        ("disabled", Some(OFF)),
        ("in a plan of another stage only", Some(ELSEWHERE)),
        ("in no plan", Some(NO_PLAN)),
        ("the right key in lower case", Some(&GOOD.to_lowercase())),
    ] {
        assert_forbidden(&get_with_key(&client, &pets, key).await, what);
    }
    // The key of the dev plan works on dev, and the prod key does not.
    assert_eq!(
        get_with_key(&client, &gw.url(&api, "dev", "/pets"), Some(ELSEWHERE))
            .await
            .status,
        200
    );
    assert_forbidden(
        &get_with_key(&client, &gw.url(&api, "dev", "/pets"), Some(GOOD)).await,
        "prod key on dev",
    );
    // A key the beta plan selects by label is admitted on beta, and only there; the
    // unlabelled key in no plan is not selected.
    let beta = gw.url(&api, "beta", "/pets");
    assert_eq!(get_with_key(&client, &beta, Some(PARTNER)).await.status, 200);
    assert_forbidden(
        &get_with_key(&client, &pets, Some(PARTNER)).await,
        "selected key on prod",
    );
    assert_forbidden(
        &get_with_key(&client, &beta, Some(NO_PLAN)).await,
        "unselected key on beta",
    );
    // Methods without apiKeyRequired need no key, and ignore a wrong one.
    let open = gw.url(&api, "prod", "/open");
    assert_eq!(get_with_key(&client, &open, None).await.status, 200);
    assert_eq!(get_with_key(&client, &open, Some("junk")).await.status, 200);
    // An unknown route is still the missing-token answer, key or not.
    let miss = get_with_key(&client, &gw.url(&api, "prod", "/nothing"), Some(GOOD)).await;
    assert_eq!(miss.status, 403);
    assert_eq!(
        miss.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
}

#[tokio::test]
async fn over_http2_and_curl_too() {
    let up = Upstream::start().await;
    let gw = Gateway::start(lenient_table(&yaml(up.addr))).await;
    let api = api_id(NS, "shop");
    let pets = gw.url(&api, "prod", "/pets");
    assert_eq!(get_with_key(&client(true), &pets, Some(GOOD)).await.status, 200);
    assert_forbidden(
        &get_with_key(&client(true), &pets, Some(OFF)).await,
        "h2 disabled",
    );
    let (status, out) = curl(&["-H", &format!("x-api-key: {GOOD}"), &pets]).await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = curl(&[&pets]).await;
    assert_eq!(status, 403, "{out}");
    assert!(out.contains(r#"{"message":"Forbidden"}"#), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("x-amzn-errortype: forbiddenexception"),
        "{out}"
    );
}

#[test]
fn the_table_holds_digests_not_values() {
    let table = lenient_table(&yaml("127.0.0.1:9".parse().expect("addr")));
    let shown = format!("{table:?}");
    for value in [GOOD, OFF, ELSEWHERE, NO_PLAN, PARTNER] {
        assert!(!shown.contains(value), "a key value is in the table");
    }
    let ids: Vec<&KeyId> = table.keys().map(|k| &k.id).collect();
    assert_eq!(ids.len(), 5);
}
