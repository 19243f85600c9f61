//! One handler per page. Each reads what it shows in one call to the store, then renders. A
//! record's page also shows, to a clerk, the forms of the steps this node may take on it
//! (`workbench`); `supervise` is the older form of one of them (重点督办), kept for programs that
//! post it.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use chrono::{DateTime, Datelike, Utc};
use maud::{Markup, html};
use renda_node::record::activity::ActivityKind;
use renda_node::record::delegate::MandateStatus;
use renda_node::record::opinion::OpinionState;
use renda_node::record::rollup::{Metrics, Period, Rollup};
use renda_node::record::suggestion::{AnswerClass, SuggestionState};
use renda_node::record::view::RecordView;
use renda_node::record::{RecordId, RecordKind};
use renda_node::region::{Level, RegionCode};
use renda_node::store::{ListQuery, ListRow, PeerStatus, Store, StoreError};
use serde::Deserialize;

use super::charts::{self, Bar, Column};
use super::session;
use super::{Dashboard, PageError, Place, display_name, link, page_html, percent};
use renda_node::access::Role;

pub(crate) mod reports;

/// Rows on one page of a record list.
const PAGE_ROWS: u32 = 50;

/// Query parameters any page may take; each page reads the ones it needs and checks them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    region: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    period: Option<String>,
    activity_kind: Option<String>,
    answer_class: Option<String>,
    overdue: Option<String>,
    page: Option<String>,
    /// The last record of the previous page: lists page by key, so a page costs its rows
    /// however deep it is.
    after: Option<String>,
    year: Option<String>,
    /// `xlsx` asks a list for its rows as a spreadsheet (`exports`).
    format: Option<String>,
}

/// A list counts no further than this; beyond it the page says "more than".
const COUNT_CAP: u64 = 10_000;

/// Where a list page starts: after a record (a link from the previous page), or at a page
/// number (links from before paging by key).
#[derive(Clone, Copy)]
enum PageStart {
    After(RecordId),
    Number(u32),
}

impl PageStart {
    fn of(params: &Params) -> Result<PageStart, PageError> {
        match given(&params.after) {
            Some(text) => RecordId::parse("after", text)
                .map(PageStart::After)
                .map_err(|e| PageError::bad("after", e.rule)),
            None => page_number(params).map(PageStart::Number),
        }
    }

    /// Sets where `q` starts.
    fn apply(self, q: &mut ListQuery) {
        match self {
            PageStart::After(id) => q.after = Some(id),
            PageStart::Number(n) => q.offset = (n - 1) * PAGE_ROWS,
        }
    }

    fn is_first(self) -> bool {
        matches!(self, PageStart::Number(1))
    }
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A region on a page: the one asked for, its rollup, and the chain from this node down to it.
pub(crate) struct Shown {
    region: RegionCode,
    rollup: Rollup,
    crumbs: Vec<(RegionCode, String)>,
}

impl Dashboard {
    /// The region a page asks for: this node's own when none is given; otherwise one inside
    /// this node's subtree whose rollup arrived here.
    fn region(&self, params: &Params) -> Result<RegionCode, PageError> {
        let Some(text) = given(&params.region) else {
            return Ok(self.me);
        };
        let region =
            RegionCode::parse("region", text).map_err(|e| PageError::bad("region", e.rule))?;
        if !region.is_within(&self.me) {
            return Err(PageError::not_found(format!(
                "region：{region} 不在本节点（{}）的辖区内",
                self.me
            )));
        }
        Ok(region)
    }

    /// Reads the shown region and whatever else the page needs in one call to the store.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        params: &Params,
        more: impl FnOnce(&Store, RegionCode, &Rollup) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(Shown, T), PageError> {
        let region = self.region(params)?;
        let me = self.me;
        let (rollup, crumbs, extra) = self
            .store
            .read(move |s| {
                let Some(rollup) = s.rollup(&region)? else {
                    return Ok((None, Vec::new(), None));
                };
                let mut chain: Vec<RegionCode> = region
                    .ancestors()
                    .into_iter()
                    .filter(|r| r.is_within(&me))
                    .collect();
                chain.reverse();
                let mut crumbs = Vec::new();
                for r in chain {
                    let name = s.rollup(&r)?.map(|r| r.name).unwrap_or_default();
                    crumbs.push((r, name));
                }
                crumbs.push((region, rollup.name.clone()));
                let extra = more(s, region, &rollup)?;
                Ok((Some(rollup), crumbs, Some(extra)))
            })
            .await?;
        match (rollup, extra) {
            (Some(rollup), Some(extra)) => Ok((
                Shown {
                    region,
                    rollup,
                    crumbs,
                },
                extra,
            )),
            _ if region == self.me => Err(PageError::not_found(
                "本节点的汇总还没有算出，请稍候刷新".to_string(),
            )),
            _ => Err(PageError::not_found(format!(
                "region：本节点没有 {region} 的汇总：它还没有同步上来，或不在汇总可达的范围内"
            ))),
        }
    }

    pub(crate) fn page(&self, tab: &str, title: &str, shown: &Shown, body: Markup) -> Html<String> {
        let place = Place {
            tab,
            crumbs: &shown.crumbs,
        };
        page_html(&self.name, title, Some(&place), body)
    }
}

/// A child's row heading in a 下级对比 table: its name, linking to the same tab for that region.
fn child_cell(tab: &str, code: &str, name: &str) -> Markup {
    html! {
        td { @match RegionCode::parse("region", code) {
            Ok(c) => a href=(region_link(tab, &c)) { (display_name(name, &c)) },
            Err(_) => (code),
        } }
    }
}

/// A moment as staff read it: Beijing time.
fn time(t: DateTime<Utc>) -> String {
    t.with_timezone(&renda_node::calendar::china())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A number on a card: what it counts, and where its records are listed when they can be.
fn card(label: &str, metric: &str, value: u64, href: Option<String>) -> Markup {
    html! {
        div.card {
            span.label { (label) }
            @match href {
                Some(href) => a.num href=(href) data-metric=(metric) { (value) },
                None => span.num data-metric=(metric) { (value) },
            }
        }
    }
}

fn rate_card(label: &str, metric: &str, rate: Option<f64>) -> Markup {
    html! {
        div.card {
            span.label { (label) }
            (charts::share(metric, rate))
        }
    }
}

/// The list of records behind a number, in the shown region's subtree.
fn records_link(region: RegionCode, params: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, Option<String>)> = params
        .iter()
        .map(|(k, v)| (*k, Some(v.to_string())))
        .collect();
    all.push(("region", Some(region.to_string())));
    link("/records", &all)
}

fn region_link(tab: &str, region: &RegionCode) -> String {
    link(tab, &[("region", Some(region.to_string()))])
}

/// Whether the children of a rollup are fresh, by the stale list the rollup carries.
fn is_stale(rollup: &Rollup, region: &str) -> bool {
    rollup.stale.iter().any(|s| s.region.as_str() == region)
}

fn level_label(region: &RegionCode) -> &'static str {
    region.level().map(Level::label).unwrap_or("")
}

