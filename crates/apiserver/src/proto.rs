//! Just enough of the Kubernetes protobuf encoding to read what typed client-go clientsets
//! send even when they accept JSON back: Helm's release storage writes Secrets (or
//! ConfigMaps) and deletes them with DeleteOptions as protobuf bodies. The envelope is the
//! `k8s\0` magic followed by a `runtime.Unknown`; the messages are decoded field by field
//! into the same JSON the server stores. Namespaces and ServiceAccounts (what `kubectl create
//! namespace|serviceaccount` send) are read too, and the access reviews of `kubectl auth can-i`. Any other kind is answered 415: typed Go
//! clients (e.g. `kubectl create deployment`) cannot create it here, `kubectl apply` can.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// A protobuf decoding failure.
#[derive(Debug, thiserror::Error)]
#[error("protobuf: {0}")]
pub struct ProtoError(String);

type Res<T> = Result<T, ProtoError>;

const MAGIC: &[u8] = b"k8s\0";

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Res<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| ProtoError("truncated varint".into()))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError("varint too long".into()))
    }

    fn next(&mut self) -> Res<Option<(u64, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtoError("length".into()))?;
                let end = self.pos.checked_add(len).filter(|e| *e <= self.buf.len());
                let end = end.ok_or_else(|| ProtoError("truncated field".into()))?;
                let b = &self.buf[self.pos..end];
                self.pos = end;
                Field::Bytes(b)
            }
            1 => {
                self.pos += 8;
                Field::Varint(0)
            }
            5 => {
                self.pos += 4;
                Field::Varint(0)
            }
            w => return Err(ProtoError(format!("unsupported wire type {w}"))),
        };
        Ok(Some((num, field)))
    }
}

fn string(b: &[u8]) -> Res<String> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError("invalid utf-8".into()))
}

fn map_entry(b: &[u8], bytes_value: bool) -> Res<(String, Value)> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => k = string(b)?,
            (2, Field::Bytes(b)) if bytes_value => {
                v = Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            (2, Field::Bytes(b)) => v = Value::String(string(b)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Res<Value> {
    let mut r = Reader::new(b);
    let mut secs = 0i64;
    while let Some((n, f)) = r.next()? {
        if let (1, Field::Varint(v)) = (n, f) {
            secs = v as i64;
        }
    }
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).map_err(|e| ProtoError(e.to_string()))?;
    Ok(Value::String(format!("{}", ts.strftime("%Y-%m-%dT%H:%M:%SZ"))))
}

fn owner_ref(b: &[u8]) -> Res<Value> {
    let mut r = Reader::new(b);
    let mut o = Map::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => o.insert("kind".into(), string(b)?.into()),
            (3, Field::Bytes(b)) => o.insert("name".into(), string(b)?.into()),
            (4, Field::Bytes(b)) => o.insert("uid".into(), string(b)?.into()),
            (5, Field::Bytes(b)) => o.insert("apiVersion".into(), string(b)?.into()),
            (6, Field::Varint(v)) => o.insert("controller".into(), (v != 0).into()),
            (7, Field::Varint(v)) => o.insert("blockOwnerDeletion".into(), (v != 0).into()),
            _ => None,
        };
    }
    Ok(Value::Object(o))
}

fn object_meta(b: &[u8]) -> Res<Value> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    let (mut owners, mut finalizers) = (Vec::new(), Vec::new());
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => _ = m.insert("name".into(), string(b)?.into()),
            (2, Field::Bytes(b)) => _ = m.insert("generateName".into(), string(b)?.into()),
            (3, Field::Bytes(b)) => _ = m.insert("namespace".into(), string(b)?.into()),
            (5, Field::Bytes(b)) => _ = m.insert("uid".into(), string(b)?.into()),
            (6, Field::Bytes(b)) => _ = m.insert("resourceVersion".into(), string(b)?.into()),
            (7, Field::Varint(v)) => _ = m.insert("generation".into(), json!(v as i64)),
            (8, Field::Bytes(b)) => _ = m.insert("creationTimestamp".into(), time(b)?),
            (11, Field::Bytes(b)) => {
                let (k, v) = map_entry(b, false)?;
                labels.insert(k, v);
            }
            (12, Field::Bytes(b)) => {
                let (k, v) = map_entry(b, false)?;
                annotations.insert(k, v);
            }
            (13, Field::Bytes(b)) => owners.push(owner_ref(b)?),
            (14, Field::Bytes(b)) => finalizers.push(Value::String(string(b)?)),
            _ => {}
        }
    }
    // gogo-protobuf writes empty strings and zero numbers too; JSON omits them.
    m.retain(|_, v| !(v == "" || v == &json!(0)));
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

