//! Certificates: the federation's certificate authorities and each node's certificate.
//!
//! A node's identity is its region, and the only place it is read from is the certificate the
//! node presents on a link: a certificate that chains to the federation's root CA, within its
//! validity, whose one URI subject alternative name is `urn:renda:region:<12-digit code>`. A
//! certificate with no such name, with two, or with one that is not a region code names nobody
//! and is refused; so is one from another CA or out of date. Nothing a peer says in a message
//! can change who it is.
//!
//! Issuing is delegated: the root (held at the top) signs intermediate CAs, one per province and,
//! where an operator wants it, per city, and each intermediate names its region the same way.
//! The subtree rule: every certificate on a chain names a region within the region of each CA
//! above it that names one, so a province's CA can never issue for another province, nor make
//! a city CA of another's. [`CertificateAuthority`] refuses to sign across it, and
//! [`verify_peer`] refuses any chain that crosses it, whoever made it. The root names no region:
//! it may sign for the whole federation.
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
/// In an intermediate CA's directory: the CAs above it, up to but not including the root.
pub const CA_CHAIN: &str = "chain.pem";
/// In an intermediate CA's directory: the federation's root, which nodes trust.
pub const CA_ROOT: &str = "root.pem";
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
    #[error("certificate: names {region}, outside {issuer}, the subtree of the CA that issued it")]
    OutsideIssuer { region: String, issuer: String },
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
    /// A CA asked to sign for a region outside its own subtree.
    #[error("region: {region} is outside {issuer}, the subtree this CA issues for")]
    OutsideSubtree { region: String, issuer: String },
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
pub(crate) fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), PkiError> {
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

/// A node certificate's name, regions and extensions, the same whether the CA makes the key
/// (`issue`) or signs a node's own (`sign_request`), with a fresh serial; the validity is the
/// caller's.
fn node_params(name: &str, uris: &[String]) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = uris
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
    params.serial_number = Some(serial());
    Ok(params)
}

/// The region a certificate's SAN names, as the URI says it.
pub fn region_uri(region: &RegionCode) -> String {
    format!("{REGION_URI_PREFIX}{region}")
}

fn validity(days: u32, backdate: chrono::Duration) -> (time::OffsetDateTime, time::OffsetDateTime) {
    lasting(chrono::Duration::days(i64::from(days)), backdate)
}

/// A validity of `lifetime` starting `backdate` ago (a renewed certificate may last minutes in a
/// test federation, and a year in a real one).
fn lasting(
    lifetime: chrono::Duration,
    backdate: chrono::Duration,
) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let from = time::OffsetDateTime::now_utc() - time::Duration::seconds(backdate.num_seconds());
    (from, from + time::Duration::seconds(lifetime.num_seconds()))
}

/// A random serial number: rcgen would derive one from the key, and a certificate renewed from
/// the same key would then share its predecessor's serial, so revoking the old one would
/// revoke the new one too.
fn serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive, as RFC 5280 wants.
    bytes[0] &= 0x7f;
    rcgen::SerialNumber::from_slice(&bytes)
}

/// When the certificate in `pem` ends.
fn not_after_of(pem: &str) -> Option<time::OffsetDateTime> {
    let der = pem_cert(pem, Path::new(CA_CERT)).ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    time::OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp()).ok()
}

/// A parent's issuing CA for its children's renewals, and how long a renewed certificate lasts.
pub struct Issuing {
    pub ca: CertificateAuthority,
    pub lifetime: chrono::Duration,
}

impl std::fmt::Debug for Issuing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuing")
            .field("subtree", &self.ca.region())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// A node's request for a new certificate: a key made on the node, which never leaves it, and
/// the certificate signing request (PKCS #10, DER) naming the node's region.
pub struct Renewal {
    pub key_pem: String,
    pub csr_der: Vec<u8>,
}

/// Makes a new key for the node of `region` and the request its parent's CA signs.
pub fn request_certificate(region: &RegionCode, name: &str) -> Result<Renewal, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(region_uri(region).as_str().try_into()?)];
    let csr = params.serialize_request(&key)?;
    Ok(Renewal {
        key_pem: key.serialize_pem(),
        csr_der: csr.der().to_vec(),
    })
}

/// A certificate authority of the federation, in PEM: the root, or an intermediate CA limited
/// to a region's subtree. Its directory holds [`CA_CERT`] and [`CA_KEY`]; an intermediate's also
/// [`CA_CHAIN`] (the CAs above it but the root) and [`CA_ROOT`].
pub struct CertificateAuthority {
    /// This CA's own certificate.
    pub cert_pem: String,
    key_pem: String,
    /// The CAs between this one and the root, nearest first; empty for the root.
    chain_pem: String,
    /// The federation's root certificate, which nodes trust; this CA's own for the root.
    root_pem: String,
    /// The subtree this CA issues for; `None` for the root, which issues for every region.
    region: Option<RegionCode>,
}