fn suggestion_state(id: &str) -> String {
    SuggestionState::parse("status", id)
        .map(|s| s.label().to_string())
        .unwrap_or_else(|_| id.to_string())
}

fn opinion_state(id: &str) -> String {
    OpinionState::parse("status", id)
        .map(|s| s.label().to_string())
        .unwrap_or_else(|_| id.to_string())
}

fn activity_kind(id: &str) -> String {
    ActivityKind::parse("activity_kind", id)
        .map(|s| s.label().to_string())
        .unwrap_or_else(|_| id.to_string())
}

/// A record's status in Chinese, whatever its kind.
pub(crate) fn status_label(kind: RecordKind, id: &str) -> String {
    if id == renda_node::record::event::UNKNOWN_STATE {
        return renda_node::record::event::UNKNOWN_STATE_LABEL.to_string();
    }
    match kind {
        RecordKind::Suggestion => suggestion_state(id),
        RecordKind::Opinion => opinion_state(id),
        RecordKind::Delegate | RecordKind::Mandate => MandateStatus::parse("status", id)
            .map(|s| s.label().to_string())
            .unwrap_or_else(|_| id.to_string()),
        RecordKind::Motion => renda_node::record::motion::MotionState::parse("status", id)
            .map(|s| s.label().to_string())
            .unwrap_or_else(|_| id.to_string()),
        _ => id.to_string(),
    }
}

/// One bar per workflow state, in the workflow's order, each linking to the records in it.
fn state_bars<'a>(
    states: impl Iterator<Item = (&'a str, &'a str)>,
    counts: &BTreeMap<String, u64>,
    kind: &str,
    region: RegionCode,
) -> Vec<Bar> {
    states
        .map(|(id, label)| Bar {
            label: label.to_string(),
            value: counts.get(id).copied().unwrap_or(0),
            href: Some(records_link(region, &[("kind", kind), ("status", id)])),
        })
        .collect()
}

/// `"county/serving"` as `县级 在任`.
fn delegate_key(key: &str) -> String {
    let (level, status) = key.split_once('/').unwrap_or((key, ""));
    let level = Level::parse("level", level)
        .map(|l| l.label().to_string())
        .unwrap_or_else(|_| level.to_string());
    format!("{level} {}", status_label(RecordKind::Delegate, status))
}

/// 概览: the subtree's key numbers, its children with theirs and their freshness.
pub(crate) async fn overview(
    State(d): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let (shown, ()) = d.read(&params, |_, _, _| Ok(())).await?;
    let r = &shown.rollup;
    let region = shown.region;
    let t = &r.total;
    let body = html! {
        h1 { (display_name(&r.name, &region)) " 辖区概览" }
        p.meta {
            "区划代码 " (region) " · " (level_label(&region))
            " · 数据计算于 " span data-metric="computed_at" { (time(r.computed_at)) }
            " · 下级 " (r.children.len()) " 个"
            @if !r.stale.is_empty() { "，" span.stale { (r.stale.len()) " 个地区数据滞后" } }
        }
        div.cards {
            (card("代表", "delegates.total", t.delegates_total(), Some(records_link(region, &[("kind", "mandate")]))))
            (card("履职活动", "activities.total", t.activities_total(), Some(records_link(region, &[("kind", "activity")]))))
            (card("代表签到（人次）", "sign_ins", t.sign_ins, None))
            (card("接待群众（人次）", "constituents_received", t.constituents_received, None))
            (card("民情意见", "opinions.total", t.opinions_total(), Some(records_link(region, &[("kind", "opinion")]))))
            (card("代表建议", "suggestions.total", t.suggestions_total(), Some(records_link(region, &[("kind", "suggestion")]))))
            (card("超期未答复", "overdue", t.overdue, Some(records_link(region, &[("kind", "suggestion"), ("overdue", "1")]))))
            (rate_card("按时答复率", "on_time_rate", t.on_time_rate()))
            (rate_card("满意率", "satisfaction_rate", t.satisfaction_rate()))
            (rate_card("小组活动达标率", "group_quota.rate", t.group_quota.rate()))
            (rate_card("代表履职达标率", "delegate_quota.rate", t.delegate_quota.rate()))
        }
        (charts::bars("delegates", "代表（按所属人大层级和状态）", &t.delegates.iter().map(|(key, n)| Bar {
            label: delegate_key(key),
            value: *n,
            href: None,
        }).collect::<Vec<_>>()))
        h2 { "下级与本级" }
        @if r.children.is_empty() {
            p.meta { "本级没有下级节点的汇总。" }
        }
        (children_table(r, region, "/"))
        @if !r.stale.is_empty() {
            h2 { "数据滞后的地区" }
            (stale_table(r))
        }
    };
    Ok(d.page("/", "概览", &shown, body))
}

