//! Delegates' suggestions (代表建议、批评和意见) and their handling.
//!
//! The life of a suggestion, as events:
//!
//! ```text
//! submit ─▶ screen ─┬─▶ 不予立案 (with reason)
//!                   └─▶ 已立案 ─▶ assign (主办+协办, or 分办) ─▶ 办理中 ◀─┐
//!                                   ▲        │  extend (≤ 6 months)    │
//!                                   └─ send back                      │
//!            answer (A/B/C/D, every answering unit) ─▶ 已答复 ─▶ evaluate
//!                  不满意 ─▶ 重新办理 (due 1 month) ─▶ answer ─▶ 已答复 ─┘
//!                  满意/基本满意 with A or D ─▶ 待销号 ─▶ close (销号)
//!                  满意/基本满意 with B or C ─▶ 跟踪落实 (回头看) ─▶ answer again
//! ```
//!
//! [`fold`] derives the status from the events alone; it is deterministic and checks every step,
//! including who may take it: the addressed congress screens, assigns, extends, records answers,
//! tracks, supervises and closes; the lead delegate's home node submits and evaluates.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use super::event::{EventEntry, HistoryLine, Rejection, check_dates, fold_entries};
use super::{Event, Header, RecordId};
use crate::region::RegionCode;
use crate::validate::{ValidationError, bounded_text, distinct, required_text};

/// Answers are due this many months after 交办.
pub const ANSWER_MONTHS: u32 = 3;
/// An approved extension never reaches past this many months after 交办.
pub const MAX_EXTENSION_MONTHS: u32 = 6;
/// A new answer is due this many months after a 不满意 evaluation.
pub const REHANDLE_MONTHS: u32 = 1;

labelled_enum!(
    /// 答复类别.
    AnswerClass {
        A => ("A", "A类 已解决或基本解决"),
        B => ("B", "B类 正在解决或列入规划"),
        C => ("C", "C类 因条件限制待以后解决"),
        D => ("D", "D类 留作参考"),
    }
);

labelled_enum!(
    /// How the delegate (or, for opinions, the citizen) rates an answer.
    Satisfaction {
        Satisfied => ("satisfied", "满意"),
        BasicallySatisfied => ("basically_satisfied", "基本满意"),
        Dissatisfied => ("dissatisfied", "不满意"),
    }
);

labelled_enum!(
    /// A handling unit's part: 主办 answers and 协办 contributes to it, or each 分办 unit
    /// answers for its own part.
    UnitRole {
        Lead => ("lead", "主办"),
        Assist => ("assist", "协办"),
        Separate => ("separate", "分办"),
    }
);

labelled_enum!(SuggestionState {
    Draft => ("draft", "未提交"),
    Submitted => ("submitted", "待审查"),
    NotAccepted => ("not_accepted", "不予立案"),
    Accepted => ("accepted", "已立案待交办"),
    Assigned => ("assigned", "办理中"),
    SentBack => ("sent_back", "退回待重新交办"),
    Answered => ("answered", "已答复待评价"),
    Rehandling => ("rehandling", "重新办理"),
    Tracking => ("tracking", "跟踪落实"),
    Satisfied => ("satisfied", "待销号"),
    Closed => ("closed", "已办结"),
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoSigner {
    pub id: RecordId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestionFields {
    pub title: String,
    pub body: String,
    /// 类别, as the congress classifies it (城乡建设, 教育, 医疗卫生 …).
    pub category: String,
    /// The lead delegate (领衔代表).
    pub lead: RecordId,
    /// Copied from the delegate so nodes without the delegate record can still show it.
    pub lead_name: String,
    /// Co-signing delegates (联名代表), fixed at submission.
    #[serde(default)]
    pub cosigners: Vec<CoSigner>,
    /// The congress the suggestion is addressed to; it owns the handling.
    pub addressed_to: RegionCode,
    /// The session it was made at (e.g. 十七届三次会议); `None` for 闭会期间.
    #[serde(default)]
    pub session: Option<String>,
    /// The delegate group it was made in the name of (以代表小组名义), which counts it
    /// toward the group's duty rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<RecordId>,
    /// The motion (议案) its congress's 主席团 converted into this suggestion (转作建议).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<RecordId>,
}

impl SuggestionFields {
    pub fn validate(&self) -> Result<(), ValidationError> {
        required_text("title", &self.title)?;
        if self.title.chars().count() > 200 {
            return Err(ValidationError::new("title", "标题不能超过 200 个字符"));
        }
        required_text("body", &self.body)?;
        required_text("category", &self.category)?;
        if let Some(session) = &self.session {
            required_text("session", session)?;
        }
        if !self.addressed_to.has_congress() {
            return Err(ValidationError::new(
                "to",
                format!("{} 没有人民代表大会，建议不能提交给它", self.addressed_to),
            ));
        }
        if self.cosigners.iter().any(|c| c.id == self.lead) {
            return Err(ValidationError::new(
                "cosigner",
                "领衔代表不能同时是联名代表",
            ));
        }
        let ids: Vec<RecordId> = self.cosigners.iter().map(|c| c.id).collect();
        distinct("cosigner", &ids)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitAssignment {
    pub unit: String,
    pub role: UnitRole,
}

/// The steps of a suggestion's handling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SuggestionAction {
    Submit,
    /// 审查: accept (立案, with its number) or not (with the reason).
    Screen {
        accepted: bool,
        #[serde(default)]
        number: Option<u32>,
        #[serde(default)]
        reason: Option<String>,
    },
    /// 交办 to handling units; also used to reassign after a unit sent it back.
    Assign {
        units: Vec<UnitAssignment>,
    },
    /// A unit returns the suggestion as not its business (退回).
    SendBack {
        unit: String,
        reason: String,
    },
    /// An approved extension of the answer deadline.
    Extend {
        until: NaiveDate,
        reason: String,
    },
    /// 答复 by a handling unit.
    Answer {
        unit: String,
        class: AnswerClass,
        text: String,
    },
    /// 评价 by the lead delegate.
    Evaluate {
        result: Satisfaction,
        #[serde(default)]
        comment: String,
    },
    /// 回头看: a follow-up on a B or C answer. With `solved`, the follow-up found the matter
    /// solved and the delegate satisfied, and the suggestion waits to be closed (待销号), so
    /// that a B or C answer can be closed without a new answer.
    Track {
        note: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        solved: bool,
    },
    /// 销号.
    Close,
    /// Sets or clears 重点督办.
    Supervise {
        key: bool,
    },
}

impl SuggestionAction {
    pub fn label(&self) -> &'static str {
        match self {
            SuggestionAction::Submit => "提交",
            SuggestionAction::Screen { accepted: true, .. } => "审查立案",
            SuggestionAction::Screen {
                accepted: false, ..
            } => "不予立案",
            SuggestionAction::Assign { .. } => "交办",
            SuggestionAction::SendBack { .. } => "退回",
            SuggestionAction::Extend { .. } => "延期",
            SuggestionAction::Answer { .. } => "答复",
            SuggestionAction::Evaluate { .. } => "评价",
            SuggestionAction::Track { .. } => "回头看",
            SuggestionAction::Close => "销号",
            SuggestionAction::Supervise { key: true } => "列为重点督办",
            SuggestionAction::Supervise { key: false } => "取消重点督办",
        }
    }
}

/// One unit's answer in the current round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitAnswer {
    pub class: AnswerClass,
    pub text: String,
    pub date: NaiveDate,
}

/// Everything the fold derives. Deterministic: the same events give the same status everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuggestionStatus {
    pub state: SuggestionState,
    pub number: Option<u32>,
    pub submitted_on: Option<NaiveDate>,
    pub not_accepted_reason: Option<String>,
    pub units: Vec<UnitAssignment>,
    /// The latest 交办; a reassignment after a send-back restarts the clock.
    pub assigned_on: Option<NaiveDate>,
    /// When the awaited answer is due; `None` while no answer is awaited.
    pub due: Option<NaiveDate>,
    pub extended: bool,
    /// 1 for the first handling, one more for each re-handling after 不满意 or 回头看.
    pub round: u32,
    /// The current round's answers by unit.
    pub answers: BTreeMap<String, UnitAnswer>,
    /// The class of the current answer: the least resolved class among the answering units.
    pub class: Option<AnswerClass>,
    pub first_answered_on: Option<NaiveDate>,
    /// Whether the first complete answer came by its deadline; `None` until then.
    pub answered_on_time: Option<bool>,
    pub evaluation: Option<Satisfaction>,
    pub key_supervision: bool,
    pub follow_ups: u32,
    pub closed_on: Option<NaiveDate>,
    /// The date of the last applied step; a step may not be dated before it.
    pub last_step_on: Option<NaiveDate>,
    pub rejected_events: usize,
    /// Entries of the event list this version could not read.
    pub unreadable_events: usize,
}

impl SuggestionStatus {
    fn new() -> SuggestionStatus {
        SuggestionStatus {
            state: SuggestionState::Draft,
            number: None,
            submitted_on: None,
            not_accepted_reason: None,
            units: Vec::new(),
            assigned_on: None,
            due: None,
            extended: false,
            round: 0,
            answers: BTreeMap::new(),
            class: None,
            first_answered_on: None,
            answered_on_time: None,
            evaluation: None,
            key_supervision: false,
            follow_ups: 0,
            closed_on: None,
            last_step_on: None,
            rejected_events: 0,
            unreadable_events: 0,
        }
    }

    /// Whether an answer is awaited and its deadline has passed on `today`.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        matches!(
            self.state,
            SuggestionState::Assigned | SuggestionState::Rehandling
        ) && self.due.is_some_and(|due| today > due)
    }

    /// Units whose answer the current round waits for (主办 or 分办).
    fn answering_units(&self) -> impl Iterator<Item = &UnitAssignment> {
        self.units.iter().filter(|u| u.role != UnitRole::Assist)
    }
}

