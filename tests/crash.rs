//! What a node acknowledged survives kill -9: a child process writes and reports each committed
//! write; it is killed mid-stream; the reopened store holds every acknowledged write and is sound.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Node, WANGDIAN};

#[test]
fn acknowledged_writes_survive_kill_9() {
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    let mut acknowledged = HashSet::new();
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_renda"))
            .args(["debug", "write-loop", "--count", "1000000"])
            .env("RENDA_DATA_DIR", node.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Kill at a different point each round, always while the writer is mid-stream.
        let target = 40 + round * 37;
        let mut seen = 0;
        while seen < target {
            let line = lines.next().expect("writer ended early").expect("read ack");
            acknowledged.insert(line.trim().to_string());
            seen += 1;
        }
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");
        // Lines already in the pipe were acknowledged too.
        for line in lines.map_while(Result::ok) {
            acknowledged.insert(line.trim().to_string());
        }

        let listed = node.json(&["opinion", "list"]);
        let stored: HashSet<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let missing: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but lost: {missing:?}"
        );
        let db = rusqlite::Connection::open(node.db()).unwrap();
        let verdict: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(verdict, "ok");
        // Every stored opinion is whole: its document loads and its Receive event is there.
        let some = stored.iter().next().unwrap();
        assert_eq!(
            node.json(&["opinion", "show", some])["status"]["state"],
            "received"
        );
    }
}
