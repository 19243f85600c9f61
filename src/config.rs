//! A node's settings: one type, [`RunSettings`], read from the command line (`renda run
//! --listen …`) or from a TOML file (`renda run --config FILE`, as `deploy/` ships one per
//! level). Every field is optional in both; [`RunSettings::node_config`] checks the whole and
//! fills what is missing from the defaults, which are written once, beside the parts they tune
//! (`renda_node::sync`, `renda_node::rollups`, `RollupRules::default`).
//!
//! A bad value is an error naming the key as the user wrote it: `sync.batch_bytes` in a file,
//! `--batch-bytes` on the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use renda_node::node::{HttpsFiles, NewNode, NodeConfig};
use renda_node::record::rollup::RollupRules;
use renda_node::region::{Level, RegionCode};
use renda_node::route::RoutePolicy;
use renda_node::sync::LinkConfig;
use serde::Deserialize;

/// Where settings came from, which decides how a key is named in an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    File,
    Flags,
}

impl Source {
    /// The key as the user wrote it: `section.key` in a file, `--flag-name` on the command line.
    fn key(self, section: &str, key: &str) -> String {
        match self {
            Source::File if section.is_empty() => key.to_string(),
            Source::File => format!("{section}.{key}"),
            Source::Flags => format!("--{}", key.replace('_', "-")),
        }
    }
}

/// Bounds of the numeric settings, checked the same way for a flag (by clap, before anything is
/// opened) and for a file's value.
const BATCH_BYTES: std::ops::RangeInclusive<u32> = 1024..=16 * 1024 * 1024;
const LINK_TIMEOUT_SECS: std::ops::RangeInclusive<u32> = 3..=3600;
const STALE_AFTER_HOURS: std::ops::RangeInclusive<u32> = 1..=24 * 366;
const BACKUP_KEEP: std::ops::RangeInclusive<u32> = 1..=1000;
/// From ten seconds (tests, and an office that wants a copy after every few writes) to a month.
const BACKUP_EVERY: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(10)..=Duration::from_secs(31 * 86_400);

/// A period such as `24h`, `30m` or `1d 12h`, within [`BACKUP_EVERY`].
fn backup_every(s: &str) -> Result<Duration, String> {
    let rule = "须为时长，如 24h、6h、30m（10s 到 31d 之间）";
    let every = humantime::parse_duration(s.trim()).map_err(|_| rule.to_string())?;
    if BACKUP_EVERY.contains(&every) {
        Ok(every)
    } else {
        Err(rule.to_string())
    }
}

fn backup_keep(s: &str) -> Result<u32, String> {
    number_in(&BACKUP_KEEP, s)
}

/// `value` if it lies in `range`, else the rule it broke.
fn within(range: &std::ops::RangeInclusive<u32>, value: u32) -> Result<u32, String> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!("须在 {} 到 {} 之间", range.start(), range.end()))
    }
}

/// A flag's number, in `range`.
fn number_in(range: &std::ops::RangeInclusive<u32>, s: &str) -> Result<u32, String> {
    let value = s
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("须为整数，在 {} 到 {} 之间", range.start(), range.end()))?;
    within(range, value)
}

fn batch_bytes(s: &str) -> Result<u32, String> {
    number_in(&BATCH_BYTES, s)
}

fn link_timeout_secs(s: &str) -> Result<u32, String> {
    number_in(&LINK_TIMEOUT_SECS, s)
}

fn stale_after_hours(s: &str) -> Result<u32, String> {
    number_in(&STALE_AFTER_HOURS, s)
}

fn full_record_depth(s: &str) -> Result<String, String> {
    Level::parse("full-record-depth", s)
        .map(|_| s.to_string())
        .map_err(|e| e.rule)
}

/// A setting that broke a rule, naming the key.
fn invalid(key: &str, rule: impl std::fmt::Display) -> anyhow::Error {
    renda_node::store::StoreError::Invalid(renda_node::validate::ValidationError::new(
        key,
        rule.to_string(),
    ))
    .into()
}

