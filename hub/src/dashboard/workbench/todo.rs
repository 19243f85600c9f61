//! 待办: what waits for this node's staff, each list a store query, their total in the tab bar.
//!
//! As the congress a suggestion is addressed to (every level, townships included): suggestions
//! to screen, to assign, answers due within two weeks, overdue answers, answers awaiting the
//! delegate's evaluation, suggestions to follow up (回头看) or close (销号), and opinions passed
//! on to this congress. As the home of delegates and opinions: suggestions whose delegate must
//! evaluate the answer here, opinions to pass on or finish, and activities held with nobody
//! signed in.

use axum::extract::State;
use axum::response::Html;
use chrono::{Days, NaiveDate};
use maud::{Markup, html};
use renda_node::access::Role;
use renda_node::record::RecordKind;
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, ListRow, Store, StoreError, Waiting};

use crate::dashboard::pages::Params;
use crate::dashboard::{Dashboard, PageError, session};

/// Answers due within this many days are listed as due soon.
pub(crate) const DUE_SOON_DAYS: u64 = 14;

/// Rows a to-do list shows; the count says how many there are.
const ROWS: u32 = 100;

/// One to-do list: a key for tests and links, its heading, and the query that finds it.
pub(crate) struct TodoList {
    pub key: &'static str,
    pub label: &'static str,
    pub query: ListQuery,
}

/// Every to-do list of node `me` on `today`.
pub(crate) fn lists(me: RegionCode, today: NaiveDate) -> Vec<TodoList> {
    let suggestions = |status: &[&str]| ListQuery {
        kind: Some(RecordKind::Suggestion),
        addressed_to: Some(me),
        status_any: status.iter().map(|s| s.to_string()).collect(),
        ..ListQuery::default()
    };
    let soon = today
        .checked_add_days(Days::new(DUE_SOON_DAYS))
        .unwrap_or(today);
    vec![
        TodoList {
            key: "screen",
            label: "待审查的建议",
            query: suggestions(&["submitted"]),
        },
        TodoList {
            key: "assign",
            label: "待交办的建议（含退回待重新交办）",
            query: suggestions(&["accepted", "sent_back"]),
        },
        TodoList {
            key: "due_soon",
            label: "两周内到期待答复的建议",
            query: ListQuery {
                due_between: Some((today, soon)),
                ..suggestions(&[])
            },
        },
        TodoList {
            key: "overdue",
            label: "逾期未答复的建议",
            query: ListQuery {
                overdue_on: Some(today),
                ..suggestions(&[])
            },
        },
        TodoList {
            key: "awaiting_evaluation",
            label: "已答复、等待代表评价的建议",
            query: suggestions(&["answered"]),
        },
        TodoList {
            key: "follow_up",
            label: "待回头看或待销号的建议",
            query: suggestions(&["tracking", "satisfied"]),
        },
        TodoList {
            key: "opinions_passed_here",
            label: "转交本级人大办理的民情",
            query: ListQuery {
                kind: Some(RecordKind::Opinion),
                addressed_to: Some(me),
                status_any: vec!["passed_on".into(), "in_progress".into()],
                ..ListQuery::default()
            },
        },
        TodoList {
            key: "evaluate_here",
            label: "需本地代表评价答复的建议",
            query: ListQuery {
                kind: Some(RecordKind::Suggestion),
                home: Some(me),
                status: Some("answered".into()),
                ..ListQuery::default()
            },
        },
        TodoList {
            key: "opinions_open",
            label: "待转交或办结的民情",
            query: ListQuery {
                kind: Some(RecordKind::Opinion),
                home: Some(me),
                status_any: vec!["received".into(), "passed_on".into(), "in_progress".into()],
                ..ListQuery::default()
            },
        },
        TodoList {
            key: "unattended",
            label: "已举行但无人签到的活动",
            query: ListQuery {
                kind: Some(RecordKind::Activity),
                home: Some(me),
                unattended_by: Some(today),
                ..ListQuery::default()
            },
        },
    ]
}

/// How many things wait, over every list: the number in the tab bar. A record in two lists
/// (due soon and awaiting evaluation cannot both hold, but an opinion passed on to this node's
/// own congress could) is counted in each.
pub(crate) fn total(s: &Store, me: RegionCode, today: NaiveDate) -> Result<u64, StoreError> {
    let mut n = 0;
    for list in lists(me, today) {
        n += s.count(&list.query)?;
    }
    Ok(n)
}

