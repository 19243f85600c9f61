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

/// A node's certificate chain, its key and the roots it trusts. The certificate and key can be
/// replaced while the node runs ([`NodeTls::replace`], when it is renewed over the link): every
/// clone shares them, the server side answers each handshake with the current one, and the
/// client side takes the current one each time it dials.
#[derive(Clone, Debug)]
pub struct NodeTls {
    pub region: RegionCode,
    roots: Vec<CertificateDer<'static>>,
    current: Arc<std::sync::RwLock<Arc<Current>>>,
    /// The `tls/` directory a renewed certificate is written to; `None` for one made in memory.
    dir: Option<PathBuf>,
}

/// The certificate a node presents now.
#[derive(Debug)]
struct Current {
    /// The node's certificate first, then the intermediate CAs above it.
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    certified: Arc<rustls::sign::CertifiedKey>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    serial: String,
}

impl Current {
    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        not_after: DateTime<Utc>,
        serial: String,
    ) -> Result<Current, PkiError> {
        let signing = provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| PkiError::Invalid {
                path: PathBuf::from(pki::NODE_KEY),
                rule: format!("not a key rustls can sign with: {e}"),
            })?;
        let not_before = chain
            .first()
            .and_then(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
            .and_then(|(_, c)| DateTime::from_timestamp(c.validity().not_before.timestamp(), 0))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
        // A certificate beside a key that is not its own would fail every handshake.
        certified.keys_match().map_err(|e| PkiError::Invalid {
            path: PathBuf::from(pki::NODE_KEY),
            rule: format!("the key is not the certificate's: {e}"),
        })?;
        Ok(Current {
            certified: Arc::new(certified),
            chain,
            key,
            not_before,
            not_after,
            serial,
        })
    }
}