/// A suggestion record: its fields and its event list.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    pub fields: SuggestionFields,
    pub events: Vec<EventEntry<SuggestionAction>>,
}

impl Suggestion {
    pub fn fold(&self, header: &Header) -> (SuggestionStatus, Vec<HistoryLine<SuggestionAction>>) {
        fold(header, &self.fields, &self.events)
    }
}

fn add_months(field: &str, date: NaiveDate, months: u32) -> Result<NaiveDate, Rejection> {
    date.checked_add_months(Months::new(months))
        .ok_or_else(|| Rejection::new(field, "日期超出可计算的范围"))
}

/// Derives the status from the events, checking each in fold order. Rejected events leave the
/// status untouched and are returned with their reason.
pub fn fold(
    header: &Header,
    fields: &SuggestionFields,
    entries: &[EventEntry<SuggestionAction>],
) -> (SuggestionStatus, Vec<HistoryLine<SuggestionAction>>) {
    let mut status = SuggestionStatus::new();
    let (history, refused, unreadable) = fold_entries(&mut status, entries, |status, e| {
        step(status, header, fields, e)
    });
    status.rejected_events = refused;
    status.unreadable_events = unreadable;
    (status, history)
}

/// Checks whether `event` may follow the events already folded into `status`, without changing
/// anything. The CLI uses it to refuse an illegal step before writing.
pub fn check(
    status: &SuggestionStatus,
    header: &Header,
    fields: &SuggestionFields,
    event: &Event<SuggestionAction>,
) -> Result<(), Rejection> {
    let mut scratch = status.clone();
    step(&mut scratch, header, fields, event)
}

fn require_owner(
    fields: &SuggestionFields,
    event: &Event<SuggestionAction>,
) -> Result<(), Rejection> {
    if event.author.node != fields.addressed_to {
        return Err(Rejection::new(
            "authority.addressed_congress",
            format!(
                "只有建议所提交的人大（{}）可以{}，本次操作来自 {}",
                fields.addressed_to,
                event.action.label(),
                event.author.node
            ),
        ));
    }
    Ok(())
}

fn require_home(header: &Header, event: &Event<SuggestionAction>) -> Result<(), Rejection> {
    if event.author.node != header.home {
        return Err(Rejection::new(
            "authority.lead_delegate_home",
            format!(
                "只有领衔代表所在的 {} 可以{}，本次操作来自 {}",
                header.home,
                event.action.label(),
                event.author.node
            ),
        ));
    }
    Ok(())
}

fn wrong_state(status: &SuggestionStatus, event: &Event<SuggestionAction>) -> Rejection {
    Rejection::new(
        "transition.state",
        format!(
            "建议处于“{}”状态，不能{}",
            status.state.label(),
            event.action.label()
        ),
    )
}

fn require_text(rule: &str, what: &str, text: &str) -> Result<(), Rejection> {
    if text.trim().is_empty() {
        return Err(Rejection::new(rule, format!("{what}不能为空")));
    }
    bounded_text(what, text).map_err(|e| Rejection::new(rule, e.rule))
}

/// Who may write `event`, whatever state the suggestion is in: the addressed congress screens,
/// assigns, takes a unit's send-back, extends, records answers, tracks, supervises and closes;
/// the lead delegate's home node submits and evaluates. Unlike the state rules, this never
/// depends on what else happened concurrently, so a receiving node can refuse an event that
/// breaks it without two replicas ever disagreeing about an honest event.
pub fn authority(
    header: &Header,
    fields: &SuggestionFields,
    event: &Event<SuggestionAction>,
) -> Result<(), Rejection> {
    use SuggestionAction as A;
    match &event.action {
        A::Submit | A::Evaluate { .. } => require_home(header, event),
        A::Screen { .. }
        | A::Assign { .. }
        | A::SendBack { .. }
        | A::Extend { .. }
        | A::Answer { .. }
        | A::Track { .. }
        | A::Close
        | A::Supervise { .. } => require_owner(fields, event),
    }
}

