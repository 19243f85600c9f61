//! The sync engine: one link between a child and its parent, both directions over one gRPC
//! stream.
//!
//! After the two `Hello`s, each side runs the same loop: send the next batch of changes the peer
//! lacks (filtered by the peer's routes, bounded in bytes), wait for its acknowledgement, and
//! when nothing is left say `CaughtUp`; meanwhile apply whatever the peer sends, acknowledging
//! each batch once it is durably stored. A link in [`Mode::Once`] ends when both sides are caught
//! up; in [`Mode::Live`] it waits for new writes and keeps going until the stream breaks.
//!
//! Layout: [`link`] is that loop as a state machine without I/O; this file holds `run_link`, the
//! adapter that carries out its actions against the store and the stream, the applying task
//! beside it, and batch compression and preparation; [`claims`] checks what a peer claims;
//! [`client`] dials the parent (`renda sync --once` and the child side of `renda run`);
//! [`untrusted`] is every decoding path of network input as one function each, for the fuzz
//! targets. The parent side of the gRPC service lives in the hub
//! crate.

pub mod claims;
pub mod client;
pub mod link;
pub mod pool;
pub mod untrusted;
pub mod version;

use std::time::Duration;

use renda_proto::PROTOCOL_VERSION;
use renda_proto::v1::{self, LinkMessage, link_message::Body};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use link::{Action, Applied, ApplyJob, Event, Link, LinkSettings};

use crate::record::{AnyHeader, Author, RecordId};
use crate::region::RegionCode;
use crate::route::{RouteHints, RoutePolicy};
use crate::store::{
    Checkpoint, IncomingRecord, MergeContext, OutgoingRecord, PreparedRecord, StoreError,
    StoreHandle, WriteTx,
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
    /// The CA this node signs its children's renewed certificates with (`[tls] issuing_ca`),
    /// if it holds one; a child's renewal is refused without it.
    pub issuing: Option<std::sync::Arc<crate::pki::Issuing>>,
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
    /// The protocol versions this node offers: this build's range, or, in the tests that
    /// stand one node in for an older release, a narrower one.
    pub versions: version::Versions,
}

/// The most prepared batches the store writes in one transaction.
pub const PREPARED_BATCHES: usize = 4;

