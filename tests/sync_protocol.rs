//! The sync service refuses what it cannot trust, with a clear status: a peer with no protocol
//! version in common or another federation setting, a node that is not a child, a malformed
//! region, a message without a body. And two ends of different releases agree on the highest
//! version both speak.

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
            ..Hello::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_service_refuses_with_a_clear_status() {
    let fed = Federation::start(&[("330411000000", "秀洲区人大常委会")]).await;
    let addr = fed.node("330411000000").addr.to_string();

    let status = open_link(&addr, hello(99, "330411101000")).await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let ours = format!(
        "this node speaks {}–{}",
        renda_proto::MIN_PROTOCOL_VERSION,
        renda_proto::PROTOCOL_VERSION
    );
    assert!(
        status.message().contains(&ours) && status.message().contains("the peer speaks 99"),
        "{}",
        status.message()
    );
    // Said by whom, so the child's status reads the right way round.
    assert!(
        status
            .message()
            .starts_with("330411000000 refused the link"),
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

/// Opens a link with `first` and returns the parent's `Hello` (its message, with the version
/// it is stamped with).
async fn parent_hello(addr: &str, first: LinkMessage) -> LinkMessage {
    let mut client = SyncClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let outbound = tokio_stream::iter(vec![first]).chain(tokio_stream::pending());
    let mut inbound = client
        .link(outbound)
        .await
        .expect("the link opens")
        .into_inner();
    inbound
        .message()
        .await
        .expect("the parent answers")
        .expect("a message")
}

/// A child of another release: a node of version 6 (which sends no range and requires every
/// message to carry exactly 6) is answered in 6, and a newer node offering up to 9 in this
/// build's newest. Both are told the range and settings this node has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_answers_each_child_in_the_highest_version_both_speak() {
    let fed = Federation::start(&[("330411000000", "秀洲区人大常委会")]).await;
    let addr = fed.node("330411000000").addr.to_string();

    let older = parent_hello(&addr, hello(6, "330411101000")).await;
    assert_eq!(older.protocol_version, 6);
    let Some(Body::Hello(answer)) = older.body else {
        panic!("not a Hello: {older:?}")
    };
    assert_eq!(
        (answer.min_protocol_version, answer.max_protocol_version),
        (
            renda_proto::MIN_PROTOCOL_VERSION,
            renda_proto::PROTOCOL_VERSION
        )
    );
    assert_eq!(answer.settings["full_record_depth"], "city");

    let mut newer = hello(renda_proto::PROTOCOL_VERSION, "330411102000");
    if let Some(Body::Hello(h)) = &mut newer.body {
        h.min_protocol_version = renda_proto::PROTOCOL_VERSION;
        h.max_protocol_version = 9;
    }
    let answer = parent_hello(&addr, newer).await;
    assert_eq!(answer.protocol_version, renda_proto::PROTOCOL_VERSION);
}

/// A child whose federation routes records to another depth is refused, naming the setting
/// and both values, and the parent keeps the refusal for `renda status` and the sync page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_with_another_federation_setting_is_refused() {
    let fed = Federation::start(&[("330411000000", "秀洲区人大常委会")]).await;
    let addr = fed.node("330411000000").addr.to_string();
    let mut first = hello(renda_proto::PROTOCOL_VERSION, "330411101000");
    if let Some(Body::Hello(h)) = &mut first.body {
        h.settings
            .insert("full_record_depth".into(), "county".into());
    }
    let status = open_link(&addr, first).await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    for part in ["full_record_depth", "city", "county"] {
        assert!(
            status.message().contains(part),
            "{part}: {}",
            status.message()
        );
    }
    assert_county_kept_refusal(&fed, "full_record_depth").await;
}

/// Fails unless the county keeps, as its last error with the township, a text holding `part`.
async fn assert_county_kept_refusal(fed: &Federation, part: &str) {
    let peers = fed
        .node("330411000000")
        .store
        .call(|s| s.peers())
        .await
        .unwrap();
    let child = peers
        .iter()
        .find(|p| p.peer.as_str() == "330411101000")
        .expect("the refused child is listed");
    assert!(
        child
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(part)),
        "{child:?}"
    );
}

