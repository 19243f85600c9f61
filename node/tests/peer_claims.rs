//! What a peer claims on a link moves nothing here beyond what this node can justify.
//!
//! Each test runs the link loop (`run_link`) of a real node on a real SQLite file against a
//! scripted peer: messages in, the node's answers and its stored state after. They name no part
//! of the loop's insides, so they hold for any rewrite of it. The rules themselves are in
//! `renda_node::sync::claims`; `docs/architecture.md` lists every field with its check.

use std::time::Duration;

use renda_node::office;
use renda_node::record::RecordId;
use renda_node::record::notice::Notice;
use renda_node::record::opinion::{OpinionFields, OpinionSource};
use renda_node::region::RegionCode;
use renda_node::store::{Checkpoint, Store, StoreHandle};
use renda_node::sync::{
    InboundStream, LinkConfig, LinkReport, Mode, Opened, SyncError, message, run_link,
};
use renda_proto::v1::{self, LinkMessage, link_message::Body};
use tokio::sync::mpsc;

const COUNTY: &str = "330411000000";
const TOWNSHIP: &str = "330411101000";

fn code(s: &str) -> RegionCode {
    RegionCode::parse("region", s).unwrap()
}

/// The peer's side of the stream, driven by the test.
struct Scripted(mpsc::Receiver<LinkMessage>);

impl InboundStream for Scripted {
    async fn next_message(&mut self) -> Result<Option<LinkMessage>, SyncError> {
        Ok(self.0.recv().await)
    }
}

/// A node's link with a scripted peer.
struct Link {
    to_node: Option<mpsc::Sender<LinkMessage>>,
    from_node: mpsc::Receiver<LinkMessage>,
    task: tokio::task::JoinHandle<Result<LinkReport, SyncError>>,
}

impl Link {
    fn start(store: &StoreHandle, peer: RegionCode, claim: Checkpoint) -> Link {
        Link::start_with(store, peer, claim, Mode::Once, LinkConfig::default())
    }

    fn start_with(
        store: &StoreHandle,
        peer: RegionCode,
        claim: Checkpoint,
        mode: Mode,
        config: LinkConfig,
    ) -> Link {
        let (to_node, inbound) = mpsc::channel(16);
        let (outbound, from_node) = mpsc::channel(16);
        let task = tokio::spawn(run_link(
            store.clone(),
            Opened {
                peer,
                peer_claim: claim,
                version: renda_proto::PROTOCOL_VERSION,
            },
            Scripted(inbound),
            outbound,
            mode,
            config,
        ));
        Link {
            to_node: Some(to_node),
            from_node,
            task,
        }
    }

    /// The node's next message.
    async fn next(&mut self) -> Body {
        let msg = tokio::time::timeout(Duration::from_secs(10), self.from_node.recv())
            .await
            .expect("the node answers within 10 s")
            .expect("the node's stream is open");
        msg.body.expect("a message with a body")
    }

    async fn send(&self, body: Body) {
        if let Some(tx) = &self.to_node {
            // The node may have ended the link already; the test then reads its result.
            let _ = tx.send(message(body)).await;
        }
    }

    /// Closes the peer's side and returns how the link ended.
    async fn end(mut self) -> Result<LinkReport, SyncError> {
        self.to_node = None;
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the link ends within 10 s")
            .expect("the link task does not panic")
    }
}

fn node(dir: &std::path::Path, region: &str, name: &str) -> StoreHandle {
    StoreHandle::spawn(Store::init(&dir.join(region), code(region), name, None).unwrap()).unwrap()
}

async fn write_opinion(store: &StoreHandle, region: &str, content: &str) -> RecordId {
    let fields = OpinionFields {
        source: OpinionSource::QrCode,
        content: content.into(),
        place: String::new(),
        region: code(region),
        delegate: None,
        activity: None,
        category: None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    store
        .write(move |tx| office::add_opinion(tx, "clerk", fields, office::Contact::default(), date))
        .await
        .unwrap()
        .id
}

/// A county notice, which travels down to every township.
async fn write_notice(county: &StoreHandle, title: &str) -> RecordId {
    let notice = Notice {
        title: title.into(),
        category: "工作通知".into(),
        issued_on: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
        audience: code(COUNTY),
        body: "各乡镇人大：请于月底前完成。".into(),
    };
    county
        .write(move |tx| office::add_notice(tx, "clerk", notice))
        .await
        .unwrap()
        .id
}

/// The node's last position and the next one its change sequence will hand out, read from the
/// file by a second connection as an operator would.
fn sequence(store_dir: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(store_dir.join("renda.sqlite")).unwrap();
    let last: i64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
            r.get(0)
        })
        .unwrap();
    let next: i64 = conn
        .query_row(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (last, next)
}

