//! Five-level delegates at one station (五级代表进站), over real gRPC: a county delegate
//! stationed at a township's liaison station is on that township's roster and nobody else's,
//! is signed in there, and the sign-in counts in the county's duty record and quotas; a
//! township delegate the county elects too counts once at each level; and only the congress
//! that grants a seat may register or change it.

mod common;

use std::collections::BTreeMap;

use common::data::{add_delegate, add_station, grant_seat, roll_up, rollup_at, seat};
use common::fed::{CITY, Federation, PROVINCE, WANGDIAN, XINCHENG, XIUZHOU, code, five_levels};
use renda_node::office::{self, ActivityDraft, Contact, PersonRef, StationRef};
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::delegate::{Delegate, Gender, MandateStatus};
use renda_node::record::{RecordId, RecordKind};
use renda_node::store::{ListQuery, StoreError, StoreHandle};

fn person(name: &str) -> Delegate {
    Delegate {
        name: name.into(),
        gender: Gender::Female,
        birth_year: Some(1975),
        ethnicity: Some("汉族".into()),
        party: None,
        occupation: "教师".into(),
        station: None,
        merged_into: None,
        merge_route: None,
        mandates: BTreeMap::new(),
    }
}

async fn roster(store: &StoreHandle) -> Vec<String> {
    let rows = store
        .call(|s| {
            s.list(&ListQuery {
                kind: Some(RecordKind::Mandate),
                ..ListQuery::default()
            })
        })
        .await
        .unwrap();
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r.label, r.summary["level"].as_str().unwrap_or("?")))
        .collect();
    names.sort();
    names
}

