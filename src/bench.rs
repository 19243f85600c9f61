//! `renda bench sync`: measures sync on this machine with real nodes (real SQLite files, real
//! gRPC over loopback) and prints the numbers docs/benchmarks.md records.
//!
//! - cold sync of N realistic records, township to county: records/s and bytes/record;
//! - sync after 100 and after 1 of N records changed, and a no-op sync: ms and bytes;
//! - four-hop propagation latency, township to national over live links: p50 and p99;
//! - with `--townships K`, the county's peak RSS (a separate `renda run` process) after K
//!   townships of N records each have synced to it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::NaiveDate;
use renda_hub::node::Node;
use renda_node::node::{NewNode, NodeConfig};
use renda_node::office::{self, ActivityDraft, Contact, SeatDraft, StationRef, SuggestionDraft};
use renda_node::record::RecordId;
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::delegate::{Delegate, Gender};
use renda_node::record::group::{Venue, VenueKind};
use renda_node::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
use renda_node::region::RegionCode;
use renda_node::store::{Store, StoreHandle};
use renda_node::sync::client::sync_with_parent;
use renda_node::sync::{LinkConfig, LinkReport, Mode};

use crate::cli::BenchArgs;

pub(crate) fn code(s: &str) -> RegionCode {
    RegionCode::parse("region", s).expect("bench region codes are valid")
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).expect("valid date")
}

pub(crate) struct BenchNode {
    pub(crate) region: RegionCode,
    pub(crate) store: StoreHandle,
    pub(crate) addr: String,
    /// Kept so the node runs as long as the bench holds it.
    pub(crate) node: Node,
}

/// Starts a node serving sync on loopback, linked live to `parent` if given. Its rollup is not
/// kept fresh: the benches measure sync and queries, and a refresh landing in a timed window
/// would only add noise.
pub(crate) async fn start(
    dir: &Path,
    region: &str,
    name: &str,
    parent: Option<&str>,
) -> Result<BenchNode> {
    let region = code(region);
    let mut config = NodeConfig::new(dir.join(region.as_str()));
    config.init = Some(NewNode {
        region,
        name: name.to_string(),
    });
    config.parent = parent.map(str::to_string);
    config.listen = Some("127.0.0.1:0".parse()?);
    config.rollup_every = None;
    let node = Node::start(config).await?;
    Ok(BenchNode {
        region,
        store: node.store().clone(),
        addr: node
            .sync_addr()
            .context("a bench node serves sync")?
            .to_string(),
        node,
    })
}

pub(crate) async fn sync(child: &BenchNode, parent_addr: &str) -> Result<(LinkReport, Duration)> {
    let started = Instant::now();
    let report = sync_with_parent(
        child.store.clone(),
        child.region,
        parent_addr,
        Mode::Once,
        LinkConfig::default(),
    )
    .await?;
    Ok((report, started.elapsed()))
}

/// A seat in the writing node's own congress, with no station.
fn seat(term: u32) -> SeatDraft {
    SeatDraft {
        term,
        constituency: "第七选区".into(),
        stations: Vec::new(),
    }
}

/// Writes `n` records shaped like a township's year: for every ten, four opinions (half with a
/// constituent's contact), three activities with sign-ins, two delegates and one suggestion.
/// Text in the vocabulary of opinions and suggestions, different for every `seed`: records then
/// compress on the wire the way real ones do, not the way one sentence repeated ten thousand
/// times would.
fn prose(seed: usize, min_chars: usize) -> String {
    const WORDS: &[&str] = &[
        "村道",
        "路灯",
        "损坏",
        "夜间",
        "出行",
        "不便",
        "希望",
        "尽快",
        "维修",
        "加装",
        "照明",
        "设施",
        "农田",
        "灌溉",
        "渠道",
        "年久失修",
        "渗漏",
        "严重",
        "建议",
        "列入",
        "计划",
        "分段",
        "修缮",
        "群众",
        "反映",
        "道路",
        "积水",
        "排水",
        "不畅",
        "雨季",
        "影响",
        "通行",
        "学校",
        "周边",
        "交通",
        "安全",
        "隐患",
        "增设",
        "红绿灯",
        "减速带",
        "养老",
        "服务",
        "中心",
        "老人",
        "就餐",
        "困难",
        "社区",
        "食堂",
        "医疗",
        "卫生室",
        "医生",
        "短缺",
        "看病",
        "配备",
        "垃圾",
        "分类",
        "清运",
        "不及时",
        "异味",
        "环境",
        "整治",
        "河道",
        "污水",
        "处理",
        "生活",
        "饮用水",
        "水质",
        "检测",
        "公开",
        "停车",
        "位置",
        "紧张",
        "规划",
        "公交",
        "线路",
        "班次",
        "太少",
        "延长",
        "运营",
        "时间",
        "就业",
        "培训",
        "补贴",
        "发放",
        "标准",
        "政策",
        "宣传",
        "到位",
        "落实",
        "农户",
        "合作社",
        "销路",
        "电商",
        "直播",
        "帮助",
        "拓宽",
        "文化",
        "礼堂",
        "活动",
        "场地",
        "开放",
        "健身",
        "器材",
        "老化",
        "更换",
        "消防",
        "通道",
        "占用",
        "清理",
        "物业",
        "管理",
        "费用",
        "监督",
        "村务",
        "公开",
        "及时",
        "回应",
        "诉求",
        "满意",
        "调查",
        "核实",
    ];
    const MARKS: [&str; 6] = ["，", "，", "，", "。", "；", "、"];
    // xorshift64 seeded from the record's number: the same text on every run.
    let mut state = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    let mut out = String::new();
    let mut chars = 0;
    while chars < min_chars {
        let word = WORDS[next() % WORDS.len()];
        out.push_str(word);
        chars += word.chars().count();
        if next() % 3 == 0 {
            out.push_str(MARKS[next() % MARKS.len()]);
            chars += 1;
        }
    }
    out.push('。');
    out
}

