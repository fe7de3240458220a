//! `turnpike.dev/v1alpha1`.

pub mod api_key;
pub mod deployment;
pub mod rest_api;
pub mod stage;
pub mod usage_plan;
