//! The write-ahead log's checkpoints, off the store's thread.
//!
//! SQLite copies the log into the database file from inside the commit that crosses its
//! threshold, on the writing connection: the store's one thread then stops taking writes for the
//! whole copy (a first sync's batches waited 18 % of their time behind it). A store run by a
//! [`super::StoreHandle`] instead tells a thread of its own how long the log is after each commit
//! (`sqlite3_wal_hook`), and that thread copies it on a connection of its own, which in WAL mode
//! runs beside the writer. It copies once writes pause, so a stream of batches is not slowed by
//! copying the pages the next batch rewrites, and at once when what is left to copy grows long
//! however busy the store is, so the log stays bounded as before. It counts what is left to
//! copy, not the log's length ([`Plan`]): on a node whose readers are often inside the log, the
//! writer seldom gets to start it over, and judged by its length every commit would copy again.
//! A log that still grows past twice the hard mark is started over by force.
//!
//! A checkpoint only copies what is committed: what the node acknowledged is durable in the log
//! before the copy and in the database after it, so a kill -9 at any point loses nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tracing::{debug, warn};

use super::StoreError;

/// Pages in the log after which it is copied once writes pause for [`QUIET`].
const SOFT_PAGES: i32 = 1_000;
/// Pages left to copy after which the log is copied at once, however busy the store. The mark
/// bounds the log; the pause after a burst is where copies belong. At 10,000 pages (40 MiB, the
/// mark SQLite's own checkpoint was set to, `connect`) a township's first sync of 12,000 records
/// crossed it in its last batch, and the 40 MiB copy and its flush of the database file then
/// ran under the edits that followed: a round of a hundred of them took 1.2 times as long
/// (`renda bench sync`, docs/benchmarks.md). Twice that lets such a sync finish first, and its
/// log be copied in the first quiet spell after it.
const HARD_PAGES: i32 = 20_000;
/// How long the store must take no commits for the log to count as quiet.
const QUIET: Duration = Duration::from_millis(250);

/// When the log is copied: [`SOFT_PAGES`], [`HARD_PAGES`] and [`QUIET`] in a node, smaller in
/// the tests, which cannot write 80 MiB a case.
#[derive(Clone, Copy, Debug)]
pub(super) struct Thresholds {
    pub(super) soft: i32,
    pub(super) hard: i32,
    pub(super) quiet: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            soft: SOFT_PAGES,
            hard: HARD_PAGES,
            quiet: QUIET,
        }
    }
}

/// The thread that checkpoints one store's log. Removing the hook from the store's connection
/// (which holds the sender) ends it; [`Checkpointer::stop`] does that and waits.
pub(super) struct Checkpointer {
    thread: std::thread::JoinHandle<()>,
    /// How many checkpoints the thread has run, for the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    copies: Arc<AtomicUsize>,
}

impl Checkpointer {
    /// Starts the thread and moves `writer`'s checkpoints to it. `path` is the database file.
    pub(super) fn start(writer: &mut Connection, path: &Path) -> Result<Checkpointer, StoreError> {
        Checkpointer::start_with(writer, path, Thresholds::default())
    }

    pub(super) fn start_with(
        writer: &mut Connection,
        path: &Path,
        thresholds: Thresholds,
    ) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path)?;
        // Only starting the log over waits for anyone (`START_OVER_WAIT`).
        conn.busy_timeout(START_OVER_WAIT)?;
        // The copy's writes to the database file are flushed before the log is reused.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (pages_tx, pages_rx) = mpsc::channel::<i32>();
        let copies = Arc::new(AtomicUsize::new(0));
        let counted = copies.clone();
        let thread = std::thread::Builder::new()
            .name("renda-checkpoint".into())
            .spawn(move || run(conn, pages_rx, thresholds, &counted))
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?;
        // Replaces SQLite's own automatic checkpoint on this connection (they share the hook).
        writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            // The thread gone (it only ends with this hook) loses a hint, never data.
            let _ = pages_tx.send(pages);
            Ok(())
        }))?;
        Ok(Checkpointer { thread, copies })
    }

    /// Waits for the thread to end, once the writer's connection is closed.
    /// Ends the thread and closes its connection, before the writer's: the writer, closing
    /// last, then copies the log into the database and deletes it, as SQLite does on the last
    /// connection's close. (Closed in the other order, the log was left behind now and then
    /// under load: once in a dozen runs of `tests/node_lifecycle.rs` beside two busy cores, and
    /// in none of twenty in this order.)
    pub(super) fn stop(self, writer: &mut Connection) {
        let none: Option<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>> = None;
        let _ = writer.wal_hook(none);
        let _ = self.thread.join();
    }
}

