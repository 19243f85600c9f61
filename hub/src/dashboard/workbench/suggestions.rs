//! Suggestions on the workbench: 提交 with co-signers (`/new/suggestion`), and the forms of every
//! handling step the model offers this node (审查立案/不予立案, 交办 with 主办/协办/分办, 退回,
//! 延期, 答复 with its class, 评价, 回头看, 重点督办, 销号; 重新办理 follows a 不满意 evaluation).

use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::office::SuggestionDraft;
use renda_node::record::suggestion::{
    AnswerClass, Satisfaction, Suggestion, SuggestionAction, SuggestionStep, UnitAssignment,
    UnitRole, offered_steps,
};
use renda_node::record::{Record, RecordId, RecordKind};
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, Store, StoreError, WriteTx};

use super::records::{NewRecord, ids};
use super::{Refused, congress_label, congresses_above, shown_for, step_form};
use crate::dashboard::forms::{Posted, Refusal, Shown, options, with_none};

/// Rows of units a 交办 form offers; rows left empty are ignored.
const UNIT_ROWS: usize = 5;

/// The forms of the steps this node may take on the suggestion now.
pub(super) fn steps(
    me: RegionCode,
    record: &Record,
    sg: &Suggestion,
    version: i64,
    today: NaiveDate,
    refused: Option<&Refused>,
) -> Vec<(String, Markup)> {
    let status = sg.fold(&record.header).0;
    let offered = offered_steps(&record.header, &sg.fields, &status, me, today);
    let id = record.header.id;
    let units_waiting: Vec<(String, String)> = status
        .units
        .iter()
        .filter(|u| u.role != UnitRole::Assist)
        .filter(|u| {
            status.state == renda_node::record::suggestion::SuggestionState::Tracking
                || !status.answers.contains_key(&u.unit)
        })
        .map(|u| (u.unit.clone(), format!("{}（{}）", u.unit, u.role.label())))
        .collect();
    let all_units: Vec<(String, String)> = status
        .units
        .iter()
        .filter(|u| !status.answers.contains_key(&u.unit))
        .map(|u| (u.unit.clone(), format!("{}（{}）", u.unit, u.role.label())))
        .collect();
    offered
        .into_iter()
        .map(|step| {
            let name = step.as_str();
            let (shown, open) = shown_for(refused, name);
            let p = |field: &str| format!("{name}-{field}");
            let fields = match step {
                SuggestionStep::Screen => html! {
                    (shown.select(&p("decision"), "decision", "审查结果", &[
                        ("accept".into(), "立案".into()),
                        ("reject".into(), "不予立案".into()),
                    ], "accept"))
                    (shown.input(&p("number"), "number", "编号（立案时可留空，自动取下一号）", "number", "", false))
                    (shown.textarea(&p("reason"), "reason", "不予立案的理由", false))
                },
                SuggestionStep::Assign => html! {
                    fieldset {
                        legend { "承办单位：一个主办加若干协办，或两个以上分办" }
                        @for row in 1..=UNIT_ROWS {
                            (unit_row(&shown, name, row))
                        }
                    }
                },
                SuggestionStep::SendBack => html! {
                    (shown.select(&p("unit"), "unit", "退回的单位", &all_units, ""))
                    (shown.textarea(&p("reason"), "reason", "退回理由", true))
                },
                SuggestionStep::Extend => html! {
                    (shown.input(&p("until"), "until", "延期至", "date",
                        &status.due.map(|d| d.to_string()).unwrap_or_default(), true))
                    (shown.textarea(&p("reason"), "reason", "延期理由", true))
                },
                SuggestionStep::Answer => html! {
                    (shown.select(&p("unit"), "unit", "答复单位", &units_waiting, ""))
                    (shown.select(&p("class"), "class", "答复类别",
                        &options(AnswerClass::ALL, AnswerClass::as_str, AnswerClass::label), "A"))
                    (shown.textarea(&p("text"), "text", "答复内容", true))
                },
                SuggestionStep::Evaluate => html! {
                    (shown.select(&p("result"), "result", "代表评价",
                        &options(Satisfaction::ALL, Satisfaction::as_str, Satisfaction::label), "satisfied"))
                    (shown.textarea(&p("comment"), "comment", "评价意见", false))
                },
                SuggestionStep::Track => html! {
                    (shown.textarea(&p("note"), "note", "回头看情况", true))
                    (shown.checkbox(&p("solved"), "solved", "问题已解决，代表满意，转待销号"))
                },
                SuggestionStep::Close => html! {
                    p.meta { "答复为 A 类或 D 类且代表满意或基本满意，或回头看确认已解决：销号后办理结束。" }
                },
                SuggestionStep::Supervise => html! {
                    input type="hidden" name="key" value=(!status.key_supervision);
                    p.meta { @if status.key_supervision { "取消重点督办。" } @else { "列为重点督办。" } }
                },
            };
            let label = match step {
                SuggestionStep::Supervise if status.key_supervision => "取消重点督办",
                SuggestionStep::Supervise => "列为重点督办",
                other => other.label(),
            };
            let body = html! {
                (shown.refusal_markup())
                (shown.guards(Some(version)))
                (fields)
                (shown.date(&p("date"), "日期", today))
            };
            step_form(&id, name, label, open, body)
        })
        .collect()
}

