//! The workbench: where clerks do the work in the browser. Every form calls the same office
//! operation as the command line (`renda_node::office`), in one store transaction, under the
//! logged-in credential's name, and needs the clerk role; the model decides which steps a
//! record offers (`suggestion::offered_steps`, `opinion::offered_steps`), so no rule is
//! written twice.
//!
//! A form is guarded twice (`forms`): its idempotency key makes a second submission apply
//! nothing, and a step carries the record version it was rendered from, so a step on a record
//! that moved since is shown the record as it is now instead of being applied. A refused form
//! comes back as it was typed, with the rule's Chinese message beside it, and nothing written.
//!
//! - [`records`]: the generic pair of handlers behind every form that starts a record.
//! - [`suggestions`]: 提交 with co-signers, and every handling step.
//! - [`opinions`]: 收集, and 当场答复, 转交, 办理, 办结, 评价.
//! - [`people`]: persons (with this congress's seat), seats granted, status changes, 进站 and
//!   离站, duplicate registrations merged, venues, groups and their members.
//! - [`activities`]: activities with sign-ins, and notices.
//! - [`rules`]: duty rules set and ended, and 议案 through the 主席团's decision.
//! - [`imports`]: a roster or a venue list from .xlsx or .csv, previewed, then imported whole.
//! - [`todo`]: what waits for this node (待办), counted in the tab bar.

pub(crate) mod activities;
pub(crate) mod imports;
pub(crate) mod opinions;
pub(crate) mod people;
pub(crate) mod records;
pub(crate) mod rules;
pub(crate) mod suggestions;
pub(crate) mod todo;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use renda_node::access::Role;
use renda_node::record::event::refuse_if_unreadable;
use renda_node::record::{Body, Record, RecordId};
use renda_node::region::RegionCode;
use renda_node::store::{Store, StoreError, WriteTx};
use serde::Deserialize;

use super::forms::{Posted, Refusal, Shown};
use super::{Dashboard, PageError, session};

/// What became of a form the store was asked to apply.
#[derive(Debug)]
pub(crate) enum Applied {
    /// Applied now; the record it wrote.
    Done(RecordId),
    /// The same form was applied before; the record it wrote then.
    Again(Option<RecordId>),
    /// The record moved since the form was rendered; nothing was applied.
    Moved,
}

/// Applies `op` once for the form's idempotency key, in one transaction: a key noted before
/// means the form was applied already, and with `guard` a record whose version is no longer
/// the one the form was rendered from is left as it is. A refusal (bad input, a rule) writes
/// nothing, not even the key, so the form can be corrected and sent again.
pub(crate) async fn apply<F>(
    d: &Dashboard,
    user: &str,
    posted: &Posted,
    guard: Option<RecordId>,
    op: F,
) -> Result<Result<Applied, Refusal>, PageError>
where
    F: FnOnce(&mut WriteTx<'_>, &str) -> Result<RecordId, StoreError> + Send + 'static,
{
    let key = posted.form_key().to_string();
    if let Err(e) = renda_node::store::check_form_key(&key) {
        return Ok(Err(e.into()));
    }
    let guard = match guard {
        Some(id) => match posted.seen() {
            Ok(seen) => Some((id, seen)),
            Err(refusal) => return Ok(Err(refusal)),
        },
        None => None,
    };
    let user = user.to_string();
    let written = d
        .store
        .write(move |tx| {
            if let Some(before) = tx.form_applied(&key)? {
                let record = before.and_then(|r| RecordId::parse("record", &r).ok());
                return Ok(Applied::Again(record));
            }
            if let Some((id, seen)) = guard
                && tx.version_of(&id)? != seen
            {
                return Ok(Applied::Moved);
            }
            let id = op(tx, &user)?;
            tx.note_form_applied(&key, &user, Some(&id.to_string()))?;
            Ok(Applied::Done(id))
        })
        .await;
    match written {
        Ok(applied) => Ok(Ok(applied)),
        Err(e) => Refusal::from_store(e).map(Err),
    }
}

/// The `?done=` a record page is opened with after a form applied.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: Option<String>,
}

impl Done {
    pub(crate) fn notice(&self) -> Option<Notice> {
        match self.done.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("again") => Some(Notice::Again),
            Some(step) => Some(Notice::Done(step_label(step).to_string())),
        }
    }
}

