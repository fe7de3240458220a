//! The entry point of the CEL fuzz target in `fuzz/` (cargo-fuzz): the evaluator of the CEL
//! subset that CRD `x-kubernetes-validations` rules are checked with. Not an API (hidden from
//! the docs); nothing in the server calls it.
//!
//! Contract: any rule text and any `self`/`oldSelf` values evaluate to `Ok` or to an `Err`
//! that says why; never a panic, and never unbounded recursion on a deep expression.

use serde_json::Value;

/// Evaluates `rule` against `this` (`self`) and `old` (`oldSelf`), as an admission check does.
pub fn cel(rule: &str, this: &Value, old: Option<&Value>) -> Result<bool, String> {
    crate::cel::eval_rule(rule, &crate::cel::Scope { this, old })
}
