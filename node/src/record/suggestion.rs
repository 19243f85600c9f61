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

use super::event::{EventEntry, HistoryLine, Rejection, in_fold_order};
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
    /// 回头看: a follow-up on a B or C answer.
    Track {
        note: String,
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
    let mut history = Vec::new();
    for event in in_fold_order(entries) {
        let rejected = step(&mut status, header, fields, event).err();
        if rejected.is_some() {
            status.rejected_events += 1;
        }
        history.push(HistoryLine {
            event: event.clone(),
            rejected,
        });
    }
    status.unreadable_events = entries.len() - history.len();
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

fn step(
    status: &mut SuggestionStatus,
    header: &Header,
    fields: &SuggestionFields,
    event: &Event<SuggestionAction>,
) -> Result<(), Rejection> {
    use SuggestionAction as A;
    use SuggestionState as S;

    if let Some(last) = status.last_step_on
        && event.date < last
    {
        return Err(Rejection::new(
            "date.before_previous_step",
            format!("日期 {} 早于上一步的日期 {last}", event.date),
        ));
    }
    if event.date > event.recorded_at.date_naive() + chrono::Days::new(1) {
        return Err(Rejection::new(
            "date.in_future",
            format!(
                "日期 {} 晚于录入时间 {}",
                event.date,
                event.recorded_at.date_naive()
            ),
        ));
    }

    match &event.action {
        A::Submit => {
            require_home(header, event)?;
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
            require_owner(fields, event)?;
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
            require_owner(fields, event)?;
            if !matches!(status.state, S::Accepted | S::SentBack) {
                return Err(wrong_state(status, event));
            }
            check_units(units)?;
            status.state = S::Assigned;
            status.units = units.clone();
            status.assigned_on = Some(event.date);
            status.due = Some(add_months("assign.due", event.date, ANSWER_MONTHS)?);
            status.extended = false;
            status.round = 1;
            status.answers.clear();
            status.class = None;
        }
        A::SendBack { unit, reason } => {
            require_owner(fields, event)?;
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
            require_owner(fields, event)?;
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
            require_owner(fields, event)?;
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
            require_home(header, event)?;
            if status.state != S::Answered {
                return Err(wrong_state(status, event));
            }
            bounded_text("comment", comment)
                .map_err(|e| Rejection::new("evaluate.comment", e.rule))?;
            status.evaluation = Some(*result);
            match (result, status.class) {
                (Satisfaction::Dissatisfied, _) => {
                    status.state = S::Rehandling;
                    status.round += 1;
                    status.answers.clear();
                    status.due = Some(add_months("evaluate.due", event.date, REHANDLE_MONTHS)?);
                }
                (_, Some(AnswerClass::A | AnswerClass::D)) => status.state = S::Satisfied,
                _ => status.state = S::Tracking,
            }
        }
        A::Track { note } => {
            require_owner(fields, event)?;
            if status.state != S::Tracking {
                return Err(wrong_state(status, event));
            }
            require_text("track.note_required", "回头看情况", note)?;
            status.follow_ups += 1;
        }
        A::Close => {
            require_owner(fields, event)?;
            if status.state != S::Satisfied {
                return Err(wrong_state(status, event));
            }
            status.state = S::Closed;
            status.closed_on = Some(event.date);
        }
        A::Supervise { key } => {
            require_owner(fields, event)?;
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
