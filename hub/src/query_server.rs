//! The gRPC `Query` service: read-only answers about what this node holds, for its dashboard and
//! for other programs. Personal data is never answered. Every call carries a bearer token of a
//! credential whose role allows it (viewer for reads, admin for the audit log).

// This is the first Query service, which serves the JSON fields it was written with; they
// are deprecated in the proto for new programs (`renda.query.v1`), not here.
#![allow(deprecated)]

use chrono::{Datelike, NaiveDate};
use renda_node::access::Role;
use renda_node::record::activity::ActivityKind;
use renda_node::record::rollup::Period;
use renda_node::record::suggestion::AnswerClass;
use renda_node::record::{RecordId, RecordKind};
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, ListRow, StoreError, StoreHandle};
use renda_proto::v1::query_server::Query;
use renda_proto::v1::{
    GetDutyRecordReply, GetDutyRecordRequest, GetRecordReply, GetRecordRequest, GetRollupReply,
    GetRollupRequest, ListRecordsReply, ListRecordsRequest, RecordRow,
};
use renda_proto::v1::{ListAuditReply, ListAuditRequest};
use renda_proto::v1::{ListQuotaStandingsReply, ListQuotaStandingsRequest};
use tonic::{Request, Response, Status};

use crate::auth::{Denied, authorize, bearer};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub struct QueryService {
    store: StoreHandle,
    me: RegionCode,
}

impl QueryService {
    pub fn new(store: StoreHandle, me: RegionCode) -> QueryService {
        QueryService { store, me }
    }
}

impl QueryService {
    /// Lets the call in if its bearer token proves a credential whose role allows `needs`.
    async fn allow<T>(&self, request: &Request<T>, needs: Role) -> Result<(), Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match authorize(&self.store, bearer(header), needs).await {
            Ok(_) => Ok(()),
            Err(e @ Denied::Unauthenticated(_)) => Err(Status::unauthenticated(e.to_string())),
            Err(e @ (Denied::Forbidden { .. } | Denied::ApiOnly { .. })) => {
                Err(Status::permission_denied(e.to_string()))
            }
            Err(Denied::Store(e)) => Err(store_status(e)),
        }
    }
}

/// A status message never quotes a whole input: a megabyte in `grpc-message` would fail the
/// client on its metadata limit instead of telling it what was wrong.
fn message(text: String) -> String {
    renda_node::validate::clip(&text, STATUS_MESSAGE_CHARS)
}

/// Longest message a status carries.
const STATUS_MESSAGE_CHARS: usize = 500;

fn invalid(field: &str, rule: impl std::fmt::Display) -> Status {
    Status::invalid_argument(message(format!(
        "{}: {rule}",
        renda_node::validate::quote(field)
    )))
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound { .. } => Status::not_found(message(e.to_string())),
        StoreError::Invalid(v) => invalid(&v.field, v.rule),
        StoreError::NewerKind { .. } => Status::failed_precondition(message(e.to_string())),
        other => Status::internal(message(other.to_string())),
    }
}

fn optional<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

fn row(r: ListRow) -> RecordRow {
    RecordRow {
        id: r.id.to_string(),
        kind: r.kind.as_str().to_string(),
        home: r.home.to_string(),
        label: r.label,
        status: r.status.unwrap_or_default(),
        occurred_on: r.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
        due_on: r.due_on.map(|d| d.to_string()).unwrap_or_default(),
        summary_json: r.summary.to_string(),
    }
}

#[tonic::async_trait]
impl Query for QueryService {
    async fn get_rollup(
        &self,
        request: Request<GetRollupRequest>,
    ) -> Result<Response<GetRollupReply>, Status> {
        self.allow(&request, Role::Viewer).await?;
        let asked = request.into_inner();
        let period =
            optional(&asked.period, Period::parse).map_err(|rule| invalid("period", rule))?;
        let region = optional(&asked.region, |s| {
            RegionCode::parse("region", s).map_err(|e| e.rule)
        })
        .map_err(|rule| invalid("region", rule))?
        .unwrap_or(self.me);
        let rollup = self
            .store
            .read(move |s| s.rollup(&region))
            .await
            .map_err(store_status)?
            .ok_or_else(|| {
                Status::not_found(format!("region: no rollup of {region} is held here"))
            })?;
        let rollup = match period {
            Some(period) => rollup.in_period(&period),
            None => rollup,
        };
        Ok(Response::new(GetRollupReply {
            region: region.to_string(),
            rollup_json: serde_json::to_string(&rollup)
                .map_err(|e| Status::internal(e.to_string()))?,
        }))
    }

