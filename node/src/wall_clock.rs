//! Waiting for a moment on the wall clock, for the schedules that name one (a backup due, a
//! certificate to renew).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// How long a schedule sleeps at most before reading the wall clock again: a PC that booted
/// with a wrong clock, corrected later, must not sleep out a wait computed from it.
const LOOK_AGAIN: Duration = Duration::from_secs(60);

/// What [`step_toward`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Toward {
    /// The moment has come.
    Due,
    /// It slept a step; read the clock and ask again.
    Slept,
    /// The node is shutting down.
    Shutdown,
}

/// Sleeps toward `due`, a step of at most a minute, unless it has come.
pub(crate) async fn step_toward(due: DateTime<Utc>, shutdown: &CancellationToken) -> Toward {
    let now = Utc::now();
    if due <= now {
        return Toward::Due;
    }
    let wait = (due - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(LOOK_AGAIN);
    tokio::select! {
        _ = shutdown.cancelled() => Toward::Shutdown,
        _ = tokio::time::sleep(wait) => Toward::Slept,
    }
}