fn step(
    status: &mut SuggestionStatus,
    header: &Header,
    fields: &SuggestionFields,
    event: &Event<SuggestionAction>,
) -> Result<(), Rejection> {
    use SuggestionAction as A;
    use SuggestionState as S;

    check_dates(status.last_step_on, event)?;
    authority(header, fields, event)?;

    match &event.action {
        A::Submit => {
            if status.state != S::Draft {
                return Err(wrong_state(status, event));
            }
            status.state = S::Submitted;
            status.submitted_on = Some(event.date);
        }
        A::Screen {
            accepted,
            number,
            reason,
        } => {
            if status.state != S::Submitted {
                return Err(wrong_state(status, event));
            }
            if *accepted {
                if number == &Some(0) {
                    return Err(Rejection::new("screen.number", "建议编号必须大于 0"));
                }
                status.state = S::Accepted;
                status.number = *number;
            } else {
                let reason = reason.as_deref().unwrap_or("");
                require_text("screen.reason_required", "不予立案的理由", reason)?;
                status.state = S::NotAccepted;
                status.not_accepted_reason = Some(reason.to_string());
            }
        }
        A::Assign { units } => {
            if !matches!(status.state, S::Accepted | S::SentBack) {
                return Err(wrong_state(status, event));
            }
            check_units(units)?;
            // Computed before anything changes: a rejected step must leave the status as it was.
            let due = add_months("assign.due", event.date, ANSWER_MONTHS)?;
            status.state = S::Assigned;
            status.units = units.clone();
            status.assigned_on = Some(event.date);
            status.due = Some(due);
            status.extended = false;
            status.round = 1;
            status.answers.clear();
            status.class = None;
        }
        A::SendBack { unit, reason } => {
            if status.state != S::Assigned {
                return Err(wrong_state(status, event));
            }
            require_text("send_back.reason_required", "退回理由", reason)?;
            if !status.units.iter().any(|u| &u.unit == unit) {
                return Err(Rejection::new(
                    "send_back.unit",
                    format!("“{unit}”不是本建议的承办单位"),
                ));
            }
            if status.answers.contains_key(unit) {
                return Err(Rejection::new(
                    "send_back.already_answered",
                    format!("“{unit}”已经答复，不能退回"),
                ));
            }
            status.state = S::SentBack;
            status.due = None;
            status.answers.clear();
        }
        A::Extend { until, reason } => {
            if status.state != S::Assigned {
                return Err(wrong_state(status, event));
            }
            require_text("extend.reason_required", "延期理由", reason)?;
            let (Some(assigned_on), Some(due)) = (status.assigned_on, status.due) else {
                return Err(wrong_state(status, event));
            };
            let limit = add_months("extend.limit", assigned_on, MAX_EXTENSION_MONTHS)?;
            if *until <= due {
                return Err(Rejection::new(
                    "extend.not_later",
                    format!("延期后的期限 {until} 必须晚于现有期限 {due}"),
                ));
            }
            if *until > limit {
                return Err(Rejection::new(
                    "extend.past_six_months",
                    format!(
                        "延期后的期限 {until} 超过交办之日（{assigned_on}）起 {MAX_EXTENSION_MONTHS} 个月（{limit}）"
                    ),
                ));
            }
            status.due = Some(*until);
            status.extended = true;
        }
        A::Answer { unit, class, text } => {
            if !matches!(status.state, S::Assigned | S::Rehandling | S::Tracking) {
                return Err(wrong_state(status, event));
            }
            require_text("answer.text_required", "答复内容", text)?;
            match status.units.iter().find(|u| &u.unit == unit) {
                None => {
                    return Err(Rejection::new(
                        "answer.unit",
                        format!("“{unit}”不是本建议的承办单位"),
                    ));
                }
                Some(u) if u.role == UnitRole::Assist => {
                    return Err(Rejection::new(
                        "answer.assisting_unit",
                        format!("“{unit}”是协办单位，其意见由主办单位汇总答复"),
                    ));
                }
                Some(_) => {}
            }
            if status.state == S::Tracking {
                // A new answer on a tracked B/C suggestion opens a new round: every answering
                // unit answers again, with no deadline, and the delegate evaluates again.
                status.state = S::Rehandling;
                status.round += 1;
                status.answers.clear();
                status.due = None;
            } else if status.answers.contains_key(unit) {
                return Err(Rejection::new(
                    "answer.already_answered",
                    format!("“{unit}”本轮已经答复"),
                ));
            }
            status.answers.insert(
                unit.clone(),
                UnitAnswer {
                    class: *class,
                    text: text.clone(),
                    date: event.date,
                },
            );
            let complete = status
                .answering_units()
                .all(|u| status.answers.contains_key(&u.unit));
            if complete {
                status.class = status.answers.values().map(|a| a.class).max();
                if status.first_answered_on.is_none() {
                    status.first_answered_on = Some(event.date);
                    status.answered_on_time = status.due.map(|due| event.date <= due);
                }
                status.state = S::Answered;
                status.due = None;
            }
        }
        A::Evaluate { result, comment } => {
            if status.state != S::Answered {
                return Err(wrong_state(status, event));
            }
            bounded_text("comment", comment)
                .map_err(|e| Rejection::new("evaluate.comment", e.rule))?;
            // Computed before anything changes: a rejected step must leave the status as it was.
            let rehandle_due = match result {
                Satisfaction::Dissatisfied => {
                    Some(add_months("evaluate.due", event.date, REHANDLE_MONTHS)?)
                }
                _ => None,
            };
            status.evaluation = Some(*result);
            match (result, status.class) {
                (Satisfaction::Dissatisfied, _) => {
                    status.state = S::Rehandling;
                    status.round += 1;
                    status.answers.clear();
                    status.due = rehandle_due;
                }
                (_, Some(AnswerClass::A | AnswerClass::D)) => status.state = S::Satisfied,
                _ => status.state = S::Tracking,
            }
        }
        A::Track { note, solved } => {
            if status.state != S::Tracking {
                return Err(wrong_state(status, event));
            }
            require_text("track.note_required", "回头看情况", note)?;
            status.follow_ups += 1;
            if *solved {
                status.state = S::Satisfied;
            }
        }
        A::Close => {
            if status.state != S::Satisfied {
                return Err(wrong_state(status, event));
            }
            status.state = S::Closed;
            status.closed_on = Some(event.date);
        }
        A::Supervise { key } => {
            if matches!(status.state, S::Draft | S::NotAccepted | S::Closed) {
                return Err(wrong_state(status, event));
            }
            if status.key_supervision == *key {
                return Err(Rejection::new(
                    "supervise.unchanged",
                    if *key {
                        "建议已经是重点督办"
                    } else {
                        "建议不是重点督办"
                    },
                ));
            }
            status.key_supervision = *key;
        }
    }
    status.last_step_on = Some(event.date);
    Ok(())
}

labelled_enum!(
    /// The kinds of step staff take on a suggestion after it was submitted, as the workbench
    /// offers them (重新办理 is not one: it follows a 不满意 evaluation).
    SuggestionStep {
        Screen => ("screen", "审查"),
        Assign => ("assign", "交办"),
        SendBack => ("send_back", "退回"),
        Extend => ("extend", "延期"),
        Answer => ("answer", "答复"),
        Evaluate => ("evaluate", "评价"),
        Track => ("track", "回头看"),
        Close => ("close", "销号"),
        Supervise => ("supervise", "重点督办"),
    }
);

/// The steps node `here` may take on the suggestion on `today`: each kind is offered when a
/// sample of it passes [`check`] (state, authority, dates), so the workbench offers exactly what
/// the fold would accept. A sample takes the least a step can be: one unit, an extension of one
/// day past the deadline (so none is offered once the six months are used up), an answer from a
/// unit still to answer.
pub fn offered_steps(
    header: &Header,
    fields: &SuggestionFields,
    status: &SuggestionStatus,
    here: RegionCode,
    today: NaiveDate,
) -> Vec<SuggestionStep> {
    use SuggestionAction as A;
    let date = status.last_step_on.map_or(today, |last| last.max(today));
    let sample = "—".to_string();
    let waiting = status
        .answering_units()
        .find(|u| {
            status.state == SuggestionState::Tracking || !status.answers.contains_key(&u.unit)
        })
        .map(|u| u.unit.clone());
    SuggestionStep::ALL
        .iter()
        .copied()
        .filter(|step| {
            let action = match step {
                SuggestionStep::Screen => A::Screen {
                    accepted: true,
                    number: None,
                    reason: None,
                },
                SuggestionStep::Assign => A::Assign {
                    units: vec![UnitAssignment {
                        unit: sample.clone(),
                        role: UnitRole::Lead,
                    }],
                },
                SuggestionStep::SendBack => match &waiting {
                    Some(unit) => A::SendBack {
                        unit: unit.clone(),
                        reason: sample.clone(),
                    },
                    None => return false,
                },
                SuggestionStep::Extend => match status.due.and_then(|d| d.succ_opt()) {
                    Some(until) => A::Extend {
                        until,
                        reason: sample.clone(),
                    },
                    None => return false,
                },
                SuggestionStep::Answer => match &waiting {
                    Some(unit) => A::Answer {
                        unit: unit.clone(),
                        class: AnswerClass::A,
                        text: sample.clone(),
                    },
                    None => return false,
                },
                SuggestionStep::Evaluate => A::Evaluate {
                    result: Satisfaction::Satisfied,
                    comment: String::new(),
                },
                SuggestionStep::Track => A::Track {
                    note: sample.clone(),
                    solved: false,
                },
                SuggestionStep::Close => A::Close,
                SuggestionStep::Supervise => A::Supervise {
                    key: !status.key_supervision,
                },
            };
            check(
                status,
                header,
                fields,
                &super::event::probe(here, date, action),
            )
            .is_ok()
        })
        .collect()
}

/// 主办 with any number of 协办, or two or more 分办; names distinct and non-empty.
fn check_units(units: &[UnitAssignment]) -> Result<(), Rejection> {
    if units.is_empty() {
        return Err(Rejection::new("assign.units", "至少要交办给一个单位"));
    }
    for u in units {
        require_text("assign.unit_name", "承办单位名称", &u.unit)?;
    }
    let names: Vec<&str> = units.iter().map(|u| u.unit.as_str()).collect();
    distinct("unit", &names).map_err(|e| Rejection::new("assign.duplicate_unit", e.rule))?;
    let leads = units.iter().filter(|u| u.role == UnitRole::Lead).count();
    let separate = units
        .iter()
        .filter(|u| u.role == UnitRole::Separate)
        .count();
    match (leads, separate) {
        (1, 0) => Ok(()),
        (0, n) if n >= 2 && n == units.len() => Ok(()),
        _ => Err(Rejection::new(
            "assign.roles",
            "交办方式必须是“一个主办单位加若干协办单位”或“两个以上分办单位”",
        )),
    }
}

impl super::event::Workflow for Suggestion {
    type Action = SuggestionAction;
    type Status = SuggestionStatus;

