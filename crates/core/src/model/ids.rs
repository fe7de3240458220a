//! Identifiers: object keys and the short AWS-style ids derived from object uids.

use std::{fmt, sync::Arc};

use sha2::{Digest, Sha256};

/// A namespaced object name.
///
/// The names are shared, not copied: the controller holds a key's name in its world, its
/// compile cache, its status and its table entry, 10,000 times over with as many API keys, and
/// a clone costs two reference counts rather than two allocations.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        ObjectKey {
            namespace: Arc::from(namespace.as_ref()),
            name: Arc::from(name.as_ref()),
        }
    }

    /// Another object's key in the same namespace (which it shares).
    pub fn sibling(&self, name: &str) -> Self {
        ObjectKey {
            namespace: self.namespace.clone(),
            name: Arc::from(name),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `len` lowercase alphanumerics derived from `seed` (an object uid): stable for the life of
/// the object, and different for a new object of the same name.
pub fn short_id(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let digest = Sha256::digest(seed.as_bytes());
    digest
        .iter()
        .take(len)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

macro_rules! short_id_type {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The length of the id.
            pub const LEN: usize = $len;

            /// The id derived from an object uid.
            pub fn from_uid(uid: &str) -> Self {
                $name(short_id(uid, $len))
            }

            /// Accepts an id that has the right shape.
            pub fn parse(s: &str) -> Option<Self> {
                let ok = s.len() == $len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                ok.then(|| $name(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

short_id_type!(
    /// A RestApi id: 10 lowercase alphanumerics (`a1b2c3d4e5`).
    ApiId,
    10
);
short_id_type!(
    /// A Deployment id: 6 lowercase alphanumerics (`f646q2`).
    DeploymentId,
    6
);
short_id_type!(
    /// An ApiKey id: 10 lowercase alphanumerics.
    KeyId,
    10
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_well_formed() {
        let a = ApiId::from_uid("6f1e0a52-0000-4000-8000-000000000001");
        assert_eq!(a, ApiId::from_uid("6f1e0a52-0000-4000-8000-000000000001"));
        assert_ne!(a, ApiId::from_uid("6f1e0a52-0000-4000-8000-000000000002"));
        assert_eq!(ApiId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(DeploymentId::from_uid("x").as_str().len(), 6);
        assert!(ApiId::parse("ABCDEFGHIJ").is_none());
        assert!(ApiId::parse("abc").is_none());
    }
}
