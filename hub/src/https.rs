//! Serving the dashboard and the metrics over HTTPS, and the rule that keeps plain HTTP on the
//! machine itself.
//!
//! A node's HTTP listeners carry logins and session cookies (the dashboard) and sync health (the
//! metrics). Plain HTTP is allowed only on a loopback address; any other address needs a
//! certificate: the office's own, or one from `renda ca issue --server` (serverAuth only, no
//! region, so it can never link as a node). A browser warns about the federation's private CA
//! unless the office installs it; deploy/README.md says how to use the office's own instead.
//!
//! Handshakes run beside the accept loop, so a client that stalls in one holds up nobody.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tracing::warn;

#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("{path}: {rule}")]
    Certificate { path: String, rule: String },
    #[error("http: {0}")]
    PlainOffLoopback(String),
}

/// The rustls server configuration for a certificate chain and key in PEM files, for HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, HttpsError> {
    server_config_for(cert, key, b"http/1.1")
}

/// The same certificate for gRPC (the Query API), which speaks HTTP/2.
pub fn grpc_server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, HttpsError> {
    server_config_for(cert, key, b"h2")
}

fn server_config_for(
    cert: &Path,
    key: &Path,
    alpn: &[u8],
) -> Result<Arc<rustls::ServerConfig>, HttpsError> {
    let bad = |path: &Path, rule: String| HttpsError::Certificate {
        path: path.display().to_string(),
        rule,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, format!("证书文件无法读取：{e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, format!("不是 PEM 证书：{e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "文件中没有证书".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, format!("不是 PEM 私钥：{e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| bad(cert, format!("证书与私钥不匹配或无效：{e}")))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// Plain HTTP only on loopback: `field` names the setting for the error.
pub fn check_plain(field: &str, addr: SocketAddr, has_tls: bool) -> Result<(), HttpsError> {
    if has_tls || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(HttpsError::PlainOffLoopback(format!(
            "{field} 绑定在 {addr}：本机以外的地址只能用 HTTPS，请配置证书（{field}_cert 和 {field}_key，\
             可用 renda ca issue --server 签发或使用本单位的证书），或改为 127.0.0.1"
        )))
    }
}

/// Most TLS handshakes in progress at once on one listener.
const MAX_HANDSHAKES: usize = 256;

/// Connections on a TCP listener after a completed TLS handshake, for `axum::serve`.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, accepted) = mpsc::channel(64);
        // At most this many handshakes at once: a flood of half-open connections waits at
        // accept instead of taking a task and a buffer each.
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    break;
                };
                let (tcp, remote) = tokio::select! {
                    _ = tx.closed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(conn) => conn,
                        Err(e) => {
                            warn!(error = %e, "accepting an HTTPS connection failed");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(tcp),
                    );
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, remote)).await;
                        }
                        // A browser that does not trust the certificate closes the handshake;
                        // that is the browser's warning, not the node's problem.
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "an HTTPS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote, "an HTTPS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { accepted, local })
    }
}

impl TlsListener {
    /// The connections as a stream, for a tonic server.
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = TlsStream<TcpStream>> {
        tokio_stream::wrappers::ReceiverStream::new(self.accepted).map(|(stream, _)| stream)
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Where a request came from: the login rate limit counts per address.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_only() {
        assert!(check_plain("http", "127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_plain("http", "[::1]:8080".parse().unwrap(), false).is_ok());
        assert!(check_plain("http", "0.0.0.0:8080".parse().unwrap(), true).is_ok());
        let err = check_plain("http", "0.0.0.0:8080".parse().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HTTPS") && err.contains("0.0.0.0:8080"),
            "{err}"
        );
        assert!(check_plain("metrics", "192.0.2.7:9700".parse().unwrap(), false).is_err());
    }
}
