//! Presentation: tables in Chinese for staff, JSON for programs. Nothing here writes data.

use comfy_table::{ContentArrangement, Table, presets};
use renda_node::record::activity::ActivityKind;
use renda_node::record::delegate::{Gender, MandateStatus};
use renda_node::record::event::HistoryLine;
use renda_node::record::group::{GroupKind, VenueKind};
use renda_node::record::opinion::{OpinionSource, OpinionState};
use renda_node::record::suggestion::{AnswerClass, Satisfaction, SuggestionState};
use renda_node::record::{Body, Record, RecordKind};
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

fn kv(rows: Vec<(&str, String)>) -> Table {
    let mut t = table(&["项目", "内容"]);
    for (k, v) in rows {
        if !v.is_empty() {
            t.add_row(vec![k.to_string(), v]);
        }
    }
    t
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

fn history_table<A>(lines: &[HistoryLine<A>], describe: impl Fn(&A) -> (String, String)) -> Table {
    let mut t = table(&["日期", "步骤", "内容", "操作人", "结果"]);
    for line in lines {
        let (step, detail) = describe(&line.event.action);
        t.add_row(vec![
            line.event.date.to_string(),
            step,
            detail,
            line.event.author.to_string(),
            match &line.rejected {
                None => "有效".to_string(),
                Some(r) => format!("已拒绝：{}", r.reason),
            },
        ]);
    }
    t
}

/// The human form of one record.
pub fn record_text(record: &Record, personal: Option<&Record>) -> String {
    let h = &record.header;
    let mut rows = vec![
        ("编号", h.id.to_string()),
        ("类型", h.kind.label().to_string()),
        ("所属节点", h.home.to_string()),
        (
            "创建",
            format!("{} {}", h.created_at.format("%Y-%m-%d %H:%M"), h.created_by),
        ),
    ];
    if let Some(Body::Personal(p)) = personal.map(|p| &p.body) {
        rows.push(("姓名（个人信息）", opt(&p.name)));
        rows.push(("联系电话（个人信息）", opt(&p.phone)));
        rows.push(("身份证号（个人信息）", opt(&p.id_number)));
    }
    let mut extra = String::new();
    match &record.body {
        Body::Delegate(d) => {
            rows.extend([
                ("姓名", d.name.clone()),
                ("性别", d.gender.label().to_string()),
                ("出生年份", opt(&d.birth_year)),
                ("民族", opt(&d.ethnicity)),
                ("党派", opt(&d.party)),
                ("职业", d.occupation.clone()),
                ("联络站", opt(&d.station)),
                ("状态", d.status().label().to_string()),
            ]);
            let mut t = table(&[
                "所属人大",
                "级别",
                "届次",
                "选区/选举单位",
                "状态",
                "变更日期",
            ]);
            for m in d.mandates.values() {
                t.add_row(vec![
                    m.congress.to_string(),
                    m.level.label().to_string(),
                    format!("第{}届", m.term),
                    m.constituency.clone(),
                    m.status.label().to_string(),
                    opt(&m.status_since),
                ]);
            }
            extra = format!("代表资格\n{t}");
        }
        Body::Group(g) => rows.extend([
            ("名称", g.name.clone()),
            ("类型", g.kind.label().to_string()),
            ("专业领域", opt(&g.field)),
            ("所属人大", g.congress.to_string()),
            ("组长", opt(&g.leader)),
            (
                "成员",
                g.members
                    .0
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            ("活动阵地", opt(&g.venue)),
        ]),
        Body::Venue(v) => rows.extend([
            ("名称", v.name.clone()),
            ("类型", v.kind.label().to_string()),
            ("区划", v.region.to_string()),
            ("地址", v.address.clone()),
        ]),
        Body::Activity(a) => {
            rows.extend([
                ("类型", a.kind.label().to_string()),
                ("日期", a.date.to_string()),
                ("主题", a.topic.clone()),
                ("组织者", a.organiser.clone()),
                ("代表小组", opt(&a.group)),
                ("活动阵地", opt(&a.venue)),
                ("接待群众人次", a.constituents_received.to_string()),
                ("成效", a.outcome.clone()),
            ]);
            let mut t = table(&["代表", "姓名", "最高层级", "签到时间"]);
            for (id, s) in &a.participants {
                t.add_row(vec![
                    id.to_string(),
                    s.name.clone(),
                    s.level.map(|l| l.label().to_string()).unwrap_or_default(),
                    s.signed_at.format("%Y-%m-%d %H:%M").to_string(),
                ]);
            }
            extra = format!("签到（{} 人）\n{t}", a.participants.len());
        }
        Body::Notice(n) => rows.extend([
            ("标题", n.title.clone()),
            ("类别", n.category.clone()),
            ("发布日期", n.issued_on.to_string()),
            ("发往", n.audience.to_string()),
            ("正文", n.body.clone()),
        ]),
        Body::Personal(p) => rows.extend([("所属记录", p.subject.to_string())]),
        Body::Rollup(r) => {
            let rate = |v: Option<f64>| v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_default();
            rows.extend([
                (
                    "计算时间",
                    r.computed_at.format("%Y-%m-%d %H:%M").to_string(),
                ),
                ("民情（全辖区）", r.total.opinions_total().to_string()),
                ("建议（全辖区）", r.total.suggestions_total().to_string()),
                ("按时答复率", rate(r.total.on_time_rate())),
                ("满意率", rate(r.total.satisfaction_rate())),
                ("超期未答复", r.total.overdue.to_string()),
                ("下级汇总数", r.children.len().to_string()),
                ("数据滞后的地区数", r.stale.len().to_string()),
            ]);
        }
        Body::Opinion(o) => {
            let (st, hist) = o.fold(h);
            rows.extend([
                ("来源", o.fields.source.label().to_string()),
                ("内容", o.fields.content.clone()),
                ("地点", o.fields.place.clone()),
                ("所在区划", o.fields.region.to_string()),
                ("收集代表", opt(&o.fields.delegate)),
                ("类别", opt(&o.fields.category)),
                ("状态", st.state.label().to_string()),
                ("转交单位", opt(&st.passed_on_to)),
                ("办理结果", opt(&st.result)),
                (
                    "群众评价",
                    st.rating.map(|r| r.label().to_string()).unwrap_or_default(),
                ),
            ]);
            let t = history_table(&hist, |a| {
                use renda_node::record::opinion::OpinionAction as A;
                let detail = match a {
                    A::Receive => String::new(),
                    A::AnswerOnSpot { reply } => reply.clone(),
                    A::PassOn { to } => to.clone(),
                    A::Start { note } => note.clone(),
                    A::Handle { result } => result.clone(),
                    A::Rate { rating } => rating.label().to_string(),
                };
                (a.label().to_string(), detail)
            });
            extra = format!("办理过程\n{t}");
        }
        Body::Suggestion(sg) => {
            let (st, hist) = sg.fold(h);
            let units = st
                .units
                .iter()
                .map(|u| format!("{}（{}）", u.unit, u.role.label()))
                .collect::<Vec<_>>()
                .join("、");
            rows.extend([
                (
                    "建议号",
                    st.number.map(|n| format!("第{n}号")).unwrap_or_default(),
                ),
                ("标题", sg.fields.title.clone()),
                ("类别", sg.fields.category.clone()),
                (
                    "领衔代表",
                    format!("{}（{}）", sg.fields.lead_name, sg.fields.lead),
                ),
                (
                    "联名代表",
                    sg.fields
                        .cosigners
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .join("、"),
                ),
                ("提交给", sg.fields.addressed_to.to_string()),
                (
                    "提出时间",
                    sg.fields
                        .session
                        .clone()
                        .unwrap_or_else(|| "闭会期间".into()),
                ),
                ("内容", sg.fields.body.clone()),
                ("状态", st.state.label().to_string()),
                ("不予立案理由", opt(&st.not_accepted_reason)),
                ("承办单位", units),
                ("交办日期", opt(&st.assigned_on)),
                (
                    "答复期限",
                    opt(&st.due) + if st.extended { "（已延期）" } else { "" },
                ),
                (
                    "答复类别",
                    st.class
                        .map(|c: AnswerClass| c.label().to_string())
                        .unwrap_or_default(),
                ),
                (
                    "按期答复",
                    st.answered_on_time
                        .map(|b| if b { "是" } else { "否（逾期答复）" }.to_string())
                        .unwrap_or_default(),
                ),
                (
                    "代表评价",
                    st.evaluation
                        .map(|e| e.label().to_string())
                        .unwrap_or_default(),
                ),
                (
                    "重点督办",
                    if st.key_supervision {
                        "是".into()
                    } else {
                        String::new()
                    },
                ),
                (
                    "办理轮次",
                    if st.round > 1 {
                        format!("第{}轮", st.round)
                    } else {
                        String::new()
                    },
                ),
                ("销号日期", opt(&st.closed_on)),
            ]);
            let t = history_table(&hist, |a| {
                use renda_node::record::suggestion::SuggestionAction as A;
                let detail = match a {
                    A::Submit | A::Close => String::new(),
                    A::Screen { number, reason, .. } => reason
                        .clone()
                        .or(number.map(|n| format!("第{n}号")))
                        .unwrap_or_default(),
                    A::Assign { units } => units
                        .iter()
                        .map(|u| format!("{}（{}）", u.unit, u.role.label()))
                        .collect::<Vec<_>>()
                        .join("、"),
                    A::SendBack { unit, reason } => format!("{unit}：{reason}"),
                    A::Extend { until, reason } => format!("延至 {until}：{reason}"),
                    A::Answer { unit, class, text } => format!("{unit} {}：{text}", class.as_str()),
                    A::Evaluate { result, comment } => format!("{} {comment}", result.label()),
                    A::Track { note } => note.clone(),
                    A::Supervise { .. } => String::new(),
                };
                (a.label().to_string(), detail)
            });
            extra = format!("办理过程\n{t}");
        }
    }
    let mut out = kv(rows).to_string();
    if !extra.is_empty() {
        out.push('\n');
        out.push_str(&extra);
    }
    out
}

fn quota(q: renda_node::record::rollup::Quota) -> String {
    format!("{}/{}（{}）", q.met, q.total, percent(q.rate()))
}

fn percent(rate: Option<f64>) -> String {
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
    let activities: u64 = t.activities.values().flat_map(|k| k.values()).sum();
    out.add_rows(vec![
        vec![
            "代表".to_string(),
            t.delegates.values().sum::<u64>().to_string(),
        ],
        vec!["活动".to_string(), activities.to_string()],
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
