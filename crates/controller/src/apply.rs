//! What `turnpike local` does through the API before the controller starts, as kubectl would:
//! install the Turnpike CRDs (server-side apply) and wait until each is `Established`.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams},
};
use tracing::info;

use crate::Error;

/// The field manager of `turnpike local`'s own applies (not the controller's).
const APPLY_MANAGER: &str = "turnpike-local";
/// How long a CRD may take to become Established.
const ESTABLISHED_WITHIN: Duration = Duration::from_secs(30);

/// Applies every Turnpike CRD and waits (at most 30 s) until each is Established.
pub async fn install_crds(client: &Client) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(APPLY_MANAGER).force();
    let crd_err = |name: &str| {
        let name = name.to_string();
        move |source| Error::Crd { name, source }
    };
    for crd in turnpike_api::crds() {
        let name = crd.name_any();
        api.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .map_err(crd_err(&name))?;
    }
    let deadline = tokio::time::Instant::now() + ESTABLISHED_WITHIN;
    for crd in turnpike_api::crds() {
        let name = crd.name_any();
        loop {
            let current = api.get(&name).await.map_err(crd_err(&name))?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::CrdNotEstablished { name });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    info!("CRDs installed");
    Ok(())
}