/// Two nodes of different releases, in one process: a township standing in for the release
/// before this one (it speaks only version 6) syncs with a county of this build both ways;
/// a township that speaks only a version this build does not is refused at both ends, with
/// both ranges named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_release_links_and_one_with_nothing_in_common_is_refused() {
    use renda_node::sync::version::Versions;
    let fed = Federation::start(&[
        ("330411000000", "秀洲区人大常委会"),
        ("330411101000", "王店镇人大主席团"),
    ])
    .await;
    let town = fed.node("330411101000");
    let id = common::fed::write_opinion(&town.store, town.region, "路灯不亮".into()).await;
    let addr = fed.node("330411000000").addr.to_string();
    let mut older = fed.link_config("330411101000");
    older.versions = Versions { min: 6, max: 6 };
    renda_node::sync::client::sync_with_parent(
        town.store.clone(),
        town.region,
        &addr,
        renda_node::sync::Mode::Once,
        older,
    )
    .await
    .expect("a node of the release before links");
    assert_eq!(
        fed.holders(id).await,
        vec!["330411000000".to_string(), "330411101000".to_string()]
    );

    let mut stranger = fed.link_config("330411101000");
    stranger.versions = Versions { min: 90, max: 91 };
    let refused = renda_node::sync::client::sync_with_parent(
        town.store.clone(),
        town.region,
        &addr,
        renda_node::sync::Mode::Once,
        stranger,
    )
    .await
    .expect_err("no version in common");
    let text = refused.to_string();
    assert!(
        text.contains("90–91") && text.contains(&format!("{}", renda_proto::PROTOCOL_VERSION)),
        "{text}"
    );
    assert_county_kept_refusal(&fed, "90–91").await;
}

/// A parent that answers in another version than the one both ends' ranges agree on: a parent
/// that agreed on something else than this node did. The child refuses the link, naming both
/// versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_refuses_a_parent_answering_in_another_version() {
    use renda_proto::v1::sync_server::{Sync, SyncServer};
    use tonic::{Request, Response, Status, Streaming};

    /// Answers every Hello with its own, which offers this build's whole range but is stamped
    /// with the lowest version.
    struct Misstamped;

    #[tonic::async_trait]
    impl Sync for Misstamped {
        type LinkStream = tokio_stream::wrappers::ReceiverStream<Result<LinkMessage, Status>>;

        async fn renew(
            &self,
            _request: Request<renda_proto::v1::RenewRequest>,
        ) -> Result<Response<renda_proto::v1::RenewResponse>, Status> {
            Err(Status::unimplemented("a parent of an older release"))
        }

        async fn link(
            &self,
            _request: Request<Streaming<LinkMessage>>,
        ) -> Result<Response<Self::LinkStream>, Status> {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let mut answer = hello(renda_proto::MIN_PROTOCOL_VERSION, "330411000000");
            if let Some(Body::Hello(h)) = &mut answer.body {
                h.min_protocol_version = renda_proto::MIN_PROTOCOL_VERSION;
                h.max_protocol_version = renda_proto::PROTOCOL_VERSION;
                h.settings.insert("full_record_depth".into(), "city".into());
            }
            tx.send(Ok(answer)).await.unwrap();
            // The stream stays open while the child decides.
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                drop(tx);
            });
            Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
                rx,
            )))
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SyncServer::new(Misstamped))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let fed = Federation::start(&[("330411101000", "王店镇人大主席团")]).await;
    let town = fed.node("330411101000");
    let refused = renda_node::sync::client::sync_with_parent(
        town.store.clone(),
        town.region,
        &addr,
        renda_node::sync::Mode::Once,
        fed.link_config("330411101000"),
    )
    .await
    .expect_err("a parent answering in another version");
    let text = refused.to_string();
    assert!(
        text.contains(&renda_proto::MIN_PROTOCOL_VERSION.to_string())
            && text.contains(&renda_proto::PROTOCOL_VERSION.to_string()),
        "{text}"
    );
    assert!(
        matches!(refused, renda_node::sync::SyncError::Version { got, agreed }
            if got == renda_proto::MIN_PROTOCOL_VERSION && agreed == renda_proto::PROTOCOL_VERSION),
        "{refused:?}"
    );
}
