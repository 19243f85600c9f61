//! The store filters on columns the record model derives, never inside a summary: the filter
//! columns added in schema version 12 are filled for a database written before them with the
//! values the model derives, and the store's code reads no JSON field to find a record.

mod common;

use common::data::populate;
use common::fed::{WANGDIAN, code};
use rand::SeedableRng;
use rand::rngs::StdRng;
use renda_node::store::{Store, StoreHandle};
use rusqlite::OptionalExtension;

type Keys = Vec<(
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
)>;

fn keys(conn: &rusqlite::Connection) -> Keys {
    conn.prepare("SELECT id, tag, addressed_to, number, group_id FROM records ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A township's store in `dir` with a year of random records (the seed is printed, and
/// `RENDA_SEED` replays it), and one of its delegates.
async fn populated(
    dir: &std::path::Path,
) -> (
    StoreHandle,
    renda_node::region::RegionCode,
    renda_node::record::RecordId,
) {
    let seed: u64 = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("store columns seed: {seed} (replay with RENDA_SEED={seed})");
    let region = code(WANGDIAN);
    let store =
        StoreHandle::spawn(Store::init(dir, region, "王店镇人大主席团", None).unwrap()).unwrap();
    populate(&store, region, &mut StdRng::seed_from_u64(seed)).await;
    let delegate = store
        .call(|s| {
            s.list(&renda_node::store::ListQuery {
                kind: Some(renda_node::record::RecordKind::Delegate),
                limit: Some(1),
                ..Default::default()
            })
        })
        .await
        .unwrap()
        .first()
        .map(|row| row.id)
        .expect("populate registers delegates");
    (store, region, delegate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_columns_are_filled_for_a_database_written_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, region, lead) = populated(dir.path()).await;
    // A numbered suggestion whatever the seed: the random ones may all be unscreened.
    store
        .write(move |tx| {
            use renda_node::record::suggestion::SuggestionAction;
            let draft = renda_node::office::SuggestionDraft {
                title: "关于增设公交站点的建议".into(),
                body: "村民出行不便。".into(),
                category: "交通".into(),
                lead,
                cosigners: Vec::new(),
                addressed_to: region,
                session: None,
                group: None,
            };
            let on = common::data::d("2026-03-01");
            let id = renda_node::office::submit_suggestion(tx, "clerk", draft, on)?.id;
            let screen = SuggestionAction::Screen {
                accepted: true,
                number: None,
                reason: None,
            };
            renda_node::office::suggestion_step(tx, "clerk", &id, screen, on)
        })
        .await
        .unwrap();
    store.close().await;

    let path = dir.path().join(renda_node::store::DB_FILE);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let written = keys(&conn);
    assert!(
        written.iter().any(|k| k.1.is_some()),
        "activities carry their type"
    );
    assert!(
        written.iter().any(|k| k.2.is_some() && k.3.is_some()),
        "suggestions their number"
    );
    common::downgrade_to_schema_11(&conn);
    drop(conn);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.derived_mismatches().unwrap(), Vec::<String>::new());
    // The own counters are built from the rows on this first open after them.
    assert_eq!(
        store
            .verify_own_counters(renda_node::calendar::today())
            .unwrap(),
        Vec::<String>::new()
    );
    let counters: i64 = rusqlite::Connection::open(dir.path().join(renda_node::store::DB_FILE))
        .unwrap()
        .query_row("SELECT count(*) FROM own_counters", [], |r| r.get(0))
        .unwrap();
    assert!(counters > 0, "the counters were built");
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(keys(&conn), written);
}

/// Architecture invariant: the store interprets no field. Outside the migrations (which fill
/// new columns once from what the model derived), no store code reads inside a summary (in SQL
/// or in Rust) or a field of a document.
#[test]
fn the_store_reads_no_field_inside_a_summary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node/src/store");
    let mut files = vec![
        dir.join("mod.rs"),
        dir.join("rollup.rs"),
        dir.join("access.rs"),
    ];
    for entry in std::fs::read_dir(dir.join("sync"))
        .into_iter()
        .flatten()
        .flatten()
    {
        files.push(entry.path());
    }
    files.push(dir.join("sync.rs"));
    let mut read = 0;
    for file in files.iter().filter(|f| f.exists()) {
        let text = std::fs::read_to_string(file).unwrap();
        read += 1;
        for (n, line) in text.lines().enumerate() {
            assert!(
                !["json_extract", "summary[", "field_text("]
                    .iter()
                    .any(|reading| line.contains(reading)),
                "{}:{}: the store reads inside a summary: {line}",
                file.display(),
                n + 1
            );
        }
    }
    assert!(read >= 3, "the store's files were found");
}