/// Everything a running node is started with.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// The node's data directory (file only; the command line has the global --data-dir). A
    /// relative path is taken from the file's directory, so a configuration and its data can
    /// move together. Created and initialised on the first run.
    #[arg(skip)]
    pub data_dir: Option<PathBuf>,
    /// The node's region code (file only): must match the node in the data directory.
    #[arg(skip)]
    pub region: Option<String>,
    /// The office's name (file only), used when the node is first initialised.
    #[arg(skip)]
    pub name: Option<String>,
    /// The parent's sync address, host:port (file only; on the command line `renda attach`
    /// sets it). Absent at the national node.
    #[arg(skip)]
    pub parent: Option<String>,
    /// Where children dial this node (host:port); omit on a node with no children.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Where the dashboard is served (host:port, e.g. 127.0.0.1:8080); omit for no dashboard.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Where Prometheus metrics are served (host:port; `GET /metrics`); no credential needed,
    /// so bind it to an address only the monitoring system reaches.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Where the Query API for programs is served (host:port; gRPC, `renda.query.v1`, with a
    /// bearer token from `renda credential add`; docs/api.md). Over TLS with the --https-cert
    /// certificate; plain only on loopback.
    #[arg(long = "query-listen", id = "query_listen")]
    pub query_listen: Option<SocketAddr>,
    #[command(flatten)]
    #[serde(default)]
    pub https: HttpsSettings,
    #[command(flatten)]
    #[serde(default)]
    pub sync: LinkSettings,
    #[command(flatten)]
    #[serde(default)]
    pub rollup: RollupSettings,
    #[command(flatten)]
    #[serde(default)]
    pub backup: BackupSettings,
    #[command(flatten)]
    #[serde(default)]
    pub tls: TlsSettings,
}

/// Certificates renewed over the link (`[tls]` in a file): a node asks its parent for a new one
/// after a share of its life; a parent holding an issuing CA signs its children's.
#[derive(Args, Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// A CA directory (`renda ca intermediate`, or the root's in a small federation) this node
    /// signs its children's renewed certificates with, for their regions only. Without it a
    /// child's renewal is refused and its operator issues by hand.
    #[arg(long = "issuing-ca", id = "issuing_ca")]
    pub issuing_ca: Option<PathBuf>,
    /// How long a certificate this node renews for a child lasts, such as 365d (1m to 3650d;
    /// 365d when omitted); never longer than the issuing CA's own.
    #[arg(
        long = "issue-lifetime",
        id = "issue_lifetime",
        requires = "issuing_ca"
    )]
    pub issue_lifetime: Option<String>,
    /// The share of its certificate's life after which this node asks its parent for a new one
    /// (0.1 to 0.95; 0.66 when omitted).
    #[arg(long = "renew-at", id = "renew_at")]
    pub renew_at: Option<f64>,
}

impl TlsSettings {
    fn apply(
        &self,
        source: Source,
        relative: impl Fn(&Path) -> PathBuf,
        config: &mut NodeConfig,
    ) -> Result<()> {
        let key = |k: &str| match source {
            Source::File => format!("tls.{k}"),
            Source::Flags => format!("--{}", k.replace('_', "-")),
        };
        if let Some(share) = self.renew_at {
            if !(0.1..=0.95).contains(&share) {
                return Err(invalid(&key("renew_at"), "须在 0.1 到 0.95 之间"));
            }
            config.renew_at = Some(share);
        }
        let lifetime = match &self.issue_lifetime {
            None => chrono::Duration::days(365),
            Some(text) => {
                let rule = "须为时长，如 365d、90d（1m 到 3650d 之间）";
                let d = humantime::parse_duration(text.trim())
                    .map_err(|_| invalid(&key("issue_lifetime"), rule))?;
                if !(Duration::from_secs(60)..=Duration::from_secs(3650 * 86_400)).contains(&d) {
                    return Err(invalid(&key("issue_lifetime"), rule));
                }
                chrono::Duration::from_std(d).map_err(|_| invalid(&key("issue_lifetime"), rule))?
            }
        };
        match &self.issuing_ca {
            Some(dir) => {
                let ca = renda_node::pki::CertificateAuthority::load(&relative(dir))?;
                config.link.issuing = Some(std::sync::Arc::new(renda_node::pki::Issuing {
                    ca,
                    lifetime,
                }));
            }
            None if self.issue_lifetime.is_some() => {
                return Err(invalid(
                    &key("issuing_ca"),
                    "设置了签发有效期，但没有给出签发 CA 目录",
                ));
            }
            None => {}
        }
        Ok(())
    }
}

