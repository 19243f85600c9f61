//! The write-ahead log's checkpoints, off the store's thread.
//!
//! SQLite copies the log into the database file from inside the commit that crosses its
//! threshold, on the writing connection: the store's one thread then stops taking writes for the
//! whole copy (a first sync's batches waited 18 % of their time behind it). A store run by a
//! [`super::StoreHandle`] instead tells a thread of its own how long the log is after each commit
//! (`sqlite3_wal_hook`), and that thread copies it on a connection of its own, which in WAL mode
//! runs beside the writer. It copies once writes pause, so a stream of batches is not slowed by
//! copying the pages the next batch rewrites, and at once when the log grows long however busy
//! the store is, so the log stays bounded as before.
//!
//! A checkpoint only copies what is committed: what the node acknowledged is durable in the log
//! before the copy and in the database after it, so a kill -9 at any point loses nothing.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tracing::{debug, warn};

use super::StoreError;

/// Pages in the log after which it is copied once writes pause for [`QUIET`].
const SOFT_PAGES: i32 = 1_000;
/// Pages in the log after which it is copied at once: the 40 MiB SQLite's own checkpoint was
/// set to before (`connect`).
const HARD_PAGES: i32 = 10_000;
/// How long the store must take no commits for the log to count as quiet.
const QUIET: Duration = Duration::from_millis(250);

/// The thread that checkpoints one store's log. Removing the hook from the store's connection
/// (which holds the sender) ends it; [`Checkpointer::stop`] does that and waits.
pub(super) struct Checkpointer {
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread and moves `writer`'s checkpoints to it. `path` is the database file.
    pub(super) fn start(writer: &mut Connection, path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // The copy's writes to the database file are flushed before the log is reused.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (pages_tx, pages_rx) = mpsc::channel::<i32>();
        let thread = std::thread::Builder::new()
            .name("renda-checkpoint".into())
            .spawn(move || run(conn, pages_rx))
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?;
        // Replaces SQLite's own automatic checkpoint on this connection (they share the hook).
        writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            // The thread gone (it only ends with this hook) loses a hint, never data.
            let _ = pages_tx.send(pages);
            Ok(())
        }))?;
        Ok(Checkpointer { thread })
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

fn run(conn: Connection, pages: mpsc::Receiver<i32>) {
    // Pages in the log at the last commit, as the hook counted them.
    let mut logged = 0;
    loop {
        let copy_now = match pages.recv_timeout(QUIET) {
            Ok(n) => {
                logged = n;
                logged >= HARD_PAGES
            }
            Err(mpsc::RecvTimeoutError::Timeout) => logged >= SOFT_PAGES,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if !copy_now {
            continue;
        }
        // PASSIVE copies what no reader still needs, without waiting for anyone; the writer
        // starts the log again from its beginning once a copy finished whole. Pages a reader
        // still needed are copied the next time.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((log, copied)) => {
                debug!(log, copied, "checkpointed the write-ahead log");
                logged = 0;
            }
            Err(e) => {
                // The log keeps growing until a copy succeeds; nothing committed is at risk.
                warn!(error = %e, "cannot checkpoint the write-ahead log");
                logged = 0;
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
