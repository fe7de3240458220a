//! The validated, Kubernetes-free domain.
//!
//! `turnpike_api::convert` turns the custom resources into these types and is the only place an
//! AWS constraint is checked. Everything downstream (compile, routing, proxy) may assume what
//! the types here promise: a [`PathTemplate`] is well-formed, a [`StageName`] matches the AWS
//! pattern, a [`UriTemplate`] only references variables that can exist, and so on.
//!
//! Errors are [`Invalid`]: a field path (`spec.resources["/pets/{id}"].GET.integration.uri`), a
//! [`Reason`] from a closed set, and a message a user can act on.

mod authorizer;
mod cors;
mod deployment;
mod error;
mod gateway_response;
mod ids;
mod rest_api;
mod stage;
mod usage;
mod validation;
pub mod websocket;

pub use authorizer::*;
pub use cors::*;
pub use deployment::*;
pub use error::{Errors, FieldPath, Invalid, Reason};
pub use gateway_response::*;
pub use ids::{ApiId, DeploymentId, KeyId, ObjectKey, Uid, short_id};
pub use rest_api::*;
pub use stage::*;
pub use usage::*;
pub use validation::*;
pub use websocket::{RouteSelection, WebSocketDef, WebSocketRoute};
