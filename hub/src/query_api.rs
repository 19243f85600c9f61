//! The Query API for programs (`renda.query.v1.QueryService`, docs/api.md): typed, read-only
//! answers about what this node holds, served on a listener of its own with an ordinary server
//! certificate and a bearer token, beside gRPC health checking and server reflection.
//!
//! Every answer is read on a reader thread of the store, so a program polling the API never
//! waits behind the node's writes. Malformed input is INVALID_ARGUMENT with a
//! `google.rpc.BadRequest` naming the field and a `google.rpc.ErrorInfo` whose reason is one
//! of [`Reason`]; nothing a request says reaches SQL but through [`ListQuery`]'s typed fields.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use renda_node::access::Role;
use renda_node::record::RecordKind;
use renda_node::record::rollup::Period;
use renda_node::region::{Level, RegionCode};
use renda_node::store::{ListOrder, ListQuery, ListRow, StoreError, StoreHandle};
use renda_node::sync::version::Versions;
use renda_proto::google::types::Date;
use renda_proto::query::v1 as api;
use renda_proto::query::v1::query_service_server::{QueryService, QueryServiceServer};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::{Denied, authorize_limited, bearer};

mod typed;

/// The `ErrorInfo.domain` of every error this API returns.
const DOMAIN: &str = "renda.query";

const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 500;
const DEFAULT_CHANGES: i32 = 100;
const MAX_CHANGES: i32 = 1000;
/// The largest request a call answers: every request is a few ids, codes and dates, so one this
/// large is a mistake or an attack, refused as RESOURCE_EXHAUSTED before the call reads the
/// store. (tonic has decoded it by then; above its own limit, 4 MiB, tonic refuses it first,
/// as OUT_OF_RANGE.)
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Why a request failed, as `ErrorInfo.reason` names it: stable words a program may branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    /// A field is malformed or out of range; `BadRequest` names it.
    InvalidField,
    /// A page token from another request (another filter or order), or not one of ours.
    PageTokenMismatch,
    /// A state that is not one of the filtered kind's.
    StateOfAnotherKind,
    /// No credential, or an unknown or revoked one.
    Unauthenticated,
    /// A credential whose role is below the call's.
    PermissionDenied,
    /// A credential limited to a subtree asked about a region outside it.
    OutsideSubtree,
    /// A request larger than [`MAX_REQUEST_BYTES`].
    RequestTooLarge,
    /// No record, rollup or delegate by the id or region asked for.
    NotFound,
    /// A record of a kind a newer release added: this node keeps it as it came and reads it
    /// once upgraded.
    KindNeedsUpgrade,
    /// The record's stored document cannot be read.
    RecordUnreadable,
    /// The node's store failed.
    StoreUnavailable,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidField => "INVALID_FIELD",
            Reason::PageTokenMismatch => "PAGE_TOKEN_MISMATCH",
            Reason::StateOfAnotherKind => "STATE_OF_ANOTHER_KIND",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::OutsideSubtree => "OUTSIDE_SUBTREE",
            Reason::RequestTooLarge => "REQUEST_TOO_LARGE",
            Reason::NotFound => "NOT_FOUND",
            Reason::KindNeedsUpgrade => "KIND_NEEDS_UPGRADE",
            Reason::RecordUnreadable => "RECORD_UNREADABLE",
            Reason::StoreUnavailable => "STORE_UNAVAILABLE",
        }
    }
}

/// A status with AIP-193 details: the reason, and for a bad field, which field and why. Every
/// message is English; the field's rule is the one the node's validation states.
fn error(code: Code, reason: Reason, message: impl Into<String>, field: Option<&str>) -> Status {
    let message = renda_node::validate::clip(&message.into(), 500);
    let mut details = ErrorDetails::new();
    details.set_error_info(reason.as_str(), DOMAIN, std::collections::HashMap::new());
    if let Some(field) = field {
        details.add_bad_request_violation(field, message.clone());
    }
    Status::with_error_details(code, message, details)
}

fn invalid(field: &str, reason: Reason, rule: impl std::fmt::Display) -> Status {
    error(
        Code::InvalidArgument,
        reason,
        format!("{field}: {rule}"),
        Some(field),
    )
}

fn not_found(what: &str, id: &str) -> Status {
    error(
        Code::NotFound,
        Reason::NotFound,
        format!("no {what} {} is held here", renda_node::validate::quote(id)),
        None,
    )
}

