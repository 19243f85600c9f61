//! A malicious child over a real gRPC link: it forges another township's record, the county's
//! 交办 (in the county's name and in its own), a change under another node's actor, and, one
//! level up, a county evaluates a township delegate's suggestion. Each is refused with the
//! record and the rule named in the acknowledgement, nothing of it is stored anywhere, the
//! receiver keeps an audit record, and the honest record sent in the same batch, and every
//! honest sync after it, still converges.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use common::fed::{CITY, Federation, WANGDIAN, XINCHENG, XIUZHOU, code};
use common::peer::{msg, send_batch, wire, wire_routed};
use renda_node::office::{self, SuggestionDraft};
use renda_node::record::authority::node_actor;
use renda_node::record::delegate::{Delegate, Gender};
use renda_node::record::event::{Event, next_lamport};
use renda_node::record::opinion::{OpinionFields, OpinionSource};
use renda_node::record::suggestion::{
    AnswerClass, Satisfaction, SuggestionAction, SuggestionState, UnitAssignment, UnitRole,
};
use renda_node::record::{Author, Body, Header, RecordDoc, RecordId, RecordKind};
use renda_node::route::RoutePolicy;
use renda_node::store::StoreHandle;
use renda_proto::v1::sync_client::SyncClient;
use renda_proto::v1::{self, ChangeBatch, Hello, link_message::Body as Msg};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn rule_for<'a>(ack: &'a v1::BatchAck, id: &RecordId) -> Option<&'a str> {
    ack.rejected
        .iter()
        .find(|r| r.record == id.to_string())
        .map(|r| r.rule.as_str())
}

fn event(
    author: &str,
    lamport: u64,
    date: &str,
    action: SuggestionAction,
) -> Event<SuggestionAction> {
    Event {
        id: RecordId::new(),
        lamport,
        recorded_at: Utc::now(),
        date: d(date),
        author: Author {
            node: code(author),
            user: "forger".into(),
        },
        action,
    }
}

/// A change appending `event` to the record as `store` holds it, written under an actor of
/// `writer`'s node.
async fn forged_event(
    store: &StoreHandle,
    id: RecordId,
    writer: renda_node::region::RegionCode,
    make: impl FnOnce(u64) -> Event<SuggestionAction> + Send + 'static,
) -> Vec<u8> {
    store
        .call(move |s| {
            let saved = s.load_doc(&id)?.save();
            let mut doc = RecordDoc::load(&saved, &node_actor(&writer)).expect("reload");
            let lamport = match s.get(&id)?.body {
                Body::Suggestion(sg) => next_lamport(&sg.events),
                _ => unreachable!(),
            };
            Ok(doc
                .append_event(&make(lamport))
                .expect("append")
                .raw_bytes()
                .to_vec())
        })
        .await
        .unwrap()
}

async fn suggestion_state(store: &StoreHandle, id: RecordId) -> Option<(SuggestionState, usize)> {
    store
        .call(move |s| {
            Ok(match s.get(&id) {
                Ok(r) => {
                    let Body::Suggestion(sg) = &r.body else {
                        unreachable!()
                    };
                    Some((sg.fold(&r.header).0.state, sg.events.len()))
                }
                Err(_) => None,
            })
        })
        .await
        .unwrap()
}

