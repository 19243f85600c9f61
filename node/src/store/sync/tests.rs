//! The store's side of sync, tested on real SQLite files: merges prepared off the store
//! thread, replays held to automerge's answer, compaction, and refused header rewrites.

use chrono::NaiveDate;

use super::*;
use crate::office;
use crate::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
use crate::record::replay::DecodedChange;
use crate::record::{Header, RawChange, RecordDoc, RecordKind};
use crate::store::MAX_DOC_TAIL;

fn code(s: &str) -> RegionCode {
    RegionCode::parse("region", s).unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
}

/// What the township sends the county after `after_seq`.
fn sent(town: &Store, county: RegionCode, after_seq: i64) -> (Vec<IncomingRecord>, i64) {
    let batch = town
        .outgoing(&county, after_seq, usize::MAX, &RoutePolicy::default())
        .unwrap();
    (batch.records, batch.up_to_seq)
}

/// A county (秀洲区) and one of its townships (王店镇), each a store of its own under `dir`.
fn county_and_town(dir: &std::path::Path) -> (RegionCode, RegionCode, Store, Store) {
    let (county_code, town_code) = (code("330411000000"), code("330411101000"));
    let county = Store::init(&dir.join("county"), county_code, "秀洲区人大常委会", None);
    let town = Store::init(&dir.join("town"), town_code, "王店镇人大主席团", None);
    (county_code, town_code, county.unwrap(), town.unwrap())
}

/// A street-lamp opinion received at the township `town`, with no delegate or activity.
fn lamp_opinion(town: RegionCode) -> OpinionFields {
    OpinionFields {
        source: OpinionSource::Reception,
        content: "村道路灯损坏，夜间出行不便".into(),
        place: "梅北村3组".into(),
        region: town,
        delegate: None,
        activity: None,
        category: None,
    }
}

/// Writes `lamp_opinion(town_code)` at the township and returns its id.
fn add_lamp_opinion(town: &mut Store, town_code: RegionCode) -> RecordId {
    town.write(|tx| {
        office::add_opinion(
            tx,
            "clerk",
            lamp_opinion(town_code),
            office::Contact::default(),
            day(),
        )
    })
    .unwrap()
    .id
}

/// A seat of term `term` granted by the writing township.
fn town_seat(term: u32) -> office::SeatDraft {
    office::SeatDraft {
        term,
        constituency: "第三选区".into(),
        stations: Vec::new(),
    }
}

/// A township person named `name`, registered with `town_seat(17)`.
fn town_delegate(name: &str) -> crate::record::delegate::Delegate {
    use crate::record::delegate::{Delegate, Gender};
    Delegate {
        name: name.into(),
        gender: Gender::Female,
        birth_year: Some(1971),
        ethnicity: Some("汉族".into()),
        party: None,
        occupation: "村党总支书记".into(),
        station: None,
        merged_into: None,
        merge_route: None,
        mandates: Default::default(),
    }
}

/// The county applies what the township sent, with the checkpoint up to `seq`.
fn receive(
    county: &mut Store,
    town: RegionCode,
    records: Vec<IncomingRecord>,
    seq: i64,
) -> ApplyOutcome {
    county
        .write(|tx| {
            tx.apply_incoming(
                &town,
                Some(Checkpoint {
                    seq,
                    hash: Vec::new(),
                }),
                records,
                &RoutePolicy::default(),
            )
        })
        .unwrap()
}

/// Registers `town_delegate(name)` at the township with its seat, and returns the person's id.
fn register_town_delegate(town: &mut Store, name: &str) -> RecordId {
    let delegate = town_delegate(name);
    town.write(|tx| {
        office::add_delegate(
            tx,
            "clerk",
            delegate,
            office::Contact::default(),
            Some(town_seat(17)),
        )
    })
    .unwrap()
    .id
}