/// Batches a node holds prepared at once, over all its links ([`LinkConfig::prepared`]): one
/// more than a link keeps in flight ([`link::WINDOW`]). A link in a first sync, whose merges run
/// below the node's priority ([`pool`]) and so hold their permits longer, then always leaves one
/// for another link's live round.
pub const PREPARE_PERMITS: usize = link::WINDOW + 1;
// The reason for the permit beyond the window, held at build time: a change to either constant
// that leaves no permit for another link fails to compile.
const _: () = assert!(PREPARE_PERMITS > link::WINDOW);

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
            issuing: None,
            timeout: DEFAULT_LINK_TIMEOUT,
            shutdown: CancellationToken::new(),
            prepared: std::sync::Arc::new(tokio::sync::Semaphore::new(PREPARE_PERMITS)),
            versions: version::Versions::this_build(),
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
    #[error("the peer sent a message of protocol version {got} on a link that speaks {agreed}")]
    Version { got: u32, agreed: u32 },
    /// The two ends may not link: no protocol version in common, or a federation setting
    /// they hold differently.
    #[error(transparent)]
    Mismatch(#[from] version::Mismatch),
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

/// A message of this build's protocol version.
pub fn message(body: Body) -> LinkMessage {
    message_at(PROTOCOL_VERSION, body)
}

/// A message of the version a link agreed on.
pub fn message_at(version: u32, body: Body) -> LinkMessage {
    LinkMessage {
        protocol_version: version,
        body: Some(body),
    }
}

/// Checks that a received message is of this build's protocol version and takes its body.
pub fn open(msg: LinkMessage) -> Result<Body, SyncError> {
    open_at(PROTOCOL_VERSION, msg)
}

/// Checks that a received message is of the version the link agreed on and takes its body.
pub fn open_at(agreed: u32, msg: LinkMessage) -> Result<Body, SyncError> {
    if msg.protocol_version != agreed {
        return Err(SyncError::Version {
            got: msg.protocol_version,
            agreed,
        });
    }
    msg.body
        .ok_or_else(|| SyncError::Protocol("a message without a body".into()))
}

/// The `Hello` that opens a link, whatever version it is stamped with (a child stamps it with
/// the lowest it speaks), with the range of versions its sender speaks.
pub fn open_hello(msg: LinkMessage) -> Result<(v1::Hello, version::Versions), SyncError> {
    match msg.body {
        Some(Body::Hello(hello)) => {
            let versions = version::Versions::of_hello(msg.protocol_version, &hello);
            Ok((hello, versions))
        }
        Some(_) => Err(SyncError::Protocol("a link must open with Hello".into())),
        None => Err(SyncError::Protocol("a message without a body".into())),
    }
}

/// This node's `Hello` fields beyond its checkpoint: the versions it speaks and the settings
/// its federation shares.
pub fn hello_offer(config: &LinkConfig, hello: v1::Hello) -> v1::Hello {
    v1::Hello {
        min_protocol_version: config.versions.min,
        max_protocol_version: config.versions.max,
        capabilities: Vec::new(),
        settings: version::federation_settings(&config.policy)
            .into_iter()
            .collect(),
        ..hello
    }
}

fn header_to_wire(h: AnyHeader, hints: Option<RouteHints>) -> v1::RecordHeader {
    v1::RecordHeader {
        id: h.id.to_string(),
        kind: h.kind,
        home: h.home.to_string(),
        created_at_ms: h.created_at.timestamp_millis(),
        created_by: h.created_by.to_string(),
        route: Some(route_to_wire(hints.unwrap_or_default())),
    }
}

fn route_to_wire(hints: RouteHints) -> v1::RecordRoute {
    v1::RecordRoute {
        owner_level: hints
            .owner_level
            .and_then(|level| serde_json::to_value(level).ok())
            .and_then(|name| name.as_str().map(str::to_string))
            .unwrap_or_default(),
        down: hints.down.iter().map(RegionCode::to_string).collect(),
        to: hints.to.iter().map(RegionCode::to_string).collect(),
        personal: hints.personal,
    }
}

/// A record's header and claimed routes as a peer sent them. A kind this release does not know
/// is no error: such a record is kept as it came ([`crate::record::merge::merge_newer_kind`]).
/// A malformed field is: the peer broke the protocol.
fn header_from_wire(h: &v1::RecordHeader) -> Result<(AnyHeader, Option<RouteHints>), SyncError> {
    let bad = |what: &str| SyncError::Protocol(format!("record header field {what} is malformed"));
    if !crate::record::Header::is_kind_name(&h.kind) {
        return Err(bad("kind"));
    }
    let header = AnyHeader {
        id: RecordId::parse("id", &h.id).map_err(|_| bad("id"))?,
        kind: h.kind.clone(),
        home: RegionCode::parse("home", &h.home).map_err(|_| bad("home"))?,
        created_at: chrono::DateTime::from_timestamp_millis(h.created_at_ms)
            .ok_or_else(|| bad("created_at_ms"))?,
        created_by: Author::parse(&h.created_by).ok_or_else(|| bad("created_by"))?,
    };
    Ok((
        header,
        h.route
            .as_ref()
            .and_then(|route| route_from_wire(&h.id, route)),
    ))
}

/// A record's claimed routes, or `None` when they do not read (a level or region this release
/// does not know, from a newer one). That fails no batch: a kind this release knows is routed
/// by its body anyway, and a record of a kind it does not know, with no routes it can read, is
/// refused alone (`route.missing`). A personal flag is obeyed even then.
fn route_from_wire(id: &str, route: &v1::RecordRoute) -> Option<RouteHints> {
    let regions = |codes: &[String]| {
        codes
            .iter()
            .map(|code| RegionCode::parse("route", code).ok())
            .collect::<Option<Vec<_>>>()
    };
    let owner_level = match route.owner_level.as_str() {
        "" => Some(None),
        name => crate::region::Level::parse("route.owner_level", name)
            .ok()
            .map(Some),
    };
    match (owner_level, regions(&route.down), regions(&route.to)) {
        (Some(owner_level), Some(down), Some(to)) => Some(RouteHints {
            owner_level,
            down,
            to,
            personal: route.personal,
        }),
        _ => {
            tracing::warn!(record = %crate::validate::quote(id), "a record's routes do not read; routing it by what this node can read");
            route.personal.then(|| RouteHints {
                personal: true,
                ..RouteHints::default()
            })
        }
    }
}

/// How hard a batch is compressed. Measured on a first sync's 12,004 records in batches of 607
/// (DEFLATE by zlib-rs): level 1 left 200 bytes a record in 18 ms, level 3 154 bytes in 34 ms,
/// level 6 142 bytes in 58 ms. A township's link is the slow part of its sync, and the sender
/// compresses each batch once; level 3 takes a quarter off the bytes for 1.3 µs a record.
const BATCH_COMPRESSION: u32 = 3;

/// A batch message with its records compressed. CPU work: build it off the async runtime.
fn batch_message(batch_id: u64, up_to: Checkpoint, records: Vec<OutgoingRecord>) -> LinkMessage {
    use std::io::Write;
    let plain = prost::Message::encode_to_vec(&v1::BatchRecords {
        records: records
            .into_iter()
            .map(|r| v1::RecordChanges {
                header: Some(header_to_wire(r.header, r.hints)),
                changes: r.changes,
            })
            .collect(),
    });
    let mut deflater = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(plain.len() / 2),
        flate2::Compression::new(BATCH_COMPRESSION),
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
    let count = records.len();
    pool::run("building a batch", count, move || {
        batch_message(batch_id, up_to, records)
    })
    .await
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
        let (header, hints) = header_from_wire(
            r.header
                .as_ref()
                .ok_or_else(|| SyncError::Protocol("a record without a header".into()))?,
        )?;
        changes += r.changes.len();
        bytes += r.changes.iter().map(Vec::len).sum::<usize>();
        out.push(IncomingRecord {
            header,
            hints,
            changes: r.changes,
        });
    }
    Ok((out, changes, bytes))
}

