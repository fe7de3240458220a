//! Identifiers: object keys and the short AWS-style ids derived from object uids.

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, OnceLock, PoisonError, RwLock},
};

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
    /// The key of `name` in `namespace`, whose name is shared with every other key of the
    /// namespace (see [`namespace`]).
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        ObjectKey {
            namespace: self::namespace(namespace.as_ref()),
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

/// The one copy of a namespace's name every [`ObjectKey`] made by [`ObjectKey::new`] shares:
/// a cluster has few namespaces and may have 10,000 keys (and as many Secrets) in one, which
/// then hold a reference each rather than a copy each. A namespace's name stays after its
/// objects are gone; namespaces are few, and creating one takes a cluster administrator.
pub fn namespace(name: &str) -> Arc<str> {
    static NAMESPACES: OnceLock<RwLock<HashSet<Arc<str>>>> = OnceLock::new();
    let all = NAMESPACES.get_or_init(RwLock::default);
    if let Some(n) = all.read().unwrap_or_else(PoisonError::into_inner).get(name) {
        return n.clone();
    }
    let mut all = all.write().unwrap_or_else(PoisonError::into_inner);
    match all.get(name) {
        Some(n) => n.clone(),
        None => {
            let n: Arc<str> = Arc::from(name);
            all.insert(n.clone());
            n
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

/// An object's uid. A UUID in its canonical text (36 lowercase hex digits and hyphens, as the
/// API server makes uids) is held as its 16 bytes, inline; any other text as it is. Either
/// reads back as the text it was made from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Uid {
    Uuid([u8; 16]),
    Text(Box<str>),
}

/// The length of a UUID's canonical text.
const UUID_LEN: usize = 36;

/// Where the hyphens of a UUID's canonical text are.
const UUID_HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl Uid {
    /// The uid of text `uid`.
    pub fn new(uid: &str) -> Uid {
        Uid::parse_uuid(uid).map_or_else(|| Uid::Text(uid.into()), Uid::Uuid)
    }

    /// The 16 bytes of a UUID in canonical text, when `uid` is one.
    fn parse_uuid(uid: &str) -> Option<[u8; 16]> {
        let text = uid.as_bytes();
        if text.len() != UUID_LEN || UUID_HYPHENS.iter().any(|i| text[*i] != b'-') {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut digits = text.iter().filter(|c| **c != b'-');
        let mut out = [0; 16];
        for byte in &mut out {
            let high = digit(*digits.next()?)?;
            let low = digit(*digits.next()?)?;
            *byte = high << 4 | low;
        }
        digits.next().is_none().then_some(out)
    }

    /// `f` of the uid's text (a UUID is written out on the stack, not allocated).
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Uid::Text(text) => f(text),
            Uid::Uuid(bytes) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut text = [b'-'; UUID_LEN];
                let mut at = 0;
                for byte in bytes {
                    if UUID_HYPHENS.contains(&at) {
                        at += 1;
                    }
                    text[at] = HEX[usize::from(byte >> 4)];
                    text[at + 1] = HEX[usize::from(byte & 15)];
                    at += 2;
                }
                f(std::str::from_utf8(&text).unwrap_or_default())
            }
        }
    }
}

impl Default for Uid {
    fn default() -> Self {
        Uid::Text(Box::default())
    }
}

impl From<&str> for Uid {
    fn from(uid: &str) -> Self {
        Uid::new(uid)
    }
}

impl From<String> for Uid {
    fn from(uid: String) -> Self {
        Uid::parse_uuid(&uid).map_or_else(|| Uid::Text(uid.into_boxed_str()), Uid::Uuid)
    }
}

impl PartialEq<str> for Uid {
    fn eq(&self, other: &str) -> bool {
        self.with_str(|s| s == other)
    }
}

impl PartialEq<&str> for Uid {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|s| fmt::Debug::fmt(s, f))
    }
}

