//! The child side: dialing the parent, once (`renda sync --once`) or for as long as the node runs,
//! retrying a cut link with exponential backoff and jitter.

use std::time::Duration;

use renda_proto::v1::sync_client::SyncClient;
use renda_proto::v1::{self, link_message::Body};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tracing::{Instrument, info, info_span, warn};

use super::{
    LinkConfig, LinkReport, Mode, Opened, SyncError, hello_offer, message_at, open_hello, run_link,
    version,
};
use crate::region::RegionCode;
use crate::store::StoreHandle;

/// Largest message a link accepts; batches are far smaller, this only bounds a hostile peer.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// An error with its causes, which is where a TLS refusal says what was wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One link to the parent at `addr` (host:port).
pub async fn sync_with_parent(
    store: StoreHandle,
    me: RegionCode,
    addr: &str,
    mode: Mode,
    config: LinkConfig,
) -> Result<LinkReport, SyncError> {
    let parent = me.parent().ok_or_else(|| {
        SyncError::Protocol(format!("{me} is the national congress and has no parent"))
    })?;
    let span = info_span!("sync", region = %me, peer = %parent, addr);
    let shutdown = config.shutdown.clone();
    // Cancelled once the Hellos are exchanged: dialling, TLS and the Hellos are given up at
    // once when the node shuts down, a running link drains.
    let opened = tokio_util::sync::CancellationToken::new();
    let past_hellos = opened.clone();
    let link = async move {
        let channel = connect(addr, parent, &config).await?;
        refuse_revoked_parent(&store, parent, channel.1).await?;
        let channel = channel.0;
        let mut client = SyncClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(16);
        let received = store.call(move |s| s.received_checkpoint(&parent)).await?;
        // Stamped with the lowest version this node speaks, which a parent of any version in
        // its range reads; the parent answers with the version both speak.
        let hello = message_at(
            config.versions.min,
            Body::Hello(hello_offer(
                &config,
                v1::Hello {
                    region: me.to_string(),
                    received_seq: received.seq,
                    repair: config.repair,
                    received_hash: received.hash,
                    ..v1::Hello::default()
                },
            )),
        );
        let hello_bytes = prost::Message::encoded_len(&hello);
        tx.send(hello).await.map_err(|_| SyncError::Closed)?;
        let mut inbound = client.link(ReceiverStream::new(rx)).await?.into_inner();
        let first = inbound.message().await?.ok_or(SyncError::Closed)?;
        let first_bytes = prost::Message::encoded_len(&first);
        let stamped = first.protocol_version;
        let (hello, theirs) = open_hello(first)
            .map_err(|_| SyncError::Protocol("the parent did not open with Hello".into()))?;
        if hello.region != parent.as_str() {
            return Err(SyncError::Unauthorized(format!(
                "expected the parent {parent}, but {} answered",
                crate::validate::quote(&hello.region)
            )));
        }
        let version = version::agree(&config, theirs, &hello)?;
        // The parent's claim of how far it has applied our sequence is checked in `run_link`
        // exactly as the child's claim is at the parent.
        let claim = crate::store::Checkpoint {
            seq: hello.received_seq,
            hash: hello.received_hash,
        };
        // The parent answers in the version both speak; any other would mean it agreed on
        // something else than this node did.
        if stamped != version {
            return Err(SyncError::Version {
                got: stamped,
                agreed: version,
            });
        }
        // From here the link watches the shutdown token itself, and drains.
        opened.cancel();
        let hellos = Opened {
            peer: parent,
            peer_claim: claim,
            version,
        };
        let mut report = run_link(store, hellos, inbound, tx, mode, config).await?;
        report.wire_bytes_sent += hello_bytes;
        report.wire_bytes_received += first_bytes;
        info!(
            sent = report.changes_sent,
            received = report.changes_received,
            "sync round finished"
        );
        Ok(report)
    }
    .instrument(span);
    tokio::pin!(link);
    tokio::select! {
        linked = &mut link => return linked,
        () = shutdown.cancelled() => {}
    }
    if past_hellos.is_cancelled() {
        link.await
    } else {
        Err(SyncError::Closed)
    }
}

