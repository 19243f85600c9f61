//! Live links: with every node keeping a live link to its parent, a national seat reaches its
//! township station over four hops, the township's write reaches the national node over four
//! hops, and a county notice reaches the township, with no manual sync.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fed::{Federation, code};
use renda_node::office::{self, ActivityDraft, Contact, SeatDraft, StationRef};
use renda_node::record::RecordId;
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::delegate::{Delegate, Gender};
use renda_node::record::notice::Notice;
use renda_node::store::StoreHandle;

async fn wait_until_held(store: &StoreHandle, id: RecordId, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if store.call(move |s| Ok(s.get(&id).is_ok())).await.unwrap() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_links_carry_writes_up_four_hops_and_notices_down() {
    let chain = [
        ("000000000000", "全国人大常委会"),
        ("330000000000", "浙江省人大常委会"),
        ("330400000000", "嘉兴市人大常委会"),
        ("330411000000", "秀洲区人大常委会"),
        ("330411101000", "王店镇人大主席团"),
    ];
    let fed = Federation::start_live(&chain).await;

    // A national delegate stationed at the township's liaison station: the national congress
    // grants the seat, whose roster copy travels four hops down; the township then signs the
    // delegate in, and the activity travels four hops up to the delegate's congress.
    let township = fed.node("330411101000").store.clone();
    let national = fed.node("000000000000").store.clone();
    let station = common::data::add_station(&township, "330411101000").await;
    let delegate = Delegate {
        name: "朱丽华".into(),
        gender: Gender::Female,
        birth_year: None,
        ethnicity: None,
        party: None,
        occupation: "农业合作社理事长".into(),
        station: None,
        merged_into: None,
        merge_route: None,
        mandates: BTreeMap::new(),
    };
    let seat = SeatDraft {
        term: 14,
        constituency: "浙江省".into(),
        stations: vec![StationRef {
            venue: station,
            region: Some(code("330411101000")),
        }],
    };
    let person = national
        .write(move |tx| {
            office::add_delegate(tx, "clerk", delegate, Contact::default(), Some(seat))
        })
        .await
        .unwrap()
        .id;
    let seat = national
        .call(move |s| s.mandates_of(&person))
        .await
        .unwrap()[0]
        .0
        .id;
    wait_until_held(
        &township,
        seat,
        "the national seat at its station's township",
    )
    .await;
    let draft = ActivityDraft {
        activity: Activity {
            kind: ActivityKind::Reception,
            date: renda_node::calendar::today(),
            topic: "全国人大代表进站接待选民".into(),
            organiser: "王店镇人大主席团".into(),
            group: None,
            venue: Some(station),
            participants: BTreeMap::new(),
            constituents_received: 18,
            outcome: String::new(),
        },
        participants: vec![person],
    };
    let id = township
        .write(move |tx| office::add_activity(tx, "clerk", draft))
        .await
        .unwrap()
        .id;
    wait_until_held(&national, id, "the township's write at the national node").await;

    let notice = Notice {
        title: "关于开展代表活动月的通知".into(),
        body: "请各镇组织代表进站履职".into(),
        category: "通知".into(),
        issued_on: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        audience: code("330411000000"),
    };
    let notice = fed
        .node("330411000000")
        .store
        .write(move |tx| office::add_notice(tx, "county", notice))
        .await
        .unwrap()
        .id;
    wait_until_held(&township, notice, "the county notice at the township").await;
    assert!(
        !fed.node("330000000000")
            .store
            .call(move |s| Ok(s.get(&notice).is_ok()))
            .await
            .unwrap(),
        "a county notice does not climb past the city"
    );
}
