//! Motions (议案): what delegates, or a body entitled to propose, put before a congress in
//! session, and the decision of its 主席团.
//!
//! ```text
//! submit (by the session's deadline) ─▶ 待主席团决定 ─┬─▶ 列入会议议程
//!                                                    ├─▶ 交专门委员会审议 ─┬─▶ 列入会议议程
//!                                                    │                    └─▶ 转作建议
//!                                                    └─▶ 转作建议 (a linked suggestion)
//! ```
//!
//! Who may propose follows the Organic Laws: at a township congress five or more delegates
//! jointly, at a county congress and above ten or more, at the National People's Congress
//! thirty or more or a delegation; and the bodies each congress has: its 主席团, and from county
//! level up its standing committee and special committees, the people's government, and at the
//! national level also the Central Military Commission, the National Supervisory Commission,
//! the Supreme People's Court and the Supreme People's Procuratorate. A motion is homed at the
//! congress whose session it belongs to, and only that congress's node takes its steps.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::event::{EventEntry, HistoryLine, Rejection, check_dates, fold_entries};
use super::suggestion::CoSigner;
use super::{Event, Header, RecordId};
use crate::region::{Level, RegionCode};
use crate::validate::{ValidationError, bounded_text, distinct, required_text};

labelled_enum!(MotionState {
    Draft => ("draft", "未提出"),
    Submitted => ("submitted", "待主席团决定"),
    Referred => ("referred", "交专门委员会审议"),
    OnAgenda => ("on_agenda", "列入会议议程"),
    Converted => ("converted", "转作建议"),
});

labelled_enum!(
    /// The bodies entitled to propose a motion to a congress.
    ProposingBody {
        Presidium => ("presidium", "主席团"),
        StandingCommittee => ("standing_committee", "常务委员会"),
        SpecialCommittee => ("special_committee", "专门委员会"),
        Government => ("government", "人民政府"),
        MilitaryCommission => ("military_commission", "中央军事委员会"),
        SupervisoryCommission => ("supervisory_commission", "国家监察委员会"),
        SupremeCourt => ("supreme_court", "最高人民法院"),
        SupremeProcuratorate => ("supreme_procuratorate", "最高人民检察院"),
    }
);

/// How many delegates must sign a motion jointly at a congress of `level`.
pub fn minimum_signers(level: Level) -> usize {
    match level {
        Level::Township => 5,
        Level::National => 30,
        _ => 10,
    }
}

/// Who proposes a motion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Proposer {
    /// Delegates jointly (代表联名): the lead and the others who signed.
    Delegates {
        lead: RecordId,
        lead_name: String,
        #[serde(default)]
        cosigners: Vec<CoSigner>,
    },
    /// A delegation (代表团), at the National People's Congress.
    Delegation { name: String },
    /// A body entitled to propose; a special committee is named.
    Body {
        body: ProposingBody,
        #[serde(default)]
        name: Option<String>,
    },
}