/// Keeps a live link to the parent, reconnecting after failures with exponential backoff
/// (0.5 s doubling to 30 s) and ±50% jitter so townships cut by one outage do not reconnect in
/// lockstep. Runs until the node shuts down ([`LinkConfig::shutdown`]), when the link drains.
pub async fn keep_linked(store: StoreHandle, me: RegionCode, addr: String, config: LinkConfig) {
    let mut failures: u32 = 0;
    let shutdown = config.shutdown.clone();
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        // A link past its Hellos drains itself and ends when the node shuts down; one still
        // dialling gives up at once (`sync_with_parent`).
        let linked = sync_with_parent(store.clone(), me, &addr, Mode::Live, config.clone()).await;
        if shutdown.is_cancelled() {
            return;
        }
        match linked {
            Ok(_) => failures = 0,
            Err(e) => {
                // A link that stayed up a while before it broke starts the backoff afresh: the
                // parent is reachable, and a dropped connection should be redialled at once.
                if started.elapsed() > config.timeout {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                warn!(region = %me, addr, error = %e, failures, "link to the parent failed; will retry");
                if let Some(parent) = me.parent() {
                    let text = e.to_string();
                    let _ = store
                        .write(move |tx| tx.record_link_error(&parent, &text))
                        .await;
                }
            }
        }
        let base = Duration::from_millis(500).saturating_mul(1 << failures.min(6));
        let jitter = rand::random_range(0.5..1.5);
        // Capped after the jitter, so no wait passes half a minute.
        tokio::select! {
            () = tokio::time::sleep(base.mul_f64(jitter).min(Duration::from_secs(30))) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Dials the parent at `addr`: plain h2, or mutual TLS with the node's certificate when it has
/// one, with the slot its verifier fills with what the parent's certificate says.
pub(crate) async fn connect(
    addr: &str,
    parent: RegionCode,
    config: &LinkConfig,
) -> Result<(tonic::transport::Channel, Option<crate::tls::Seen>), SyncError> {
    let connect_err = |reason: String| SyncError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| connect_err(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // A connection that silently stops forwarding (an expired NAT mapping, a middlebox
        // dropping the flow) answers no ping: hyper closes it and the link is redialled.
        .http2_keep_alive_interval(config.keepalive())
        .keep_alive_timeout(config.keepalive())
        .keep_alive_while_idle(true);
    let mut seen = None;
    let channel = match &config.tls {
        None => endpoint.connect().await,
        Some(tls) => {
            let (client_config, parent_seen) = tls
                .client_config_seen(parent)
                .map_err(|e| connect_err(format!("TLS settings: {e}")))?;
            seen = Some(parent_seen);
            let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config));
            let addr = addr.to_string();
            endpoint
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let (connector, addr) = (connector.clone(), addr.clone());
                    async move {
                        let tcp = tokio::net::TcpStream::connect(&addr).await?;
                        tcp.set_nodelay(true)?;
                        let name = rustls::pki_types::ServerName::try_from(crate::tls::SERVER_NAME)
                            .map_err(std::io::Error::other)?;
                        let stream = connector.connect(name, tcp).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
        }
    }
    .map_err(|e| connect_err(error_chain(&e)))?;
    Ok((channel, seen))
}

/// Refuses a parent whose verified certificate (`seen`) a revocation held here names, and
/// notes the refusal in the audit log: a stolen county PC serving its townships is refused by
/// them as its parent would refuse it.
pub(crate) async fn refuse_revoked_parent(
    store: &StoreHandle,
    parent: RegionCode,
    seen: Option<crate::tls::Seen>,
) -> Result<(), SyncError> {
    // A parent whose certificate a node above revoked (a stolen county PC serving its
    // townships) is refused here as a parent refuses such a child, and audited.
    let parent_cert = seen.and_then(|s| s.lock().ok().and_then(|v| v.clone()));
    if let Some(verified) = parent_cert {
        let serial = verified.serial.clone();
        let revoked = store
            .read(move |s| s.revocation_of(&parent, &serial))
            .await?;
        if let Some((header, revocation)) = revoked {
            let reason = format!(
                "上级节点 {parent} 的证书（序列号 {}）已被 {} 于 {} 吊销（{}），拒绝与其同步",
                revocation.serial,
                header.home,
                header.created_at.format("%Y-%m-%d"),
                revocation.reason.label()
            );
            let id = header.id;
            store
                .write(move |tx| tx.audit_revoked_link(&parent, &id, &reason))
                .await?;
            return Err(SyncError::Unauthorized(format!(
                "the parent's certificate is revoked by {} on {} ({}; serial {})",
                header.home,
                header.created_at.format("%Y-%m-%d"),
                revocation.reason.as_str(),
                revocation.serial
            )));
        }
    }
    Ok(())
}
