//! A peer speaking the sync protocol by hand over a real gRPC link: what the tests of refusals
//! and of other releases send a node where a real node would not.

use renda_node::record::{AnyHeader, Header};
use renda_proto::v1::sync_client::SyncClient;
use renda_proto::v1::{self, ChangeBatch, Hello, LinkMessage, link_message::Body as Msg};

use super::fed::{Federation, code};

pub fn msg(body: Msg) -> LinkMessage {
    LinkMessage {
        protocol_version: renda_proto::PROTOCOL_VERSION,
        body: Some(body),
    }
}

/// A record as a peer of protocol 6 sent it: with no routes, which a receiver derives from the
/// body of a kind it knows.
pub fn wire(header: &Header, changes: Vec<Vec<u8>>) -> v1::RecordChanges {
    wire_routed(&header.clone().into(), None, changes)
}

/// A record of any kind with the routes its sender claims for it.
pub fn wire_routed(
    header: &AnyHeader,
    route: Option<v1::RecordRoute>,
    changes: Vec<Vec<u8>>,
) -> v1::RecordChanges {
    v1::RecordChanges {
        header: Some(v1::RecordHeader {
            id: header.id.to_string(),
            kind: header.kind.clone(),
            home: header.home.to_string(),
            created_at_ms: header.created_at.timestamp_millis(),
            created_by: header.created_by.to_string(),
            route,
        }),
        changes,
    }
}

/// Opens a link to `parent` claiming to be `child` (plaintext: the tests of identity live in
/// tls_identity.rs), sends one batch and returns the parent's acknowledgement of it.
pub async fn send_batch(
    parent: &Federation,
    child: &str,
    received_seq: i64,
    up_to_seq: i64,
    records: Vec<v1::RecordChanges>,
) -> v1::BatchAck {
    let region = code(child);
    let addr = parent.nodes[&region.parent().unwrap()].addr;
    let mut client = SyncClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(msg(Msg::Hello(Hello {
        region: child.into(),
        received_seq,
        repair: false,
        received_hash: Vec::new(),
        ..Hello::default()
    })))
    .await
    .unwrap();
    tx.send(msg(Msg::Batch(ChangeBatch {
        batch_id: 1,
        up_to_seq,
        records,
        deflated_records: Vec::new(),
        up_to_hash: Vec::new(),
    })))
    .await
    .unwrap();
    let mut inbound = client
        .link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("the link opens")
        .into_inner();
    loop {
        let message = inbound
            .message()
            .await
            .expect("the link stays up")
            .expect("the parent answers");
        if let Some(Msg::Ack(ack)) = message.body
            && ack.batch_id == 1
        {
            return ack;
        }
    }
}
