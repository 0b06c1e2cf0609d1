//! A broker of several nodes: clients and servers move to another node when
//! theirs goes (restarts, or falls silent), calls in flight on the lost
//! connection fail at once, and service queues may be quorum queues.
//!
//! The "nodes" are [`NodeProxy`]s in front of the one real RabbitMQ, so a
//! node can be lost without losing the broker. Client and server each get
//! nodes of their own, so losing the client's leaves the server's alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airbridge::broker::{Broker, OpenError};
use airbridge::rpc::{QueueType, RpcClient, RpcConfig};
use airbridge::trips::v1::trips_amqp::{TripsAmqpClient, TripsAmqpServer};
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{
    CreateTripRequest, CreateTripResponse, GetTripRequest, GetTripResponse, PingRequest,
    PingResponse,
};
use lapin::{Connection, ConnectionProperties};
use testkit::{Namespace, NodeProxy, amqp_url, rabbitmqctl, wait_for};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

/// Heartbeats of the nodes' clients here: a silent node is noticed within
/// two of them.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a node may take to accept our connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The bound: new calls succeed within 5 s of a node loss.
const RECOVERY: Duration = Duration::from_secs(5);

/// Pings at once; `get` holds its call until released.
#[derive(Clone, Default)]
struct Holding {
    held: Arc<AtomicUsize>,
    release: CancellationToken,
}

#[tonic::async_trait]
impl Trips for Holding {
    async fn create(
        &self,
        _: Request<CreateTripRequest>,
    ) -> Result<Response<CreateTripResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn get(&self, _: Request<GetTripRequest>) -> Result<Response<GetTripResponse>, Status> {
        self.held.fetch_add(1, Ordering::SeqCst);
        self.release.cancelled().await;
        Err(Status::not_found("released"))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {
            message: "pong".into(),
            store_reachable: true,
        }))
    }
}

/// A server and a client of one namespace, each with its own nodes.
struct Cluster {
    namespace: Namespace,
    server_nodes: [NodeProxy; 2],
    client_nodes: [NodeProxy; 2],
    holding: Holding,
    client: RpcClient,
    trips: TripsAmqpClient,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

fn broker(nodes: &[NodeProxy]) -> Broker {
    let urls: Vec<_> = nodes.iter().map(NodeProxy::url).collect();
    Broker::parse(&urls.join(","))
        .expect("node URLs")
        .with_heartbeat(HEARTBEAT)
        .with_connect_timeout(CONNECT_TIMEOUT)
}

impl Cluster {
    async fn start(test: &str) -> Self {
        let namespace = Namespace::new(test);
        let server_nodes = [NodeProxy::broker().await, NodeProxy::broker().await];
        let client_nodes = [NodeProxy::broker().await, NodeProxy::broker().await];
        let config = |nodes: &[NodeProxy]| RpcConfig {
            broker: broker(nodes),
            ..namespace.rpc_config()
        };
        let holding = Holding::default();
        let stop = CancellationToken::new();
        let server = tokio::spawn({
            let config = config(&server_nodes);
            let service = TripsAmqpServer::new(holding.clone());
            let stop = stop.clone();
            async move { airbridge::rpc::serve(&config, service, stop.cancelled_owned()).await }
        });
        let client = RpcClient::new(config(&client_nodes));
        let trips = TripsAmqpClient::new(client.clone());
        let cluster = Self {
            namespace,
            server_nodes,
            client_nodes,
            holding,
            client,
            trips,
            stop,
            server,
        };
        wait_for("the server", Duration::from_secs(10), || cluster.ping()).await;
        cluster
    }

    async fn ping(&self) -> Option<()> {
        let mut request = Request::new(PingRequest {});
        request.set_timeout(Duration::from_secs(1));
        self.trips.ping(request).await.ok().map(drop)
    }

    /// Starts a call the server holds, and waits until it does.
    async fn call_in_flight(&self) -> tokio::task::JoinHandle<Result<(), Status>> {
        let held = self.holding.held.load(Ordering::SeqCst);
        let trips = self.trips.clone();
        let call = tokio::spawn(async move {
            let mut request = Request::new(GetTripRequest { id: "held".into() });
            request.set_timeout(Duration::from_secs(60));
            trips.get(request).await.map(drop)
        });
        wait_for("the server to hold the call", RECOVERY, || async {
            (self.holding.held.load(Ordering::SeqCst) > held).then_some(())
        })
        .await;
        call
    }