fn unit_row(shown: &Shown<'_>, step: &str, row: usize) -> Markup {
    // Repeated names keep their order; the row's values are read back by position.
    let typed = |name: &str| {
        shown
            .posted
            .and_then(|p| p.all(name).get(row - 1).map(|v| v.to_string()))
            .unwrap_or_default()
    };
    let unit = typed("unit");
    let role = match typed("role") {
        r if r.is_empty() && row == 1 => "lead".to_string(),
        r if r.is_empty() => "assist".to_string(),
        r => r,
    };
    let uid = format!("{step}-unit-{row}");
    let rid = format!("{step}-role-{row}");
    html! {
        div.unit-row {
            label for=(uid) { "单位" (row) }
            input id=(uid) name="unit" type="text" value=(unit);
            label for=(rid) { "方式" }
            select id=(rid) name="role" {
                @for r in UnitRole::ALL {
                    option value=(r.as_str()) selected[r.as_str() == role] { (r.label()) }
                }
            }
        }
    }
}

/// The step `step` as its form describes it, with the day it took effect.
pub(super) fn action(
    step: &str,
    posted: &Posted,
    today: NaiveDate,
) -> Result<(SuggestionAction, NaiveDate), Refusal> {
    let step = SuggestionStep::parse("step", step)?;
    let date = posted.date("date", today)?;
    let action = match step {
        SuggestionStep::Screen => match posted.get("decision") {
            "accept" => SuggestionAction::Screen {
                accepted: true,
                number: match posted.get("number") {
                    "" => None,
                    n => Some(
                        n.parse()
                            .map_err(|_| Refusal::field("number", "编号须为正整数"))?,
                    ),
                },
                reason: None,
            },
            "reject" => SuggestionAction::Screen {
                accepted: false,
                number: None,
                reason: Some(posted.text("reason", "不予立案的理由")?),
            },
            _ => return Err(Refusal::field("decision", "请选择立案或不予立案")),
        },
        SuggestionStep::Assign => {
            let units = posted.all("unit");
            let roles = posted.all("role");
            let mut assigned = Vec::new();
            for (i, unit) in units.iter().enumerate() {
                if unit.is_empty() {
                    continue;
                }
                let role = UnitRole::parse("role", roles.get(i).copied().unwrap_or(""))?;
                assigned.push(UnitAssignment {
                    unit: unit.to_string(),
                    role,
                });
            }
            if assigned.is_empty() {
                return Err(Refusal::field("unit", "至少填写一个承办单位"));
            }
            SuggestionAction::Assign { units: assigned }
        }
        SuggestionStep::SendBack => SuggestionAction::SendBack {
            unit: posted.text("unit", "退回的单位")?,
            reason: posted.text("reason", "退回理由")?,
        },
        SuggestionStep::Extend => SuggestionAction::Extend {
            until: match posted.get("until") {
                "" => return Err(Refusal::field("until", "延期至不能为空")),
                _ => posted.date("until", today)?,
            },
            reason: posted.text("reason", "延期理由")?,
        },
        SuggestionStep::Answer => SuggestionAction::Answer {
            unit: posted.text("unit", "答复单位")?,
            class: AnswerClass::parse("class", posted.get("class"))?,
            text: posted.text("text", "答复内容")?,
        },
        SuggestionStep::Evaluate => SuggestionAction::Evaluate {
            result: Satisfaction::parse("result", posted.get("result"))?,
            comment: posted.get("comment").to_string(),
        },
        SuggestionStep::Track => SuggestionAction::Track {
            note: posted.text("note", "回头看情况")?,
            solved: posted.get("solved") == "true",
        },
        SuggestionStep::Close => SuggestionAction::Close,
        SuggestionStep::Supervise => SuggestionAction::Supervise {
            key: match posted.get("key") {
                "true" => true,
                "false" => false,
                _ => return Err(Refusal::field("key", "须为 true 或 false")),
            },
        },
    };
    Ok((action, date))
}