fn reception(participants: Vec<RecordId>, station: RecordId) -> ActivityDraft {
    ActivityDraft {
        activity: Activity {
            kind: ActivityKind::Reception,
            date: renda_node::calendar::today(),
            topic: "五级代表进站接待选民".into(),
            organiser: "王店镇人大主席团".into(),
            group: None,
            venue: Some(station),
            participants: BTreeMap::new(),
            constituents_received: 23,
            outcome: String::new(),
        },
        participants,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_delegate_signs_in_at_a_township_station_and_counts_at_the_county() {
    let fed = Federation::start(&[
        (CITY, "嘉兴市人大常委会"),
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
    ])
    .await;
    let township = fed.node(WANGDIAN).store.clone();
    let county = fed.node(XIUZHOU).store.clone();
    let station = add_station(&township, WANGDIAN).await;
    // A township delegate, whom the county elects too.
    let both = add_delegate(&township, code(WANGDIAN), "沈建华".into()).await;
    fed.settle().await;

    // The county registers its own delegate, stationed at the township's station, and grants
    // the township delegate a county seat there too.
    let county_only = county
        .write(move |tx| {
            office::add_delegate(
                tx,
                "staff",
                person("陆秀英"),
                Contact::default(),
                Some(seat(9, &[station])),
            )
        })
        .await
        .unwrap()
        .id;
    grant_seat(&county, both, 9, &[station]).await;
    // A seat is its congress's: the county cannot grant the same one twice.
    let again = county
        .write(move |tx| office::grant_mandate(tx, "staff", &both, seat(9, &[])))
        .await
        .unwrap_err();
    assert!(
        matches!(&again, StoreError::Invalid(e) if e.field == "term"),
        "{again}"
    );
    fed.settle().await;

    // The station's roster holds both county seats and the township's own; the sibling
    // township holds none of them.
    assert_eq!(
        roster(&township).await,
        vec!["沈建华/county", "沈建华/township", "陆秀英/county"]
    );
    assert!(roster(&fed.node(XINCHENG).store).await.is_empty());
    assert!(
        township
            .call(move |s| Ok(s.get(&county_only).is_err()))
            .await
            .unwrap(),
        "the person record stays at the county; the station holds the seat's roster copy"
    );

    // The township signs both in; the activity climbs to the county, the highest level there.
    let activity = township
        .write(move |tx| {
            office::add_activity(tx, "clerk", reception(vec![county_only, both], station))
        })
        .await
        .unwrap();
    let signed = township.call(move |s| s.get(&activity.id)).await.unwrap();
    let renda_node::record::Body::Activity(a) = signed.body else {
        panic!("an activity")
    };
    assert_eq!(a.participants[&county_only].name, "陆秀英");
    assert_eq!(a.participants[&county_only].congresses, vec![code(XIUZHOU)]);
    assert_eq!(
        a.participants[&both].congresses,
        vec![code(XIUZHOU), code(WANGDIAN)]
    );
    roll_up(&fed).await;
    fed.settle().await;
    assert_eq!(
        fed.holders(activity.id).await,
        vec![CITY, XIUZHOU, WANGDIAN]
    );

    // The sign-in is in the county delegate's duty record at the county.
    let year = chrono::Datelike::year(&renda_node::calendar::today());
    let duty = county
        .call(move |s| s.duty_record(&county_only, year))
        .await
        .unwrap();
    assert_eq!(duty.receptions, 1);
    assert_eq!(duty.activities.len(), 1);

    // Each seat counts once, at the congress that granted it; the county holds both of its
    // delegates to its quotas, the township its one.
    let at_county = rollup_at(&county, XIUZHOU).await;
    assert_eq!(at_county.own.delegates.get("county/serving"), Some(&2));
    assert_eq!(at_county.own.delegates.get("township/serving"), None);
    assert_eq!(at_county.own.delegate_quota.total, 2);
    assert_eq!(at_county.total.delegates.get("township/serving"), Some(&1));
    let at_city = rollup_at(&fed.node(CITY).store, CITY).await;
    assert_eq!(at_city.total.delegates.get("county/serving"), Some(&2));
    assert_eq!(at_city.total.delegates.get("township/serving"), Some(&1));
    let at_township = rollup_at(&township, WANGDIAN).await;
    assert_eq!(at_township.own.delegate_quota.total, 1);
    for region in [WANGDIAN, XIUZHOU, CITY] {
        let differences = fed
            .node(region)
            .store
            .call(|s| s.verify_own_counters(renda_node::calendar::today()))
            .await
            .unwrap();
        assert!(differences.is_empty(), "{region}: {differences:?}");
    }

    // The township cannot change the county's seat: it has no seat of its own of that term,
    // and a status change names the congress that holds it.
    let refused = township
        .write(move |tx| {
            office::set_mandate_status(
                tx,
                &both,
                code(XIUZHOU),
                9,
                MandateStatus::Resigned,
                renda_node::calendar::today(),
            )
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(e) if e.field == "congress"),
        "{refused}"
    );
    let refused = township
        .write(move |tx| office::station_delegate(tx, &county_only, 9, station.into(), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(e) if e.field == "term"),
        "{refused}"
    );

    // The county ends 陆秀英's seat; the station's roster copy learns it, and she can no
    // longer be signed in there.
    county
        .write(move |tx| {
            office::set_mandate_status(
                tx,
                &county_only,
                code(XIUZHOU),
                9,
                MandateStatus::Resigned,
                renda_node::calendar::today(),
            )
        })
        .await
        .unwrap();
    fed.settle().await;
    let refused = township
        .write(move |tx| office::add_activity(tx, "clerk", reception(vec![county_only], station)))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("没有在任的代表资格"),
        "{refused}"
    );
    // Once she has left the station, the township keeps the seat's copy (it hears of changes)
    // but no longer knows her as a delegate of its station at all.
    county
        .write(move |tx| {
            office::station_delegate(
                tx,
                &county_only,
                9,
                station.into(),
                Some(renda_node::calendar::today()),
            )
        })
        .await
        .unwrap();
    fed.settle().await;
    assert_eq!(roster(&township).await.len(), 3, "the copy stays");
    let refused = township
        .write(move |tx| office::add_activity(tx, "clerk", reception(vec![county_only], station)))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::NotFound { .. }), "{refused}");
    fed.assert_derived_columns_sound().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registered_twice_in_a_subtree_is_flagged() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
    ])
    .await;
    let register = |at: &'static str, name: &'static str, born: Option<i32>| {
        let store = fed.node(at).store.clone();
        async move {
            store
                .write(move |tx| {
                    let mut p = person(name);
                    p.birth_year = born;
                    office::add_delegate(tx, "clerk", p, Contact::default(), Some(seat(17, &[])))
                })
                .await
                .unwrap()
                .id
        }
    };
    let town = register(WANGDIAN, "陆秀英", Some(1975)).await;
    let unborn = register(XINCHENG, "陆秀英", None).await;
    let namesake = register(XINCHENG, "陆秀英", Some(1988)).await;
    fed.settle().await;
    let county = fed.node(XIUZHOU).store.clone();
    let again = county
        .write(move |tx| {
            let mut p = person("陆秀英");
            p.birth_year = Some(1975);
            office::add_delegate(tx, "staff", p, Contact::default(), Some(seat(9, &[])))
        })
        .await
        .unwrap()
        .id;
    let twins = county
        .call(move |s| s.likely_duplicates(&again))
        .await
        .unwrap();
    let found: Vec<(RecordId, &str)> = twins.iter().map(|t| (t.id, t.reason.as_str())).collect();
    let mut expected = vec![
        (town, "同名且出生年份相同（1975）"),
        (unborn, "同名，出生年份未登记，无法区分"),
    ];
    expected.sort();
    assert_eq!(found, expected, "the namesake born in 1988 is not flagged");
    // A township sees only its own subtree: 新塍镇 does not hold 王店镇's person.
    let at_xincheng = fed
        .node(XINCHENG)
        .store
        .call(move |s| s.likely_duplicates(&namesake))
        .await
        .unwrap();
    assert_eq!(
        at_xincheng.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![unborn]
    );

    // Or the same mobile number, however it was typed, under a name written differently.
    let with_phone = |phone: &str| Contact {
        phone: Some(phone.to_string()),
        ..Contact::default()
    };
    let contact = with_phone("139 0000 1111");
    let typed = fed
        .node(WANGDIAN)
        .store
        .write(move |tx| {
            office::add_delegate(tx, "clerk", person("陆晓英"), contact, Some(seat(17, &[])))
        })
        .await
        .unwrap()
        .id;
    fed.settle().await;
    let contact = with_phone("13900001111");
    let same_phone = county
        .write(move |tx| {
            office::add_delegate(tx, "staff", person("陆小英"), contact, Some(seat(9, &[])))
        })
        .await
        .unwrap()
        .id;
    let twins = county
        .call(move |s| s.likely_duplicates(&same_phone))
        .await
        .unwrap();
    assert_eq!(
        twins
            .iter()
            .map(|t| (t.id, t.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![(typed, "手机号码相同")]
    );
}

/// A province does not hold township persons (they climb to the city), so it grants a township
/// delegate its seat by reference, naming the township's station; the township signs the
/// delegate in as a provincial delegate, and the province holds the activity in the duty
/// record of a delegate it knows only by the seat it granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_province_grants_a_township_delegate_a_seat_by_reference() {
    let fed = five_levels().await;
    let township = fed.node(WANGDIAN).store.clone();
    let province = fed.node(PROVINCE).store.clone();
    let station = add_station(&township, WANGDIAN).await;
    let person = add_delegate(&township, code(WANGDIAN), "沈建华".into()).await;
    fed.settle().await;
    assert!(
        province
            .call(move |s| Ok(s.get(&person).is_err()))
            .await
            .unwrap(),
        "township persons stop at the city"
    );
    let reference = PersonRef {
        id: person,
        home: code(WANGDIAN),
        name: "沈建华".into(),
    };
    // The city holds the person: a reference that names them otherwise is refused there.
    let misnamed = PersonRef {
        name: "沈建国".into(),
        ..reference.clone()
    };
    let refused = fed
        .node(CITY)
        .store
        .write(move |tx| office::grant_mandate_to(tx, "staff", misnamed, seat(18, &[])))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(e) if e.field == "person"),
        "{refused}"
    );
    let mut provincial = seat(14, &[]);
    provincial.stations.push(StationRef {
        venue: station,
        region: Some(code(WANGDIAN)),
    });
    // The station's node must be below the province and a node at all.
    let mut wrong = provincial.clone();
    wrong.stations[0].region = Some(code(PROVINCE));
    let refused = province
        .write({
            let reference = reference.clone();
            move |tx| office::grant_mandate_to(tx, "staff", reference, wrong)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(e) if e.field == "station"),
        "{refused}"
    );
    province
        .write(move |tx| office::grant_mandate_to(tx, "staff", reference, provincial))
        .await
        .unwrap();
    fed.settle().await;

    let activity = township
        .write(move |tx| office::add_activity(tx, "clerk", reception(vec![person], station)))
        .await
        .unwrap()
        .id;
    fed.settle().await;
    let signed = township.call(move |s| s.get(&activity)).await.unwrap();
    let renda_node::record::Body::Activity(a) = signed.body else {
        panic!("an activity")
    };
    assert_eq!(
        a.participants[&person].congresses,
        vec![code(PROVINCE), code(WANGDIAN)]
    );
    let year = chrono::Datelike::year(&renda_node::calendar::today());
    let duty = province
        .call(move |s| s.duty_record(&person, year))
        .await
        .unwrap();
    assert_eq!(duty.delegate.header.kind, RecordKind::Mandate);
    assert_eq!(duty.receptions, 1);
    let rollup = province
        .write(|tx| {
            tx.refresh_rollup(
                chrono::Utc::now(),
                &renda_node::record::rollup::RollupRules::default(),
            )
        })
        .await
        .unwrap();
    assert_eq!(rollup.own.delegates.get("province/serving"), Some(&1));
    assert_eq!(rollup.own.delegate_quota.total, 1);
}

