//! The workbench in a real headless Chromium: a township node and its county node with the
//! link live, each serving its dashboard, and clerks who do the work in the browser only.
//!
//! - A suggestion goes from 提交 at 王店镇 to 销号 at 秀洲区 (审查立案, 交办 to a 主办 and a 协办,
//!   延期, 答复, the delegate's 不满意 entered at the township, 重新办理, 答复 again, 满意, 销号),
//!   each side finding it in its 待办 as the link brings the other side's step.
//! - An admin creates the township clerk's account in the browser; the clerk logs in with it.
//! - An illegal step (an extension past six months) is refused beside its form, with what was
//!   typed kept and nothing written.
//! - A form submitted twice applies once; a form rendered before the record moved applies
//!   nothing and shows the record as it is now.
//!
//! Each workbench page is saved as a screenshot under `target/workbench/`.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::browser::{
    browser, choose, click, click_to_next_page, fill, login, login_account, screenshot, set_value,
    start_driver, text, wait_for,
};
use common::fed::{Federation, WANGDIAN, XIUZHOU};
use fantoccini::{Client, Locator};
use renda_node::access::Role;
use renda_node::office;
use renda_node::record::rollup::RollupRules;
use renda_node::record::suggestion::{SuggestionAction, SuggestionState};
use renda_node::record::{Body, RecordId};
use renda_node::store::StoreHandle;

/// Waits up to twenty seconds for `check` to hold, polling.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 20 s");
}

/// The suggestion's state and its number of events at `store`, if it holds it.
async fn state(store: &StoreHandle, id: RecordId) -> Option<(SuggestionState, usize)> {
    store
        .call(move |s| match s.get(&id) {
            Ok(record) => match &record.body {
                Body::Suggestion(sg) => {
                    Ok(Some((sg.fold(&record.header).0.state, sg.events.len())))
                }
                _ => Ok(None),
            },
            Err(_) => Ok(None),
        })
        .await
        .unwrap()
}

async fn wait_state(store: &StoreHandle, id: RecordId, want: SuggestionState) {
    eventually(&format!("{id} reaching {want:?}"), || async {
        state(store, id).await.is_some_and(|(s, _)| s == want)
    })
    .await;
}

/// Opens step `step` of the record page shown and returns the CSS prefix of its form.
async fn open_step(c: &Client, step: &str) -> String {
    let details = format!("details.step[data-step={step}]");
    click(c, &format!("{details} > summary")).await;
    format!("{details} form")
}

async fn submit_step(c: &Client, step: &str) {
    click_to_next_page(
        c,
        &format!("details.step[data-step={step}] button[data-action={step}]"),
    )
    .await;
}

/// The notice a record page shows after a form, waiting for the page to load.
async fn notice(c: &Client) -> String {
    if c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-notice]"))
        .await
        .is_err()
    {
        screenshot(c, "failed").await;
        let shown = text(c, "main").await;
        panic!("no notice on the page; it shows: {shown}");
    }
    c.find(Locator::Css("[data-notice]"))
        .await
        .unwrap()
        .attr("data-notice")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The record the page shown is about: `/records/{id}`.
async fn created_id(c: &Client) -> RecordId {
    let url = c.current_url().await.unwrap();
    RecordId::parse("id", url.path().trim_start_matches("/records/")).unwrap()
}

