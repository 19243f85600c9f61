//! The record model as the Query API's messages: one message per kind with its fields, a
//! workflow's status and history, a rollup's figures and duty standings.
//!
//! Every model enum reaches the wire by its stable English word: `AnswerClass::A` ("A") is
//! `ANSWER_CLASS_A`, `ActivityKind::LawEnforcementCheck` ("law_check") is
//! `ACTIVITY_KIND_LAW_CHECK`. The proto's value names are those words, so the command line, the
//! configuration and the API say the same thing; a test below holds every variant of every
//! model enum to a value of its proto enum.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use renda_node::record::activity::Activity;
use renda_node::record::delegate::Delegate;
use renda_node::record::event::{Event, HistoryLine};
use renda_node::record::group::{Group, Venue};
use renda_node::record::mandate::Mandate;
use renda_node::record::motion::{Motion, MotionAction, MotionDecision, Proposer};
use renda_node::record::notice::Notice;
use renda_node::record::opinion::{Opinion, OpinionAction};
use renda_node::record::quota::{QuotaRule, SubjectStanding};
use renda_node::record::rollup::{Metrics, Quota, Rollup};
use renda_node::record::suggestion::{CoSigner, Suggestion, SuggestionAction, UnitAssignment};
use renda_node::record::{Author, Body, Record, RecordKind};
use renda_node::region::{Level, RegionCode};
use renda_proto::google::types::Date;
use renda_proto::query::v1 as api;

use super::{date, kind_to_api, level, state_to_api, timestamp};

/// A model enum's word as the value of its proto enum: the enum's prefix and the word in
/// capitals, or 0 (UNSPECIFIED) for a word the proto does not list.
fn wire<E: Into<i32>>(prefix: &str, word: &str, from_name: fn(&str) -> Option<E>) -> i32 {
    from_name(&format!("{prefix}_{}", word.to_ascii_uppercase())).map_or(0, Into::into)
}

/// The proto enums each model enum reaches, by their prefix.
macro_rules! enum_wire {
    ($($fn_name:ident: $model:ty => $prefix:literal, $proto:ty;)+) => {
        $(
            pub(super) fn $fn_name(v: $model) -> i32 {
                wire($prefix, v.as_str(), <$proto>::from_str_name)
            }
        )+

        #[cfg(test)]
        mod enum_tests {
            use super::*;

            /// Every variant of every model enum reaches a value of its proto enum, and the
            /// proto lists no value the model lacks, so neither side can gain one alone.
            #[test]
            fn every_model_enum_value_has_its_own_wire_value() {
                $(
                    let values: std::collections::BTreeSet<i32> =
                        <$model>::ALL.iter().map(|v| $fn_name(*v)).collect();
                    assert!(!values.contains(&0), "{} has a value without a wire name", $prefix);
                    assert_eq!(values.len(), <$model>::ALL.len(), "{}", $prefix);
                    let listed = (1..64).filter(|n| <$proto>::try_from(*n).is_ok()).count();
                    assert_eq!(listed, <$model>::ALL.len(), "{} lists other values", $prefix);
                )+
            }
        }
    };
}

enum_wire! {
    gender: renda_node::record::delegate::Gender => "GENDER", api::Gender;
    group_kind: renda_node::record::group::GroupKind => "GROUP_KIND", api::GroupKind;
    venue_kind: renda_node::record::group::VenueKind => "VENUE_KIND", api::VenueKind;
    activity_kind: renda_node::record::activity::ActivityKind => "ACTIVITY_KIND", api::ActivityKind;
    sign_in_source: renda_node::record::activity::SignInSource => "SIGN_IN_SOURCE", api::SignInSource;
    opinion_source: renda_node::record::opinion::OpinionSource => "OPINION_SOURCE", api::OpinionSource;
    satisfaction: renda_node::record::suggestion::Satisfaction => "SATISFACTION", api::Satisfaction;
    answer_class: renda_node::record::suggestion::AnswerClass => "ANSWER_CLASS", api::AnswerClass;
    unit_role: renda_node::record::suggestion::UnitRole => "UNIT_ROLE", api::UnitRole;
    proposing_body: renda_node::record::motion::ProposingBody => "PROPOSING_BODY", api::ProposingBody;
    quota_subject: renda_node::record::quota::QuotaSubject => "QUOTA_SUBJECT", api::QuotaSubject;
    quota_period: renda_node::record::quota::QuotaPeriod => "QUOTA_PERIOD", api::QuotaPeriod;
    quota_counts: renda_node::record::quota::QuotaCounts => "QUOTA_COUNTS", api::QuotaCounts;
    standing: renda_node::record::quota::Standing => "STANDING", api::Standing;
    revocation_reason: renda_node::record::revocation::RevocationReason => "REVOCATION_REASON", api::RevocationReason;
}

