//! Query projections: the few columns a list, a filter or a rollup needs, derived from a record
//! by a pure function so every replica that holds the same document derives the same row.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;

use super::event::UNKNOWN_STATE;
use super::{Body, Record, RecordId};

/// How a delegate is linked to a record, for "every record of this delegate" queries (履职档案).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonRole {
    /// The delegate record itself.
    Delegate,
    /// A seat of the delegate's (a mandate record).
    Mandate,
    GroupMember,
    GroupLeader,
    Participant,
    Receiver,
    Lead,
    Cosigner,
}

impl PersonRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonRole::Delegate => "delegate",
            PersonRole::Mandate => "mandate",
            PersonRole::GroupMember => "group_member",
            PersonRole::GroupLeader => "group_leader",
            PersonRole::Participant => "participant",
            PersonRole::Receiver => "receiver",
            PersonRole::Lead => "lead",
            PersonRole::Cosigner => "cosigner",
        }
    }
}

/// The values a store filters and groups records on, each its own column: the store never
/// reads inside a record's summary or document to find a record, it matches these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterKeys {
    /// The record's kind within its kind: an activity's type (`reception` …), a suggestion's
    /// answer class once answered, a group's kind (`professional`, `regional`), a revoked
    /// certificate's serial.
    pub tag: Option<String>,
    /// The congress a suggestion is addressed to, which numbers it; the congress an opinion
    /// was passed on to; the region whose certificate a revocation names.
    pub addressed_to: Option<String>,
    /// A suggestion's number within its congress.
    pub number: Option<i64>,
    /// The delegate group an activity was held by.
    pub group: Option<String>,
    /// The person a person record was merged into (a duplicate registration's redirect).
    pub merged_into: Option<String>,
}