/// A batch being prepared (inflated, decoded, merged) for the applying task, with the permit
/// of [`LinkConfig::prepared`] it holds until written.
struct PreparedJob {
    batch_id: u64,
    up_to: Option<Checkpoint>,
    prepared: tokio::task::JoinHandle<Result<Prepared, SyncError>>,
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// Work for the task that applies a peer's messages in the order they came.
enum Job {
    Batch(PreparedJob),
    CaughtUp {
        seq: Checkpoint,
        epoch: u64,
        counts: bool,
    },
    ForgetReceived,
}

type Prepared = (Vec<PreparedRecord>, usize, usize);

/// Inflates and decodes a received batch, reads what the store holds of its records, and merges
/// each record once ([`PreparedRecord`]). The batch is cut into one part per core; each part's
/// held states are read on a reader thread of its own, and the part is merged on long-lived
/// threads (the bulk pool for a large batch, [`pool`]; the runtime's blocking threads otherwise)
/// as soon as its read is done. The parts' reads run side by side, and so do their merges: read
/// whole before any merge began, a hundred edited records waited 0.8 ms for one reader. Reading
/// on reader threads, a batch never waits behind the batch before it being written; the store
/// thread merges again only a record a write reached in between.
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
    let count = records.len();
    let mut parts = Vec::new();
    for part in in_parts(records) {
        let store = store.clone();
        parts.push(tokio::spawn(async move {
            let ids: Vec<RecordId> = part.iter().map(|r| r.header.id).collect();
            let stored = store.read(move |s| s.stored_states(&ids)).await?;
            let read_in = started.elapsed();
            let merged = pool::run("merging a batch", count, move || {
                part.into_iter()
                    .zip(stored)
                    .map(|(record, stored)| PreparedRecord::new(record, stored.as_ref(), &ctx))
                    .collect::<Vec<_>>()
            })
            .await?;
            Ok::<_, SyncError>((merged, read_in))
        }));
    }
    let (mut prepared, mut read_in) = (Vec::new(), std::time::Duration::ZERO);
    for part in parts {
        let (merged, read) = part.await.map_err(failed)??;
        prepared.extend(merged);
        read_in = read_in.max(read);
    }
    debug!(
        records = prepared.len(),
        stored_read_ms = read_in.as_secs_f64() * 1e3,
        prepared_ms = started.elapsed().as_secs_f64() * 1e3,
        "prepared batch"
    );
    Ok((prepared, changes, bytes))
}

