//! The node's counters against a recount of its records: a township with delegates, a group,
//! a year and a half of activities (receptions and others, by the group or not, with random
//! participants), opinions and suggestions at every step. Every number, the quotas included,
//! judged from the counters each write moved, equals a count of the records one by one, and
//! still does after more records change. Random: the seed is printed, `RENDA_SEED=<n>` replays.

mod common;

use chrono::NaiveDate;
use common::data::{populate, random_activity, township_with_group};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use renda_node::office;
use renda_node::record::activity::ActivityKind;
use renda_node::store::StoreHandle;

async fn activities(
    store: &StoreHandle,
    rng: &mut StdRng,
    group: renda_node::record::RecordId,
    delegates: &[renda_node::record::RecordId],
    count: usize,
) {
    for n in 0..count {
        let kind = if rng.random_range(0..2) == 0 {
            ActivityKind::Reception
        } else {
            ActivityKind::Research
        };
        // Last year and this year up to the test's calendar, so a year boundary is crossed.
        let date = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
            + chrono::Duration::days(rng.random_range(0..600));
        let date = date.min(renda_node::calendar::today());
        let group = (rng.random_range(0..3) > 0).then_some(group);
        let draft = random_activity(rng, n, kind, date, group, delegates);
        store
            .write(move |tx| office::add_activity(tx, "clerk", draft))
            .await
            .unwrap();
    }
}

async fn differences(store: &StoreHandle) -> Vec<String> {
    let today = renda_node::calendar::today();
    store
        .call(move |s| s.verify_own_counters(today))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_a_recount_through_a_year_and_a_half_of_records() {
    let seed: u64 = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("rollup counters seed: {seed} (replay with RENDA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let (store, region, delegates, group) = township_with_group(dir.path(), 6, 4).await;
    activities(&store, &mut rng, group, &delegates, 40).await;
    populate(&store, region, &mut rng).await;
    assert_eq!(differences(&store).await, Vec::<String>::new());

    // The numbers are not trivially zero: the group and the delegates are counted.
    let rollup = store
        .write(|tx| {
            tx.refresh_rollup(
                chrono::Utc::now(),
                &renda_node::record::rollup::RollupRules::default(),
            )
        })
        .await
        .unwrap();
    assert_eq!(rollup.own.group_quota.total, 1);
    assert!(rollup.own.delegate_quota.total >= 6);
    assert!(rollup.own.activities_total() >= 40);

    // More of everything, and every record's later steps, still agree.
    activities(&store, &mut rng, group, &delegates, 20).await;
    populate(&store, region, &mut rng).await;
    assert_eq!(differences(&store).await, Vec::<String>::new());
}