/// Returns the opinion ids, which the change benchmarks edit.
pub(crate) async fn populate(node: &BenchNode, n: usize) -> Result<Vec<RecordId>> {
    populate_with(node, n, (n / 10 * 2).max(2)).await
}

/// Writes `n` records at a township, `delegates` of them delegates (a person and their seat,
/// two records each) and the rest opinions, activities and suggestions of those delegates.
pub(crate) async fn populate_with(
    node: &BenchNode,
    n: usize,
    delegates: usize,
) -> Result<Vec<RecordId>> {
    let region = node.region;
    let delegates = delegates.clamp(2, n.max(2));
    let mut delegate_ids = Vec::new();
    let mut opinions = Vec::new();
    let mut made = 0usize;
    let names = [
        "沈建华",
        "陆秀英",
        "朱伟明",
        "钱丽华",
        "王志强",
        "李春燕",
        "张国平",
        "周桂芳",
    ];
    let persons = (delegates / 2).max(1);
    while made < persons {
        let chunk = (persons - made).min(500);
        let start = made;
        let ids = node
            .store
            .write(move |tx| {
                let mut ids = Vec::new();
                for i in start..start + chunk {
                    let delegate = Delegate {
                        name: format!("{}{}", names[i % names.len()], i),
                        gender: if i % 2 == 0 {
                            Gender::Male
                        } else {
                            Gender::Female
                        },
                        birth_year: Some(1960 + (i % 40) as i32),
                        ethnicity: Some("汉族".into()),
                        party: None,
                        occupation: "村民委员会主任".into(),
                        station: None,
                        merged_into: None,
                        merge_route: None,
                        mandates: BTreeMap::new(),
                    };
                    ids.push(
                        office::add_delegate(
                            tx,
                            "clerk",
                            delegate,
                            Contact::default(),
                            Some(seat(17)),
                        )?
                        .id,
                    );
                }
                Ok(ids)
            })
            .await?;
        delegate_ids.extend(ids);
        made += chunk;
    }
    let others = n.saturating_sub(persons * 2);
    let mut written = 0usize;
    while written < others {
        let chunk = (others - written).min(500);
        let start = written;
        let pool = delegate_ids.clone();
        let ids = node
            .store
            .write(move |tx| {
                let mut opinions = Vec::new();
                for i in start..start + chunk {
                    match i % 8 {
                        0..=3 => {
                            let fields = OpinionFields {
                                source: OpinionSource::QrCode,
                                content: prose(i, 40 + i * 7 % 120),
                                place: format!("梅北村{}组", i % 12 + 1),
                                region,
                                delegate: Some(pool[i % pool.len()]),
                                activity: None,
                                category: Some("城乡建设".into()),
                            };
                            let contact = if i % 2 == 0 {
                                Contact {
                                    name: Some("李阿姨".into()),
                                    phone: Some("13800000000".into()),
                                    id_number: None,
                                }
                            } else {
                                Contact::default()
                            };
                            opinions
                                .push(office::add_opinion(tx, "clerk", fields, contact, day())?.id);
                        }
                        4..=6 => {
                            let draft = ActivityDraft {
                                activity: Activity {
                                    kind: ActivityKind::Reception,
                                    date: day(),
                                    topic: format!("代表活动日：{}", prose(i, 10 + i % 20)),
                                    organiser: "王店镇人大主席团".into(),
                                    group: None,
                                    venue: None,
                                    participants: BTreeMap::new(),
                                    constituents_received: (i % 30) as u32,
                                    outcome: prose(i + 1, 20 + i % 40),
                                },
                                participants: vec![
                                    pool[i % pool.len()],
                                    pool[(i + 1) % pool.len()],
                                ],
                            };
                            office::add_activity(tx, "clerk", draft)?;
                        }
                        _ => {
                            let draft = SuggestionDraft {
                                title: format!("关于{}的建议", prose(i, 8 + i % 12)),
                                body: prose(i + 2, 150 + i * 13 % 250),
                                category: "农业农村".into(),
                                lead: pool[i % pool.len()],
                                cosigners: vec![pool[(i + 1) % pool.len()]],
                                addressed_to: region,
                                session: None,
                                group: None,
                            };
                            office::submit_suggestion(tx, "clerk", draft, day())?;
                        }
                    }
                }
                Ok(opinions)
            })
            .await?;
        opinions.extend(ids);
        written += chunk;
    }
    Ok(opinions)
}

