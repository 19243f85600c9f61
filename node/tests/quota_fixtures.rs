//! The stored forms protocol version 6 added: a congress's duty rule (`quota_rule`), a
//! suggestion made in a group's name, and a merged person's redirect with its route. Every
//! committed fixture must keep loading, routing and counting as it does here in every later
//! release; each is written once (`RENDA_WRITE_FIXTURES=1`) and never edited.

use renda_node::record::projection::{FilterKeys, project};
use renda_node::record::quota::{QuotaCounts, QuotaPeriod, QuotaSubject};
use renda_node::record::rollup::quota_contribution;
use renda_node::record::{Body, Header, RecordKind};
use renda_node::route::{RouteHints, RoutePolicy, holds};

mod common;

use common::{code, load};

/// A header of a fixture of this file.
fn header(id: &str, kind: RecordKind, home: &str) -> Header {
    common::header(id, kind, home, 1_764_780_000_000)
}

#[test]
fn a_quota_rule_loads_describes_itself_and_goes_down_its_congress_subtree() {
    let header = header(
        "01KBKM0ZZ00000000000000001",
        RecordKind::QuotaRule,
        "330411000000",
    );
    let fields = serde_json::json!({
        "congress": "330411000000", "subject": "group", "group_kind": "professional",
        "counts": "activities", "activity_kinds": ["inspection", "law_check", "research"],
        "period": "year", "minimum": 3, "from": "2026-01-01", "until": null,
        "basis": "《代表专业小组活动办法》第五条"
    });
    let record = load("quota-rule-v6.automerge", &header, fields);
    let Body::QuotaRule(rule) = &record.body else {
        panic!("a quota rule")
    };
    rule.validate(&record.header.home).unwrap();
    assert_eq!(
        (rule.subject, rule.counts, rule.period, rule.minimum),
        (
            QuotaSubject::Group,
            QuotaCounts::Activities,
            QuotaPeriod::Year,
            3
        )
    );
    assert_eq!(
        project(&record).label,
        "专业代表小组每年视察、专题调研、执法检查不少于 3 次"
    );
    let hints = RouteHints::of(&record);
    let held_at: Vec<&str> = [
        "330411101000",
        "330411102000",
        "330402101000",
        "330411000000",
        "330400000000",
        "330000000000",
    ]
    .into_iter()
    .filter(|n| {
        holds(
            &code(n),
            &record.header.home,
            &hints,
            &RoutePolicy::default(),
        )
    })
    .collect();
    assert_eq!(
        held_at,
        vec![
            "330411101000",
            "330411102000",
            "330411000000",
            "330400000000"
        ],
        "the county's townships, the county and, as every record, the city"
    );
}

#[test]
fn a_suggestion_in_a_groups_name_counts_for_the_group() {
    let header = header(
        "01KBKM0ZZ00000000000000002",
        RecordKind::Suggestion,
        "330411000000",
    );
    let fields = serde_json::json!({
        "title": "关于加快农村污水管网建设的建议", "body": "建议内容", "category": "城乡建设",
        "lead": "01KBKM0ZZ00000000000000003", "lead_name": "沈建华", "cosigners": [],
        "addressed_to": "330411000000", "session": null,
        "group": "01KBKM0ZZ00000000000000004"
    });
    let record = load("suggestion-in-group-v6.automerge", &header, fields);
    let Body::Suggestion(s) = &record.body else {
        panic!("a suggestion")
    };
    let group = "01KBKM0ZZ00000000000000004";
    assert_eq!(
        s.fields.group.map(|g| g.to_string()).as_deref(),
        Some(group)
    );
    let keys = FilterKeys::of(RecordKind::Suggestion, &project(&record).summary);
    assert_eq!(keys.group.as_deref(), Some(group));
    let counted = quota_contribution(
        RecordKind::Suggestion,
        &[("01KBKM0ZZ00000000000000003".into(), "lead".into())],
        None,
        keys.group.as_deref(),
        chrono::NaiveDate::from_ymd_opt(2026, 3, 1),
    );
    assert_eq!(
        counted.keys().cloned().collect::<Vec<_>>(),
        vec![
            "quota:delegate:01KBKM0ZZ00000000000000003:2026:1:suggestion".to_string(),
            format!("quota:group:{group}:2026:1:suggestion"),
        ]
    );
}

#[test]
fn a_merged_persons_redirect_climbs_as_high_as_its_seats() {
    let header = header(
        "01KBKM0ZZ00000000000000005",
        RecordKind::Delegate,
        "330411101000",
    );
    let fields = serde_json::json!({
        "name": "陆秀英", "gender": "female", "birth_year": 1975, "ethnicity": null,
        "party": null, "occupation": "教师", "station": null, "mandates": {},
        "merged_into": "01KBKM0ZZ00000000000000006",
        "merge_route": { "into_home": "330411101000", "up_to": "province" }
    });
    let record = load("delegate-merge-route-v6.automerge", &header, fields);
    let Body::Delegate(person) = &record.body else {
        panic!("a person")
    };
    assert_eq!(
        person.merged_into.map(|id| id.to_string()).as_deref(),
        Some("01KBKM0ZZ00000000000000006")
    );
    let hints = RouteHints::of(&record);
    assert!(
        holds(
            &code("330000000000"),
            &record.header.home,
            &hints,
            &RoutePolicy::default()
        ),
        "the province that granted a seat holds the redirect"
    );
    assert!(!holds(
        &code("000000000000"),
        &record.header.home,
        &hints,
        &RoutePolicy::default()
    ));
}
