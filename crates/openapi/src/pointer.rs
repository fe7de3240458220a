//! JSON pointers (RFC 6901) into the imported document, for warnings.

use std::fmt;

/// A JSON pointer, built one reference token at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pointer(String);

// === impl Pointer ===

impl Pointer {
    /// The pointer to a member (or index) under this one, escaped (`~` → `~0`, `/` → `~1`).
    pub(crate) fn at(&self, token: impl fmt::Display) -> Pointer {
        let token = token.to_string().replace('~', "~0").replace('/', "~1");
        Pointer(format!("{}/{token}", self.0))
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole document is the empty pointer.
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped() {
        let p = Pointer::default().at("paths").at("/pets/{id}").at("a~b");
        assert_eq!(p.to_string(), "/paths/~1pets~1{id}/a~0b");
        assert_eq!(Pointer::default().to_string(), "");
    }
}
