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
        &der,
        &ca_der,
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
