//! Keeping a node's rollup fresh: recompute it whenever the node's records or its children's
//! rollups changed, so that the parent receives current numbers on its next sync.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::record::rollup::{Rollup, RollupRules};
use crate::store::{StoreError, StoreHandle};

/// How often a running node looks for writes to refresh its rollup after.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Recomputes the node's rollup now; it is written only if a number changed.
pub async fn refresh(store: &StoreHandle, rules: RollupRules) -> Result<Rollup, StoreError> {
    store
        .write(move |tx| tx.refresh_rollup(chrono::Utc::now(), &rules))
        .await
}

/// Runs until `shutdown`: every `every`, if anything was written since the last refresh,
/// refreshes the rollup. An idle node does nothing.
pub async fn keep_fresh(
    store: StoreHandle,
    every: Duration,
    rules: RollupRules,
    shutdown: CancellationToken,
) {
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let last = match store.call(|s| s.last_seq()).await {
            Ok(seq) => seq,
            Err(StoreError::Closed) => return,
            Err(e) => {
                warn!(error = %e, "cannot read the change sequence; the rollup is not refreshed");
                continue;
            }
        };
        if seen == Some(last) {
            continue;
        }
        match refresh(&store, rules).await {
            Ok(rollup) => {
                debug!(stale = rollup.stale.len(), "rollup refreshed");
                // Our own rollup write moved the sequence; that is not a reason to refresh again.
                seen = store.call(|s| s.last_seq()).await.ok();
            }
            Err(StoreError::Closed) => return,
            Err(e) => {
                warn!(error = %e, "the rollup could not be refreshed; numbers sent up are older")
            }
        }
    }
}
