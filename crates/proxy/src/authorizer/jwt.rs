//! JWT / user-pool authorizers: the token's signature against the issuer's JWKS, then `iss`,
//! `aud` (or an access token's `client_id`), `exp`/`nbf` with [`LEEWAY`], and the method's
//! scopes. Only asymmetric algorithms are accepted (RS256/384/512, ES256/384, PS256): never
//! `none`, never an HMAC keyed with a public key.

use std::{collections::HashMap, time::Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind, jwk::JwkSet};
use serde_json::{Map, Value};

use turnpike_core::model::JwtSettings;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// The algorithms a token may be signed with.
pub const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
];

/// Why a token is refused. All answer 401 Unauthorized, as AWS does; the reason goes to the
/// access log (`$context.authorizer.error`), never the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("no key of the issuer has the token's kid")]
    UnknownKey,
    #[error("the signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not the authorizer's")]
    Issuer,
    #[error("the token's audience is not one of the authorizer's")]
    Audience,
    #[error("the token has none of the method's scopes")]
    Scope,
}

/// The keys of one issuer, by `kid`.
pub struct KeySet {
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    /// When the set was fetched.
    pub fetched: Instant,
    /// Whether a request used the set since it was fetched: a set nobody uses between two
    /// background refreshes is forgotten rather than refreshed forever.
    pub(crate) used: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

// === impl KeySet ===

impl KeySet {
    /// Parses a JWKS document. Keys that cannot verify (symmetric, unsupported curves, without
    /// `kid`) are skipped; a document without any usable key is an error.
    pub fn parse(bytes: &[u8], fetched: Instant) -> Result<KeySet, String> {
        let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, alg));
            }
        }
        if keys.is_empty() {
            return Err("the JWKS document has no usable key".into());
        }
        Ok(KeySet {
            keys,
            fetched,
            used: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Marks the set used by a request (a read first: no write to a shared line per request).
    pub(crate) fn mark_used(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.used.load(Relaxed) {
            self.used.store(true, Relaxed);
        }
    }
}

/// How long a document may be kept by its `Cache-Control`: `max-age=N` (`s-maxage` is for
/// shared caches and wins, as RFC 9111 says), zero for `no-cache` / `no-store`; `None` when
/// the header says neither. Directive names are case-insensitive; a malformed `max-age`
/// counts as none.
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut max_age = None;
    let mut shared = None;
    for directive in cache_control.split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = || value.and_then(|v| v.parse::<u64>().ok());
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        } else if name.eq_ignore_ascii_case("s-maxage") {
            shared = shared.or_else(seconds);
        } else if name.eq_ignore_ascii_case("max-age") {
            max_age = max_age.or_else(seconds);
        }
    }
    shared.or(max_age)
}

/// The `kid` of a token (for finding its key before verifying), or why it cannot be read.
pub fn kid(token: &str) -> Result<Option<String>, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
    }
    Ok(header.kid)
}

/// Verifies a token; returns its claims.
pub fn verify(
    token: &str,
    keys: &KeySet,
    settings: &JwtSettings,
    scopes: &[String],
) -> Result<Map<String, Value>, JwtError> {
    let claims = verify_signed(token, keys, settings)?;
    check_claims(&claims, settings, scopes)?;
    Ok(claims)
}

/// What does not depend on the method: the signature, `iss`, `exp` and `nbf`. What passes
/// may be cached until `exp` (see [`expires_at`]); [`check_claims`] still runs per request.
pub fn verify_signed(
    token: &str,
    keys: &KeySet,
    settings: &JwtSettings,
) -> Result<Map<String, Value>, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
    }
    let (key, key_alg) = match &header.kid {
        Some(kid) => keys.keys.get(kid).ok_or(JwtError::UnknownKey)?,
        // Without a kid, only an issuer with a single key is unambiguous.
        None if keys.keys.len() == 1 => keys.keys.values().next().ok_or(JwtError::UnknownKey)?,
        None => return Err(JwtError::UnknownKey),
    };
    if key_alg.is_some_and(|a| a != header.alg) {
        return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&[settings.issuer.as_str()]);
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::ImmatureSignature => JwtError::NotYetValid,
            ErrorKind::InvalidIssuer => JwtError::Issuer,
            ErrorKind::InvalidSignature => JwtError::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                JwtError::Algorithm(format!("{:?}", header.alg))
            }
            _ => JwtError::Malformed,
        })?;
    Ok(data.claims)
}

/// The authorizer's audiences and the method's scopes.
pub fn check_claims(
    claims: &Map<String, Value>,
    settings: &JwtSettings,
    scopes: &[String],
) -> Result<(), JwtError> {
    if !settings.audiences.is_empty() && !audience_ok(claims, &settings.audiences) {
        return Err(JwtError::Audience);
    }
    if !scopes.is_empty() && !scope_ok(claims, scopes) {
        return Err(JwtError::Scope);
    }
    Ok(())
}

/// The last second (Unix time) a verified token is accepted: its `exp` plus the leeway.
pub fn expires_at(claims: &Map<String, Value>) -> Option<u64> {
    let exp = claims.get("exp")?;
    let secs = exp.as_u64().or_else(|| {
        exp.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })?;
    secs.checked_add(LEEWAY_SECS)
}

