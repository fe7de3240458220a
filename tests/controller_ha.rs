//! High availability with real processes: two `turnpike run` processes against one embedded
//! API server. Both serve traffic, only the Lease holder writes status, and killing the
//! holder with SIGKILL (no chance to release the Lease) hands over to the other, which then
//! writes. Waits are bounded (the Lease lasts 15 s; the deadline is 45 s).

mod controller_support;
#[path = "support/proxy.rs"]
mod support;

use std::{path::PathBuf, time::Duration};

use controller_support::*;

impl Replica {
    async fn status_writes(&self) -> f64 {
        let text = support::get(&format!("http://{}/metrics", self.addr("admin")))
            .await
            .body;
        text.lines()
            .find(|l| l.starts_with("turnpike_controller_status_writes_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    async fn serves(&self, api: &str) -> bool {
        let u = format!(
            "https://{}/restapis/{api}/prod/_user_request_/v",
            self.addr("public")
        );
        support::get(&u).await.status == 200
    }
}

fn holder(c: &Cluster) -> Option<String> {
    c.get("lease/turnpike-controller")?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_serve_one_writes_and_sigkill_of_the_leader_hands_over() {
    let c = Cluster::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let logs: PathBuf = dir.path().to_path_buf();
    let mut replicas = vec![
        Replica::start(&c, &logs, "p1", &[]).await,
        Replica::start(&c, &logs, "p2", &[]).await,
    ];
    c.apply(&mock_stack("ha", "one", ""));
    let api = c.api_id("ha").await;
    eventually("stage Ready", DEADLINE, || async {
        (c.condition("stage/ha-prod", "Ready")?["status"] == "True").then_some(())
    })
    .await;

    // Both serve.
    for r in &replicas {
        eventually(&format!("{} serves", r.id), DEADLINE, || async {
            r.serves(&api).await.then_some(())
        })
        .await;
    }

    // One leads and wrote status; the other wrote nothing.
    let leader = holder(&c).expect("a holder");
    let (lead, follow): (usize, usize) = if leader == replicas[0].id { (0, 1) } else { (1, 0) };
    assert!(replicas[lead].status_writes().await > 0.0);
    assert_eq!(replicas[follow].status_writes().await, 0.0);

    // SIGKILL the leader: the Lease is not released; the follower takes over after it expires.
    let killed = replicas.remove(lead);
    drop(killed);
    let survivor = &replicas[0];
    eventually(
        "the survivor holds the Lease",
        Duration::from_secs(45),
        || async { (holder(&c)? == survivor.id).then_some(()) },
    )
    .await;

    // …and writes: a new Deployment gets its status and snapshot from the new leader.
    c.apply(&deployment("ha-v2", "ha"));
    eventually("ha-v2 Ready", DEADLINE, || async {
        (c.condition("apideploy/ha-v2", "Ready")?["status"] == "True").then_some(())
    })
    .await;
    assert!(survivor.status_writes().await > 0.0);
    assert!(survivor.serves(&api).await);
}