async fn todo_count(c: &Client, web: &str, list: &str) -> String {
    c.goto(&format!("{web}/todo")).await.unwrap();
    text(c, &format!("[data-metric=\"todo.{list}\"]")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suggestion_goes_from_submission_to_closing_across_two_nodes_in_the_browser() {
    let fed = Federation::start_live(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let town = fed.node(WANGDIAN).store.clone();
    let county = fed.node(XIUZHOU).store.clone();
    for store in [&town, &county] {
        store
            .write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
            .await
            .unwrap();
    }
    // One host name per node: cookies do not tell ports apart, host names they do.
    let town_web = format!(
        "http://127.0.0.1:{}",
        fed.serve_dashboard(WANGDIAN).await.port()
    );
    let county_web = format!(
        "http://localhost:{}",
        fed.serve_dashboard(XIUZHOU).await.port()
    );
    let town_admin = town
        .write(|tx| tx.add_credential("王店镇 运维", Role::Admin))
        .await
        .unwrap();
    let county_password = "秀洲区代表工委2026";
    let hash = renda_node::access::hash_password(county_password).unwrap();
    county
        .write(move |tx| tx.add_account("秀洲区代表工委 李明", Role::Clerk, &hash))
        .await
        .unwrap();

    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.set_window_size(1280, 1000).await.unwrap();

    // The township's admin creates the clerk's account in the browser.
    c.goto(&format!("{town_web}/login")).await.unwrap();
    screenshot(&c, "01-login").await;
    login(&c, fed.serve_dashboard(WANGDIAN).await, &town_admin).await;
    c.goto(&format!("{town_web}/accounts")).await.unwrap();
    fill(&c, "#account-name", "王店镇人大办 张敏").await;
    choose(&c, "#account-role", "clerk").await;
    fill(&c, "#account-password", "short").await;
    click(&c, "button[data-action=create-account]").await;
    wait_for(&c, ".form-error[data-field=password]").await;
    assert_eq!(
        c.find(Locator::Css("#account-name"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("王店镇人大办 张敏"),
        "the name typed is kept"
    );
    fill(&c, "#account-password", "王店镇人大办2026").await;
    click(&c, "button[data-action=create-account]").await;
    wait_for(&c, "tr[data-account=\"王店镇人大办 张敏\"]").await;
    screenshot(&c, "02-accounts").await;
    click_to_next_page(&c, "header .who button").await;

    // The clerk logs in with the account, registers the station and two delegates with their
    // township seats, as the README's first commands do.
    login_account(&c, &town_web, "王店镇人大办 张敏", "王店镇人大办2026").await;
    assert_eq!(todo_count(&c, &town_web, "evaluate_here").await, "0");
    screenshot(&c, "03-todo-township").await;
    c.goto(&format!("{town_web}/new/venue")).await.unwrap();
    fill(&c, "#name", "王店镇人大代表联络站").await;
    choose(&c, "#kind", "station").await;
    fill(&c, "#address", "建设街1号").await;
    click(&c, "button[data-action=submit]").await;
    assert_eq!(notice(&c).await, "done");
    let station = created_id(&c).await;
    let mut people = Vec::new();
    for (name, gender, occupation, phone) in [
        ("沈建华", "male", "村党总支书记", "13900000000"),
        ("陆秀英", "female", "教师", ""),
    ] {
        c.goto(&format!("{town_web}/new/delegate")).await.unwrap();
        fill(&c, "#name", name).await;
        choose(&c, "#gender", gender).await;
        fill(&c, "#occupation", occupation).await;
        fill(&c, "#phone", phone).await;
        fill(&c, "#term", "17").await;
        fill(&c, "#constituency", "第七选区").await;
        if name == "沈建华" {
            choose(&c, "#station", &station.to_string()).await;
            screenshot(&c, "03b-new-delegate").await;
        }
        click(&c, "button[data-action=submit]").await;
        assert_eq!(notice(&c).await, "done", "{name}");
        people.push(created_id(&c).await);
    }
    let (lead, cosigner) = (people[0], people[1]);

    // The county elects both too, on each person's page, once the persons and the station
    // have come up the link.
    for id in [lead, cosigner, station] {
        eventually("the township's records reaching the county", || async {
            county.call(move |s| Ok(s.get(&id).is_ok())).await.unwrap()
        })
        .await;
    }
    login_account(&c, &county_web, "秀洲区代表工委 李明", county_password).await;
    for person in [lead, cosigner] {
        c.goto(&format!("{county_web}/records/{person}"))
            .await
            .unwrap();
        open_step(&c, "grant").await;
        fill(&c, "#grant-term", "9").await;
        fill(&c, "#grant-constituency", "王店镇选区").await;
        if person == lead {
            choose(&c, "#grant-station", &station.to_string()).await;
        }
        submit_step(&c, "grant").await;
        assert_eq!(notice(&c).await, "done");
    }
    eventually("the county seats reaching the township", || async {
        town.call(move |s| {
            Ok(s.mandates_of(&lead)?.len() == 2 && s.mandates_of(&cosigner)?.len() == 2)
        })
        .await
        .unwrap()
    })
    .await;

    // The township's clerk submits the suggestion to the county.
    login_account(&c, &town_web, "王店镇人大办 张敏", "王店镇人大办2026").await;
    c.goto(&format!("{town_web}/todo")).await.unwrap();
    click(&c, "a[data-action=new-suggestion]").await;
    wait_for(&c, "form.new").await;
    fill(&c, "#title", "关于修缮梅北村灌溉渠道的建议").await;
    fill(&c, "#body", "渠道渗漏严重，影响春耕灌溉。").await;
    fill(&c, "#category", "农业农村").await;
    choose(&c, "#lead", &lead.to_string()).await;
    choose(&c, "#cosigner", &cosigner.to_string()).await;
    choose(&c, "#to", XIUZHOU).await;
    screenshot(&c, "04-new-suggestion").await;
    click(&c, "button[data-action=submit]").await;
    assert_eq!(notice(&c).await, "done");
    let id = created_id(&c).await;
    assert_eq!(
        c.find_all(Locator::Css("details.step"))
            .await
            .unwrap()
            .len(),
        0,
        "the township takes no step on a suggestion the county handles until it is answered"
    );
    wait_state(&county, id, SuggestionState::Submitted).await;

    // The county's clerk finds it to screen, accepts it and assigns it.
    login_account(&c, &county_web, "秀洲区代表工委 李明", county_password).await;
    assert_eq!(todo_count(&c, &county_web, "screen").await, "1");
    assert_eq!(text(&c, "[data-metric=\"todo.total\"]").await, "1");
    screenshot(&c, "05-todo-county").await;
    click(
        &c,
        &format!("section[data-todo=screen] tr[data-id=\"{id}\"] a"),
    )
    .await;
    wait_for(&c, "details.step[data-step=screen]").await;
    screenshot(&c, "06-record-steps").await;
    open_step(&c, "screen").await;
    submit_step(&c, "screen").await;
    assert_eq!(notice(&c).await, "done");
    let form = open_step(&c, "assign").await;
    fill(&c, &format!("{form} #assign-unit-1"), "镇农业农村办").await;
    fill(&c, &format!("{form} #assign-unit-2"), "镇财政所").await;
    choose(&c, &format!("{form} #assign-role-2"), "assist").await;
    submit_step(&c, "assign").await;
    assert_eq!(notice(&c).await, "done");

    // An extension past six months is refused beside its form: the rule's message, what was
    // typed kept, nothing written.
    let (_, events_before) = state(&county, id).await.unwrap();
    let form = open_step(&c, "extend").await;
    let today = renda_node::calendar::today();
    let too_late = today.checked_add_months(chrono::Months::new(7)).unwrap();
    set_value(&c, &format!("{form} #extend-until"), &too_late.to_string()).await;
    fill(&c, &format!("{form} #extend-reason"), "需列入年度计划").await;
    submit_step(&c, "extend").await;
    wait_for(&c, "details.step[data-step=extend] .form-error").await;
    assert_eq!(
        c.find(Locator::Css("details.step[data-step=extend] .form-error"))
            .await
            .unwrap()
            .attr("data-rule")
            .await
            .unwrap()
            .as_deref(),
        Some("extend.past_six_months")
    );
    assert!(
        text(&c, "details.step[data-step=extend] .form-error")
            .await
            .contains("个月")
    );
    assert_eq!(
        c.find(Locator::Css("#extend-reason"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("需列入年度计划"),
        "what was typed is kept"
    );
    screenshot(&c, "07-refused-step").await;
    assert_eq!(
        state(&county, id).await.unwrap().1,
        events_before,
        "nothing written"
    );
    let in_time = today.checked_add_months(chrono::Months::new(5)).unwrap();
    set_value(&c, "#extend-until", &in_time.to_string()).await;
    submit_step(&c, "extend").await;
    assert_eq!(notice(&c).await, "done");

    // The answer is submitted twice at once, as a double click would: it applies once.
    open_step(&c, "answer").await;
    fill(&c, "#answer-text", "已完成防渗改造").await;
    let statuses = c
        .execute(
            "const f = document.querySelector('details.step[data-step=answer] form');
             const body = new URLSearchParams(new FormData(f));
             return Promise.all([1, 2].map(() => fetch(f.action, {method: 'POST', body})
                 .then(r => r.url)));",
            vec![],
        )
        .await
        .unwrap();
    let urls = statuses.as_array().unwrap();
    assert!(
        urls.iter()
            .any(|u| u.as_str().unwrap().ends_with("done=again")),
        "{statuses}"
    );
    assert!(
        urls.iter()
            .any(|u| u.as_str().unwrap().ends_with("done=answer")),
        "{statuses}"
    );
    let answers = county
        .call(move |s| match s.get(&id)?.body {
            Body::Suggestion(sg) => Ok(sg
                .events
                .iter()
                .filter(|e| {
                    matches!(e, renda_node::record::event::EventEntry::Event(ev)
                    if matches!(ev.action, SuggestionAction::Answer { .. }))
                })
                .count()),
            _ => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(answers, 1, "a double submit applies once");

    // The delegate's evaluation is entered at the township: 不满意, so it is handled again.
    wait_state(&town, id, SuggestionState::Answered).await;
    login_account(&c, &town_web, "王店镇人大办 张敏", "王店镇人大办2026").await;
    assert_eq!(todo_count(&c, &town_web, "evaluate_here").await, "1");
    click(
        &c,
        &format!("section[data-todo=evaluate_here] tr[data-id=\"{id}\"] a"),
    )
    .await;
    wait_for(&c, "details.step[data-step=evaluate]").await;
    open_step(&c, "evaluate").await;
    choose(&c, "#evaluate-result", "dissatisfied").await;
    fill(&c, "#evaluate-comment", "仍有渗漏").await;
    submit_step(&c, "evaluate").await;
    assert_eq!(notice(&c).await, "done");
    wait_state(&county, id, SuggestionState::Rehandling).await;

    // The county answers again; a form rendered before a step it did not see applies nothing.
    login_account(&c, &county_web, "秀洲区代表工委 李明", county_password).await;
    c.goto(&format!("{county_web}/records/{id}")).await.unwrap();
    open_step(&c, "answer").await;
    fill(&c, "#answer-text", "已全面修缮").await;
    // Meanwhile another clerk of the county sets 重点督办 on it.
    county
        .write(move |tx| {
            office::suggestion_step(
                tx,
                "另一位经办人",
                &id,
                SuggestionAction::Supervise { key: true },
                renda_node::calendar::today(),
            )
        })
        .await
        .unwrap();
    let (_, events_before) = state(&county, id).await.unwrap();
    submit_step(&c, "answer").await;
    assert_eq!(notice(&c).await, "moved");
    screenshot(&c, "08-moved").await;
    assert_eq!(
        state(&county, id).await.unwrap().1,
        events_before,
        "nothing applied"
    );
    open_step(&c, "answer").await;
    fill(&c, "#answer-text", "已全面修缮").await;
    submit_step(&c, "answer").await;
    assert_eq!(notice(&c).await, "done");

    wait_state(&town, id, SuggestionState::Answered).await;
    login_account(&c, &town_web, "王店镇人大办 张敏", "王店镇人大办2026").await;
    c.goto(&format!("{town_web}/records/{id}")).await.unwrap();
    open_step(&c, "evaluate").await;
    choose(&c, "#evaluate-result", "satisfied").await;
    submit_step(&c, "evaluate").await;
    assert_eq!(notice(&c).await, "done");
    wait_state(&county, id, SuggestionState::Satisfied).await;

    login_account(&c, &county_web, "秀洲区代表工委 李明", county_password).await;
    assert_eq!(todo_count(&c, &county_web, "follow_up").await, "1");
    c.goto(&format!("{county_web}/records/{id}")).await.unwrap();
    open_step(&c, "close").await;
    submit_step(&c, "close").await;
    assert_eq!(notice(&c).await, "done");
    screenshot(&c, "09-closed").await;
    wait_state(&town, id, SuggestionState::Closed).await;
    assert_eq!(
        c.find_all(Locator::Css("details.step"))
            .await
            .unwrap()
            .len(),
        0,
        "nothing is offered once it is closed"
    );
    // The county records that its delegate left the township's station (离站) on the seat's
    // page; the township's roster learns of it.
    let county_seat = county
        .call(move |s| {
            let me = s.identity().region;
            Ok(s.mandates_of(&lead)?
                .into_iter()
                .find(|(h, _)| h.home == me)
                .map(|(h, _)| h.id))
        })
        .await
        .unwrap()
        .expect("the county's seat");
    c.goto(&format!("{county_web}/records/{county_seat}"))
        .await
        .unwrap();
    open_step(&c, "leave").await;
    choose(&c, "#leave-venue", &station.to_string()).await;
    submit_step(&c, "leave").await;
    assert_eq!(notice(&c).await, "done");
    eventually("the departure reaching the township", || async {
        town.call(move |s| {
            Ok(s.mandates_of(&lead)?.iter().any(|(h, m)| {
                h.id == county_seat
                    && m.stations
                        .get(&station)
                        .is_some_and(|st| st.until.is_some())
            }))
        })
        .await
        .unwrap()
    })
    .await;

    // Every step was authored by the logged-in account's name.
    let authors = county
        .call(move |s| match s.get(&id)?.body {
            Body::Suggestion(sg) => Ok(sg
                .events
                .iter()
                .filter_map(|e| match e {
                    renda_node::record::event::EventEntry::Event(ev) => {
                        Some(ev.author.user.clone())
                    }
                    _ => None,
                })
                .collect::<std::collections::BTreeSet<_>>()),
            _ => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(
        authors,
        ["王店镇人大办 张敏", "秀洲区代表工委 李明", "另一位经办人"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    c.close().await.unwrap();
}

/// An opinion received at the township, passed on to the county's congress, handled there and
/// rated at the township, through the browser only; the constituent's phone is never shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opinion_is_passed_on_to_the_county_and_handled_there_in_the_browser() {
    use renda_node::record::opinion::OpinionState;
    let fed = Federation::start_live(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let town = fed.node(WANGDIAN).store.clone();
    let county = fed.node(XIUZHOU).store.clone();
    for store in [&town, &county] {
        store
            .write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
            .await
            .unwrap();
    }
    let password = "办公室电脑密码1";
    for (store, name) in [
        (&town, "王店镇人大办 张敏"),
        (&county, "秀洲区代表工委 李明"),
    ] {
        let hash = renda_node::access::hash_password(password).unwrap();
        let name = name.to_string();
        store
            .write(move |tx| tx.add_account(&name, Role::Clerk, &hash))
            .await
            .unwrap();
    }
    let town_web = format!(
        "http://127.0.0.1:{}",
        fed.serve_dashboard(WANGDIAN).await.port()
    );
    let county_web = format!(
        "http://localhost:{}",
        fed.serve_dashboard(XIUZHOU).await.port()
    );
    let opinion_state = |store: StoreHandle, id: RecordId| async move {
        store
            .call(move |s| match s.get(&id) {
                Ok(r) => match &r.body {
                    Body::Opinion(o) => Ok(Some(o.fold(&r.header).0.state)),
                    _ => Ok(None),
                },
                Err(_) => Ok(None),
            })
            .await
            .unwrap()
    };

    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.set_window_size(1280, 1000).await.unwrap();
    login_account(&c, &town_web, "王店镇人大办 张敏", password).await;
    c.goto(&format!("{town_web}/todo")).await.unwrap();
    click(&c, "a[data-action=new-opinion]").await;
    wait_for(&c, "form.new").await;
    choose(&c, "#source", "reception").await;
    fill(&c, "#content", "梅北村路灯损坏，夜间出行不便").await;
    fill(&c, "#place", "梅北村").await;
    fill(&c, "#contact_name", "王大伯").await;
    fill(&c, "#contact_phone", "13812345678").await;
    screenshot(&c, "10-new-opinion").await;
    click(&c, "button[data-action=submit]").await;
    assert_eq!(notice(&c).await, "done");
    let id = created_id(&c).await;
    assert!(
        !text(&c, "main").await.contains("13812345678"),
        "personal data is never shown"
    );
    assert_eq!(todo_count(&c, &town_web, "opinions_open").await, "1");
    c.goto(&format!("{town_web}/records/{id}")).await.unwrap();
    open_step(&c, "pass_on").await;
    choose(&c, "#pass_on-congress", XIUZHOU).await;
    submit_step(&c, "pass_on").await;
    assert_eq!(notice(&c).await, "done");

    eventually("the opinion reaching the county as passed on", || async {
        opinion_state(county.clone(), id).await == Some(OpinionState::PassedOn)
    })
    .await;
    login_account(&c, &county_web, "秀洲区代表工委 李明", password).await;
    assert_eq!(
        todo_count(&c, &county_web, "opinions_passed_here").await,
        "1"
    );
    click(
        &c,
        &format!("section[data-todo=opinions_passed_here] tr[data-id=\"{id}\"] a"),
    )
    .await;
    wait_for(&c, "details.step[data-step=handle]").await;
    open_step(&c, "handle").await;
    fill(&c, "#handle-result", "已协调镇政府更换路灯").await;
    submit_step(&c, "handle").await;
    assert_eq!(notice(&c).await, "done");
    assert_eq!(
        todo_count(&c, &county_web, "opinions_passed_here").await,
        "0"
    );

    eventually("the handling reaching the township", || async {
        opinion_state(town.clone(), id).await == Some(OpinionState::Handled)
    })
    .await;
    login_account(&c, &town_web, "王店镇人大办 张敏", password).await;
    c.goto(&format!("{town_web}/records/{id}")).await.unwrap();
    open_step(&c, "rate").await;
    choose(&c, "#rate-rating", "satisfied").await;
    submit_step(&c, "rate").await;
    assert_eq!(notice(&c).await, "done");
    assert_eq!(todo_count(&c, &town_web, "opinions_open").await, "0");
    c.close().await.unwrap();
}

/// The bytes of `path` fetched by the page shown, as the browser would download them.
async fn fetch_bytes(c: &Client, path: &str) -> Vec<u8> {
    let got = c
        .execute(
            "return fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)));",
            vec![serde_json::json!(path)],
        )
        .await
        .unwrap();
    got.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect()
}

/// A venue list and a 200-delegate roster imported from files the test makes: three bad rows
/// are all reported with nothing written, the fixed file imports whole, the same file again
/// changes nothing, and the delegate list exported to .xlsx reads back with the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_is_imported_from_a_spreadsheet_and_exported_back() {
    use renda_node::record::RecordKind;
    use renda_node::store::ListQuery;
    let fed = Federation::start(&[(WANGDIAN, "王店镇人大主席团")]).await;
    let town = fed.node(WANGDIAN).store.clone();
    town.write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    let password = "办公室电脑密码1";
    let hash = renda_node::access::hash_password(password).unwrap();
    town.write(move |tx| tx.add_account("王店镇人大办 张敏", Role::Clerk, &hash))
        .await
        .unwrap();
    let web = format!(
        "http://127.0.0.1:{}",
        fed.serve_dashboard(WANGDIAN).await.port()
    );
    let files = tempfile::tempdir().unwrap();
    let venues_csv = files.path().join("阵地名单.csv");
    std::fs::write(&venues_csv, "名称,类型,地址\n王店镇人大代表联络站,代表联络站,建设街1号\n梅北村代表联络点,代表联络站,梅北村\n").unwrap();
    let surnames = ["沈", "陆", "朱", "王", "张", "李", "徐", "钱", "周", "吴"];
    let given = [
        "建华", "秀英", "丽华", "志强", "海燕", "国平", "晓东", "春梅", "伟", "静", "建国", "美琴",
        "文杰", "红霞", "立新", "玉兰", "永康", "桂芳", "明", "芳",
    ];
    let roster = |bad: bool| -> Vec<Vec<String>> {
        (0..200)
            .map(|i| {
                let name = format!("{}{}", surnames[i % 10], given[(i / 10) % 20]);
                let mut row = vec![
                    (i + 1).to_string(),
                    name,
                    if i % 2 == 0 { "男" } else { "女" }.to_string(),
                    format!("{}-0{}", 1960 + i % 40, 1 + i % 9),
                    "汉族".to_string(),
                    String::new(),
                    format!("村民委员会委员{}", i % 7),
                    format!("139{:08}", i),
                    "17".to_string(),
                    format!("第{}选区", 1 + i % 12),
                    if i % 3 == 0 {
                        "王店镇人大代表联络站"
                    } else {
                        "梅北村代表联络点"
                    }
                    .to_string(),
                ];
                if bad {
                    match i {
                        8 => row[2] = "妇".to_string(),
                        48 => row[6] = String::new(),
                        148 => row[10] = "镇文化站".to_string(),
                        _ => {}
                    }
                }
                row
            })
            .collect()
    };
    let headers = [
        "序号",
        "姓名",
        "性别",
        "出生年月",
        "民族",
        "党派",
        "职业",
        "手机号码",
        "届次",
        "选区",
        "联络站",
    ];
    let bad_file = files.path().join("代表名册-有误.xlsx");
    let good_file = files.path().join("代表名册.xlsx");
    std::fs::write(
        &bad_file,
        renda_hub::spreadsheet::write_xlsx("名册", &headers, &roster(true)).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &good_file,
        renda_hub::spreadsheet::write_xlsx("名册", &headers, &roster(false)).unwrap(),
    )
    .unwrap();
    let delegates = |store: StoreHandle| async move {
        store
            .call(|s| {
                s.count(&ListQuery {
                    kind: Some(RecordKind::Delegate),
                    ..ListQuery::default()
                })
            })
            .await
            .unwrap()
    };

    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.set_window_size(1280, 1000).await.unwrap();
    login_account(&c, &web, "王店镇人大办 张敏", password).await;
    let upload = |kind: &'static str, path: std::path::PathBuf| {
        let c = c.clone();
        let web = web.clone();
        async move {
            c.goto(&format!("{web}/import")).await.unwrap();
            choose(&c, "#kind", kind).await;
            c.find(Locator::Css("#file"))
                .await
                .unwrap()
                .send_keys(path.to_str().unwrap())
                .await
                .unwrap();
            click(&c, "button[data-action=preview]").await;
            wait_for(&c, "[data-preview]").await;
        }
    };

    upload("venues", venues_csv).await;
    click(&c, "button[data-action=import]").await;
    wait_for(&c, "[data-imported=venues]").await;
    assert_eq!(text(&c, "[data-metric=\"import.created\"]").await, "2");

    // Three bad rows: each is named by row and column, and nothing is written.
    upload("roster", bad_file).await;
    screenshot(&c, "11-import-problems").await;
    assert_eq!(text(&c, "[data-metric=\"import.problems\"]").await, "3");
    let mut named = Vec::new();
    for row in c
        .find_all(Locator::Css("table.problems tbody tr"))
        .await
        .unwrap()
    {
        named.push((
            row.attr("data-row").await.unwrap().unwrap(),
            row.attr("data-column").await.unwrap().unwrap(),
        ));
    }
    assert_eq!(
        named,
        [("10", "性别"), ("50", "职业"), ("150", "联络站")]
            .map(|(r, c)| (r.to_string(), c.to_string()))
    );
    assert!(
        c.find_all(Locator::Css("button[data-action=import]"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(delegates(town.clone()).await, 0, "nothing written");

    // The fixed file imports whole.
    upload("roster", good_file.clone()).await;
    assert_eq!(text(&c, "[data-metric=\"import.create\"]").await, "200");
    screenshot(&c, "12-import-preview").await;
    click(&c, "button[data-action=import]").await;
    wait_for(&c, "[data-imported=roster]").await;
    assert_eq!(text(&c, "[data-metric=\"import.created\"]").await, "200");
    assert_eq!(delegates(town.clone()).await, 200);
    let changes = town.call(|s| Ok(s.stats()?.changes)).await.unwrap();

    // The same file again changes nothing.
    upload("roster", good_file).await;
    assert_eq!(text(&c, "[data-metric=\"import.same\"]").await, "200");
    click(&c, "button[data-action=import]").await;
    wait_for(&c, "[data-imported=roster]").await;
    assert_eq!(text(&c, "[data-metric=\"import.unchanged\"]").await, "200");
    assert_eq!(
        town.call(|s| Ok(s.stats()?.changes)).await.unwrap(),
        changes
    );

    // The delegate list exported and read back: the same rows as the pages show.
    c.goto(&format!("{web}/records?kind=delegate"))
        .await
        .unwrap();
    let href = c
        .find(Locator::Css("a[data-action=export]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let table = renda_hub::spreadsheet::read_table(&fetch_bytes(&c, &href).await).unwrap();
    assert_eq!(
        table.headers,
        ["类型", "名称/标题", "所属区划", "状态", "日期", "答复期限"]
    );
    assert_eq!(table.rows.len(), 200);
    let mut shown = Vec::new();
    for row in c
        .find_all(Locator::Css("table.records tbody tr"))
        .await
        .unwrap()
    {
        let mut cells = Vec::new();
        for cell in row.find_all(Locator::Css("td")).await.unwrap() {
            cells.push(cell.text().await.unwrap().trim().to_string());
        }
        shown.push(cells);
    }
    assert_eq!(shown.len(), 50, "the first page");
    let exported: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.resize(6, String::new());
            r
        })
        .collect();
    assert_eq!(
        &exported[..50],
        &shown[..],
        "the export holds the page's rows, in its order"
    );
    let mut names: Vec<String> = table.rows.iter().map(|r| r[1].clone()).collect();
    let mut imported: Vec<String> = roster(false).iter().map(|r| r[1].clone()).collect();
    names.sort();
    imported.sort();
    assert_eq!(names, imported);
    c.close().await.unwrap();
}

/// A delegate signs in on a 360-px phone from the activity's QR code, without logging in,
/// confirming with the last four digits of their phone; wrong digits and a second sign-in are
/// refused. A constituent reports an opinion from the station's code. Both record their source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_signs_in_and_a_constituent_reports_from_qr_codes_on_a_phone() {
    use renda_node::office::{ActivityDraft, Contact};
    use renda_node::record::activity::{Activity, ActivityKind, SignInSource};
    use renda_node::record::delegate::{Delegate, Gender};
    use renda_node::record::opinion::OpinionSource;
    let fed = Federation::start(&[(WANGDIAN, "王店镇人大主席团")]).await;
    let town = fed.node(WANGDIAN).store.clone();
    town.write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    let station = common::data::add_station(&town, WANGDIAN).await;
    let delegate = town
        .write(move |tx| {
            office::add_delegate(
                tx,
                "clerk",
                Delegate {
                    name: "沈建华".into(),
                    gender: Gender::Male,
                    birth_year: Some(1972),
                    ethnicity: None,
                    party: None,
                    occupation: "村党总支书记".into(),
                    station: None,
                    merged_into: None,
                    merge_route: None,
                    mandates: Default::default(),
                },
                Contact {
                    name: None,
                    phone: Some("139 0000 1234".into()),
                    id_number: None,
                },
                Some(common::data::seat(17, &[station])),
            )
        })
        .await
        .unwrap()
        .id;
    let activity = town
        .write(move |tx| {
            office::add_activity(
                tx,
                "clerk",
                ActivityDraft {
                    activity: Activity {
                        kind: ActivityKind::Reception,
                        date: renda_node::calendar::today(),
                        topic: "代表进站接待选民".into(),
                        organiser: "王店镇人大主席团".into(),
                        group: None,
                        venue: Some(station),
                        participants: Default::default(),
                        constituents_received: 0,
                        outcome: String::new(),
                    },
                    participants: Vec::new(),
                },
            )
        })
        .await
        .unwrap()
        .id;
    let password = "办公室电脑密码1";
    let hash = renda_node::access::hash_password(password).unwrap();
    town.write(move |tx| tx.add_account("王店镇人大办 张敏", Role::Clerk, &hash))
        .await
        .unwrap();
    let web = format!(
        "http://127.0.0.1:{}",
        fed.serve_dashboard(WANGDIAN).await.port()
    );

    // The clerk's PC shows the activity's code and the station's.
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.set_window_size(1280, 1000).await.unwrap();
    login_account(&c, &web, "王店镇人大办 张敏", password).await;
    let code_url = |id: RecordId| {
        let c = c.clone();
        let web = web.clone();
        async move {
            c.goto(&format!("{web}/records/{id}")).await.unwrap();
            wait_for(&c, "section.code .qr svg").await;
            c.find(Locator::Css("section.code .qr"))
                .await
                .unwrap()
                .attr("data-url")
                .await
                .unwrap()
                .unwrap()
        }
    };
    let sign_in_url = code_url(activity).await;
    screenshot(&c, "13-activity-code").await;
    let opinion_url = code_url(station).await;
    assert!(
        sign_in_url.starts_with(&format!("{web}/s/")),
        "{sign_in_url}"
    );
    assert!(
        opinion_url.starts_with(&format!("{web}/o/")),
        "{opinion_url}"
    );

    // Every form that starts a record renders, with a label for every input, and is saved.
    for path in [
        "/new/suggestion",
        "/new/opinion",
        "/new/activity",
        "/new/delegate",
        "/new/venue",
        "/new/group",
        "/new/notice",
        "/new/quota-rule",
        "/new/motion",
        "/import",
        "/accounts",
    ] {
        c.goto(&format!("{web}{path}")).await.unwrap();
        let unlabelled = c
            .execute(
                "return Array.from(document.querySelectorAll('main input:not([type=hidden]), main select, main textarea'))
                   .filter(e => !e.id || !document.querySelector('label[for=\"' + e.id + '\"]'))
                   .map(e => e.name);",
                vec![],
            )
            .await
            .unwrap();
        let name = path.trim_start_matches('/').replace('/', "-");
        let status = text(&c, "main h1").await;
        if path == "/accounts" {
            // A clerk does not manage accounts.
            assert!(status.contains("无权"), "{path}: {status}");
            continue;
        }
        assert_eq!(
            unlabelled,
            serde_json::json!([]),
            "{path}: inputs without a label"
        );
        screenshot(&c, &format!("20-{name}")).await;
    }

    // A group with the delegate, a quota rule, a notice and an activity, through their forms.
    c.goto(&format!("{web}/new/group")).await.unwrap();
    fill(&c, "#name", "王店镇第一代表小组").await;
    choose(&c, "#member", &delegate.to_string()).await;
    click(&c, "button[data-action=submit]").await;
    assert_eq!(notice(&c).await, "done");
    c.goto(&format!("{web}/new/quota-rule")).await.unwrap();
    choose(&c, "#subject", "delegate").await;
    choose(&c, "#counts", "suggestions").await;
    fill(&c, "#minimum", "2").await;
    fill(&c, "#basis", "《王店镇人大代表履职管理办法》第八条").await;
    click(&c, "button[data-action=submit]").await;
    assert_eq!(notice(&c).await, "done");
    assert!(text(&c, "main").await.contains("第八条"));
    c.goto(&format!("{web}/new/notice")).await.unwrap();
    fill(&c, "#title", "关于开展代表进站活动的通知").await;
    fill(&c, "#category", "通知").await;
    fill(&c, "#body", "各代表于本月进站接待选民。").await;
    click(&c, "button[data-action=submit]").await;
    assert_eq!(notice(&c).await, "done");
    c.goto(&format!("{web}/new/activity")).await.unwrap();
    fill(&c, "#topic", "小组视察农村道路").await;
    choose(&c, "#kind", "inspection").await;
    choose(&c, "#participant", &delegate.to_string()).await;
    click(&c, "button[data-action=submit]").await;
    assert_eq!(notice(&c).await, "done");
    assert!(text(&c, "main").await.contains("沈建华"), "signed in");
    c.close().await.unwrap();

    // A phone, with no login.
    let phone_driver = start_driver().await;
    let phone = browser(&phone_driver).await;
    phone.set_window_size(360, 740).await.unwrap();
    phone.goto(&sign_in_url).await.unwrap();
    wait_for(&phone, "form.phone-form").await;
    let listed = text(&phone, "form.phone-form fieldset").await;
    assert!(
        listed.contains("沈*华") && !listed.contains("沈建华"),
        "{listed}"
    );
    let width = phone
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap() <= 360,
        "the page fits a 360-px screen: {width}"
    );
    click(&phone, &format!("input[value=\"{delegate}\"]")).await;
    fill(&phone, "#phone4", "9999").await;
    click(&phone, "button[data-action=sign-in]").await;
    wait_for(&phone, ".form-error").await;
    assert!(text(&phone, ".form-error").await.contains("后四位不对"));
    click(&phone, &format!("input[value=\"{delegate}\"]")).await;
    fill(&phone, "#phone4", "1234").await;
    screenshot(&phone, "14-phone-sign-in").await;
    click(&phone, "button[data-action=sign-in]").await;
    wait_for(&phone, "[data-signed]").await;
    assert!(text(&phone, "[data-signed]").await.contains("沈*华"));
    let source = town
        .call(move |s| match s.get(&activity)?.body {
            Body::Activity(a) => Ok(a.participants.get(&delegate).map(|p| p.source)),
            _ => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(source, Some(Some(SignInSource::QrCode)));

    // A second sign-in is refused, by the page and by the office operation behind it.
    phone.goto(&sign_in_url).await.unwrap();
    assert!(
        text(&phone, "form.phone-form fieldset")
            .await
            .contains("已签到")
    );
    let status = phone
        .execute(
            "return fetch(location.pathname, {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'delegate=' + arguments[0] + '&phone4=1234'}).then(r => r.status);",
            vec![serde_json::json!(delegate.to_string())],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(409));

    // A constituent's opinion from the station's code.
    phone.goto(&opinion_url).await.unwrap();
    wait_for(&phone, "form.phone-form").await;
    fill(&phone, "#content", "村口路灯不亮，晚上出行不安全").await;
    fill(&phone, "#phone", "13811112222").await;
    screenshot(&phone, "15-phone-opinion").await;
    click(&phone, "button[data-action=opinion]").await;
    wait_for(&phone, "[data-opinion]").await;
    let opinion = RecordId::parse(
        "id",
        &phone
            .find(Locator::Css("[data-opinion]"))
            .await
            .unwrap()
            .attr("data-opinion")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let (source, contact) = town
        .call(move |s| {
            let Body::Opinion(o) = s.get(&opinion)?.body else {
                unreachable!()
            };
            let phone = match s.personal_for(&opinion)?.map(|r| r.body) {
                Some(Body::Personal(p)) => p.phone,
                _ => None,
            };
            Ok((o.fields.source, phone))
        })
        .await
        .unwrap();
    assert_eq!(source, OpinionSource::QrCode);
    assert_eq!(contact.as_deref(), Some("13811112222"));

    // A token changed by hand opens nothing.
    phone
        .goto(&sign_in_url.replace("/s/a.", "/s/a.0"))
        .await
        .unwrap();
    assert!(text(&phone, "main").await.contains("无效的二维码"));
    phone.close().await.unwrap();
}
