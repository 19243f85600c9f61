//! Importing a roster and a venue list on a real store: every bad cell is named with its row and
//! column and nothing is written; a good file creates persons with their seats and stations in
//! one transaction; the same file again changes nothing; a changed row updates the person it
//! matches by the stated key.

use renda_node::import::{ImportKind, Outcome, Table, apply, plan};
use renda_node::record::RecordKind;
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, Store, StoreError};

fn table(headers: &[&str], rows: &[&[&str]]) -> Table {
    Table {
        header_row: 1,
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows: rows
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect(),
    }
}

fn count(store: &Store, kind: RecordKind) -> u64 {
    store
        .count(&ListQuery {
            kind: Some(kind),
            ..ListQuery::default()
        })
        .unwrap()
}

const ROSTER: &[&str] = &[
    "序号",
    "姓名",
    "性别",
    "出生年月",
    "民族",
    "党派",
    "职业",
    "手机号码",
    "届次",
    "选区",
    "联络站",
];

#[test]
fn a_roster_is_planned_cell_by_cell_and_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let region = RegionCode::parse("region", "330411101000").unwrap();
    let mut store = Store::init(dir.path(), region, "王店镇人大主席团", None).unwrap();

    let venues = table(
        &["名称", "类型", "地址"],
        &[&["王店镇人大代表联络站", "代表联络站", "建设街1号"]],
    );
    let p = plan(&store, ImportKind::Venues, &venues).unwrap();
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    store
        .write(|tx| apply(tx, "镇人大办", ImportKind::Venues, &venues))
        .unwrap();

    let bad = table(
        ROSTER,
        &[
            &[
                "1",
                "沈建华",
                "男",
                "1972-05",
                "汉族",
                "",
                "村党总支书记",
                "13900000000",
                "17",
                "第七选区",
                "王店镇人大代表联络站",
            ],
            &[
                "2",
                "陆秀英",
                "妇",
                "1980",
                "汉族",
                "",
                "教师",
                "",
                "17",
                "第七选区",
                "",
            ],
            &[
                "3",
                "",
                "女",
                "1985",
                "汉族",
                "",
                "医生",
                "139-ABC",
                "17",
                "第八选区",
                "镇文化站",
            ],
            &[
                "4",
                "朱丽华",
                "女",
                "八五年",
                "汉族",
                "",
                "",
                "",
                "十七",
                "",
                "",
            ],
        ],
    );
    let p = plan(&store, ImportKind::Roster, &bad).unwrap();
    let found: Vec<(usize, &str)> = p
        .problems
        .iter()
        .map(|p| (p.row, p.column.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (3, "性别"),
            (4, "姓名"),
            (4, "手机号码"),
            (4, "联络站"),
            (5, "出生年月"),
            (5, "职业"),
            (5, "届次"),
        ],
        "{:#?}",
        p.problems
    );
    let refused = store
        .write(|tx| apply(tx, "镇人大办", ImportKind::Roster, &bad))
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(v) if v.field.contains("第3行") && v.rule.contains("未导入任何一行")),
        "{refused}"
    );
    assert_eq!(count(&store, RecordKind::Delegate), 0, "nothing written");

    let good = table(
        ROSTER,
        &[
            &[
                "1",
                "沈建华",
                "男",
                "1972-05",
                "汉族",
                "",
                "村党总支书记",
                "13900000000",
                "17",
                "第七选区",
                "王店镇人大代表联络站",
            ],
            &[
                "2",
                "陆秀英",
                "女",
                "1980",
                "汉族",
                "",
                "教师",
                "",
                "17",
                "第七选区",
                "",
            ],
            &[
                "3",
                "朱丽华",
                "女",
                "1985年3月",
                "汉族",
                "中共党员",
                "医生",
                "13900000003",
                "17.0",
                "第八选区",
                "",
            ],
        ],
    );
    let p = plan(&store, ImportKind::Roster, &good).unwrap();
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.count(|o| matches!(o, Outcome::Create)), 3);
    let done = store
        .write(|tx| apply(tx, "镇人大办", ImportKind::Roster, &good))
        .unwrap();
    assert_eq!((done.created, done.updated, done.unchanged), (3, 0, 0));
    assert_eq!(count(&store, RecordKind::Delegate), 3);
    assert_eq!(count(&store, RecordKind::Mandate), 3);
    assert_eq!(
        count(&store, RecordKind::Personal),
        2,
        "two rows gave a phone"
    );

    // The same file again: every row matches and nothing is written.
    let changes = store.stats().unwrap().changes;
    let done = store
        .write(|tx| apply(tx, "镇人大办", ImportKind::Roster, &good))
        .unwrap();
    assert_eq!((done.created, done.updated, done.unchanged), (0, 0, 3));
    assert_eq!(store.stats().unwrap().changes, changes, "no change written");

    // A changed occupation and a new phone update the person the key matches.
    let changed = table(
        ROSTER,
        &[&[
            "2",
            "陆秀英",
            "女",
            "1980",
            "汉族",
            "",
            "中学教师",
            "13900000002",
            "17",
            "第七选区",
            "",
        ]],
    );
    let p = plan(&store, ImportKind::Roster, &changed).unwrap();
    match &p.rows[0].outcome {
        Outcome::Update { changes, .. } => {
            assert_eq!(changes, &["职业或职务：教师 → 中学教师", "手机号码"]);
        }
        other => panic!("{other:?}"),
    }
    store
        .write(|tx| apply(tx, "镇人大办", ImportKind::Roster, &changed))
        .unwrap();
    assert_eq!(count(&store, RecordKind::Delegate), 3);
    assert_eq!(count(&store, RecordKind::Personal), 3);
    let p = plan(&store, ImportKind::Roster, &changed).unwrap();
    assert!(matches!(p.rows[0].outcome, Outcome::Same { .. }));

    // The roster gains ID numbers: each row still matches the person registered without one,
    // and the number is added to them instead of registering them again.
    let mut with_ids: Vec<&str> = ROSTER.to_vec();
    with_ids.push("身份证号");
    let ided = table(
        &with_ids,
        &[&[
            "2",
            "陆秀英",
            "女",
            "1980",
            "汉族",
            "",
            "中学教师",
            "13900000002",
            "17",
            "第七选区",
            "",
            "33041119800101002X",
        ]],
    );
    let p = plan(&store, ImportKind::Roster, &ided).unwrap();
    match &p.rows[0].outcome {
        Outcome::Update { changes, .. } => assert_eq!(changes, &["身份证号"]),
        other => panic!("{other:?}"),
    }
    store
        .write(|tx| apply(tx, "镇人大办", ImportKind::Roster, &ided))
        .unwrap();
    assert_eq!(
        count(&store, RecordKind::Delegate),
        3,
        "nobody registered twice"
    );
    // Matched by the ID number now, a corrected name is an update of the same person.
    let renamed = table(
        &with_ids,
        &[&[
            "2",
            "陆秀瑛",
            "女",
            "1980",
            "汉族",
            "",
            "中学教师",
            "13900000002",
            "17",
            "第七选区",
            "",
            "33041119800101002X",
        ]],
    );
    let p = plan(&store, ImportKind::Roster, &renamed).unwrap();
    match &p.rows[0].outcome {
        Outcome::Update { changes, .. } => assert_eq!(changes, &["姓名：陆秀英 → 陆秀瑛"]),
        other => panic!("{other:?}"),
    }

    // A header without a required column is named at row 1.
    let p = plan(&store, ImportKind::Roster, &table(&["姓名", "性别"], &[])).unwrap();
    assert_eq!(p.problems.len(), 1);
    assert_eq!(
        (p.problems[0].row, p.problems[0].column.as_str()),
        (1, "职业")
    );
}
