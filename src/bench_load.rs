//! `renda bench load`: a live federation under a sustained write load, measured as its users
//! see it.
//!
//! It takes the nodes a `renda bench query --keep` left (a city, two counties, their townships),
//! runs each as its own `renda run` process of the binary under test, and then, for a fixed time,
//! records opinions at a steady rate spread over several townships through `renda opinion add`,
//! as a clerk's office does. Meanwhile it loads the city's dashboard and calls its Query service
//! in a loop, and watches the city's own rollup to see when each write shows there.
//!
//! Everything it measures is outside the binary under test (process wall times, HTTP and gRPC
//! round trips, the nodes' CPU time from `/proc`), so the same command measures an older release
//! beside this one: `--binary` names the release to run.

// Measures the first Query service, whose JSON fields are deprecated for new programs only.
#![allow(deprecated)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use renda_node::region::{Level, RegionCode};

/// The township write floor of issue #16; writes slower than this are listed one by one.
const SLOW_WRITE: Duration = Duration::from_millis(100);
/// How many of those are listed at most.
const SLOW_LISTED: usize = 20;
use renda_proto::v1::{GetRollupRequest, ListRecordsRequest};
use tokio::process::{Child, Command};

use crate::bench::{ms, percentile};
use crate::cli::LoadBenchArgs;

type QueryClient = renda_hub::auth::QueryClient;

/// The nodes a kept `bench query` directory holds, by level.
struct Federation {
    city: RegionCode,
    counties: Vec<RegionCode>,
    townships: Vec<RegionCode>,
}

fn federation(dir: &Path) -> Result<Federation> {
    let mut regions = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("--dir {}", dir.display()))? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str()
            && let Ok(region) = RegionCode::parse("dir", name)
        {
            regions.push(region);
        }
    }
    regions.sort();
    let of = |level: Level| -> Vec<RegionCode> {
        regions
            .iter()
            .copied()
            .filter(|r| r.level() == Some(level))
            .collect()
    };
    let cities = of(Level::City);
    let [city] = cities.as_slice() else {
        bail!(
            "--dir {}: expected the nodes of one city as `renda bench query --keep` leaves them, found {} cities",
            dir.display(),
            cities.len()
        );
    };
    Ok(Federation {
        city: *city,
        counties: of(Level::County),
        townships: of(Level::Township),
    })
}

fn free_port() -> Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Runs one short command of the binary under test against a node's data directory.
async fn once(binary: &Path, data: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} at {}: {}",
            binary.display(),
            data.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Records a node holds, as `renda status --json` counts them.
async fn records_held(binary: &Path, data: &Path) -> Result<u64> {
    let status: serde_json::Value =
        serde_json::from_str(&once(binary, data, &["--json", "status"]).await?)
            .context("status JSON")?;
    Ok(status["store"]["records_by_kind"]
        .as_array()
        .map(|kinds| kinds.iter().filter_map(|k| k[1].as_u64()).sum())
        .unwrap_or(0))
}

/// A node running as its own process; killed when dropped.
struct Running {
    region: RegionCode,
    child: Child,
}

/// User and system CPU time a process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space-separated.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in clock ticks of 1/100 s on every platform it runs on here.
    Some(Duration::from_millis(ticks * 10))
}

fn opinions(rollup_json: &str) -> Result<u64> {
    let value: serde_json::Value = serde_json::from_str(rollup_json).context("rollup JSON")?;
    Ok(value["total"]["opinions"]
        .as_object()
        .map(|states| states.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0))
}

async fn city_opinions(query: &QueryClient) -> Result<u64> {
    let reply = query
        .clone()
        .get_rollup(GetRollupRequest::default())
        .await?
        .into_inner();
    opinions(&reply.rollup_json)
}

/// Latencies collected by one of the concurrent loops.
#[derive(Default)]
struct Timings(Mutex<Vec<Duration>>);

impl Timings {
    fn push(&self, took: Duration) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(took);
    }

    fn report(&self, what: &str) {
        let mut took = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if took.is_empty() {
            println!("  {what}: none");
            return;
        }
        took.sort();
        println!(
            "  {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            ms(percentile(&took, 0.5)),
            ms(percentile(&took, 0.99)),
            ms(*took.last().unwrap_or(&Duration::ZERO)),
            took.len()
        );
    }
}