fn opt_date(d: Option<NaiveDate>) -> Option<Date> {
    d.map(date)
}

fn opt_string<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn author(a: &Author) -> api::Author {
    api::Author {
        region: a.node.to_string(),
        user: a.user.clone(),
    }
}

/// A workflow's state as lists and counts show it: `RECORD_STATE_UNKNOWN` while it holds a
/// step a newer release wrote, which the fold could not take into account, rather than the
/// state the readable steps alone would give.
fn workflow_state(kind: RecordKind, word: &str, unreadable: usize) -> i32 {
    if unreadable > 0 {
        api::RecordState::Unknown as i32
    } else {
        state_to_api(kind, Some(word)) as i32
    }
}

fn mandate_state(status: renda_node::record::delegate::MandateStatus) -> i32 {
    state_to_api(RecordKind::Mandate, Some(status.as_str())) as i32
}

fn cosigners(c: &[CoSigner]) -> Vec<api::CoSigner> {
    c.iter()
        .map(|c| api::CoSigner {
            delegate: c.id.to_string(),
            name: c.name.clone(),
        })
        .collect()
}

fn units(u: &[UnitAssignment]) -> Vec<api::HandlingUnit> {
    u.iter()
        .map(|u| api::HandlingUnit {
            unit: u.unit.clone(),
            role: unit_role(u.role),
        })
        .collect()
}

/// What every step of a history carries.
fn step<A>(line: &HistoryLine<A>) -> api::Step {
    let e: &Event<A> = &line.event;
    api::Step {
        id: e.id.to_string(),
        date: Some(date(e.date)),
        record_time: Some(timestamp(e.recorded_at)),
        author: Some(author(&e.author)),
        refusal: line.rejected.as_ref().map(|r| api::Refusal {
            rule: r.rule.clone(),
            reason: r.reason.clone(),
        }),
    }
}

/// A record as GetRecord answers it; `None` for the kinds the API never answers (personal
/// data, rollups).
pub(super) fn record_message(r: &Record) -> Option<api::Record> {
    use api::record::Body as B;
    let body = match &r.body {
        Body::Personal(_) | Body::Rollup(_) => return None,
        Body::Delegate(d) => B::Delegate(delegate(d)),
        Body::Group(g) => B::Group(group(g)),
        Body::Venue(v) => B::Venue(venue(v)),
        Body::Activity(a) => B::Activity(activity(a)),
        Body::Opinion(o) => B::Opinion(opinion(&r.header, o)),
        Body::Suggestion(s) => B::Suggestion(suggestion(&r.header, s)),
        Body::Notice(n) => B::Notice(notice(n)),
        Body::Mandate(m) => B::Mandate(mandate(m)),
        Body::QuotaRule(q) => B::QuotaRule(quota_rule(q)),
        Body::Motion(m) => B::Motion(motion(&r.header, m)),
        Body::Revocation(v) => B::Revocation(api::Revocation {
            region: v.region.to_string(),
            serial: v.serial.clone(),
            reason: revocation_reason(v.reason),
            note: v.note.clone(),
        }),
    };
    Some(api::Record {
        id: r.header.id.to_string(),
        kind: kind_to_api(r.header.kind) as i32,
        home: r.header.home.to_string(),
        create_time: Some(timestamp(r.header.created_at)),
        creator: Some(author(&r.header.created_by)),
        body: Some(body),
    })
}