/// Two batches merged off the store thread onto the same stored state, the second building
/// on the first: once the first is stored, the second's merge is out of date, and storing it
/// as prepared would leave the second change waiting for the first forever. The store sees
/// the record's `last_seq` moved and merges the second batch again.
#[test]
fn a_merge_prepared_onto_an_older_state_is_merged_again() {
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let fields = lamp_opinion(town_code);
    let id = town
        .write(|tx| office::add_opinion(tx, "clerk", fields, office::Contact::default(), day()))
        .unwrap()
        .id;
    let (first, seq) = sent(&town, county_code, 0);
    county
        .write(|tx| {
            tx.apply_incoming(
                &town_code,
                Some(Checkpoint {
                    seq,
                    hash: Vec::new(),
                }),
                first,
                &RoutePolicy::default(),
            )
        })
        .unwrap();

    let step = |town: &mut Store, action: OpinionAction| {
        town.write(|tx| office::opinion_step(tx, "clerk", &id, action, day()))
            .unwrap();
    };
    step(
        &mut town,
        OpinionAction::PassOn {
            to: "镇建设办".into(),
            congress: None,
        },
    );
    let (second, seq2) = sent(&town, county_code, seq);
    step(
        &mut town,
        OpinionAction::Start {
            note: "已派人查看".into(),
        },
    );
    let (third, seq3) = sent(&town, county_code, seq2);

    let ctx = MergeContext {
        me: county_code,
        peer: town_code,
        policy: RoutePolicy::default(),
    };
    let state = county
        .stored_states(&[id])
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    let prepare = |records: Vec<IncomingRecord>| -> Vec<PreparedRecord> {
        records
            .into_iter()
            .map(|r| PreparedRecord::new(r, Some(&state), &ctx))
            .collect()
    };
    let (second, third) = (prepare(second), prepare(third));
    let policy = RoutePolicy::default();
    let applied = county
        .write(|tx| {
            tx.apply_prepared(
                &town_code,
                Some(Checkpoint {
                    seq: seq2,
                    hash: Vec::new(),
                }),
                second,
                &policy,
            )
        })
        .unwrap();
    assert_eq!((applied.changes_applied, applied.missing.len()), (1, 0));
    let applied = county
        .write(|tx| {
            tx.apply_prepared(
                &town_code,
                Some(Checkpoint {
                    seq: seq3,
                    hash: Vec::new(),
                }),
                third,
                &policy,
            )
        })
        .unwrap();
    assert_eq!(
        (applied.changes_applied, applied.missing.clone()),
        (1, Vec::new()),
        "the third change is merged onto the second, not left waiting for it"
    );
    let town_record = town.get(&id).unwrap();
    assert_eq!(county.get(&id).unwrap(), town_record);
}

/// Merges `records` both ways, by replay and by automerge, onto what `county` holds, and
/// checks they agree and that the replay did not decline.
fn both_merges_agree(county: &Store, records: &[IncomingRecord]) {
    for incoming in records {
        let decoded: Vec<DecodedChange> = incoming
            .changes
            .iter()
            .map(|b| RecordDoc::decode_change_ops(b).unwrap())
            .collect();
        let stored = county
            .stored_states(&[incoming.header.id])
            .unwrap()
            .pop()
            .flatten();
        let header = &incoming.header.known().unwrap();
        let replayed = crate::record::merge::compare_merges(
            header,
            &decoded,
            stored.as_ref().map(|s| &s.held),
        )
        .unwrap();
        assert!(
            replayed,
            "the replay of {} {} declined",
            header.kind.as_str(),
            header.id
        );
    }
}

/// A county's two ways of merging a township's records agree, for new records and for
/// changes to held ones, and the replay takes every one of an honest township's: a
/// delegate, an opinion with its constituent's contact, and later steps and edits.
#[test]
fn a_replayed_merge_is_what_automerge_merges() {
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let delegate = register_town_delegate(&mut town, "沈月娥");
    let opinion = town
        .write(|tx| {
            office::add_opinion(
                tx,
                "clerk",
                OpinionFields {
                    delegate: Some(delegate),
                    ..lamp_opinion(town_code)
                },
                office::Contact {
                    name: Some("王阿姨".into()),
                    phone: Some("13800000000".into()),
                    id_number: None,
                },
                day(),
            )
        })
        .unwrap()
        .id;
    let policy = RoutePolicy::default();
    let (first, seq) = sent(&town, county_code, 0);
    assert_eq!(
        first.len(),
        8,
        "the delegate, their seat, the opinion and its personal data, and the township's four \
         seeded duty rules"
    );
    both_merges_agree(&county, &first);
    county
        .write(|tx| {
            tx.apply_incoming(
                &town_code,
                Some(Checkpoint {
                    seq,
                    hash: Vec::new(),
                }),
                first,
                &policy,
            )
        })
        .unwrap();

    town.write(|tx| {
        office::opinion_step(
            tx,
            "clerk",
            &opinion,
            OpinionAction::PassOn {
                to: "镇建设办".into(),
                congress: None,
            },
            day(),
        )?;
        office::grant_mandate(tx, "clerk", &delegate, town_seat(18))
    })
    .unwrap();
    let (second, seq2) = sent(&town, county_code, seq);
    assert_eq!(second.len(), 2);
    both_merges_agree(&county, &second);
    county
        .write(|tx| {
            tx.apply_incoming(
                &town_code,
                Some(Checkpoint {
                    seq: seq2,
                    hash: Vec::new(),
                }),
                second,
                &policy,
            )
        })
        .unwrap();
    assert_eq!(county.get(&opinion).unwrap(), town.get(&opinion).unwrap());
    assert!(county.derived_mismatches().unwrap().is_empty());
}

