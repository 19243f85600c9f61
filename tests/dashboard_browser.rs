//! The dashboard in a real headless Chromium (Debian's `chromium`, driven over WebDriver by
//! `chromedriver`; scripts/test.sh installs both): every page renders, its numbers are the ones
//! the gRPC query service gives, and drill-down from a region to its children and from a number
//! to its records works by clicking.
//!
//! The federation's records are random; the seed is printed, and `RENDA_SEED=<n>` replays it.

// Compares the dashboard with the first Query service, whose JSON fields are deprecated for
// new programs only.
#![allow(deprecated)]

mod common;

use std::time::Duration;

use common::browser::{browser, click, click_to_next_page, login, start_driver, text};
use common::data::{populate, roll_up};
use common::fed::{
    CITY, FENGQIAO, NANHU, NATIONAL, PROVINCE, WANGDIAN, XINCHENG, XIUZHOU, YUXIN, code,
    five_levels,
};
use fantoccini::{Client, Locator};
use rand::SeedableRng;
use rand::rngs::StdRng;
use renda_hub::auth::{QueryClient, query_client};
use renda_node::access::Role;
use renda_proto::v1::{GetDutyRecordRequest, GetRollupRequest, ListRecordsRequest};
use serde_json::{Value, json};

async fn rollup(query: &mut QueryClient, region: &str) -> Value {
    let reply = query
        .get_rollup(GetRollupRequest {
            region: region.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&reply.rollup_json).unwrap()
}

/// Every record of a list, over all its pages.
async fn list_all(query: &mut QueryClient, mut request: ListRecordsRequest) -> Vec<String> {
    let mut ids = Vec::new();
    request.page_size = 500;
    loop {
        let page = query
            .list_records(request.clone())
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.records.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        request.page_token = page.next_page_token;
    }
}

fn sum(v: &Value) -> u64 {
    v.as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// The numbers of a subtree as the query service gives them, by the dashboard's metric names.
fn expected(total: &Value) -> Vec<(&'static str, String)> {
    let activities: u64 = total["activities"]
        .as_object()
        .map(|m| m.values().map(sum).sum())
        .unwrap_or(0);
    let share = |num: &str, den: &str| {
        let (n, d) = (
            total[num].as_u64().unwrap_or(0),
            total[den].as_u64().unwrap_or(0),
        );
        if d == 0 {
            "—".to_string()
        } else {
            format!("{:.1}%", n as f64 / d as f64 * 100.0)
        }
    };
    vec![
        ("delegates.total", sum(&total["delegates"]).to_string()),
        ("activities.total", activities.to_string()),
        ("sign_ins", total["sign_ins"].to_string()),
        (
            "constituents_received",
            total["constituents_received"].to_string(),
        ),
        ("opinions.total", sum(&total["opinions"]).to_string()),
        ("suggestions.total", sum(&total["suggestions"]).to_string()),
        ("overdue", total["overdue"].to_string()),
        ("on_time_rate", share("answered_on_time", "answered")),
        ("satisfaction_rate", share("satisfied", "evaluated")),
    ]
}

/// Asserts the overview's cards show the subtree numbers the query service gives.
async fn assert_cards(c: &Client, total: &Value, what: &str) {
    for (metric, want) in expected(total) {
        let shown = text(c, &format!(".cards [data-metric=\"{metric}\"]")).await;
        assert_eq!(shown, want, "{what}: {metric}");
    }
}

async fn assert_no_error(c: &Client, what: &str) {
    let errors = c.find_all(Locator::Css("section.error")).await.unwrap();
    assert!(errors.is_empty(), "{what} shows an error page");
    assert!(!text(c, "main h1").await.is_empty(), "{what} has a heading");
}

/// A credential of `role` at the node.
async fn credential(fed: &common::fed::Federation, region: &str, name: &str, role: Role) -> String {
    let name = name.to_string();
    fed.node(region)
        .store
        .write(move |tx| tx.add_credential(&name, role))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_shows_the_query_apis_numbers_and_drills_down() {
    let seed: u64 = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("dashboard federation seed: {seed} (replay with RENDA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let fed = five_levels().await;
    for region in [WANGDIAN, XINCHENG, FENGQIAO, YUXIN, XIUZHOU, NANHU] {
        populate(&fed.node(region).store, code(region), &mut rng).await;
    }
    fed.settle().await;
    roll_up(&fed).await;

    let city_web = fed.serve_dashboard(CITY).await;
    let national_web = fed.serve_dashboard(NATIONAL).await;
    let city_token = credential(&fed, CITY, "市人大代表工委", Role::Viewer).await;
    let national_token = credential(&fed, NATIONAL, "全国人大代表工委", Role::Viewer).await;
    let mut city = query_client(format!("http://{}", fed.node(CITY).addr), &city_token)
        .await
        .unwrap();
    let mut national = query_client(
        format!("http://{}", fed.node(NATIONAL).addr),
        &national_token,
    )
    .await
    .unwrap();
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // Without logging in, every page leads to the login page.
    c.goto(&format!("http://{city_web}/suggestions"))
        .await
        .unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "{url}");
    assert!(c.find(Locator::Css("form.login")).await.is_ok());

    // Every tab renders at the city and at the national node.
    for (web, region, token) in [
        (city_web, CITY, &city_token),
        (national_web, NATIONAL, &national_token),
    ] {
        login(&c, web, token).await;
        for path in ["/", "/suggestions", "/activities", "/quotas", "/sync"] {
            c.goto(&format!("http://{web}{path}")).await.unwrap();
            assert_no_error(&c, &format!("{region}{path}")).await;
            let lang = c
                .find(Locator::Css("html"))
                .await
                .unwrap()
                .attr("lang")
                .await
                .unwrap();
            assert_eq!(lang.as_deref(), Some("zh-CN"));
        }
    }

    // The city's overview: its subtree's numbers and each county's, as the query API says.
    login(&c, city_web, &city_token).await;
    c.goto(&format!("http://{city_web}/")).await.unwrap();
    let city_rollup = rollup(&mut city, CITY).await;
    assert_cards(&c, &city_rollup["total"], "city overview").await;
    // The report figures beside them: 办复率 and 办结率 over the suggestions assigned, and the
    // opinions ever passed on, whatever their state now.
    let total = &city_rollup["total"];
    let states = &total["suggestions"];
    let state = |s: &str| states[s].as_u64().unwrap_or(0);
    let assigned: u64 = [
        "assigned",
        "sent_back",
        "answered",
        "rehandling",
        "tracking",
        "satisfied",
        "closed",
    ]
    .iter()
    .map(|s| state(s))
    .sum();
    let rate = |n: u64| {
        if assigned == 0 {
            "—".to_string()
        } else {
            format!("{:.1}%", n as f64 / assigned as f64 * 100.0)
        }
    };
    c.goto(&format!("http://{city_web}/suggestions"))
        .await
        .unwrap();
    assert_eq!(
        text(&c, ".cards [data-metric=\"answered_rate\"]").await,
        rate(total["answered"].as_u64().unwrap_or(0))
    );
    assert_eq!(
        text(&c, ".cards [data-metric=\"closed_rate\"]").await,
        rate(state("closed"))
    );
    c.goto(&format!("http://{city_web}/activities"))
        .await
        .unwrap();
    let passed_on = text(&c, ".cards [data-metric=\"opinions.passed_on\"]").await;
    assert_eq!(passed_on, total["opinions_passed_on"].to_string());
    assert_ne!(passed_on, "0", "the test data passes opinions on");
    // A period's page counts the people of its months only, as the query service does.
    let month = total["sign_ins_by_month"]
        .as_object()
        .and_then(|m| m.keys().next_back().cloned())
        .expect("sign-ins by month");
    let in_month: Value = serde_json::from_str(
        &city
            .get_rollup(GetRollupRequest {
                region: CITY.into(),
                period: month.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .rollup_json,
    )
    .unwrap();
    c.goto(&format!("http://{city_web}/activities?period={month}"))
        .await
        .unwrap();
    for metric in ["sign_ins", "constituents_received"] {
        let shown = text(&c, &format!(".cards [data-metric=\"{metric}\"]")).await;
        assert_eq!(
            shown,
            in_month["total"][metric].to_string(),
            "{month}: {metric}"
        );
    }
    assert_eq!(
        in_month["total"]["sign_ins"].as_u64().unwrap_or(0),
        total["sign_ins_by_month"][&month].as_u64().unwrap_or(0)
    );
    c.goto(&format!("http://{city_web}/")).await.unwrap();
    for county in [XIUZHOU, NANHU] {
        let county_rollup = rollup(&mut city, county).await;
        let row_metrics = [
            "delegates.total",
            "activities.total",
            "opinions.total",
            "suggestions.total",
            "overdue",
        ];
        for (metric, want) in expected(&county_rollup["total"])
            .into_iter()
            .filter(|(m, _)| row_metrics.contains(m))
        {
            let shown = text(
                &c,
                &format!("table.children tr[data-region=\"{county}\"] [data-metric=\"{metric}\"]"),
            )
            .await;
            assert_eq!(shown, want, "county {county} row: {metric}");
        }
    }
    assert!(text(&c, "h1").await.contains("嘉兴市人大常委会"));

    // The national node sees the same subtree totals without holding the township records.
    login(&c, national_web, &national_token).await;
    c.goto(&format!("http://{national_web}/")).await.unwrap();
    let national_rollup = rollup(&mut national, NATIONAL).await;
    assert_eq!(national_rollup["total"], city_rollup["total"]);
    assert_cards(&c, &national_rollup["total"], "national overview").await;
    let province_row = text(
        &c,
        &format!("table.children tr[data-region=\"{PROVINCE}\"] a"),
    )
    .await;
    assert_eq!(province_row, "浙江省人大常委会");

    // Drill down by clicking: city → 秀洲区 → 王店镇.
    login(&c, city_web, &city_token).await;
    c.goto(&format!("http://{city_web}/")).await.unwrap();
    click(
        &c,
        &format!("table.children tr[data-region=\"{XIUZHOU}\"] a"),
    )
    .await;
    assert!(c.current_url().await.unwrap().as_str().contains(XIUZHOU));
    assert!(text(&c, "h1").await.contains("秀洲区人大常委会"));
    assert_cards(
        &c,
        &rollup(&mut city, XIUZHOU).await["total"],
        "秀洲区 via drill-down",
    )
    .await;
    click(
        &c,
        &format!("table.children tr[data-region=\"{WANGDIAN}\"] a"),
    )
    .await;
    assert!(text(&c, "h1").await.contains("王店镇人大主席团"));
    let township = rollup(&mut city, WANGDIAN).await;
    assert_cards(&c, &township["total"], "王店镇 via drill-down").await;
    let crumbs = c.find_all(Locator::Css("nav.crumbs a")).await.unwrap();
    assert_eq!(crumbs.len(), 3, "嘉兴市 › 秀洲区 › 王店镇");

    // From a number to the records behind it: the city holds every township record, so the
    // list holds exactly what the number counts, and the same records the query API lists.
    click(&c, ".cards a[data-metric=\"opinions.total\"]").await;
    assert_no_error(&c, "opinions behind the number").await;
    let held = text(&c, "[data-metric=\"records.held\"]").await;
    assert_eq!(held, sum(&township["total"]["opinions"]).to_string());
    let listed = list_all(
        &mut city,
        ListRecordsRequest {
            kind: "opinion".into(),
            within: WANGDIAN.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(held, listed.len().to_string());
    let shown_rows = c
        .find_all(Locator::Css("table.records tbody tr"))
        .await
        .unwrap();
    assert_eq!(shown_rows.len(), listed.len().min(50));
    for row in shown_rows {
        let id = row.attr("data-id").await.unwrap().unwrap();
        assert!(listed.contains(&id), "{id} is not in the query API's list");
    }

    // The suggestion funnel: each bar is a count by state, and clicking it lists those records.
    c.goto(&format!("http://{city_web}/suggestions?region={WANGDIAN}"))
        .await
        .unwrap();
    let bars = c
        .find_all(Locator::Css("svg[data-chart=\"suggestion-states\"] g.bar"))
        .await
        .unwrap();
    let mut clicked = None;
    for bar in &bars {
        let value: u64 = bar
            .attr("data-value")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        let label = bar.attr("data-label").await.unwrap().unwrap();
        let state = renda_node::record::suggestion::SuggestionState::parse("state", &label)
            .unwrap()
            .as_str();
        assert_eq!(
            value,
            township["total"]["suggestions"][state]
                .as_u64()
                .unwrap_or(0),
            "funnel bar {label}"
        );
        if value > 0 && clicked.is_none() {
            clicked = Some((state, value));
        }
    }
    let (state, value) = clicked.expect("every township has suggestions");
    click(
        &c,
        &format!("svg[data-chart=\"suggestion-states\"] g.bar a[href*=\"status={state}\"] rect"),
    )
    .await;
    assert_eq!(
        text(&c, "[data-metric=\"records.held\"]").await,
        value.to_string()
    );

    // One record with its history.
    click(&c, "table.records tbody tr a").await;
    assert_no_error(&c, "a suggestion's page").await;
    assert!(
        c.find_all(Locator::Css("table.history"))
            .await
            .unwrap()
            .len()
            == 1,
        "a suggestion shows its handling history"
    );

    // A delegate's duty record against the query API's.
    c.goto(&format!("http://{city_web}/quotas?region={WANGDIAN}"))
        .await
        .unwrap();
    click(&c, "table.delegates tbody tr a").await;
    let url = c.current_url().await.unwrap();
    let delegate = url.path().rsplit('/').next().unwrap().to_string();
    let duty = city
        .get_duty_record(GetDutyRecordRequest {
            delegate: delegate.clone(),
            year: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        text(&c, "[data-metric=\"duty.activities\"]").await,
        duty.activities.len().to_string()
    );
    assert_eq!(
        text(&c, "[data-metric=\"duty.receptions\"]").await,
        duty.receptions.to_string()
    );
    assert_eq!(
        text(&c, "[data-metric=\"duty.suggestions\"]").await,
        duty.suggestions_made.to_string()
    );
    let meets = c
        .find(Locator::Css("[data-metric=\"duty.meets_quota\"]"))
        .await
        .unwrap()
        .attr("data-value")
        .await
        .unwrap();
    assert_eq!(
        meets.as_deref(),
        Some(if duty.meets_quota { "true" } else { "false" })
    );

    // Bad questions get a page that names the field.
    for (path, field) in [
        ("/records?kind=bogus", "kind"),
        ("/?region=3304", "region"),
        ("/records?period=2026-13", "period"),
        ("/records/not-an-id", "id"),
    ] {
        c.goto(&format!("http://{city_web}{path}")).await.unwrap();
        let message = text(&c, "section.error .message").await;
        assert!(message.starts_with(field), "{path}: {message}");
    }
    // A region outside the node's subtree is not shown.
    c.goto(&format!("http://{city_web}/?region=410000000000"))
        .await
        .unwrap();
    assert!(
        text(&c, "section.error .message")
            .await
            .contains("不在本节点")
    );

    // Roles, at a township whose suggestions are addressed to its own congress. A viewer sees
    // no 重点督办 button and a hand-made POST is refused; a clerk sets it by clicking; only an
    // admin sees the audit log.
    let town_web = fed.serve_dashboard(WANGDIAN).await;
    let town = fed.node(WANGDIAN).store.clone();
    let target = town
        .call(|s| {
            let rows = s.list(&renda_node::store::ListQuery {
                kind: Some(renda_node::record::RecordKind::Suggestion),
                ..Default::default()
            })?;
            Ok(rows
                .into_iter()
                .find(|r| {
                    !matches!(
                        r.status.as_deref(),
                        Some("closed" | "not_accepted" | "draft")
                    )
                })
                .map(|r| r.id))
        })
        .await
        .unwrap()
        .expect("a suggestion still in handling");
    let supervised = |store: renda_node::store::StoreHandle| async move {
        store
            .call(move |s| match s.get(&target)?.body {
                renda_node::record::Body::Suggestion(sg) => {
                    let header = s.get(&target)?.header;
                    Ok(sg.fold(&header).0.key_supervision)
                }
                _ => unreachable!(),
            })
            .await
            .unwrap()
    };
    assert!(!supervised(town.clone()).await);

    let viewer = credential(&fed, WANGDIAN, "镇人大 查看", Role::Viewer).await;
    login(&c, town_web, &viewer).await;
    c.goto(&format!("http://{town_web}/records/{target}"))
        .await
        .unwrap();
    assert_no_error(&c, "the suggestion as a viewer").await;
    assert!(
        c.find_all(Locator::Css("[data-action=supervise]"))
            .await
            .unwrap()
            .is_empty(),
        "a viewer is offered no write"
    );
    let status = c
        .execute(
            &format!(
                "return fetch('/records/{target}/supervise', {{method: 'POST', \
                 headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, \
                 body: 'key=true'}}).then(r => r.status)"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403), "a viewer's write is refused");
    assert!(!supervised(town.clone()).await);
    c.goto(&format!("http://{town_web}/audit")).await.unwrap();
    assert_eq!(
        c.find(Locator::Css("section.error"))
            .await
            .unwrap()
            .attr("data-status")
            .await
            .unwrap()
            .as_deref(),
        Some("403")
    );

    let clerk = credential(&fed, WANGDIAN, "镇人大 办事员", Role::Clerk).await;
    login(&c, town_web, &clerk).await;
    c.goto(&format!("http://{town_web}/records/{target}"))
        .await
        .unwrap();
    // 重点督办 is one of the steps the page offers a clerk, folded until opened.
    click(&c, "details.step[data-step=supervise] > summary").await;
    click_to_next_page(&c, "[data-action=supervise]").await;
    assert_no_error(&c, "the suggestion after 重点督办").await;
    assert!(
        supervised(town.clone()).await,
        "the clerk's click was recorded"
    );
    assert!(
        text(&c, "details.step[data-step=supervise] > summary")
            .await
            .contains("取消"),
        "the page now offers to clear it"
    );

    let admin = credential(&fed, WANGDIAN, "镇人大 运维", Role::Admin).await;
    login(&c, town_web, &admin).await;
    click(&c, "nav.tabs a[href^=\"/audit\"]").await;
    assert_no_error(&c, "the audit log").await;
    assert_eq!(
        c.find(Locator::Css("[data-metric=\"audit.count\"]"))
            .await
            .unwrap()
            .attr("data-value")
            .await
            .unwrap()
            .as_deref(),
        Some("0"),
        "no honest node was refused anything"
    );

    // Logging out ends the session.
    click_to_next_page(&c, "header .who button").await;
    c.goto(&format!("http://{town_web}/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");

    c.close().await.unwrap();
}

/// Prints the page the browser shows to PDF, as Chromium's print does, and reads its text back
/// with poppler's `pdftotext`, every run of white space removed (line breaks fall anywhere).
async fn printed_text(c: &Client) -> String {
    let pdf = c
        .print(fantoccini::wd::PrintConfiguration::default())
        .await
        .expect("Chromium prints the page");
    assert!(pdf.starts_with(b"%PDF"), "not a PDF");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext is installed (scripts/test.sh installs poppler-utils)");
    assert!(out.status.success(), "pdftotext failed");
    String::from_utf8_lossy(&out.stdout)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The yearly reports print on paper with the figures the dashboard shows: a county's
/// 建议办理情况报告 from its rollup (the same one the query API answers) and a delegate's
/// 年度履职报告 from the duty record, without the dashboard's navigation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_yearly_reports_print_with_the_figures_the_dashboard_shows() {
    let seed: u64 = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("report federation seed: {seed} (replay with RENDA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let fed = common::fed::Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
    ])
    .await;
    for region in [WANGDIAN, XINCHENG, XIUZHOU] {
        populate(&fed.node(region).store, code(region), &mut rng).await;
    }
    roll_up(&fed).await;
    let web = fed.serve_dashboard(XIUZHOU).await;
    let token = credential(&fed, XIUZHOU, "代表工委", Role::Viewer).await;
    let mut query = query_client(format!("http://{}", fed.node(XIUZHOU).addr), &token)
        .await
        .unwrap();
    let year = "2026";
    let answer = query
        .get_rollup(GetRollupRequest {
            region: XIUZHOU.into(),
            period: year.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let total = serde_json::from_str::<Value>(&answer.rollup_json).unwrap()["total"].clone();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let states = &total["suggestions"];
    let assigned: u64 = [
        "assigned",
        "sent_back",
        "answered",
        "rehandling",
        "tracking",
        "satisfied",
        "closed",
    ]
    .iter()
    .map(|s| n(&states[*s]))
    .sum();
    let rate = |part: u64, whole: u64| {
        if whole == 0 {
            "—".to_string()
        } else {
            format!("{:.1}%", part as f64 * 100.0 / whole as f64)
        }
    };
    let made = sum(&total["suggestions_by_month"]);
    let figures = [
        ("suggestions_made", made.to_string()),
        ("assigned", assigned.to_string()),
        ("answered", n(&total["answered"]).to_string()),
        ("answered_rate", rate(n(&total["answered"]), assigned)),
        ("closed", n(&states["closed"]).to_string()),
        ("closed_rate", rate(n(&states["closed"]), assigned)),
        ("overdue", n(&total["overdue"]).to_string()),
        ("evaluated", n(&total["evaluated"]).to_string()),
        (
            "satisfaction_rate",
            rate(n(&total["satisfied"]), n(&total["evaluated"])),
        ),
    ];

    let driver = start_driver().await;
    let c = browser(&driver).await;
    login(&c, web, &token).await;
    // The 建议办理 page links to this year's report; the test's records are of 2026, whatever
    // year it runs in.
    c.goto(&format!("http://{web}/suggestions")).await.unwrap();
    let link = c
        .find(Locator::Css("a.report"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(link.starts_with("/reports/suggestions?year="), "{link}");
    c.goto(&format!("http://{web}/reports/suggestions?year={year}"))
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("article.report"))
        .await
        .unwrap();
    assert_no_error(&c, "the suggestions report").await;
    for (figure, want) in &figures {
        let shown = text(&c, &format!("article.report [data-figure=\"{figure}\"]")).await;
        assert_eq!(&shown, want, "{figure}");
    }
    let printed = printed_text(&c).await;
    let title = format!("秀洲区人大常委会关于{year}年代表建议办理情况的报告");
    assert!(printed.contains(&title), "{printed}");
    for phrase in [
        format!("代表提出建议{made}件"),
        format!("办复率{}", figures[3].1),
        format!("办结率{}", figures[5].1),
        format!("满意率{}", figures[8].1),
    ] {
        assert!(printed.contains(&phrase), "{phrase} not printed: {printed}");
    }
    for township in ["王店镇人大主席团", "新塍镇人大主席团"] {
        assert!(printed.contains(township), "{township} not printed");
    }
    assert!(
        !printed.contains("活动与民情") && !printed.contains("本页为可打印的报告"),
        "the navigation and the hint are not printed: {printed}"
    );

    // A county delegate's year, from the duty record the 履职档案 page shows.
    let county = fed.node(XIUZHOU).store.clone();
    let delegates = county
        .call(|s| {
            s.list(&renda_node::store::ListQuery {
                kind: Some(renda_node::record::RecordKind::Delegate),
                within: Some(code(XIUZHOU)),
                ..Default::default()
            })
        })
        .await
        .unwrap();
    let person = delegates
        .iter()
        .find(|r| r.home == code(XIUZHOU))
        .expect("a county delegate");
    let (id, name) = (person.id, person.label.clone());
    let duty = county
        .call(move |s| s.duty_record(&id, 2026))
        .await
        .unwrap();
    c.goto(&format!("http://{web}/delegates/{id}?year={year}"))
        .await
        .unwrap();
    click(&c, "a.report").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("article.report"))
        .await
        .unwrap();
    assert_eq!(
        text(&c, "[data-figure=\"activities\"]").await,
        duty.activities.len().to_string()
    );
    let printed = printed_text(&c).await;
    for phrase in [
        format!("{name}{year}年度履职报告"),
        format!("参加代表活动{}次", duty.activities.len()),
        format!("接待选民{}次", duty.receptions),
        format!("领衔或联名提出建议{}件", duty.suggestions.len()),
    ] {
        assert!(printed.contains(&phrase), "{phrase} not printed: {printed}");
    }
    let standing = duty
        .standing
        .as_ref()
        .expect("the county's rules bind its delegates");
    assert!(printed.contains(standing.standing.label()), "{printed}");

    // 履职达标 lists who is behind or short, as the store judges them.
    let today = renda_node::calendar::today();
    use chrono::Datelike;
    let (_, standings) = county
        .call(move |s| s.quota_standings(today.year(), today))
        .await
        .unwrap();
    let short = standings.iter().filter(|s| s.falling_short()).count();
    c.goto(&format!("http://{web}/quotas")).await.unwrap();
    let listed = c
        .find(Locator::Css("[data-metric=\"quota.short_list\"]"))
        .await
        .unwrap()
        .attr("data-value")
        .await
        .unwrap();
    assert_eq!(listed, Some(short.to_string()));
    if let Some(first) = standings.iter().find(|s| s.falling_short()) {
        let rows = c
            .find_all(Locator::Css(&format!(
                "table.shortfalls tr[data-subject=\"{}\"]",
                first.id
            )))
            .await
            .unwrap();
        assert!(!rows.is_empty(), "{} is listed", first.name);
    }
}