/// `aud` (a string or a list) names an accepted audience; or, for an access token without
/// `aud` (Cognito's), `client_id` does.
fn audience_ok(claims: &Map<String, Value>, audiences: &[String]) -> bool {
    let accepted = |v: &Value| v.as_str().is_some_and(|s| audiences.iter().any(|a| a == s));
    match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().any(accepted),
        Some(v @ Value::String(_)) => accepted(v),
        _ => claims.get("client_id").is_some_and(accepted),
    }
}

/// The token's `scope` (space-separated) or `scp` (a list or a string) holds one of `wanted`.
fn scope_ok(claims: &Map<String, Value>, wanted: &[String]) -> bool {
    let has = |s: &str| wanted.iter().any(|w| w == s);
    let from_str = |v: &Value| v.as_str().is_some_and(|s| s.split(' ').any(has));
    claims.get("scope").is_some_and(from_str)
        || match claims.get("scp") {
            Some(Value::Array(list)) => list.iter().any(|v| v.as_str().is_some_and(has)),
            Some(v) => from_str(v),
            None => false,
        }
}

/// A claim as text for `$context.authorizer.claims.NAME`: strings as they are, anything else
/// as JSON.
pub fn claim_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    struct Issuer {
        pem: String,
        jwks: Vec<u8>,
    }

    fn issuer(kid: &str) -> Issuer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let raw = key.public_key_raw();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..65]),
        }]});
        Issuer {
            pem: key.serialize_pem(),
            jwks: jwks.to_string().into_bytes(),
        }
    }

    fn settings() -> JwtSettings {
        JwtSettings {
            issuer: "https://issuer.test".into(),
            audiences: vec!["shop".to_string()].into(),
            keys: turnpike_core::model::KeySource::Discovery,
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    }

    fn sign(issuer: &Issuer, kid: &str, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(issuer.pem.as_bytes()).expect("pem"),
        )
        .expect("sign")
    }

    #[test]
    fn every_check_holds() {
        let iss = issuer("k1");
        let keys = KeySet::parse(&iss.jwks, Instant::now()).expect("jwks");
        let s = settings();
        let good = json!({"iss": "https://issuer.test", "aud": "shop", "exp": now() + 600, "sub": "u1", "scope": "shop/read shop/write"});
        let claims = verify(&sign(&iss, "k1", good.clone()), &keys, &s, &[]).expect("valid");
        assert_eq!(claims.get("sub"), Some(&json!("u1")));
        assert!(verify(&sign(&iss, "k1", good.clone()), &keys, &s, &["shop/read".into()]).is_ok());
        assert_eq!(
            verify(&sign(&iss, "k1", good.clone()), &keys, &s, &["admin".into()]),
            Err(JwtError::Scope)
        );
        let mut c = good.clone();
        c["iss"] = json!("https://evil.test");
        assert_eq!(
            verify(&sign(&iss, "k1", c), &keys, &s, &[]),
            Err(JwtError::Issuer)
        );
        let mut c = good.clone();
        c["aud"] = json!(["other"]);
        assert_eq!(
            verify(&sign(&iss, "k1", c), &keys, &s, &[]),
            Err(JwtError::Audience)
        );
        // Cognito access tokens carry client_id instead of aud.
        let mut c = good.clone();
        c.as_object_mut().expect("object").remove("aud");
        c["client_id"] = json!("shop");
        assert!(verify(&sign(&iss, "k1", c), &keys, &s, &[]).is_ok());
        let mut c = good.clone();
        c["exp"] = json!(now() - LEEWAY_SECS - 10);
        assert_eq!(
            verify(&sign(&iss, "k1", c), &keys, &s, &[]),
            Err(JwtError::Expired)
        );
        let mut c = good.clone();
        c["nbf"] = json!(now() + LEEWAY_SECS + 100);
        assert_eq!(
            verify(&sign(&iss, "k1", c), &keys, &s, &[]),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            verify(&sign(&iss, "k2", good.clone()), &keys, &s, &[]),
            Err(JwtError::UnknownKey)
        );
        // Another key under the same kid: a bad signature.
        let other = issuer("k1");
        assert_eq!(
            verify(&sign(&other, "k1", good.clone()), &keys, &s, &[]),
            Err(JwtError::Signature)
        );
        // Algorithm confusion: HS256 keyed with the public JWKS text, and `none`.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let forged = encode(&header, &good, &EncodingKey::from_secret(&iss.jwks)).expect("sign");
        assert!(matches!(
            verify(&forged, &keys, &s, &[]),
            Err(JwtError::Algorithm(_))
        ));
        let none = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","kid":"k1"}"#),
            base64_url(good.to_string().as_bytes())
        );
        assert!(verify(&none, &keys, &s, &[]).is_err());
        assert_eq!(verify("garbage", &keys, &s, &[]), Err(JwtError::Malformed));
    }

    fn base64_url(b: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn cache_control_gives_the_keys_lifetime() {
        assert_eq!(max_age("public, max-age=600"), Some(600));
        assert_eq!(max_age("Max-Age=\"30\", must-revalidate"), Some(30));
        assert_eq!(max_age("max-age=600, s-maxage=60"), Some(60));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("private, no-cache"), Some(0));
        assert_eq!(max_age("max-age=-1"), None);
        assert_eq!(max_age("max-age=99999999999999999999999"), None);
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age(""), None);
    }

    #[test]
    fn a_jwks_without_usable_keys_is_refused() {
        assert!(KeySet::parse(b"{}", Instant::now()).is_err());
        assert!(
            KeySet::parse(
                br#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}"#,
                Instant::now()
            )
            .is_err()
        );
        assert!(KeySet::parse(b"nope", Instant::now()).is_err());
    }
}
