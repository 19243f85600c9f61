//! A five-level federation over real gRPC on loopback: records land exactly where their routes
//! say, and a suggestion handled at three levels derives the same status everywhere.

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use common::fed::{
    CITY, FENGQIAO, Federation, NANHU, NATIONAL, PROVINCE, WANGDIAN, XINCHENG, XIUZHOU, code,
    five_levels,
};
use renda_node::office::{self, ActivityDraft, Contact, SeatDraft, StationRef, SuggestionDraft};
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::delegate::{Delegate, Gender};
use renda_node::record::notice::Notice;
use renda_node::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
use renda_node::record::suggestion::{
    AnswerClass, Satisfaction, SuggestionAction, SuggestionStatus, UnitAssignment, UnitRole,
};
use renda_node::record::{Body, RecordId};
use renda_node::store::StoreHandle;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Registers a person at `store`'s node with the seat (`term`) its congress grants, working at
/// `stations`, with `phone` kept as personal data.
async fn add_delegate(
    store: &StoreHandle,
    name: &str,
    term: u32,
    stations: Vec<StationRef>,
    phone: Option<&str>,
) -> RecordId {
    let delegate = Delegate {
        name: name.into(),
        gender: Gender::Female,
        birth_year: None,
        ethnicity: None,
        party: None,
        occupation: "村委会主任".into(),
        station: None,
        merged_into: None,
        merge_route: None,
        mandates: BTreeMap::new(),
    };
    let contact = Contact {
        phone: phone.map(String::from),
        ..Contact::default()
    };
    let seat = SeatDraft {
        term,
        constituency: "第七选区".into(),
        stations,
    };
    store
        .write(move |tx| office::add_delegate(tx, "clerk", delegate, contact, Some(seat)))
        .await
        .unwrap()
        .id
}

async fn add_opinion(store: &StoreHandle, region: &str, content: &str) -> RecordId {
    let fields = OpinionFields {
        source: OpinionSource::QrCode,
        content: content.into(),
        place: String::new(),
        region: code(region),
        delegate: None,
        activity: None,
        category: None,
    };
    let contact = Contact {
        name: Some("王阿姨".into()),
        ..Contact::default()
    };
    store
        .write(move |tx| office::add_opinion(tx, "clerk", fields, contact, d("2026-10-01")))
        .await
        .unwrap()
        .id
}

