//! Presentation: tables in Chinese for staff, JSON for programs. Nothing here writes data.

use comfy_table::{ContentArrangement, Table, presets};
use renda_node::record::activity::ActivityKind;
use renda_node::record::delegate::{Gender, MandateStatus};
use renda_node::record::group::{GroupKind, VenueKind};
use renda_node::record::motion::MotionState;
use renda_node::record::opinion::{OpinionSource, OpinionState};
use renda_node::record::revocation::RevocationReason;
use renda_node::record::suggestion::{Satisfaction, SuggestionState};
use renda_node::record::{Record, RecordKind};
use renda_node::region::Level;
use renda_node::store::ListRow;
use serde_json::Value;

pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_string()));
    t
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Maps an English identifier stored in a summary back to its Chinese label.
macro_rules! label {
    ($ty:ty, $v:expr) => {{
        let raw = s($v);
        <$ty>::parse("", &raw)
            .map(|x| x.label().to_string())
            .unwrap_or(raw)
    }};
}

fn level_label(v: &Value) -> String {
    serde_json::from_value::<Level>(v.clone())
        .map(|l| l.label().to_string())
        .unwrap_or_default()
}

fn yes(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) { "是" } else { "" }
}

pub fn list(kind: RecordKind, rows: &[ListRow]) -> String {
    let t = match kind {
        RecordKind::Delegate => {
            let mut t = table(&["编号", "姓名", "性别", "职业", "最高层级", "状态"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.label.clone(),
                    label!(Gender, &r.summary["gender"]),
                    s(&r.summary["occupation"]),
                    level_label(&r.summary["highest_level"]),
                    label!(MandateStatus, &Value::from(r.status.clone())),
                ]);
            }
            t
        }
        RecordKind::Group => {
            let mut t = table(&["编号", "名称", "类型", "专业领域", "所属人大", "成员数"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.label.clone(),
                    label!(GroupKind, &r.summary["kind"]),
                    s(&r.summary["field"]),
                    s(&r.summary["congress"]),
                    s(&r.summary["members"]),
                ]);
            }
            t
        }
        RecordKind::Revocation => {
            let mut t = table(&["编号", "日期", "被吊销节点", "证书序列号", "原因"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
                    s(&r.summary["region"]),
                    s(&r.summary["serial"]),
                    label!(RevocationReason, &r.summary["reason"]),
                ]);
            }
            t
        }
        RecordKind::Venue => {
            let mut t = table(&["编号", "名称", "类型", "区划", "地址"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.label.clone(),
                    label!(VenueKind, &r.summary["kind"]),
                    s(&r.summary["region"]),
                    s(&r.summary["address"]),
                ]);
            }
            t
        }
        RecordKind::Activity => {
            let mut t = table(&["编号", "日期", "类型", "主题", "签到代表", "接待群众"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
                    label!(ActivityKind, &r.summary["kind"]),
                    r.label.clone(),
                    s(&r.summary["sign_ins"]),
                    s(&r.summary["constituents_received"]),
                ]);
            }
            t
        }
        RecordKind::Opinion => {
            let mut t = table(&[
                "编号",
                "收集日期",
                "来源",
                "内容",
                "状态",
                "转交单位",
                "群众评价",
            ]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
                    label!(OpinionSource, &r.summary["source"]),
                    r.label.clone(),
                    label!(OpinionState, &Value::from(r.status.clone())),
                    s(&r.summary["passed_on_to"]),
                    label!(Satisfaction, &r.summary["rating"]),
                ]);
            }
            t
        }
        RecordKind::Suggestion => {
            let mut t = table(&[
                "编号",
                "号",
                "标题",
                "领衔代表",
                "状态",
                "答复期限",
                "答复类别",
                "评价",
                "重点督办",
            ]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    s(&r.summary["number"]),
                    r.label.clone(),
                    s(&r.summary["lead_name"]),
                    label!(SuggestionState, &Value::from(r.status.clone())),
                    r.due_on.map(|d| d.to_string()).unwrap_or_default(),
                    s(&r.summary["class"]),
                    label!(Satisfaction, &r.summary["evaluation"]),
                    yes(&r.summary["key_supervision"]).to_string(),
                ]);
            }
            t
        }
        RecordKind::Notice => {
            let mut t = table(&["编号", "日期", "类别", "标题", "发往"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
                    s(&r.summary["category"]),
                    r.label.clone(),
                    s(&r.summary["audience"]),
                ]);
            }
            t
        }
        RecordKind::Mandate => {
            let mut t = table(&[
                "编号",
                "姓名",
                "人员编号",
                "所属人大",
                "级别",
                "届次",
                "状态",
                "进站阵地",
            ]);
            for r in rows {
                let stations: Vec<String> = r.summary["stations"]
                    .as_array()
                    .map(|a| a.iter().map(|st| s(&st["venue"])).collect())
                    .unwrap_or_default();
                t.add_row(vec![
                    r.id.to_string(),
                    r.label.clone(),
                    s(&r.summary["person"]),
                    s(&r.summary["congress"]),
                    level_label(&r.summary["level"]),
                    format!("第{}届", s(&r.summary["term"])),
                    label!(MandateStatus, &Value::from(r.status.clone())),
                    stations.join("\n"),
                ]);
            }
            t
        }
        RecordKind::Motion => {
            let mut t = table(&["编号", "案由", "会议", "提出者", "提出日期", "状态"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.label.clone(),
                    s(&r.summary["session"]),
                    s(&r.summary["proposed_by"]),
                    r.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
                    label!(MotionState, &Value::from(r.status.clone())),
                ]);
            }
            t
        }
        RecordKind::QuotaRule => {
            let mut t = table(&["编号", "制定人大", "要求", "生效", "停止"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.home.to_string(),
                    r.label.clone(),
                    s(&r.summary["from"]),
                    s(&r.summary["until"]),
                ]);
            }
            t
        }
        RecordKind::Personal => table(&["编号"]),
        RecordKind::Rollup => {
            let mut t = table(&["编号", "汇总", "计算日期", "下级数", "数据滞后的地区数"]);
            for r in rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.label.clone(),
                    r.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
                    r.summary["children"].to_string(),
                    r.summary["stale"].to_string(),
                ]);
            }
            t
        }
    };
    format!("{t}\n共 {} 条{}记录", rows.len(), kind.label())
}