fn step_label(step: &str) -> &'static str {
    use renda_node::record::opinion::OpinionStep;
    use renda_node::record::suggestion::SuggestionStep;
    if let Ok(s) = SuggestionStep::parse("step", step) {
        return s.label();
    }
    if let Ok(s) = OpinionStep::parse("step", step) {
        return s.label();
    }
    match step {
        "created" => "登记",
        "grant" => "授予代表资格",
        "merge" => "合并重复登记",
        "status" => "变更代表资格状态",
        "station" => "进站",
        "leave" => "离站",
        "join" => "增加成员",
        "sign_in" => "签到",
        "end" => "停止执行",
        "decide" => "主席团决定",
        _ => "办理",
    }
}

/// What a record page says above the record.
#[derive(Debug)]
pub(crate) enum Notice {
    Done(String),
    Again,
    Moved,
}

impl Notice {
    pub(crate) fn markup(&self) -> Markup {
        match self {
            Notice::Done(step) => html! {
                p.notice-ok role="status" data-notice="done" { "已办理：" (step) "。" }
            },
            Notice::Again => html! {
                p.notice-ok role="status" data-notice="again" {
                    "这张表单已经提交过并已办理，没有重复办理。"
                }
            },
            Notice::Moved => html! {
                p.notice-error role="alert" data-notice="moved" {
                    "这条记录在您打开表单之后已经变化（可能是同步带来了其他节点的办理），本次没有办理。"
                    "下面是它现在的样子，请确认后重新办理。"
                }
            },
        }
    }
}

/// A form that came back refused: which step, what was typed, and why.
pub(crate) struct Refused {
    pub step: String,
    pub posted: Posted,
    pub refusal: Refusal,
}

/// What the step forms of a record need beyond the record, read in the same snapshot: the
/// congresses above an opinion's home it may be passed on to, the delegates and venues held
/// here to choose from, and the special committees a motion may be referred to.
#[derive(Default)]
pub(crate) struct StepContext {
    pub congresses_above: Vec<(RegionCode, String)>,
    pub delegates: Vec<(String, String)>,
    pub venues: Vec<(String, String)>,
    pub committees: Vec<String>,
}

impl StepContext {
    pub(crate) fn read(s: &Store, record: &Record) -> Result<StepContext, StoreError> {
        let me = s.identity().region;
        let mut context = StepContext::default();
        match &record.body {
            Body::Opinion(_) => {
                context.congresses_above = congresses_above(s, &record.header.home)?
            }
            Body::Delegate(_) | Body::Group(_) | Body::Activity(_) => {
                context.delegates = suggestions::delegate_options(s, me)?;
                context.venues = people::venue_options(s, me)?;
            }
            Body::Mandate(_) => context.venues = people::venue_options(s, me)?,
            Body::Motion(_) => context.committees = s.special_committees()?,
            _ => {}
        }
        Ok(context)
    }
}

/// The English id of step `step` of a record of `kind`, as the forms name it.
fn canonical_step(kind: renda_node::record::RecordKind, step: &str) -> Option<&'static str> {
    use renda_node::record::RecordKind as K;
    use renda_node::record::opinion::OpinionStep;
    use renda_node::record::suggestion::SuggestionStep;
    match kind {
        K::Suggestion => SuggestionStep::parse("step", step).ok().map(|s| s.as_str()),
        K::Opinion => OpinionStep::parse("step", step).ok().map(|s| s.as_str()),
        _ => [
            "grant", "merge", "status", "station", "leave", "join", "sign_in", "end", "decide",
        ]
        .into_iter()
        .find(|s| *s == step),
    }
}

