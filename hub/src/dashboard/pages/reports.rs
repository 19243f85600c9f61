//! The yearly reports a congress publishes, as printable pages: a region's 建议办理情况报告 and
//! a delegate's 年度履职报告. Every figure comes from what the dashboard's pages show: the
//! report on suggestions reads the same rollup as 建议办理 (cut to the year where a series has
//! months), the delegate's report the same duty record as 履职档案. The print style sheet
//! drops the navigation, so the browser's print (or `chromium --print-to-pdf`) gives the
//! report alone on A4.

use axum::extract::{Path, Query, State};
use axum::response::Html;
use chrono::Datelike;
use maud::{Markup, html};
use renda_node::record::RecordId;
use renda_node::record::motion::MotionState;
use renda_node::record::quota::Standing;
use renda_node::record::rollup::{Metrics, Period};
use renda_node::record::suggestion::AnswerClass;

use super::{Dashboard, PageError, Params, display_name, given, percent, time};

/// The year a report covers: `?year=`, or this year.
fn year_of(params: &Params) -> Result<i32, PageError> {
    match given(&params.year) {
        None => Ok(renda_node::calendar::today().year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (1949..=9999).contains(y))
            .ok_or_else(|| PageError::bad("year", "须为四位年份，如 2026")),
    }
}

/// A figure in a report's text, marked so a reader program (and the tests) can find it.
fn fig(name: &str, value: impl std::fmt::Display) -> Markup {
    html! { span.fig data-figure=(name) { (value) } }
}

/// Part of a whole, as a report says it: `12 件（占 40.0%）`.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        format!("{part} 件")
    } else {
        format!("{part} 件（占 {:.1}%）", part as f64 * 100.0 / whole as f64)
    }
}

fn print_hint() -> Markup {
    html! {
        p.print-hint.no-print.meta {
            "本页为可打印的报告：使用浏览器的“打印”（Ctrl+P）即可得到 A4 版面，导航不会打印。"
        }
    }
}

/// 建议办理情况报告: how the suggestions of a region (this node's, or a descendant's) were
/// handled, from its rollup.
pub(crate) async fn suggestions(
    State(d): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let year = year_of(&params)?;
    let period =
        Period::parse(&format!("{year:04}")).map_err(|rule| PageError::bad("year", rule))?;
    let (shown, ()) = d.read(&params, |_, _, _| Ok(())).await?;
    let r = &shown.rollup;
    let region = shown.region;
    let name = display_name(&r.name, &region);
    let t: Metrics = r.total.in_period(&period);
    let made: u64 = t.suggestions_by_month.values().sum();
    let held = t.suggestions_total();
    let closed = t.suggestions.get("closed").copied().unwrap_or(0);
    let classes: u64 = t.answer_classes.values().sum();
    let body = html! {
        (print_hint())
        article.report {
            h1 { (name) "关于" (year) "年代表建议办理情况的报告" }
            p.sub { "数据截至 " (time(r.computed_at)) "（北京时间），来自本节点的汇总" }
            h2 { "一、建议的提出" }
            p.fig-line {
                (year) "年，本辖区代表提出建议 " (fig("suggestions_made", made)) " 件。"
                "本辖区现有代表建议 " (fig("suggestions_total", held)) " 件，其中待审查 "
                (fig("submitted", t.suggestions.get("submitted").copied().unwrap_or(0))) " 件，不予立案 "
                (fig("not_accepted", t.suggestions.get("not_accepted").copied().unwrap_or(0))) " 件。"
            }
            h2 { "二、交办和答复" }
            p.fig-line {
                "已交办承办单位 " (fig("assigned", t.assigned_total())) " 件；已答复 "
                (fig("answered", t.answered)) " 件，办复率 " (fig("answered_rate", percent(t.answered_rate())))
                "；按期答复 " (fig("answered_on_time", t.answered_on_time)) " 件，按时答复率 "
                (fig("on_time_rate", percent(t.on_time_rate()))) "；目前超期未答复 "
                (fig("overdue", t.overdue)) " 件。"
            }
            @if classes > 0 {
                p.fig-line {
                    "答复类别："
                    @for (i, class) in AnswerClass::ALL.iter().enumerate() {
                        @if i > 0 { "，" }
                        (class.label()) " " (fig(&format!("class_{}", class.as_str()), share(t.answer_classes.get(class.as_str()).copied().unwrap_or(0), classes)))
                    }
                    "。"
                }
            }
            h2 { "三、代表评价和办结" }
            p.fig-line {
                "代表已评价 " (fig("evaluated", t.evaluated)) " 件，其中满意和基本满意 "
                (fig("satisfied", t.satisfied)) " 件，满意率 " (fig("satisfaction_rate", percent(t.satisfaction_rate())))
                "。已办结（销号）" (fig("closed", closed)) " 件，办结率 "
                (fig("closed_rate", percent(t.closed_rate()))) "。"
            }
            h2 { "四、议案" }
            p.fig-line {
                "本辖区共有代表议案 " (fig("motions_total", t.motions_total())) " 件"
                @for state in MotionState::ALL.iter().filter(|s| **s != MotionState::Draft) {
                    "，" (state.label()) " " (fig(&format!("motions_{}", state.as_str()), t.motions.get(state.as_str()).copied().unwrap_or(0))) " 件"
                }
                "。"
            }
            @if !r.children.is_empty() {
                h2 { "五、各地办理情况" }
                table {
                    thead { tr { th { "地区" } th { "建议" } th { "办复率" } th { "办结率" } th { "满意率" } th { "超期未答复" } } }
                    tbody {
                        @for (code, child) in &r.children {
                            @let c = &child.total;
                            tr data-region=(code) {
                                td { (if child.name.is_empty() { code.clone() } else { child.name.clone() }) }
                                td.n { (c.suggestions_total()) }
                                td.n { (percent(c.answered_rate())) }
                                td.n { (percent(c.closed_rate())) }
                                td.n { (percent(c.satisfaction_rate())) }
                                td.n { (c.overdue) }
                            }
                        }
                    }
                }
            }
            p.meta {
                "说明：各状态的件数为截至上述时间的累计数；本年提出的件数按提出月份统计。"
                "与看板“建议办理”页使用同一份汇总。"
            }
        }
    };
    Ok(d.page("/suggestions", "建议办理情况报告", &shown, body))
}

