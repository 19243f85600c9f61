//! The parent side of sync: the gRPC `Sync` service that children dial.
//!
//! A child opens a link with `Hello`; the service checks the protocol version and that the peer
//! is one of this node's children, answers with its own `Hello`, and runs the same link loop as
//! the child, live, until the child goes away.

use renda_node::pki::{IdentityError, Usage, verify_peer};
use renda_node::region::RegionCode;
use renda_node::store::StoreHandle;
use renda_node::sync::client::MAX_MESSAGE_BYTES;
use renda_node::sync::{
    LinkConfig, Mode, Opened, SyncError, hello_offer, message_at, open_hello, run_link, version,
};
use renda_proto::v1::sync_server::{Sync, SyncServer};
use renda_proto::v1::{self, LinkMessage, link_message::Body};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

#[derive(Clone)]
pub struct SyncService {
    store: StoreHandle,
    me: RegionCode,
    config: LinkConfig,
}

impl SyncService {
    pub fn new(store: StoreHandle, me: RegionCode, config: LinkConfig) -> SyncService {
        SyncService { store, me, config }
    }
}

fn refusal(e: SyncError) -> Status {
    match e {
        SyncError::Version { .. } | SyncError::Mismatch(_) => {
            Status::failed_precondition(e.to_string())
        }
        SyncError::Unauthorized(_) => Status::permission_denied(e.to_string()),
        SyncError::Protocol(_) => Status::invalid_argument(e.to_string()),
        SyncError::Stalled(_) => Status::deadline_exceeded(e.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}

impl SyncService {
    /// The child a request comes from, as the certificate chain it presented names it: a
    /// direct child whose certificate no revocation held here names (a refusal of a revoked
    /// one is audited). Over TLS only: without it no request proves who sent it.
    async fn child_of<T>(&self, request: &Request<T>) -> Result<(RegionCode, String), Status> {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let Some(tls) = &self.config.tls else {
            return Err(Status::failed_precondition(
                "certificates are renewed over TLS links only",
            ));
        };
        let certs = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs())
            .ok_or_else(|| Status::unauthenticated(IdentityError::Missing.to_string()))?;
        let verified = verify_peer(&certs, tls.roots(), chrono::Utc::now(), Usage::Client)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let peer = verified.region;
        if peer.parent() != Some(self.me) {
            return Err(Status::permission_denied(format!(
                "{peer} is not a child of {}",
                self.me
            )));
        }
        let serial = verified.serial;
        let presented = serial.clone();
        let revoked = self
            .store
            .read(move |s| s.revocation_of(&peer, &serial))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if let Some((header, revocation)) = revoked {
            let reason = format!(
                "节点 {peer} 以已吊销的证书（序列号 {}）申请换发证书，已拒绝",
                revocation.serial
            );
            let id = header.id;
            self.store
                .write(move |tx| tx.audit_revoked_link(&peer, &id, &reason))
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            return Err(Status::permission_denied(format!(
                "certificate: revoked by {} (serial {})",
                header.home, revocation.serial
            )));
        }
        Ok((peer, presented))
    }
}

#[tonic::async_trait]
impl Sync for SyncService {
    async fn renew(
        &self,
        request: Request<v1::RenewRequest>,
    ) -> Result<Response<v1::RenewResponse>, Status> {
        let (child, serial) = match self.child_of(&request).await {
            Ok(found) => found,
            Err(status) => {
                warn!(region = %self.me, error = %status.message(), "refused a certificate renewal");
                return Err(status);
            }
        };
        // A certificate this node already renewed is renewed once: a second request from it
        // comes from a copy of the old files (a stolen PC, an old disk image), and is refused
        // and audited, so the copy cannot outlive a revocation of the serial it has.
        let (old, asking) = (serial.clone(), child);
        let renewed_to = self
            .store
            .read(move |s| s.superseded_renewal(&asking, &old))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if let Some(newer) = renewed_to {
            warn!(region = %self.me, peer = %child, %serial, %newer, "refused to renew a certificate already renewed: a copy of the old one is in use");
            let reason = format!(
                "节点 {child} 以已换发过的证书（序列号 {serial}，已换为 {newer}）再次申请换发：旧证书的副本仍在使用，已拒绝；请核查并吊销"
            );
            let (peer, note) = (child, reason);
            let _ = self
                .store
                .write(move |tx| tx.audit_superseded(&peer, &note))
                .await;
            return Err(Status::permission_denied(format!(
                "certificate {serial} was already renewed (to {newer}); only the newest renews"
            )));
        }
        let Some(issuing) = self.config.issuing.clone() else {
            return Err(Status::failed_precondition(format!(
                "{} holds no issuing CA ([tls] issuing_ca): its operator issues {child}'s certificate by hand",
                self.me
            )));
        };
        let csr = request.into_inner().csr;
        // Signing is a few milliseconds of CPU: off the runtime's threads all the same.
        let signed = tokio::task::spawn_blocking(move || {
            issuing.ca.sign_request(&csr, &child, issuing.lifetime)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        match signed {
            Ok(chain_pem) => {
                let facts = renda_node::pki::pem_cert(&chain_pem, std::path::Path::new("renewed"))
                    .ok()
                    .and_then(|der| renda_node::pki::certificate_facts(&der).ok())
                    .ok_or_else(|| Status::internal("the renewed certificate does not read"))?;
                let (new, end) = (facts.serial.clone(), facts.not_after);
                let old = serial.clone();
                self.store
                    .write(move |tx| tx.note_renewal(&child, &old, &new, end))
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                info!(region = %self.me, peer = %child, old = %serial, new = %facts.serial, "renewed a child's certificate");
                Ok(Response::new(v1::RenewResponse { chain_pem }))
            }
            Err(e @ renda_node::pki::PkiError::OutsideSubtree { .. }) => {
                Err(Status::permission_denied(e.to_string()))
            }
            Err(e) => Err(Status::invalid_argument(e.to_string())),
        }
    }

    type LinkStream = ReceiverStream<Result<LinkMessage, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<LinkMessage>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let tls_info = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .cloned();
        let remote = request
            .remote_addr()
            .or_else(|| tls_info.as_ref().and_then(|i| i.get_ref().remote_addr()));
        let peer_certs = tls_info.and_then(|i| i.peer_certs());
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the link closed before Hello"))?;
        let (hello, theirs) = open_hello(first).map_err(refusal)?;
        let said = RegionCode::parse("hello.region", &hello.region)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Over TLS the peer is who its certificate names, whatever its Hello says.
        let mut serial = None;
        let peer = match &self.config.tls {
            None => said,
            Some(tls) => {
                let certs = peer_certs
                    .ok_or_else(|| Status::unauthenticated(IdentityError::Missing.to_string()))?;
                // The child's certificate first, then the intermediate CAs it presented.
                let verified = verify_peer(&certs, tls.roots(), chrono::Utc::now(), Usage::Client)
                    .map_err(|e| {
                        warn!(region = %self.me, ?remote, error = %e, "refused a certificate");
                        Status::unauthenticated(e.to_string())
                    })?;
                if verified.region != said {
                    warn!(region = %self.me, peer = %verified.region, said = %said, "refused a Hello naming another node");
                    return Err(Status::permission_denied(format!(
                        "hello.region: says {said}, but the certificate names {}",
                        verified.region
                    )));
                }
                serial = Some(verified.serial);
                verified.region
            }
        };
        // A certificate a node above revoked links no more: the refusal is audited here and
        // the child told why.
        if let (Some(tls_serial), Some(_)) = (&serial, &self.config.tls) {
            let (region, serial) = (peer, tls_serial.clone());
            let revoked = self
                .store
                .read(move |s| s.revocation_of(&region, &serial))
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            if let Some((header, revocation)) = revoked {
                let reason = format!(
                    "节点 {peer} 的证书（序列号 {}）已被 {} 于 {} 吊销（{}），拒绝其连接",
                    revocation.serial,
                    header.home,
                    header.created_at.format("%Y-%m-%d"),
                    revocation.reason.label()
                );
                warn!(region = %self.me, %peer, serial = %revocation.serial, "refused a link presenting a revoked certificate");
                let id = header.id;
                let note = reason.clone();
                self.store
                    .write(move |tx| tx.audit_revoked_link(&peer, &id, &note))
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                return Err(Status::permission_denied(format!(
                    "certificate: revoked by {} on {} ({}; serial {})",
                    header.home,
                    header.created_at.format("%Y-%m-%d"),
                    revocation.reason.as_str(),
                    revocation.serial
                )));
            }
        }
        if peer.parent() != Some(self.me) {
            warn!(region = %self.me, %peer, ?remote, "refused a link from a node that is not a child");
            return Err(Status::permission_denied(format!(
                "{peer} is not a child of {}; only direct children may link here",
                self.me
            )));
        }
        // The version both speak, and the settings the federation shares: a child that cannot
        // link is told why, and the refusal is kept for `renda status` and the sync page here
        // as the child keeps it there.
        let version = match version::agree(&self.config, theirs, &hello) {
            Ok(version) => version,
            Err(mismatch) => {
                warn!(region = %self.me, %peer, ?remote, error = %mismatch, "refused a child's link");
                let text = mismatch.to_string();
                let _ = self
                    .store
                    .write(move |tx| tx.record_link_error(&peer, &text))
                    .await;
                // Said from the parent's side, so the child's status reads the right way round.
                return Err(Status::failed_precondition(format!(
                    "{} refused the link: {mismatch}",
                    self.me
                )));
            }
        };
        let received = self
            .store
            .call(move |s| s.received_checkpoint(&peer))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, mut rx) = mpsc::channel::<LinkMessage>(16);
        let (out_tx, out_rx) = mpsc::channel::<Result<LinkMessage, Status>>(16);
        tx.send(message_at(
            version,
            Body::Hello(hello_offer(
                &self.config,
                v1::Hello {
                    region: self.me.to_string(),
                    received_seq: received.seq,
                    repair: hello.repair,
                    received_hash: received.hash,
                    ..v1::Hello::default()
                },
            )),
        ))
        .await
        .map_err(|_| Status::internal("link closed"))?;
        let forward = out_tx.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if forward.send(Ok(msg)).await.is_err() {
                    break;
                }
            }
        });
        let (store, mut config) = (self.store.clone(), self.config.clone());
        // Either side may ask for a digest comparison; both then take part.
        config.repair |= hello.repair;
        // A certificate revoked while its link is open ends the link: the watcher looks again
        // whenever something is written here (a revocation arriving by sync, a clerk's
        // `renda revoke` through this node) and every half minute (one written by another
        // process), and ends the link as the node's shutdown would, audited.
        // The link's own token, cancelled when it ends, so its watcher ends with it.
        let link_done = config.shutdown.child_token();
        config.shutdown = link_done.clone();
        if let Some(serial) = serial.clone() {
            let cut = link_done.clone();
            let (watched, me) = (self.store.clone(), self.me);
            let mut written = watched.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cut.cancelled() => return,
                        changed = written.changed() => {
                            if changed.is_err() {
                                return;
                            }
                        }
                        _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
                    }
                    let asked = serial.clone();
                    let Ok(Some((header, revocation))) =
                        watched.read(move |s| s.revocation_of(&peer, &asked)).await
                    else {
                        continue;
                    };
                    warn!(region = %me, %peer, serial = %revocation.serial, "ending a live link whose certificate was revoked");
                    let reason = format!(
                        "节点 {peer} 的证书（序列号 {}）已被 {} 吊销（{}），断开其正在进行的连接",
                        revocation.serial,
                        header.home,
                        revocation.reason.label()
                    );
                    let id = header.id;
                    let _ = watched
                        .write(move |tx| tx.audit_revoked_link(&peer, &id, &reason))
                        .await;
                    cut.cancel();
                    return;
                }
            });
        }
        let span = info_span!("sync", region = %self.me, %peer);
        // A child that redials because its connection stopped forwarding may briefly have two
        // links here: both apply idempotently, and keepalive ends the dead one within the
        // timeout. Ending the older one at once would let `renda sync --once` beside `renda run`
        // (or anyone naming the child over plaintext) cut the live link.
        tokio::spawn(
            async move {
                info!(?remote, "child linked");
                // The child's claim of how far it has applied our sequence is checked in
                // `run_link` against our history before it moves anything.
                let claim = renda_node::store::Checkpoint {
                    seq: hello.received_seq,
                    hash: hello.received_hash,
                };
                let opened = Opened {
                    peer,
                    peer_claim: claim,
                    version,
                };
                let ended = run_link(store, opened, inbound, tx, Mode::Live, config).await;
                link_done.cancel();
                match ended {
                    Ok(report) => info!(
                        sent = report.changes_sent,
                        received = report.changes_received,
                        "child link ended"
                    ),
                    Err(e) => {
                        warn!(error = %e, "child link failed");
                        let _ = out_tx.send(Err(refusal(e))).await;
                    }
                }
            }
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }
}