fn delegate(d: &Delegate) -> api::Delegate {
    api::Delegate {
        name: d.name.clone(),
        gender: gender(d.gender),
        birth_year: d.birth_year.unwrap_or(0),
        ethnicity: d.ethnicity.clone().unwrap_or_default(),
        party: d.party.clone().unwrap_or_default(),
        occupation: d.occupation.clone(),
        station: opt_string(d.station),
        legacy_seats: d
            .mandates
            .values()
            .map(|m| api::Seat {
                congress: m.congress.to_string(),
                level: level(Some(m.level)),
                term: m.term as i32,
                constituency: m.constituency.clone(),
                state: mandate_state(m.status),
                state_start_date: opt_date(m.status_since),
            })
            .collect(),
        merged_into: opt_string(d.merged_into),
    }
}

fn group(g: &Group) -> api::Group {
    api::Group {
        name: g.name.clone(),
        group_kind: group_kind(g.kind),
        field: g.field.clone().unwrap_or_default(),
        congress: g.congress.to_string(),
        leader: opt_string(g.leader),
        members: g.members.0.iter().map(|m| m.to_string()).collect(),
        venue: opt_string(g.venue),
    }
}

fn venue(v: &Venue) -> api::Venue {
    api::Venue {
        name: v.name.clone(),
        venue_kind: venue_kind(v.kind),
        region: v.region.to_string(),
        address: v.address.clone(),
    }
}

fn activity(a: &Activity) -> api::Activity {
    api::Activity {
        activity_kind: activity_kind(a.kind),
        date: Some(date(a.date)),
        topic: a.topic.clone(),
        organiser: a.organiser.clone(),
        group: opt_string(a.group),
        venue: opt_string(a.venue),
        sign_ins: a
            .participants
            .iter()
            .map(|(id, s)| api::SignIn {
                delegate: id.to_string(),
                name: s.name.clone(),
                level: level(s.level),
                congresses: s.congresses.iter().map(|c| c.to_string()).collect(),
                sign_in_time: Some(timestamp(s.signed_at)),
                // Sign-ins from before the source was kept were all a clerk's.
                source: sign_in_source(
                    s.source
                        .unwrap_or(renda_node::record::activity::SignInSource::Clerk),
                ),
            })
            .collect(),
        constituents_received: i32::try_from(a.constituents_received).unwrap_or(i32::MAX),
        outcome: a.outcome.clone(),
    }
}

fn opinion(header: &renda_node::record::Header, o: &Opinion) -> api::Opinion {
    use api::opinion_step::Action as A;
    let (status, history) = o.fold(header);
    let f = &o.fields;
    api::Opinion {
        source: opinion_source(f.source),
        content: f.content.clone(),
        place: f.place.clone(),
        region: f.region.to_string(),
        delegate: opt_string(f.delegate),
        activity: opt_string(f.activity),
        category: f.category.clone().unwrap_or_default(),
        status: Some(api::OpinionStatus {
            state: workflow_state(
                RecordKind::Opinion,
                status.state.as_str(),
                status.unreadable_events,
            ),
            receive_date: opt_date(status.received_on),
            passed_on_to: status.passed_on_to.clone().unwrap_or_default(),
            passed_on_congress: opt_string(status.passed_on_congress),
            pass_on_date: opt_date(status.passed_on_on),
            answered_on_spot: status.answered_on_spot,
            handle_date: opt_date(status.handled_on),
            result: status.result.clone().unwrap_or_default(),
            rating: status.rating.map_or(0, satisfaction),
            refused_step_count: count(status.rejected_events),
            unreadable_step_count: count(status.unreadable_events),
        }),
        history: history
            .iter()
            .map(|line| api::OpinionStep {
                step: Some(step(line)),
                action: Some(match &line.event.action {
                    OpinionAction::Receive => A::Receive(api::OpinionReceive {}),
                    OpinionAction::AnswerOnSpot { reply } => {
                        A::AnswerOnSpot(api::OpinionAnswerOnSpot {
                            reply: reply.clone(),
                        })
                    }
                    OpinionAction::PassOn { to, congress } => A::PassOn(api::OpinionPassOn {
                        to: to.clone(),
                        congress: opt_string(*congress),
                    }),
                    OpinionAction::Start { note } => {
                        A::Start(api::OpinionStart { note: note.clone() })
                    }
                    OpinionAction::Handle { result } => A::Handle(api::OpinionHandle {
                        result: result.clone(),
                    }),
                    OpinionAction::Rate { rating } => A::Rate(api::OpinionRate {
                        rating: satisfaction(*rating),
                    }),
                }),
            })
            .collect(),
    }
}

