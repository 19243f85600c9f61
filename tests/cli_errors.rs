//! Bad input through the real binary: every failure names the field and the rule, exits
//! non-zero, never panics, and writes nothing.

mod common;

use common::{Node, WANGDIAN, delegate};

#[test]
fn malformed_region_codes_are_refused_at_init() {
    let node = Node::empty();
    let err = node.fails(&["init", "--region", "33041110100", "--name", "王店镇"], 2);
    assert!(
        err.contains("--region") && err.contains("12位数字"),
        "{err}"
    );
    let err = node.fails(&["init", "--region", "990000000000", "--name", "王店镇"], 2);
    assert!(err.contains("省级代码"), "{err}");
    // A street has no congress: its district acts for it.
    let err = node.fails(
        &["init", "--region", "330411001000", "--name", "新城街道"],
        2,
    );
    assert!(
        err.contains("region") && err.contains("没有人民代表大会"),
        "{err}"
    );
    assert!(
        !node.db().exists(),
        "a refused init leaves no database behind"
    );
}

#[test]
fn a_node_is_initialised_once_and_must_exist_before_use() {
    let node = Node::empty();
    let err = node.fails(&["status"], 2);
    assert!(err.contains("renda init"), "{err}");
    node.ok(&["init", "--region", WANGDIAN, "--name", "王店镇人大主席团"]);
    let err = node.fails(&["init", "--region", WANGDIAN, "--name", "again"], 2);
    assert!(err.contains("已经初始化"), "{err}");
}

#[test]
fn unknown_records_and_missing_fields_are_named() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let before = node.change_count();
    let err = node.fails(
        &[
            "suggestion",
            "submit",
            "--title",
            "t",
            "--body",
            "b",
            "--category",
            "c",
            "--lead",
            "01M81MKWS3Q11BY2A9TVTMXHZ1",
        ],
        2,
    );
    assert!(err.contains("找不到代表记录"), "{err}");
    let err = node.fails(
        &[
            "suggestion",
            "submit",
            "--body",
            "b",
            "--category",
            "c",
            "--lead",
            "x",
        ],
        2,
    );
    assert!(
        err.contains("--title"),
        "clap names the missing flag: {err}"
    );
    let err = node.fails(
        &[
            "delegate",
            "add",
            "--name",
            " ",
            "--gender",
            "男",
            "--occupation",
            "农民",
            "--term",
            "17",
            "--constituency",
            "一",
        ],
        2,
    );
    assert!(
        err.contains("字段 name") && err.contains("不能为空"),
        "{err}"
    );
    let err = node.fails(
        &[
            "delegate",
            "add",
            "--name",
            "甲",
            "--gender",
            "未知",
            "--occupation",
            "农民",
            "--term",
            "17",
            "--constituency",
            "一",
        ],
        2,
    );
    assert!(err.contains("--gender") && err.contains("男"), "{err}");
    let err = node.fails(
        &[
            "opinion",
            "add",
            "--source",
            "qr",
            "--content",
            "x",
            "--date",
            "2026-02-30",
        ],
        2,
    );
    assert!(
        err.contains("--date") && err.contains("YYYY-MM-DD"),
        "{err}"
    );
    let err = node.fails(
        &[
            "opinion",
            "add",
            "--source",
            "qr",
            "--content",
            "x",
            "--region",
            "330411102000",
        ],
        2,
    );
    assert!(err.contains("字段 region") && err.contains("辖区"), "{err}");
    let err = node.fails(
        &[
            "delegate",
            "add",
            "--name",
            "甲",
            "--gender",
            "男",
            "--occupation",
            "农民",
            "--term",
            "17",
            "--constituency",
            "一",
            "--phone",
            "12",
        ],
        2,
    );
    assert!(err.contains("字段 phone"), "{err}");
    assert_eq!(
        node.change_count(),
        before,
        "nothing was written by any refused command"
    );
}

