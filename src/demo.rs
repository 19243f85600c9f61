//! `renda demo`: a real node, on real SQLite, taken through a suggestion's whole life (提出 →
//! 审查立案 → 交办 → 答复 → 评价 → 销号), with the station, delegates, group, activity and opinions
//! a township keeps around it. Every step goes through the same office operations as the CLI.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use chrono::NaiveDate;
use renda_node::office::{self, ActivityDraft, Contact, SuggestionDraft};
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::delegate::{Delegate, Gender, Mandate, MandateStatus};
use renda_node::record::group::{Group, GroupKind, Venue, VenueKind};
use renda_node::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
use renda_node::record::suggestion::{
    AnswerClass, Satisfaction, SuggestionAction, UnitAssignment, UnitRole,
};
use renda_node::record::{IdSet, RecordId};
use renda_node::region::RegionCode;
use renda_node::store::{Store, StoreHandle};

use crate::cli::DemoArgs;
use crate::commands::Session;

/// 浙江省嘉兴市秀洲区王店镇.
const WANGDIAN: &str = "330411101000";
/// 秀洲区.
const XIUZHOU: &str = "330411000000";
const USER: &str = "王店镇人大办";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("demo dates are valid")
}

fn region(s: &str) -> RegionCode {
    RegionCode::parse("region", s).expect("demo region codes are valid")
}

fn mandate(congress: &str, term: u32, constituency: &str) -> (String, Mandate) {
    let congress = region(congress);
    let m = Mandate {
        congress,
        level: congress.level().expect("a congress"),
        term,
        constituency: constituency.into(),
        status: MandateStatus::Serving,
        status_since: None,
    };
    (Mandate::key(&congress, term), m)
}

