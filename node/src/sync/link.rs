//! [`Link`]: one end of a sync link as a state machine without I/O. Events in (a message from
//! the peer, the answer to a read it asked for, a batch applied, a local write, the clock),
//! actions out (send, read, apply, acknowledge, note in the store, finish). Both ends run the
//! same machine; `run_link` in the parent module is the thin adapter that carries its actions
//! out against the store and the gRPC stream, and the tests below drive every branch of it
//! without a socket.
//!
//! What the machine keeps: where the next batch of this node's changes starts and which batches
//! are in flight (at most [`WINDOW`], so the peer prepares one while it stores the other);
//! whether each side has said it is caught up (a peer's `CaughtUp` counts only if nothing it
//! sent after it said otherwise, which `remote_epoch` tracks); a resync asked for or answered;
//! a repair's digest exchange; and when a reply from the peer became due, for the stall rule.
//! Every number the peer sends passes a check in [`super::claims`] before it moves anything.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use renda_proto::v1::{self, link_message::Body};
use tracing::{debug, warn};

use super::claims::{self, ResyncReason, Start};
use super::{LinkReport, Mode, SyncError};
use crate::record::RecordId;
use crate::region::RegionCode;
use crate::store::{ApplyOutcome, Checkpoint, OutgoingBatch, OutgoingRecord, Refused};

/// How many batches a sender keeps unacknowledged. Two let the receiver prepare one batch while
/// its store writes the other. In a first sync the receiver merges large batches below its
/// store thread's priority (`sync::pool`), in whatever time the store thread leaves, so a merge
/// takes longer than the store's write of the batch before; with four in flight the next batch
/// is more often ready when the store wants it (docs/benchmarks.md, the receive path's ninth
/// measurement).
pub const WINDOW: usize = 4;

/// The first batch a link sends holds at most this many bytes of changes, and each batch after
/// holds twice the one before, up to [`LinkSettings::max_batch_bytes`]. The receiver's store
/// cannot start before the first batch is decoded and merged: a first sync's first full batch
/// (1,237 records) took 41 ms to prepare, the store idle meanwhile, where a batch of this size
/// takes about two.
pub const FIRST_BATCH_BYTES: usize = 32 * 1024;

/// The slowest line a link is expected to run over (a township's, 64 KiB/s): a batch in flight
/// gets this long per byte, beyond the timeout, before its acknowledgement is overdue.
const SLOWEST_LINK_BYTES_PER_SEC: usize = 64 * 1024;

/// What happened, as the adapter tells the machine.
#[derive(Debug)]
pub enum Event {
    /// A message from the peer (its version already checked).
    Received(Body),
    /// The answer to [`Action::ReadOutgoing`].
    Outgoing(OutgoingBatch),
    /// The answer to [`Action::ReadFullRecords`].
    FullRecords(Vec<OutgoingRecord>),
    /// The answer to [`Action::ReadDigest`]: this node's buckets.
    Digest { ours: Vec<u64>, purpose: DigestUse },
    /// The answer to [`Action::ReadDigestEntries`]: this node's records in the marked buckets.
    DigestEntries {
        ours: Vec<(String, Vec<u8>)>,
        purpose: EntriesUse,
    },
    /// The applying side finished a job given in [`Action::Apply`].
    Applied(Applied),
    /// Something was written here (live links only): there may be more to send.
    Written,
    /// The peer closed its half of the stream.
    PeerClosed,
    /// The node is shutting down.
    Shutdown,
    /// Time passed; the adapter sends it when [`Link::reply_by`] comes.
    Tick,
}

/// Why this node's digest was read.
#[derive(Debug, PartialEq)]
pub enum DigestUse {
    /// To open a repair: sent to the peer.
    Offer,
    /// To compare with the peer's.
    Compare(Vec<u64>),
}

/// Why this node's digest entries were read.
#[derive(Debug, PartialEq)]
pub enum EntriesUse {
    /// To answer the peer's digest: sent to it.
    Answer,
    /// To compare with the peer's entries and resend what differs.
    Compare(HashMap<String, Vec<u8>>),
}

/// A job for the side that applies the peer's messages in the order they came.
#[derive(Debug, PartialEq)]
pub enum ApplyJob {
    /// A batch to decode, merge and store with the checkpoint it brings (`None`: resent
    /// records, which move no checkpoint).
    Batch {
        batch_id: u64,
        up_to: Option<Checkpoint>,
        records: Vec<v1::RecordChanges>,
        deflated: Vec<u8>,
    },
    /// The peer is caught up to `seq`. `epoch` and `counts` come from when it arrived: whether
    /// it still said the peer was done once everything before it was applied.
    CaughtUp {
        seq: Checkpoint,
        epoch: u64,
        counts: bool,
    },
    /// The peer asked to resync: forget how far this node applied its sequence, in order with
    /// the batches around it.
    ForgetReceived,
}

/// A finished [`ApplyJob`].
#[derive(Debug)]
pub enum Applied {
    Batch {
        batch_id: u64,
        up_to_seq: i64,
        outcome: ApplyOutcome,
        changes: usize,
        bytes: usize,
    },
    CaughtUp {
        epoch: u64,
        counts: bool,
    },
    Forgotten,
}

/// What the machine asks the adapter to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Send a message.
    Send(Body),
    /// Compress and send a batch of this node's changes.
    SendBatch {
        batch_id: u64,
        up_to: Checkpoint,
        records: Vec<OutgoingRecord>,
    },
    /// Read the next batch for the peer, from position `from`; answer with
    /// [`Event::Outgoing`].
    ReadOutgoing {
        from: i64,
        skip_peer_origin: bool,
        /// The batch stops growing once it holds this many bytes of changes.
        max_bytes: usize,
    },
    /// Read these records whole; answer with [`Event::FullRecords`].
    ReadFullRecords { ids: Vec<RecordId> },
    /// Read this node's digest for the peer; answer with [`Event::Digest`].
    ReadDigest { purpose: DigestUse },
    /// Read this node's records in the marked buckets; answer with [`Event::DigestEntries`].
    ReadDigestEntries {
        marked: Vec<bool>,
        purpose: EntriesUse,
    },
    /// Hand a job to the applying side; it answers with [`Event::Applied`].
    Apply(ApplyJob),
    /// Note that this node owes the peer a completed resync.
    OweResync,
    /// Note the peer's acknowledgement: how far it holds this node's sequence, what the batch
    /// moved, and the position it stored with its checkpoint (which it may claim later).
    RecordAcked {
        acked: i64,
        records: usize,
        changes: usize,
        bytes: usize,
        confirmed: Option<i64>,
    },
    /// Note the records the peer refused.
    RecordRefusedByPeer(Vec<Refused>),
    /// Note that records owed to the peer ([`LinkSettings::owed`]) reached it.
    ForgetOwed(Vec<RecordId>),
    /// Note a completed round, and the end of a resync if it was one.
    RecordRound { resynced: bool },
    /// End the link: `Ok` after a finished round, a live link's end or a shutdown (`drain`: let
    /// what was received be applied and acknowledged first); `Err` for anything else.
    Finish {
        result: Result<(), SyncError>,
        drain: bool,
    },
}