impl FilterKeys {
    /// The keys of a record of `kind` whose projection has `summary`: the same values the
    /// summary shows, so a list filtered on a key and the row it shows never disagree.
    pub fn of(kind: super::RecordKind, summary: &serde_json::Value) -> FilterKeys {
        use super::RecordKind;
        let text = |key: &str| {
            summary
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        match kind {
            RecordKind::Activity => FilterKeys {
                tag: text("kind"),
                group: text("group"),
                ..FilterKeys::default()
            },
            RecordKind::Delegate => FilterKeys {
                merged_into: text("merged_into"),
                ..FilterKeys::default()
            },
            RecordKind::Group => FilterKeys {
                tag: text("kind"),
                ..FilterKeys::default()
            },
            RecordKind::Opinion => FilterKeys {
                addressed_to: text("passed_on_congress"),
                ..FilterKeys::default()
            },
            RecordKind::Revocation => FilterKeys {
                tag: text("serial"),
                addressed_to: text("region"),
                ..FilterKeys::default()
            },
            RecordKind::Suggestion => FilterKeys {
                tag: text("class"),
                addressed_to: text("addressed_to"),
                number: summary.get("number").and_then(|v| v.as_i64()),
                group: text("group"),
                ..FilterKeys::default()
            },
            _ => FilterKeys::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Projection {
    /// What a list shows as the record's name: a delegate's name, a suggestion's title …
    pub label: String,
    /// The workflow state or standing, as its English identifier.
    pub status: Option<String>,
    /// The date the record is about: an activity's date, when an opinion was received …
    pub occurred_on: Option<NaiveDate>,
    /// When an awaited answer is due; overdue is derived from it at query time.
    pub due_on: Option<NaiveDate>,
    pub people: Vec<(RecordId, PersonRole)>,
    /// Everything else a list or rollup reads, so neither loads the document.
    pub summary: serde_json::Value,
}

pub fn project(record: &Record) -> Projection {
    match &record.body {
        Body::Delegate(d) => Projection {
            label: d.name.clone(),
            // A person registered since mandates are records has their standing on each
            // seat, not on the person.
            status: (!d.mandates.is_empty()).then(|| d.status().as_str().to_string()),
            occurred_on: None,
            due_on: None,
            people: vec![(record.header.id, PersonRole::Delegate)],
            summary: json!({
                "gender": d.gender,
                "occupation": d.occupation,
                "highest_level": d.highest_level(),
                "station": d.station,
                "merged_into": d.merged_into,
                "mandates": d.mandates.values().map(|m| json!({
                    "congress": m.congress, "level": m.level, "term": m.term, "status": m.status,
                })).collect::<Vec<_>>(),
            }),
        },
        Body::Mandate(m) => Projection {
            label: m.name.clone(),
            status: Some(m.status.as_str().to_string()),
            occurred_on: None,
            due_on: None,
            people: vec![(m.person, PersonRole::Mandate)],
            summary: json!({
                "person": m.person, "person_home": m.person_home, "congress": m.congress,
                "level": m.level, "term": m.term, "constituency": m.constituency,
                "stations": m.current_stations().map(|(venue, s)| json!({
                    "venue": venue, "region": s.region,
                })).collect::<Vec<_>>(),
            }),
        },
        Body::Group(g) => {
            let mut people: Vec<_> = g
                .members
                .0
                .iter()
                .map(|id| (*id, PersonRole::GroupMember))
                .collect();
            if let Some(leader) = g.leader {
                people.push((leader, PersonRole::GroupLeader));
            }
            Projection {
                label: g.name.clone(),
                status: None,
                occurred_on: None,
                due_on: None,
                people,
                summary: json!({
                    "kind": g.kind, "field": g.field, "congress": g.congress,
                    "members": g.members.0.len(), "leader": g.leader,
                }),
            }
        }
        Body::Venue(v) => Projection {
            label: v.name.clone(),
            status: None,
            occurred_on: None,
            due_on: None,
            people: Vec::new(),
            summary: json!({ "kind": v.kind, "region": v.region, "address": v.address }),
        },
        Body::Activity(a) => Projection {
            label: a.topic.clone(),
            status: None,
            occurred_on: Some(a.date),
            due_on: None,
            people: a
                .participants
                .keys()
                .map(|id| (*id, PersonRole::Participant))
                .collect(),
            summary: json!({
                "kind": a.kind, "organiser": a.organiser, "group": a.group, "venue": a.venue,
                "sign_ins": a.participants.len(),
                "constituents_received": a.constituents_received,
                "highest_level": a.highest_participant_level(),
            }),
        },
        Body::Opinion(o) => {
            let (status, _) = o.fold(&record.header);
            let mut summary = json!({
                "source": o.fields.source, "region": o.fields.region,
                "passed_on": status.passed_on_to.is_some(),
                "passed_on_to": status.passed_on_to,
                "answered_on_spot": status.answered_on_spot,
                "handled_on": status.handled_on,
                "rating": status.rating,
                "rejected_events": status.rejected_events,
            });
            // Only when set, so the summaries of opinions stored before a congress could be
            // passed one stay as they were written.
            if let Some(congress) = status.passed_on_congress {
                summary["passed_on_congress"] = json!(congress);
            }
            Projection {
                label: o.fields.content.chars().take(40).collect(),
                status: Some(workflow_status(
                    status.state.as_str(),
                    status.unreadable_events,
                )),
                occurred_on: status.received_on,
                due_on: None,
                people: o
                    .fields
                    .delegate
                    .map(|d| (d, PersonRole::Receiver))
                    .into_iter()
                    .collect(),
                summary,
            }
        }
        Body::Suggestion(s) => {
            let (status, _) = s.fold(&record.header);
            let mut people = vec![(s.fields.lead, PersonRole::Lead)];
            people.extend(
                s.fields
                    .cosigners
                    .iter()
                    .map(|c| (c.id, PersonRole::Cosigner)),
            );
            Projection {
                label: s.fields.title.clone(),
                status: Some(workflow_status(
                    status.state.as_str(),
                    status.unreadable_events,
                )),
                occurred_on: status.submitted_on,
                due_on: status.due,
                people,
                summary: json!({
                    "number": status.number,
                    "category": s.fields.category,
                    "lead_name": s.fields.lead_name,
                    "addressed_to": s.fields.addressed_to,
                    "session": s.fields.session,
                    "group": s.fields.group,
                    "motion": s.fields.motion,
                    "units": status.units,
                    "assigned_on": status.assigned_on,
                    "class": status.class,
                    "answered_on_time": status.answered_on_time,
                    "evaluation": status.evaluation,
                    "key_supervision": status.key_supervision,
                    "round": status.round,
                    "closed_on": status.closed_on,
                    "rejected_events": status.rejected_events,
                }),
            }
        }
        Body::Revocation(r) => Projection {
            label: format!("吊销 {} 的证书 {}", r.region, r.serial),
            status: None,
            occurred_on: Some(crate::calendar::day_of(record.header.created_at)),
            due_on: None,
            people: Vec::new(),
            summary: json!({ "region": r.region, "serial": r.serial, "reason": r.reason }),
        },
        Body::Notice(n) => Projection {
            label: n.title.clone(),
            status: None,
            occurred_on: Some(n.issued_on),
            due_on: None,
            people: Vec::new(),
            summary: json!({ "category": n.category, "audience": n.audience }),
        },
        Body::Motion(m) => {
            use super::motion::Proposer;
            let (status, _) = m.fold(&record.header);
            let mut people = Vec::new();
            if let Proposer::Delegates {
                lead, cosigners, ..
            } = &m.fields.proposer
            {
                people.push((*lead, PersonRole::Lead));
                people.extend(cosigners.iter().map(|c| (c.id, PersonRole::Cosigner)));
            }
            let proposer = match &m.fields.proposer {
                Proposer::Delegates { .. } => "delegates",
                Proposer::Delegation { .. } => "delegation",
                Proposer::Body { .. } => "body",
            };
            Projection {
                label: m.fields.title.clone(),
                status: Some(workflow_status(
                    status.state.as_str(),
                    status.unreadable_events,
                )),
                occurred_on: status.submitted_on,
                due_on: None,
                people,
                summary: json!({
                    "congress": m.fields.congress,
                    "session": m.fields.session,
                    "deadline": m.fields.deadline,
                    "proposer": proposer,
                    "proposed_by": m.fields.proposer.describe(),
                    "signers": m.fields.proposer.signers().len(),
                    "committee": status.committee,
                    "suggestion": status.suggestion,
                    "decided_on": status.decided_on,
                }),
            }
        }
        // The summary is the whole rule, so a node reads its rules without loading documents.
        Body::QuotaRule(q) => Projection {
            label: q.describe(),
            status: None,
            occurred_on: Some(q.from),
            due_on: None,
            people: Vec::new(),
            summary: json!(q),
        },
        Body::Rollup(r) => Projection {
            label: format!("{} 汇总", record.header.home),
            status: None,
            occurred_on: Some(crate::calendar::day_of(r.computed_at)),
            due_on: None,
            people: Vec::new(),
            summary: json!({ "children": r.children.len(), "stale": r.stale.len() }),
        },
        Body::Personal(p) => Projection {
            // Personal data never appears in lists: only the link to its subject does.
            label: String::new(),
            status: None,
            occurred_on: None,
            due_on: None,
            people: Vec::new(),
            summary: json!({ "subject": p.subject, "subject_kind": p.subject_kind }),
        },
    }
}

/// A workflow record's status column: its folded state, or [`UNKNOWN_STATE`] while it holds
/// events this version cannot read, whose steps the fold could not take into account.
fn workflow_status(state: &str, unreadable_events: usize) -> String {
    if unreadable_events > 0 {
        UNKNOWN_STATE.to_string()
    } else {
        state.to_string()
    }
}
