//! The controller reads only the Secrets ApiKeys refer to, through one label-selected watch:
//! the embedded API server, real kubectl and an in-process replica. The replica's
//! `turnpike_controller_cached_secrets` gauge says how many Secrets' data it holds.
//!
//! ```sh
//! cargo test --test controller_secrets
//! ```

mod controller_support;
#[path = "support/proxy.rs"]
mod support;

use controller_support::*;
use turnpike_controller::node::Node;

/// The replica's `turnpike_controller_cached_secrets`.
async fn cached_secrets(node: &Node) -> Option<u64> {
    let answer = support::get(&format!("http://{}/metrics", node.admin)).await;
    answer
        .body
        .lines()
        .find_map(|l| l.strip_prefix("turnpike_controller_cached_secrets "))
        .and_then(|v| v.trim().parse().ok())
}

async fn wait_cached(node: &Node, n: u64) {
    eventually(&format!("{n} cached Secrets"), DEADLINE, || async {
        (cached_secrets(node).await? == n).then_some(())
    })
    .await;
}

/// Waits for the ApiKey's `ResolvedRefs` to have `status` and `reason`; returns its message.
async fn resolved_refs(c: &Cluster, key: &str, status: &str, reason: &str) -> String {
    eventually(
        &format!("{key} ResolvedRefs={status} {reason}"),
        DEADLINE,
        || async {
            let cond = c.condition(&format!("apikey/{key}"), "ResolvedRefs")?;
            (cond["status"] == status && cond["reason"] == reason)
                .then(|| cond["message"].as_str().unwrap_or_default().to_string())
        },
    )
    .await
}

fn secret(name: &str, labelled: bool) -> String {
    secret_in("default", name, labelled)
}

fn secret_in(ns: &str, name: &str, labelled: bool) -> String {
    let labels = if labelled {
        "\n  labels: {turnpike.dev/api-key: \"true\"}"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}{labels}\n\
         stringData:\n  value: {}Value0123456789abcdef\n---\n",
        name.replace('-', "")
    )
}

fn api_key(name: &str, secret: Option<&str>) -> String {
    api_key_in("default", name, secret)
}

fn api_key_in(ns: &str, name: &str, secret: Option<&str>) -> String {
    let value_from = secret
        .map(|s| format!("\n  valueFrom:\n    secretKeyRef: {{name: {s}, key: value}}"))
        .unwrap_or_default();
    format!(
        "apiVersion: turnpike.dev/v1alpha1\nkind: ApiKey\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         spec:\n  customerId: acme{value_from}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_referenced_labelled_secrets_are_cached() {
    let c = Cluster::start().await;
    let mut yaml: String = (0..50)
        .map(|i| secret(&format!("unrelated-{i}"), false))
        .collect();
    yaml += &secret("partner-key", true);
    yaml += &secret("spare-key", true);
    yaml += &secret("plain-key", false);
    yaml += &api_key("partner", Some("partner-key"));
    yaml += &api_key("plain", Some("plain-key"));
    yaml += &api_key("generated", None);
    c.apply(&yaml);
    let node = c.node("a").await;

    resolved_refs(&c, "partner", "True", "ResolvedRefs").await;
    resolved_refs(&c, "generated", "True", "ResolvedRefs").await;
    let generated = c.get("secret/generated-apikey").expect("the generated Secret");
    assert!(
        generated["metadata"]["labels"]["turnpike.dev/api-key"].is_string(),
        "a generated Secret carries the label: {generated}"
    );
    let message = resolved_refs(&c, "plain", "False", "SecretNotLabelled").await;
    assert!(
        message.contains(
            "spec.valueFrom.secretKeyRef.name: Secret \"plain-key\" lacks the label turnpike.dev/api-key"
        ),
        "{message}"
    );
    // partner-key and the generated one: not the 50 unlabelled, nor the unreferenced labelled one.
    wait_cached(&node, 2).await;

    c.kubectl(&[
        "label",
        "secret",
        "plain-key",
        "-n",
        "default",
        "turnpike.dev/api-key=true",
    ]);
    resolved_refs(&c, "plain", "True", "ResolvedRefs").await;
    wait_cached(&node, 3).await;

    // Referenced later, an already labelled Secret is read by name.
    c.apply(&api_key("spare", Some("spare-key")));
    resolved_refs(&c, "spare", "True", "ResolvedRefs").await;
    wait_cached(&node, 4).await;

    c.kubectl(&["delete", "apikey", "partner", "spare", "-n", "default"]);
    wait_cached(&node, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_controller_reads_only_its_namespaces() {
    let c = Cluster::start().await;
    for ns in ["team-a", "team-b"] {
        c.kubectl(&["create", "namespace", ns]);
    }
    let mut yaml = String::new();
    for ns in ["team-a", "team-b"] {
        yaml += &secret_in(ns, "key", true);
        yaml += &api_key_in(ns, "key", Some("key"));
    }
    c.apply(&yaml);
    let node = c
        .node_with("a", |config| config.namespaces = vec!["team-a".into()])
        .await;
    let reason = |ns: &str| {
        let out = c.kubectl(&[
            "get",
            "apikey",
            "key",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"ResolvedRefs\")].reason}",
        ]);
        Some(out).filter(|r| !r.is_empty())
    };
    eventually("team-a's key resolved", DEADLINE, || async {
        (reason("team-a")? == "ResolvedRefs").then_some(())
    })
    .await;
    wait_cached(&node, 1).await;
    assert_eq!(
        reason("team-b"),
        None,
        "an unwatched namespace is never written to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_referring_to_existing_secrets_at_once_are_read_by_one_list() {
    // More than READS_PER_SYNC (256) labelled Secrets become referenced in one apply: they are
    // read with a paginated list of the labelled Secrets, and only the referenced ones are held.
    const KEYS: usize = 300;
    let c = Cluster::start().await;
    let mut secrets: String = (0..KEYS).map(|i| secret(&format!("bulk-{i}"), true)).collect();
    secrets += &secret("spare-a", true);
    secrets += &secret("spare-b", true);
    c.apply(&secrets);
    let node = c.node("a").await;
    wait_cached(&node, 0).await;

    let keys: String = (0..KEYS)
        .map(|i| api_key(&format!("bulk-{i}"), Some(&format!("bulk-{i}"))))
        .collect();
    c.apply(&keys);
    wait_cached(&node, KEYS as u64).await;
    resolved_refs(&c, &format!("bulk-{}", KEYS - 1), "True", "ResolvedRefs").await;
}
