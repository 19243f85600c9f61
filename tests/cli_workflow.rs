//! The whole life of records through the real `renda` binary on a real SQLite file.

mod common;

use common::{Node, WANGDIAN, XIUZHOU, delegate};

fn status_of(node: &Node, kind: &str, id: &str) -> serde_json::Value {
    node.json(&[kind, "show", id])["status"].clone()
}

#[test]
fn a_suggestion_from_submission_through_rehandling_to_closing() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let lead = delegate(&node, "沈建华", &[]);
    let cosigner = delegate(&node, "陆秀英", &[]);
    let s = node.create(&[
        "suggestion",
        "submit",
        "--title",
        "关于修缮梅北村灌溉渠道的建议",
        "--body",
        "渠道渗漏严重。",
        "--category",
        "农业农村",
        "--lead",
        &lead,
        "--cosigner",
        &cosigner,
        "--date",
        "2026-03-02",
    ]);
    assert_eq!(status_of(&node, "suggestion", &s)["state"], "submitted");

    node.ok(&[
        "suggestion",
        "screen",
        &s,
        "--accept",
        "--date",
        "2026-03-06",
    ]);
    let st = status_of(&node, "suggestion", &s);
    assert_eq!(st["state"], "accepted");
    assert_eq!(
        st["number"], 1,
        "the first accepted suggestion gets number 1"
    );

    // Assigned to a lead unit with an assisting unit; the lead sends it back, it is reassigned.
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
    assert_eq!(status_of(&node, "suggestion", &s)["due"], "2026-06-10");
    node.ok(&[
        "suggestion",
        "send-back",
        &s,
        "--unit",
        "镇建设办",
        "--reason",
        "属农业农村办职责",
        "--date",
        "2026-03-12",
    ]);
    assert_eq!(status_of(&node, "suggestion", &s)["state"], "sent_back");
    node.ok(&[
        "suggestion",
        "assign",
        &s,
        "--lead-unit",
        "镇农业农村办",
        "--date",
        "2026-03-15",
    ]);
    let st = status_of(&node, "suggestion", &s);
    assert_eq!(st["state"], "assigned");
    assert_eq!(
        st["due"], "2026-06-15",
        "reassignment restarts the three months"
    );

    // An approved extension, then an answer after the original deadline but within the new one.
    node.ok(&[
        "suggestion",
        "extend",
        &s,
        "--until",
        "2026-08-15",
        "--reason",
        "需列入年度计划",
        "--date",
        "2026-06-01",
    ]);
    let overdue = node.json(&["suggestion", "list", "--overdue", "--on", "2026-07-01"]);
    assert_eq!(
        overdue.as_array().unwrap().len(),
        0,
        "an extended suggestion is not overdue"
    );
    let overdue = node.json(&["suggestion", "list", "--overdue", "--on", "2026-08-16"]);
    assert_eq!(
        overdue.as_array().unwrap().len(),
        1,
        "past the extended deadline it is overdue"
    );
    node.ok(&[
        "suggestion",
        "answer",
        &s,
        "--unit",
        "镇农业农村办",
        "--class",
        "A",
        "--text",
        "已完成修缮",
        "--date",
        "2026-07-20",
    ]);
    let st = status_of(&node, "suggestion", &s);
    assert_eq!(st["state"], "answered");
    assert_eq!(st["answered_on_time"], true);

    // 不满意: re-handling due one month later, a new answer, then 满意 and 销号.
    node.ok(&[
        "suggestion",
        "evaluate",
        &s,
        "--result",
        "不满意",
        "--comment",
        "仍有渗漏",
        "--date",
        "2026-07-25",
    ]);
    let st = status_of(&node, "suggestion", &s);
    assert_eq!(st["state"], "rehandling");
    assert_eq!(st["due"], "2026-08-25");
    assert_eq!(st["round"], 2);
    node.ok(&[
        "suggestion",
        "answer",
        &s,
        "--unit",
        "镇农业农村办",
        "--class",
        "A",
        "--text",
        "已全面防渗",
        "--date",
        "2026-08-20",
    ]);
    node.ok(&[
        "suggestion",
        "evaluate",
        &s,
        "--result",
        "满意",
        "--date",
        "2026-08-22",
    ]);
    assert_eq!(status_of(&node, "suggestion", &s)["state"], "satisfied");
    node.ok(&["suggestion", "supervise", &s, "--date", "2026-08-23"]);
    node.ok(&["suggestion", "close", &s, "--date", "2026-08-30"]);
    let shown = node.json(&["suggestion", "show", &s]);
    assert_eq!(shown["status"]["state"], "closed");
    assert_eq!(shown["status"]["key_supervision"], true);
    assert_eq!(shown["history"].as_array().unwrap().len(), 12);
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("rejected").is_none())
    );

    // The table view is in Chinese and the list finds it by its lead delegate.
    let text = node.ok(&["suggestion", "show", &s]);
    assert!(
        text.contains("已办结") && text.contains("第1号") && text.contains("镇农业农村办（主办）"),
        "{text}"
    );
    let by_lead = node.json(&["suggestion", "list", "--delegate", &lead]);
    assert_eq!(by_lead.as_array().unwrap().len(), 1);
    let by_status = node.json(&["suggestion", "list", "--status", "closed"]);
    assert_eq!(by_status[0]["id"], s);
}

