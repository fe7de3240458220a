//! kube-rs against the embedded API server: a kube-runtime Controller reconciles RestApis and
//! writes their status with server-side apply on the status subresource, the way Turnpike's
//! controller does; a streaming-list watcher sees the initial state and later changes.

#[path = "apiserver/support.rs"]
mod support;

use std::{sync::Arc, time::Duration};

use futures::StreamExt as _;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{Controller, controller::Action, watcher},
};
use serde_json::json;
use turnpike_api::RestApi;

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(obj: Arc<RestApi>, api: Arc<Api<RestApi>>) -> Result<Action, ReconcileError> {
    let status = json!({
        "apiVersion": "turnpike.dev/v1alpha1",
        "kind": "RestApi",
        "status": {
            "apiId": "a1b2c3d4e5",
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "routes published",
                "observedGeneration": obj.metadata.generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }],
        },
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply("turnpike-controller").force(),
        &Patch::Apply(&status),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<RestApi>, _: &ReconcileError, _: Arc<Api<RestApi>>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

fn observed(r: &RestApi) -> Option<i64> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.observed_generation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_and_applies_status() {
    let srv = support::start().await;
    support::install_crds(&srv.client).await;
    let api: Api<RestApi> = Api::namespaced(srv.client.clone(), "default");
    let obj: RestApi = serde_yaml::from_str(&support::fixture("restapi.yaml")).expect("fixture");
    api.create(&PostParams::default(), &obj).await.expect("create");

    let ctl_api = Arc::new(api.clone());
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctl_api)
            .for_each(|_| async {}),
    );

    support::eventually(10, "status written by the controller", || async {
        let r = api.get("petstore").await.expect("get");
        r.status.as_ref().and_then(|s| s.api_id.clone()).as_deref() == Some("a1b2c3d4e5")
            && observed(&r) == Some(1)
    })
    .await;

    // A spec change bumps the generation; the controller sees it and catches up.
    api.patch(
        "petstore",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"description": "v2"}})),
    )
    .await
    .expect("patch spec");
    support::eventually(10, "observedGeneration 2", || async {
        let r = api.get("petstore").await.expect("get");
        r.metadata.generation == Some(2) && observed(&r) == Some(2)
    })
    .await;

    let r = api.get("petstore").await.expect("get");
    let mf = r.metadata.managed_fields.unwrap_or_default();
    let status_entry = mf
        .iter()
        .find(|e| e.manager.as_deref() == Some("turnpike-controller"))
        .expect("managedFields entry of the controller");
    assert_eq!(status_entry.operation.as_deref(), Some("Apply"));
    assert_eq!(status_entry.subresource.as_deref(), Some("status"));
    // The status write did not touch the spec.
    assert_eq!(r.spec.description.as_deref(), Some("v2"));
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_sees_initial_state_and_changes() {
    let srv = support::start().await;
    support::install_crds(&srv.client).await;
    let api: Api<RestApi> = Api::namespaced(srv.client.clone(), "default");
    let obj: RestApi = serde_yaml::from_str(&support::fixture("restapi.yaml")).expect("fixture");
    api.create(&PostParams::default(), &obj).await.expect("create");

    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen_init_done = false;
    let mut seen_apply = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen_init_done && seen_apply) {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch in time");
        match ev.expect("stream open").expect("no watch error") {
            watcher::Event::InitApply(o) => assert_eq!(o.name_any(), "petstore"),
            watcher::Event::InitDone => {
                seen_init_done = true;
                api.patch(
                    "petstore",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"description": "w"}})),
                )
                .await
                .expect("patch");
            }
            watcher::Event::Apply(o) if o.spec.description.as_deref() == Some("w") => seen_apply = true,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorder_and_leases() {
    use k8s_openapi::api::{coordination::v1::Lease, events::v1::Event as K8sEvent};
    use kube::{
        Resource,
        api::ListParams,
        runtime::events::{Event, EventType, Recorder, Reporter},
    };

    let srv = support::start().await;
    support::install_crds(&srv.client).await;
    let api: Api<RestApi> = Api::namespaced(srv.client.clone(), "default");
    let obj: RestApi = serde_yaml::from_str(&support::fixture("restapi.yaml")).expect("fixture");
    let created = api.create(&PostParams::default(), &obj).await.expect("create");

    // kube-runtime's Recorder: events.k8s.io/v1 create, then a merge patch for the series.
    let recorder = Recorder::new(
        srv.client.clone(),
        Reporter {
            controller: "turnpike".into(),
            instance: None,
        },
    );
    let event = |type_, reason: &str, note: &str| Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let ev = event(EventType::Normal, "Programmed", "routes published");
    let reference = created.object_ref(&());
    recorder.publish(&ev, &reference).await.expect("publish");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("publish again (series)");
    let events: Api<K8sEvent> = Api::namespaced(srv.client.clone(), "default");
    let list = events.list(&ListParams::default()).await.expect("list events");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));

    // Turnpike's publisher: the same two calls, and the same Event, series and fields; an
    // Event of another reason is an Event of its own.
    let publisher = turnpike_controller::events::Publisher::new(
        srv.client.clone(),
        Reporter {
            controller: "turnpike".into(),
            instance: Some("pod-a".into()),
        },
    );
    publisher.publish(&ev, &reference).await.expect("publish");
    publisher.publish(&ev, &reference).await.expect("publish again");
    publisher.publish(&ev, &reference).await.expect("and again");
    let ours = |list: &[K8sEvent]| {
        list.iter()
            .filter(|e| e.reporting_instance.as_deref() == Some("pod-a"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let list = events.list(&ListParams::default()).await.expect("list events");
    let published = ours(&list.items);
    assert_eq!(published.len(), 1, "{published:?}");
    let e = &published[0];
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(e.reason.as_deref(), Some("Programmed"));
    assert_eq!(e.note.as_deref(), Some("routes published"));
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(e.reporting_controller.as_deref(), Some("turnpike"));
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.uid.clone()),
        created.metadata.uid
    );
    assert!(e.name_any().starts_with(&format!("{}.", created.name_any())));
    let other = event(EventType::Warning, "Broken", "routes withdrawn");
    publisher
        .publish(&other, &reference)
        .await
        .expect("publish another");
    let list = events.list(&ListParams::default()).await.expect("list events");
    assert_eq!(ours(&list.items).len(), 2);

    // Leases (leader election): create, then renew with optimistic concurrency.
    let leases: Api<Lease> = Api::namespaced(srv.client.clone(), "default");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "turnpike-leader"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}
    }))
    .expect("lease");
    let mut held = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
    let stale = held.clone();
    held.spec.as_mut().expect("spec").lease_transitions = Some(1);
    leases
        .replace("turnpike-leader", &PostParams::default(), &held)
        .await
        .expect("renew");
    let err = leases
        .replace("turnpike-leader", &PostParams::default(), &stale)
        .await
        .expect_err("stale");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
}