/// What the thread does next.
#[derive(Debug, PartialEq)]
enum Step {
    Wait,
    /// Copy what no reader still needs, waiting for nobody.
    Copy,
    /// Copy everything and start the log over, waiting briefly for readers to leave it.
    StartOver,
}

impl Step {
    /// The step that does the most of `self` and `other`.
    fn or(self, other: Step) -> Step {
        match (self, other) {
            (Step::StartOver, _) | (_, Step::StartOver) => Step::StartOver,
            (Step::Copy, _) | (_, Step::Copy) => Step::Copy,
            _ => Step::Wait,
        }
    }
}

/// When to copy the log, as a state machine without I/O: the log's length at each commit and
/// the quiet spells in, steps out, and what each copy did back in.
///
/// The hook reports how long the log is, not how much of it is left to copy. The log is
/// started over only by the first write after a copy that finished whole, and only if no reader
/// is inside the log at that moment; on a busy node a reader often is, and the log then stays
/// long although it is all copied. Judged by its length, every commit would copy again (and
/// flush the database file) for nothing, so the plan counts the frames not yet copied. Should
/// the log still grow past [`START_OVER_AT`] hard marks, it is started over by force, waiting
/// briefly for the readers inside it.
#[derive(Debug)]
struct Plan {
    t: Thresholds,
    /// The log's length at the last commit reported: the hook reports commits in order, so a
    /// shorter one means the log was started over (a copy's report may be newer than commits
    /// still queued, and cannot tell).
    hooked: i32,
    /// The log's length as last known, from a commit or a copy, whichever came later.
    log: i32,
    /// Frames of the log already in the database file.
    copied: i32,
    /// The log's length at the last copy a commit asked for: a reader that keeps copies from
    /// finishing gets one attempt per `soft` frames, not one per commit.
    asked_at: i32,
    /// The last copy moved nothing and no commit came since: a quiet spell does not repeat it
    /// at once (a long reader, such as a backup, holds the frames until it ends), only after
    /// [`STUCK_QUIET_TICKS`] quiet ticks, in case the reader ended and no commit follows.
    stuck: bool,
    /// Quiet ticks since the plan got stuck.
    stuck_ticks: u32,
}

/// Quiet ticks (250 ms each in a node) before a stuck copy is tried again without a commit.
const STUCK_QUIET_TICKS: u32 = 120;

/// How many hard marks long the log may grow, its readers keeping the writer from starting it
/// over, before the checkpointer starts it over itself: 40,000 pages (160 MiB) in a node.
const START_OVER_AT: i32 = 2;

impl Plan {
    fn new(t: Thresholds) -> Plan {
        Plan {
            t,
            hooked: 0,
            log: 0,
            copied: 0,
            asked_at: 0,
            stuck: false,
            stuck_ticks: 0,
        }
    }

    /// Past two hard marks with little left to copy, the log is started over; with much left,
    /// a passive copy goes first, so the start-over (which holds the writer up) copies little.
    fn start_over_or_copy(&self) -> Step {
        if self.uncopied() < self.t.soft {
            Step::StartOver
        } else {
            Step::Copy
        }
    }

    fn uncopied(&self) -> i32 {
        (self.log - self.copied).max(0)
    }