/// `(field number, JSON name, is the map's value bytes)` of the string maps of a kind.
fn maps_of(kind: &str) -> &'static [(u64, &'static str, bool)] {
    match kind {
        "Secret" => &[(2, "data", true), (4, "stringData", false)],
        "ConfigMap" => &[(2, "data", false), (3, "binaryData", true)],
        _ => &[],
    }
}

fn decode_kind(kind: &str, b: &[u8], obj: &mut Map<String, Value>) -> Res<()> {
    let mut r = Reader::new(b);
    let mut maps: Vec<Map<String, Value>> = vec![Map::new(); maps_of(kind).len()];
    while let Some((n, f)) = r.next()? {
        if let Some(i) = maps_of(kind).iter().position(|(num, _, _)| *num == n) {
            if let Field::Bytes(b) = f {
                let (k, v) = map_entry(b, maps_of(kind)[i].2)?;
                maps[i].insert(k, v);
            }
            continue;
        }
        match (kind, n, f) {
            (_, 1, Field::Bytes(b)) if kind != "DeleteOptions" => {
                _ = obj.insert("metadata".into(), object_meta(b)?)
            }
            ("Secret", 3, Field::Bytes(b)) => _ = obj.insert("type".into(), string(b)?.into()),
            ("SelfSubjectAccessReview" | "SubjectAccessReview", 2, Field::Bytes(b)) => {
                _ = obj.insert("spec".into(), review_spec(b)?)
            }
            ("Secret", 5, Field::Varint(v)) | ("ConfigMap", 4, Field::Varint(v)) => {
                _ = obj.insert("immutable".into(), (v != 0).into())
            }
            ("DeleteOptions", 1, Field::Varint(v)) => {
                _ = obj.insert("gracePeriodSeconds".into(), json!(v as i64))
            }
            ("DeleteOptions", 2, Field::Bytes(b)) => {
                let mut pr = Reader::new(b);
                let mut p = Map::new();
                while let Some((pn, pf)) = pr.next()? {
                    match (pn, pf) {
                        (1, Field::Bytes(x)) => _ = p.insert("uid".into(), string(x)?.into()),
                        (2, Field::Bytes(x)) => _ = p.insert("resourceVersion".into(), string(x)?.into()),
                        _ => {}
                    }
                }
                obj.insert("preconditions".into(), Value::Object(p));
            }
            ("DeleteOptions", 3, Field::Varint(v)) => {
                _ = obj.insert("orphanDependents".into(), (v != 0).into())
            }
            ("DeleteOptions", 4, Field::Bytes(b)) => {
                _ = obj.insert("propagationPolicy".into(), string(b)?.into())
            }
            ("Namespace", 2, Field::Bytes(b)) => {
                let mut sr = Reader::new(b);
                let mut finalizers = Vec::new();
                while let Some((sn, sf)) = sr.next()? {
                    if let (1, Field::Bytes(x)) = (sn, sf) {
                        finalizers.push(Value::String(string(x)?));
                    }
                }
                obj.insert("spec".into(), json!({"finalizers": finalizers}));
            }
            ("ServiceAccount", 4, Field::Varint(v)) => {
                _ = obj.insert("automountServiceAccountToken".into(), (v != 0).into())
            }
            _ => {}
        }
    }
    for ((_, name, _), m) in maps_of(kind).iter().zip(maps) {
        if !m.is_empty() {
            obj.insert((*name).to_string(), Value::Object(m));
        }
    }
    Ok(())
}

