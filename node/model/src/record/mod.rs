//! The record model: one automerge document per record.
//!
//! Every record has a time-ordered [`RecordId`] and an immutable [`Header`] (kind, home region,
//! created at, created by) that the store copies into SQLite columns, so routing can read it
//! without loading the document. The kind-specific part lives under `fields`; the workflow kinds
//! (opinions and suggestions) also keep an append-only `events` list whose status is a pure fold
//! ([`suggestion::fold`], [`opinion::fold`]).
//!
//! Architecture invariant: this module knows nothing of SQLite or gRPC. It turns documents into
//! typed records and back, and decides which workflow events are legal; storing and sending
//! documents is someone else's job.

/// Declares an enum whose values have a stable English identifier (stored, and typed on the
/// command line) and a Chinese label (shown to staff); `parse` accepts either.
macro_rules! labelled_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => ($id:literal, $label:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $id)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $id),+ }
            }

            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            pub fn parse(field: &str, s: &str) -> Result<$name, $crate::validate::ValidationError> {
                let s = s.trim();
                Self::ALL.iter().copied().find(|v| v.as_str() == s || v.label() == s).ok_or_else(|| {
                    let choices: Vec<String> =
                        Self::ALL.iter().map(|v| format!("{}({})", v.label(), v.as_str())).collect();
                    $crate::validate::ValidationError::new(
                        field,
                        format!("必须是以下之一：{}，实际为“{}”", choices.join("、"), $crate::validate::quote(s)),
                    )
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}

pub mod activity;
pub mod authority;
pub mod delegate;
pub mod doc;
pub mod event;
pub mod fleet;
pub mod group;
pub mod mandate;
pub mod merge;
pub mod motion;
pub mod notice;
pub mod opinion;
pub mod personal;
pub mod projection;
pub mod quota;
pub mod replay;
pub mod revocation;
pub mod rollup;
pub mod suggestion;
pub mod view;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::region::RegionCode;
use crate::validate::ValidationError;

pub use doc::{DocError, RecordDoc};
pub use event::{Author, Event, EventId, Rejection};
pub use replay::RawChange;

/// A record's stable identity: a ULID, so ids sort by creation time across every node and two
/// nodes never mint the same id without coordinating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(ulid::Ulid);

impl RecordId {
    pub fn new() -> RecordId {
        RecordId(ulid::Ulid::generate())
    }

    /// The all-zero id no record has: a sample event's (`event::probe`).
    pub const fn nil() -> RecordId {
        RecordId(ulid::Ulid::nil())
    }

    pub fn parse(field: &str, s: &str) -> Result<RecordId, ValidationError> {
        ulid::Ulid::from_string(s.trim())
            .map(RecordId)
            .map_err(|_| {
                ValidationError::new(
                    field,
                    format!(
                        "记录编号必须是26位 ULID，实际为“{}”",
                        crate::validate::quote(s)
                    ),
                )
            })
    }
}

impl Default for RecordId {
    fn default() -> Self {
        RecordId::new()
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.0)
    }
}

impl FromStr for RecordId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordId::parse("id", s)
    }
}

impl Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RecordId::parse("id", &s).map_err(serde::de::Error::custom)
    }
}

/// The kinds of record a node keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Delegate,
    Group,
    Venue,
    Activity,
    Opinion,
    Suggestion,
    Notice,
    /// Personal data (phones, ID numbers, constituents' names) split off from its subject so
    /// that routing can keep it at home and the parent.
    Personal,
    /// A node's numbers for its subtree ([`rollup::Rollup`]), one per node.
    Rollup,
    /// A person's seat in one congress for one term ([`mandate::Mandate`]), homed at that
    /// congress. Added after the others: last, so the kinds before it keep their order.
    Mandate,
    /// A duty rule of a congress ([`quota::QuotaRule`]), homed at that congress.
    QuotaRule,
    /// A motion to a congress in session ([`motion::Motion`]), homed at that congress.
    Motion,
    /// A node certificate revoked by a node above it ([`revocation::Revocation`]), homed at
    /// the revoking node. Added in protocol 7: never sent on a link of 6.
    Revocation,
}

