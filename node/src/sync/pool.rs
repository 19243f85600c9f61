//! The bulk pool: the threads that do a link's CPU work on large batches (opening a received
//! batch, merging its records, compressing a batch to send), at a lower scheduling priority
//! than the rest of the node.
//!
//! A node has one writer, the store thread, and every batch a peer sends ends there: during a
//! first sync or a catch-up after days offline, a link receives no faster than the store thread
//! stores. The merges for the batches behind it only have to be ready by the time the store
//! wants them, and the sender's window keeps a few batches queued, so they can wait. With
//! everything at one priority they did not: on two cores a first sync ran two merge threads,
//! the async runtime and the store thread side by side, and the store thread, the one that
//! mattered, got about half a core while it had work (docs/benchmarks.md, the receive path's
//! eighth and ninth measurements). Here bulk merges take what the store thread and the async
//! runtime leave. The same holds for people: a county storing a township's first sync still
//! answers its clerks' pages and writes at full priority.
//!
//! Small batches (a clerk's edits passing up, a live round) do not come here: their merge is
//! on the round's critical path, and at a low priority it waited behind the node's other work
//! (checkpoints, readers) and the pool's wake-up, 0.5 to 0.9 ms a round. [`run`] sends work on
//! fewer than [`BULK_RECORDS`] records to the runtime's blocking threads at the node's own
//! priority.
//!
//! The pool has one thread per core, at most eight, each ten nice levels below the node's own
//! (Linux only, where a thread's id names that thread alone; lowering one's own priority needs
//! no privilege). If the pool cannot be started the work runs on the async runtime's blocking
//! threads.

use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use tracing::{Instrument, warn};

use super::SyncError;

/// How many nice levels the pool's threads run below the thread that starts them.
pub const NICE_BELOW: i32 = 10;

/// The fewest records a batch carries for its work to go to the bulk pool. A live round
/// carries tens of records; a first sync's batches grow to hundreds within the first few.
pub const BULK_RECORDS: usize = 256;

fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        match rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("renda-bulk-{i}"))
            .start_handler(|_| lower_priority())
            .build()
        {
            Ok(pool) => Some(pool),
            Err(e) => {
                warn!(error = %e, "the bulk pool did not start; a link's CPU work runs on the runtime's blocking threads");
                None
            }
        }
    })
    .as_ref()
}

/// Lowers the calling thread's priority by [`NICE_BELOW`] levels, to at most the lowest.
#[cfg(target_os = "linux")]
fn lower_priority() {
    use rustix::process::{getpriority_process, setpriority_process};
    // On Linux a thread's id names that thread alone, so only the pool's threads move.
    let me = Some(rustix::thread::gettid());
    let lowered = getpriority_process(me)
        .and_then(|nice| setpriority_process(me, (nice + NICE_BELOW).min(19)));
    if let Err(e) = lowered {
        warn!(error = %e, "a bulk pool thread kept the node's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Runs `work`, for a batch of `records` records, and waits for it without holding up the async
/// runtime: on the bulk pool if the batch is large ([`BULK_RECORDS`]), on the runtime's blocking
/// threads otherwise. `what` names the work in the error a panic in it becomes.
pub async fn run<T, F>(what: &'static str, records: usize, work: F) -> Result<T, SyncError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let failed = |detail: String| SyncError::Protocol(format!("{what} failed: {detail}"));
    // The work logs in the span of the link it is for.
    let span = tracing::Span::current();
    let bulk = if records >= BULK_RECORDS {
        pool()
    } else {
        None
    };
    let Some(pool) = bulk else {
        return tokio::task::spawn_blocking(move || span.in_scope(work))
            .await
            .map_err(|e| failed(e.to_string()));
    };
    let (done, result) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        // A panic stays in this job: the pool would otherwise abort the process.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(work)));
        // The caller may have gone (its link closed); the result is then of no use.
        let _ = done.send(outcome);
    });
    match result.in_current_span().await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => Err(failed(
            crate::record::doc::panic_message(panic.as_ref())
                .unwrap_or_else(|| "it panicked".into()),
        )),
        Err(_) => Err(failed("the bulk pool dropped the work".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_below_the_callers_priority() {
        let thread_name = run("reading the thread", BULK_RECORDS, || {
            std::thread::current().name().map(str::to_string)
        })
        .await
        .expect("the work runs");
        assert!(
            thread_name
                .as_deref()
                .is_some_and(|n| n.starts_with("renda-bulk-")),
            "the work ran on {thread_name:?}"
        );
        #[cfg(target_os = "linux")]
        {
            use rustix::process::getpriority_process;
            let mine = getpriority_process(Some(rustix::thread::gettid())).expect("own priority");
            let pools = run("reading the priority", BULK_RECORDS, || {
                getpriority_process(Some(rustix::thread::gettid())).expect("own priority")
            })
            .await
            .expect("the work runs");
            assert_eq!(pools, (mine + NICE_BELOW).min(19));
        }
    }

    #[tokio::test]
    async fn work_on_a_small_batch_keeps_the_node_s_priority() {
        let thread_name = run("reading the thread", BULK_RECORDS - 1, || {
            std::thread::current().name().map(str::to_string)
        })
        .await
        .expect("the work runs");
        assert!(
            !thread_name
                .as_deref()
                .is_some_and(|n| n.starts_with("renda-bulk-")),
            "the work ran on {thread_name:?}"
        );
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_an_error_and_the_pool_goes_on() {
        let failed = run("merging a batch", BULK_RECORDS, || -> u32 {
            panic!("a broken record")
        })
        .await
        .expect_err("a panic is an error");
        assert!(
            failed
                .to_string()
                .contains("merging a batch failed: a broken record"),
            "{failed}"
        );
        // Every thread of the pool still takes work.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        for i in 0..threads * 4 {
            assert_eq!(
                run("adding", BULK_RECORDS, move || i + 1)
                    .await
                    .expect("the work runs"),
                i + 1
            );
        }
    }
}
