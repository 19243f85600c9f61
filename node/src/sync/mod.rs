//! The sync engine: one link between a child and its parent, both directions over one gRPC
//! stream.
//!
//! After the two `Hello`s, each side runs the same loop: send the next batch of changes the peer
//! lacks (filtered by the peer's routes, bounded in bytes), wait for its acknowledgement, and
//! when nothing is left say `CaughtUp`; meanwhile apply whatever the peer sends, acknowledging
//! each batch once it is durably stored. A link in [`Mode::Once`] ends when both sides are caught
//! up; in [`Mode::Live`] it waits for new writes and keeps going until the stream breaks.
//!
//! Layout: this file holds the link loop; [`client`] dials the parent (`renda sync --once` and
//! the child side of `renda run`); [`untrusted`] is every decoding path of network input as one
//! function each, for the fuzz targets. The parent side of the gRPC service lives in the hub
//! crate.

pub mod claims;
pub mod client;
pub mod untrusted;

use std::time::Duration;

use renda_proto::PROTOCOL_VERSION;
use renda_proto::v1::{self, LinkMessage, link_message::Body};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::record::{Author, Header, RecordId, RecordKind};
use crate::region::RegionCode;
use crate::route::RoutePolicy;
use crate::store::{
    Checkpoint, IncomingRecord, MergeContext, OutgoingRecord, PreparedRecord, StoreError,
    StoreHandle, StoredState,
};

/// A node's sync settings.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub policy: RoutePolicy,
    /// A batch stops growing once it holds this many bytes of changes.
    pub max_batch_bytes: usize,
    /// How often a live link looks for writes made by other processes (the CLI) on this node;
    /// writes through this process's store handle wake it at once.
    pub poll: Duration,
    /// Compare subtree digests at the start of the link and resend the records that differ,
    /// whatever the checkpoints say (`renda sync --once --repair`).
    pub repair: bool,
    /// The node's certificate, key and CA: with them every link is mutual TLS and a peer is
    /// who its certificate says; without them links are plaintext h2 (tests and trusted
    /// networks only, and `renda run` warns).
    pub tls: Option<std::sync::Arc<crate::tls::NodeTls>>,
    /// How long a link may go without hearing from the peer while a reply is due (an
    /// acknowledgement, the peer's `CaughtUp`, a resync or repair answer) before it is dropped;
    /// a third of it is the HTTP/2 keepalive interval and the time a ping may go unanswered, so
    /// an idle link whose connection silently stopped forwarding (an expired NAT mapping) is
    /// found too. The child redials at once; `renda status` shows a link whose lag has not
    /// moved for longer as stalled.
    pub timeout: Duration,
    /// Cancelled when the node shuts down: each link stops taking new messages, lets the
    /// batches it has received be applied and acknowledged, and ends.
    pub shutdown: CancellationToken,
    /// How many received batches this node holds prepared (decoded and merged) at once, over
    /// all its links. A county with many townships syncing at once would otherwise hold two
    /// batches per link in memory while its one store thread works through them; waiting for a
    /// permit also slows the peers down instead of letting work pile up. One per node: two
    /// nodes in one process (the demo, the tests) do not wait for each other.
    pub prepared: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Batches a node holds prepared at once ([`LinkConfig::prepared`]).
pub const PREPARED_BATCHES: usize = 2;

/// The default [`LinkConfig::max_batch_bytes`].
pub const DEFAULT_BATCH_BYTES: usize = 512 * 1024;

/// How long a link being shut down waits for the batches it received to be applied and
/// acknowledged before it ends anyway; what is not acknowledged is sent again next time.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`LinkConfig::timeout`]: a dead link is dropped and redialled within this.
pub const DEFAULT_LINK_TIMEOUT: Duration = Duration::from_secs(30);