    async fn list_records(
        &self,
        request: Request<ListRecordsRequest>,
    ) -> Result<Response<ListRecordsReply>, Status> {
        self.allow(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let kind = optional(&r.kind, |s| {
            RecordKind::parse(s).ok_or_else(|| format!("unknown record kind {s:?}"))
        })
        .map_err(|rule| invalid("kind", rule))?;
        if kind == Some(RecordKind::Personal) {
            return Err(Status::permission_denied(
                "kind: personal data is not answered by the query service",
            ));
        }
        let within = optional(&r.within, |s| {
            RegionCode::parse("within", s).map_err(|e| e.rule)
        })
        .map_err(|rule| invalid("within", rule))?;
        let delegate = optional(&r.delegate, |s| {
            RecordId::parse("delegate", s).map_err(|e| e.rule)
        })
        .map_err(|rule| invalid("delegate", rule))?;
        let overdue_on = optional(&r.overdue_on, |s| {
            s.parse::<NaiveDate>()
                .map_err(|_| format!("not a date (YYYY-MM-DD): {s:?}"))
        })
        .map_err(|rule| invalid("overdue_on", rule))?;
        let period = optional(&r.period, Period::parse).map_err(|rule| invalid("period", rule))?;
        let activity_kind = optional(&r.activity_kind, |s| {
            ActivityKind::parse("activity_kind", s)
                .map(|k| k.as_str().to_string())
                .map_err(|e| e.rule)
        })
        .map_err(|rule| invalid("activity_kind", rule))?;
        let answer_class = optional(&r.answer_class, |s| {
            AnswerClass::parse("answer_class", s)
                .map(|c| c.as_str().to_string())
                .map_err(|e| e.rule)
        })
        .map_err(|rule| invalid("answer_class", rule))?;
        // A page token is the id of the last record of the previous page.
        let after = optional(&r.page_token, |s| {
            RecordId::parse("page_token", s)
                .map_err(|_| "not a token this service gave".to_string())
        })
        .map_err(|rule| invalid("page_token", rule))?;
        let size = match r.page_size {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(invalid("page_size", format!("at most {MAX_PAGE}")));
            }
            n => n,
        };
        let query = ListQuery {
            kind,
            status: (!r.status.is_empty()).then_some(r.status),
            within,
            delegate,
            overdue_on,
            period,
            activity_kind,
            answer_class,
            after,
            // One more than asked, to know whether another page follows.
            limit: Some(size + 1),
            ..ListQuery::default()
        };
        let mut rows = self
            .store
            .read(move |s| s.list(&query))
            .await
            .map_err(store_status)?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => last.id.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(ListRecordsReply {
            records: rows
                .into_iter()
                .filter(|r| r.kind != RecordKind::Personal)
                .map(row)
                .collect(),
            next_page_token,
        }))
    }

    async fn get_record(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<GetRecordReply>, Status> {
        self.allow(&request, Role::Viewer).await?;
        let id =
            RecordId::parse("id", &request.into_inner().id).map_err(|e| invalid("id", e.rule))?;
        let record = self
            .store
            .read(move |s| s.get(&id))
            .await
            .map_err(store_status)?;
        if record.header.kind == RecordKind::Personal {
            return Err(Status::permission_denied(
                "id: personal data is not answered by the query service",
            ));
        }
        Ok(Response::new(GetRecordReply {
            record_json: record.to_json(None).to_string(),
        }))
    }

    async fn get_duty_record(
        &self,
        request: Request<GetDutyRecordRequest>,
    ) -> Result<Response<GetDutyRecordReply>, Status> {
        self.allow(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let delegate =
            RecordId::parse("delegate", &r.delegate).map_err(|e| invalid("delegate", e.rule))?;
        let year = if r.year == 0 {
            renda_node::calendar::today().year()
        } else {
            r.year
        };
        let duty = self
            .store
            .read(move |s| s.duty_record(&delegate, year))
            .await
            .map_err(store_status)?;
        Ok(Response::new(GetDutyRecordReply {
            delegate_json: duty.delegate.to_json(None).to_string(),
            receptions: duty.receptions,
            suggestions_made: duty.suggestions.len() as u32,
            meets_quota: duty.meets_quota(),
            activities: duty.activities.into_iter().map(row).collect(),
            suggestions: duty.suggestions.into_iter().map(row).collect(),
        }))
    }

    async fn list_quota_standings(
        &self,
        request: Request<ListQuotaStandingsRequest>,
    ) -> Result<Response<ListQuotaStandingsReply>, Status> {
        use renda_node::record::quota::{QuotaPeriod, QuotaSubject, Standing, judged_on};
        use renda_proto::v1 as pb;
        self.allow(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let today = renda_node::calendar::today();
        let year = match r.year {
            0 => today.year(),
            y if (1949..=9999).contains(&y) => y,
            _ => {
                return Err(invalid(
                    "year",
                    "a year from 1949 to 9999, or 0 for this year",
                ));
            }
        };
        let wanted = match pb::QuotaSubject::try_from(r.subject) {
            Ok(pb::QuotaSubject::Unspecified) => None,
            Ok(pb::QuotaSubject::Group) => Some(QuotaSubject::Group),
            Ok(pb::QuotaSubject::Delegate) => Some(QuotaSubject::Delegate),
            Err(_) => {
                return Err(invalid(
                    "subject",
                    "QUOTA_SUBJECT_GROUP or QUOTA_SUBJECT_DELEGATE",
                ));
            }
        };
        let (rules, standings) = self
            .store
            .read(move |s| s.quota_standings(year, today))
            .await
            .map_err(store_status)?;
        let subject = |s: QuotaSubject| match s {
            QuotaSubject::Group => pb::QuotaSubject::Group as i32,
            QuotaSubject::Delegate => pb::QuotaSubject::Delegate as i32,
        };
        let standing = |s: Standing| match s {
            Standing::Met => pb::QuotaStandingKind::Met as i32,
            Standing::OnTrack => pb::QuotaStandingKind::OnTrack as i32,
            Standing::Behind => pb::QuotaStandingKind::Behind as i32,
            Standing::Short => pb::QuotaStandingKind::Short as i32,
        };
        let rule_message = |q: &renda_node::record::quota::QuotaRule| pb::QuotaRule {
            congress: q.congress.to_string(),
            subject: subject(q.subject),
            group_kind: q
                .group_kind
                .map(|k| k.as_str().to_string())
                .unwrap_or_default(),
            counts: q.counts.as_str().to_string(),
            activity_kinds: q
                .activity_kinds
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            period: match q.period {
                QuotaPeriod::Quarter => pb::QuotaPeriod::Quarter as i32,
                QuotaPeriod::Year => pb::QuotaPeriod::Year as i32,
            },
            minimum: q.minimum,
            from: q.from.to_string(),
            until: q.until.map(|d| d.to_string()).unwrap_or_default(),
            text: q.describe(),
            basis: q.basis.clone().unwrap_or_default(),
        };
        let listed = standings
            .into_iter()
            .filter(|s| {
                (!r.only_falling_short || s.falling_short())
                    && wanted.is_none_or(|w| w == s.subject)
            })
            .map(|s| pb::QuotaStanding {
                subject: subject(s.subject),
                id: s.id.clone(),
                name: s.name.clone(),
                standing: standing(s.standing),
                judgements: s
                    .judgements
                    .iter()
                    .map(|x| pb::QuotaJudgement {
                        rule: rules.iter().position(|r| *r == x.rule).unwrap_or(0) as u32,
                        have: x.judgement.have,
                        need: x.judgement.need,
                        quarter: x.judgement.quarter.map_or(0, u32::from),
                        standing: standing(x.judgement.standing),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(ListQuotaStandingsReply {
            year,
            as_of: judged_on(year, today).to_string(),
            rules: rules.iter().map(rule_message).collect(),
            standings: listed,
        }))
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditReply>, Status> {
        self.allow(&request, Role::Admin).await?;
        let limit = match request.into_inner().limit {
            0 => 100,
            n if n > 1000 => return Err(invalid("limit", "at most 1000")),
            n => n as usize,
        };
        let entries = self
            .store
            .read(move |s| s.audit_log(limit))
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListAuditReply {
            entries_json: serde_json::to_string(&entries)
                .map_err(|e| Status::internal(e.to_string()))?,
        }))
    }
}