    async fn stop(self) {
        self.holding.release.cancel();
        self.stop.cancel();
        self.server.await.unwrap();
        self.client.close().await;
        self.namespace.delete().await.unwrap();
    }
}

/// The node of `nodes` carrying a connection now, and the other one.
fn in_use(nodes: &[NodeProxy; 2]) -> (&NodeProxy, &NodeProxy) {
    match (nodes[0].connections(), nodes[1].connections()) {
        (1.., 0) => (&nodes[0], &nodes[1]),
        (0, 1..) => (&nodes[1], &nodes[0]),
        counts => panic!("expected one node in use, found connections {counts:?}"),
    }
}

/// Asserts the held call failed with UNAVAILABLE well before its 60 s
/// deadline; returns how long that took.
async fn fails_at_once(call: tokio::task::JoinHandle<Result<(), Status>>, within: Duration) {
    let lost = Instant::now();
    let status = tokio::time::timeout(within, call)
        .await
        .unwrap_or_else(|_| panic!("the call in flight was still waiting {within:?} later"))
        .unwrap()
        .expect_err("the call cannot have been answered");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    println!("call in flight failed after {:?}: {status}", lost.elapsed());
}

/// Waits for calls to succeed again, at most [`RECOVERY`] after `lost`.
async fn recovers(cluster: &Cluster, lost: Instant) {
    wait_for(
        "calls to succeed again",
        RECOVERY.saturating_sub(lost.elapsed()),
        || cluster.ping(),
    )
    .await;
    println!("calls succeed again {:?} after the loss", lost.elapsed());
}

#[tokio::test]
async fn a_client_moves_to_another_node_when_its_node_goes() {
    let cluster = Cluster::start("failover-client").await;
    let (used, other) = in_use(&cluster.client_nodes);
    let call = cluster.call_in_flight().await;

    let lost = Instant::now();
    used.drop_connections();
    fails_at_once(call, Duration::from_secs(2)).await;
    recovers(&cluster, lost).await;
    assert_eq!(
        (other.connections(), used.connections()),
        (1, 0),
        "the client moved to the other node"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_server_moves_to_another_node_and_consumes_again() {
    let cluster = Cluster::start("failover-server").await;
    let (used, other) = in_use(&cluster.server_nodes);

    let lost = Instant::now();
    used.drop_connections();
    recovers(&cluster, lost).await;
    // The consumer's connection moved; besides it there may be the side
    // connection for replies to redelivered requests (src/rpc/replies.rs),
    // opened after the loss on either node (this one was only cut off).
    let (moved, stayed) = (other.connections(), used.connections());
    assert!(
        moved >= 1 && moved + stayed <= 2,
        "the server serves on the other node: {moved} connection(s) there, {stayed} on the lost one"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_silent_node_is_left_within_two_heartbeats() {
    let cluster = Cluster::start("failover-silent").await;
    let (used, other) = in_use(&cluster.client_nodes);
    let call = cluster.call_in_flight().await;

    // Nothing is closed: only the missing heartbeats tell.
    let lost = Instant::now();
    used.freeze();
    fails_at_once(call, 3 * HEARTBEAT + Duration::from_secs(1)).await;
    recovers(&cluster, lost).await;
    assert_eq!(other.connections(), 1);
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_that_accepts_and_never_answers_is_left_after_the_connect_timeout() {
    let cluster = Cluster::start("failover-hole").await;
    let (used, other) = in_use(&cluster.client_nodes);

    // The other node now takes connections and says nothing; the client,
    // which tries it first after losing its own, must give up on it and
    // come back to the one that restarted.
    other.freeze();
    let lost = Instant::now();
    used.drop_connections();
    recovers(&cluster, lost).await;
    assert_eq!(used.connections(), 1);
    cluster.stop().await;
}

#[tokio::test]
async fn a_broker_with_no_node_answering_fails_calls_with_unavailable() {
    let namespace = Namespace::new("failover-none");
    let nodes = [NodeProxy::broker().await, NodeProxy::broker().await];
    for node in &nodes {
        node.freeze();
    }
    let client = RpcClient::new(RpcConfig {
        broker: broker(&nodes),
        ..namespace.rpc_config()
    });
    let started = Instant::now();
    let mut request = Request::new(PingRequest {});
    request.set_timeout(Duration::from_secs(30));
    let status = TripsAmqpClient::new(client.clone())
        .ping(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    // Every node had its connect timeout, no more.
    assert!(
        started.elapsed() < 2 * CONNECT_TIMEOUT + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    client.close().await;
}

#[tokio::test]
async fn quorum_queues_serve_calls_and_a_queue_of_the_other_type_is_refused_clearly() {
    let namespace = Namespace::new("quorum");
    let mut config = namespace.rpc_config();
    config.topology = namespace.topology().with_queue_type(QueueType::Quorum);
    let holding = Holding::default();
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let config = config.clone();
        let stop = stop.clone();
        let service = TripsAmqpServer::new(holding);
        async move { airbridge::rpc::serve(&config, service, stop.cancelled_owned()).await }
    });
    let client = RpcClient::new(config.clone());
    let trips = TripsAmqpClient::new(client.clone());
    wait_for(
        "a quorum queue's server",
        Duration::from_secs(20),
        || async { trips.ping(Request::new(PingRequest {})).await.ok() },
    )
    .await;

    let queue = config
        .topology
        .queue(airbridge::trips::v1::trips_amqp::SERVICE_NAME);
    let listed = rabbitmqctl(&["-q", "--no-table-headers", "list_queues", "name", "type"]).await;
    let types: Vec<_> = listed
        .lines()
        .filter(|line| line.starts_with(namespace.name()))
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .collect();
    assert!(types.contains(&vec![queue.as_str(), "quorum"]), "{types:?}");
    assert!(
        types.iter().all(|columns| columns[1] == "quorum"),
        "the dead-letter queue too: {types:?}"
    );

    // A server still set for classic queues is told what is wrong and
    // what to do.
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let classic = namespace.topology();
    let refused = airbridge::rpc::declare(
        &channel,
        &classic,
        airbridge::trips::v1::trips_amqp::SERVICE_NAME,
    )
    .await
    .unwrap_err();
    let OpenError::Refused(message) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    println!("{message}");
    let dead_letters = classic.dead_letter_queue(airbridge::trips::v1::trips_amqp::SERVICE_NAME);
    for what in [
        format!("rabbitmqctl delete_queue {queue};"),
        format!("rabbitmqctl delete_queue {dead_letters})"),
        "AMQP_QUEUE_TYPE".into(),
    ] {
        assert!(message.contains(&what), "{what} in {message}");
    }
    let _ = connection.close(200, "done".into()).await;

    stop.cancel();
    server.await.unwrap();
    client.close().await;
    namespace.delete().await.unwrap();
}