/// Each child's key numbers with their freshness, and the node's own records as a last row.
fn children_table(r: &Rollup, region: RegionCode, tab: &str) -> Markup {
    let row = |m: &Metrics| {
        html! {
            td.n data-metric="delegates.total" { (m.delegates_total()) }
            td.n data-metric="activities.total" { (m.activities_total()) }
            td.n data-metric="opinions.total" { (m.opinions_total()) }
            td.n data-metric="suggestions.total" { (m.suggestions_total()) }
            td.n data-metric="overdue" { (m.overdue) }
            td.n { (percent(m.on_time_rate())) }
            td.n { (percent(m.satisfaction_rate())) }
        }
    };
    html! {
        table.children {
            thead { tr {
                th { "地区" } th { "区划代码" } th { "代表" } th { "活动" } th { "民情" } th { "建议" }
                th { "超期" } th { "按时答复率" } th { "满意率" } th { "数据时间" } th { "最近同步" } th { "状态" }
            } }
            tbody {
                @for (code, child) in &r.children {
                    @let stale = is_stale(r, code);
                    tr data-region=(code) {
                        (child_cell(tab, code, &child.name))
                        td { (code) }
                        (row(&child.total))
                        td { (time(child.as_of)) }
                        td { (child.last_sync.map(time).unwrap_or_else(|| "从未".to_string())) }
                        td { @if stale { span.stale { "滞后" } } @else { span.fresh { "正常" } } }
                    }
                }
                tr data-region=(region) .own {
                    td { "本级（" (display_name(&r.name, &region)) "）" }
                    td { (region) }
                    (row(&r.own))
                    td { (time(r.computed_at)) }
                    td { "—" }
                    td { span.fresh { "本节点" } }
                }
            }
        }
    }
}

fn stale_table(r: &Rollup) -> Markup {
    html! {
        table.stale-regions {
            thead { tr { th { "地区" } th { "最近数据时间" } } }
            tbody {
                @for s in &r.stale {
                    tr data-region=(s.region) {
                        td { (s.region) }
                        td { (s.as_of.map(time).unwrap_or_else(|| "从未同步".to_string())) }
                    }
                }
            }
        }
    }
}