/// What a link is started with.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    pub peer: RegionCode,
    pub mode: Mode,
    /// Compare digests first and resend what differs (`renda sync --once --repair`).
    pub repair: bool,
    /// How long the peer may stay silent while a reply is due (see `LinkConfig::timeout`).
    pub timeout: Duration,
    /// Records held back from the peer while it spoke a protocol that cannot carry their
    /// kind (`version::newer_kinds_reach`), resent whole first now that it can.
    pub owed: Vec<RecordId>,
    /// The largest batch this node sends, in bytes of changes (`LinkConfig::max_batch_bytes`).
    pub max_batch_bytes: usize,
}

/// A batch sent and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    batch_id: u64,
    /// Where the peer's checkpoint stands once it acknowledges; `None` for resent records,
    /// which do not move it.
    up_to_seq: Option<i64>,
    records: usize,
    changes: usize,
    bytes: usize,
    /// The records of the batch that were owed to the peer ([`LinkSettings::owed`]): no longer
    /// owed once it acknowledges.
    owed: Vec<RecordId>,
}

/// One end of a link. See the module documentation.
#[derive(Debug)]
pub struct Link {
    settings: LinkSettings,
    /// How far the peer has acknowledged this node's sequence.
    cursor: i64,
    /// Where the next batch starts: after the last batch sent, acknowledged or not.
    next_from: i64,
    next_batch_id: u64,
    in_flight: VecDeque<InFlight>,
    resend: Vec<RecordId>,
    /// A record is resent whole at most once per link.
    resent: HashSet<RecordId>,
    /// The records owed to the peer at the link's start ([`LinkSettings::owed`]).
    owed: HashSet<RecordId>,
    caught_up_sent: Option<i64>,
    local_done: bool,
    /// A read for the next batch is out.
    reading: bool,
    /// How large the next batch may grow ([`FIRST_BATCH_BYTES`]).
    batch_bytes: usize,
    /// The read that is out was overtaken while the adapter carried it out (which it does
    /// beside the link): a resync restarted this node's sequence, or the peer asked for
    /// records whole. An outgoing batch read before that is dropped and read again.
    read_overtaken: bool,
    /// The last read found nothing while batches were in flight: read again only after
    /// something happens.
    idle: bool,
    /// Changes that came from the peer are left out of what is sent to it, unless it lost them
    /// in a restore and asked for everything back.
    skip_peer_origin: bool,
    remote_done: bool,
    /// Bumped by every message after which the peer is not done; a `CaughtUp` counts only if no
    /// such message came after it by the time it is applied.
    remote_epoch: u64,
    /// The peer asked to resync on this link: once is all an honest peer needs.
    peer_resynced: bool,
    /// This link started with a resync this node asked for.
    resyncing: bool,
    /// This node's `Resync` is unanswered: a `CaughtUp` from before the answer is stale.
    awaiting_resync: bool,
    awaiting_entries: bool,
    awaiting_peer_done: bool,
    /// Which digest buckets differ, once compared.
    differing: Vec<bool>,
    last_heard: Instant,
    /// When a reply last became due (idle time before it does not count against the peer).
    due_since: Option<Instant>,
    report: LinkReport,
    finished: bool,
}

impl Link {
    /// A link whose peer's checkpoint was judged `start` ([`claims::judge_received`]), with the
    /// actions that open it.
    pub fn new(mut settings: LinkSettings, start: Start, now: Instant) -> (Link, Vec<Action>) {
        let owed = std::mem::take(&mut settings.owed);
        let mut link = Link {
            settings,
            cursor: 0,
            next_from: 0,
            next_batch_id: 1,
            in_flight: VecDeque::new(),
            resend: owed.clone(),
            resent: HashSet::new(),
            owed: owed.into_iter().collect(),
            caught_up_sent: None,
            local_done: false,
            reading: false,
            batch_bytes: FIRST_BATCH_BYTES,
            read_overtaken: false,
            idle: false,
            skip_peer_origin: true,
            remote_done: false,
            remote_epoch: 0,
            peer_resynced: false,
            resyncing: false,
            awaiting_resync: false,
            awaiting_entries: false,
            awaiting_peer_done: false,
            differing: Vec::new(),
            last_heard: now,
            due_since: None,
            report: LinkReport::default(),
            finished: false,
        };
        let mut actions = Vec::new();
        match start {
            Start::Resume(from) => {
                link.cursor = from;
                link.next_from = from;
            }
            Start::Resync(reason) => {
                let peer = link.settings.peer;
                warn!(%peer, ?reason, "resending everything and asking the peer to resync");
                if reason != ResyncReason::Restored {
                    // Owed until a round completes after the peer's resend: if this link breaks
                    // first, the peer has already forgotten its checkpoint and would claim
                    // nothing wrong next time, but this node's lost writes would still be only
                    // at the peer.
                    actions.push(Action::OweResync);
                }
                actions.push(Action::Send(Body::Resync(v1::Resync { ack: false })));
                link.awaiting_resync = true;
                link.resyncing = true;
            }
        }
        if link.settings.repair {
            // Both sides send a digest of the records they should share; each then lists its
            // records in the buckets that differ, and each resends the records the other lacks
            // or holds at other heads. `DigestDone` says the sender has queued those resends.
            actions.push(Action::ReadDigest {
                purpose: DigestUse::Offer,
            });
            link.awaiting_entries = true;
            link.awaiting_peer_done = true;
        }
        link.note_time(now);
        (link, actions)
    }

    /// What the link moved so far.
    pub fn report(&self) -> &LinkReport {
        &self.report
    }

    /// Whether the link waits for local writes: a live link with nothing left to send.
    pub fn wants_writes(&self) -> bool {
        self.local_done && self.settings.mode == Mode::Live && !self.finished
    }

    /// When the peer's silence drops the link, if a reply is due.
    pub fn reply_by(&self) -> Option<Instant> {
        let due_since = self.due_since?;
        // A peer that is alive answers keepalive pings within a third of the timeout; this is
        // for one that is alive but does not answer. It gets twice the timeout, and time to
        // take in the bytes in flight at a slow township line's pace.
        let in_flight_bytes: usize = self.in_flight.iter().map(|f| f.bytes).sum();
        Some(
            self.last_heard.max(due_since)
                + self.settings.timeout * 2
                + Duration::from_secs((in_flight_bytes / SLOWEST_LINK_BYTES_PER_SEC) as u64),
        )
    }

    fn reply_due(&self) -> bool {
        !self.in_flight.is_empty()
            || self.awaiting_resync
            || self.awaiting_entries
            || self.awaiting_peer_done
            || (self.settings.mode == Mode::Once && !self.remote_done)
    }

    fn note_time(&mut self, now: Instant) {
        match (self.reply_due(), self.due_since) {
            (true, None) => self.due_since = Some(now),
            (false, Some(_)) => self.due_since = None,
            _ => {}
        }
    }