pub async fn run(args: LoadBenchArgs) -> Result<()> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("this executable")?,
    };
    let dir = args.dir.as_path();
    let fed = federation(dir)?;
    anyhow::ensure!(
        fed.townships.len() >= args.townships as usize && !fed.counties.is_empty(),
        "--dir {}: {} townships, fewer than --townships {}",
        dir.display(),
        fed.townships.len(),
        args.townships
    );
    // Writing townships alternate between the counties, so both carry the load.
    let mut by_county: BTreeMap<RegionCode, Vec<RegionCode>> = BTreeMap::new();
    for t in &fed.townships {
        if let Some(county) = t.parent() {
            by_county.entry(county).or_default().push(*t);
        }
    }
    let mut writers = Vec::new();
    let mut round = 0;
    while writers.len() < args.townships as usize {
        for towns in by_county.values() {
            if let Some(t) = towns.get(round)
                && writers.len() < args.townships as usize
            {
                writers.push(*t);
            }
        }
        round += 1;
    }
    let data = |r: &RegionCode| dir.join(r.as_str());

    // Every node is opened once first, so a schema migration the binary under test makes is not
    // part of what is timed.
    let started = Instant::now();
    let mut nodes: Vec<RegionCode> = vec![fed.city];
    nodes.extend(&fed.counties);
    nodes.extend(&writers);
    for r in &nodes {
        once(&binary, &data(r), &["status"]).await?;
    }
    let held = records_held(&binary, &data(&fed.city)).await?;
    let writer_held = records_held(&binary, &data(&writers[0])).await?;
    println!(
        "renda bench load: {} on {} ({held} records at the city, {writer_held} at township {}), {} writing townships, {} writes/s for {} s",
        binary.display(),
        dir.display(),
        writers[0],
        writers.len(),
        args.rate,
        args.seconds
    );
    println!(
        "  prepare: every node opened in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let city_sync = free_port()?;
    let city_http = free_port()?;
    let mut county_sync = BTreeMap::new();
    for c in &fed.counties {
        county_sync.insert(*c, free_port()?);
        once(
            &binary,
            &data(c),
            &["attach", "--parent", &city_sync.to_string()],
        )
        .await?;
    }
    for t in &writers {
        let county = t.parent().context("a township without a county")?;
        let addr = county_sync.get(&county).context("a township's county")?;
        once(
            &binary,
            &data(t),
            &["attach", "--parent", &addr.to_string()],
        )
        .await?;
    }
    let credential = format!("bench-{}", std::process::id());
    let added = once(
        &binary,
        &data(&fed.city),
        &[
            "credential",
            "add",
            "--name",
            &credential,
            "--role",
            "viewer",
        ],
    )
    .await?;
    let token = added
        .split_whitespace()
        .find(|w| w.starts_with("renda_"))
        .context("credential add printed no token")?
        .to_string();

    let logs = tempfile::tempdir()?;
    let spawn = |region: RegionCode, extra: Vec<String>| -> Result<Running> {
        let log = std::fs::File::create(logs.path().join(format!("{region}.log")))?;
        let child = Command::new(&binary)
            .arg("--data-dir")
            .arg(data(&region))
            .arg("run")
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {region}"))?;
        Ok(Running { region, child })
    };
    let mut running = vec![spawn(
        fed.city,
        vec![
            "--listen".into(),
            city_sync.to_string(),
            "--http".into(),
            city_http.to_string(),
        ],
    )?];
    for (c, addr) in &county_sync {
        running.push(spawn(*c, vec!["--listen".into(), addr.to_string()])?);
    }
    for t in &writers {
        running.push(spawn(*t, Vec::new())?);
    }

    let query = loop {
        match renda_hub::auth::query_client(format!("http://{city_sync}"), &token).await {
            Ok(q) if city_opinions(&q).await.is_ok() => break q,
            _ if started.elapsed() > Duration::from_secs(600) => {
                bail!(
                    "the city did not answer queries within 10 minutes; logs in {}",
                    logs.path().display()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    // The links come up and anything left over from the setup settles before the load starts.
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let mut before = city_opinions(&query).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = city_opinions(&query).await?;
        if now == before {
            break;
        }
        before = now;
    }
    for node in &mut running {
        if let Some(status) = node.child.try_wait()? {
            bail!(
                "{} exited ({status}) before the load; its log is in {}",
                node.region,
                logs.path().display()
            );
        }
    }
    // CPU time by level: what the writing townships, the counties and the city spend.
    let pids: Vec<(Option<Level>, u32)> = running
        .iter()
        .filter_map(|n| Some((n.region.level(), n.child.id()?)))
        .collect();
    let cpu = |pids: &[(Option<Level>, u32)]| -> BTreeMap<Option<Level>, Duration> {
        let mut by_level = BTreeMap::new();
        for (level, pid) in pids {
            *by_level.entry(*level).or_default() += cpu_time(*pid).unwrap_or_default();
        }
        by_level
    };
    let cpu_before = cpu(&pids);

    let done = tokio_util::sync::CancellationToken::new();
    // When each write was acknowledged (its command exited with the record's id), in order.
    let acked: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let writes = Arc::new(Timings::default());
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // When the city's own rollup first counted each number of new opinions.
    let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let pages = Arc::new(Timings::default());
    let rollup_calls = Arc::new(Timings::default());
    let list_calls = Arc::new(Timings::default());

    let watcher = {
        let (query, seen, done) = (query.clone(), seen.clone(), done.clone());
        tokio::spawn(async move {
            while !done.is_cancelled() {
                if let Ok(n) = city_opinions(&query).await {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    if seen.last().is_none_or(|(last, _)| n > *last) {
                        seen.push((n, Instant::now()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let reader = {
        let (pages, done, token) = (pages.clone(), done.clone(), token.clone());
        let client =
            Client::builder(TokioExecutor::new()).build_http::<Empty<hyper::body::Bytes>>();
        tokio::spawn(async move {
            let paths = ["/", "/records?kind=opinion"];
            let mut n = 0;
            while !done.is_cancelled() {
                let uri = format!("http://{city_http}{}", paths[n % paths.len()]);
                n += 1;
                let request = hyper::Request::get(uri)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Empty::new());
                let Ok(request) = request else { break };
                let t = Instant::now();
                if let Ok(reply) = client.request(request).await
                    && reply.status().is_success()
                    && reply.into_body().collect().await.is_ok()
                {
                    pages.push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let caller = {
        let (query, rollup_calls, list_calls, done) = (
            query.clone(),
            rollup_calls.clone(),
            list_calls.clone(),
            done.clone(),
        );
        let town = writers[0].to_string();
        let county = fed.counties[0].to_string();
        tokio::spawn(async move {
            while !done.is_cancelled() {
                let t = Instant::now();
                let request = GetRollupRequest {
                    region: town.clone(),
                    ..Default::default()
                };
                if query.clone().get_rollup(request).await.is_ok() {
                    rollup_calls.push(t.elapsed());
                }
                let t = Instant::now();
                let request = ListRecordsRequest {
                    kind: "opinion".into(),
                    within: county.clone(),
                    ..Default::default()
                };
                if query.clone().list_records(request).await.is_ok() {
                    list_calls.push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let load_started = Instant::now();
    // Writes over the floor, with when and where, so that a stall can be matched with what the
    // nodes were doing at the time (a checkpoint, a batch, a publication).
    let slow = Arc::new(Mutex::new(Vec::<(
        Duration,
        RegionCode,
        Duration,
        chrono::DateTime<chrono::Utc>,
    )>::new()));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    let mut made = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    while load_started.elapsed() < Duration::from_secs(args.seconds) {
        tick.tick().await;
        let town = writers[made % writers.len()];
        let content = format!("第{made}条民情：村口路灯不亮，夜间出行不便");
        let (binary, path) = (binary.clone(), data(&town));
        let (acked, writes, failed) = (acked.clone(), writes.clone(), failed.clone());
        let slow = slow.clone();
        made += 1;
        tasks.spawn(async move {
            let t = Instant::now();
            let wall = chrono::Utc::now();
            let out = once(
                &binary,
                &path,
                &[
                    "--user",
                    "bench",
                    "opinion",
                    "add",
                    "--source",
                    "visit",
                    "--content",
                    &content,
                ],
            )
            .await;
            match out {
                Ok(_) => {
                    let took = t.elapsed();
                    writes.push(took);
                    if took > SLOW_WRITE {
                        slow.lock().unwrap_or_else(|e| e.into_inner()).push((
                            t.saturating_duration_since(load_started),
                            town,
                            took,
                            wall,
                        ));
                    }
                    acked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Instant::now());
                }
                Err(e) => {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    eprintln!("write failed: {e:#}");
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let load_took = load_started.elapsed();
    let cpu_after = cpu(&pids);
    // The city may need a moment after the last write; wait for it, up to half a minute.
    let made_ok = acked.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(30) {
        let last = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .map(|(n, _)| *n);
        if last.is_some_and(|n| n >= before + made_ok) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.cancel();
    let _ = tokio::join!(watcher, reader, caller);
    for node in &mut running {
        let _ = node.child.start_kill();
    }

    let mut acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    acked.sort();
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // The k-th acknowledged write counts as shown when the city's total first reached k more
    // than before the load. Writes at different townships may show in another order than they
    // were acknowledged in; counting in order attributes each total to the oldest writes, which
    // is what a reader of the total sees.
    let mut shown = Vec::new();
    let mut unseen = 0;
    for (k, at) in acked.iter().enumerate() {
        let want = before + k as u64 + 1;
        match seen.iter().find(|(n, _)| *n >= want) {
            Some((_, when)) => shown.push(when.saturating_duration_since(*at)),
            None => unseen += 1,
        }
    }
    let shown = Timings(Mutex::new(shown));
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "  load: {made} writes in {:.1} s ({failed} failed)",
        load_took.as_secs_f64(),
    );
    let per_write = |level: Level| {
        let spent = cpu_after
            .get(&Some(level))
            .copied()
            .unwrap_or_default()
            .saturating_sub(cpu_before.get(&Some(level)).copied().unwrap_or_default());
        spent.as_micros() as f64 / made_ok.max(1) as f64
    };
    println!(
        "  node CPU per write: {:.0} µs at the writing townships, {:.0} µs at the counties, {:.0} µs at the city (which also serves the reads timed here)",
        per_write(Level::Township),
        per_write(Level::County),
        per_write(Level::City),
    );
    writes.report("township write (`renda opinion add`, process wall time)");
    let mut slow = slow.lock().unwrap_or_else(|e| e.into_inner()).clone();
    slow.sort_by_key(|(at, ..)| *at);
    // A few stalls are listed to be matched with what the nodes did then; a release that
    // cannot keep up at all would list every write.
    if slow.len() > SLOW_LISTED {
        println!(
            "    {} writes over {} ms; the first {SLOW_LISTED}:",
            slow.len(),
            SLOW_WRITE.as_millis()
        );
    }
    for (at, town, took, wall) in slow.into_iter().take(SLOW_LISTED) {
        println!(
            "    over {} ms: {} ms at {town}, {:.1} s into the load (started {})",
            SLOW_WRITE.as_millis(),
            took.as_millis(),
            at.as_secs_f64(),
            wall.format("%H:%M:%S%.3f"),
        );
    }
    shown.report("write to the city's own rollup (the dashboard's numbers)");
    if unseen > 0 {
        println!("  {unseen} writes not shown at the city within 30 s of the load's end");
    }
    pages.report("city dashboard page (/ and /records)");
    rollup_calls.report("city Query GetRollup (a township)");
    list_calls.report("city Query ListRecords (a county's opinions)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_reads_this_process() {
        let spent = cpu_time(std::process::id()).expect("this process's stat");
        // Spin a little so the count is above zero on any clock.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_time(std::process::id()).expect("stat again") >= spent);
    }

    #[test]
    fn opinions_sum_every_state() {
        let json = r#"{"total":{"opinions":{"received":3,"handled":4}}}"#;
        assert_eq!(opinions(json).unwrap(), 7);
        assert_eq!(opinions(r#"{"total":{}}"#).unwrap(), 0);
    }
}
