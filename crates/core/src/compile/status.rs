//! Status as an output of compile: conditions (without timestamps, which the writer adds) and
//! each kind's own status fields.

use std::{borrow::Cow, fmt, sync::Arc};

pub use crate::conditions::Cond;
use crate::conditions::{reasons, types};
use crate::model::{ApiId, Invalid, KeyId, ObjectKey};
use crate::routing::KeyEntry;

/// The kinds compile reports on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    RestApi,
    Deployment,
    Stage,
    UsagePlan,
    ApiKey,
}

/// The kind-specific status fields, as small as they go: an ApiKey's status is one of 10,000.
/// The API and key ids are held inline; the fields of the other kinds are boxed apart
/// ([`OtherFields`]), so an ApiKey's status holds one pointer for them, and no room.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_id: Option<ApiId>,
    #[serde(flatten)]
    pub other: Option<Box<OtherFields>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
}

impl StatusFields {
    /// The fields of the kinds other than ApiKey, made empty when there are none yet.
    pub fn other(&mut self) -> &mut OtherFields {
        self.other.get_or_insert_default()
    }
}

/// The status fields of Deployments, Stages and UsagePlans. The texts are boxed, not
/// `String`s. (A stage's deployment id may be `live`, so it is text.)
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_deployment_id: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoke_url: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_count: Option<i64>,
}

/// The status compile wants an object to have.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    pub kind: Kind,
    pub object: ObjectKey,
    pub observed_generation: i64,
    /// Accepted, ResolvedRefs, Ready, in that order. Shared: most API keys have the same
    /// three, and compile keeps one copy of them (see `CompileCache`).
    pub conditions: Arc<[Cond]>,
    #[serde(flatten)]
    pub fields: StatusFields,
}

impl StatusUpdate {
    /// The condition of a type.
    pub fn condition(&self, type_: &str) -> Option<&Cond> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether `Ready` is true.
    pub fn is_ready(&self) -> bool {
        self.condition(types::READY).is_some_and(|c| c.status)
    }
}

impl StatusFields {
    /// An ApiKey's fields: its id.
    pub fn of_key(id: &KeyId) -> Self {
        StatusFields {
            key_id: Some(*id),
            ..Default::default()
        }
    }
}

/// The status compile decided for one object: an update of its own, or, for an API key the
/// table serves, read from the key's entry, which holds every part of it (so that 10,000
/// served keys take no allocation each for their status).
#[derive(Clone)]
pub enum Status {
    Update(Arc<StatusUpdate>),
    Key(Arc<KeyEntry>),
}

impl Status {
    pub fn kind(&self) -> Kind {
        match self {
            Status::Update(u) => u.kind,
            Status::Key(_) => Kind::ApiKey,
        }
    }

    pub fn object(&self) -> &ObjectKey {
        match self {
            Status::Update(u) => &u.object,
            Status::Key(e) => &e.object,
        }
    }

    pub fn conditions(&self) -> &[Cond] {
        match self {
            Status::Update(u) => &u.conditions,
            Status::Key(e) => &e.conditions,
        }
    }

    /// The condition of a type.
    pub fn condition(&self, type_: &str) -> Option<&Cond> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }

    /// Whether `Ready` is true.
    pub fn is_ready(&self) -> bool {
        self.condition(types::READY).is_some_and(|c| c.status)
    }

    /// Whether `other` is this very status (held in the same place), not only an equal one.
    pub fn same(&self, other: &Status) -> bool {
        match (self, other) {
            (Status::Update(a), Status::Update(b)) => Arc::ptr_eq(a, b),
            (Status::Key(a), Status::Key(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The update; a served key's made from its entry (sharing its parts, allocating
    /// nothing).
    pub fn update(&self) -> Cow<'_, StatusUpdate> {
        match self {
            Status::Update(u) => Cow::Borrowed(u),
            Status::Key(e) => Cow::Owned(StatusUpdate {
                kind: Kind::ApiKey,
                object: e.object.clone(),
                observed_generation: e.generation,
                conditions: e.conditions.clone(),
                fields: StatusFields::of_key(&e.id),
            }),
        }
    }
}

/// As the updates compare.
impl PartialEq for Status {
    fn eq(&self, other: &Self) -> bool {
        self.update() == other.update()
    }
}

/// As the update prints.
impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.update(), f)
    }
}

