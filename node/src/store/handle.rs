//! [`StoreHandle`]: the async face of the store. One thread owns the writing SQLite connection;
//! every other task sends it a closure and awaits the answer, so writes are serialised without
//! locks and no task ever blocks the async runtime on disk.
//!
//! Reads that serve others (dashboard pages, Query calls, metrics) go to a small pool of reader
//! threads instead ([`StoreHandle::read`]), each with its own read-only connection: a read
//! sees the last committed snapshot and never waits behind a write, a sync batch or a rollup
//! refresh on the writer's thread.

use tokio::sync::{mpsc, oneshot, watch};

use super::{Store, StoreError, WriteTx};

/// Work for the store's thread.
enum Job {
    Run(Box<dyn FnOnce(&mut Store) + Send>),
    /// Close the store once the work queued before this is done, and say so.
    Close(oneshot::Sender<()>),
}

/// Work for a reader thread.
enum ReadJob {
    Run(Box<dyn FnOnce(&mut Store) + Send>),
    Close(oneshot::Sender<()>),
}

/// The reader threads' queue: each thread takes the next job when it is free.
#[derive(Clone)]
struct Readers {
    jobs: std::sync::mpsc::Sender<ReadJob>,
    count: usize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Readers({})", self.count)
    }
}

#[derive(Clone, Debug)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
    /// Reader threads, when the handle was spawned with them.
    readers: Option<Readers>,
    /// The newest position in the node's change sequence, moved by each write through this
    /// handle that added changes, so sync links (and whatever else waits for new records)
    /// wake at once instead of polling. A write that added none (a link's notes of what its
    /// peer acknowledged, a login) wakes nobody: every live link on the node used to read
    /// again after each of them (458 outgoing reads in the bench's four-hop phase, 151 now).
    written: watch::Sender<i64>,
    /// Set when the store found its file damaged; `renda run` stops on it.
    damage: std::sync::Arc<watch::Sender<Option<super::check::Damage>>>,
}