fn suggestion(header: &renda_node::record::Header, s: &Suggestion) -> api::Suggestion {
    use api::suggestion_step::Action as A;
    let (status, history) = s.fold(header);
    let f = &s.fields;
    api::Suggestion {
        title: f.title.clone(),
        body: f.body.clone(),
        category: f.category.clone(),
        lead: f.lead.to_string(),
        lead_name: f.lead_name.clone(),
        cosigners: cosigners(&f.cosigners),
        addressed_to: f.addressed_to.to_string(),
        session: f.session.clone().unwrap_or_default(),
        group: opt_string(f.group),
        motion: opt_string(f.motion),
        status: Some(api::SuggestionStatus {
            state: workflow_state(
                RecordKind::Suggestion,
                status.state.as_str(),
                status.unreadable_events,
            ),
            number: status
                .number
                .map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            submit_date: opt_date(status.submitted_on),
            not_accepted_reason: status.not_accepted_reason.clone().unwrap_or_default(),
            units: units(&status.units),
            assign_date: opt_date(status.assigned_on),
            due_date: opt_date(status.due),
            extended: status.extended,
            round: i32::try_from(status.round).unwrap_or(i32::MAX),
            answers: status
                .answers
                .iter()
                .map(|(unit, a)| api::UnitAnswer {
                    unit: unit.clone(),
                    answer_class: answer_class(a.class),
                    text: a.text.clone(),
                    date: Some(date(a.date)),
                })
                .collect(),
            answer_class: status.class.map_or(0, answer_class),
            first_answer_date: opt_date(status.first_answered_on),
            answered_on_time: status.answered_on_time,
            evaluation: status.evaluation.map_or(0, satisfaction),
            key_supervision: status.key_supervision,
            follow_up_count: i32::try_from(status.follow_ups).unwrap_or(i32::MAX),
            close_date: opt_date(status.closed_on),
            refused_step_count: count(status.rejected_events),
            unreadable_step_count: count(status.unreadable_events),
        }),
        history: history
            .iter()
            .map(|line| api::SuggestionStep {
                step: Some(step(line)),
                action: Some(match &line.event.action {
                    SuggestionAction::Submit => A::Submit(api::SuggestionSubmit {}),
                    SuggestionAction::Screen {
                        accepted,
                        number,
                        reason,
                    } => A::Screen(api::SuggestionScreen {
                        accepted: *accepted,
                        number: number.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
                        reason: reason.clone().unwrap_or_default(),
                    }),
                    SuggestionAction::Assign { units: u } => {
                        A::Assign(api::SuggestionAssign { units: units(u) })
                    }
                    SuggestionAction::SendBack { unit, reason } => {
                        A::SendBack(api::SuggestionSendBack {
                            unit: unit.clone(),
                            reason: reason.clone(),
                        })
                    }
                    SuggestionAction::Extend { until, reason } => {
                        A::Extend(api::SuggestionExtend {
                            until_date: Some(date(*until)),
                            reason: reason.clone(),
                        })
                    }
                    SuggestionAction::Answer { unit, class, text } => {
                        A::Answer(api::SuggestionAnswer {
                            unit: unit.clone(),
                            answer_class: answer_class(*class),
                            text: text.clone(),
                        })
                    }
                    SuggestionAction::Evaluate { result, comment } => {
                        A::Evaluate(api::SuggestionEvaluate {
                            result: satisfaction(*result),
                            comment: comment.clone(),
                        })
                    }
                    SuggestionAction::Track { note, solved } => A::Track(api::SuggestionTrack {
                        note: note.clone(),
                        solved: *solved,
                    }),
                    SuggestionAction::Close => A::Close(api::SuggestionClose {}),
                    SuggestionAction::Supervise { key } => {
                        A::Supervise(api::SuggestionSupervise { key: *key })
                    }
                }),
            })
            .collect(),
    }
}