fn step(n: u32, text: &str) {
    println!("\n【第{n}步】{text}");
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let dir: PathBuf = args
        .demo_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("renda-demo-{}", RecordId::new())));
    println!("Renda 演示：王店镇人大节点上一件代表建议的完整办理过程");
    println!("数据目录：{}", dir.display());

    step(1, "初始化王店镇人大主席团节点（区划代码 330411101000）");
    let store = Store::init(&dir, region(WANGDIAN), "王店镇人大主席团", None)?;
    let handle = StoreHandle::spawn(store)?;
    let session = Session {
        store: handle.clone(),
        user: USER.into(),
        json: false,
    };

    step(2, "建立代表联络站，登记五级代表中在本站履职的代表");
    let station = handle
        .write(|tx| {
            office::add_venue(
                tx,
                USER,
                Venue {
                    name: "王店镇人大代表联络站".into(),
                    kind: VenueKind::Station,
                    region: region(WANGDIAN),
                    address: "嘉兴市秀洲区王店镇建设街1号".into(),
                },
            )
        })
        .await?
        .id;
    let people = [
        (
            "沈建华",
            Gender::Male,
            "梅北村党总支书记",
            vec![
                mandate(WANGDIAN, 17, "第七选区"),
                mandate(XIUZHOU, 9, "王店镇选区"),
            ],
        ),
        (
            "陆秀英",
            Gender::Female,
            "王店镇中心小学教师",
            vec![mandate(WANGDIAN, 17, "第七选区")],
        ),
        (
            "朱伟明",
            Gender::Male,
            "个体工商户",
            vec![mandate(WANGDIAN, 17, "第八选区")],
        ),
        (
            "钱丽华",
            Gender::Female,
            "镇卫生院医生",
            vec![mandate(WANGDIAN, 17, "第九选区")],
        ),
    ];
    let mut delegates = Vec::new();
    for (name, gender, occupation, mandates) in people {
        let delegate = Delegate {
            name: name.into(),
            gender,
            birth_year: None,
            ethnicity: Some("汉族".into()),
            party: None,
            occupation: occupation.into(),
            station: Some(station),
            mandates: mandates.into_iter().collect::<BTreeMap<_, _>>(),
        };
        let id = handle
            .write(move |tx| office::add_delegate(tx, USER, delegate, Contact::default()))
            .await?
            .id;
        delegates.push(id);
    }
    session
        .run(crate::cli::Command::Delegate(
            crate::cli::DelegateCmd::List(empty_list()),
        ))
        .await?;

    step(3, "成立王店镇第七代表小组，组织一次接待选民活动");
    let members = IdSet(delegates[..3].iter().copied().collect());
    let leader = delegates[0];
    let group = handle
        .write(move |tx| {
            office::add_group(
                tx,
                USER,
                Group {
                    name: "王店镇第七代表小组".into(),
                    kind: GroupKind::Regional,
                    field: None,
                    congress: region(WANGDIAN),
                    leader: Some(leader),
                    members,
                    venue: Some(station),
                },
            )
        })
        .await?
        .id;
    let participants = delegates[..3].to_vec();
    let activity = handle
        .write(move |tx| {
            office::add_activity(
                tx,
                USER,
                ActivityDraft {
                    activity: Activity {
                        kind: ActivityKind::Reception,
                        date: d("2026-02-15"),
                        topic: "代表活动日：听取梅北村群众对道路照明和农田水利的意见".into(),
                        organiser: "王店镇人大主席团".into(),
                        group: Some(group),
                        venue: Some(station),
                        participants: BTreeMap::new(),
                        constituents_received: 23,
                        outcome: "收集意见 2 条，当场答复 1 条".into(),
                    },
                    participants,
                },
            )
        })
        .await?
        .id;
    session
        .run(crate::cli::Command::Activity(
            crate::cli::ActivityCmd::List(empty_list()),
        ))
        .await?;

    step(4, "登记活动中收集的民情：一条当场答复，一条转交办理后办结");
    let receiver = delegates[0];
    let opinions = [
        (
            "梅北村至长水塘的村道有 12 盏路灯损坏，夜间出行不安全",
            "梅北村村道",
            true,
        ),
        ("询问今年农村医保缴费时间", "梅北村文化礼堂", false),
    ];
    for (content, place, pass_on) in opinions {
        let fields = OpinionFields {
            source: OpinionSource::Reception,
            content: content.into(),
            place: place.into(),
            region: region("330411101203"),
            delegate: Some(receiver),
            activity: Some(activity),
            category: Some(
                if pass_on {
                    "城乡建设"
                } else {
                    "社会保障"
                }
                .into(),
            ),
        };
        let contact = Contact {
            name: Some("李阿姨".into()),
            phone: Some("0573-8321 0000".into()),
            id_number: None,
        };
        let id = handle
            .write(move |tx| office::add_opinion(tx, USER, fields, contact, d("2026-02-15")))
            .await?
            .id;
        let steps: Vec<(OpinionAction, &str)> = if pass_on {
            vec![
                (
                    OpinionAction::PassOn {
                        to: "王店镇人民政府建设办".into(),
                    },
                    "2026-02-16",
                ),
                (
                    OpinionAction::Start {
                        note: "已派人现场查看".into(),
                    },
                    "2026-02-20",
                ),
                (
                    OpinionAction::Handle {
                        result: "已更换损坏路灯 12 盏".into(),
                    },
                    "2026-03-20",
                ),
                (
                    OpinionAction::Rate {
                        rating: Satisfaction::Satisfied,
                    },
                    "2026-03-25",
                ),
            ]
        } else {
            vec![(
                OpinionAction::AnswerOnSpot {
                    reply: "每年 9 月至 12 月缴费，可在村便民服务中心办理".into(),
                },
                "2026-02-15",
            )]
        };
        for (action, date) in steps {
            let date = d(date);
            handle
                .write(move |tx| office::opinion_step(tx, USER, &id, action, date))
                .await?;
        }
    }
    session
        .run(crate::cli::Command::Opinion(crate::cli::OpinionCmd::List(
            empty_list(),
        )))
        .await?;

    step(5, "沈建华代表领衔、两位代表联名，向镇人大提出建议");
    let draft = SuggestionDraft {
        title: "关于完善梅北村农田灌溉设施的建议".into(),
        body: "梅北村部分灌溉渠道年久失修，渗漏严重，影响约 600 亩水稻灌溉。建议将其列入今年农田水利建设计划，分段修缮。".into(),
        category: "农业农村".into(),
        lead: delegates[0],
        cosigners: vec![delegates[1], delegates[2]],
        addressed_to: region(WANGDIAN),
        session: None,
    };
    let suggestion = handle
        .write(move |tx| office::submit_suggestion(tx, USER, draft, d("2026-03-02")))
        .await?
        .id;
    println!("建议编号 {suggestion}");

    use SuggestionAction as A;
    let life = [
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
            "交办：镇农业农村办主办，镇财政所协办，答复期限为交办后三个月",
            A::Assign {
                units: vec![
                    UnitAssignment {
                        unit: "王店镇农业农村办".into(),
                        role: UnitRole::Lead,
                    },
                    UnitAssignment {
                        unit: "王店镇财政所".into(),
                        role: UnitRole::Assist,
                    },
                ],
            },
            "2026-03-10",
        ),
        ("列为重点督办", A::Supervise { key: true }, "2026-03-12"),
        (
            "主办单位答复（A类：已解决或基本解决）",
            A::Answer {
                unit: "王店镇农业农村办".into(),
                class: AnswerClass::A,
                text: "已将梅北村灌溉渠道修缮列入 2026 年农田水利计划，完成 2.3 公里渠道防渗改造。"
                    .into(),
            },
            "2026-05-20",
        ),
        (
            "领衔代表评价：满意",
            A::Evaluate {
                result: Satisfaction::Satisfied,
                comment: "渠道已修好，群众满意".into(),
            },
            "2026-05-28",
        ),
        ("销号", A::Close, "2026-06-05"),
    ];
    for (i, (text, action, date)) in life.into_iter().enumerate() {
        step(6 + i as u32, text);
        let date = d(date);
        let record = handle
            .write(move |tx| office::suggestion_step(tx, USER, &suggestion, action, date))
            .await?;
        session.print_step(&record)?;
    }
    session
        .run(crate::cli::Command::Suggestion(
            crate::cli::SuggestionCmd::Show(crate::cli::IdArg {
                id: suggestion.to_string(),
            }),
        ))
        .await?;

    println!("\n节点概况：");
    session.run(crate::cli::Command::Status).await?;
    println!(
        "\n演示完成。可以继续用命令行查看这个节点，例如：\n  renda --data-dir {} suggestion list\n  renda --data-dir {} suggestion show {suggestion}",
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn empty_list() -> crate::cli::ListArgs {
    crate::cli::ListArgs {
        status: None,
        within: None,
        delegate: None,
        period: None,
        limit: None,
        offset: 0,
    }
}
