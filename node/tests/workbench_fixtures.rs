//! The stored forms the workbench added: an opinion passed on to a congress above (`PassOn`
//! with `congress`), and an activity with a sign-in taken from its QR code (`SignIn::source`).
//! Each fixture is written once (`RENDA_WRITE_FIXTURES=1`) and never edited; each must keep
//! reading as it does here, and what was written before the new field must read as before.

use renda_node::record::activity::SignInSource;
use renda_node::record::opinion::OpinionAction;
use renda_node::record::projection::{FilterKeys, project};
use renda_node::record::{Author, Body, Event, RecordId, RecordKind};

mod common;

use common::{code, fixture, load};

#[test]
fn an_opinion_passed_on_to_a_congress_still_reads() {
    let path = fixture("pass-on-congress-event-v6.json");
    if std::env::var_os("RENDA_WRITE_FIXTURES").is_some() && !path.exists() {
        let event = Event {
            id: RecordId::parse("id", "01KBN0PZZ00000000000000001").unwrap(),
            lamport: 2,
            recorded_at: chrono::DateTime::from_timestamp_millis(1_764_780_000_000).unwrap(),
            date: "2026-12-03".parse().unwrap(),
            author: Author {
                node: code("330411101000"),
                user: "王店镇人大办 张敏".into(),
            },
            action: OpinionAction::PassOn {
                to: "秀洲区人大常委会".into(),
                congress: Some(code("330411000000")),
            },
        };
        std::fs::write(&path, serde_json::to_string(&event).unwrap()).unwrap();
    }
    let text = std::fs::read_to_string(&path).expect("the committed fixture");
    let event: Event<OpinionAction> = serde_json::from_str(&text).unwrap();
    assert!(matches!(
        event.action,
        OpinionAction::PassOn { congress: Some(c), .. } if c == code("330411000000")
    ));
    // A 转交 written before a congress could be named reads as one to a body.
    let older = text.replace(",\"congress\":\"330411000000\"", "");
    assert_ne!(older, text, "the fixture carries the congress");
    let event: Event<OpinionAction> = serde_json::from_str(&older).unwrap();
    assert!(matches!(
        event.action,
        OpinionAction::PassOn { congress: None, .. }
    ));
}

#[test]
fn an_activity_with_a_qr_sign_in_still_reads() {
    let header = common::header(
        "01KBN0PZZ00000000000000002",
        RecordKind::Activity,
        "330411101000",
        1_764_780_000_000,
    );
    let fields = serde_json::json!({
        "kind": "reception", "date": "2026-12-03", "topic": "代表进站接待选民",
        "organiser": "王店镇人大主席团", "group": null, "venue": "01KBN0PZZ00000000000000003",
        "participants": {
            "01KBN0PZZ00000000000000004": {
                "name": "沈建华", "level": "township", "congresses": ["330411101000"],
                "signed_at": "2026-12-03T01:30:00Z", "source": "qr"
            },
            "01KBN0PZZ00000000000000005": {
                "name": "陆秀英", "level": "township", "congresses": ["330411101000"],
                "signed_at": "2026-12-03T01:40:00Z"
            }
        },
        "constituents_received": 12, "outcome": ""
    });
    let record = load("activity-qr-sign-in-v6.automerge", &header, fields);
    let Body::Activity(a) = &record.body else {
        panic!("an activity")
    };
    let sources: Vec<Option<SignInSource>> = a.participants.values().map(|s| s.source).collect();
    assert_eq!(
        sources,
        [Some(SignInSource::QrCode), None],
        "a clerk's sign-in has no source"
    );
    let projection = project(&record);
    assert_eq!(projection.summary["sign_ins"], 2);
    assert_eq!(
        FilterKeys::of(RecordKind::Activity, &projection.summary)
            .tag
            .as_deref(),
        Some("reception")
    );
}