impl RecordKind {
    pub const ALL: [RecordKind; 13] = [
        RecordKind::Delegate,
        RecordKind::Group,
        RecordKind::Venue,
        RecordKind::Activity,
        RecordKind::Opinion,
        RecordKind::Suggestion,
        RecordKind::Notice,
        RecordKind::Personal,
        RecordKind::Rollup,
        RecordKind::Mandate,
        RecordKind::QuotaRule,
        RecordKind::Motion,
        RecordKind::Revocation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Delegate => "delegate",
            RecordKind::Group => "group",
            RecordKind::Venue => "venue",
            RecordKind::Activity => "activity",
            RecordKind::Opinion => "opinion",
            RecordKind::Suggestion => "suggestion",
            RecordKind::Notice => "notice",
            RecordKind::Personal => "personal",
            RecordKind::Rollup => "rollup",
            RecordKind::Mandate => "mandate",
            RecordKind::QuotaRule => "quota_rule",
            RecordKind::Motion => "motion",
            RecordKind::Revocation => "revocation",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RecordKind::Delegate => "代表",
            RecordKind::Group => "代表小组",
            RecordKind::Venue => "阵地",
            RecordKind::Activity => "活动",
            RecordKind::Opinion => "民情",
            RecordKind::Suggestion => "建议",
            RecordKind::Notice => "通知",
            RecordKind::Personal => "个人信息",
            RecordKind::Rollup => "汇总",
            RecordKind::Mandate => "代表资格",
            RecordKind::QuotaRule => "履职要求",
            RecordKind::Motion => "议案",
            RecordKind::Revocation => "证书吊销",
        }
    }

    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Workflow kinds carry an event list.
    pub fn has_workflow(self) -> bool {
        matches!(
            self,
            RecordKind::Opinion | RecordKind::Suggestion | RecordKind::Motion
        )
    }
}

/// The immutable part of every record, written once at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub id: RecordId,
    pub kind: RecordKind,
    /// The region whose node created the record and answers for it.
    pub home: RegionCode,
    pub created_at: DateTime<Utc>,
    pub created_by: Author,
}

impl Header {
    /// Whether `name` may name a record kind: the wire and the store carry a kind this release
    /// does not know ([`AnyHeader`]) only under a name a later release could have given it,
    /// lowercase ASCII letters, digits and underscores, starting with a letter, at most 32 long.
    pub fn is_kind_name(name: &str) -> bool {
        name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
}

/// A record's header with its kind as written, whether this release knows the kind or not:
/// what the wire and the routing columns carry. A record of a kind a newer release added
/// travels and is stored under it as it came (`record::merge::merge_newer_kind`); the kinds
/// this release knows convert to a [`Header`] ([`AnyHeader::known`]). Serialized as
/// [`Header`] is, so a document's header text reads as either.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyHeader {
    pub id: RecordId,
    pub kind: String,
    pub home: RegionCode,
    pub created_at: DateTime<Utc>,
    pub created_by: Author,
}

impl AnyHeader {
    /// The header as this release reads it, or `None` for a kind it does not know.
    pub fn known(&self) -> Option<Header> {
        RecordKind::parse(&self.kind).map(|kind| Header {
            id: self.id,
            kind,
            home: self.home,
            created_at: self.created_at,
            created_by: self.created_by.clone(),
        })
    }
}

impl From<Header> for AnyHeader {
    fn from(h: Header) -> AnyHeader {
        AnyHeader {
            id: h.id,
            kind: h.kind.as_str().to_string(),
            home: h.home,
            created_at: h.created_at,
            created_by: h.created_by,
        }
    }
}

/// A set of record ids kept as an automerge map (id → true), so two nodes adding different
/// members concurrently both keep their additions after a merge; a list would not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet(pub BTreeSet<RecordId>);

impl Serialize for IdSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|id| (id.to_string(), true)))
    }
}

impl<'de> Deserialize<'de> for IdSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<RecordId, bool>::deserialize(d)?;
        Ok(IdSet(
            map.into_iter()
                .filter(|(_, present)| *present)
                .map(|(id, _)| id)
                .collect(),
        ))
    }
}