/// A step parsed from its form: applied through the office operation to the record named.
pub(crate) type StepWrite =
    Box<dyn FnOnce(&mut WriteTx<'_>, &str, &RecordId) -> Result<(), StoreError> + Send>;

/// Every form that starts a record, each at its path.
pub(crate) fn new_record_routes() -> axum::Router<Dashboard> {
    fn route<F: records::NewRecord>(router: axum::Router<Dashboard>) -> axum::Router<Dashboard> {
        router.route(
            F::PATH,
            axum::routing::get(records::show::<F>).post(records::submit::<F>),
        )
    }
    let router = axum::Router::new();
    let router = route::<suggestions::NewSuggestion>(router);
    let router = route::<opinions::NewOpinion>(router);
    let router = route::<people::NewDelegate>(router);
    let router = route::<people::NewVenue>(router);
    let router = route::<people::NewGroup>(router);
    let router = route::<activities::NewActivity>(router);
    let router = route::<activities::NewNotice>(router);
    let router = route::<rules::NewQuotaRule>(router);
    route::<rules::NewMotion>(router)
}

/// The forms that start a record, as the 待办 page links them: `(path, label)`.
pub(crate) const NEW_RECORD_LINKS: &[(&str, &str)] = &[
    ("/new/suggestion", "提交代表建议"),
    ("/new/opinion", "登记民情"),
    ("/new/activity", "登记活动"),
    ("/new/delegate", "登记代表"),
    ("/new/venue", "登记阵地"),
    ("/new/group", "成立代表小组"),
    ("/new/notice", "发布通知"),
    ("/new/quota-rule", "设定履职要求"),
    ("/new/motion", "登记议案"),
    ("/import", "导入名册"),
];

/// The congresses above `region`, nearest first, each with the name its node gave itself
/// where its rollup reached this node.
pub(crate) fn congresses_above(
    s: &Store,
    region: &RegionCode,
) -> Result<Vec<(RegionCode, String)>, StoreError> {
    let mut out = Vec::new();
    for r in region.ancestors() {
        if r == *region || !r.has_congress() {
            continue;
        }
        let name = s.rollup(&r)?.map(|r| r.name).unwrap_or_default();
        out.push((r, name));
    }
    Ok(out)
}

/// A congress as a clerk reads it: its name, and its code.
pub(crate) fn congress_label(region: &RegionCode, name: &str) -> String {
    if name.is_empty() {
        format!("{region} 人大")
    } else {
        format!("{name}（{region}）")
    }
}

/// The forms of the steps this node may take on `record` now, for a clerk; nothing for anyone
/// else.
pub(crate) fn steps(
    d: &Dashboard,
    record: &Record,
    version: i64,
    context: &StepContext,
    refused: Option<&Refused>,
) -> Markup {
    if !session::current().is_some_and(|c| c.role.allows(Role::Clerk)) {
        return html! {};
    }
    // A workflow record holding a step of a newer release is in a state this release cannot
    // tell: it offers no step, and says why, as the office would refuse any.
    let newer = match &record.body {
        Body::Suggestion(sg) => refuse_if_unreadable(&sg.events).err(),
        Body::Opinion(o) => refuse_if_unreadable(&o.events).err(),
        Body::Motion(m) => refuse_if_unreadable(&m.events).err(),
        _ => None,
    };
    if let Some(rejection) = newer {
        return html! {
            section.steps aria-label="办理" {
                h2 { "办理" }
                p.meta data-steps="newer-version" { (rejection.reason) }
            }
        };
    }
    let today = renda_node::calendar::today();
    let forms = match &record.body {
        Body::Suggestion(sg) => suggestions::steps(d.me, record, sg, version, today, refused),
        Body::Opinion(o) => opinions::steps(d.me, record, o, version, context, today, refused),
        Body::Delegate(_) | Body::Mandate(_) | Body::Group(_) => {
            people::steps(d.me, record, version, context, today, refused)
        }
        Body::Activity(_) => activities::steps(d.me, record, version, context, today, refused),
        Body::QuotaRule(_) | Body::Motion(_) => {
            rules::steps(d.me, record, version, context, today, refused)
        }
        _ => return html! {},
    };
    // A refused step with no form here (one the record does not offer, or no longer does)
    // is said above the forms.
    let unplaced = refused.filter(|r| !forms.iter().any(|(name, _)| *name == r.step));
    html! {
        section.steps aria-label="办理" {
            h2 { "办理" }
            @if let Some(r) = unplaced {
                (Shown { posted: Some(&r.posted), refusal: Some(&r.refusal) }.refusal_markup())
            }
            @if forms.is_empty() {
                p.meta data-steps="none" { "本节点现在没有可以办理的步骤。" }
            } @else {
                @for (_, form) in forms { (form) }
            }
        }
    }
}

/// How step `name`'s form is shown: as typed and open when it is the one that came back
/// refused, empty and folded otherwise.
pub(crate) fn shown_for<'a>(refused: Option<&'a Refused>, name: &str) -> (Shown<'a>, bool) {
    match refused {
        Some(r) if r.step == name => (
            Shown {
                posted: Some(&r.posted),
                refusal: Some(&r.refusal),
            },
            true,
        ),
        _ => (Shown::default(), false),
    }
}

