//! Certificates: the federation's certificate authority and each node's certificate.
//!
//! A node's identity is its region, and the only place it is read from is the certificate the
//! node presents on a link: a certificate signed by the federation's CA, within its validity,
//! whose one URI subject alternative name is `urn:renda:region:<12-digit code>`. A certificate
//! with no such name, with two, or with one that is not a region code names nobody and is
//! refused; so is one from another CA or out of date. Nothing a peer says in a message can
//! change who it is.
//!
//! This module makes and checks certificates; it knows nothing of sockets or TLS sessions.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::region::RegionCode;

/// The scheme of the URI that names a node's region in its certificate.
pub const REGION_URI_PREFIX: &str = "urn:renda:region:";

/// File names inside a CA directory and a node's TLS directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const NODE_CERT: &str = "node.pem";
pub const NODE_KEY: &str = "node-key.pem";

/// Why a certificate names no node this federation accepts. Each says the rule broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate: the peer presented none")]
    Missing,
    #[error("certificate: not signed by this federation's CA")]
    UnknownIssuer,
    #[error("certificate: expired on {0}")]
    Expired(String),
    #[error("certificate: not valid before {0}")]
    NotYetValid(String),
    #[error("certificate: names no region (no URI SAN {REGION_URI_PREFIX}<code>)")]
    NoRegion,
    #[error("certificate: has {0} URI SANs; exactly one, naming the region, is allowed")]
    ManyUris(usize),
    #[error("certificate: URI SAN {0:?} does not name a region code")]
    BadRegion(String),
    #[error("certificate: cannot be used by a node ({0})")]
    Unusable(String),
    #[error("certificate: malformed ({0})")]
    Malformed(String),
    #[error("certificate: names {found}, but this link is to {expected}")]
    NotThePeer { expected: String, found: String },
}

/// Which end of a link a certificate is checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A child dialing its parent.
    Client,
    /// A parent answering its child.
    Server,
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {rule}")]
    Invalid { path: PathBuf, rule: String },
    #[error("{path}: already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a new file, never over an existing one; keys are readable by their owner only.
fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), PkiError> {
    use std::io::Write;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(e)
        }
    })?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The region a certificate's SAN names, as the URI says it.
pub fn region_uri(region: &RegionCode) -> String {
    format!("{REGION_URI_PREFIX}{region}")
}

fn validity(days: u32, backdate: chrono::Duration) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let from = time::OffsetDateTime::now_utc() - time::Duration::seconds(backdate.num_seconds());
    (from, from + time::Duration::days(i64::from(days)))
}

/// The federation's certificate authority: its certificate and signing key, in PEM.
pub struct CertificateAuthority {
    pub cert_pem: String,
    key_pem: String,
}

