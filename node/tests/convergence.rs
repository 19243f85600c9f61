//! Convergence of suggestion documents: replicas that append checked workflow steps and edit
//! fields concurrently, and exchange changes in any order, end with the same document, the same
//! folded status and history, and the same projection row.
//!
//! The property test drives two or three replicas of one suggestion through random steps
//! authored by the congress it is addressed to (which is also the lead delegate's home, so
//! authority never refuses a step), random field edits and random partial syncs. Failing cases
//! are saved next to this file in `convergence.proptest-regressions` and replayed first on every
//! later run; commit that file when it appears.

use automerge::ActorId;
use chrono::{DateTime, Days, NaiveDate, Utc};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use renda_node::record::event::{HistoryLine, next_lamport};
use renda_node::record::projection::project;
use renda_node::record::suggestion::{
    self, AnswerClass, Satisfaction, Suggestion, SuggestionAction, SuggestionFields,
    SuggestionState, SuggestionStatus, UnitAssignment, UnitRole,
};
use renda_node::record::{Author, Body, Event, Header, Record, RecordDoc, RecordId, RecordKind};
use renda_node::region::RegionCode;

/// 王店镇: the lead delegate's home and, in these tests, the congress the suggestion is addressed
/// to, so every step may be taken there.
fn township() -> RegionCode {
    RegionCode::parse("region", "330411101000").unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Every step is recorded at noon on the day it takes effect, so the `date.in_future` rule never
/// refuses it and every replica sees the same `recorded_at`.
fn noon(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

fn submitted_on() -> NaiveDate {
    day("2026-03-02")
}

fn clerk() -> Author {
    Author {
        node: township(),
        user: "镇人大办".into(),
    }
}

/// An event id whose order among concurrent events with the same lamport is set by `tiebreak`
/// (generated, so proptest can reproduce and shrink it) and which is unique because it also
/// carries the replica and the operation's position.
fn event_id(tiebreak: u64, replica: usize, op: usize) -> RecordId {
    let bits = (u128::from(tiebreak) << 64) | ((replica as u128) << 32) | op as u128;
    RecordId::parse("id", &ulid::Ulid(bits).to_string()).unwrap()
}

/// A suggestion created by actor `AA…` with its submission appended, the way a township's node
/// writes it before any other node has a copy.
fn origin() -> RecordDoc {
    let header = Header {
        id: RecordId::parse("id", "01JQ8Z0000000000000000000S").unwrap(),
        kind: RecordKind::Suggestion,
        home: township(),
        created_at: noon(submitted_on()),
        created_by: clerk(),
    };
    let fields = SuggestionFields {
        title: "关于改善中心小学周边交通安全的建议".into(),
        body: "上下学高峰时段车辆拥堵，建议增设信号灯。".into(),
        category: "城乡建设".into(),
        lead: RecordId::parse("id", "01JQ8Z0000000000000000000D").unwrap(),
        lead_name: "张伟".into(),
        cosigners: Vec::new(),
        addressed_to: township(),
        session: Some("十七届三次会议".into()),
        group: None,
        motion: None,
    };
    let mut doc = RecordDoc::create(&header, &fields, &ActorId::from(vec![0xAA; 16])).unwrap();
    doc.append_event(&Event {
        id: event_id(0, 0, 0),
        lamport: 1,
        recorded_at: noon(submitted_on()),
        date: submitted_on(),
        author: clerk(),
        action: SuggestionAction::Submit,
    })
    .unwrap();
    doc
}

/// Replica `i` (1-based): the origin's bytes loaded under actor `[i; 16]`, as a node does when it
/// first receives the record.
fn fork(origin: &RecordDoc, i: u8) -> RecordDoc {
    RecordDoc::load(&origin.save(), &ActorId::from(vec![i; 16])).unwrap()
}

fn suggestion_of(doc: &RecordDoc) -> (Header, Suggestion) {
    let record = Record::from_doc(doc).expect("a readable suggestion");
    match record.body {
        Body::Suggestion(s) => (record.header, s),
        other => panic!("expected a suggestion, got {other:?}"),
    }
}

fn fold_of(doc: &RecordDoc) -> (SuggestionStatus, Vec<HistoryLine<SuggestionAction>>) {
    let (header, s) = suggestion_of(doc);
    s.fold(&header)
}

fn sorted_heads(doc: &RecordDoc) -> Vec<automerge::ChangeHash> {
    let mut heads = doc.heads();
    heads.sort();
    heads
}

const UNITS: [&str; 3] = ["住建局", "交通运输局", "教育局"];
const TITLES: [&str; 3] = [
    "关于改善中心小学周边交通安全的建议",
    "关于在中心小学门口增设信号灯的建议",
    "关于缓解学校周边交通拥堵的建议",
];
const CATEGORIES: [&str; 3] = ["城乡建设", "教育", "公共安全"];

/// A workflow step in terms a generator can pick; turned into an action against the replica's
/// current status, so extensions aim past the deadline that replica sees.
#[derive(Clone, Debug)]
enum Step {
    /// The step that naturally follows the replica's current state, so generated histories reach
    /// answers, evaluations, tracking and closing instead of stalling on refused steps.
    Next {
        number: u32,
        first: usize,
        second: Option<(usize, bool)>,
        pick: usize,
        class: AnswerClass,
        result: Satisfaction,
        track: bool,
    },
    Accept {
        number: u32,
    },
    NotAccept,
    Assign {
        first: usize,
        second: Option<(usize, bool)>,
    },
    SendBack {
        unit: usize,
    },
    Extend {
        days_after_due: u16,
    },
    Answer {
        unit: usize,
        class: AnswerClass,
    },
    Evaluate(Satisfaction),
    Track,
    Close,
    Supervise(bool),
}

impl Step {
    fn action(&self, status: &SuggestionStatus, date: NaiveDate) -> SuggestionAction {
        use SuggestionAction as A;
        use SuggestionState as S;
        match self {
            Step::Next {
                number,
                first,
                second,
                pick,
                class,
                result,
                track,
            } => {
                let next = match status.state {
                    S::Submitted => Step::Accept { number: *number },
                    S::Accepted | S::SentBack => Step::Assign {
                        first: *first,
                        second: *second,
                    },
                    S::Tracking if *track => Step::Track,
                    S::Assigned | S::Rehandling | S::Tracking => {
                        // One of the units the round still waits for (all of them once tracking
                        // opens a new round).
                        let waiting: Vec<usize> = status
                            .units
                            .iter()
                            .filter(|u| u.role != UnitRole::Assist)
                            .filter(|u| {
                                status.state == S::Tracking || !status.answers.contains_key(&u.unit)
                            })
                            .filter_map(|u| UNITS.iter().position(|name| *name == u.unit))
                            .collect();
                        match waiting.get(pick % waiting.len().max(1)) {
                            Some(unit) => Step::Answer {
                                unit: *unit,
                                class: *class,
                            },
                            None => Step::Close,
                        }
                    }
                    S::Answered => Step::Evaluate(*result),
                    S::Draft | S::NotAccepted | S::Satisfied | S::Closed => Step::Close,
                };
                next.action(status, date)
            }
            Step::Accept { number } => A::Screen {
                accepted: true,
                number: Some(*number),
                reason: None,
            },
            Step::NotAccept => A::Screen {
                accepted: false,
                number: None,
                reason: Some("属于信访事项".into()),
            },
            Step::Assign { first, second } => {
                let units = match second {
                    None => vec![UnitAssignment {
                        unit: UNITS[*first].into(),
                        role: UnitRole::Lead,
                    }],
                    Some((other, separate)) => {
                        let (a, b) = if *separate {
                            (UnitRole::Separate, UnitRole::Separate)
                        } else {
                            (UnitRole::Lead, UnitRole::Assist)
                        };
                        vec![
                            UnitAssignment {
                                unit: UNITS[*first].into(),
                                role: a,
                            },
                            UnitAssignment {
                                unit: UNITS[*other].into(),
                                role: b,
                            },
                        ]
                    }
                };
                A::Assign { units }
            }
            Step::SendBack { unit } => A::SendBack {
                unit: UNITS[*unit].into(),
                reason: "不属于本单位职责".into(),
            },
            Step::Extend { days_after_due } => A::Extend {
                until: status.due.unwrap_or(date) + Days::new(u64::from(*days_after_due)),
                reason: "需要等待年度预算安排".into(),
            },
            Step::Answer { unit, class } => A::Answer {
                unit: UNITS[*unit].into(),
                class: *class,
                text: format!("{}的答复", UNITS[*unit]),
            },
            Step::Evaluate(result) => A::Evaluate {
                result: *result,
                comment: String::new(),
            },
            Step::Track => A::Track {
                note: "回头看：工程已开工".into(),
                solved: false,
            },
            Step::Close => A::Close,
            Step::Supervise(key) => A::Supervise { key: *key },
        }
    }
}

#[derive(Clone, Debug)]
enum Edit {
    Title(usize),
    Category(usize),
    Body(usize),
}

#[derive(Clone, Debug)]
enum Op {
    /// The replica takes a step `days_later` days after the last step it has seen.
    Step {
        replica: usize,
        step: Step,
        days_later: u64,
        tiebreak: u64,
    },
    Edit {
        replica: usize,
        edit: Edit,
    },
    /// Everything `from` has is sent to `to`.
    Sync {
        from: usize,
        to: usize,
    },
}

#[derive(Clone, Debug)]
struct Scenario {
    replicas: usize,
    ops: Vec<Op>,
    /// The order of the final full exchange: every ordered pair once.
    final_exchange: Vec<(usize, usize)>,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let unit = 0..UNITS.len();
    let assignment = (
        unit.clone(),
        proptest::option::of((unit.clone(), any::<bool>())),
    );
    prop_oneof![
        12 => (
            (1u32..50, assignment.clone(), 0usize..4),
            (
                proptest::sample::select(AnswerClass::ALL),
                proptest::sample::select(Satisfaction::ALL),
                any::<bool>(),
            ),
        )
            .prop_map(|((number, (first, second), pick), (class, result, track))| Step::Next {
                number,
                first,
                second,
                pick,
                class,
                result,
                track,
            }),
        2 => (1u32..50).prop_map(|number| Step::Accept { number }),
        1 => Just(Step::NotAccept),
        3 => assignment.prop_map(|(first, second)| Step::Assign { first, second }),
        1 => unit.clone().prop_map(|unit| Step::SendBack { unit }),
        1 => (0u16..120).prop_map(|days_after_due| Step::Extend { days_after_due }),
        5 => (unit, proptest::sample::select(AnswerClass::ALL))
            .prop_map(|(unit, class)| Step::Answer { unit, class }),
        2 => proptest::sample::select(Satisfaction::ALL).prop_map(Step::Evaluate),
        1 => Just(Step::Track),
        2 => Just(Step::Close),
        1 => any::<bool>().prop_map(Step::Supervise),
    ]
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..TITLES.len()).prop_map(Edit::Title),
        (0..CATEGORIES.len()).prop_map(Edit::Category),
        (0usize..3).prop_map(Edit::Body),
    ]
}

