//! `renda bench query`: query latency at a city that holds its whole subtree's records, measured
//! through the gRPC `Query` service over loopback, as the dashboard's callers see it.
//!
//! The records are made at the townships and reach the city the way they do in production: each
//! township syncs to its county, each county to the city, and rollups are refreshed bottom up.

// Measures the first Query service, whose JSON fields are deprecated for new programs only.
#![allow(deprecated)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use renda_node::record::rollup::RollupRules;
use renda_proto::v1::{GetRollupRequest, ListRecordsRequest};

use crate::bench::{BenchNode, code, ms, percentile, populate_with, start, sync};
use crate::cli::QueryBenchArgs;

const CITY: &str = "330400000000";
const COUNTIES: [&str; 2] = ["330411000000", "330402000000"];

async fn refresh(node: &BenchNode) -> Result<()> {
    node.store
        .write(|tx| tx.refresh_rollup(chrono::Utc::now(), &RollupRules::default()))
        .await?;
    Ok(())
}

/// Times `samples` calls of `call` and prints p50 and p99.
async fn timed<F, Fut>(what: &str, samples: usize, mut call: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    // A few calls first, so the timings are of a warm node, as a dashboard's are.
    let mut rows = 0;
    for _ in 0..5 {
        rows = call().await?;
    }
    let mut took = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        call().await?;
        took.push(started.elapsed());
    }
    took.sort();
    let p99 = percentile(&took, 0.99);
    println!(
        "  {what}: p50 {:.2} ms, p99 {:.2} ms ({rows} rows)",
        ms(percentile(&took, 0.5)),
        ms(p99)
    );
    Ok(p99)
}

pub async fn run(args: QueryBenchArgs) -> Result<()> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let dir = match &args.keep {
        Some(keep) => {
            std::fs::create_dir_all(keep)?;
            anyhow::ensure!(
                std::fs::read_dir(keep)?.next().is_none(),
                "--keep: {} must be an empty directory",
                keep.display()
            );
            keep.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let dir = dir.as_path();
    let townships = args.townships as usize;
    let per_township = args.records / townships;
    println!(
        "renda bench query: a city holding {} records from {townships} townships in 2 counties",
        per_township * townships
    );
    let city = start(dir, CITY, "嘉兴市人大常委会", None).await?;
    let mut counties = Vec::new();
    for (i, c) in COUNTIES.iter().enumerate() {
        counties.push(start(dir, c, &format!("县{i}"), None).await?);
    }
    let started = Instant::now();
    let (mut making, mut syncing, mut counting) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut phase = Instant::now();
    let mut lap = |into: &mut Duration| {
        *into += phase.elapsed();
        phase = Instant::now();
    };
    let mut towns = Vec::new();
    for t in 0..townships {
        let county = COUNTIES[t % 2];
        let region = format!("{}{:03}000", &county[..6], 101 + t / 2);
        let town = start(dir, &region, &format!("乡镇{t}"), None).await?;
        lap(&mut syncing);
        // A township has about a hundred delegates of all levels on its rolls.
        populate_with(&town, per_township, 100).await?;
        lap(&mut making);
        refresh(&town).await?;
        lap(&mut counting);
        sync(&town, &counties[t % 2].addr).await?;
        lap(&mut syncing);
        towns.push(town);
    }
    for county in &counties {
        refresh(county).await?;
        lap(&mut counting);
        sync(county, &city.addr).await?;
        lap(&mut syncing);
    }
    refresh(&city).await?;
    lap(&mut counting);
    let held = city.store.call(|s| s.stats()).await?.records_total();
    println!(
        "  setup: {held} records at the city in {:.0} s (writing {:.0} s, syncing {:.0} s, rollups {:.0} s)",
        started.elapsed().as_secs_f64(),
        making.as_secs_f64(),
        syncing.as_secs_f64(),
        counting.as_secs_f64()
    );

    // Every query carries a viewer's token, as the dashboard's and other programs' do, so the
    // credential lookup is part of what is timed.
    let token = city
        .store
        .write(|tx| tx.add_credential("bench", renda_node::access::Role::Viewer))
        .await?;
    let query = renda_hub::auth::query_client(format!("http://{}", city.addr), &token)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the city's query service: {e}"))?;
    let town = towns[0].region.to_string();
    let county = code(COUNTIES[0]).to_string();
    let samples = args.samples;
    let rollup = |region: String| {
        let q = query.clone();
        move || {
            let mut q = q.clone();
            let region = region.clone();
            async move {
                let r = q
                    .get_rollup(GetRollupRequest {
                        region,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(r.rollup_json.len())
            }
        }
    };
    timed("rollup, the city's own", samples, rollup(String::new())).await?;
    timed("rollup, a township's", samples, rollup(town.clone())).await?;
    let list = |request: ListRecordsRequest| {
        let q = query.clone();
        move || {
            let mut q = q.clone();
            let request = request.clone();
            async move {
                let r = q.list_records(request).await?.into_inner();
                Ok(r.records.len())
            }
        }
    };
    let cases = [
        (
            "list: a county's received opinions, first page",
            ListRecordsRequest {
                kind: "opinion".into(),
                status: "received".into(),
                within: county.clone(),
                ..Default::default()
            },
        ),
        (
            "list: a township's suggestions, first page",
            ListRecordsRequest {
                kind: "suggestion".into(),
                within: town.clone(),
                ..Default::default()
            },
        ),
        (
            "list: receptions in a month, whole city",
            ListRecordsRequest {
                kind: "activity".into(),
                activity_kind: "reception".into(),
                period: "2026-10".into(),
                ..Default::default()
            },
        ),
        (
            "list: overdue suggestions, whole city",
            ListRecordsRequest {
                kind: "suggestion".into(),
                overdue_on: "2026-11-22".into(),
                ..Default::default()
            },
        ),
    ];
    for (what, request) in cases {
        timed(what, samples, list(request)).await?;
    }
    // Deep pages: follow the page tokens to the hundredth page, then time it.
    let mut deep = ListRecordsRequest {
        kind: "opinion".into(),
        within: county.clone(),
        ..Default::default()
    };
    for _ in 0..99 {
        let page = query.clone().list_records(deep.clone()).await?.into_inner();
        anyhow::ensure!(!page.next_page_token.is_empty(), "fewer than 100 pages");
        deep.page_token = page.next_page_token;
    }
    timed("list: a county's opinions, page 100", samples, list(deep)).await?;
    Ok(())
}
