//! Who may write what, checked on what a peer sends.
//!
//! A node stores nothing it cannot attribute. Every node's automerge actor begins with its
//! region code ([`node_actor`]), so the author of each change is known from the change itself;
//! a workflow event also names its author's region. A node receiving a peer's changes compares
//! the record before and after them ([`check_incoming`]) and refuses the whole set when:
//!
//! - the peer is a child and a change, a new record or a new event claims an author outside the
//!   child's subtree (a township cannot write as its county, nor as its neighbour);
//! - a new event breaks its workflow's authority rule (only the addressed congress assigns,
//!   only the lead delegate's home evaluates, …);
//! - an event the node held was removed or rewritten (events are append-only);
//! - a delegate's seat was added to, changed in or removed from a person record although no
//!   change came from the congress that holds it;
//! - a mandate record was written by anyone but its congress.
//!
//! Only rules that hold whatever else happened concurrently are checked here. A step that merely
//! lost a race (two concurrent screenings) is still stored and shown as rejected by the fold, so
//! honest replicas never refuse each other's changes and still converge.

use std::collections::{BTreeSet, HashMap};

use automerge::ActorId;

use super::event::{Envelope, Event, Rejection, newer_step};
use super::motion::MotionAction;
use super::opinion::OpinionAction;
use super::suggestion::SuggestionAction;
use super::{Author, Body, Record, RecordId, RecordKind, opinion, suggestion};
use crate::region::RegionCode;

/// Length of the region prefix of a node's actor id.
const REGION_LEN: usize = 12;

/// A fresh actor id for a node of `region`: the region code's twelve ASCII digits and eight
/// random bytes, so every change the node ever writes names the region that wrote it.
pub fn node_actor(region: &RegionCode) -> ActorId {
    let mut bytes = region.as_str().as_bytes().to_vec();
    bytes.extend_from_slice(&ulid::Ulid::generate().to_bytes()[8..]);
    ActorId::from(bytes)
}

/// The region whose node wrote changes under `actor`, or `None` for an actor that names none.
pub fn actor_region(actor: &ActorId) -> Option<RegionCode> {
    let bytes = actor.to_bytes();
    let prefix = bytes.get(..REGION_LEN)?;
    let text = std::str::from_utf8(prefix).ok()?;
    RegionCode::parse("actor", text).ok()
}

/// Who sent the changes being checked, as the verified link says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A child may write only as itself or a node below it.
    Child(RegionCode),
    /// A parent writes for its own congress and relays what came from above and from other
    /// subtrees, so authorship is not bounded; the workflow rules still are.
    Parent(RegionCode),
}

/// Whether [`check_incoming`] needs the record as it was before the changes, decoded: only a
/// delegate, whose mandates it compares. Workflow kinds need only their event texts
/// ([`Held::Workflow`]); the others nothing.
pub fn needs_before(kind: RecordKind) -> bool {
    kind == RecordKind::Delegate
}

/// What this node held of a record before a peer's changes.
#[derive(Clone, Copy, Debug)]
pub enum Held<'a> {
    /// The record is new here.
    Nothing,
    /// A delegate as it was (its mandates are compared).
    Record(&'a Record),
    /// A workflow record as it was, read without hydrating the document: its events as they
    /// were written (`RecordDoc::event_texts`) and, for a suggestion, the congress it was
    /// addressed to (`RecordDoc::field_text`), which owns its handling and so may not change.
    Workflow {
        events: &'a [String],
        addressed_to: Option<&'a str>,
        /// For a suggestion, the group it was made in the name of, which counts it and so
        /// may not change either.
        group: Option<&'a str>,
    },
    /// The record is held, and its kind needs no comparison.
    Unread,
}

/// The rules on who wrote a peer's changes that hold for a record of any kind, even one this
/// release cannot read: a child sends only changes written by itself or a node below it, and a
/// record new here only if created there (`created_by`, given for a record new here). Returns
/// the regions that wrote the changes.
pub fn check_authors<'a>(
    sender: Sender,
    id: &RecordId,
    created_by: Option<&Author>,
    actors: impl IntoIterator<Item = &'a ActorId>,
) -> Result<BTreeSet<RegionCode>, Rejection> {
    let bound = match sender {
        Sender::Child(region) => Some(region),
        Sender::Parent(_) => None,
    };
    let within = |region: &RegionCode| bound.is_none_or(|b| region.is_within(&b));
    let mut writers = BTreeSet::new();
    for actor in actors {
        let Some(region) = actor_region(actor) else {
            return Err(Rejection::new(
                "authority.change_author",
                format!("记录 {id} 的变更没有可识别的作者节点（{actor}）"),
            ));
        };
        if !within(&region) {
            return Err(Rejection::new(
                "authority.change_author",
                format!(
                    "记录 {id} 的变更由 {region} 写入，不属于发送方 {} 及其下级",
                    bound.map_or_else(String::new, |b| b.to_string())
                ),
            ));
        }
        writers.insert(region);
    }
    if let Some(created_by) = created_by
        && !within(&created_by.node)
    {
        return Err(Rejection::new(
            "authority.created_by",
            format!(
                "记录 {id} 自称由 {} 创建，不属于发送方及其下级",
                created_by.node
            ),
        ));
    }
    Ok(writers)
}

