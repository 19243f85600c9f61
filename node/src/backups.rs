//! Scheduled backups: a running node takes a consistent copy of its database on a schedule,
//! keeps the newest few in a directory of the operator's choosing, and notes the last one in
//! its store, where `renda status`, the metrics and the node's rollup read it.
//!
//! A backup is written under a temporary name, synced and then renamed, so a file with a
//! backup's name is always a whole one: a node killed while copying leaves a `.partial` file,
//! which the next backup removes, and never a truncated backup that `renda restore` would
//! take. Backups are named after the node and the time they were taken
//! (`renda-330411101000-20261204T083000Z.sqlite`), so they sort by age and one directory may
//! hold several nodes' backups.
//!
//! Deciding when a backup is due and which files to remove are pure functions
//! ([`due_at`], [`to_prune`]); [`keep_taking`] is the thin loop around them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::region::RegionCode;
use crate::store::{Store, StoreError, StoreHandle};
use crate::wall_clock::{Toward, step_toward};

/// When and where a running node backs up (`[backup]` in its configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSchedule {
    /// The directory backups go to; created if missing.
    pub dir: PathBuf,
    /// How long after one backup the next is due.
    pub every: Duration,
    /// How many of this node's backups the directory keeps; older ones are removed.
    pub keep: usize,
}

/// How long a node waits before trying again after a backup failed, at most (a full disk, a
/// directory gone): soon enough that a fixed fault costs little, rarely enough not to flood the
/// log.
const RETRY_AFTER: Duration = Duration::from_secs(300);

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// The name of the backup of `region` taken at `at`.
pub fn file_name(region: &RegionCode, at: DateTime<Utc>) -> String {
    format!("renda-{region}-{}.sqlite", at.format(TIME_FORMAT))
}