fn op_strategy(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..n, step_strategy(), 0u64..15, any::<u64>()).prop_map(
            |(replica, step, days_later, tiebreak)| Op::Step { replica, step, days_later, tiebreak }
        ),
        1 => (0..n, edit_strategy()).prop_map(|(replica, edit)| Op::Edit { replica, edit }),
        3 => (0..n, 0..n).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2usize..=3).prop_flat_map(|n| {
        let pairs: Vec<(usize, usize)> = (0..n)
            .flat_map(|from| {
                (0..n)
                    .filter(move |to| *to != from)
                    .map(move |to| (from, to))
            })
            .collect();
        (
            proptest::collection::vec(op_strategy(n), 0..80),
            Just(pairs).prop_shuffle(),
        )
            .prop_map(move |(ops, final_exchange)| Scenario {
                replicas: n,
                ops,
                final_exchange,
            })
    })
}

/// Sends everything `from` has to `to`, returning the changes that were new to `to`.
fn sync(replicas: &mut [RecordDoc], from: usize, to: usize) -> usize {
    let changes = replicas[from].changes_since(&[]);
    replicas[to].apply_changes(changes).unwrap().len()
}

fn run(scenario: Scenario) -> Result<(), TestCaseError> {
    let origin = origin();
    let mut replicas: Vec<RecordDoc> = (1..=scenario.replicas)
        .map(|i| fork(&origin, i as u8))
        .collect();
    let mut appended = 0usize;

    for (index, op) in scenario.ops.iter().enumerate() {
        match op {
            Op::Step {
                replica,
                step,
                days_later,
                tiebreak,
            } => {
                let doc = &mut replicas[*replica];
                let (header, s) = suggestion_of(doc);
                let (status, _) = s.fold(&header);
                let date = status.last_step_on.unwrap_or(submitted_on()) + Days::new(*days_later);
                let event = Event {
                    id: event_id(*tiebreak, *replica + 1, index + 1),
                    lamport: next_lamport(&s.events),
                    recorded_at: noon(date),
                    date,
                    author: clerk(),
                    action: step.action(&status, date),
                };
                // Like the CLI: a step the replica's own fold would refuse is never written.
                if suggestion::check(&status, &header, &s.fields, &event).is_ok() {
                    doc.append_event(&event).unwrap();
                    appended += 1;
                    // The step sorts after everything its author saw, so the author's own fold
                    // must apply it exactly as the check said it would.
                    let (_, history) = fold_of(doc);
                    let line = history.iter().find(|l| l.event.id == event.id).unwrap();
                    prop_assert_eq!(&line.rejected, &None);
                }
            }
            Op::Edit { replica, edit } => {
                let doc = &mut replicas[*replica];
                let (_, s) = suggestion_of(doc);
                let mut fields = s.fields;
                match edit {
                    Edit::Title(i) => fields.title = TITLES[*i].into(),
                    Edit::Category(i) => fields.category = CATEGORIES[*i].into(),
                    Edit::Body(i) => fields.body = format!("建议正文第{i}稿"),
                }
                let time_ms = noon(submitted_on()).timestamp_millis() + index as i64;
                doc.set_fields(&fields, time_ms, "edit").unwrap();
                prop_assert_eq!(suggestion_of(doc).1.fields, fields);
            }
            Op::Sync { from, to } => {
                if from != to {
                    sync(&mut replicas, *from, *to);
                }
            }
        }
    }

    for (from, to) in &scenario.final_exchange {
        sync(&mut replicas, *from, *to);
    }

    let first = &replicas[0];
    let (first_header, first_suggestion) = suggestion_of(first);
    // Nothing written anywhere is lost in the merge: the submission plus every appended step.
    prop_assert_eq!(first_suggestion.events.len(), 1 + appended);
    let (first_status, first_history) = first_suggestion.fold(&first_header);
    prop_assert_eq!(
        first_status.rejected_events,
        first_history
            .iter()
            .filter(|l| l.rejected.is_some())
            .count()
    );
    let first_record = Record::from_doc(first).unwrap();
    let first_projection = project(&first_record);
    for other in &replicas[1..] {
        prop_assert_eq!(sorted_heads(other), sorted_heads(first));
        let record = Record::from_doc(other).unwrap();
        prop_assert_eq!(&record, &first_record);
        let (status, history) = fold_of(other);
        prop_assert_eq!(&status, &first_status);
        prop_assert_eq!(&history, &first_history);
        prop_assert_eq!(project(&record), first_projection.clone());
    }

    // A converged replica already has everything: receiving it again changes nothing.
    for (from, to) in &scenario.final_exchange {
        let heads = replicas[*to].heads();
        let changes = replicas[*from].changes_since(&[]);
        let applied = replicas[*to].apply_changes(changes).unwrap();
        prop_assert!(
            applied.is_empty(),
            "{} changes applied twice",
            applied.len()
        );
        prop_assert_eq!(replicas[*to].heads(), heads);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Saved beside this file (`convergence.proptest-regressions`) and replayed before new
        // cases, so a failure found once is checked on every later run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_of_a_suggestion_converge_whatever_the_sync_order(scenario in scenario()) {
        run(scenario)?;
    }
}