impl Proposer {
    /// The delegates who signed, the lead first; none for a delegation or a body.
    pub fn signers(&self) -> Vec<RecordId> {
        match self {
            Proposer::Delegates {
                lead, cosigners, ..
            } => std::iter::once(*lead)
                .chain(cosigners.iter().map(|c| c.id))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Who proposed it, as a list shows it.
    pub fn describe(&self) -> String {
        match self {
            Proposer::Delegates {
                lead_name,
                cosigners,
                ..
            } => format!("{lead_name}等 {} 名代表联名", cosigners.len() + 1),
            Proposer::Delegation { name } => name.clone(),
            Proposer::Body { body, name } => name.clone().unwrap_or_else(|| body.label().into()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MotionFields {
    pub title: String,
    pub body: String,
    /// The congress in session; always the motion's home.
    pub congress: RegionCode,
    /// The session (e.g. 十七届三次会议).
    pub session: String,
    /// The last day its 主席团 set for motions at this session.
    pub deadline: NaiveDate,
    pub proposer: Proposer,
}

impl MotionFields {
    /// Checks the motion as the record homed at `home` says it: its congress, texts, and who
    /// may propose there.
    pub fn validate(&self, home: &RegionCode) -> Result<(), ValidationError> {
        required_text("title", &self.title)?;
        if self.title.chars().count() > 200 {
            return Err(ValidationError::new("title", "标题不能超过 200 个字符"));
        }
        required_text("body", &self.body)?;
        bounded_text("body", &self.body)?;
        required_text("session", &self.session)?;
        bounded_text("session", &self.session)?;
        if self.congress != *home {
            return Err(ValidationError::new(
                "congress",
                format!(
                    "议案只能由其所属会议的人大登记：本节点是 {home}，议案属于 {}",
                    self.congress
                ),
            ));
        }
        let Some(level) = self
            .congress
            .level()
            .filter(|_| self.congress.has_congress())
        else {
            return Err(ValidationError::new(
                "congress",
                format!("{} 没有人民代表大会", self.congress),
            ));
        };
        match &self.proposer {
            Proposer::Delegates {
                lead,
                lead_name,
                cosigners,
            } => {
                required_text("lead", lead_name)?;
                if cosigners.iter().any(|c| c.id == *lead) {
                    return Err(ValidationError::new(
                        "cosigner",
                        "领衔代表不能同时是联名代表",
                    ));
                }
                let ids: Vec<RecordId> = cosigners.iter().map(|c| c.id).collect();
                distinct("cosigner", &ids)?;
                let needed = minimum_signers(level);
                let signed = cosigners.len() + 1;
                if signed < needed {
                    return Err(ValidationError::new(
                        "cosigner",
                        format!(
                            "{}人大代表 {needed} 人以上联名才能提出议案，现有 {signed} 人",
                            level.label()
                        ),
                    ));
                }
            }
            Proposer::Delegation { name } => {
                required_text("delegation", name)?;
                if level != Level::National {
                    return Err(ValidationError::new(
                        "delegation",
                        "只有全国人民代表大会的代表团可以提出议案",
                    ));
                }
            }
            Proposer::Body { body, name } => {
                use ProposingBody as B;
                let allowed = match body {
                    B::Presidium | B::Government => true,
                    B::StandingCommittee | B::SpecialCommittee => level != Level::Township,
                    B::MilitaryCommission
                    | B::SupervisoryCommission
                    | B::SupremeCourt
                    | B::SupremeProcuratorate => level == Level::National,
                };
                if !allowed {
                    return Err(ValidationError::new(
                        "proposer",
                        format!(
                            "{}无权向{}人民代表大会提出议案",
                            body.label(),
                            level.label()
                        ),
                    ));
                }
                match (body, name) {
                    (B::SpecialCommittee, None) => {
                        return Err(ValidationError::new(
                            "committee",
                            "专门委员会提出议案须写明委员会名称",
                        ));
                    }
                    (_, Some(name)) => required_text("committee", name)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// The 主席团's decision on a motion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum MotionDecision {
    /// 列入会议议程.
    ListOnAgenda,
    /// 交有关专门委员会审议, which reports back before the 主席团 decides again.
    ReferToCommittee { committee: String },
    /// 转作建议: handled as the suggestion it became.
    ConvertToSuggestion { suggestion: RecordId },
}

/// The steps of a motion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum MotionAction {
    Submit,
    Decide {
        #[serde(flatten)]
        decision: MotionDecision,
    },
}

impl MotionAction {
    pub fn label(&self) -> &'static str {
        match self {
            MotionAction::Submit => "提出",
            MotionAction::Decide {
                decision: MotionDecision::ListOnAgenda,
            } => "列入会议议程",
            MotionAction::Decide {
                decision: MotionDecision::ReferToCommittee { .. },
            } => "交专门委员会审议",
            MotionAction::Decide {
                decision: MotionDecision::ConvertToSuggestion { .. },
            } => "转作建议",
        }
    }
}

/// Everything the fold derives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MotionStatus {
    pub state: MotionState,
    pub submitted_on: Option<NaiveDate>,
    pub decided_on: Option<NaiveDate>,
    /// The committee it was referred to.
    pub committee: Option<String>,
    /// The suggestion it became.
    pub suggestion: Option<RecordId>,
    pub last_step_on: Option<NaiveDate>,
    pub rejected_events: usize,
    pub unreadable_events: usize,
}

/// A motion record: its fields and its event list.
#[derive(Clone, Debug, PartialEq)]
pub struct Motion {
    pub fields: MotionFields,
    pub events: Vec<EventEntry<MotionAction>>,
}

impl Motion {
    pub fn fold(&self, header: &Header) -> (MotionStatus, Vec<HistoryLine<MotionAction>>) {
        fold(header, &self.fields, &self.events)
    }
}

/// Derives the status from the events, checking each in fold order.
pub fn fold(
    header: &Header,
    fields: &MotionFields,
    entries: &[EventEntry<MotionAction>],
) -> (MotionStatus, Vec<HistoryLine<MotionAction>>) {
    let mut status = MotionStatus {
        state: MotionState::Draft,
        submitted_on: None,
        decided_on: None,
        committee: None,
        suggestion: None,
        last_step_on: None,
        rejected_events: 0,
        unreadable_events: 0,
    };
    let (history, refused, unreadable) = fold_entries(&mut status, entries, |status, e| {
        step(status, header, fields, e)
    });
    status.rejected_events = refused;
    status.unreadable_events = unreadable;
    (status, history)
}

/// Who may write `event`: the congress in session, which is the motion's home, takes every
/// step.
pub fn authority(header: &Header, event: &Event<MotionAction>) -> Result<(), Rejection> {
    if event.author.node != header.home {
        return Err(Rejection::new(
            "authority.motion_congress",
            format!(
                "只有议案所属的人大（{}）可以{}，本次操作来自 {}",
                header.home,
                event.action.label(),
                event.author.node
            ),
        ));
    }
    Ok(())
}

fn step(
    status: &mut MotionStatus,
    header: &Header,
    fields: &MotionFields,
    event: &Event<MotionAction>,
) -> Result<(), Rejection> {
    use MotionState as S;
    check_dates(status.last_step_on, event)?;
    authority(header, event)?;
    let wrong_state =
        || super::event::wrong_state("议案", status.state.label(), event.action.label());
    match &event.action {
        MotionAction::Submit => {
            if status.state != S::Draft {
                return Err(wrong_state());
            }
            if event.date > fields.deadline {
                return Err(Rejection::new(
                    "motion.deadline",
                    format!(
                        "议案须在主席团规定的截止日期 {} 前提出，提出日期为 {}",
                        fields.deadline, event.date
                    ),
                ));
            }
            status.state = S::Submitted;
            status.submitted_on = Some(event.date);
        }
        MotionAction::Decide { decision } => {
            match (status.state, decision) {
                (S::Submitted, MotionDecision::ReferToCommittee { committee }) => {
                    if committee.trim().is_empty() {
                        return Err(Rejection::new("motion.committee", "须写明专门委员会"));
                    }
                    if fields.congress.level() == Some(Level::Township) {
                        return Err(Rejection::new(
                            "motion.committee",
                            "乡镇人民代表大会不设专门委员会",
                        ));
                    }
                    status.state = S::Referred;
                    status.committee = Some(committee.clone());
                }
                (S::Submitted | S::Referred, MotionDecision::ListOnAgenda) => {
                    status.state = S::OnAgenda;
                }
                (
                    S::Submitted | S::Referred,
                    MotionDecision::ConvertToSuggestion { suggestion },
                ) => {
                    if !matches!(fields.proposer, Proposer::Delegates { .. }) {
                        return Err(Rejection::new(
                            "motion.convert",
                            "只有代表联名提出的议案可以转作代表建议",
                        ));
                    }
                    status.state = S::Converted;
                    status.suggestion = Some(*suggestion);
                }
                _ => return Err(wrong_state()),
            }
            status.decided_on = Some(event.date);
        }
    }
    status.last_step_on = Some(event.date);
    Ok(())
}

/// Checks whether `event` may follow the events already folded into `status`.
pub fn check(
    status: &MotionStatus,
    header: &Header,
    fields: &MotionFields,
    event: &Event<MotionAction>,
) -> Result<(), Rejection> {
    let mut scratch = status.clone();
    step(&mut scratch, header, fields, event)
}

impl super::event::Workflow for Motion {
    type Action = MotionAction;
    type Status = MotionStatus;

    fn entries(&self) -> &[EventEntry<MotionAction>] {
        &self.events
    }

    fn status(&self, header: &Header) -> MotionStatus {
        self.fold(header).0
    }

    fn check(
        &self,
        status: &MotionStatus,
        header: &Header,
        event: &Event<MotionAction>,
    ) -> Result<(), Rejection> {
        check(status, header, &self.fields, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    fn signed(congress: &str, n: usize) -> MotionFields {
        MotionFields {
            title: "关于制定农村生活污水治理条例的议案".into(),
            body: "案由和方案".into(),
            congress: code(congress),
            session: "十七届三次会议".into(),
            deadline: NaiveDate::from_ymd_opt(2027, 1, 10).unwrap(),
            proposer: Proposer::Delegates {
                lead: RecordId::new(),
                lead_name: "沈建华".into(),
                cosigners: (1..n)
                    .map(|i| CoSigner {
                        id: RecordId::new(),
                        name: format!("代表{i}"),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn signers_follow_the_organic_laws_by_level() {
        let township = "330411101000";
        let county = "330411000000";
        let national = "000000000000";
        assert!(signed(township, 5).validate(&code(township)).is_ok());
        assert_eq!(
            signed(township, 4)
                .validate(&code(township))
                .unwrap_err()
                .field,
            "cosigner"
        );
        assert!(signed(county, 10).validate(&code(county)).is_ok());
        let nine = signed(county, 9).validate(&code(county)).unwrap_err();
        assert_eq!(nine.field, "cosigner");
        assert!(
            nine.rule.contains("10") && nine.rule.contains('9'),
            "{}",
            nine.rule
        );
        assert!(signed(national, 29).validate(&code(national)).is_err());
        assert!(signed(national, 30).validate(&code(national)).is_ok());
        let delegation = |congress: &str| MotionFields {
            proposer: Proposer::Delegation {
                name: "浙江代表团".into(),
            },
            ..signed(congress, 1)
        };
        assert!(delegation(national).validate(&code(national)).is_ok());
        assert_eq!(
            delegation(county)
                .validate(&code(county))
                .unwrap_err()
                .field,
            "delegation"
        );
        let body = |congress: &str, body| MotionFields {
            proposer: Proposer::Body { body, name: None },
            ..signed(congress, 1)
        };
        assert!(
            body(township, ProposingBody::Presidium)
                .validate(&code(township))
                .is_ok()
        );
        assert!(
            body(township, ProposingBody::StandingCommittee)
                .validate(&code(township))
                .is_err()
        );
        assert!(
            body(county, ProposingBody::StandingCommittee)
                .validate(&code(county))
                .is_ok()
        );
        assert_eq!(
            body(county, ProposingBody::SpecialCommittee)
                .validate(&code(county))
                .unwrap_err()
                .field,
            "committee"
        );
        assert!(
            body(county, ProposingBody::SupremeCourt)
                .validate(&code(county))
                .is_err()
        );
        assert!(
            body(national, ProposingBody::SupremeCourt)
                .validate(&code(national))
                .is_ok()
        );
    }
}
