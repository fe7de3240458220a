//! Validated stages.

use std::{collections::BTreeMap, fmt};

use crate::model::{MethodKey, Throttle};

/// A stage name: `[A-Za-z0-9_-]{1,128}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct StageName(String);

impl StageName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 128 {
            return Err("must be 1 to 128 characters".into());
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "has the character {c:?}; stage names are letters, digits, '-' and '_'"
            ));
        }
        Ok(StageName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a stage serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageSource {
    /// A Deployment snapshot, by Deployment name.
    Deployment(String),
    /// The live RestApi (`autoDeploy: true`).
    Live,
}

/// A validated Stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageDef {
    /// The RestApi's name (same namespace).
    pub rest_api: String,
    pub name: StageName,
    pub source: StageSource,
    pub variables: BTreeMap<String, String>,
    pub throttle: Option<Throttle>,
    pub method_settings: Vec<MethodSettings>,
    pub cache_enabled: bool,
    /// The memory budget of each replica's cache for the stage (`cacheClusterSize`).
    pub cache_size: CacheSize,
    /// The value of the `turnpike.dev/flush-cache` annotation: a new value flushes the
    /// stage's cache (AWS FlushStageCache).
    pub cache_flush: Option<String>,
    pub canary: Option<CanaryDef>,
    pub access_log: Option<AccessLogFormat>,
}

/// Which methods a setting applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MethodSelector {
    /// `*/*`.
    All,
    /// `/pets/GET` (`~1pets/GET` in AWS notation).
    Method { path: String, method: MethodKey },
}

impl MethodSelector {
    /// Parses `RESOURCE_PATH/METHOD` or `*/*`. The path may be written with `~1` for `/`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*/*" {
            return Ok(MethodSelector::All);
        }
        let (path, method) = s.rsplit_once('/').ok_or("must be RESOURCE_PATH/METHOD or */*")?;
        let method = MethodKey::parse(method).ok_or_else(|| {
            format!("unknown method {method:?}; one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY")
        })?;
        let path = path.replace("~1", "/");
        let path = if path.is_empty() { "/".to_string() } else { path };
        if !path.starts_with('/') {
            return Err("the resource path must start with '/' (or '~1')".into());
        }
        Ok(MethodSelector::Method { path, method })
    }

    /// Whether the selector applies to a resource method.
    pub fn applies(&self, path: &str, method: MethodKey) -> bool {
        match self {
            MethodSelector::All => true,
            MethodSelector::Method { path: p, method: m } => p == path && *m == method,
        }
    }
}

/// Settings of the methods a selector picks.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodSettings {
    pub selector: MethodSelector,
    pub throttle: Option<Throttle>,
    pub caching_enabled: Option<bool>,
    pub cache_ttl_seconds: Option<u32>,
    /// Accepted for AWS compatibility; the cache never leaves the gateway's memory.
    pub cache_data_encrypted: Option<bool>,
    pub require_authorization_for_cache_control: Option<bool>,
    pub unauthorized_cache_control: Option<UnauthorizedCacheControl>,
}

/// What a `Cache-Control: max-age=0` from a client that may not invalidate the cache gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnauthorizedCacheControl {
    /// 403, and nothing is invalidated.
    FailWith403,
    /// The header is ignored and the answer carries a `Warning` header (the AWS default).
    #[default]
    SucceedWithResponseHeader,
    /// The header is ignored silently.
    SucceedWithoutResponseHeader,
}

impl UnauthorizedCacheControl {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FAIL_WITH_403" => Some(UnauthorizedCacheControl::FailWith403),
            "SUCCEED_WITH_RESPONSE_HEADER" => Some(UnauthorizedCacheControl::SucceedWithResponseHeader),
            "SUCCEED_WITHOUT_RESPONSE_HEADER" => Some(UnauthorizedCacheControl::SucceedWithoutResponseHeader),
            _ => None,
        }
    }
}

/// A stage cache size, as AWS names them (GB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CacheSize {
    #[default]
    Gb0_5,
    Gb1_6,
    Gb6_1,
    Gb13_5,
    Gb28_4,
    Gb58_2,
    Gb118,
    Gb237,
}

