//! The forms that start a record, one generic pair of handlers for all of them: GET shows the
//! form with the choices it needs read from the store, POST parses it, applies it once for its
//! idempotency key through the office operation, and leads to the new record, or shows the
//! form again as typed with why it was refused.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::access::Role;
use renda_node::record::RecordId;
use renda_node::region::RegionCode;
use renda_node::store::{Store, StoreError, WriteTx};

use super::{apply, created};
use crate::dashboard::forms::{Posted, Refusal, Shown};
use crate::dashboard::pages::Params;
use crate::dashboard::{Dashboard, PageError, session};

/// A form that starts a record of one kind.
pub(crate) trait NewRecord: Sized + Send + 'static {
    /// Where the form is served and posted.
    const PATH: &'static str;
    /// Its heading, in Chinese.
    const TITLE: &'static str;
    /// A sentence under the heading: what the rule is, where the record goes.
    const NOTE: &'static str;
    /// The label of its button.
    const SUBMIT: &'static str;

    /// What the form offers to choose from (delegates, venues …), read in one snapshot; a form
    /// with nothing to choose keeps the default, which reads nothing.
    type Choices: Default + Send + 'static;
    fn choices(_: &Store, _: RegionCode) -> Result<Self::Choices, StoreError> {
        Ok(Self::Choices::default())
    }

    /// The form's inputs, labelled, in keyboard order.
    fn fields(
        shown: &Shown<'_>,
        choices: &Self::Choices,
        me: RegionCode,
        today: NaiveDate,
    ) -> Markup;

    /// The form as typed, checked for what can be checked without the store.
    fn parse(posted: &Posted, me: RegionCode, today: NaiveDate) -> Result<Self, Refusal>;

    /// Writes the record through the office operation; returns its id.
    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError>;
}

fn form<F: NewRecord>(d: &Dashboard, shown: Shown<'_>, choices: &F::Choices) -> Markup {
    let today = renda_node::calendar::today();
    html! {
        h1 { (F::TITLE) }
        p.meta { (F::NOTE) }
        form.work.new method="post" action=(F::PATH) {
            (shown.refusal_markup())
            (shown.guards(None))
            (F::fields(&shown, choices, d.me, today))
            button type="submit" data-action="submit" { (F::SUBMIT) }
        }
    }
}

/// GET: the empty form.
pub(crate) async fn show<F: NewRecord>(
    State(d): State<Dashboard>,
) -> Result<Html<String>, PageError> {
    session::require(Role::Clerk)?;
    let me = d.me;
    let (shown, choices) = d
        .read(&Params::default(), move |s, _, _| F::choices(s, me))
        .await?;
    Ok(d.page(
        "/todo",
        F::TITLE,
        &shown,
        form::<F>(&d, Shown::default(), &choices),
    ))
}

/// POST: the record written once, or the form again as typed.
pub(crate) async fn submit<F: NewRecord>(
    State(d): State<Dashboard>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let credential = session::require(Role::Clerk)?;
    let posted = Posted::parse(&body)?;
    let today = renda_node::calendar::today();
    let outcome = match F::parse(&posted, d.me, today) {
        Err(refusal) => Err(refusal),
        Ok(parsed) => {
            apply(&d, &credential.name, &posted, None, move |tx, user| {
                parsed.apply(tx, user)
            })
            .await?
        }
    };
    let refusal = match outcome {
        Err(refusal) => refusal,
        Ok(applied) => {
            tracing::info!(form = F::PATH, by = %credential.name, "a record started on the workbench");
            return Ok(created(applied));
        }
    };
    let me = d.me;
    let (shown, choices) = d
        .read(&Params::default(), move |s, _, _| F::choices(s, me))
        .await?;
    let page = form::<F>(
        &d,
        Shown {
            posted: Some(&posted),
            refusal: Some(&refusal),
        },
        &choices,
    );
    Ok((
        StatusCode::BAD_REQUEST,
        d.page("/todo", F::TITLE, &shown, page),
    )
        .into_response())
}

/// Every value of a repeated choice as ids; empty values are skipped.
pub(crate) fn ids(posted: &Posted, name: &str) -> Result<Vec<RecordId>, Refusal> {
    posted
        .all(name)
        .into_iter()
        .filter(|v| !v.is_empty())
        .map(|v| RecordId::parse(name, v).map_err(Refusal::from))
        .collect()
}

/// An optional id.
pub(crate) fn optional_id(posted: &Posted, name: &str) -> Result<Option<RecordId>, Refusal> {
    match posted.get(name) {
        "" => Ok(None),
        v => RecordId::parse(name, v).map(Some).map_err(Refusal::from),
    }
}

/// An optional whole number.
pub(crate) fn optional_number(
    posted: &Posted,
    name: &str,
    what: &str,
) -> Result<Option<u32>, Refusal> {
    match posted.get(name) {
        "" => Ok(None),
        v => v.parse().map(Some).map_err(|_| {
            Refusal::field(
                name,
                format!(
                    "{what}须为非负整数，实际为“{}”",
                    renda_node::validate::quote(v)
                ),
            )
        }),
    }
}
