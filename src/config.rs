//! `renda run --config FILE`: everything a node needs to run, in one TOML file, as `deploy/`
//! ships one per level. The file is checked whole before anything is opened: an unknown key, a
//! malformed region or address is an error naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use renda_node::region::{Level, RegionCode};
use serde::Deserialize;

use crate::cli::{LinkArgs, RollupRulesArgs, RunArgs};

/// A node's configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's data directory; created and initialised on the first run.
    pub data_dir: PathBuf,
    /// The node's region code: must match the node in `data_dir`, if there is one.
    pub region: String,
    /// The office's name, used when the node is first initialised.
    pub name: String,
    /// The parent's sync address (`host:port`); absent at the national node.
    #[serde(default)]
    pub parent: Option<String>,
    /// Where children dial this node; absent on a township.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Where the dashboard is served.
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Where `/metrics` is served for Prometheus.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// The certificate the dashboard and metrics are served with over HTTPS; required when
    /// either listens on an address other than loopback.
    #[serde(default)]
    pub https: Option<HttpsSection>,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub rollup: RollupSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSection {
    /// The certificate chain in PEM (the office's own, or `renda ca issue --server`'s https.pem).
    pub cert: PathBuf,
    /// Its private key in PEM.
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSection {
    pub batch_bytes: u32,
    /// Seconds without a word from the peer, while a reply is due, before a link is redialled.
    pub link_timeout_secs: u32,
    /// Every node of the federation must use the same value.
    pub full_record_depth: String,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            batch_bytes: 512 * 1024,
            link_timeout_secs: 30,
            full_record_depth: "city".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollupSection {
    pub stale_after_hours: u32,
    pub group_activities_per_quarter: u32,
    pub group_activities_per_year: u32,
    pub delegate_receptions_per_year: u32,
    pub delegate_suggestions_per_year: u32,
}

impl Default for RollupSection {
    fn default() -> Self {
        RollupSection {
            stale_after_hours: 72,
            group_activities_per_quarter: 1,
            group_activities_per_year: 4,
            delegate_receptions_per_year: 3,
            delegate_suggestions_per_year: 1,
        }
    }
}

/// A configuration that broke a rule, naming the key.
fn invalid(key: &str, rule: impl std::fmt::Display) -> anyhow::Error {
    renda_node::store::StoreError::Invalid(renda_node::validate::ValidationError::new(
        key,
        rule.to_string(),
    ))
    .into()
}

/// What a checked configuration file says.
pub struct Loaded {
    pub data_dir: PathBuf,
    pub region: RegionCode,
    pub name: String,
    pub parent: Option<String>,
    pub run: RunArgs,
}

/// Reads and checks `path`. A relative `data_dir` is taken from the file's directory, so a
/// configuration and its data can move together.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let config: NodeConfig = toml::from_str(&text).map_err(|e| {
        invalid(
            "config",
            // The full message quotes the offending line, so it names the key.
            format!("{}: {}", path.display(), e.to_string().trim()),
        )
    })?;
    let region =
        RegionCode::parse("region", &config.region).map_err(|e| invalid("region", e.rule))?;
    if !region.has_congress() {
        return Err(invalid(
            "region",
            format!("{region} 没有人民代表大会，不能作为节点"),
        ));
    }
    if config.name.trim().is_empty() {
        return Err(invalid("name", "节点名称不能为空"));
    }
    let depth = Level::parse("sync.full_record_depth", &config.sync.full_record_depth)
        .map_err(|e| invalid("sync.full_record_depth", e.rule))?;
    if !(1024..=16 * 1024 * 1024).contains(&config.sync.batch_bytes) {
        return Err(invalid("sync.batch_bytes", "须在 1024 到 16777216 之间"));
    }
    if !(3..=3600).contains(&config.sync.link_timeout_secs) {
        return Err(invalid("sync.link_timeout_secs", "须在 3 到 3600 之间"));
    }
    if !(1..=24 * 366).contains(&config.rollup.stale_after_hours) {
        return Err(invalid("rollup.stale_after_hours", "须在 1 到 8784 之间"));
    }
    if let Some(parent) = &config.parent {
        renda_node::validate::host_port("parent", parent).map_err(|e| invalid("parent", e.rule))?;
    }
    if region == RegionCode::NATIONAL && config.parent.is_some() {
        return Err(invalid("parent", "全国人大节点没有上级"));
    }
    if config.listen.is_none() && config.parent.is_none() && config.http.is_none() {
        return Err(invalid(
            "listen",
            "没有可运行的服务：至少要有 listen、http 或 parent 之一",
        ));
    }
    let data_dir = if config.data_dir.is_relative() {
        path.parent()
            .unwrap_or(Path::new("."))
            .join(&config.data_dir)
    } else {
        config.data_dir.clone()
    };
    // A relative path in the file is taken from the file's directory, like `data_dir`.
    let relative = |p: &Path| {
        if p.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(p)
        } else {
            p.to_path_buf()
        }
    };
    let r = &config.rollup;
    Ok(Loaded {
        data_dir,
        region,
        name: config.name.trim().to_string(),
        parent: config.parent.clone(),
        run: RunArgs {
            config: None,
            listen: config.listen,
            http: config.http,
            metrics: config.metrics,
            https_cert: config.https.as_ref().map(|h| relative(&h.cert)),
            https_key: config.https.as_ref().map(|h| relative(&h.key)),
            link: LinkArgs {
                batch_bytes: config.sync.batch_bytes,
                full_record_depth: depth,
                link_timeout_secs: config.sync.link_timeout_secs,
                rollup: RollupRulesArgs {
                    stale_after_hours: r.stale_after_hours,
                    group_activities_per_quarter: r.group_activities_per_quarter,
                    group_activities_per_year: r.group_activities_per_year,
                    delegate_receptions_per_year: r.delegate_receptions_per_year,
                    delegate_suggestions_per_year: r.delegate_suggestions_per_year,
                },
            },
        },
    })
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
        assert_eq!(loaded.region.as_str(), "330411000000");
        assert_eq!(loaded.run.link.full_record_depth, Level::City);
        assert_eq!(loaded.run.link.rollup.stale_after_hours, 48);
        assert_eq!(loaded.run.link.rollup.group_activities_per_year, 4);
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
            let err = format!("{:#}", load(&path).err().expect(text));
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
