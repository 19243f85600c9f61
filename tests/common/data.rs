//! Realistic records for the federation tests: delegates, opinions at every step of their
//! handling, activities, and suggestions from submission to evaluation, drawn from a seeded
//! generator so a failing run can be replayed.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, Utc};
use rand::RngExt;
use rand::rngs::StdRng;
use renda_node::office::{self, ActivityDraft, Contact, SeatDraft, StationRef, SuggestionDraft};
use renda_node::record::RecordId;
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::delegate::{Delegate, Gender};
use renda_node::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
use renda_node::record::rollup::{Rollup, RollupRules};
use renda_node::record::suggestion::{
    AnswerClass, Satisfaction, SuggestionAction, UnitAssignment, UnitRole,
};
use renda_node::region::{Level, RegionCode};
use renda_node::store::StoreHandle;

use super::fed::{Federation, code};

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Refreshes rollups level by level from the townships up, syncing each level to its parents
/// (those in the federation), as nodes that refresh before they sync do.
pub async fn roll_up(fed: &Federation) {
    for level in [
        Level::Township,
        Level::County,
        Level::City,
        Level::Province,
        Level::National,
    ] {
        let at_level: Vec<RegionCode> = fed
            .nodes
            .keys()
            .copied()
            .filter(|r| r.level() == Some(level))
            .collect();
        for region in &at_level {
            fed.nodes[region]
                .store
                .write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
                .await
                .unwrap();
        }
        for region in &at_level {
            if region.parent().is_some_and(|p| fed.nodes.contains_key(&p)) {
                fed.sync_once(region.as_str()).await;
            }
        }
    }
}

pub async fn rollup_at(store: &StoreHandle, region: &str) -> Rollup {
    let region = code(region);
    store
        .call(move |s| s.rollup(&region))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no rollup of {region}"))
}

/// An activity of `kind` on `date`, held by `group` or by no group, that a random half of
/// `delegates` signed in at and that received a random number of constituents.
pub fn random_activity(
    rng: &mut StdRng,
    n: usize,
    kind: ActivityKind,
    date: NaiveDate,
    group: Option<RecordId>,
    delegates: &[RecordId],
) -> ActivityDraft {
    let participants: Vec<RecordId> = delegates
        .iter()
        .copied()
        .filter(|_| rng.random_range(0..2) == 0)
        .collect();
    ActivityDraft {
        activity: Activity {
            kind,
            date,
            topic: format!("活动{n}"),
            organiser: "人大主席团".into(),
            group,
            venue: None,
            participants: BTreeMap::new(),
            constituents_received: rng.random_range(0..20),
            outcome: String::new(),
        },
        participants,
    }
}