#[test]
fn b_and_c_answers_are_tracked_until_answered_again() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let lead = delegate(&node, "朱伟明", &[]);
    let s = node.create(&[
        "suggestion",
        "submit",
        "--title",
        "关于建设文化礼堂的建议",
        "--body",
        "村里缺少活动场所。",
        "--category",
        "文化",
        "--lead",
        &lead,
        "--date",
        "2026-01-05",
    ]);
    node.ok(&[
        "suggestion",
        "screen",
        &s,
        "--accept",
        "--number",
        "7",
        "--date",
        "2026-01-06",
    ]);
    node.ok(&[
        "suggestion",
        "assign",
        &s,
        "--separate-unit",
        "镇文化站",
        "--separate-unit",
        "镇财政所",
        "--date",
        "2026-01-10",
    ]);
    node.ok(&[
        "suggestion",
        "answer",
        &s,
        "--unit",
        "镇文化站",
        "--class",
        "B",
        "--text",
        "已列入规划",
        "--date",
        "2026-03-01",
    ]);
    assert_eq!(
        status_of(&node, "suggestion", &s)["state"],
        "assigned",
        "分办 waits for every unit"
    );
    node.ok(&[
        "suggestion",
        "answer",
        &s,
        "--unit",
        "镇财政所",
        "--class",
        "C",
        "--text",
        "待财力允许",
        "--date",
        "2026-03-02",
    ]);
    let st = status_of(&node, "suggestion", &s);
    assert_eq!(
        st["class"], "C",
        "the least resolved class stands for the suggestion"
    );
    node.ok(&[
        "suggestion",
        "evaluate",
        &s,
        "--result",
        "基本满意",
        "--date",
        "2026-03-10",
    ]);
    assert_eq!(status_of(&node, "suggestion", &s)["state"], "tracking");
    node.ok(&[
        "suggestion",
        "track",
        &s,
        "--note",
        "回头看：已立项",
        "--date",
        "2026-06-10",
    ]);
    node.ok(&[
        "suggestion",
        "answer",
        &s,
        "--unit",
        "镇文化站",
        "--class",
        "A",
        "--text",
        "已建成",
        "--date",
        "2026-09-01",
    ]);
    node.ok(&[
        "suggestion",
        "answer",
        &s,
        "--unit",
        "镇财政所",
        "--class",
        "A",
        "--text",
        "资金已到位",
        "--date",
        "2026-09-01",
    ]);
    node.ok(&[
        "suggestion",
        "evaluate",
        &s,
        "--result",
        "满意",
        "--date",
        "2026-09-05",
    ]);
    node.ok(&["suggestion", "close", &s, "--date", "2026-09-06"]);
    let st = status_of(&node, "suggestion", &s);
    assert_eq!(st["state"], "closed");
    assert_eq!(st["number"], 7);
    assert_eq!(st["follow_ups"], 1);
}