/// 建议办理: the status funnel, answer classes, on-time and satisfaction, the overdue list.
pub(crate) async fn suggestions(
    State(d): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<axum::response::Response, PageError> {
    use axum::response::IntoResponse;
    let today = renda_node::calendar::today();
    if super::exports::wanted(&params.format)? {
        // The handling table: every suggestion of the region held here.
        let (shown, rows) = d
            .read(&params, move |s, region, _| {
                s.list(&ListQuery {
                    kind: Some(RecordKind::Suggestion),
                    within: Some(region),
                    limit: Some(super::exports::MAX_ROWS),
                    ..ListQuery::default()
                })
            })
            .await?;
        let cells: Vec<Vec<String>> = rows.iter().map(super::exports::suggestion_cells).collect();
        return super::exports::xlsx(
            &format!(
                "{}建议办理情况表",
                display_name(&shown.rollup.name, &shown.region)
            ),
            super::exports::SUGGESTION_HEADERS.to_vec(),
            cells,
        )
        .await;
    }
    let (shown, overdue) = d
        .read(&params, move |s, region, _| {
            s.list(&ListQuery {
                kind: Some(RecordKind::Suggestion),
                within: Some(region),
                overdue_on: Some(today),
                limit: Some(PAGE_ROWS),
                ..ListQuery::default()
            })
        })
        .await?;
    let r = &shown.rollup;
    let region = shown.region;
    let t = &r.total;
    let funnel = state_bars(
        SuggestionState::ALL
            .iter()
            .filter(|s| **s != SuggestionState::Draft)
            .map(|s| (s.as_str(), s.label())),
        &t.suggestions,
        "suggestion",
        region,
    );
    let classes: Vec<Bar> = AnswerClass::ALL
        .iter()
        .map(|c| Bar {
            label: c.label().to_string(),
            value: t.answer_classes.get(c.as_str()).copied().unwrap_or(0),
            href: Some(records_link(
                region,
                &[("kind", "suggestion"), ("answer_class", c.as_str())],
            )),
        })
        .collect();
    let report = link(
        "/reports/suggestions",
        &[
            ("region", (region != d.me).then(|| region.to_string())),
            ("year", Some(today.year().to_string())),
        ],
    );
    let body = html! {
        h1 { (display_name(&r.name, &region)) " 建议办理" }
        p.meta {
            a.export href=(link("/suggestions", &[("region", Some(region.to_string())), ("format", Some("xlsx".into()))])) data-action="export" {
                "导出建议办理情况表（Excel）"
            }
        }
        p.meta { a.report href=(report) { "本年建议办理情况报告（可打印）" } }
        div.cards {
            (card("代表建议", "suggestions.total", t.suggestions_total(), Some(records_link(region, &[("kind", "suggestion")]))))
            (card("已交办", "assigned", t.assigned_total(), None))
            (card("已答复", "answered", t.answered, None))
            (rate_card("办复率", "answered_rate", t.answered_rate()))
            (card("已办结（销号）", "closed", t.suggestions.get("closed").copied().unwrap_or(0), None))
            (rate_card("办结率", "closed_rate", t.closed_rate()))
            (card("按时答复", "answered_on_time", t.answered_on_time, None))
            (rate_card("按时答复率", "on_time_rate", t.on_time_rate()))
            (card("已评价", "evaluated", t.evaluated, None))
            (card("满意和基本满意", "satisfied", t.satisfied, None))
            (rate_card("满意率", "satisfaction_rate", t.satisfaction_rate()))
            (card("超期未答复", "overdue", t.overdue, Some(records_link(region, &[("kind", "suggestion"), ("overdue", "1")]))))
        }
        (charts::bars("suggestion-states", "办理进度", &funnel))
        (charts::bars("answer-classes", "答复类别", &classes))
        h2 { "议案" }
        div.cards {
            (card("代表议案", "motions.total", t.motions_total(), Some(records_link(region, &[("kind", "motion")]))))
            @for state in renda_node::record::motion::MotionState::ALL.iter().filter(|s| **s != renda_node::record::motion::MotionState::Draft) {
                (card(state.label(), &format!("motions.{}", state.as_str()), t.motions.get(state.as_str()).copied().unwrap_or(0), None))
            }
        }
        h2 { "超期未答复的建议" }
        @if overdue.is_empty() {
            p.meta { "本节点持有的建议中没有超期未答复的。" }
        } @else {
            (record_table(&overdue, Some(today)))
        }
        @if !r.children.is_empty() {
            h2 { "下级对比" }
            table.children {
                thead { tr { th { "地区" } th { "建议" } th { "按时答复率" } th { "满意率" } th { "超期" } } }
                tbody {
                    @for (code, child) in &r.children {
                        tr data-region=(code) {
                            (child_cell("/suggestions", code, &child.name))
                            td.n { (child.total.suggestions_total()) }
                            td.n { (percent(child.total.on_time_rate())) }
                            td.n { (percent(child.total.satisfaction_rate())) }
                            td.n { (child.total.overdue) }
                        }
                    }
                }
            }
        }
    };
    Ok(d.page("/suggestions", "建议办理", &shown, body)
        .into_response())
}

/// 活动与民情: activities by month and kind, sign-ins, opinions by state and by month.
pub(crate) async fn activities(
    State(d): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let period = given(&params.period)
        .map(|p| Period::parse(p).map_err(|rule| PageError::bad("period", rule)))
        .transpose()?;
    let (shown, ()) = d.read(&params, |_, _, _| Ok(())).await?;
    let r = &shown.rollup;
    let region = shown.region;
    let t = match &period {
        Some(p) => r.total.in_period(p),
        None => r.total.clone(),
    };
    // The last twelve months that had activities, oldest first.
    let months: Vec<&String> = t
        .activities
        .keys()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let kinds: Vec<ActivityKind> = ActivityKind::ALL
        .iter()
        .copied()
        .filter(|k| t.activities.values().any(|m| m.contains_key(k.as_str())))
        .collect();
    let columns: Vec<Column> = months
        .iter()
        .map(|month| Column {
            label: month.to_string(),
            parts: kinds
                .iter()
                .map(|k| t.activities[*month].get(k.as_str()).copied().unwrap_or(0))
                .collect(),
            href: Period::parse(month)
                .ok()
                .map(|_| records_link(region, &[("kind", "activity"), ("period", month)])),
        })
        .collect();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for kinds in t.activities.values() {
        for (k, n) in kinds {
            *by_kind.entry(k.as_str()).or_default() += n;
        }
    }
    let kind_bars: Vec<Bar> = kinds
        .iter()
        .map(|k| Bar {
            label: k.label().to_string(),
            value: by_kind.get(k.as_str()).copied().unwrap_or(0),
            href: Some(records_link(
                region,
                &[("kind", "activity"), ("activity_kind", k.as_str())],
            )),
        })
        .collect();
    let opinion_bars = state_bars(
        OpinionState::ALL
            .iter()
            .filter(|s| **s != OpinionState::Draft)
            .map(|s| (s.as_str(), s.label())),
        &t.opinions,
        "opinion",
        region,
    );
    let monthly = |series: &BTreeMap<String, u64>, kind: &str| -> Vec<Bar> {
        let keys: Vec<&String> = series.keys().rev().take(12).collect();
        keys.into_iter()
            .rev()
            .map(|month| Bar {
                label: month.clone(),
                value: series[month],
                href: Period::parse(month)
                    .ok()
                    .map(|_| records_link(region, &[("kind", kind), ("period", month)])),
            })
            .collect()
    };
    let series: Vec<String> = kinds.iter().map(|k| k.label().to_string()).collect();
    let body = html! {
        h1 { (display_name(&r.name, &region)) " 活动与民情" }
        @if let Some(p) = &period { p.meta { "期间：" (p.as_str()) "（办理状态为当前状态）" } }
        div.cards {
            (card("履职活动", "activities.total", t.activities_total(), Some(records_link(region, &[("kind", "activity")]))))
            (card("代表签到（人次）", "sign_ins", t.sign_ins, None))
            (card("接待群众（人次）", "constituents_received", t.constituents_received, None))
            @if let Some(p) = &period {
                (card("本期收集民情", "opinions.collected", t.opinions_collected(), Some(records_link(region, &[("kind", "opinion"), ("period", p.as_str())]))))
            } @else {
                (card("民情意见", "opinions.total", t.opinions_total(), Some(records_link(region, &[("kind", "opinion")]))))
            }
            (card("转交（累计）", "opinions.passed_on", t.opinions_passed_on, None))
        }
        (charts::stacked_columns("activities-by-month", "各月履职活动（按类型）", &series, &columns))
        (charts::bars("activities-by-kind", "活动类型", &kind_bars))
        h2 { "民情意见" }
        (charts::bars("opinion-states", "民情办理状态", &opinion_bars))
        (charts::bars("opinions-by-month", "各月收集的民情", &monthly(&t.opinions_by_month, "opinion")))
        (charts::bars("suggestions-by-month", "各月提出的建议", &monthly(&t.suggestions_by_month, "suggestion")))
    };
    Ok(d.page("/activities", "活动与民情", &shown, body))
}

/// 履职达标: quota compliance of groups and delegates, and the delegates held here.
pub(crate) async fn quotas(
    State(d): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let start = PageStart::of(&params)?;
    let today = renda_node::calendar::today();
    let (shown, (delegates, held, standings)) = d
        .read(&params, move |s, region, _| {
            // The seats granted in the subtree, each with its person's duty record: a person
            // with seats at two levels is listed under each.
            let mut q = ListQuery {
                kind: Some(RecordKind::Mandate),
                within: Some(region),
                limit: Some(PAGE_ROWS),
                ..ListQuery::default()
            };
            let held = s.count_capped(&q, COUNT_CAP)?;
            start.apply(&mut q);
            // Who stands where is judged where the counts are kept: at the congress itself.
            let standings = if s.identity().region == region {
                Some(s.quota_standings(today.year(), today)?.1)
            } else {
                None
            };
            Ok((s.list(&q)?, held, standings))
        })
        .await?;
    let r = &shown.rollup;
    let region = shown.region;
    let t = &r.total;
    let quota_cards = |what: &str, key: &str, q: renda_node::record::rollup::Quota| {
        html! {
            (card(what, &format!("{key}.total"), q.total, None))
            (card("已达标", &format!("{key}.met"), q.met, None))
            (card("进度正常", &format!("{key}.on_track"), q.on_track, None))
            (card("进度落后", &format!("{key}.behind"), q.behind, None))
            (card("未达标", &format!("{key}.short"), q.short, None))
            (rate_card("达标率", &format!("{key}.rate"), q.rate()))
        }
    };
    let body = html! {
        h1 { (display_name(&r.name, &region)) " 履职达标（本年）" }
        h2 { "本级履职要求" }
        @if r.rules.is_empty() {
            p.meta { "本级没有生效的履职要求。" }
        } @else {
            ul.rules {
                @for rule in &r.rules {
                    li data-rule=(rule.describe()) {
                        (rule.describe())
                        @if let Some(basis) = &rule.basis { "（" (basis) "）" }
                        span.meta { " 自 " (rule.from) " 起" }
                    }
                }
            }
        }
        p.meta {
            "各级人大按本级规定考核本级的代表小组和代表；年度或季度未结束时按已过天数折算进度："
            "“进度落后”是低于折算进度，“未达标”是已结束的年度或季度未达到最低要求。"
        }
        h2 { "代表小组" }
        div.cards { (quota_cards("考核的小组", "group_quota", t.group_quota)) }
        h2 { "代表" }
        div.cards { (quota_cards("考核的代表", "delegate_quota", t.delegate_quota)) }
        @if !r.children.is_empty() {
            h2 { "下级对比" }
            table.children {
                thead { tr { th { "地区" } th { "小组达标" } th { "小组落后/未达标" } th { "小组达标率" } th { "代表达标" } th { "代表落后/未达标" } th { "代表达标率" } } }
                tbody {
                    @for (code, child) in &r.children {
                        tr data-region=(code) {
                            (child_cell("/quotas", code, &child.name))
                            td.n { (child.total.group_quota.met) " / " (child.total.group_quota.total) }
                            td.n { (child.total.group_quota.falling_short()) }
                            td.n { (percent(child.total.group_quota.rate())) }
                            td.n { (child.total.delegate_quota.met) " / " (child.total.delegate_quota.total) }
                            td.n { (child.total.delegate_quota.falling_short()) }
                            td.n { (percent(child.total.delegate_quota.rate())) }
                        }
                    }
                }
            }
        }
        h2 { "进度落后和未达标的小组与代表" }
        @match &standings {
            None => p.meta { "名单由该级人大的节点按其记录判定，请在该节点查看。" }
            Some(list) => {
                @let short: Vec<_> = list.iter().filter(|s| s.falling_short()).collect();
                @if short.is_empty() {
                    p.meta data-metric="quota.short_list" data-value="0" { "没有进度落后或未达标的小组和代表。" }
                } @else {
                    table.shortfalls data-metric="quota.short_list" data-value=(short.len()) {
                        thead { tr { th { "对象" } th { "名称" } th { "要求" } th { "完成" } th { "应完成" } th { "情况" } } }
                        tbody {
                            @for s in &short {
                                @for (rule, j) in s.judgements.iter().map(|x| (&x.rule, &x.judgement)).filter(|(_, j)| j.standing != renda_node::record::quota::Standing::Met) {
                                    tr data-subject=(s.id) data-standing=(j.standing.as_str()) {
                                        td { (s.subject.label()) }
                                        td {
                                            @if s.subject == renda_node::record::quota::QuotaSubject::Delegate {
                                                a href=(format!("/delegates/{}", s.id)) { (s.name) }
                                            } @else { (s.name) }
                                        }
                                        td { (rule.describe()) }
                                        td.n { (j.have) @if let Some(q) = j.quarter { "（第" (q) "季度）" } }
                                        td.n { (j.need) }
                                        td { (j.standing.label()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "代表履职档案" }
        p.meta { "本节点持有的本辖区代表资格 " span data-metric="delegates.held" { (held_text(held)) } " 个，点击姓名查看履职档案。" }
        table.delegates {
            thead { tr { th { "姓名" } th { "所属人大层级" } th { "届次" } th { "状态" } th { "所属人大" } } }
            tbody {
                @for row in &delegates {
                    tr {
                        td { a href=(format!("/delegates/{}", row.summary["person"].as_str().unwrap_or_default())) { (row.label) } }
                        td { (row.summary["level"].as_str().map(|l| Level::parse("level", l).map(|l| l.label()).unwrap_or("")).unwrap_or("")) }
                        td { "第" (row.summary["term"]) "届" }
                        td { (row.status.as_deref().map(|s| status_label(RecordKind::Mandate, s)).unwrap_or_default()) }
                        td { (row.home) }
                    }
                }
            }
        }
        (pager("/quotas", &params, start, &delegates))
    };
    Ok(d.page("/quotas", "履职达标", &shown, body))
}

/// 同步状况: every link's health and the subtree's freshness.
pub(crate) async fn sync_health(
    State(d): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let (shown, peers) = d.read(&params, |s, _, _| s.peers()).await?;
    let r = &shown.rollup;
    let region = shown.region;
    let me = d.me;
    let body = html! {
        h1 { (display_name(&r.name, &region)) " 同步状况" }
        h2 { "本节点的同步链路" }
        @if peers.is_empty() {
            p.meta { "本节点还没有与任何节点同步过。" }
        } @else {
            (peer_table(me, &peers))
        }
        h2 { "下级数据时间" }
        (children_table(r, region, "/sync"))
        h2 { "数据滞后的地区" }
        @if r.stale.is_empty() {
            p.meta data-metric="stale.count" { "所有下级的数据都在时限内。" }
        } @else {
            (stale_table(r))
        }
        (fleet_section(&r.fleet))
    };
    Ok(d.page("/sync", "同步状况", &shown, body))
}

/// 节点运维概况: the subtree's nodes by release, and those that need an operator, as the
/// rollup's fleet view gives them.
fn fleet_section(f: &renda_node::record::fleet::Fleet) -> maud::Markup {
    use renda_node::record::fleet::{CERTIFICATE_WARN_DAYS, Flagged, UNKNOWN_VERSION};
    // Certificates end at a moment; checks and backups are stated by the day.
    let when = |at: Option<chrono::DateTime<chrono::Utc>>, never: &'static str| -> String {
        match (at, never.is_empty()) {
            (Some(t), true) => t
                .with_timezone(&renda_node::calendar::china())
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            (Some(t), false) => t.format("%Y-%m-%d").to_string(),
            (None, _) => never.to_string(),
        }
    };
    let list = |metric: &'static str,
                title: String,
                g: &Flagged,
                column: &'static str,
                never: &'static str| {
        html! {
            h3 { (title) " " span data-metric=(metric) { (g.count) } " 个" }
            @if !g.nodes.is_empty() {
                table.fleet data-list=(metric) {
                    thead { tr { th { "地区" } th { "节点" } th { (column) } } }
                    tbody {
                        @for n in &g.nodes {
                            tr data-region=(n.region) {
                                td { (n.region) }
                                td { (n.name) }
                                td { (when(n.at, never)) }
                            }
                        }
                    }
                }
                @if g.count > g.nodes.len() as u64 {
                    p.meta { "仅列出最紧迫的 " (g.nodes.len()) " 个。" }
                }
            }
        }
    };
    html! {
        h2 { "节点运维概况" }
        p.meta { "本辖区共 " span data-metric="fleet.nodes" { (f.nodes) } " 个节点（含本节点），由各节点在汇总数据中自报。" }
        table.versions {
            thead { tr { th { "版本" } th { "节点数" } } }
            tbody {
                @for (version, n) in &f.by_version {
                    tr data-version=(version) {
                        td { @if version == UNKNOWN_VERSION { "0.7.0 以前的版本" } @else { (version) } }
                        td.n { (n) }
                    }
                }
            }
        }
        (list("fleet.expiring", format!("证书 {CERTIFICATE_WARN_DAYS} 天内到期"), &f.expiring_certificates, "到期时间", ""))
        (list("fleet.unchecked", "数据库未通过检查".to_string(), &f.unchecked, "最近检查", "从未通过"))
        (list("fleet.stale_backups", "备份过旧".to_string(), &f.stale_backups, "最近备份", "从未备份"))
    }
}

fn peer_table(me: RegionCode, peers: &[PeerStatus]) -> Markup {
    html! {
        table.peers {
            thead { tr {
                th { "对端" } th { "关系" } th { "最近成功" } th { "最近错误" } th { "收到记录" } th { "发出记录" }
                th { "收到字节" } th { "发出字节" } th { "待对端确认的变更" } th { "状态" }
            } }
            tbody {
                @for p in peers {
                    tr data-peer=(p.peer) {
                        td { (p.peer) }
                        td { @if me.parent() == Some(p.peer) { "上级" } @else { "下级" } }
                        td { (p.last_success.map(time).unwrap_or_else(|| "从未".to_string())) }
                        td { (p.last_error.clone().unwrap_or_default()) }
                        td.n { (p.records_in) } td.n { (p.records_out) }
                        td.n { (p.bytes_in) } td.n { (p.bytes_out) }
                        td.n data-metric="lag" { (p.lag) }
                        @if p.stalled {
                            td.stalled data-metric="stalled" { "停滞（对端超时未确认）" }
                        } @else if p.lag > 0 {
                            td { "同步中" }
                        } @else {
                            td { "正常" }
                        }
                    }
                }
            }
        }
    }
}

fn page_number(params: &Params) -> Result<u32, PageError> {
    match given(&params.page) {
        None => Ok(1),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| PageError::bad("page", "页码须为 1 到 100000 之间的整数")),
    }
}

/// A capped count as a page shows it: the number, or "more than" it.
fn held_text((n, more): (u64, bool)) -> String {
    if more {
        format!("超过 {n}")
    } else {
        n.to_string()
    }
}

/// Links to the first page and the next one, keeping every other parameter. Pages go by key:
/// the next page starts after the last row shown.
fn pager(path: &str, params: &Params, start: PageStart, rows: &[ListRow]) -> Markup {
    let at = |after: Option<String>| {
        let mut query = filters(params);
        query.push(("after", after));
        link(path, &query)
    };
    let next = (rows.len() == PAGE_ROWS as usize)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    html! {
        div.pager {
            @if !start.is_first() { a rel="first" href=(at(None)) { "第一页" } }
            @if let Some(last) = next { a rel="next" href=(at(Some(last))) { "下一页" } }
        }
    }
}

fn record_table(rows: &[ListRow], overdue_on: Option<chrono::NaiveDate>) -> Markup {
    html! {
        table.records {
            thead { tr {
                @for h in super::exports::RECORD_HEADERS { th { (h) } }
                @if overdue_on.is_some() { th { "逾期天数" } }
            } }
            tbody {
                @for row in rows {
                    @let cells = super::exports::record_cells(row);
                    tr data-id=(row.id) {
                        @for (i, cell) in cells.iter().enumerate() {
                            @if i == 1 {
                                td { a href=(format!("/records/{}", row.id)) { (cell) } }
                            } @else {
                                td { (cell) }
                            }
                        }
                        @if let Some(day) = overdue_on {
                            td.n { (row.due_on.map(|due| (day - due).num_days().to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// 记录: the records behind a number, as far as this node holds them, a page at a time.
pub(crate) async fn records(
    State(d): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<axum::response::Response, PageError> {
    use axum::response::IntoResponse;
    let export = super::exports::wanted(&params.format)?;
    let kind = given(&params.kind)
        .map(|k| {
            RecordKind::parse(k).ok_or_else(|| {
                PageError::bad(
                    "kind",
                    format!("未知的记录类型“{}”", renda_node::validate::quote(k)),
                )
            })
        })
        .transpose()?;
    if kind == Some(RecordKind::Personal) {
        return Err(PageError::forbidden("kind：个人信息不在看板中显示"));
    }
    let status = given(&params.status).map(str::to_string);
    let period = given(&params.period)
        .map(|p| Period::parse(p).map_err(|rule| PageError::bad("period", rule)))
        .transpose()?;
    let activity_kind = given(&params.activity_kind)
        .map(|k| {
            ActivityKind::parse("activity_kind", k)
                .map(|k| k.as_str().to_string())
                .map_err(|e| PageError::bad("activity_kind", e.rule))
        })
        .transpose()?;
    let answer_class = given(&params.answer_class)
        .map(|c| {
            AnswerClass::parse("answer_class", c)
                .map(|c| c.as_str().to_string())
                .map_err(|e| PageError::bad("answer_class", e.rule))
        })
        .transpose()?;
    let overdue_on = match given(&params.overdue) {
        None | Some("0") => None,
        Some("1") => Some(renda_node::calendar::today()),
        Some(_) => return Err(PageError::bad("overdue", "只能是 1（只看超期）或 0")),
    };
    let start = PageStart::of(&params)?;
    let filters: Vec<String> = [
        kind.map(|k| format!("类型：{}", k.label())),
        status.as_deref().map(|s| {
            format!(
                "状态：{}",
                kind.map_or(s.to_string(), |k| status_label(k, s))
            )
        }),
        period.as_ref().map(|p| format!("期间：{}", p.as_str())),
        activity_kind
            .as_deref()
            .map(|k| format!("活动类型：{}", activity_kind_label(k))),
        answer_class.as_deref().map(|c| format!("答复类别：{c}")),
        overdue_on.map(|_| "超期未答复".to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (shown, (rows, held)) = d
        .read(&params, move |s, region, _| {
            let mut q = ListQuery {
                kind,
                status,
                within: Some(region),
                overdue_on,
                period,
                activity_kind,
                answer_class,
                limit: Some(PAGE_ROWS),
                ..ListQuery::default()
            };
            if export {
                // Every row the filters match, from the first, up to the export's limit.
                q.limit = Some(super::exports::MAX_ROWS);
                return Ok((s.list(&q)?, (0, false)));
            }
            let held = s.count_capped(&q, COUNT_CAP)?;
            start.apply(&mut q);
            Ok((s.list(&q)?, held))
        })
        .await?;
    let region = shown.region;
    if export {
        let cells: Vec<Vec<String>> = rows.iter().map(super::exports::record_cells).collect();
        return super::exports::xlsx(
            &format!("{}记录", display_name(&shown.rollup.name, &region)),
            super::exports::RECORD_HEADERS.to_vec(),
            cells,
        )
        .await;
    }
    let body = html! {
        h1 { (display_name(&shown.rollup.name, &region)) " 记录" }
        p.filters { @for f in &filters { span { (f) } } }
        p.note {
            "列表只含本节点持有的记录：记录全量同步到设区的市一级，省和全国只收到汇总数字和上报到本级的记录，"
            "个人信息只同步到上一级。汇总数字可能多于这里能列出的记录时，请到下级地区查看。"
        }
        p.meta {
            "本节点持有 " span data-metric="records.held" { (held_text(held)) } " 条 · "
            a.export href=(xlsx_link("/records", &params)) data-action="export" { "导出 Excel" }
        }
        (record_table(&rows, overdue_on))
        (pager("/records", &params, start, &rows))
    };
    Ok(d.page("/records", "记录", &shown, body).into_response())
}

/// The page's own address with `format=xlsx`: its rows as a spreadsheet.
fn xlsx_link(path: &str, params: &Params) -> String {
    let mut query = filters(params);
    query.push(("format", Some("xlsx".to_string())));
    link(path, &query)
}

/// A list's filters as query parameters, so a link to another page of it or to its export
/// keeps them.
fn filters(params: &Params) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("region", params.region.clone()),
        ("kind", params.kind.clone()),
        ("status", params.status.clone()),
        ("period", params.period.clone()),
        ("activity_kind", params.activity_kind.clone()),
        ("answer_class", params.answer_class.clone()),
        ("overdue", params.overdue.clone()),
    ]
}

fn activity_kind_label(id: &str) -> String {
    activity_kind(id)
}

fn view_markup(view: &RecordView) -> Markup {
    html! {
        table.fields {
            tbody {
                @for (label, value) in &view.fields {
                    tr { th { (label) } td data-field=(label) { (value) } }
                }
            }
        }
        @for t in &view.tables {
            h2 { (t.title) }
            table.history {
                thead { tr { @for h in &t.headers { th { (h) } } } }
                tbody { @for row in &t.rows { tr { @for cell in row { td { (cell) } } } } }
            }
        }
    }
}

/// One record with its handling history; personal data is never shown here. A clerk also
/// finds here the forms of the steps this node may take on it now (`workbench::steps`).
pub(crate) async fn record(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    Query(done): Query<super::workbench::Done>,
    headers: axum::http::HeaderMap,
) -> Result<Html<String>, PageError> {
    let id = RecordId::parse("id", &id).map_err(|e| PageError::bad("id", e.rule))?;
    let site = super::public::site(&d, &headers);
    record_page(&d, id, done.notice(), None, site.as_deref()).await
}

/// The record page, with a notice above it (a step applied, or the record moved since its
/// form was rendered) and, when a form came back refused, that form as it was typed.
pub(crate) async fn record_page(
    d: &Dashboard,
    id: RecordId,
    notice: Option<super::workbench::Notice>,
    refused: Option<super::workbench::Refused>,
    site: Option<&str>,
) -> Result<Html<String>, PageError> {
    let params = Params::default();
    let (shown, (record, version, context)) = d
        .read(&params, move |s, _, _| {
            let record = s.get(&id)?;
            let version = s.version_of(&id)?;
            let context = super::workbench::StepContext::read(s, &record)?;
            Ok((record, version, context))
        })
        .await?;
    if record.header.kind == RecordKind::Personal {
        return Err(PageError::forbidden("id：个人信息不在看板中显示"));
    }
    let view = renda_node::record::view::view(&record, None);
    let steps = super::workbench::steps(d, &record, version, &context, refused.as_ref());
    let code = super::public::code_section(d, &record, site).await;
    let label = renda_node::record::projection::project(&record).label;
    let body = html! {
        h1 { (record.header.kind.label()) "：" (label) }
        @if let Some(notice) = &notice { (notice.markup()) }
        (steps)
        (code)
        (view_markup(&view))
    };
    Ok(d.page("/records", "记录详情", &shown, body))
}

#[derive(Deserialize)]
pub(crate) struct SuperviseForm {
    key: String,
}

/// 重点督办: sets or clears the flag on a suggestion addressed to this congress. Needs the clerk
/// role; the office operation checks the rest (the state, and that this node is the owner).
pub(crate) async fn supervise(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::response::Redirect, PageError> {
    let credential = session::require(Role::Clerk)?;
    let id = RecordId::parse("id", &id).map_err(|e| PageError::bad("id", e.rule))?;
    let form: SuperviseForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| PageError::bad("key", "表单须含 key=true 或 key=false"))?;
    let key = match form.key.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(PageError::bad(
                "key",
                format!(
                    "须为 true 或 false，实际为“{}”",
                    renda_node::validate::quote(other)
                ),
            ));
        }
    };
    let today = renda_node::calendar::today();
    let user = credential.name.clone();
    let written = d
        .store
        .write(move |tx| {
            renda_node::office::suggestion_step(
                tx,
                &user,
                &id,
                renda_node::record::suggestion::SuggestionAction::Supervise { key },
                today,
            )
        })
        .await;
    match written {
        Ok(_) => {
            tracing::info!(record = %id, key, by = %credential.name, "key supervision set from the dashboard");
            Ok(axum::response::Redirect::to(&format!("/records/{id}")))
        }
        Err(StoreError::Rejected { rejection, .. }) => Err(PageError::conflict(format!(
            "{}（规则 {}）",
            rejection.reason, rejection.rule
        ))),
        Err(e) => Err(e.into()),
    }
}

/// 审计日志: the changes from peers this node refused, newest first. Admin only.
pub(crate) async fn audit(State(d): State<Dashboard>) -> Result<Html<String>, PageError> {
    session::require(Role::Admin)?;
    let params = Params::default();
    let (shown, entries) = d.read(&params, |s, _, _| s.audit_log(500)).await?;
    let body = html! {
        h1 { "审计日志" }
        p.meta { "下级或上级发来、被本节点拒收的变更：拒收的变更从未写入，这里记下谁发来、哪条记录、违反哪条规则。" }
        @if entries.is_empty() {
            p data-metric="audit.count" data-value="0" { "没有拒收记录。" }
        } @else {
            table.audit data-metric="audit.count" data-value=(entries.len()) {
                thead { tr { th { "时间" } th { "发送方" } th { "记录" } th { "类型" } th { "规则" } th { "原因" } th { "变更数" } } }
                tbody {
                    @for e in &entries {
                        tr data-rule=(e.rule) {
                            td { (time(e.at)) }
                            td { (e.peer) }
                            td { (e.record) }
                            td { (RecordKind::parse(&e.kind).map_or(e.kind.as_str(), |k| k.label())) }
                            td { code { (e.rule) } }
                            td { (e.reason) }
                            td.n { (e.changes) }
                        }
                    }
                }
            }
        }
    };
    Ok(d.page("/audit", "审计日志", &shown, body))
}

/// 履职档案: a delegate's activities and suggestions of a year against the quotas.
pub(crate) async fn duty_record(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Result<axum::response::Response, PageError> {
    use axum::response::IntoResponse;
    let export = super::exports::wanted(&params.format)?;
    let id = RecordId::parse("id", &id).map_err(|e| PageError::bad("id", e.rule))?;
    let year = match given(&params.year) {
        None => renda_node::calendar::today().year(),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (1949..=9999).contains(y))
            .ok_or_else(|| PageError::bad("year", "须为四位年份，如 2026"))?,
    };
    let root = Params::default();
    let (shown, duty) = d
        .read(&root, move |s, _, _| s.duty_record(&id, year))
        .await?;
    let view = renda_node::record::view::view(&duty.delegate, None);
    if export {
        let name = renda_node::record::projection::project(&duty.delegate).label;
        let mut headers = vec!["类别"];
        headers.extend_from_slice(super::exports::RECORD_HEADERS);
        let cells: Vec<Vec<String>> = duty
            .activities
            .iter()
            .map(|r| ("参加活动", r))
            .chain(duty.suggestions.iter().map(|r| ("提出或联名建议", r)))
            .map(|(what, r)| {
                let mut row = vec![what.to_string()];
                row.extend(super::exports::record_cells(r));
                row
            })
            .collect();
        return super::exports::xlsx(&format!("{name}{year}年履职档案"), headers, cells).await;
    }
    let body = html! {
        h1 { (duty.delegate.header.kind.label()) "履职档案 · " (year) " 年" }
        div.cards {
            (card("参加活动", "duty.activities", duty.activities.len() as u64, None))
            (card("接待选民", "duty.receptions", u64::from(duty.receptions), None))
            (card("提出或联名建议", "duty.suggestions", duty.suggestions.len() as u64, None))
            div.card {
                span.label { "本年达标" }
                span.num data-metric="duty.meets_quota" data-value=(duty.meets_quota()) {
                    @match &duty.standing {
                        Some(s) => (s.standing.label()),
                        None => "未设要求",
                    }
                }
            }
        }
        @if let Some(s) = &duty.standing {
            table.duty_rules {
                thead { tr { th { "要求" } th { "完成" } th { "应完成" } th { "情况" } } }
                tbody {
                    @for (rule, j) in s.judgements.iter().map(|x| (&x.rule, &x.judgement)) {
                        tr data-standing=(j.standing.as_str()) {
                            td { (rule.describe()) }
                            td.n { (j.have) @if let Some(q) = j.quarter { "（第" (q) "季度）" } }
                            td.n { (j.need) }
                            td { (j.standing.label()) }
                        }
                    }
                }
            }
        }
        (view_markup(&view))
        h2 { "本年参加的活动" }
        (record_table(&duty.activities, None))
        h2 { "本年提出或联名的建议" }
        (record_table(&duty.suggestions, None))
        p {
            a href=(link(&format!("/delegates/{id}"), &[("year", Some((year - 1).to_string()))])) { "查看上一年" }
            " · "
            a.report href=(link(&format!("/reports/delegates/{id}"), &[("year", Some(year.to_string()))])) { "年度履职报告（可打印）" }
            " · "
            a.export href=(link(&format!("/delegates/{id}"), &[("year", Some(year.to_string())), ("format", Some("xlsx".into()))])) data-action="export" { "导出 Excel" }
        }
    };
    Ok(d.page("/quotas", "履职档案", &shown, body).into_response())
}

pub(crate) async fn not_found() -> PageError {
    PageError::not_found("没有这个页面")
}