fn read_key(text: &str, path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| PkiError::Invalid {
        path: path.to_path_buf(),
        rule: format!("not a PEM private key: {e:?}"),
    })
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

    /// Reads `dir` and checks that its chain leads to one of its roots and names `region`. A
    /// certificate renewed later is written back to `dir`. A node stopped half-way through
    /// writing a renewed pair (the new key beside the old certificate) starts on the pair it
    /// had, kept as `*.previous`, and renews again.
    pub fn load(dir: &Path, region: RegionCode) -> Result<NodeTls, PkiError> {
        match NodeTls::load_pair(dir, region, pki::NODE_CERT, pki::NODE_KEY) {
            Ok(tls) => Ok(tls),
            Err(e) => {
                let previous = |name: &str| format!("{name}.previous");
                let (cert, key) = (previous(pki::NODE_CERT), previous(pki::NODE_KEY));
                if dir.join(&cert).exists() && dir.join(&key).exists() {
                    tracing::warn!(error = %e, "the node's certificate and key do not load together; starting on the pair before the last renewal");
                    NodeTls::load_pair(dir, region, &cert, &key).map_err(|_| e)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn load_pair(
        dir: &Path,
        region: RegionCode,
        cert_name: &str,
        key_name: &str,
    ) -> Result<NodeTls, PkiError> {
        let read = |name: &str| -> Result<(PathBuf, String), PkiError> {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(|text| (path.clone(), text))
                .map_err(|source| PkiError::Io { path, source })
        };
        let (ca_path, ca) = read(pki::CA_CERT)?;
        let (cert_path, cert) = read(cert_name)?;
        let (key_path, key) = read(key_name)?;
        let roots = pki::pem_certs(&ca, &ca_path)?;
        let chain = pki::pem_certs(&cert, &cert_path)?;
        let key = read_key(&key, &key_path)?;
        let verified =
            pki::verify_peer(&chain, &roots, Utc::now(), Usage::Client).map_err(|e| {
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
            roots,
            current: Arc::new(std::sync::RwLock::new(Arc::new(Current::new(
                chain,
                key,
                verified.not_after,
                verified.serial,
            )?))),
            dir: Some(dir.to_path_buf()),
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
        let chain = pki::pem_certs(cert_pem, Path::new(pki::NODE_CERT))?;
        let facts = chain.first().and_then(|c| pki::certificate_facts(c).ok());
        Ok(NodeTls {
            region,
            roots: pki::pem_certs(ca_pem, Path::new(pki::CA_CERT))?,
            current: Arc::new(std::sync::RwLock::new(Arc::new(Current::new(
                chain,
                read_key(key_pem, Path::new(pki::NODE_KEY))?,
                facts
                    .as_ref()
                    .map_or(DateTime::<Utc>::MIN_UTC, |f| f.not_after),
                facts.map(|f| f.serial).unwrap_or_default(),
            )?))),
            dir: None,
        })
    }

    fn now(&self) -> Arc<Current> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// When the node's current certificate stops being valid (the earliest end along its
    /// chain), for `renda status`, the metrics and the rollup.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.now().not_after
    }

    /// When the current certificate became valid.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.now().not_before
    }

    /// The current certificate's serial number, as a revocation names it.
    pub fn serial(&self) -> String {
        self.now().serial.clone()
    }

    /// Replaces the node's certificate with a renewed chain and its key, once the chain is
    /// checked against the roots and found to name this node; writes both to the `tls/`
    /// directory first (each under a temporary name, then renamed), so a node killed half-way
    /// starts again with a pair that belongs together or the old one. Every link dialled and
    /// every handshake answered from then on uses it.
    pub fn replace(&self, chain_pem: &str, key_pem: &str) -> Result<(), PkiError> {
        let chain = pki::pem_certs(chain_pem, Path::new("renewed"))?;
        let key = read_key(key_pem, Path::new("renewed key"))?;
        // Checked at this node's time, or at the certificate's start when this node's clock
        // is a little behind its parent's (up to an hour): otherwise a slow clock would refuse
        // every renewed certificate as not yet valid.
        let now = Utc::now();
        let starts = chain
            .first()
            .and_then(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
            .and_then(|(_, c)| DateTime::from_timestamp(c.validity().not_before.timestamp(), 0));
        let at = match starts {
            Some(start) if start > now && start - now <= chrono::Duration::hours(1) => start,
            _ => now,
        };
        let verified = pki::verify_peer(&chain, &self.roots, at, Usage::Client).map_err(|e| {
            PkiError::Invalid {
                path: PathBuf::from("renewed"),
                rule: e.to_string(),
            }
        })?;
        if verified.region != self.region {
            return Err(PkiError::Invalid {
                path: PathBuf::from("renewed"),
                rule: format!("names {}, not this node {}", verified.region, self.region),
            });
        }
        let next = Current::new(chain, key, verified.not_after, verified.serial)?;
        if let Some(dir) = &self.dir {
            let io = |path: &Path| {
                let path = path.to_path_buf();
                move |source| PkiError::Io { path, source }
            };
            // The pair in use is kept as `*.previous` first; then the new key, then the new
            // certificate. A stop between the two renames leaves a pair that does not match,
            // which `load` refuses and falls back from to the previous pair.
            for name in [pki::NODE_KEY, pki::NODE_CERT] {
                let from = dir.join(name);
                let kept = dir.join(format!("{name}.previous"));
                if from.exists() {
                    std::fs::copy(&from, &kept).map_err(io(&kept))?;
                }
            }
            for (name, text, secret) in [
                (pki::NODE_KEY, key_pem, true),
                (pki::NODE_CERT, chain_pem, false),
            ] {
                let path = dir.join(name);
                let staged = dir.join(format!(".{name}.renewed"));
                let _ = std::fs::remove_file(&staged);
                pki::write_new(&staged, text, secret)?;
                std::fs::rename(&staged, &path).map_err(io(&path))?;
            }
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        Ok(())
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
            .with_cert_resolver(Arc::new(CurrentCertificate(self.current.clone())));
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
        let current = self.now();
        let mut config = client_builder_seen(self.roots.clone(), parent, seen.clone())?
            .with_client_auth_cert(current.chain.clone(), current.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok((config, seen))
    }
}

/// Answers every handshake with the node's current certificate, renewed or not.
#[derive(Debug)]
struct CurrentCertificate(Arc<std::sync::RwLock<Arc<Current>>>);

impl rustls::server::ResolvesServerCert for CurrentCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        match self.0.read() {
            Ok(current) => Some(current.certified.clone()),
            Err(poisoned) => Some(poisoned.into_inner().certified.clone()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A node stopped between writing a renewed key and its certificate starts on the pair it
    /// had; a key that is not the certificate's is refused, never served.
    #[test]
    fn a_half_written_renewal_falls_back_to_the_pair_before() {
        let dir = tempfile::tempdir().unwrap();
        let region = RegionCode::parse("region", "330411101000").unwrap();
        let ca = pki::CertificateAuthority::create("CA", 30).unwrap();
        let first = ca.issue(&region, "x", 30).unwrap();
        first.save(dir.path(), ca.root_pem()).unwrap();
        let tls = NodeTls::load(dir.path(), region).unwrap();
        let second = ca.issue(&region, "x", 30).unwrap();
        tls.replace(&second.cert_pem, &second.key_pem).unwrap();
        assert_eq!(
            NodeTls::load(dir.path(), region).unwrap().serial(),
            tls.serial(),
            "the renewed pair loads"
        );
        // Stopped after the key's rename and before the certificate's: the old certificate
        // beside the new key.
        std::fs::copy(
            dir.path().join("node.pem.previous"),
            dir.path().join(pki::NODE_CERT),
        )
        .unwrap();
        let reloaded = NodeTls::load(dir.path(), region).unwrap();
        let first_serial = pki::certificate_facts(&first.der().unwrap())
            .unwrap()
            .serial;
        assert_eq!(
            reloaded.serial(),
            first_serial,
            "started on the pair before"
        );
        // Without the pair before, the mismatch is refused.
        std::fs::remove_file(dir.path().join("node-key.pem.previous")).unwrap();
        assert!(NodeTls::load(dir.path(), region).is_err());
        // And a renewal whose key is not its certificate's is refused before anything moves.
        let third = ca.issue(&region, "x", 30).unwrap();
        assert!(tls.replace(&third.cert_pem, &second.key_pem).is_err());
    }
}
