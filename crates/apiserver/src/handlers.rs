//! One function per verb: get, list, watch, create, update, patch, delete, deletecollection.

use std::sync::Arc;

use base64::Engine as _;
use http::Response;
use serde_json::{Value, json};

use super::{
    crds,
    errors::{Result, StatusError},
    objects::{self, Endpoint, WriteOptions, meta_str},
    patch::{self, PatchType},
    registry::ResourceType,
    selectors::Selector,
    server::{Body, Req, State, json_response, stream_response},
    ssa,
    store::{EventType, Write},
    table,
    watch::{self, WatchParams},
};

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

fn dry_run(req: &Req) -> bool {
    req.q("dryRun") == Some("All")
}

fn write_opts(req: &Req) -> WriteOptions {
    let default_manager = req
        .user_agent
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string();
    WriteOptions {
        field_manager: req.q("fieldManager").map(String::from).unwrap_or(default_manager),
        field_validation: req.q("fieldValidation").unwrap_or("Warn").to_string(),
        is_apply: false,
    }
}

fn with_warnings(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let v = format!("299 - {:?}", w);
        if let Ok(h) = v.parse() {
            r.headers_mut().append(http::header::WARNING, h);
        }
    }
    r
}

/// The response for one object: the object, or a one-row Table.
fn object_response(code: u16, rt: &ResourceType, obj: &Value, req: &Req) -> Response<Body> {
    match req.table() {
        Some(include) => {
            let rv = super::store::object_rv(obj);
            json_response(code, &table::table(rt, &[obj], rv, None, &include, true))
        }
        None => json_response(code, obj),
    }
}

fn check_namespace(st: &State, rt: &ResourceType, ns: &str, name: &str, creating: bool) -> Result<()> {
    if !rt.namespaced {
        return Ok(());
    }
    let gr = super::registry::GroupResource {
        group: String::new(),
        resource: "namespaces".into(),
    };
    match st.store.get(&gr, "", ns) {
        None => Err(StatusError::namespace_not_found(ns)),
        Some(n) if creating && n.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(StatusError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.group_resource()
            )))
        }
        Some(_) => Ok(()),
    }
}

/// GET of one object.
pub fn get(st: &State, rt: &ResourceType, ns: &str, name: &str, req: &Req) -> Result<Response<Body>> {
    let obj = st
        .store
        .get(&rt.gr(), ns, name)
        .ok_or_else(|| StatusError::not_found(rt, name))?;
    Ok(object_response(200, rt, &obj, req))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: u64,
    after: (String, String),
}

/// LIST with selectors, limit and continue.
pub fn list(st: &State, rt: &ResourceType, ns: Option<&str>, req: &Req) -> Result<Response<Body>> {
    let labels = Selector::parse(req.q("labelSelector").unwrap_or_default())?;
    let fields = Selector::parse(req.q("fieldSelector").unwrap_or_default())?;
    let (objs, rv) = st.store.list(&rt.gr(), ns);
    let after = match req.q("continue") {
        Some(c) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| StatusError::bad_request("continue key is not valid"))?;
            let c: Continue = serde_json::from_slice(&raw)
                .map_err(|_| StatusError::bad_request("continue key is not valid"))?;
            Some(c.after)
        }
        None => None,
    };
    let limit: usize = req
        .q("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let key = |o: &Value| {
        (
            meta_str(o, "namespace").unwrap_or_default().to_string(),
            meta_str(o, "name").unwrap_or_default().to_string(),
        )
    };
    let mut page: Vec<&Value> = Vec::new();
    let mut more = false;
    for o in &objs {
        if let Some(a) = &after
            && key(o) <= *a
        {
            continue;
        }
        if !labels.matches_labels(o) || !fields.matches_fields(o) {
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(o);
    }
    let cont = if more {
        let last = page.last().map(|o| key(o)).unwrap_or_default();
        let raw = serde_json::to_vec(&Continue { rv, after: last }).unwrap_or_default();
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    } else {
        None
    };
    if let Some(include) = req.table() {
        return Ok(json_response(
            200,
            &table::table(rt, &page, rv, cont, &include, true),
        ));
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = Value::String(c);
    }
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": meta, "items": page}),
    ))
}

