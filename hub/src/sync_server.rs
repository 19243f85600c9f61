//! The parent side of sync: the gRPC `Sync` service that children dial.
//!
//! A child opens a link with `Hello`; the service checks the protocol version and that the peer
//! is one of this node's children, answers with its own `Hello`, and runs the same link loop as
//! the child, live, until the child goes away.

use std::net::SocketAddr;

use renda_node::region::RegionCode;
use renda_node::store::StoreHandle;
use renda_node::sync::client::MAX_MESSAGE_BYTES;
use renda_node::sync::{LinkConfig, Mode, SyncError, message, open, run_link};
use renda_proto::v1::sync_server::{Sync, SyncServer};
use renda_proto::v1::{self, LinkMessage, link_message::Body};
use tokio::net::TcpListener;
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
        SyncError::Version(_) => Status::failed_precondition(e.to_string()),
        SyncError::Unauthorized(_) => Status::permission_denied(e.to_string()),
        SyncError::Protocol(_) => Status::invalid_argument(e.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}

#[tonic::async_trait]
impl Sync for SyncService {
    type LinkStream = ReceiverStream<Result<LinkMessage, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<LinkMessage>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let remote = request.remote_addr();
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the link closed before Hello"))?;
        let Body::Hello(hello) = open(first).map_err(refusal)? else {
            return Err(Status::invalid_argument("a link must open with Hello"));
        };
        let peer = RegionCode::parse("hello.region", &hello.region)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if peer.parent() != Some(self.me) {
            warn!(region = %self.me, %peer, ?remote, "refused a link from a node that is not a child");
            return Err(Status::permission_denied(format!(
                "{peer} is not a child of {}; only direct children may link here",
                self.me
            )));
        }
        let received = self
            .store
            .call(move |s| s.received_seq(&peer))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, mut rx) = mpsc::channel::<LinkMessage>(16);
        let (out_tx, out_rx) = mpsc::channel::<Result<LinkMessage, Status>>(16);
        tx.send(message(Body::Hello(v1::Hello {
            region: self.me.to_string(),
            received_seq: received,
            repair: hello.repair,
        })))
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
        let span = info_span!("sync", region = %self.me, %peer);
        tokio::spawn(
            async move {
                info!(?remote, "child linked");
                match run_link(
                    store,
                    peer,
                    hello.received_seq,
                    inbound,
                    tx,
                    Mode::Live,
                    config,
                )
                .await
                {
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
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    let query = renda_proto::v1::query_server::QueryServer::new(
        crate::query_server::QueryService::new(service.store.clone(), service.me),
    );
    tonic::transport::Server::builder()
        .add_service(server)
        .add_service(query)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Binds `addr` for [`serve`]; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
