//! `renda ca`: a CA is created once, node certificates name their region, and mistakes get a
//! clear error and exit 2 with nothing overwritten.

use assert_cmd::Command;
use predicates::str::contains;

fn renda() -> Command {
    Command::cargo_bin("renda").unwrap()
}

#[test]
fn a_ca_issues_node_certificates_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    renda()
        .args(["ca", "init", "--dir"])
        .arg(&ca)
        .assert()
        .success()
        .stdout(contains("已创建证书颁发机构"));
    let key_before = std::fs::read(ca.join("ca-key.pem")).unwrap();
    renda()
        .args(["ca", "init", "--dir"])
        .arg(&ca)
        .assert()
        .code(2)
        .stderr(contains("ca-key.pem: already exists"));
    assert_eq!(std::fs::read(ca.join("ca-key.pem")).unwrap(), key_before);

    let out = dir.path().join("wangdian");
    renda()
        .args([
            "ca",
            "issue",
            "--region",
            "330411101000",
            "--name",
            "王店镇人大主席团",
            "--ca",
        ])
        .arg(&ca)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("330411101000"));
    let cert = std::fs::read_to_string(out.join("node.pem")).unwrap();
    let ca_cert = std::fs::read_to_string(ca.join("ca.pem")).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("ca.pem")).unwrap(),
        ca_cert
    );
    let der = renda_node::pki::pem_cert(&cert, std::path::Path::new("node.pem")).unwrap();
    let ca_der = renda_node::pki::pem_cert(&ca_cert, std::path::Path::new("ca.pem")).unwrap();
    let verified = renda_node::pki::verify_peer(
        &[der],
        &[ca_der],
        chrono::Utc::now(),
        renda_node::pki::Usage::Server,
    )
    .unwrap();
    assert_eq!(verified.region.as_str(), "330411101000");

    renda()
        .args(["ca", "issue", "--region", "33041", "--out", "x", "--ca"])
        .arg(&ca)
        .assert()
        .code(2)
        .stderr(contains("region"));
    renda()
        .args(["ca", "issue", "--region", "330411102000", "--out"])
        .arg(dir.path().join("x"))
        .arg("--ca")
        .arg(dir.path().join("no-such-ca"))
        .assert()
        .code(2)
        .stderr(contains("no-such-ca"));
}

/// `renda ca intermediate` delegates issuing to a province (and a city), each of which issues
/// only in its subtree; `renda ca rotate` gives one a new key, and what the old key issued
/// still verifies against the root the nodes hold.
#[test]
fn intermediate_cas_issue_in_their_subtree_only_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let zhejiang = dir.path().join("zhejiang");
    let jiaxing = dir.path().join("jiaxing");
    renda()
        .args(["ca", "init", "--dir"])
        .arg(&root)
        .assert()
        .success();
    let intermediate = |ca: &std::path::Path, region: &str, name: &str, out: &std::path::Path| {
        renda()
            .args(["ca", "intermediate", "--region", region, "--name", name])
            .arg("--ca")
            .arg(ca)
            .arg("--dir")
            .arg(out)
            .assert()
    };
    intermediate(&root, "330000000000", "浙江省人大 签发", &zhejiang)
        .success()
        .stdout(contains("330000000000"));
    intermediate(&zhejiang, "330400000000", "嘉兴市人大 签发", &jiaxing).success();
    // Another province's city, and another province's township: refused, nothing written.
    intermediate(
        &zhejiang,
        "320100000000",
        "南京",
        &dir.path().join("nanjing"),
    )
    .code(2)
    .stderr(contains("outside 330000000000"));
    assert!(!dir.path().join("nanjing").exists());
    renda()
        .args(["ca", "issue", "--region", "320117101000", "--out"])
        .arg(dir.path().join("jiangsu-town"))
        .arg("--ca")
        .arg(&zhejiang)
        .assert()
        .code(2)
        .stderr(contains("outside 330000000000"));
    assert!(!dir.path().join("jiangsu-town").exists());

    let verify = |node: &std::path::Path| {
        let chain = renda_node::pki::pem_certs(
            &std::fs::read_to_string(node.join("node.pem")).unwrap(),
            std::path::Path::new("node.pem"),
        )
        .unwrap();
        let roots = renda_node::pki::pem_certs(
            &std::fs::read_to_string(node.join("ca.pem")).unwrap(),
            std::path::Path::new("ca.pem"),
        )
        .unwrap();
        renda_node::pki::verify_peer(
            &chain,
            &roots,
            chrono::Utc::now(),
            renda_node::pki::Usage::Client,
        )
    };
    let wangdian = dir.path().join("wangdian");
    renda()
        .args([
            "ca",
            "issue",
            "--region",
            "330411101000",
            "--name",
            "王店镇人大主席团",
            "--out",
        ])
        .arg(&wangdian)
        .arg("--ca")
        .arg(&jiaxing)
        .assert()
        .success();
    // The node holds the root as its ca.pem, and its chain through both intermediates.
    assert_eq!(
        std::fs::read_to_string(wangdian.join("ca.pem")).unwrap(),
        std::fs::read_to_string(root.join("ca.pem")).unwrap()
    );
    assert_eq!(verify(&wangdian).unwrap().region.as_str(), "330411101000");

    renda()
        .args(["ca", "rotate", "--ca"])
        .arg(&root)
        .arg("--dir")
        .arg(&zhejiang)
        .assert()
        .success()
        .stdout(contains("retired-"));
    let retired: Vec<_> = std::fs::read_dir(&zhejiang)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("retired-"))
        .collect();
    assert_eq!(retired.len(), 1);
    let after = dir.path().join("wangdian-2");
    renda()
        .args(["ca", "issue", "--region", "330411102000", "--out"])
        .arg(&after)
        .arg("--ca")
        .arg(&zhejiang)
        .assert()
        .success();
    assert!(verify(&after).is_ok(), "the rotated CA issues");
    assert!(
        verify(&wangdian).is_ok(),
        "what was issued before still verifies"
    );
}
