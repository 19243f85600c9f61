//! What a peer may claim on a link, and the checks that hold each claim to what this node knows.
//!
//! Every number a peer sends is either about the peer's own history (its sequence positions,
//! its batch ids), which this node keeps only to hand back to the peer, or about this node's
//! history (how far the peer has applied this node's sequence), which this node checks against
//! its own store before it acts on it. No claim moves this node's own sequence: a claim that
//! cannot be checked costs a resend from the start, never a jump.
//!
//! The functions here are pure (a claim and what the store says in, a verdict out), so the rules
//! survive any rewrite of the link loop that calls them; `docs/architecture.md` lists every field
//! of every link message with the rule that checks it.

use super::SyncError;
use crate::store::Checkpoint;

/// Length of an automerge change hash, the only hash a link message carries.
pub const HASH_LEN: usize = 32;

/// Longest rule id and reason this node keeps or logs from a peer's `BatchAck`: enough for any
/// rule Renda writes, short enough that a hostile peer cannot fill the log or the status page.
pub const MAX_RULE_CHARS: usize = 64;
pub const MAX_REASON_CHARS: usize = 300;

/// Where a link starts sending this node's changes, judged from the peer's `Hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// The peer's checkpoint is about this node's history: send what follows it.
    Resume(i64),
    /// The checkpoint cannot be trusted: send everything from the start and ask the peer to
    /// resync (`Resync`), which makes it forget its checkpoint and resend what it holds.
    Resync(ResyncReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncReason {
    /// `renda restore` marked the node and this peer has not resynced since.
    Restored,
    /// The peer claims a position past this node's last: this node lost changes the peer saw (a
    /// restore by copying files, a lost write-ahead log), or the peer is wrong.
    PastLast,
    /// The peer names another change at that position than the one held here: this node's
    /// sequence was rewound and has since reused the position.
    OtherChange,
}

impl std::fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResyncReason::Restored => "this node was restored from a backup",
            ResyncReason::PastLast => "the peer claims more of this node's sequence than exists",
            ResyncReason::OtherChange => {
                "the peer names another change at its checkpoint than this node holds there"
            }
        })
    }
}

/// Checks a hash a peer sent: empty or one change hash long.
pub fn check_hash(field: &str, hash: &[u8]) -> Result<(), SyncError> {
    if hash.is_empty() || hash.len() == HASH_LEN {
        Ok(())
    } else {
        Err(SyncError::Protocol(format!(
            "{field}: a change hash is {HASH_LEN} bytes, not {}",
            hash.len()
        )))
    }
}

/// Checks a position in a sequence a peer sent: never negative.
pub fn check_seq(field: &str, seq: i64) -> Result<(), SyncError> {
    if seq < 0 {
        Err(SyncError::Protocol(format!(
            "{field}: a sequence position is never negative"
        )))
    } else {
        Ok(())
    }
}

/// Judges the peer's claim of how far it has applied this node's sequence (`Hello.received_seq`
/// and `received_hash`). `last_seq` is this node's last position, `held` the hash of the change
/// this node holds at the claimed position (if any), `restored` whether `renda restore` left
/// this node owing the peer a resync.
///
/// A claim without a hash (from a node that predates hashes, or for a checkpoint written before
/// them) is taken when it lies within this node's sequence, as before.
pub fn judge_received(
    claim: &Checkpoint,
    last_seq: i64,
    held: Option<&[u8]>,
    restored: bool,
) -> Result<Start, SyncError> {
    check_seq("hello.received_seq", claim.seq)?;
    check_hash("hello.received_hash", &claim.hash)?;
    if restored {
        return Ok(Start::Resync(ResyncReason::Restored));
    }
    if claim.seq > last_seq {
        return Ok(Start::Resync(ResyncReason::PastLast));
    }
    if claim.seq > 0 && !claim.hash.is_empty() && held != Some(claim.hash.as_slice()) {
        return Ok(Start::Resync(ResyncReason::OtherChange));
    }
    Ok(Start::Resume(claim.seq))
}

/// Checks a checkpoint of the peer's own sequence that the peer sent with a batch or a
/// `CaughtUp`. This node cannot know the peer's sequence, and it needs not: it keeps the
/// position only to name it back in its next `Hello`, where the peer checks it against its own
/// history. So only the form is checked here.
pub fn check_peer_checkpoint(field: &str, seq: i64, hash: &[u8]) -> Result<Checkpoint, SyncError> {
    check_seq(field, seq)?;
    check_hash(field, hash)?;
    Ok(Checkpoint {
        seq,
        hash: hash.to_vec(),
    })
}

/// Checks a `BatchAck` against the batch it acknowledges: it may name at most as many missing
/// and refused records as the batch held, each by a record id.
pub fn check_ack(
    missing: usize,
    rejected: usize,
    records_in_batch: usize,
) -> Result<(), SyncError> {
    if missing > records_in_batch || rejected > records_in_batch {
        return Err(SyncError::Protocol(format!(
            "an acknowledgement naming {missing} missing and {rejected} refused records of a batch of {records_in_batch}"
        )));
    }
    Ok(())
}

/// At most `max` characters of a peer's text, marked when cut.
pub fn clip(text: &str, max: usize) -> String {
    crate::validate::clip(text, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(seq: i64, hash: &[u8]) -> Checkpoint {
        Checkpoint {
            seq,
            hash: hash.to_vec(),
        }
    }

    #[test]
    fn a_claim_is_taken_only_within_this_nodes_history() {
        let h = [7u8; HASH_LEN];
        assert_eq!(
            judge_received(&claim(5, &h), 10, Some(&h), false).unwrap(),
            Start::Resume(5)
        );
        assert_eq!(
            judge_received(&claim(0, &[]), 10, None, false).unwrap(),
            Start::Resume(0)
        );
        // Without a hash, as an older node sends it.
        assert_eq!(
            judge_received(&claim(10, &[]), 10, Some(&h), false).unwrap(),
            Start::Resume(10)
        );
        assert_eq!(
            judge_received(&claim(i64::MAX, &h), 10, None, false).unwrap(),
            Start::Resync(ResyncReason::PastLast)
        );
        assert_eq!(
            judge_received(&claim(5, &[1; HASH_LEN]), 10, Some(&h), false).unwrap(),
            Start::Resync(ResyncReason::OtherChange)
        );
        assert_eq!(
            judge_received(&claim(5, &h), 10, Some(&h), true).unwrap(),
            Start::Resync(ResyncReason::Restored)
        );
        assert!(judge_received(&claim(-1, &[]), 10, None, false).is_err());
        assert!(judge_received(&claim(5, &[1, 2, 3]), 10, Some(&h), false).is_err());
    }

    #[test]
    fn acks_name_no_more_records_than_the_batch() {
        assert!(check_ack(2, 1, 2).is_ok());
        assert!(check_ack(3, 0, 2).is_err());
        assert!(check_ack(0, 3, 2).is_err());
    }
}