    fn entries(&self) -> &[EventEntry<SuggestionAction>] {
        &self.events
    }

    fn status(&self, header: &Header) -> SuggestionStatus {
        self.fold(header).0
    }

    fn check(
        &self,
        status: &SuggestionStatus,
        header: &Header,
        event: &Event<SuggestionAction>,
    ) -> Result<(), Rejection> {
        check(status, header, &self.fields, event)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Days, Utc};

    use super::*;
    use crate::record::event::next_lamport;
    use crate::record::{Author, RecordKind};

    type Entry = EventEntry<SuggestionAction>;
    use SuggestionAction as A;
    use SuggestionState as S;

    /// 王店镇: the lead delegate's township, home of every suggestion in these tests.
    fn township() -> RegionCode {
        RegionCode::parse("region", "330411101000").unwrap()
    }

    /// 秀洲区: the county above the township, the addressee in the authority tests.
    fn county() -> RegionCode {
        RegionCode::parse("region", "330411000000").unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn noon(date: NaiveDate) -> DateTime<Utc> {
        date.and_hms_opt(12, 0, 0).unwrap().and_utc()
    }

    fn id(n: u128) -> RecordId {
        RecordId(ulid::Ulid(n))
    }

    fn header() -> Header {
        Header {
            id: id(0x0197_0000_0000_0000_0000_0000_0000_0001),
            kind: RecordKind::Suggestion,
            home: township(),
            created_at: noon(day("2026-03-02")),
            created_by: Author {
                node: township(),
                user: "镇人大办".into(),
            },
        }
    }

    fn fields_to(addressed_to: RegionCode) -> SuggestionFields {
        SuggestionFields {
            title: "关于改善王店镇中心小学周边交通安全的建议".into(),
            body: "上下学高峰时段车辆拥堵，建议增设信号灯和临时停车区。".into(),
            category: "城乡建设".into(),
            lead: id(0x0197_0000_0000_0000_0000_0000_0000_0002),
            lead_name: "张伟".into(),
            cosigners: vec![CoSigner {
                id: id(0x0197_0000_0000_0000_0000_0000_0000_0003),
                name: "李娜".into(),
            }],
            addressed_to,
            session: Some("十七届三次会议".into()),
            group: None,
            motion: None,
        }
    }

    /// An event recorded at noon on the day it takes effect, as a clerk entering a step on the
    /// day would; the `date.in_future` rule never fires for it.
    fn ev(lamport: u64, date: NaiveDate, node: RegionCode, action: SuggestionAction) -> Entry {
        ev_recorded(lamport, date, noon(date), node, action)
    }

    fn ev_recorded(
        lamport: u64,
        date: NaiveDate,
        recorded_at: DateTime<Utc>,
        node: RegionCode,
        action: SuggestionAction,
    ) -> Entry {
        EventEntry::Event(Event {
            id: RecordId::new(),
            lamport,
            recorded_at,
            date,
            author: Author {
                node,
                user: "经办人".into(),
            },
            action,
        })
    }

    fn with_id(entry: Entry, event_id: RecordId) -> Entry {
        match entry {
            EventEntry::Event(mut event) => {
                event.id = event_id;
                EventEntry::Event(event)
            }
            other => other,
        }
    }

    fn accept(number: u32) -> SuggestionAction {
        A::Screen {
            accepted: true,
            number: Some(number),
            reason: None,
        }
    }

    fn not_accept(reason: Option<&str>) -> SuggestionAction {
        A::Screen {
            accepted: false,
            number: None,
            reason: reason.map(str::to_string),
        }
    }

    fn unit(name: &str, role: UnitRole) -> UnitAssignment {
        UnitAssignment {
            unit: name.into(),
            role,
        }
    }

    fn assign(units: &[(&str, UnitRole)]) -> SuggestionAction {
        A::Assign {
            units: units.iter().map(|(n, r)| unit(n, *r)).collect(),
        }
    }

    /// 住建局 leads and 交通运输局 assists: the usual way a suggestion is handed out.
    fn lead_and_assist() -> SuggestionAction {
        assign(&[("住建局", UnitRole::Lead), ("交通运输局", UnitRole::Assist)])
    }

    /// 住建局 and 教育局 each answer for their own part (分办).
    fn two_separate() -> SuggestionAction {
        assign(&[
            ("住建局", UnitRole::Separate),
            ("教育局", UnitRole::Separate),
        ])
    }

    fn answer(unit: &str, class: AnswerClass) -> SuggestionAction {
        A::Answer {
            unit: unit.into(),
            class,
            text: format!("{unit}关于本建议的答复"),
        }
    }

    fn evaluate(result: Satisfaction) -> SuggestionAction {
        A::Evaluate {
            result,
            comment: String::new(),
        }
    }

    fn extend(until: &str) -> SuggestionAction {
        A::Extend {
            until: day(until),
            reason: "需要等待年度预算安排".into(),
        }
    }

    /// A suggestion's event list built one step at a time, each step one lamport after the
    /// last, the way the CLI appends them.
    #[derive(Clone)]
    struct Story {
        fields: SuggestionFields,
        entries: Vec<Entry>,
    }

    impl Story {
        fn to(addressed_to: RegionCode) -> Story {
            Story {
                fields: fields_to(addressed_to),
                entries: Vec::new(),
            }
        }

        /// The congress that owns the handling.
        fn owner(&self) -> RegionCode {
            self.fields.addressed_to
        }

        fn next(&self, date: &str, node: RegionCode, action: SuggestionAction) -> Entry {
            ev(next_lamport(&self.entries), day(date), node, action)
        }

        fn then(mut self, date: &str, node: RegionCode, action: SuggestionAction) -> Story {
            let entry = self.next(date, node, action);
            self.entries.push(entry);
            self
        }

        /// A step taken by the owning congress.
        fn by_owner(self, date: &str, action: SuggestionAction) -> Story {
            let owner = self.owner();
            self.then(date, owner, action)
        }

        /// A step taken at the lead delegate's home.
        fn at_home(self, date: &str, action: SuggestionAction) -> Story {
            self.then(date, township(), action)
        }

        fn submitted(self) -> Story {
            self.at_home("2026-03-02", A::Submit)
        }

        fn accepted(self) -> Story {
            self.submitted().by_owner("2026-03-10", accept(12))
        }

        /// Assigned on 2026-03-16, so the answer is due on 2026-06-16.
        fn assigned(self) -> Story {
            self.accepted().by_owner("2026-03-16", lead_and_assist())
        }

        fn answered(self, class: AnswerClass) -> Story {
            self.assigned()
                .by_owner("2026-05-20", answer("住建局", class))
        }

        fn status(&self) -> SuggestionStatus {
            fold(&header(), &self.fields, &self.entries).0
        }

        fn rejections(&self) -> Vec<Rejection> {
            fold(&header(), &self.fields, &self.entries)
                .1
                .into_iter()
                .filter_map(|line| line.rejected)
                .collect()
        }

        /// Folds the story with `entry` appended and asserts the fold refused it, left the
        /// status exactly as the fold without it, and that the CLI's pre-check refuses it for
        /// the same reason. Returns the rejection.
        fn rejects(&self, entry: Entry) -> Rejection {
            let before = self.status();
            let EventEntry::Event(event) = entry.clone() else {
                panic!("only decodable events can be rejected");
            };
            let mut entries = self.entries.clone();
            entries.push(entry);
            let (mut after, history) = fold(&header(), &self.fields, &entries);
            let rejection = history
                .iter()
                .find(|line| line.event.id == event.id)
                .expect("the event appears in the history")
                .rejected
                .clone()
                .unwrap_or_else(|| panic!("“{}” should have been rejected", event.action.label()));
            // The CLI checks a step before writing it; it must refuse what every replica's fold
            // would refuse, or a clerk could write an event that silently does nothing.
            assert_eq!(
                check(&before, &header(), &self.fields, &event),
                Err(rejection.clone())
            );
            assert_eq!(after.rejected_events, before.rejected_events + 1);
            after.rejected_events = before.rejected_events;
            assert_eq!(after, before, "a rejected event must not change the status");
            rejection
        }

        /// Shorthand: the rule that refuses a step dated `date` by `node`.
        fn rule(&self, date: &str, node: RegionCode, action: SuggestionAction) -> String {
            self.rejects(self.next(date, node, action)).rule
        }

        fn owner_rule(&self, date: &str, action: SuggestionAction) -> String {
            self.rule(date, self.owner(), action)
        }
    }

    /// The township addresses its own congress, so it both owns the handling and is home.
    fn local() -> Story {
        Story::to(township())
    }

    // ---- Legal paths -------------------------------------------------------------------------

    #[test]
    fn a_suggestion_not_accepted_keeps_its_reason() {
        let story = local().submitted().by_owner(
            "2026-03-10",
            not_accept(Some("属于信访事项，不作为代表建议")),
        );
        let status = story.status();
        assert_eq!(status.state, S::NotAccepted);
        assert_eq!(
            status.not_accepted_reason.as_deref(),
            Some("属于信访事项，不作为代表建议")
        );
        assert_eq!(status.number, None);
        assert_eq!(status.submitted_on, Some(day("2026-03-02")));
        assert!(story.rejections().is_empty());
    }

    #[test]
    fn a_suggestion_runs_from_submission_to_closing_and_is_answered_on_time() {
        let story = local().submitted().by_owner("2026-03-10", accept(7));
        assert_eq!(story.status().state, S::Accepted);
        assert_eq!(story.status().number, Some(7));

        let story = story.by_owner("2026-03-16", lead_and_assist());
        let status = story.status();
        assert_eq!(status.state, S::Assigned);
        assert_eq!(status.round, 1);
        assert_eq!(status.assigned_on, Some(day("2026-03-16")));
        assert_eq!(status.due, Some(day("2026-06-16")));
        assert_eq!(status.units.len(), 2);

        let story = story.by_owner("2026-05-20", answer("住建局", AnswerClass::A));
        let status = story.status();
        assert_eq!(status.state, S::Answered);
        assert_eq!(status.class, Some(AnswerClass::A));
        assert_eq!(status.first_answered_on, Some(day("2026-05-20")));
        assert_eq!(status.answered_on_time, Some(true));
        // Nothing is awaited any more, so there is no deadline to show.
        assert_eq!(status.due, None);

        let story = story.at_home("2026-06-01", evaluate(Satisfaction::Satisfied));
        assert_eq!(story.status().state, S::Satisfied);
        assert_eq!(story.status().evaluation, Some(Satisfaction::Satisfied));

        let story = story.by_owner("2026-06-05", A::Close);
        let status = story.status();
        assert_eq!(status.state, S::Closed);
        assert_eq!(status.closed_on, Some(day("2026-06-05")));
        assert_eq!(status.answered_on_time, Some(true));
        assert_eq!(status.last_step_on, Some(day("2026-06-05")));
        assert_eq!(status.rejected_events, 0);
    }

    #[test]
    fn a_unit_sending_back_lets_the_congress_reassign_and_restarts_the_deadline() {
        let story = local().assigned().by_owner(
            "2026-03-20",
            A::SendBack {
                unit: "住建局".into(),
                reason: "校园周边交通不属于本局职责".into(),
            },
        );
        let status = story.status();
        assert_eq!(status.state, S::SentBack);
        assert_eq!(status.due, None);
        assert!(!status.is_overdue(day("2026-12-31")));

        let story = story.by_owner(
            "2026-03-25",
            assign(&[("交通运输局", UnitRole::Lead), ("公安局", UnitRole::Assist)]),
        );
        let status = story.status();
        assert_eq!(status.state, S::Assigned);
        assert_eq!(status.assigned_on, Some(day("2026-03-25")));
        // The three months count from the reassignment, not from the first assignment.
        assert_eq!(status.due, Some(day("2026-06-25")));
        assert_eq!(status.units[0].unit, "交通运输局");

        let status = story
            .by_owner("2026-06-20", answer("交通运输局", AnswerClass::A))
            .status();
        assert_eq!(status.state, S::Answered);
        assert_eq!(status.answered_on_time, Some(true));
    }

    #[test]
    fn an_extension_moves_the_deadline_that_answers_are_judged_against() {
        let extended = local()
            .assigned()
            .by_owner("2026-06-10", extend("2026-08-16"));
        let status = extended.status();
        assert_eq!(status.state, S::Assigned);
        assert!(status.extended);
        assert_eq!(status.due, Some(day("2026-08-16")));

        // After the original due date (2026-06-16) but within the approved extension: on time.
        let on_time = extended
            .clone()
            .by_owner("2026-07-20", answer("住建局", AnswerClass::A))
            .status();
        assert_eq!(on_time.state, S::Answered);
        assert_eq!(on_time.answered_on_time, Some(true));

        // After the extended due date: late.
        let late = extended
            .by_owner("2026-08-17", answer("住建局", AnswerClass::A))
            .status();
        assert_eq!(late.state, S::Answered);
        assert_eq!(late.answered_on_time, Some(false));

        // Without an extension, the same answer date is late.
        let unextended = local()
            .assigned()
            .by_owner("2026-07-20", answer("住建局", AnswerClass::A))
            .status();
        assert_eq!(unextended.answered_on_time, Some(false));
    }

    #[test]
    fn separate_units_each_answer_and_the_least_resolved_class_counts() {
        let assigned = local().accepted().by_owner("2026-03-16", two_separate());
        let one = assigned
            .clone()
            .by_owner("2026-04-20", answer("住建局", AnswerClass::A));
        let status = one.status();
        // One of two 分办 units has answered: the suggestion still waits for the other.
        assert_eq!(status.state, S::Assigned);
        assert_eq!(status.class, None);
        assert_eq!(status.answers.len(), 1);
        assert_eq!(status.first_answered_on, None);
        assert_eq!(status.due, Some(day("2026-06-16")));

        let both = one.by_owner("2026-05-10", answer("教育局", AnswerClass::C));
        let status = both.status();
        assert_eq!(status.state, S::Answered);
        assert_eq!(status.class, Some(AnswerClass::C));
        assert_eq!(status.first_answered_on, Some(day("2026-05-10")));
        assert_eq!(status.answers["住建局"].class, AnswerClass::A);
        assert_eq!(status.answers["教育局"].class, AnswerClass::C);

        // The order the units answer in does not change the class.
        let reversed = assigned
            .by_owner("2026-04-20", answer("教育局", AnswerClass::C))
            .by_owner("2026-05-10", answer("住建局", AnswerClass::A))
            .status();
        assert_eq!(reversed.class, Some(AnswerClass::C));
    }

    #[test]
    fn a_basically_satisfied_b_answer_is_tracked_answered_again_and_closed() {
        let tracking = local()
            .answered(AnswerClass::B)
            .at_home("2026-06-01", evaluate(Satisfaction::BasicallySatisfied));
        let status = tracking.status();
        assert_eq!(status.state, S::Tracking);
        assert_eq!(status.evaluation, Some(Satisfaction::BasicallySatisfied));

        let tracked = tracking.by_owner(
            "2026-07-01",
            A::Track {
                note: "信号灯已立项，预计九月安装".into(),
                solved: false,
            },
        );
        let status = tracked.status();
        assert_eq!(status.state, S::Tracking);
        assert_eq!(status.follow_ups, 1);

        let reanswered = tracked.by_owner("2026-09-01", answer("住建局", AnswerClass::A));
        let status = reanswered.status();
        assert_eq!(status.state, S::Answered);
        assert_eq!(status.round, 2);
        assert_eq!(status.class, Some(AnswerClass::A));
        // The first answer's date and timeliness are history; a later round does not rewrite them.
        assert_eq!(status.first_answered_on, Some(day("2026-05-20")));
        assert_eq!(status.answered_on_time, Some(true));
        assert_eq!(status.follow_ups, 1);

        let satisfied = reanswered.at_home("2026-09-10", evaluate(Satisfaction::Satisfied));
        assert_eq!(satisfied.status().state, S::Satisfied);
        let closed = satisfied.by_owner("2026-09-15", A::Close);
        assert_eq!(closed.status().state, S::Closed);
        assert_eq!(closed.status().closed_on, Some(day("2026-09-15")));
        assert!(closed.rejections().is_empty());
    }

    #[test]
    fn a_b_answer_whose_follow_up_finds_it_solved_is_closed_without_a_new_answer() {
        let tracking = Story::to(county())
            .answered(AnswerClass::B)
            .at_home("2026-06-01", evaluate(Satisfaction::Satisfied));
        assert_eq!(tracking.status().state, S::Tracking);
        // Before a follow-up found it solved, it cannot be closed.
        assert_eq!(
            tracking.owner_rule("2026-06-05", A::Close),
            "transition.state"
        );
        let solved = tracking.clone().by_owner(
            "2026-08-01",
            A::Track {
                note: "回头看：信号灯已安装，群众满意".into(),
                solved: true,
            },
        );
        let status = solved.status();
        assert_eq!(status.state, S::Satisfied);
        assert_eq!(status.class, Some(AnswerClass::B), "the answer stays a B");
        assert_eq!(status.follow_ups, 1);
        let closed = solved.by_owner("2026-08-05", A::Close);
        assert_eq!(closed.status().state, S::Closed);
        assert!(closed.rejections().is_empty());
        // A follow-up that finds it solved is the congress's to record, like every 回头看.
        assert_eq!(
            tracking.rule(
                "2026-08-01",
                township(),
                A::Track {
                    note: "已解决".into(),
                    solved: true,
                },
            ),
            "authority.addressed_congress"
        );
    }

    #[test]
    fn a_dissatisfied_evaluation_reopens_handling_for_one_month_in_a_new_round() {
        let rehandling = local()
            .answered(AnswerClass::C)
            .at_home("2026-06-01", evaluate(Satisfaction::Dissatisfied));
        let status = rehandling.status();
        assert_eq!(status.state, S::Rehandling);
        assert_eq!(status.round, 2);
        assert_eq!(status.due, Some(day("2026-07-01")));
        assert!(status.answers.is_empty());
        assert!(!status.is_overdue(day("2026-07-01")));
        assert!(status.is_overdue(day("2026-07-02")));

        let status = rehandling
            .by_owner("2026-06-25", answer("住建局", AnswerClass::A))
            .status();
        assert_eq!(status.state, S::Answered);
        assert_eq!(status.round, 2);
        assert_eq!(status.class, Some(AnswerClass::A));
        assert_eq!(status.due, None);
        assert_eq!(status.first_answered_on, Some(day("2026-05-20")));
    }

    #[test]
    fn a_satisfied_d_answer_awaits_closing_but_a_satisfied_c_answer_is_tracked() {
        let d = local()
            .answered(AnswerClass::D)
            .at_home("2026-06-01", evaluate(Satisfaction::Satisfied))
            .status();
        assert_eq!(d.state, S::Satisfied);

        // A C answer promises a solution later, so even a satisfied delegate's suggestion stays
        // under follow-up instead of being closed.
        let c = local()
            .answered(AnswerClass::C)
            .at_home("2026-06-01", evaluate(Satisfaction::Satisfied))
            .status();
        assert_eq!(c.state, S::Tracking);
    }

    #[test]
    fn key_supervision_is_set_and_cleared() {
        let on = local()
            .assigned()
            .by_owner("2026-03-20", A::Supervise { key: true });
        assert!(on.status().key_supervision);
        assert_eq!(
            on.status().state,
            S::Assigned,
            "supervision is not a step of handling"
        );
        let off = on.by_owner("2026-04-20", A::Supervise { key: false });
        assert!(!off.status().key_supervision);
        assert!(off.rejections().is_empty());
    }

    // ---- Illegal transitions -----------------------------------------------------------------

    #[test]
    fn screening_twice_is_refused() {
        let story = local().accepted();
        assert_eq!(
            story.owner_rule("2026-03-11", accept(13)),
            "transition.state"
        );
        assert_eq!(
            story.owner_rule("2026-03-11", not_accept(Some("重复"))),
            "transition.state"
        );
    }

    #[test]
    fn assigning_before_acceptance_is_refused() {
        let story = local().submitted();
        assert_eq!(
            story.owner_rule("2026-03-10", lead_and_assist()),
            "transition.state"
        );
    }

    #[test]
    fn answering_before_assignment_is_refused() {
        let story = local().accepted();
        assert_eq!(
            story.owner_rule("2026-03-12", answer("住建局", AnswerClass::A)),
            "transition.state"
        );
    }

    #[test]
    fn an_assisting_unit_cannot_answer() {
        let story = local().assigned();
        assert_eq!(
            story.owner_rule("2026-04-01", answer("交通运输局", AnswerClass::A)),
            "answer.assisting_unit"
        );
    }

    #[test]
    fn a_unit_not_assigned_cannot_answer() {
        let story = local().assigned();
        assert_eq!(
            story.owner_rule("2026-04-01", answer("财政局", AnswerClass::A)),
            "answer.unit"
        );
    }

    #[test]
    fn a_unit_cannot_answer_twice_in_one_round() {
        let story = local()
            .accepted()
            .by_owner("2026-03-16", two_separate())
            .by_owner("2026-04-01", answer("住建局", AnswerClass::B));
        assert_eq!(
            story.owner_rule("2026-04-02", answer("住建局", AnswerClass::A)),
            "answer.already_answered"
        );
        // A lead unit's second answer finds the suggestion already answered.
        let lead = local().answered(AnswerClass::B);
        assert_eq!(
            lead.owner_rule("2026-05-21", answer("住建局", AnswerClass::A)),
            "transition.state"
        );
    }

    #[test]
    fn a_unit_that_already_answered_cannot_send_back() {
        let story = local()
            .accepted()
            .by_owner("2026-03-16", two_separate())
            .by_owner("2026-04-01", answer("住建局", AnswerClass::A));
        let send_back = |unit: &str| A::SendBack {
            unit: unit.into(),
            reason: "不属于本单位职责".into(),
        };
        assert_eq!(
            story.owner_rule("2026-04-02", send_back("住建局")),
            "send_back.already_answered"
        );
        assert_eq!(
            story.owner_rule("2026-04-02", send_back("财政局")),
            "send_back.unit"
        );
        assert_eq!(
            story.owner_rule(
                "2026-04-02",
                A::SendBack {
                    unit: "教育局".into(),
                    reason: " ".into(),
                }
            ),
            "send_back.reason_required"
        );
    }

    #[test]
    fn an_extension_past_six_months_from_assignment_is_refused() {
        // Assigned 2026-03-16: six months end on 2026-09-16.
        let story = local().assigned();
        assert_eq!(
            story.owner_rule("2026-06-01", extend("2026-09-17")),
            "extend.past_six_months"
        );
        // Two extensions together may not pass the limit either.
        let once = story.by_owner("2026-06-01", extend("2026-08-16"));
        assert_eq!(
            once.owner_rule("2026-08-01", extend("2026-10-16")),
            "extend.past_six_months"
        );
    }

    #[test]
    fn an_extension_must_be_later_than_the_current_deadline() {
        let story = local().assigned();
        assert_eq!(
            story.owner_rule("2026-06-01", extend("2026-06-16")),
            "extend.not_later"
        );
        assert_eq!(
            story.owner_rule("2026-06-01", extend("2026-05-01")),
            "extend.not_later"
        );
        let once = story.by_owner("2026-06-01", extend("2026-08-16"));
        assert_eq!(
            once.owner_rule("2026-08-01", extend("2026-07-16")),
            "extend.not_later"
        );
    }

    #[test]
    fn evaluating_before_an_answer_is_refused() {
        let assigned = local().assigned();
        assert_eq!(
            assigned.rule("2026-04-01", township(), evaluate(Satisfaction::Satisfied)),
            "transition.state"
        );
        // Half of a 分办 answer is not an answer the delegate can evaluate.
        let half = local()
            .accepted()
            .by_owner("2026-03-16", two_separate())
            .by_owner("2026-04-01", answer("住建局", AnswerClass::A));
        assert_eq!(
            half.rule("2026-04-02", township(), evaluate(Satisfaction::Satisfied)),
            "transition.state"
        );
    }

    #[test]
    fn closing_is_refused_until_the_delegate_is_satisfied() {
        let answered = local().answered(AnswerClass::A);
        assert_eq!(
            answered.owner_rule("2026-05-21", A::Close),
            "transition.state"
        );
        let tracking = local()
            .answered(AnswerClass::B)
            .at_home("2026-06-01", evaluate(Satisfaction::Satisfied));
        assert_eq!(tracking.status().state, S::Tracking);
        assert_eq!(
            tracking.owner_rule("2026-06-02", A::Close),
            "transition.state"
        );
        let closed = local()
            .answered(AnswerClass::A)
            .at_home("2026-06-01", evaluate(Satisfaction::Satisfied))
            .by_owner("2026-06-02", A::Close);
        assert_eq!(
            closed.owner_rule("2026-06-03", A::Close),
            "transition.state"
        );
    }

    #[test]
    fn not_accepting_without_a_reason_is_refused() {
        let story = local().submitted();
        assert_eq!(
            story.owner_rule("2026-03-10", not_accept(None)),
            "screen.reason_required"
        );
        assert_eq!(
            story.owner_rule("2026-03-10", not_accept(Some("   "))),
            "screen.reason_required"
        );
    }

    #[test]
    fn an_assignment_needs_one_lead_unit_or_several_separate_units() {
        let story = local().accepted();
        let two_leads = assign(&[("住建局", UnitRole::Lead), ("教育局", UnitRole::Lead)]);
        assert_eq!(story.owner_rule("2026-03-16", two_leads), "assign.roles");
        let one_separate = assign(&[("住建局", UnitRole::Separate)]);
        assert_eq!(story.owner_rule("2026-03-16", one_separate), "assign.roles");
        let mixed = assign(&[("住建局", UnitRole::Lead), ("教育局", UnitRole::Separate)]);
        assert_eq!(story.owner_rule("2026-03-16", mixed), "assign.roles");
        let only_assist = assign(&[("住建局", UnitRole::Assist)]);
        assert_eq!(story.owner_rule("2026-03-16", only_assist), "assign.roles");
        assert_eq!(story.owner_rule("2026-03-16", assign(&[])), "assign.units");
    }

    #[test]
    fn duplicate_unit_names_are_refused() {
        let story = local().accepted();
        let twice = assign(&[("住建局", UnitRole::Lead), ("住建局", UnitRole::Assist)]);
        assert_eq!(
            story.owner_rule("2026-03-16", twice),
            "assign.duplicate_unit"
        );
    }

    #[test]
    fn supervising_twice_with_the_same_flag_is_refused() {
        let story = local().assigned();
        assert_eq!(
            story.owner_rule("2026-03-20", A::Supervise { key: false }),
            "supervise.unchanged"
        );
        let on = story.by_owner("2026-03-20", A::Supervise { key: true });
        assert_eq!(
            on.owner_rule("2026-03-21", A::Supervise { key: true }),
            "supervise.unchanged"
        );
    }

    #[test]
    fn a_step_dated_before_the_previous_step_is_refused() {
        let story = local().accepted();
        assert_eq!(
            story.owner_rule("2026-03-09", lead_and_assist()),
            "date.before_previous_step"
        );
        // The same day as the previous step is fine: several steps often happen on one day.
        assert!(
            story
                .by_owner("2026-03-10", lead_and_assist())
                .rejections()
                .is_empty()
        );
    }

    #[test]
    fn a_step_dated_well_after_it_was_recorded_is_refused() {
        let story = local().accepted();
        let lamport = next_lamport(&story.entries);
        let recorded = noon(day("2026-03-16"));
        let future = ev_recorded(
            lamport,
            day("2026-03-20"),
            recorded,
            township(),
            lead_and_assist(),
        );
        assert_eq!(story.rejects(future).rule, "date.in_future");
        // One day ahead is tolerated: a clerk east of UTC records the next morning's date while
        // UTC still says yesterday.
        let mut entries = story.entries.clone();
        entries.push(ev_recorded(
            lamport,
            day("2026-03-17"),
            recorded,
            township(),
            lead_and_assist(),
        ));
        let (status, _) = fold(&header(), &story.fields, &entries);
        assert_eq!(status.state, S::Assigned);
    }

    #[test]
    fn only_the_addressed_congress_screens_assigns_answers_and_closes() {
        let to_county = Story::to(county());
        // The home township is not the congress the suggestion was addressed to.
        let submitted = to_county.clone().submitted();
        assert_eq!(
            submitted.rule("2026-03-10", township(), accept(1)),
            "authority.addressed_congress"
        );
        let accepted = to_county.clone().accepted();
        assert_eq!(
            accepted.rule("2026-03-16", township(), lead_and_assist()),
            "authority.addressed_congress"
        );
        let assigned = to_county.clone().assigned();
        assert_eq!(
            assigned.rule("2026-04-01", township(), answer("住建局", AnswerClass::A)),
            "authority.addressed_congress"
        );
        assert_eq!(
            assigned.rule("2026-04-01", township(), extend("2026-07-16")),
            "authority.addressed_congress"
        );
        let satisfied = to_county
            .answered(AnswerClass::A)
            .at_home("2026-06-01", evaluate(Satisfaction::Satisfied));
        assert_eq!(satisfied.status().state, S::Satisfied);
        assert_eq!(
            satisfied.rule("2026-06-02", township(), A::Close),
            "authority.addressed_congress"
        );
        // The county itself may close it: the refusals above were about who, not when.
        assert_eq!(
            satisfied.by_owner("2026-06-02", A::Close).status().state,
            S::Closed
        );
    }

    #[test]
    fn only_the_lead_delegates_home_submits_and_evaluates() {
        let to_county = Story::to(county());
        assert_eq!(
            to_county.rule("2026-03-02", county(), A::Submit),
            "authority.lead_delegate_home"
        );
        let answered = to_county.answered(AnswerClass::A);
        assert_eq!(
            answered.rule("2026-06-01", county(), evaluate(Satisfaction::Satisfied)),
            "authority.lead_delegate_home"
        );
    }

    // ---- Deadlines ---------------------------------------------------------------------------

    #[test]
    fn answers_are_due_three_calendar_months_after_assignment_clamped_to_month_end() {
        let story = local()
            .submitted()
            .by_owner("2026-11-20", accept(3))
            .by_owner("2026-11-30", lead_and_assist());
        // There is no 30 February: the deadline is the last day of February.
        assert_eq!(story.status().due, Some(day("2027-02-28")));
        let story = local().assigned();
        assert_eq!(story.status().due, Some(day("2026-06-16")));
    }

    #[test]
    fn a_suggestion_is_overdue_only_after_its_due_date_and_never_once_answered() {
        let story = local().assigned();
        let status = story.status();
        assert!(!status.is_overdue(day("2026-03-16")));
        assert!(
            !status.is_overdue(day("2026-06-16")),
            "the due date itself is on time"
        );
        assert!(status.is_overdue(day("2026-06-17")));

        let answered = story
            .by_owner("2026-06-30", answer("住建局", AnswerClass::A))
            .status();
        assert!(!answered.is_overdue(day("2026-07-01")));
        assert_eq!(answered.answered_on_time, Some(false));

        // An accepted suggestion not yet assigned waits for no answer, so it cannot be overdue.
        assert!(!local().accepted().status().is_overdue(day("2030-01-01")));
    }

    #[test]
    fn an_answer_on_the_due_date_itself_is_on_time() {
        let assigned = local().assigned();
        let on_the_day = assigned
            .clone()
            .by_owner("2026-06-16", answer("住建局", AnswerClass::A))
            .status();
        assert_eq!(on_the_day.answered_on_time, Some(true));
        let a_day_late = assigned
            .by_owner("2026-06-17", answer("住建局", AnswerClass::A))
            .status();
        assert_eq!(a_day_late.answered_on_time, Some(false));
    }

    #[test]
    fn an_extension_to_exactly_six_months_after_assignment_is_allowed() {
        let assigned = local()
            .submitted()
            .by_owner("2026-11-20", accept(3))
            .by_owner("2026-11-30", lead_and_assist());
        let extended = assigned
            .clone()
            .by_owner("2027-02-20", extend("2027-05-30"));
        let status = extended.status();
        assert_eq!(status.due, Some(day("2027-05-30")));
        assert!(status.extended);
        assert!(!status.is_overdue(day("2027-05-30")));
        assert!(status.is_overdue(day("2027-05-31")));
        assert_eq!(
            assigned.owner_rule("2027-02-20", extend("2027-05-31")),
            "extend.past_six_months"
        );
    }

    // ---- Concurrent events -------------------------------------------------------------------

    #[test]
    fn concurrent_screenings_resolve_by_event_id_whatever_the_list_order() {
        let story = local().submitted();
        let lamport = next_lamport(&story.entries);
        let smaller = id(0x0197_0000_0000_0000_0000_0000_0000_0100);
        let larger = id(0x0197_0000_0000_0000_0000_0000_0000_0200);
        let accepting = |event_id| {
            with_id(
                ev(lamport, day("2026-03-10"), township(), accept(5)),
                event_id,
            )
        };
        let refusing = |event_id| {
            with_id(
                ev(
                    lamport,
                    day("2026-03-10"),
                    township(),
                    not_accept(Some("内容不明确")),
                ),
                event_id,
            )
        };
        let fold_in = |entries: Vec<Entry>| {
            let mut all = story.entries.clone();
            all.extend(entries);
            fold(&header(), &story.fields, &all)
        };

        // Two clerks of the same congress screened at once; the acceptance has the smaller id.
        let (first, history_first) = fold_in(vec![accepting(smaller), refusing(larger)]);
        let (second, history_second) = fold_in(vec![refusing(larger), accepting(smaller)]);
        assert_eq!(first, second);
        assert_eq!(history_first, history_second);
        assert_eq!(first.state, S::Accepted);
        assert_eq!(first.number, Some(5));
        assert_eq!(first.rejected_events, 1);
        let rejected: Vec<_> = history_first
            .iter()
            .filter(|line| line.rejected.is_some())
            .collect();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].event.id, larger);
        assert_eq!(
            rejected[0].rejected.as_ref().unwrap().rule,
            "transition.state"
        );