/// Builds the three conditions of an object step by step.
#[derive(Debug)]
pub(crate) struct Conditions {
    kind: Kind,
    object: ObjectKey,
    accepted: Option<Cond>,
    resolved: Option<Cond>,
    ready: Option<Cond>,
}

impl Conditions {
    pub(crate) fn new(kind: Kind, object: &ObjectKey) -> Self {
        Conditions {
            kind,
            object: object.clone(),
            accepted: None,
            resolved: None,
            ready: None,
        }
    }

    fn label(&self) -> String {
        format!("{:?} {:?}", self.kind, self.object.name)
    }

    /// Accepted=False from validation failures (every failure listed, the first one's reason).
    pub(crate) fn invalid(&mut self, errors: &[Invalid]) {
        let reason = errors
            .first()
            .map_or(reasons::INVALID_REFERENCE, |e| e.reason.as_str());
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        self.accepted = Some(Cond::fail(
            types::ACCEPTED,
            reason,
            format!("{}: {}", self.label(), list.join("; ")),
        ));
    }

    pub(crate) fn reject(&mut self, reason: &'static str, message: impl Into<String>) {
        let message = format!("{}: {}", self.label(), message.into());
        self.accepted = Some(Cond::fail(types::ACCEPTED, reason, message));
    }

    /// ResolvedRefs=False. The first unresolved reference wins; later ones are appended.
    pub(crate) fn unresolved(&mut self, reason: &'static str, message: impl Into<String>) {
        let message = message.into();
        match &mut self.resolved {
            Some(c) if !c.status => {
                c.message.push_str("; ");
                c.message.push_str(&message);
            }
            _ => {
                let message = format!("{}: {message}", self.label());
                self.resolved = Some(Cond::fail(types::RESOLVED_REFS, reason, message));
            }
        }
    }

    pub(crate) fn is_accepted(&self) -> bool {
        self.accepted.as_ref().is_none_or(|c| c.status)
    }

    pub(crate) fn is_resolved(&self) -> bool {
        self.resolved.as_ref().is_none_or(|c| c.status)
    }

    pub(crate) fn not_ready(&mut self, reason: &'static str, message: impl Into<String>) {
        let message = format!("{}: {}", self.label(), message.into());
        self.ready = Some(Cond::fail(types::READY, reason, message));
    }

    pub(crate) fn ready(&mut self, message: impl Into<String>) {
        self.ready = Some(Cond::ok(types::READY, reasons::READY, message));
    }

    /// Finishes with defaults: Accepted and ResolvedRefs true unless said otherwise; Ready
    /// false with the cause when either is false.
    pub(crate) fn finish(self, generation: i64, fields: StatusFields) -> StatusUpdate {
        let accepted = self
            .accepted
            .unwrap_or_else(|| Cond::ok(types::ACCEPTED, reasons::ACCEPTED, "the spec is valid"));
        let resolved = self.resolved.unwrap_or_else(|| {
            Cond::ok(
                types::RESOLVED_REFS,
                reasons::RESOLVED_REFS,
                "every reference resolved",
            )
        });
        let ready = match self.ready {
            // An explicit Ready=False says more than the default (e.g. that stages keep
            // serving the snapshots of a RestApi whose live definition is invalid).
            Some(r) if !r.status => r,
            _ if !accepted.status => {
                Cond::fail(types::READY, reasons::NOT_ACCEPTED, accepted.message.clone())
            }
            Some(r) => r,
            None if !resolved.status => {
                Cond::fail(types::READY, reasons::REFS_NOT_RESOLVED, resolved.message.clone())
            }
            None => Cond::ok(types::READY, reasons::READY, "ready"),
        };
        StatusUpdate {
            kind: self.kind,
            object: self.object,
            observed_generation: generation,
            conditions: Arc::new([accepted, resolved, ready]),
            fields,
        }
    }
}

#[cfg(test)]
mod tests;