#[test]
fn an_illegal_step_is_refused_with_its_rule_and_writes_nothing() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let lead = delegate(&node, "沈建华", &[]);
    let s = node.create(&[
        "suggestion",
        "submit",
        "--title",
        "t",
        "--body",
        "b",
        "--category",
        "c",
        "--lead",
        &lead,
        "--date",
        "2026-03-01",
    ]);
    let before = node.change_count();

    let err = node.fails(&["suggestion", "close", &s], 2);
    assert!(
        err.contains("待审查") && err.contains("transition.state"),
        "{err}"
    );
    let err = node.fails(&["suggestion", "assign", &s, "--lead-unit", "镇建设办"], 2);
    assert!(err.contains("transition.state"), "{err}");
    node.ok(&[
        "suggestion",
        "screen",
        &s,
        "--accept",
        "--date",
        "2026-03-02",
    ]);
    node.ok(&[
        "suggestion",
        "assign",
        &s,
        "--lead-unit",
        "镇建设办",
        "--assist-unit",
        "镇财政所",
        "--date",
        "2026-03-10",
    ]);
    let mid = node.change_count();
    let err = node.fails(
        &[
            "suggestion",
            "answer",
            &s,
            "--unit",
            "镇财政所",
            "--class",
            "A",
            "--text",
            "x",
            "--date",
            "2026-03-11",
        ],
        2,
    );
    assert!(err.contains("answer.assisting_unit"), "{err}");
    let err = node.fails(
        &[
            "suggestion",
            "extend",
            &s,
            "--until",
            "2026-09-11",
            "--reason",
            "r",
            "--date",
            "2026-03-11",
        ],
        2,
    );
    assert!(err.contains("extend.past_six_months"), "{err}");
    let err = node.fails(
        &[
            "suggestion",
            "answer",
            &s,
            "--unit",
            "镇建设办",
            "--class",
            "A",
            "--text",
            "x",
            "--date",
            "2026-03-09",
        ],
        2,
    );
    assert!(err.contains("date.before_previous_step"), "{err}");
    // A suggestion addressed to the county cannot be screened at the township.
    let err = node.fails(
        &[
            "suggestion",
            "submit",
            "--title",
            "t",
            "--body",
            "b",
            "--category",
            "c",
            "--lead",
            &lead,
            "--to",
            "330411000000",
        ],
        2,
    );
    assert!(
        err.contains("lead") && err.contains("不是"),
        "the lead holds no county mandate: {err}"
    );
    assert_eq!(node.change_count(), mid, "refused steps write nothing");
    assert!(mid > before);
}

#[test]
fn a_damaged_automerge_document_is_reported_not_panicked_on() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let lead = delegate(&node, "沈建华", &[]);
    let s = node.create(&[
        "suggestion",
        "submit",
        "--title",
        "t",
        "--body",
        "b",
        "--category",
        "c",
        "--lead",
        &lead,
    ]);
    {
        let db = rusqlite::Connection::open(node.db()).unwrap();
        db.execute(
            "UPDATE records SET doc = X'856f4a83deadbeef00' WHERE id = ?1",
            [&s],
        )
        .unwrap();
    }
    let before = node.change_count();
    let err = node.fails(&["suggestion", "show", &s], 1);
    assert!(err.contains(&s) && err.contains("无法读取"), "{err}");
    let err = node.fails(&["suggestion", "screen", &s, "--accept"], 1);
    assert!(err.contains("无法读取"), "{err}");
    assert_eq!(node.change_count(), before);
    // The rest of the node still works.
    node.ok(&["delegate", "show", &lead]);
    node.ok(&["suggestion", "list"]);
}

