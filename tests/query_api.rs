//! The Query API proven from another language: a county node runs as `renda run` would, its
//! Query API on a listener of its own over TLS with a server certificate from `renda ca issue
//! --server`, and a stock grpcio client in Python (tests/python/query_api.py, stubs generated
//! from proto/ with no edits) calls every RPC with a viewer's bearer token, checking exact
//! answers about what this test wrote. `scripts/test.sh` installs the Python packages.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Node, delegate};

const COUNTY: &str = "330411000000";
const NAME: &str = "秀洲区人大常委会";
const TOWNSHIP: &str = "330411101000";
const TOWNSHIP_NAME: &str = "王店镇人大主席团";

/// Runs `renda credential add` with `args` and returns the token it printed, alone on stdout.
fn new_token(node: &Node, args: &[&str]) -> String {
    node.ok(args)
        .lines()
        .map(str::trim)
        .find(|l| l.len() >= 20 && !l.contains(' '))
        .expect("a token line")
        .to_string()
}

#[test]
fn a_python_grpc_client_calls_every_query_rpc_over_tls() {
    let node = Node::init(COUNTY, NAME);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let certs = dir.path().join("certs");
    node.ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    node.ok(&[
        "ca",
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--server",
        "--ip",
        "127.0.0.1",
        "--dns",
        "localhost",
        "--out",
        certs.to_str().unwrap(),
    ]);
    let token = new_token(
        &node,
        &[
            "credential",
            "add",
            "--name",
            "数据中心 接口",
            "--role",
            "viewer",
            "--api",
        ],
    );

    // Received on days that run against the order they were recorded in, so a list by day
    // is not the list by id.
    let mut opinions = Vec::new();
    for (content, day) in [
        ("村道路灯损坏", "2026-11-05"),
        ("河道保洁不及时", "2026-11-03"),
        ("公交班次太少", "2026-11-04"),
        ("菜场噪声扰民", "2026-11-01"),
        ("学校门口拥堵", "2026-11-03"),
    ] {
        opinions.push(node.create(&[
            "opinion",
            "add",
            "--source",
            "reception",
            "--content",
            content,
            "--date",
            day,
        ]));
    }
    for id in &opinions[..2] {
        node.ok(&["opinion", "answer", id, "--reply", "已当场答复"]);
    }
    for title in ["关于开展代表活动月的通知", "关于报送年度履职情况的通知"]
    {
        node.create(&[
            "notice",
            "add",
            "--title",
            title,
            "--body",
            "请各镇按时完成。",
        ]);
    }
    // A delegate of the county, who signs in at a reception and leads a suggestion the county
    // handles through to its evaluation: the typed record, its history, the duty record and
    // the quota standings all have something exact to say.
    let lead = delegate(&node, "沈建华", &[]);
    // And one who has done nothing yet this year.
    let idle = delegate(&node, "陆秀英", &[]);
    let activity = node.create(&[
        "activity",
        "add",
        "--kind",
        "reception",
        "--date",
        "2026-11-10",
        "--topic",
        "代表接待选民日",
        "--participant",
        &lead,
        "--received",
        "12",
    ]);
    let suggestion = node.create(&[
        "suggestion",
        "submit",
        "--title",
        "关于改善村道照明的建议",
        "--body",
        "多个村的村道夜间照明不足。",
        "--category",
        "城乡建设",
        "--lead",
        &lead,
        "--date",
        "2026-03-01",
    ]);
    for step in [
        &[
            "screen",
            "--accept",
            "--number",
            "7",
            "--date",
            "2026-03-02",
        ][..],
        &[
            "assign",
            "--lead-unit",
            "区交通运输局",
            "--assist-unit",
            "区财政局",
            "--date",
            "2026-03-10",
        ],
        &[
            "answer",
            "--unit",
            "区交通运输局",
            "--class",
            "B",
            "--text",
            "已列入明年村道改造计划。",
            "--date",
            "2026-04-20",
        ],
        &["evaluate", "--result", "满意", "--date", "2026-04-25"],
    ] {
        let mut args = vec!["suggestion", step[0], &suggestion];
        args.extend_from_slice(&step[1..]);
        node.ok(&args);
    }
    let admin = new_token(
        &node,
        &[
            "credential",
            "add",
            "--name",
            "数据中心 管理",
            "--role",
            "admin",
            "--api",
        ],
    );
    // A program's token limited to one township's subtree, where this county holds nothing of
    // its own; and one that would reach outside the county, refused.
    let limited = new_token(
        &node,
        &[
            "credential",
            "add",
            "--name",
            "王店镇 接口",
            "--role",
            "viewer",
            "--within",
            "330411101000",
        ],
    );
    let outside = node.fails(
        &[
            "credential",
            "add",
            "--name",
            "外区 接口",
            "--role",
            "viewer",
            "--within",
            "330402000000",
        ],
        2,
    );
    assert!(outside.contains("within"), "{outside}");
    // Three refusals in the audit log, as the receive path writes them when a township sends
    // what it may not: written into the node's own file before it runs, so the log's answer
    // is known exactly.
    {
        let conn = rusqlite::Connection::open(node.db()).unwrap();
        for (n, (kind, rule)) in [
            ("opinion", "authority.child_subtree"),
            ("suggestion", "authority.addressed_congress"),
            ("petition", "route.missing"),
        ]
        .into_iter()
        .enumerate()
        {
            conn.execute(
                "INSERT INTO audit (at, peer, record_id, kind, rule, reason, changes)
                 VALUES (?1, '330411101000', ?2, ?3, ?4, '记录不符合规则', ?5)",
                rusqlite::params![
                    format!("2026-12-0{}T08:00:00+00:00", n + 1),
                    format!("01M9000000000000000000000{n}"),
                    kind,
                    rule,
                    n as i64 + 1
                ],
            )
            .unwrap();
        }
    }
    let expect = dir.path().join("expect.json");
    std::fs::write(
        &expect,
        serde_json::json!({
            "region": COUNTY,
            "name": NAME,
            "parent": "330400000000",
            "version": env!("CARGO_PKG_VERSION"),
            // The county's five and the township's two.
            "opinions": 7,
            "opinion_states": {
                "RECORD_STATE_OPINION_RECEIVED": 4,
                "RECORD_STATE_OPINION_HANDLED": 3,
            },
            "own_opinion_states": {
                "RECORD_STATE_OPINION_RECEIVED": 3,
                "RECORD_STATE_OPINION_HANDLED": 2,
            },
            "opinion_days": [
                [2026, 11, 1], [2026, 11, 2], [2026, 11, 3], [2026, 11, 3],
                [2026, 11, 4], [2026, 11, 5], [2026, 11, 6],
            ],
            "answered_opinion": opinions[0],
            "notices": 2,
            "audit_rules": ["route.missing", "authority.addressed_congress", "authority.child_subtree"],
            "delegate": lead,
            "idle_delegate": idle,
            "activity": activity,
            "suggestion": suggestion,
            "township": TOWNSHIP,
            "township_name": TOWNSHIP_NAME,
            "township_opinions": 2,
        })
        .to_string(),
    )
    .unwrap();

    let ports = common::free_ports(2);
    let addr = format!("127.0.0.1:{}", ports[0]);
    let sync_addr = format!("127.0.0.1:{}", ports[1]);
    let mut running = common::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_renda"))
            .args([
                "run",
                "--listen",
                &sync_addr,
                "--query-listen",
                &addr,
                "--https-cert",
                certs.join("https.pem").to_str().unwrap(),
                "--https-key",
                certs.join("https-key.pem").to_str().unwrap(),
            ])
            .env("RENDA_DATA_DIR", node.path())
            .env("RENDA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start renda run"),
    );
    // The banner names the Query API once it listens.
    let mut banner = BufReader::new(running.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("查询接口") {
        line.clear();
        if banner.read_line(&mut line).unwrap() == 0 {
            let _ = running.kill();
            panic!("renda run ended before serving the Query API");
        }
    }
    assert!(line.contains("TLS"), "{line}");

    // A township below the county, which sends up its two opinions and its numbers once: the
    // county then has a child, a descendant's rollup and records outside its own.
    let township = Node::init(TOWNSHIP, TOWNSHIP_NAME);
    township.ok(&["attach", "--parent", &sync_addr]);
    let mut township_opinions = Vec::new();
    for (content, day) in [
        ("自来水水压不足", "2026-11-02"),
        ("垃圾清运不及时", "2026-11-06"),
    ] {
        township_opinions.push(township.create(&[
            "opinion",
            "add",
            "--source",
            "visit",
            "--content",
            content,
            "--date",
            day,
        ]));
    }
    township.ok(&[
        "opinion",
        "answer",
        &township_opinions[0],
        "--reply",
        "已联系水厂",
    ]);
    township.ok(&["rollup"]);
    township.ok(&["sync", "--once"]);

    let client = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/query_api.py"
        ))
        .args([
            "--addr",
            &format!("localhost:{}", addr.rsplit(':').next().unwrap()),
        ])
        .args(["--ca", ca.join("ca.pem").to_str().unwrap()])
        .args(["--token", &token])
        .args(["--admin-token", &admin])
        .args(["--limited-token", &limited])
        .args(["--expect", expect.to_str().unwrap()])
        .output()
        .expect("python3 runs (scripts/test.sh installs grpcio-tools)");
    // A stock command-line client in Go that learns the service from reflection alone, as
    // grpcurl does: `buf curl` (buf-bin from PyPI; grpcurl itself is not installable here).
    let url = format!("https://localhost:{}", addr.rsplit(':').next().unwrap());
    let buf_curl = |args: &[&str]| {
        let out = Command::new("buf")
            .args([
                "curl",
                "--protocol",
                "grpc",
                "--reflect-protocol",
                "grpc-v1",
            ])
            .args(["--cacert", ca.join("ca.pem").to_str().unwrap()])
            .args(args)
            .output()
            .expect("buf runs (scripts/test.sh installs buf-bin)");
        assert!(
            out.status.success(),
            "buf curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let services = buf_curl(&["--list-services", &url]);
    assert!(
        services
            .lines()
            .any(|l| l.trim() == "renda.query.v1.QueryService"),
        "{services}"
    );
    let node_json: serde_json::Value = serde_json::from_str(&buf_curl(&[
        "-H",
        &format!("authorization: Bearer {token}"),
        "-d",
        "{}",
        &format!("{url}/renda.query.v1.QueryService/GetNode"),
    ]))
    .unwrap();
    assert_eq!(node_json["node"]["region"], COUNTY, "{node_json}");
    assert_eq!(node_json["node"]["level"], "LEVEL_COUNTY", "{node_json}");
    let record: serde_json::Value = serde_json::from_str(&buf_curl(&[
        "-H",
        &format!("authorization: Bearer {token}"),
        "-d",
        &serde_json::json!({ "id": suggestion }).to_string(),
        &format!("{url}/renda.query.v1.QueryService/GetRecord"),
    ]))
    .unwrap();
    assert_eq!(
        record["record"]["suggestion"]["status"]["state"], "RECORD_STATE_SUGGESTION_TRACKING",
        "{record}"
    );
    drop(running);
    assert!(
        client.status.success(),
        "the Python client failed:\n{}\n{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        String::from_utf8_lossy(&client.stdout).contains("every call answered as expected"),
        "{}",
        String::from_utf8_lossy(&client.stdout)
    );
}