/// Backups the running node takes on its own (`[backup]` in a file): none unless a directory
/// is named.
#[derive(Args, Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// Where the node writes a consistent copy of its database on a schedule, named after the
    /// node and the time (restore one with `renda restore --from`). A relative path in a file
    /// is taken from the file's directory. No scheduled backups when omitted.
    #[arg(long = "backup-dir", id = "backup_dir")]
    pub dir: Option<PathBuf>,
    /// How long after one backup the next is taken, such as 24h or 6h (10s to 31d; 24h when
    /// omitted). A node that was stopped past it backs up as soon as it starts.
    #[arg(long = "backup-every", id = "backup_every", requires = "backup_dir")]
    pub every: Option<String>,
    /// How many of the node's backups the directory keeps, the oldest removed first (1 to
    /// 1000; 7 when omitted).
    #[arg(long = "backup-keep", id = "backup_keep", requires = "backup_dir", value_parser = backup_keep)]
    pub keep: Option<u32>,
}

impl BackupSettings {
    /// The schedule these give, or none without a directory.
    pub fn schedule(
        &self,
        source: Source,
        relative: impl Fn(&Path) -> PathBuf,
    ) -> Result<Option<renda_node::backups::BackupSchedule>> {
        // `backup.every` in a file, `--backup-every` on the command line.
        let key = |k: &str| match source {
            Source::File => format!("backup.{k}"),
            Source::Flags => format!("--backup-{k}"),
        };
        let Some(dir) = &self.dir else {
            if self.every.is_some() || self.keep.is_some() {
                return Err(invalid(
                    &key("dir"),
                    "设置了备份周期或保留份数，但没有给出备份目录",
                ));
            }
            return Ok(None);
        };
        let every = match &self.every {
            Some(text) => backup_every(text).map_err(|rule| invalid(&key("every"), rule))?,
            None => Duration::from_secs(86_400),
        };
        let keep = match self.keep {
            Some(n) => within(&BACKUP_KEEP, n).map_err(|rule| invalid(&key("keep"), rule))?,
            None => 7,
        };
        Ok(Some(renda_node::backups::BackupSchedule {
            dir: relative(dir),
            every,
            keep: keep as usize,
        }))
    }
}

/// The certificate the dashboard, metrics and Query API are served with over TLS; required
/// when any of them listens on an address other than loopback.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSettings {
    /// The certificate chain (PEM) to serve the dashboard, metrics and Query API over TLS with:
    /// the office's own, or https.pem from `renda ca issue --server`. Needed for any address
    /// but loopback.
    #[arg(long = "https-cert", id = "https_cert", requires = "https_key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --https-cert.
    #[arg(long = "https-key", id = "https_key", requires = "https_cert")]
    pub key: Option<PathBuf>,
}

/// Link tuning, shared by `run` and `sync` (`[sync]` in a file).
#[derive(Args, Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LinkSettings {
    /// Largest batch of changes sent before waiting for an acknowledgement, in bytes (1024 to
    /// 16777216; 524288 when omitted); smaller batches lose less work when a slow link drops.
    #[arg(long, value_parser = batch_bytes)]
    pub batch_bytes: Option<u32>,
    /// Every record travels in full at least up to this level (national, province, city,
    /// county or township; city when omitted), so that level's dashboard can open the records
    /// behind its numbers. Every node of a federation must use the same value.
    #[arg(long, value_parser = full_record_depth)]
    pub full_record_depth: Option<String>,
    /// Seconds a link may go without hearing from the peer while a reply is due before it is
    /// dropped and redialled (3 to 3600; 30 when omitted); a third of it is the keepalive
    /// interval, so a connection that silently stopped forwarding is found within it too.
    #[arg(long, value_parser = link_timeout_secs)]
    pub link_timeout_secs: Option<u32>,
}

/// What this node's rollup is computed with: staleness and the local duty quotas (`[rollup]`
/// in a file).
#[derive(Args, Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RollupSettings {
    /// A descendant whose rollup is older than this many hours is listed as not synced (1 to
    /// 8784; 72 when omitted).
    #[arg(long, value_parser = stale_after_hours)]
    pub stale_after_hours: Option<u32>,
    /// A node whose last backup is older than this many hours is listed in the fleet view
    /// above it (1 to 8784; 48 when omitted). Judged by each node of its own backups.
    #[arg(long, value_parser = stale_after_hours)]
    pub backup_max_age_hours: Option<u32>,
    /// Activities a delegate group must hold every quarter (1 when omitted). This and the
    /// three below only seed a congress's first duty rules, where it has none; after that the
    /// rules are records, set with `renda quota set`.
    #[arg(long)]
    pub group_activities_per_quarter: Option<u32>,
    /// Activities a delegate group must hold in a year (4 when omitted); seeds only.
    #[arg(long)]
    pub group_activities_per_year: Option<u32>,
    /// Receptions of constituents a delegate must join in a year (3 when omitted); seeds only.
    #[arg(long)]
    pub delegate_receptions_per_year: Option<u32>,
    /// Suggestions a delegate must make or co-sign in a year (1 when omitted); seeds only.
    #[arg(long)]
    pub delegate_suggestions_per_year: Option<u32>,
}