fn kv(rows: &[(&str, String)]) -> Table {
    let mut t = table(&["项目", "内容"]);
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v.clone()]);
    }
    t
}

/// The human form of one record.
pub fn record_text(record: &Record, personal: Option<&Record>) -> String {
    let view = renda_node::record::view::view(record, personal);
    let mut out = kv(&view.fields).to_string();
    for extra in &view.tables {
        out.push('\n');
        out.push_str(&view_table(extra));
    }
    out
}

/// A titled table of a record's view, as text.
pub fn view_table(extra: &renda_node::record::view::ViewTable) -> String {
    let mut t = table(&extra.headers);
    for row in &extra.rows {
        t.add_row(row.clone());
    }
    format!("{}\n{t}", extra.title)
}

fn quota(q: renda_node::record::rollup::Quota) -> String {
    format!(
        "{}/{}（{}；进度正常 {}，落后 {}，未达标 {}）",
        q.met,
        q.total,
        percent(q.rate()),
        q.on_track,
        q.behind,
        q.short
    )
}

/// Duty rules with their ids, congresses and dates, as of `on`.
pub fn quota_rules(
    rules: &[(
        renda_node::record::RecordId,
        renda_node::record::quota::QuotaRule,
    )],
    on: chrono::NaiveDate,
) -> String {
    let mut t = table(&["编号", "制定人大", "要求", "生效", "停止", "状态", "依据"]);
    for (id, r) in rules {
        let state = if r.in_force_on(on) {
            "生效中"
        } else if r.from > on {
            "未生效"
        } else {
            "已停止"
        };
        t.add_row(vec![
            id.to_string(),
            r.congress.to_string(),
            r.describe(),
            r.from.to_string(),
            r.until.map(|d| d.to_string()).unwrap_or_default(),
            state.to_string(),
            r.basis.clone().unwrap_or_default(),
        ]);
    }
    if rules.is_empty() {
        return "没有履职要求".to_string();
    }
    t.to_string()
}

