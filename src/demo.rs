//! `renda demo`: a five-level federation on this machine, every node a real server on loopback
//! with its own SQLite file and a certificate from a CA made for the run, every link mutual TLS.
//!
//! The data is shaped like the counties' published reports: 沈丘县 collected 212 opinions, passed
//! all on, 27 in progress and 185 handled; 太湖县 has 109 liaison stations and 15 delegate homes,
//! 3,162 activities with 19,601 delegate sign-ins and 329 suggestions, all closed with every
//! delegate satisfied; 秀洲区's three townships record a year of activities and opinions, and one
//! suggestion of 王店镇 goes through its whole handling across two levels. Two townships then go
//! offline and keep working, and come back. The demo prints each level's rolled-up numbers, then
//! serves the dashboards with a login until Ctrl-C (`--no-serve` stops after the numbers).
//!
//! Everything goes through the same office operations, sync links and rollups as `renda run`:
//! nothing here is staged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate};
use renda_hub::node::Node;
use renda_node::access::Role;
use renda_node::node::{NewNode, NodeConfig};
use renda_node::office::{self, ActivityDraft, Contact, SeatDraft, StationRef, SuggestionDraft};
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::delegate::{Delegate, Gender};
use renda_node::record::group::{Group, GroupKind, Venue, VenueKind};
use renda_node::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
use renda_node::record::rollup::{Rollup, RollupRules};
use renda_node::record::suggestion::{
    AnswerClass, Satisfaction, SuggestionAction, SuggestionState, UnitAssignment, UnitRole,
};
use renda_node::record::{Body, IdSet, RecordId};
use renda_node::region::RegionCode;
use renda_node::store::StoreHandle;

use crate::cli::DemoArgs;

/// The federation: region code, name, parent (index into this list). County and higher codes
/// are the real 统计用区划代码; township segments follow the code table's form.
const NODES: &[(&str, &str, Option<usize>)] = &[
    ("000000000000", "全国人大常委会", None),
    ("330000000000", "浙江省人大常委会", Some(0)),
    ("330400000000", "嘉兴市人大常委会", Some(1)),
    ("330411000000", "秀洲区人大常委会", Some(2)),
    ("330411101000", "王店镇人大主席团", Some(3)),
    ("330411100000", "王江泾镇人大主席团", Some(3)),
    ("330411102000", "新塍镇人大主席团", Some(3)),
    ("410000000000", "河南省人大常委会", Some(0)),
    ("411600000000", "周口市人大常委会", Some(7)),
    ("411624000000", "沈丘县人大常委会", Some(8)),
    ("340000000000", "安徽省人大常委会", Some(0)),
    ("340800000000", "安庆市人大常委会", Some(10)),
    ("340825000000", "太湖县人大常委会", Some(11)),
];
const NATIONAL: usize = 0;
const JIAXING: usize = 2;
const XIUZHOU: usize = 3;
const WANGDIAN: usize = 4;
const OFFLINE: [usize; 2] = [5, 6];
const SHENQIU: usize = 9;
const TAIHU: usize = 12;

/// Marks a directory as the demo's own, so a second run may clear it.
const MARKER: &str = "renda-demo.txt";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("demo dates are valid")
}

/// A day of this year, moved back to today if it has not come yet: a step may not be dated
/// after the day it is recorded.
fn past(year: i32, month: u32, day: u32) -> NaiveDate {
    let today = renda_node::calendar::today();
    NaiveDate::from_ymd_opt(year, month, day)
        .unwrap_or(today)
        .min(today)
}

fn region(i: usize) -> RegionCode {
    RegionCode::parse("region", NODES[i].0).expect("demo region codes are valid")
}

/// A seat in the writing node's own congress.
fn seat(term: u32, constituency: &str, stations: Vec<RecordId>) -> SeatDraft {
    SeatDraft {
        term,
        constituency: constituency.into(),
        stations: stations.into_iter().map(StationRef::from).collect(),
    }
}

fn delegate(name: String, n: usize) -> Delegate {
    Delegate {
        name,
        gender: if n.is_multiple_of(2) {
            Gender::Female
        } else {
            Gender::Male
        },
        birth_year: None,
        ethnicity: Some("汉族".into()),
        party: None,
        occupation: "村民委员会主任".into(),
        station: None,
        merged_into: None,
        merge_route: None,
        mandates: BTreeMap::new(),
    }
}

