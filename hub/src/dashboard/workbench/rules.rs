//! Duty rules and 议案 on the workbench: a duty rule of this congress set
//! (`/new/quota-rule`, replacing the one of the same requirement from its first day) and ended
//! on its page; a motion registered (`/new/motion`) and the 主席团's decision on its page. Each
//! calls the office operation `renda quota …` and `renda motion …` call.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::office::{DecisionDraft, MotionDraft, ProposerDraft, QuotaRuleDraft, QuotaRuleSet};
use renda_node::record::activity::ActivityKind;
use renda_node::record::group::GroupKind;
use renda_node::record::motion::{MotionState, ProposingBody};
use renda_node::record::quota::{QuotaCounts, QuotaPeriod, QuotaSubject};
use renda_node::record::{Body, Record, RecordId, RecordKind};
use renda_node::region::RegionCode;
use renda_node::store::{Store, StoreError, WriteTx};

use super::records::{NewRecord, ids, optional_id, optional_number};
use super::suggestions::delegate_options;
use super::{Refused, StepContext, StepWrite, guarded_step};
use crate::dashboard::forms::{Posted, Refusal, Shown, options, with_none};

/// 设定履职要求: a duty rule of this congress.
pub(crate) struct NewQuotaRule(QuotaRuleDraft);

impl NewRecord for NewQuotaRule {
    const PATH: &'static str = "/new/quota-rule";
    const TITLE: &'static str = "设定履职要求";
    const NOTE: &'static str = "同一要求（对象、计数内容、周期相同）已有规定时，原规定在新规定生效之日停止，往年仍按当时的规定评判；相同的规定再设定一次不作改动。";
    const SUBMIT: &'static str = "设定";
    type Choices = ();

    fn fields(shown: &Shown<'_>, _: &(), _: RegionCode, today: NaiveDate) -> Markup {
        let kinds = with_none(
            "（全部小组）",
            &options(GroupKind::ALL, GroupKind::as_str, GroupKind::label),
        );
        html! {
            (shown.select("subject", "subject", "对象", &options(QuotaSubject::ALL, QuotaSubject::as_str, QuotaSubject::label), "group"))
            (shown.select("group_kind", "group_kind", "小组类型", &kinds, ""))
            (shown.select("counts", "counts", "计数内容", &options(QuotaCounts::ALL, QuotaCounts::as_str, QuotaCounts::label), "activities"))
            (shown.multi_select("activity_kind", "activity_kind", "计入的活动类型（不选则全部计入）",
                &options(ActivityKind::ALL, ActivityKind::as_str, ActivityKind::label)))
            (shown.select("period", "period", "周期", &options(QuotaPeriod::ALL, QuotaPeriod::as_str, QuotaPeriod::label), "year"))
            (shown.input("minimum", "minimum", "每个周期至少", "number", "", true))
            (shown.input("from", "from", "生效日期", "date", &today.to_string(), true))
            (shown.text("basis", "basis", "依据（如《代表履职管理办法》第八条）", false))
        }
    }

    fn parse(posted: &Posted, _: RegionCode, today: NaiveDate) -> Result<Self, Refusal> {
        let activity_kinds = posted
            .all("activity_kind")
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(|k| ActivityKind::parse("activity_kind", k))
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(NewQuotaRule(QuotaRuleDraft {
            subject: QuotaSubject::parse("subject", posted.get("subject"))?,
            group_kind: match posted.get("group_kind") {
                "" => None,
                k => Some(GroupKind::parse("group_kind", k)?),
            },
            counts: QuotaCounts::parse("counts", posted.get("counts"))?,
            activity_kinds,
            period: QuotaPeriod::parse("period", posted.get("period"))?,
            minimum: optional_number(posted, "minimum", "最低次数")?
                .ok_or_else(|| Refusal::field("minimum", "最低次数不能为空"))?,
            from: posted.date("from", today)?,
            basis: posted.optional("basis"),
        }))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        match renda_node::office::set_quota_rule(tx, user, self.0)? {
            QuotaRuleSet::Created { id, .. } | QuotaRuleSet::Unchanged(id) => Ok(id),
        }
    }
}

/// 登记议案 to this congress.
pub(crate) struct NewMotion(MotionDraft, NaiveDate);

impl NewRecord for NewMotion {
    const PATH: &'static str = "/new/motion";
    const TITLE: &'static str = "登记议案";
    const NOTE: &'static str = "代表联名提出（乡镇5人、县级10人、设区的市以上30人以上），或由有权提出议案的机关提出；须在主席团规定的截止日期前提出。";
    const SUBMIT: &'static str = "登记";
    type Choices = Vec<(String, String)>;

    fn choices(s: &Store, me: RegionCode) -> Result<Self::Choices, StoreError> {
        delegate_options(s, me)
    }