fn store_status(e: StoreError) -> Status {
    match e {
        // The node's rules are written in Chinese for staff: the message stays English, and
        // the rule goes in the ErrorInfo's metadata for a program to show its users.
        StoreError::Invalid(v) => {
            let mut details = ErrorDetails::new();
            let message = format!("{}: the node's rules refuse this value", v.field);
            details.set_error_info(
                Reason::InvalidField.as_str(),
                DOMAIN,
                std::collections::HashMap::from([("rule_zh".to_string(), v.rule.clone())]),
            );
            details.add_bad_request_violation(&v.field, message.clone());
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        StoreError::NotFound { kind, id } => {
            not_found(if kind.is_empty() { "record" } else { kind }, &id)
        }
        StoreError::NewerKind { id, kind } => error(
            Code::FailedPrecondition,
            Reason::KindNeedsUpgrade,
            format!(
                "record {id} is of kind {kind}, which a newer release added; this node keeps it \
                 as it came and answers for it once upgraded"
            ),
            None,
        ),
        StoreError::Corrupt { id, source } => {
            tracing::error!(record = %id, error = %source, "a stored record cannot be read");
            error(
                Code::DataLoss,
                Reason::RecordUnreadable,
                format!("record {id} is stored damaged; the node's operator can repair it"),
                None,
            )
        }
        other => {
            tracing::warn!(error = %other, "a Query API call could not read the store");
            error(
                Code::Unavailable,
                Reason::StoreUnavailable,
                "the node could not read its store; try again",
                None,
            )
        }
    }
}

/// The subtree a credential may read: `None` for the whole node.
#[derive(Clone, Copy, Debug)]
struct Scope(Option<RegionCode>);

impl Scope {
    /// Whether the region is one the credential may read about.
    fn covers(self, region: &RegionCode) -> bool {
        self.0.is_none_or(|w| region.is_within(&w))
    }

    /// Refuses a region outside the credential's subtree, naming the field that led to it.
    fn check(self, region: &RegionCode, field: &str) -> Result<(), Status> {
        match self.0 {
            Some(w) if !region.is_within(&w) => Err(error(
                Code::PermissionDenied,
                Reason::OutsideSubtree,
                format!("{field}: {region} is outside {w}, the subtree this credential reads"),
                Some(field),
            )),
            _ => Ok(()),
        }
    }

    /// Narrows a list query to the credential's subtree: a filter within it stays, one around
    /// it narrows to it, one elsewhere is refused.
    fn narrow(self, q: &mut ListQuery) -> Result<(), Status> {
        let Some(w) = self.0 else {
            return Ok(());
        };
        q.within = match q.within {
            None => Some(w),
            Some(f) if f.is_within(&w) => Some(f),
            Some(f) if w.is_within(&f) => Some(w),
            Some(f) => {
                return Err(error(
                    Code::PermissionDenied,
                    Reason::OutsideSubtree,
                    format!("filter.within: {f} is outside {w}, the subtree this credential reads"),
                    Some("filter.within"),
                ));
            }
        };
        Ok(())
    }
}

/// The Query API's service.
#[derive(Clone)]
pub struct QueryApi {
    store: StoreHandle,
    me: RegionCode,
    name: String,
    created_at: DateTime<Utc>,
    versions: Versions,
    /// The node's certificate, read at each call: it is renewed while the node runs.
    tls: Option<Arc<renda_node::tls::NodeTls>>,
}

impl QueryApi {
    pub fn new(
        store: StoreHandle,
        identity: &renda_node::store::NodeIdentity,
        versions: Versions,
        tls: Option<Arc<renda_node::tls::NodeTls>>,
    ) -> QueryApi {
        QueryApi {
            store,
            me: identity.region,
            name: identity.name.clone(),
            created_at: identity.created_at,
            versions,
            tls,
        }
    }

    /// Lets the call in if its bearer token proves a credential whose role allows `needs`, and
    /// returns the subtree it may read (`None`: the whole node).
    /// Refuses first a request larger than [`MAX_REQUEST_BYTES`].
    async fn allow<T: prost::Message>(
        &self,
        request: &Request<T>,
        needs: Role,
    ) -> Result<Scope, Status> {
        let size = request.get_ref().encoded_len();
        if size > MAX_REQUEST_BYTES {
            return Err(error(
                Code::ResourceExhausted,
                Reason::RequestTooLarge,
                format!(
                    "the request is {size} bytes; a request may be {MAX_REQUEST_BYTES} at most"
                ),
                None,
            ));
        }
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match authorize_limited(&self.store, bearer(header), needs).await {
            Ok(credential) => Ok(Scope(credential.within)),
            Err(e @ Denied::ApiOnly { .. }) => Err(error(
                Code::PermissionDenied,
                Reason::PermissionDenied,
                e.to_string(),
                None,
            )),
            Err(e @ Denied::Unauthenticated(_)) => Err(error(
                Code::Unauthenticated,
                Reason::Unauthenticated,
                e.to_string(),
                None,
            )),
            Err(e @ Denied::Forbidden { .. }) => Err(error(
                Code::PermissionDenied,
                Reason::PermissionDenied,
                e.to_string(),
                None,
            )),
            Err(Denied::Store(e)) => Err(store_status(e)),
        }
    }
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn date(d: NaiveDate) -> Date {
    Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

/// A whole date from a request's `google.type.Date`.
fn whole_date(field: &str, d: &Date) -> Result<NaiveDate, Status> {
    u32::try_from(d.month)
        .ok()
        .zip(u32::try_from(d.day).ok())
        .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day))
        .ok_or_else(|| {
            invalid(
                field,
                Reason::InvalidField,
                format!(
                    "{}-{}-{} is not a calendar date (year, month and day are all needed)",
                    d.year, d.month, d.day
                ),
            )
        })
}

/// A year (month and day 0) or a month (day 0) from a request's `google.type.Date`.
fn period(field: &str, d: &Date) -> Result<Period, Status> {
    let text = match (d.month, d.day) {
        (0, 0) => format!("{:04}", d.year),
        (m, 0) => format!("{:04}-{m:02}", d.year),
        _ => String::new(),
    };
    Period::parse(&text).map_err(|_| {
        invalid(
            field,
            Reason::InvalidField,
            format!(
                "{}-{}-{} is not a year (month and day 0) or a month (day 0) from 1000 to 9999",
                d.year, d.month, d.day
            ),
        )
    })
}

fn level(l: Option<Level>) -> i32 {
    (match l {
        Some(Level::National) => api::Level::National,
        Some(Level::Province) => api::Level::Province,
        Some(Level::City) => api::Level::City,
        Some(Level::County) => api::Level::County,
        Some(Level::Township) => api::Level::Township,
        None => api::Level::Unspecified,
    }) as i32
}

/// The API's kinds and the store's, both ways; personal data and rollups have none.
const KINDS: [(api::RecordKind, RecordKind); 11] = [
    (api::RecordKind::Delegate, RecordKind::Delegate),
    (api::RecordKind::Group, RecordKind::Group),
    (api::RecordKind::Venue, RecordKind::Venue),
    (api::RecordKind::Activity, RecordKind::Activity),
    (api::RecordKind::Opinion, RecordKind::Opinion),
    (api::RecordKind::Suggestion, RecordKind::Suggestion),
    (api::RecordKind::Notice, RecordKind::Notice),
    (api::RecordKind::Mandate, RecordKind::Mandate),
    (api::RecordKind::QuotaRule, RecordKind::QuotaRule),
    (api::RecordKind::Motion, RecordKind::Motion),
    (api::RecordKind::Revocation, RecordKind::Revocation),
];

fn kind_to_api(kind: RecordKind) -> api::RecordKind {
    KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or(api::RecordKind::Unspecified, |(a, _)| *a)
}

/// The API's states: for each, the store kinds it belongs to and the status word the store
/// keeps. A delegate's standing is a mandate's.
fn states() -> &'static [(api::RecordState, &'static [RecordKind], &'static str)] {
    use RecordKind as K;
    use api::RecordState as S;
    const MANDATES: &[RecordKind] = &[K::Mandate, K::Delegate];
    &[
        (
            S::Unknown,
            &[K::Opinion, K::Suggestion, K::Motion],
            "unknown",
        ),
        (S::OpinionDraft, &[K::Opinion], "draft"),
        (S::OpinionReceived, &[K::Opinion], "received"),
        (S::OpinionPassedOn, &[K::Opinion], "passed_on"),
        (S::OpinionInProgress, &[K::Opinion], "in_progress"),
        (S::OpinionHandled, &[K::Opinion], "handled"),
        (S::SuggestionDraft, &[K::Suggestion], "draft"),
        (S::SuggestionSubmitted, &[K::Suggestion], "submitted"),
        (S::SuggestionNotAccepted, &[K::Suggestion], "not_accepted"),
        (S::SuggestionAccepted, &[K::Suggestion], "accepted"),
        (S::SuggestionAssigned, &[K::Suggestion], "assigned"),
        (S::SuggestionSentBack, &[K::Suggestion], "sent_back"),
        (S::SuggestionAnswered, &[K::Suggestion], "answered"),
        (S::SuggestionRehandling, &[K::Suggestion], "rehandling"),
        (S::SuggestionTracking, &[K::Suggestion], "tracking"),
        (S::SuggestionSatisfied, &[K::Suggestion], "satisfied"),
        (S::SuggestionClosed, &[K::Suggestion], "closed"),
        (S::MotionDraft, &[K::Motion], "draft"),
        (S::MotionSubmitted, &[K::Motion], "submitted"),
        (S::MotionReferred, &[K::Motion], "referred"),
        (S::MotionOnAgenda, &[K::Motion], "on_agenda"),
        (S::MotionConverted, &[K::Motion], "converted"),
        (S::MandateServing, MANDATES, "serving"),
        (S::MandateSuspended, MANDATES, "suspended"),
        (S::MandateResigned, MANDATES, "resigned"),
        (S::MandateRecalled, MANDATES, "recalled"),
        (S::MandateTerminated, MANDATES, "terminated"),
        (S::MandateMerged, MANDATES, "merged"),
    ]
}