const SURNAMES: &[&str] = &[
    "沈", "陆", "朱", "钱", "王", "李", "张", "陈", "周", "吴", "徐", "孙",
];
const GIVEN: &[&str] = &[
    "建华", "秀英", "伟明", "丽华", "国强", "海燕", "志刚", "桂芳", "永清", "文静",
];

fn person(n: usize) -> String {
    format!(
        "{}{}",
        SURNAMES[n % SURNAMES.len()],
        GIVEN[(n / SURNAMES.len()) % GIVEN.len()]
    )
}

/// Writes `count` items in transactions of at most 200 records each: a county entering a year's
/// paper forms does it in batches, and one transaction per batch keeps the demo quick.
async fn in_batches<F>(store: &StoreHandle, count: usize, make: F) -> Result<Vec<RecordId>>
where
    F: Fn(
            &mut renda_node::store::WriteTx<'_>,
            usize,
        ) -> Result<RecordId, renda_node::store::StoreError>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let mut ids = Vec::with_capacity(count);
    let mut start = 0;
    while start < count {
        let end = (start + 200).min(count);
        let make = make.clone();
        let batch = store
            .write(move |tx| {
                (start..end)
                    .map(|i| make(tx, i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        ids.extend(batch);
        start = end;
    }
    Ok(ids)
}

async fn add_station(
    store: &StoreHandle,
    at: RegionCode,
    name: String,
    kind: VenueKind,
) -> Result<RecordId> {
    Ok(store
        .write(move |tx| {
            office::add_venue(
                tx,
                "工作人员",
                Venue {
                    name,
                    kind,
                    region: at,
                    address: "便民服务中心二楼".into(),
                },
            )
        })
        .await?
        .id)
}

/// Records an opinion collected on `date` and takes it through `steps` the same day.
fn opinion(
    tx: &mut renda_node::store::WriteTx<'_>,
    fields: OpinionFields,
    date: NaiveDate,
    steps: Vec<OpinionAction>,
) -> Result<RecordId, renda_node::store::StoreError> {
    let id = office::add_opinion(tx, "工作人员", fields, Contact::default(), date)?.id;
    for step in steps {
        office::opinion_step(tx, "工作人员", &id, step, date)?;
    }
    Ok(id)
}

/// 转交 to `to`, 开始办理, 办结 with `result`.
fn handled(to: &str, result: &str) -> Vec<OpinionAction> {
    vec![
        OpinionAction::PassOn {
            to: to.into(),
            congress: None,
        },
        OpinionAction::Start {
            note: String::new(),
        },
        OpinionAction::Handle {
            result: result.into(),
        },
    ]
}

/// A township's year: a station, delegates, a group, monthly 代表活动日 with sign-ins, and the
/// opinions collected at them at every step of handling.
async fn township_year(store: &StoreHandle, i: usize, seed: usize) -> Result<()> {
    let me = region(i);
    let name = NODES[i].1.trim_end_matches("人大主席团").to_string();
    let station = add_station(
        store,
        me,
        format!("{name}人大代表联络站"),
        VenueKind::Station,
    )
    .await?;
    let delegates = in_batches(store, 12, move |tx, n| {
        let person = delegate(person(seed * 31 + n), n);
        let seat = seat(17, &format!("第{}选区", n % 6 + 1), vec![station]);
        Ok(office::add_delegate(tx, "工作人员", person, Contact::default(), Some(seat))?.id)
    })
    .await?;
    let members = IdSet(delegates[..6].iter().copied().collect());
    let leader = delegates[0];
    let group_name = format!("{}第一代表小组", NODES[i].1.trim_end_matches("人大主席团"));
    let group = store
        .write(move |tx| {
            office::add_group(
                tx,
                "工作人员",
                Group {
                    name: group_name,
                    kind: GroupKind::Regional,
                    field: None,
                    congress: me,
                    leader: Some(leader),
                    members,
                    venue: Some(station),
                },
            )
        })
        .await?
        .id;
    let year = renda_node::calendar::today().year();
    let months = renda_node::calendar::today().month();
    let people = delegates.clone();
    let organiser = NODES[i].1.to_string();
    let activities = in_batches(store, months as usize, move |tx, m| {
        let participants = people.iter().skip(m % 3).step_by(2).copied().collect();
        let draft = ActivityDraft {
            activity: Activity {
                kind: ActivityKind::Reception,
                date: past(year, m as u32 + 1, 15),
                topic: "代表活动日：进站接待选民".into(),
                organiser: organiser.clone(),
                group: Some(group),
                venue: Some(station),
                participants: BTreeMap::new(),
                constituents_received: 10 + (m as u32 * 7) % 15,
                outcome: "收集意见建议，能当场答复的当场答复".into(),
            },
            participants,
        };
        Ok(office::add_activity(tx, "工作人员", draft)?.id)
    })
    .await?;
    let opinions = 20 + seed * 3;
    let receivers = delegates.clone();
    in_batches(store, opinions, move |tx, n| {
        let activity = activities[n % activities.len()];
        let date = past(year, (n % months as usize) as u32 + 1, 15);
        let fields = OpinionFields {
            source: OpinionSource::Reception,
            content: [
                "村道路灯损坏，夜间出行不便",
                "农田灌溉渠道渗漏",
                "希望增设公交站点",
                "垃圾分类收运不及时",
            ][n % 4]
                .into(),
            place: "联络站".into(),
            region: me,
            delegate: Some(receivers[n % receivers.len()]),
            activity: Some(activity),
            category: Some("城乡建设".into()),
        };
        let steps = match n % 4 {
            0 => vec![],
            1 => vec![OpinionAction::AnswerOnSpot {
                reply: "已当场说明政策".into(),
            }],
            2 => vec![OpinionAction::PassOn {
                to: "镇人民政府".into(),
                congress: None,
            }],
            _ => handled("镇人民政府", "已办理"),
        };
        opinion(tx, fields, date, steps)
    })
    .await?;
    Ok(())
}

/// 沈丘县: 212 opinions collected, all passed on, 27 in progress and 185 handled.
async fn shenqiu(store: &StoreHandle) -> Result<()> {
    let me = region(SHENQIU);
    let year = renda_node::calendar::today().year();
    in_batches(store, 212, move |tx, n| {
        let date = past(year, 1 + (n % 10) as u32, 1 + (n % 27) as u32);
        let fields = OpinionFields {
            source: if n % 3 == 0 {
                OpinionSource::QrCode
            } else {
                OpinionSource::Reception
            },
            content: [
                "乡村道路需要硬化",
                "小学周边交通安全隐患",
                "农村饮水安全",
                "秸秆禁烧后的综合利用",
            ][n % 4]
                .into(),
            place: "县人大代表联络站".into(),
            region: me,
            delegate: None,
            activity: None,
            category: Some("民生".into()),
        };
        let mut steps = handled("县相关职能部门", "已办结并反馈群众");
        if n < 27 {
            // In progress: passed on and started, not yet handled.
            steps.pop();
        }
        opinion(tx, fields, date, steps)
    })
    .await?;
    Ok(())
}

/// 太湖县: 109 stations and 15 delegate homes, 3,162 activities with 19,601 sign-ins, and 329
/// suggestions of the term, every one closed and every delegate satisfied.
async fn taihu(store: &StoreHandle) -> Result<()> {
    let me = region(TAIHU);
    let mut venues = Vec::new();
    for n in 0..109 {
        venues.push(
            add_station(
                store,
                me,
                format!("太湖县第{}代表联络站", n + 1),
                VenueKind::Station,
            )
            .await?,
        );
    }
    for n in 0..15 {
        venues.push(
            add_station(
                store,
                me,
                format!("太湖县第{}代表之家", n + 1),
                VenueKind::Home,
            )
            .await?,
        );
    }
    let delegates = in_batches(store, 240, move |tx, n| {
        let person = delegate(person(n), n);
        let seat = seat(18, &format!("第{}选区", n % 40 + 1), Vec::new());
        Ok(office::add_delegate(tx, "工作人员", person, Contact::default(), Some(seat))?.id)
    })
    .await?;
    // 19,601 sign-ins over 3,162 activities: six each, and seven at the first 629.
    let year = renda_node::calendar::today().year();
    let months = renda_node::calendar::today().month() as usize;
    let people = delegates.clone();
    let kinds = [
        ActivityKind::Reception,
        ActivityKind::Inspection,
        ActivityKind::Research,
        ActivityKind::ActivityDay,
    ];
    in_batches(store, 3162, move |tx, n| {
        let size = if n < 629 { 7 } else { 6 };
        let participants = (0..size)
            .map(|k| people[(n * 7 + k * 37) % people.len()])
            .collect();
        let draft = ActivityDraft {
            activity: Activity {
                kind: kinds[n % kinds.len()],
                date: past(year, (n % months) as u32 + 1, 1 + (n % 28) as u32),
                topic: "代表进站履职".into(),
                organiser: "太湖县人大常委会".into(),
                group: None,
                venue: Some(venues[n % venues.len()]),
                participants: BTreeMap::new(),
                constituents_received: (n % 9) as u32,
                outcome: String::new(),
            },
            participants,
        };
        Ok(office::add_activity(tx, "工作人员", draft)?.id)
    })
    .await?;
    let leads = delegates.clone();
    in_batches(store, 329, move |tx, n| {
        use SuggestionAction as A;
        let draft = SuggestionDraft {
            title: format!("关于改善太湖县第{}号民生事项的建议", n + 1),
            body: "群众反映集中，建议列入年度民生实事。".into(),
            category: "民生".into(),
            lead: leads[n % leads.len()],
            cosigners: vec![],
            addressed_to: me,
            session: Some("十八届一次会议".into()),
            group: None,
        };
        let day = |m: u32| past(year, m, 1 + (n % 27) as u32);
        let id = office::submit_suggestion(tx, "工作人员", draft, day(1))?.id;
        let steps = [
            (
                A::Screen {
                    accepted: true,
                    number: None,
                    reason: None,
                },
                day(1),
            ),
            (
                A::Assign {
                    units: vec![UnitAssignment {
                        unit: "县相关职能部门".into(),
                        role: UnitRole::Lead,
                    }],
                },
                day(2),
            ),
            (
                A::Answer {
                    unit: "县相关职能部门".into(),
                    class: AnswerClass::A,
                    text: "已解决".into(),
                },
                day(3),
            ),
            (
                A::Evaluate {
                    result: Satisfaction::Satisfied,
                    comment: String::new(),
                },
                day(4),
            ),
            (A::Close, day(4)),
        ];
        for (action, date) in steps {
            office::suggestion_step(tx, "工作人员", &id, action, date)?;
        }
        Ok(id)
    })
    .await?;
    Ok(())
}

/// A motion (议案) to the township congress's session by five of its delegates, which its
/// 主席团 lists on the agenda: five is the least a township congress accepts.
async fn township_motion(store: &StoreHandle, i: usize) -> Result<RecordId> {
    let me = region(i);
    let year = renda_node::calendar::today().year();
    let signers: Vec<RecordId> = store
        .call(move |s| {
            s.list(&renda_node::store::ListQuery {
                kind: Some(renda_node::record::RecordKind::Delegate),
                within: Some(me),
                limit: Some(5),
                ..Default::default()
            })
        })
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    let draft = office::MotionDraft {
        title: "关于建设镇区养老服务中心的议案".into(),
        body: "镇区 60 岁以上老人逾四千人，现有养老设施不足。建议由镇政府牵头，利用闲置校舍建设养老服务中心。".into(),
        session: "第十七届人民代表大会第三次会议".into(),
        deadline: past(year, 1, 20),
        proposer: office::ProposerDraft::Delegates {
            lead: signers[0],
            cosigners: signers[1..].to_vec(),
        },
    };
    let id = store
        .write(move |tx| {
            let id = office::submit_motion(tx, "人大主席团秘书组", draft, past(year, 1, 15))?.id;
            office::decide_motion(
                tx,
                "人大主席团秘书组",
                &id,
                office::DecisionDraft::ListOnAgenda,
                past(year, 1, 17),
            )?;
            Ok(id)
        })
        .await?;
    Ok(id)
}

/// Polls `done` until it holds, or fails after `limit` naming `what`.
async fn until<F, Fut>(what: &str, limit: Duration, mut done: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = Instant::now();
    loop {
        if done().await? {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("the demo federation did not converge: {what} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn holds(store: &StoreHandle, id: RecordId) -> Result<bool> {
    Ok(store.call(move |s| Ok(s.get(&id).is_ok())).await?)
}

async fn suggestion_state(store: &StoreHandle, id: RecordId) -> Result<Option<SuggestionState>> {
    Ok(store
        .call(move |s| {
            Ok(match s.get(&id) {
                Ok(r) => match &r.body {
                    Body::Suggestion(sg) => Some(sg.fold(&r.header).0.state),
                    _ => None,
                },
                Err(_) => None,
            })
        })
        .await?)
}

async fn rollup_of(store: &StoreHandle, of: RegionCode) -> Result<Option<Rollup>> {
    Ok(store.call(move |s| s.rollup(&of)).await?)
}

/// The demo's dashboards: the national node's, the city's, the county's and 沈丘县's, on
/// consecutive ports from `--http`.
const DASHBOARDS: [usize; 5] = [NATIONAL, JIAXING, XIUZHOU, WANGDIAN, SHENQIU];

/// Starts node `i` with its certificate, a sync server, its rollups, its live link to its
/// parent (started before it) and, unless `http` is `None`, its dashboard.
async fn start_node(
    dir: &Path,
    ca: &renda_node::pki::CertificateAuthority,
    i: usize,
    nodes: &[Node],
    http: Option<std::net::SocketAddr>,
) -> Result<Node> {
    let (code, name, parent) = NODES[i];
    let me = region(i);
    let data = dir.join(code);
    ca.issue(&me, name, 30)?
        .save(&data.join(renda_node::tls::TLS_DIR), ca.root_pem())?;
    let mut config = NodeConfig::new(&data);
    config.init = Some(NewNode {
        region: me,
        name: name.to_string(),
    });
    config.parent = parent
        .and_then(|p| nodes.get(p))
        .and_then(Node::sync_addr)
        .map(|addr| addr.to_string());
    config.listen = Some("127.0.0.1:0".parse()?);
    config.http = http;
    config.rollup_every = Some(Duration::from_millis(500));
    Node::start(config).await.with_context(|| {
        format!("cannot start the demo node {name}; use --http with free ports for the dashboards")
    })
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let dir: PathBuf = args
        .demo_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("renda-demo-{}", RecordId::new())));
    if dir.exists() {
        if !dir.join(MARKER).exists() && std::fs::read_dir(&dir)?.next().is_some() {
            return Err(renda_node::store::StoreError::Invalid(
                renda_node::validate::ValidationError::new(
                    "demo-dir",
                    format!("{} 不是空目录，也不是上一次演示留下的目录", dir.display()),
                ),
            )
            .into());
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(MARKER), "renda demo federation; safe to delete\n")?;

    println!("Renda 演示：全国、省、市、县、乡五级人大节点组成的联邦，在本机回环地址上运行");
    println!("数据目录：{}", dir.display());

    println!(
        "\n【1】创建联邦证书颁发机构，为 {} 个节点签发证书，启动节点（双向 TLS）",
        NODES.len()
    );
    let ca = renda_node::pki::CertificateAuthority::create("Renda 演示联邦 CA", 30)?;
    ca.save(&dir.join("ca"))?;
    let mut nodes: Vec<Node> = Vec::new();
    let mut port = args.http.port();
    for (i, (code, name, _)) in NODES.iter().enumerate() {
        let http = (DASHBOARDS.contains(&i) && !args.no_serve).then(|| {
            let addr = std::net::SocketAddr::new(args.http.ip(), port);
            if port != 0 {
                port += 1;
            }
            addr
        });
        let node = start_node(&dir, &ca, i, &nodes, http).await?;
        let level = region(i).level().map_or("", |l| l.label());
        println!(
            "  {name}（{code}，{level}）  {}",
            node.sync_addr().map_or_else(String::new, |a| a.to_string())
        );
        nodes.push(node);
    }

    println!("\n【2】各地录入履职数据（与各县公开报道的数字一致）");
    for (seed, &i) in [WANGDIAN, OFFLINE[0], OFFLINE[1]].iter().enumerate() {
        township_year(nodes[i].store(), i, seed).await?;
        println!(
            "  {}：代表、联络站、代表小组、每月代表活动日、收集的民情",
            NODES[i].1
        );
    }
    township_motion(nodes[WANGDIAN].store(), WANGDIAN).await?;
    println!("  王店镇：5 名代表联名提出议案，主席团决定列入会议议程");
    shenqiu(nodes[SHENQIU].store()).await?;
    println!("  沈丘县：收集民情 212 条，全部转交，办理中 27 条，已办结 185 条");
    taihu(nodes[TAIHU].store()).await?;
    println!(
        "  太湖县：联络站 109 个、代表之家 15 个，活动 3162 场、代表签到 19601 人次，建议 329 件全部办结"
    );

    println!("\n【3】王店镇沈建华代表向秀洲区人大提出建议，区、镇两级在各自节点上办理");
    let (wangdian, county) = (
        nodes[WANGDIAN].store().clone(),
        nodes[XIUZHOU].store().clone(),
    );
    let me = region(WANGDIAN);
    let county_code = region(XIUZHOU);
    // Five-level delegates at one station (五级代表进站): the township registers 沈建华 with
    // the seat it grants; the county, once the person and the station have reached it,
    // grants its own seat there, stationed at the township's liaison station; the seat's
    // roster copy comes back down, and the township can sign 沈建华 in as a county delegate.
    let station = wangdian
        .call(move |s| {
            s.list(&renda_node::store::ListQuery {
                kind: Some(renda_node::record::RecordKind::Venue),
                within: Some(me),
                limit: Some(1),
                ..Default::default()
            })
        })
        .await?
        .first()
        .map(|row| row.id)
        .context("王店镇 has a liaison station")?;
    let lead = wangdian
        .write(move |tx| {
            let person = delegate("沈建华".into(), 1);
            let seat = seat(17, "第七选区", vec![station]);
            Ok(
                office::add_delegate(tx, "王店镇人大办", person, Contact::default(), Some(seat))?
                    .id,
            )
        })
        .await?;
    until(
        "沈建华 reaching the county",
        Duration::from_secs(30),
        || {
            let county = county.clone();
            async move { Ok(holds(&county, lead).await? && holds(&county, station).await?) }
        },
    )
    .await?;
    county
        .write(move |tx| {
            office::grant_mandate(
                tx,
                "秀洲区人大代表工委",
                &lead,
                seat(9, "王店镇选区", vec![station]),
            )
        })
        .await?;
    let waited = until(
        "沈建华's county seat reaching 王店镇",
        Duration::from_secs(30),
        || {
            let wangdian = wangdian.clone();
            async move {
                Ok(wangdian
                    .call(move |s| Ok(s.mandates_of(&lead)?.len() == 2))
                    .await?)
            }
        },
    )
    .await?;
    println!(
        "  秀洲区人大授予沈建华区人大代表资格、进站王店镇联络站；{:.1} 秒后王店镇名册可见",
        waited.as_secs_f64()
    );
    let draft = SuggestionDraft {
        title: "关于完善梅北村农田灌溉设施的建议".into(),
        body: "梅北村部分灌溉渠道年久失修，渗漏严重，影响约 600 亩水稻灌溉。建议列入今年农田水利建设计划，分段修缮。".into(),
        category: "农业农村".into(),
        lead,
        cosigners: vec![],
        addressed_to: county_code,
        session: Some("九届三次会议".into()),
        group: None,
    };
    let suggestion = wangdian
        .write(move |tx| office::submit_suggestion(tx, "王店镇人大办", draft, d("2026-03-02")))
        .await?
        .id;
    println!("  王店镇：提交建议 {suggestion}");
    let waited = until(
        "the suggestion reaching the county",
        Duration::from_secs(30),
        || {
            let county = county.clone();
            async move { holds(&county, suggestion).await }
        },
    )
    .await?;
    println!("  {:.1} 秒后秀洲区收到", waited.as_secs_f64());
    use SuggestionAction as A;
    let county_steps = [
        (
            "审查立案",
            A::Screen {
                accepted: true,
                number: None,
                reason: None,
            },
            "2026-03-06",
        ),
        (
            "交办：区农业农村局主办，王店镇人民政府协办，三个月内答复",
            A::Assign {
                units: vec![
                    UnitAssignment {
                        unit: "秀洲区农业农村局".into(),
                        role: UnitRole::Lead,
                    },
                    UnitAssignment {
                        unit: "王店镇人民政府".into(),
                        role: UnitRole::Assist,
                    },
                ],
            },
            "2026-03-10",
        ),
        ("列为重点督办", A::Supervise { key: true }, "2026-03-12"),
        (
            "答复（A类：已解决或基本解决）",
            A::Answer {
                unit: "秀洲区农业农村局".into(),
                class: AnswerClass::A,
                text: "已完成梅北村 2.3 公里渠道防渗改造。".into(),
            },
            "2026-05-20",
        ),
    ];
    for (text, action, date) in county_steps {
        let date = d(date);
        county
            .write(move |tx| {
                office::suggestion_step(tx, "秀洲区人大代表工委", &suggestion, action, date)
            })
            .await?;
        println!("  秀洲区：{text}");
    }
    let waited = until(
        "the answer reaching the township",
        Duration::from_secs(30),
        || {
            let wangdian = wangdian.clone();
            async move {
                Ok(suggestion_state(&wangdian, suggestion).await?
                    == Some(SuggestionState::Answered))
            }
        },
    )
    .await?;
    println!(
        "  {:.1} 秒后王店镇看到答复，沈建华代表评价：满意",
        waited.as_secs_f64()
    );
    wangdian
        .write(move |tx| {
            office::suggestion_step(
                tx,
                "王店镇人大办",
                &suggestion,
                A::Evaluate {
                    result: Satisfaction::Satisfied,
                    comment: "渠道已修好，群众满意".into(),
                },
                d("2026-05-28"),
            )
        })
        .await?;
    until(
        "the evaluation reaching the county",
        Duration::from_secs(30),
        || {
            let county = county.clone();
            async move {
                Ok(
                    suggestion_state(&county, suggestion).await?
                        == Some(SuggestionState::Satisfied),
                )
            }
        },
    )
    .await?;
    county
        .write(move |tx| {
            office::suggestion_step(
                tx,
                "秀洲区人大代表工委",
                &suggestion,
                A::Close,
                d("2026-06-05"),
            )
        })
        .await?;
    println!("  秀洲区：销号，建议办结");
    let waited = until(
        "the closing reaching the township",
        Duration::from_secs(30),
        || {
            let wangdian = wangdian.clone();
            async move {
                Ok(suggestion_state(&wangdian, suggestion).await? == Some(SuggestionState::Closed))
            }
        },
    )
    .await?;
    println!("  {:.1} 秒后王店镇看到“已办结”", waited.as_secs_f64());

    println!("\n【4】王江泾镇、新塍镇断网，离线期间继续登记民情");
    for &i in &OFFLINE {
        nodes[i].pause_link().await;
    }
    let mut offline_ids = Vec::new();
    for &i in &OFFLINE {
        let me = region(i);
        let ids = in_batches(nodes[i].store(), 5, move |tx, n| {
            let fields = OpinionFields {
                source: OpinionSource::Visit,
                content: format!("离线期间走访收集的第{}条民情", n + 1),
                place: "村委会".into(),
                region: me,
                delegate: None,
                activity: None,
                category: None,
            };
            Ok(office::add_opinion(
                tx,
                "工作人员",
                fields,
                Contact::default(),
                renda_node::calendar::today(),
            )?
            .id)
        })
        .await?;
        offline_ids.extend(ids);
        println!("  {}：离线登记 5 条", NODES[i].1);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut arrived = 0;
    for id in &offline_ids {
        arrived += usize::from(holds(&county, *id).await?);
    }
    println!("  秀洲区此时收到其中 {arrived} 条（链路断开）");
    for &i in &OFFLINE {
        nodes[i].resume_link();
    }
    let ids = offline_ids.clone();
    let waited = until(
        "the offline opinions reaching the county",
        Duration::from_secs(60),
        || {
            let (county, ids) = (county.clone(), ids.clone());
            async move {
                for id in ids {
                    if !holds(&county, id).await? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        },
    )
    .await?;
    println!(
        "  恢复联网，{:.1} 秒内全部同步到秀洲区",
        waited.as_secs_f64()
    );

    println!("\n【5】等待各级汇总逐级上报到全国人大节点");
    // Every node's own numbers, counted where they were recorded, must add up to the national
    // total. Both sides keep moving until the last step has reached every holder, so the sum is
    // taken afresh each time.
    let stores: Vec<StoreHandle> = nodes.iter().map(|n| n.store().clone()).collect();
    let waited = until("the national rollup", Duration::from_secs(180), || {
        let stores = stores.clone();
        async move {
            let mut expected = renda_node::record::rollup::Metrics::default();
            // Counted now, not as last stored: a node's stored rollup may still lag its
            // latest writes by one refresh.
            for store in &stores {
                expected.add(
                    &renda_node::rollups::refresh(store, RollupRules::default())
                        .await?
                        .own,
                );
            }
            Ok(rollup_of(&stores[NATIONAL], region(NATIONAL))
                .await?
                .is_some_and(|r| {
                    r.total.opinions == expected.opinions
                        && r.total.suggestions == expected.suggestions
                        && r.total.activities_total() == expected.activities_total()
                        && r.total.sign_ins == expected.sign_ins
                        && r.total.delegates_total() == expected.delegates_total()
                }))
        }
    })
    .await?;
    println!("  {:.1} 秒后全国汇总与各地记录一致", waited.as_secs_f64());

    println!("\n【6】各级汇总（每个节点自己的汇总：本级记录加下级上报的汇总）");
    let mut table = crate::render::table(&[
        "节点",
        "级别",
        "代表",
        "活动",
        "签到",
        "民情",
        "已办结民情",
        "建议",
        "已办结建议",
        "满意率",
        "下级",
    ]);
    for (i, node) in nodes.iter().enumerate() {
        let Some(r) = rollup_of(node.store(), region(i)).await? else {
            continue;
        };
        let t = &r.total;
        table.add_row(vec![
            NODES[i].1.to_string(),
            region(i).level().map_or("", |l| l.label()).to_string(),
            t.delegates_total().to_string(),
            t.activities_total().to_string(),
            t.sign_ins.to_string(),
            t.opinions_total().to_string(),
            t.opinions.get("handled").copied().unwrap_or(0).to_string(),
            t.suggestions_total().to_string(),
            t.suggestions
                .get("closed")
                .copied()
                .unwrap_or(0)
                .to_string(),
            crate::render::percent(t.satisfaction_rate()),
            r.children.len().to_string(),
        ]);
    }
    println!("{table}");
    // The national node holds no county's records, nor the counties' rollups: only its
    // provinces'. Henan's numbers are 沈丘县's, Anhui's are 太湖县's.
    let national_view = rollup_of(nodes[NATIONAL].store(), region(NATIONAL))
        .await?
        .context("the national rollup")?;
    if let Some(henan) = national_view.children.get(NODES[7].0) {
        let o = &henan.total.opinions;
        println!(
            "  全国节点看到的河南省（沈丘县）：民情 {} 条，累计转交 {} 条，已转交后办理中 {} 条，已办结 {} 条",
            henan.total.opinions_total(),
            henan.total.opinions_passed_on,
            o.get("in_progress").copied().unwrap_or(0),
            o.get("handled").copied().unwrap_or(0)
        );
    }
    if let Some(anhui) = national_view.children.get(NODES[10].0) {
        println!(
            "  全国节点看到的安徽省（太湖县）：活动 {} 场，签到 {} 人次，建议 {} 件，满意率 {}",
            anhui.total.activities_total(),
            anhui.total.sign_ins,
            anhui.total.suggestions_total(),
            crate::render::percent(anhui.total.satisfaction_rate())
        );
    }
    // Where 王店镇's delegates stand against its duty rules, judged at 王店镇 itself.
    let today = renda_node::calendar::today();
    let (_, standings) = nodes[WANGDIAN]
        .store()
        .call(move |s| s.quota_standings(today.year(), today))
        .await?;
    let count = |standing| {
        standings
            .iter()
            .filter(|s| {
                s.subject == renda_node::record::quota::QuotaSubject::Delegate
                    && s.standing == standing
            })
            .count()
    };
    use renda_node::record::quota::Standing;
    println!(
        "  王店镇代表履职（本年，按本级履职要求）：已达标 {}，进度正常 {}，进度落后 {}，未达标 {}",
        count(Standing::Met),
        count(Standing::OnTrack),
        count(Standing::Behind),
        count(Standing::Short)
    );
    let held = nodes[NATIONAL].store().call(|s| s.stats()).await?;
    println!(
        "  全国节点自己只保存 {} 条记录（各级汇总和本级的履职要求），不保存县乡的原始记录",
        held.records_total()
    );
    println!("  准备用时 {:.0} 秒", started.elapsed().as_secs_f64());

    if args.no_serve {
        println!(
            "\n演示完成（--no-serve：不启动看板）。节点数据保留在 {}",
            dir.display()
        );
        shut_down(nodes).await;
        return Ok(());
    }

    println!("\n【7】看板（按 Ctrl-C 结束演示）");
    for &i in &DASHBOARDS {
        let token = nodes[i]
            .store()
            .write(|tx| tx.add_credential("演示管理员", Role::Admin))
            .await?;
        if let Some(bound) = nodes[i].http_addr() {
            println!("  {}：http://{bound}/  登录令牌：{token}", NODES[i].1);
        }
    }
    println!("  （令牌角色为“管理”：可查看全部页面和审计日志）");
    // The clerks of the README's suggestion, with accounts for the workbench: a password of
    // this run, since the demo's dashboards are reachable by anyone on this machine.
    let password = format!("renda-{:08x}", rand::random::<u32>());
    for (i, account) in [(WANGDIAN, "王店镇人大办"), (XIUZHOU, "秀洲区代表工委")] {
        let hash = renda_node::access::hash_password(&password)?;
        nodes[i]
            .store()
            .write(move |tx| tx.add_account(account, Role::Clerk, &hash))
            .await?;
        if let Some(bound) = nodes[i].http_addr() {
            println!(
                "  {}工作台：http://{bound}/todo  办理账号：{account}  密码：{password}",
                NODES[i].1
            );
        }
    }
    println!("  （办理账号可在浏览器中登记、办理建议和民情，导入名册，打印签到二维码）");
    tokio::signal::ctrl_c().await?;
    shut_down(nodes).await;
    println!("演示结束。节点数据保留在 {}", dir.display());
    Ok(())
}

/// Stops every node, children before parents, so each link drains into a running parent.
async fn shut_down(nodes: Vec<Node>) {
    for node in nodes.into_iter().rev() {
        node.shutdown().await;
    }
}