/// The b-trees (tables and indexes, by name) whose pages the write-ahead log holds: read from
/// each frame's page number and the database's own page map (`dbstat`).
fn btrees_in_log(path: &std::path::Path) -> std::collections::BTreeSet<String> {
    pages_in_log(path).into_keys().collect()
}

/// How many distinct pages of each b-tree (by name) the write-ahead log holds.
fn pages_in_log(path: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let log = std::fs::read(path.with_extension("sqlite-wal")).unwrap();
    let page_size = u32::from_be_bytes(log[8..12].try_into().unwrap()) as usize;
    let pages: std::collections::BTreeSet<i64> = log[32..]
        .chunks_exact(24 + page_size)
        .map(|frame| u32::from_be_bytes(frame[0..4].try_into().unwrap()) as i64)
        .collect();
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut names = std::collections::BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT name FROM dbstat WHERE pageno = ?1")
        .unwrap();
    for page in pages {
        if let Some(name) = stmt
            .query_row([page], |r| r.get::<_, String>(0))
            .optional()
            .unwrap()
        {
            *names.entry(name).or_insert(0) += 1;
        }
    }
    names
}

/// Starts the write-ahead log over empty. The store's checkpoint thread may be copying it, and
/// a checkpoint waits for no other: then it is tried again.
async fn empty_log(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        if busy == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log could not be started over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An edit rewrites only the index entries whose values it changes. SQLite rewrites a row's
/// entry in every index on a column an `UPDATE` names, whether the value changed or not; when
/// every write named every column, a peer's edit to a hundred opinions wrote 219 pages to the
/// log, most of them index pages put back as they were, and each record's `record_people` rows
/// were deleted and written again unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_writes_only_the_index_entries_it_changes() {
    use renda_node::record::opinion::OpinionAction;
    let dir = tempfile::tempdir().unwrap();
    let (store, region, delegate) = populated(dir.path()).await;
    // An opinion a delegate took in, so that it has a `record_people` row to leave alone.
    let opinion = store
        .write(move |tx| {
            let fields = renda_node::record::opinion::OpinionFields {
                source: renda_node::record::opinion::OpinionSource::Visit,
                content: "村道破损，希望修缮".into(),
                place: String::new(),
                region,
                delegate: Some(delegate),
                activity: None,
                category: None,
            };
            let on = common::data::d("2026-03-01");
            renda_node::office::add_opinion(tx, "clerk", fields, Default::default(), on)
        })
        .await
        .unwrap()
        .id;
    let path = dir.path().join(renda_node::store::DB_FILE);
    empty_log(&path).await;

    // Passing an opinion on moves its status and nothing else an index reads.
    store
        .write(move |tx| {
            renda_node::office::opinion_step(
                tx,
                "clerk",
                &opinion,
                OpinionAction::PassOn {
                    to: "镇建设办".into(),
                    congress: None,
                },
                common::data::d("2026-03-02"),
            )
        })
        .await
        .unwrap();
    let written = btrees_in_log(&path);
    println!("b-trees written: {written:?}");
    // The test sees index pages: the status index moved, as it must.
    assert!(written.contains("records_kind_status"), "{written:?}");
    for untouched in [
        "records_kind_occurred",
        "records_kind_home",
        "records_home_kind",
        "records_kind_list",
        "record_people",
        "record_people_delegate",
    ] {
        assert!(
            !written.contains(untouched),
            "the edit rewrote {untouched}, whose entries it leaves as they were: {written:?}"
        );
    }
    // What the indexes hold is what the rows hold, and the lists read the new status.
    let passed_on = store
        .call(move |s| {
            s.list(&renda_node::store::ListQuery {
                kind: Some(renda_node::record::RecordKind::Opinion),
                status: Some("passed_on".into()),
                delegate: Some(delegate),
                ..Default::default()
            })
        })
        .await
        .unwrap();
    assert!(passed_on.iter().any(|row| row.id == opinion));
    store.close().await;
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.derived_mismatches().unwrap(), Vec::<String>::new());
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// Edits to neighbouring records write neighbouring pages of the index that keeps each change
/// unique. While a change's hash was unique across the whole table, that index was in hash
/// order, which is random: an edit to a hundred opinions written one after another touched
/// nearly every leaf of it, and at a county those pages were half of a peer's commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_to_neighbouring_records_write_few_pages_of_the_change_index() {
    use renda_node::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
    const OPINIONS: usize = 3_000;
    const EDITED: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let (store, region, _) = populated(dir.path()).await;
    // Enough changes that the index has many leaves for a random order to spread over.
    let opinions = store
        .write(move |tx| {
            let mut ids = Vec::with_capacity(OPINIONS);
            for i in 0..OPINIONS {
                let fields = OpinionFields {
                    source: OpinionSource::Visit,
                    content: format!("第{i}条：村道破损，希望修缮"),
                    place: String::new(),
                    region,
                    delegate: None,
                    activity: None,
                    category: None,
                };
                let on = common::data::d("2026-03-01");
                ids.push(
                    renda_node::office::add_opinion(tx, "clerk", fields, Default::default(), on)?
                        .id,
                );
            }
            Ok(ids)
        })
        .await
        .unwrap();
    let path = dir.path().join(renda_node::store::DB_FILE);
    empty_log(&path).await;

    // A hundred opinions written one after another, passed on in one commit.
    let edited: Vec<_> = opinions[OPINIONS / 2..OPINIONS / 2 + EDITED].to_vec();
    store
        .write(move |tx| {
            for id in &edited {
                renda_node::office::opinion_step(
                    tx,
                    "clerk",
                    id,
                    OpinionAction::PassOn {
                        to: "镇建设办".into(),
                        congress: None,
                    },
                    common::data::d("2026-03-02"),
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let written = pages_in_log(&path);
    println!("pages written per b-tree: {written:?}");

    // The indexes on `changes` that hold the hash, whatever this schema names them.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let hash_indexes: Vec<String> = conn
        .prepare(
            "SELECT il.name FROM pragma_index_list('changes') il
             WHERE EXISTS (SELECT 1 FROM pragma_index_info(il.name) ii WHERE ii.name = 'hash')",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!hash_indexes.is_empty(), "a change's hash is kept unique");
    let leaves: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM dbstat WHERE pagetype = 'leaf' AND name IN ({})",
                hash_indexes
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    // The test can see a random order: the index has many more leaves than the edit needs.
    assert!(leaves >= 20, "the hash index has {leaves} leaves");
    let pages: usize = hash_indexes
        .iter()
        .map(|name| written.get(name).copied().unwrap_or(0))
        .sum();
    assert!(
        pages <= 12,
        "{EDITED} edits to neighbouring records wrote {pages} of the {leaves} leaves of {hash_indexes:?}: {written:?}"
    );
    drop(conn);
    store.close().await;
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.derived_mismatches().unwrap(), Vec::<String>::new());
}