fn notice(n: &Notice) -> api::Notice {
    api::Notice {
        title: n.title.clone(),
        body: n.body.clone(),
        category: n.category.clone(),
        issue_date: Some(date(n.issued_on)),
        audience: n.audience.to_string(),
    }
}

fn mandate(m: &Mandate) -> api::Mandate {
    api::Mandate {
        person: m.person.to_string(),
        person_home: m.person_home.to_string(),
        name: m.name.clone(),
        congress: m.congress.to_string(),
        level: level(Some(m.level)),
        term: i32::try_from(m.term).unwrap_or(i32::MAX),
        constituency: m.constituency.clone(),
        state: mandate_state(m.status),
        state_start_date: opt_date(m.status_since),
        stations: m
            .stations
            .iter()
            .map(|(venue, s)| api::Station {
                venue: venue.to_string(),
                region: s.region.to_string(),
                end_date: opt_date(s.until),
            })
            .collect(),
    }
}

pub(super) fn quota_rule(q: &QuotaRule) -> api::QuotaRule {
    api::QuotaRule {
        congress: q.congress.to_string(),
        subject: quota_subject(q.subject),
        group_kind: q.group_kind.map_or(0, group_kind),
        counts: quota_counts(q.counts),
        activity_kinds: q.activity_kinds.iter().map(|k| activity_kind(*k)).collect(),
        period: quota_period(q.period),
        minimum: i32::try_from(q.minimum).unwrap_or(i32::MAX),
        start_date: Some(date(q.from)),
        end_date: opt_date(q.until),
        basis: q.basis.clone().unwrap_or_default(),
        description: q.describe(),
    }
}

fn motion(header: &renda_node::record::Header, m: &Motion) -> api::Motion {
    use api::motion::Proposer as P;
    use api::motion_step::Action as A;
    let (status, history) = m.fold(header);
    let f = &m.fields;
    api::Motion {
        title: f.title.clone(),
        body: f.body.clone(),
        congress: f.congress.to_string(),
        session: f.session.clone(),
        deadline_date: Some(date(f.deadline)),
        proposer: Some(match &f.proposer {
            Proposer::Delegates {
                lead,
                lead_name,
                cosigners: c,
            } => P::Delegates(api::MotionDelegates {
                lead: lead.to_string(),
                lead_name: lead_name.clone(),
                cosigners: cosigners(c),
            }),
            Proposer::Delegation { name } => {
                P::Delegation(api::MotionDelegation { name: name.clone() })
            }
            Proposer::Body { body, name } => P::ProposingBody(api::MotionBody {
                body: proposing_body(*body),
                name: name.clone().unwrap_or_default(),
            }),
        }),
        status: Some(api::MotionStatus {
            state: workflow_state(
                RecordKind::Motion,
                status.state.as_str(),
                status.unreadable_events,
            ),
            submit_date: opt_date(status.submitted_on),
            decide_date: opt_date(status.decided_on),
            committee: status.committee.clone().unwrap_or_default(),
            suggestion: opt_string(status.suggestion),
            refused_step_count: count(status.rejected_events),
            unreadable_step_count: count(status.unreadable_events),
        }),
        history: history
            .iter()
            .map(|line| api::MotionStep {
                step: Some(step(line)),
                action: Some(match &line.event.action {
                    MotionAction::Submit => A::Submit(api::MotionSubmit {}),
                    MotionAction::Decide {
                        decision: MotionDecision::ListOnAgenda,
                    } => A::ListOnAgenda(api::MotionListOnAgenda {}),
                    MotionAction::Decide {
                        decision: MotionDecision::ReferToCommittee { committee },
                    } => A::ReferToCommittee(api::MotionReferToCommittee {
                        committee: committee.clone(),
                    }),
                    MotionAction::Decide {
                        decision: MotionDecision::ConvertToSuggestion { suggestion },
                    } => A::ConvertToSuggestion(api::MotionConvertToSuggestion {
                        suggestion: suggestion.to_string(),
                    }),
                }),
            })
            .collect(),
    }
}