    /// A commit left the log `frames` long.
    fn committed(&mut self, frames: i32) -> Step {
        if frames < self.hooked {
            // The log was started over from its beginning.
            self.log = frames;
            self.copied = 0;
            self.asked_at = 0;
        } else {
            self.log = self.log.max(frames);
        }
        self.hooked = frames;
        self.stuck = false;
        if self.log - self.asked_at < self.t.soft {
            Step::Wait
        } else if self.log >= self.t.hard.saturating_mul(START_OVER_AT) {
            self.asked_at = self.log;
            self.start_over_or_copy()
        } else if self.uncopied() >= self.t.hard {
            self.asked_at = self.log;
            Step::Copy
        } else {
            Step::Wait
        }
    }

    /// No commit for [`Thresholds::quiet`].
    fn quiet(&mut self) -> Step {
        if self.stuck {
            self.stuck_ticks += 1;
            if self.stuck_ticks < STUCK_QUIET_TICKS {
                return Step::Wait;
            }
        }
        self.stuck = false;
        self.stuck_ticks = 0;
        if self.log >= self.t.hard.saturating_mul(START_OVER_AT) {
            self.start_over_or_copy()
        } else if self.uncopied() >= self.t.soft {
            Step::Copy
        } else {
            Step::Wait
        }
    }

    /// A copy reported the log `log` frames long, `copied` of them in the database file.
    fn copied(&mut self, log: i32, copied: i32) {
        let (log, copied) = (log.max(0), copied.clamp(0, log.max(0)));
        self.stuck = log == self.log && copied == self.copied;
        self.stuck_ticks = 0;
        self.log = log;
        self.copied = copied;
    }

    /// A copy failed: tried again once `soft` more frames are written, or in the quiet spell
    /// after the next commit, instead of failing again every quiet tick.
    fn failed(&mut self) {
        self.asked_at = self.log;
        self.stuck = true;
        self.stuck_ticks = 0;
    }

    /// The log was started over: the next commit writes at its beginning.
    fn started_over(&mut self) {
        self.log = 0;
        self.copied = 0;
        self.asked_at = 0;
    }
}

/// How long starting the log over may wait for readers to leave it; meanwhile it holds up the
/// writer. (A passive copy waits for nobody, and SQLite gives it no busy handler.)
const START_OVER_WAIT: Duration = Duration::from_millis(50);

