//! Kill -9 a county in the middle of a township's sync, restart it, and sync again: the county
//! resumes from its checkpoint, holds no duplicates, and the township resends nothing the county
//! had acknowledged.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, WANGDIAN, XIUZHOU};

fn county_view(db: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let received: i64 = conn
        .query_row(
            "SELECT coalesce(max(received_seq), 0) FROM sync_peers WHERE peer = ?1",
            [WANGDIAN],
            |r| r.get(0),
        )
        .unwrap_or(0);
    let held: i64 = conn
        .query_row(
            "SELECT count(*) FROM changes WHERE origin = ?1",
            [WANGDIAN],
            |r| r.get(0),
        )
        .unwrap();
    (received, held)
}

#[test]
fn a_county_killed_mid_sync_resumes_from_its_checkpoint_without_resending() {
    let county = Node::init(XIUZHOU, "秀洲区人大常委会");
    let township = Node::init(WANGDIAN, "王店镇人大主席团");
    let opinions = 2000;
    township.ok(&["debug", "write-loop", "--count", &opinions.to_string()]);
    // One change per opinion (the record and its 收集 event are written together), one for
    // the township's rollup, which `renda sync --once` refreshes before it syncs, and one for
    // each of the four duty rules a new congress is seeded with.
    let total_changes = opinions as i64 + 1 + 4;

    let (mut server, addr) = county.run_listening();
    township.ok(&["attach", "--parent", &addr]);
    let mut sync = Command::new(env!("CARGO_BIN_EXE_renda"))
        .args(["sync", "--once", "--batch-bytes", "1024"])
        .env("RENDA_DATA_DIR", township.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sync");

    // Kill the county once part of the sync has been applied.
    let started = Instant::now();
    loop {
        let (received, _) = county_view(&county.db());
        if received >= 300 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sync never got going"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    server.kill().expect("SIGKILL the county");
    server.wait().unwrap();
    let _ = sync.wait();

    // The checkpoint covers exactly the changes that were stored with it.
    let (received, held) = county_view(&county.db());
    assert!(
        received < total_changes,
        "the kill came after the sync finished; make the sync longer"
    );
    assert_eq!(held, received, "checkpoint and data were written together");

    let (mut server, addr) = county.run_listening();
    township.ok(&["attach", "--parent", &addr]);
    let report = township.json(&["sync", "--once"]);
    assert_eq!(
        report["changes_sent"].as_i64().unwrap(),
        total_changes - held,
        "the resumed sync sends exactly what the county lacked"
    );
    let (received, held) = county_view(&county.db());
    // The county acknowledged the township's whole sequence, which also numbers the county's
    // own duty rules that came down in the round; it holds every change the township wrote.
    let township_seq = township.json(&["status"])["store"]["last_seq"]
        .as_i64()
        .unwrap();
    assert_eq!((received, held), (township_seq, total_changes));
    let stored = county.json(&["opinion", "list"]).as_array().unwrap().len();
    assert_eq!(stored, opinions, "no opinion lost or duplicated");
    server.kill().unwrap();
    server.wait().unwrap();
}
