//! The controller end to end: the embedded API server, real kubectl, and in-process Turnpike
//! replicas serving real HTTPS requests. Every port is chosen by the OS on loopback; every
//! wait polls with a bounded deadline; nothing asserts on timing.
//!
//! ```sh
//! cargo test --test controller_e2e
//! ```

mod controller_support;
#[path = "support/proxy.rs"]
mod support;

use std::time::Duration;

use controller_support::*;
use http::Request;
use serde_json::Value;
use turnpike_controller::node::Node;

/// The `v` a stage answers on `GET /v` (None if it does not answer 200).
async fn version_of(node: &Node, api: &str, stage: &str, header: Option<(&str, &str)>) -> Option<String> {
    let addr = node.public.expect("public listener");
    let mut req = Request::get(url(addr, api, stage, "/v"));
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let answer = support::send(
        &support::client(false),
        req.body(support::empty()).expect("request"),
    )
    .await;
    (answer.status == 200).then(|| answer.json()["v"].as_str().unwrap_or_default().to_string())
}

/// Waits until `stage` answers `version`.
async fn serves(node: &Node, api: &str, stage: &str, version: &str) {
    eventually(&format!("{stage} serves {version}"), DEADLINE, || async {
        (version_of(node, api, stage, None).await? == version).then_some(())
    })
    .await;
}