impl CertificateAuthority {
    /// A new root CA named `name`, valid for `days`. Its path length allows two intermediates
    /// below it (a province's and a city's).
    pub fn create(name: &str, days: u32) -> Result<CertificateAuthority, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Renda");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(2));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(serial());
        (params.not_before, params.not_after) = validity(days, chrono::Duration::minutes(5));
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(CertificateAuthority {
            root_pem: cert_pem.clone(),
            cert_pem,
            key_pem: key.serialize_pem(),
            chain_pem: String::new(),
            region: None,
        })
    }

    /// The subtree this CA issues for; `None` for the root.
    pub fn region(&self) -> Option<RegionCode> {
        self.region
    }

    /// The root certificate nodes trust, to install beside a certificate this CA issues.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A validity cut to end no later than this CA's own and the CAs' above it: a certificate
    /// outliving its issuer would stop verifying on the issuer's last day, unannounced.
    fn within_life(
        &self,
        (from, to): (time::OffsetDateTime, time::OffsetDateTime),
    ) -> (time::OffsetDateTime, time::OffsetDateTime) {
        let mut end = to;
        for pem in [&self.cert_pem, &self.root_pem] {
            if let Some(limit) = not_after_of(pem) {
                end = end.min(limit);
            }
        }
        if let Ok(above) = pem_certs(&self.chain_pem, Path::new(CA_CHAIN)) {
            for der in above {
                if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(der.as_ref())
                    && let Ok(limit) = time::OffsetDateTime::from_unix_timestamp(
                        parsed.validity().not_after.timestamp(),
                    )
                {
                    end = end.min(limit);
                }
            }
        }
        (from, end)
    }

    /// Refuses a region outside this CA's subtree.
    fn covers(&self, region: &RegionCode) -> Result<(), PkiError> {
        match self.region {
            Some(mine) if !region.is_within(&mine) => Err(PkiError::OutsideSubtree {
                region: region.to_string(),
                issuer: mine.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// A new intermediate CA for `region`'s subtree, signed by this one: a province's (which
    /// may sign a city's in turn) or a city's. Refused for a region outside this CA's subtree.
    pub fn create_intermediate(
        &self,
        region: &RegionCode,
        name: &str,
        days: u32,
    ) -> Result<CertificateAuthority, PkiError> {
        self.covers(region)?;
        if Some(*region) == self.region {
            return Err(PkiError::OutsideSubtree {
                region: region.to_string(),
                issuer: format!("{region} (a CA below names a smaller subtree than its own)"),
            });
        }
        let issuer = self.issuer(Path::new(CA_CERT))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Renda");
        params.distinguished_name = dn;
        // A province's CA may make city CAs; any other makes none.
        let below = u8::from(region.level() == Some(crate::region::Level::Province));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(below));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.subject_alt_names = vec![SanType::URI(region_uri(region).as_str().try_into()?)];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial());
        (params.not_before, params.not_after) =
            self.within_life(validity(days, chrono::Duration::minutes(5)));
        let cert = params.signed_by(&key, &issuer)?;
        // The chain a certificate it issues carries: itself, then the CAs above it but the root.
        let chain_pem = if self.region.is_some() {
            format!("{}{}", self.cert_pem, self.chain_pem)
        } else {
            String::new()
        };
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain_pem,
            root_pem: self.root_pem.clone(),
            region: Some(*region),
        })
    }

    /// Writes the CA into `dir` ([`CA_CERT`], [`CA_KEY`], and for an intermediate [`CA_CHAIN`]
    /// and [`CA_ROOT`]), refusing to replace an existing CA.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_new(&dir.join(CA_KEY), &self.key_pem, true)?;
        write_new(&dir.join(CA_CERT), &self.cert_pem, false)?;
        if self.region.is_some() {
            write_new(&dir.join(CA_CHAIN), &self.chain_pem, false)?;
            write_new(&dir.join(CA_ROOT), &self.root_pem, false)?;
        }
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<CertificateAuthority, PkiError> {
        let cert_path = dir.join(CA_CERT);
        let cert_pem = read(&cert_path)?;
        let optional = |name: &str| -> Result<Option<String>, PkiError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(PkiError::Io { path, source }),
            }
        };
        let region =
            ca_region(&pem_cert(&cert_pem, &cert_path)?).map_err(|rule| PkiError::Invalid {
                path: cert_path.clone(),
                rule,
            })?;
        let (chain_pem, root_pem) = match region {
            None => (String::new(), cert_pem.clone()),
            Some(_) => (
                optional(CA_CHAIN)?.unwrap_or_default(),
                optional(CA_ROOT)?.ok_or_else(|| PkiError::Invalid {
                    path: dir.join(CA_ROOT),
                    rule: "an intermediate CA's directory holds the federation's root".into(),
                })?,
            ),
        };
        let ca = CertificateAuthority {
            cert_pem,
            key_pem: read(&dir.join(CA_KEY))?,
            chain_pem,
            root_pem,
            region,
        };
        // Refuse a CA directory whose files do not belong together before signing anything:
        // the key must be the certificate's, and the chain and root must read.
        ca.issuer(&cert_path)?;
        pem_certs(&ca.chain_pem, &dir.join(CA_CHAIN))?;
        if pem_certs(&ca.root_pem, &dir.join(CA_ROOT))?.is_empty() {
            return Err(PkiError::Invalid {
                path: dir.join(CA_ROOT),
                rule: "holds no certificate".into(),
            });
        }
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

    /// A certificate for the node of `region`, valid for `days`, with the chain above it;
    /// refused for a region outside this CA's subtree.
    pub fn issue(
        &self,
        region: &RegionCode,
        name: &str,
        days: u32,
    ) -> Result<NodeCertificate, PkiError> {
        self.covers(region)?;
        self.issue_with(NodeCertificateSpec {
            uris: vec![region_uri(region)],
            name: name.to_string(),
            days,
            backdate: chrono::Duration::minutes(5),
        })
    }

    /// A certificate made to a spec, with no subtree check; tests use it for the certificates
    /// no operator should get (expired, naming two regions, or another CA's region).
    pub fn issue_with(&self, spec: NodeCertificateSpec) -> Result<NodeCertificate, PkiError> {
        let issuer = self.issuer(Path::new(CA_CERT))?;
        let key = KeyPair::generate()?;
        let mut params = node_params(&spec.name, &spec.uris)?;
        (params.not_before, params.not_after) =
            self.within_life(validity(spec.days, spec.backdate));
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodeCertificate {
            cert_pem: format!("{}{}", cert.pem(), self.issued_chain()),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a node's certificate signing request for `lifetime`, sent by the child `peer` over
    /// a link its current certificate authenticated: the request must name exactly `peer`'s
    /// region, inside this CA's subtree, and be signed by the key it carries. Of the request
    /// only that name, its common name and its public key are used; every other extension is
    /// this CA's own, as for [`CertificateAuthority::issue`]. Returns the new chain in PEM.
    pub fn sign_request(
        &self,
        csr_der: &[u8],
        peer: &RegionCode,
        lifetime: chrono::Duration,
    ) -> Result<String, PkiError> {
        let invalid = |rule: String| PkiError::Invalid {
            path: PathBuf::from("csr"),
            rule,
        };
        let csr = rcgen::CertificateSigningRequestParams::from_der(
            &rustls_pki_types::CertificateSigningRequestDer::from(csr_der),
        )
        .map_err(|e| invalid(format!("not a signed certificate request: {e}")))?;
        let uris: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(uri) => Some(uri.as_str().to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("names something other than a region".into()))?;
        match uris.as_slice() {
            [one] if region_of_uri(one) == Some(*peer) => {}
            _ => {
                return Err(invalid(format!(
                    "must name exactly the requesting node's region {peer}"
                )));
            }
        }
        self.covers(peer)?;
        if lifetime <= chrono::Duration::zero() || lifetime > chrono::Duration::days(3650) {
            return Err(invalid("a lifetime from a second to ten years".into()));
        }
        let name = csr
            .params
            .distinguished_name
            .get(&DnType::CommonName)
            .and_then(|v| match v {
                rcgen::DnValue::Utf8String(s) => Some(s.clone()),
                rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| peer.to_string());
        let issuer = self.issuer(Path::new(CA_CERT))?;
        let mut params = node_params(&name, &[region_uri(peer)])?;
        // Valid from a little before now, for clocks a little behind the CA's: a minute, or a
        // tenth of a short life, so a certificate of minutes is not half spent when it comes.
        let backdate = chrono::Duration::minutes(5).min(lifetime / 10);
        let (from, _) = lasting(lifetime, backdate);
        let to = time::OffsetDateTime::now_utc() + time::Duration::seconds(lifetime.num_seconds());
        (params.not_before, params.not_after) = self.within_life((from, to));
        let cert = params.signed_by(&csr.public_key, &issuer)?;
        Ok(format!("{}{}", cert.pem(), self.issued_chain()))
    }

    /// What follows a certificate this CA issues in its chain: this CA and the ones above it,
    /// for an intermediate; nothing for the root, which every node holds already.
    fn issued_chain(&self) -> String {
        if self.region.is_some() {
            format!("{}{}", self.cert_pem, self.chain_pem)
        } else {
            String::new()
        }
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
        params.serial_number = Some(serial());
        (params.not_before, params.not_after) =
            self.within_life(validity(days, chrono::Duration::minutes(5)));
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodeCertificate {
            cert_pem: format!("{}{}", cert.pem(), self.issued_chain()),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Gives the intermediate CA in `dir` a new key and certificate for the same subtree, signed
/// by `signer` (the CA above it), valid for `days`. The new CA is written beside the old first;
/// the old files then move to `dir/retired-<time>/` and the new ones take their place, so a
/// failure part-way leaves the old CA whole. Returns where the old files went.
pub fn rotate_intermediate(
    signer: &CertificateAuthority,
    dir: &Path,
    days: u32,
) -> Result<PathBuf, PkiError> {
    let old = CertificateAuthority::load(dir)?;
    let Some(region) = old.region else {
        return Err(PkiError::Invalid {
            path: dir.join(CA_CERT),
            rule: "the root is not rotated this way: create a new root and add it to every \
                   node's ca.pem beside the old one (docs: deploy/rollout.md)"
                .into(),
        });
    };
    let name = pem_cert(&old.cert_pem, &dir.join(CA_CERT))
        .ok()
        .and_then(|der| {
            x509_parser::parse_x509_certificate(der.as_ref())
                .ok()
                .and_then(|(_, c)| {
                    c.subject()
                        .iter_common_name()
                        .next()
                        .and_then(|n| n.as_str().ok().map(str::to_string))
                })
        })
        .unwrap_or_else(|| format!("{region} CA"));
    let new = signer.create_intermediate(&region, &name, days)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PkiError::Io { path, source }
    };
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let staged = dir.join(format!(".rotating-{stamp}"));
    new.save(&staged)?;
    let retired = dir.join(format!("retired-{stamp}"));
    std::fs::create_dir_all(&retired).map_err(io(&retired))?;
    for file in [CA_CERT, CA_KEY, CA_CHAIN, CA_ROOT] {
        let from = dir.join(file);
        if from.exists() {
            std::fs::rename(&from, retired.join(file)).map_err(io(&from))?;
        }
    }
    for file in [CA_CERT, CA_KEY, CA_CHAIN, CA_ROOT] {
        let from = staged.join(file);
        if from.exists() {
            std::fs::rename(&from, dir.join(file)).map_err(io(&from))?;
        }
    }
    let _ = std::fs::remove_dir(&staged);
    Ok(retired)
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

    /// The certificate and the intermediate CAs after it, in DER: what a node presents.
    pub fn chain(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        pem_certs(&self.cert_pem, Path::new(NODE_CERT))
    }
}

/// Every certificate of a PEM text, in order: a chain, or a bundle of roots.
pub fn pem_certs(pem: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Invalid {
            path: path.to_path_buf(),
            rule: format!("not PEM certificates: {e:?}"),
        })
}

/// The region a CA certificate names (its subtree), or `None` for one that names none (the
/// root); a CA naming several, or something that is not a region, is malformed.
fn ca_region(cert: &CertificateDer<'_>) -> Result<Option<RegionCode>, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    let uris = uri_names(&parsed).map_err(|e| e.to_string())?;
    match uris.as_slice() {
        [] => Ok(None),
        [one] => region_of_uri(one)
            .map(Some)
            .ok_or_else(|| format!("URI SAN {one:?} does not name a region code")),
        many => Err(format!("names {} regions; a CA names one", many.len())),
    }
}

fn uri_names(
    parsed: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Vec<String>, x509_parser::error::X509Error> {
    Ok(parsed
        .subject_alternative_name()?
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
        .unwrap_or_default())
}

fn region_of_uri(uri: &str) -> Option<RegionCode> {
    uri.strip_prefix(REGION_URI_PREFIX)
        .and_then(|code| RegionCode::parse("region", code).ok())
}

/// The first certificate of a PEM text.
pub fn pem_cert(pem: &str, path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Invalid {
        path: path.to_path_buf(),
        rule: format!("not a PEM certificate: {e:?}"),
    })
}

/// What a node certificate says, read without verifying it (for revoking it): the region it
/// names and its serial number.
pub fn certificate_facts(cert: &CertificateDer<'_>) -> Result<Verified, IdentityError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    // A CA's certificate is not a node's: revoking it by its serial would refuse nothing.
    if parsed
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca)
    {
        return Err(IdentityError::Unusable(
            "a CA's certificate, not a node's: a CA is withdrawn by replacing the root (deploy/rollout.md)"
                .into(),
        ));
    }
    let uris = uri_names(&parsed).map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let uri = match uris.as_slice() {
        [] => return Err(IdentityError::NoRegion),
        [one] => one,
        many => return Err(IdentityError::ManyUris(many.len())),
    };
    let region = region_of_uri(uri).ok_or_else(|| IdentityError::BadRegion(uri.clone()))?;
    Ok(Verified {
        region,
        not_after: DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        serial: serial_of(&parsed)?,
    })
}

fn serial_of(
    parsed: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<String, IdentityError> {
    crate::record::revocation::Revocation::normalise_serial(
        &parsed
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
    .map_err(|e| IdentityError::Malformed(e.rule))
}

/// Who a verified certificate names, until when, and its serial number (lowercase hex, as a
/// revocation names it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub region: RegionCode,
    pub not_after: DateTime<Utc>,
    pub serial: String,
}

/// Checks a peer's certificate chain (its own certificate first, then the intermediate CAs it
/// presented) against the federation's roots at `now`, with the subtree rule: every
/// certificate names a region within that of each CA above it that names one. Returns the
/// region the peer's certificate names. This is the only way a node learns who a peer is.
pub fn verify_peer(
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    now: DateTime<Utc>,
    usage: Usage,
) -> Result<Verified, IdentityError> {
    let (cert, intermediates) = chain.split_first().ok_or(IdentityError::Missing)?;
    // A root that names a region is an intermediate CA put among the roots (its certificate is
    // a `ca.pem` too): trusted as a root, it could sign for any region unchecked.
    for root in roots {
        if let Ok(Some(region)) = ca_region(root) {
            return Err(IdentityError::Unusable(format!(
                "the trusted roots (ca.pem) hold the CA of {region}; a node trusts only the \
                 federation's root"
            )));
        }
    }
    let root_ends: Vec<(Vec<u8>, DateTime<Utc>)> = roots
        .iter()
        .filter_map(|root| {
            let (_, parsed) = x509_parser::parse_x509_certificate(root.as_ref()).ok()?;
            Some((
                parsed.public_key().raw.to_vec(),
                DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)?,
            ))
        })
        .collect();
    let anchors = roots
        .iter()
        .map(|ca| {
            webpki::anchor_from_trusted_cert(ca)
                .map_err(|e| IdentityError::Malformed(format!("CA certificate: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let end_entity = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let not_after = DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let not_before = DateTime::from_timestamp(parsed.validity().not_before.timestamp(), 0)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let uris = uri_names(&parsed).map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let uri = match uris.as_slice() {
        [] => return Err(IdentityError::NoRegion),
        [one] => one,
        many => return Err(IdentityError::ManyUris(many.len())),
    };
    let region = region_of_uri(uri).ok_or_else(|| IdentityError::BadRegion(uri.clone()))?;
    // The subtree rule, checked on the path webpki built (the peer may present more
    // certificates than the path uses): walking up from the peer's certificate, each CA that
    // names a region must contain the region below it. A path that breaks it is not taken.
    let crossed = std::sync::Mutex::new(None);
    // The earliest end of the CAs on the path taken: the chain stops verifying then, whatever
    // the peer's own certificate says.
    let path_end = std::sync::Mutex::new(None::<DateTime<Utc>>);
    let subtree_rule = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let spki = path.anchor().subject_public_key_info.as_ref();
        let mut end = root_ends
            .iter()
            .find(|(raw, _)| raw.ends_with(spki))
            .map(|(_, end)| *end);
        for ca in path.intermediate_certificates() {
            if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(ca.der().as_ref())
                && let Some(at) =
                    DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
            {
                end = Some(end.map_or(at, |e| e.min(at)));
            }
        }
        let mut below = region;
        for ca in path.intermediate_certificates() {
            let names: Vec<&str> = ca.valid_uri_names().collect();
            let Some(theirs) = names.first().and_then(|u| region_of_uri(u)) else {
                // An intermediate CA names its subtree; one that names none is no Renda CA.
                return Err(webpki::Error::NameConstraintViolation);
            };
            if names.len() != 1 || !below.is_within(&theirs) {
                if let Ok(mut crossed) = crossed.lock() {
                    *crossed = Some((below, theirs));
                }
                return Err(webpki::Error::NameConstraintViolation);
            }
            below = theirs;
        }
        if let Ok(mut slot) = path_end.lock() {
            *slot = end;
        }
        Ok(())
    };
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
            match usage {
                Usage::Client => webpki::KeyUsage::client_auth(),
                Usage::Server => webpki::KeyUsage::server_auth(),
            },
            None,
            Some(&subtree_rule),
        )
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => IdentityError::Expired(not_after.to_rfc3339()),
            webpki::Error::CertNotValidYet { .. } => {
                IdentityError::NotYetValid(not_before.to_rfc3339())
            }
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
                IdentityError::UnknownIssuer
            }
            webpki::Error::NameConstraintViolation => match crossed.lock().ok().and_then(|c| *c) {
                Some((below, issuer)) => IdentityError::OutsideIssuer {
                    region: below.to_string(),
                    issuer: issuer.to_string(),
                },
                None => IdentityError::Unusable(
                    "an intermediate CA on its chain names no region".into(),
                ),
            },
            other => IdentityError::Unusable(format!("{other:?}")),
        })?;
    let serial = serial_of(&parsed)?;
    let not_after = match path_end.lock().ok().and_then(|end| *end) {
        Some(end) => not_after.min(end),
        None => not_after,
    };
    Ok(Verified {
        region,
        not_after,
        serial,
    })
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
        let verified = verify_peer(
            &cert.chain().unwrap(),
            std::slice::from_ref(&ca_der),
            now,
            Usage::Client,
        )
        .unwrap();
        assert_eq!(verified.region, town);
        assert!(verified.not_after > now + chrono::Duration::days(29));

        let (other, _) = self::ca();
        let foreign = other.issue(&town, "冒充", 30).unwrap();
        assert_eq!(
            verify_peer(
                &foreign.chain().unwrap(),
                std::slice::from_ref(&ca_der),
                now,
                Usage::Client
            ),
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
            verify_peer(
                &expired.chain().unwrap(),
                std::slice::from_ref(&ca_der),
                now,
                Usage::Client
            ),
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
            verify_peer(
                &two.chain().unwrap(),
                std::slice::from_ref(&ca_der),
                now,
                Usage::Client
            ),
            Err(IdentityError::ManyUris(2))
        );
        let none = ca.issue_with(spec(vec![], 30, 0)).unwrap();
        assert_eq!(
            verify_peer(
                &none.chain().unwrap(),
                std::slice::from_ref(&ca_der),
                now,
                Usage::Client
            ),
            Err(IdentityError::NoRegion)
        );
        let bad = ca
            .issue_with(spec(vec!["urn:renda:region:33041".into()], 30, 0))
            .unwrap();
        assert!(matches!(
            verify_peer(
                &bad.chain().unwrap(),
                std::slice::from_ref(&ca_der),
                now,
                Usage::Client
            ),
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
                    &[CertificateDer::from(bytes.to_vec())],
                    std::slice::from_ref(&ca_der),
                    Utc::now(),
                    Usage::Client
                )
                .is_err()
            );
            // As an intermediate the peer presents, too.
            let (ca, _) = self::ca();
            let good = ca.issue(&code("330411101000"), "x", 30).unwrap();
            let mut chain = good.chain().unwrap();
            chain.push(CertificateDer::from(bytes.to_vec()));
            assert!(
                verify_peer(
                    &chain,
                    std::slice::from_ref(&ca_der),
                    Utc::now(),
                    Usage::Client
                )
                .is_err()
            );
        }
        assert_eq!(
            verify_peer(
                &[],
                std::slice::from_ref(&ca_der),
                Utc::now(),
                Usage::Client
            ),
            Err(IdentityError::Missing)
        );
    }

    /// Issuing is delegated down the tree, and no CA can issue across it: a province's CA
    /// issues for its own townships and makes its cities' CAs, is refused for another
    /// province's, and a chain that crosses the rule anyway (made by a CA that ignored it) is
    /// refused by whoever checks it, as a client's or a server's.
    #[test]
    fn a_province_ca_issues_for_its_subtree_and_nowhere_else() {
        let (root, root_der) = ca();
        let roots = std::slice::from_ref(&root_der);
        let now = Utc::now();
        let zhejiang = root
            .create_intermediate(&code("330000000000"), "浙江省 CA", 365)
            .unwrap();
        assert_eq!(zhejiang.region(), Some(code("330000000000")));
        let jiaxing = zhejiang
            .create_intermediate(&code("330400000000"), "嘉兴市 CA", 365)
            .unwrap();

        // Down the tree, at every depth, both ways.
        for (ca, region) in [
            (&root, "330411101000"),
            (&zhejiang, "330411101000"),
            (&jiaxing, "330411101000"),
            (&jiaxing, "330400000000"),
        ] {
            let cert = ca.issue(&code(region), "节点", 30).unwrap();
            for usage in [Usage::Client, Usage::Server] {
                let verified = verify_peer(&cert.chain().unwrap(), roots, now, usage).unwrap();
                assert_eq!(verified.region, code(region));
            }
        }
        // The chain is the certificate, then each CA above it but the root.
        assert_eq!(
            jiaxing
                .issue(&code("330411101000"), "x", 30)
                .unwrap()
                .chain()
                .unwrap()
                .len(),
            3
        );

        // Refused when asked to issue across.
        let jiangsu_town = code("320102001000");
        assert!(matches!(
            zhejiang.issue(&jiangsu_town, "冒充", 30),
            Err(PkiError::OutsideSubtree { .. })
        ));
        assert!(matches!(
            zhejiang.create_intermediate(&code("320100000000"), "南京市 CA", 365),
            Err(PkiError::OutsideSubtree { .. })
        ));
        assert!(matches!(
            jiaxing.issue(&code("330100000000"), "杭州市", 30),
            Err(PkiError::OutsideSubtree { .. })
        ));

        // Made anyway, by a CA that ignored the rule: refused at every check.
        let spec = |region: &RegionCode| NodeCertificateSpec {
            uris: vec![region_uri(region)],
            name: "冒充".into(),
            days: 30,
            backdate: chrono::Duration::minutes(5),
        };
        for (ca, region) in [(&zhejiang, jiangsu_town), (&jiaxing, code("330100000000"))] {
            let forged = ca.issue_with(spec(&region)).unwrap();
            for usage in [Usage::Client, Usage::Server] {
                assert!(
                    matches!(
                        verify_peer(&forged.chain().unwrap(), roots, now, usage),
                        Err(IdentityError::OutsideIssuer { .. })
                    ),
                    "{region} from {:?}",
                    ca.region()
                );
            }
        }
        // A chain missing its intermediate does not reach the root.
        let cert = jiaxing.issue(&code("330411101000"), "x", 30).unwrap();
        let leaf_only = vec![cert.der().unwrap()];
        assert_eq!(
            verify_peer(&leaf_only, roots, now, Usage::Client),
            Err(IdentityError::UnknownIssuer)
        );
        // Another federation's root trusts none of it.
        let (_, other_root) = ca();
        assert_eq!(
            verify_peer(
                &cert.chain().unwrap(),
                std::slice::from_ref(&other_root),
                now,
                Usage::Client
            ),
            Err(IdentityError::UnknownIssuer)
        );
        // During a root's rotation a node trusts both, and either chain.
        let both = [other_root, root_der.clone()];
        assert!(verify_peer(&cert.chain().unwrap(), &both, now, Usage::Client).is_ok());
    }

    /// A node's request for a new certificate is signed for its own region only, within the
    /// CA's subtree, with the CA's extensions, and the chain verifies with the node's new key.
    #[test]
    fn a_request_is_signed_for_the_requesting_node_only() {
        let (root, root_der) = ca();
        let zhejiang = root
            .create_intermediate(&code("330000000000"), "浙江省 CA", 365)
            .unwrap();
        let town = code("330411101000");
        let request = request_certificate(&town, "王店镇人大主席团").unwrap();
        let chain = zhejiang
            .sign_request(&request.csr_der, &town, chrono::Duration::minutes(5))
            .unwrap();
        let certs = pem_certs(&chain, Path::new("renewed")).unwrap();
        let verified = verify_peer(
            &certs,
            std::slice::from_ref(&root_der),
            Utc::now(),
            Usage::Client,
        )
        .unwrap();
        assert_eq!(verified.region, town);
        assert!(verified.not_after <= Utc::now() + chrono::Duration::minutes(5));
        // The key the node made, which never left it, is the certificate's.
        let key = KeyPair::from_pem(&request.key_pem).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(certs[0].as_ref()).unwrap();
        assert_eq!(
            parsed.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );

        // Sent by another node, or for a region outside the CA's subtree: refused.
        let other = code("330411102000");
        assert!(
            zhejiang
                .sign_request(&request.csr_der, &other, chrono::Duration::minutes(5))
                .is_err()
        );
        let jiangsu = code("320117101000");
        let theirs = request_certificate(&jiangsu, "x").unwrap();
        assert!(matches!(
            zhejiang.sign_request(&theirs.csr_der, &jiangsu, chrono::Duration::minutes(5)),
            Err(PkiError::OutsideSubtree { .. })
        ));
        // Garbage, and a request whose signature does not hold.
        assert!(
            zhejiang
                .sign_request(b"garbage", &town, chrono::Duration::minutes(5))
                .is_err()
        );
        let mut tampered = request.csr_der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0xff;
        assert!(
            zhejiang
                .sign_request(&tampered, &town, chrono::Duration::minutes(5))
                .is_err()
        );
    }

    /// No certificate outlives the CAs above it, and an intermediate CA among a node's roots is
    /// refused rather than trusted as a root that could sign for any region.
    #[test]
    fn a_chain_ends_with_its_shortest_lived_ca_and_roots_name_no_region() {
        let root = CertificateAuthority::create("短期根 CA", 30).unwrap();
        let root_der = pem_cert(&root.cert_pem, Path::new("ca.pem")).unwrap();
        let zhejiang = root
            .create_intermediate(&code("330000000000"), "浙江省 CA", 1825)
            .unwrap();
        let cert = zhejiang.issue(&code("330411101000"), "x", 365).unwrap();
        let verified = verify_peer(
            &cert.chain().unwrap(),
            std::slice::from_ref(&root_der),
            Utc::now(),
            Usage::Client,
        )
        .unwrap();
        assert!(
            verified.not_after <= Utc::now() + chrono::Duration::days(30),
            "{}",
            verified.not_after
        );
        // The province's CA put among the roots: refused, not trusted.
        let province_der = pem_cert(&zhejiang.cert_pem, Path::new("ca.pem")).unwrap();
        let forged = zhejiang
            .issue_with(NodeCertificateSpec {
                uris: vec![region_uri(&code("320117101000"))],
                name: "x".into(),
                days: 30,
                backdate: chrono::Duration::minutes(5),
            })
            .unwrap();
        assert!(matches!(
            verify_peer(
                &forged.chain().unwrap()[..1],
                &[root_der, province_der],
                Utc::now(),
                Usage::Client
            ),
            Err(IdentityError::Unusable(_))
        ));
        // A CA's certificate is not one a revocation can name.
        assert!(
            certificate_facts(&pem_cert(&zhejiang.cert_pem, Path::new("ca.pem")).unwrap()).is_err()
        );
        assert!(certificate_facts(&cert.der().unwrap()).is_ok());
    }

    /// An intermediate CA's directory reads back as the CA it was, and a rotation gives it a
    /// new key for the same subtree, the old files kept aside.
    #[test]
    fn intermediate_directories_read_back_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let (root, root_der) = ca();
        let zhejiang = root
            .create_intermediate(&code("330000000000"), "浙江省 CA", 365)
            .unwrap();
        let path = dir.path().join("zhejiang");
        zhejiang.save(&path).unwrap();
        let loaded = CertificateAuthority::load(&path).unwrap();
        assert_eq!(loaded.region(), Some(code("330000000000")));
        assert_eq!(loaded.root_pem(), root.root_pem());
        let cert = loaded.issue(&code("330411101000"), "x", 30).unwrap();
        assert!(
            verify_peer(
                &cert.chain().unwrap(),
                std::slice::from_ref(&root_der),
                Utc::now(),
                Usage::Client
            )
            .is_ok()
        );

        let retired = rotate_intermediate(&root, &path, 365).unwrap();
        let rotated = CertificateAuthority::load(&path).unwrap();
        assert_eq!(rotated.region(), Some(code("330000000000")));
        assert_ne!(rotated.cert_pem, zhejiang.cert_pem, "a new certificate");
        assert_eq!(
            std::fs::read_to_string(retired.join(CA_CERT)).unwrap(),
            zhejiang.cert_pem
        );
        // What the old key issued still verifies; what the new one issues does too.
        let fresh = rotated.issue(&code("330411101000"), "x", 30).unwrap();
        for c in [&cert, &fresh] {
            assert!(
                verify_peer(
                    &c.chain().unwrap(),
                    std::slice::from_ref(&root_der),
                    Utc::now(),
                    Usage::Client
                )
                .is_ok()
            );
        }
        // The root is not rotated this way.
        let root_dir = dir.path().join("root");
        root.save(&root_dir).unwrap();
        assert!(matches!(
            rotate_intermediate(&root, &root_dir, 365),
            Err(PkiError::Invalid { .. })
        ));
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