fn state_to_api(kind: RecordKind, status: Option<&str>) -> api::RecordState {
    let Some(status) = status else {
        return api::RecordState::Unspecified;
    };
    states()
        .iter()
        .find(|(_, kinds, word)| *word == status && kinds.contains(&kind))
        .map_or(api::RecordState::Unspecified, |(s, _, _)| *s)
}

fn summary(row: ListRow) -> api::RecordSummary {
    api::RecordSummary {
        id: row.id.to_string(),
        kind: kind_to_api(row.kind) as i32,
        home: row.home.to_string(),
        title: row.label,
        state: state_to_api(row.kind, row.status.as_deref()) as i32,
        occur_date: row.occurred_on.map(date),
        due_date: row.due_on.map(date),
        create_time: Some(timestamp(row.created_at)),
    }
}

/// A request's filter as the store's list query (its page left unset).
fn list_query(filter: Option<&api::RecordFilter>) -> Result<ListQuery, Status> {
    let mut q = ListQuery::default();
    let Some(f) = filter else {
        return Ok(q);
    };
    let kind = match api::RecordKind::try_from(f.kind) {
        Ok(api::RecordKind::Unspecified) => None,
        Ok(k) => KINDS.iter().find(|(a, _)| *a == k).map(|(_, k)| *k),
        Err(_) => {
            return Err(invalid(
                "filter.kind",
                Reason::InvalidField,
                format!("{} is not a RecordKind", f.kind),
            ));
        }
    };
    q.kind = kind;
    match api::RecordState::try_from(f.state) {
        Ok(api::RecordState::Unspecified) => {}
        Ok(state) => {
            let Some((_, kinds, word)) = states().iter().find(|(s, _, _)| *s == state) else {
                return Err(invalid("filter.state", Reason::InvalidField, "not a state"));
            };
            match kind {
                Some(k) if kinds.contains(&k) => q.status = Some(word.to_string()),
                Some(k) => {
                    return Err(invalid(
                        "filter.state",
                        Reason::StateOfAnotherKind,
                        format!(
                            "{} is not a state of {}",
                            state.as_str_name(),
                            kind_to_api(k).as_str_name()
                        ),
                    ));
                }
                None => {
                    return Err(invalid(
                        "filter.state",
                        Reason::StateOfAnotherKind,
                        "a state needs filter.kind, the kind it is a state of",
                    ));
                }
            }
        }
        Err(_) => {
            return Err(invalid(
                "filter.state",
                Reason::InvalidField,
                format!("{} is not a RecordState", f.state),
            ));
        }
    }
    if !f.within.is_empty() {
        q.within = Some(region_code("filter.within", &f.within)?);
    }
    if !f.delegate.is_empty() {
        q.delegate = Some(record_id("filter.delegate", &f.delegate)?);
    }
    if let Some(d) = &f.occur_period {
        q.period = Some(period("filter.occur_period", d)?);
    }
    if let Some(d) = &f.overdue_on {
        q.overdue_on = Some(whole_date("filter.overdue_on", d)?);
    }
    Ok(q)
}