impl StoreHandle {
    /// Moves the store onto its own thread, with its write-ahead log checkpointed on another
    /// ([`super::checkpoint`]). The threads end when the last handle is dropped.
    pub fn spawn(mut store: Store) -> Result<StoreHandle, StoreError> {
        // A short queue: callers wait for the store rather than pile up work it cannot keep up with.
        let (jobs, mut rx) = mpsc::channel::<Job>(64);
        let checkpointer = super::checkpoint::Checkpointer::start(&mut store.conn, &store.path)?;
        let last_seq = store.guarded(|s| s.last_seq())?;
        std::thread::Builder::new()
            .name("renda-store".into())
            .spawn(move || {
                let mut closed = None;
                while let Some(job) = rx.blocking_recv() {
                    match job {
                        Job::Run(job) => job(&mut store),
                        Job::Close(tx) => {
                            closed = Some(tx);
                            break;
                        }
                    }
                }
                // The checkpoint thread's connection first, then the writer's, the last, which
                // copies the log into the file as it closes. Both are closed before anyone is
                // told the store is.
                checkpointer.stop(&mut store.conn);
                drop(store);
                if let Some(closed) = closed {
                    let _ = closed.send(());
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the store thread: {e}")))?;
        Ok(StoreHandle {
            jobs,
            readers: None,
            written: watch::Sender::new(last_seq),
            damage: std::sync::Arc::new(watch::Sender::new(None)),
        })
    }

    /// Like [`StoreHandle::spawn`], with `readers` reader threads beside the writer, each with
    /// its own read-only connection, for [`StoreHandle::read`].
    pub fn spawn_with_readers(store: Store, readers: usize) -> Result<StoreHandle, StoreError> {
        let connections = (0..readers)
            .map(|_| store.open_reader())
            .collect::<Result<Vec<_>, _>>()?;
        let mut handle = StoreHandle::spawn(store)?;
        let (jobs, rx) = std::sync::mpsc::channel::<ReadJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for (n, mut reader) in connections.into_iter().enumerate() {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("renda-reader-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job, never while running one.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(ReadJob::Run(job)) => job(&mut reader),
                            Ok(ReadJob::Close(closed)) => {
                                drop(reader);
                                let _ = closed.send(());
                                return;
                            }
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| StoreError::Io(format!("cannot start a reader thread: {e}")))?;
        }
        handle.readers = Some(Readers {
            jobs,
            count: readers,
        });
        Ok(handle)
    }

    /// Runs `f` on a reader thread, in one read transaction (a snapshot of what is committed),
    /// and returns its result; on the writer's thread, after what is queued there, if the
    /// handle has no readers. A read never waits for a write in progress.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            return self.call(move |store| store.snapshot(f)).await;
        };
        let (tx, rx) = oneshot::channel();
        let job = ReadJob::Run(Box::new(move |store: &mut Store| {
            let _ = tx.send(store.guarded(move |s| s.snapshot(f)));
        }));
        readers.jobs.send(job).map_err(|_| StoreError::Closed)?;
        let result = rx.await.map_err(|_| StoreError::Closed)?;
        if let Err(StoreError::Damaged(damage)) = &result {
            self.damage.send_replace(Some(damage.clone()));
        }
        result
    }

    /// Runs `f` on the store's thread and returns its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |store| {
            // The caller may have given up waiting; then nobody needs the answer.
            let _ = tx.send(store.guarded(f));
        }));
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        let result = rx.await.map_err(|_| StoreError::Closed)?;
        if let Err(StoreError::Damaged(damage)) = &result {
            self.damage.send_replace(Some(damage.clone()));
        }
        result
    }

    /// Runs `f` in one write transaction on the store's thread.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_flushed(true, f).await
    }

    /// Like [`StoreHandle::write`], for bookkeeping committed without a flush
    /// ([`Store::write_unflushed`]).
    pub async fn write_unflushed<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_flushed(false, f).await
    }

    async fn write_flushed<T, F>(&self, flushed: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (out, last_seq) = self
            .call(move |store| {
                let out = if flushed {
                    store.write(f)?
                } else {
                    store.write_unflushed(f)?
                };
                // The write is committed whatever this read says; if it fails, everyone wakes.
                Ok((out, store.last_seq().ok()))
            })
            .await?;
        match last_seq {
            Some(last_seq) => {
                self.written.send_if_modified(|seen| {
                    let moved = last_seq > *seen;
                    *seen = (*seen).max(last_seq);
                    moved
                });
            }
            None => self.written.send_modify(|_| {}),
        }
        Ok(out)
    }

    /// Closes the store for every clone of this handle: work queued before runs to its end
    /// (a write in hand commits), then the database is closed; later calls fail with
    /// [`StoreError::Closed`]. Returns once the file is closed, so another process may open it.
    pub async fn close(&self) {
        if let Some(readers) = &self.readers {
            // Each reader takes one Close once the reads queued before it are done.
            let mut closed = Vec::new();
            for _ in 0..readers.count {
                let (tx, rx) = oneshot::channel();
                if readers.jobs.send(ReadJob::Close(tx)).is_ok() {
                    closed.push(rx);
                }
            }
            for rx in closed {
                let _ = rx.await;
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Records damage found outside the store's own calls (the check `renda run` starts with),
    /// so that whoever watches [`StoreHandle::damaged`] stops the node.
    pub fn report_damage(&self, damage: super::check::Damage) {
        self.damage.send_replace(Some(damage));
    }

    /// A receiver that holds the damage once the store found its file damaged.
    pub fn damaged(&self) -> watch::Receiver<Option<super::check::Damage>> {
        self.damage.subscribe()
    }

    /// A receiver of the node's newest change position, which changes after each write through
    /// any clone of this handle that added changes.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.written.subscribe()
    }
}