impl CertificateAuthority {
    /// A new CA named `name`, valid for `days`.
    pub fn create(name: &str, days: u32) -> Result<CertificateAuthority, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Renda");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (params.not_before, params.not_after) = validity(days, chrono::Duration::minutes(5));
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` and `ca-key.pem` into `dir`, refusing to replace an existing CA.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_new(&dir.join(CA_KEY), &self.key_pem, true)?;
        write_new(&dir.join(CA_CERT), &self.cert_pem, false)
    }

    pub fn load(dir: &Path) -> Result<CertificateAuthority, PkiError> {
        let ca = CertificateAuthority {
            cert_pem: read(&dir.join(CA_CERT))?,
            key_pem: read(&dir.join(CA_KEY))?,
        };
        // Refuse a CA directory whose files do not belong together before signing anything.
        ca.issuer(&dir.join(CA_CERT))?;
        Ok(ca)
    }

    fn issuer(&self, path: &Path) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(|e| PkiError::Invalid {
            path: path.with_file_name(CA_KEY),
            rule: format!("not a PEM private key: {e}"),
        })?;
        Issuer::from_ca_cert_pem(&self.cert_pem, key).map_err(|e| PkiError::Invalid {
            path: path.to_path_buf(),
            rule: format!("not a PEM CA certificate: {e}"),
        })
    }

    /// A certificate for the node of `region`, valid for `days`.
    pub fn issue(
        &self,
        region: &RegionCode,
        name: &str,
        days: u32,
    ) -> Result<NodeCertificate, PkiError> {
        self.issue_with(NodeCertificateSpec {
            uris: vec![region_uri(region)],
            name: name.to_string(),
            days,
            backdate: chrono::Duration::minutes(5),
        })
    }

    /// A certificate made to a spec; tests use it for the certificates no operator should get
    /// (expired, or naming two regions).
    pub fn issue_with(&self, spec: NodeCertificateSpec) -> Result<NodeCertificate, PkiError> {
        let issuer = self.issuer(Path::new(CA_CERT))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.name.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = spec
            .uris
            .iter()
            .map(|u| u.as_str().try_into().map(SanType::URI))
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // A node is a server to its children and a client of its parent.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(spec.days, spec.backdate);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl CertificateAuthority {
    /// A certificate for a node's HTTPS listeners (the dashboard, the metrics): the DNS names and
    /// IP addresses browsers reach it by, the serverAuth usage only, and no region, so it can
    /// never link as a node: a parent refuses it as a client (no clientAuth, no region) and a
    /// child refuses it as its parent (no region).
    pub fn issue_server(
        &self,
        name: &str,
        dns: &[String],
        ips: &[std::net::IpAddr],
        days: u32,
    ) -> Result<NodeCertificate, PkiError> {
        if dns.is_empty() && ips.is_empty() {
            return Err(PkiError::Invalid {
                path: PathBuf::from("--dns"),
                rule:
                    "a server certificate names at least one DNS name (--dns) or IP address (--ip)"
                        .into(),
            });
        }
        let issuer = self.issuer(Path::new(CA_CERT))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let mut names = Vec::new();
        for d in dns {
            if !crate::validate::is_dns_name(d) {
                return Err(PkiError::Invalid {
                    path: PathBuf::from("--dns"),
                    rule: format!("{} is not a DNS name", crate::validate::quote(d)),
                });
            }
            let ia5 = d.as_str().try_into().map_err(|_| PkiError::Invalid {
                path: PathBuf::from("--dns"),
                rule: format!("{} is not a DNS name", crate::validate::quote(d)),
            })?;
            names.push(SanType::DnsName(ia5));
        }
        names.extend(ips.iter().copied().map(SanType::IpAddress));
        params.subject_alt_names = names;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(days, chrono::Duration::minutes(5));
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The files `renda ca issue --server` writes: the certificate (followed by the CA's, so a
/// browser that trusts the CA has the chain) and its key.
pub const SERVER_CERT: &str = "https.pem";
pub const SERVER_KEY: &str = "https-key.pem";

/// What a node certificate says, for [`CertificateAuthority::issue_with`].
pub struct NodeCertificateSpec {
    pub uris: Vec<String>,
    pub name: String,
    pub days: u32,
    /// How long before now the certificate starts to be valid; a backdate longer than `days`
    /// makes a certificate that has already expired.
    pub backdate: chrono::Duration,
}

/// A node's certificate and private key, in PEM.
pub struct NodeCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl NodeCertificate {
    /// Writes `node.pem` and `node-key.pem` into `dir`, with a copy of the CA's certificate
    /// beside them: the three files a node needs.
    pub fn save(&self, dir: &Path, ca_cert_pem: &str) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_new(&dir.join(NODE_KEY), &self.key_pem, true)?;
        write_new(&dir.join(NODE_CERT), &self.cert_pem, false)?;
        write_new(&dir.join(CA_CERT), ca_cert_pem, false)
    }

    /// Writes an HTTPS server certificate into `dir`: [`SERVER_CERT`] (the certificate and the
    /// CA's after it) and [`SERVER_KEY`].
    pub fn save_server(&self, dir: &Path, ca_cert_pem: &str) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_new(&dir.join(SERVER_KEY), &self.key_pem, true)?;
        write_new(
            &dir.join(SERVER_CERT),
            &format!("{}{ca_cert_pem}", self.cert_pem),
            false,
        )
    }

    /// The certificate in DER.
    pub fn der(&self) -> Result<CertificateDer<'static>, PkiError> {
        pem_cert(&self.cert_pem, Path::new(NODE_CERT))
    }
}

/// The first certificate of a PEM text.
pub fn pem_cert(pem: &str, path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Invalid {
        path: path.to_path_buf(),
        rule: format!("not a PEM certificate: {e:?}"),
    })
}

/// Who a verified certificate names, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub region: RegionCode,
    pub not_after: DateTime<Utc>,
}

/// Checks a peer's certificate against the federation's CA at `now` and returns the region it
/// names. This is the only way a node learns who a peer is.
pub fn verify_peer(
    cert: &CertificateDer<'_>,
    ca: &CertificateDer<'_>,
    now: DateTime<Utc>,
    usage: Usage,
) -> Result<Verified, IdentityError> {
    let anchor = webpki::anchor_from_trusted_cert(ca)
        .map_err(|e| IdentityError::Malformed(format!("CA certificate: {e}")))?;
    let end_entity = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let not_after = DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let not_before = DateTime::from_timestamp(parsed.validity().not_before.timestamp(), 0)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
            match usage {
                Usage::Client => webpki::KeyUsage::client_auth(),
                Usage::Server => webpki::KeyUsage::server_auth(),
            },
            None,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => IdentityError::Expired(not_after.to_rfc3339()),
            webpki::Error::CertNotValidYet { .. } => {
                IdentityError::NotYetValid(not_before.to_rfc3339())
            }
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
                IdentityError::UnknownIssuer
            }
            other => IdentityError::Unusable(format!("{other:?}")),
        })?;
    let uris: Vec<String> = parsed
        .subject_alternative_name()
        .map_err(|e| IdentityError::Malformed(e.to_string()))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let uri = match uris.as_slice() {
        [] => return Err(IdentityError::NoRegion),
        [one] => one,
        many => return Err(IdentityError::ManyUris(many.len())),
    };
    let region = uri
        .strip_prefix(REGION_URI_PREFIX)
        .and_then(|code| RegionCode::parse("region", code).ok())
        .ok_or_else(|| IdentityError::BadRegion(uri.clone()))?;
    Ok(Verified { region, not_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    fn ca() -> (CertificateAuthority, CertificateDer<'static>) {
        let ca = CertificateAuthority::create("测试 CA", 365).unwrap();
        let der = pem_cert(&ca.cert_pem, Path::new("ca.pem")).unwrap();
        (ca, der)
    }

    #[test]
    fn a_node_certificate_names_its_region_and_nothing_else_does() {
        let (ca, ca_der) = ca();
        let now = Utc::now();
        let town = code("330411101000");
        let cert = ca.issue(&town, "王店镇人大主席团", 30).unwrap();
        let verified = verify_peer(&cert.der().unwrap(), &ca_der, now, Usage::Client).unwrap();
        assert_eq!(verified.region, town);
        assert!(verified.not_after > now + chrono::Duration::days(29));

        let (other, _) = self::ca();
        let foreign = other.issue(&town, "冒充", 30).unwrap();
        assert_eq!(
            verify_peer(&foreign.der().unwrap(), &ca_der, now, Usage::Client),
            Err(IdentityError::UnknownIssuer)
        );

        let spec = |uris: Vec<String>, days, backdate_days| NodeCertificateSpec {
            uris,
            name: "test".into(),
            days,
            backdate: chrono::Duration::days(backdate_days),
        };
        let expired = ca.issue_with(spec(vec![region_uri(&town)], 1, 10)).unwrap();
        assert!(matches!(
            verify_peer(&expired.der().unwrap(), &ca_der, now, Usage::Client),
            Err(IdentityError::Expired(_))
        ));
        let two = ca
            .issue_with(spec(
                vec![region_uri(&town), region_uri(&code("330411102000"))],
                30,
                0,
            ))
            .unwrap();
        assert_eq!(
            verify_peer(&two.der().unwrap(), &ca_der, now, Usage::Client),
            Err(IdentityError::ManyUris(2))
        );
        let none = ca.issue_with(spec(vec![], 30, 0)).unwrap();
        assert_eq!(
            verify_peer(&none.der().unwrap(), &ca_der, now, Usage::Client),
            Err(IdentityError::NoRegion)
        );
        let bad = ca
            .issue_with(spec(vec!["urn:renda:region:33041".into()], 30, 0))
            .unwrap();
        assert!(matches!(
            verify_peer(&bad.der().unwrap(), &ca_der, now, Usage::Client),
            Err(IdentityError::BadRegion(_))
        ));
    }

    #[test]
    fn garbage_is_refused_without_a_panic() {
        let (_, ca_der) = ca();
        for bytes in [
            &b""[..],
            b"\x30\x03\x02\x01\x00",
            b"not a certificate at all",
        ] {
            assert!(
                verify_peer(
                    &CertificateDer::from(bytes.to_vec()),
                    &ca_der,
                    Utc::now(),
                    Usage::Client
                )
                .is_err()
            );
        }
    }

    #[test]
    fn files_are_written_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ca();
        ca.save(dir.path()).unwrap();
        assert!(matches!(ca.save(dir.path()), Err(PkiError::Exists { .. })));
        let loaded = CertificateAuthority::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem, ca.cert_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the CA key is readable by its owner only");
        }
        std::fs::write(dir.path().join(CA_KEY), "garbage").unwrap();
        assert!(matches!(
            CertificateAuthority::load(dir.path()),
            Err(PkiError::Invalid { .. })
        ));
    }
}
