//! A township restored from an old backup: its writes after the restore are not mistaken for
//! ones the county already has, and the writes the backup lacked come back from the county.

mod common;

use std::time::Duration;

use common::fed::{Federation, code};
use renda_node::record::RecordId;
use renda_node::store::{ListQuery, Store, StoreHandle};
use renda_node::sync::client::sync_with_parent;
use renda_node::sync::{LinkConfig, LinkReport, Mode};

const TOWNSHIP: &str = "330411101000";
const COUNTY: &str = "330411000000";

async fn write(store: &StoreHandle, n: usize, tag: &str) -> Vec<RecordId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(common::fed::write_opinion(store, code(TOWNSHIP), format!("{tag}第{i}条")).await);
    }
    ids
}

async fn sync(store: &StoreHandle, addr: &str) -> LinkReport {
    sync_with_parent(
        store.clone(),
        code(TOWNSHIP),
        addr,
        Mode::Once,
        LinkConfig::default(),
    )
    .await
    .expect("sync")
}

async fn opinions(store: &StoreHandle) -> Vec<RecordId> {
    let q = ListQuery {
        kind: Some(renda_node::record::RecordKind::Opinion),
        ..Default::default()
    };
    store
        .call(move |s| s.list(&q))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// A county serving on loopback, and a township of its own in a temporary directory whose
/// files the test may copy, damage or replace.
struct Setup {
    _fed: Federation,
    county: StoreHandle,
    addr: String,
    dir: tempfile::TempDir,
    data: std::path::PathBuf,
    township: StoreHandle,
}

async fn setup() -> Setup {
    let fed = Federation::start(&[(COUNTY, "秀洲区人大常委会")]).await;
    let county = fed.node(COUNTY).store.clone();
    let addr = fed.node(COUNTY).addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("township");
    let township =
        StoreHandle::spawn(Store::init(&data, code(TOWNSHIP), "王店镇人大主席团", None).unwrap())
            .unwrap();
    Setup {
        _fed: fed,
        county,
        addr,
        dir,
        data,
        township,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_township_loses_nothing_and_its_new_writes_still_travel() {
    let Setup {
        _fed,
        county,
        addr,
        dir,
        data,
        township,
    } = setup().await;
    let mut all = write(&township, 30, "备份前").await;
    sync(&township, &addr).await;
    // Taken as a running node's schedule takes it (`renda run` with `[backup]`).
    let schedule = renda_node::backups::BackupSchedule {
        dir: dir.path().join("backups"),
        every: Duration::from_secs(86_400),
        keep: 3,
    };
    let backup = renda_node::backups::take(&township, &schedule, code(TOWNSHIP))
        .await
        .unwrap();
    all.extend(write(&township, 20, "备份后").await);
    sync(&township, &addr).await;

    // The office PC is restored from the backup: the last 20 writes are gone locally.
    drop(township);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Store::restore(&data, &backup).unwrap();
    let township = StoreHandle::spawn(Store::open(&data).unwrap()).unwrap();
    assert_eq!(opinions(&township).await.len(), 30);

    all.extend(write(&township, 5, "恢复后").await);
    sync(&township, &addr).await;
    all.sort();
    let mut at_county = opinions(&county).await;
    at_county.sort();
    assert_eq!(
        at_county, all,
        "the county has every write, including those made after the restore"
    );
    let mut at_township = opinions(&township).await;
    at_township.sort();
    assert_eq!(
        at_township, all,
        "the township got back what the backup lacked"
    );

    let again = sync(&township, &addr).await;
    assert_eq!(
        (again.changes_sent, again.changes_received),
        (0, 0),
        "after the repair, syncs are no-ops"
    );
}

/// A township whose files were copied back from an older copy (no `renda restore`, so nothing
/// marks it) and that then wrote more than it lost: the county's checkpoint lies within the
/// township's sequence again, but names a change the township no longer holds there. The
/// township resends from the start instead of resuming after positions it has since reused for
/// other writes, and the county hands back what the copy lacked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_township_copied_back_from_old_files_resyncs_although_its_sequence_caught_up() {
    let Setup {
        _fed,
        county,
        addr,
        dir,
        data,
        township,
    } = setup().await;
    let copy = dir.path().join("copy.sqlite");
    let mut all = write(&township, 10, "复制前").await;
    sync(&township, &addr).await;
    // Closing the last connection folds the write-ahead log into the file.
    drop(township);
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::copy(data.join("renda.sqlite"), &copy).unwrap();

    let township = StoreHandle::spawn(Store::open(&data).unwrap()).unwrap();
    all.extend(write(&township, 10, "复制后").await);
    sync(&township, &addr).await;
    drop(township);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The operator copies the old file back by hand.
    for stale in ["renda.sqlite-wal", "renda.sqlite-shm"] {
        let _ = std::fs::remove_file(data.join(stale));
    }
    std::fs::copy(&copy, data.join("renda.sqlite")).unwrap();
    let township = StoreHandle::spawn(Store::open(&data).unwrap()).unwrap();
    let county_claim = county
        .call(|s| s.received_seq(&code(TOWNSHIP)))
        .await
        .unwrap();
    // Enough new writes that the township's sequence passes the county's checkpoint again.
    let mut fresh = Vec::new();
    while township.call(|s| s.last_seq()).await.unwrap() <= county_claim {
        fresh.extend(write(&township, 1, "恢复后").await);
    }
    all.extend(fresh);
    sync(&township, &addr).await;

    all.sort();
    let mut at_county = opinions(&county).await;
    at_county.sort();
    assert_eq!(
        at_county, all,
        "the county has every write, including those at reused positions"
    );
    let mut at_township = opinions(&township).await;
    at_township.sort();
    assert_eq!(
        at_township, all,
        "the township got back what the copy lacked"
    );
}

/// A township whose write-ahead log was lost (the file copied without it, a disk that dropped
/// it): the database file still says which node it is (`init` puts that in the file itself), so
/// it is not taken for an empty directory; the county's checkpoint lies past what the file holds,
/// so the township resyncs and gets back everything the county holds for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_township_that_lost_its_write_ahead_log_gets_everything_back() {
    let Setup {
        _fed,
        county,
        addr,
        dir,
        data,
        township,
    } = setup().await;
    let mut all = write(&township, 12, "日志中").await;
    sync(&township, &addr).await;

    // The running node's writes are in its log; the copy has the file alone.
    let lost = dir.path().join("lost-log");
    std::fs::create_dir_all(&lost).unwrap();
    std::fs::copy(data.join("renda.sqlite"), lost.join("renda.sqlite")).unwrap();
    assert!(!lost.join("renda.sqlite-wal").exists());
    let township =
        StoreHandle::spawn(Store::open(&lost).expect("the node's identity survives")).unwrap();
    assert!(
        opinions(&township).await.len() < all.len(),
        "the copy lacks what was in the log"
    );
    all.extend(write(&township, 2, "丢失日志后").await);
    sync(&township, &addr).await;

    all.sort();
    let mut at_township = opinions(&township).await;
    at_township.sort();
    assert_eq!(at_township, all, "the township got back what its log held");
    let mut at_county = opinions(&county).await;
    at_county.sort();
    assert_eq!(at_county, all);
}

/// A township whose database is damaged beyond use is rebuilt from its county, which holds
/// every record of the township and its personal data (constituents' names and phones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_township_is_rebuilt_from_its_county() {
    use renda_node::office::{self, Contact};
    use renda_node::record::opinion::{OpinionFields, OpinionSource};

    let Setup {
        _fed,
        county: _,
        addr,
        // Held: dropping it would delete the township's directory.
        dir: _dir,
        data,
        township,
    } = setup().await;
    let mut all = write(&township, 20, "损坏前").await;
    let fields = OpinionFields {
        source: OpinionSource::Visit,
        content: "希望修缮村口的桥".into(),
        place: String::new(),
        region: code(TOWNSHIP),
        delegate: None,
        activity: None,
        category: None,
    };
    let with_contact = township
        .write(move |tx| {
            office::add_opinion(
                tx,
                "clerk",
                fields,
                Contact {
                    name: Some("李建国".into()),
                    phone: Some("13900000001".into()),
                    id_number: None,
                },
                chrono::NaiveDate::from_ymd_opt(2026, 10, 2).unwrap(),
            )
        })
        .await
        .unwrap()
        .id;
    all.push(with_contact);
    sync(&township, &addr).await;
    drop(township);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Zeroed: nothing of it can be read, not even which node it was.
    let db = data.join("renda.sqlite");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0u8; len]).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    match Store::open(&data) {
        Err(renda_node::store::StoreError::Damaged(_)) => {}
        other => panic!("expected damage, got {other:?}"),
    }
    // Without the region the damaged file cannot say, the rebuild asks for it.
    assert!(Store::rebuild(&data, None, None, Some(&addr)).is_err());
    assert!(
        Store::rebuild(&data, Some(code(TOWNSHIP)), Some("王店镇人大主席团"), None).is_err(),
        "a township is rebuilt from its parent"
    );
    assert!(
        data.join("renda.sqlite").exists(),
        "a refused rebuild moves nothing"
    );
    let (aside, id) = Store::rebuild(
        &data,
        Some(code(TOWNSHIP)),
        Some("王店镇人大主席团"),
        Some(&addr),
    )
    .unwrap();
    assert_eq!(id.region, code(TOWNSHIP));
    assert!(aside.exists(), "the damaged file is kept");

    let township = StoreHandle::spawn(Store::open(&data).unwrap()).unwrap();
    sync(&township, &addr).await;
    all.sort();
    let mut back = opinions(&township).await;
    back.sort();
    assert_eq!(back, all, "every record came back from the county");
    let personal = township
        .call(move |s| s.personal_for(&with_contact))
        .await
        .unwrap()
        .expect("the constituent's contact came back");
    let text = serde_json::to_string(&personal.to_json(None)).unwrap();
    assert!(
        text.contains("李建国") && text.contains("13900000001"),
        "{text}"
    );
}