/// Cuts `items` into one part per core (at most eight), keeping their order.
fn in_parts<T>(items: Vec<T>) -> Vec<Vec<T>> {
    // Asked once: the standard library reads three of the cgroup's files on every call, once a
    // batch before this.
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let workers = *WORKERS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
    });
    let per_part = items.len().div_ceil(workers).max(1);
    let mut items = items.into_iter();
    let mut parts = Vec::with_capacity(workers);
    loop {
        let part: Vec<T> = items.by_ref().take(per_part).collect();
        if part.is_empty() {
            return parts;
        }
        parts.push(part);
    }
}

/// Applies a peer's batches and checkpoints in arrival order and reports each once it is
/// durably stored; the link then acknowledges it. It runs beside the link so that the next
/// batch can arrive and be prepared while the store writes this one.
async fn apply_in_order(
    store: StoreHandle,
    peer: RegionCode,
    policy: RoutePolicy,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Result<Applied, SyncError>>,
) {
    // A job taken from the queue while gathering batches, to be done next.
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let results = match job {
            Job::Batch(first) => {
                // Batches prepared while the store wrote the one before are stored together, in
                // one transaction: one commit, and the index pages they share written once.
                let mut group = vec![first];
                while group.len() < PREPARED_BATCHES {
                    match jobs.try_recv() {
                        Ok(Job::Batch(batch)) if batch.prepared.is_finished() => group.push(batch),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match store_batches(&store, peer, policy, group).await {
                    Ok(applied) => applied.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                }
            }
            // A checkpoint with no records is a position that only moves forward: lost to a
            // power cut, the peer sends again from the older one.
            Job::CaughtUp { seq, epoch, counts } => vec![
                store
                    .write_unflushed(move |tx| {
                        tx.apply_incoming(&peer, Some(seq), Vec::new(), &policy)
                    })
                    .await
                    .map(|_| Applied::CaughtUp { epoch, counts })
                    .map_err(SyncError::from),
            ],
            Job::ForgetReceived => vec![
                store
                    .write(move |tx| tx.forget_received(&peer))
                    .await
                    .map(|()| Applied::Forgotten)
                    .map_err(SyncError::from),
            ],
        };
        for result in results {
            let failed = result.is_err();
            if done.send(result).is_err() || failed {
                return;
            }
        }
    }
}

/// Stores prepared batches in one transaction, each with the checkpoint that covers it, in
/// the order they came. A batch merged onto a snapshot that an earlier batch of the group has
/// since changed is merged again where it moved (`WriteTx::apply_prepared`).
async fn store_batches(
    store: &StoreHandle,
    peer: RegionCode,
    policy: RoutePolicy,
    group: Vec<PreparedJob>,
) -> Result<Vec<Applied>, SyncError> {
    let mut batches = Vec::with_capacity(group.len());
    let mut permits = Vec::with_capacity(group.len());
    for PreparedJob {
        batch_id,
        up_to,
        prepared,
        permit,
    } in group
    {
        let (records, changes, bytes) = prepared.await.map_err(|e| {
            SyncError::Protocol(format!("preparing batch {batch_id} failed: {e}"))
        })??;
        batches.push((batch_id, up_to, records, changes, bytes));
        permits.push(permit);
    }
    let count = batches.len();
    let applying = std::time::Instant::now();
    let (applied, storing) = store
        .write(move |tx| {
            let started = std::time::Instant::now();
            let mut applied = Vec::with_capacity(batches.len());
            for (batch_id, up_to, records, changes, bytes) in batches {
                let up_to_seq = up_to.as_ref().map_or(0, |c| c.seq);
                let outcome = tx.apply_prepared(&peer, up_to, records, &policy)?;
                applied.push(Applied::Batch {
                    batch_id,
                    up_to_seq,
                    outcome,
                    changes,
                    bytes,
                });
            }
            Ok((applied, started.elapsed()))
        })
        .await?;
    // Storing is the records' statements; the rest of the elapsed time is the commit and the
    // hand-over to and from the store thread.
    debug!(
        %peer,
        batches = count,
        changes = applied
            .iter()
            .map(|a| match a {
                Applied::Batch { outcome, .. } => outcome.changes_applied,
                _ => 0,
            })
            .sum::<usize>(),
        storing_ms = storing.as_secs_f64() * 1e3,
        elapsed_ms = applying.elapsed().as_secs_f64() * 1e3,
        "applied batch"
    );
    drop(permits);
    Ok(applied)
}

/// What the two `Hello`s settled: who the peer is, how far it says it has applied this node's
/// sequence (checked against this node's history before anything is sent,
/// [`claims::judge_received`]), and the protocol version both ends speak.
#[derive(Clone, Debug)]
pub struct Opened {
    pub peer: RegionCode,
    pub peer_claim: Checkpoint,
    pub version: u32,
}

/// Runs a link after the `Hello`s: the thin adapter that carries out a [`Link`]'s actions
/// against the store and the stream and feeds it what happens.
pub async fn run_link<S>(
    store: StoreHandle,
    opened: Opened,
    mut inbound: S,
    outbound: mpsc::Sender<LinkMessage>,
    mode: Mode,
    config: LinkConfig,
) -> Result<LinkReport, SyncError>
where
    S: InboundStream,
{
    // The peer's checkpoint of our sequence is checked against our history before we act on
    // it. We may have been restored from a backup (`renda restore` marks it), or from a copy of
    // our files (the peer then claims a position past our last, or names another change there
    // than we hold): our positions after the restore may repeat ones the peer has already
    // applied, and the writes we lost are only at the peers. Or the peer is wrong. Either way
    // its claim moves nothing here: we send everything from the start and ask it to resync, on
    // which it forgets its checkpoint of our sequence (so no reused position is skipped) and
    // sends everything back, our own lost writes included. A record's changes are unique by
    // hash, so what either side already holds costs bytes only.
    let Opened {
        peer,
        peer_claim,
        version,
    } = opened;
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
            Ok((start, s.identity().region))
        })
        .await?;
    let start = start?;
    let merging = MergeContext {
        me,
        peer,
        policy: config.policy,
    };
    // Records held back while the peer spoke protocol 6 go first, now that it can take them;
    // each is forgotten once the peer acknowledges the batch that carried it.
    let owed = if version::newer_kinds_reach(version) {
        store.read(move |s| s.held_back(&peer)).await?
    } else {
        Vec::new()
    };
    let settings = LinkSettings {
        peer,
        mode,
        repair: config.repair,
        timeout: config.timeout,
        owed,
        max_batch_bytes: config.max_batch_bytes,
    };
    let (mut link, opening) = Link::new(settings, start, std::time::Instant::now());
    let mut wire_out = 0usize;
    let mut wire_in = 0usize;
    let (jobs, jobs_rx) = mpsc::channel::<Job>(link::WINDOW + 2);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let applier = tokio::spawn(apply_in_order(
        store.clone(),
        peer,
        config.policy,
        jobs_rx,
        done_tx,
    ));
    let (notes, notes_rx) = mpsc::unbounded_channel::<Note>();
    let (notes_failed, mut note_failed) = mpsc::unbounded_channel();
    let notekeeper = tokio::spawn(keep_notes(store.clone(), notes_rx, notes_failed));
    let (reads_tx, mut reads) = mpsc::unbounded_channel::<Result<Event, SyncError>>();
    let mut written = store.subscribe();
    let mut queue: std::collections::VecDeque<Action> = opening.into();
    let policy = config.policy;
    loop {
        while let Some(action) = queue.pop_front() {
            let next = match action {
                Action::Send(body) => {
                    let msg = message_at(version, body);
                    wire_out += prost::Message::encoded_len(&msg);
                    outbound.send(msg).await.map_err(|_| SyncError::Closed)?;
                    None
                }
                Action::SendBatch {
                    batch_id,
                    up_to,
                    records,
                } => {
                    // A peer of protocol 6 fails a batch holding a kind it does not know, for
                    // good: such records wait for its upgrade, and the rest go.
                    let records = if version::newer_kinds_reach(version) {
                        records
                    } else {
                        let (send, held): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| {
                            r.header
                                .known()
                                .is_some_and(|h| version::kind_reaches(h.kind, version))
                        });
                        if !held.is_empty() {
                            warn!(%peer, records = held.len(), version, "not sending records of kinds the peer's protocol version cannot carry (kinds this release does not know, and those added since, such as revocations); they are sent once it speaks one that can");
                            let ids: Vec<RecordId> = held.iter().map(|r| r.header.id).collect();
                            store.write(move |tx| tx.hold_back(&peer, &ids)).await?;
                        }
                        send
                    };
                    let mut msg = build_batch_message(batch_id, up_to, records).await?;
                    msg.protocol_version = version;
                    wire_out += prost::Message::encoded_len(&msg);
                    outbound.send(msg).await.map_err(|_| SyncError::Closed)?;
                    None
                }
                // Reads run on a reader thread, a snapshot of what is committed, so a link never
                // waits behind the store's writes (the peer's own batches among them) to learn
                // what to send next; and beside the link, which meanwhile takes in the peer's
                // messages and acknowledges what was stored. The machine reads one at a time.
                Action::ReadOutgoing {
                    from,
                    skip_peer_origin,
                    max_bytes: max,
                } => {
                    let store = store.clone();
                    let read = reads_tx.clone();
                    tokio::spawn(async move {
                        let reading = std::time::Instant::now();
                        let batch = store
                            .read(move |s| {
                                s.outgoing_from(&peer, from, max, &policy, skip_peer_origin)
                            })
                            .await;
                        debug!(%peer, elapsed_ms = reading.elapsed().as_millis() as u64, "read outgoing batch");
                        let _ = read.send(batch.map(Event::Outgoing).map_err(SyncError::from));
                    });
                    None
                }
                Action::ReadFullRecords { ids } => {
                    let store = store.clone();
                    let read = reads_tx.clone();
                    tokio::spawn(async move {
                        let records = store
                            .read(move |s| s.full_records(&peer, &ids, &policy))
                            .await;
                        let _ = read.send(records.map(Event::FullRecords).map_err(SyncError::from));
                    });
                    None
                }
                Action::ReadDigest { purpose } => {
                    let ours = store.read(move |s| s.digest(&peer, &policy)).await?;
                    Some(Event::Digest { ours, purpose })
                }
                Action::ReadDigestEntries { marked, purpose } => {
                    let ours = store
                        .read(move |s| s.digest_entries(&peer, &policy, &marked))
                        .await?;
                    Some(Event::DigestEntries { ours, purpose })
                }
                Action::Apply(job) => {
                    let job = match job {
                        ApplyJob::Batch {
                            batch_id,
                            up_to,
                            records,
                            deflated,
                        } => {
                            // Room to prepare the batch may be a while coming when other links
                            // hold it; batches stored meanwhile are acknowledged at once, so
                            // the peer is not left waiting for this node's other work. (The
                            // semaphore is never closed, so acquiring only waits.)
                            let acquire = config.prepared.clone().acquire_owned();
                            tokio::pin!(acquire);
                            let permit = loop {
                                tokio::select! {
                                    permit = &mut acquire => break permit.map_err(|_| SyncError::Closed)?,
                                    applied = done.recv() => {
                                        let applied = match applied {
                                            Some(Ok(applied)) => applied,
                                            Some(Err(e)) => return Err(e),
                                            None => return Err(SyncError::Closed),
                                        };
                                        let now = std::time::Instant::now();
                                        for action in link.handle(Event::Applied(applied), now)? {
                                            match action {
                                                Action::Send(body) => {
                                                    let msg = message_at(version, body);
                                                    wire_out += prost::Message::encoded_len(&msg);
                                                    outbound.send(msg).await.map_err(|_| SyncError::Closed)?;
                                                }
                                                later => queue.push_back(later),
                                            }
                                        }
                                    }
                                }
                            };
                            let prepared = tokio::spawn(prepare_batch(
                                store.clone(),
                                merging,
                                records,
                                deflated,
                            ));
                            Job::Batch(PreparedJob {
                                batch_id,
                                up_to,
                                prepared,
                                permit,
                            })
                        }
                        ApplyJob::CaughtUp { seq, epoch, counts } => {
                            Job::CaughtUp { seq, epoch, counts }
                        }
                        ApplyJob::ForgetReceived => Job::ForgetReceived,
                    };
                    jobs.send(job).await.map_err(|_| SyncError::Closed)?;
                    None
                }
                Action::OweResync => {
                    store.write(move |tx| tx.owe_resync(&peer)).await?;
                    None
                }
                // What the peer acknowledged or refused is noted beside the link, in order: the
                // next batch is read and sent without waiting for the note's commit. A note lost
                // to a crash costs nothing the next link does not learn again from the peer's
                // Hello.
                Action::RecordAcked {
                    acked,
                    records,
                    changes,
                    bytes,
                    confirmed,
                } => {
                    let _ = notes.send(Note::position(move |tx: &mut WriteTx<'_>| {
                        tx.record_acked(&peer, acked, records, changes, bytes)?;
                        match confirmed {
                            Some(seq) => tx.record_confirmed(&peer, seq),
                            None => Ok(()),
                        }
                    }));
                    None
                }
                Action::RecordRefusedByPeer(refused) => {
                    let _ = notes.send(Note::audited(move |tx: &mut WriteTx<'_>| {
                        tx.record_refused_by_peer(&peer, &refused)
                    }));
                    None
                }
                Action::ForgetOwed(ids) => {
                    let _ = notes.send(Note::position(move |tx: &mut WriteTx<'_>| {
                        tx.forget_held_back(&peer, &ids)
                    }));
                    None
                }
                Action::RecordRound { resynced } => {
                    let _ = notes.send(Note::position(move |tx: &mut WriteTx<'_>| {
                        tx.record_link_success(&peer)?;
                        if resynced {
                            tx.mark_resynced(&peer)?;
                        }
                        Ok(())
                    }));
                    None
                }
                Action::Finish { result, drain } => {
                    // Close our half of the stream and let what is queued be applied. A drain
                    // (shutdown) acknowledges what the applying task finishes, within
                    // `DRAIN_TIMEOUT`; a finished round has nothing left to acknowledge.
                    drop(jobs);
                    if drain {
                        let acknowledge = async {
                            while let Some(Ok(applied)) = done.recv().await {
                                let Ok(actions) =
                                    link.handle(Event::Applied(applied), std::time::Instant::now())
                                else {
                                    break;
                                };
                                for action in actions {
                                    if let Action::Send(body) = action {
                                        let msg = message_at(version, body);
                                        wire_out += prost::Message::encoded_len(&msg);
                                        let _ = outbound.send(msg).await;
                                    }
                                }
                            }
                        };
                        let _ = tokio::time::timeout(DRAIN_TIMEOUT, acknowledge).await;
                    } else if result.is_ok() {
                        let _ = applier.await;
                    }
                    // Nothing more is sent: our half of the stream closes now, so the peer
                    // finishes its side while our notes are written rather than after.
                    drop(outbound);
                    // The notes are written before the link says it is done, so a finished
                    // round's success and acknowledgements are in the store once it returns.
                    drop(notes);
                    let _ = notekeeper.await;
                    let mut report = link.report().clone();
                    report.wire_bytes_sent = wire_out;
                    report.wire_bytes_received = wire_in;
                    if result.is_ok() && mode == Mode::Once {
                        let drain =
                            async { while let Ok(Some(_)) = inbound.next_message().await {} };
                        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                    }
                    return result.map(|()| report);
                }
            };
            if let Some(event) = next {
                queue.extend(link.handle(event, std::time::Instant::now())?);
            }
        }
        queue.extend(link.poll(std::time::Instant::now()));
        if !queue.is_empty() {
            continue;
        }
        let reply_by = link.reply_by().map(tokio::time::Instant::from_std);
        let wants_writes = link.wants_writes();
        let event = tokio::select! {
            // Shutting down goes first, then messages that are waiting: a link that was busy
            // with its store is not stalled because the peer's answer is already here.
            biased;
            () = config.shutdown.cancelled() => Event::Shutdown,
            msg = inbound.next_message() => match msg? {
                None => Event::PeerClosed,
                Some(msg) => {
                    wire_in += prost::Message::encoded_len(&msg);
                    Event::Received(open_at(version, msg)?)
                }
            },
            applied = done.recv() => match applied {
                Some(Ok(applied)) => Event::Applied(applied),
                Some(Err(e)) => return Err(e),
                None => return Err(SyncError::Closed),
            },
            Some(e) = note_failed.recv() => return Err(e),
            read = reads.recv() => match read {
                Some(read) => read?,
                None => return Err(SyncError::Closed),
            },
            changed = written.changed(), if wants_writes => match changed {
                Ok(()) => Event::Written,
                Err(_) => Event::PeerClosed,
            },
            _ = tokio::time::sleep(config.poll), if wants_writes => Event::Written,
            _ = sleep_until_or_never(reply_by) => Event::Tick,
        };
        queue.extend(link.handle(event, std::time::Instant::now())?);
    }
}