        // Swap the ids: now the refusal comes first in fold order and wins, in either list order.
        let (swapped, _) = fold_in(vec![accepting(larger), refusing(smaller)]);
        let (swapped_again, _) = fold_in(vec![refusing(smaller), accepting(larger)]);
        assert_eq!(swapped, swapped_again);
        assert_eq!(swapped.state, S::NotAccepted);
        assert_eq!(swapped.number, None);
        assert_eq!(swapped.rejected_events, 1);
    }

    // ---- Dates at the edge of the calendar ---------------------------------------------------

    /// A date in the last month the calendar can represent: three months (or one) after it do
    /// not exist. Only a damaged or hostile event carries such a date, but every replica must
    /// fold it the same way and without changing the status.
    fn last_month() -> NaiveDate {
        NaiveDate::MAX - Days::new(5)
    }

    #[test]
    fn an_assignment_whose_deadline_cannot_be_computed_is_refused_and_changes_nothing() {
        let story = local().accepted();
        let entry = ev(
            next_lamport(&story.entries),
            last_month(),
            township(),
            lead_and_assist(),
        );
        // `rejects` also asserts the status is exactly the status before the event: a rejected
        // assignment must not leave the suggestion 办理中 with units but no deadline.
        assert_eq!(story.rejects(entry).rule, "assign.due");
    }

    #[test]
    fn a_dissatisfied_evaluation_whose_deadline_cannot_be_computed_changes_nothing() {
        let story = local().answered(AnswerClass::B);
        let entry = ev(
            next_lamport(&story.entries),
            last_month(),
            township(),
            evaluate(Satisfaction::Dissatisfied),
        );
        assert_eq!(story.rejects(entry).rule, "evaluate.due");
    }

    #[test]
    fn an_event_recorded_on_the_last_day_of_the_calendar_is_folded_without_panicking() {
        let story = local().submitted();
        let event = Event {
            id: RecordId::new(),
            lamport: next_lamport(&story.entries),
            recorded_at: noon(NaiveDate::MAX),
            date: NaiveDate::MAX,
            author: Author {
                node: township(),
                user: "经办人".into(),
            },
            action: A::Supervise { key: true },
        };
        // The event survives the trip through JSON, so a peer can send exactly this.
        let entry = EventEntry::decode(serde_json::to_value(&event).unwrap());
        assert_eq!(entry, EventEntry::Event(event));
        let mut entries = story.entries.clone();
        entries.push(entry);
        // A panic here would take down every node that receives the record.
        let (status, history) = fold(&header(), &story.fields, &entries);
        assert_eq!(history.len(), 2);
        assert!(status.key_supervision);
        assert_eq!(status.last_step_on, Some(NaiveDate::MAX));
    }
}