/// 年度履职报告: a delegate's year, from the same duty record as 履职档案.
pub(crate) async fn delegate(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let id = RecordId::parse("id", &id).map_err(|e| PageError::bad("id", e.rule))?;
    let year = year_of(&params)?;
    let root = Params::default();
    let (shown, duty) = d
        .read(&root, move |s, _, _| s.duty_record(&id, year))
        .await?;
    let view = renda_node::record::view::view(&duty.delegate, None);
    let name = view
        .fields
        .iter()
        .find(|(k, _)| *k == "姓名")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| duty.delegate.header.id.to_string());
    let congress = display_name(&shown.rollup.name, &shown.region);
    let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
    for a in &duty.activities {
        let kind = a.summary["kind"].as_str().unwrap_or("other");
        let label = renda_node::record::activity::ActivityKind::parse("kind", kind)
            .map(|k| k.label().to_string())
            .unwrap_or_else(|_| kind.to_string());
        *by_kind.entry(label).or_default() += 1;
    }
    let body = html! {
        (print_hint())
        article.report {
            h1 { (name) " " (year) "年度履职报告" }
            p.sub { (congress) "　人大代表履职档案" }
            h2 { "一、参加活动" }
            p.fig-line {
                (year) "年参加代表活动 " (fig("activities", duty.activities.len())) " 次，其中接待选民 "
                (fig("receptions", duty.receptions)) " 次"
                @for (kind, n) in &by_kind { "；" (kind) " " (n) " 次" }
                "。"
            }
            h2 { "二、提出建议" }
            p.fig-line { "领衔或联名提出建议 " (fig("suggestions", duty.suggestions.len())) " 件。" }
            @if !duty.suggestions.is_empty() {
                table {
                    thead { tr { th { "提出日期" } th { "标题" } th { "办理状态" } } }
                    tbody {
                        @for s in &duty.suggestions {
                            tr {
                                td { (s.occurred_on.map(|d| d.to_string()).unwrap_or_default()) }
                                td { (s.label) }
                                td { (s.status.as_deref().map(super::suggestion_state).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            h2 { "三、履职要求完成情况" }
            @match &duty.standing {
                None => p { "本级人大未设定适用的履职要求。" }
                Some(s) => {
                    p.fig-line {
                        "对照本级人大的履职要求，本年度："
                        (fig("standing", s.standing.label()))
                        @if s.standing == Standing::OnTrack || s.standing == Standing::Behind { "（年度尚未结束，按已过天数折算进度）" }
                        "。"
                    }
                    table {
                        thead { tr { th { "要求" } th { "完成" } th { "应完成" } th { "情况" } } }
                        tbody {
                            @for x in &s.judgements {
                                tr data-standing=(x.judgement.standing.as_str()) {
                                    td { (x.rule.describe()) }
                                    td.n { (x.judgement.have) }
                                    td.n { (x.judgement.need) }
                                    td { (x.judgement.standing.label()) }
                                }
                            }
                        }
                    }
                }
            }
            p.meta { "与看板“履职档案”页使用同一份履职记录。" }
        }
    };
    Ok(d.page("/quotas", "年度履职报告", &shown, body))
}