/// What the new-suggestion form offers: the delegates held here and the congresses a
/// suggestion may be addressed to (this one and those above).
#[derive(Default)]
pub(crate) struct Choices {
    delegates: Vec<(String, String)>,
    congresses: Vec<(String, String)>,
}

/// Persons held here, homed in this node's subtree, not merged away, by name; each labelled
/// with the end of its id, so namesakes can be told apart.
pub(crate) fn delegate_options(
    s: &Store,
    me: RegionCode,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = s.list(&ListQuery {
        kind: Some(RecordKind::Delegate),
        within: Some(me),
        ..ListQuery::default()
    })?;
    let mut out: Vec<(String, String)> = rows
        .into_iter()
        .filter(|r| r.summary.get("merged_into").is_none_or(|v| v.is_null()))
        .map(|r| {
            let id = r.id.to_string();
            let tail = &id[id.len() - 6..];
            (id.clone(), format!("{}（…{tail}）", r.label))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// This congress and the congresses above it, as choices.
pub(crate) fn congress_options(
    s: &Store,
    me: RegionCode,
) -> Result<Vec<(String, String)>, StoreError> {
    let own = s.rollup(&me)?.map(|r| r.name).unwrap_or_default();
    let mut congresses = vec![(me.to_string(), congress_label(&me, &own))];
    for (r, name) in congresses_above(s, &me)? {
        congresses.push((r.to_string(), congress_label(&r, &name)));
    }
    Ok(congresses)
}

/// 提交: a suggestion as its form describes it.
pub(crate) struct NewSuggestion(SuggestionDraft, NaiveDate);

impl NewRecord for NewSuggestion {
    const PATH: &'static str = "/new/suggestion";
    const TITLE: &'static str = "提交代表建议";
    const NOTE: &'static str = "领衔代表和联名代表须是所提交人大的在任代表。建议提交后由该人大审查立案、交办；答复后由领衔代表所在节点录入评价。";
    const SUBMIT: &'static str = "提交建议";
    type Choices = Choices;

    fn choices(s: &Store, me: RegionCode) -> Result<Choices, StoreError> {
        Ok(Choices {
            delegates: delegate_options(s, me)?,
            congresses: congress_options(s, me)?,
        })
    }

    fn fields(shown: &Shown<'_>, choices: &Choices, me: RegionCode, today: NaiveDate) -> Markup {
        let leads = with_none("（请选择）", &choices.delegates);
        html! {
            (shown.text("title", "title", "标题", true))
            (shown.textarea("body", "body", "内容", true))
            (shown.text("category", "category", "类别（如 农业农村、城乡建设）", true))
            (shown.select("lead", "lead", "领衔代表", &leads, ""))
            (shown.multi_select("cosigner", "cosigner", "联名代表（可多选）", &choices.delegates))
            (shown.select("to", "to", "提交给", &choices.congresses, &me.to_string()))
            (shown.text("session", "session", "会议（如 十七届三次会议；闭会期间留空）", false))
            (shown.date("date", "提出日期", today))
        }
    }

    fn parse(posted: &Posted, _me: RegionCode, today: NaiveDate) -> Result<Self, Refusal> {
        let lead = match posted.get("lead") {
            "" => return Err(Refusal::field("lead", "请选择领衔代表")),
            text => RecordId::parse("lead", text)?,
        };
        Ok(NewSuggestion(
            SuggestionDraft {
                title: posted.text("title", "标题")?,
                body: posted.text("body", "内容")?,
                category: posted.text("category", "类别")?,
                lead,
                cosigners: ids(posted, "cosigner")?,
                addressed_to: RegionCode::parse("to", posted.get("to"))?,
                session: posted.optional("session"),
                group: None,
            },
            posted.date("date", today)?,
        ))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::submit_suggestion(tx, user, self.0, self.1).map(|h| h.id)
    }
}