/// A Hello claiming far more of this node's sequence than exists (2^63-1 bricked a parent:
/// every later write failed with "database or disk is full") makes the node resend from the
/// start and ask for a resync; its sequence stays where it was and it keeps writing.
async fn an_overclaim_moves_nothing(me: &str, name: &str, peer: &str, claim: i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = node(dir.path(), me, name);
    for i in 0..3 {
        write_opinion(&store, me, &format!("路灯不亮第{i}处")).await;
    }
    let before = sequence(&dir.path().join(me));

    let mut link = Link::start(
        &store,
        code(peer),
        Checkpoint {
            seq: claim,
            hash: vec![0xAB; 32],
        },
    );
    assert_eq!(
        link.next().await,
        Body::Resync(v1::Resync { ack: false }),
        "{me} asks {peer} to resync instead of trusting a claim of {claim}"
    );
    link.send(Body::Resync(v1::Resync { ack: true })).await;
    // Whatever it sends next starts from its first position, not from the claim.
    match link.next().await {
        Body::CaughtUp(c) => assert!(c.seq <= before.0, "{c:?}"),
        Body::Batch(b) => assert!(b.up_to_seq <= before.0, "batch up to {}", b.up_to_seq),
        other => panic!("unexpected {other:?}"),
    }
    let _ = link.end().await;

    assert_eq!(
        sequence(&dir.path().join(me)),
        before,
        "the claim of {claim} left {me}'s sequence alone"
    );
    write_opinion(&store, me, "链路之后的新意见").await;
    let after = sequence(&dir.path().join(me));
    assert!(
        after.0 > before.0 && after.0 < before.0 + 10,
        "{me} writes on at {after:?} after {before:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_hello_claiming_past_the_parents_sequence_moves_nothing() {
    an_overclaim_moves_nothing(COUNTY, "秀洲区人大常委会", TOWNSHIP, i64::MAX).await;
    an_overclaim_moves_nothing(COUNTY, "秀洲区人大常委会", TOWNSHIP, 1_000_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parents_hello_claiming_past_the_childs_sequence_moves_nothing() {
    an_overclaim_moves_nothing(TOWNSHIP, "王店镇人大主席团", COUNTY, i64::MAX).await;
    an_overclaim_moves_nothing(TOWNSHIP, "王店镇人大主席团", COUNTY, 1_000_000).await;
}

/// A claim within the sequence is taken only if it names the change held at that position: a
/// node restored from a copy of its files reuses positions for other changes, and a peer
/// resuming there would skip them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_naming_another_change_resyncs_and_one_naming_ours_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let county = node(dir.path(), COUNTY, "秀洲区人大常委会");
    write_notice(&county, "第一份通知").await;
    let last = county.call(|s| s.last_seq()).await.unwrap();
    let held = county
        .call(move |s| s.change_hash_at(last))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.len(), 32);

    // Naming the change it holds there: the county resumes after it and says so.
    let mut link = Link::start(
        &county,
        code(TOWNSHIP),
        Checkpoint {
            seq: last,
            hash: held.clone(),
        },
    );
    match link.next().await {
        Body::CaughtUp(c) => {
            assert_eq!(c.seq, last);
            assert_eq!(c.hash, held, "CaughtUp names the change at its position");
        }
        other => panic!("expected CaughtUp, got {other:?}"),
    }
    let _ = link.end().await;

    // A new notice is sent from after the checkpoint, with the hash of its last change.
    write_notice(&county, "第二份通知").await;
    let mut link = Link::start(
        &county,
        code(TOWNSHIP),
        Checkpoint {
            seq: last,
            hash: held.clone(),
        },
    );
    match link.next().await {
        Body::Batch(b) => {
            let now = county.call(|s| s.last_seq()).await.unwrap();
            assert_eq!(b.up_to_seq, now);
            let at = county
                .call(move |s| s.change_hash_at(now))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(b.up_to_hash, at);
        }
        other => panic!("expected a batch, got {other:?}"),
    }
    let _ = link.end().await;

    // Naming another change at a position this node holds: a resync.
    let mut other = held.clone();
    other[0] ^= 0xFF;
    let mut link = Link::start(
        &county,
        code(TOWNSHIP),
        Checkpoint {
            seq: last,
            hash: other,
        },
    );
    assert_eq!(link.next().await, Body::Resync(v1::Resync { ack: false }));
    let _ = link.end().await;
}

/// A peer that asks to resync makes this node forget how far it applied the peer's sequence (the
/// peer resends from its start, and its positions may now name other changes), in order with
/// the peer's batches; later checkpoints move it up again with the hash the peer names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_request_forgets_the_checkpoint_of_the_peers_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let county = node(dir.path(), COUNTY, "秀洲区人大常委会");
    let town = code(TOWNSHIP);
    let first = Checkpoint {
        seq: 40,
        hash: vec![4; 32],
    };
    let c = first.clone();
    county
        .write(move |tx| tx.apply_incoming(&town, Some(c), Vec::new(), &Default::default()))
        .await
        .unwrap();
    assert_eq!(
        county
            .call(move |s| s.received_checkpoint(&town))
            .await
            .unwrap(),
        first
    );

    let mut link = Link::start(&county, town, Checkpoint::default());
    link.send(Body::Resync(v1::Resync { ack: false })).await;
    let later = Checkpoint {
        seq: 3,
        hash: vec![3; 32],
    };
    link.send(Body::CaughtUp(v1::CaughtUp {
        seq: later.seq,
        hash: later.hash.clone(),
    }))
    .await;
    let mut answered = false;
    for _ in 0..4 {
        if link.next().await == Body::Resync(v1::Resync { ack: true }) {
            answered = true;
            break;
        }
    }
    assert!(answered, "the county answers the resync");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = county
            .call(move |s| s.received_checkpoint(&town))
            .await
            .unwrap();
        if now == later {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint went back to the start and then to the peer's CaughtUp: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = link.end().await;
}

/// Malformed claims end the link with a protocol error naming the field, and move nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_claims_end_the_link_and_move_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let county = node(dir.path(), COUNTY, "秀洲区人大常委会");
    let town = code(TOWNSHIP);
    write_notice(&county, "通知").await;
    let before = sequence(&dir.path().join(COUNTY));

    let protocol_error = |r: Result<LinkReport, SyncError>, field: &str| match r {
        Err(SyncError::Protocol(text)) => assert!(text.contains(field), "{text}"),
        other => panic!("expected a protocol error naming {field}, got {other:?}"),
    };

    // A negative position and a hash that is no change hash, in the Hello.
    for (claim, field) in [
        (
            Checkpoint {
                seq: -1,
                hash: Vec::new(),
            },
            "hello.received_seq",
        ),
        (
            Checkpoint {
                seq: 1,
                hash: vec![1, 2, 3],
            },
            "hello.received_hash",
        ),
    ] {
        let link = Link::start(&county, town, claim);
        protocol_error(link.end().await, field);
    }

    // The same in a CaughtUp and a batch.
    for (body, field) in [
        (
            Body::CaughtUp(v1::CaughtUp {
                seq: -7,
                hash: Vec::new(),
            }),
            "caught_up.seq",
        ),
        (
            Body::CaughtUp(v1::CaughtUp {
                seq: 7,
                hash: vec![0; 31],
            }),
            "caught_up.seq",
        ),
        (
            Body::Batch(v1::ChangeBatch {
                batch_id: 1,
                up_to_seq: -2,
                ..Default::default()
            }),
            "batch.up_to_seq",
        ),
    ] {
        let link = Link::start(&county, town, Checkpoint::default());
        link.send(body).await;
        // Let the node send its own batch meanwhile; the peer never acknowledges it.
        let result = tokio::time::timeout(Duration::from_secs(10), link.task)
            .await
            .expect("the link ends")
            .unwrap();
        protocol_error(result, field);
    }
    assert_eq!(
        county
            .call(move |s| s.received_checkpoint(&town))
            .await
            .unwrap(),
        Checkpoint::default(),
        "no malformed checkpoint was kept"
    );

    // An acknowledgement refusing more records than the batch held.
    let mut link = Link::start(&county, town, Checkpoint::default());
    let Body::Batch(batch) = link.next().await else {
        panic!("the notice travels to the township")
    };
    let refusal = |record: String| v1::Rejected {
        record,
        rule: "authority.subtree".into(),
        reason: "不可能".into(),
    };
    link.send(Body::Ack(v1::BatchAck {
        batch_id: batch.batch_id,
        up_to_seq: batch.up_to_seq,
        missing: Vec::new(),
        // The batch holds the notice and the county's seeded duty rules: far fewer.
        rejected: (0..50)
            .map(|_| refusal(RecordId::new().to_string()))
            .collect(),
    }))
    .await;
    protocol_error(link.end().await, "acknowledgement");
    let peers = county.call(|s| s.peers()).await.unwrap();
    let refused = peers
        .iter()
        .find(|p| p.peer == town)
        .map_or(0, |p| p.refused_out);
    assert_eq!(refused, 0, "no refusal was counted");
    assert_eq!(sequence(&dir.path().join(COUNTY)), before);
}

