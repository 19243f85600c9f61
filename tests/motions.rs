//! Motions (议案) through the command line: who may propose at which level, the session's
//! deadline, and the 主席团's decisions, 转作建议 creating the linked suggestion.

mod common;

use common::Node;

const XIUZHOU: &str = "330411000000";
const WANGDIAN: &str = "330411101000";

fn delegates(node: &Node, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| common::delegate(node, &format!("代表{i:02}"), &[]))
        .collect()
}

/// `renda motion submit` by delegates: the first is the lead, the rest co-sign.
fn submit_args<'a>(signers: &'a [String], date: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "motion",
        "submit",
        "--title",
        "关于制定农村生活污水治理条例的议案",
        "--body",
        "案由、案据和方案",
        "--session",
        "十七届三次会议",
        "--deadline",
        "2026-01-20",
        "--date",
        date,
        "--lead",
        &signers[0],
    ];
    for s in &signers[1..] {
        args.extend(["--cosigner", s.as_str()]);
    }
    args
}

#[test]
fn a_county_motion_needs_ten_signers_and_can_become_a_suggestion() {
    let county = Node::init(XIUZHOU, "秀洲区人大常委会");
    let signers = delegates(&county, 10);
    let listed = county.ok(&["motion", "committees", "--add", "法制委员会"]);
    assert!(listed.contains("法制委员会"), "{listed}");

    // Nine are refused, by field and rule, and nothing is written.
    let before = county.change_count();
    let err = county.fails(&submit_args(&signers[..9], "2026-01-15"), 2);
    assert!(
        err.contains("cosigner") && err.contains("10") && err.contains("现有 9 人"),
        "{err}"
    );
    assert_eq!(county.change_count(), before);
    // The same delegate twice counts once.
    let mut twice = signers[..9].to_vec();
    twice.push(signers[3].clone());
    let err = county.fails(&submit_args(&twice, "2026-01-15"), 2);
    assert!(err.contains("cosigner") && err.contains("重复"), "{err}");
    // After the 主席团's deadline, ten are refused too.
    let err = county.fails(&submit_args(&signers, "2026-01-21"), 2);
    assert!(err.contains("截止日期"), "{err}");
    assert_eq!(county.change_count(), before);

    let motion = county.create(&submit_args(&signers, "2026-01-15"));
    let shown = county.json(&["motion", "show", &motion]);
    assert_eq!(shown["status"]["state"], "submitted");
    assert_eq!(
        shown["fields"]["proposer"]["cosigners"]
            .as_array()
            .unwrap()
            .len(),
        9
    );

    // 转作建议: the suggestion carries the lead, the co-signers and the session, and the two
    // records name each other.
    let out = county.ok(&[
        "motion",
        "decide",
        &motion,
        "--to-suggestion",
        "--category",
        "城乡建设",
        "--date",
        "2026-01-22",
    ]);
    assert!(out.contains("转作建议"), "{out}");
    let shown = county.json(&["motion", "show", &motion]);
    assert_eq!(shown["status"]["state"], "converted");
    let suggestion = shown["status"]["suggestion"].as_str().unwrap().to_string();
    let made = county.json(&["suggestion", "show", &suggestion]);
    assert_eq!(made["fields"]["motion"], motion.as_str());
    assert_eq!(made["fields"]["lead"], signers[0].as_str());
    assert_eq!(made["fields"]["cosigners"].as_array().unwrap().len(), 9);
    assert_eq!(made["fields"]["session"], "十七届三次会议");
    assert_eq!(made["status"]["state"], "submitted");
    // A decision is taken once.
    let err = county.fails(
        &[
            "motion",
            "decide",
            &motion,
            "--agenda",
            "--date",
            "2026-01-23",
        ],
        2,
    );
    assert!(err.contains("转作建议"), "{err}");

    // A body the county has may propose; a delegation only at the national congress.
    let body = county.create(&[
        "motion",
        "submit",
        "--title",
        "关于设立生态环境保护专项资金的议案",
        "--body",
        "方案",
        "--session",
        "十七届三次会议",
        "--deadline",
        "2026-01-20",
        "--date",
        "2026-01-16",
        "--proposer",
        "常务委员会",
    ]);
    let err = county.fails(
        &[
            "motion",
            "submit",
            "--title",
            "代表团议案",
            "--body",
            "方案",
            "--session",
            "十七届三次会议",
            "--deadline",
            "2026-01-20",
            "--date",
            "2026-01-16",
            "--delegation",
            "浙江代表团",
        ],
        2,
    );
    assert!(err.contains("delegation"), "{err}");
    // Only to a committee the county has.
    let err = county.fails(
        &[
            "motion",
            "decide",
            &body,
            "--refer",
            "财政经济委员会",
            "--date",
            "2026-01-22",
        ],
        2,
    );
    assert!(
        err.contains("committee") && err.contains("法制委员会"),
        "{err}"
    );
    // A motion from a body is referred to a committee and then listed; it cannot become a
    // delegate's suggestion.
    county.ok(&[
        "motion",
        "decide",
        &body,
        "--refer",
        "法制委员会",
        "--date",
        "2026-01-22",
    ]);
    let err = county.fails(
        &[
            "motion",
            "decide",
            &body,
            "--to-suggestion",
            "--category",
            "环保",
            "--date",
            "2026-01-23",
        ],
        2,
    );
    assert!(err.contains("代表联名"), "{err}");
    county.ok(&[
        "motion",
        "decide",
        &body,
        "--agenda",
        "--date",
        "2026-01-23",
    ]);
    // One session has one deadline, the one its 主席团 set.
    let err = county.fails(
        &[
            "motion",
            "submit",
            "--title",
            "另一件议案",
            "--body",
            "方案",
            "--session",
            "十七届三次会议",
            "--deadline",
            "2026-01-25",
            "--date",
            "2026-01-16",
            "--proposer",
            "人民政府",
        ],
        2,
    );
    assert!(
        err.contains("deadline") && err.contains("2026-01-20"),
        "{err}"
    );
    assert_eq!(
        county.json(&["motion", "show", &body])["status"]["state"],
        "on_agenda"
    );

    let rollup = county.json(&["rollup"]);
    assert_eq!(rollup["total"]["motions"]["converted"], 1);
    assert_eq!(rollup["total"]["motions"]["on_agenda"], 1);
    assert_eq!(rollup["total"]["suggestions"]["submitted"], 1);
    let text = county.ok(&["rollup"]);
    assert!(
        text.contains("议案") && text.contains("转作建议 1"),
        "{text}"
    );
    let listed = county.ok(&["motion", "list"]);
    assert!(
        listed.contains("常务委员会") && listed.contains("共 2 条议案记录"),
        "{listed}"
    );
}