/// `SelfSubjectAccessReviewSpec` / `SubjectAccessReviewSpec` (what `kubectl auth can-i`
/// sends): the attributes, and for the latter `user` and `groups`.
fn review_spec(b: &[u8]) -> Res<Value> {
    let mut spec = Map::new();
    let mut groups = Vec::new();
    let mut r = Reader::new(b);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                let names = [
                    "namespace",
                    "verb",
                    "group",
                    "version",
                    "resource",
                    "subresource",
                    "name",
                ];
                _ = spec.insert("resourceAttributes".into(), strings_by_number(b, &names)?)
            }
            (2, Field::Bytes(b)) => {
                _ = spec.insert(
                    "nonResourceAttributes".into(),
                    strings_by_number(b, &["path", "verb"])?,
                )
            }
            (3, Field::Bytes(b)) => _ = spec.insert("user".into(), string(b)?.into()),
            (4, Field::Bytes(b)) => groups.push(Value::String(string(b)?)),
            _ => {}
        }
    }
    if !groups.is_empty() {
        spec.insert("groups".into(), Value::Array(groups));
    }
    Ok(Value::Object(spec))
}

/// A message of string fields numbered 1.. as `names`.
fn strings_by_number(b: &[u8], names: &[&str]) -> Res<Value> {
    let mut out = Map::new();
    let mut r = Reader::new(b);
    while let Some((n, f)) = r.next()? {
        let name = usize::try_from(n).ok().and_then(|n| names.get(n.checked_sub(1)?));
        if let (Some(name), Field::Bytes(b)) = (name, f) {
            out.insert((*name).to_string(), string(b)?.into());
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body of a supported kind into JSON.
pub fn decode(body: &[u8]) -> Res<Value> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ProtoError("missing k8s magic".into()))?;
    let mut r = Reader::new(inner);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while let Some((tn, tf)) = t.next()? {
                    match (tn, tf) {
                        (1, Field::Bytes(b)) => api_version = string(b)?,
                        (2, Field::Bytes(b)) => kind = string(b)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if !matches!(
        kind.as_str(),
        "Secret"
            | "ConfigMap"
            | "DeleteOptions"
            | "Namespace"
            | "ServiceAccount"
            | "SelfSubjectAccessReview"
            | "SubjectAccessReview"
    ) {
        return Err(ProtoError(format!("kind {kind:?} is not supported in protobuf")));
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind.clone()));
    decode_kind(&kind, raw, &mut obj)?;
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_secret() {
        let meta = [
            field(1, b"sh.helm.release.v1.demo.v1"),
            field(11, &[field(1, b"owner"), field(2, b"helm")].concat()),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &[field(1, b"release"), field(2, b"\x01\x02")].concat()),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let tm = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &tm), field(2, &secret)].concat();
        let v = decode(&body).expect("decode");
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.demo.v1");
        assert_eq!(v["metadata"]["labels"]["owner"], "helm");
        assert_eq!(v["data"]["release"], "AQI=");
        assert_eq!(v["type"], "helm.sh/release.v1");
    }

    #[test]
    fn decodes_an_access_review() {
        let attrs = [field(1, b"kube-system"), field(2, b"list"), field(5, b"secrets")].concat();
        let spec = [
            field(1, &attrs),
            field(3, b"alice"),
            field(4, b"devs"),
            field(4, b"ops"),
        ]
        .concat();
        let tm = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SubjectAccessReview"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &tm), field(2, &field(2, &spec))].concat();
        let v = decode(&body).expect("decode");
        let ra = &v["spec"]["resourceAttributes"];
        assert_eq!(
            (ra["namespace"].as_str(), ra["verb"].as_str()),
            (Some("kube-system"), Some("list"))
        );
        assert_eq!(ra["resource"], "secrets");
        assert_eq!(v["spec"]["user"], "alice");
        assert_eq!(v["spec"]["groups"], json!(["devs", "ops"]));
    }
}
