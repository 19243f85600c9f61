//! Keeping a node's rollup fresh: recompute it whenever the node's records or its children's
//! rollups changed, so that the parent receives current numbers on its next sync.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::record::rollup::{Rollup, RollupRules};
use crate::store::{StoreError, StoreHandle};

/// How often a running node looks for writes made by other processes (`renda opinion add` beside
/// a running node) to refresh its rollup after; writes through its own store handle wake the
/// refresh at once. A look is one indexed read on a reader thread, so it is cheap enough to make
/// often: a clerk's command-line write then reaches the parent's numbers as soon as its own.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_millis(250);

/// How long a refresh waits after the write that woke it, so a burst of writes makes one.
pub const COALESCE: Duration = Duration::from_millis(200);

/// Recomputes the node's rollup now; it is written only if a number changed. A congress
/// without duty rules (a node made before they were records) is first given the ones `rules`
/// seed, so the command line and a running node judge by the same records.
pub async fn refresh(store: &StoreHandle, rules: RollupRules) -> Result<Rollup, StoreError> {
    Ok(refresh_counting(store, rules).await?.0)
}

/// [`refresh`], with the newest position of the change sequence the refresh counted: read in
/// its own transaction, so a write that lands after it is never taken for counted.
async fn refresh_counting(
    store: &StoreHandle,
    rules: RollupRules,
) -> Result<(Rollup, i64), StoreError> {
    store
        .write(move |tx| {
            let seeded = tx.seed_quota_rules(rules.quotas)?;
            if seeded > 0 {
                tracing::info!(rules = seeded, "seeded the congress's first duty rules");
            }
            let rollup = tx.refresh_rollup(chrono::Utc::now(), &rules)?;
            Ok((rollup, tx.last_seq()?))
        })
        .await
}

/// Runs until `shutdown`, refreshing the rollup soon after anything is written: a write through
/// this node's store handle wakes it at once, and it waits `COALESCE` more so a burst of writes
/// (a sync batch, a clerk's session) makes one refresh, at most a few a second. Every `every` it
/// also looks for writes made by other processes (the command line beside a running node), and
/// it refreshes when the day changes, so numbers that move with the calendar (overdue) move
/// without a write. An idle node does nothing else.
pub async fn keep_fresh(
    store: StoreHandle,
    every: Duration,
    rules: RollupRules,
    shutdown: CancellationToken,
) {
    let mut written = store.subscribe();
    let mut seen: Option<(i64, chrono::NaiveDate)> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = written.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(COALESCE) => {}
                    () = shutdown.cancelled() => return,
                }
            }
            () = shutdown.cancelled() => return,
        }
        written.borrow_and_update();
        let last = match store.read(|s| s.last_seq()).await {
            Ok(seq) => seq,
            Err(StoreError::Closed) => return,
            Err(e) => {
                warn!(error = %e, "cannot read the change sequence; the rollup is not refreshed");
                continue;
            }
        };
        let today = crate::calendar::today();
        if seen == Some((last, today)) {
            continue;
        }
        match refresh_counting(&store, rules).await {
            Ok((rollup, counted)) => {
                debug!(stale = rollup.stale.len(), "rollup refreshed");
                // Our own rollup write moved the sequence; that is not a reason to refresh again.
                // A write that landed after the refresh (a peer's batch) is not counted yet: the
                // position is the refresh's own, so the next tick sees the sequence moved past it.
                // (Read afterwards, it took such a write for counted, and the rollup stayed
                // behind it until the next write: a national node once counted 58 of 60.)
                written.borrow_and_update();
                seen = Some((counted, today));
            }
            Err(StoreError::Closed) => return,
            Err(e) => {
                warn!(error = %e, "the rollup could not be refreshed; numbers sent up are older")
            }
        }
    }
}