impl LinkConfig {
    /// The HTTP/2 keepalive interval, and how long a ping may go unanswered, on both ends.
    pub fn keepalive(&self) -> Duration {
        (self.timeout / 3).max(Duration::from_millis(500))
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            policy: RoutePolicy::default(),
            max_batch_bytes: DEFAULT_BATCH_BYTES,
            poll: Duration::from_millis(200),
            repair: false,
            tls: None,
            timeout: DEFAULT_LINK_TIMEOUT,
            shutdown: CancellationToken::new(),
            prepared: std::sync::Arc::new(tokio::sync::Semaphore::new(PREPARED_BATCHES)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One full round both ways, then end.
    Once,
    /// Keep the link and send new writes as they happen.
    Live,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the peer speaks protocol version {0}; this node speaks {PROTOCOL_VERSION}")]
    Version(u32),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("the peer is not allowed on this link: {0}")]
    Unauthorized(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("link failed: {0}")]
    Transport(#[from] tonic::Status),
    #[error("cannot reach {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("the link closed before sync finished")]
    Closed,
    #[error("the peer sent nothing for {0:?} while a reply was due; the link is dropped")]
    Stalled(Duration),
}

/// What one link moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkReport {
    pub changes_sent: usize,
    pub bytes_sent: usize,
    pub changes_received: usize,
    pub bytes_received: usize,
    pub batches_sent: usize,
    /// Encoded size of every protocol message each way (before HTTP/2 framing), the honest cost
    /// of a round including the messages that carry no changes.
    pub wire_bytes_sent: usize,
    pub wire_bytes_received: usize,
}

pub fn message(body: Body) -> LinkMessage {
    LinkMessage {
        protocol_version: PROTOCOL_VERSION,
        body: Some(body),
    }
}

/// Checks a received message's version and takes its body.
pub fn open(msg: LinkMessage) -> Result<Body, SyncError> {
    if msg.protocol_version != PROTOCOL_VERSION {
        return Err(SyncError::Version(msg.protocol_version));
    }
    msg.body
        .ok_or_else(|| SyncError::Protocol("a message without a body".into()))
}

fn header_to_wire(h: &Header) -> v1::RecordHeader {
    v1::RecordHeader {
        id: h.id.to_string(),
        kind: h.kind.as_str().to_string(),
        home: h.home.to_string(),
        created_at_ms: h.created_at.timestamp_millis(),
        created_by: h.created_by.to_string(),
    }
}

fn header_from_wire(h: &v1::RecordHeader) -> Result<Header, SyncError> {
    let bad = |what: &str| SyncError::Protocol(format!("record header field {what} is malformed"));
    Ok(Header {
        id: RecordId::parse("id", &h.id).map_err(|_| bad("id"))?,
        kind: RecordKind::parse(&h.kind).ok_or_else(|| bad("kind"))?,
        home: RegionCode::parse("home", &h.home).map_err(|_| bad("home"))?,
        created_at: chrono::DateTime::from_timestamp_millis(h.created_at_ms)
            .ok_or_else(|| bad("created_at_ms"))?,
        created_by: Author::parse(&h.created_by).ok_or_else(|| bad("created_by"))?,
    })
}

/// A batch message with its records compressed. CPU work: build it off the async runtime.
fn batch_message(batch_id: u64, up_to: Checkpoint, records: Vec<OutgoingRecord>) -> LinkMessage {
    use std::io::Write;
    let plain = prost::Message::encode_to_vec(&v1::BatchRecords {
        records: records
            .into_iter()
            .map(|r| v1::RecordChanges {
                header: Some(header_to_wire(&r.header)),
                changes: r.changes,
            })
            .collect(),
    });
    let mut deflater = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(plain.len() / 2),
        flate2::Compression::fast(),
    );
    let deflated = match deflater.write_all(&plain).and_then(|()| deflater.finish()) {
        Ok(bytes) => bytes,
        Err(_) => unreachable!("compressing into memory does not fail"),
    };
    message(Body::Batch(v1::ChangeBatch {
        batch_id,
        up_to_seq: up_to.seq,
        records: Vec::new(),
        deflated_records: deflated,
        up_to_hash: up_to.hash,
    }))
}

async fn build_batch_message(
    batch_id: u64,
    up_to: Checkpoint,
    records: Vec<OutgoingRecord>,
) -> Result<LinkMessage, SyncError> {
    tokio::task::spawn_blocking(move || batch_message(batch_id, up_to, records))
        .await
        .map_err(|e| SyncError::Protocol(format!("building batch {batch_id} failed: {e}")))
}

/// A received batch's records, inflated and checked, with the number of changes and their
/// bytes. CPU work: call it off the async runtime.
fn open_batch(
    records: Vec<v1::RecordChanges>,
    deflated: Vec<u8>,
) -> Result<(Vec<IncomingRecord>, usize, usize), SyncError> {
    use std::io::Read;
    let records = match (records.is_empty(), deflated.is_empty()) {
        (_, true) => records,
        (true, false) => {
            let mut plain = Vec::new();
            flate2::read::DeflateDecoder::new(deflated.as_slice())
                .take(client::MAX_MESSAGE_BYTES as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|e| {
                    SyncError::Protocol(format!("batch field deflated_records: not DEFLATE: {e}"))
                })?;
            if plain.len() > client::MAX_MESSAGE_BYTES {
                return Err(SyncError::Protocol(format!(
                    "batch field deflated_records: inflates past {} bytes",
                    client::MAX_MESSAGE_BYTES
                )));
            }
            <v1::BatchRecords as prost::Message>::decode(plain.as_slice())
                .map_err(|e| {
                    SyncError::Protocol(format!(
                        "batch field deflated_records: not a BatchRecords message: {e}"
                    ))
                })?
                .records
        }
        (false, false) => {
            return Err(SyncError::Protocol(
                "a batch with both records and deflated_records".into(),
            ));
        }
    };
    let (mut changes, mut bytes) = (0, 0);
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let header = header_from_wire(
            r.header
                .as_ref()
                .ok_or_else(|| SyncError::Protocol("a record without a header".into()))?,
        )?;
        changes += r.changes.len();
        bytes += r.changes.iter().map(Vec::len).sum::<usize>();
        out.push(IncomingRecord {
            header,
            changes: r.changes,
        });
    }
    Ok((out, changes, bytes))
}

/// The slowest line a link is expected to run over (a township's, 64 KiB/s): a batch in flight
/// gets this long per byte, beyond the timeout, before its acknowledgement is overdue.
const SLOWEST_LINK_BYTES_PER_SEC: usize = 64 * 1024;

/// How many batches a sender keeps unacknowledged. Two let the receiver prepare one batch while
/// its store writes the other; more would only queue.
const WINDOW: usize = 2;

/// Work for the task that applies a peer's messages in the order they came.
enum ApplyJob {
    Batch {
        batch_id: u64,
        /// The peer's checkpoint this batch brings us to; `None` for resent records.
        up_to: Option<Checkpoint>,
        /// The records, being inflated and prepared since the batch arrived, with the number of
        /// changes and their bytes.
        prepared: tokio::task::JoinHandle<Result<Prepared, SyncError>>,
        /// Held until the batch is written.
        permit: tokio::sync::OwnedSemaphorePermit,
    },
    /// The peer is caught up to `seq`. `epoch` and `counts` come from when it arrived: whether
    /// it still said the peer was done once everything before it was applied.
    CaughtUp {
        seq: Checkpoint,
        epoch: u64,
        counts: bool,
    },
    /// The peer asked to resync: forget how far we applied its sequence, in order with the
    /// batches around it, so that its resent batches move the checkpoint up from the start.
    ForgetReceived,
}