/// Serves the sync service on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    service: SyncService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let server = SyncServer::new(service.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // Small acknowledgements must not wait for Nagle's algorithm: set TCP_NODELAY on every
    // accepted socket (the builder's own setting only covers listeners it binds itself).
    let query = renda_proto::v1::query_server::QueryServer::new(
        crate::query_server::QueryService::new(service.store.clone(), service.me),
    );
    // Pings find a child whose connection silently stopped forwarding; its link task then ends
    // instead of holding the child's state until the process restarts.
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(service.config.keepalive()))
        .http2_keepalive_timeout(Some(service.config.keepalive()))
        .add_service(server)
        .add_service(query);
    match &service.config.tls {
        None => {
            let incoming = TcpListenerStream::new(listener).map(|conn| {
                conn.inspect(|stream| {
                    let _ = stream.set_nodelay(true);
                })
            });
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Some(tls) => {
            let config = tls
                .server_config()
                .map_err(|e| std::io::Error::other(format!("TLS settings: {e}")));
            let incoming = match config {
                Ok(config) => tls_incoming(listener, service.me, config),
                Err(e) => {
                    // Serving nothing is better than serving plaintext to children that expect TLS.
                    tracing::error!(region = %service.me, error = %e, "cannot serve TLS");
                    return router
                        .serve_with_incoming_shutdown(
                            tokio_stream::iter(Vec::<Result<TcpStream, std::io::Error>>::new()),
                            shutdown,
                        )
                        .await;
                }
            };
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}

/// Accepted connections after a completed TLS handshake. A handshake that fails (no
/// certificate, another CA's, an expired one) is logged and dropped without holding up others.
fn tls_incoming(
    listener: TcpListener,
    me: RegionCode,
    config: rustls::ServerConfig,
) -> ReceiverStream<Result<tokio_rustls::server::TlsStream<TcpStream>, std::io::Error>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(region = %me, error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
                match handshake.await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        warn!(region = %me, %remote, error = %e, "refused a TLS handshake")
                    }
                    Err(_) => warn!(region = %me, %remote, "a TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