async fn personal_of(store: &StoreHandle, subject: RecordId) -> Option<RecordId> {
    store
        .call(move |s| s.personal_for(&subject))
        .await
        .unwrap()
        .map(|r| r.header.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_lands_exactly_where_its_routes_say() {
    let fed = five_levels().await;
    let wangdian = &fed.node(WANGDIAN).store;

    let opinion = add_opinion(wangdian, WANGDIAN, "村道路灯损坏").await;
    let opinion_personal = personal_of(wangdian, opinion)
        .await
        .expect("personal data kept apart");
    let sibling_opinion = add_opinion(&fed.node(XINCHENG).store, XINCHENG, "河道需要清淤").await;
    let other_county_opinion =
        add_opinion(&fed.node(FENGQIAO).store, FENGQIAO, "农贸市场停车难").await;

    // A delegate of the provincial congress stationed at the township's liaison station
    // (五级代表进站): the province registers the person and grants the seat, naming the
    // station, whose venue it does not hold.
    let station = common::data::add_station(wangdian, WANGDIAN).await;
    let provincial = add_delegate(
        &fed.node(PROVINCE).store,
        "沈建华",
        14,
        vec![StationRef {
            venue: station,
            region: Some(code(WANGDIAN)),
        }],
        Some("13900000000"),
    )
    .await;
    let provincial_personal = personal_of(&fed.node(PROVINCE).store, provincial)
        .await
        .unwrap();
    let provincial_seat = fed
        .node(PROVINCE)
        .store
        .call(move |s| s.mandates_of(&provincial))
        .await
        .unwrap()[0]
        .0
        .id;
    let township_only = add_delegate(wangdian, "陆秀英", 17, Vec::new(), None).await;
    // The township signs the provincial delegate in once the seat's roster copy has come down.
    fed.settle().await;
    let draft = ActivityDraft {
        activity: Activity {
            kind: ActivityKind::Reception,
            date: d("2026-10-15"),
            topic: "五级代表进站接待选民".into(),
            organiser: "王店镇人大主席团".into(),
            group: None,
            venue: None,
            participants: BTreeMap::new(),
            constituents_received: 31,
            outcome: String::new(),
        },
        participants: vec![provincial, township_only],
    };
    let activity = wangdian
        .write(move |tx| office::add_activity(tx, "clerk", draft))
        .await
        .unwrap()
        .id;

    // A county notice for its townships.
    let notice = Notice {
        title: "关于开展代表活动月的通知".into(),
        body: "请各镇组织代表进站".into(),
        category: "通知".into(),
        issued_on: d("2026-10-01"),
        audience: code(XIUZHOU),
    };
    let notice = fed
        .node(XIUZHOU)
        .store
        .write(move |tx| office::add_notice(tx, "county", notice))
        .await
        .unwrap()
        .id;

    fed.settle().await;

    assert_eq!(
        fed.holders(opinion).await,
        vec![CITY, XIUZHOU, WANGDIAN],
        "an opinion climbs to the city"
    );
    assert_eq!(
        fed.holders(opinion_personal).await,
        vec![XIUZHOU, WANGDIAN],
        "personal data stops at the parent"
    );
    assert_eq!(
        fed.holders(sibling_opinion).await,
        vec![CITY, XIUZHOU, XINCHENG],
        "township A never holds B's opinions"
    );
    assert_eq!(
        fed.holders(other_county_opinion).await,
        vec![CITY, NANHU, FENGQIAO]
    );
    assert_eq!(
        fed.holders(provincial).await,
        vec![PROVINCE],
        "a person registered at the province stays there"
    );
    assert_eq!(
        fed.holders(provincial_seat).await,
        vec![PROVINCE, CITY, XIUZHOU, WANGDIAN],
        "a provincial seat reaches its station through the city and the county, and no sibling"
    );
    assert_eq!(
        fed.holders(provincial_personal).await,
        vec![NATIONAL, PROVINCE],
        "personal data stops at the parent"
    );
    assert_eq!(
        fed.holders(township_only).await,
        vec![CITY, XIUZHOU, WANGDIAN]
    );
    assert_eq!(
        fed.holders(activity).await,
        vec![PROVINCE, CITY, XIUZHOU, WANGDIAN],
        "an activity climbs to its highest-level participant"
    );
    assert_eq!(
        fed.holders(notice).await,
        vec![CITY, XIUZHOU, WANGDIAN, XINCHENG],
        "a notice reaches the county's townships"
    );

    // A second settle moves nothing: every sync is a no-op.
    let report = fed.sync_once(WANGDIAN).await;
    assert_eq!((report.changes_sent, report.changes_received), (0, 0));
}

async fn status_at(store: &StoreHandle, id: RecordId) -> (SuggestionStatus, usize) {
    let record = store.call(move |s| s.get(&id)).await.unwrap();
    let Body::Suggestion(s) = &record.body else {
        panic!("not a suggestion")
    };
    let (status, history) = s.fold(&record.header);
    (status, history.len())
}

async fn step(store: &StoreHandle, id: RecordId, action: SuggestionAction, date: &str) {
    let date = d(date);
    store
        .write(move |tx| office::suggestion_step(tx, "staff", &id, action, date))
        .await
        .unwrap_or_else(|e| panic!("step refused: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suggestion_handled_at_three_levels_derives_one_status_everywhere() {
    let fed = five_levels().await;
    let township = fed.node(WANGDIAN).store.clone();
    let county = fed.node(XIUZHOU).store.clone();

    let lead = common::data::add_two_level_delegate(&fed, WANGDIAN, XIUZHOU, "沈建华".into()).await;
    let draft = SuggestionDraft {
        title: "关于改造王店镇老旧农贸市场的建议".into(),
        body: "市场设施老化，排水不畅。".into(),
        category: "城乡建设".into(),
        lead,
        cosigners: vec![],
        addressed_to: code(XIUZHOU),
        session: Some("九届三次会议".into()),
        group: None,
    };
    let s = township
        .write(move |tx| office::submit_suggestion(tx, "clerk", draft, d("2026-01-10")))
        .await
        .unwrap()
        .id;

    // The township may not screen what is addressed to the county.
    let refused = township
        .write(move |tx| {
            office::suggestion_step(
                tx,
                "clerk",
                &s,
                SuggestionAction::Screen {
                    accepted: true,
                    number: None,
                    reason: None,
                },
                d("2026-01-11"),
            )
        })
        .await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("authority.addressed_congress")
    );

    fed.settle().await;
    step(
        &county,
        s,
        SuggestionAction::Screen {
            accepted: true,
            number: Some(12),
            reason: None,
        },
        "2026-01-15",
    )
    .await;
    step(
        &county,
        s,
        SuggestionAction::Assign {
            units: vec![UnitAssignment {
                unit: "区商务局".into(),
                role: UnitRole::Lead,
            }],
        },
        "2026-01-20",
    )
    .await;
    step(
        &county,
        s,
        SuggestionAction::Answer {
            unit: "区商务局".into(),
            class: AnswerClass::A,
            text: "已列入改造计划并完工".into(),
        },
        "2026-04-10",
    )
    .await;
    fed.settle().await;

    let (at_township, _) = status_at(&township, s).await;
    assert_eq!(
        at_township.state.as_str(),
        "answered",
        "the county's decisions flowed down"
    );
    step(
        &township,
        s,
        SuggestionAction::Evaluate {
            result: Satisfaction::Satisfied,
            comment: String::new(),
        },
        "2026-04-15",
    )
    .await;
    fed.settle().await;
    step(&county, s, SuggestionAction::Close, "2026-04-20").await;
    fed.settle().await;

    let mut seen = Vec::new();
    for region in [WANGDIAN, XIUZHOU, CITY] {
        seen.push(status_at(&fed.node(region).store, s).await);
    }
    assert_eq!(seen[0].0.state.as_str(), "closed");
    assert_eq!(seen[0].0.number, Some(12));
    assert!(
        seen.iter().all(|st| *st == seen[0]),
        "every holder derives the same status and history"
    );
    assert_eq!(fed.holders(s).await, vec![CITY, XIUZHOU, WANGDIAN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_with_nothing_changed_moves_nothing_and_deliveries_twice_are_no_ops() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let township = fed.node(WANGDIAN).store.clone();
    for i in 0..50 {
        add_opinion(&township, WANGDIAN, &format!("第{i}条民情")).await;
    }
    let first = fed.sync_once(WANGDIAN).await;
    assert_eq!(
        first.changes_sent, 104,
        "50 opinions (each created with its 收集 event), their personal data, and the four duty \
         rules the township was seeded with"
    );
    let again = fed.sync_once(WANGDIAN).await;
    assert_eq!(
        (
            again.changes_sent,
            again.changes_received,
            again.batches_sent
        ),
        (0, 0, 0)
    );

    // One changed record of fifty costs one change, not fifty.
    let one = add_opinion(&township, WANGDIAN, "新的一条").await;
    township
        .write(move |tx| {
            office::opinion_step(
                tx,
                "clerk",
                &one,
                OpinionAction::PassOn {
                    to: "镇建设办".into(),
                    congress: None,
                },
                d("2026-10-02"),
            )
        })
        .await
        .unwrap();
    let third = fed.sync_once(WANGDIAN).await;
    assert_eq!(
        third.changes_sent, 3,
        "the new opinion, its personal data and one pass-on"
    );

    // Replaying a batch the county already applied changes nothing there.
    let county = fed.node(XIUZHOU).store.clone();
    let before = county.call(|s| s.last_seq()).await.unwrap();
    let peer = code(WANGDIAN);
    let batch = township
        .call(move |s| s.outgoing(&code(XIUZHOU), 0, usize::MAX, &Default::default()))
        .await
        .unwrap();
    let outcome = county
        .write(move |tx| {
            tx.apply_incoming(
                &peer,
                Some(renda_node::store::Checkpoint {
                    seq: batch.up_to_seq,
                    hash: batch.up_to_hash,
                }),
                batch.records,
                &Default::default(),
            )
        })
        .await
        .unwrap();
    assert_eq!(outcome.changes_applied, 0);
    assert!(outcome.missing.is_empty() && outcome.rejected.is_empty());
    assert_eq!(county.call(|s| s.last_seq()).await.unwrap(), before);
}
