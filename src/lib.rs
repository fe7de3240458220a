//! Turnpike: the AWS API Gateway model for any Kubernetes cluster, as one binary that is both
//! an operator and an ingress controller.
//!
//! Dependencies run one way: `api → model → compile → routing ← proxy`. `model`, `compile`,
//! `routing` and `proxy` never import `kube` or `k8s_openapi`; `controller`, `apiserver` and
//! the binary wire the pieces together.

pub mod admin;
pub mod api;
pub mod apiserver;
pub mod compile;
pub mod controller;
pub mod ingest;
pub mod model;
pub mod proxy;
pub mod routing;
pub mod telemetry;