async fn audit_rules(store: &StoreHandle) -> Vec<(String, String, String)> {
    store
        .call(|s| s.audit_log(100))
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.peer, e.record, e.rule))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_changes_are_refused_audited_and_stored_nowhere() {
    let fed = Federation::start(&[
        (CITY, "嘉兴市人大常委会"),
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
    ])
    .await;
    let township = fed.node(WANGDIAN).store.clone();
    let county = fed.node(XIUZHOU).store.clone();
    let city = fed.node(CITY).store.clone();

    // Honest history: a township delegate's suggestion to the county, synced everywhere.
    let wd = code(WANGDIAN);
    let lead = common::data::add_two_level_delegate(&fed, WANGDIAN, XIUZHOU, "沈建华".into()).await;
    let draft = SuggestionDraft {
        title: "关于修缮梅北村灌溉渠道的建议".into(),
        body: "渠道渗漏严重。".into(),
        category: "农业农村".into(),
        lead,
        cosigners: vec![],
        addressed_to: code(XIUZHOU),
        session: None,
        group: None,
    };
    let suggestion = township
        .write(move |tx| office::submit_suggestion(tx, "clerk", draft, d("2026-03-02")))
        .await
        .unwrap()
        .id;
    fed.settle().await;
    assert_eq!(
        suggestion_state(&county, suggestion).await,
        Some((SuggestionState::Submitted, 1))
    );

    // An honest opinion written since, to travel in the same batch as the forgeries.
    let honest = common::fed::write_opinion(&township, wd, "村口路灯不亮".into()).await;
    let (received, up_to, honest_changes) = {
        let policy = RoutePolicy::default();
        township
            .call(move |s| {
                let county = code(XIUZHOU);
                let received = s.received_seq(&county)?;
                let acked = s
                    .peers()?
                    .into_iter()
                    .find(|p| p.peer == county)
                    .unwrap()
                    .acked_seq;
                let batch = s.outgoing(&county, acked, 1 << 20, &policy)?;
                let records: Vec<_> = batch
                    .records
                    .into_iter()
                    .map(|r| wire_routed(&r.header, None, r.changes))
                    .collect();
                Ok((received, batch.up_to_seq, records))
            })
            .await
            .unwrap()
    };
    assert!(
        !honest_changes.is_empty(),
        "the honest opinion is due to travel"
    );

    // 1. A record of another township (新塍镇), written as if by that township.
    let xc = code(XINCHENG);
    let other = Header {
        id: RecordId::new(),
        kind: RecordKind::Opinion,
        home: xc,
        created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap(),
        created_by: Author {
            node: xc,
            user: "forger".into(),
        },
    };
    let fields = OpinionFields {
        source: OpinionSource::Visit,
        content: "伪造的民情".into(),
        place: String::new(),
        region: xc,
        delegate: None,
        activity: None,
        category: None,
    };
    let other_doc = RecordDoc::create(&other, &fields, &node_actor(&xc)).unwrap();
    let other_changes: Vec<Vec<u8>> = other_doc
        .changes_since(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();

    let units = vec![UnitAssignment {
        unit: "镇农业农村办".into(),
        role: UnitRole::Lead,
    }];
    let header = township
        .call(move |s| Ok(s.get(&suggestion)?.header))
        .await
        .unwrap();

    // 2. The county's 交办 in the county's name, and 3. in the township's own name.
    let u = units.clone();
    let assign_as_county = forged_event(&township, suggestion, wd, move |l| {
        event(
            XIUZHOU,
            l,
            "2026-03-10",
            SuggestionAction::Assign { units: u },
        )
    })
    .await;
    let u = units.clone();
    let assign_as_township = forged_event(&township, suggestion, wd, move |l| {
        event(
            WANGDIAN,
            l,
            "2026-03-10",
            SuggestionAction::Assign { units: u },
        )
    })
    .await;
    // 4. An honest-looking step under the county's actor: the change itself claims the county.
    let u = units.clone();
    let under_county_actor = forged_event(&township, suggestion, code(XIUZHOU), move |l| {
        event(
            XIUZHOU,
            l,
            "2026-03-10",
            SuggestionAction::Assign { units: u },
        )
    })
    .await;

    // 5. Re-addressing the suggestion to the township itself, which would make its own 交办 legal.
    let readdressed = township
        .call(move |s| {
            let saved = s.load_doc(&suggestion)?.save();
            let mut doc = RecordDoc::load(&saved, &node_actor(&wd)).expect("reload");
            let Body::Suggestion(sg) = s.get(&suggestion)?.body else {
                unreachable!()
            };
            let mut fields = sg.fields.clone();
            fields.addressed_to = wd;
            Ok(doc
                .set_fields(&fields, Utc::now().timestamp_millis(), "")
                .expect("edit fields")
                .expect("a change")
                .raw_bytes()
                .to_vec())
        })
        .await
        .unwrap();

    for (forged, rule) in [
        (
            vec![wire(&header, vec![readdressed.clone()])],
            "authority.readdressed",
        ),
        (
            vec![wire(&other, other_changes.clone())],
            "authority.child_subtree",
        ),
        (
            vec![wire(&header, vec![assign_as_county.clone()])],
            "authority.event_author",
        ),
        (
            vec![wire(&header, vec![assign_as_township.clone()])],
            "authority.addressed_congress",
        ),
        (
            vec![wire(&header, vec![under_county_actor.clone()])],
            "authority.change_author",
        ),
    ] {
        let id = RecordId::parse("id", &forged[0].header.as_ref().unwrap().id).unwrap();
        // Every forgery travels with the honest records, which must still land.
        let mut records = forged;
        records.extend(honest_changes.iter().cloned());
        let ack = send_batch(&fed, WANGDIAN, received, up_to, records).await;
        assert_eq!(rule_for(&ack, &id), Some(rule), "{ack:?}");
        assert_eq!(
            ack.rejected.len(),
            1,
            "only the forgery is refused: {ack:?}"
        );
        assert!(
            ack.rejected[0].reason.contains(&id.to_string()),
            "the reason names the record: {:?}",
            ack.rejected[0]
        );
    }
    let audited = audit_rules(&county).await;
    for rule in [
        "authority.readdressed",
        "authority.child_subtree",
        "authority.event_author",
        "authority.addressed_congress",
        "authority.change_author",
    ] {
        assert!(
            audited
                .iter()
                .any(|(peer, _, r)| peer == WANGDIAN && r == rule),
            "audit log lacks {rule}: {audited:?}"
        );
    }

    // The honest opinion landed; nothing forged did.
    assert_eq!(fed.holders(honest).await, vec![XIUZHOU, WANGDIAN]);
    assert!(fed.holders(other.id).await.is_empty());
    assert_eq!(
        suggestion_state(&county, suggestion).await,
        Some((SuggestionState::Submitted, 1)),
        "no forged 交办 reached the county's copy"
    );

    // One level up: the county records the township delegate's evaluation in its own name.
    for (action, date) in [
        (
            SuggestionAction::Screen {
                accepted: true,
                number: None,
                reason: None,
            },
            "2026-03-06",
        ),
        (
            SuggestionAction::Assign {
                units: units.clone(),
            },
            "2026-03-10",
        ),
        (
            SuggestionAction::Answer {
                unit: "镇农业农村办".into(),
                class: AnswerClass::A,
                text: "已完成渠道修缮。".into(),
            },
            "2026-04-20",
        ),
    ] {
        county
            .write(move |tx| office::suggestion_step(tx, "staff", &suggestion, action, d(date)))
            .await
            .unwrap();
    }
    fed.settle().await;
    let county_seq = county.call(|s| s.last_seq()).await.unwrap();
    let county_received = county.call(|s| s.received_seq(&code(CITY))).await.unwrap();
    let evaluate = forged_event(&county, suggestion, code(XIUZHOU), |l| {
        event(
            XIUZHOU,
            l,
            "2026-04-25",
            SuggestionAction::Evaluate {
                result: Satisfaction::Satisfied,
                comment: String::new(),
            },
        )
    })
    .await;
    let ack = send_batch(
        &fed,
        XIUZHOU,
        county_received,
        county_seq,
        vec![wire(&header, vec![evaluate])],
    )
    .await;
    assert_eq!(
        rule_for(&ack, &suggestion),
        Some("authority.lead_delegate_home"),
        "{ack:?}"
    );
    assert!(
        audit_rules(&city)
            .await
            .iter()
            .any(|(peer, record, rule)| peer == XIUZHOU
                && *record == suggestion.to_string()
                && rule == "authority.lead_delegate_home")
    );

    // Honest nodes are unaffected: the real evaluation from the delegate's township goes
    // through, and every holder derives the same status with no forged step in it.
    township
        .write(move |tx| {
            office::suggestion_step(
                tx,
                "clerk",
                &suggestion,
                SuggestionAction::Evaluate {
                    result: Satisfaction::Satisfied,
                    comment: String::new(),
                },
                d("2026-04-28"),
            )
        })
        .await
        .unwrap();
    fed.settle().await;
    for store in [&township, &county, &city] {
        assert_eq!(
            suggestion_state(store, suggestion).await,
            Some((SuggestionState::Satisfied, 5)),
        );
    }
    assert!(fed.holders(other.id).await.is_empty());
    // The honest township itself was never refused anything.
    let peers = township.call(|s| s.peers()).await.unwrap();
    assert!(peers.iter().all(|p| p.refused_out == 0), "{peers:?}");
}

/// Every record id in a batch the parent sent, compressed or not.
fn batch_ids(batch: &ChangeBatch) -> Vec<String> {
    use std::io::Read;
    let mut records = batch.records.clone();
    if !batch.deflated_records.is_empty() {
        let mut plain = Vec::new();
        flate2::read::DeflateDecoder::new(batch.deflated_records.as_slice())
            .read_to_end(&mut plain)
            .expect("a batch the parent made inflates");
        let decoded: v1::BatchRecords = prost::Message::decode(plain.as_slice()).unwrap();
        records.extend(decoded.records);
    }
    records
        .into_iter()
        .map(|r| r.header.expect("a header").id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_asking_for_what_it_may_not_hold_gets_none_of_it() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
    ])
    .await;
    let county = fed.node(XIUZHOU).store.clone();
    let other = fed.node(XINCHENG).store.clone();

    // What 王店镇 may hold: the county's notice to its townships. What it may not: 新塍镇's
    // opinion and the constituent's contact kept with it, and a county delegate's phone.
    let notice = county
        .write(|tx| {
            office::add_notice(
                tx,
                "staff",
                renda_node::record::notice::Notice {
                    title: "关于开展代表活动月的通知".into(),
                    category: "工作通知".into(),
                    issued_on: d("2026-05-01"),
                    audience: code(XIUZHOU),
                    body: "各乡镇人大：请组织代表进站。".into(),
                },
            )
        })
        .await
        .unwrap()
        .id;
    let fields = OpinionFields {
        source: OpinionSource::Reception,
        content: "新塍镇的民情".into(),
        place: String::new(),
        region: code(XINCHENG),
        delegate: None,
        activity: None,
        category: None,
    };
    let contact = office::Contact {
        name: Some("王阿姨".into()),
        phone: Some("13900000001".into()),
        id_number: None,
    };
    let opinion = other
        .write(move |tx| office::add_opinion(tx, "clerk", fields, contact, d("2026-05-02")))
        .await
        .unwrap()
        .id;
    let county_delegate = {
        let delegate = Delegate {
            name: "陆秀英".into(),
            gender: Gender::Female,
            birth_year: None,
            ethnicity: None,
            party: None,
            occupation: "教师".into(),
            station: None,
            merged_into: None,
            merge_route: None,
            mandates: BTreeMap::new(),
        };
        let contact = office::Contact {
            phone: Some("13900000002".into()),
            ..office::Contact::default()
        };
        county
            .write(move |tx| {
                office::add_delegate(
                    tx,
                    "staff",
                    delegate,
                    contact,
                    Some(common::data::seat(9, &[])),
                )
            })
            .await
            .unwrap()
            .id
    };
    fed.sync_once(XINCHENG).await;
    let forbidden: Vec<String> = county
        .call(move |s| {
            let mut ids = vec![opinion.to_string()];
            for subject in [opinion, county_delegate] {
                let personal = s.personal_for(&subject)?.expect("contact kept");
                ids.push(personal.header.id.to_string());
            }
            Ok(ids)
        })
        .await
        .unwrap();

    // 王店镇 asks every way there is: from the start, as a restored node (Resync), by a digest
    // that differs in every bucket, and by naming the forbidden records as missing.
    let addr = fed.node(XIUZHOU).addr;
    let mut client = SyncClient::connect(format!("http://{addr}")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    for body in [
        Msg::Hello(Hello {
            region: WANGDIAN.into(),
            received_seq: 0,
            repair: true,
            received_hash: Vec::new(),
            ..Hello::default()
        }),
        Msg::Resync(v1::Resync { ack: false }),
        Msg::Digest(v1::Digest {
            buckets: vec![0; 256],
        }),
        Msg::DigestEntries(v1::DigestEntries { entries: vec![] }),
    ] {
        tx.send(msg(body)).await.unwrap();
    }
    let mut inbound = client
        .link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(2), inbound.message()).await;
        let Ok(Ok(Some(message))) = next else { break };
        if let Some(Msg::Batch(batch)) = message.body {
            received.extend(batch_ids(&batch));
            let ack = v1::BatchAck {
                batch_id: batch.batch_id,
                up_to_seq: batch.up_to_seq,
                missing: forbidden.clone(),
                rejected: vec![],
            };
            if tx.send(msg(Msg::Ack(ack))).await.is_err() {
                break;
            }
        }
    }
    assert!(
        received.contains(&notice.to_string()),
        "the child got what it may hold: {received:?}"
    );
    for id in &forbidden {
        assert!(!received.contains(id), "{id} was sent to 王店镇");
    }
}