/// When the backup named `name` was taken, if it is a backup of `region`.
pub fn taken_at(name: &str, region: &RegionCode) -> Option<DateTime<Utc>> {
    let stamp = name
        .strip_prefix(&format!("renda-{region}-"))?
        .strip_suffix(".sqlite")?;
    NaiveDateTime::parse_from_str(stamp, TIME_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// This node's backups in `dir`, oldest first.
pub fn existing(dir: &Path, region: &RegionCode) -> std::io::Result<Vec<(DateTime<Utc>, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some(at) = entry.file_name().to_str().and_then(|n| taken_at(n, region)) {
            found.push((at, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// When the next backup is due: now for a node that has none, else `every` after the last.
pub fn due_at(last: Option<DateTime<Utc>>, now: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    match last {
        None => now,
        Some(last) => chrono::Duration::from_std(every)
            .ok()
            .and_then(|every| last.checked_add_signed(every))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    }
}

/// Which of `backups` (oldest first) to remove so that the newest `keep` remain.
pub fn to_prune(backups: &[(DateTime<Utc>, PathBuf)], keep: usize) -> Vec<PathBuf> {
    let remove = backups.len().saturating_sub(keep.max(1));
    backups[..remove].iter().map(|(_, p)| p.clone()).collect()
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes one backup of the node's database now into `schedule.dir`, notes it in the store and
/// removes the backups beyond `schedule.keep`. Returns the backup's path.
pub async fn take(
    store: &StoreHandle,
    schedule: &BackupSchedule,
    region: RegionCode,
) -> Result<PathBuf, BackupError> {
    let dir = schedule.dir.clone();
    let keep = schedule.keep;
    let db = store.call(|s| Ok(s.path().to_path_buf())).await?;
    let at = Utc::now();
    let path = tokio::task::spawn_blocking(move || -> Result<PathBuf, BackupError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // A copy a killed process left half-written is never a backup; remove it first.
        let partial = dir.join(format!(".{}.partial", file_name(&region, at)));
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&format!(".renda-{region}-")) && name.ends_with(".partial") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Store::backup_file(&db, &partial)?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io(&partial))?;
        let path = dir.join(file_name(&region, at));
        std::fs::rename(&partial, &path).map_err(io(&path))?;
        // The rename is durable only once the directory is.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        // Never the one just written, whatever the clock said when older ones were named.
        for old in to_prune(&existing(&dir, &region).map_err(io(&dir))?, keep) {
            if old != path {
                std::fs::remove_file(&old).map_err(io(&old))?;
            }
        }
        Ok(path)
    })
    .await
    .map_err(|e| BackupError::Io {
        path: schedule.dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })??;
    let noted = path.clone();
    store.call(move |s| s.record_backup(at, &noted)).await?;
    Ok(path)
}

/// Runs until `shutdown`, taking a backup whenever one is due: at once on a node with none, then
/// every `schedule.every` after the last (a node that was stopped for a week backs up as soon
/// as it starts). A failure is logged as an error, since the node's data then has no fresh
/// copy, and tried again within [`RETRY_AFTER`].
pub async fn keep_taking(
    store: StoreHandle,
    schedule: BackupSchedule,
    region: RegionCode,
    shutdown: CancellationToken,
) {
    let mut last = match store.read(|s| Ok(s.stats()?.last_backup)).await {
        Ok(last) => last.map(|l| l.at),
        Err(e) => {
            tracing::warn!(error = %e, "could not read when the last backup was taken");
            None
        }
    };
    // A backup in the directory newer than the store says (taken by `renda backup` from an
    // older release, or noted in a database since restored) counts too; one dated ahead of
    // now, named while the clock ran fast, does not.
    if let Ok(files) = existing(&schedule.dir, &region)
        && let Some((newest, _)) = files
            .iter()
            .rev()
            .find(|(at, _)| *at <= Utc::now() + chrono::Duration::minutes(1))
    {
        last = last.max(Some(*newest));
    }
    loop {
        let now = Utc::now();
        if last.is_some_and(|at| at > now + chrono::Duration::minutes(1)) {
            // Noted while the clock ran ahead: the next is due by the clock as it is now.
            last = None;
        }
        // In steps, reading the wall clock after each, so a clock set right meanwhile moves
        // the backup with it.
        match step_toward(due_at(last, now, schedule.every), &shutdown).await {
            Toward::Due => {}
            Toward::Slept => continue,
            Toward::Shutdown => return,
        }
        if shutdown.is_cancelled() {
            return;
        }
        match take(&store, &schedule, region).await {
            Ok(path) => {
                tracing::info!(file = %path.display(), "backup taken");
                last = Some(Utc::now());
            }
            Err(e) => {
                tracing::error!(error = %e, "the scheduled backup failed; the node's data has no fresh copy");
                let retry = schedule.every.min(RETRY_AFTER);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> RegionCode {
        RegionCode::parse("region", "330411101000").unwrap()
    }

    #[test]
    fn names_carry_the_node_and_the_time_and_read_back() {
        let at = DateTime::parse_from_rfc3339("2026-12-04T08:30:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let name = file_name(&region(), at);
        assert_eq!(name, "renda-330411101000-20261204T083005Z.sqlite");
        assert_eq!(taken_at(&name, &region()), Some(at));
        let other = RegionCode::parse("region", "330411102000").unwrap();
        assert_eq!(taken_at(&name, &other), None, "another node's backup");
        assert_eq!(taken_at(&format!(".{name}.partial"), &region()), None);
        assert_eq!(
            taken_at("renda-330411101000-garbage.sqlite", &region()),
            None
        );
    }

    #[test]
    fn a_backup_is_due_at_once_and_then_every_period() {
        let now = Utc::now();
        let day = Duration::from_secs(86_400);
        assert_eq!(due_at(None, now, day), now);
        let last = now - chrono::Duration::hours(3);
        assert_eq!(
            due_at(Some(last), now, day),
            last + chrono::Duration::days(1)
        );
        // Overdue after a week stopped: due in the past, so taken at once.
        let long_ago = now - chrono::Duration::days(7);
        assert!(due_at(Some(long_ago), now, day) < now);
        // A period too long to add is never due rather than a panic.
        assert_eq!(
            due_at(Some(now), now, Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn the_newest_are_kept() {
        let now = Utc::now();
        let files: Vec<_> = (0..5)
            .map(|n| {
                (
                    now + chrono::Duration::hours(n),
                    PathBuf::from(format!("{n}")),
                )
            })
            .collect();
        assert_eq!(
            to_prune(&files, 2),
            vec![PathBuf::from("0"), PathBuf::from("1"), PathBuf::from("2")]
        );
        assert!(to_prune(&files, 9).is_empty());
        assert_eq!(to_prune(&files, 0).len(), 4, "at least one is always kept");
    }
}