    /// The next thing the link does on its own once the adapter has carried out every action
    /// so far: read what to send next, or finish a round that is complete.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.finished {
            return actions;
        }
        if !self.reading && !self.idle && self.in_flight.len() < WINDOW && !self.local_done {
            // A record is resent whole at most once per link: an honest peer is complete after
            // one full history, and a peer that keeps asking must not keep the link busy.
            let ids: Vec<RecordId> = std::mem::take(&mut self.resend)
                .into_iter()
                .filter(|id| self.resent.insert(*id))
                .collect();
            self.reading = true;
            if !ids.is_empty() {
                actions.push(Action::ReadFullRecords { ids });
            } else {
                actions.push(Action::ReadOutgoing {
                    from: self.next_from,
                    skip_peer_origin: self.skip_peer_origin,
                    max_bytes: self.batch_bytes.min(self.settings.max_batch_bytes).max(1),
                });
            }
        }
        if actions.is_empty()
            && self.settings.mode == Mode::Once
            && self.local_done
            && self.remote_done
            && self.in_flight.is_empty()
            && !self.awaiting_entries
            && !self.awaiting_peer_done
        {
            actions.push(Action::RecordRound {
                resynced: self.resyncing && !self.awaiting_resync,
            });
            actions.push(self.finish(Ok(()), false));
        }
        self.note_time(now);
        actions
    }

    /// Marks the read that is out, if one is, as overtaken ([`Link::read_overtaken`]).
    fn overtake_read(&mut self) {
        if self.reading {
            self.read_overtaken = true;
        }
    }

    fn finish(&mut self, result: Result<(), SyncError>, drain: bool) -> Action {
        self.finished = true;
        Action::Finish { result, drain }
    }

    /// Takes in one event and returns what to do about it. An error is a peer that broke the
    /// protocol: the adapter ends the link with it.
    pub fn handle(&mut self, event: Event, now: Instant) -> Result<Vec<Action>, SyncError> {
        let mut actions = Vec::new();
        match event {
            Event::Received(body) => {
                self.last_heard = now;
                self.idle = false;
                self.received(body, &mut actions)?;
            }
            Event::Outgoing(batch) => {
                self.reading = false;
                if !std::mem::take(&mut self.read_overtaken) {
                    self.outgoing(batch, &mut actions);
                }
            }
            Event::FullRecords(records) => {
                // Records read whole are sent whatever happened meanwhile: a resync does not
                // make them wrong, and they are taken off the list to resend.
                self.reading = false;
                self.read_overtaken = false;
                if !records.is_empty() {
                    let changes = records.iter().map(|r| r.changes.len()).sum();
                    let bytes = records.iter().flat_map(|r| &r.changes).map(Vec::len).sum();
                    self.in_flight.push_back(InFlight {
                        batch_id: self.next_batch_id,
                        up_to_seq: None,
                        records: records.len(),
                        changes,
                        bytes,
                        owed: records
                            .iter()
                            .map(|r| r.header.id)
                            .filter(|id| self.owed.contains(id))
                            .collect(),
                    });
                    actions.push(Action::SendBatch {
                        batch_id: self.next_batch_id,
                        up_to: Checkpoint::default(),
                        records,
                    });
                    self.next_batch_id += 1;
                }
            }
            Event::Digest { ours, purpose } => match purpose {
                DigestUse::Offer => {
                    actions.push(Action::Send(Body::Digest(v1::Digest { buckets: ours })))
                }
                DigestUse::Compare(theirs) => {
                    if theirs.len() != ours.len() {
                        return Err(SyncError::Protocol(format!(
                            "a digest of {} buckets; expected {}",
                            theirs.len(),
                            ours.len()
                        )));
                    }
                    self.differing = ours.iter().zip(&theirs).map(|(a, b)| a != b).collect();
                    actions.push(Action::ReadDigestEntries {
                        marked: self.differing.clone(),
                        purpose: EntriesUse::Answer,
                    });
                }
            },
            Event::DigestEntries { ours, purpose } => match purpose {
                EntriesUse::Answer => {
                    debug!(peer = %self.settings.peer, entries = ours.len(), "digest compared");
                    actions.push(Action::Send(Body::DigestEntries(v1::DigestEntries {
                        entries: ours
                            .into_iter()
                            .map(|(id, heads)| v1::RecordDigest { id, heads })
                            .collect(),
                    })));
                }
                EntriesUse::Compare(theirs) => {
                    for (id, heads) in ours {
                        if theirs.get(&id) != Some(&heads) {
                            let id = RecordId::parse("digest.id", &id)
                                .map_err(|e| SyncError::Protocol(e.to_string()))?;
                            self.resend.push(id);
                        }
                    }
                    if !self.resend.is_empty() {
                        warn!(peer = %self.settings.peer, records = self.resend.len(), "repair: resending records the peer lacks or holds at other heads");
                    }
                    self.awaiting_entries = false;
                    self.overtake_read();
                    self.local_done = false;
                    self.idle = false;
                    self.caught_up_sent = None;
                    actions.push(Action::Send(Body::DigestDone(v1::DigestDone {})));
                }
            },
            Event::Applied(applied) => {
                self.idle = false;
                self.applied(applied, &mut actions);
            }
            Event::Written => {
                if self.settings.mode == Mode::Live {
                    self.local_done = false;
                    self.idle = false;
                }
            }
            Event::PeerClosed => {
                let result = match self.settings.mode {
                    Mode::Live => Ok(()),
                    Mode::Once => Err(SyncError::Closed),
                };
                actions.push(self.finish(result, false));
            }
            Event::Shutdown => {
                // What was received is applied and acknowledged, so the peer need not send it
                // again; a live link ends as it would when the peer goes, a round that was to
                // finish both ways did not.
                debug!(peer = %self.settings.peer, "the node is shutting down; draining the link");
                let result = match self.settings.mode {
                    Mode::Live => Ok(()),
                    Mode::Once => Err(SyncError::Closed),
                };
                actions.push(self.finish(result, true));
            }
            Event::Tick => {
                if self.reply_by().is_some_and(|by| now >= by) {
                    warn!(peer = %self.settings.peer, timeout = ?self.settings.timeout, in_flight = self.in_flight.len(), "the peer stopped answering; dropping the link");
                    let stalled = SyncError::Stalled(self.settings.timeout);
                    actions.push(self.finish(Err(stalled), false));
                }
            }
        }
        self.note_time(now);
        Ok(actions)
    }

    fn outgoing(&mut self, batch: OutgoingBatch, actions: &mut Vec<Action>) {
        if batch.changes == 0 && !self.in_flight.is_empty() {
            // Nothing more to send; say so once the batches in flight are acknowledged.
            self.idle = true;
        } else if batch.changes == 0 {
            self.cursor = batch.up_to_seq;
            self.next_from = self.cursor;
            if self.caught_up_sent != Some(self.cursor) {
                actions.push(Action::Send(Body::CaughtUp(v1::CaughtUp {
                    seq: self.cursor,
                    hash: batch.up_to_hash,
                })));
                self.caught_up_sent = Some(self.cursor);
                // Everything up to the cursor is acknowledged or not the peer's to hold.
                actions.push(Action::RecordAcked {
                    acked: self.cursor,
                    records: 0,
                    changes: 0,
                    bytes: 0,
                    confirmed: None,
                });
            }
            self.local_done = true;
            // A burst of writes after this starts small again.
            self.batch_bytes = FIRST_BATCH_BYTES;
        } else {
            debug!(peer = %self.settings.peer, changes = batch.changes, bytes = batch.bytes, up_to = batch.up_to_seq, "sending batch");
            self.in_flight.push_back(InFlight {
                batch_id: self.next_batch_id,
                up_to_seq: Some(batch.up_to_seq),
                records: batch.records.len(),
                changes: batch.changes,
                bytes: batch.bytes,
                owed: Vec::new(),
            });
            actions.push(Action::SendBatch {
                batch_id: self.next_batch_id,
                up_to: Checkpoint {
                    seq: batch.up_to_seq,
                    hash: batch.up_to_hash,
                },
                records: batch.records,
            });
            self.next_from = batch.up_to_seq;
            self.next_batch_id += 1;
            self.batch_bytes = self
                .batch_bytes
                .saturating_mul(2)
                .min(self.settings.max_batch_bytes);
        }
    }

    fn received(&mut self, body: Body, actions: &mut Vec<Action>) -> Result<(), SyncError> {
        match body {
            Body::Batch(batch) => {
                self.remote_done = false;
                self.remote_epoch += 1;
                // A batch of resent records (position 0) moves no checkpoint.
                let up_to = match batch.up_to_seq {
                    0 => None,
                    seq => Some(claims::check_peer_checkpoint(
                        "batch.up_to_seq",
                        seq,
                        &batch.up_to_hash,
                    )?),
                };
                actions.push(Action::Apply(ApplyJob::Batch {
                    batch_id: batch.batch_id,
                    up_to,
                    records: batch.records,
                    deflated: batch.deflated_records,
                }));
            }
            Body::Ack(ack) => self.acknowledged(ack, actions)?,
            Body::CaughtUp(c) => {
                let seq = claims::check_peer_checkpoint("caught_up.seq", c.seq, &c.hash)?;
                let counts = !self.awaiting_resync && !self.awaiting_peer_done;
                actions.push(Action::Apply(ApplyJob::CaughtUp {
                    seq,
                    epoch: self.remote_epoch,
                    counts,
                }));
            }
            Body::Digest(theirs) => actions.push(Action::ReadDigest {
                purpose: DigestUse::Compare(theirs.buckets),
            }),
            Body::DigestEntries(theirs) => {
                if self.differing.is_empty() {
                    return Err(SyncError::Protocol("digest entries before a digest".into()));
                }
                actions.push(Action::ReadDigestEntries {
                    marked: self.differing.clone(),
                    purpose: EntriesUse::Compare(
                        theirs
                            .entries
                            .into_iter()
                            .map(|e| (e.id, e.heads))
                            .collect(),
                    ),
                });
            }
            Body::DigestDone(_) => {
                self.awaiting_peer_done = false;
                self.remote_done = false;
                self.remote_epoch += 1;
            }
            Body::Resync(v1::Resync { ack: true }) => {
                self.awaiting_resync = false;
                self.remote_done = false;
                self.remote_epoch += 1;
            }
            Body::Resync(v1::Resync { ack: false }) => {
                if std::mem::replace(&mut self.peer_resynced, true) {
                    return Err(SyncError::Protocol("a second Resync on one link".into()));
                }
                warn!(peer = %self.settings.peer, "the peer asked to resync; forgetting its checkpoint and resending everything it holds");
                actions.push(Action::Apply(ApplyJob::ForgetReceived));
                actions.push(Action::Send(Body::Resync(v1::Resync { ack: true })));
                self.skip_peer_origin = false;
                self.cursor = 0;
                self.next_from = 0;
                // Everything is resent: from small batches again, so the peer starts storing.
                self.batch_bytes = FIRST_BATCH_BYTES;
                self.caught_up_sent = None;
                self.local_done = false;
                self.overtake_read();
                // Acknowledgements still to come must not move the restarted cursor.
                for flight in self.in_flight.iter_mut() {
                    flight.up_to_seq = None;
                }
            }
            Body::Hello(_) => {
                return Err(SyncError::Protocol("a second Hello on an open link".into()));
            }
        }
        Ok(())
    }

    fn acknowledged(
        &mut self,
        ack: v1::BatchAck,
        actions: &mut Vec<Action>,
    ) -> Result<(), SyncError> {
        let Some(flight) = self.in_flight.pop_front() else {
            return Err(SyncError::Protocol(
                "an acknowledgement with no batch in flight".into(),
            ));
        };
        if ack.batch_id != flight.batch_id {
            return Err(SyncError::Protocol(format!(
                "acknowledgement of batch {} while {} is in flight",
                ack.batch_id, flight.batch_id
            )));
        }
        claims::check_ack(ack.missing.len(), ack.rejected.len(), flight.records)?;
        let malformed = |id: &str| {
            SyncError::Protocol(format!(
                "malformed record id {} in an acknowledgement",
                crate::validate::quote(id)
            ))
        };
        if !ack.rejected.is_empty() {
            // This node's changes to these records will not reach the peer: data it holds is
            // not going where its routes say. The peer's words are kept short: they go to the
            // log and to `renda status`.
            let refused = ack
                .rejected
                .iter()
                .map(|r| {
                    let record = RecordId::parse("rejected.record", &r.record)
                        .map_err(|_| malformed(&r.record))?;
                    Ok(Refused {
                        record: record.to_string(),
                        rule: claims::clip(&r.rule, claims::MAX_RULE_CHARS),
                        reason: claims::clip(&r.reason, claims::MAX_REASON_CHARS),
                    })
                })
                .collect::<Result<Vec<_>, SyncError>>()?;
            for r in &refused {
                tracing::error!(peer = %self.settings.peer, record = %r.record, rule = %r.rule, reason = %r.reason, "the peer refused a record");
            }
            actions.push(Action::RecordRefusedByPeer(refused));
        }
        for id in &ack.missing {
            self.resend
                .push(RecordId::parse("missing", id).map_err(|_| malformed(id))?);
        }
        if !ack.missing.is_empty() {
            self.overtake_read();
        }
        self.report.changes_sent += flight.changes;
        self.report.bytes_sent += flight.bytes;
        self.report.batches_sent += 1;
        let acked = flight.up_to_seq.unwrap_or(self.cursor);
        if let Some(seq) = flight.up_to_seq {
            self.cursor = seq;
        }
        // The peer acknowledges a batch once it has stored it with its checkpoint, so the
        // batch's position is one it may claim.
        actions.push(Action::RecordAcked {
            acked,
            records: flight.records,
            changes: flight.changes,
            bytes: flight.bytes,
            confirmed: flight.up_to_seq,
        });
        if !flight.owed.is_empty() {
            actions.push(Action::ForgetOwed(flight.owed));
        }
        Ok(())
    }

    fn applied(&mut self, applied: Applied, actions: &mut Vec<Action>) {
        match applied {
            Applied::Batch {
                batch_id,
                up_to_seq,
                outcome,
                changes,
                bytes,
            } => {
                self.report.changes_received += changes;
                self.report.bytes_received += bytes;
                for r in &outcome.rejected {
                    warn!(peer = %self.settings.peer, record = %r.record, rule = %r.rule, reason = %r.reason, "refused a record from the peer");
                }
                actions.push(Action::Send(Body::Ack(v1::BatchAck {
                    batch_id,
                    up_to_seq,
                    missing: outcome.missing.iter().map(|id| id.to_string()).collect(),
                    rejected: outcome
                        .rejected
                        .into_iter()
                        .map(|r| v1::Rejected {
                            record: r.record,
                            rule: r.rule,
                            reason: r.reason,
                        })
                        .collect(),
                })));
            }
            Applied::Forgotten => {}
            Applied::CaughtUp { epoch, counts } => {
                if counts && epoch == self.remote_epoch {
                    self.remote_done = true;
                }
                if self.local_done && self.in_flight.is_empty() {
                    debug!(peer = %self.settings.peer, "both sides caught up");
                    // A resync is done only once the peer's counted CaughtUp says its resend
                    // arrived, not on one it sent before it heard this node's Resync.
                    actions.push(Action::RecordRound {
                        resynced: self.resyncing && !self.awaiting_resync && self.remote_done,
                    });
                }
            }
        }
    }
}