/// A step's form: the refusal beside it, its guards, its fields, the day it took effect.
pub(crate) fn guarded_step(
    record: &RecordId,
    name: &str,
    label: &str,
    version: i64,
    refused: Option<&Refused>,
    today: chrono::NaiveDate,
    fields: impl FnOnce(&Shown<'_>) -> Markup,
) -> (String, Markup) {
    let (shown, open) = shown_for(refused, name);
    let body = html! {
        (shown.refusal_markup())
        (shown.guards(Some(version)))
        (fields(&shown))
        (shown.date(&format!("{name}-date"), "日期", today))
    };
    step_form(record, name, label, open, body)
}

/// One step's form, folded away until opened (open when it came back refused).
pub(crate) fn step_form(
    record: &RecordId,
    step: &str,
    label: &str,
    open: bool,
    fields: Markup,
) -> (String, Markup) {
    let form = html! {
        details.step data-step=(step) open[open] {
            summary { (label) }
            form.work method="post" action=(format!("/records/{record}/steps/{step}")) {
                (fields)
                button type="submit" data-action=(step) { (label) }
            }
        }
    };
    (step.to_string(), form)
}

/// POST `/records/{id}/steps/{step}`: one step on a suggestion or an opinion.
pub(crate) async fn step(
    State(d): State<Dashboard>,
    Path((id, step)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let site = super::public::site(&d, &headers);
    let credential = session::require(Role::Clerk)?;
    let id = RecordId::parse("id", &id).map_err(|e| PageError::bad("id", e.rule))?;
    let posted = Posted::parse(&body)?;
    let today = renda_node::calendar::today();
    let kind = d.store.read(move |s| s.get(&id)).await?.header.kind;
    use renda_node::record::RecordKind as K;
    let op: Result<StepWrite, Refusal> = match kind {
        K::Suggestion => suggestions::action(&step, &posted, today).map(|(action, date)| {
            Box::new(move |tx: &mut WriteTx<'_>, user: &str, id: &RecordId| {
                renda_node::office::suggestion_step(tx, user, id, action, date).map(drop)
            }) as StepWrite
        }),
        K::Opinion => opinions::action(&step, &posted, today).map(|(action, date)| {
            Box::new(move |tx: &mut WriteTx<'_>, user: &str, id: &RecordId| {
                renda_node::office::opinion_step(tx, user, id, action, date).map(drop)
            }) as StepWrite
        }),
        K::Delegate | K::Mandate | K::Group => people::action(kind, &step, &posted, d.me, today),
        K::Activity => activities::action(&step, &posted, today),
        K::QuotaRule | K::Motion => rules::action(kind, &step, &posted, today),
        other => {
            return Err(PageError::bad(
                "step",
                format!("{}没有办理步骤", other.label()),
            ));
        }
    };
    let outcome = match op {
        Err(refusal) => Err(refusal),
        Ok(op) => {
            apply(&d, &credential.name, &posted, Some(id), move |tx, user| {
                op(tx, user, &id).map(|()| id)
            })
            .await?
        }
    };
    match outcome {
        Ok(Applied::Done(_)) => {
            // The step as parsed, never the path segment as typed, goes into the address.
            let done = canonical_step(kind, &step).unwrap_or("step");
            tracing::info!(record = %id, step = done, by = %credential.name, "a step recorded on the workbench");
            Ok(Redirect::to(&format!("/records/{id}?done={done}")).into_response())
        }
        Ok(Applied::Again(_)) => {
            Ok(Redirect::to(&format!("/records/{id}?done=again")).into_response())
        }
        Ok(Applied::Moved) => {
            let page =
                super::pages::record_page(&d, id, Some(Notice::Moved), None, site.as_deref())
                    .await?;
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(refusal) => {
            let status = if refusal.rule.is_some() {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            let refused = Refused {
                step,
                posted,
                refusal,
            };
            let page =
                super::pages::record_page(&d, id, None, Some(refused), site.as_deref()).await?;
            Ok((status, page).into_response())
        }
    }
}

/// Where a new record's applied form leads: the record's page.
pub(crate) fn created(applied: Applied) -> Response {
    match applied {
        Applied::Done(id) => Redirect::to(&format!("/records/{id}?done=created")).into_response(),
        Applied::Again(Some(id)) => {
            Redirect::to(&format!("/records/{id}?done=again")).into_response()
        }
        Applied::Again(None) | Applied::Moved => Redirect::to("/todo").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_step;
    use renda_node::record::RecordKind;

    #[test]
    fn a_step_goes_into_an_address_only_as_its_english_id() {
        assert_eq!(
            canonical_step(RecordKind::Suggestion, "交办"),
            Some("assign")
        );
        assert_eq!(
            canonical_step(RecordKind::Suggestion, " close\n"),
            Some("close")
        );
        assert_eq!(
            canonical_step(RecordKind::Opinion, "pass_on"),
            Some("pass_on")
        );
        assert_eq!(
            canonical_step(RecordKind::Mandate, "station"),
            Some("station")
        );
        assert_eq!(canonical_step(RecordKind::Mandate, "station\n"), None);
        assert_eq!(canonical_step(RecordKind::Opinion, "assign"), None);
    }
}
