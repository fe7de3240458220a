use std::net::IpAddr;

use super::*;

// === PathTemplate ===

fn segments(raw: &str) -> Vec<Segment> {
    PathTemplate::parse(raw).expect(raw).segments().to_vec()
}

#[test]
fn the_root_has_no_segments() {
    assert!(segments("/").is_empty());
}

#[test]
fn literal_param_and_greedy_segments() {
    assert_eq!(
        segments("/pets/{id}/files/{proxy+}"),
        vec![
            Segment::Literal("pets".into()),
            Segment::Param("id".into()),
            Segment::Literal("files".into()),
            Segment::Greedy("proxy".into()),
        ]
    );
    let t = PathTemplate::parse("/a/{x}/{rest+}").expect("template");
    assert_eq!(t.params().collect::<Vec<_>>(), ["x", "rest"]);
    assert_eq!(t.to_string(), "/a/{x}/{rest+}");
}

#[test]
fn a_greedy_root_is_allowed() {
    assert_eq!(segments("/{proxy+}"), vec![Segment::Greedy("proxy".into())]);
}

#[test]
fn literals_may_use_the_aws_punctuation() {
    assert_eq!(
        segments("/v1.2/a-b_c~d:e@f"),
        vec![
            Segment::Literal("v1.2".into()),
            Segment::Literal("a-b_c~d:e@f".into())
        ]
    );
}

#[test]
fn malformed_templates_are_rejected_with_a_reason() {
    for (raw, wanted) in [
        ("", "must start with '/'"),
        ("pets", "must start with '/'"),
        ("/pets/", "must not end with '/'"),
        ("/pets//toys", "empty segment"),
        ("/files/{proxy+}/meta", "must be the last segment"),
        ("/a/{id}/b/{id}", "appears twice"),
        ("/a/{id}/{id+}", "appears twice"),
        ("/a/{}", "a parameter name"),
        ("/a/{1st}", "a parameter name"),
        ("/a/{my-id}", "a parameter name"),
        ("/a/{+}", "a parameter name"),
        ("/a/x{id}", "has the character '{'"),
        ("/a/{id}.json", "has the character '{'"),
        ("/a/b c", "has the character ' '"),
        ("/a/%20", "has the character '%'"),
    ] {
        let err = PathTemplate::parse(raw).expect_err(raw);
        assert!(err.contains(wanted), "{raw:?}: {err:?} should say {wanted:?}");
    }
}

// === MethodKey ===

#[test]
fn method_keys_are_upper_case_and_any_sorts_last() {
    assert_eq!(MethodKey::parse("GET"), Some(MethodKey::Get));
    assert_eq!(MethodKey::parse("ANY"), Some(MethodKey::Any));
    assert_eq!(MethodKey::parse("get"), None);
    assert_eq!(MethodKey::parse("FETCH"), None);
    assert!(MethodKey::EXPLICIT.iter().all(|m| *m < MethodKey::Any));
    assert_eq!(MethodKey::of_request(&http::Method::TRACE), None);
    for m in MethodKey::EXPLICIT {
        let request = http::Method::from_bytes(m.as_str().as_bytes()).expect("method");
        assert_eq!(MethodKey::of_request(&request), Some(m));
    }
}

// === UriTemplate ===

#[test]
fn uri_templates_split_into_literals_params_and_stage_variables() {
    let t = UriTemplate::parse("https://${stageVariables.host}/pets/{id}?v=1").expect("template");
    assert_eq!(
        t.parts(),
        [
            UriPart::Literal("https://".into()),
            UriPart::StageVariable("host".into()),
            UriPart::Literal("/pets/".into()),
            UriPart::PathParam("id".into()),
            UriPart::Literal("?v=1".into()),
        ]
    );
    assert_eq!(t.literal_prefix(), "https://");
    assert_eq!(t.as_str(), "https://${stageVariables.host}/pets/{id}?v=1");
}

#[test]
fn a_template_without_placeholders_is_one_literal() {
    let t = UriTemplate::parse("http://example.com/").expect("template");
    assert_eq!(t.parts(), [UriPart::Literal("http://example.com/".into())]);
    assert!(UriTemplate::parse("").expect("empty").parts().is_empty());
}

#[test]
fn a_template_starting_with_a_variable_has_no_literal_prefix() {
    let t = UriTemplate::parse("${stageVariables.url}/pets").expect("template");
    assert_eq!(t.literal_prefix(), "");
}