/// WATCH.
pub fn watch(
    st: &Arc<State>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    req: &Req,
) -> Result<Response<Body>> {
    let p = WatchParams {
        rv: req.q("resourceVersion").map(String::from),
        send_initial: req.flag("sendInitialEvents"),
        bookmarks: req.flag("allowWatchBookmarks"),
        timeout: req
            .q("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(std::time::Duration::from_secs),
        labels: Selector::parse(req.q("labelSelector").unwrap_or_default())?,
        fields: Selector::parse(req.q("fieldSelector").unwrap_or_default())?,
        table: req.table(),
    };
    if p.send_initial && req.q("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(StatusError::invalid(
            &rt,
            "",
            &[super::errors::Cause {
                reason: "FieldValueNotSupported",
                field: "resourceVersionMatch".into(),
                message: "Unsupported value: \"\": supported values: \"NotOlderThan\"".into(),
            }],
        ));
    }
    let rx = watch::start(st, rt, ns, p)?;
    Ok(stream_response(rx))
}

/// POST.
pub fn create(st: &State, rt: &ResourceType, ns: Option<&str>, req: &Req) -> Result<Response<Body>> {
    let mut obj = req.body_value()?;
    objects::check_type(rt, &mut obj)?;
    let ns = match (rt.namespaced, ns) {
        (true, Some(ns)) => ns.to_string(),
        (true, None) => return Err(StatusError::method_not_allowed()),
        (false, _) => String::new(),
    };
    if rt.namespaced
        && let Some(body_ns) = meta_str(&obj, "namespace").filter(|n| !n.is_empty())
        && body_ns != ns
    {
        return Err(StatusError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
            Some(g) => format!("{g}{}", objects::name_suffix()),
            None => {
                return Err(StatusError::invalid(
                    rt,
                    "",
                    &[super::errors::Cause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
        },
    };
    objects::validate_name(rt, &name)?;
    check_namespace(st, rt, &ns, &name, true)?;
    let opts = write_opts(req);
    let mut warnings = Vec::new();
    let (stored, _) = st.store.write(&rt.gr(), &ns, &name, dry_run(req), |old| {
        if old.is_some() {
            return Err(StatusError::already_exists(rt, &name));
        }
        objects::prepare(rt, &ns, &name, None, obj, Endpoint::Main, &opts, &mut warnings)
    })?;
    let stored = after_write(st, rt, stored, dry_run(req));
    Ok(with_warnings(object_response(201, rt, &stored, req), &warnings))
}

/// Post-write hooks: CRDs get their conditions and become served.
fn after_write(st: &State, rt: &ResourceType, obj: Arc<Value>, dry: bool) -> Arc<Value> {
    if dry || rt.plural != "customresourcedefinitions" || rt.group != "apiextensions.k8s.io" {
        return obj;
    }
    crds::established(st, rt, &obj).unwrap_or(obj)
}

fn check_rv(rt: &ResourceType, name: &str, old: &Value, new: &Value) -> Result<()> {
    match new.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        Some(rv)
            if !rv.is_empty()
                && Some(rv) != old.pointer("/metadata/resourceVersion").and_then(Value::as_str) =>
        {
            Err(StatusError::stale(rt, name))
        }
        _ => Ok(()),
    }
}

/// PUT.
pub fn update(
    st: &State,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    endpoint: Endpoint,
    req: &Req,
) -> Result<Response<Body>> {
    let mut obj = req.body_value()?;
    objects::check_type(rt, &mut obj)?;
    if let Some(n) = meta_str(&obj, "name")
        && n != name
    {
        return Err(StatusError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if rt.namespaced
        && let Some(body_ns) = meta_str(&obj, "namespace").filter(|n| !n.is_empty())
        && body_ns != ns
    {
        return Err(StatusError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let opts = write_opts(req);
    let mut warnings = Vec::new();
    let (stored, kind) = st.store.write(&rt.gr(), ns, name, dry_run(req), |old| {
        let old = old.ok_or_else(|| StatusError::not_found(rt, name))?;
        check_rv(rt, name, old, &obj)?;
        objects::prepare(rt, ns, name, Some(old), obj, endpoint, &opts, &mut warnings)
    })?;
    if kind == Some(EventType::Deleted) {
        st.gc.notify_one();
    }
    let stored = after_write(st, rt, stored, dry_run(req));
    Ok(with_warnings(object_response(200, rt, &stored, req), &warnings))
}

/// PATCH: JSON, merge, strategic merge, or server-side apply.
pub fn patch(
    st: &State,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    endpoint: Endpoint,
    req: &Req,
) -> Result<Response<Body>> {
    let ptype = PatchType::from_content_type(&req.content_type)?;
    if ptype == PatchType::Strategic && rt.crd.is_some() {
        return Err(StatusError::unsupported_media_type(&req.content_type));
    }
    let body: Value = match ptype {
        PatchType::Apply => serde_yaml::from_slice(&req.body)
            .map_err(|e| StatusError::bad_request(format!("error decoding YAML: {e}")))?,
        _ => serde_json::from_slice(&req.body)
            .map_err(|e| StatusError::bad_request(format!("error decoding patch: {e}")))?,
    };
    let mut opts = write_opts(req);
    let force = req.flag("force");
    if ptype == PatchType::Apply {
        if req.q("fieldManager").is_none() {
            return Err(StatusError::invalid(
                rt,
                name,
                &[super::errors::Cause::required("fieldManager")],
            ));
        }
        let mut applied = body.clone();
        objects::check_type(rt, &mut applied)?;
        if let Some(n) = meta_str(&applied, "name")
            && n != name
        {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        opts.is_apply = true;
        if st.store.get(&rt.gr(), ns, name).is_none() {
            check_namespace(st, rt, ns, name, true)?;
            objects::validate_name(rt, name)?;
        }
    } else if !body.is_object() && ptype != PatchType::Json {
        return Err(StatusError::bad_request("the patch must be a JSON object"));
    }
    let mut warnings = Vec::new();
    let (stored, kind) = st.store.write(&rt.gr(), ns, name, dry_run(req), |old| {
        let new = match (ptype, old) {
            (PatchType::Apply, old) => {
                if old.is_none() && endpoint == Endpoint::Status {
                    return Err(StatusError::not_found(rt, name));
                }
                let live = old.map(|o| &**o);
                ssa::apply(
                    live,
                    &body,
                    &opts.field_manager,
                    force,
                    &rt.api_version(),
                    endpoint,
                )
                .map_err(|c| StatusError::apply_conflicts(rt, name, &c))?
            }
            (_, None) => return Err(StatusError::not_found(rt, name)),
            (PatchType::Merge, Some(old)) => patch::merge_patch(old, &body),
            (PatchType::Json, Some(old)) => patch::json_patch(old, &body)?,
            (PatchType::Strategic, Some(old)) => patch::strategic(old, &body)?,
        };
        if let Some(old) = old {
            check_rv(rt, name, old, &new)?;
        }
        let mut new = new;
        objects::check_type(rt, &mut new)?;
        let ep = if old.is_none() { Endpoint::Main } else { endpoint };
        objects::prepare(rt, ns, name, old, new, ep, &opts, &mut warnings)
    })?;
    if kind == Some(EventType::Deleted) {
        st.gc.notify_one();
    }
    let code = if kind == Some(EventType::Added) { 201 } else { 200 };
    let stored = after_write(st, rt, stored, dry_run(req));
    Ok(with_warnings(object_response(code, rt, &stored, req), &warnings))
}

/// Deletion options from the body (DeleteOptions) or the query.
struct DeleteOptions {
    policy: String,
    uid: Option<String>,
    rv: Option<String>,
}

fn delete_options(req: &Req) -> Result<DeleteOptions> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else if req
        .content_type
        .starts_with("application/vnd.kubernetes.protobuf")
    {
        req.body_value()?
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| StatusError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .or(req.q("propagationPolicy"))
        .or(
            match body["orphanDependents"]
                .as_bool()
                .or(req.q("orphanDependents").map(|v| v == "true"))
            {
                Some(true) => Some("Orphan"),
                _ => None,
            },
        )
        .unwrap_or("Background")
        .to_string();
    if !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan") {
        return Err(StatusError::bad_request(format!(
            "unsupported propagationPolicy {policy:?}"
        )));
    }
    Ok(DeleteOptions {
        policy,
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

/// Decides what a delete does to a stored object: mark it (finalizers, namespaces,
/// foreground deletion) or remove it.
pub fn deletion(rt: &ResourceType, old: &Arc<Value>, foreground: bool) -> Write {
    let mut o = (**old).clone();
    let already = o.pointer("/metadata/deletionTimestamp").is_some();
    let mut finalizers: Vec<Value> = o
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let fg = Value::String("foregroundDeletion".into());
    if foreground && !already && !finalizers.contains(&fg) {
        finalizers.push(fg);
    }
    if finalizers.is_empty() && !is_namespace(rt) {
        return Write::Delete;
    }
    if already
        && finalizers.len()
            == o.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
    {
        return Write::Unchanged(old.clone());
    }
    let m = objects::meta_mut(&mut o);
    m.insert("finalizers".into(), Value::Array(finalizers));
    if !already {
        m.insert("deletionTimestamp".into(), Value::String(objects::now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if is_namespace(rt) {
        o["status"] = json!({"phase": "Terminating"});
    }
    Write::Put(o)
}

/// Removes `owner_uid` from the ownerReferences of every dependent (orphan propagation).
fn orphan_dependents(st: &State, owner_uid: &str) {
    let reg = st.registry();
    for (gr, o) in st.store.all() {
        let refs = o.pointer("/metadata/ownerReferences").and_then(Value::as_array);
        if !refs.is_some_and(|r| r.iter().any(|x| x["uid"].as_str() == Some(owner_uid))) {
            continue;
        }
        let Some(rt) = reg.by_gr(&gr) else { continue };
        let ns = meta_str(&o, "namespace").unwrap_or_default().to_string();
        let name = meta_str(&o, "name").unwrap_or_default().to_string();
        let _ = st.store.write(&gr, &ns, &name, false, |cur| {
            let Some(cur) = cur else {
                return Err(StatusError::not_found(&rt, &name));
            };
            let mut n = (**cur).clone();
            if let Some(refs) = n
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|x| x["uid"].as_str() != Some(owner_uid));
            }
            Ok(Write::Put(n))
        });
    }
}

/// DELETE of one object.
pub fn delete(st: &State, rt: &ResourceType, ns: &str, name: &str, req: &Req) -> Result<Response<Body>> {
    let opts = delete_options(req)?;
    let dry = dry_run(req);
    let current = st
        .store
        .get(&rt.gr(), ns, name)
        .ok_or_else(|| StatusError::not_found(rt, name))?;
    if opts.policy == "Orphan"
        && !dry
        && let Some(uid) = meta_str(&current, "uid")
    {
        orphan_dependents(st, uid);
    }
    let (obj, kind) = st.store.write(&rt.gr(), ns, name, dry, |old| {
        let old = old.ok_or_else(|| StatusError::not_found(rt, name))?;
        if let Some(uid) = &opts.uid {
            let actual = meta_str(old, "uid").unwrap_or_default();
            if uid != actual {
                return Err(StatusError::conflict(
                    rt,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &opts.rv {
            let actual = meta_str(old, "resourceVersion").unwrap_or_default();
            if rv != actual {
                return Err(StatusError::conflict(
                    rt,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        Ok(deletion(rt, old, opts.policy == "Foreground"))
    })?;
    if !dry {
        st.gc.notify_one();
        if kind == Some(EventType::Deleted) && rt.plural == "customresourcedefinitions" {
            crds::removed(st, &obj);
        }
    }
    Ok(object_response(200, rt, &obj, req))
}

/// DELETE of a collection.
pub fn delete_collection(
    st: &State,
    rt: &ResourceType,
    ns: Option<&str>,
    req: &Req,
) -> Result<Response<Body>> {
    let labels = Selector::parse(req.q("labelSelector").unwrap_or_default())?;
    let fields = Selector::parse(req.q("fieldSelector").unwrap_or_default())?;
    let opts = delete_options(req)?;
    let dry = dry_run(req);
    let (objs, _) = st.store.list(&rt.gr(), ns);
    let mut items = Vec::new();
    for o in objs
        .iter()
        .filter(|o| labels.matches_labels(o) && fields.matches_fields(o))
    {
        let ons = meta_str(o, "namespace").unwrap_or_default().to_string();
        let name = meta_str(o, "name").unwrap_or_default().to_string();
        let res = st.store.write(&rt.gr(), &ons, &name, dry, |old| match old {
            Some(old) => Ok(deletion(rt, old, opts.policy == "Foreground")),
            None => Err(StatusError::not_found(rt, &name)),
        });
        if let Ok((obj, kind)) = res {
            if kind == Some(EventType::Deleted) && rt.plural == "customresourcedefinitions" && !dry {
                crds::removed(st, &obj);
            }
            items.push((*obj).clone());
        }
    }
    st.gc.notify_one();
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": st.store.current_rv().to_string()}, "items": items}),
    ))
}