/// GET `/todo`: every list with its count and first rows, and the forms that start a record.
pub(crate) async fn page(State(d): State<Dashboard>) -> Result<Html<String>, PageError> {
    session::require(Role::Clerk)?;
    let me = d.me;
    let today = renda_node::calendar::today();
    let policy = d.policy;
    let (shown, (found, waiting)) = d
        .read(&Params::default(), move |s, _, _| {
            let waiting = match me.parent() {
                Some(parent) => Some((parent, s.waiting_for(&parent, &policy, WAITING_CAP_BYTES)?)),
                None => None,
            };
            let mut found = Vec::new();
            for mut list in lists(me, today) {
                let count = s.count(&list.query)?;
                list.query.limit = Some(ROWS);
                let rows = if count > 0 {
                    s.list(&list.query)?
                } else {
                    Vec::new()
                };
                found.push((list.key, list.label, count, rows));
            }
            Ok((found, waiting))
        })
        .await?;
    let body = html! {
        h1 { "待办" }
        @if let Some((parent, w)) = &waiting { (sync_state(parent, w)) }
        p.actions {
            @for (path, label) in super::NEW_RECORD_LINKS {
                a.button href=(path) data-action=(format!("new-{}", path.trim_start_matches("/new/"))) { (label) }
            }
        }
        @for (key, label, count, rows) in found.iter().filter(|f| f.2 > 0) {
            section.todo data-todo=(key) {
                h2 { (label) " " span.count data-metric=(format!("todo.{key}")) { (count) } }
                @if !rows.is_empty() { (rows_table(rows, today)) }
            }
        }
        @let empty: Vec<_> = found.iter().filter(|f| f.2 == 0).collect();
        @if !empty.is_empty() {
            section.todo-empty {
                h2 { "暂无" }
                ul.todo-empty {
                    @for (key, label, count, _) in empty {
                        li data-todo=(key) { (label) " " span.count data-metric=(format!("todo.{key}")) { (count) } }
                    }
                }
            }
        }
    };
    Ok(d.page("/todo", "待办", &shown, body))
}

/// How much of what waits to reach the parent is counted: enough for a week offline.
const WAITING_CAP_BYTES: usize = 8 << 20;

/// What has not reached the parent yet, and when a link with it last completed: a township's
/// office PC works while its link is down, and the clerk sees what is still to go.
fn sync_state(parent: &RegionCode, w: &Waiting) -> Markup {
    let last = w.last_success.map(|t| {
        t.with_timezone(&renda_node::calendar::china())
            .format("%Y-%m-%d %H:%M")
            .to_string()
    });
    html! {
        p.sync-state data-waiting=(w.records) {
            "上级（" (parent) "）："
            @match &last {
                Some(at) => { "上次同步完成于 " span data-metric="sync.last_success" { (at) } "；" },
                None => { "还没有同步过；" },
            }
            @if w.records == 0 {
                "本节点的记录都已送达。"
            } @else {
                "待送达 " span data-metric="sync.waiting" { (w.records) @if w.more { "+" } } " 条记录，连通后自动同步。"
            }
        }
    }
}

fn rows_table(rows: &[ListRow], today: NaiveDate) -> Markup {
    html! {
        table.todo-rows {
            thead { tr { th { "名称" } th { "类型" } th { "所属节点" } th { "状态" } th { "日期" } th { "期限" } } }
            tbody {
                @for r in rows {
                    tr data-id=(r.id) {
                        td { a href=(format!("/records/{}", r.id)) { (r.label) } }
                        td { (r.kind.label()) }
                        td { (r.home) }
                        td { (status_label(r)) }
                        td { (r.occurred_on.map(|d| d.to_string()).unwrap_or_default()) }
                        td.overdue[r.due_on.is_some_and(|d| d < today)] {
                            (r.due_on.map(|d| d.to_string()).unwrap_or_default())
                        }
                    }
                }
            }
        }
    }
}

fn status_label(r: &ListRow) -> String {
    match r.status.as_deref() {
        Some(status) => crate::dashboard::pages::status_label(r.kind, status),
        None => String::new(),
    }
}
