//! Duty rules as records, through the command line: a county writes its rules as congresses
//! do (武进区: each professional group at least three 视察, 执法检查 or 专题调研 and two
//! suggestions a year), its groups are judged by them during the year and after it, and the
//! command line and a running node judge by the same records.

mod common;

use chrono::Datelike;
use common::Node;
use serde_json::Value;

const WUJIN: &str = "320412000000";

/// Ends every rule of the congress that binds every group: the defaults a new congress is
/// seeded with. Returns how many it ended.
fn end_rules_for_every_group(node: &Node, on: &str) -> usize {
    let rules = node.json(&["quota", "list"]);
    let mut ended = 0;
    for rule in rules.as_array().unwrap() {
        if rule["rule"]["subject"] == "group" && rule["rule"]["group_kind"].is_null() {
            node.ok(&["quota", "end", rule["id"].as_str().unwrap(), "--on", on]);
            ended += 1;
        }
    }
    ended
}

fn set_wujin_rules(node: &Node) {
    node.create(&[
        "quota",
        "set",
        "--subject",
        "代表小组",
        "--group-kind",
        "专业",
        "--counts",
        "活动",
        "--activity-kind",
        "视察,执法检查",
        "--activity-kind",
        "专题调研",
        "--per",
        "每年",
        "--minimum",
        "3",
        "--from",
        "2025-01-01",
        "--basis",
        "《武进区人大代表专业小组活动办法》",
    ]);
    node.create(&[
        "quota",
        "set",
        "--subject",
        "group",
        "--group-kind",
        "professional",
        "--counts",
        "suggestions",
        "--per",
        "year",
        "--minimum",
        "2",
        "--from",
        "2025-01-01",
    ]);
}

/// A professional group with one member, who leads its suggestions.
fn professional_group(node: &Node, n: usize) -> (String, String) {
    let member = common::delegate(node, &format!("专业组代表{n}"), &[]);
    let group = node.create(&[
        "group",
        "add",
        "--name",
        &format!("第{n}专业代表小组"),
        "--kind",
        "专业",
        "--field",
        "经济",
        "--leader",
        &member,
    ]);
    (group, member)
}

fn activities(node: &Node, group: &str, member: &str, kind: &str, date: &str, n: usize) {
    for i in 0..n {
        node.create(&[
            "activity",
            "add",
            "--kind",
            kind,
            "--date",
            date,
            "--topic",
            &format!("{kind} {i}"),
            "--group",
            group,
            "--participant",
            member,
        ]);
    }
}

fn suggestions(node: &Node, group: &str, member: &str, date: &str, n: usize) {
    for i in 0..n {
        node.create(&[
            "suggestion",
            "submit",
            "--title",
            &format!("小组建议 {i}"),
            "--body",
            "建议内容",
            "--category",
            "城乡建设",
            "--lead",
            member,
            "--group",
            group,
            "--date",
            date,
        ]);
    }
}

/// A group's id, its standing, and each rule's (have, need) in the order the rules were set.
type Judged = (String, String, Vec<(u64, u64)>);