#[test]
fn malformed_uri_templates_are_rejected() {
    for (raw, wanted) in [
        ("http://x/{id", "unclosed '{'"),
        ("http://${stageVariables.host/x", "unclosed '${'"),
        ("http://${context.domainName}/", "only ${stageVariables.NAME}"),
        ("http://${stageVariables.a-b}/", "invalid stage variable name"),
        ("http://${stageVariables.}/", "invalid stage variable name"),
        ("http://x/{1}", "invalid path parameter reference"),
        ("http://x/{}", "invalid path parameter reference"),
    ] {
        let err = UriTemplate::parse(raw).expect_err(raw);
        assert!(err.contains(wanted), "{raw:?}: {err:?} should say {wanted:?}");
    }
}

#[test]
fn rendering_fills_placeholders_and_leaves_missing_ones_empty() {
    let t = UriTemplate::parse("http://${stageVariables.host}/pets/{id}/{proxy}").expect("template");
    let rendered = t.render(
        |n| (n == "id").then_some("42"),
        |n| (n == "host").then_some("pets.svc:8080"),
    );
    assert_eq!(rendered, "http://pets.svc:8080/pets/42/");
    assert_eq!(t.render(|_| None, |_| None), "http:///pets//");
}

#[test]
fn rendering_keeps_non_ascii_literals() {
    let t = UriTemplate::parse("http://x/caf\u{e9}/{id}").expect("template");
    assert_eq!(t.render(|_| Some("1"), |_| None), "http://x/caf\u{e9}/1");
}

#[test]
fn stage_variable_names() {
    assert!(is_stage_variable_name("backend_v2"));
    assert!(is_stage_variable_name(&"a".repeat(64)));
    assert!(!is_stage_variable_name(&"a".repeat(65)));
    assert!(!is_stage_variable_name(""));
    assert!(!is_stage_variable_name("bad-name"));
}

// === ResourcePolicy ===

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn rule(cidrs: &[&str], namespaces: &[&str]) -> PolicyRule {
    PolicyRule {
        source_cidrs: cidrs.iter().map(|c| c.parse().expect("cidr")).collect(),
        source_namespaces: namespaces.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn an_empty_policy_answers_the_default() {
    let p = ResourcePolicy::default();
    assert!(p.is_empty());
    assert!(p.allows(ip("203.0.113.9"), None, true));
    assert!(!p.allows(ip("203.0.113.9"), None, false));
}

#[test]
fn allow_rules_match_by_cidr_or_namespace() {
    let p = ResourcePolicy {
        allow: vec![rule(&["10.0.0.0/8", "fd00::/8"], &[]), rule(&[], &["billing"])],
        deny: vec![],
    };
    assert!(p.allows(ip("10.1.2.3"), None, false));
    assert!(p.allows(ip("fd00::1"), None, false));
    assert!(p.allows(ip("192.168.0.1"), Some("billing"), false));
    assert!(!p.allows(ip("192.168.0.1"), Some("shop"), false));
    assert!(!p.allows(ip("192.168.0.1"), None, false));
}

#[test]
fn with_allow_rules_an_unmatched_caller_is_denied_even_by_default() {
    // Once a policy allows someone, it no longer allows everyone.
    let p = ResourcePolicy {
        allow: vec![rule(&["10.0.0.0/8"], &[])],
        deny: vec![],
    };
    assert!(!p.allows(ip("192.168.0.1"), None, true));
}

#[test]
fn deny_beats_allow() {
    let p = ResourcePolicy {
        allow: vec![rule(&["10.0.0.0/8"], &["billing"])],
        deny: vec![rule(&["10.66.0.7/32"], &["untrusted"])],
    };
    assert!(!p.allows(ip("10.66.0.7"), None, true));
    assert!(p.allows(ip("10.66.0.8"), None, false));
    assert!(!p.allows(ip("10.1.1.1"), Some("untrusted"), true));
}

#[test]
fn deny_only_policies_allow_the_rest_by_default() {
    let p = ResourcePolicy {
        allow: vec![],
        deny: vec![rule(&["10.66.0.0/16"], &[])],
    };
    assert!(!p.allows(ip("10.66.1.1"), None, true));
    assert!(p.allows(ip("10.67.1.1"), None, true));
    assert!(!p.allows(ip("10.67.1.1"), None, false));
}
