//! The labelled form of a record that staff read: each field with its Chinese name, and the
//! tables (mandates, sign-ins, the handling history) that go with it. The CLI prints it as text
//! tables and the dashboard as HTML; neither decides again what a record shows.

use super::event::HistoryLine;
use super::suggestion::AnswerClass;
use super::{Body, Record};

/// One record as staff read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView {
    /// Labelled fields in the order shown; empty values are left out.
    pub fields: Vec<(&'static str, String)>,
    pub tables: Vec<ViewTable>,
}

/// A titled table that belongs to a record (its mandates, sign-ins or history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewTable {
    pub title: String,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl ViewTable {
    fn new(headers: &[&'static str]) -> ViewTable {
        ViewTable {
            title: String::new(),
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    fn titled(mut self, title: impl Into<String>) -> ViewTable {
        self.title = title.into();
        self
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

fn history<A>(lines: &[HistoryLine<A>], describe: impl Fn(&A) -> (String, String)) -> ViewTable {
    let mut t = ViewTable::new(&["日期", "步骤", "内容", "操作人", "结果"]);
    for line in lines {
        let (step, detail) = describe(&line.event.action);
        t.rows.push(vec![
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

/// A person's mandate records as one table, for the person's page.
pub fn seats_table<'a>(
    seats: impl IntoIterator<Item = (&'a super::RecordId, &'a super::mandate::Mandate)>,
) -> ViewTable {
    let mut t = ViewTable::new(&[
        "代表资格编号",
        "所属人大",
        "级别",
        "届次",
        "选区/选举单位",
        "状态",
        "变更日期",
        "进站",
    ]);
    for (id, m) in seats {
        t.rows.push(vec![
            id.to_string(),
            m.congress.to_string(),
            m.level.label().to_string(),
            format!("第{}届", m.term),
            m.constituency.clone(),
            m.status.label().to_string(),
            opt(&m.status_since),
            m.current_stations()
                .map(|(venue, _)| venue.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        ]);
    }
    t.titled("代表资格")
}

/// The labelled form of one record; `personal` adds its personal data where the caller may
/// show it.
pub fn view(record: &Record, personal: Option<&Record>) -> RecordView {
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
    let mut tables = Vec::new();
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
                ("已合并到", opt(&d.merged_into)),
            ]);
            // Seats kept inside the person (registered before mandates were records); a
            // person registered since shows their mandate records through `seats_table`.
            if !d.mandates.is_empty() {
                rows.push(("状态", d.status().label().to_string()));
                let mut t = ViewTable::new(&[
                    "所属人大",
                    "级别",
                    "届次",
                    "选区/选举单位",
                    "状态",
                    "变更日期",
                ]);
                for m in d.mandates.values() {
                    t.rows.push(vec![
                        m.congress.to_string(),
                        m.level.label().to_string(),
                        format!("第{}届", m.term),
                        m.constituency.clone(),
                        m.status.label().to_string(),
                        opt(&m.status_since),
                    ]);
                }
                tables.push(t.titled("代表资格"));
            }
        }
        Body::Mandate(m) => {
            rows.extend([
                ("姓名", m.name.clone()),
                ("人员编号", m.person.to_string()),
                ("人员登记节点", m.person_home.to_string()),
                ("所属人大", m.congress.to_string()),
                ("级别", m.level.label().to_string()),
                ("届次", format!("第{}届", m.term)),
                ("选区/选举单位", m.constituency.clone()),
                ("状态", m.status.label().to_string()),
                ("变更日期", opt(&m.status_since)),
            ]);
            let mut t = ViewTable::new(&["阵地编号", "所在区划", "离站日期"]);
            for (venue, station) in &m.stations {
                t.rows.push(vec![
                    venue.to_string(),
                    station.region.to_string(),
                    opt(&station.until),
                ]);
            }
            tables.push(t.titled("进站"));
        }
        Body::QuotaRule(q) => rows.extend([
            ("要求", q.describe()),
            ("制定人大", q.congress.to_string()),
            ("对象", q.subject.label().to_string()),
            (
                "小组类别",
                q.group_kind
                    .map_or_else(|| "全部".to_string(), |k| k.label().to_string()),
            ),
            ("周期", q.period.label().to_string()),
            ("最低次数", q.minimum.to_string()),
            ("生效日期", q.from.to_string()),
            ("停止日期", opt(&q.until)),
            ("依据", opt(&q.basis)),
        ]),
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
            let mut t = ViewTable::new(&["代表", "姓名", "最高层级", "签到时间"]);
            for (id, s) in &a.participants {
                t.rows.push(vec![
                    id.to_string(),
                    s.name.clone(),
                    s.level.map(|l| l.label().to_string()).unwrap_or_default(),
                    s.signed_at.format("%Y-%m-%d %H:%M").to_string(),
                ]);
            }
            tables.push(t.titled(format!("签到（{} 人）", a.participants.len())));
        }
        Body::Notice(n) => rows.extend([
            ("标题", n.title.clone()),
            ("类别", n.category.clone()),
            ("发布日期", n.issued_on.to_string()),
            ("发往", n.audience.to_string()),
            ("正文", n.body.clone()),
        ]),
        Body::Personal(p) => rows.extend([("所属记录", p.subject.to_string())]),
        Body::Revocation(r) => rows.extend([
            ("被吊销节点", r.region.to_string()),
            ("证书序列号", r.serial.clone()),
            ("原因", r.reason.label().to_string()),
            ("说明", r.note.clone()),
        ]),
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
            let t = history(&hist, |a| {
                use crate::record::opinion::OpinionAction as A;
                let detail = match a {
                    A::Receive => String::new(),
                    A::AnswerOnSpot { reply } => reply.clone(),
                    A::PassOn { to, .. } => to.clone(),
                    A::Start { note } => note.clone(),
                    A::Handle { result } => result.clone(),
                    A::Rate { rating } => rating.label().to_string(),
                };
                (a.label().to_string(), detail)
            });
            tables.push(t.titled("办理过程"));
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
            let t = history(&hist, |a| {
                use crate::record::suggestion::SuggestionAction as A;
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
                    A::Track { note, solved } => {
                        if *solved {
                            format!("{note}（已解决）")
                        } else {
                            note.clone()
                        }
                    }
                    A::Supervise { .. } => String::new(),
                };
                (a.label().to_string(), detail)
            });
            tables.push(t.titled("办理过程"));
        }
        Body::Motion(m) => {
            use crate::record::motion::{MotionAction as A, MotionDecision as D, Proposer};
            let (st, hist) = m.fold(h);
            let signers = match &m.fields.proposer {
                Proposer::Delegates {
                    lead_name,
                    cosigners,
                    ..
                } => std::iter::once(lead_name.clone())
                    .chain(cosigners.iter().map(|c| c.name.clone()))
                    .collect::<Vec<_>>()
                    .join("、"),
                _ => String::new(),
            };
            rows.extend([
                ("案由", m.fields.title.clone()),
                ("所属人大", m.fields.congress.to_string()),
                ("会议", m.fields.session.clone()),
                ("截止日期", m.fields.deadline.to_string()),
                ("提出者", m.fields.proposer.describe()),
                ("联名代表", signers),
                ("内容", m.fields.body.clone()),
                ("状态", st.state.label().to_string()),
                ("提出日期", opt(&st.submitted_on)),
                ("决定日期", opt(&st.decided_on)),
                ("审议的专门委员会", opt(&st.committee)),
                ("转成的建议", opt(&st.suggestion)),
            ]);
            let t = history(&hist, |a| {
                let detail = match a {
                    A::Submit
                    | A::Decide {
                        decision: D::ListOnAgenda,
                    } => String::new(),
                    A::Decide {
                        decision: D::ReferToCommittee { committee },
                    } => committee.clone(),
                    A::Decide {
                        decision: D::ConvertToSuggestion { suggestion },
                    } => suggestion.to_string(),
                };
                (a.label().to_string(), detail)
            });
            tables.push(t.titled("办理过程"));
        }
    }
    RecordView {
        fields: rows.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        tables,
    }
}