/// The standing of each group in `status`.
fn standings(status: &Value) -> Vec<Judged> {
    status["standings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["subject"] == "group")
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["standing"].as_str().unwrap().to_string(),
                s["judgements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|j| (j["have"].as_u64().unwrap(), j["need"].as_u64().unwrap()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn wujin_groups_are_judged_by_kind_of_activity_and_group_suggestions_during_and_after_the_year() {
    let node = Node::init(WUJIN, "武进区人大常委会");
    assert_eq!(end_rules_for_every_group(&node, "2025-01-01"), 2);
    set_wujin_rules(&node);
    let groups: Vec<(String, String)> = (1..=6).map(|n| professional_group(&node, n)).collect();
    // A regional group: no rule binds it now that the rules for every group ended.
    let member = common::delegate(&node, "区域组代表", &[]);
    node.create(&[
        "group",
        "add",
        "--name",
        "湖塘片代表小组",
        "--kind",
        "区域",
        "--leader",
        &member,
    ]);

    // 2025, a year that is over: inspections and the like, group meetings (which count for
    // nothing here), and suggestions in the group's name.
    let qualifying = [3, 3, 2, 1, 0, 4];
    let meetings = [0, 1, 0, 0, 5, 0];
    let made = [2, 1, 2, 0, 2, 3];
    let kinds = ["视察", "执法检查", "专题调研"];
    for (i, (group, member)) in groups.iter().enumerate() {
        for k in 0..qualifying[i] {
            activities(&node, group, member, kinds[k % 3], "2025-04-10", 1);
        }
        activities(&node, group, member, "小组活动", "2025-05-10", meetings[i]);
        suggestions(&node, group, member, "2025-06-10", made[i]);
    }
    let status = node.json(&["quota", "status", "--year", "2025"]);
    let group_rules = |status: &Value| {
        status["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["subject"] == "group")
            .count()
    };
    assert_eq!(group_rules(&status), 2, "{status}");
    let judged = standings(&status);
    assert_eq!(judged.len(), 6, "only the professional groups are bound");
    for (i, (group, _)) in groups.iter().enumerate() {
        let (_, standing, counts) = judged.iter().find(|(id, _, _)| id == group).unwrap();
        let expected = [(qualifying[i] as u64, 3), (made[i] as u64, 2)];
        assert_eq!(counts, &expected, "group {}", i + 1);
        let met = qualifying[i] >= 3 && made[i] >= 2;
        assert_eq!(
            standing,
            if met { "met" } else { "short" },
            "group {}",
            i + 1
        );
    }
    // Only those short are listed with --short, and the table names the rule broken.
    let short = node.json(&["quota", "status", "--year", "2025", "--short"]);
    assert_eq!(standings(&short).len(), 4);
    let table = node.ok(&["quota", "status", "--year", "2025", "--short"]);
    assert!(
        table.contains("第3专业代表小组") && table.contains("未达标"),
        "{table}"
    );
    assert!(!table.contains("第1专业代表小组"), "{table}");

    // This year, while it runs: judged pro rata, by the share of the year's days gone.
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let year = today.year();
    let first = format!("{year}-01-01");
    let (g1, m1) = &groups[0];
    activities(&node, g1, m1, "视察", &first, 3);
    suggestions(&node, g1, m1, &first, 2);
    let (g2, m2) = &groups[1];
    activities(&node, g2, m2, "专题调研", &first, 1);
    let days = if chrono::NaiveDate::from_ymd_opt(year, 12, 31)
        .unwrap()
        .ordinal()
        == 366
    {
        366
    } else {
        365
    };
    let due = |minimum: u64| minimum * u64::from(today.ordinal()) / days;
    let status = node.json(&["quota", "status"]);
    let judged = standings(&status);
    let of = |group: &str| {
        judged
            .iter()
            .find(|(id, _, _)| id == group)
            .unwrap()
            .clone()
    };
    assert_eq!(
        of(g1).1,
        "met",
        "a yearly minimum reached is met before the year ends"
    );
    let (_, standing, counts) = of(g2);
    assert_eq!(counts, vec![(1, 3), (0, 2)]);
    let behind = 1 < due(3) || 0 < due(2);
    assert_eq!(standing, if behind { "behind" } else { "on_track" });
    let (_, standing, _) = of(&groups[4].0);
    let behind = due(3) > 0 || due(2) > 0;
    assert_eq!(standing, if behind { "behind" } else { "on_track" });
    // The rollup counts the same standings.
    let rollup = node.json(&["rollup"]);
    let quota = &rollup["total"]["group_quota"];
    assert_eq!(quota["total"], 6);
    assert_eq!(quota["met"], 1);
    assert_eq!(
        quota["behind"].as_u64().unwrap() + quota["on_track"].as_u64().unwrap(),
        5
    );
    assert_eq!(group_rules(&rollup), 2);
}

#[test]
fn a_rule_changed_from_a_date_judges_earlier_years_by_the_rule_then() {
    let node = Node::init(WUJIN, "武进区人大常委会");
    end_rules_for_every_group(&node, "2024-01-01");
    let set = |minimum: &str, from: &str| {
        node.ok(&[
            "quota",
            "set",
            "--subject",
            "代表小组",
            "--counts",
            "活动",
            "--per",
            "每年",
            "--minimum",
            minimum,
            "--from",
            from,
        ])
        .trim()
        .to_string()
    };
    let first = set("2", "2024-01-01");
    // The same rule again changes nothing and says which rule stands.
    assert_eq!(set("2", "2024-06-01"), first);
    let second = set("5", "2025-01-01");
    assert_ne!(first, second);
    // Ending a rule again on the same day changes nothing.
    let third = node.create(&[
        "quota",
        "set",
        "--subject",
        "代表",
        "--counts",
        "建议",
        "--per",
        "每季度",
        "--minimum",
        "1",
        "--from",
        "2023-01-01",
    ]);
    node.ok(&["quota", "end", &third, "--on", "2023-06-01"]);
    let unchanged = node.change_count();
    node.ok(&["quota", "end", &third, "--on", "2023-06-01"]);
    assert_eq!(node.change_count(), unchanged);
    let rules = node.json(&["quota", "list", "--all"]);
    let until = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == first.as_str())
        .unwrap()["rule"]["until"]
        .clone();
    assert_eq!(
        until, "2025-01-01",
        "the old rule ends where the new one starts"
    );
    // A rule of the same requirement from an earlier day is refused, naming the one in the way.
    let err = node.fails(
        &[
            "quota",
            "set",
            "--subject",
            "代表小组",
            "--counts",
            "活动",
            "--per",
            "每年",
            "--minimum",
            "4",
            "--from",
            "2024-12-01",
        ],
        2,
    );
    assert!(err.contains("from") && err.contains(&second), "{err}");

    let (group, member) = professional_group(&node, 1);
    activities(&node, &group, &member, "视察", "2024-03-01", 3);
    activities(&node, &group, &member, "视察", "2025-03-01", 3);
    let judged = |year: &str| {
        let status = node.json(&["quota", "status", "--year", year]);
        standings(&status)[0].clone()
    };
    assert_eq!(judged("2024").1, "met", "three of two");
    let (_, standing, counts) = judged("2025");
    assert_eq!((standing.as_str(), counts), ("short", vec![(3, 5)]));
    // An activity planned ahead, which nobody can sign in to yet, is not yet done: the
    // group's count this year does not move.
    let this_year = |node: &Node| {
        let status = node.json(&["quota", "status"]);
        standings(&status)[0].2.clone()
    };
    let counted = this_year(&node);
    let tomorrow = (chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive()
        + chrono::Duration::days(1))
    .to_string();
    node.create(&[
        "activity",
        "add",
        "--kind",
        "视察",
        "--date",
        &tomorrow,
        "--topic",
        "计划中的视察",
        "--group",
        &group,
    ]);
    assert_eq!(this_year(&node), counted);
    // Nonsense is refused by field, and nothing is written.
    let before = node.change_count();
    let err = node.fails(
        &[
            "quota",
            "set",
            "--subject",
            "代表",
            "--group-kind",
            "专业",
            "--counts",
            "活动",
            "--per",
            "每年",
            "--minimum",
            "1",
        ],
        2,
    );
    assert!(err.contains("group_kind"), "{err}");
    let err = node.fails(
        &[
            "quota",
            "set",
            "--subject",
            "代表",
            "--counts",
            "建议",
            "--per",
            "每年",
            "--minimum",
            "0",
        ],
        2,
    );
    assert!(err.contains("minimum"), "{err}");
    assert_eq!(node.change_count(), before);
}

/// The bug this replaces: `renda run --group-activities-per-year 3` and a bare `renda rollup` at
/// the same county gave different answers. Now the flags only seed a congress's first rules, so
/// a bare `renda rollup` beside the running node finds the numbers the node published and
/// writes nothing.
#[test]
fn the_command_line_and_the_running_node_judge_by_the_same_rules() {
    let node = Node::init(WUJIN, "武进区人大常委会");
    let (group, member) = professional_group(&node, 1);
    activities(&node, &group, &member, "视察", "2026-01-05", 3);
    let before = node.json(&["rollup"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_renda"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--group-activities-per-year",
            "3",
        ])
        .env("RENDA_DATA_DIR", node.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start renda run");
    // Give the running node a change to publish: the rollup is published again only if a
    // number changed. The write is one change and the node's publication the next.
    let published = || {
        node.json(&["status"])["store"]["last_seq"]
            .as_i64()
            .unwrap()
    };
    // The running node checks its database as it starts and states the check in its rollup,
    // which it then publishes once: wait for that before counting.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.json(&["status"])["store"]["last_check"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "the node never checked"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut settled = published();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let now = published();
        if now == settled {
            break;
        }
        settled = now;
    }
    let before_write = published();
    node.create(&[
        "activity",
        "add",
        "--kind",
        "视察",
        "--date",
        "2026-01-06",
        "--topic",
        "再视察",
        "--group",
        &group,
        "--participant",
        &member,
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while published() < before_write + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the running node never refreshed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let seq = published();
    let after = node.json(&["rollup"]);
    assert_eq!(
        published(),
        seq,
        "renda rollup agreed with the running node: nothing written"
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        after["quotas"]["group_per_year"], 4,
        "the flag did not override the rules"
    );
    assert_eq!(after["rules"], before["rules"]);
    assert_eq!(after["quotas"], before["quotas"]);
}

/// A county's rules travel down to its townships over real gRPC, where they can be read but
/// not changed: only the county ends its rules.
#[tokio::test]
async fn a_countys_rules_reach_its_townships_and_only_the_county_changes_them() {
    use common::fed::{Federation, WANGDIAN, XIUZHOU, code};
    use renda_node::office::{self, QuotaRuleDraft, QuotaRuleSet};
    use renda_node::record::activity::ActivityKind;
    use renda_node::record::quota::{QuotaCounts, QuotaPeriod, QuotaSubject};

    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let county = &fed.node(XIUZHOU).store;
    let set = county
        .write(|tx| {
            office::set_quota_rule(
                tx,
                "代表工委",
                QuotaRuleDraft {
                    subject: QuotaSubject::Delegate,
                    group_kind: None,
                    counts: QuotaCounts::Activities,
                    activity_kinds: [ActivityKind::Inspection].into_iter().collect(),
                    period: QuotaPeriod::Year,
                    minimum: 2,
                    from: common::data::d("2026-01-01"),
                    basis: None,
                },
            )
        })
        .await
        .unwrap();
    let QuotaRuleSet::Created { id, ended } = set else {
        panic!("a new rule: {set:?}");
    };
    assert!(ended.is_empty());
    fed.sync_once(WANGDIAN).await;
    let township = &fed.node(WANGDIAN).store;
    let held = township
        .call(|s| s.quota_rules(&code(XIUZHOU)))
        .await
        .unwrap();
    assert_eq!(
        held.len(),
        5,
        "the four seeded rules and the new one: {held:?}"
    );
    assert!(held.iter().any(|(held, _)| *held == id));
    let err = township
        .write(move |tx| office::end_quota_rule(tx, &id, common::data::d("2026-06-01")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");
}
