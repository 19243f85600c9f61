//! Chaos: a five-level federation of separate `renda run` processes (national, province, city,
//! county and two townships, every link mutual TLS) with a TCP proxy on each link, while clerks
//! write through the CLI at both townships and the county. A seeded schedule cuts links, freezes
//! their open connections (new ones pass, as after an expired NAT mapping), stalls them, and
//! kills nodes with SIGKILL at random points and restarts them. Then everything heals, and:
//!
//! - every write the CLI acknowledged is held exactly where its routes say, and nowhere else;
//! - every replica of a record is the same record;
//! - every node's rollup counts exactly the opinions of its subtree;
//! - every database passes `renda check`, and no process logged an ERROR;
//! - every node kept its deployed backup schedule, backing up into the test's directory.
//!
//! The seed is printed; `RENDA_SEED=<seed>` replays a schedule. The default run is a short
//! schedule; `scripts/test.sh --soak` adds a long one. The time from healing to the national
//! rollup matching is printed (docs/benchmarks.md records it).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::procs::{
    FEDERATION as SPECS, Running, backups_into, backups_taken, ok, record_ids, renda, start,
    wait_for,
};
use common::proxy::{Proxy, State};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const CITY: usize = 2;
const COUNTY: usize = 3;
const TOWNSHIPS: [usize; 2] = [4, 5];

/// Seconds a link may hear nothing while a reply is due: short, so a frozen link is redialled
/// within the schedule.
const LINK_TIMEOUT_SECS: i64 = 3;

/// A write the CLI acknowledged, and the nodes its routes name.
struct Acked {
    kind: &'static str,
    home: usize,
    holders: BTreeSet<usize>,
}

struct Federation {
    root: tempfile::TempDir,
    configs: Vec<(PathBuf, PathBuf)>,
    running: Vec<Option<Running>>,
    /// The proxy on each child's link to its parent, by the child's index.
    proxies: BTreeMap<usize, Proxy>,
    _runtime: tokio::runtime::Runtime,
}

impl Federation {
    fn data(&self, i: usize) -> &Path {
        &self.configs[i].1
    }

    fn log(&self, i: usize) -> PathBuf {
        self.root.path().join(format!("node-{i}.log"))
    }

    fn start(&mut self, i: usize) {
        self.running[i] = Some(start(&self.configs[i].0, &self.log(i)));
    }

    fn kill(&mut self, i: usize) {
        // Dropping it sends SIGKILL: no chance to finish a write or a batch.
        self.running[i] = None;
    }
}

fn federation() -> Federation {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config");
    let ports = common::free_ports(SPECS.len());
    let ca = root.path().join("ca");
    ok(&["ca", "init", "--dir", ca.to_str().unwrap()], root.path());
    // One proxy per link, in front of the parent's port.
    let mut proxies = BTreeMap::new();
    for (i, spec) in SPECS.iter().enumerate() {
        if let Some(p) = spec.parent {
            let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", ports[p]).parse().unwrap();
            proxies.insert(i, runtime.block_on(Proxy::start(None, upstream)));
        }
    }
    let mut configs = Vec::new();
    for (i, spec) in SPECS.iter().enumerate() {
        let data = root.path().join(format!("{}-{}", spec.level, spec.region));
        ok(
            &[
                "ca",
                "issue",
                "--ca",
                ca.to_str().unwrap(),
                "--region",
                spec.region,
                "--name",
                spec.name,
                "--out",
                data.join("tls").to_str().unwrap(),
            ],
            root.path(),
        );
        let text = std::fs::read_to_string(deploy.join(format!("{}.toml", spec.level))).unwrap();
        let mut table: toml::Table = toml::from_str(&text).unwrap();
        table.insert("data_dir".into(), data.to_str().unwrap().into());
        table.insert("region".into(), spec.region.into());
        table.insert("name".into(), spec.name.into());
        for key in ["http", "metrics", "https"] {
            table.remove(key);
        }
        backups_into(&mut table, &data);
        if table.contains_key("listen") {
            table.insert("listen".into(), format!("127.0.0.1:{}", ports[i]).into());
        }
        if spec.parent.is_some() {
            table.insert("parent".into(), proxies[&i].addr.to_string().into());
        }
        let sync = table
            .entry("sync")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap();
        sync.insert("link_timeout_secs".into(), LINK_TIMEOUT_SECS.into());
        let path = root
            .path()
            .join(format!("{}-{}.toml", spec.level, spec.region));
        std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
        configs.push((path, data));
    }
    let mut fed = Federation {
        root,
        configs,
        running: SPECS.iter().map(|_| None).collect(),
        proxies,
        _runtime: runtime,
    };
    for i in 0..SPECS.len() {
        fed.start(i);
    }
    for (i, spec) in SPECS.iter().enumerate() {
        let data = fed.data(i).to_path_buf();
        wait_for(
            &format!("{} to initialise", spec.name),
            Duration::from_secs(30),
            || renda(&["status", "--json"], &data).status.success(),
        );
    }
    fed
}