/// What a [`Note`] writes.
type NoteWrite = Box<dyn FnOnce(&mut WriteTx<'_>) -> Result<(), StoreError> + Send>;

/// A note of what the peer said, written beside the link ([`keep_notes`]).
struct Note {
    write: NoteWrite,
    /// Whether the note is more than a position that only moves forward (a peer's refusal,
    /// kept for audit) and is flushed to disk; the rest are bookkeeping whose loss costs only
    /// a resend, committed without a flush ([`crate::store::Store::write_unflushed`]).
    flushed: bool,
}

impl Note {
    /// A position that only moves forward, committed without a flush.
    fn position(
        write: impl FnOnce(&mut WriteTx<'_>) -> Result<(), StoreError> + Send + 'static,
    ) -> Note {
        Note {
            write: Box::new(write),
            flushed: false,
        }
    }

    /// What a peer said that is kept for audit, flushed.
    fn audited(
        write: impl FnOnce(&mut WriteTx<'_>) -> Result<(), StoreError> + Send + 'static,
    ) -> Note {
        Note {
            write: Box::new(write),
            flushed: true,
        }
    }
}

/// Writes a link's notes in the order they came, those waiting together in one transaction,
/// flushed if any of them is to be. A failed write is the store failing: the link learns it
/// through `failed` and ends.
async fn keep_notes(
    store: StoreHandle,
    mut notes: mpsc::UnboundedReceiver<Note>,
    failed: mpsc::UnboundedSender<SyncError>,
) {
    while let Some(first) = notes.recv().await {
        let mut waiting = vec![first];
        while let Ok(next) = notes.try_recv() {
            waiting.push(next);
        }
        let flushed = waiting.iter().any(|note| note.flushed);
        let write =
            move |tx: &mut WriteTx<'_>| waiting.into_iter().try_for_each(|note| (note.write)(tx));
        let written = if flushed {
            store.write(write).await
        } else {
            store.write_unflushed(write).await
        };
        if let Err(e) = written {
            let _ = failed.send(e.into());
            return;
        }
    }
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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
    use crate::record::{Header, RecordKind};

    /// A route a later release wrote, with a level this one does not know, fails no batch: the
    /// record is routed by what this node can read, and a personal flag is obeyed all the same.
    #[test]
    fn a_route_that_does_not_read_fails_no_batch() {
        let route = |owner_level: &str, personal: bool| v1::RecordRoute {
            owner_level: owner_level.into(),
            down: vec!["330411000000".into()],
            to: Vec::new(),
            personal,
        };
        let read = route_from_wire("r", &route("county", false)).expect("a route that reads");
        assert_eq!(read.owner_level, Some(crate::region::Level::County));
        assert_eq!(route_from_wire("r", &route("district", false)), None);
        assert_eq!(
            route_from_wire("r", &route("district", true)),
            Some(RouteHints {
                personal: true,
                ..RouteHints::default()
            })
        );
        let mut bad_region = route("", false);
        bad_region.to = vec!["33041".into()];
        assert_eq!(route_from_wire("r", &bad_region), None);
    }

    fn record(user: &str, changes: Vec<Vec<u8>>) -> OutgoingRecord {
        let home = RegionCode::parse("home", "330411101000").unwrap();
        OutgoingRecord {
            hints: Some(RouteHints::default()),
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
            }
            .into(),
            changes,
        }
    }

    fn body_of(msg: LinkMessage) -> v1::ChangeBatch {
        match msg.body {
            Some(Body::Batch(batch)) => batch,
            other => panic!("not a batch: {other:?}"),
        }
    }

    /// A batch is cut into parts that keep its records' order, each record in exactly one part
    /// and no part empty, however many records it holds.
    #[test]
    fn a_batch_is_cut_into_parts_in_order() {
        for n in [0, 1, 2, 3, 7, 100, 607] {
            let parts = in_parts((0..n).collect::<Vec<usize>>());
            assert!(parts.iter().all(|p| !p.is_empty()), "{n} records");
            assert!(parts.len() <= 8 && parts.len() <= n, "{n} records");
            assert_eq!(parts.concat(), (0..n).collect::<Vec<_>>(), "{n} records");
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
    use crate::record::{Header, Record, RecordDoc, RecordKind};
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
            let sent = vec![OutgoingRecord { header: header().into(), hints: None, changes: vec![real_change()] }];
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
            let _ = PreparedRecord::new(OutgoingRecord { header: header().into(), hints: None, changes: vec![change] }, None, &untrusted::sample_context());
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
