//! Constituents' opinions on the workbench: 收集 (`/new/opinion`), and the forms of the steps
//! the model offers this node: 当场答复, 转交 (to a body, or to a congress above, which then finds
//! it in its 待办), 开始办理, 办结, and the constituent's 评价.

use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::office::Contact;
use renda_node::record::opinion::{
    Opinion, OpinionAction, OpinionFields, OpinionSource, OpinionStep, offered_steps,
};
use renda_node::record::suggestion::Satisfaction;
use renda_node::record::{Record, RecordId};
use renda_node::region::RegionCode;
use renda_node::store::{Store, StoreError, WriteTx};

use super::records::{NewRecord, optional_id};
use super::suggestions::delegate_options;
use super::{Refused, StepContext, congress_label, shown_for, step_form};
use crate::dashboard::forms::{Posted, Refusal, Shown, options, with_none};

/// The forms of the steps this node may take on the opinion now.
pub(super) fn steps(
    me: RegionCode,
    record: &Record,
    o: &Opinion,
    version: i64,
    context: &StepContext,
    today: NaiveDate,
    refused: Option<&Refused>,
) -> Vec<(String, Markup)> {
    let status = o.fold(&record.header).0;
    let id = record.header.id;
    let mut congresses = vec![(
        String::new(),
        "（不转交人大，转交给下面填写的单位）".to_string(),
    )];
    congresses.extend(
        context
            .congresses_above
            .iter()
            .map(|(r, name)| (r.to_string(), congress_label(r, name))),
    );
    offered_steps(&record.header, &status, me, today)
        .into_iter()
        .map(|step| {
            let name = step.as_str();
            let (shown, open) = shown_for(refused, name);
            let p = |field: &str| format!("{name}-{field}");
            let fields = match step {
                OpinionStep::AnswerOnSpot => html! {
                    (shown.textarea(&p("reply"), "reply", "答复内容", true))
                },
                OpinionStep::PassOn => html! {
                    (shown.select(&p("congress"), "congress", "转交上级人大", &congresses, ""))
                    (shown.text(&p("to"), "to", "或转交单位（如 镇建设办）", false))
                },
                OpinionStep::Start => html! {
                    (shown.textarea(&p("note"), "note", "办理情况", false))
                },
                OpinionStep::Handle => html! {
                    (shown.textarea(&p("result"), "result", "办理结果", true))
                },
                OpinionStep::Rate => html! {
                    (shown.select(&p("rating"), "rating", "群众评价",
                        &options(Satisfaction::ALL, Satisfaction::as_str, Satisfaction::label), "satisfied"))
                },
            };
            let body = html! {
                (shown.refusal_markup())
                (shown.guards(Some(version)))
                (fields)
                (shown.date(&p("date"), "日期", today))
            };
            step_form(&id, name, step.label(), open, body)
        })
        .collect()
}

/// The step `step` as its form describes it, with the day it took effect. A congress chosen
/// for 转交 is named by its code; the body's name is the congress's when no other was typed.
pub(super) fn action(
    step: &str,
    posted: &Posted,
    today: NaiveDate,
) -> Result<(OpinionAction, NaiveDate), Refusal> {
    let step = OpinionStep::parse("step", step)?;
    let date = posted.date("date", today)?;
    let action = match step {
        OpinionStep::AnswerOnSpot => OpinionAction::AnswerOnSpot {
            reply: posted.text("reply", "答复内容")?,
        },
        OpinionStep::PassOn => {
            let congress = match posted.get("congress") {
                "" => None,
                code => Some(RegionCode::parse("congress", code)?),
            };
            let to = match (posted.get("to"), congress) {
                ("", Some(c)) => format!("{c} 人大"),
                ("", None) => {
                    return Err(Refusal::field("to", "请选择上级人大或填写转交单位"));
                }
                (to, _) => to.to_string(),
            };
            OpinionAction::PassOn { to, congress }
        }
        OpinionStep::Start => OpinionAction::Start {
            note: posted.get("note").to_string(),
        },
        OpinionStep::Handle => OpinionAction::Handle {
            result: posted.text("result", "办理结果")?,
        },
        OpinionStep::Rate => OpinionAction::Rate {
            rating: Satisfaction::parse("rating", posted.get("rating"))?,
        },
    };
    Ok((action, date))
}

/// 收集: an opinion as its form describes it, with the constituent's contact kept apart.
pub(crate) struct NewOpinion(OpinionFields, Contact, NaiveDate);

impl NewRecord for NewOpinion {
    const PATH: &'static str = "/new/opinion";
    const TITLE: &'static str = "登记民情";
    const NOTE: &'static str =
        "群众的姓名和电话作为个人信息单独保存，只同步到上一级，不在看板显示。";
    const SUBMIT: &'static str = "登记";
    type Choices = Vec<(String, String)>;

    fn choices(s: &Store, me: RegionCode) -> Result<Self::Choices, StoreError> {
        delegate_options(s, me)
    }

    fn fields(
        shown: &Shown<'_>,
        delegates: &Self::Choices,
        me: RegionCode,
        today: NaiveDate,
    ) -> Markup {
        let receivers = with_none("（无）", delegates);
        html! {
            (shown.select("source", "source", "来源",
                &options(OpinionSource::ALL, OpinionSource::as_str, OpinionSource::label), "reception"))
            (shown.textarea("content", "content", "反映内容", true))
            (shown.text("place", "place", "所在地点", false))
            (shown.input("region", "region", "所在地区代码（默认本节点）", "text", &me.to_string(), true))
            (shown.text("category", "category", "类别（可留空）", false))
            (shown.select("delegate", "delegate", "接待代表", &receivers, ""))
            (shown.text("contact_name", "contact_name", "群众姓名（可留空）", false))
            (shown.input("contact_phone", "contact_phone", "联系电话（可留空）", "tel", "", false))
            (shown.date("date", "收集日期", today))
        }
    }

    fn parse(posted: &Posted, _me: RegionCode, today: NaiveDate) -> Result<Self, Refusal> {
        Ok(NewOpinion(
            OpinionFields {
                source: OpinionSource::parse("source", posted.get("source"))?,
                content: posted.text("content", "反映内容")?,
                place: posted.get("place").to_string(),
                region: RegionCode::parse("region", posted.get("region"))?,
                delegate: optional_id(posted, "delegate")?,
                activity: None,
                category: posted.optional("category"),
            },
            Contact {
                name: posted.optional("contact_name"),
                phone: posted.optional("contact_phone"),
                id_number: None,
            },
            posted.date("date", today)?,
        ))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::add_opinion(tx, user, self.0, self.1, self.2).map(|h| h.id)
    }
}