async fn pass_on(node: &BenchNode, ids: &[RecordId]) -> Result<()> {
    let ids = ids.to_vec();
    node.store
        .write(move |tx| {
            for id in &ids {
                office::opinion_step(
                    tx,
                    "clerk",
                    id,
                    OpinionAction::PassOn {
                        to: "镇建设办".into(),
                        congress: None,
                    },
                    day(),
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let n = args.records;
    println!("renda bench sync: {n} records, township → county over loopback gRPC");

    let county = start(dir.path(), "330411000000", "秀洲区人大常委会", None).await?;
    let town = start(dir.path(), "330411101000", "王店镇人大主席团", None).await?;
    let started = Instant::now();
    let opinions = populate(&town, n).await?;
    println!(
        "  populate: {n} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let records = town.store.call(|s| s.stats()).await?.records_total();
    let held_before = county.store.call(|s| s.stats()).await?;

    let (cold, took) = sync(&town, &county.addr).await?;
    // A fast sync that drops records would be no result: the county must hold every record
    // and change the township sent.
    let held = county.store.call(|s| s.stats()).await?;
    anyhow::ensure!(
        held.records_total() - held_before.records_total() == records
            && held.changes - held_before.changes == cold.changes_sent as u64,
        "the county holds {} records and {} changes of the {records} records and {} changes sent",
        held.records_total() - held_before.records_total(),
        held.changes - held_before.changes,
        cold.changes_sent
    );
    println!(
        "  cold sync: {records} records ({} changes) in {:.0} ms = {:.0} records/s, {:.0} bytes/record on the wire ({:.0} before compression)",
        cold.changes_sent,
        ms(took),
        records as f64 / took.as_secs_f64(),
        cold.wire_bytes_sent as f64 / records as f64,
        cold.bytes_sent as f64 / records as f64
    );
    // Each round passes on opinions not yet passed on, so every edit is a legal step.
    let mut untouched = opinions.iter().copied();
    for changed in [100usize, 1] {
        let mut samples = Vec::new();
        let mut bytes = 0;
        for _ in 0..3 {
            let ids: Vec<RecordId> = untouched.by_ref().take(changed).collect();
            if ids.len() < changed {
                break;
            }
            pass_on(&town, &ids).await?;
            let before = county.store.call(|s| s.stats()).await?.changes;
            let (report, took) = sync(&town, &county.addr).await?;
            let after = county.store.call(|s| s.stats()).await?.changes;
            anyhow::ensure!(
                report.changes_sent == changed && after - before == changed as u64,
                "expected {changed} changes; sent {}, the county stored {}",
                report.changes_sent,
                after - before
            );
            samples.push(took);
            bytes = report.wire_bytes_sent + report.wire_bytes_received;
        }
        anyhow::ensure!(
            !samples.is_empty(),
            "too few records to change {changed}; raise --records"
        );
        samples.sort();
        println!(
            "  {changed} of {records} changed: median {:.1} ms, {} bytes both ways",
            ms(percentile(&samples, 0.5)),
            bytes
        );
    }
    let mut noop = Vec::new();
    let mut noop_bytes = 0;
    for _ in 0..20 {
        let (report, took) = sync(&town, &county.addr).await?;
        noop.push(took);
        noop_bytes = report.wire_bytes_sent + report.wire_bytes_received;
    }
    noop.sort();
    println!(
        "  no-op sync at {records} records: median {:.2} ms, p99 {:.2} ms, {noop_bytes} bytes both ways",
        ms(percentile(&noop, 0.5)),
        ms(percentile(&noop, 0.99))
    );

    // Four hops with live links everywhere.
    let chain = [
        "000000000000",
        "330000000000",
        "330400000000",
        "330411000000",
        "330411101000",
    ];
    let mut nodes: Vec<BenchNode> = Vec::new();
    for c in chain {
        let parent = nodes.last().map(|p| p.addr.clone());
        nodes.push(start(&dir.path().join("chain"), c, c, parent.as_deref()).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A national delegate stationed at the township's liaison station: the national node
    // grants the seat naming the station, the seat's roster copy travels down four hops, and
    // then every activity the delegate signs in to at the township climbs back up to the
    // national node, which is what is timed.
    let township = code(chain[4]);
    let station = nodes[4]
        .store
        .write(move |tx| {
            office::add_venue(
                tx,
                "clerk",
                Venue {
                    name: "王店镇人大代表联络站".into(),
                    kind: VenueKind::Station,
                    region: township,
                    address: "王店镇建设路1号".into(),
                },
            )
        })
        .await?
        .id;
    let national_delegate = nodes[0]
        .store
        .write(move |tx| {
            let delegate = Delegate {
                name: "全国人大代表".into(),
                gender: Gender::Female,
                birth_year: None,
                ethnicity: None,
                party: None,
                occupation: "农业合作社理事长".into(),
                station: None,
                merged_into: None,
                merge_route: None,
                mandates: BTreeMap::new(),
            };
            let mut seat = seat(14);
            seat.stations.push(StationRef {
                venue: station,
                region: Some(township),
            });
            office::add_delegate(tx, "clerk", delegate, Contact::default(), Some(seat))
        })
        .await?
        .id;
    let started = Instant::now();
    while nodes[4]
        .store
        .call(move |s| Ok(s.mandates_of(&national_delegate)?.is_empty()))
        .await?
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the national seat never reached the township"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut hops = Vec::new();
    for i in 0..args.latency_samples {
        let draft = ActivityDraft {
            activity: Activity {
                kind: ActivityKind::Reception,
                date: renda_node::calendar::today(),
                topic: format!("全国人大代表进站接待选民（第{}次）", i + 1),
                organiser: "王店镇人大主席团".into(),
                group: None,
                venue: Some(station),
                participants: BTreeMap::new(),
                constituents_received: 12,
                outcome: String::new(),
            },
            participants: vec![national_delegate],
        };
        let started = Instant::now();
        let id = nodes[4]
            .store
            .write(move |tx| office::add_activity(tx, "clerk", draft))
            .await?
            .id;
        loop {
            if nodes[0].store.call(move |s| Ok(s.get(&id).is_ok())).await? {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "a write never reached the national node"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        hops.push(started.elapsed());
    }
    hops.sort();
    println!(
        "  four-hop propagation (township → national, live): p50 {:.1} ms, p99 {:.1} ms over {} writes",
        ms(percentile(&hops, 0.5)),
        ms(percentile(&hops, 0.99)),
        hops.len()
    );
    for node in nodes.into_iter().rev() {
        node.node.shutdown().await;
    }

    if let Some(townships) = args.townships {
        county_rss(dir.path(), townships, n).await?;
    }
    Ok(())
}

/// Runs a county as its own `renda run` process, syncs `townships` townships of `n` records
/// each into it, and reports its peak resident set.
async fn county_rss(dir: &Path, townships: usize, n: usize) -> Result<()> {
    let county_dir = dir.join("rss-county");
    let region = code("330411000000");
    drop(Store::init(&county_dir, region, "秀洲区人大常委会", None)?);
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&county_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("county pid")?;
    let mut banner = String::new();
    {
        use tokio::io::AsyncBufReadExt;
        let stdout = child.stdout.as_mut().context("county stdout")?;
        tokio::io::BufReader::new(stdout)
            .read_line(&mut banner)
            .await?;
    }
    let addr = banner
        .split("正在 ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .context("county address")?
        .to_string();
    let started = Instant::now();
    for t in 0..townships {
        let node = start(
            &dir.join("rss-towns"),
            &format!("330411{:03}000", 101 + t),
            "乡镇",
            None,
        )
        .await?;
        populate(&node, n).await?;
        sync(&node, &addr).await?;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!(
        "  county peak RSS after {townships} townships × {n} records ({:.0} s): {hwm}",
        started.elapsed().as_secs_f64()
    );
    child.kill().await.ok();
    Ok(())
}
