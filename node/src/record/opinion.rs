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

use super::event::{EventEntry, HistoryLine, Rejection, in_fold_order};
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
    /// 转交 to a named body (a department, a township government …).
    PassOn {
        to: String,
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
        passed_on_on: None,
        answered_on_spot: false,
        handled_on: None,
        result: None,
        rating: None,
        last_step_on: None,
        rejected_events: 0,
        unreadable_events: 0,
    };
    let mut history = Vec::new();
    for event in in_fold_order(entries) {
        let rejected = step(&mut status, header, event).err();
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

/// Checks a step against the current status without changing it.
pub fn check(
    status: &OpinionStatus,
    header: &Header,
    event: &Event<OpinionAction>,
) -> Result<(), Rejection> {
    let mut scratch = status.clone();
    step(&mut scratch, header, event)
}

fn need(rule: &str, what: &str, text: &str) -> Result<(), Rejection> {
    required_text(what, text).map_err(|e| Rejection::new(rule, format!("{what}{}", e.rule)))
}

fn step(
    status: &mut OpinionStatus,
    header: &Header,
    event: &Event<OpinionAction>,
) -> Result<(), Rejection> {
    use OpinionAction as A;
    use OpinionState as S;

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
            format!("日期 {} 晚于录入时间", event.date),
        ));
    }
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
    let wrong_state = || {
        Rejection::new(
            "transition.state",
            format!(
                "民情处于“{}”状态，不能{}",
                status.state.label(),
                event.action.label()
            ),
        )
    };
    match &event.action {
        A::Receive => {
            if !from_home {
                return Err(Rejection::new(
                    "authority.home",
                    "只有收集民情的节点可以登记",
                ));
            }
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
        A::PassOn { to } => {
            if status.state != S::Received {
                return Err(wrong_state());
            }
            need("pass_on.body_required", "转交单位", to)?;
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
