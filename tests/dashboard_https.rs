//! The dashboard over HTTPS with a certificate from `renda ca issue --server`, and its sessions:
//! the cookie holds a session id (never the token), is `Secure`, and stops working at logout;
//! failed logins from one address are paused; plain HTTP is refused off loopback.

mod common;

use std::sync::Arc;

use common::fed::{Federation, XIUZHOU, code, start_node};
use renda_node::access::Role;
use renda_node::pki::CertificateAuthority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over TLS, trusting only the federation's CA and checking the name.
async fn request(
    addr: std::net::SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let name = rustls::pki_types::ServerName::try_from("renda-county.internal").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
    let mut text =
        format!("{method} {path} HTTP/1.1\r\nHost: renda-county.internal\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let head = raw.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply { status, headers }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_serves_https_with_server_side_sessions() {
    // An empty federation: it fails the test on any ERROR logged while the node runs.
    let _fed = Federation::start(&[]).await;
    // The operator's steps: a CA, a server certificate naming the dashboard's host, and the
    // node started with it.
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::create("联邦 CA", 365).unwrap();
    let cert = ca
        .issue_server(
            "秀洲区人大看板",
            &["renda-county.internal".to_string()],
            &["127.0.0.1".parse().unwrap()],
            30,
        )
        .unwrap();
    cert.save_server(dir.path(), &ca.cert_pem).unwrap();
    let data = tempfile::tempdir().unwrap();
    let https = renda_node::node::HttpsFiles {
        cert: dir.path().join(renda_node::pki::SERVER_CERT),
        key: dir.path().join(renda_node::pki::SERVER_KEY),
    };
    let node = start_node(
        data.path(),
        code(XIUZHOU),
        "秀洲区人大常委会",
        move |c| {
            c.listen = None;
            c.http = Some("127.0.0.1:0".parse().unwrap());
            c.https = Some(https);
            c.rollup_every = None;
        },
    )
    .await;
    assert!(node.https());
    let addr = node.http_addr().unwrap();
    let token = node
        .store()
        .write(|tx| tx.add_credential("区人大 领导", Role::Viewer))
        .await
        .unwrap();
    node.store()
        .write(|tx| {
            tx.refresh_rollup(
                chrono::Utc::now(),
                &renda_node::record::rollup::RollupRules::default(),
            )
        })
        .await
        .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(renda_node::pki::pem_cert(&ca.cert_pem, std::path::Path::new("ca.pem")).unwrap())
        .unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );

    let r = request(addr, &client, "GET", "/login", &[], "").await;
    assert_eq!(r.status, 200, "the login page over HTTPS");

    // A login opens a session: the cookie holds its id, never the token, and is Secure.
    let r = request(
        addr,
        &client,
        "POST",
        "/login",
        &[],
        &format!("token={token}&next=%2F"),
    )
    .await;
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.starts_with("renda_session=session_"), "{cookie}");
    assert!(!cookie.contains(&token), "the cookie is not the token");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let r = request(addr, &client, "GET", "/", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 200, "the session lets the browser in");

    // Logout ends the session in the store: the same cookie, replayed, is nobody.
    let r = request(
        addr,
        &client,
        "POST",
        "/logout",
        &[("Cookie", &session)],
        "",
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = request(addr, &client, "GET", "/", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 303, "a logged-out session is refused");
    assert!(r.header("location").unwrap().starts_with("/login"));

    // Revoking the credential ends its sessions too.
    let r = request(
        addr,
        &client,
        "POST",
        "/login",
        &[],
        &format!("token={token}&next=%2F"),
    )
    .await;
    let session = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    node.store()
        .write(|tx| tx.revoke_credential("区人大 领导"))
        .await
        .unwrap();
    let r = request(addr, &client, "GET", "/", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 303, "a revoked credential's session is refused");

    // Failed logins from one address are paused after five, with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = request(
            addr,
            &client,
            "POST",
            "/login",
            &[],
            "token=renda_00&next=%2F",
        )
        .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
        }
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429, 429]);
}

/// `renda run` refuses plain HTTP on any address but loopback, for the dashboard and metrics
/// alike, and says how to serve HTTPS; with a certificate from `renda ca issue --server` it
/// starts.
#[test]
fn plain_http_off_loopback_is_refused_and_https_is_served() {
    let node = common::Node::init(common::WANGDIAN, "王店镇人大主席团");
    for flag in ["--http", "--metrics"] {
        let stderr = node.fails(&["run", "--listen", "127.0.0.1:0", flag, "0.0.0.0:0"], 2);
        assert!(
            stderr.contains("HTTPS") && stderr.contains("0.0.0.0"),
            "{stderr}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    node.ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    let out = dir.path().join("https");
    node.ok(&[
        "ca",
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--server",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        out.to_str().unwrap(),
    ]);
    // A server certificate without a name, or with a region, is refused.
    node.fails(
        &[
            "ca",
            "issue",
            "--ca",
            ca.to_str().unwrap(),
            "--server",
            "--out",
            "/tmp/x",
        ],
        2,
    );
    node.fails(
        &[
            "ca",
            "issue",
            "--ca",
            ca.to_str().unwrap(),
            "--server",
            "--region",
            common::WANGDIAN,
            "--dns",
            "localhost",
            "--out",
            "/tmp/x",
        ],
        2,
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_renda"))
        .args([
            "run",
            "--http",
            "0.0.0.0:0",
            "--https-cert",
            out.join("https.pem").to_str().unwrap(),
            "--https-key",
            out.join("https-key.pem").to_str().unwrap(),
        ])
        .env("RENDA_DATA_DIR", node.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("看板：https://"), "{line}");
}
