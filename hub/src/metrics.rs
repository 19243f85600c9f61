//! The operators' metrics endpoint: `GET /metrics` in Prometheus's text format, served on its
//! own address (`renda run --metrics`) so a scraper needs no dashboard credential. It says
//! nothing about people: link counters and lag, refused changes, what the store holds, and when
//! the node's certificate ends.

use std::fmt::Write;
use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use renda_node::region::RegionCode;
use renda_node::store::{PeerStatus, StoreHandle, StoreStats};
use tokio::net::TcpListener;

/// What the endpoint reads from.
#[derive(Clone)]
pub struct Metrics {
    store: StoreHandle,
    me: RegionCode,
    /// The node's certificate, if it has one: read at each scrape, since it is renewed while
    /// the node runs.
    tls: Option<std::sync::Arc<renda_node::tls::NodeTls>>,
}

impl Metrics {
    pub fn new(
        store: StoreHandle,
        me: RegionCode,
        tls: Option<std::sync::Arc<renda_node::tls::NodeTls>>,
    ) -> Metrics {
        Metrics { store, me, tls }
    }
}

/// Escapes a label value as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text for one scrape.
pub fn render(
    me: &RegionCode,
    peers: &[PeerStatus],
    stats: &StoreStats,
    audited: u64,
    certificate_not_after: Option<DateTime<Utc>>,
) -> String {
    let mut out = String::new();
    let node = label(me.as_str());
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{node=\"{node}\"{labels}}} {value}");
        }
    };
    let per_peer = |f: &dyn Fn(&PeerStatus) -> Vec<(&'static str, i64)>| {
        peers
            .iter()
            .flat_map(|p| {
                f(p).into_iter().map(move |(direction, v)| {
                    let dir = if direction.is_empty() {
                        String::new()
                    } else {
                        format!(",direction=\"{direction}\"")
                    };
                    (
                        format!(",peer=\"{}\"{dir}", label(p.peer.as_str())),
                        v.to_string(),
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    family(
        "renda_sync_records_total",
        "counter",
        "Records sent to and received from each peer.",
        per_peer(&|p| vec![("out", p.records_out), ("in", p.records_in)]),
    );
    family(
        "renda_sync_changes_total",
        "counter",
        "Automerge changes sent to and received from each peer.",
        per_peer(&|p| vec![("out", p.changes_out), ("in", p.changes_in)]),
    );
    family(
        "renda_sync_bytes_total",
        "counter",
        "Bytes of changes sent to and received from each peer.",
        per_peer(&|p| vec![("out", p.bytes_out), ("in", p.bytes_in)]),
    );
    family(
        "renda_sync_lag_changes",
        "gauge",
        "Changes of this node the peer has not acknowledged yet.",
        per_peer(&|p| vec![("", p.lag)]),
    );
    family(
        "renda_sync_link_stalled",
        "gauge",
        "1 while the peer owes acknowledgements and none arrived within the link timeout.",
        per_peer(&|p| vec![("", i64::from(p.stalled))]),
    );
    family(
        "renda_sync_last_success_timestamp_seconds",
        "gauge",
        "When the last round with the peer completed (0: never).",
        per_peer(&|p| vec![("", p.last_success.map_or(0, |t| t.timestamp()))]),
    );
    family(
        "renda_sync_link_error",
        "gauge",
        "1 while the last attempt to sync with the peer failed.",
        per_peer(&|p| vec![("", i64::from(p.last_error.is_some()))]),
    );
    family(
        "renda_refused_records_total",
        "counter",
        "Records whose changes were refused: in, by this node from the peer; out, by the peer from this node.",
        per_peer(&|p| vec![("in", p.refused_in), ("out", p.refused_out)]),
    );
    family(
        "renda_audit_entries",
        "gauge",
        "Entries in this node's audit log of refused changes.",
        vec![(String::new(), audited.to_string())],
    );
    family(
        "renda_store_records",
        "gauge",
        "Records held, by kind.",
        stats
            .records_by_kind
            .iter()
            .map(|(kind, n)| (format!(",kind=\"{}\"", kind.as_str()), n.to_string()))
            .collect(),
    );
    family(
        "renda_store_unknown_state",
        "gauge",
        "Workflow records holding a step of a newer release, whose state this release cannot tell; they wait for this node's upgrade.",
        vec![(String::new(), stats.unknown_state.to_string())],
    );
    family(
        "renda_store_newer_kind_records",
        "gauge",
        "Records of kinds a newer release added, kept as they came and passed on by their routes, by kind; this release reads them once upgraded.",
        stats
            .newer_kinds
            .iter()
            .map(|(kind, n)| (format!(",kind=\"{kind}\""), n.to_string()))
            .collect(),
    );
    family(
        "renda_store_changes",
        "gauge",
        "Automerge changes held.",
        vec![(String::new(), stats.changes.to_string())],
    );
    family(
        "renda_store_bytes",
        "gauge",
        "Size of the node's SQLite database file.",
        vec![(String::new(), stats.file_bytes.to_string())],
    );
    family(
        "renda_backup_last_timestamp_seconds",
        "gauge",
        "When the node last took a backup of its database (0: never).",
        vec![(
            String::new(),
            stats
                .last_backup
                .as_ref()
                .map_or(0, |b| b.at.timestamp())
                .to_string(),
        )],
    );
    family(
        "renda_store_check_timestamp_seconds",
        "gauge",
        "When the node's database file was last found sound by a check (0: never).",
        vec![(
            String::new(),
            stats
                .last_check
                .as_ref()
                .filter(|c| c.detail == "ok")
                .map_or(0, |c| c.at.timestamp())
                .to_string(),
        )],
    );
    if let Some(not_after) = certificate_not_after {
        family(
            "renda_certificate_expiry_timestamp_seconds",
            "gauge",
            "When the node's certificate ends.",
            vec![(String::new(), not_after.timestamp().to_string())],
        );
    }
    out
}

async fn scrape(State(m): State<Metrics>) -> Response {
    let read = m
        .store
        .read(|s| Ok((s.peers()?, s.stats()?, s.audit_count()?)))
        .await;
    match read {
        Ok((peers, stats, audited)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render(
                &m.me,
                &peers,
                &stats,
                audited,
                m.tls.as_ref().map(|t| t.not_after()),
            ),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the metrics endpoint could not read the store");
            (StatusCode::INTERNAL_SERVER_ERROR, "store unavailable\n").into_response()
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
/// Serves `/metrics` on `listener` until `shutdown`: over HTTPS with `tls`, else plain HTTP
/// (which callers keep to loopback).
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    match tls {
        Some(tls) => {
            axum::serve(crate::https::TlsListener::new(listener, tls)?, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use renda_node::record::RecordKind;

    #[test]
    fn every_sample_names_the_node_and_its_peer() {
        let me = RegionCode::parse("region", "330411000000").unwrap();
        let peer = PeerStatus {
            peer: RegionCode::parse("peer", "330411101000").unwrap(),
            received_seq: 10,
            acked_seq: 7,
            last_success: None,
            last_error: Some("unreachable".into()),
            records_in: 3,
            records_out: 4,
            changes_in: 5,
            changes_out: 6,
            bytes_in: 700,
            bytes_out: 800,
            lag: 2,
            refused_in: 1,
            refused_out: 0,
            last_refusal: None,
            stalled: false,
        };
        let stats = StoreStats {
            records_by_kind: vec![(RecordKind::Opinion, 12)],
            unknown_state: 0,
            newer_kinds: vec![("petition".into(), 3)],
            changes: 40,
            last_seq: 40,
            file_bytes: 4096,
            last_backup: Some(renda_node::store::Upkeep {
                at: DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
                detail: "/backups/renda-330411000000-20260528T205320Z.sqlite".into(),
            }),
            last_check: None,
        };
        let text = render(&me, &[peer], &stats, 1, None);
        for line in [
            "renda_sync_changes_total{node=\"330411000000\",peer=\"330411101000\",direction=\"in\"} 5",
            "renda_sync_lag_changes{node=\"330411000000\",peer=\"330411101000\"} 2",
            "renda_backup_last_timestamp_seconds{node=\"330411000000\"} 1780000000",
            "renda_store_check_timestamp_seconds{node=\"330411000000\"} 0",
            "renda_sync_link_error{node=\"330411000000\",peer=\"330411101000\"} 1",
            "renda_refused_records_total{node=\"330411000000\",peer=\"330411101000\",direction=\"in\"} 1",
            "renda_store_records{node=\"330411000000\",kind=\"opinion\"} 12",
            "renda_store_newer_kind_records{node=\"330411000000\",kind=\"petition\"} 3",
            "renda_store_bytes{node=\"330411000000\"} 4096",
            "# TYPE renda_sync_bytes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("certificate"), "no certificate, no sample");
    }
}