    fn fields(
        shown: &Shown<'_>,
        delegates: &Self::Choices,
        _: RegionCode,
        today: NaiveDate,
    ) -> Markup {
        let leads = with_none("（由机关提出时不选）", delegates);
        let bodies = with_none(
            "（由代表联名提出时不选）",
            &options(
                ProposingBody::ALL,
                ProposingBody::as_str,
                ProposingBody::label,
            ),
        );
        html! {
            (shown.text("title", "title", "案由", true))
            (shown.textarea("body", "body", "案据和方案", true))
            (shown.text("session", "session", "会议（如 十七届三次会议）", true))
            (shown.input("deadline", "deadline", "提出议案截止日期", "date", "", true))
            fieldset {
                legend { "提出者：代表联名，或有权提出议案的机关" }
                (shown.select("lead", "lead", "领衔代表", &leads, ""))
                (shown.multi_select("cosigner", "cosigner", "附议代表（可多选）", delegates))
                (shown.select("proposing_body", "proposing_body", "提出机关", &bodies, ""))
                (shown.text("body_name", "body_name", "专门委员会名称（由专门委员会提出时）", false))
            }
            (shown.date("date", "提出日期", today))
        }
    }

    fn parse(posted: &Posted, _: RegionCode, today: NaiveDate) -> Result<Self, Refusal> {
        let proposer = match (optional_id(posted, "lead")?, posted.get("proposing_body")) {
            (Some(lead), "") => ProposerDraft::Delegates {
                lead,
                cosigners: ids(posted, "cosigner")?,
            },
            (None, "") => {
                return Err(Refusal::field("lead", "请选择领衔代表或提出机关"));
            }
            (None, body) => ProposerDraft::Body {
                body: ProposingBody::parse("proposing_body", body)?,
                name: posted.optional("body_name"),
            },
            (Some(_), _) => {
                return Err(Refusal::field(
                    "proposing_body",
                    "议案由代表联名或由机关提出，二者只能选一",
                ));
            }
        };
        let deadline = match posted.get("deadline") {
            "" => return Err(Refusal::field("deadline", "截止日期不能为空")),
            _ => posted.date("deadline", today)?,
        };
        Ok(NewMotion(
            MotionDraft {
                title: posted.text("title", "案由")?,
                body: posted.text("body", "案据和方案")?,
                session: posted.text("session", "会议")?,
                deadline,
                proposer,
            },
            posted.date("date", today)?,
        ))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::submit_motion(tx, user, self.0, self.1).map(|h| h.id)
    }
}

/// Ending a rule in force, and the 主席团's decision on a motion, at the congress's own node.
pub(super) fn steps(
    me: RegionCode,
    record: &Record,
    version: i64,
    context: &StepContext,
    today: NaiveDate,
    refused: Option<&Refused>,
) -> Vec<(String, Markup)> {
    if record.header.home != me {
        return Vec::new();
    }
    let id = record.header.id;
    match &record.body {
        Body::QuotaRule(rule) if rule.until.is_none() => vec![guarded_step(
            &id,
            "end",
            "停止执行",
            version,
            refused,
            today,
            |_| html! { p.meta { "自所填日期起不再执行这项要求；之前的期间仍按它评判。" } },
        )],
        Body::Motion(m) => {
            let status = m.fold(&record.header).0;
            if !matches!(status.state, MotionState::Submitted | MotionState::Referred) {
                return Vec::new();
            }
            let decisions = vec![
                ("agenda".to_string(), "列入会议议程".to_string()),
                ("refer".to_string(), "交专门委员会审议".to_string()),
                ("convert".to_string(), "转作建议".to_string()),
            ];
            let committees: Vec<(String, String)> = context
                .committees
                .iter()
                .map(|c| (c.clone(), c.clone()))
                .collect();
            vec![guarded_step(
                &id,
                "decide",
                "主席团决定",
                version,
                refused,
                today,
                |shown| {
                    html! {
                        (shown.select("decide-decision", "decision", "决定", &decisions, "agenda"))
                        (shown.select("decide-committee", "committee", "专门委员会（交付审议时）", &committees, ""))
                        (shown.text("decide-category", "category", "建议类别（转作建议时）", false))
                    }
                },
            )]
        }
        _ => Vec::new(),
    }
}

pub(super) fn action(
    kind: RecordKind,
    step: &str,
    posted: &Posted,
    today: NaiveDate,
) -> Result<StepWrite, Refusal> {
    let date = posted.date("date", today)?;
    match (kind, step) {
        (RecordKind::QuotaRule, "end") => Ok(Box::new(move |tx, _, id| {
            renda_node::office::end_quota_rule(tx, id, date).map(drop)
        })),
        (RecordKind::Motion, "decide") => {
            let decision = match posted.get("decision") {
                "agenda" => DecisionDraft::ListOnAgenda,
                "refer" => DecisionDraft::ReferToCommittee(posted.text("committee", "专门委员会")?),
                "convert" => DecisionDraft::ConvertToSuggestion {
                    category: posted.text("category", "建议类别")?,
                },
                _ => return Err(Refusal::field("decision", "请选择主席团的决定")),
            };
            Ok(Box::new(move |tx, user, id| {
                renda_node::office::decide_motion(tx, user, id, decision, date).map(drop)
            }))
        }
        (kind, step) => Err(Refusal::field(
            "step",
            format!(
                "{}没有“{}”这一步",
                kind.label(),
                renda_node::validate::quote(step)
            ),
        )),
    }
}