/// A peer's refusal is kept and logged short: a megabyte of reason must not reach the status
/// page or the log whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_refusal_is_kept_short() {
    let dir = tempfile::tempdir().unwrap();
    let county = node(dir.path(), COUNTY, "秀洲区人大常委会");
    let town = code(TOWNSHIP);
    let notice = write_notice(&county, "通知").await;

    let mut link = Link::start(&county, town, Checkpoint::default());
    let Body::Batch(batch) = link.next().await else {
        panic!("the notice travels to the township")
    };
    link.send(Body::Ack(v1::BatchAck {
        batch_id: batch.batch_id,
        up_to_seq: batch.up_to_seq,
        missing: Vec::new(),
        rejected: vec![v1::Rejected {
            record: notice.to_string(),
            rule: "r".repeat(100_000),
            reason: "拒".repeat(1_000_000),
        }],
    }))
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let peers = county.call(|s| s.peers()).await.unwrap();
        if let Some(status) = peers
            .into_iter()
            .find(|p| p.peer == town && p.refused_out > 0)
        {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal is counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = link.end().await;
    let text = status.last_refusal.unwrap();
    assert!(
        text.chars().count() < 500,
        "{} characters kept",
        text.chars().count()
    );
    assert!(text.contains(&notice.to_string()), "{text}");
}