impl CacheSize {
    /// Every size with its AWS name.
    pub const ALL: [(&'static str, CacheSize); 8] = [
        ("0.5", CacheSize::Gb0_5),
        ("1.6", CacheSize::Gb1_6),
        ("6.1", CacheSize::Gb6_1),
        ("13.5", CacheSize::Gb13_5),
        ("28.4", CacheSize::Gb28_4),
        ("58.2", CacheSize::Gb58_2),
        ("118", CacheSize::Gb118),
        ("237", CacheSize::Gb237),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, c)| *c)
    }

    /// The budget in bytes (decimal GB, as AWS sizes them).
    pub fn bytes(self) -> u64 {
        const MB: u64 = 1_000_000;
        MB * match self {
            CacheSize::Gb0_5 => 500,
            CacheSize::Gb1_6 => 1_600,
            CacheSize::Gb6_1 => 6_100,
            CacheSize::Gb13_5 => 13_500,
            CacheSize::Gb28_4 => 28_400,
            CacheSize::Gb58_2 => 58_200,
            CacheSize::Gb118 => 118_000,
            CacheSize::Gb237 => 237_000,
        }
    }
}

/// A stage's canary.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryDef {
    /// The canary's Deployment name; `None` is the stage's own deployment.
    pub deployment: Option<String>,
    /// 0.0 to 100.0.
    pub percent: f64,
    pub variable_overrides: BTreeMap<String, String>,
    pub use_stage_cache: bool,
}

/// The access log line format of a stage.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AccessLogFormat {
    /// The Common Log Format preset of AWS.
    Clf,
    /// A JSON object of the common `$context` fields.
    Json,
    /// A template of `$context.*` variables.
    Template(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(path: &str, method: MethodKey) -> MethodSelector {
        MethodSelector::Method {
            path: path.into(),
            method,
        }
    }

    #[test]
    fn selectors_in_plain_and_aws_notation() {
        assert_eq!(MethodSelector::parse("*/*"), Ok(MethodSelector::All));
        assert_eq!(
            MethodSelector::parse("/pets/GET"),
            Ok(method("/pets", MethodKey::Get))
        );
        assert_eq!(
            MethodSelector::parse("~1pets/GET"),
            Ok(method("/pets", MethodKey::Get))
        );
        assert_eq!(
            MethodSelector::parse("~1pets~1{id}/ANY"),
            Ok(method("/pets/{id}", MethodKey::Any))
        );
        assert_eq!(
            MethodSelector::parse("/pets/{id}/DELETE"),
            Ok(method("/pets/{id}", MethodKey::Delete))
        );
    }

    #[test]
    fn the_root_resource_is_an_empty_path_or_a_slash() {
        assert_eq!(MethodSelector::parse("/GET"), Ok(method("/", MethodKey::Get)));
        assert_eq!(MethodSelector::parse("~1/GET"), Ok(method("/", MethodKey::Get)));
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        for (raw, wanted) in [
            ("GET", "RESOURCE_PATH/METHOD"),
            ("", "RESOURCE_PATH/METHOD"),
            ("/pets/get", "unknown method"),
            ("/pets/", "unknown method"),
            ("*/GET", "must start with '/'"),
            ("pets/GET", "must start with '/'"),
        ] {
            let err = MethodSelector::parse(raw).expect_err(raw);
            assert!(err.contains(wanted), "{raw:?}: {err:?} should say {wanted:?}");
        }
    }

    #[test]
    fn selectors_apply_to_their_method_only() {
        assert!(MethodSelector::All.applies("/anything", MethodKey::Post));
        let s = method("/pets", MethodKey::Get);
        assert!(s.applies("/pets", MethodKey::Get));
        assert!(!s.applies("/pets", MethodKey::Post));
        assert!(!s.applies("/pets/{id}", MethodKey::Get));
    }

    #[test]
    fn stage_names() {
        assert!(StageName::parse("prod").is_ok());
        assert!(StageName::parse("v1_beta-2").is_ok());
        assert!(StageName::parse(&"a".repeat(128)).is_ok());
        assert!(StageName::parse(&"a".repeat(129)).is_err());
        assert!(StageName::parse("").is_err());
        let err = StageName::parse("prod.v1").expect_err("dot");
        assert!(err.contains("'.'"), "{err}");
    }
}
