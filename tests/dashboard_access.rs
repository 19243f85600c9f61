//! Who may use the dashboard, over real HTTP on loopback: nothing without a credential, reads
//! for a viewer, the one write (重点督办) for a clerk of the owning congress, the audit log for an
//! admin; a revoked token stops at once, and a login sets a cookie scripts cannot read.

mod common;

use chrono::NaiveDate;
use common::fed::{Federation, WANGDIAN, XIUZHOU, code};
use common::http::request;
use renda_node::access::Role;
use renda_node::office::{self, SuggestionDraft};
use renda_node::record::{Body, RecordId};
use renda_node::store::StoreHandle;

async fn key_supervision(store: &StoreHandle, id: RecordId) -> bool {
    store
        .call(move |s| {
            let r = s.get(&id)?;
            match &r.body {
                Body::Suggestion(sg) => Ok(sg.fold(&r.header).0.key_supervision),
                _ => unreachable!(),
            }
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lets_in_only_credentials_whose_role_allows_the_request() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let county = fed.node(XIUZHOU).store.clone();
    let township = fed.node(WANGDIAN).store.clone();
    let lead = common::data::add_two_level_delegate(&fed, WANGDIAN, XIUZHOU, "沈建华".into()).await;
    // One suggestion addressed to the county, one to the township itself.
    let mut ids = Vec::new();
    for to in [XIUZHOU, WANGDIAN] {
        let draft = SuggestionDraft {
            title: format!("关于修缮灌溉渠道的建议（致 {to}）"),
            body: "渠道渗漏严重。".into(),
            category: "农业农村".into(),
            lead,
            cosigners: vec![],
            addressed_to: code(to),
            session: None,
            group: None,
        };
        let date = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        ids.push(
            township
                .write(move |tx| office::submit_suggestion(tx, "clerk", draft, date))
                .await
                .unwrap()
                .id,
        );
    }
    let (to_county, to_township) = (ids[0], ids[1]);
    fed.sync_once(WANGDIAN).await;
    county
        .write(|tx| tx.refresh_rollup(chrono::Utc::now(), &Default::default()))
        .await
        .unwrap();

    let web = fed.serve_dashboard(XIUZHOU).await;
    let token = |name: &'static str, role| {
        let county = county.clone();
        async move {
            county
                .write(move |tx| tx.add_credential(name, role))
                .await
                .unwrap()
        }
    };
    let viewer = token("区人大 领导", Role::Viewer).await;
    let clerk = token("区人大 代表工委", Role::Clerk).await;
    let admin = token("区人大 运维", Role::Admin).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let supervise = format!("/records/{to_county}/supervise");

    // Nobody: pages lead to the login page, writes are refused, nothing is written.
    let r = request(web, "GET", "/suggestions", &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=%2Fsuggestions"));
    let r = request(web, "GET", "/login", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("访问令牌"));
    let r = request(web, "POST", &supervise, &[], "key=true").await;
    assert_eq!(r.status, 401);
    let r = request(web, "GET", "/", &[("Authorization", "Bearer renda_00")], "").await;
    assert_eq!(r.status, 303, "an unknown token is nobody");

    // A login with a wrong token says so; a right one sets a cookie scripts cannot read.
    let r = request(web, "POST", "/login", &[], "token=renda_00&next=%2F").await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("令牌无效"));
    let r = request(
        web,
        "POST",
        "/login",
        &[],
        &format!("token={viewer}&next=%2Fsync"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/sync"));
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let r = request(
        web,
        "POST",
        "/login",
        &[],
        &format!("token={viewer}&next=https%3A%2F%2Fevil.example%2F"),
    )
    .await;
    assert_eq!(
        r.header("location"),
        Some("/"),
        "a login never sends the browser elsewhere"
    );
    let session = cookie.split(';').next().unwrap().to_string();

    // A viewer reads, with the cookie or the header, but may not write or read the audit log.
    let r = request(web, "GET", "/sync", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("区人大 领导"),
        "the page says who is logged in"
    );
    let r = request(web, "GET", "/", &[("Authorization", &bearer(&viewer))], "").await;
    assert_eq!(r.status, 200);
    let r = request(web, "POST", &supervise, &[("Cookie", &session)], "key=true").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("role"), "the refusal names the rule");
    let r = request(
        web,
        "GET",
        "/audit",
        &[("Authorization", &bearer(&viewer))],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(!key_supervision(&county, to_county).await);

    // A clerk of the county sets 重点督办 on what is addressed to the county, but not on what
    // the township's own congress handles, and bad forms name the field.
    let as_clerk = [("Authorization", bearer(&clerk))];
    let as_clerk: Vec<(&str, &str)> = as_clerk.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let r = request(web, "POST", &supervise, &as_clerk, "key=maybe").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("key"));
    let r = request(web, "POST", &supervise, &as_clerk, "key=true").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(key_supervision(&county, to_county).await);
    let r = request(
        web,
        "POST",
        &format!("/records/{to_township}/supervise"),
        &as_clerk,
        "key=true",
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(
        r.body.contains("authority.addressed_congress"),
        "{}",
        r.body
    );
    assert!(!key_supervision(&county, to_township).await);
    let r = request(web, "GET", "/audit", &as_clerk, "").await;
    assert_eq!(r.status, 403);

    // An admin reads the audit log.
    let r = request(
        web,
        "GET",
        "/audit",
        &[("Authorization", &bearer(&admin))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("审计日志"));

    // Revoking the viewer ends its session at once.
    county
        .write(|tx| tx.revoke_credential("区人大 领导"))
        .await
        .unwrap();
    let r = request(web, "GET", "/sync", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 303);

    // The flag travels: the township's copy shows it after the next sync.
    fed.sync_once(WANGDIAN).await;
    assert!(key_supervision(&township, to_county).await);
}

/// A long input never comes back whole: an error page quotes a short prefix of it. And a login
/// with `next` pointing off-site (the reported `/%09/host/`, which a browser follows to `host`
/// once it strips the tab) goes to the overview instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_quote_inputs_short_and_logins_stay_on_the_site() {
    let fed = Federation::start(&[(XIUZHOU, "秀洲区人大常委会")]).await;
    let county = fed.node(XIUZHOU).store.clone();
    let web = fed.serve_dashboard(XIUZHOU).await;
    let token = county
        .write(|tx| tx.add_credential("区人大 领导", Role::Viewer))
        .await
        .unwrap();
    let auth = format!("Bearer {token}");
    let long = "9".repeat(60_000);
    for path in [
        format!("/records?kind={long}"),
        format!("/?region={long}"),
        format!("/records?period={long}"),
    ] {
        let r = request(web, "GET", &path, &[("Authorization", &auth)], "").await;
        assert_eq!(r.status, 400, "{}", &path[..20]);
        // The page carries the dashboard's style sheet inline (about 7 KB); the 60,000
        // characters typed never come back.
        assert!(
            r.body.len() < 16_000,
            "{}: the page is {} bytes",
            &path[..20],
            r.body.len()
        );
        assert!(
            r.body.contains("9999"),
            "the page quotes a prefix of the input"
        );
    }

    for next in [
        "%2F%09%2Fevil.example%2F",
        "/%09/evil.example/",
        "%2F%5Cevil.example",
        "%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example%2F",
    ] {
        let body = format!("token={token}&next={next}");
        let r = request(web, "POST", "/login", &[], &body).await;
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.header("location"), Some("/"), "next={next}");
    }
    let body = format!("token={token}&next=%2Fsuggestions%3Fregion%3D330411000000");
    let r = request(web, "POST", "/login", &[], &body).await;
    assert_eq!(
        r.header("location"),
        Some("/suggestions?region=330411000000")
    );
}