/// A record that takes more changes by sync than a stored tail holds is compacted on the
/// way (the replay has no document to save, so the store loads one), and later rounds
/// replay it from its change rows beside the saved document: the county ends with the
/// township's record and columns that match its document.
#[test]
fn a_record_synced_past_its_tail_is_compacted_and_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let person = register_town_delegate(&mut town, "周建国");
    // The seat is the record edited: suspended and restored, 48 times.
    let id = town.mandates_of(&person).unwrap()[0].0.id;
    let policy = RoutePolicy::default();
    let mut seq = 0;
    for _ in 0..6 {
        town.write(|tx| {
            for step in 0..8 {
                let status = if step % 2 == 0 {
                    crate::record::delegate::MandateStatus::Suspended
                } else {
                    crate::record::delegate::MandateStatus::Serving
                };
                office::set_mandate_status(tx, &person, town_code, 17, status, day())?;
            }
            Ok(())
        })
        .unwrap();
        let (records, up_to) = sent(&town, county_code, seq);
        seq = up_to;
        county
            .write(|tx| {
                tx.apply_incoming(
                    &town_code,
                    Some(Checkpoint {
                        seq,
                        hash: Vec::new(),
                    }),
                    records,
                    &policy,
                )
            })
            .unwrap();
    }
    let doc_seq: i64 = county
        .conn
        .query_row(
            "SELECT doc_seq FROM records WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(doc_seq > 0, "49 changes were never compacted");
    assert_eq!(county.get(&id).unwrap(), town.get(&id).unwrap());
    assert!(county.derived_mismatches().unwrap().is_empty());
}

/// A township's change that rewrites the header of a record the county holds (here who
/// created it, declared so in the batch, so that the record still reads) is refused
/// whichever way the county merges, and the county keeps the record as it was.
#[test]
fn a_change_rewriting_a_held_header_is_refused() {
    use automerge::transaction::Transactable;
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let id = town
        .write(|tx| {
            let fields = lamp_opinion(town_code);
            office::add_opinion(tx, "clerk", fields, office::Contact::default(), day())
        })
        .unwrap()
        .id;
    let policy = RoutePolicy::default();
    let (first, seq) = sent(&town, county_code, 0);
    county
        .write(|tx| {
            tx.apply_incoming(
                &town_code,
                Some(Checkpoint {
                    seq,
                    hash: Vec::new(),
                }),
                first,
                &policy,
            )
        })
        .unwrap();
    let held = county.get(&id).unwrap();

    let mut forged = automerge::Automerge::load(&town.load_doc(&id).unwrap().save())
        .unwrap()
        .with_actor(crate::record::authority::node_actor(&town_code));
    let mut header = held.header.clone();
    header.created_by.user = "另一位文书".into();
    let mut tx = forged.transaction();
    tx.put(
        automerge::ROOT,
        "header",
        serde_json::to_string(&header).unwrap(),
    )
    .unwrap();
    tx.commit();
    let change = forged.get_last_local_change().unwrap().raw_bytes().to_vec();
    let incoming = vec![IncomingRecord {
        header: header.into(),
        hints: None,
        changes: vec![change],
    }];
    let outcome = county
        .write(|tx| tx.apply_incoming(&town_code, None, incoming, &policy))
        .unwrap();
    assert_eq!(outcome.changes_applied, 0);
    assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
    assert_eq!(outcome.rejected[0].rule, "decode.apply", "{outcome:?}");
    assert_eq!(county.get(&id).unwrap(), held);
    assert!(county.derived_mismatches().unwrap().is_empty());
}

