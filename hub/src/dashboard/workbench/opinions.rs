//! Constituents' opinions on the workbench: 收集 (`/new/opinion`), and the forms of the steps
//! the model offers this node: 当场答复, 转交 (to a body, or to a congress above, which then finds
//! it in its 待办), 开始办理, 办结, and the constituent's 评价.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::access::Role;
use renda_node::office::Contact;
use renda_node::record::opinion::{
    Opinion, OpinionAction, OpinionFields, OpinionSource, OpinionStep, offered_steps,
};
use renda_node::record::suggestion::Satisfaction;
use renda_node::record::{Record, RecordId};
use renda_node::region::RegionCode;
use renda_node::store::{Store, StoreError};

use super::suggestions::delegate_options;
use super::{Refused, StepContext, apply, congress_label, created, step_form};
use crate::dashboard::forms::{Posted, Refusal, Shown, options};
use crate::dashboard::pages::Params;
use crate::dashboard::{Dashboard, PageError, session};

/// The forms of the steps this node may take on the opinion now.
pub(super) fn steps(
    me: RegionCode,
    record: &Record,
    o: &Opinion,
    version: i64,
    context: &StepContext,
    today: NaiveDate,
    refused: Option<&Refused>,
) -> Vec<Markup> {
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
            let (shown, open) = match refused {
                Some(r) if r.step == name => (
                    Shown {
                        posted: Some(&r.posted),
                        refusal: Some(&r.refusal),
                    },
                    true,
                ),
                _ => (Shown::default(), false),
            };
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

fn new_form(d: &Dashboard, shown: Shown<'_>, delegates: &[(String, String)]) -> Markup {
    let today = renda_node::calendar::today();
    let mut receivers = vec![(String::new(), "（无）".to_string())];
    receivers.extend(delegates.iter().cloned());
    html! {
        h1 { "登记民情" }
        p.meta { "群众的姓名和电话作为个人信息单独保存，只同步到上一级，不在看板显示。" }
        form.work.new method="post" action="/new/opinion" {
            (shown.refusal_markup())
            (shown.guards(None))
            (shown.select("source", "source", "来源",
                &options(OpinionSource::ALL, OpinionSource::as_str, OpinionSource::label), "reception"))
            (shown.textarea("content", "content", "反映内容", true))
            (shown.text("place", "place", "所在地点", false))
            (shown.input("region", "region", "所在地区代码（默认本节点）", "text", &d.me.to_string(), true))
            (shown.text("category", "category", "类别（可留空）", false))
            (shown.select("delegate", "delegate", "接待代表", &receivers, ""))
            (shown.text("contact_name", "contact_name", "群众姓名（可留空）", false))
            (shown.input("contact_phone", "contact_phone", "联系电话（可留空）", "tel", "", false))
            (shown.date("date", "收集日期", today))
            button type="submit" data-action="receive" { "登记" }
        }
    }
}

fn delegates(s: &Store, me: RegionCode) -> Result<Vec<(String, String)>, StoreError> {
    delegate_options(s, me)
}

/// GET `/new/opinion`.
pub(crate) async fn new_opinion(State(d): State<Dashboard>) -> Result<Html<String>, PageError> {
    session::require(Role::Clerk)?;
    let me = d.me;
    let (shown, delegates) = d
        .read(&Params::default(), move |s, _, _| delegates(s, me))
        .await?;
    Ok(d.page(
        "/todo",
        "登记民情",
        &shown,
        new_form(&d, Shown::default(), &delegates),
    ))
}

/// POST `/new/opinion`: 收集 through `office::add_opinion`.
pub(crate) async fn receive(
    State(d): State<Dashboard>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let credential = session::require(Role::Clerk)?;
    let posted = Posted::parse(&body)?;
    let today = renda_node::calendar::today();
    let outcome = match fields(&posted, today) {
        Err(refusal) => Err(refusal),
        Ok((fields, contact, date)) => {
            apply(&d, &credential.name, &posted, None, move |tx, user| {
                renda_node::office::add_opinion(tx, user, fields, contact, date).map(|h| h.id)
            })
            .await?
        }
    };
    let refused = match outcome {
        Err(refusal) => refusal,
        Ok(applied) => return Ok(created(applied)),
    };
    let me = d.me;
    let (shown, delegates) = d
        .read(&Params::default(), move |s, _, _| delegates(s, me))
        .await?;
    let form = new_form(
        &d,
        Shown {
            posted: Some(&posted),
            refusal: Some(&refused),
        },
        &delegates,
    );
    Ok((
        StatusCode::BAD_REQUEST,
        d.page("/todo", "登记民情", &shown, form),
    )
        .into_response())
}

fn fields(
    posted: &Posted,
    today: NaiveDate,
) -> Result<(OpinionFields, Contact, NaiveDate), Refusal> {
    let delegate = match posted.get("delegate") {
        "" => None,
        text => Some(RecordId::parse("delegate", text)?),
    };
    Ok((
        OpinionFields {
            source: OpinionSource::parse("source", posted.get("source"))?,
            content: posted.text("content", "反映内容")?,
            place: posted.get("place").to_string(),
            region: RegionCode::parse("region", posted.get("region"))?,
            delegate,
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