/// A township (王店镇) store under `dir` with `delegates` delegates, the first `members` of them
/// in one regional delegate group: the delegates' ids and the group's.
pub async fn township_with_group(
    dir: &std::path::Path,
    delegates: usize,
    members: usize,
) -> (StoreHandle, RegionCode, Vec<RecordId>, RecordId) {
    use renda_node::record::IdSet;
    use renda_node::record::group::{Group, GroupKind};
    let region = code(super::fed::WANGDIAN);
    let store = StoreHandle::spawn(
        renda_node::store::Store::init(dir, region, "王店镇人大主席团", None).unwrap(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..delegates {
        ids.push(add_delegate(&store, region, format!("代表{n}")).await);
    }
    let members = IdSet(ids[..members].iter().copied().collect());
    let group = store
        .write(move |tx| {
            office::add_group(
                tx,
                "clerk",
                Group {
                    name: "第一代表小组".into(),
                    kind: GroupKind::Regional,
                    field: None,
                    congress: region,
                    leader: None,
                    members,
                    venue: None,
                },
            )
        })
        .await
        .unwrap()
        .id;
    (store, region, ids, group)
}

/// A liaison station (代表联络站) of the township `region`, written at `store`'s node.
pub async fn add_station(store: &StoreHandle, region: &str) -> RecordId {
    use renda_node::record::group::{Venue, VenueKind};
    let region = code(region);
    store
        .write(move |tx| {
            office::add_venue(
                tx,
                "clerk",
                Venue {
                    name: "王店镇人大代表联络站".into(),
                    kind: VenueKind::Station,
                    region,
                    address: "王店镇建设路1号".into(),
                },
            )
        })
        .await
        .unwrap()
        .id
}

/// A person registered at `store`'s node with the seat its congress grants (term 17);
/// `congress` is that node's region.
pub async fn add_delegate(store: &StoreHandle, congress: RegionCode, name: String) -> RecordId {
    let region = store.call(|s| Ok(s.identity().region)).await.unwrap();
    assert_eq!(region, congress, "a congress grants its own seats");
    let delegate = Delegate {
        name,
        gender: Gender::Male,
        birth_year: None,
        ethnicity: None,
        party: None,
        occupation: "村民委员会主任".into(),
        station: None,
        merged_into: None,
        merge_route: None,
        mandates: BTreeMap::new(),
    };
    store
        .write(move |tx| {
            office::add_delegate(
                tx,
                "clerk",
                delegate,
                Contact::default(),
                Some(seat(17, &[])),
            )
        })
        .await
        .unwrap()
        .id
}

/// A seat with these stations, granted by the writing node's congress.
pub fn seat(term: u32, stations: &[RecordId]) -> SeatDraft {
    SeatDraft {
        term,
        constituency: "第一选区".into(),
        stations: stations.iter().copied().map(StationRef::from).collect(),
    }
}

/// Grants `person`, already held at `store`'s node, a seat there: a township delegate the
/// county elects too, say. Returns the mandate's id.
pub async fn grant_seat(
    store: &StoreHandle,
    person: RecordId,
    term: u32,
    stations: &[RecordId],
) -> RecordId {
    let seat = seat(term, stations);
    store
        .write(move |tx| office::grant_mandate(tx, "staff", &person, seat))
        .await
        .unwrap()
        .id
}

/// A township delegate whom the county elects too: registered at `township` (term 17), and,
/// once the federation has carried the person up, granted term 9 at `county`.
pub async fn add_two_level_delegate(
    fed: &Federation,
    township: &str,
    county: &str,
    name: String,
) -> RecordId {
    let person = add_delegate(&fed.node(township).store, code(township), name).await;
    fed.settle().await;
    grant_seat(&fed.node(county).store, person, 9, &[]).await;
    fed.settle().await;
    person
}

/// Writes an opinion and moves it through the first `steps` of 转交, 开始办理, 办结.
pub async fn add_opinion(store: &StoreHandle, region: RegionCode, steps: usize) {
    let fields = OpinionFields {
        source: OpinionSource::Visit,
        content: "村道破损，希望修缮".into(),
        place: String::new(),
        region,
        delegate: None,
        activity: None,
        category: None,
    };
    store
        .write(move |tx| {
            let id =
                office::add_opinion(tx, "clerk", fields, Contact::default(), d("2026-03-02"))?.id;
            let actions = [
                OpinionAction::PassOn {
                    to: "镇建设办".into(),
                    congress: None,
                },
                OpinionAction::Start {
                    note: String::new(),
                },
                OpinionAction::Handle {
                    result: "已修缮".into(),
                },
            ];
            for (i, action) in actions.into_iter().take(steps).enumerate() {
                office::opinion_step(
                    tx,
                    "clerk",
                    &id,
                    action,
                    d("2026-03-03") + Duration::days(i as i64),
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

/// A township's year, drawn from `rng`.
pub async fn populate(store: &StoreHandle, region: RegionCode, rng: &mut StdRng) {
    let mut delegates = Vec::new();
    for i in 0..rng.random_range(2..5) {
        delegates.push(add_delegate(store, region, format!("代表{i}")).await);
    }
    for _ in 0..rng.random_range(5..20) {
        add_opinion(store, region, rng.random_range(0..4)).await;
    }
    for _ in 0..rng.random_range(4..12) {
        let month = rng.random_range(1..=9);
        let kind = if rng.random_range(0..2) == 0 {
            ActivityKind::Reception
        } else {
            ActivityKind::ActivityDay
        };
        let participants: Vec<RecordId> = delegates
            .iter()
            .copied()
            .filter(|_| rng.random_range(0..3) > 0)
            .collect();
        let draft = ActivityDraft {
            activity: Activity {
                kind,
                date: NaiveDate::from_ymd_opt(2026, month, 10).unwrap(),
                topic: "代表进站接待选民".into(),
                organiser: "人大主席团".into(),
                group: None,
                venue: None,
                participants: BTreeMap::new(),
                constituents_received: rng.random_range(0..40),
                outcome: String::new(),
            },
            participants,
        };
        store
            .write(move |tx| office::add_activity(tx, "clerk", draft))
            .await
            .unwrap();
    }
    for i in 0..rng.random_range(1..5) {
        let draft = SuggestionDraft {
            title: format!("关于改善农田灌溉设施的建议{i}"),
            body: "部分渠道年久失修。".into(),
            category: "农业农村".into(),
            lead: delegates[0],
            cosigners: Vec::new(),
            addressed_to: region,
            session: None,
            group: None,
        };
        let steps = rng.random_range(0..5);
        let class = AnswerClass::ALL[rng.random_range(0..AnswerClass::ALL.len())];
        let rating = Satisfaction::ALL[rng.random_range(0..Satisfaction::ALL.len())];
        store
            .write(move |tx| {
                let id = office::submit_suggestion(tx, "clerk", draft, d("2026-03-01"))?.id;
                // 交办 on 03-10 makes the answer due on 06-10: one still awaited is overdue.
                let life = [
                    (
                        SuggestionAction::Screen {
                            accepted: true,
                            number: None,
                            reason: None,
                        },
                        "2026-03-05",
                    ),
                    (
                        SuggestionAction::Assign {
                            units: vec![UnitAssignment {
                                unit: "镇农业农村办".into(),
                                role: UnitRole::Lead,
                            }],
                        },
                        "2026-03-10",
                    ),
                    (
                        SuggestionAction::Answer {
                            unit: "镇农业农村办".into(),
                            class,
                            text: "已列入今年农田水利计划。".into(),
                        },
                        "2026-05-20",
                    ),
                    (
                        SuggestionAction::Evaluate {
                            result: rating,
                            comment: String::new(),
                        },
                        "2026-05-28",
                    ),
                ];
                for (action, on) in life.into_iter().take(steps) {
                    office::suggestion_step(tx, "clerk", &id, action, d(on))?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
}