#[test]
fn a_suggestion_not_accepted_keeps_its_reason() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let lead = delegate(&node, "钱丽华", &[]);
    let s = node.create(&[
        "suggestion",
        "submit",
        "--title",
        "关于个人纠纷的意见",
        "--body",
        "邻里纠纷。",
        "--category",
        "其他",
        "--lead",
        &lead,
    ]);
    node.ok(&[
        "suggestion",
        "screen",
        &s,
        "--reject",
        "--reason",
        "属个人事务，不属于代表建议范围",
    ]);
    let st = status_of(&node, "suggestion", &s);
    assert_eq!(st["state"], "not_accepted");
    assert_eq!(st["not_accepted_reason"], "属个人事务，不属于代表建议范围");
}

#[test]
fn opinions_answered_on_the_spot_or_passed_on_and_handled() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let receiver = delegate(&node, "沈建华", &[]);
    let spot = node.create(&[
        "opinion",
        "add",
        "--source",
        "接待选民",
        "--content",
        "询问医保缴费时间",
        "--delegate",
        &receiver,
        "--date",
        "2026-02-15",
    ]);
    node.ok(&[
        "opinion",
        "answer",
        &spot,
        "--reply",
        "9月至12月缴费",
        "--date",
        "2026-02-15",
    ]);
    let st = status_of(&node, "opinion", &spot);
    assert_eq!(st["state"], "handled");
    assert_eq!(st["answered_on_spot"], true);

    let passed = node.create(&[
        "opinion",
        "add",
        "--source",
        "qr",
        "--content",
        "村道路灯损坏",
        "--region",
        "330411101203",
        "--constituent-name",
        "李阿姨",
        "--constituent-phone",
        "13800000000",
        "--date",
        "2026-02-15",
    ]);
    node.ok(&[
        "opinion",
        "pass-on",
        &passed,
        "--to",
        "镇建设办",
        "--date",
        "2026-02-16",
    ]);
    node.ok(&["opinion", "start", &passed, "--date", "2026-02-18"]);
    assert_eq!(
        node.json(&["opinion", "list", "--status", "in_progress"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    node.ok(&[
        "opinion",
        "handle",
        &passed,
        "--result",
        "已更换路灯",
        "--date",
        "2026-03-01",
    ]);
    node.ok(&[
        "opinion",
        "rate",
        &passed,
        "--rating",
        "满意",
        "--date",
        "2026-03-02",
    ]);
    let shown = node.json(&["opinion", "show", &passed]);
    assert_eq!(shown["status"]["state"], "handled");
    assert_eq!(shown["status"]["passed_on_to"], "镇建设办");
    assert_eq!(shown["status"]["rating"], "satisfied");
    // The constituent's name and phone live in a separate personal-data record.
    assert_eq!(shown["personal"]["name"], "李阿姨");
    assert!(shown["fields"].get("constituent_name").is_none());
    let raw = std::fs::read(node.db()).unwrap();
    assert!(!raw.is_empty());
    let db = rusqlite::Connection::open(node.db()).unwrap();
    let personal: i64 = db
        .query_row(
            "SELECT count(*) FROM records WHERE kind = 'personal' AND subject = ?1",
            [&passed],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(personal, 1);
}

#[test]
fn delegates_groups_venues_activities_and_notices() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let station = node.create(&[
        "venue",
        "add",
        "--name",
        "王店镇人大代表联络站",
        "--kind",
        "代表联络站",
        "--address",
        "建设街1号",
    ]);
    let county = delegate(
        &node,
        "沈建华",
        &[
            "--station",
            &station,
            "--phone",
            "13900000000",
            "--id-number",
            "33041119720101001X",
        ],
    );
    // A township cannot grant a county seat: that is the county's to grant, at its node.
    let err = node.fails(
        &[
            "delegate",
            "mandate",
            &county,
            "--congress",
            XIUZHOU,
            "--term",
            "9",
            "--constituency",
            "王店镇选区",
        ],
        2,
    );
    assert!(
        err.contains("congress") && err.contains("只能由授予它的人大登记"),
        "{err}"
    );
    // Re-elected to the township's next term.
    node.ok(&[
        "delegate",
        "mandate",
        &county,
        "--term",
        "18",
        "--constituency",
        "第七选区",
    ]);
    let other = delegate(&node, "陆秀英", &[]);
    let shown = node.json(&["delegate", "show", &county]);
    let seats = shown["mandates"].as_array().unwrap();
    assert_eq!(seats.len(), 2);
    assert!(seats.iter().all(|m| m["fields"]["congress"] == WANGDIAN));
    assert_eq!(seats[0]["fields"]["stations"].as_object().unwrap().len(), 1);
    assert_eq!(shown["person"]["personal"]["phone"], "13900000000");
    let roster = node.json(&["delegate", "roster"]);
    assert_eq!(roster.as_array().unwrap().len(), 3, "{roster}");

    let group = node.create(&[
        "group",
        "add",
        "--name",
        "王店镇第七代表小组",
        "--kind",
        "regional",
        "--leader",
        &county,
        "--member",
        &other,
        "--venue",
        &station,
    ]);
    assert_eq!(
        node.json(&["group", "show", &group])["fields"]["members"]
            .as_object()
            .unwrap()
            .len(),
        2
    );

    let activity = node.create(&[
        "activity",
        "add",
        "--kind",
        "接待选民",
        "--date",
        "2026-02-15",
        "--topic",
        "代表活动日",
        "--group",
        &group,
        "--venue",
        &station,
        "--participant",
        &county,
        "--received",
        "23",
    ]);
    node.ok(&["activity", "sign-in", &activity, "--delegate", &other]);
    let shown = node.json(&["activity", "show", &activity]);
    let participants = shown["fields"]["participants"].as_object().unwrap();
    assert_eq!(participants.len(), 2);
    assert_eq!(
        participants[&county]["level"], "township",
        "the sign-in carries the delegate's highest serving level"
    );
    assert_eq!(
        node.json(&["activity", "list", "--delegate", &other])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Resignation is recorded by the congress that holds the mandate, and only by it.
    node.ok(&[
        "delegate",
        "set-status",
        &other,
        "--term",
        "17",
        "--status",
        "辞职",
        "--date",
        "2026-05-01",
    ]);
    assert_eq!(
        node.json(&["delegate", "roster", "--status", "resigned"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let err = node.fails(
        &[
            "delegate",
            "set-status",
            &county,
            "--congress",
            XIUZHOU,
            "--term",
            "9",
            "--status",
            "辞职",
        ],
        2,
    );
    assert!(err.contains("congress") && err.contains(XIUZHOU), "{err}");

    let notice = node.create(&[
        "notice",
        "add",
        "--title",
        "关于开展“代表活动月”的倡议书",
        "--body",
        "请各代表小组…",
        "--category",
        "主题月倡议书",
    ]);
    assert_eq!(
        node.json(&["notice", "show", &notice])["fields"]["audience"],
        WANGDIAN
    );
    let status = node.json(&["status"]);
    assert_eq!(status["node"]["region"], WANGDIAN);
    let kinds: std::collections::HashMap<String, u64> = status["store"]["records_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap()))
        .collect();
    assert_eq!(kinds["delegate"], 2);
    assert_eq!(kinds["mandate"], 3);
    assert_eq!(kinds["personal"], 1);
    assert_eq!(kinds["notice"], 1);
}

#[test]
fn a_unique_id_prefix_finds_the_record() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let lead = delegate(&node, "沈建华", &[]);
    let shown = node.json(&["delegate", "show", &lead[..20]]);
    assert_eq!(shown["person"]["header"]["id"], lead);
}
