//! The workbench's forms over plain HTTP, where exact status codes and bad input matter: who may
//! post what, malformed forms naming the field with nothing written, one record for a form
//! posted twice, logins by name and password, and what waits to reach the parent while the
//! township's link is down. The browser tests (`workbench_browser.rs`) drive the same pages as
//! clerks do.

mod common;

use chrono::Utc;
use common::fed::{Federation, WANGDIAN, XIUZHOU};
use common::http::{Reply, request};
use renda_node::access::Role;
use renda_node::record::RecordKind;
use renda_node::record::rollup::RollupRules;
use renda_node::store::{ListQuery, StoreHandle};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn opinions(store: &StoreHandle) -> u64 {
    store
        .call(|s| {
            s.count(&ListQuery {
                kind: Some(RecordKind::Opinion),
                ..ListQuery::default()
            })
        })
        .await
        .unwrap()
}

fn opinion_form(key: &str) -> String {
    format!(
        "form_key={key}&source=reception&content=%E8%B7%AF%E7%81%AF%E5%9D%8F%E4%BA%86&place=&region={WANGDIAN}&category=&delegate=&contact_name=&contact_phone=&date="
    )
}

/// The session cookie a login's reply sets.
fn cookie(reply: &Reply) -> String {
    let set = reply.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_the_clerk_role_name_bad_fields_and_apply_once() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let town = fed.node(WANGDIAN).store.clone();
    town.write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    let web = fed.serve_dashboard(WANGDIAN).await;
    let viewer = town
        .write(|tx| tx.add_credential("镇人大 查看", Role::Viewer))
        .await
        .unwrap();
    let clerk = town
        .write(|tx| tx.add_credential("镇人大办", Role::Clerk))
        .await
        .unwrap();
    let (viewer, clerk) = (bearer(&viewer), bearer(&clerk));
    let key = "00112233445566778899aabbccddeeff";

    // A viewer is offered no form and may post none.
    let r = request(
        web,
        "GET",
        "/new/opinion",
        &[("Authorization", &viewer)],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        web,
        "POST",
        "/new/opinion",
        &[("Authorization", &viewer)],
        &opinion_form(key),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("role"), "the refusal names the rule");
    assert_eq!(opinions(&town).await, 0);

    // Bad input names the field, keeps what was typed and writes nothing.
    for (form, field) in [
        (opinion_form("not-a-key"), "form_key"),
        (
            opinion_form(key).replace("date=", "date=2026%2F13%2F40"),
            "date",
        ),
        (
            opinion_form(key).replace("source=reception", "source=pigeon"),
            "source",
        ),
        (
            opinion_form(key).replace(&format!("region={WANGDIAN}"), "region=330402101000"),
            "region",
        ),
        (
            opinion_form(key).replace("content=%E8%B7%AF%E7%81%AF%E5%9D%8F%E4%BA%86", "content="),
            "content",
        ),
    ] {
        let r = request(
            web,
            "POST",
            "/new/opinion",
            &[("Authorization", &clerk)],
            &form,
        )
        .await;
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        assert!(
            r.body.contains(&format!("data-field=\"{field}\"")),
            "{field} is named beside the form: {}",
            r.body
        );
        assert_eq!(opinions(&town).await, 0, "{field}: nothing written");
    }
    let r = request(
        web,
        "POST",
        "/new/opinion",
        &[("Authorization", &clerk)],
        &opinion_form(key)
            .replace("place=", "place=%E6%A2%85%E5%8C%97%E6%9D%91")
            .replace("source=reception", "source=pigeon"),
    )
    .await;
    assert!(r.body.contains("梅北村"), "what was typed comes back");

    // The same form posted twice writes one record, and both lead to it.
    let first = request(
        web,
        "POST",
        "/new/opinion",
        &[("Authorization", &clerk)],
        &opinion_form(key),
    )
    .await;
    let second = request(
        web,
        "POST",
        "/new/opinion",
        &[("Authorization", &clerk)],
        &opinion_form(key),
    )
    .await;
    assert_eq!((first.status, second.status), (303, 303), "{}", second.body);
    let to = |r: &Reply| {
        r.header("location")
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(to(&first), to(&second));
    assert!(second.header("location").unwrap().ends_with("done=again"));
    assert_eq!(opinions(&town).await, 1);

    // A step from a form rendered before the record moved applies nothing (409), and a step
    // of the wrong kind for the record names the step.
    let record = to(&first);
    let seen = town
        .call({
            let id =
                renda_node::record::RecordId::parse("id", record.trim_start_matches("/records/"))
                    .unwrap();
            move |s| s.version_of(&id)
        })
        .await
        .unwrap();
    let step = format!("{record}/steps/answer_on_spot");
    let body = |key: &str, seen: i64| {
        format!("form_key={key}&seen={seen}&reply=%E5%B7%B2%E7%AD%94%E5%A4%8D&date=")
    };
    let r = request(
        web,
        "POST",
        &step,
        &[("Authorization", &clerk)],
        &body("ffeeddccbbaa99887766554433221100", seen - 1),
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(r.body.contains("data-notice=\"moved\""), "{}", r.body);
    let r = request(
        web,
        "POST",
        &format!("{record}/steps/assign"),
        &[("Authorization", &clerk)],
        &body("ffeeddccbbaa99887766554433221101", seen),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("data-field=\"step\""), "{}", r.body);
    let r = request(
        web,
        "POST",
        &step,
        &[("Authorization", &clerk)],
        &body("ffeeddccbbaa99887766554433221102", seen),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // The same step again, from a new form on the page as it is now: the state refuses it.
    let seen = seen + 1;
    let r = request(
        web,
        "POST",
        &step,
        &[("Authorization", &clerk)],
        &body("ffeeddccbbaa99887766554433221103", seen),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("transition.state"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_log_in_by_password_until_disabled_and_only_admins_manage_them() {
    let fed = Federation::start(&[(WANGDIAN, "王店镇人大主席团")]).await;
    let town = fed.node(WANGDIAN).store.clone();
    town.write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    let web = fed.serve_dashboard(WANGDIAN).await;
    let admin = bearer(
        &town
            .write(|tx| tx.add_credential("运维", Role::Admin))
            .await
            .unwrap(),
    );
    let clerk = bearer(
        &town
            .write(|tx| tx.add_credential("镇人大办", Role::Clerk))
            .await
            .unwrap(),
    );
    let account =
        "form_key=0123456789abcdef0123456789abcdef&name=%E5%BC%A0%E6%95%8F&role=clerk&password=";

    let r = request(web, "GET", "/accounts", &[("Authorization", &clerk)], "").await;
    assert_eq!(r.status, 403, "a clerk does not manage accounts");
    let r = request(
        web,
        "POST",
        "/accounts",
        &[("Authorization", &admin)],
        &format!("{account}short"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("data-field=\"password\""), "{}", r.body);
    assert!(
        town.call(|s| s.account("张敏")).await.unwrap().is_none(),
        "nothing written"
    );
    let r = request(
        web,
        "POST",
        "/accounts",
        &[("Authorization", &admin)],
        &format!("{account}wangdian-2026"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("已创建账号"));

    let login =
        |password: &str| format!("name=%E5%BC%A0%E6%95%8F&password={password}&next=%2Ftodo");
    let r = request(web, "POST", "/login", &[], &login("wrong-password")).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("用户名或密码不对"));
    let r = request(web, "POST", "/login", &[], &login("wangdian-2026")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/todo"));
    let session = cookie(&r);
    let r = request(web, "GET", "/todo", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("data-user=\"张敏\""));

    // Disabled: the session ends and the password no longer logs in; enabled again, it does.
    let r = request(
        web,
        "POST",
        "/accounts/disabled",
        &[("Authorization", &admin)],
        "name=%E5%BC%A0%E6%95%8F&disabled=true",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(web, "GET", "/todo", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 303, "the session ended");
    let r = request(web, "POST", "/login", &[], &login("wangdian-2026")).await;
    assert_eq!(r.status, 401);
    let r = request(
        web,
        "POST",
        "/accounts/disabled",
        &[("Authorization", &admin)],
        "name=%E5%BC%A0%E6%95%8F&disabled=false",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request(web, "POST", "/login", &[], &login("wangdian-2026")).await;
    assert_eq!(r.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_township_shows_what_waits_to_reach_the_county() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let town = fed.node(WANGDIAN).store.clone();
    town.write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    let web = fed.serve_dashboard(WANGDIAN).await;
    let clerk = bearer(
        &town
            .write(|tx| tx.add_credential("镇人大办", Role::Clerk))
            .await
            .unwrap(),
    );
    let waiting = |body: &str| -> usize {
        let at = body
            .find("data-waiting=\"")
            .expect("the sync state is shown")
            + 14;
        body[at..].split('"').next().unwrap().parse().unwrap()
    };
    let r = request(web, "GET", "/todo", &[("Authorization", &clerk)], "").await;
    // The node's first rollup and the duty rules it was seeded with have not gone up yet.
    let before = waiting(&r.body);
    assert!(before > 0, "{}", r.body);
    for key in [
        "a0000000000000000000000000000001",
        "a0000000000000000000000000000002",
    ] {
        let r = request(
            web,
            "POST",
            "/new/opinion",
            &[("Authorization", &clerk)],
            &opinion_form(key),
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
    }
    let r = request(web, "GET", "/todo", &[("Authorization", &clerk)], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        waiting(&r.body),
        before + 2,
        "two opinions more: {}",
        r.body
    );
    assert!(r.body.contains("还没有同步过"));
    fed.sync_once(WANGDIAN).await;
    let r = request(web, "GET", "/todo", &[("Authorization", &clerk)], "").await;
    assert_eq!(waiting(&r.body), 0, "{}", r.body);
    assert!(r.body.contains("上次同步完成于"));
}

/// Posts step `step` on `record` from a new form rendered from the record as it is now.
async fn post_step(
    web: std::net::SocketAddr,
    store: &StoreHandle,
    auth: &str,
    record: renda_node::record::RecordId,
    step: &str,
    fields: &str,
) -> Reply {
    let seen = store.call(move |s| s.version_of(&record)).await.unwrap();
    let key: String = (0..32)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect();
    let body = format!("form_key={key}&seen={seen}&date=&{fields}");
    request(
        web,
        "POST",
        &format!("/records/{record}/steps/{step}"),
        &[("Authorization", auth)],
        &body,
    )
    .await
}

/// The steps of persons, seats, groups, activities, duty rules and motions, each through its
/// form and the office operation behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_kinds_steps_go_through_their_forms() {
    use renda_node::office::{self, Contact, MotionDraft, ProposerDraft};
    use renda_node::record::delegate::{Delegate, Gender, MandateStatus};
    use renda_node::record::group::{Group, GroupKind};
    use renda_node::record::motion::{MotionState, ProposingBody};
    use renda_node::record::{Body, IdSet};
    let fed = Federation::start(&[(WANGDIAN, "王店镇人大主席团")]).await;
    let town = fed.node(WANGDIAN).store.clone();
    town.write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    let web = fed.serve_dashboard(WANGDIAN).await;
    let clerk = bearer(
        &town
            .write(|tx| tx.add_credential("镇人大办", Role::Clerk))
            .await
            .unwrap(),
    );
    let person = |name: &'static str| Delegate {
        name: name.into(),
        gender: Gender::Female,
        birth_year: Some(1980),
        ethnicity: None,
        party: None,
        occupation: "教师".into(),
        station: None,
        merged_into: None,
        merge_route: None,
        mandates: Default::default(),
    };
    let station = common::data::add_station(&town, WANGDIAN).await;
    let mut people = Vec::new();
    for name in ["陆秀英", "陆秀英", "朱丽华"] {
        let p = person(name);
        people.push(
            town.write(move |tx| {
                office::add_delegate(
                    tx,
                    "clerk",
                    p,
                    Contact::default(),
                    Some(common::data::seat(17, &[])),
                )
            })
            .await
            .unwrap()
            .id,
        );
    }
    let (kept, twice, other) = (people[0], people[1], people[2]);

    // 进站 and a status change on a seat, through the seat's page.
    let seat = town
        .call(move |s| Ok(s.mandates_of(&other)?[0].0.id))
        .await
        .unwrap();
    let r = post_step(
        web,
        &town,
        &clerk,
        seat,
        "station",
        &format!("venue={station}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = post_step(web, &town, &clerk, seat, "status", "status=suspended").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (status, stations) = town
        .call(move |s| {
            let Body::Mandate(m) = s.get(&seat)?.body else {
                unreachable!()
            };
            Ok((m.status, m.stations.len()))
        })
        .await
        .unwrap();
    assert_eq!((status, stations), (MandateStatus::Suspended, 1));
    let r = post_step(web, &town, &clerk, seat, "status", "status=suspended").await;
    assert_eq!(
        r.status, 400,
        "the same status again names the field: {}",
        r.body
    );
    assert!(r.body.contains("data-field=\"status\""), "{}", r.body);

    // The person registered twice is merged into the one kept, from its page.
    let r = post_step(web, &town, &clerk, twice, "merge", &format!("into={kept}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let merged = town
        .call(move |s| match s.get(&twice)?.body {
            Body::Delegate(d) => Ok(d.merged_into),
            _ => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(merged, Some(kept));

    // A group gains a member; an activity a sign-in.
    let group = town
        .write(move |tx| {
            office::add_group(
                tx,
                "clerk",
                Group {
                    name: "第一小组".into(),
                    kind: GroupKind::Regional,
                    field: None,
                    congress: renda_node::region::RegionCode::parse("r", WANGDIAN).unwrap(),
                    leader: None,
                    members: IdSet([kept].into_iter().collect()),
                    venue: None,
                },
            )
        })
        .await
        .unwrap()
        .id;
    let r = post_step(
        web,
        &town,
        &clerk,
        group,
        "join",
        &format!("member={other}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let members = town
        .call(move |s| match s.get(&group)?.body {
            Body::Group(g) => Ok(g.members.0.len()),
            _ => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(members, 2);

    // An activity held today with nobody signed in waits in 待办 until someone signs in.
    let activity = town
        .write(move |tx| {
            office::add_activity(
                tx,
                "clerk",
                office::ActivityDraft {
                    activity: renda_node::record::activity::Activity {
                        kind: renda_node::record::activity::ActivityKind::GroupMeeting,
                        date: renda_node::calendar::today(),
                        topic: "小组活动".into(),
                        organiser: "第一小组".into(),
                        group: Some(group),
                        venue: None,
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
    let unattended = |body: &str| body.contains("data-metric=\"todo.unattended\">1<");
    let r = request(web, "GET", "/todo", &[("Authorization", &clerk)], "").await;
    assert!(unattended(&r.body), "{}", r.body);
    let r = post_step(
        web,
        &town,
        &clerk,
        activity,
        "sign_in",
        &format!("delegate={kept}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = request(web, "GET", "/todo", &[("Authorization", &clerk)], "").await;
    assert!(!unattended(&r.body), "{}", r.body);
    assert!(
        r.body.contains("data-metric=\"todo.unattended\">0<"),
        "{}",
        r.body
    );

    // A duty rule in force is ended from its page.
    let rule = town
        .call(|s| {
            let me = s.identity().region;
            Ok(s.quota_rules(&me)?[0].0)
        })
        .await
        .unwrap();
    let r = post_step(web, &town, &clerk, rule, "end", "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let until = town
        .call(move |s| match s.get(&rule)?.body {
            Body::QuotaRule(q) => Ok(q.until),
            _ => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(until, Some(renda_node::calendar::today()));

    // The 主席团 decides on a motion: a committee the congress does not have is refused with
    // the rule, then it is listed on the agenda.
    let today = renda_node::calendar::today();
    let motion = town
        .write(move |tx| {
            office::submit_motion(
                tx,
                "秘书处",
                MotionDraft {
                    title: "关于加强农村饮用水安全的议案".into(),
                    body: "案据与方案".into(),
                    session: "十七届三次会议".into(),
                    deadline: today,
                    proposer: ProposerDraft::Body {
                        body: ProposingBody::Presidium,
                        name: None,
                    },
                },
                today,
            )
        })
        .await
        .unwrap()
        .id;
    let r = post_step(
        web,
        &town,
        &clerk,
        motion,
        "decide",
        "decision=refer&committee=%E6%B3%95%E5%88%B6%E5%A7%94%E5%91%98%E4%BC%9A",
    )
    .await;
    assert!(r.status == 400 || r.status == 409, "{}", r.body);
    assert!(r.body.contains("form-error"), "{}", r.body);
    let r = post_step(web, &town, &clerk, motion, "decide", "decision=agenda").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let state = town
        .call(move |s| match s.get(&motion)?.body {
            Body::Motion(m) => {
                let header = s.get(&motion)?.header;
                Ok(m.fold(&header).0.state)
            }
            _ => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(state, MotionState::OnAgenda);
}
