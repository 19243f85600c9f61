//! The stored forms of a delegate's seats: a person record that keeps its seats inside (as every
//! release before mandate records wrote one, protocol version 4) and a mandate record (protocol
//! version 5). Both committed fixtures must keep loading, routing and counting as they do here
//! in every later release; each is written once (`RENDA_WRITE_FIXTURES=1`) and never edited.

use renda_node::record::projection::project;
use renda_node::record::rollup::{CountedRow, contribution};
use renda_node::record::{Author, Body, Header, Record, RecordId, RecordKind};
use renda_node::region::Level;
use renda_node::route::{RouteHints, RoutePolicy, holds};

mod common;

use common::{code, fixture, load};

/// A header of a fixture of this file.
fn header(id: &str, kind: RecordKind, home: &str) -> Header {
    common::header(id, kind, home, 1_764_720_000_000)
}

fn counted(record: &Record) -> Vec<(String, i64)> {
    let p = project(record);
    contribution(&CountedRow {
        kind: record.header.kind,
        status: p.status.as_deref(),
        occurred_on: p.occurred_on,
        due_on: p.due_on,
        summary: &p.summary,
    })
    .into_iter()
    .collect()
}

#[test]
fn a_person_with_seats_inside_still_loads_and_counts_as_before() {
    let header = header(
        "01KBHQ8ZZ00000000000000003",
        RecordKind::Delegate,
        "330411101000",
    );
    // The shape every release before mandate records wrote: the seats under `mandates`, keyed
    // by congress and term.
    let fields = serde_json::json!({
        "name": "沈建华", "gender": "male", "birth_year": 1972, "ethnicity": "汉族",
        "party": null, "occupation": "村党总支书记", "station": null,
        "mandates": {
            "330411101000-17": { "congress": "330411101000", "level": "township", "term": 17,
                "constituency": "第七选区", "status": "serving", "status_since": null },
            "330411000000-9": { "congress": "330411000000", "level": "county", "term": 9,
                "constituency": "王店镇选区", "status": "serving", "status_since": null }
        }
    });
    let record = load("delegate-seats-inside-v4.automerge", &header, fields);
    let Body::Delegate(person) = &record.body else {
        panic!("a delegate")
    };
    assert_eq!(person.mandates.len(), 2);
    assert_eq!(person.highest_level(), Some(Level::County));
    // It counts once, by its highest seat, at its home, as it always did.
    assert_eq!(
        counted(&record),
        vec![("delegates:county/serving".to_string(), 1)]
    );
    // And it still climbs to the highest congress it names.
    assert_eq!(RouteHints::of(&record).owner_level, Some(Level::County));
    // A county meeting it for the first time after upgrading (a township's unsynced
    // registration, a resend, a new parent) takes it as the township wrote it, county seat
    // and all, though no node may add such a seat to a person it holds.
    use renda_node::record::authority::{Held, Sender, check_incoming, node_actor};
    let township = node_actor(&code("330411101000"));
    assert_eq!(
        check_incoming(
            Sender::Child(code("330411101000")),
            Held::Nothing,
            &record,
            &[],
            [&township],
        ),
        Ok(())
    );
}

#[test]
fn a_mandate_record_loads_routes_and_counts_at_its_congress() {
    let header = header(
        "01KBHQ8ZZ00000000000000004",
        RecordKind::Mandate,
        "330411000000",
    );
    let fields = serde_json::json!({
        "person": "01KBHQ8ZZ00000000000000003", "person_home": "330411101000",
        "name": "沈建华", "congress": "330411000000", "level": "county", "term": 9,
        "constituency": "王店镇选区", "status": "serving", "status_since": null,
        "stations": {
            "01KBHQ8ZZ00000000000000005": { "region": "330411102000", "until": null }
        }
    });
    let record = load("mandate-v5.automerge", &header, fields);
    let Body::Mandate(seat) = &record.body else {
        panic!("a mandate")
    };
    seat.validate(&record.header.home).unwrap();
    assert_eq!(
        counted(&record),
        vec![("delegates:county/serving".to_string(), 1)]
    );
    let hints = RouteHints::of(&record);
    let held_at: Vec<&str> = [
        "330411101000",
        "330411102000",
        "330411103000",
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
        "the person's home, the station's township, the county and the city"
    );
}

#[test]
fn a_merged_person_loads_as_a_redirect_that_counts_nowhere() {
    let header = header(
        "01KBHQ8ZZ00000000000000006",
        RecordKind::Delegate,
        "330411101000",
    );
    let fields = serde_json::json!({
        "name": "陆秀英", "gender": "female", "birth_year": 1975, "ethnicity": "汉族",
        "party": null, "occupation": "教师", "station": null, "mandates": {},
        "merged_into": "01KBHQ8ZZ00000000000000007"
    });
    let record = load("delegate-merged-v5.automerge", &header, fields);
    let Body::Delegate(person) = &record.body else {
        panic!("a delegate")
    };
    assert_eq!(
        person.merged_into,
        Some(RecordId::parse("id", "01KBHQ8ZZ00000000000000007").unwrap())
    );
    assert!(counted(&record).is_empty());
    let keys = renda_node::record::projection::FilterKeys::of(
        RecordKind::Delegate,
        &project(&record).summary,
    );
    assert_eq!(
        keys.merged_into.as_deref(),
        Some("01KBHQ8ZZ00000000000000007")
    );
}

/// A 回头看 that found a B answer solved, as the event text a suggestion document keeps
/// (protocol version 5). Written once, never edited.
#[test]
fn a_follow_up_that_found_the_matter_solved_still_reads() {
    use renda_node::record::Event;
    use renda_node::record::suggestion::SuggestionAction;
    let path = fixture("track-solved-event-v5.json");
    if std::env::var_os("RENDA_WRITE_FIXTURES").is_some() && !path.exists() {
        let event = Event {
            id: RecordId::parse("id", "01KBHQ8ZZ00000000000000008").unwrap(),
            lamport: 9,
            recorded_at: chrono::DateTime::from_timestamp_millis(1_764_720_000_000).unwrap(),
            date: "2026-08-01".parse().unwrap(),
            author: Author {
                node: code("330411000000"),
                user: "代表工委".into(),
            },
            action: SuggestionAction::Track {
                note: "回头看：信号灯已安装".into(),
                solved: true,
            },
        };
        std::fs::write(&path, serde_json::to_string(&event).unwrap()).unwrap();
    }
    let text = std::fs::read_to_string(&path).expect("the committed fixture");
    let event: Event<SuggestionAction> = serde_json::from_str(&text).unwrap();
    assert!(matches!(
        event.action,
        SuggestionAction::Track { solved: true, .. }
    ));
    // A follow-up written before `solved` existed reads as one that did not find it solved.
    let older = text.replace(",\"solved\":true", "");
    assert_ne!(older, text, "the fixture carries the flag");
    let event: Event<SuggestionAction> = serde_json::from_str(&older).unwrap();
    assert!(matches!(
        event.action,
        SuggestionAction::Track { solved: false, .. }
    ));
}