/// A month key of a rollup (`2026-05`) as a `google.type.Date` with day 0; `None` for the
/// `unknown` month of records without a day.
fn month(key: &str) -> Option<Date> {
    let (y, m) = key.split_once('-')?;
    let (year, month) = (y.parse::<i32>().ok()?, m.parse::<i32>().ok()?);
    (1..=12).contains(&month).then_some(Date {
        year,
        month,
        day: 0,
    })
}

fn by_month(m: &BTreeMap<String, u64>) -> Vec<api::MonthCount> {
    m.iter()
        .map(|(key, n)| api::MonthCount {
            month: month(key),
            count: *n as i64,
        })
        .collect()
}

/// Counts by a kind's state word as the API's states; a word the API does not list (a newer
/// release's state) is counted under UNSPECIFIED, so the states still add up to the total.
fn by_state(kind: RecordKind, m: &BTreeMap<String, u64>) -> Vec<api::StateCount> {
    let mut out: BTreeMap<i32, i64> = BTreeMap::new();
    for (word, n) in m {
        *out.entry(state_to_api(kind, Some(word)) as i32)
            .or_default() += *n as i64;
    }
    out.into_iter()
        .map(|(state, count)| api::StateCount { state, count })
        .collect()
}

fn quota(q: Quota) -> api::QuotaFigures {
    api::QuotaFigures {
        total: q.total as i64,
        met: q.met as i64,
        on_track: q.on_track as i64,
        behind: q.behind as i64,
        short: q.short as i64,
    }
}

pub(super) fn figures(m: &Metrics) -> api::Figures {
    use renda_node::record::activity::ActivityKind;
    use renda_node::record::suggestion::AnswerClass;
    api::Figures {
        seats: m
            .delegates
            .iter()
            .map(|(key, n)| {
                let (lvl, status) = key.split_once('/').unwrap_or(("unknown", key));
                api::SeatCount {
                    level: level(Level::parse("level", lvl).ok()),
                    state: state_to_api(RecordKind::Mandate, Some(status)) as i32,
                    count: *n as i64,
                }
            })
            .collect(),
        activities: m
            .activities
            .iter()
            .flat_map(|(key, kinds)| {
                kinds.iter().map(move |(kind, n)| api::ActivityCount {
                    month: month(key),
                    activity_kind: ActivityKind::parse("kind", kind).map_or(0, activity_kind),
                    count: *n as i64,
                })
            })
            .collect(),
        sign_in_count: m.sign_ins as i64,
        constituents_received: m.constituents_received as i64,
        sign_ins_by_month: by_month(&m.sign_ins_by_month),
        constituents_by_month: by_month(&m.constituents_by_month),
        opinions: by_state(RecordKind::Opinion, &m.opinions),
        opinions_by_month: by_month(&m.opinions_by_month),
        opinions_passed_on: m.opinions_passed_on as i64,
        suggestions: by_state(RecordKind::Suggestion, &m.suggestions),
        suggestions_by_month: by_month(&m.suggestions_by_month),
        motions: by_state(RecordKind::Motion, &m.motions),
        answer_classes: m
            .answer_classes
            .iter()
            .map(|(class, n)| api::AnswerClassCount {
                answer_class: AnswerClass::parse("class", class).map_or(0, answer_class),
                count: *n as i64,
            })
            .collect(),
        answered: m.answered as i64,
        answered_on_time: m.answered_on_time as i64,
        overdue: m.overdue as i64,
        evaluated: m.evaluated as i64,
        satisfied: m.satisfied as i64,
        group_quota: Some(quota(m.group_quota)),
        delegate_quota: Some(quota(m.delegate_quota)),
    }
}