/// Checks what a peer's changes did to a record: `held` is what this node held of it, `after`
/// the record with the changes applied and `after_events` its event texts (empty for kinds
/// without events), `actors` the authors of the changes new to this node. `Err` names the rule
/// broken, and the whole set is refused.
pub fn check_incoming<'a>(
    sender: Sender,
    held: Held<'_>,
    after: &Record,
    after_events: &[String],
    actors: impl IntoIterator<Item = &'a ActorId>,
) -> Result<(), Rejection> {
    let writers = check_authors(
        sender,
        &after.header.id,
        matches!(held, Held::Nothing).then_some(&after.header.created_by),
        actors,
    )?;
    let within = |region: &RegionCode| match sender {
        Sender::Child(bound) => region.is_within(&bound),
        Sender::Parent(_) => true,
    };
    let before = match held {
        Held::Record(record) => Some(record),
        Held::Nothing | Held::Unread | Held::Workflow { .. } => None,
    };
    let before_events: &[String] = match held {
        Held::Workflow { events, .. } => events,
        _ => &[],
    };
    let id = &after.header.id;
    match (&after.body, before.map(|b| &b.body)) {
        (Body::Suggestion(now), _) => {
            // Whoever the suggestion is addressed to takes its owner's steps, so re-addressing
            // it would hand those steps to someone else.
            if let Held::Workflow {
                addressed_to: Some(was),
                ..
            } = held
                && was != now.fields.addressed_to.as_str()
            {
                return Err(Rejection::new(
                    "authority.readdressed",
                    format!(
                        "记录 {id} 的提交对象由 {was} 改为 {}；建议的提交对象在提出时确定，不能更改",
                        now.fields.addressed_to
                    ),
                ));
            }
            // The group a suggestion was made in the name of counts it toward the group's
            // duty rules: it is fixed when the suggestion is made, like the congress.
            let group = now.fields.group.map(|g| g.to_string());
            if let Held::Workflow { group: was, .. } = held
                && was != group.as_deref()
            {
                return Err(Rejection::new(
                    "authority.suggestion_group",
                    format!(
                        "记录 {id} 的代表小组由 {} 改为 {}；以小组名义提出的建议在提出时确定，不能更改",
                        was.unwrap_or("无"),
                        group.as_deref().unwrap_or("无")
                    ),
                ));
            }
            for event in new_events::<SuggestionAction>(before_events, after_events, id)? {
                check_author(&within, id, event.author())?;
                match event {
                    NewEvent::Known(event) => {
                        suggestion::authority(&after.header, &now.fields, &event)?
                    }
                    NewEvent::Newer(_) => newer_step_allowed(&within, after)?,
                }
            }
        }
        (Body::Motion(now), _) => {
            // A motion is its congress's own record: its signers, session and deadline are
            // written there and nowhere else, relayed or not.
            let home = after.header.home;
            if let Some(stranger) = writers.iter().find(|w| **w != home) {
                return Err(Rejection::new(
                    "authority.motion_congress",
                    format!("议案 {id} 属于 {home}，只能由该人大登记和办理，变更却来自 {stranger}"),
                ));
            }
            if let Err(e) = now.fields.validate(&after.header.home) {
                return Err(Rejection::new(
                    "motion.invalid",
                    format!("议案 {id} 不合规：{}（字段 {}）", e.rule, e.field),
                ));
            }
            for event in new_events::<MotionAction>(before_events, after_events, id)? {
                check_author(&within, id, event.author())?;
                match event {
                    NewEvent::Known(event) => super::motion::authority(&after.header, &event)?,
                    NewEvent::Newer(_) => newer_step_allowed(&within, after)?,
                }
            }
        }
        (Body::Opinion(_), _) => {
            for event in new_events::<OpinionAction>(before_events, after_events, id)? {
                check_author(&within, id, event.author())?;
                match event {
                    NewEvent::Known(event) => opinion::authority(&after.header, &event)?,
                    NewEvent::Newer(_) => newer_step_allowed(&within, after)?,
                }
            }
        }
        (Body::Delegate(now), was) => {
            let was = match was {
                Some(Body::Delegate(was)) => Some(was),
                _ => None,
            };
            // A merge is decided by the node that registered the person, once: the redirect
            // is set by a change of the home's, never points at the record itself, and never
            // changes or goes away after.
            let home = after.header.home;
            let was_merged = was.and_then(|w| w.merged_into);
            let was_routed = was.and_then(|w| w.merge_route);
            if now.merged_into != was_merged || now.merge_route != was_routed {
                let lawful =
                    was_merged.is_none() && now.merged_into != Some(*id) && writers.contains(&home);
                if !lawful {
                    return Err(Rejection::new(
                        "authority.merge",
                        format!(
                            "人员 {id} 的合并只能由其登记节点 {home} 作出一次，且不能撤销或改向"
                        ),
                    ));
                }
            }
            // A seat kept inside the person (as persons registered before mandate records
            // carry them) may be added to or changed in a record held here only by the
            // congress it is in. A record new here, created before mandate records existed,
            // comes as those releases wrote it, when the person's own node wrote every seat:
            // it keeps the seats of its home and of the home's ancestors (refusing them would
            // lose those persons at every node that meets them after upgrading).
            for (key, seat) in &now.mandates {
                let old = was.and_then(|w| w.mandates.get(key));
                if old == Some(seat) {
                    continue;
                }
                let congress = old.map_or(seat.congress, |o| o.congress);
                if old.is_none()
                    && matches!(held, Held::Nothing)
                    && after.header.created_at < super::delegate::SEATS_INSIDE_UNTIL
                    && home.is_within(&congress)
                {
                    continue;
                }
                if !writers.contains(&congress) || !within(&congress) {
                    return Err(Rejection::new(
                        "authority.mandate_congress",
                        format!(
                            "代表 {} 在 {congress} 第{}届的代表资格只能由该人大变更",
                            after.header.id, seat.term
                        ),
                    ));
                }
            }
            for (key, old) in was.iter().flat_map(|w| &w.mandates) {
                if !now.mandates.contains_key(key) && !writers.contains(&old.congress) {
                    return Err(Rejection::new(
                        "authority.mandate_congress",
                        format!(
                            "代表 {} 在 {} 第{}届的代表资格只能由该人大变更",
                            after.header.id, old.congress, old.term
                        ),
                    ));
                }
            }
        }
        (Body::Mandate(seat), _) => {
            // A mandate is the granting congress's own record: homed there, and written by
            // no one else, relayed or not.
            let home = after.header.home;
            let stranger = writers.iter().find(|w| **w != home);
            if seat.congress != home || stranger.is_some() {
                return Err(Rejection::new(
                    "authority.mandate_congress",
                    format!(
                        "代表资格 {id} 属于 {}，只能由该人大登记和变更{}",
                        seat.congress,
                        stranger.map_or_else(String::new, |w| format!("，变更却来自 {w}"))
                    ),
                ));
            }
            // Its congress cannot write a seat its own node would refuse either: a level
            // other than its own, a station or person outside its area.
            if let Err(e) = seat.validate(&home) {
                return Err(Rejection::new(
                    "mandate.invalid",
                    format!("代表资格 {id} 不合规：{}（字段 {}）", e.rule, e.field),
                ));
            }
        }
        (Body::Revocation(revocation), _) => {
            // A revocation is the revoking node's own: homed there, written by no one else,
            // and only for a certificate of its subtree.
            let home = after.header.home;
            if let Some(stranger) = writers.iter().find(|w| **w != home) {
                return Err(Rejection::new(
                    "authority.revocation",
                    format!("证书吊销 {id} 只能由吊销它的节点 {home} 写入，变更却来自 {stranger}"),
                ));
            }
            if let Err(e) = revocation.validate(&home) {
                return Err(Rejection::new(
                    "revocation.invalid",
                    format!("证书吊销 {id} 不合规：{}（字段 {}）", e.rule, e.field),
                ));
            }
        }
        (Body::QuotaRule(rule), _) => {
            // A congress's duty rules are its own: homed there and written by no one else.
            let home = after.header.home;
            let stranger = writers.iter().find(|w| **w != home);
            if rule.congress != home || stranger.is_some() {
                return Err(Rejection::new(
                    "authority.quota_congress",
                    format!(
                        "履职要求 {id} 属于 {}，只能由该人大制定和变更{}",
                        rule.congress,
                        stranger.map_or_else(String::new, |w| format!("，变更却来自 {w}"))
                    ),
                ));
            }
            if let Err(e) = rule.validate(&home) {
                return Err(Rejection::new(
                    "quota.invalid",
                    format!("履职要求 {id} 不合规：{}（字段 {}）", e.rule, e.field),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A step of a newer release, whose own rules this version cannot check: from a child, only on
/// a record of the child's own subtree. A record stops taking this version's steps while it
/// holds one (`event::refuse_if_unreadable`), so a child adding made-up steps to a record homed
/// above it could otherwise freeze that record at every node of this release.
fn newer_step_allowed(
    within: &impl Fn(&RegionCode) -> bool,
    after: &Record,
) -> Result<(), Rejection> {
    if within(&after.header.home) {
        Ok(())
    } else {
        Err(Rejection::new(
            "authority.newer_step_outside",
            format!(
                "记录 {} 属于 {}，不属于发送方及其下级；本版本无法核对的新版本办理步骤只接受发送方辖区内的记录",
                after.header.id, after.header.home
            ),
        ))
    }
}

fn check_author(
    within: &impl Fn(&RegionCode) -> bool,
    record: &super::RecordId,
    author: &RegionCode,
) -> Result<(), Rejection> {
    if within(author) {
        Ok(())
    } else {
        Err(Rejection::new(
            "authority.event_author",
            format!("记录 {record} 的办理步骤自称来自 {author}，不属于发送方及其下级"),
        ))
    }
}

/// An event a peer added: one this version reads, or a step of a newer release, of which only
/// the envelope reads. A newer step's own rules are the newer release's to check (every node
/// of that release does); here it is held to what every event obeys, its author.
enum NewEvent<A> {
    Known(Event<A>),
    Newer(Envelope),
}

impl<A> NewEvent<A> {
    fn author(&self) -> &RegionCode {
        match self {
            NewEvent::Known(event) => &event.author.node,
            NewEvent::Newer(envelope) => &envelope.author.node,
        }
    }
}

/// The events whose texts `now` has and `was` lacks, decoded. Every event `was` held must still
/// be there, to the byte: events are append-only. An event that reads neither as a step of `A`
/// nor as a newer release's step is refused.
fn new_events<A: serde::de::DeserializeOwned>(
    was: &[String],
    now: &[String],
    record: &super::RecordId,
) -> Result<Vec<NewEvent<A>>, Rejection> {
    let mut unmatched: HashMap<&str, usize> = HashMap::new();
    for text in now {
        *unmatched.entry(text.as_str()).or_default() += 1;
    }
    let id_of = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(String::from))
    };
    for old in was {
        match unmatched.get_mut(old.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                let old_id = id_of(old);
                let edited = old_id.is_some() && now.iter().any(|t| id_of(t) == old_id);
                let shown = old_id.unwrap_or_default();
                return Err(if edited {
                    Rejection::new(
                        "authority.event_edited",
                        format!("记录 {record} 的办理步骤 {shown} 被改写；办理步骤只能追加"),
                    )
                } else {
                    Rejection::new(
                        "authority.event_removed",
                        format!("记录 {record} 的办理步骤 {shown} 被删除；办理步骤只能追加"),
                    )
                });
            }
        }
    }
    let mut out = Vec::new();
    for text in now {
        let Some(n) = unmatched.get_mut(text.as_str()) else {
            continue;
        };
        if *n == 0 {
            continue;
        }
        *n -= 1;
        let unreadable = || {
            Rejection::new(
                "authority.event_unreadable",
                format!("记录 {record} 收到无法解读的办理步骤"),
            )
        };
        out.push(match serde_json::from_str::<Event<A>>(text) {
            Ok(event) => NewEvent::Known(event),
            Err(_) => {
                let raw: serde_json::Value =
                    serde_json::from_str(text).map_err(|_| unreadable())?;
                NewEvent::Newer(newer_step::<A>(&raw).ok_or_else(unreadable)?)
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::delegate::{Delegate, Gender, LegacyMandate, MandateStatus};
    use crate::record::event::Event;
    use crate::record::event::EventEntry;
    use crate::record::mandate::Mandate;
    use crate::record::suggestion::{Suggestion, SuggestionAction, SuggestionFields};
    use crate::record::{Author, Header, RecordId};

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    const TOWN: &str = "330411101000";
    const COUNTY: &str = "330411000000";
    const OTHER_TOWN: &str = "330411102000";

    fn header(kind: RecordKind, home: &str) -> Header {
        Header {
            id: RecordId::new(),
            kind,
            home: code(home),
            created_at: chrono::DateTime::from_timestamp_millis(1_770_000_000_000).unwrap(),
            created_by: Author {
                node: code(home),
                user: "clerk".into(),
            },
        }
    }

    fn mandate(congress: &str, status: MandateStatus) -> (String, LegacyMandate) {
        let c = code(congress);
        (
            LegacyMandate::key(&c, 17),
            LegacyMandate {
                congress: c,
                level: c.level().unwrap(),
                term: 17,
                constituency: "第七选区".into(),
                status,
                status_since: None,
            },
        )
    }

    fn delegate(header: &Header, mandates: Vec<(String, LegacyMandate)>) -> Record {
        Record {
            header: header.clone(),
            body: Body::Delegate(Delegate {
                name: "沈建华".into(),
                gender: Gender::Male,
                birth_year: None,
                ethnicity: None,
                party: None,
                occupation: "教师".into(),
                station: None,
                merged_into: None,
                merge_route: None,
                mandates: mandates.into_iter().collect(),
            }),
        }
    }

    fn suggestion(header: &Header, events: Vec<Event<SuggestionAction>>) -> Record {
        Record {
            header: header.clone(),
            body: Body::Suggestion(Suggestion {
                fields: SuggestionFields {
                    title: "关于修缮灌溉渠道的建议".into(),
                    body: "渠道渗漏。".into(),
                    category: "农业农村".into(),
                    lead: RecordId::new(),
                    lead_name: "沈建华".into(),
                    cosigners: vec![],
                    addressed_to: code(COUNTY),
                    session: None,
                    group: None,
                    motion: None,
                },
                events: events.into_iter().map(EventEntry::Event).collect(),
            }),
        }
    }

    fn step(author: &str, action: SuggestionAction) -> Event<SuggestionAction> {
        Event {
            id: RecordId::new(),
            lamport: 1,
            recorded_at: chrono::Utc::now(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            author: Author {
                node: code(author),
                user: "clerk".into(),
            },
            action,
        }
    }

    /// A workflow record's events as the document holds them: one JSON text each.
    fn texts(record: &Record) -> Vec<String> {
        match &record.body {
            Body::Suggestion(s) => s
                .events
                .iter()
                .filter_map(|e| match e {
                    EventEntry::Event(ev) => serde_json::to_string(ev).ok(),
                    EventEntry::Undecodable { .. } => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The rule a township's change to a suggestion addressed to the county breaks, checked as
    /// the county receives it.
    fn from_town(before: &Record, after: &Record, actor: &ActorId) -> String {
        rule(check_incoming(
            Sender::Child(code(TOWN)),
            Held::Workflow {
                events: &texts(before),
                addressed_to: Some(COUNTY),
                group: None,
            },
            after,
            &texts(after),
            [actor],
        ))
    }

    fn rule(result: Result<(), Rejection>) -> String {
        result.map_or_else(|r| r.rule, |()| "accepted".into())
    }

    #[test]
    fn a_mandate_changes_only_by_changes_of_its_congress() {
        let h = header(RecordKind::Delegate, TOWN);
        let before = delegate(
            &h,
            vec![
                mandate(TOWN, MandateStatus::Serving),
                mandate(COUNTY, MandateStatus::Serving),
            ],
        );
        let county_mandate_ended = delegate(
            &h,
            vec![
                mandate(TOWN, MandateStatus::Serving),
                mandate(COUNTY, MandateStatus::Recalled),
            ],
        );
        let town_actor = node_actor(&code(TOWN));
        let county_actor = node_actor(&code(COUNTY));
        // The township may not end the county's mandate; the county may.
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Record(&before),
                &county_mandate_ended,
                &[],
                [&town_actor],
            )),
            "authority.mandate_congress"
        );
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Record(&before),
                &county_mandate_ended,
                &[],
                [&county_actor],
            )),
            "accepted"
        );
        // A township may not give its delegate a seat in another congress, in a record it
        // holds already or in a new one; the congress itself may.
        let more = delegate(
            &h,
            vec![
                mandate(TOWN, MandateStatus::Serving),
                mandate(COUNTY, MandateStatus::Serving),
                mandate("330400000000", MandateStatus::Serving),
            ],
        );
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Record(&before),
                &more,
                &[],
                [&town_actor],
            )),
            "authority.mandate_congress"
        );
        // A person new to the receiver comes as earlier releases wrote it, with the seats of
        // its home and the home's ancestors, whoever wrote them; a seat of another subtree's
        // congress is refused even then.
        let new_with_county_seat = delegate(
            &header(RecordKind::Delegate, TOWN),
            vec![
                mandate(TOWN, MandateStatus::Serving),
                mandate(COUNTY, MandateStatus::Serving),
            ],
        );
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Nothing,
                &new_with_county_seat,
                &[],
                [&town_actor],
            )),
            "accepted"
        );
        let new_with_stranger_seat = delegate(
            &header(RecordKind::Delegate, TOWN),
            vec![mandate(OTHER_TOWN, MandateStatus::Serving)],
        );
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Nothing,
                &new_with_stranger_seat,
                &[],
                [&town_actor],
            )),
            "authority.mandate_congress"
        );
        let city_actor = node_actor(&code("330400000000"));
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Record(&before),
                &more,
                &[],
                [&city_actor],
            )),
            "accepted"
        );
    }

    #[test]
    fn only_the_persons_home_merges_it_once() {
        let h = header(RecordKind::Delegate, TOWN);
        let before = delegate(&h, vec![]);
        let merged = |into: RecordId| {
            let mut r = delegate(&h, vec![]);
            if let Body::Delegate(d) = &mut r.body {
                d.merged_into = Some(into);
            }
            r
        };
        let kept = RecordId::new();
        let town_actor = node_actor(&code(TOWN));
        let county_actor = node_actor(&code(COUNTY));
        let check = |sender, held: &Record, after: &Record, actor: &ActorId| {
            rule(check_incoming(
                sender,
                Held::Record(held),
                after,
                &[],
                [actor],
            ))
        };
        let town = Sender::Child(code(TOWN));
        let county = Sender::Parent(code(COUNTY));
        assert_eq!(check(town, &before, &merged(kept), &town_actor), "accepted");
        assert_eq!(
            check(county, &before, &merged(kept), &county_actor),
            "authority.merge",
            "the county did not register the person"
        );
        assert_eq!(
            check(town, &merged(kept), &merged(RecordId::new()), &town_actor),
            "authority.merge",
            "a merge is not redirected"
        );
        assert_eq!(
            check(town, &merged(kept), &before, &town_actor),
            "authority.merge",
            "nor undone"
        );
        assert_eq!(
            check(town, &before, &merged(h.id), &town_actor),
            "authority.merge",
            "nor pointed at itself"
        );
    }

    fn mandate_record(home: &str, congress: &str) -> Record {
        let c = code(congress);
        Record {
            header: header(RecordKind::Mandate, home),
            body: Body::Mandate(Mandate {
                person: RecordId::new(),
                person_home: code(TOWN),
                name: "沈建华".into(),
                congress: c,
                level: c.level().unwrap(),
                term: 9,
                constituency: "王店镇选区".into(),
                status: MandateStatus::Serving,
                status_since: None,
                stations: Default::default(),
            }),
        }
    }

    #[test]
    fn a_mandate_record_is_written_by_its_congress_alone() {
        let county = mandate_record(COUNTY, COUNTY);
        let county_actor = node_actor(&code(COUNTY));
        let town_actor = node_actor(&code(TOWN));
        // Relayed down by the county, or by a city above it: accepted.
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Unread,
                &county,
                &[],
                [&county_actor],
            )),
            "accepted"
        );
        // The station's township may not change it, even through its own parent link.
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Unread,
                &county,
                &[],
                [&county_actor, &town_actor],
            )),
            "authority.mandate_congress"
        );
        // A seat that breaks the mandate rules is refused though its congress wrote it: a
        // township granting itself a provincial level, say.
        let mut inflated = mandate_record(TOWN, TOWN);
        if let Body::Mandate(m) = &mut inflated.body {
            m.level = crate::region::Level::Province;
        }
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Nothing,
                &inflated,
                &[],
                [&town_actor],
            )),
            "mandate.invalid"
        );
        // A township's record claiming a county seat is refused whoever relays it.
        let forged = mandate_record(TOWN, COUNTY);
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Nothing,
                &forged,
                &[],
                [&town_actor],
            )),
            "authority.mandate_congress"
        );
    }

    #[test]
    fn a_quota_rule_is_written_by_its_congress_alone() {
        let rule_of = |home: &str, congress: &str, minimum: u32| Record {
            header: header(RecordKind::QuotaRule, home),
            body: Body::QuotaRule(
                crate::record::rollup::QuotaRules::default()
                    .first_rules(
                        code(congress),
                        chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                    )
                    .into_iter()
                    .map(|mut r| {
                        r.minimum = minimum;
                        r
                    })
                    .next()
                    .unwrap(),
            ),
        };
        let county_actor = node_actor(&code(COUNTY));
        let town_actor = node_actor(&code(TOWN));
        let county = rule_of(COUNTY, COUNTY, 2);
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Unread,
                &county,
                &[],
                [&county_actor],
            )),
            "accepted"
        );
        // A township lowering its county's minimum is refused, however it is relayed.
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Unread,
                &county,
                &[],
                [&county_actor, &town_actor],
            )),
            "authority.quota_congress"
        );
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Nothing,
                &rule_of(TOWN, COUNTY, 1),
                &[],
                [&town_actor],
            )),
            "authority.quota_congress"
        );
        // Its own congress cannot write a rule its node would refuse: a minimum of nothing.
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Nothing,
                &rule_of(TOWN, TOWN, 0),
                &[],
                [&town_actor],
            )),
            "quota.invalid"
        );
    }

    #[test]
    fn a_suggestion_keeps_the_group_it_was_made_in_the_name_of() {
        let h = header(RecordKind::Suggestion, TOWN);
        let mut regrouped = suggestion(&h, vec![]);
        if let Body::Suggestion(s) = &mut regrouped.body {
            s.fields.group = Some(RecordId::new());
        }
        let town_actor = node_actor(&code(TOWN));
        let held = |group| Held::Workflow {
            events: &[],
            addressed_to: Some(COUNTY),
            group,
        };
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                held(None),
                &regrouped,
                &[],
                [&town_actor],
            )),
            "authority.suggestion_group"
        );
        let unchanged = suggestion(&h, vec![]);
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                held(None),
                &unchanged,
                &[],
                [&town_actor],
            )),
            "accepted"
        );
    }

    /// A step of a newer release is kept when its author and its record are the sender's own,
    /// and refused when a child adds one to a record homed above it (it would stop this
    /// release's steps on that record everywhere) or names an author outside its subtree.
    #[test]
    fn a_newer_step_is_held_to_the_senders_subtree() {
        let newer = |author: &str| {
            serde_json::json!({
                "id": RecordId::new(), "lamport": 5, "recorded_at": "2026-03-01T08:00:00Z",
                "date": "2026-03-01", "author": { "node": author, "user": "clerk" },
                "action": "future_step",
            })
            .to_string()
        };
        let town_actor = node_actor(&code(TOWN));
        let check = |home: &str, sender: Sender, author: &str| {
            let h = header(RecordKind::Suggestion, home);
            let record = suggestion(&h, vec![]);
            rule(check_incoming(
                sender,
                Held::Workflow {
                    events: &[],
                    addressed_to: Some(COUNTY),
                    group: None,
                },
                &record,
                &[newer(author)],
                [&town_actor],
            ))
        };
        assert_eq!(check(TOWN, Sender::Child(code(TOWN)), TOWN), "accepted");
        assert_eq!(
            check(COUNTY, Sender::Child(code(TOWN)), TOWN),
            "authority.newer_step_outside"
        );
        assert_eq!(
            check(TOWN, Sender::Child(code(TOWN)), OTHER_TOWN),
            "authority.event_author"
        );
        // From the parent, which takes steps on its children's records.
        assert_eq!(
            check(TOWN, Sender::Parent(code(COUNTY)), COUNTY),
            "accepted"
        );
        // Damage is still refused: a step this version has, with its fields missing.
        let h = header(RecordKind::Suggestion, TOWN);
        let broken = newer(TOWN).replace("future_step", "assign");
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Workflow {
                    events: &[],
                    addressed_to: Some(COUNTY),
                    group: None,
                },
                &suggestion(&h, vec![]),
                &[broken],
                [&town_actor],
            )),
            "authority.event_unreadable"
        );
    }

    #[test]
    fn a_motion_is_written_by_its_congress_alone() {
        use crate::record::motion::{Motion, MotionFields, Proposer, ProposingBody};
        let motion = Record {
            header: header(RecordKind::Motion, COUNTY),
            body: Body::Motion(Motion {
                fields: MotionFields {
                    title: "关于设立生态环境保护专项资金的议案".into(),
                    body: "方案".into(),
                    congress: code(COUNTY),
                    session: "九届三次会议".into(),
                    deadline: chrono::NaiveDate::from_ymd_opt(2026, 1, 20).unwrap(),
                    proposer: Proposer::Body {
                        body: ProposingBody::StandingCommittee,
                        name: None,
                    },
                },
                events: vec![],
            }),
        };
        let county_actor = node_actor(&code(COUNTY));
        let town_actor = node_actor(&code(TOWN));
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Unread,
                &motion,
                &[],
                [&county_actor],
            )),
            "accepted"
        );
        // A later deadline written by anyone else, even relayed by the county, is refused.
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Unread,
                &motion,
                &[],
                [&county_actor, &town_actor],
            )),
            "authority.motion_congress"
        );
    }

    #[test]
    fn a_suggestion_keeps_the_congress_it_was_addressed_to() {
        let h = header(RecordKind::Suggestion, TOWN);
        let before = suggestion(&h, vec![step(TOWN, SuggestionAction::Submit)]);
        let mut readdressed = before.clone();
        if let Body::Suggestion(s) = &mut readdressed.body {
            s.fields.addressed_to = code(TOWN);
            s.events
                .push(EventEntry::Event(step(TOWN, SuggestionAction::Close)));
        }
        let actor = node_actor(&code(TOWN));
        assert_eq!(
            from_town(&before, &readdressed, &actor),
            "authority.readdressed"
        );
    }

    #[test]
    fn events_are_append_only() {
        let h = header(RecordKind::Suggestion, TOWN);
        let submit = step(TOWN, SuggestionAction::Submit);
        let before = suggestion(&h, vec![submit.clone()]);
        let actor = node_actor(&code(TOWN));
        let removed = suggestion(&h, vec![]);
        assert_eq!(
            from_town(&before, &removed, &actor),
            "authority.event_removed"
        );
        let mut edited_event = submit.clone();
        edited_event.date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let edited = suggestion(&h, vec![edited_event]);
        assert_eq!(
            from_town(&before, &edited, &actor),
            "authority.event_edited"
        );
    }

    #[test]
    fn authorship_is_bounded_by_a_childs_subtree_but_workflow_rules_bind_everyone() {
        let h = header(RecordKind::Suggestion, TOWN);
        let before = suggestion(&h, vec![step(TOWN, SuggestionAction::Submit)]);
        let town_actor = node_actor(&code(TOWN));
        let county_actor = node_actor(&code(COUNTY));
        let with = |e| {
            let Body::Suggestion(mut s) = before.body.clone() else {
                unreachable!()
            };
            s.events.push(EventEntry::Event(e));
            Record {
                header: h.clone(),
                body: Body::Suggestion(s),
            }
        };
        let close_by_county = with(step(COUNTY, SuggestionAction::Close));
        // From the county itself (a parent), the owner's step is fine.
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Workflow {
                    events: &texts(&before),
                    addressed_to: Some(COUNTY),
                    group: None,
                },
                &close_by_county,
                &texts(&close_by_county),
                [&county_actor],
            )),
            "accepted"
        );
        // From the township, the same step claims an author above it.
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Workflow {
                    events: &texts(&before),
                    addressed_to: Some(COUNTY),
                    group: None,
                },
                &close_by_county,
                &texts(&close_by_county),
                [&town_actor],
            )),
            "authority.event_author"
        );
        // A parent, too, may not evaluate for the lead delegate's home.
        let evaluate_by_county = with(step(
            COUNTY,
            SuggestionAction::Evaluate {
                result: crate::record::suggestion::Satisfaction::Satisfied,
                comment: String::new(),
            },
        ));
        assert_eq!(
            rule(check_incoming(
                Sender::Parent(code(COUNTY)),
                Held::Workflow {
                    events: &texts(&before),
                    addressed_to: Some(COUNTY),
                    group: None,
                },
                &evaluate_by_county,
                &texts(&evaluate_by_county),
                [&county_actor],
            )),
            "authority.lead_delegate_home"
        );
        // A change under a neighbour's actor, or under no region at all.
        let submit_again = with(step(
            TOWN,
            SuggestionAction::Track {
                note: "x".into(),
                solved: false,
            },
        ));
        let neighbour = node_actor(&code(OTHER_TOWN));
        let anonymous = ActorId::from(vec![7u8; 16]);
        for actor in [&neighbour, &anonymous] {
            assert_eq!(
                rule(check_incoming(
                    Sender::Child(code(TOWN)),
                    Held::Workflow {
                        events: &texts(&before),
                        addressed_to: Some(COUNTY),
                        group: None,
                    },
                    &submit_again,
                    &texts(&submit_again),
                    [actor],
                )),
                "authority.change_author"
            );
        }
        // A new record claiming to be created elsewhere.
        let forged = suggestion(&header(RecordKind::Suggestion, OTHER_TOWN), vec![]);
        assert_eq!(
            rule(check_incoming(
                Sender::Child(code(TOWN)),
                Held::Nothing,
                &forged,
                &[],
                [&town_actor]
            )),
            "authority.created_by"
        );
    }

    #[test]
    fn a_node_actor_names_its_region() {
        let region = RegionCode::parse("region", "330411101000").unwrap();
        let actor = node_actor(&region);
        assert_eq!(actor_region(&actor), Some(region));
        assert_ne!(node_actor(&region), actor, "each node gets its own actor");
    }

    #[test]
    fn an_actor_without_a_region_names_none() {
        assert_eq!(actor_region(&ActorId::from(vec![1u8; 16])), None);
        assert_eq!(actor_region(&ActorId::from(b"33041110100".to_vec())), None);
        assert_eq!(
            actor_region(&ActorId::from(b"abcdefghijkl12345678".to_vec())),
            None
        );
    }
}