/// A record decoded into its typed body.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub header: Header,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Delegate(delegate::Delegate),
    Group(group::Group),
    Venue(group::Venue),
    Activity(activity::Activity),
    Opinion(opinion::Opinion),
    Suggestion(suggestion::Suggestion),
    Notice(notice::Notice),
    Personal(personal::PersonalData),
    /// Boxed: a rollup's three sets of metrics would make every `Body` that large.
    Rollup(Box<rollup::Rollup>),
    Mandate(mandate::Mandate),
    QuotaRule(quota::QuotaRule),
    Motion(motion::Motion),
    Revocation(revocation::Revocation),
}

impl Record {
    /// The JSON form of a record, for `--json` and the query service: header, fields, the
    /// derived status and history of a workflow, and its personal data when given.
    pub fn to_json(&self, personal: Option<&Record>) -> serde_json::Value {
        use serde_json::{Value, json};
        fn history<T: serde::Serialize>(h: &T) -> Value {
            serde_json::to_value(h).unwrap_or(Value::Null)
        }
        let (fields, status, hist) = match &self.body {
            Body::Delegate(d) => (json!(d), Value::Null, Value::Null),
            Body::Group(g) => (json!(g), Value::Null, Value::Null),
            Body::Venue(v) => (json!(v), Value::Null, Value::Null),
            Body::Activity(a) => (json!(a), Value::Null, Value::Null),
            Body::Notice(n) => (json!(n), Value::Null, Value::Null),
            Body::Personal(p) => (json!(p), Value::Null, Value::Null),
            Body::Rollup(r) => (json!(r), Value::Null, Value::Null),
            Body::Mandate(m) => (json!(m), Value::Null, Value::Null),
            Body::QuotaRule(q) => (json!(q), Value::Null, Value::Null),
            Body::Revocation(r) => (json!(r), Value::Null, Value::Null),
            Body::Opinion(o) => {
                let (st, h) = o.fold(&self.header);
                (json!(o.fields), json!(st), history(&h))
            }
            Body::Suggestion(sg) => {
                let (st, h) = sg.fold(&self.header);
                (json!(sg.fields), json!(st), history(&h))
            }
            Body::Motion(m) => {
                let (st, h) = m.fold(&self.header);
                (json!(m.fields), json!(st), history(&h))
            }
        };
        let personal = personal.and_then(|p| match &p.body {
            Body::Personal(p) => Some(json!(p)),
            _ => None,
        });
        json!({ "header": self.header, "fields": fields, "status": status, "history": hist, "personal": personal })
    }

    /// Decodes a document into a typed record. Fails with a [`DocError`] naming what is missing
    /// or malformed; never panics, whatever the bytes said.
    pub fn from_doc(doc: &RecordDoc) -> Result<Record, DocError> {
        // One hydration of the document serves the header, the fields and the events.
        Record::from_root(doc.root()?)
    }

    /// Decodes a document's root, as hydrated from automerge or computed by a
    /// [`replay::Replay`], into a typed record.
    pub fn from_root(
        mut root: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Record, DocError> {
        use doc::{decode_events, decode_fields, decode_header};
        let header = decode_header(&mut root)?;
        let body = match header.kind {
            RecordKind::Delegate => Body::Delegate(decode_fields(&mut root)?),
            RecordKind::Group => Body::Group(decode_fields(&mut root)?),
            RecordKind::Venue => Body::Venue(decode_fields(&mut root)?),
            RecordKind::Activity => Body::Activity(decode_fields(&mut root)?),
            RecordKind::Notice => Body::Notice(decode_fields(&mut root)?),
            RecordKind::Personal => Body::Personal(decode_fields(&mut root)?),
            RecordKind::Rollup => Body::Rollup(decode_fields(&mut root)?),
            RecordKind::Mandate => Body::Mandate(decode_fields(&mut root)?),
            RecordKind::QuotaRule => Body::QuotaRule(decode_fields(&mut root)?),
            RecordKind::Revocation => Body::Revocation(decode_fields(&mut root)?),
            RecordKind::Opinion => Body::Opinion(opinion::Opinion {
                fields: decode_fields(&mut root)?,
                events: decode_events(&mut root)?,
            }),
            RecordKind::Suggestion => Body::Suggestion(suggestion::Suggestion {
                fields: decode_fields(&mut root)?,
                events: decode_events(&mut root)?,
            }),
            RecordKind::Motion => Body::Motion(motion::Motion {
                fields: decode_fields(&mut root)?,
                events: decode_events(&mut root)?,
            }),
        };
        Ok(Record { header, body })
    }
}
