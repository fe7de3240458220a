use super::*;
use crate::model::{FieldPath, Reason};

fn invalid() -> Vec<Invalid> {
    vec![Invalid::new(
        &FieldPath::spec().field("resources"),
        Reason::InvalidPath,
        "bad",
    )]
}

fn ready(u: &StatusUpdate) -> &Cond {
    u.condition(types::READY).expect("Ready")
}

#[test]
fn not_accepted_by_default_repeats_the_accepted_message() {
    let mut c = Conditions::new(Kind::RestApi, &ObjectKey::new("ns", "shop"));
    c.invalid(&invalid());
    let u = c.finish(3, StatusFields::default());
    assert_eq!(u.observed_generation, 3);
    assert_eq!(ready(&u).reason, reasons::NOT_ACCEPTED);
    assert_eq!(ready(&u).message, r#"RestApi "shop": spec.resources: bad"#);
}

#[test]
fn an_explicit_not_ready_of_an_invalid_object_is_kept() {
    let mut c = Conditions::new(Kind::RestApi, &ObjectKey::new("ns", "shop"));
    c.invalid(&invalid());
    c.not_ready(
        reasons::NOT_ACCEPTED,
        "stages prod keep serving their deployments",
    );
    let u = c.finish(1, StatusFields::default());
    assert!(!ready(&u).status);
    assert_eq!(
        ready(&u).message,
        r#"RestApi "shop": stages prod keep serving their deployments"#
    );
}

#[test]
fn an_invalid_object_is_never_ready() {
    let mut c = Conditions::new(Kind::Stage, &ObjectKey::new("ns", "prod"));
    c.invalid(&invalid());
    c.ready("serving");
    let u = c.finish(1, StatusFields::default());
    assert!(!u.is_ready());
    assert_eq!(ready(&u).reason, reasons::NOT_ACCEPTED);
}

#[test]
fn unresolved_refs_are_listed_and_make_ready_false_by_default() {
    let mut c = Conditions::new(Kind::ApiKey, &ObjectKey::new("ns", "k"));
    c.unresolved(reasons::SECRET_NOT_FOUND, "first");
    c.unresolved(reasons::USAGE_PLAN_NOT_FOUND, "second");
    let u = c.finish(1, StatusFields::default());
    let resolved = u.condition(types::RESOLVED_REFS).expect("ResolvedRefs");
    assert_eq!(resolved.reason, reasons::SECRET_NOT_FOUND);
    assert_eq!(resolved.message, r#"ApiKey "k": first; second"#);
    assert_eq!(ready(&u).reason, reasons::REFS_NOT_RESOLVED);
}

/// The fields serialize flat, as one map: a key's id alone, or the other kinds' fields
/// beside the API id; boxed fields that are all empty add nothing.
#[test]
fn status_fields_serialize_flat() {
    let key = StatusFields {
        key_id: KeyId::parse("abcdefghij"),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&key).unwrap(),
        serde_json::json!({"keyId": "abcdefghij"})
    );
    let mut stage = StatusFields::default();
    stage.other().deployment_id = Some("abc123".into());
    stage.other().invoke_url = Some("https://x/prod".into());
    assert_eq!(
        serde_json::to_value(&stage).unwrap(),
        serde_json::json!({"deploymentId": "abc123", "invokeUrl": "https://x/prod"})
    );
    let mut empty = StatusFields {
        api_id: ApiId::parse("a1b2c3d4e5"),
        ..Default::default()
    };
    empty.other();
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        serde_json::json!({"apiId": "a1b2c3d4e5"})
    );
}

/// An ApiKey's status holds its id inline and one pointer for the other kinds' fields.
#[test]
fn a_key_status_is_small() {
    assert!(size_of::<StatusFields>() <= 32, "{}", size_of::<StatusFields>());
    assert!(size_of::<StatusUpdate>() <= 96, "{}", size_of::<StatusUpdate>());
}