/// A person registered twice at a township is merged: the township's two seats become one;
/// the county's seat, granted to the record merged away, signs the person kept in and passes to
/// them when the county applies the merge; the city, which granted both records a seat, keeps
/// one; the province, above the full-record depth, receives the redirect too and passes its
/// seat on by reference; and what either record took part in counts for the person kept at
/// every level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registered_twice_is_merged_and_counted_once_everywhere() {
    let fed = Federation::start(&[
        (PROVINCE, "浙江省人大常委会"),
        (CITY, "嘉兴市人大常委会"),
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let township = fed.node(WANGDIAN).store.clone();
    let county = fed.node(XIUZHOU).store.clone();
    let city = fed.node(CITY).store.clone();
    let today = renda_node::calendar::today();
    let station = add_station(&township, WANGDIAN).await;
    let twice = add_delegate(&township, code(WANGDIAN), "陆秀英".into()).await;
    let kept = add_delegate(&township, code(WANGDIAN), "陆秀英".into()).await;
    let mut activities = Vec::new();
    for who in [twice, kept] {
        activities.push(
            township
                .write(move |tx| office::add_activity(tx, "clerk", reception(vec![who], station)))
                .await
                .unwrap()
                .id,
        );
    }
    fed.settle().await;
    grant_seat(&county, twice, 9, &[]).await;
    grant_seat(&city, twice, 10, &[]).await;
    grant_seat(&city, kept, 10, &[]).await;
    let province = fed.node(PROVINCE).store.clone();
    let by_reference = PersonRef {
        id: twice,
        home: code(WANGDIAN),
        name: "陆秀英".into(),
    };
    province
        .write(move |tx| office::grant_mandate_to(tx, "staff", by_reference, seat(14, &[])))
        .await
        .unwrap();
    fed.settle().await;

    // Only the township decides the merge of its own record.
    let refused = county
        .write(move |tx| office::merge_persons(tx, &twice, &kept, today))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(e) if e.field == "id"),
        "{refused}"
    );
    township
        .write(move |tx| office::merge_persons(tx, &twice, &kept, today))
        .await
        .unwrap();
    fed.settle().await;

    // The kept person is signed in with the county seat granted to the merged record, and a
    // sign-in under the merged id is theirs, once.
    let later = township
        .write(move |tx| office::add_activity(tx, "clerk", reception(vec![twice], station)))
        .await
        .unwrap()
        .id;
    let signed = township.call(move |s| s.get(&later)).await.unwrap();
    let renda_node::record::Body::Activity(a) = signed.body else {
        panic!("an activity")
    };
    assert_eq!(
        a.participants.keys().copied().collect::<Vec<_>>(),
        vec![kept]
    );
    assert_eq!(
        a.participants[&kept].congresses,
        vec![code(PROVINCE), code(CITY), code(XIUZHOU), code(WANGDIAN)]
    );
    let first = activities[1];
    let again = township
        .write(move |tx| office::sign_in(tx, &first, &[twice]))
        .await
        .unwrap_err();
    assert!(
        matches!(&again, StoreError::Invalid(e) if e.field == "delegate"),
        "{again}"
    );

    // The redirect climbed as high as the merged record's seats: to the province, which holds
    // no township person.
    let redirect = province.call(move |s| s.get(&twice)).await.unwrap();
    let renda_node::record::Body::Delegate(redirect) = redirect.body else {
        panic!("a person")
    };
    assert_eq!(redirect.merged_into, Some(kept));
    assert!(
        province.call(move |s| s.get(&kept)).await.is_err(),
        "the province does not hold the person kept"
    );
    // The county, the city and the province apply the merge to their own seats once it has
    // reached them: the county's and the province's pass to the person kept (the province's by
    // reference), the city's second seat counts no more.
    for store in [&county, &city, &province] {
        store
            .write(move |tx| office::merge_persons(tx, &twice, &kept, today))
            .await
            .unwrap();
    }
    let merged_seat = city
        .call(move |s| s.mandates_of(&twice))
        .await
        .unwrap()
        .into_iter()
        .find(|(h, _)| h.home == code(CITY))
        .expect("the city's seat of the merged record");
    assert_eq!(merged_seat.1.status, MandateStatus::Merged);
    let revived = city
        .write(move |tx| {
            office::set_mandate_status(tx, &twice, code(CITY), 10, MandateStatus::Serving, today)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&revived, StoreError::Invalid(e) if e.field == "status"),
        "{revived}"
    );

    fed.settle().await;
    roll_up(&fed).await;
    fed.settle().await;
    let year = chrono::Datelike::year(&today);
    for (store, region, level) in [
        (&township, WANGDIAN, "township"),
        (&county, XIUZHOU, "county"),
        (&city, CITY, "city"),
    ] {
        let rollup = rollup_at(store, region).await;
        assert_eq!(rollup.own.delegate_quota.total, 1, "{region}: one person");
        assert_eq!(
            rollup.own.delegates.get(&format!("{level}/serving")),
            Some(&1),
            "{region}: one seat"
        );
        for id in [kept, twice] {
            let duty = store.call(move |s| s.duty_record(&id, year)).await.unwrap();
            assert_eq!(
                duty.receptions, 3,
                "{region}: every reception, either record's"
            );
            assert_eq!(duty.delegate.header.id, kept);
        }
        let differences = store
            .call(|s| s.verify_own_counters(renda_node::calendar::today()))
            .await
            .unwrap();
        assert!(differences.is_empty(), "{region}: {differences:?}");
    }
    let rollup = rollup_at(&province, PROVINCE).await;
    assert_eq!(
        rollup.own.delegate_quota.total, 1,
        "the province: one person"
    );
    assert_eq!(rollup.own.delegates.get("province/serving"), Some(&1));
    let seat = province
        .call(move |s| s.mandates_of(&kept))
        .await
        .unwrap()
        .into_iter()
        .find(|(h, _)| h.home == code(PROVINCE))
        .expect("the province's seat passed to the person kept");
    assert_eq!(seat.1.person_home, code(WANGDIAN));
    for id in [kept, twice] {
        let duty = province
            .call(move |s| s.duty_record(&id, year))
            .await
            .unwrap();
        assert_eq!(
            duty.delegate.header.id, seat.0.id,
            "the seat the province granted"
        );
    }
    fed.assert_derived_columns_sound().await;
}

/// A congress holds only its own delegates to its duty rules: a township delegate's record read
/// at the county lists what it holds but is not judged by the county's rules; a county delegate's
/// is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duty_record_is_judged_only_by_the_delegates_own_congress() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let township = fed.node(WANGDIAN).store.clone();
    let county = fed.node(XIUZHOU).store.clone();
    let township_only = add_delegate(&township, code(WANGDIAN), "朱丽华".into()).await;
    let county_own = add_delegate(&county, code(XIUZHOU), "陆秀英".into()).await;
    fed.settle().await;
    let year = chrono::Datelike::year(&renda_node::calendar::today());
    let judged = |id| {
        let county = county.clone();
        async move {
            county
                .call(move |s| s.duty_record(&id, year))
                .await
                .unwrap()
                .standing
        }
    };
    assert!(judged(township_only).await.is_none());
    assert!(judged(county_own).await.is_some());
    let at_township = township
        .call(move |s| s.duty_record(&township_only, year))
        .await
        .unwrap();
    assert!(at_township.standing.is_some(), "its own township judges it");
}
