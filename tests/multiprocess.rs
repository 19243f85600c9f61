//! A federation of real `renda run` processes started from deploy/'s configuration files, one
//! per level plus a second township, every link mutual TLS with certificates from `renda ca`.
//! Clerks write opinions through the CLI at both townships; half-way the county hub is killed
//! with SIGKILL and restarted while the writes go on. Afterwards every replica converges and no
//! write the CLI acknowledged is lost.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::procs::{
    FEDERATION as SPECS, Running, backups_into, backups_taken, ok, opinion_ids, renda, start,
    wait_for,
};

const CITY: usize = 2;
const COUNTY: usize = 3;
const TOWNSHIPS: [usize; 2] = [4, 5];

#[test]
fn a_federation_of_processes_from_deploys_configs_survives_a_killed_hub() {
    let root = tempfile::tempdir().unwrap();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config");
    let mut ports = common::free_ports(SPECS.len() + 1);
    let metrics_port = ports.pop().expect("one port per node and one for metrics");

    // The federation's CA, and one certificate per node in its data directory's tls/.
    let ca = root.path().join("ca");
    ok(&["ca", "init", "--dir", ca.to_str().unwrap()], root.path());
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
        let text = std::fs::read_to_string(deploy.join(format!("{}.toml", spec.level)))
            .expect("deploy/config has a file for every level");
        let mut table: toml::Table = toml::from_str(&text).expect("deploy's file parses");
        table.insert("data_dir".into(), data.to_str().unwrap().into());
        table.insert("region".into(), spec.region.into());
        table.insert("name".into(), spec.name.into());
        table.remove("http");
        table.remove("metrics");
        // The shipped files serve HTTPS with certificates under /etc/renda; these nodes serve
        // their metrics on loopback, where plain HTTP is allowed.
        assert!(
            table.contains_key("https") || spec.level == "township",
            "{}.toml serves its dashboard over HTTPS",
            spec.level
        );
        table.remove("https");
        backups_into(&mut table, &data);
        if spec.listens {
            assert!(table.contains_key("listen"), "{}.toml listens", spec.level);
            table.insert("listen".into(), format!("127.0.0.1:{}", ports[i]).into());
        } else {
            assert!(!table.contains_key("listen"), "a township only dials out");
        }
        match spec.parent {
            Some(p) => {
                assert!(
                    table.contains_key("parent"),
                    "{}.toml names a parent",
                    spec.level
                );
                table.insert("parent".into(), format!("127.0.0.1:{}", ports[p]).into());
            }
            None => assert!(!table.contains_key("parent")),
        }
        if i == COUNTY {
            table.insert("metrics".into(), format!("127.0.0.1:{metrics_port}").into());
        }
        let path = root
            .path()
            .join(format!("{}-{}.toml", spec.level, spec.region));
        std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
        configs.push((path, data));
    }
    let log = |i: usize| root.path().join(format!("node-{i}.log"));
    let mut running: Vec<Option<Running>> = configs
        .iter()
        .enumerate()
        .map(|(i, (config, _))| Some(start(config, &log(i))))
        .collect();
    // Every node initialises itself from its file on the first run.
    for (i, (_, data)) in configs.iter().enumerate() {
        let what = format!("node {} to initialise", SPECS[i].region);
        wait_for(&what, Duration::from_secs(30), || {
            let status = renda(&["status", "--json"], data);
            if !status.status.success() && running[i].as_mut().is_some_and(|r| r.exited()) {
                panic!(
                    "node {} exited while starting: {}\nits log:\n{}",
                    SPECS[i].region,
                    String::from_utf8_lossy(&status.stderr),
                    std::fs::read_to_string(log(i)).unwrap_or_default()
                );
            }
            status.status.success()
        });
        let status: serde_json::Value =
            serde_json::from_str(&ok(&["status", "--json"], data)).unwrap();
        assert_eq!(status["node"]["region"], SPECS[i].region);
        assert_eq!(status["certificate"]["installed"], true);
    }

    // Clerks write at both townships; the county is killed half-way and restarted.
    let mut written = BTreeSet::new();
    let per_township = 30;
    for n in 0..per_township {
        if n == per_township / 2 {
            // Dropping it sends SIGKILL: no chance to finish a write or a batch.
            drop(running[COUNTY].take());
        }
        if n == per_township / 2 + 5 {
            running[COUNTY] = Some(start(&configs[COUNTY].0, &log(COUNTY)));
        }
        for &t in &TOWNSHIPS {
            let id = ok(
                &[
                    "opinion",
                    "add",
                    "--source",
                    "扫码反映",
                    "--content",
                    &format!("{} 第{n}条民情：村道路灯不亮", SPECS[t].name),
                ],
                &configs[t].1,
            );
            written.insert(id.trim().to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(written.len(), per_township * TOWNSHIPS.len());

    // Every acknowledged write reaches the county and the city (the full-record depth).
    for node in [COUNTY, CITY] {
        wait_for(
            &format!("{} to hold every opinion", SPECS[node].name),
            Duration::from_secs(90),
            || opinion_ids(&configs[node].1) == written,
        );
    }
    // Each township holds its own opinions and not its neighbour's.
    for &t in &TOWNSHIPS {
        let held = opinion_ids(&configs[t].1);
        assert_eq!(held.len(), per_township, "{}", SPECS[t].name);
        assert!(held.is_subset(&written));
    }
    // Every replica of a record is the same record.
    let sample: Vec<&String> = written.iter().step_by(7).collect();
    for id in sample {
        let home = TOWNSHIPS
            .iter()
            .copied()
            .find(|&t| opinion_ids(&configs[t].1).contains(id))
            .expect("a home township");
        let at_home = ok(&["opinion", "show", id, "--json"], &configs[home].1);
        for node in [COUNTY, CITY] {
            assert_eq!(
                ok(&["opinion", "show", id, "--json"], &configs[node].1),
                at_home,
                "{id} at {}",
                SPECS[node].name
            );
        }
    }
    // The national node holds no township record, but its rollup counts every opinion.
    // Each node's own rollup, read at that node: where the count stopped, if it did.
    let counted = |i: usize| -> Option<u64> {
        let out = renda(
            &["rollup", "--region", SPECS[i].region, "--json"],
            &configs[i].1,
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|r| r["total"]["opinions"]["received"].as_u64())
    };
    let started = std::time::Instant::now();
    while counted(0) != Some(written.len() as u64) {
        if started.elapsed() > Duration::from_secs(90) {
            let mut report = String::new();
            for (i, spec) in SPECS.iter().enumerate() {
                let status = renda(&["status"], &configs[i].1);
                report += &format!(
                    "== {} counts {:?}\n{}\n-- its log:\n{}\n",
                    spec.name,
                    counted(i),
                    String::from_utf8_lossy(&status.stdout),
                    std::fs::read_to_string(log(i)).unwrap_or_default()
                );
            }
            panic!(
                "timed out waiting for the national rollup to count {} opinions:\n{report}",
                written.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(opinion_ids(&configs[0].1).is_empty());

    // The restarted county reports its links to Prometheus, in text Prometheus's own parser
    // reads (tests/python/metrics_scrape.py): every sample names the county, each township's
    // records came in, and the records it holds are those the townships wrote.
    let scrape = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/metrics_scrape.py"
        ))
        .args(["--url", &format!("http://127.0.0.1:{metrics_port}/metrics")])
        .output()
        .expect("run python3 (scripts/test.sh installs prometheus-client)");
    assert!(
        scrape.status.success(),
        "{}",
        String::from_utf8_lossy(&scrape.stderr)
    );
    let families: serde_json::Value = serde_json::from_slice(&scrape.stdout).unwrap();
    let samples = |family: &str, kind: &str| -> Vec<serde_json::Value> {
        assert_eq!(families[family]["type"], kind, "{family}: {families}");
        families[family]["samples"].as_array().unwrap().clone()
    };
    for family in families.as_object().unwrap().values() {
        for sample in family["samples"].as_array().unwrap() {
            assert_eq!(sample["labels"]["node"], "330411000000", "{sample}");
        }
    }
    let records_in = samples("renda_sync_records", "counter");
    for township in ["330411101000", "330411102000"] {
        let came = records_in
            .iter()
            .find(|s| {
                s["name"] == "renda_sync_records_total"
                    && s["labels"]["peer"] == township
                    && s["labels"]["direction"] == "in"
            })
            .unwrap_or_else(|| panic!("no records in from {township}: {families}"));
        assert!(came["value"].as_f64().unwrap() > 0.0, "{came}");
    }
    let opinions = samples("renda_store_records", "gauge")
        .into_iter()
        .find(|s| s["labels"]["kind"] == "opinion")
        .unwrap_or_else(|| panic!("no opinion count: {families}"));
    assert_eq!(
        opinions["value"].as_f64(),
        Some(written.len() as f64),
        "{opinions}"
    );

    // Nothing was at risk: no process logged an ERROR.
    drop(running);
    for (i, spec) in SPECS.iter().enumerate() {
        let text = std::fs::read_to_string(log(i)).unwrap_or_default();
        assert!(
            !text.lines().any(|l| l.contains(" ERROR ")),
            "{} logged an ERROR:\n{text}",
            spec.name
        );
        // Each node kept its deployed backup schedule, into its own directory.
        assert!(
            backups_taken(&configs[i].1) > 0,
            "{} took no backup in its own directory",
            spec.name
        );
    }
}