/// A resync this node starts because a claim failed its check stays owed until a round after
/// it completes: if the link breaks first, the peer has already forgotten its checkpoint and
/// claims nothing wrong next time, but this node's lost writes are still only at the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_resync_is_asked_for_again_until_a_round_completes() {
    let dir = tempfile::tempdir().unwrap();
    let county = node(dir.path(), COUNTY, "秀洲区人大常委会");
    let town = code(TOWNSHIP);
    write_notice(&county, "通知").await;
    let last = county.call(|s| s.last_seq()).await.unwrap();

    // The claim names another change: a resync, and the link breaks before the peer's resend.
    let mut link = Link::start(
        &county,
        town,
        Checkpoint {
            seq: last,
            hash: vec![9; 32],
        },
    );
    assert_eq!(link.next().await, Body::Resync(v1::Resync { ack: false }));
    let _ = link.end().await;
    assert!(county.call(move |s| s.needs_resync(&town)).await.unwrap());

    // The peer forgot its checkpoint and claims nothing; the county still asks.
    let mut link = Link::start(&county, town, Checkpoint::default());
    assert_eq!(
        link.next().await,
        Body::Resync(v1::Resync { ack: false }),
        "the resync is still owed"
    );
    // This time the peer answers and the round completes: acknowledged, then not owed.
    link.send(Body::Resync(v1::Resync { ack: true })).await;
    link.send(Body::CaughtUp(v1::CaughtUp {
        seq: 0,
        hash: Vec::new(),
    }))
    .await;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), link.from_node.recv())
            .await
            .expect("the node answers");
        match msg.and_then(|m| m.body) {
            Some(Body::Batch(b)) => {
                link.send(Body::Ack(v1::BatchAck {
                    batch_id: b.batch_id,
                    up_to_seq: b.up_to_seq,
                    missing: Vec::new(),
                    rejected: Vec::new(),
                }))
                .await
            }
            Some(_) => {}
            None => break,
        }
    }
    let ended = link.end().await;
    assert!(ended.is_ok(), "{ended:?}");
    assert!(
        !county.call(move |s| s.needs_resync(&town)).await.unwrap(),
        "a completed round settles it"
    );
}