type Prepared = (Vec<PreparedRecord>, usize, usize);

/// Inflates and decodes a received batch, reads what the store holds of its records, and merges
/// each record once ([`PreparedRecord`]) on every core of the blocking pool, whose threads (and
/// their allocator caches) outlive the batch. The held states are read on a reader thread, so
/// the read never waits behind the batch before this one being written; the store thread
/// merges again only a record a write reached in between.
async fn prepare_batch(
    store: StoreHandle,
    ctx: MergeContext,
    records: Vec<v1::RecordChanges>,
    deflated: Vec<u8>,
) -> Result<Prepared, SyncError> {
    let failed =
        |e: tokio::task::JoinError| SyncError::Protocol(format!("preparing a batch failed: {e}"));
    let (records, changes, bytes) =
        tokio::task::spawn_blocking(move || open_batch(records, deflated))
            .await
            .map_err(failed)??;
    let started = std::time::Instant::now();
    let ids: Vec<RecordId> = records.iter().map(|r| r.header.id).collect();
    let stored = store.read(move |s| s.stored_states(&ids)).await?;
    let read_in = started.elapsed();
    let prepared = on_workers(
        records.into_iter().zip(stored).collect(),
        move |(record, stored): (IncomingRecord, Option<StoredState>)| {
            PreparedRecord::new(record, stored.as_ref(), &ctx)
        },
    )
    .await
    .map_err(failed)?;
    debug!(
        records = prepared.len(),
        stored_read_ms = read_in.as_secs_f64() * 1e3,
        prepared_ms = started.elapsed().as_secs_f64() * 1e3,
        "prepared batch"
    );
    Ok((prepared, changes, bytes))
}

/// Maps `items` through `f` on the blocking pool, one chunk per core, keeping their order.
async fn on_workers<T, U>(
    items: Vec<T>,
    f: impl Fn(T) -> U + Send + Clone + 'static,
) -> Result<Vec<U>, tokio::task::JoinError>
where
    T: Send + 'static,
    U: Send + 'static,
{
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let per_worker = items.len().div_ceil(workers).max(1);
    let mut items = items.into_iter();
    let mut tasks = Vec::with_capacity(workers);
    loop {
        let chunk: Vec<T> = items.by_ref().take(per_worker).collect();
        if chunk.is_empty() {
            break;
        }
        let f = f.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk.into_iter().map(&f).collect::<Vec<U>>()
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.extend(task.await?);
    }
    Ok(out)
}

/// What the applying task reports back to the link loop.
enum Applied {
    Batch { changes: usize, bytes: usize },
    CaughtUp { epoch: u64, counts: bool },
    Forgotten,
}