/// A rollup held here, narrowed to what `covers` lets the caller read of its children and
/// stale descendants.
pub(super) fn rollup(
    region: &RegionCode,
    r: &Rollup,
    stale_names: &BTreeMap<RegionCode, String>,
    covers: impl Fn(&RegionCode) -> bool,
) -> api::Rollup {
    let readable = |code: &str| RegionCode::parse("region", code).is_ok_and(|c| covers(&c));
    api::Rollup {
        region: region.to_string(),
        display_name: r.name.clone(),
        compute_time: Some(timestamp(r.computed_at)),
        generation: i64::try_from(r.generation).unwrap_or(i64::MAX),
        own: Some(figures(&r.own)),
        total: Some(figures(&r.total)),
        children: r
            .children
            .iter()
            .filter(|(code, _)| readable(code))
            .map(|(code, c)| api::ChildFigures {
                region: code.clone(),
                display_name: c.name.clone(),
                compute_time: Some(timestamp(c.as_of)),
                last_sync_time: c.last_sync.map(timestamp),
                total: Some(figures(&c.total)),
            })
            .collect(),
        stale_regions: r
            .stale
            .iter()
            .filter(|s| covers(&s.region))
            .map(|s| api::StaleRegion {
                region: s.region.to_string(),
                display_name: stale_names.get(&s.region).cloned().unwrap_or_default(),
                rollup_time: s.as_of.map(timestamp),
            })
            .collect(),
        rules: r.rules.iter().map(quota_rule).collect(),
        facts: r.facts.as_ref().map(|f| api::NodeFacts {
            version: f.version.clone(),
            min_protocol_version: f.min_protocol,
            max_protocol_version: f.max_protocol,
            certificate_expire_time: f.certificate_not_after.map(timestamp),
            last_sound_check_time: f.last_sound_check.map(timestamp),
            last_backup_time: f.last_backup.map(timestamp),
        }),
        fleet: Some(fleet(&r.fleet, &covers)),
    }
}

/// A subtree's fleet, the listed nodes narrowed to what the caller may read (the counts are
/// the subtree's, as its figures are).
fn fleet(
    f: &renda_node::record::fleet::Fleet,
    covers: &impl Fn(&RegionCode) -> bool,
) -> api::Fleet {
    let flagged = |g: &renda_node::record::fleet::Flagged| api::FlaggedNodes {
        count: i64::try_from(g.count).unwrap_or(i64::MAX),
        nodes: g
            .nodes
            .iter()
            .filter(|n| covers(&n.region))
            .map(|n| api::FleetNode {
                region: n.region.to_string(),
                display_name: n.name.clone(),
                time: n.at.map(timestamp),
            })
            .collect(),
    };
    api::Fleet {
        node_count: i64::try_from(f.nodes).unwrap_or(i64::MAX),
        versions: f
            .by_version
            .iter()
            .map(|(version, n)| api::VersionCount {
                version: version.clone(),
                count: i64::try_from(*n).unwrap_or(i64::MAX),
            })
            .collect(),
        expiring_certificates: Some(flagged(&f.expiring_certificates)),
        unchecked: Some(flagged(&f.unchecked)),
        stale_backups: Some(flagged(&f.stale_backups)),
    }
}

