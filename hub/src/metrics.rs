//! The operators' metrics endpoint: `GET /metrics` in Prometheus's text format, served on its
//! own address (`renda run --metrics`) so a scraper needs no dashboard credential. It says
//! nothing about people: link counters and lag, refused changes, what the store holds, and when
//! the node's certificate ends.

use std::borrow::Cow;
use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
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

/// One scrape's values as a prometheus-client collector. They are read from the store at the
/// scrape (the link counters live in the database and survive restarts there; a link's stall is
/// judged as it is read), and the certificate's end from the node's TLS state, which renewal
/// swaps while the node runs; nothing is counted in the process. The collector encodes what was
/// read in a fixed order of families and samples.
#[derive(Debug)]
struct Scrape {
    peers: Vec<PeerStatus>,
    stats: StoreStats,
    audited: u64,
    certificate_not_after: Option<DateTime<Utc>>,
}

/// A sample's labels beyond the node's own, which the registry adds to every sample.
type Labels = Vec<(&'static str, String)>;

/// Writes one family: its help and type, then each sample. Counter names are given without
/// `_total`, which the encoder adds.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, i64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match kind {
            // The store keeps its counts as SQLite integers, never negative; a negative one
            // would be a damaged row, and shows as 0 rather than as a counter gone backwards.
            MetricType::Counter => {
                ConstCounter::new(u64::try_from(value).unwrap_or(0)).encode(sample)?
            }
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// A count as a sample's value.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Scrape {
    /// A family with one sample per peer and direction.
    fn per_peer(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        kind: MetricType,
        of: impl Fn(&PeerStatus) -> Vec<(Option<&'static str>, i64)>,
    ) -> std::fmt::Result {
        let samples = self.peers.iter().flat_map(|p| {
            of(p).into_iter().map(|(direction, value)| {
                let mut labels: Labels = vec![("peer", p.peer.as_str().to_string())];
                labels.extend(direction.map(|d| ("direction", d.to_string())));
                (labels, value)
            })
        });
        family(encoder, name, help, kind, samples)
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        let (counter, gauge) = (MetricType::Counter, MetricType::Gauge);
        let one = |value: i64| [(Labels::new(), value)];
        let stats = &self.stats;
        self.per_peer(
            e,
            "renda_sync_records",
            "Records sent to and received from each peer.",
            counter,
            |p| vec![(Some("out"), p.records_out), (Some("in"), p.records_in)],
        )?;
        self.per_peer(
            e,
            "renda_sync_changes",
            "Automerge changes sent to and received from each peer.",
            counter,
            |p| vec![(Some("out"), p.changes_out), (Some("in"), p.changes_in)],
        )?;
        self.per_peer(
            e,
            "renda_sync_bytes",
            "Bytes of changes sent to and received from each peer.",
            counter,
            |p| vec![(Some("out"), p.bytes_out), (Some("in"), p.bytes_in)],
        )?;
        self.per_peer(
            e,
            "renda_sync_lag_changes",
            "Changes of this node the peer has not acknowledged yet.",
            gauge,
            |p| vec![(None, p.lag)],
        )?;
        self.per_peer(
            e,
            "renda_sync_link_stalled",
            "1 while the peer owes acknowledgements and none arrived within the link timeout.",
            gauge,
            |p| vec![(None, i64::from(p.stalled))],
        )?;
        self.per_peer(
            e,
            "renda_sync_last_success_timestamp_seconds",
            "When the last round with the peer completed (0: never).",
            gauge,
            |p| vec![(None, p.last_success.map_or(0, |t| t.timestamp()))],
        )?;
        self.per_peer(
            e,
            "renda_sync_link_error",
            "1 while the last attempt to sync with the peer failed.",
            gauge,
            |p| vec![(None, i64::from(p.last_error.is_some()))],
        )?;
        self.per_peer(
            e,
            "renda_refused_records",
            "Records whose changes were refused: in, by this node from the peer; out, by the peer from this node.",
            counter,
            |p| vec![(Some("in"), p.refused_in), (Some("out"), p.refused_out)],
        )?;
        family(
            e,
            "renda_audit_entries",
            "Entries in this node's audit log of refused changes.",
            gauge,
            one(clamp(self.audited)),
        )?;
        family(
            e,
            "renda_store_records",
            "Records held, by kind.",
            gauge,
            stats
                .records_by_kind
                .iter()
                .map(|(kind, n)| (vec![("kind", kind.as_str().to_string())], clamp(*n))),
        )?;
        family(
            e,
            "renda_store_unknown_state",
            "Workflow records holding a step of a newer release, whose state this release cannot tell; they wait for this node's upgrade.",
            gauge,
            one(clamp(stats.unknown_state)),
        )?;
        family(
            e,
            "renda_store_newer_kind_records",
            "Records of kinds a newer release added, kept as they came and passed on by their routes, by kind; this release reads them once upgraded.",
            gauge,
            stats
                .newer_kinds
                .iter()
                .map(|(kind, n)| (vec![("kind", kind.clone())], clamp(*n))),
        )?;
        family(
            e,
            "renda_store_changes",
            "Automerge changes held.",
            gauge,
            one(clamp(stats.changes)),
        )?;
        family(
            e,
            "renda_store_bytes",
            "Size of the node's SQLite database file.",
            gauge,
            one(clamp(stats.file_bytes)),
        )?;
        family(
            e,
            "renda_backup_last_timestamp_seconds",
            "When the node last took a backup of its database (0: never).",
            gauge,
            one(stats.last_backup.as_ref().map_or(0, |b| b.at.timestamp())),
        )?;
        family(
            e,
            "renda_store_check_timestamp_seconds",
            "When the node's database file was last found sound by a check (0: never).",
            gauge,
            one(stats
                .last_check
                .as_ref()
                .filter(|c| c.detail == "ok")
                .map_or(0, |c| c.at.timestamp())),
        )?;
        if let Some(not_after) = self.certificate_not_after {
            family(
                e,
                "renda_certificate_expiry_timestamp_seconds",
                "When the node's certificate ends.",
                gauge,
                one(not_after.timestamp()),
            )?;
        }
        Ok(())
    }
}

/// The exposition text for one scrape, in Prometheus's text format (0.0.4).
pub fn render(
    me: &RegionCode,
    peers: Vec<PeerStatus>,
    stats: StoreStats,
    audited: u64,
    certificate_not_after: Option<DateTime<Utc>>,
) -> Result<String, std::fmt::Error> {
    let node = (Cow::Borrowed("node"), Cow::Owned(me.as_str().to_string()));
    let mut registry = Registry::with_labels(std::iter::once(node));
    registry.register_collector(Box::new(Scrape {
        peers,
        stats,
        audited,
        certificate_not_after,
    }));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

async fn scrape(State(m): State<Metrics>) -> Response {
    let read = m
        .store
        .read(|s| Ok((s.peers()?, s.stats()?, s.audit_count()?)))
        .await;
    let not_after = m.tls.as_ref().map(|t| t.not_after());
    match read.map(|(peers, stats, audited)| render(&m.me, peers, stats, audited, not_after)) {
        Ok(Ok(text)) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        // Half a scrape is not answered as a whole one. Writing into a String fails only where
        // an encoder reports an error of its own, which counters and gauges never do.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the metrics could not be encoded");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics not encoded\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "the metrics endpoint could not read the store");
            (StatusCode::INTERNAL_SERVER_ERROR, "store unavailable\n").into_response()
        }
    }
}

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
            // A newer kind's name came from a peer: whatever it holds is escaped, not
            // written into the text as it is.
            newer_kinds: vec![("petition".into(), 3), ("a\"b\\c\nd".into(), 1)],
            changes: 40,
            last_seq: 40,
            file_bytes: 4096,
            last_backup: Some(renda_node::store::Upkeep {
                at: DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
                detail: "/backups/renda-330411000000-20260528T205320Z.sqlite".into(),
            }),
            last_check: None,
        };
        let text = render(&me, vec![peer], stats.clone(), 1, None).unwrap();
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
            "renda_store_newer_kind_records{node=\"330411000000\",kind=\"a\\\"b\\\\c\\nd\"} 1",
            "# TYPE renda_sync_bytes_total counter",
            "# HELP renda_store_changes Automerge changes held.",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("certificate"), "no certificate, no sample");
        // The families operators' alerts name (deploy/README.md), in this order; a release may
        // add families but not rename or drop one.
        let families = |text: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .map(String::from)
                .collect()
        };
        // A node with no peer and no newer kind still declares every family.
        let bare = StoreStats {
            newer_kinds: vec![],
            ..stats
        };
        let empty = render(&me, vec![], bare, 0, None).unwrap();
        assert_eq!(families(&empty), families(&text), "{empty}");
        assert!(!empty.contains("peer="), "{empty}");
        assert_eq!(
            families(&text),
            [
                "renda_sync_records_total counter",
                "renda_sync_changes_total counter",
                "renda_sync_bytes_total counter",
                "renda_sync_lag_changes gauge",
                "renda_sync_link_stalled gauge",
                "renda_sync_last_success_timestamp_seconds gauge",
                "renda_sync_link_error gauge",
                "renda_refused_records_total counter",
                "renda_audit_entries gauge",
                "renda_store_records gauge",
                "renda_store_unknown_state gauge",
                "renda_store_newer_kind_records gauge",
                "renda_store_changes gauge",
                "renda_store_bytes gauge",
                "renda_backup_last_timestamp_seconds gauge",
                "renda_store_check_timestamp_seconds gauge",
            ]
        );
    }
}