/// Applies a peer's batches and checkpoints in arrival order and acknowledges each batch once
/// it is durably stored. It runs beside the link loop so that the next batch can arrive and be
/// prepared while the store writes this one.
async fn apply_in_order(
    store: StoreHandle,
    peer: RegionCode,
    policy: RoutePolicy,
    mut jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<Result<Applied, SyncError>>,
    outbound: mpsc::Sender<LinkMessage>,
    wire_out: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    while let Some(job) = jobs.recv().await {
        let result = async {
            match job {
                ApplyJob::Batch {
                    batch_id,
                    up_to,
                    prepared,
                    permit,
                } => {
                    let (prepared, changes, bytes) = prepared.await.map_err(|e| {
                        SyncError::Protocol(format!("preparing batch {batch_id} failed: {e}"))
                    })??;
                    let up_to_seq = up_to.as_ref().map_or(0, |c| c.seq);
                    let applying = std::time::Instant::now();
                    let (outcome, storing) = store
                        .write(move |tx| {
                            let started = std::time::Instant::now();
                            let outcome = tx.apply_prepared(&peer, up_to, prepared, &policy)?;
                            Ok((outcome, started.elapsed()))
                        })
                        .await?;
                    // Storing is the records' statements; the rest of the elapsed time is the
                    // commit and the hand-over to and from the store thread.
                    debug!(
                        %peer,
                        changes = outcome.changes_applied,
                        storing_ms = storing.as_secs_f64() * 1e3,
                        elapsed_ms = applying.elapsed().as_secs_f64() * 1e3,
                        "applied batch"
                    );
                    drop(permit);
                    for r in &outcome.rejected {
                        warn!(%peer, record = %r.record, rule = %r.rule, reason = %r.reason, "refused a record from the peer");
                    }
                    let ack = message(Body::Ack(v1::BatchAck {
                        batch_id,
                        up_to_seq,
                        missing: outcome.missing.iter().map(|id| id.to_string()).collect(),
                        rejected: outcome
                            .rejected
                            .iter()
                            .map(|r| v1::Rejected {
                                record: r.record.clone(),
                                rule: r.rule.clone(),
                                reason: r.reason.clone(),
                            })
                            .collect(),
                    }));
                    wire_out.fetch_add(
                        prost::Message::encoded_len(&ack),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    outbound.send(ack).await.map_err(|_| SyncError::Closed)?;
                    Ok(Applied::Batch { changes, bytes })
                }
                ApplyJob::CaughtUp { seq, epoch, counts } => {
                    store
                        .write(move |tx| tx.apply_incoming(&peer, Some(seq), Vec::new(), &policy))
                        .await?;
                    Ok(Applied::CaughtUp { epoch, counts })
                }
                ApplyJob::ForgetReceived => {
                    store.write(move |tx| tx.forget_received(&peer)).await?;
                    Ok(Applied::Forgotten)
                }
            }
        }
        .await;
        let failed = result.is_err();
        if done.send(result).is_err() || failed {
            return;
        }
    }
}

/// A batch sent and not yet acknowledged.
struct InFlight {
    batch_id: u64,
    /// Where the peer's checkpoint stands once it acknowledges; `None` for resent records,
    /// which do not move it.
    up_to_seq: Option<i64>,
    records: usize,
    changes: usize,
    bytes: usize,
}

/// Runs a link after the `Hello`s. `peer_claim` is how far the peer's `Hello` said it has
/// applied this node's sequence; it is checked against this node's history before anything is
/// sent ([`claims::judge_received`]).
#[allow(clippy::too_many_arguments)]
pub async fn run_link<S>(
    store: StoreHandle,
    peer: RegionCode,
    peer_claim: Checkpoint,
    mut inbound: S,
    outbound: mpsc::Sender<LinkMessage>,
    mode: Mode,
    config: LinkConfig,
) -> Result<LinkReport, SyncError>
where
    S: InboundStream,
{
    let mut report = LinkReport::default();
    // When the peer last sent anything; while a reply is due, silence past the timeout drops
    // the link (the connection may have stopped forwarding without closing).
    let mut last_heard = tokio::time::Instant::now();
    // When a reply last became due: idle time before it does not count against the peer.
    let mut due_since = last_heard;
    let mut was_due = false;
    // Whether the peer asked to resync on this link: once is all an honest peer needs.
    let mut peer_resynced = false;
    let mut cursor = 0;
    // Where the next batch starts: after the last batch sent, acknowledged or not.
    let mut next_from = 0;
    let mut next_batch_id: u64 = 1;
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    let mut resend: Vec<RecordId> = Vec::new();
    let mut resent: std::collections::HashSet<RecordId> = std::collections::HashSet::new();
    let mut caught_up_sent: Option<i64> = None;
    let mut local_done = false;
    let mut remote_done = false;
    // Bumped by every message after which the peer is not done; a CaughtUp counts only if no
    // such message came after it by the time it is applied.
    let mut remote_epoch: u64 = 0;
    let mut written = store.subscribe();
    // Whether changes that came from the peer are left out of what we send it: always, unless
    // the peer lost them in a restore and asked for everything back.
    let mut skip_peer_origin = true;
    // Set while our Resync request is unanswered: a CaughtUp from before the answer is stale.
    let mut awaiting_resync = false;
    let wire_out = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (jobs, jobs_rx) = mpsc::channel::<ApplyJob>(WINDOW + 2);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let applier = tokio::spawn(apply_in_order(
        store.clone(),
        peer,
        config.policy,
        jobs_rx,
        done_tx,
        outbound.clone(),
        wire_out.clone(),
    ));
    let send = |msg: LinkMessage| {
        wire_out.fetch_add(
            prost::Message::encoded_len(&msg),
            std::sync::atomic::Ordering::Relaxed,
        );
        let outbound = outbound.clone();
        async move { outbound.send(msg).await.map_err(|_| SyncError::Closed) }
    };

    // The peer's checkpoint of our sequence is checked against our history before we act on
    // it. We may have been restored from a backup (`renda restore` marks it), or from a copy of
    // our files (the peer then claims a position past our last, or names another change there
    // than we hold): our positions after the restore may repeat ones the peer has already
    // applied, and the writes we lost are only at the peers. Or the peer is wrong. Either way
    // its claim moves nothing here: we send everything from the start and ask it to resync, on
    // which it forgets its checkpoint of our sequence (so no reused position is skipped) and
    // sends everything back, our own lost writes included. Changes are unique by hash, so what
    // either side already holds costs bytes only.
    let claim = peer_claim.clone();
    let (start, me) = store
        .call(move |s| {
            let last = s.last_seq()?;
            let held = match claim.seq {
                0 => None,
                seq => s.change_hash_at(seq)?,
            };
            let start =
                claims::judge_received(&claim, last, held.as_deref(), s.needs_resync(&peer)?);
            Ok((start.map(|start| (start, last)), s.identity().region))
        })
        .await?;
    let (start, last) = start?;
    let merging = MergeContext {
        me,
        peer,
        policy: config.policy,
    };
    let resyncing = match start {
        claims::Start::Resume(from) => {
            cursor = from;
            next_from = from;
            false
        }
        claims::Start::Resync(reason) => {
            warn!(%peer, claimed = peer_claim.seq, last_seq = last, %reason, "resending everything and asking the peer to resync");
            if reason != claims::ResyncReason::Restored {
                // Owed until a round completes after the peer's resend: if this link breaks
                // first, the peer has already forgotten its checkpoint and would claim nothing
                // wrong next time, but our lost writes would still be only at the peer.
                store.write(move |tx| tx.owe_resync(&peer)).await?;
            }
            send(message(Body::Resync(v1::Resync { ack: false }))).await?;
            awaiting_resync = true;
            true
        }
    };

    // Repair: both sides send a digest of the records they should share; each then lists its
    // records in the buckets that differ, and each resends the records the other lacks or holds
    // at other heads. `DigestDone` says the sender has queued those resends.
    let mut awaiting_entries = false;
    let mut awaiting_peer_done = false;
    let mut differing: Vec<bool> = Vec::new();
    if config.repair {
        let policy = config.policy;
        let buckets = store.call(move |s| s.digest(&peer, &policy)).await?;
        send(message(Body::Digest(v1::Digest { buckets }))).await?;
        awaiting_entries = true;
        awaiting_peer_done = true;
    }

    loop {
        if in_flight.len() < WINDOW && !local_done {
            if !resend.is_empty() {
                // A record is resent whole at most once per link: an honest peer is complete
                // after one full history, and a peer that keeps asking must not keep the link
                // busy. Records it may not hold are filtered out by `full_records`.
                let ids: Vec<RecordId> = std::mem::take(&mut resend)
                    .into_iter()
                    .filter(|id| resent.insert(*id))
                    .collect();
                let policy = config.policy;
                let records = store
                    .call(move |s| s.full_records(&peer, &ids, &policy))
                    .await?;
                if records.is_empty() {
                    continue;
                }
                let changes = records.iter().map(|r| r.changes.len()).sum();
                let bytes = records.iter().flat_map(|r| &r.changes).map(Vec::len).sum();
                let count = records.len();
                send(build_batch_message(next_batch_id, Checkpoint::default(), records).await?)
                    .await?;
                in_flight.push_back(InFlight {
                    batch_id: next_batch_id,
                    up_to_seq: None,
                    records: count,
                    changes,
                    bytes,
                });
                next_batch_id += 1;
            } else {
                let (policy, max) = (config.policy, config.max_batch_bytes);
                let skip = skip_peer_origin;
                let reading = std::time::Instant::now();
                let from = next_from;
                let batch = store
                    .call(move |s| s.outgoing_from(&peer, from, max, &policy, skip))
                    .await?;
                debug!(%peer, elapsed_ms = reading.elapsed().as_millis() as u64, "read outgoing batch");
                if batch.changes == 0 && !in_flight.is_empty() {
                    // Nothing more to send; say so once the batches in flight are acknowledged.
                } else if batch.changes == 0 {
                    cursor = batch.up_to_seq;
                    next_from = cursor;
                    if caught_up_sent != Some(cursor) {
                        send(message(Body::CaughtUp(v1::CaughtUp {
                            seq: cursor,
                            hash: batch.up_to_hash,
                        })))
                        .await?;
                        caught_up_sent = Some(cursor);
                        // Everything up to the cursor is acknowledged or not the peer's to hold.
                        let seq = cursor;
                        store
                            .write(move |tx| tx.record_acked(&peer, seq, 0, 0, 0))
                            .await?;
                    }
                    local_done = true;
                } else {
                    debug!(%peer, changes = batch.changes, bytes = batch.bytes, up_to = batch.up_to_seq, "sending batch");
                    let count = batch.records.len();
                    let up_to = Checkpoint {
                        seq: batch.up_to_seq,
                        hash: batch.up_to_hash,
                    };
                    send(build_batch_message(next_batch_id, up_to, batch.records).await?).await?;
                    next_from = batch.up_to_seq;
                    in_flight.push_back(InFlight {
                        batch_id: next_batch_id,
                        up_to_seq: Some(batch.up_to_seq),
                        records: count,
                        changes: batch.changes,
                        bytes: batch.bytes,
                    });
                    next_batch_id += 1;
                }
            }
        }
        if mode == Mode::Once
            && local_done
            && remote_done
            && in_flight.is_empty()
            && !awaiting_entries
            && !awaiting_peer_done
        {
            record_round(&store, peer, resyncing && !awaiting_resync).await?;
            // Close our half of the stream and let the peer close its half, so the link ends
            // cleanly rather than being reset. The applying task holds a sender too: it ends
            // once its queue is closed, and everything it was given is applied by now.
            drop(jobs);
            let _ = applier.await;
            drop(outbound);
            report.wire_bytes_sent = wire_out.load(std::sync::atomic::Ordering::Relaxed);
            let drain = async { while let Ok(Some(_)) = inbound.next_message().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
            return Ok(report);
        }
        let reply_due = !in_flight.is_empty()
            || awaiting_resync
            || awaiting_entries
            || awaiting_peer_done
            || (mode == Mode::Once && !remote_done);
        if reply_due && !was_due {
            due_since = tokio::time::Instant::now();
        }
        was_due = reply_due;
        // A peer that is alive answers keepalive pings within a third of the timeout; this is
        // for one that is alive but does not answer. It gets twice the timeout, and time to
        // take in the bytes in flight at a slow township line's pace.
        let in_flight_bytes: usize = in_flight.iter().map(|f| f.bytes).sum();
        let reply_by = last_heard.max(due_since)
            + config.timeout * 2
            + Duration::from_secs((in_flight_bytes / SLOWEST_LINK_BYTES_PER_SEC) as u64);
        tokio::select! {
                    // Shutting down goes first, then messages that are waiting: a link that
                    // was busy with its store is not stalled because the peer's answer is
                    // already here.
                    biased;
                    () = config.shutdown.cancelled() => {
                        // What was received is applied and acknowledged, so the peer need not
                        // send it again; messages not yet taken in are left to the next link.
                        debug!(%peer, "the node is shutting down; draining the link");
                        drop(jobs);
                        let _ = tokio::time::timeout(DRAIN_TIMEOUT, applier).await;
                        report.wire_bytes_sent = wire_out.load(std::sync::atomic::Ordering::Relaxed);
                        // A live link ends as it would when the peer goes; a round that was
                        // to finish both ways did not.
                        return match mode {
                            Mode::Live => Ok(report),
                            Mode::Once => Err(SyncError::Closed),
                        };
                    }
                    msg = inbound.next_message() => {
                        last_heard = tokio::time::Instant::now();
                        let Some(msg) = msg? else {
                            report.wire_bytes_sent = wire_out.load(std::sync::atomic::Ordering::Relaxed);
                            return if mode == Mode::Live { Ok(report) } else { Err(SyncError::Closed) };
                        };
                        report.wire_bytes_received += prost::Message::encoded_len(&msg);
                        match open(msg)? {
                            Body::Batch(batch) => {
                                remote_done = false;
                                remote_epoch += 1;
                                // A batch of resent records (position 0) moves no checkpoint.
                                let up_to = match batch.up_to_seq {
                                    0 => None,
                                    seq => Some(claims::check_peer_checkpoint("batch.up_to_seq", seq, &batch.up_to_hash)?),
                                };
                                // The semaphore is never closed, so acquiring only waits.
                                let permit = config.prepared.clone().acquire_owned().await.map_err(|_| SyncError::Closed)?;
                                let prepared = tokio::spawn(prepare_batch(store.clone(), merging, batch.records, batch.deflated_records));
                                jobs.send(ApplyJob::Batch { batch_id: batch.batch_id, up_to, prepared, permit })
                                    .await
                                    .map_err(|_| SyncError::Closed)?;
                            }
                            Body::Ack(ack) => {
                                let Some(flight) = in_flight.pop_front() else {
                                    return Err(SyncError::Protocol("an acknowledgement with no batch in flight".into()));
                                };
                                if ack.batch_id != flight.batch_id {
                                    return Err(SyncError::Protocol(format!("acknowledgement of batch {} while {} is in flight", ack.batch_id, flight.batch_id)));
                                }
                                claims::check_ack(ack.missing.len(), ack.rejected.len(), flight.records)?;
                                if !ack.rejected.is_empty() {
                                    // Our changes to these records will not reach the peer:
                                    // data this node holds is not going where its routes say.
                                    // The peer's words are kept short: they go to the log and
                                    // to `renda status`.
                                    let refused = ack
                                        .rejected
                                        .iter()
                                        .map(|r| {
                                            let record = RecordId::parse("rejected.record", &r.record)
                                                .map_err(|_| SyncError::Protocol(format!("malformed record id {} in an acknowledgement", crate::validate::quote(&r.record))))?;
                                            Ok(crate::store::Refused {
                                                record: record.to_string(),
                                                rule: claims::clip(&r.rule, claims::MAX_RULE_CHARS),
                                                reason: claims::clip(&r.reason, claims::MAX_REASON_CHARS),
                                            })
                                        })
                                        .collect::<Result<Vec<_>, SyncError>>()?;
                                    for r in &refused {
                                        tracing::error!(%peer, record = %r.record, rule = %r.rule, reason = %r.reason, "the peer refused a record");
                                    }
                                    store.write(move |tx| tx.record_refused_by_peer(&peer, &refused)).await?;
                                }
                                for id in &ack.missing {
                                    match RecordId::parse("missing", id) {
                                        Ok(id) => resend.push(id),
                                        Err(_) => return Err(SyncError::Protocol(format!("malformed record id {} in an acknowledgement", crate::validate::quote(id)))),
                                    }
                                }
                                report.changes_sent += flight.changes;
                                report.bytes_sent += flight.bytes;
                                report.batches_sent += 1;
                                let acked = flight.up_to_seq.unwrap_or(cursor);
                                if let Some(seq) = flight.up_to_seq {
                                    cursor = seq;
                                }
                                let (records, changes, bytes) = (flight.records, flight.changes, flight.bytes);
                                // The peer acknowledges a batch once it has stored it with its
                                // checkpoint, so the batch's position is one it may claim.
                                let stored_at = flight.up_to_seq;
                                store
                                    .write(move |tx| {
                                        tx.record_acked(&peer, acked, records, changes, bytes)?;
                                        match stored_at {
                                            Some(seq) => tx.record_confirmed(&peer, seq),
                                            None => Ok(()),
                                        }
                                    })
                                    .await?;
                            }
                            Body::CaughtUp(c) => {
                                let seq = claims::check_peer_checkpoint("caught_up.seq", c.seq, &c.hash)?;
                                let counts = !awaiting_resync && !awaiting_peer_done;
                                jobs.send(ApplyJob::CaughtUp { seq, epoch: remote_epoch, counts })
                                    .await
                                    .map_err(|_| SyncError::Closed)?;
                            }
                    Body::Digest(theirs) => {
                        let policy = config.policy;
                        let ours = store.call(move |s| s.digest(&peer, &policy)).await?;
                        if theirs.buckets.len() != ours.len() {
                            return Err(SyncError::Protocol(format!(
                                "a digest of {} buckets; expected {}",
                                theirs.buckets.len(),
                                ours.len()
                            )));
                        }
                        differing = ours.iter().zip(&theirs.buckets).map(|(a, b)| a != b).collect();
                        let marked = differing.clone();
                        let entries = store.call(move |s| s.digest_entries(&peer, &policy, &marked)).await?;
                        debug!(%peer, buckets = differing.iter().filter(|d| **d).count(), entries = entries.len(), "digest compared");
                        send(message(Body::DigestEntries(v1::DigestEntries {
                            entries: entries
                                .into_iter()
                                .map(|(id, heads)| v1::RecordDigest { id, heads })
                                .collect(),
                        })))
                        .await?;
                    }
                    Body::DigestEntries(theirs) => {
                        if differing.is_empty() {
                            return Err(SyncError::Protocol("digest entries before a digest".into()));
                        }
                        let policy = config.policy;
                        let marked = differing.clone();
                        let ours = store.call(move |s| s.digest_entries(&peer, &policy, &marked)).await?;
                        let theirs: std::collections::HashMap<String, Vec<u8>> =
                            theirs.entries.into_iter().map(|e| (e.id, e.heads)).collect();
                        for (id, heads) in ours {
                            if theirs.get(&id) != Some(&heads) {
                                let id = RecordId::parse("digest.id", &id)
                                    .map_err(|e| SyncError::Protocol(e.to_string()))?;
                                resend.push(id);
                            }
                        }
                        if !resend.is_empty() {
                            warn!(%peer, records = resend.len(), "repair: resending records the peer lacks or holds at other heads");
                        }
                        awaiting_entries = false;
                        local_done = false;
                        caught_up_sent = None;
                        send(message(Body::DigestDone(v1::DigestDone {}))).await?;
                    }
                    Body::DigestDone(_) => {
                        awaiting_peer_done = false;
                        remote_done = false;
                        remote_epoch += 1;
                    }
        Body::Resync(v1::Resync { ack: true }) => {
                                awaiting_resync = false;
                                remote_done = false;
                                remote_epoch += 1;
                            }
                            Body::Resync(v1::Resync { ack: false }) => {
                                if std::mem::replace(&mut peer_resynced, true) {
                                    return Err(SyncError::Protocol("a second Resync on one link".into()));
                                }
                                warn!(%peer, "the peer asked to resync; forgetting its checkpoint and resending everything it holds");
                                jobs.send(ApplyJob::ForgetReceived).await.map_err(|_| SyncError::Closed)?;
                                send(message(Body::Resync(v1::Resync { ack: true }))).await?;
                                skip_peer_origin = false;
                                cursor = 0;
                                next_from = 0;
                                caught_up_sent = None;
                                local_done = false;
                                // Acknowledgements still to come must not move the restarted cursor.
                                for flight in in_flight.iter_mut() {
                                    flight.up_to_seq = None;
                                }
                            }
                            Body::Hello(_) => {
                                return Err(SyncError::Protocol("a second Hello on an open link".into()));
                            }
                        }
                    }
                    applied = done.recv() => {
                        match applied {
                            Some(Ok(Applied::Batch { changes, bytes })) => {
                                report.changes_received += changes;
                                report.bytes_received += bytes;
                            }
                            Some(Ok(Applied::Forgotten)) => {}
                            Some(Ok(Applied::CaughtUp { epoch, counts })) => {
                                if counts && epoch == remote_epoch {
                                    remote_done = true;
                                }
                                if local_done && in_flight.is_empty() {
                                    debug!(%peer, "both sides caught up");
                                    // A resync is done only once the peer's counted CaughtUp
                                    // says its resend arrived, not on one it sent before it
                                    // heard our Resync.
                                    record_round(&store, peer, resyncing && !awaiting_resync && remote_done).await?;
                                }
                            }
                            Some(Err(e)) => return Err(e),
                            None => return Err(SyncError::Closed),
                        }
                    }
                    changed = written.changed(), if local_done && mode == Mode::Live => {
                        if changed.is_err() {
                            return Ok(report);
                        }
                        local_done = false;
                    }
                    _ = tokio::time::sleep(config.poll), if local_done && mode == Mode::Live => {
                        local_done = false;
                    }
                    _ = tokio::time::sleep_until(reply_by), if reply_due => {
                        warn!(%peer, timeout = ?config.timeout, in_flight = in_flight.len(), "the peer stopped answering; dropping the link");
                        return Err(SyncError::Stalled(config.timeout));
                    }
                }
    }
}

/// Records a completed round with `peer`, and the end of the resync after a restore if this
/// round was one.
async fn record_round(
    store: &StoreHandle,
    peer: RegionCode,
    resynced: bool,
) -> Result<(), SyncError> {
    store
        .write(move |tx| {
            tx.record_link_success(&peer)?;
            if resynced {
                tx.mark_resynced(&peer)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// The receiving half of a link: tonic's `Streaming` on both the client and the server side.
pub trait InboundStream: Send {
    fn next_message(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<LinkMessage>, SyncError>> + Send;
}

impl InboundStream for tonic::Streaming<LinkMessage> {
    async fn next_message(&mut self) -> Result<Option<LinkMessage>, SyncError> {
        Ok(self.message().await?)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use chrono::Utc;

    use super::*;

    fn record(user: &str, changes: Vec<Vec<u8>>) -> OutgoingRecord {
        let home = RegionCode::parse("home", "330411101000").unwrap();
        OutgoingRecord {
            header: Header {
                id: RecordId::new(),
                kind: RecordKind::Opinion,
                home,
                created_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                    .unwrap(),
                created_by: Author {
                    node: home,
                    user: user.into(),
                },
            },
            changes,
        }
    }

    fn body_of(msg: LinkMessage) -> v1::ChangeBatch {
        match msg.body {
            Some(Body::Batch(batch)) => batch,
            other => panic!("not a batch: {other:?}"),
        }
    }

    fn deflate(bytes: &[u8]) -> Vec<u8> {
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        d.write_all(bytes).unwrap();
        d.finish().unwrap()
    }

    #[test]
    fn a_compressed_batch_opens_to_the_records_sent() {
        let sent = vec![
            record("镇人大办", vec![vec![7; 300], vec![8; 40]]),
            record("clerk", vec![b"change".to_vec()]),
        ];
        let batch = body_of(batch_message(
            3,
            Checkpoint {
                seq: 99,
                hash: Vec::new(),
            },
            sent.clone(),
        ));
        assert!(batch.records.is_empty(), "records travel compressed");
        assert!(
            batch.deflated_records.len() < 340,
            "{} bytes",
            batch.deflated_records.len()
        );
        let (opened, changes, bytes) = open_batch(batch.records, batch.deflated_records).unwrap();
        assert_eq!(opened, sent);
        assert_eq!((changes, bytes), (3, 346));
    }

    #[test]
    fn a_batch_that_inflates_too_far_or_is_not_deflate_is_refused() {
        // A bomb: a few kilobytes that inflate past the largest message a node accepts.
        let bomb = deflate(&vec![0u8; client::MAX_MESSAGE_BYTES + 1024]);
        assert!(bomb.len() < 100_000);
        let err = open_batch(Vec::new(), bomb).unwrap_err().to_string();
        assert!(
            err.contains("deflated_records") && err.contains("inflates past"),
            "{err}"
        );

        let err = open_batch(Vec::new(), vec![0xff; 64])
            .unwrap_err()
            .to_string();
        assert!(err.contains("deflated_records"), "{err}");

        // Valid DEFLATE of bytes that are not a BatchRecords message.
        let err = open_batch(Vec::new(), deflate(&[0xff; 16]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a BatchRecords message"), "{err}");

        // Both forms at once is a protocol error, not a guess.
        let plain = body_of(batch_message(
            1,
            Checkpoint {
                seq: 1,
                hash: Vec::new(),
            },
            vec![record("clerk", vec![vec![1]])],
        ));
        let records = vec![v1::RecordChanges {
            header: None,
            changes: Vec::new(),
        }];
        let err = open_batch(records, plain.deflated_records)
            .unwrap_err()
            .to_string();
        assert!(err.contains("both"), "{err}");

        // A record without its header.
        let records = vec![v1::RecordChanges {
            header: None,
            changes: vec![vec![1]],
        }];
        let err = open_batch(records, Vec::new()).unwrap_err().to_string();
        assert!(err.contains("without a header"), "{err}");
    }
}

/// Every decoder of what a peer sends, fed random and mangled bytes: a link message, a batch's
/// compressed records, an automerge change, a saved document. None may panic, and none may
/// allocate past the message limit; each either decodes or says what was wrong. Failing cases
/// print their seed and are kept in `proptest-regressions/`, which the normal test run replays.
#[cfg(test)]
mod hostile_input {
    use automerge::ActorId;
    use chrono::Utc;
    use proptest::prelude::*;

    use super::*;
    use crate::record::notice::Notice;
    use crate::record::{Record, RecordDoc};
    use crate::store::PreparedRecord;

    fn header() -> Header {
        let home = RegionCode::parse("home", "330411000000").unwrap();
        Header {
            id: RecordId::new(),
            kind: RecordKind::Notice,
            home,
            created_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .unwrap(),
            created_by: Author {
                node: home,
                user: "clerk".into(),
            },
        }
    }

    /// A real change: a notice as a county writes it.
    fn real_change() -> Vec<u8> {
        let notice = Notice {
            title: "关于做好代表联络站活动的通知".into(),
            category: "工作通知".into(),
            issued_on: Utc::now().date_naive(),
            audience: RegionCode::parse("audience", "330411000000").unwrap(),
            body: "各乡镇人大：请于月底前完成。".into(),
        };
        let doc = RecordDoc::create(&header(), &notice, &ActorId::random()).unwrap();
        doc.changes_since(&[])[0].raw_bytes().to_vec()
    }

    /// Opens whatever `bytes` decode to as a link message, as a receiving link would.
    fn receive(bytes: &[u8]) {
        super::untrusted::receive_link_message(bytes);
    }

    fn mangle(mut bytes: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
        for (at, value) in edits {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = *value;
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_link_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            receive(&bytes);
        }

        #[test]
        fn mangled_batches_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let sent = vec![OutgoingRecord { header: header(), changes: vec![real_change()] }];
            let msg = batch_message(1, Checkpoint { seq: 1, hash: Vec::new() }, sent);
            let bytes = mangle(prost::Message::encode_to_vec(&msg), &edits);
            receive(&bytes);
            // The compressed records alone, mangled after compression.
            let batch = match msg.body {
                Some(Body::Batch(batch)) => batch,
                other => panic!("not a batch: {other:?}"),
            };
            let _ = open_batch(Vec::new(), mangle(batch.deflated_records, &edits));
        }

        #[test]
        fn mangled_changes_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let change = mangle(real_change(), &edits);
            let _ = PreparedRecord::new(OutgoingRecord { header: header(), changes: vec![change] }, None, &untrusted::sample_context());
        }

        #[test]
        fn mangled_documents_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            random in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let notice_doc = {
                let notice = Notice {
                    title: "通知".into(),
                    category: "工作通知".into(),
                    issued_on: Utc::now().date_naive(),
                    audience: RegionCode::parse("audience", "330411000000").unwrap(),
                    body: "正文".into(),
                };
                RecordDoc::create(&header(), &notice, &ActorId::random()).unwrap().save()
            };
            for bytes in [mangle(notice_doc, &edits), random] {
                if let Ok(doc) = RecordDoc::load(&bytes, &ActorId::random()) {
                    let _ = Record::from_doc(&doc);
                }
            }
        }
    }
}