/// A township's rollup, refreshed after each of several writes, is published whole every
/// time: the township holds it as one change, and so does the county, which keeps the newest
/// publication whatever order they arrive in. An older publication after a newer one, or one
/// applied twice, changes nothing; in order, each replaces the last. A peer's checkpoint that
/// names the position of a replaced publication still checks out against its hash.
#[test]
fn rollups_are_published_whole_and_the_newest_is_kept() {
    use crate::record::rollup::{Rollup, RollupRules};
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let mut in_order = Store::init(
        &dir.path().join("county2"),
        county_code,
        "秀洲区人大常委会",
        None,
    )
    .unwrap();
    let rules = RollupRules::default();
    let policy = RoutePolicy::default();
    let rollup_rows = |store: &Store| -> i64 {
        store
            .conn
            .query_row(
                "SELECT count(*) FROM changes c JOIN records r ON r.id = c.record_id
                 WHERE r.kind = 'rollup' AND r.home = ?1",
                [town_code.as_str()],
                |r| r.get(0),
            )
            .unwrap()
    };
    let apply = |county: &mut Store, records: Vec<IncomingRecord>| {
        county
            .write(|tx| tx.apply_incoming(&town_code, None, records, &policy))
            .unwrap()
    };
    let mut publications: Vec<(Vec<IncomingRecord>, Rollup)> = Vec::new();
    let mut first: Option<(i64, Vec<u8>)> = None;
    let mut seq = 0;
    for _ in 0..6 {
        add_lamp_opinion(&mut town, town_code);
        let rollup = town
            .write(|tx| tx.refresh_rollup(Utc::now(), &rules))
            .unwrap();
        let last = town.last_seq().unwrap();
        first.get_or_insert_with(|| (last, town.change_hash_at(last).unwrap().unwrap()));
        let (records, up_to) = sent(&town, county_code, seq);
        seq = up_to;
        let rollups: Vec<IncomingRecord> = records
            .into_iter()
            .filter(|r| r.header.kind == "rollup")
            .collect();
        assert_eq!(rollups.len(), 1);
        assert_eq!(rollups[0].changes.len(), 1, "a publication is one change");
        let out = apply(&mut in_order, rollups.clone());
        assert_eq!(
            out.changes_applied, 1,
            "in order, each publication replaces the last"
        );
        assert_eq!(in_order.rollup(&town_code).unwrap().as_ref(), Some(&rollup));
        publications.push((rollups, rollup));
    }
    assert_eq!(rollup_rows(&town), 1);
    assert_eq!(rollup_rows(&in_order), 1);
    assert_eq!(publications.last().unwrap().1.generation, 6);

    // Newest first, then every older one, then the newest again.
    let (newest, newest_rollup) = publications.last().unwrap().clone();
    assert_eq!(apply(&mut county, newest.clone()).changes_applied, 1);
    for (older, _) in publications.iter().rev().skip(1) {
        let out = apply(&mut county, older.clone());
        assert_eq!(out.changes_applied, 0, "an older publication is dropped");
        assert!(out.rejected.is_empty() && out.missing.is_empty());
    }
    assert_eq!(apply(&mut county, newest).changes_applied, 0);
    assert_eq!(county.rollup(&town_code).unwrap(), Some(newest_rollup));
    assert_eq!(rollup_rows(&county), 1);
    for store in [&town, &county, &in_order] {
        assert!(store.unpublished_rollups().unwrap().is_empty());
        assert!(store.derived_mismatches().unwrap().is_empty());
    }

    // The first publication's row was replaced; its position still names its change.
    let (position, hash) = first.unwrap();
    assert_eq!(town.change_hash_at(position).unwrap(), Some(hash));

    // A publication replaces only a rollup held under the same header: one that claims another
    // creation time, or a record of another kind, is refused and nothing changes.
    let (everything, _) = sent(&town, county_code, 0);
    let others: Vec<IncomingRecord> = everything
        .into_iter()
        .filter(|r| r.header.kind != "rollup")
        .collect();
    let opinion = others[0].header.clone();
    apply(&mut county, others);
    let held = county
        .list(&crate::store::ListQuery {
            kind: Some(RecordKind::Rollup),
            ..Default::default()
        })
        .unwrap()[0]
        .id;
    let rollup_header = county.get(&held).unwrap().header;
    let mut bigger = county.rollup(&town_code).unwrap().unwrap();
    bigger.generation += 10;
    let forge = |header: &AnyHeader| {
        let doc = RecordDoc::create(&header.known().unwrap(), &bigger, &town.actor).unwrap();
        vec![IncomingRecord {
            header: header.clone(),
            hints: None,
            changes: doc
                .changes_since(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
        }]
    };
    let mut later = AnyHeader::from(rollup_header.clone());
    later.created_at += chrono::Duration::milliseconds(1);
    let mut over_opinion = opinion.clone();
    over_opinion.kind = "rollup".into();
    for forged in [later, over_opinion] {
        let out = apply(&mut county, forge(&forged));
        assert_eq!(out.changes_applied, 0);
        assert_eq!(out.rejected.len(), 1, "{forged:?}");
        assert_eq!(out.rejected[0].rule, "header.mismatch");
    }
    assert_eq!(
        AnyHeader::from(county.get(&opinion.id).unwrap().header),
        opinion
    );
    assert_eq!(county.get(&held).unwrap().header, rollup_header);
    assert!(county.derived_mismatches().unwrap().is_empty());
}

/// A rollup written before publications (generation 0, edited in place) is not mistaken for
/// one: its first change stands alone, yet its later edits merge as they always did instead of
/// being dropped as older than a publication.
#[test]
fn a_rollup_from_before_publications_still_merges_its_edits() {
    use crate::record::rollup::Rollup;
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let author = town.write(|tx| Ok(tx.author("renda"))).unwrap();
    let header = Header {
        id: RecordId::new(),
        kind: RecordKind::Rollup,
        home: town_code,
        created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap(),
        created_by: author,
    };
    let mut rollup = Rollup::compose(
        Utc::now(),
        Default::default(),
        Default::default(),
        &Default::default(),
        &Default::default(),
    );
    let mut doc = RecordDoc::create(&header, &rollup, &town.actor).unwrap();
    let created: Vec<Vec<u8>> = doc
        .changes_since(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let heads = doc.heads();
    rollup.own.sign_ins = 7;
    doc.set_fields(&rollup, Utc::now().timestamp_millis(), "refresh rollup")
        .unwrap();
    let edited: Vec<Vec<u8>> = doc
        .changes_since(&heads)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let policy = RoutePolicy::default();
    for changes in [created, edited] {
        let out = county
            .write(|tx| {
                tx.apply_incoming(
                    &town_code,
                    None,
                    vec![IncomingRecord {
                        header: header.clone().into(),
                        hints: None,
                        changes,
                    }],
                    &policy,
                )
            })
            .unwrap();
        assert_eq!(out.changes_applied, 1, "{out:?}");
    }
    assert_eq!(county.rollup(&town_code).unwrap().unwrap().own.sign_ins, 7);
    let _ = county_code;
}

/// Stands in for a newer release of the township's node: writes into `id`'s document what this
/// version does not know, a field and (for a workflow record) a step, under the township's
/// own author, as a local write.
fn newer_release_writes(town: &mut Store, id: RecordId, step: bool) {
    let town_code = town.node.region;
    town.write(|tx| {
        tx.modify(&id, |doc, _| {
            let corrupt = |source| StoreError::Corrupt {
                id: id.to_string(),
                source,
            };
            let mut fields: serde_json::Value = doc.fields().map_err(corrupt)?;
            fields["newer_field"] = serde_json::json!({ "note": "新版本写入的字段" });
            let mut changes: Vec<automerge::Change> = doc
                .set_fields(&fields, Utc::now().timestamp_millis(), "newer")
                .map_err(corrupt)?
                .into_iter()
                .collect();
            if step {
                let event = crate::record::event::Event {
                    id: RecordId::new(),
                    lamport: 100,
                    recorded_at: Utc::now(),
                    date: day(),
                    author: Author {
                        node: town_code,
                        user: "clerk".into(),
                    },
                    action: serde_json::json!({ "action": "future_step", "note": "新版本的办理步骤" }),
                };
                changes.push(doc.append_event(&event).map_err(corrupt)?);
            }
            Ok(changes)
        })
    })
    .unwrap();
}

/// What a newer release writes into a township's records (a field, and a step of a kind this
/// version does not know) is stored by this version's county as it came, shows as an unknown
/// state at both, stops this version's steps with a request to upgrade, and survives this
/// version's edits of the record and the sync after them.
#[test]
fn what_a_newer_release_writes_survives_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let opinion = add_lamp_opinion(&mut town, town_code);
    let delegate = register_town_delegate(&mut town, "沈秀英");
    let activity = town
        .write(|tx| {
            office::add_activity(
                tx,
                "clerk",
                office::ActivityDraft {
                    activity: crate::record::activity::Activity {
                        kind: crate::record::activity::ActivityKind::ActivityDay,
                        date: day(),
                        topic: "代表活动日".into(),
                        organiser: "王店镇人大主席团".into(),
                        group: None,
                        venue: None,
                        participants: Default::default(),
                        constituents_received: 0,
                        outcome: String::new(),
                    },
                    participants: vec![],
                },
            )
        })
        .unwrap()
        .id;
    newer_release_writes(&mut town, opinion, true);
    newer_release_writes(&mut town, activity, false);

    // The county, on this version, stores both as they came.
    let (records, seq) = sent(&town, county_code, 0);
    let outcome = receive(&mut county, town_code, records, seq);
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert!(outcome.missing.is_empty(), "{outcome:?}");

    let holds_the_newer_writes = |store: &Store, with_step: bool| {
        let doc = store.load_doc(&opinion).unwrap();
        let fields: serde_json::Value = doc.fields().unwrap();
        assert_eq!(fields["newer_field"]["note"], "新版本写入的字段");
        let steps = doc.event_texts().unwrap();
        assert_eq!(
            steps.iter().any(|t| t.contains("future_step")),
            with_step,
            "{steps:?}"
        );
        let doc = store.load_doc(&activity).unwrap();
        let fields: serde_json::Value = doc.fields().unwrap();
        assert_eq!(fields["newer_field"]["note"], "新版本写入的字段");
        fields
    };
    holds_the_newer_writes(&county, true);

    // Both show the opinion's state as unknown, and refuse to take a step on it.
    for store in [&mut town, &mut county] {
        let rows = store
            .list(&crate::store::ListQuery {
                kind: Some(RecordKind::Opinion),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].status.as_deref(),
            Some(crate::record::event::UNKNOWN_STATE)
        );
        // Counted as such, for `renda status` and the metrics.
        assert_eq!(store.stats().unwrap().unknown_state, 1);
        let refused = store
            .write(|tx| {
                office::opinion_step(
                    tx,
                    "clerk",
                    &opinion,
                    OpinionAction::Start {
                        note: "已派人查看".into(),
                    },
                    day(),
                )
            })
            .unwrap_err();
        match refused {
            StoreError::Rejected { rejection, .. } => {
                assert_eq!(rejection.rule, "record.newer_version");
                assert!(rejection.reason.contains("升级"), "{}", rejection.reason);
            }
            other => panic!("expected a refusal, got {other}"),
        }
    }

    // This version's office edits the activity (a sign-in) and the county stores the edit:
    // the newer field is still there, at both.
    town.write(|tx| office::sign_in(tx, &activity, &[delegate]))
        .unwrap();
    let (records, seq2) = sent(&town, county_code, seq);
    let outcome = receive(&mut county, town_code, records, seq2);
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    for store in [&town, &county] {
        let fields = holds_the_newer_writes(store, true);
        assert!(
            fields["participants"]
                .as_object()
                .is_some_and(|p| p.contains_key(&delegate.to_string())),
            "{fields}"
        );
    }
}

/// A record an older release kept as it came, because it did not know the kind, is read, listed
/// and counted like any other once the node runs a release that knows the kind: the next open
/// derives its row. The older release's row is made here from a row this release derived, by
/// undoing every derived column as `WriteTx::persist_newer_kind` leaves them.
#[test]
fn an_upgraded_node_reads_the_records_it_kept_as_they_came() {
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let id = add_lamp_opinion(&mut town, town_code);
    let (records, seq) = sent(&town, county_code, 0);
    receive(&mut county, town_code, records, seq);
    let status = |county: &Store| {
        county
            .list(&crate::store::ListQuery {
                kind: Some(RecordKind::Opinion),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .find(|row| row.id == id)
            .and_then(|row| row.status)
    };
    let derived = status(&county);
    assert!(derived.is_some());
    county
        .conn
        .execute_batch(&format!(
            "UPDATE records SET newer_kind = 1, label = kind, status = NULL, occurred_on = NULL,
                    due_on = NULL, subject = NULL, summary = '{{}}', tag = NULL,
                    addressed_to = NULL, number = NULL, group_id = NULL, counted = NULL,
                    merged_into = NULL
             WHERE id = '{id}';
             DELETE FROM record_people WHERE record_id = '{id}';"
        ))
        .unwrap();
    assert_eq!(status(&county), None);
    assert_eq!(
        county.newer_kinds().unwrap(),
        vec![("opinion".to_string(), 1)]
    );
    drop(county);

    let county = Store::open(&dir.path().join("county")).unwrap();
    assert!(county.newer_kinds().unwrap().is_empty());
    assert_eq!(status(&county), derived);
    assert_eq!(county.derived_mismatches().unwrap(), Vec::<String>::new());
    assert_eq!(county.get(&id).unwrap().header.home, town_code);
}

/// A sender may mark personal a record of a kind this release does not read as personal (a
/// newer release's rule): the receiver obeys, keeps the flag through later changes that do not
/// repeat it, and never passes the record above itself.
#[test]
fn a_personal_flag_the_sender_sets_is_obeyed_for_a_known_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let city = code("330400000000");
    let id = add_lamp_opinion(&mut town, town_code);
    let personal = |records: Vec<IncomingRecord>| -> Vec<IncomingRecord> {
        records
            .into_iter()
            .map(|mut r| {
                if r.header.id == id {
                    r.hints.get_or_insert_with(RouteHints::default).personal = true;
                }
                r
            })
            .collect()
    };
    let (records, seq) = sent(&town, county_code, 0);
    receive(&mut county, town_code, personal(records), seq);
    let up = |county: &Store| {
        county
            .outgoing(&city, 0, usize::MAX, &RoutePolicy::default())
            .unwrap()
            .records
            .iter()
            .any(|r| r.header.id == id)
    };
    assert!(
        !up(&county),
        "a record marked personal went above the parent"
    );

    // A later change that does not repeat the flag leaves it set.
    town.write(|tx| {
        office::opinion_step(
            tx,
            "clerk",
            &id,
            crate::record::opinion::OpinionAction::AnswerOnSpot {
                reply: "已修复".into(),
            },
            day(),
        )
    })
    .unwrap();
    let (records, seq2) = sent(&town, county_code, seq);
    assert!(records.iter().all(|r| !r.hints.as_ref().unwrap().personal));
    receive(&mut county, town_code, records, seq2);
    assert!(!up(&county));
    assert_eq!(county.derived_mismatches().unwrap(), Vec::<String>::new());

    // The same record unmarked would have gone up: the flag is what held it.
    let dir = tempfile::tempdir().unwrap();
    let (_, _, mut plain, _) = county_and_town(dir.path());
    let (records, seq) = sent(&town, county_code, 0);
    receive(&mut plain, town_code, records, seq);
    assert!(up(&plain));
}

/// A peer's own changes are not sent back to it, wherever they fall in the sequence and
/// however the scan is cut into statements, and the batch's position passes them all, the
/// last one read included, so the link does not scan them again. Sent back on request (a
/// restored peer), they are all there.
#[test]
fn a_peers_own_changes_are_passed_over_and_the_position_passes_them() {
    use crate::record::notice::Notice;
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let notice = |title: &str| Notice {
        title: title.into(),
        body: "请各代表联络站做好接待安排".into(),
        category: "通知".into(),
        issued_on: day(),
        audience: county_code,
    };
    let mut opinions = Vec::new();
    let mut town_sent = 0;
    let mut from_town = |county: &mut Store, town: &mut Store, opinions: &mut Vec<RecordId>| {
        let id = add_lamp_opinion(town, town_code);
        let (records, seq) = sent(town, county_code, town_sent);
        town_sent = seq;
        receive(county, town_code, records, seq);
        opinions.push(id);
    };
    let first = county
        .write(|tx| office::add_notice(tx, "clerk", notice("接待日安排")))
        .unwrap()
        .id;
    from_town(&mut county, &mut town, &mut opinions);
    from_town(&mut county, &mut town, &mut opinions);
    let second = county
        .write(|tx| office::add_notice(tx, "clerk", notice("主题活动月")))
        .unwrap()
        .id;
    let second_at = county.last_seq().unwrap();
    from_town(&mut county, &mut town, &mut opinions);
    let last = county.last_seq().unwrap();
    let last_hash = county.change_hash_at(last).unwrap().unwrap();

    let policy = RoutePolicy::default();
    let ids = |batch: &OutgoingBatch| {
        batch
            .records
            .iter()
            .map(|r| r.header.id)
            .collect::<Vec<_>>()
    };
    // Every record the county wrote itself, in the order it wrote them: the duty rules it
    // seeds when it is made, which reach its townships, then the two notices.
    let written = |sql: &str| -> Vec<RecordId> {
        let mut ids = Vec::new();
        let mut stmt = county.conn.prepare(sql).unwrap();
        for id in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            let id = RecordId::parse("id", &id.unwrap()).unwrap();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    };
    let own = written("SELECT record_id FROM changes WHERE origin IS NULL ORDER BY seq");
    assert_eq!(own[own.len() - 2..], [first, second]);
    // And everything, the township's records among it.
    let every = written("SELECT record_id FROM changes ORDER BY seq");
    assert!(
        opinions
            .iter()
            .all(|o| every.contains(o) && !own.contains(o))
    );
    for chunk in [1, 2, 3, 2_000] {
        let batch = county
            .outgoing_in_chunks(&town_code, 0, usize::MAX, &policy, true, chunk)
            .unwrap();
        assert_eq!(ids(&batch), own, "chunks of {chunk}");
        assert_eq!(
            (batch.up_to_seq, &batch.up_to_hash),
            (last, &last_hash),
            "chunks of {chunk}"
        );

        let back = county
            .outgoing_in_chunks(&town_code, 0, usize::MAX, &policy, false, chunk)
            .unwrap();
        assert_eq!(ids(&back), every, "chunks of {chunk}");
        assert_eq!(back.up_to_seq, last, "chunks of {chunk}");

        // Read from the second notice on, only the township's last opinion is left: nothing
        // to send, and the position passes it.
        let rest = county
            .outgoing_in_chunks(&town_code, second_at, usize::MAX, &policy, true, chunk)
            .unwrap();
        assert!(rest.records.is_empty(), "chunks of {chunk}");
        assert_eq!(
            (rest.up_to_seq, &rest.up_to_hash),
            (last, &last_hash),
            "chunks of {chunk}"
        );
    }
}

/// A replay's merge that automerge does not load, as a broken invariant of the change reader
/// or the replay would leave (here the peer's change with its checksum broken after the merge
/// accepted it), is refused when storing it would save the record, before anything of it is
/// written; the rest of the batch is stored. Found only at the save, automerge's load failed
/// the whole batch, and every resend of it failed again.
#[test]
fn a_merge_automerge_does_not_load_is_refused_before_the_record_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
    let person = register_town_delegate(&mut town, "周建国");
    let id = town.mandates_of(&person).unwrap()[0].0.id;
    let policy = RoutePolicy::default();
    let tail = |county: &Store| -> i64 {
        county
            .conn
            .query_row(
                "SELECT doc_tail FROM records WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    let mut edits = 0;
    let mut edit = |town: &mut Store| {
        edits += 1;
        let status = if edits % 2 == 1 {
            crate::record::delegate::MandateStatus::Suspended
        } else {
            crate::record::delegate::MandateStatus::Serving
        };
        town.write(|tx| office::set_mandate_status(tx, &person, town_code, 17, status, day()))
            .unwrap();
    };
    // Edits synced one at a time until the county's copy is one change short of a save.
    let mut seq = 0;
    for _ in 0..=MAX_DOC_TAIL {
        let (records, up_to) = sent(&town, county_code, seq);
        seq = up_to;
        receive(&mut county, town_code, records, seq);
        if tail(&county) == MAX_DOC_TAIL {
            break;
        }
        edit(&mut town);
    }
    assert_eq!(tail(&county), MAX_DOC_TAIL);
    edit(&mut town);
    let opinion = add_lamp_opinion(&mut town, town_code);
    let (records, up_to) = sent(&town, county_code, seq);
    let before = county.get(&id).unwrap();
    let ctx = MergeContext {
        me: county_code,
        peer: town_code,
        policy,
    };
    let ids: Vec<RecordId> = records.iter().map(|r| r.header.id).collect();
    let stored = county.stored_states(&ids).unwrap();
    let mut prepared: Vec<PreparedRecord> = records
        .into_iter()
        .zip(stored)
        .map(|(record, stored)| PreparedRecord::new(record, stored.as_ref(), &ctx))
        .collect();
    let mandate = prepared.iter_mut().find(|p| p.id() == id).unwrap();
    let Merge::Changed(merged) = &mut mandate.merged.1 else {
        panic!("the edit merged");
    };
    assert!(merged.doc.is_none(), "the replay merged it");
    let mut bytes = merged.applied[0].raw_bytes().to_vec();
    bytes[4] ^= 0xff;
    merged.applied[0] = RawChange::from(automerge::Change::try_from(&bytes[..]).unwrap());

    let outcome = county
        .write(|tx| {
            tx.apply_prepared(
                &town_code,
                Some(Checkpoint {
                    seq: up_to,
                    hash: Vec::new(),
                }),
                prepared,
                &policy,
            )
        })
        .unwrap();
    assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
    assert_eq!(outcome.rejected[0].rule, "merge.unloadable");
    assert!(outcome.rejected[0].record.contains(&id.to_string()));
    // Nothing of the refused record was written; the opinion beside it was stored.
    assert_eq!(county.get(&id).unwrap(), before);
    assert_eq!(tail(&county), MAX_DOC_TAIL);
    assert_eq!(county.get(&opinion).unwrap(), town.get(&opinion).unwrap());
}
