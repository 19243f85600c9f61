//! Constituents' opinions (民情, 群众意见).
//!
//! ```text
//! receive ─▶ 已收集 ─┬─ answer on the spot ───────────────────────────▶ 已办结 ─▶ rate
//!                    └─ pass on (转交) ─▶ 已转交 ─▶ start ─▶ 办理中 ─▶ handle ─┘
//!                                           └──────── handle ────────────┘
//! ```
//!
//! The home node receives; the home node or any congress above it may record the later steps,
//! since a county often follows an opinion its township passed on.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::event::{EventEntry, HistoryLine, Rejection, check_dates, fold_entries};
use super::suggestion::Satisfaction;
use super::{Event, Header, RecordId};
use crate::region::RegionCode;
use crate::validate::{ValidationError, bounded_text, required_text};

labelled_enum!(OpinionSource {
    QrCode => ("qr", "扫码反映"),
    Reception => ("reception", "接待选民"),
    Visit => ("visit", "走访"),
    Hotline => ("hotline", "热线电话"),
    Other => ("other", "其他"),
});

labelled_enum!(OpinionState {
    Draft => ("draft", "未登记"),
    Received => ("received", "已收集"),
    PassedOn => ("passed_on", "已转交"),
    InProgress => ("in_progress", "办理中"),
    Handled => ("handled", "已办结"),
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpinionFields {
    pub source: OpinionSource,
    pub content: String,
    /// Where the matter is, as the constituent described it.
    pub place: String,
    /// The village, township or street the opinion comes from.
    pub region: RegionCode,
    /// The delegate who received it, if one did.
    #[serde(default)]
    pub delegate: Option<RecordId>,
    /// The activity during which it was received, if any.
    #[serde(default)]
    pub activity: Option<RecordId>,
    #[serde(default)]
    pub category: Option<String>,
}

impl OpinionFields {
    pub fn validate(&self, home: &RegionCode) -> Result<(), ValidationError> {
        required_text("content", &self.content)?;
        bounded_text("place", &self.place)?;
        if let Some(category) = &self.category {
            required_text("category", category)?;
        }
        if !self.region.is_within(home) {
            return Err(ValidationError::new(
                "region",
                format!("民情所在地 {} 不在本节点 {home} 的辖区内", self.region),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OpinionAction {
    Receive,
    /// 当场答复: settled on the spot.
    AnswerOnSpot {
        reply: String,
    },
    /// 转交 to a named body (a department, a township government …), or to a congress above
    /// the one that received it (`congress`, with `to` its name), which then finds it among
    /// what waits for it (待办) and handles it there.
    PassOn {
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        congress: Option<RegionCode>,
    },
    /// The receiving body has started on it.
    Start {
        #[serde(default)]
        note: String,
    },
    /// 办结, with what was done.
    Handle {
        result: String,
    },
    /// The citizen's rating of the handling.
    Rate {
        rating: Satisfaction,
    },
}

impl OpinionAction {
    pub fn label(&self) -> &'static str {
        match self {
            OpinionAction::Receive => "收集",
            OpinionAction::AnswerOnSpot { .. } => "当场答复",
            OpinionAction::PassOn { .. } => "转交",
            OpinionAction::Start { .. } => "开始办理",
            OpinionAction::Handle { .. } => "办结",
            OpinionAction::Rate { .. } => "评价",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpinionStatus {
    pub state: OpinionState,
    pub received_on: Option<NaiveDate>,
    pub passed_on_to: Option<String>,
    /// The congress above it was passed on to, if it was passed on to one.
    pub passed_on_congress: Option<RegionCode>,
    pub passed_on_on: Option<NaiveDate>,
    pub answered_on_spot: bool,
    pub handled_on: Option<NaiveDate>,
    pub result: Option<String>,
    pub rating: Option<Satisfaction>,
    pub last_step_on: Option<NaiveDate>,
    pub rejected_events: usize,
    pub unreadable_events: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Opinion {
    pub fields: OpinionFields,
    pub events: Vec<EventEntry<OpinionAction>>,
}

impl Opinion {
    pub fn fold(&self, header: &Header) -> (OpinionStatus, Vec<HistoryLine<OpinionAction>>) {
        fold(header, &self.events)
    }
}

pub fn fold(
    header: &Header,
    entries: &[EventEntry<OpinionAction>],
) -> (OpinionStatus, Vec<HistoryLine<OpinionAction>>) {
    let mut status = OpinionStatus {
        state: OpinionState::Draft,
        received_on: None,
        passed_on_to: None,
        passed_on_congress: None,
        passed_on_on: None,
        answered_on_spot: false,
        handled_on: None,
        result: None,
        rating: None,
        last_step_on: None,
        rejected_events: 0,
        unreadable_events: 0,
    };
    let (history, refused, unreadable) =
        fold_entries(&mut status, entries, |status, e| step(status, header, e));
    status.rejected_events = refused;
    status.unreadable_events = unreadable;
    (status, history)
}

/// Checks a step against the current status without changing it.
pub fn check(
    status: &OpinionStatus,
    header: &Header,
    event: &Event<OpinionAction>,
) -> Result<(), Rejection> {
    let mut scratch = status.clone();
    step(&mut scratch, header, event)
}

labelled_enum!(
    /// The kinds of step staff take on an opinion after it was received, as the workbench
    /// offers them.
    OpinionStep {
        AnswerOnSpot => ("answer_on_spot", "当场答复"),
        PassOn => ("pass_on", "转交"),
        Start => ("start", "开始办理"),
        Handle => ("handle", "办结"),
        Rate => ("rate", "评价"),
    }
);

/// The steps node `here` may take on the opinion on `today`: each kind is offered when a sample
/// of it passes [`check`], so the workbench offers exactly what the fold would accept.
pub fn offered_steps(
    header: &Header,
    status: &OpinionStatus,
    here: RegionCode,
    today: NaiveDate,
) -> Vec<OpinionStep> {
    use OpinionAction as A;
    let date = status.last_step_on.map_or(today, |last| last.max(today));
    let sample = || "—".to_string();
    OpinionStep::ALL
        .iter()
        .copied()
        .filter(|step| {
            let action = match step {
                OpinionStep::AnswerOnSpot => A::AnswerOnSpot { reply: sample() },
                OpinionStep::PassOn => A::PassOn {
                    to: sample(),
                    congress: None,
                },
                OpinionStep::Start => A::Start {
                    note: String::new(),
                },
                OpinionStep::Handle => A::Handle { result: sample() },
                OpinionStep::Rate => A::Rate {
                    rating: Satisfaction::Satisfied,
                },
            };
            check(status, header, &super::event::probe(here, date, action)).is_ok()
        })
        .collect()
}

fn need(rule: &str, what: &str, text: &str) -> Result<(), Rejection> {
    required_text(what, text).map_err(|e| Rejection::new(rule, format!("{what}{}", e.rule)))
}

/// Who may write `event`, whatever state the opinion is in: the node that collected it
/// registers it, and that node or any congress above it handles it. Like the suggestion's
/// authority rules, this depends on nothing concurrent, so a receiver may refuse what breaks it.
pub fn authority(header: &Header, event: &Event<OpinionAction>) -> Result<(), Rejection> {
    let from_home = event.author.node == header.home;
    if !from_home && !header.home.is_within(&event.author.node) {
        return Err(Rejection::new(
            "authority.home_or_above",
            format!(
                "只有 {} 或其上级人大可以办理这条民情，本次操作来自 {}",
                header.home, event.author.node
            ),
        ));
    }
    if matches!(event.action, OpinionAction::Receive) && !from_home {
        return Err(Rejection::new(
            "authority.home",
            "只有收集民情的节点可以登记",
        ));
    }
    Ok(())
}

fn step(
    status: &mut OpinionStatus,
    header: &Header,
    event: &Event<OpinionAction>,
) -> Result<(), Rejection> {
    use OpinionAction as A;
    use OpinionState as S;

    check_dates(status.last_step_on, event)?;
    authority(header, event)?;
    let wrong_state =
        || super::event::wrong_state("民情", status.state.label(), event.action.label());
    match &event.action {
        A::Receive => {
            if status.state != S::Draft {
                return Err(wrong_state());
            }
            status.state = S::Received;
            status.received_on = Some(event.date);
        }
        A::AnswerOnSpot { reply } => {
            if status.state != S::Received {
                return Err(wrong_state());
            }
            need("answer_on_spot.reply_required", "答复内容", reply)?;
            status.state = S::Handled;
            status.answered_on_spot = true;
            status.handled_on = Some(event.date);
            status.result = Some(reply.clone());
        }
        A::PassOn { to, congress } => {
            if status.state != S::Received {
                return Err(wrong_state());
            }
            need("pass_on.body_required", "转交单位", to)?;
            if let Some(congress) = congress
                && (!congress.has_congress()
                    || !header.home.is_within(congress)
                    || *congress == header.home)
            {
                return Err(Rejection::new(
                    "pass_on.congress",
                    format!("只能转交给 {} 的上级人大，{congress} 不是", header.home),
                ));
            }
            status.passed_on_congress = *congress;
            status.state = S::PassedOn;
            status.passed_on_to = Some(to.clone());
            status.passed_on_on = Some(event.date);
        }
        A::Start { note } => {
            if status.state != S::PassedOn {
                return Err(wrong_state());
            }
            bounded_text("note", note).map_err(|e| Rejection::new("start.note", e.rule))?;
            status.state = S::InProgress;
        }
        A::Handle { result } => {
            if !matches!(status.state, S::PassedOn | S::InProgress) {
                return Err(wrong_state());
            }
            need("handle.result_required", "办理结果", result)?;
            status.state = S::Handled;
            status.handled_on = Some(event.date);
            status.result = Some(result.clone());
        }
        A::Rate { rating } => {
            if status.state != S::Handled {
                return Err(wrong_state());
            }
            if status.rating.is_some() {
                return Err(Rejection::new(
                    "rate.already_rated",
                    "群众已经评价过这条民情",
                ));
            }
            status.rating = Some(*rating);
        }
    }
    status.last_step_on = Some(event.date);
    Ok(())
}

impl super::event::Workflow for Opinion {
    type Action = OpinionAction;
    type Status = OpinionStatus;

    fn entries(&self) -> &[EventEntry<OpinionAction>] {
        &self.events
    }

    fn status(&self, header: &Header) -> OpinionStatus {
        self.fold(header).0
    }

    fn check(
        &self,
        status: &OpinionStatus,
        header: &Header,
        event: &Event<OpinionAction>,
    ) -> Result<(), Rejection> {
        check(status, header, event)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Days, Utc};

    use super::*;
    use crate::record::event::next_lamport;
    use crate::record::{Author, RecordKind};

    type Entry = EventEntry<OpinionAction>;
    use OpinionAction as A;
    use OpinionState as S;

    /// 王店镇: where the opinion was received.
    fn township() -> RegionCode {
        RegionCode::parse("region", "330411101000").unwrap()
    }

    /// 秀洲区: the county above the township.
    fn county() -> RegionCode {
        RegionCode::parse("region", "330411000000").unwrap()
    }

    /// 油车港镇: a neighbouring township under the same county, with no say over this opinion.
    fn sibling_township() -> RegionCode {
        RegionCode::parse("region", "330411102000").unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn noon(date: NaiveDate) -> DateTime<Utc> {
        date.and_hms_opt(12, 0, 0).unwrap().and_utc()
    }

    fn header() -> Header {
        Header {
            id: RecordId(ulid::Ulid(0x0197_0000_0000_0000_0000_0000_0000_0010)),
            kind: RecordKind::Opinion,
            home: township(),
            created_at: noon(day("2026-04-01")),
            created_by: Author {
                node: township(),
                user: "镇人大办".into(),
            },
        }
    }

    /// An event recorded at noon on the day it takes effect.
    fn ev(lamport: u64, date: NaiveDate, node: RegionCode, action: OpinionAction) -> Entry {
        EventEntry::Event(Event {
            id: RecordId::new(),
            lamport,
            recorded_at: noon(date),
            date,
            author: Author {
                node,
                user: "经办人".into(),
            },
            action,
        })
    }

    fn pass_on(to: &str) -> OpinionAction {
        A::PassOn {
            to: to.into(),
            congress: None,
        }
    }

    fn handle() -> OpinionAction {
        A::Handle {
            result: "已修复路灯".into(),
        }
    }

    fn rate(rating: Satisfaction) -> OpinionAction {
        A::Rate { rating }
    }

    /// An opinion's events built one step at a time, each one lamport after the last.
    #[derive(Clone, Default)]
    struct Story {
        entries: Vec<Entry>,
    }

    impl Story {
        fn next(&self, date: &str, node: RegionCode, action: OpinionAction) -> Entry {
            ev(next_lamport(&self.entries), day(date), node, action)
        }

        fn then(mut self, date: &str, node: RegionCode, action: OpinionAction) -> Story {
            let entry = self.next(date, node, action);
            self.entries.push(entry);
            self
        }

        fn at_home(self, date: &str, action: OpinionAction) -> Story {
            self.then(date, township(), action)
        }

        fn received() -> Story {
            Story::default().at_home("2026-04-01", A::Receive)
        }

        fn passed_on() -> Story {
            Story::received().at_home("2026-04-02", pass_on("镇城建办"))
        }

        fn status(&self) -> OpinionStatus {
            fold(&header(), &self.entries).0
        }

        /// Folds the story with one more step, asserts the fold refused it and left the status as
        /// it was, and that the CLI's pre-check agrees. Returns the rule.
        fn rule(&self, date: &str, node: RegionCode, action: OpinionAction) -> String {
            let before = self.status();
            let entry = self.next(date, node, action);
            let EventEntry::Event(event) = entry.clone() else {
                unreachable!("built as an event")
            };
            let mut entries = self.entries.clone();
            entries.push(entry);
            let (mut after, history) = fold(&header(), &entries);
            let rejection = history
                .last()
                .and_then(|line| line.rejected.clone())
                .unwrap_or_else(|| panic!("“{}” should have been rejected", event.action.label()));
            // The CLI must refuse what every replica's fold would refuse, for the same reason.
            assert_eq!(check(&before, &header(), &event), Err(rejection.clone()));
            assert_eq!(after.rejected_events, before.rejected_events + 1);
            after.rejected_events = before.rejected_events;
            assert_eq!(after, before, "a rejected event must not change the status");
            rejection.rule
        }
    }

    #[test]
    fn an_opinion_answered_on_the_spot_is_handled_at_once() {
        let status = Story::received()
            .at_home(
                "2026-04-01",
                A::AnswerOnSpot {
                    reply: "已向群众解释医保报销政策".into(),
                },
            )
            .status();
        assert_eq!(status.state, S::Handled);
        assert!(status.answered_on_spot);
        assert_eq!(status.received_on, Some(day("2026-04-01")));
        assert_eq!(status.handled_on, Some(day("2026-04-01")));
        assert_eq!(status.result.as_deref(), Some("已向群众解释医保报销政策"));
        assert_eq!(status.passed_on_to, None);
        assert_eq!(status.rejected_events, 0);
    }

    #[test]
    fn an_opinion_passed_on_is_started_handled_and_rated() {
        let passed = Story::passed_on();
        let status = passed.status();
        assert_eq!(status.state, S::PassedOn);
        assert_eq!(status.passed_on_to.as_deref(), Some("镇城建办"));
        assert_eq!(status.passed_on_on, Some(day("2026-04-02")));

        let started = passed.at_home(
            "2026-04-05",
            A::Start {
                note: "已派人查看".into(),
            },
        );
        assert_eq!(started.status().state, S::InProgress);

        let handled = started.at_home("2026-04-20", handle());
        let status = handled.status();
        assert_eq!(status.state, S::Handled);
        assert_eq!(status.handled_on, Some(day("2026-04-20")));
        assert_eq!(status.result.as_deref(), Some("已修复路灯"));
        assert!(!status.answered_on_spot);

        let status = handled
            .at_home("2026-04-25", rate(Satisfaction::Satisfied))
            .status();
        assert_eq!(status.state, S::Handled);
        assert_eq!(status.rating, Some(Satisfaction::Satisfied));
        assert_eq!(status.last_step_on, Some(day("2026-04-25")));
        assert_eq!(status.rejected_events, 0);
    }

    #[test]
    fn an_opinion_passed_on_may_be_handled_without_a_recorded_start() {
        let status = Story::passed_on().at_home("2026-04-10", handle()).status();
        assert_eq!(status.state, S::Handled);
        assert_eq!(status.handled_on, Some(day("2026-04-10")));
    }

    #[test]
    fn the_county_above_may_record_the_handling() {
        // The county often follows up an opinion its township passed on to a county bureau.
        let status = Story::passed_on()
            .then("2026-04-10", county(), handle())
            .status();
        assert_eq!(status.state, S::Handled);
        assert_eq!(status.rejected_events, 0);
    }

    #[test]
    fn a_sibling_township_may_not_record_anything() {
        let passed = Story::passed_on();
        assert_eq!(
            passed.rule("2026-04-10", sibling_township(), handle()),
            "authority.home_or_above"
        );
        assert_eq!(
            Story::received().rule("2026-04-02", sibling_township(), pass_on("镇城建办")),
            "authority.home_or_above"
        );
    }

    #[test]
    fn an_opinion_is_received_only_at_home() {
        // The county is above the township, so it passes the authority check for later steps,
        // but only the node that met the constituent may register the opinion.
        assert_eq!(
            Story::default().rule("2026-04-01", county(), A::Receive),
            "authority.home"
        );
        assert_eq!(
            Story::default().rule("2026-04-01", sibling_township(), A::Receive),
            "authority.home_or_above"
        );
    }

    #[test]
    fn starting_before_passing_on_is_refused() {
        assert_eq!(
            Story::received().rule(
                "2026-04-02",
                township(),
                A::Start {
                    note: String::new()
                }
            ),
            "transition.state"
        );
    }

    #[test]
    fn handling_straight_from_received_is_refused() {
        // Without a 转交 there is no body that handled it; answering on the spot is the path for that.
        assert_eq!(
            Story::received().rule("2026-04-02", township(), handle()),
            "transition.state"
        );
    }

    #[test]
    fn rating_before_handling_is_refused() {
        assert_eq!(
            Story::passed_on().rule("2026-04-03", township(), rate(Satisfaction::Satisfied)),
            "transition.state"
        );
    }

    #[test]
    fn rating_twice_is_refused() {
        let rated = Story::passed_on()
            .at_home("2026-04-10", handle())
            .at_home("2026-04-12", rate(Satisfaction::BasicallySatisfied));
        assert_eq!(
            rated.rule("2026-04-13", township(), rate(Satisfaction::Satisfied)),
            "rate.already_rated"
        );
        assert_eq!(
            rated.status().rating,
            Some(Satisfaction::BasicallySatisfied)
        );
    }

    #[test]
    fn passing_on_to_no_named_body_is_refused() {
        assert_eq!(
            Story::received().rule("2026-04-02", township(), pass_on("  ")),
            "pass_on.body_required"
        );
    }

    #[test]
    fn a_step_dated_before_the_previous_one_is_refused() {
        assert_eq!(
            Story::passed_on().rule("2026-04-01", township(), handle()),
            "date.before_previous_step"
        );
    }

    #[test]
    fn an_event_recorded_on_the_last_day_of_the_calendar_is_folded_without_panicking() {
        let mut entries = Story::default().entries;
        entries.push(EventEntry::Event(Event {
            id: RecordId::new(),
            lamport: 1,
            recorded_at: noon(NaiveDate::MAX),
            date: NaiveDate::MAX - Days::new(1),
            author: Author {
                node: township(),
                user: "经办人".into(),
            },
            action: A::Receive,
        }));
        // A panic here would take down every node that receives the record from a peer.
        let (status, _) = fold(&header(), &entries);
        assert_eq!(status.state, S::Received);
    }
}
