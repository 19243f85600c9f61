//! The README's main command: `renda demo` builds a five-level federation of real nodes over
//! mutual TLS on loopback, with data shaped like the counties' published reports, takes two
//! townships offline and back, prints every level's rolled-up numbers, and serves the
//! dashboards with a login. It works from nothing, and again on the directory it left.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn demo(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_renda"))
        .args(["demo", "--no-serve", "--demo-dir"])
        .arg(dir)
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_demo_federation_rolls_the_published_figures_up_and_runs_twice() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("federation");
    for run in 0..2 {
        let stdout = demo(&dir);
        for expected in [
            // The showcase suggestion across two levels.
            "秀洲区：审查立案",
            "秀洲区：销号，建议办结",
            // A township motion with the fewest signers a township congress accepts, and the
            // township's delegates judged by its duty rules.
            "王店镇：5 名代表联名提出议案，主席团决定列入会议议程",
            "王店镇代表履职（本年，按本级履职要求）：",
            // Offline and back.
            "王江泾镇人大主席团：离线登记 5 条",
            "秀洲区此时收到其中 0 条（链路断开）",
            "全部同步到秀洲区",
            "全国汇总与各地记录一致",
            // 沈丘县 and 太湖县 as the national node sees them, through rollups alone.
            "全国节点看到的河南省（沈丘县）：民情 212 条，累计转交 212 条，已转交后办理中 27 条，已办结 185 条",
            "全国节点看到的安徽省（太湖县）：活动 3162 场，签到 19601 人次，建议 329 件，满意率 100.0%",
        ] {
            assert!(
                stdout.contains(expected),
                "run {run}: the demo's output lacks {expected:?}:\n{stdout}"
            );
        }
    }
    // What it leaves behind are real nodes the CLI can open.
    let county = dir.join("330411000000");
    let listed = Command::new(env!("CARGO_BIN_EXE_renda"))
        .args([
            "suggestion",
            "list",
            "--status",
            "closed",
            "--json",
            "--data-dir",
        ])
        .arg(&county)
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "the showcase suggestion");
    // A directory that is not the demo's is never cleared.
    let foreign = root.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), "mine").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_renda"))
        .args(["demo", "--no-serve", "--demo-dir"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("demo-dir"));
    assert!(foreign.join("keep.txt").exists());
}

#[test]
fn the_demo_serves_dashboards_with_the_printed_credentials() {
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_renda"))
        .args(["demo", "--http", "127.0.0.1:0", "--demo-dir"])
        .arg(root.path().join("federation"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dashboards = Vec::new();
    let mut clerks = Vec::new();
    while clerks.len() < 2 {
        let line = lines
            .next()
            .expect("the demo prints its dashboards and clerk logins")
            .unwrap();
        if let Some((_, rest)) = line.split_once("http://")
            && let Some((addr, token)) = rest.split_once("/  登录令牌：")
        {
            dashboards.push((addr.to_string(), token.trim().to_string()));
        }
        if let Some((_, rest)) = line.split_once("http://")
            && let Some((addr, login)) = rest.split_once("/todo  办理账号：")
            && let Some((name, password)) = login.split_once("  密码：")
        {
            clerks.push((
                addr.to_string(),
                name.to_string(),
                password.trim().to_string(),
            ));
        }
    }
    assert_eq!(dashboards.len(), 5, "{dashboards:?}");
    // The printed clerk logins log in to 王店镇's and 秀洲区's workbench.
    for (addr, name, password) in &clerks {
        let form = format!(
            "name={}&password={}&next=%2Ftodo",
            percent_encode(name),
            percent_encode(password)
        );
        let mut stream = std::net::TcpStream::connect(addr.as_str()).unwrap();
        write!(
            stream,
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 303"),
            "{name} at {addr}: {reply}"
        );
        assert!(reply.contains("location: /todo"), "{reply}");
    }
    for (addr, token) in &dashboards {
        for (auth, status) in [(Some(token.as_str()), "200"), (None, "303")] {
            let mut stream = std::net::TcpStream::connect(addr.as_str()).unwrap();
            let header = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
            write!(
                stream,
                "GET / HTTP/1.1\r\nHost: {addr}\r\n{header}Connection: close\r\n\r\n"
            )
            .unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            assert!(
                reply.starts_with(&format!("HTTP/1.1 {status}")),
                "{addr} with {auth:?}: {reply}"
            );
            if auth.is_some() {
                assert!(reply.contains("人大"), "{reply}");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Form encoding of a value: every byte but ASCII letters and digits escaped.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