/// One clerk's write through the CLI, with its id; `None` if the CLI did not acknowledge it.
fn write(fed: &Federation, at: usize, n: usize) -> Option<(String, Acked)> {
    let data = fed.data(at);
    let (kind, out) = if at == COUNTY && n.is_multiple_of(3) {
        (
            "notice",
            renda(
                &[
                    "notice",
                    "add",
                    "--title",
                    &format!("关于第{n}次代表活动的通知"),
                    "--body",
                    "请各乡镇人大按时组织代表进站。",
                ],
                data,
            ),
        )
    } else {
        (
            "opinion",
            renda(
                &[
                    "opinion",
                    "add",
                    "--source",
                    "扫码反映",
                    "--content",
                    &format!("{} 第{n}条民情：村道路灯不亮", SPECS[at].name),
                ],
                data,
            ),
        )
    };
    if !out.status.success() {
        return None;
    }
    let id = String::from_utf8(out.stdout).ok()?.trim().to_string();
    // Where the routes send it: an opinion up to the city (the full-record depth) through
    // its county; a county's notice also down to its townships.
    let mut holders: BTreeSet<usize> = BTreeSet::from([at, COUNTY, CITY]);
    if kind == "notice" {
        holders.extend(TOWNSHIPS);
    }
    assert_eq!(id.len(), 26, "the CLI prints the new record's id: {id:?}");
    Some((
        id,
        Acked {
            kind,
            home: at,
            holders,
        },
    ))
}

