//! The sync service refuses what it cannot trust, with a clear status: an unknown protocol
//! version, a node that is not a child, a malformed region, a message without a body.

mod common;

use common::fed::Federation;
use renda_proto::v1::sync_client::SyncClient;
use renda_proto::v1::{Hello, LinkMessage, link_message::Body};
use tokio_stream::StreamExt;

async fn open_link(addr: &str, first: LinkMessage) -> tonic::Status {
    let mut client = SyncClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let outbound = tokio_stream::iter(vec![first]).chain(tokio_stream::pending());
    match client.link(outbound).await {
        Err(status) => status,
        Ok(response) => {
            let mut inbound = response.into_inner();
            match inbound.message().await {
                Err(status) => status,
                Ok(msg) => panic!("the link was accepted: {msg:?}"),
            }
        }
    }
}

fn hello(version: u32, region: &str) -> LinkMessage {
    LinkMessage {
        protocol_version: version,
        body: Some(Body::Hello(Hello {
            region: region.into(),
            received_seq: 0,
            repair: false,
            received_hash: Vec::new(),
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_service_refuses_with_a_clear_status() {
    let fed = Federation::start(&[("330411000000", "秀洲区人大常委会")]).await;
    let addr = fed.node("330411000000").addr.to_string();

    let status = open_link(&addr, hello(99, "330411101000")).await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("protocol version 99"),
        "{}",
        status.message()
    );

    // A township of another county is not this county's child.
    let status = open_link(&addr, hello(renda_proto::PROTOCOL_VERSION, "330402101000")).await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status.message().contains("330402101000"),
        "{}",
        status.message()
    );

    let status = open_link(&addr, hello(renda_proto::PROTOCOL_VERSION, "3304111")).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("hello.region"),
        "{}",
        status.message()
    );

    let empty = LinkMessage {
        protocol_version: renda_proto::PROTOCOL_VERSION,
        body: None,
    };
    let status = open_link(&addr, empty).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}