/// Every branch of the link without a socket: what a peer's messages, the store's answers, the
/// applying side and the clock make a link do.
#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::record::{Author, Header, RecordKind};

    fn township() -> RegionCode {
        RegionCode::parse("peer", "330411101000").unwrap()
    }

    fn settings(mode: Mode, repair: bool) -> LinkSettings {
        LinkSettings {
            peer: township(),
            mode,
            repair,
            timeout: Duration::from_secs(30),
            owed: Vec::new(),
            max_batch_bytes: 512 * 1024,
        }
    }

    /// Records held back while the peer spoke a protocol that could not carry them are the
    /// first thing a link that can sends: read whole, and sent without moving the checkpoint.
    #[test]
    fn records_owed_to_the_peer_are_read_whole_first() {
        let owed = vec![RecordId::new(), RecordId::new()];
        let settings = LinkSettings {
            owed: owed.clone(),
            ..settings(Mode::Once, false)
        };
        let (mut link, _) = Link::new(settings, Start::Resume(5), Instant::now());
        assert!(
            matches!(&poll(&mut link)[..], [Action::ReadFullRecords { ids }] if *ids == owed),
            "the owed records are read first"
        );
        let actions = handle(
            &mut link,
            Event::FullRecords(owed.iter().map(|id| record(*id)).collect()),
        );
        assert!(
            matches!(&actions[..], [Action::SendBatch { up_to, records, .. }]
                if *up_to == Checkpoint::default() && records.len() == 2),
            "{actions:?}"
        );
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing { from: 5, .. }]
        ));
        // Acknowledged, they are no longer owed.
        let actions = handle(&mut link, Event::Received(ack(1)));
        assert!(
            matches!(&actions[..], [Action::RecordAcked { .. }, Action::ForgetOwed(ids)] if *ids == owed),
            "{actions:?}"
        );
    }

    fn record(id: RecordId) -> OutgoingRecord {
        let home = township();
        OutgoingRecord {
            header: Header {
                id,
                kind: RecordKind::Opinion,
                home,
                created_at: Utc::now(),
                created_by: Author {
                    node: home,
                    user: "clerk".into(),
                },
            }
            .into(),
            hints: None,
            changes: vec![vec![1; 10]],
        }
    }

    fn outgoing(records: usize, up_to_seq: i64) -> OutgoingBatch {
        OutgoingBatch {
            up_to_seq,
            up_to_hash: vec![7; 32],
            records: (0..records).map(|_| record(RecordId::new())).collect(),
            changes: records,
            bytes: records * 10,
        }
    }

    fn ack(batch_id: u64) -> Body {
        Body::Ack(v1::BatchAck {
            batch_id,
            up_to_seq: 0,
            missing: Vec::new(),
            rejected: Vec::new(),
        })
    }

    fn caught_up(seq: i64) -> Body {
        Body::CaughtUp(v1::CaughtUp {
            seq,
            hash: vec![3; 32],
        })
    }

    fn handle(link: &mut Link, event: Event) -> Vec<Action> {
        link.handle(event, Instant::now()).expect("a valid event")
    }

    /// The applying side reports a `CaughtUp` applied, with the epoch it arrived in.
    fn applied_caught_up(link: &mut Link, epoch: u64, counts: bool) -> Vec<Action> {
        handle(link, Event::Applied(Applied::CaughtUp { epoch, counts }))
    }

    fn poll(link: &mut Link) -> Vec<Action> {
        link.poll(Instant::now())
    }

    fn refused(link: &mut Link, body: Body) -> String {
        link.handle(Event::Received(body), Instant::now())
            .expect_err("a protocol error")
            .to_string()
    }

    /// Sends `batch` from a link that asked for its next batch and returns the batch id.
    fn send(link: &mut Link, batch: OutgoingBatch) -> u64 {
        assert!(matches!(poll(link)[..], [Action::ReadOutgoing { .. }]));
        match &handle(link, Event::Outgoing(batch))[..] {
            [Action::SendBatch { batch_id, .. }] => *batch_id,
            other => panic!("{other:?}"),
        }
    }

    /// Batches start small and double up to the largest the node sends, so the peer's store
    /// starts on the first within milliseconds instead of waiting for a full batch to be
    /// decoded and merged; once caught up, the next burst of writes starts small again.
    #[test]
    fn batches_start_small_and_double_up_to_the_largest() {
        let (mut link, _) = Link::new(
            settings(Mode::Live, false),
            Start::Resume(0),
            Instant::now(),
        );
        let mut sizes = Vec::new();
        let mut seq = 0;
        for _ in 0..7 {
            match poll(&mut link)[..] {
                [Action::ReadOutgoing { max_bytes, .. }] => sizes.push(max_bytes / 1024),
                ref other => panic!("{other:?}"),
            }
            seq += 10;
            let batch_id = match &handle(&mut link, Event::Outgoing(outgoing(1, seq)))[..] {
                [Action::SendBatch { batch_id, .. }] => *batch_id,
                other => panic!("{other:?}"),
            };
            handle(&mut link, Event::Received(ack(batch_id)));
        }
        assert_eq!(sizes, [32, 64, 128, 256, 512, 512, 512], "KiB");
        assert!(matches!(poll(&mut link)[..], [Action::ReadOutgoing { .. }]));
        let actions = handle(&mut link, Event::Outgoing(outgoing(0, seq)));
        assert!(matches!(actions[0], Action::Send(Body::CaughtUp(_))));
        handle(&mut link, Event::Written);
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing {
                max_bytes: FIRST_BATCH_BYTES,
                ..
            }]
        ));
    }

    #[test]
    fn a_round_resumes_from_the_checkpoint_sends_acknowledged_batches_and_ends_once_both_are_caught_up()
     {
        let now = Instant::now();
        let (mut link, opening) = Link::new(settings(Mode::Once, false), Start::Resume(5), now);
        assert!(opening.is_empty());
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing {
                from: 5,
                skip_peer_origin: true,
                ..
            }]
        ));
        let actions = handle(&mut link, Event::Outgoing(outgoing(2, 9)));
        let [
            Action::SendBatch {
                batch_id: 1,
                up_to,
                records,
            },
        ] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        assert_eq!((up_to.seq, records.len()), (9, 2));
        // The window has room for a second batch: the next read starts after the first.
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing { from: 9, .. }]
        ));
        // Nothing more while the first is in flight: no read until something happens.
        assert!(handle(&mut link, Event::Outgoing(outgoing(0, 9))).is_empty());
        assert!(poll(&mut link).is_empty());
        let actions = handle(&mut link, Event::Received(ack(1)));
        assert!(matches!(
            actions[..],
            [Action::RecordAcked {
                acked: 9,
                records: 2,
                changes: 2,
                confirmed: Some(9),
                ..
            }]
        ));
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing { from: 9, .. }]
        ));
        let actions = handle(&mut link, Event::Outgoing(outgoing(0, 9)));
        assert!(matches!(
            &actions[..],
            [
                Action::Send(Body::CaughtUp(v1::CaughtUp { seq: 9, .. })),
                Action::RecordAcked {
                    acked: 9,
                    records: 0,
                    confirmed: None,
                    ..
                }
            ]
        ));
        // The peer has not said it is done: the round goes on, and its silence counts.
        assert!(poll(&mut link).is_empty());
        assert!(link.reply_by().is_some());
        let actions = handle(&mut link, Event::Received(caught_up(4)));
        assert!(matches!(
            &actions[..],
            [Action::Apply(ApplyJob::CaughtUp {
                epoch: 0,
                counts: true,
                ..
            })]
        ));
        let actions = applied_caught_up(&mut link, 0, true);
        assert!(matches!(
            actions[..],
            [Action::RecordRound { resynced: false }]
        ));
        let actions = poll(&mut link);
        assert!(matches!(
            actions[..],
            [
                Action::RecordRound { resynced: false },
                Action::Finish {
                    result: Ok(()),
                    drain: false
                }
            ]
        ));
        assert_eq!(
            (link.report().changes_sent, link.report().batches_sent),
            (2, 1)
        );
        assert!(poll(&mut link).is_empty(), "a finished link does nothing");
    }

    /// The adapter reads beside the link, so the peer's messages may come between a read and
    /// its answer. A batch read before a resync restarted the sequence, or before the peer
    /// asked for records whole, is not sent: the link reads again.
    #[test]
    fn a_read_overtaken_by_a_resync_or_a_request_for_whole_records_is_read_again() {
        let (mut link, _) = Link::new(
            settings(Mode::Once, false),
            Start::Resume(5),
            Instant::now(),
        );
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing { from: 5, .. }]
        ));
        let actions = handle(
            &mut link,
            Event::Received(Body::Resync(v1::Resync { ack: false })),
        );
        assert!(matches!(
            actions[..],
            [
                Action::Apply(ApplyJob::ForgetReceived),
                Action::Send(Body::Resync(v1::Resync { ack: true }))
            ]
        ));
        assert!(
            handle(&mut link, Event::Outgoing(outgoing(2, 9))).is_empty(),
            "a batch read from the old position is not sent"
        );
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing {
                from: 0,
                skip_peer_origin: false,
                ..
            }]
        ));
        let batch_id = match &handle(&mut link, Event::Outgoing(outgoing(2, 9)))[..] {
            [Action::SendBatch { batch_id, .. }] => *batch_id,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing { from: 9, .. }]
        ));
        let lacking = RecordId::new();
        handle(
            &mut link,
            Event::Received(Body::Ack(v1::BatchAck {
                batch_id,
                up_to_seq: 0,
                missing: vec![lacking.to_string()],
                rejected: Vec::new(),
            })),
        );
        assert!(
            handle(&mut link, Event::Outgoing(outgoing(0, 9))).is_empty(),
            "nothing left to send is not news while a record is to be resent whole"
        );
        let actions = poll(&mut link);
        let [Action::ReadFullRecords { ids }] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!(ids, &vec![lacking]);
    }

    #[test]
    fn a_batch_from_the_peer_is_applied_then_acknowledged_with_what_was_missing_or_refused() {
        let (mut link, _) = Link::new(
            settings(Mode::Live, false),
            Start::Resume(0),
            Instant::now(),
        );
        let actions = handle(
            &mut link,
            Event::Received(Body::Batch(v1::ChangeBatch {
                batch_id: 3,
                up_to_seq: 4,
                up_to_hash: vec![5; 32],
                records: Vec::new(),
                deflated_records: vec![1, 2],
            })),
        );
        let [
            Action::Apply(ApplyJob::Batch {
                batch_id: 3,
                up_to: Some(up_to),
                deflated,
                ..
            }),
        ] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        assert_eq!((up_to.seq, deflated.len()), (4, 2));
        let missing = RecordId::new();
        let actions = handle(
            &mut link,
            Event::Applied(Applied::Batch {
                batch_id: 3,
                up_to_seq: 4,
                outcome: ApplyOutcome {
                    changes_applied: 1,
                    records_touched: 1,
                    missing: vec![missing],
                    rejected: vec![Refused {
                        record: RecordId::new().to_string(),
                        rule: "authority.child_subtree".into(),
                        reason: "不在辖区内".into(),
                    }],
                },
                changes: 2,
                bytes: 20,
            }),
        );
        let [Action::Send(Body::Ack(sent))] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!((sent.batch_id, sent.up_to_seq), (3, 4));
        assert_eq!(sent.missing, vec![missing.to_string()]);
        assert_eq!(sent.rejected[0].rule, "authority.child_subtree");
        assert_eq!(link.report().changes_received, 2);
        // Resent records (position 0) move no checkpoint.
        let actions = handle(
            &mut link,
            Event::Received(Body::Batch(v1::ChangeBatch {
                batch_id: 4,
                ..Default::default()
            })),
        );
        assert!(matches!(
            &actions[..],
            [Action::Apply(ApplyJob::Batch { up_to: None, .. })]
        ));
    }

    #[test]
    fn a_node_that_cannot_trust_the_peer_s_checkpoint_resends_everything_and_asks_for_a_resync() {
        let (_, opening) = Link::new(
            settings(Mode::Once, false),
            Start::Resync(ResyncReason::Restored),
            Instant::now(),
        );
        // A restore already marked the node; any other reason is noted as owed first.
        assert!(matches!(
            &opening[..],
            [Action::Send(Body::Resync(v1::Resync { ack: false }))]
        ));
        let (mut link, opening) = Link::new(
            settings(Mode::Once, false),
            Start::Resync(ResyncReason::PastLast),
            Instant::now(),
        );
        assert!(matches!(
            &opening[..],
            [
                Action::OweResync,
                Action::Send(Body::Resync(v1::Resync { ack: false }))
            ]
        ));
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing { from: 0, .. }]
        ));
        handle(&mut link, Event::Outgoing(outgoing(0, 12)));
        // A CaughtUp the peer sent before it heard our Resync does not count.
        let actions = handle(&mut link, Event::Received(caught_up(2)));
        assert!(matches!(
            &actions[..],
            [Action::Apply(ApplyJob::CaughtUp { counts: false, .. })]
        ));
        applied_caught_up(&mut link, 0, false);
        assert!(poll(&mut link).is_empty());
        handle(
            &mut link,
            Event::Received(Body::Resync(v1::Resync { ack: true })),
        );
        let actions = handle(&mut link, Event::Received(caught_up(3)));
        assert!(matches!(
            &actions[..],
            [Action::Apply(ApplyJob::CaughtUp {
                epoch: 1,
                counts: true,
                ..
            })]
        ));
        let actions = applied_caught_up(&mut link, 1, true);
        assert!(matches!(
            actions[..],
            [Action::RecordRound { resynced: true }]
        ));
        assert!(matches!(
            poll(&mut link)[..],
            [
                Action::RecordRound { resynced: true },
                Action::Finish { result: Ok(()), .. }
            ]
        ));
    }

    #[test]
    fn a_peer_s_resync_forgets_its_checkpoint_and_sends_everything_back_once() {
        let (mut link, _) = Link::new(
            settings(Mode::Live, false),
            Start::Resume(5),
            Instant::now(),
        );
        let first = send(&mut link, outgoing(1, 9));
        let actions = handle(
            &mut link,
            Event::Received(Body::Resync(v1::Resync { ack: false })),
        );
        assert!(matches!(
            &actions[..],
            [
                Action::Apply(ApplyJob::ForgetReceived),
                Action::Send(Body::Resync(v1::Resync { ack: true }))
            ]
        ));
        // Everything again, the peer's own changes included, from a small batch again.
        assert!(matches!(
            poll(&mut link)[..],
            [Action::ReadOutgoing {
                from: 0,
                skip_peer_origin: false,
                max_bytes: FIRST_BATCH_BYTES,
            }]
        ));
        // The batch sent before no longer moves the restarted cursor.
        let actions = handle(&mut link, Event::Received(ack(first)));
        assert!(matches!(
            actions[..],
            [Action::RecordAcked {
                acked: 0,
                confirmed: None,
                ..
            }]
        ));
        let error = refused(&mut link, Body::Resync(v1::Resync { ack: false }));
        assert!(error.contains("a second Resync"), "{error}");
    }

    #[test]
    fn a_repair_compares_digests_and_resends_each_differing_record_once() {
        let (mut link, opening) =
            Link::new(settings(Mode::Once, true), Start::Resume(0), Instant::now());
        assert!(matches!(
            &opening[..],
            [Action::ReadDigest {
                purpose: DigestUse::Offer
            }]
        ));
        let actions = handle(
            &mut link,
            Event::Digest {
                ours: vec![1, 2],
                purpose: DigestUse::Offer,
            },
        );
        assert!(matches!(&actions[..], [Action::Send(Body::Digest(d))] if d.buckets.len() == 2));
        let error = refused(&mut link, Body::DigestEntries(v1::DigestEntries::default()));
        assert!(error.contains("before a digest"), "{error}");

        let (mut link, _) = Link::new(settings(Mode::Once, true), Start::Resume(0), Instant::now());
        let actions = handle(
            &mut link,
            Event::Received(Body::Digest(v1::Digest {
                buckets: vec![1, 9],
            })),
        );
        let [
            Action::ReadDigest {
                purpose: DigestUse::Compare(theirs),
            },
        ] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        let theirs = theirs.clone();
        // A digest of another size is a protocol error.
        let error = link
            .handle(
                Event::Digest {
                    ours: vec![1],
                    purpose: DigestUse::Compare(theirs.clone()),
                },
                Instant::now(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a digest of 2 buckets; expected 1"),
            "{error}"
        );
        let actions = handle(
            &mut link,
            Event::Digest {
                ours: vec![1, 2],
                purpose: DigestUse::Compare(theirs),
            },
        );
        assert!(matches!(
            &actions[..],
            [Action::ReadDigestEntries { marked, purpose: EntriesUse::Answer }] if marked == &vec![false, true]
        ));
        let (differs, same) = (RecordId::new(), RecordId::new());
        let actions = handle(
            &mut link,
            Event::DigestEntries {
                ours: vec![(differs.to_string(), vec![1])],
                purpose: EntriesUse::Answer,
            },
        );
        assert!(
            matches!(&actions[..], [Action::Send(Body::DigestEntries(e))] if e.entries.len() == 1)
        );
        let actions = handle(
            &mut link,
            Event::Received(Body::DigestEntries(v1::DigestEntries {
                entries: vec![
                    v1::RecordDigest {
                        id: differs.to_string(),
                        heads: vec![2],
                    },
                    v1::RecordDigest {
                        id: same.to_string(),
                        heads: vec![3],
                    },
                ],
            })),
        );
        let [
            Action::ReadDigestEntries {
                purpose: EntriesUse::Compare(theirs),
                ..
            },
        ] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        let theirs = theirs.clone();
        let actions = handle(
            &mut link,
            Event::DigestEntries {
                ours: vec![(differs.to_string(), vec![1]), (same.to_string(), vec![3])],
                purpose: EntriesUse::Compare(theirs.clone()),
            },
        );
        assert!(matches!(&actions[..], [Action::Send(Body::DigestDone(_))]));
        let actions = poll(&mut link);
        assert!(matches!(&actions[..], [Action::ReadFullRecords { ids }] if ids == &vec![differs]));
        let actions = handle(&mut link, Event::FullRecords(vec![record(differs)]));
        assert!(matches!(
            &actions[..],
            [Action::SendBatch { up_to, .. }] if *up_to == Checkpoint::default()
        ));
        // The peer says the record is still missing: it is not resent a second time.
        let actions = handle(
            &mut link,
            Event::Received(Body::Ack(v1::BatchAck {
                batch_id: 1,
                up_to_seq: 0,
                missing: vec![differs.to_string()],
                rejected: Vec::new(),
            })),
        );
        assert!(matches!(actions[..], [Action::RecordAcked { .. }]));
        assert!(matches!(poll(&mut link)[..], [Action::ReadOutgoing { .. }]));
        // The round waits for the peer's DigestDone before it may end.
        handle(&mut link, Event::Outgoing(outgoing(0, 0)));
        handle(&mut link, Event::Received(caught_up(1)));
        applied_caught_up(&mut link, 0, false);
        assert!(poll(&mut link).is_empty());
        handle(
            &mut link,
            Event::Received(Body::DigestDone(v1::DigestDone {})),
        );
        handle(&mut link, Event::Received(caught_up(1)));
        applied_caught_up(&mut link, 1, true);
        assert!(matches!(
            poll(&mut link)[..],
            [_, Action::Finish { result: Ok(()), .. }]
        ));
    }

    #[test]
    fn every_claim_the_peer_makes_is_checked_before_it_moves_anything() {
        let fresh = || {
            Link::new(
                settings(Mode::Live, false),
                Start::Resume(0),
                Instant::now(),
            )
            .0
        };
        let batch = |seq, hash: Vec<u8>| {
            Body::Batch(v1::ChangeBatch {
                batch_id: 1,
                up_to_seq: seq,
                up_to_hash: hash,
                ..Default::default()
            })
        };
        let cases: Vec<(Body, &str)> = vec![
            (batch(5, vec![1; 3]), "a change hash is 32 bytes"),
            (batch(-1, Vec::new()), "never negative"),
            (
                Body::CaughtUp(v1::CaughtUp {
                    seq: -2,
                    hash: Vec::new(),
                }),
                "never negative",
            ),
            (ack(1), "no batch in flight"),
            (Body::Hello(v1::Hello::default()), "a second Hello"),
        ];
        for (body, rule) in cases {
            let error = refused(&mut fresh(), body);
            assert!(error.contains(rule), "{error} lacks {rule}");
        }
        let mut link = fresh();
        let id = send(&mut link, outgoing(1, 3));
        assert!(refused(&mut link, ack(id + 1)).contains("while 1 is in flight"));
        for ack in [
            v1::BatchAck {
                batch_id: 1,
                missing: vec![RecordId::new().to_string(), RecordId::new().to_string()],
                ..Default::default()
            },
            v1::BatchAck {
                batch_id: 1,
                missing: vec!["not an id".into()],
                ..Default::default()
            },
            v1::BatchAck {
                batch_id: 1,
                rejected: vec![v1::Rejected {
                    record: "../etc".into(),
                    rule: "x".into(),
                    reason: "y".into(),
                }],
                ..Default::default()
            },
        ] {
            let mut link = fresh();
            send(&mut link, outgoing(1, 3));
            let error = refused(&mut link, Body::Ack(ack));
            assert!(
                error.contains("missing and") || error.contains("malformed record id"),
                "{error}"
            );
        }
    }

    #[test]
    fn records_the_peer_refused_are_noted_with_its_words_clipped() {
        let (mut link, _) = Link::new(
            settings(Mode::Live, false),
            Start::Resume(0),
            Instant::now(),
        );
        let id = send(&mut link, outgoing(1, 3));
        let record = RecordId::new();
        let actions = handle(
            &mut link,
            Event::Received(Body::Ack(v1::BatchAck {
                batch_id: id,
                up_to_seq: 0,
                missing: Vec::new(),
                rejected: vec![v1::Rejected {
                    record: record.to_string(),
                    rule: "r".repeat(500),
                    reason: "理由".into(),
                }],
            })),
        );
        let [
            Action::RecordRefusedByPeer(refused),
            Action::RecordAcked { acked: 3, .. },
        ] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        assert_eq!(refused[0].record, record.to_string());
        assert!(
            refused[0]
                .rule
                .starts_with(&"r".repeat(claims::MAX_RULE_CHARS))
        );
        assert!(
            refused[0].rule.ends_with("（共 500 个字符）"),
            "{}",
            refused[0].rule
        );
    }

    #[test]
    fn a_caught_up_counts_only_if_nothing_the_peer_sent_after_it_said_otherwise() {
        let (mut link, _) = Link::new(
            settings(Mode::Once, false),
            Start::Resume(0),
            Instant::now(),
        );
        handle(&mut link, Event::Outgoing(outgoing(0, 0)));
        let actions = handle(&mut link, Event::Received(caught_up(1)));
        assert!(matches!(
            &actions[..],
            [Action::Apply(ApplyJob::CaughtUp { epoch: 0, .. })]
        ));
        handle(
            &mut link,
            Event::Received(Body::Batch(v1::ChangeBatch {
                batch_id: 1,
                up_to_seq: 2,
                ..Default::default()
            })),
        );
        applied_caught_up(&mut link, 0, true);
        assert!(
            poll(&mut link).is_empty(),
            "the batch after the CaughtUp means more to come"
        );
    }

    #[test]
    fn a_live_link_waits_for_writes_and_drops_a_peer_that_stops_answering() {
        let t0 = Instant::now();
        let (mut link, _) = Link::new(settings(Mode::Live, false), Start::Resume(0), t0);
        assert!(matches!(link.poll(t0)[..], [Action::ReadOutgoing { .. }]));
        link.handle(Event::Outgoing(outgoing(0, 4)), t0).unwrap();
        assert!(link.wants_writes());
        assert!(link.reply_by().is_none(), "an idle live link owes nothing");
        assert!(
            link.handle(Event::Tick, t0 + Duration::from_secs(3600))
                .unwrap()
                .is_empty()
        );
        link.handle(Event::Written, t0).unwrap();
        assert!(!link.wants_writes());
        assert!(matches!(
            link.poll(t0)[..],
            [Action::ReadOutgoing { from: 4, .. }]
        ));
        link.handle(Event::Outgoing(outgoing(1, 6)), t0).unwrap();
        // A batch in flight: twice the timeout from when it became due.
        assert_eq!(link.reply_by(), Some(t0 + Duration::from_secs(60)));
        assert!(
            link.handle(Event::Tick, t0 + Duration::from_secs(59))
                .unwrap()
                .is_empty()
        );
        let actions = link
            .handle(Event::Tick, t0 + Duration::from_secs(60))
            .unwrap();
        assert!(matches!(
            &actions[..],
            [Action::Finish {
                result: Err(SyncError::Stalled(_)),
                drain: false
            }]
        ));
    }

    #[test]
    fn a_shutdown_drains_and_a_closed_stream_ends_the_link() {
        for (mode, ok) in [(Mode::Live, true), (Mode::Once, false)] {
            let (mut link, _) = Link::new(settings(mode, false), Start::Resume(0), Instant::now());
            let actions = handle(&mut link, Event::Shutdown);
            assert!(
                matches!(&actions[..], [Action::Finish { result, drain: true }] if result.is_ok() == ok)
            );
            let (mut link, _) = Link::new(settings(mode, false), Start::Resume(0), Instant::now());
            let actions = handle(&mut link, Event::PeerClosed);
            assert!(
                matches!(&actions[..], [Action::Finish { result, drain: false }] if result.is_ok() == ok)
            );
        }
    }
}