impl LinkSettings {
    /// The link settings these give, the defaults filling what is missing.
    pub fn link_config(&self, source: Source) -> Result<LinkConfig> {
        let mut config = LinkConfig::default();
        if let Some(bytes) = self.batch_bytes {
            let bytes = within(&BATCH_BYTES, bytes)
                .map_err(|rule| invalid(&source.key("sync", "batch_bytes"), rule))?;
            config.max_batch_bytes = bytes as usize;
        }
        if let Some(secs) = self.link_timeout_secs {
            let secs = within(&LINK_TIMEOUT_SECS, secs)
                .map_err(|rule| invalid(&source.key("sync", "link_timeout_secs"), rule))?;
            config.timeout = std::time::Duration::from_secs(u64::from(secs));
        }
        if let Some(depth) = &self.full_record_depth {
            let key = source.key("sync", "full_record_depth");
            let depth = Level::parse(&key, depth).map_err(|e| invalid(&key, e.rule))?;
            config.policy = RoutePolicy {
                full_record_depth: depth,
            };
        }
        Ok(config)
    }
}

impl RollupSettings {
    /// Whether any of the numbers that seed the first duty rules is given.
    pub fn names_quotas(&self) -> bool {
        self.group_activities_per_quarter.is_some()
            || self.group_activities_per_year.is_some()
            || self.delegate_receptions_per_year.is_some()
            || self.delegate_suggestions_per_year.is_some()
    }

    /// The rollup rules these give, the defaults filling what is missing.
    pub fn rules(&self, source: Source) -> Result<RollupRules> {
        let mut rules = RollupRules::default();
        if let Some(hours) = self.stale_after_hours {
            let hours = within(&STALE_AFTER_HOURS, hours)
                .map_err(|rule| invalid(&source.key("rollup", "stale_after_hours"), rule))?;
            rules.stale_after = chrono::Duration::hours(i64::from(hours));
        }
        if let Some(hours) = self.backup_max_age_hours {
            let hours = within(&STALE_AFTER_HOURS, hours)
                .map_err(|rule| invalid(&source.key("rollup", "backup_max_age_hours"), rule))?;
            rules.backup_max_age = chrono::Duration::hours(i64::from(hours));
        }
        let quotas = &mut rules.quotas;
        for (value, slot) in [
            (
                self.group_activities_per_quarter,
                &mut quotas.group_per_quarter,
            ),
            (self.group_activities_per_year, &mut quotas.group_per_year),
            (
                self.delegate_receptions_per_year,
                &mut quotas.delegate_receptions,
            ),
            (
                self.delegate_suggestions_per_year,
                &mut quotas.delegate_suggestions,
            ),
        ] {
            if let Some(value) = value {
                *slot = value;
            }
        }
        Ok(rules)
    }
}