#[test]
fn a_township_motion_needs_five_signers_and_has_no_committee() {
    let township = Node::init(WANGDIAN, "王店镇人大主席团");
    let signers = delegates(&township, 5);
    let err = township.fails(&submit_args(&signers[..4], "2026-01-15"), 2);
    assert!(err.contains("5") && err.contains("现有 4 人"), "{err}");
    let motion = township.create(&submit_args(&signers, "2026-01-15"));
    let err = township.fails(
        &[
            "motion",
            "decide",
            &motion,
            "--refer",
            "财经委员会",
            "--date",
            "2026-01-16",
        ],
        2,
    );
    assert!(err.contains("不设专门委员会"), "{err}");
    township.ok(&[
        "motion",
        "decide",
        &motion,
        "--agenda",
        "--date",
        "2026-01-16",
    ]);
    assert_eq!(
        township.json(&["motion", "show", &motion])["status"]["state"],
        "on_agenda"
    );
    // A township has no standing committee to propose.
    let err = township.fails(
        &[
            "motion",
            "submit",
            "--title",
            "常委会议案",
            "--body",
            "方案",
            "--session",
            "第九届第三次会议",
            "--deadline",
            "2026-01-20",
            "--date",
            "2026-01-16",
            "--proposer",
            "常务委员会",
        ],
        2,
    );
    assert!(err.contains("proposer"), "{err}");
}