/// Where each group and delegate stands against the rules, one row per subject and rule.
pub fn quota_standings(
    year: i32,
    rules: &[renda_node::record::quota::QuotaRule],
    standings: &[renda_node::record::quota::SubjectStanding],
) -> String {
    let mut t = table(&["对象", "名称", "编号", "要求", "完成", "应完成", "情况"]);
    for s in standings {
        for judged in &s.judgements {
            let (rule, j) = (&judged.rule, &judged.judgement);
            let have = match j.quarter {
                Some(q) if rule.period == renda_node::record::quota::QuotaPeriod::Quarter => {
                    format!("{}（第{q}季度）", j.have)
                }
                _ => j.have.to_string(),
            };
            t.add_row(vec![
                s.subject.label().to_string(),
                s.name.clone(),
                s.id.clone(),
                rule.describe(),
                have,
                j.need.to_string(),
                j.standing.label().to_string(),
            ]);
        }
    }
    let heading = format!("{year} 年履职要求 {} 条", rules.len());
    if standings.is_empty() {
        return format!("{heading}：没有符合条件的代表小组或代表");
    }
    format!("{heading}\n{t}")
}

pub(crate) fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "—".to_string())
}

/// A total followed by its counts by state, in the workflow's order and with the states'
/// Chinese names: `5（已收集 2，已办结 3）`.
fn by_state<S: Copy>(
    counts: &std::collections::BTreeMap<String, u64>,
    states: &[S],
    id: impl Fn(S) -> &'static str,
    label: impl Fn(S) -> &'static str,
) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = states
        .iter()
        .filter_map(|s| counts.get(id(*s)).map(|n| format!("{} {n}", label(*s))))
        .collect();
    if parts.is_empty() {
        total.to_string()
    } else {
        format!("{total}（{}）", parts.join("，"))
    }
}

/// A rollup for staff: the subtree's numbers, each child's numbers with their date, and the
/// descendants that have not synced for too long.
pub fn rollup(
    region: &renda_node::region::RegionCode,
    r: &renda_node::record::rollup::Rollup,
) -> String {
    use renda_node::record::opinion::OpinionState;
    let t = &r.total;
    let mut out = table(&["指标", "全辖区"]);
    out.add_rows(vec![
        vec!["代表".to_string(), t.delegates_total().to_string()],
        vec!["活动".to_string(), t.activities_total().to_string()],
        vec!["代表签到（人次）".to_string(), t.sign_ins.to_string()],
        vec![
            "接待群众（人次）".to_string(),
            t.constituents_received.to_string(),
        ],
        vec![
            "民情".to_string(),
            by_state(
                &t.opinions,
                OpinionState::ALL,
                |s| s.as_str(),
                |s| s.label(),
            ),
        ],
        vec![
            "建议".to_string(),
            by_state(
                &t.suggestions,
                SuggestionState::ALL,
                |s| s.as_str(),
                |s| s.label(),
            ),
        ],
        vec![
            "议案".to_string(),
            by_state(&t.motions, MotionState::ALL, |s| s.as_str(), |s| s.label()),
        ],
        vec!["按时答复率".to_string(), percent(t.on_time_rate())],
        vec![
            "满意率（满意+基本满意）".to_string(),
            percent(t.satisfaction_rate()),
        ],
        vec!["超期未答复".to_string(), t.overdue.to_string()],
        vec!["代表小组活动达标（本年）".to_string(), quota(t.group_quota)],
        vec!["代表履职达标（本年）".to_string(), quota(t.delegate_quota)],
    ]);
    let mut children = table(&[
        "下级",
        "民情",
        "建议",
        "按时答复率",
        "满意率",
        "数据时间",
        "最近同步",
    ]);
    for (code, child) in &r.children {
        children.add_row(vec![
            code.clone(),
            child.total.opinions_total().to_string(),
            child.total.suggestions_total().to_string(),
            percent(child.total.on_time_rate()),
            percent(child.total.satisfaction_rate()),
            child.as_of.format("%Y-%m-%d %H:%M").to_string(),
            child
                .last_sync
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "从未".to_string()),
        ]);
    }
    let mut text = format!(
        "{region} 汇总（计算于 {}）\n{out}",
        r.computed_at.format("%Y-%m-%d %H:%M")
    );
    if !r.children.is_empty() {
        text.push_str(&format!("\n下级汇总\n{children}"));
    }
    if r.stale.is_empty() {
        if !r.children.is_empty() {
            text.push_str("\n所有下级的数据都在时限内");
        }
    } else {
        let mut stale = table(&["地区", "最近数据时间"]);
        for s in &r.stale {
            stale.add_row(vec![
                s.region.to_string(),
                s.as_of
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "从未同步".to_string()),
            ]);
        }
        text.push_str(&format!(
            "\n数据滞后的地区（{} 个）\n{stale}",
            r.stale.len()
        ));
    }
    text
}