fn run(conn: Connection, pages: mpsc::Receiver<i32>, t: Thresholds, copies: &AtomicUsize) {
    let mut plan = Plan::new(t);
    loop {
        let step = match pages.recv_timeout(t.quiet) {
            // Commits queued while a copy ran are taken together: one copy for all of them.
            Ok(frames) => {
                let mut step = plan.committed(frames);
                while let Ok(later) = pages.try_recv() {
                    step = step.or(plan.committed(later));
                }
                step
            }
            Err(mpsc::RecvTimeoutError::Timeout) => plan.quiet(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let sql = match step {
            Step::Wait => continue,
            // PASSIVE copies what no reader still needs, without waiting for anyone. Pages a
            // reader still needed are copied the next time.
            Step::Copy => "PRAGMA wal_checkpoint(PASSIVE)",
            // RESTART copies the rest, waits (briefly) until no reader is inside the log, and
            // has the next commit write at its beginning; with a write in progress it copies
            // what it can, as PASSIVE does.
            Step::StartOver => "PRAGMA wal_checkpoint(RESTART)",
        };
        copies.fetch_add(1, Ordering::Relaxed);
        match conn.query_row(sql, [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        }) {
            Ok((busy, log, copied)) => {
                debug!(?step, busy, log, copied, "checkpointed the write-ahead log");
                let frames = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
                plan.copied(frames(log), frames(copied));
                if step == Step::StartOver && busy == 0 {
                    plan.started_over();
                }
            }
            Err(e) => {
                // The log keeps growing until a copy succeeds; nothing committed is at risk.
                warn!(error = %e, "cannot checkpoint the write-ahead log");
                plan.failed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::office;
    use crate::record::group::{Venue, VenueKind};
    use crate::region::RegionCode;
    use crate::store::{Store, StoreHandle};

    /// The plan alone: copies are counted in frames not yet copied; a reader's hold costs one
    /// attempt per `soft` frames; a copy's report newer than queued commits is no restart, a
    /// shorter commit is; a quiet spell copies the rest but does not repeat a copy that moved
    /// nothing; past two hard marks the log is started over by force.
    #[test]
    fn the_plan_counts_what_is_left_to_copy() {
        let mut plan = Plan::new(Thresholds {
            soft: 20,
            hard: 100,
            quiet: Duration::from_millis(1),
        });
        assert_eq!(plan.committed(50), Step::Wait);
        assert_eq!(plan.committed(120), Step::Copy);
        // The copy saw commits still queued (140 frames); a reader held frames 61 on.
        plan.copied(140, 60);
        assert_eq!(plan.committed(130), Step::Wait, "queued, not a restart");
        assert_eq!(plan.uncopied(), 80);
        assert_eq!(plan.committed(159), Step::Wait, "99 left to copy");
        assert_eq!(
            plan.committed(160),
            Step::Copy,
            "100 left, 40 since the last try"
        );
        plan.copied(160, 60);
        assert_eq!(plan.committed(170), Step::Wait, "10 since the last try");
        assert_eq!(plan.quiet(), Step::Copy, "quiet: the rest");
        plan.copied(170, 60);
        assert_eq!(
            plan.quiet(),
            Step::Wait,
            "the reader still holds them: not again"
        );
        assert_eq!(plan.committed(171), Step::Wait);
        assert_eq!(plan.quiet(), Step::Copy, "a commit came: try again");
        plan.copied(171, 171);
        assert_eq!(plan.quiet(), Step::Wait, "all copied");
        // The writer started the log over after the whole copy.
        assert_eq!(plan.committed(3), Step::Wait);
        assert_eq!((plan.log, plan.copied, plan.uncopied()), (3, 0, 3));
        // Readers keep it from starting over again: two hard marks, and it is forced.
        for frames in (23..200).step_by(20) {
            assert_ne!(plan.committed(frames), Step::StartOver, "{frames}");
            plan.copied(frames, frames);
        }
        assert_eq!(plan.committed(201), Step::StartOver, "18 left to copy");
        // Readers were inside the log: copied, not started over.
        plan.copied(201, 201);
        assert_eq!(plan.quiet(), Step::StartOver, "quiet: try again");
        plan.copied(201, 201);
        assert_eq!(plan.quiet(), Step::Wait, "that moved nothing: not again");
        assert_eq!(plan.committed(202), Step::Wait, "one attempt per 20 frames");
        assert_eq!(plan.quiet(), Step::StartOver, "quiet after a commit: again");
        plan.started_over();
        assert_eq!(plan.quiet(), Step::Wait);
        assert_eq!(plan.committed(2), Step::Wait);
        assert_eq!((plan.log, plan.copied), (2, 0));
        // Past two hard marks with much left to copy, a passive copy goes first.
        let mut long = Plan::new(plan.t);
        assert_eq!(long.committed(250), Step::Copy);
        long.copied(260, 255);
        assert_eq!(long.committed(270), Step::StartOver, "15 left to copy");
        // A failed copy is not repeated every quiet tick, but is after a while.
        assert_eq!(Step::Copy.or(Step::Wait), Step::Copy);
        assert_eq!(Step::Wait.or(Step::StartOver), Step::StartOver);
        assert_eq!(plan.committed(30), Step::Wait);
        plan.failed();
        for _ in 1..STUCK_QUIET_TICKS {
            assert_eq!(plan.quiet(), Step::Wait);
        }
        assert_eq!(plan.quiet(), Step::Copy);
    }

    /// A reader on an old snapshot keeps the log from being copied whole or started over, so
    /// the log stays past the hard mark while writes go on. The thread must not copy again at
    /// every commit then (it did: every commit of a county after a first sync ran a checkpoint
    /// and a flush of the database file); and once the reader is gone, the log is copied whole
    /// and starts over while the writes go on, so the file stops growing.
    #[test]
    fn a_log_a_reader_holds_is_not_copied_at_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let township = RegionCode::parse("region", "330411101000").unwrap();
        let mut store = Store::init(dir.path(), township, "王店镇人大主席团", None).unwrap();
        // No quiet spell during the test: every copy it counts is one a commit asked for.
        let thresholds = Thresholds {
            soft: 20,
            hard: 100,
            quiet: Duration::from_secs(600),
        };
        let checkpointer =
            Checkpointer::start_with(&mut store.conn, &store.path, thresholds).unwrap();
        let wal = store.path.with_extension("sqlite-wal");
        // Frames the log file holds (a 32-byte header, then 24 bytes before each page).
        let frames = || (std::fs::metadata(&wal).map_or(0, |m| m.len()).max(32) - 32) / (4096 + 24);
        let copies = || checkpointer.copies.load(Ordering::SeqCst);
        // Waits until the thread has taken every commit so far (it counts a copy before it runs).
        let settle = || std::thread::sleep(Duration::from_millis(200));
        store
            .conn
            .execute_batch("CREATE TABLE filler (bytes BLOB NOT NULL)")
            .unwrap();
        let write = |conn: &Connection| {
            conn.execute("INSERT INTO filler VALUES (zeroblob(3000))", [])
                .unwrap();
        };
        while frames() < 60 {
            write(&store.conn);
        }
        // A reader whose snapshot is the log's first 60-odd frames: nothing after them can be
        // copied while it reads.
        let reader = Connection::open(&store.path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        while frames() < 110 {
            write(&store.conn);
        }
        let waited = std::time::Instant::now();
        while copies() == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "the hard mark's copy never ran"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        settle();
        let before = copies();
        // About 90 frames: at most one attempt per 20 of them.
        for _ in 0..30 {
            write(&store.conn);
        }
        settle();
        let during = copies() - before;
        assert!(
            during <= 8,
            "30 commits behind a reader ran {during} checkpoints: one a commit"
        );
        reader.execute_batch("COMMIT").unwrap();
        // A copy that finishes whole lets the next commit start the log over; the file then
        // stops growing, as the writes go on, for as many writes as it holds frames. (A copy
        // overtaken by a commit on a busy machine only puts that off by a hundred frames.)
        let held = frames();
        let mut unchanged = 0;
        for _ in 0..400 {
            let size = frames();
            write(&store.conn);
            std::thread::sleep(Duration::from_millis(5));
            unchanged = if frames() > size { 0 } else { unchanged + 1 };
            if unchanged == 40 {
                break;
            }
        }
        assert_eq!(
            unchanged,
            40,
            "the log kept growing past its end ({held} frames, then {})",
            frames()
        );
        checkpointer.stop(&mut store.conn);
    }

    /// The log a handle's writes leave is copied into the database file by the checkpoint
    /// thread once they pause, long before SQLite's own threshold, and closing the handle
    /// leaves a file another connection opens with everything in it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_copied_into_the_database_once_writes_pause() {
        let dir = tempfile::tempdir().unwrap();
        let township = RegionCode::parse("region", "330411101000").unwrap();
        let store = Store::init(dir.path(), township, "王店镇人大主席团", None).unwrap();
        let db = dir.path().join(super::super::DB_FILE);
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let handle = StoreHandle::spawn(store).unwrap();
        let before = size(&db);
        let mut written: u64 = 0;
        // Each write commits its own pages; enough of them pass the soft threshold.
        while size(&db.with_extension("sqlite-wal")) < (SOFT_PAGES as u64 + 200) * 4096 {
            handle
                .write(move |tx| {
                    office::add_venue(
                        tx,
                        "clerk",
                        Venue {
                            name: format!("联络站{written}"),
                            kind: VenueKind::Station,
                            region: township,
                            address: "王店镇建设街".repeat(20),
                        },
                    )
                })
                .await
                .unwrap();
            written += 1;
        }
        let copied = async {
            while size(&db) == before {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(QUIET * 20, copied)
            .await
            .expect("the log is copied once the writes pause");
        handle.close().await;
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.stats().unwrap().changes, written + 4);
    }
}