/// Points Stage `name` at Deployment `deployment` (a merge patch, as a user would).
fn point_stage(c: &Cluster, name: &str, deployment: &str) {
    let patch = format!(r#"{{"spec":{{"deploymentRef":{{"name":"{deployment}"}}}}}}"#);
    c.kubectl(&[
        "patch",
        "stage",
        name,
        "-n",
        "default",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

async fn wait_ready(c: &Cluster, what: &str) {
    eventually(&format!("{what} Ready"), DEADLINE, || async {
        let cond = c.condition(what, "Ready")?;
        (cond["status"] == "True").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_become_ready_and_serve_and_an_invalid_api_names_its_field() {
    let c = Cluster::start().await;
    let node = c.node("a").await;
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples");
    c.kubectl(&["apply", "-f", samples]);

    // Every object is Ready, as `kubectl wait` sees it.
    eventually("every sample Ready", DEADLINE, || async {
        c.try_kubectl(
            &[
                "wait",
                "--for=condition=Ready",
                "restapis,apideploy,stages,usageplans,apikeys",
                "--all",
                "-n",
                "default",
                "--timeout=10s",
            ],
            None,
        )
        .ok()
    })
    .await;

    // The printer columns read status: the stage URL is the local path form on our listener.
    let stages = c.kubectl(&["get", "stages", "-n", "default"]);
    let public = node.public.expect("public");
    assert!(
        stages.contains(&format!("https://{public}/restapis/")),
        "{stages}"
    );

    // Requests are served, from the invoke URL in status.
    let prod = c.get("stage/petstore-prod").expect("stage");
    let invoke = prod["status"]["invokeUrl"]
        .as_str()
        .expect("invokeUrl")
        .to_string();
    assert!(
        prod["status"]["deploymentId"]
            .as_str()
            .is_some_and(|d| d.len() == 6)
    );
    let ping = support::get(&format!("{invoke}ping")).await;
    assert_eq!(ping.status, 200, "{}", ping.body);
    assert_eq!(ping.json()["pong"], true);

    // /readyz says a table is published.
    let ready = support::get(&format!("http://{}/readyz", node.admin)).await;
    assert_eq!(ready.status, 200);

    // The Deployment's snapshot was recorded: an immutable ConfigMap it owns.
    let dep = c.get("apideploy/petstore-v1").expect("deployment");
    let snapshot = dep["status"]["snapshot"]
        .as_str()
        .expect("status.snapshot")
        .to_string();
    let cm = c
        .get(&format!("configmap/{snapshot}"))
        .expect("snapshot ConfigMap");
    assert_eq!(cm["immutable"], true);
    assert_eq!(cm["metadata"]["ownerReferences"][0]["name"], "petstore-v1");

    // An invalid API: its condition names the field; every other API keeps answering.
    c.apply(&format!(
        "{}---\n{}",
        r#"apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {name: broken, namespace: default}
spec:
  resources:
    /x:
      GET:
        integration: {type: HTTP_PROXY, uri: "not a url"}
"#,
        deployment("broken-v1", "broken")
    ));
    let accepted = eventually("broken Accepted=False", DEADLINE, || async {
        let cond = c.condition("restapi/broken", "Accepted")?;
        (cond["status"] == "False").then_some(cond)
    })
    .await;
    let message = accepted["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(r#"spec.resources["/x"].GET.integration.uri"#),
        "the message names the field: {accepted}"
    );
    assert_eq!(accepted["observedGeneration"], 1);
    assert!(accepted["lastTransitionTime"].is_string());
    let dep_ready = eventually("broken-v1 Ready=False", DEADLINE, || async {
        let cond = c.condition("apideploy/broken-v1", "Ready")?;
        (cond["status"] == "False").then_some(cond)
    })
    .await;
    assert!(dep_ready["message"].as_str().is_some_and(|m| !m.is_empty()));
    let ping = support::get(&format!("{invoke}ping")).await;
    assert_eq!(ping.status, 200, "other APIs keep answering: {}", ping.body);

    // The transition is an Event naming the reason.
    let events = eventually("an Event for broken", DEADLINE, || async {
        let out = c
            .try_kubectl(
                &["get", "events.events.k8s.io", "-n", "default", "-o", "json"],
                None,
            )
            .ok()?;
        let v: Value = serde_json::from_str(&out).ok()?;
        let found = v["items"].as_array()?.iter().any(|e| {
            e["regarding"]["name"] == "broken" && e["type"] == "Warning" && e["reason"] == "NotAccepted"
        });
        found.then_some(v)
    })
    .await;
    assert!(events["items"].as_array().is_some_and(|i| !i.is_empty()));

    // Fixing it makes it Ready, keeping the others.
    c.apply(&mock_api("broken", "fixed", ""));
    wait_ready(&c, "restapi/broken").await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_wait_for_a_new_deployment_and_rollback_is_editing_the_ref() {
    let c = Cluster::start().await;
    let node = c.node("a").await;
    c.apply(&format!(
        "{}---\n{}",
        mock_stack("shop", "one", ""),
        r#"apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {name: shop-dev, namespace: default}
spec: {restApiRef: {name: shop}, stageName: dev, autoDeploy: true}
"#
    ));
    let api = c.api_id("shop").await;
    wait_ready(&c, "stage/shop-prod").await;
    let v = eventually("prod serves one", DEADLINE, || {
        version_of(&node, &api, "prod", None)
    })
    .await;
    assert_eq!(v, "one");
    let v1_id = c.get("apideploy/shop-v1").expect("dep")["status"]["deploymentId"]
        .as_str()
        .expect("deploymentId")
        .to_string();

    // Edit the RestApi: the autoDeploy stage follows at once; prod keeps its snapshot.
    c.apply(&mock_api("shop", "two", ""));
    serves(&node, &api, "dev", "two").await;
    for _ in 0..20 {
        assert_eq!(
            version_of(&node, &api, "prod", None).await.as_deref(),
            Some("one")
        );
    }

    // A new Deployment, pointed at by the stage: prod serves two.
    c.apply(&deployment("shop-v2", "shop"));
    wait_ready(&c, "apideploy/shop-v2").await;
    assert_eq!(
        version_of(&node, &api, "prod", None).await.as_deref(),
        Some("one")
    );
    point_stage(&c, "shop-prod", "shop-v2");
    serves(&node, &api, "prod", "two").await;
    let v2_id = eventually("status shows v2", DEADLINE, || async {
        let id = c.get("stage/shop-prod")?["status"]["deploymentId"]
            .as_str()?
            .to_string();
        (id != v1_id).then_some(id)
    })
    .await;
    assert_eq!(v2_id.len(), 6);

    // Later RestApi edits never change what an existing Deployment serves.
    c.apply(&mock_api("shop", "three", ""));
    serves(&node, &api, "dev", "three").await;
    assert_eq!(
        version_of(&node, &api, "prod", None).await.as_deref(),
        Some("two")
    );

    // Rollback: edit deploymentRef back.
    point_stage(&c, "shop-prod", "shop-v1");
    serves(&node, &api, "prod", "one").await;
    eventually("status shows v1 again", DEADLINE, || async {
        (c.get("stage/shop-prod")?["status"]["deploymentId"] == v1_id.as_str()).then_some(())
    })
    .await;

    // A stage pointing at a missing Deployment is a condition, not a crash.
    point_stage(&c, "shop-prod", "nope");
    let cond = eventually("prod not Ready", DEADLINE, || async {
        let cond = c.condition("stage/shop-prod", "ResolvedRefs")?;
        (cond["status"] == "False").then_some(cond)
    })
    .await;
    assert_eq!(cond["reason"], "DeploymentNotFound");
    assert_eq!(
        version_of(&node, &api, "dev", None).await.as_deref(),
        Some("three")
    );

    // A recorded snapshot that disappears is a condition, and is never recorded again (that
    // would silently serve the current definition under the old Deployment).
    let snapshot = c.get("apideploy/shop-v2").expect("dep")["status"]["snapshot"]
        .as_str()
        .expect("status.snapshot")
        .to_string();
    c.kubectl(&["delete", "configmap", &snapshot, "-n", "default"]);
    let cond = eventually("shop-v2 not Ready", DEADLINE, || async {
        let cond = c.condition("apideploy/shop-v2", "Ready")?;
        (cond["status"] == "False").then_some(cond)
    })
    .await;
    assert_eq!(cond["reason"], "SnapshotInvalid", "{cond}");
    assert!(
        cond["message"]
            .as_str()
            .is_some_and(|m| m.contains("new Deployment")),
        "{cond}"
    );
    assert!(c.get(&format!("configmap/{snapshot}")).is_none());
    assert_eq!(
        version_of(&node, &api, "dev", None).await.as_deref(),
        Some("three")
    );

    // A cached stage is flushed by a new value of its flush-cache annotation, which moves no
    // generation: the MOCK answer names the request that produced it.
    let cached = mock_api("clock", "x", "").replace(r#"'{"v": "x"}'"#, r#"'{"v": "$context.requestId"}'"#);
    c.apply(&format!(
        "{cached}{}{}",
        deployment("clock-v1", "clock"),
        support::stage_yaml(
            "default",
            "clock",
            "prod",
            "clock-v1",
            "  cacheClusterEnabled: true"
        )
    ));
    let clock = c.api_id("clock").await;
    wait_ready(&c, "stage/clock-prod").await;
    let first = eventually("clock answers", DEADLINE, || {
        version_of(&node, &clock, "prod", None)
    })
    .await;
    assert_eq!(
        version_of(&node, &clock, "prod", None).await,
        Some(first.clone()),
        "a hit"
    );
    c.kubectl(&[
        "annotate",
        "stage",
        "clock-prod",
        "-n",
        "default",
        "turnpike.dev/flush-cache=1",
        "--overwrite",
    ]);
    eventually("the annotation flushes the cache", DEADLINE, || async {
        (version_of(&node, &clock, "prod", None).await? != first).then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_splits_by_percent_is_forced_by_header_and_promotes() {
    let c = Cluster::start().await;
    let node = c.node("a").await;
    c.apply(&format!(
        "{}---\n{}",
        mock_api("cn", "stable", ""),
        deployment("cn-v1", "cn")
    ));
    wait_ready(&c, "apideploy/cn-v1").await;
    c.apply(&format!(
        "{}---\n{}---\n{}",
        mock_api("cn", "canary", ""),
        deployment("cn-v2", "cn"),
        r#"apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {name: cn-prod, namespace: default}
spec:
  restApiRef: {name: cn}
  stageName: prod
  deploymentRef: {name: cn-v1}
  canarySettings:
    deploymentRef: {name: cn-v2}
    percentTraffic: 10
"#
    ));
    let api = c.api_id("cn").await;
    wait_ready(&c, "stage/cn-prod").await;
    let status = c.get("stage/cn-prod").expect("stage")["status"].clone();
    assert!(
        status["canaryDeploymentId"]
            .as_str()
            .is_some_and(|d| d.len() == 6),
        "{status}"
    );

    // 10 000 requests over keep-alive connections, 8 at a time.
    let addr = node.public.expect("public");
    let client = support::client(false);
    let target = url(addr, &api, "prod", "/v");
    let total = 10_000usize;
    let mut canary = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let client = client.clone();
        let target = target.clone();
        tasks.spawn(async move {
            let mut hits = 0usize;
            for _ in (worker..total).step_by(8) {
                let req = Request::get(&target).body(support::empty()).expect("req");
                let a = support::send(&client, req).await;
                assert_eq!(a.status, 200, "{}", a.body);
                if a.json()["v"] == "canary" {
                    hits += 1;
                }
            }
            hits
        });
    }
    while let Some(r) = tasks.join_next().await {
        canary += r.expect("worker");
    }
    let share = canary as f64 * 100.0 / total as f64;
    assert!((8.5..=11.5).contains(&share), "canary share {share}% of {total}");

    // The header forces or excludes the canary.
    for _ in 0..20 {
        let always = version_of(&node, &api, "prod", Some(("x-turnpike-canary", "always"))).await;
        assert_eq!(always.as_deref(), Some("canary"));
        let never = version_of(&node, &api, "prod", Some(("x-turnpike-canary", "never"))).await;
        assert_eq!(never.as_deref(), Some("stable"));
    }

    // Promotion: the canary's deployment into deploymentRef, canarySettings removed.
    c.kubectl(&[
        "patch",
        "stage",
        "cn-prod",
        "-n",
        "default",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/deploymentRef/name","value":"cn-v2"},{"op":"remove","path":"/spec/canarySettings"}]"#,
    ]);
    eventually("canary id gone from status", DEADLINE, || async {
        let s = c.get("stage/cn-prod")?["status"].clone();
        (s.get("canaryDeploymentId").is_none() && s["deploymentId"] == status["canaryDeploymentId"])
            .then_some(())
    })
    .await;
    for _ in 0..50 {
        assert_eq!(
            version_of(&node, &api, "prod", None).await.as_deref(),
            Some("canary")
        );
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_api_answers_allowed_sources_on_the_private_listener_only() {
    let c = Cluster::start().await;
    let node = c.node("a").await;
    // 127.0.0.2 is allowed by CIDR; the pod at 127.0.0.3 is allowed by its namespace;
    // 127.0.0.1 (and 127.0.0.4) are not.
    c.apply(&format!(
        "{}---\n{}",
        mock_stack(
            "vault",
            "private",
            "  endpointConfiguration: {types: [PRIVATE]}\n  policy:\n    allow:\n      - sourceCidrs: [127.0.0.2/32]\n      - sourceNamespaces: [team-a]\n"
        ),
        r#"apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: team-a}
spec: {containers: [{name: c, image: busybox}]}
"#
    ));
    c.kubectl(&[
        "patch",
        "pod",
        "client",
        "-n",
        "team-a",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"podIP":"127.0.0.3","podIPs":[{"ip":"127.0.0.3"}]}}"#,
    ]);
    let api = c.api_id("vault").await;
    wait_ready(&c, "stage/vault-prod").await;
    let private = node.private.expect("private");
    let public = node.public.expect("public");
    let on = |addr, from: &'static str| {
        let u = url(addr, &api, "prod", "/v");
        async move { support::curl(&["--interface", from, &u]).await }
    };
    let (code, body) = eventually("allowed CIDR answered", DEADLINE, || async {
        let r = on(private, "127.0.0.2").await;
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""v": "private""#), "{body}");
    let (code, body) = eventually("allowed namespace answered", DEADLINE, || async {
        let r = on(private, "127.0.0.3").await;
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!(code, 200, "{body}");

    let (code, body) = on(private, "127.0.0.4").await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("AccessDeniedException") || body.contains("not authorized"),
        "{body}"
    );
    let (code, body) = on(private, "127.0.0.1").await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = on(public, "127.0.0.2").await;
    assert_eq!(code, 403, "a PRIVATE API on the public listener: {body}");
    node.shutdown().await;
}

/// The value of a counter in Prometheus text.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_one_writes_and_the_leader_hands_over() {
    let c = Cluster::start().await;
    let a = c.node("replica-a").await;
    eventually("a leads", DEADLINE, || async {
        a.controller.is_leader().then_some(())
    })
    .await;
    let b = c.node("replica-b").await;
    c.apply(&mock_stack("ha", "one", ""));
    let api = c.api_id("ha").await;
    wait_ready(&c, "stage/ha-prod").await;

    // Both serve traffic.
    for node in [&a, &b] {
        let v = eventually("each replica serves", DEADLINE, || {
            version_of(node, &api, "prod", None)
        })
        .await;
        assert_eq!(v, "one");
    }
    // Only the leader wrote status.
    assert!(!b.controller.is_leader());
    let metrics = |n: &Node| {
        let addr = n.admin;
        async move { support::get(&format!("http://{addr}/metrics")).await.body }
    };
    assert!(counter(&metrics(&a).await, "turnpike_controller_status_writes_total") > 0.0);
    assert_eq!(
        counter(&metrics(&b).await, "turnpike_controller_status_writes_total"),
        0.0
    );

    // The leader dies without releasing the Lease; the other takes over and writes.
    a.crash();
    eventually("b leads", Duration::from_secs(40), || async {
        b.controller.is_leader().then_some(())
    })
    .await;
    c.apply(&deployment("ha-v2", "ha"));
    wait_ready(&c, "apideploy/ha-v2").await;
    assert!(counter(&metrics(&b).await, "turnpike_controller_status_writes_total") > 0.0);
    let lease = c.get("lease/turnpike-controller").expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");

    // A graceful shutdown releases the Lease at once.
    b.shutdown().await;
    let lease = c.get("lease/turnpike-controller").expect("lease");
    assert!(lease["spec"]["holderIdentity"].is_null(), "{lease}");
}