pub(super) fn subject_standing(s: &SubjectStanding) -> api::SubjectStanding {
    api::SubjectStanding {
        subject: quota_subject(s.subject),
        id: s.id.clone(),
        name: s.name.clone(),
        group_kind: s.group_kind.map_or(0, group_kind),
        standing: standing(s.standing),
        judgements: s
            .judgements
            .iter()
            .map(|j| api::RuleJudgement {
                rule: Some(quota_rule(&j.rule)),
                have: i32::try_from(j.judgement.have).unwrap_or(i32::MAX),
                need: i32::try_from(j.judgement.need).unwrap_or(i32::MAX),
                quarter: j.judgement.quarter.map_or(0, i32::from),
                standing: standing(j.judgement.standing),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A suggestion holding a step a newer release wrote shows as UNKNOWN, as lists and counts
    /// show it, not as the state its readable steps alone would give; the step it cannot read
    /// is counted, and the readable ones are its history.
    #[test]
    fn a_step_of_a_newer_release_makes_the_state_unknown() {
        use renda_node::record::event::EventEntry;
        use renda_node::record::suggestion::SuggestionFields;
        use renda_node::record::{Header, RecordId};
        let home = RegionCode::parse("home", "330411000000").unwrap();
        let lead = RecordId::new();
        let header = Header {
            id: RecordId::new(),
            kind: RecordKind::Suggestion,
            home,
            created_at: chrono::Utc::now(),
            created_by: Author {
                node: home,
                user: "clerk".into(),
            },
        };
        let submit = serde_json::json!({
            "id": RecordId::new().to_string(),
            "lamport": 1,
            "recorded_at": chrono::Utc::now(),
            "date": chrono::Utc::now().date_naive(),
            "author": { "node": home, "user": "clerk" },
            "action": "submit",
        });
        let mut later = submit.clone();
        later["id"] = RecordId::new().to_string().into();
        later["lamport"] = 2.into();
        later["action"] = "mediate".into();
        let entry = |v: serde_json::Value| match serde_json::from_value(v.clone()) {
            Ok(event) => EventEntry::Event(event),
            Err(e) => EventEntry::Undecodable {
                raw: v,
                error: e.to_string(),
            },
        };
        let record = Record {
            header,
            body: Body::Suggestion(Suggestion {
                fields: SuggestionFields {
                    title: "关于加装路灯的建议".into(),
                    body: "村道夜间无照明。".into(),
                    category: "城乡建设".into(),
                    lead,
                    lead_name: "沈建华".into(),
                    cosigners: Vec::new(),
                    addressed_to: home,
                    session: None,
                    group: None,
                    motion: None,
                },
                events: vec![entry(submit.clone()), entry(later)],
            }),
        };
        let Some(api::record::Body::Suggestion(s)) = record_message(&record).and_then(|r| r.body)
        else {
            panic!("a suggestion's message");
        };
        let status = s.status.unwrap();
        assert_eq!(status.state, api::RecordState::Unknown as i32);
        assert_eq!(status.unreadable_step_count, 1);
        assert_eq!(s.history.len(), 1);

        // Without the newer step, the state its steps give.
        let Body::Suggestion(mut readable) = record.body.clone() else {
            unreachable!()
        };
        readable.events.truncate(1);
        let only = Record {
            header: record.header.clone(),
            body: Body::Suggestion(readable),
        };
        let Some(api::record::Body::Suggestion(s)) = record_message(&only).and_then(|r| r.body)
        else {
            panic!("a suggestion's message");
        };
        assert_eq!(
            s.status.unwrap().state,
            api::RecordState::SuggestionSubmitted as i32
        );
    }

    #[test]
    fn months_of_a_rollup_are_dates_with_day_zero() {
        assert_eq!(
            month("2026-05"),
            Some(Date {
                year: 2026,
                month: 5,
                day: 0
            })
        );
        assert_eq!(month("unknown"), None);
        assert_eq!(month("2026-13"), None);
    }

    #[test]
    fn a_state_this_release_does_not_know_still_adds_to_the_total() {
        let m: BTreeMap<String, u64> = [("closed".into(), 2), ("reopened".into(), 3)].into();
        let counts = by_state(RecordKind::Suggestion, &m);
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 5);
        assert!(counts.iter().any(|c| c.state == 0 && c.count == 3));
        assert!(
            counts
                .iter()
                .any(|c| c.state == api::RecordState::SuggestionClosed as i32 && c.count == 2)
        );
    }
}
