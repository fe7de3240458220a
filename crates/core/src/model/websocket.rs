//! The validated definition of a WEBSOCKET API: the route selection expression and the routes.
//!
//! A WebSocket API has no resources: the stage URL accepts connections, `$connect` runs at the
//! upgrade, each message goes to the route the selection expression picks from it (else
//! `$default`), and `$disconnect` runs when the socket closes. Each route holds a [`MethodDef`]
//! so the integrations (HTTP_PROXY, HTTP, MOCK, in-cluster Services), API keys and throttles
//! work exactly as they do for REST methods.

use std::{collections::BTreeMap, sync::Arc};

use super::MethodDef;

/// `$connect`: runs at the upgrade; a refusal refuses the connection.
pub const CONNECT: &str = "$connect";
/// `$disconnect`: runs, best effort, when the socket closes.
pub const DISCONNECT: &str = "$disconnect";
/// `$default`: messages no other route selects.
pub const DEFAULT: &str = "$default";
/// The longest route key, as in AWS.
pub const MAX_ROUTE_KEY_LEN: usize = 128;

/// The WebSocket part of a RestApi definition.
#[derive(Clone, Debug, PartialEq)]
pub struct WebSocketDef {
    pub selection: RouteSelection,
    /// Routes by key: `$connect`, `$disconnect`, `$default` and custom keys.
    pub routes: BTreeMap<String, Arc<WebSocketRoute>>,
}

impl WebSocketDef {
    /// The route of a message: the one the selection expression picks, else `$default`.
    pub fn route_for(&self, message: &[u8]) -> Option<&Arc<WebSocketRoute>> {
        self.selection
            .select(message)
            .and_then(|key| self.routes.get(key.as_str()))
            .filter(|r| !r.is_lifecycle())
            .or_else(|| self.routes.get(DEFAULT))
    }

    /// The route with this key.
    pub fn route(&self, key: &str) -> Option<&Arc<WebSocketRoute>> {
        self.routes.get(key)
    }
}

/// A route: its key, what it calls, and whether its answer goes back to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct WebSocketRoute {
    pub key: String,
    /// The integration (and, on `$connect`, whether an API key is required).
    pub method: Arc<MethodDef>,
    /// The integration's answer is sent to the client (`routeResponseSelectionExpression`).
    pub two_way: bool,
}

impl WebSocketRoute {
    /// `$connect` and `$disconnect`, which no message selects.
    pub fn is_lifecycle(&self) -> bool {
        self.key == CONNECT || self.key == DISCONNECT
    }
}

/// Whether a route key is acceptable: a reserved key, or 1 to 128 printable ASCII characters
/// not starting with `$`.
pub fn is_route_key(key: &str) -> bool {
    if key == CONNECT || key == DISCONNECT || key == DEFAULT {
        return true;
    }
    !key.is_empty()
        && key.len() <= MAX_ROUTE_KEY_LEN
        && !key.starts_with('$')
        && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

// === RouteSelection ===

/// `$request.body.NAME[.NAME…]`: a dotted path into a JSON message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSelection {
    raw: Box<str>,
    path: Box<[Box<str>]>,
}

/// The deepest path a selection expression may name.
const MAX_DEPTH: usize = 16;

impl RouteSelection {
    /// Parses an expression; the error is a message without the field path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = raw
            .strip_prefix("$request.body.")
            .ok_or("must be $request.body.NAME, e.g. $request.body.action")?;
        let path: Vec<Box<str>> = rest.split('.').map(Box::from).collect();
        if path.len() > MAX_DEPTH {
            return Err(format!("names {} levels; at most {MAX_DEPTH}", path.len()));
        }
        for name in &path {
            if name.is_empty()
                || name.len() > 128
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!(
                    "{name:?} is not a property name: letters, digits, '_' and '-', 1 to 128 of them"
                ));
            }
        }
        Ok(RouteSelection {
            raw: raw.into(),
            path: path.into_boxed_slice(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The route key a message selects: the string, number or boolean at the path of a JSON
    /// object message. `None` for anything else (not JSON, not an object, missing, null, an
    /// array or an object at the path).
    pub fn select(&self, message: &[u8]) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(message).ok()?;
        let mut at = &value;
        for name in &*self.path {
            at = at.as_object()?.get(&**name)?;
        }
        match at {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_expressions_parse_and_select() {
        let s = RouteSelection::parse("$request.body.action").expect("valid");
        assert_eq!(s.select(br#"{"action":"send","x":1}"#).as_deref(), Some("send"));
        assert_eq!(s.select(br#"{"action":7}"#).as_deref(), Some("7"));
        assert_eq!(s.select(br#"{"action":true}"#).as_deref(), Some("true"));
        assert_eq!(s.select(br#"{"action":null}"#), None);
        assert_eq!(s.select(br#"{"action":["a"]}"#), None);
        assert_eq!(s.select(br#"["action"]"#), None);
        assert_eq!(s.select(b"not json"), None);
        assert_eq!(s.select(b""), None);
        let nested = RouteSelection::parse("$request.body.meta.type").expect("valid");
        assert_eq!(
            nested.select(br#"{"meta":{"type":"join"}}"#).as_deref(),
            Some("join")
        );
        assert_eq!(nested.select(br#"{"meta":"join"}"#), None);
    }

    #[test]
    fn bad_selection_expressions_are_refused() {
        for bad in [
            "",
            "action",
            "$request.body.",
            "$request.body.a..b",
            "$request.header.x",
            "${request.body.action}",
            "$request.body.a b",
        ] {
            assert!(RouteSelection::parse(bad).is_err(), "{bad:?}");
        }
        let deep = format!("$request.body.{}", vec!["a"; 17].join("."));
        assert!(RouteSelection::parse(&deep).is_err());
    }

    #[test]
    fn route_keys() {
        for ok in ["$connect", "$disconnect", "$default", "sendmessage", "join room"] {
            assert!(is_route_key(ok), "{ok:?}");
        }
        for bad in ["", "$other", "\u{e9}", "a\tb"] {
            assert!(!is_route_key(bad), "{bad:?}");
        }
        assert!(!is_route_key(&"a".repeat(129)));
    }
}
