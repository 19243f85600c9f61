//! Mutual TLS through the command line: an operator creates the CA, issues each node a
//! certificate into its data directory's `tls/`, and `renda run` and `renda sync --once` link
//! over TLS; `renda status` shows when the certificate ends; a certificate for another region is
//! refused before anything is dialed.

mod common;

use std::process::Command;

use common::{Node, WANGDIAN, XIUZHOU};

fn issue(ca: &std::path::Path, region: &str, node: &Node) {
    let out = Command::new(env!("CARGO_BIN_EXE_renda"))
        .args(["ca", "issue", "--region", region, "--ca"])
        .arg(ca)
        .arg("--out")
        .arg(node.path().join("tls"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nodes_with_certificates_sync_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let out = Command::new(env!("CARGO_BIN_EXE_renda"))
        .args(["ca", "init", "--dir"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(out.status.success());
    let county = Node::init(XIUZHOU, "秀洲区人大常委会");
    let township = Node::init(WANGDIAN, "王店镇人大主席团");
    issue(&ca, XIUZHOU, &county);
    issue(&ca, WANGDIAN, &township);

    let status = township.json(&["status"]);
    assert_eq!(status["certificate"]["installed"], true);
    assert!(status["certificate"]["days_left"].as_i64().unwrap() >= 364);
    assert!(township.ok(&["status"]).contains("有效至"));

    let (mut server, addr) = county.run_listening();

    let id = township.create(&[
        "opinion",
        "add",
        "--source",
        "扫码反映",
        "--content",
        "村口路灯不亮",
        "--region",
        WANGDIAN,
    ]);
    township.ok(&["attach", "--parent", &addr]);
    township.ok(&["sync", "--once"]);
    let held = county.json(&["opinion", "show", &id]);
    assert_eq!(held["header"]["id"], id.as_str());

    // A certificate naming another region in the township's tls/: refused before dialing.
    std::fs::remove_dir_all(township.path().join("tls")).unwrap();
    issue(&ca, "330411102000", &township);
    let err = township.fails(&["sync", "--once"], 2);
    assert!(
        err.contains("330411102000") && err.contains(WANGDIAN),
        "{err}"
    );

    server.kill().unwrap();
    server.wait().unwrap();
}