/// A page token: the request it belongs to (a hash of its filter and order) and the id the
/// page ended at. Opaque to clients; one from another request is refused.
fn page_key(filter: Option<&api::RecordFilter>, order_by: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(prost::Message::encode_to_vec(
        &filter.cloned().unwrap_or_default(),
    ));
    hasher.update([0]);
    hasher.update(order_by.as_bytes());
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn get_node(
        &self,
        request: Request<api::GetNodeRequest>,
    ) -> Result<Response<api::GetNodeResponse>, Status> {
        // Every credential may know which node it speaks to.
        self.allow(&request, Role::Viewer).await?;
        Ok(Response::new(api::GetNodeResponse {
            node: Some(api::Node {
                region: self.me.to_string(),
                display_name: self.name.clone(),
                level: level(self.me.level()),
                version: env!("CARGO_PKG_VERSION").to_string(),
                min_protocol_version: self.versions.min,
                max_protocol_version: self.versions.max,
                certificate_expire_time: self.tls.as_ref().map(|t| timestamp(t.not_after())),
                parent_region: self.me.parent().map(|p| p.to_string()).unwrap_or_default(),
                create_time: Some(timestamp(self.created_at)),
            }),
        }))
    }

    async fn list_children(
        &self,
        request: Request<api::ListChildrenRequest>,
    ) -> Result<Response<api::ListChildrenResponse>, Status> {
        let scope = self.allow(&request, Role::Viewer).await?;
        let me = self.me;
        let rollup = self
            .store
            .read(move |s| s.rollup(&me))
            .await
            .map_err(store_status)?;
        let Some(r) = rollup else {
            return Ok(Response::new(api::ListChildrenResponse::default()));
        };
        let mut children: Vec<api::Child> = r
            .children
            .iter()
            .filter(|(region, _)| {
                RegionCode::parse("region", region).is_ok_and(|c| scope.covers(&c))
            })
            .map(|(region, child)| {
                let code = RegionCode::parse("region", region).ok();
                api::Child {
                    region: region.clone(),
                    display_name: child.name.clone(),
                    level: level(code.and_then(|c| c.level())),
                    rollup_time: Some(timestamp(child.as_of)),
                    stale: r.stale.iter().any(|s| s.region.as_str() == region),
                }
            })
            .collect();
        // A child that linked but never sent its numbers is listed as stale only: it is the
        // one a dashboard most needs to show.
        for s in &r.stale {
            if s.region.parent() == Some(me)
                && scope.covers(&s.region)
                && !r.children.contains_key(s.region.as_str())
            {
                children.push(api::Child {
                    region: s.region.to_string(),
                    display_name: String::new(),
                    level: level(s.region.level()),
                    rollup_time: s.as_of.map(timestamp),
                    stale: true,
                });
            }
        }
        children.sort_by(|a, b| a.region.cmp(&b.region));
        Ok(Response::new(api::ListChildrenResponse { children }))
    }

    async fn get_sync_health(
        &self,
        request: Request<api::GetSyncHealthRequest>,
    ) -> Result<Response<api::GetSyncHealthResponse>, Status> {
        let scope = self.allow(&request, Role::Viewer).await?;
        let me = self.me;
        let (peers, rollup, names) = self
            .store
            .read(move |s| {
                let rollup = s.rollup(&me)?;
                let names = match &rollup {
                    Some(r) => stale_names(s, r)?,
                    None => Default::default(),
                };
                Ok((s.peers()?, rollup, names))
            })
            .await
            .map_err(store_status)?;
        let parent = me.parent();
        let links = peers
            .into_iter()
            .filter(|p| scope.covers(&p.peer))
            .map(|p| api::Link {
                peer: p.peer.to_string(),
                role: if Some(p.peer) == parent {
                    api::LinkRole::Parent
                } else {
                    api::LinkRole::Child
                } as i32,
                lag_changes: p.lag,
                last_success_time: p.last_success.map(timestamp),
                last_error: p.last_error.unwrap_or_default(),
                refused_in: p.refused_in,
                refused_out: p.refused_out,
                stalled: p.stalled,
                records_in: p.records_in,
                records_out: p.records_out,
            })
            .collect();
        let stale_regions = rollup
            .map(|r| {
                r.stale
                    .iter()
                    .filter(|s| scope.covers(&s.region))
                    .map(|s| api::StaleRegion {
                        region: s.region.to_string(),
                        display_name: names.get(&s.region).cloned().unwrap_or_default(),
                        rollup_time: s.as_of.map(timestamp),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(api::GetSyncHealthResponse {
            links,
            stale_regions,
        }))
    }

    async fn list_records(
        &self,
        request: Request<api::ListRecordsRequest>,
    ) -> Result<Response<api::ListRecordsResponse>, Status> {
        let scope = self.allow(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let mut q = list_query(r.filter.as_ref())?;
        scope.narrow(&mut q)?;
        q.order = match r.order_by.trim() {
            "" | "id" => ListOrder::Id,
            // The (kind, occurred_on) index orders one kind's records by their day.
            "occur_date" if q.kind.is_some() => ListOrder::Occurred,
            "occur_date" => {
                return Err(invalid(
                    "order_by",
                    Reason::InvalidField,
                    "occur_date orders one kind's records: set filter.kind",
                ));
            }
            "due_date" => ListOrder::Due,
            other => {
                return Err(invalid(
                    "order_by",
                    Reason::InvalidField,
                    format!(
                        "{} is not an order this list offers (id, occur_date, due_date)",
                        renda_node::validate::quote(other)
                    ),
                ));
            }
        };
        let page_size = page_size("page_size", r.page_size, DEFAULT_PAGE, MAX_PAGE)?;
        let key = page_key(r.filter.as_ref(), r.order_by.trim());
        if !r.page_token.is_empty() {
            let mismatch = || {
                invalid(
                    "page_token",
                    Reason::PageTokenMismatch,
                    "not a token this list gave for this filter and order",
                )
            };
            // `key.id`, or `key.day.id` in a day's order.
            let mut parts = r.page_token.split('.');
            if parts.next() != Some(key.as_str()) {
                return Err(mismatch());
            }
            let rest: Vec<&str> = parts.collect();
            let (day, id) = match (q.order, rest.as_slice()) {
                (ListOrder::Id, [id]) => (None, *id),
                (ListOrder::Occurred | ListOrder::Due, [day, id]) => {
                    (Some(day.parse::<NaiveDate>().map_err(|_| mismatch())?), *id)
                }
                _ => return Err(mismatch()),
            };
            q.after = Some(
                renda_node::record::RecordId::parse("page_token", id).map_err(|_| mismatch())?,
            );
            q.after_day = day;
        }
        // One more than the page, to tell whether another follows.
        q.limit = Some(page_size as u32 + 1);
        let q_order = q.order;
        let (mut rows, total) = self
            .store
            // A reader's call is one read transaction: the page and the total agree.
            .read(move |s| {
                let total = s.count(&ListQuery {
                    after: None,
                    limit: None,
                    ..q.clone()
                })?;
                Ok((s.list(&q)?, total))
            })
            .await
            .map_err(store_status)?;
        let more = rows.len() > page_size as usize;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => {
                let day = match q_order {
                    ListOrder::Id => None,
                    ListOrder::Occurred => last.occurred_on,
                    ListOrder::Due => last.due_on,
                };
                match day {
                    Some(day) => format!("{key}.{day}.{}", last.id),
                    None => format!("{key}.{}", last.id),
                }
            }
            _ => String::new(),
        };
        Ok(Response::new(api::ListRecordsResponse {
            records: rows.into_iter().map(summary).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn count_records(
        &self,
        request: Request<api::CountRecordsRequest>,
    ) -> Result<Response<api::CountRecordsResponse>, Status> {
        let scope = self.allow(&request, Role::Viewer).await?;
        let mut q = list_query(request.get_ref().filter.as_ref())?;
        scope.narrow(&mut q)?;
        let counts = self
            .store
            .read(move |s| s.count_by_status(&q))
            .await
            .map_err(store_status)?;
        let total = counts.iter().map(|(_, _, n)| *n as i64).sum();
        let mut by_state: std::collections::BTreeMap<i32, i64> = Default::default();
        // A state word this release does not list (a newer release's) counts under
        // UNSPECIFIED, so the states add up to the total; kinds without states count in none.
        for (kind, status, n) in counts {
            if status.is_some() {
                let state = state_to_api(kind, status.as_deref());
                *by_state.entry(state as i32).or_default() += n as i64;
            }
        }
        Ok(Response::new(api::CountRecordsResponse {
            total,
            states: by_state
                .into_iter()
                .map(|(state, count)| api::StateCount { state, count })
                .collect(),
        }))
    }

    async fn list_changes(
        &self,
        request: Request<api::ListChangesRequest>,
    ) -> Result<Response<api::ListChangesResponse>, Status> {
        let scope = self.allow(&request, Role::Viewer).await?;
        let r = request.into_inner();
        if r.after_sequence < 0 {
            return Err(invalid(
                "after_sequence",
                Reason::InvalidField,
                format!("{} is below 0", r.after_sequence),
            ));
        }
        let limit = page_size("page_size", r.page_size, DEFAULT_CHANGES, MAX_CHANGES)?;
        let after = r.after_sequence;
        let (changed, next, more) = self
            .store
            .read(move |s| s.changed_after(after, limit as u32))
            .await
            .map_err(store_status)?;
        Ok(Response::new(api::ListChangesResponse {
            changes: changed
                .into_iter()
                .filter(|(_, row)| scope.covers(&row.home))
                .map(|(sequence, row)| api::RecordChange {
                    sequence,
                    record: Some(summary(row)),
                })
                .collect(),
            next_sequence: next,
            more,
        }))
    }

    async fn get_record(
        &self,
        request: Request<api::GetRecordRequest>,
    ) -> Result<Response<api::GetRecordResponse>, Status> {
        let scope = self.allow(&request, Role::Viewer).await?;
        let id = record_id("id", &request.get_ref().id)?;
        let hidden = || not_found("record", &id.to_string());
        let record = match self.store.read(move |s| s.get(&id)).await {
            Ok(record) => record,
            // A kept record's home is not read here: a limited credential learns nothing of
            // it, not even its kind.
            Err(StoreError::NewerKind { .. }) if scope.0.is_some() => return Err(hidden()),
            Err(e) => return Err(store_status(e)),
        };
        // A record outside the credential's subtree, personal data and rollups are not records
        // this API answers it: as if not held, so an id probes nothing.
        if !scope.covers(&record.header.home) {
            return Err(hidden());
        }
        let record = typed::record_message(&record).ok_or_else(hidden)?;
        Ok(Response::new(api::GetRecordResponse {
            record: Some(record),
        }))
    }

    async fn get_rollup(
        &self,
        request: Request<api::GetRollupRequest>,
    ) -> Result<Response<api::GetRollupResponse>, Status> {
        let scope = self.allow(&request, Role::Viewer).await?;
        // Empty is this node, or for a credential limited to a subtree, that subtree's root.
        let region = match (request.get_ref().region.as_str(), scope.0) {
            ("", Some(within)) => within,
            ("", None) => self.me,
            (text, _) => region_code("region", text)?,
        };
        scope.check(&region, "region")?;
        let (rollup, names) = self
            .store
            .read(move |s| {
                let Some(rollup) = s.rollup(&region)? else {
                    return Ok(None);
                };
                let names = stale_names(s, &rollup)?;
                Ok(Some((rollup, names)))
            })
            .await
            .map_err(store_status)?
            .ok_or_else(|| not_found("rollup of region", region.as_str()))?;
        Ok(Response::new(api::GetRollupResponse {
            rollup: Some(typed::rollup(&region, &rollup, &names, |c| scope.covers(c))),
        }))
    }

    async fn get_duty_record(
        &self,
        request: Request<api::GetDutyRecordRequest>,
    ) -> Result<Response<api::GetDutyRecordResponse>, Status> {
        use renda_node::record::Body;
        let scope = self.allow(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let delegate = record_id("delegate", &r.delegate)?;
        let year = year("year", r.year)?;
        let duty = self
            .store
            .read(move |s| s.duty_record(&delegate, year))
            .await
            .map_err(store_status)?;
        // A credential limited to a subtree reads the duty records of the delegates homed
        // there, as if no other were held, and of their year only the records homed there too.
        // Their standing is the delegate's own, counted over the whole year.
        if !scope.covers(&duty.delegate.header.home) {
            return Err(not_found("delegate", &delegate.to_string()));
        }
        let mut duty = duty;
        if scope.0.is_some() {
            duty.activities.retain(|row| scope.covers(&row.home));
            duty.suggestions.retain(|row| scope.covers(&row.home));
            duty.receptions = duty
                .activities
                .iter()
                .filter(|row| {
                    let keys = renda_node::record::projection::FilterKeys::of(
                        RecordKind::Activity,
                        &row.summary,
                    );
                    renda_node::record::rollup::is_reception(keys.tag.as_deref())
                })
                .count() as u32;
        }
        let (person, name) = match &duty.delegate.body {
            Body::Delegate(d) => (duty.delegate.header.id, d.name.clone()),
            Body::Mandate(m) => (m.person, m.name.clone()),
            _ => (duty.delegate.header.id, String::new()),
        };
        Ok(Response::new(api::GetDutyRecordResponse {
            duty_record: Some(api::DutyRecord {
                delegate: person.to_string(),
                name,
                year: duty.year,
                reception_count: i32::try_from(duty.receptions).unwrap_or(i32::MAX),
                standing: duty.standing.as_ref().map(typed::subject_standing),
                activities: duty.activities.into_iter().map(summary).collect(),
                suggestions: duty.suggestions.into_iter().map(summary).collect(),
            }),
        }))
    }

    async fn list_quota_standings(
        &self,
        request: Request<api::ListQuotaStandingsRequest>,
    ) -> Result<Response<api::ListQuotaStandingsResponse>, Status> {
        use renda_node::record::quota::{QuotaSubject, judged_on};
        let scope = self.allow(&request, Role::Viewer).await?;
        // The standings are of this congress's own groups and delegates.
        if let Scope(Some(within)) = scope
            && !self.me.is_within(&within)
        {
            return Err(error(
                Code::PermissionDenied,
                Reason::OutsideSubtree,
                format!(
                    "the standings are of {}'s own groups and delegates; this credential reads {within} only",
                    self.me
                ),
                None,
            ));
        }
        let r = request.into_inner();
        let year = year("year", r.year)?;
        let subject = match api::QuotaSubject::try_from(r.subject) {
            Ok(api::QuotaSubject::Unspecified) => None,
            Ok(api::QuotaSubject::Group) => Some(QuotaSubject::Group),
            Ok(api::QuotaSubject::Delegate) => Some(QuotaSubject::Delegate),
            Err(_) => {
                return Err(invalid(
                    "subject",
                    Reason::InvalidField,
                    format!("{} is not a QuotaSubject", r.subject),
                ));
            }
        };
        let standing = match api::Standing::try_from(r.standing) {
            Ok(api::Standing::Unspecified) => None,
            Ok(s) => Some(s as i32),
            Err(_) => {
                return Err(invalid(
                    "standing",
                    Reason::InvalidField,
                    format!("{} is not a Standing", r.standing),
                ));
            }
        };
        let size = page_size("page_size", r.page_size, DEFAULT_PAGE, MAX_PAGE)? as usize;
        let key = page_key(
            None,
            &format!("standings.{year}.{}.{}", r.subject, r.standing),
        );
        // The token names the last subject of its page: groups sort before delegates, each
        // by id, so a subject added between pages neither repeats nor hides one already seen.
        let after = match r.page_token.as_str() {
            "" => None,
            token => Some(
                token
                    .split_once('.')
                    .filter(|(k, _)| *k == key)
                    .and_then(|(_, last)| last.split_once(':'))
                    .and_then(|(s, id)| Some((s.parse::<i32>().ok()?, id.to_string())))
                    .ok_or_else(|| {
                        invalid(
                            "page_token",
                            Reason::PageTokenMismatch,
                            "not a token this list gave for this year and filter",
                        )
                    })?,
            ),
        };
        let today = renda_node::calendar::today();
        let (rules, standings) = self
            .store
            .read(move |s| s.quota_standings(year, today))
            .await
            .map_err(store_status)?;
        let mut listed: Vec<api::SubjectStanding> = standings
            .iter()
            .filter(|s| subject.is_none_or(|w| w == s.subject))
            .map(typed::subject_standing)
            .filter(|s| standing.is_none_or(|w| w == s.standing))
            .collect();
        listed.sort_by(|a, b| (a.subject, &a.id).cmp(&(b.subject, &b.id)));
        let total = listed.len();
        let mut page: Vec<api::SubjectStanding> = listed
            .into_iter()
            .filter(|s| {
                after
                    .as_ref()
                    .is_none_or(|(subject, id)| (s.subject, &s.id) > (*subject, id))
            })
            .take(size + 1)
            .collect();
        let more = page.len() > size;
        page.truncate(size);
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => format!("{key}.{}:{}", last.subject, last.id),
            _ => String::new(),
        };
        Ok(Response::new(api::ListQuotaStandingsResponse {
            standings: page,
            rules: rules.iter().map(typed::quota_rule).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
            judge_date: Some(date(judged_on(year, today))),
        }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<api::ListAuditEntriesRequest>,
    ) -> Result<Response<api::ListAuditEntriesResponse>, Status> {
        // The log is the whole node's: a credential limited to a subtree does not read it.
        if let Scope(Some(within)) = self.allow(&request, Role::Admin).await? {
            return Err(error(
                Code::PermissionDenied,
                Reason::OutsideSubtree,
                format!("the audit log covers the whole node; this credential reads {within} only"),
                None,
            ));
        }
        let r = request.into_inner();
        let size = page_size("page_size", r.page_size, DEFAULT_PAGE, MAX_PAGE)? as usize;
        // The token is the number of the page's last entry, bound to this list like a record
        // list's.
        let key = page_key(None, "audit");
        let before = match r.page_token.as_str() {
            "" => None,
            token => Some(
                token
                    .split_once('.')
                    .filter(|(k, _)| *k == key)
                    .and_then(|(_, n)| n.parse::<i64>().ok())
                    .ok_or_else(|| {
                        invalid(
                            "page_token",
                            Reason::PageTokenMismatch,
                            "not a token this list gave",
                        )
                    })?,
            ),
        };
        let (mut page, total) = self
            .store
            .read(move |s| Ok((s.audit_page(before, size + 1)?, s.audit_count()?)))
            .await
            .map_err(store_status)?;
        let more = page.len() > size;
        page.truncate(size);
        let next_page_token = match (more, page.last()) {
            (true, Some((number, _))) => format!("{key}.{number}"),
            _ => String::new(),
        };
        Ok(Response::new(api::ListAuditEntriesResponse {
            entries: page
                .into_iter()
                .map(|(_, e)| api::AuditEntry {
                    create_time: Some(timestamp(e.at)),
                    peer: e.peer,
                    record_id: e.record,
                    kind: RecordKind::parse(&e.kind)
                        .map_or(api::RecordKind::Unspecified, kind_to_api)
                        as i32,
                    kind_name: e.kind,
                    rule: e.rule,
                    reason: e.reason,
                    change_count: i32::try_from(e.changes).unwrap_or(i32::MAX),
                })
                .collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}

/// The names of the stale descendants a rollup lists: a direct child's as the rollup gives it,
/// a deeper one's from its own last rollup where that reached this node.
fn stale_names(
    s: &renda_node::store::Store,
    r: &renda_node::record::rollup::Rollup,
) -> Result<std::collections::BTreeMap<RegionCode, String>, StoreError> {
    let mut names = std::collections::BTreeMap::new();
    for stale in &r.stale {
        let name = match r.children.get(stale.region.as_str()) {
            Some(child) => child.name.clone(),
            None => s
                .rollup(&stale.region)?
                .map(|held| held.name)
                .unwrap_or_default(),
        };
        names.insert(stale.region, name);
    }
    Ok(names)
}

/// A region code from a request's field.
fn region_code(field: &str, text: &str) -> Result<RegionCode, Status> {
    RegionCode::parse(field, text).map_err(|_| {
        invalid(
            field,
            Reason::InvalidField,
            format!(
                "{} is not a region code (12 digits, 统计用区划代码)",
                renda_node::validate::quote(text)
            ),
        )
    })
}

/// A record id from a request's field.
fn record_id(field: &str, text: &str) -> Result<renda_node::record::RecordId, Status> {
    renda_node::record::RecordId::parse(field, text).map_err(|_| {
        invalid(
            field,
            Reason::InvalidField,
            format!(
                "{} is not a record id (26 characters of Crockford base 32)",
                renda_node::validate::quote(text)
            ),
        )
    })
}

/// A year from a request: this year for 0, else 1949 to 9999.
fn year(field: &str, asked: i32) -> Result<i32, Status> {
    match asked {
        0 => Ok(renda_node::calendar::today().year()),
        y if (1949..=9999).contains(&y) => Ok(y),
        y => Err(invalid(
            field,
            Reason::InvalidField,
            format!("{y} is not a year from 1949 to 9999, or 0 for this year"),
        )),
    }
}

/// A page size from a request: `default` for 0, `max` for anything above it (AIP-158: a
/// client asking for more gets the most a page holds, and pages on), and negative refused.
fn page_size(field: &str, asked: i32, default: i32, max: i32) -> Result<i32, Status> {
    match asked {
        0 => Ok(default),
        n if n > 0 => Ok(n.min(max)),
        n => Err(invalid(
            field,
            Reason::InvalidField,
            format!("{n} is below 0"),
        )),
    }
}

/// Serves the Query API, gRPC health checking and server reflection on `listener` (over TLS
/// with `tls`, else plain, which the node allows on loopback only) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    api: QueryApi,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<QueryServiceServer<QueryApi>>()
        .await;
    // Reflection in both versions clients ask for: grpcurl asks v1 first, grpcio's client
    // v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(renda_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let router = tonic::transport::Server::builder()
        .add_service(QueryServiceServer::new(api))
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    match tls {
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
        Some(config) => {
            let incoming = crate::https::TlsListener::new(listener, config)?
                .into_stream()
                .map(Ok::<_, std::io::Error>);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind the API answers has its value, and every state of every workflow kind and
    /// of a mandate has its own: a state the model gains without the proto fails here instead
    /// of reaching programs as UNSPECIFIED.
    #[test]
    fn every_kind_and_state_of_the_model_has_its_value() {
        use renda_node::record::delegate::MandateStatus;
        use renda_node::record::motion::MotionState;
        use renda_node::record::opinion::OpinionState;
        use renda_node::record::suggestion::SuggestionState;
        for kind in RecordKind::ALL {
            let answered = !matches!(kind, RecordKind::Personal | RecordKind::Rollup);
            assert_eq!(
                kind_to_api(kind) != api::RecordKind::Unspecified,
                answered,
                "{kind:?}"
            );
        }
        let words: Vec<(RecordKind, Vec<&str>)> = vec![
            (
                RecordKind::Opinion,
                OpinionState::ALL.iter().map(|s| s.as_str()).collect(),
            ),
            (
                RecordKind::Suggestion,
                SuggestionState::ALL.iter().map(|s| s.as_str()).collect(),
            ),
            (
                RecordKind::Motion,
                MotionState::ALL.iter().map(|s| s.as_str()).collect(),
            ),
            (
                RecordKind::Mandate,
                MandateStatus::ALL.iter().map(|s| s.as_str()).collect(),
            ),
            (
                RecordKind::Delegate,
                MandateStatus::ALL.iter().map(|s| s.as_str()).collect(),
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (kind, words) in words {
            for word in words {
                let state = state_to_api(kind, Some(word));
                assert_ne!(state, api::RecordState::Unspecified, "{kind:?} {word}");
                if kind != RecordKind::Delegate {
                    assert!(seen.insert(state), "{kind:?} {word} shares a value");
                }
            }
            let unknown = state_to_api(kind, Some(renda_node::record::event::UNKNOWN_STATE));
            assert_eq!(
                unknown == api::RecordState::Unknown,
                kind.has_workflow(),
                "{kind:?}"
            );
        }
    }
}