#[cfg(test)]
mod offered_tests {
    use super::*;
    use crate::record::{Author, RecordKind};
    use SuggestionStep as St;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// The README's suggestion, made at 王店镇 and addressed to 秀洲区: at each state the county
    /// is offered the handling steps and the township the delegate's, and neither anything else.
    #[test]
    fn each_node_is_offered_the_steps_its_state_and_authority_allow() {
        let (town, county) = (code("330411101000"), code("330411000000"));
        let header = Header {
            id: RecordId::new(),
            kind: RecordKind::Suggestion,
            home: town,
            created_at: day("2026-03-02").and_hms_opt(4, 0, 0).unwrap().and_utc(),
            created_by: Author {
                node: town,
                user: "镇人大办".into(),
            },
        };
        let fields = SuggestionFields {
            title: "关于修缮梅北村灌溉渠道的建议".into(),
            body: "渠道渗漏严重".into(),
            category: "农业农村".into(),
            lead: RecordId::new(),
            lead_name: "沈建华".into(),
            cosigners: Vec::new(),
            addressed_to: county,
            session: None,
            group: None,
            motion: None,
        };
        let mut entries: Vec<EventEntry<SuggestionAction>> = Vec::new();
        let mut take = |node: RegionCode, date: &str, action: SuggestionAction| {
            let mut event = super::super::event::probe(node, day(date), action);
            event.id = RecordId::new();
            event.lamport = entries.len() as u64 + 1;
            entries.push(EventEntry::Event(event));
            let (status, history) = fold(&header, &fields, &entries);
            assert!(history.iter().all(|l| l.rejected.is_none()), "{history:?}");
            let today = day(date);
            (
                offered_steps(&header, &fields, &status, county, today),
                offered_steps(&header, &fields, &status, town, today),
            )
        };
        use SuggestionAction as A;
        let (at_county, at_town) = take(town, "2026-03-02", A::Submit);
        assert_eq!(at_county, [St::Screen, St::Supervise]);
        assert_eq!(at_town, []);
        let accept = A::Screen {
            accepted: true,
            number: Some(1),
            reason: None,
        };
        let (at_county, _) = take(county, "2026-03-06", accept);
        assert_eq!(at_county, [St::Assign, St::Supervise]);
        let units = vec![UnitAssignment {
            unit: "镇农业农村办".into(),
            role: UnitRole::Lead,
        }];
        let (at_county, at_town) = take(county, "2026-03-10", A::Assign { units });
        assert_eq!(
            at_county,
            [St::SendBack, St::Extend, St::Answer, St::Supervise]
        );
        assert_eq!(at_town, []);
        let until = day("2026-09-10");
        let (at_county, _) = take(
            county,
            "2026-06-01",
            A::Extend {
                until,
                reason: "需列入年度计划".into(),
            },
        );
        assert_eq!(
            at_county,
            [St::SendBack, St::Answer, St::Supervise],
            "the six months are used up, so no further extension is offered"
        );
        let answer = || A::Answer {
            unit: "镇农业农村办".into(),
            class: AnswerClass::A,
            text: "已完成防渗改造".into(),
        };
        let (at_county, at_town) = take(county, "2026-07-20", answer());
        assert_eq!(at_county, [St::Supervise]);
        assert_eq!(at_town, [St::Evaluate], "the delegate's township evaluates");
        let (at_county, at_town) = take(
            town,
            "2026-07-25",
            A::Evaluate {
                result: Satisfaction::Dissatisfied,
                comment: "仍有渗漏".into(),
            },
        );
        assert_eq!(at_county, [St::Answer, St::Supervise], "重新办理");
        assert_eq!(at_town, []);
        take(county, "2026-08-20", answer());
        let (at_county, at_town) = take(
            town,
            "2026-08-22",
            A::Evaluate {
                result: Satisfaction::Satisfied,
                comment: String::new(),
            },
        );
        assert_eq!(at_county, [St::Close, St::Supervise]);
        assert_eq!(at_town, []);
        let (at_county, at_town) = take(county, "2026-08-30", A::Close);
        assert_eq!((at_county, at_town), (vec![], vec![]), "销号 ends it");
    }
}