/// A checkpoint kept before hashes existed gets its hash from the next CaughtUp at the same
/// position, so it does not stay unchecked for good; and a peer asks to resync once per link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhashed_checkpoint_is_hashed_at_the_next_caught_up_and_one_resync_per_link() {
    let dir = tempfile::tempdir().unwrap();
    let county = node(dir.path(), COUNTY, "秀洲区人大常委会");
    let town = code(TOWNSHIP);
    let old = Checkpoint {
        seq: 12,
        hash: Vec::new(),
    };
    county
        .write(move |tx| tx.apply_incoming(&town, Some(old), Vec::new(), &Default::default()))
        .await
        .unwrap();
    let hashed = Checkpoint {
        seq: 12,
        hash: vec![5; 32],
    };
    let h = hashed.clone();
    county
        .write(move |tx| tx.apply_incoming(&town, Some(h), Vec::new(), &Default::default()))
        .await
        .unwrap();
    assert_eq!(
        county
            .call(move |s| s.received_checkpoint(&town))
            .await
            .unwrap(),
        hashed
    );

    let link = Link::start(&county, town, Checkpoint::default());
    link.send(Body::Resync(v1::Resync { ack: false })).await;
    link.send(Body::Resync(v1::Resync { ack: false })).await;
    let result = tokio::time::timeout(Duration::from_secs(10), link.task)
        .await
        .unwrap()
        .unwrap();
    match result {
        Err(SyncError::Protocol(text)) => assert!(text.contains("second Resync"), "{text}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// A batch the node has stored is acknowledged at once, even while the node waits for room to
/// prepare the peer's next batch because another link holds it: a county busy with other
/// townships does not leave this one waiting for acknowledgements it could have had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_batch_is_acknowledged_while_the_next_waits_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let county = node(dir.path(), COUNTY, "秀洲区人大常委会");
    let town = node(dir.path(), TOWNSHIP, "王江泾镇人大");
    for i in 0..400 {
        write_opinion(&town, TOWNSHIP, &format!("第{i}条意见：路灯不亮")).await;
    }
    // The township's records as one large batch, which takes the county a while to store.
    let policy = renda_node::route::RoutePolicy::default();
    let sent = town
        .call(move |s| s.outgoing_from(&code(COUNTY), 0, usize::MAX, &policy, true))
        .await
        .unwrap();
    let records: Vec<v1::RecordChanges> = sent
        .records
        .into_iter()
        .map(|r| v1::RecordChanges {
            header: Some(v1::RecordHeader {
                id: r.header.id.to_string(),
                kind: r.header.kind,
                home: r.header.home.to_string(),
                created_at_ms: r.header.created_at.timestamp_millis(),
                created_by: r.header.created_by.to_string(),
                route: None,
            }),
            changes: r.changes,
        })
        .collect();
    assert!(records.len() >= 400);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let config = LinkConfig {
        prepared: permits.clone(),
        ..LinkConfig::default()
    };
    let mut link = Link::start_with(
        &county,
        code(TOWNSHIP),
        Checkpoint::default(),
        Mode::Live,
        config,
    );
    link.send(Body::Batch(v1::ChangeBatch {
        batch_id: 1,
        up_to_seq: sent.up_to_seq,
        up_to_hash: sent.up_to_hash,
        records,
        deflated_records: Vec::new(),
    }))
    .await;
    // The link holds the only permit while it prepares and stores the batch; another link then
    // queues for it first.
    tokio::time::timeout(Duration::from_secs(10), async {
        while permits.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the link takes the permit");
    let other = tokio::spawn(permits.clone().acquire_owned());
    tokio::time::sleep(Duration::from_millis(20)).await;
    link.send(Body::Batch(v1::ChangeBatch {
        batch_id: 2,
        up_to_seq: sent.up_to_seq,
        ..Default::default()
    }))
    .await;
    // The first batch is stored and acknowledged while the other link holds the permit.
    loop {
        match link.next().await {
            Body::Ack(ack) => {
                assert_eq!(ack.batch_id, 1);
                break;
            }
            _ => continue,
        }
    }
    let held = other.await.unwrap().unwrap();
    assert_eq!(
        permits.available_permits(),
        0,
        "the other link holds the permit"
    );
    drop(held);
    loop {
        if let Body::Ack(ack) = link.next().await {
            assert_eq!(ack.batch_id, 2);
            break;
        }
    }
    link.end().await.unwrap();
    assert!(
        county.call(|s| s.stats()).await.unwrap().records_total() >= 400,
        "the county stored the township's records"
    );
}
