//! API semantics of the embedded server, checked through kube-rs and raw HTTP: status codes and
//! reasons of failures, optimistic concurrency, selectors and pagination, patches, server-side
//! apply conflicts, finalizers, garbage collection, namespace deletion, watch resumption.

#[path = "apiserver/support.rs"]
mod support;

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::Status,
};
use serde_json::{Value, json};
use turnpike_api::Stage;

fn api_err(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

/// Sends a raw request and returns (status, body as JSON).
async fn raw(client: &Client, method: &str, path: &str, ct: &str, body: &str) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", ct)
        .body(body.as_bytes().to_vec())
        .expect("request");
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_use_the_real_codes_and_reasons() {
    let srv = support::start().await;
    support::install_crds(&srv.client).await;
    let stages: Api<Stage> = Api::namespaced(srv.client.clone(), "default");
    let good: Stage = serde_yaml::from_str(&support::fixture("stage.yaml")).expect("fixture");
    let created = stages
        .create(&PostParams::default(), &good)
        .await
        .expect("create");

    // NotFound
    let e = api_err(stages.get("nope").await.expect_err("missing"));
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "stages.turnpike.dev \"nope\" not found");
    // AlreadyExists
    let e = api_err(
        stages
            .create(&PostParams::default(), &good)
            .await
            .expect_err("dup"),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    // Conflict on a stale resourceVersion
    let mut stale = created.clone();
    stages
        .patch(
            "petstore-prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"description": "x"}})),
        )
        .await
        .expect("patch");
    stale.spec.description = Some("stale".into());
    let e = api_err(
        stages
            .replace("petstore-prod", &PostParams::default(), &stale)
            .await
            .expect_err("stale"),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));

    // Invalid: schema maximum, with the field in details.causes
    let bad = support::fixture("stage-invalid.yaml");
    let bad: Value = serde_yaml::from_str(&bad).expect("yaml");
    let (code, status) = raw(
        &srv.client,
        "POST",
        "/apis/turnpike.dev/v1alpha1/namespaces/default/stages",
        "application/json",
        &bad.to_string(),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.canarySettings.percentTraffic"
    );
    assert_eq!(
        status["message"],
        "Stage.turnpike.dev \"petstore-bad\" is invalid: spec.canarySettings.percentTraffic: Invalid value: 150: \
         spec.canarySettings.percentTraffic in body should be less than or equal to 100"
    );
    // Invalid: CEL rule on the spec (deploymentRef required unless autoDeploy)
    let mut no_ref = bad.clone();
    no_ref["metadata"]["name"] = json!("no-ref");
    no_ref["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("deploymentRef");
    no_ref["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("canarySettings");
    let (code, status) = raw(
        &srv.client,
        "POST",
        "/apis/turnpike.dev/v1alpha1/namespaces/default/stages",
        "application/json",
        &no_ref.to_string(),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deploymentRef is required unless autoDeploy is true")
    );
    // Invalid: transition rule (stageName is immutable)
    let e = api_err(
        stages
            .patch(
                "petstore-prod",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"stageName": "other"}})),
            )
            .await
            .expect_err("immutable"),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message
            .contains("spec.stageName: Invalid value: \"other\": stageName is immutable"),
        "{}",
        e.message
    );
    // Enum
    let plan = json!({"apiVersion": "turnpike.dev/v1alpha1", "kind": "UsagePlan",
        "metadata": {"name": "p"}, "spec": {"quota": {"limit": 5, "period": "YEAR"}}});
    let (code, status) = raw(
        &srv.client,
        "POST",
        "/apis/turnpike.dev/v1alpha1/namespaces/default/usageplans",
        "application/json",
        &plan.to_string(),
    )
    .await;
    assert_eq!(code, 422);
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.quota.period: Unsupported value: \"YEAR\""),
        "{status}"
    );

    // BadRequest: malformed JSON and YAML
    let (code, status) = raw(
        &srv.client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        "{not json",
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = raw(
        &srv.client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/yaml",
        "a: [b",
    )
    .await;
    assert_eq!(code, 400);
    // Kind mismatch
    let (code, _) = raw(
        &srv.client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(code, 400);
    // Unknown resource
    let (code, status) = raw(&srv.client, "GET", "/apis/turnpike.dev/v1alpha1/widgets", "", "").await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    // Strategic merge patch on a custom resource, and unknown patch types
    let (code, status) = raw(
        &srv.client,
        "PATCH",
        "/apis/turnpike.dev/v1alpha1/namespaces/default/stages/petstore-prod",
        "application/strategic-merge-patch+json",
        "{}",
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    // MethodNotAllowed
    let (code, status) = raw(
        &srv.client,
        "PUT",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        "{}",
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (405, Some("MethodNotAllowed")));
    // Namespace that does not exist
    let e = api_err(
        Api::<ConfigMap>::namespaced(srv.client.clone(), "ghost")
            .create(&PostParams::default(), &cm("a", &[]))
            .await
            .expect_err("no ns"),
    );
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));

    // None of this changed the stored object.
    let now = stages.get("petstore-prod").await.expect("get");
    assert_eq!(now.spec.stage_name, "prod");
    assert_eq!(now.spec.description.as_deref(), Some("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_get_401() {
    let srv = support::start().await;
    let http = reqwest_like_get(srv.handle.addr).await;
    assert!(http.contains("401"), "{http}");
}

/// A bare HTTPS GET without a token, through rustls with verification off (we only look at
/// the status line).
async fn reqwest_like_get(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let config = support::insecure_tls::client_config();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector
        .connect("localhost".try_into().expect("name"), tcp)
        .await
        .expect("tls");
    tls.write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_selectors_and_pagination() {
    let srv = support::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(srv.client.clone(), "default");
    for (i, tier) in ["fe", "fe", "be", "be", "db"].iter().enumerate() {
        cms.create(
            &PostParams::default(),
            &cm(&format!("cm-{i}"), &[("tier", tier), ("app", "shop")]),
        )
        .await
        .expect("create");
    }
    let names =
        |l: kube::core::ObjectList<ConfigMap>| l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>();
    let l = cms
        .list(&ListParams::default().labels("tier=fe"))
        .await
        .expect("list");
    assert_eq!(names(l), vec!["cm-0", "cm-1"]);
    let l = cms
        .list(&ListParams::default().labels("tier in (be,db),app"))
        .await
        .expect("list");
    assert_eq!(names(l), vec!["cm-2", "cm-3", "cm-4"]);
    let l = cms
        .list(&ListParams::default().labels("tier notin (fe),tier!=db"))
        .await
        .expect("list");
    assert_eq!(names(l), vec!["cm-2", "cm-3"]);
    let l = cms
        .list(&ListParams::default().fields("metadata.name=cm-3"))
        .await
        .expect("list");
    assert_eq!(names(l), vec!["cm-3"]);
    // limit + continue
    let p1 = cms.list(&ListParams::default().limit(2)).await.expect("page 1");
    let token = p1.metadata.continue_.clone().expect("continue token");
    assert_eq!(names(p1), vec!["cm-0", "cm-1"]);
    let p2 = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(names(p2), vec!["cm-2", "cm-3"]);
    // generateName
    let mut g = cm("", &[]);
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = cms
        .create(&PostParams::default(), &g)
        .await
        .expect("generateName");
    assert!(made.name_any().starts_with("gen-") && made.name_any().len() == 9);
    // resourceVersions increase, uid and creationTimestamp are set
    let a = cms.get("cm-0").await.expect("get");
    let b = cms.get("cm-1").await.expect("get");
    let rv = |c: &ConfigMap| {
        c.resource_version()
            .and_then(|r| r.parse::<u64>().ok())
            .expect("rv")
    };
    assert!(rv(&b) > rv(&a));
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_and_server_side_apply_conflicts() {
    let srv = support::start().await;
    let deps: Api<Deployment> = Api::namespaced(srv.client.clone(), "default");
    let dep: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "side:1"}]}}}
    }))
    .expect("deployment");
    deps.patch("web", &PatchParams::apply("alice"), &Patch::Apply(&dep))
        .await
        .expect("apply create");
    // Strategic merge: containers and env merge by name.
    let smp = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}}}});
    let d = deps
        .patch("web", &PatchParams::default(), &Patch::Strategic(smp))
        .await
        .expect("smp");
    let cs = d.spec.expect("spec").template.spec.expect("pod spec").containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("app:2"));
    assert_eq!(cs[0].env.as_ref().map(Vec::len), Some(2));
    // Bob applies a different replica count: conflict with alice.
    let bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let e = api_err(
        deps.patch("web", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await
            .expect_err("conflict"),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("conflict with \"alice\""), "{}", e.message);
    let d = deps
        .patch("web", &PatchParams::apply("bob").force(), &Patch::Apply(&bob))
        .await
        .expect("force");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
    // Alice drops the sidecar from her configuration: it is removed.
    let mut alice2 = serde_json::to_value(&dep).expect("json");
    alice2["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .truncate(1);
    alice2["spec"].as_object_mut().expect("spec").remove("replicas");
    // The strategic merge patch above took the image; alice agrees with it now.
    alice2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:2");
    let d = deps
        .patch("web", &PatchParams::apply("alice"), &Patch::Apply(&alice2))
        .await
        .expect("apply");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.template.spec.expect("pod").containers.len(), 1);
    assert_eq!(spec.replicas, Some(3), "bob's field stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_gc_and_namespace_deletion() {
    let srv = support::start().await;
    let nss: Api<Namespace> = Api::all(srv.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns"),
    )
    .await
    .expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(srv.client.clone(), "team");
    // Finalizers hold deletion until removed.
    let mut f = cm("held", &[]);
    f.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &f).await.expect("create");
    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let held = cms.get("held").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("drop finalizer");
    assert_eq!(api_err(cms.get("held").await.expect_err("gone")).code, 404);

    // Background GC through ownerReferences.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .expect("owner");
    let mut dep = cm("dependent", &[]);
    dep.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().expect("uid"),
        ..Default::default()
    }]);
    cms.create(&PostParams::default(), &dep).await.expect("dependent");
    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    support::eventually(5, "dependent collected", || async {
        cms.get_opt("dependent").await.expect("get").is_none()
    })
    .await;

    // Orphan keeps the dependent and drops the reference.
    let owner = cms
        .create(&PostParams::default(), &cm("owner2", &[]))
        .await
        .expect("owner");
    dep.metadata.name = Some("dependent2".into());
    dep.metadata.owner_references.as_mut().expect("refs")[0].uid = owner.metadata.uid.clone().expect("uid");
    dep.metadata.owner_references.as_mut().expect("refs")[0].name = "owner2".into();
    cms.create(&PostParams::default(), &dep).await.expect("dependent");
    cms.delete("owner2", &DeleteParams::orphan())
        .await
        .expect("orphan");
    let kept = cms.get("dependent2").await.expect("kept");
    assert!(kept.metadata.owner_references.unwrap_or_default().is_empty());

    // Foreground: the owner waits (foregroundDeletion finalizer) until its dependents are gone.
    let owner = cms
        .create(&PostParams::default(), &cm("owner3", &[]))
        .await
        .expect("owner");
    dep.metadata.name = Some("dependent3".into());
    dep.metadata.owner_references.as_mut().expect("refs")[0].uid = owner.metadata.uid.clone().expect("uid");
    dep.metadata.owner_references.as_mut().expect("refs")[0].name = "owner3".into();
    cms.create(&PostParams::default(), &dep).await.expect("dependent");
    let pending = cms
        .delete("owner3", &DeleteParams::foreground())
        .await
        .expect("foreground");
    let pending = pending.left().expect("the owner is not deleted at once");
    assert!(
        pending
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    support::eventually(5, "foreground deletion finished", || async {
        cms.get_opt("owner3").await.expect("get").is_none()
            && cms.get_opt("dependent3").await.expect("get").is_none()
    })
    .await;

    // Namespace deletion removes the contents, then the namespace.
    nss.delete("team", &DeleteParams::default())
        .await
        .expect("delete ns");
    let e = api_err(
        cms.create(&PostParams::default(), &cm("late", &[]))
            .await
            .expect_err("terminating"),
    );
    assert_eq!(e.code, 403);
    support::eventually(10, "namespace removed", || async {
        nss.get_opt("team").await.expect("get").is_none()
    })
    .await;
    assert!(
        cms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_and_expires() {
    let srv = support::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(srv.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("w1", &[]))
        .await
        .expect("create");
    let rv = first.resource_version().expect("rv");
    cms.create(&PostParams::default(), &cm("w2", &[]))
        .await
        .expect("create");
    cms.delete("w1", &DeleteParams::default()).await.expect("delete");
    // Resuming from rv replays exactly what came after it.
    let mut s = cms
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match s.try_next().await.expect("event").expect("open") {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.name_any())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.name_any())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec!["ADDED w2", "DELETED w1"]);

    // After a restart the event window starts over: older versions are 410 Expired.
    let dir = srv.dir.path().to_path_buf();
    let mut handle = srv.handle;
    handle.shutdown();
    let config =
        turnpike_apiserver::ApiServerConfig::new(&dir).with_addr("127.0.0.1:0".parse().expect("addr"));
    let again = turnpike_apiserver::ApiServer::start(config)
        .await
        .expect("restart");
    let client = again.client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    assert!(
        cms.get_opt("w2").await.expect("get").is_some(),
        "objects survive a restart"
    );
    let err = match cms.watch(&WatchParams::default().timeout(2), &rv).await {
        Err(e) => api_err(e),
        Ok(s) => {
            let ev = s.boxed().try_next().await;
            match ev {
                Ok(Some(WatchEvent::Error(e))) => *e,
                other => panic!("expected 410, got {other:?}"),
            }
        }
    };
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_bookmarks() {
    let srv = support::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(srv.client.clone(), "default");
    let mut s = cms
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .expect("watch")
        .boxed();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(9);
    loop {
        let ev = tokio::time::timeout_at(deadline, s.try_next())
            .await
            .expect("a bookmark in time");
        if let Some(WatchEvent::Bookmark(b)) = ev.expect("event") {
            assert!(!b.metadata.resource_version.is_empty());
            break;
        }
    }
}