fn chaos(seconds: u64) {
    let seed: u64 = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos seed: {seed} (replay with RENDA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fed = federation();
    let mut acked: BTreeMap<String, Acked> = BTreeMap::new();
    let writers = [TOWNSHIPS[0], TOWNSHIPS[1], COUNTY];
    // What is broken now, and when it heals: links by child index, nodes by index.
    let mut broken_links: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut dead_nodes: BTreeMap<usize, Instant> = BTreeMap::new();
    let (mut cuts, mut freezes, mut stalls, mut kills) = (0, 0, 0, 0);
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        let now = Instant::now();
        for (child, until) in broken_links.clone() {
            if until <= now {
                fed.proxies[&child].set(State::Pass);
                broken_links.remove(&child);
            }
        }
        for (node, until) in dead_nodes.clone() {
            if until <= now {
                fed.start(node);
                dead_nodes.remove(&node);
            }
        }
        let at = writers[rng.random_range(0..writers.len())];
        n += 1;
        if let Some((id, a)) = write(&fed, at, n) {
            acked.insert(id, a);
        }
        match rng.random_range(0..100) {
            0..8 => {
                let child = rng.random_range(1..SPECS.len());
                fed.proxies[&child].set(State::Cut);
                broken_links.insert(
                    child,
                    now + Duration::from_millis(rng.random_range(500..3000)),
                );
                cuts += 1;
            }
            8..14 => {
                let child = rng.random_range(1..SPECS.len());
                fed.proxies[&child].freeze_open();
                freezes += 1;
            }
            14..19 => {
                let child = rng.random_range(1..SPECS.len());
                fed.proxies[&child].set(State::Stall);
                broken_links.insert(
                    child,
                    now + Duration::from_millis(rng.random_range(500..4000)),
                );
                stalls += 1;
            }
            19..25 => {
                let node = rng.random_range(0..SPECS.len());
                if let std::collections::btree_map::Entry::Vacant(e) = dead_nodes.entry(node) {
                    fed.kill(node);
                    e.insert(now + Duration::from_millis(rng.random_range(300..3000)));
                    kills += 1;
                }
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(20..150)));
    }
    println!(
        "chaos: {} writes acknowledged, {cuts} cuts, {freezes} freezes, {stalls} stalls, {kills} SIGKILLs in {seconds} s",
        acked.len()
    );

    // Heal: every link passes, every node runs.
    for proxy in fed.proxies.values() {
        proxy.set(State::Pass);
    }
    for node in std::mem::take(&mut dead_nodes).into_keys() {
        fed.start(node);
    }
    let healed = Instant::now();

    // Every acknowledged write reaches exactly the nodes its routes name.
    for (i, spec) in SPECS.iter().enumerate() {
        for kind in ["opinion", "notice"] {
            let expected: BTreeSet<String> = acked
                .iter()
                .filter(|(_, a)| a.kind == kind && a.holders.contains(&i))
                .map(|(id, _)| id.clone())
                .collect();
            let data = fed.data(i).to_path_buf();
            let mut held = BTreeSet::new();
            wait_for(
                &format!("{} to hold every {kind} its routes name", spec.name),
                Duration::from_secs(120),
                || {
                    held = record_ids(&data, kind);
                    expected.is_subset(&held)
                },
            );
            let acked_ids: BTreeSet<&String> = acked.keys().collect();
            let extra: Vec<&String> = held
                .iter()
                .filter(|id| acked_ids.contains(id) && !expected.contains(*id))
                .collect();
            assert!(
                extra.is_empty(),
                "{} holds {kind}s its routes do not name: {extra:?}",
                spec.name
            );
        }
    }
    println!(
        "chaos: every write where its routes say, {:.1} s after healing",
        healed.elapsed().as_secs_f64()
    );

    // Every node's rollup counts exactly its subtree's opinions.
    let opinions = acked.values().filter(|a| a.kind == "opinion");
    let in_subtree = |i: usize| {
        let region = SPECS[i].region;
        opinions
            .clone()
            .filter(|a| {
                let mut at = Some(a.home);
                while let Some(node) = at {
                    if SPECS[node].region == region {
                        return true;
                    }
                    at = SPECS[node].parent;
                }
                false
            })
            .count()
    };
    for i in (0..SPECS.len()).rev() {
        let want = in_subtree(i);
        let data = fed.data(i).to_path_buf();
        let mut got = serde_json::Value::Null;
        wait_for(
            &format!("{}'s rollup to count {want} opinions", SPECS[i].name),
            Duration::from_secs(120),
            || {
                let out = renda(&["rollup", "--json"], &data);
                got = serde_json::from_slice(&out.stdout).unwrap_or_default();
                out.status.success() && got["total"]["opinions"]["received"] == want
            },
        );
    }
    println!(
        "chaos: the national rollup matched {:.1} s after healing",
        healed.elapsed().as_secs_f64()
    );

    // Every replica of a record is the same record.
    for (id, a) in &acked {
        let at_home = ok(&[a.kind, "show", id, "--json"], fed.data(a.home));
        for &holder in &a.holders {
            let there = ok(&[a.kind, "show", id, "--json"], fed.data(holder));
            assert_eq!(
                there, at_home,
                "{id} at {} differs from its home",
                SPECS[holder].name
            );
        }
    }

    // Stop everything; every database is sound and nothing was logged as at risk.
    for i in 0..SPECS.len() {
        fed.kill(i);
    }
    for (i, spec) in SPECS.iter().enumerate() {
        let out = renda(&["check"], fed.data(i));
        assert!(
            out.status.success(),
            "{}: {}",
            spec.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(fed.log(i)).unwrap_or_default();
        assert!(
            !text.lines().any(|l| l.contains(" ERROR ")),
            "{} logged an ERROR (seed {seed}):\n{text}",
            spec.name
        );
        // Each node kept its deployed backup schedule, into its own directory.
        assert!(
            backups_taken(fed.data(i)) > 0,
            "{} took no backup in its own directory",
            spec.name
        );
    }
}

#[test]
fn a_federation_survives_cut_frozen_and_stalled_links_and_killed_nodes() {
    chaos(45);
}

/// The long schedule: `scripts/test.sh --soak`.
#[test]
#[ignore]
fn a_federation_survives_ten_minutes_of_chaos() {
    chaos(600);
}