macro_rules! short_id_type {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        ///
        /// Held inline, ASCII only: 10,000 API keys carry their id in their table entry and
        /// their status without an allocation each.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The length of the id.
            pub const LEN: usize = $len;

            /// The id derived from an object uid.
            pub fn from_uid(uid: &str) -> Self {
                let id = short_id(uid, $len);
                let mut out = [0; $len];
                out.copy_from_slice(id.as_bytes());
                $name(out)
            }

            /// Accepts an id that has the right shape.
            pub fn parse(s: &str) -> Option<Self> {
                let ok = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                let bytes: [u8; $len] = s.as_bytes().try_into().ok()?;
                ok.then_some($name(bytes))
            }

            pub fn as_str(&self) -> &str {
                // Always ASCII (made by `from_uid` or checked by `parse`).
                std::str::from_utf8(&self.0).unwrap_or_default()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        /// As the string's: `Borrow<str>` lets a map keyed by ids be read with a `&str`.
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
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

    /// A UUID in canonical text is held in 16 bytes; any other uid as text; both read back
    /// as they were.
    #[test]
    fn a_uid_reads_back_as_it_was() {
        let uuid = "0f8c2a4e-9b1d-4c3e-a5f6-7d8e9fa0b1c2";
        assert!(matches!(Uid::new(uuid), Uid::Uuid(_)));
        assert_eq!(Uid::new(uuid).to_string(), uuid);
        assert_eq!(Uid::from(uuid.to_string()), Uid::new(uuid));
        assert_eq!(Uid::new(uuid), uuid);
        assert_eq!(format!("{:?}", Uid::new(uuid)), format!("{uuid:?}"));
        for other in [
            "",
            "uid-a",
            "0F8C2A4E-9B1D-4C3E-A5F6-7D8E9FA0B1C2",
            "0f8c2a4e-9b1d-4c3e-a5f6-7d8e9fa0b1c",
            "0f8c2a4e-9b1d-4c3e-a5f6-7d8e9fa0b1c2a",
            "0f8c2a4e9-b1d-4c3e-a5f6-7d8e9fa0b1c2",
            "0f8c2a4e-9b1d-4c3e-a5f6-7d8e9fa0b1cg",
        ] {
            let uid = Uid::new(other);
            assert!(matches!(uid, Uid::Text(_)), "{other}");
            assert_eq!(uid.to_string(), other);
            assert_eq!(Uid::from(other.to_string()), uid);
        }
        assert_ne!(Uid::new(uuid), "0f8c2a4e-9b1d-4c3e-a5f6-7d8e9fa0b1c3");
        assert_eq!(Uid::default(), "");
        assert!(size_of::<Uid>() <= 24);
    }

    #[test]
    fn ids_are_stable_and_well_formed() {
        let a = ApiId::from_uid("6f1e0a52-0000-4000-8000-000000000001");
        assert_eq!(a, ApiId::from_uid("6f1e0a52-0000-4000-8000-000000000001"));
        assert_ne!(a, ApiId::from_uid("6f1e0a52-0000-4000-8000-000000000002"));
        assert_eq!(ApiId::parse(a.as_str()), Some(a));
        assert_eq!(DeploymentId::from_uid("x").as_str().len(), 6);
        assert!(ApiId::parse("ABCDEFGHIJ").is_none());
        assert!(ApiId::parse("abc").is_none());
        assert!(ApiId::parse("abcdefgh\u{e9}").is_none());
    }

    /// Keys of one namespace share its name.
    #[test]
    fn keys_share_their_namespace() {
        let (a, b) = (ObjectKey::new("ns-shared", "a"), ObjectKey::new("ns-shared", "b"));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert_eq!(&*ObjectKey::new("ns-other", "a").namespace, "ns-other");
    }

    /// An id reads, prints, serializes and hashes as its string.
    #[test]
    fn ids_are_their_strings() {
        let k = KeyId::from_uid("u");
        assert_eq!(k.as_str().len(), KeyId::LEN);
        assert_eq!(format!("{k}"), k.as_str());
        assert_eq!(format!("{k:?}"), format!("{:?}", k.as_str()));
        assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
        let by_id: std::collections::HashMap<KeyId, u8> = [(k, 1)].into();
        assert_eq!(by_id.get(k.as_str()), Some(&1));
    }
}
