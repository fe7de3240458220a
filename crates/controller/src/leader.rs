//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Every replica runs an [`Elector`]. The holder renews the Lease every `renew_every`; the
//! others read it every `retry_every` and take it over once it has not changed for
//! `duration`, measured on their own clock from when *they* saw it change (as client-go
//! does, so clock skew between replicas does not matter). Every write is a replace guarded by
//! the resourceVersion that was read, so two candidates cannot both win: the loser gets a 409
//! and reads again. A holder that cannot renew for `renew_deadline` steps down on its own, a
//! little before anyone may take over. A graceful shutdown releases the Lease (empty holder),
//! so hand-over is immediate; a crash hands over after `duration`.
//!
//! [`LeaseState`] is the pure state machine (time is passed in); [`Elector`] does the I/O.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};
use tracing::{debug, info, warn};

use crate::{Error, metrics::ControllerMetrics};

/// Where the Lease is and how it is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's namespace (the controller's own namespace in a cluster).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (pod name, or host name plus a random suffix).
    pub identity: String,
    /// How long a Lease is valid after its last renewal: 15 s.
    pub duration: Duration,
    /// How long the holder keeps leading without a successful renewal: 10 s.
    pub renew_deadline: Duration,
    /// How often the holder renews: 2 s.
    pub renew_every: Duration,
    /// How often the others look: 1 s.
    pub retry_every: Duration,
}

impl LeaseConfig {
    /// The defaults for `identity`, in `namespace`.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: "turnpike-controller".into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
            retry_every: Duration::from_secs(1),
        }
    }
}

/// The Lease as read: what identifies a version of it, and who holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub holder: Option<String>,
    /// The resourceVersion: any write changes it, so it is the "did it change" key.
    pub resource_version: String,
    pub duration: Duration,
}

impl Observed {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Observed {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(Duration::from_secs(15), Duration::from_secs),
        }
    }
}

/// What to do after a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    Acquire,
    /// Someone else holds a live Lease.
    Follow { holder: String },
}

/// The election state of one replica. Pure: time is an argument.
#[derive(Clone, Debug)]
pub struct LeaseState {
    identity: String,
    renew_deadline: Duration,
    /// The last version of the Lease seen, and when (our clock) it was first seen.
    seen: Option<(String, Instant)>,
    /// When our last write as holder succeeded.
    renewed: Option<Instant>,
}

impl LeaseState {
    pub fn new(identity: impl Into<String>, renew_deadline: Duration) -> Self {
        LeaseState {
            identity: identity.into(),
            renew_deadline,
            seen: None,
            renewed: None,
        }
    }

    /// Decides from a read of the Lease at `now`.
    pub fn decide(&mut self, now: Instant, lease: Option<&Observed>) -> Decision {
        let Some(lease) = lease else {
            self.seen = None;
            return Decision::Create;
        };
        let changed_at = match &self.seen {
            Some((rv, at)) if *rv == lease.resource_version => *at,
            _ => {
                self.seen = Some((lease.resource_version.clone(), now));
                now
            }
        };
        match &lease.holder {
            Some(h) if *h == self.identity => Decision::Renew,
            None => Decision::Acquire,
            Some(_) if now.saturating_duration_since(changed_at) >= lease.duration => Decision::Acquire,
            Some(h) => {
                // Someone else holds it: whatever we believed, we do not lead.
                self.renewed = None;
                Decision::Follow { holder: h.clone() }
            }
        }
    }

    /// Our write as holder succeeded at `now`.
    pub fn held(&mut self, now: Instant) {
        self.renewed = Some(now);
    }

    /// We released the Lease or lost a write race.
    pub fn lost(&mut self) {
        self.renewed = None;
    }

    /// Whether we lead at `now`: our last renewal is younger than the renew deadline.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.renewed
            .is_some_and(|t| now.saturating_duration_since(t) < self.renew_deadline)
    }
}