impl RunSettings {
    /// Checks the settings whole and gives the node configuration they describe. `data_dir`
    /// is the command line's; a file names its own, relative to `base` (the file's directory).
    pub fn node_config(&self, source: Source, data_dir: &Path, base: &Path) -> Result<NodeConfig> {
        let relative = |p: &Path| {
            if p.is_relative() {
                base.join(p)
            } else {
                p.to_path_buf()
            }
        };
        let mut config = NodeConfig::new(match (&self.data_dir, source) {
            (Some(dir), _) => relative(dir),
            (None, Source::Flags) => data_dir.to_path_buf(),
            (None, Source::File) => return Err(invalid("data_dir", "配置文件须写明 data_dir")),
        });
        if source == Source::File {
            let region = self
                .region
                .as_deref()
                .ok_or_else(|| invalid("region", "配置文件须写明 region"))?;
            let region =
                RegionCode::parse("region", region).map_err(|e| invalid("region", e.rule))?;
            if !region.has_congress() {
                return Err(invalid(
                    "region",
                    format!("{region} 没有人民代表大会，不能作为节点"),
                ));
            }
            let name = self.name.as_deref().unwrap_or("").trim();
            if name.is_empty() {
                return Err(invalid("name", "节点名称不能为空"));
            }
            if let Some(parent) = &self.parent {
                renda_node::validate::host_port("parent", parent)
                    .map_err(|e| invalid("parent", e.rule))?;
                if region == RegionCode::NATIONAL {
                    return Err(invalid("parent", "全国人大节点没有上级"));
                }
            }
            if self.listen.is_none()
                && self.parent.is_none()
                && self.http.is_none()
                && self.query_listen.is_none()
            {
                return Err(invalid(
                    "listen",
                    "没有可运行的服务：至少要有 listen、http、query_listen 或 parent 之一",
                ));
            }
            config.init = Some(NewNode {
                region,
                name: name.to_string(),
            });
            config.parent = self.parent.clone();
        }
        config.listen = self.listen;
        config.http = self.http;
        config.metrics = self.metrics;
        config.query = self.query_listen;
        config.https = match (&self.https.cert, &self.https.key) {
            (Some(cert), Some(key)) => Some(HttpsFiles {
                cert: relative(cert),
                key: relative(key),
            }),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(invalid(&source.key("https", "cert"), "须与私钥一同给出"));
            }
            (Some(_), None) => {
                return Err(invalid(&source.key("https", "key"), "须与证书一同给出"));
            }
        };
        config.link = self.sync.link_config(source)?;
        config.rollup = self.rollup.rules(source)?;
        config.backup = self.backup.schedule(source, relative)?;
        self.tls.apply(source, relative, &mut config)?;
        Ok(config)
    }
}

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<NodeConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let settings: RunSettings = toml::from_str(&text).map_err(|e| {
        invalid(
            "config",
            // The full message quotes the offending line, so it names the key.
            format!("{}: {}", path.display(), e.to_string().trim()),
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    settings.node_config(Source::File, base, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_county_configuration_loads_with_defaults() {
        let (dir, path) = write(
            r#"
            data_dir = "data"
            region = "330411000000"
            name = "秀洲区人大常委会"
            parent = "city.example:7700"
            listen = "0.0.0.0:7700"
            [rollup]
            stale_after_hours = 48
            "#,
        );
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.data_dir, dir.path().join("data"));
        assert_eq!(
            loaded.init.as_ref().unwrap().region.as_str(),
            "330411000000"
        );
        assert_eq!(loaded.link.policy.full_record_depth, Level::City);
        assert_eq!(loaded.rollup.stale_after, chrono::Duration::hours(48));
        assert_eq!(loaded.rollup.quotas.group_per_year, 4);
    }

    #[test]
    fn renewal_is_read_from_the_tls_section() {
        let node = "data_dir = 'data'\nregion = '330411000000'\nname = '秀洲区'\nlisten = '127.0.0.1:7700'\n";
        let (dir, path) = write(&format!(
            "{node}[tls]\nissuing_ca = 'ca'\nissue_lifetime = '90d'\nrenew_at = 0.5\n"
        ));
        renda_node::pki::CertificateAuthority::create("CA", 30)
            .unwrap()
            .save(&dir.path().join("ca"))
            .unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.renew_at, Some(0.5));
        let issuing = config.link.issuing.unwrap();
        assert_eq!(issuing.lifetime, chrono::Duration::days(90));
        let (_dir, path) = write(node);
        let config = load(&path).unwrap();
        assert_eq!(config.renew_at, Some(renda_node::renewal::DEFAULT_RENEW_AT));
        assert!(config.link.issuing.is_none());
        for (section, key) in [
            ("renew_at = 2.0", "tls.renew_at"),
            ("issue_lifetime = '90d'", "tls.issuing_ca"),
            ("issuing_ca = 'nowhere'", "nowhere"),
        ] {
            let (_dir, path) = write(&format!("{node}[tls]\n{section}\n"));
            let err = format!("{:#}", load(&path).expect_err(section));
            assert!(err.contains(key), "{section}: {err}");
        }
    }

    #[test]
    fn scheduled_backups_are_read_from_the_backup_section() {
        let node = "data_dir = 'data'\nregion = '330411101000'\nname = '王店镇'\nlisten = '127.0.0.1:7700'\n";
        let (dir, path) = write(&format!(
            "{node}[backup]\ndir = 'backups'\nevery = '6h'\nkeep = 3\n"
        ));
        let schedule = load(&path).unwrap().backup.unwrap();
        assert_eq!(schedule.dir, dir.path().join("backups"));
        assert_eq!(schedule.every, Duration::from_secs(6 * 3600));
        assert_eq!(schedule.keep, 3);
        let (_dir, path) = write(&format!("{node}[backup]\ndir = 'backups'\n"));
        let schedule = load(&path).unwrap().backup.unwrap();
        assert_eq!(
            (schedule.every, schedule.keep),
            (Duration::from_secs(86_400), 7)
        );
        let (_dir, path) = write(node);
        assert_eq!(
            load(&path).unwrap().backup,
            None,
            "no directory, no backups"
        );
        for (section, key) in [
            ("dir = 'b'\nevery = '5s'", "backup.every"),
            ("dir = 'b'\nevery = 'daily'", "backup.every"),
            ("dir = 'b'\nkeep = 0", "backup.keep"),
            ("every = '6h'", "backup.dir"),
            ("dir = 'b'\nfrequency = '6h'", "frequency"),
        ] {
            let (_dir, path) = write(&format!("{node}[backup]\n{section}\n"));
            let err = format!("{:#}", load(&path).expect_err(section));
            assert!(err.contains(key), "{section}: {err}");
        }
    }

    #[test]
    fn bad_configurations_name_the_key() {
        for (text, key) in [
            (
                "data_dir='d'\nregion='3304'\nname='x'\nlisten='127.0.0.1:1'",
                "region",
            ),
            (
                "data_dir='d'\nregion='330411001000'\nname='x'\nlisten='127.0.0.1:1'",
                "region",
            ),
            (
                "data_dir='d'\nregion='330411000000'\nname='x'\nlisten='nowhere'",
                "listen",
            ),
            (
                "data_dir='d'\nregion='330411000000'\nname='x'\nlisten='127.0.0.1:1'\ncolour='red'",
                "colour",
            ),
            (
                "data_dir='d'\nregion='330411000000'\nname='x'\nlisten='127.0.0.1:1'\n[sync]\nfull_record_depth='planet'",
                "sync.full_record_depth",
            ),
            ("data_dir='d'\nregion='330411000000'\nname='x'", "listen"),
            (
                "data_dir='d'\nregion='000000000000'\nname='x'\nparent='a:1'",
                "parent",
            ),
        ] {
            let (_dir, path) = write(text);
            let err = format!("{:#}", load(&path).expect_err(text));
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    /// The command line and the file are one type: the same setting, given either way, makes
    /// the same node configuration, and a bad value names the key as each user wrote it.
    #[test]
    fn flags_and_file_are_one_settings_type() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            settings: RunSettings,
        }
        let flags = Flags::try_parse_from([
            "run",
            "--listen",
            "127.0.0.1:7700",
            "--batch-bytes",
            "2048",
            "--delegate-receptions-per-year",
            "5",
        ])
        .unwrap()
        .settings;
        let file: RunSettings = toml::from_str(
            "listen = '127.0.0.1:7700'\n[sync]\nbatch_bytes = 2048\n[rollup]\ndelegate_receptions_per_year = 5",
        )
        .unwrap();
        let dir = Path::new("d");
        let (a, b) = (
            flags.node_config(Source::Flags, dir, dir).unwrap(),
            file.node_config(Source::Flags, dir, dir).unwrap(),
        );
        assert_eq!(a.link.max_batch_bytes, 2048);
        assert_eq!(a.link.max_batch_bytes, b.link.max_batch_bytes);
        assert_eq!(a.rollup, b.rollup);
        assert_eq!(a.rollup.quotas.delegate_receptions, 5);
        assert_eq!(a.listen, b.listen);

        // A bad flag is refused by clap, before anything is opened, with the same rule a file's
        // value is held to.
        let refused = Flags::try_parse_from(["run", "--batch-bytes", "10"])
            .err()
            .expect("a batch of 10 bytes")
            .to_string();
        assert!(
            refused.contains("--batch-bytes") && refused.contains("1024 到 16777216"),
            "{refused}"
        );
        let file: RunSettings = toml::from_str("[sync]\nbatch_bytes = 10").unwrap();
        let err = format!(
            "{:#}",
            file.node_config(Source::Flags, dir, dir).unwrap_err()
        );
        assert!(
            err.contains("--batch-bytes") && err.contains("1024 到 16777216"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            file.node_config(Source::File, dir, dir).unwrap_err()
        );
        assert!(err.contains("data_dir"), "{err}");
    }
}
