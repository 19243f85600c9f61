//! `renda rollup`: a node's numbers from the command line, in Chinese and as JSON.

mod common;

use common::Node;

const WANGDIAN: &str = "330411101000";

fn add_opinion(node: &Node, content: &str) -> String {
    node.create(&[
        "opinion",
        "add",
        "--source",
        "走访",
        "--content",
        content,
        "--date",
        "2026-02-15",
    ])
}

#[test]
fn a_township_rollup_counts_its_opinions_and_is_written_only_when_it_changes() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    add_opinion(&node, "村道破损");
    let passed = add_opinion(&node, "河道需要清淤");
    node.ok(&[
        "opinion",
        "pass-on",
        &passed,
        "--to",
        "镇水利站",
        "--date",
        "2026-02-16",
    ]);

    let shown = node.ok(&["rollup"]);
    assert!(
        shown.contains("民情") && shown.contains("已收集 1") && shown.contains("已转交 1"),
        "{shown}"
    );

    let json = node.json(&["rollup"]);
    assert_eq!(json["total"]["opinions"]["received"], 1);
    assert_eq!(json["total"]["opinions"]["passed_on"], 1);
    assert_eq!(json["own"], json["total"], "a township has no children");

    // Nothing changed: showing the rollup again writes nothing.
    let last_seq = |node: &Node| {
        node.json(&["status"])["store"]["last_seq"]
            .as_i64()
            .unwrap()
    };
    let before = node.change_count();
    let seq_before = last_seq(&node);
    node.ok(&["rollup"]);
    assert_eq!(node.change_count(), before);
    assert_eq!(last_seq(&node), seq_before);
    add_opinion(&node, "路灯不亮");
    node.ok(&["rollup"]);
    assert_eq!(
        last_seq(&node),
        seq_before + 2,
        "the new opinion and the rollup's new publication"
    );
    assert_eq!(
        node.change_count(),
        before + 1,
        "the publication replaces the rollup's change instead of adding one"
    );
}

#[test]
fn a_rollup_this_node_does_not_hold_is_a_clear_error() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let err = node.fails(&["rollup", "--region", "330411000000"], 2);
    assert!(
        err.contains("region") && err.contains("330411000000"),
        "{err}"
    );
    let err = node.fails(&["rollup", "--region", "33041"], 2);
    assert!(err.contains("--region"), "{err}");
}

#[test]
fn quotas_follow_the_congress_rule_records_not_the_flags() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    common::delegate(&node, "沈建华", &[]);
    let json = node.json(&["rollup"]);
    assert_eq!(json["total"]["delegate_quota"]["total"], 1);
    assert_eq!(
        json["total"]["delegate_quota"]["met"], 0,
        "no receptions, no suggestions"
    );
    assert_eq!(json["quotas"]["delegate_receptions"], 3);
    assert_eq!(
        json["rules"].as_array().unwrap().len(),
        4,
        "the seeded rules"
    );
    // The flags only seed a congress that has no rules: this one has.
    let json = node.json(&["rollup", "--delegate-receptions-per-year", "0"]);
    assert_eq!(json["quotas"]["delegate_receptions"], 3);
    // Ending the delegates' rules leaves them unjudged.
    let rules = node.json(&["quota", "list"]);
    for rule in rules.as_array().unwrap() {
        if rule["rule"]["subject"] == "delegate" {
            node.ok(&["quota", "end", rule["id"].as_str().unwrap()]);
        }
    }
    let json = node.json(&["rollup"]);
    assert_eq!(json["total"]["delegate_quota"]["total"], 0);
    assert_eq!(json["quotas"]["delegate_receptions"], 0);
    assert_eq!(json["rules"].as_array().unwrap().len(), 2);
}

/// `renda rollup --verify` recounts the node's own numbers from its records and compares them
/// with the counters every write keeps: they agree after a workflow, and a counter set wrong
/// behind the store's back is named.
#[test]
fn verify_compares_the_counters_with_a_recount_of_the_records() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    add_opinion(&node, "村道破损");
    let passed = add_opinion(&node, "河道需要清淤");
    node.ok(&[
        "opinion",
        "pass-on",
        &passed,
        "--to",
        "镇水利站",
        "--date",
        "2026-02-16",
    ]);
    let agreed = node.ok(&["rollup", "--verify"]);
    assert!(agreed.contains("一致"), "{agreed}");

    let db = rusqlite::Connection::open(node.data.join("renda.sqlite")).unwrap();
    let moved = db
        .execute(
            "UPDATE own_counters SET value = value + 1 WHERE name = 'opinions:passed_on'",
            [],
        )
        .unwrap();
    assert_eq!(moved, 1, "the pass-on moved the passed-on counter");
    drop(db);
    let stderr = node.fails(&["rollup", "--verify"], 1);
    assert!(
        stderr.contains("opinions") && stderr.contains("不一致"),
        "{stderr}"
    );
}