#[test]
fn a_sync_with_an_unreachable_parent_fails_clearly_and_is_shown_in_status() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let err = node.fails(&["sync", "--once"], 2);
    assert!(err.contains("renda attach"), "no parent yet: {err}");
    // Port 9 on loopback: nothing listens there.
    node.ok(&["attach", "--parent", "127.0.0.1:9"]);
    let err = node.fails(&["sync", "--once"], 3);
    assert!(
        err.contains("同步失败") && err.contains("127.0.0.1:9"),
        "{err}"
    );
    let status = node.json(&["status"]);
    let link = &status["peers"][0];
    assert_eq!(link["peer"], "330411000000");
    assert!(link["last_error"].as_str().unwrap().contains("127.0.0.1:9"));
    assert!(link["last_success"].is_null());
    // The national congress has no parent to attach to.
    let top = Node::init("000000000000", "全国人大常委会");
    let err = top.fails(&["attach", "--parent", "127.0.0.1:9"], 2);
    assert!(err.contains("parent"), "{err}");
}

/// A long value is quoted short in the error, whether clap refuses it or a rule does.
#[test]
fn errors_quote_a_short_prefix_of_a_long_input() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let long = "9".repeat(100_000);
    for args in [
        vec![
            "opinion",
            "add",
            "--source",
            "扫码反映",
            "--content",
            "路灯",
            "--date",
            long.as_str(),
        ],
        vec!["opinion", "show", long.as_str()],
        vec!["rollup", "--region", long.as_str()],
        vec!["attach", "--parent", long.as_str()],
    ] {
        let stderr = node.fails(&args, 2);
        assert!(
            stderr.len() < 2_000,
            "{:?}: {} bytes of error",
            &args[..2],
            stderr.len()
        );
        assert!(stderr.contains("9999"), "{stderr}");
    }
}

/// Dates are plausible or refused with the field and the rule, and nothing is written: nothing
/// before the first National People's Congress (1954-09-15), nothing that happened dated after
/// tomorrow in Beijing; an activity may be planned ahead, but nobody signs in to it before it
/// happens. A parent's address is host:port.
#[test]
fn implausible_dates_and_addresses_are_refused_with_the_rule() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let lead = delegate(&node, "沈建华", &[]);
    let before = node.change_count();
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let after_tomorrow = (today + chrono::Days::new(2)).to_string();
    let tomorrow = (today + chrono::Days::new(1)).to_string();
    let in_a_month = (today + chrono::Days::new(30)).to_string();

    let activity = |date: &str| -> Vec<String> {
        [
            "activity",
            "add",
            "--kind",
            "inspection",
            "--date",
            date,
            "--topic",
            "视察",
        ]
        .map(String::from)
        .to_vec()
    };
    let mut signed_in = activity(&in_a_month);
    signed_in.extend(["--participant".to_string(), lead.clone()]);
    let opinion: Vec<String> = [
        "opinion",
        "add",
        "--source",
        "扫码反映",
        "--content",
        "路灯不亮",
        "--date",
    ]
    .map(String::from)
    .into_iter()
    .chain([after_tomorrow.clone()])
    .collect();
    for (args, field, rule) in [
        (activity("1900-01-01"), "date", "1954-09-15"),
        (opinion, "date", "明天"),
        (signed_in, "participant", "签到"),
        (activity("2099-01-01"), "date", "366"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = node.fails(&args, 2);
        assert!(
            stderr.contains(field) && stderr.contains(rule),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(node.change_count(), before, "nothing was written");

    // Planned ahead, and signed in to only once it happens; tomorrow is allowed for a clerk
    // ahead of the node's clock.
    let planned = node.create(&[
        "activity",
        "add",
        "--kind",
        "inspection",
        "--date",
        &in_a_month,
        "--topic",
        "视察",
    ]);
    let stderr = node.fails(&["activity", "sign-in", &planned, "--delegate", &lead], 2);
    assert!(stderr.contains("签到"), "{stderr}");
    node.create(&[
        "opinion",
        "add",
        "--source",
        "扫码反映",
        "--content",
        "路灯不亮",
        "--date",
        &tomorrow,
    ]);

    for bad in [
        "not-a-host",
        "http://county:7700",
        "county:0",
        "county:7700/sync",
    ] {
        let stderr = node.fails(&["attach", "--parent", bad], 2);
        assert!(stderr.contains("主机:端口"), "{bad}: {stderr}");
    }
    node.ok(&["attach", "--parent", "renda-county.internal:7700"]);
}
