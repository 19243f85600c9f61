//! Mutual TLS on node-to-node links, with rustls.
//!
//! A node's TLS directory (`<data dir>/tls`, written by `renda ca issue --out`) holds its
//! certificate chain (`node.pem`: its own certificate, then the intermediate CAs that issued
//! it), its key, and the federation's root certificates (`ca.pem`; two during a root's
//! rotation). Both ends of a link present their chain and check the other's against the roots
//! with [`crate::pki::verify_peer`], the subtree rule included: the parent learns the child's
//! region from the child's certificate, and the child refuses any server whose certificate does
//! not name its parent. Host names play no part: a node is its region.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::pki::{self, IdentityError, PkiError, Usage};
use crate::region::RegionCode;

/// The directory under a node's data directory that holds its TLS files.
pub const TLS_DIR: &str = "tls";

/// The name a child puts in its TLS hello. Certificates are checked for the parent's region, not
/// for this name, which is the same on every link.
pub const SERVER_NAME: &str = "node.renda.invalid";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's certificate chain, its key and the roots it trusts.
#[derive(Debug)]
pub struct NodeTls {
    pub region: RegionCode,
    /// When the node's own certificate stops being valid, for `renda status`.
    pub not_after: DateTime<Utc>,
    /// Its serial number, as a revocation names it.
    pub serial: String,
    roots: Vec<CertificateDer<'static>>,
    /// The node's certificate first, then the intermediate CAs above it.
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for NodeTls {
    fn clone(&self) -> Self {
        NodeTls {
            region: self.region,
            not_after: self.not_after,
            serial: self.serial.clone(),
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl NodeTls {
    /// The certificate installed in a node's data directory (its `tls/`), if there is one. A
    /// broken installation is an error, never a silent fall back to plaintext.
    pub fn installed(data_dir: &Path, region: RegionCode) -> Result<Option<NodeTls>, PkiError> {
        let dir = data_dir.join(TLS_DIR);
        if !dir.exists() {
            return Ok(None);
        }
        NodeTls::load(&dir, region).map(Some)
    }

    /// Reads `dir` and checks that its certificate is the CA's and names `region`.
    pub fn load(dir: &Path, region: RegionCode) -> Result<NodeTls, PkiError> {
        use rustls::pki_types::pem::PemObject;
        let read = |name: &str| -> Result<(PathBuf, String), PkiError> {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(|text| (path.clone(), text))
                .map_err(|source| PkiError::Io { path, source })
        };
        let (ca_path, ca) = read(pki::CA_CERT)?;
        let (cert_path, cert) = read(pki::NODE_CERT)?;
        let (key_path, key) = read(pki::NODE_KEY)?;
        let roots = pki::pem_certs(&ca, &ca_path)?;
        let chain = pki::pem_certs(&cert, &cert_path)?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| PkiError::Invalid {
            path: key_path,
            rule: format!("not a PEM private key: {e:?}"),
        })?;
        let verified = pki::verify_peer(&chain, &roots, Utc::now(), Usage::Client).map_err(|e| {
            PkiError::Invalid {
                path: cert_path.clone(),
                rule: e.to_string(),
            }
        })?;
        if verified.region != region {
            return Err(PkiError::Invalid {
                path: cert_path,
                rule: format!(
                    "the certificate names {}, but this node is {region}",
                    verified.region
                ),
            });
        }
        Ok(NodeTls {
            region,
            not_after: verified.not_after,
            serial: verified.serial,
            roots,
            chain,
            key,
        })
    }

    /// A node's TLS material from PEM text, without checking it: what a peer holding these
    /// files would present. `load` is what a node uses; this is for tests of refusal.
    pub fn from_pem_unchecked(
        region: RegionCode,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<NodeTls, PkiError> {
        use rustls::pki_types::pem::PemObject;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| PkiError::Invalid {
                path: PathBuf::from(pki::NODE_KEY),
                rule: format!("not a PEM private key: {e:?}"),
            })?;
        Ok(NodeTls {
            region,
            not_after: DateTime::<Utc>::MIN_UTC,
            serial: String::new(),
            roots: pki::pem_certs(ca_pem, Path::new(pki::CA_CERT))?,
            chain: pki::pem_certs(cert_pem, Path::new(pki::NODE_CERT))?,
            key,
        })
    }

    /// The federation's roots, which a parent checks its children's chains against.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The server side of a link: every client must present a chain to one of the roots.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        for root in &self.roots {
            roots.add(root.clone())?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// The client side of a link to the node of `parent`.
    pub fn client_config(&self, parent: RegionCode) -> Result<rustls::ClientConfig, rustls::Error> {
        self.client_config_seen(parent).map(|(config, _)| config)
    }

    /// [`NodeTls::client_config`], with the slot its verifier fills with what the parent's
    /// certificate said once the handshake verified it: the child then looks its serial up
    /// among the revocations it holds, which the verifier, inside rustls, cannot.
    pub fn client_config_seen(
        &self,
        parent: RegionCode,
    ) -> Result<(rustls::ClientConfig, Seen), rustls::Error> {
        let seen = Seen::default();
        let mut config = client_builder_seen(self.roots.clone(), parent, seen.clone())?
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok((config, seen))
    }
}

/// What a link's verifier found the parent's certificate to say, once it verified it.
pub type Seen = Arc<std::sync::Mutex<Option<pki::Verified>>>;

fn client_builder(
    roots: Vec<CertificateDer<'static>>,
    parent: RegionCode,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    rustls::Error,
> {
    client_builder_seen(roots, parent, Seen::default())
}

fn client_builder_seen(
    roots: Vec<CertificateDer<'static>>,
    parent: RegionCode,
    seen: Seen,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    rustls::Error,
> {
    let verifier = Arc::new(ParentVerifier {
        seen,
        roots,
        parent,
        algorithms: provider().signature_verification_algorithms,
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier))
}

/// What a peer with no certificate of its own would dial with: it checks the parent but
/// presents nothing. Parents refuse it; tests use it to show that they do.
pub fn anonymous_client_config(
    roots: Vec<CertificateDer<'static>>,
    parent: RegionCode,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = client_builder(roots, parent)?.with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts the server only if its chain leads to a root under the subtree rule and its
/// certificate names the parent's region.
#[derive(Debug)]
struct ParentVerifier {
    seen: Seen,
    roots: Vec<CertificateDer<'static>>,
    parent: RegionCode,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ParentVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let now = DateTime::from_timestamp(now.as_secs() as i64, 0).unwrap_or_else(Utc::now);
        let chain: Vec<CertificateDer<'_>> = std::iter::once(end_entity.clone())
            .chain(intermediates.iter().cloned())
            .collect();
        let verified = pki::verify_peer(&chain, &self.roots, now, Usage::Server)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        if verified.region != self.parent {
            return Err(rustls::Error::General(
                IdentityError::NotThePeer {
                    expected: self.parent.to_string(),
                    found: verified.region.to_string(),
                }
                .to_string(),
            ));
        }
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(verified);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
