//! Scheduled backups as an operator runs them: `renda run` with a backup directory takes a
//! backup as soon as one is due, keeps the newest N of its node's backups there, says when the
//! last one was taken in `renda status` and the metrics, and one of them restores.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;

const TOWNSHIP: &str = "330411101000";

fn backups(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("renda-") && n.ends_with(".sqlite"))
        .collect();
    names.sort();
    names
}

fn metrics(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_running_node_backs_up_on_schedule_keeps_the_newest_and_one_restores() {
    let node = Node::init(TOWNSHIP, "王店镇人大主席团");
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backups");
    std::fs::create_dir_all(&backup_dir).unwrap();
    let status = node.json(&["status"]);
    assert!(status["store"]["last_backup"].is_null(), "{status}");

    // Three backups an earlier run took, days ago, and another node's, which is never touched.
    for (n, name) in [
        "renda-330411101000-20261101T010000Z.sqlite",
        "renda-330411101000-20261102T010000Z.sqlite",
        "renda-330411101000-20261103T010000Z.sqlite",
        "renda-330411102000-20261101T010000Z.sqlite",
    ]
    .into_iter()
    .enumerate()
    {
        node.ok(&[
            "opinion",
            "add",
            "--source",
            "visit",
            "--content",
            &format!("备份前第{n}条"),
        ]);
        node.ok(&["backup", "--to", backup_dir.join(name).to_str().unwrap()]);
    }
    assert_eq!(
        node.json(&["status"])["store"]["last_backup"]["detail"]
            .as_str()
            .map(|f| f.ends_with("renda-330411102000-20261101T010000Z.sqlite")),
        Some(true),
        "`renda backup` notes its file too"
    );
    // A copy a killed run left half-written.
    std::fs::write(
        backup_dir.join(".renda-330411101000-20261103T020000Z.sqlite.partial"),
        b"half",
    )
    .unwrap();

    let ports = common::free_ports(2);
    let (metrics_port, listen_port) = (ports[0], ports[1]);
    let mut running = common::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_renda"))
            .args([
                "run",
                "--listen",
                &format!("127.0.0.1:{listen_port}"),
                "--metrics",
                &format!("127.0.0.1:{metrics_port}"),
                "--backup-dir",
                backup_dir.to_str().unwrap(),
                "--backup-every",
                "10s",
                "--backup-keep",
                "2",
            ])
            .env("RENDA_DATA_DIR", node.path())
            .env("RENDA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start renda run"),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        running.try_wait().unwrap().is_none(),
        "renda run stopped at once"
    );
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // The last backup was moments ago (`renda backup` notes it): the first scheduled one comes
    // ten seconds later, and of this node's four backups the oldest two go. The other node's
    // backup stays; the half-written copy goes.
    wait_for("the first scheduled backup", &|| {
        backups(&backup_dir)
            .iter()
            .filter(|n| n.starts_with("renda-330411101000-2026110"))
            .count()
            == 1
    });
    let first = backups(&backup_dir);
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.contains(&"renda-330411101000-20261103T010000Z.sqlite".to_string()));
    assert!(first.contains(&"renda-330411102000-20261101T010000Z.sqlite".to_string()));
    assert!(
        !backup_dir
            .join(".renda-330411101000-20261103T020000Z.sqlite.partial")
            .exists()
    );
    let scheduled = first
        .iter()
        .find(|n| n.starts_with("renda-330411101000-") && !n.contains("20261103T01"))
        .unwrap()
        .clone();
    wait_for("the status to name the backup", &|| {
        node.json(&["status"])["store"]["last_backup"]["detail"]
            .as_str()
            .is_some_and(|f| f.ends_with(&scheduled))
    });
    let text = node.ok(&["status"]);
    assert!(
        text.contains("最近备份") && text.contains(&scheduled),
        "{text}"
    );
    assert!(
        text.contains("最近检查") && text.contains("数据库完好"),
        "{text}"
    );
    let scraped = metrics(metrics_port);
    let stamp = scraped
        .lines()
        .find(|l| l.starts_with("renda_backup_last_timestamp_seconds"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no backup timestamp in\n{scraped}"));
    assert!(
        (chrono::Utc::now().timestamp() - stamp).abs() < 60,
        "{stamp}"
    );

    // Written after that backup, so a restore from it lacks it.
    node.ok(&[
        "opinion",
        "add",
        "--source",
        "visit",
        "--content",
        "备份之后",
    ]);
    // Ten seconds on, the next: still two of this node's.
    wait_for("the second scheduled backup", &|| {
        let now = backups(&backup_dir);
        now.len() == 3 && !now.contains(&"renda-330411101000-20261103T010000Z.sqlite".to_string())
    });

    // Stopped, and restored from the first scheduled backup: the records written before it
    // are there, the one after it is not, and the restored file is sound.
    let _ = Command::new("kill")
        .args(["-TERM", &running.id().to_string()])
        .status();
    let stopped = running.wait().unwrap();
    assert!(stopped.success(), "{stopped:?}");
    node.ok(&[
        "restore",
        "--from",
        backup_dir.join(&scheduled).to_str().unwrap(),
    ]);
    node.ok(&["check"]);
    let listed = node.json(&["opinion", "list"]);
    let contents: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["label"].as_str())
        .collect();
    assert_eq!(contents.len(), 4, "{listed}");
    assert!(!contents.contains(&"备份之后"), "{contents:?}");
}