/// Runs the election against the API server.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    state: LeaseState,
    metrics: Arc<ControllerMetrics>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig, metrics: Arc<ControllerMetrics>) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            state: LeaseState::new(config.identity.clone(), config.renew_deadline),
            config,
            metrics,
        }
    }

    /// Elects until `stop` turns true, publishing leadership on `leader`; then releases the
    /// Lease if held.
    pub async fn run(mut self, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.step().await {
                self.metrics.failure(&e);
                warn!(error = %e, "leader election");
            }
            let leading = self.state.is_leader(Instant::now());
            if leader.send_if_modified(|l| std::mem::replace(l, leading) != leading) {
                self.metrics.set_leader(leading);
                info!(identity = %self.config.identity, leading, "leadership changed");
            }
            let wait = if leading {
                self.config.renew_every
            } else {
                self.config.retry_every
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if self.state.is_leader(Instant::now()) {
            if let Err(e) = self.release().await {
                warn!(error = %e, "releasing the lease");
            }
            self.state.lost();
            leader.send_replace(false);
            self.metrics.set_leader(false);
            info!(identity = %self.config.identity, "lease released");
        }
    }

    fn err(&self, source: kube::Error) -> Error {
        Error::Lease {
            name: self.config.name.clone(),
            source,
        }
    }

    async fn step(&mut self) -> Result<(), Error> {
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.err(e))?;
        let now = Instant::now();
        let decision = self
            .state
            .decide(now, current.as_ref().map(Observed::of).as_ref());
        debug!(?decision, "lease read");
        let result = match (decision, current) {
            (Decision::Create, _) => {
                let lease = self.fresh_lease(None, 0);
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (Decision::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(MicroTime(Timestamp::now()));
                spec.lease_duration_seconds = Some(secs(self.config.duration));
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            (Decision::Acquire, Some(lease)) => {
                let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
                let next = self.fresh_lease(lease.metadata.resource_version.clone(), transitions + 1);
                self.api
                    .replace(&self.config.name, &PostParams::default(), &next)
                    .await
                    .map(|_| ())
            }
            (Decision::Follow { .. }, _) | (_, None) => return Ok(()),
        };
        match result {
            Ok(()) => {
                self.state.held(now);
                Ok(())
            }
            // Someone else wrote first: read again next round.
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => {
                self.state.lost();
                Ok(())
            }
            Err(e) => Err(self.err(e)),
        }
    }

    fn fresh_lease(&self, resource_version: Option<String>, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                resource_version,
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(secs(self.config.duration)),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        }
    }

    /// Empties the holder (guarded by the resourceVersion), so a follower acquires at once.
    async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn held_by(holder: Option<&str>, rv: &str) -> Observed {
        Observed {
            holder: holder.map(str::to_string),
            resource_version: rv.into(),
            duration: 15 * S,
        }
    }

    #[test]
    fn no_lease_means_create() {
        let mut st = LeaseState::new("a", 10 * S);
        assert_eq!(st.decide(Instant::now(), None), Decision::Create);
    }

    #[test]
    fn a_free_lease_is_acquired() {
        let mut st = LeaseState::new("a", 10 * S);
        assert_eq!(
            st.decide(Instant::now(), Some(&held_by(None, "1"))),
            Decision::Acquire
        );
    }

    #[test]
    fn our_lease_is_renewed_and_we_lead_until_the_deadline() {
        let t0 = Instant::now();
        let mut st = LeaseState::new("a", 10 * S);
        assert_eq!(st.decide(t0, Some(&held_by(Some("a"), "1"))), Decision::Renew);
        assert!(!st.is_leader(t0));
        st.held(t0);
        assert!(st.is_leader(t0 + 9 * S));
        assert!(!st.is_leader(t0 + 10 * S));
    }

    #[test]
    fn a_live_lease_of_another_is_followed_until_it_stops_changing_for_its_duration() {
        let t0 = Instant::now();
        let mut st = LeaseState::new("b", 10 * S);
        let follow = Decision::Follow { holder: "a".into() };
        assert_eq!(st.decide(t0, Some(&held_by(Some("a"), "1"))), follow);
        // Renewed at t0+5: the clock restarts from when we saw the change.
        assert_eq!(st.decide(t0 + 5 * S, Some(&held_by(Some("a"), "2"))), follow);
        assert_eq!(st.decide(t0 + 19 * S, Some(&held_by(Some("a"), "2"))), follow);
        assert_eq!(
            st.decide(t0 + 20 * S, Some(&held_by(Some("a"), "2"))),
            Decision::Acquire
        );
    }

    #[test]
    fn seeing_another_holder_ends_our_leadership() {
        let t0 = Instant::now();
        let mut st = LeaseState::new("a", 10 * S);
        st.held(t0);
        assert!(st.is_leader(t0 + S));
        st.decide(t0 + S, Some(&held_by(Some("b"), "7")));
        assert!(!st.is_leader(t0 + S));
    }

    #[test]
    fn losing_a_race_ends_leadership() {
        let t0 = Instant::now();
        let mut st = LeaseState::new("a", 10 * S);
        st.held(t0);
        st.lost();
        assert!(!st.is_leader(t0));
    }
}
