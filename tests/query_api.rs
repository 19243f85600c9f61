//! The `Query` gRPC service over a real socket: rollups, paged record lists, one record, a
//! delegate's duty record, and clear errors for bad questions.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Utc};
use common::data::add_delegate;
use common::fed::{Federation, WANGDIAN, XIUZHOU, code};
use renda_hub::auth::query_client;
use renda_node::access::Role;
use renda_node::office::{self, ActivityDraft, Contact};
use renda_node::record::RecordId;
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::opinion::{OpinionFields, OpinionSource};
use renda_node::record::rollup::RollupRules;
use renda_proto::v1::query_client::QueryClient;
use renda_proto::v1::{
    GetDutyRecordRequest, GetRecordRequest, GetRollupRequest, ListAuditRequest,
    ListQuotaStandingsRequest, ListRecordsRequest, QuotaStandingKind, QuotaSubject,
};
use serde_json::Value;
use tonic::Code;

fn this_year(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(Utc::now().year(), month, day).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_service_answers_from_what_the_node_holds() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let town = fed.node(WANGDIAN).store.clone();
    let region = code(WANGDIAN);
    let delegate = add_delegate(&town, region, "沈建华".into()).await;
    for month in [3, 5, 7] {
        let draft = ActivityDraft {
            activity: Activity {
                kind: ActivityKind::Reception,
                date: this_year(month, 10),
                topic: "进站接待选民".into(),
                organiser: "王店镇人大主席团".into(),
                group: None,
                venue: None,
                participants: BTreeMap::new(),
                constituents_received: 12,
                outcome: String::new(),
            },
            participants: vec![delegate],
        };
        town.write(move |tx| office::add_activity(tx, "clerk", draft))
            .await
            .unwrap();
    }
    let mut opinions = BTreeSet::new();
    for i in 0..5 {
        let fields = OpinionFields {
            source: OpinionSource::Visit,
            content: format!("第{i}条：河道需要清淤"),
            place: String::new(),
            region,
            delegate: Some(delegate),
            activity: None,
            category: None,
        };
        let contact = Contact {
            phone: Some("13900000000".into()),
            ..Contact::default()
        };
        let id = town
            .write(move |tx| office::add_opinion(tx, "clerk", fields, contact, this_year(3, 1)))
            .await
            .unwrap()
            .id;
        opinions.insert(id.to_string());
    }
    town.write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    fed.sync_once(WANGDIAN).await;
    fed.node(XIUZHOU)
        .store
        .write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();

    let token = fed
        .node(XIUZHOU)
        .store
        .write(|tx| tx.add_credential("代表工委", Role::Viewer))
        .await
        .unwrap();
    let mut county = query_client(format!("http://{}", fed.node(XIUZHOU).addr), &token)
        .await
        .unwrap();

    // Rollups: the county's own, and the township's as it arrived.
    let own = county
        .get_rollup(GetRollupRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.region, XIUZHOU);
    let own: Value = serde_json::from_str(&own.rollup_json).unwrap();
    assert_eq!(own["total"]["opinions"]["received"], 5);
    assert_eq!(own["total"]["constituents_received"], 36);
    let township = county
        .get_rollup(GetRollupRequest {
            region: WANGDIAN.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let township: Value = serde_json::from_str(&township.rollup_json).unwrap();
    assert_eq!(township["total"], own["total"]);
    let err = county
        .get_rollup(GetRollupRequest {
            region: "33041".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("region"), "{}", err.message());

    // A period cuts the monthly series; states stay whole.
    let may = format!("{}-05", Utc::now().year());
    let cut = county
        .get_rollup(GetRollupRequest {
            region: String::new(),
            period: may.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let cut: Value = serde_json::from_str(&cut.rollup_json).unwrap();
    let months: Vec<&String> = cut["total"]["activities"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(months, vec![&may]);
    assert_eq!(cut["total"]["activities"][&may]["reception"], 1);
    assert_eq!(cut["total"]["opinions"]["received"], 5);
    let err = county
        .get_rollup(GetRollupRequest {
            region: String::new(),
            period: "2026-5".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("period"), "{}", err.message());
    // The records behind a month's receptions.
    let behind = county
        .list_records(ListRecordsRequest {
            kind: "activity".into(),
            activity_kind: "reception".into(),
            period: may.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(behind.records.len(), 1);
    assert!(behind.records[0].occurred_on.starts_with(&may));

    // Paged lists: every opinion exactly once over pages of two.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = county
            .list_records(ListRecordsRequest {
                kind: "opinion".into(),
                within: WANGDIAN.into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.records.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), opinions);

    // Personal data is never answered, listed alone or among everything.
    let err = county
        .list_records(ListRecordsRequest {
            kind: "personal".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let everything = county
        .list_records(ListRecordsRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(everything.records.iter().all(|r| r.kind != "personal"));
    for (request, field) in [
        (
            ListRecordsRequest {
                kind: "bogus".into(),
                ..Default::default()
            },
            "kind",
        ),
        (
            ListRecordsRequest {
                page_size: 501,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListRecordsRequest {
                overdue_on: "2026-13-01".into(),
                ..Default::default()
            },
            "overdue_on",
        ),
        (
            ListRecordsRequest {
                period: "05".into(),
                ..Default::default()
            },
            "period",
        ),
        (
            ListRecordsRequest {
                activity_kind: "party".into(),
                ..Default::default()
            },
            "activity_kind",
        ),
        (
            ListRecordsRequest {
                answer_class: "E".into(),
                ..Default::default()
            },
            "answer_class",
        ),
        (
            ListRecordsRequest {
                page_token: "abc".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let err = county.list_records(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());
    }

    // A megabyte in a field comes back as a short quote: the status must fit the client's
    // metadata limit (it once came back whole and the client failed with RESOURCE_EXHAUSTED).
    let huge = "民".repeat(350_000);
    for (request, field) in [
        (
            ListRecordsRequest {
                kind: huge.clone(),
                ..Default::default()
            },
            "kind",
        ),
        (
            ListRecordsRequest {
                within: huge.clone(),
                ..Default::default()
            },
            "within",
        ),
        (
            ListRecordsRequest {
                delegate: huge.clone(),
                ..Default::default()
            },
            "delegate",
        ),
        (
            ListRecordsRequest {
                page_token: huge.clone(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let err = county.list_records(request).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{field}: {}",
            err.message()
        );
        assert!(err.message().starts_with(field), "{}", err.message());
        assert!(
            err.message().len() < 1_500,
            "{field}: a message of {} bytes",
            err.message().len()
        );
    }

    // One record with its history.
    let id = opinions.iter().next().unwrap().clone();
    let record = county
        .get_record(GetRecordRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let record: Value = serde_json::from_str(&record.record_json).unwrap();
    assert_eq!(record["header"]["id"], id.as_str());
    assert_eq!(record["status"]["state"], "received");
    assert_eq!(record["personal"], Value::Null);
    let err = county
        .get_record(GetRecordRequest {
            id: RecordId::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The delegate's duty record: three receptions this year, no suggestion yet.
    let duty = county
        .get_duty_record(GetDutyRecordRequest {
            delegate: delegate.to_string(),
            year: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(duty.activities.len(), 3);
    assert_eq!((duty.receptions, duty.suggestions_made), (3, 0));
    assert!(!duty.meets_quota, "a suggestion a year is still missing");

    // Where the township's delegates stand against its rules, asked of the township, which
    // judges them: the receptions' rule met, the suggestion still to come, judged pro rata
    // while the year runs.
    let town_token = town
        .write(|tx| tx.add_credential("人大办", Role::Viewer))
        .await
        .unwrap();
    let mut township = query_client(format!("http://{}", fed.node(WANGDIAN).addr), &town_token)
        .await
        .unwrap();
    let standings = township
        .list_quota_standings(ListQuotaStandingsRequest {
            subject: QuotaSubject::Delegate as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(standings.year, Utc::now().year());
    let rule_texts: Vec<&str> = standings.rules.iter().map(|r| r.text.as_str()).collect();
    assert!(
        rule_texts.contains(&"代表每年接待选民不少于 3 次"),
        "{rule_texts:?}"
    );
    let mine = standings
        .standings
        .iter()
        .find(|s| s.id == delegate.to_string())
        .expect("the delegate is judged");
    let counts: Vec<(String, u32, u32, i32)> = mine
        .judgements
        .iter()
        .map(|j| {
            (
                standings.rules[j.rule as usize].counts.clone(),
                j.have,
                j.need,
                j.standing,
            )
        })
        .collect();
    assert!(
        counts.contains(&("activities".into(), 3, 3, QuotaStandingKind::Met as i32)),
        "{counts:?}"
    );
    let (_, have, need, standing) = counts
        .iter()
        .find(|(what, ..)| what == "suggestions")
        .unwrap()
        .clone();
    assert_eq!((have, need), (0, 1));
    assert!(
        [
            QuotaStandingKind::OnTrack as i32,
            QuotaStandingKind::Behind as i32
        ]
        .contains(&standing)
    );
    assert_eq!(mine.standing, standing, "the worst of its rules");
    let err = township
        .list_quota_standings(ListQuotaStandingsRequest {
            subject: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("subject"), "{}", err.message());
    let last_year = county
        .get_duty_record(GetDutyRecordRequest {
            delegate: delegate.to_string(),
            year: Utc::now().year() - 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last_year.receptions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_service_needs_a_credential_whose_role_allows_the_call() {
    let fed = Federation::start(&[(XIUZHOU, "秀洲区人大常委会")]).await;
    let store = fed.node(XIUZHOU).store.clone();
    let endpoint = format!("http://{}", fed.node(XIUZHOU).addr);
    store
        .write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();

    // No credential at all.
    let mut anonymous = QueryClient::connect(endpoint.clone()).await.unwrap();
    let err = anonymous
        .get_rollup(GetRollupRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().starts_with("authorization"),
        "{}",
        err.message()
    );

    // A token this node never issued.
    let mut stranger = query_client(endpoint.clone(), "renda_0123").await.unwrap();
    let err = stranger
        .get_rollup(GetRollupRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A viewer reads, but not the audit log; an admin reads both.
    let viewer = store
        .write(|tx| tx.add_credential("领导", Role::Viewer))
        .await
        .unwrap();
    let admin = store
        .write(|tx| tx.add_credential("运维", Role::Admin))
        .await
        .unwrap();
    let mut as_viewer = query_client(endpoint.clone(), &viewer).await.unwrap();
    as_viewer
        .get_rollup(GetRollupRequest::default())
        .await
        .expect("a viewer reads rollups");
    let err = as_viewer
        .list_audit(ListAuditRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("admin"), "{}", err.message());
    let mut as_admin = query_client(endpoint.clone(), &admin).await.unwrap();
    let audit = as_admin
        .list_audit(ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.entries_json, "[]");

    // Revoked: the same token stops working at once.
    store
        .write(|tx| tx.revoke_credential("领导"))
        .await
        .unwrap();
    let err = as_viewer
        .get_rollup(GetRollupRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}
