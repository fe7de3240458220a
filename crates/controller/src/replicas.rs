//! How many gateway replicas run, from their own Leases, for local limits (without Redis each
//! replica enforces `1/N` of every rate, burst and quota).
//!
//! Every replica keeps a `coordination.k8s.io/v1` Lease named `turnpike-replica-{identity}`
//! in its Lease namespace, labelled [`REPLICA_LABEL`], renewed every `renew_every` with a
//! `leaseDurationSeconds` of `duration`. Every `renew_every` it also lists the Leases with that
//! label and counts those renewed within their duration (on its own clock, so a stopped
//! replica stops counting at most `duration` after its last renewal, or at once when it shut
//! down gracefully: it deletes its Lease). The count (at least 1: itself) goes to
//! [`Usage::set_replicas`]. `--replicas N` fixes N instead and this does not run.
//!
//! RBAC: Leases `list` and `delete` in the Lease namespace, beside the leader election's
//! `get`, `create` and `update`.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{Error, metrics::ControllerMetrics};
use turnpike_proxy::usage::Usage;

/// The label on every replica Lease.
pub const REPLICA_LABEL: &str = "turnpike.dev/replica";

/// How the replica Leases are kept.
#[derive(Clone, Debug)]
pub struct ReplicaLeases {
    pub namespace: String,
    pub identity: String,
    /// A Lease not renewed for this long no longer counts: 15 s.
    pub duration: Duration,
    /// How often this replica renews its Lease and counts: 5 s.
    pub renew_every: Duration,
}

impl ReplicaLeases {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        ReplicaLeases {
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }

    fn lease_name(&self) -> String {
        // Lease names are DNS subdomains: keep what fits.
        let id: String = self
            .identity
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .take(200)
            .collect();
        format!("turnpike-replica-{}", id.trim_matches(['-', '.']))
    }
}

/// Whether a Lease counts at `now`: renewed within its duration.
pub fn live(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let (Some(renewed), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    let age = now.duration_since(renewed.0);
    age.as_secs_f64() <= f64::from(secs)
}

/// Renews this replica's Lease and counts the live ones until `stop` turns true, then deletes
/// the Lease.
pub async fn run(
    client: Client,
    config: ReplicaLeases,
    usage: Arc<Usage>,
    metrics: Arc<ControllerMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let name = config.lease_name();
    loop {
        match step(&api, &name, &config).await {
            Ok(n) => usage.set_replicas(n),
            Err(e) => {
                metrics.failure(&e);
                warn!(error = %e, "replica lease");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.renew_every) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        debug!(error = %e, "deleting the replica lease");
    }
}

/// Renews our Lease, then counts the live ones (ours included).
async fn step(api: &Api<Lease>, name: &str, config: &ReplicaLeases) -> Result<u32, Error> {
    let err = |source| Error::Lease {
        name: name.to_string(),
        source,
    };
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(config.namespace.clone()),
            labels: Some([(REPLICA_LABEL.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(config.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX)),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        }),
    };
    // Read, then create or replace (the verbs leader election already needs).
    match api.get_opt(name).await.map_err(err)? {
        None => match api.create(&PostParams::default(), &lease).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(err(e)),
        },
        Some(current) => {
            let mut lease = lease;
            lease.metadata.resource_version = current.metadata.resource_version;
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_conflict() => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    let leases = api
        .list(&ListParams::default().labels(REPLICA_LABEL))
        .await
        .map_err(err)?;
    let now = Timestamp::now();
    let n = leases.items.iter().filter(|l| live(l, now)).count();
    Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(renewed_secs_ago: i64, duration: i32) -> Lease {
        let now = Timestamp::now();
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(
                    now.checked_sub(jiff_secs(renewed_secs_ago)).expect("time"),
                )),
                lease_duration_seconds: Some(duration),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn jiff_secs(s: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(s)
    }

    #[test]
    fn a_lease_counts_within_its_duration_only() {
        let now = Timestamp::now();
        assert!(live(&lease(3, 15), now));
        assert!(!live(&lease(20, 15), now));
        assert!(!live(&Lease::default(), now));
    }

    #[test]
    fn lease_names_are_dns_names() {
        let c = ReplicaLeases::new("default", "Gateway_A.1-");
        assert_eq!(c.lease_name(), "turnpike-replica-gateway-a.1");
    }
}