#[test]
fn concurrent_screenings_merge_to_one_status_with_exactly_one_rejected() {
    let origin = origin();
    let mut a = fork(&origin, 1);
    let mut b = fork(&origin, 2);
    let screen = |id: RecordId, action: SuggestionAction| Event {
        id,
        lamport: 2,
        recorded_at: noon(day("2026-03-10")),
        date: day("2026-03-10"),
        author: clerk(),
        action,
    };
    // Two clerks of the township screen the same suggestion before either has synced; the
    // acceptance carries the smaller id, so it is the one that sorts first everywhere.
    let accepting = screen(
        event_id(1, 1, 1),
        SuggestionAction::Screen {
            accepted: true,
            number: Some(8),
            reason: None,
        },
    );
    let refusing = screen(
        event_id(2, 2, 1),
        SuggestionAction::Screen {
            accepted: false,
            number: None,
            reason: Some("内容不明确".into()),
        },
    );
    for (doc, event) in [(&mut a, &accepting), (&mut b, &refusing)] {
        let (header, s) = suggestion_of(doc);
        let (status, _) = s.fold(&header);
        assert_eq!(event.lamport, next_lamport(&s.events));
        suggestion::check(&status, &header, &s.fields, event).expect("legal on its own replica");
        doc.append_event(event).unwrap();
    }
    assert_eq!(fold_of(&b).0.state, SuggestionState::NotAccepted);

    // Merge in both directions: a receives b's step after its own, b receives a's after its own.
    let from_b = b.changes_since(&[]);
    let from_a = a.changes_since(&[]);
    assert_eq!(a.apply_changes(from_b).unwrap().len(), 1);
    assert_eq!(b.apply_changes(from_a).unwrap().len(), 1);
    // A third replica receives both only now, the refusal first.
    let mut c = fork(&origin, 3);
    c.apply_changes(b.changes_since(&[])).unwrap();

    assert_eq!(sorted_heads(&a), sorted_heads(&b));
    assert_eq!(sorted_heads(&a), sorted_heads(&c));
    let (status, history) = fold_of(&a);
    assert_eq!(fold_of(&b), (status.clone(), history.clone()));
    assert_eq!(fold_of(&c), (status.clone(), history.clone()));
    assert_eq!(status.state, SuggestionState::Accepted);
    assert_eq!(status.number, Some(8));
    assert_eq!(status.rejected_events, 1);
    let rejected: Vec<_> = history.iter().filter(|l| l.rejected.is_some()).collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].event.id, refusing.id);
    assert_eq!(
        rejected[0].rejected.as_ref().unwrap().rule,
        "transition.state"
    );
    let project_of = |doc: &RecordDoc| project(&Record::from_doc(doc).unwrap());
    assert_eq!(project_of(&a), project_of(&b));
    assert_eq!(project_of(&a).status.as_deref(), Some("accepted"));
}
