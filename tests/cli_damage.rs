//! A damaged database is found and named, never served, synced or taken for an empty data
//! directory: garbage in the middle of the file, a zeroed file, a truncated one, an empty one.
//! Each says how to recover (`renda restore` from a backup, `renda rebuild` from the parent).
//! The rebuild itself and a lost write-ahead log are tested with real links in sync_restore.rs.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use common::{Node, WANGDIAN};

/// A township node holding a few thousand opinions, with its write-ahead log copied into the
/// main file and removed, so the damage below lands on the only copy of the data.
fn filled() -> Node {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    node.ok(&["debug", "write-loop", "--count", "1500"]);
    let conn = rusqlite::Connection::open(node.db()).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);
    assert!(!std::path::Path::new(&format!("{}-wal", node.db().display())).exists());
    node
}

/// What every refusal of a damaged file says: which file, that it is damaged, and both ways out.
fn assert_names_the_damage(stderr: &str, node: &Node) {
    assert!(
        stderr.contains(&node.db().display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("已损坏"), "{stderr}");
    assert!(stderr.contains("renda restore"), "{stderr}");
    assert!(stderr.contains("renda rebuild"), "{stderr}");
    assert!(
        !stderr.contains("还没有初始化"),
        "a damaged file is not an empty directory: {stderr}"
    );
}

#[test]
fn garbage_in_the_middle_stops_the_node_and_every_command_after_it() {
    let node = filled();
    let len = std::fs::metadata(node.db()).unwrap().len();
    assert!(len > 1 << 20, "{len} bytes");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(node.db())
        .unwrap();
    file.seek(SeekFrom::Start(len / 2 / 4096 * 4096 + 100))
        .unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    file.write_all(&garbage).unwrap();
    drop(file);

    // The full check finds it and says how to recover.
    let stderr = node.fails(&["check"], 1);
    assert_names_the_damage(&stderr, &node);

    // `renda run` checks every page before it serves sync, and stops.
    let out = node
        .cmd()
        .args(["run", "--listen", "127.0.0.1:0"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the node stops on damage");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_names_the_damage(&stderr, &node);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("接受下级节点同步"),
        "sync was never served: {stdout}"
    );

    // A command that would not touch the damaged pages is refused too, until the file is
    // replaced or found sound.
    for args in [&["status"][..], &["opinion", "list"]] {
        let stderr = node.fails(args, 1);
        assert_names_the_damage(&stderr, &node);
    }
}

#[test]
fn a_zeroed_file_is_damaged_not_uninitialised_and_init_keeps_it() {
    let node = filled();
    let len = std::fs::metadata(node.db()).unwrap().len();
    std::fs::write(node.db(), vec![0u8; len as usize]).unwrap();
    let stderr = node.fails(&["status"], 1);
    assert_names_the_damage(&stderr, &node);
    assert!(stderr.contains("全是零"), "{stderr}");
    node.fails(
        &["init", "--region", WANGDIAN, "--name", "王店镇人大主席团"],
        1,
    );
    assert_eq!(
        std::fs::metadata(node.db()).unwrap().len(),
        len,
        "init wrote nothing"
    );
    assert!(std::fs::read(node.db()).unwrap().iter().all(|b| *b == 0));
}

#[test]
fn a_truncated_file_says_so_and_how_to_recover() {
    let node = filled();
    let len = std::fs::metadata(node.db()).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(node.db())
        .unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let stderr = node.fails(&["opinion", "list"], 1);
    assert_names_the_damage(&stderr, &node);
    assert!(stderr.contains("截断"), "{stderr}");
    node.fails(&["check"], 1);
}

#[test]
fn an_empty_file_is_damaged_not_uninitialised_and_init_keeps_it() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    std::fs::write(node.db(), b"").unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", node.db().display()));
    }
    let stderr = node.fails(&["status"], 1);
    assert_names_the_damage(&stderr, &node);
    node.fails(
        &["init", "--region", WANGDIAN, "--name", "王店镇人大主席团"],
        1,
    );
    assert_eq!(
        std::fs::metadata(node.db()).unwrap().len(),
        0,
        "init wrote nothing"
    );
}

#[test]
fn a_sound_file_checks_clean() {
    let node = filled();
    let out = node.ok(&["check"]);
    assert!(out.contains("完好"), "{out}");
}
