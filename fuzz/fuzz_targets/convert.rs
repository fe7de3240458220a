//! CRD → model conversion: any YAML (or JSON) document that deserialises as a RestApi, Stage,
//! Deployment, UsagePlan or ApiKey spec converts to a model value or to field errors, never a
//! panic. The first line may name the kind (`RestApi`, ...); without it every kind is tried.
#![no_main]

use turnpike_api::{ApiKeySpec, DeploymentSpec, RestApiSpec, StageSpec, UsagePlanSpec, convert};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (kind, doc) = match text.split_once('\n') {
        Some((k @ ("RestApi" | "Stage" | "Deployment" | "UsagePlan" | "ApiKey"), rest)) => (Some(k), rest),
        _ => (None, text),
    };
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(doc) else {
        return;
    };
    // A whole object (`spec:` under it) or a bare spec.
    let spec = value.get("spec").cloned().unwrap_or(value);
    let wants = |k: &str| kind.is_none_or(|want| want == k);
    if wants("RestApi")
        && let Ok(s) = serde_yaml::from_value::<RestApiSpec>(spec.clone())
    {
        let _ = convert::rest_api("default", &s);
    }
    if wants("Stage")
        && let Ok(s) = serde_yaml::from_value::<StageSpec>(spec.clone())
    {
        let _ = convert::stage(&s);
    }
    if wants("Deployment")
        && let Ok(s) = serde_yaml::from_value::<DeploymentSpec>(spec.clone())
    {
        let _ = convert::deployment(&s);
    }
    if wants("UsagePlan")
        && let Ok(s) = serde_yaml::from_value::<UsagePlanSpec>(spec.clone())
    {
        let _ = convert::usage_plan(&s);
    }
    if wants("ApiKey")
        && let Ok(s) = serde_yaml::from_value::<ApiKeySpec>(spec)
    {
        let _ = convert::api_key("key", &s);
    }
});
