//! A TCP forwarder standing in front of the one real broker as one "node"
//! of a cluster, so a test can lose a node without losing the broker:
//! [`NodeProxy::drop_connections`] is a node that restarts,
//! [`NodeProxy::freeze`] one that stops answering without closing anything
//! (a hung host, a network that drops packets). Every byte a client and the
//! broker exchange still goes through the real RabbitMQ.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use reqwest::Url;

use crate::broker::amqp_url;

/// What the proxy does with its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward bytes both ways.
    Forward,
    /// Accept, hold every socket open, forward nothing. A connection frozen
    /// once is never forwarded again (bytes in flight may have been lost).
    Freeze,
}

/// One stand-in node: a listener on 127.0.0.1 forwarding to the broker.
pub struct NodeProxy {
    addr: SocketAddr,
    mode: watch::Sender<(Mode, u64)>,
    live: Arc<AtomicUsize>,
    accepting: JoinHandle<()>,
}

impl NodeProxy {
    /// A node of the test broker ([`amqp_url`]).
    pub async fn broker() -> Self {
        let url = Url::parse(&amqp_url()).expect("AMQP_URL is a URL");
        let host = url.host_str().expect("AMQP_URL names a host");
        let port = url.port().unwrap_or(5672);
        let target = tokio::net::lookup_host((host, port))
            .await
            .expect("the broker's host resolves")
            .next()
            .expect("an address");
        Self::start(target).await
    }

    /// Starts forwarding from a fresh port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let addr = listener.local_addr().expect("bound");
        let (mode, watching) = watch::channel((Mode::Forward, 0));
        let live = Arc::new(AtomicUsize::new(0));
        let accepting = tokio::spawn(accept(listener, target, watching, live.clone()));
        Self {
            addr,
            mode,
            live,
            accepting,
        }
    }

    /// The test broker's URL with this node's address in it.
    pub fn url(&self) -> String {
        let mut url = Url::parse(&amqp_url()).expect("AMQP_URL is a URL");
        url.set_ip_host(self.addr.ip()).expect("an IP host");
        url.set_port(Some(self.addr.port())).expect("a port");
        url.to_string()
    }

    /// Connections being forwarded now (frozen ones not counted).
    pub fn connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Closes every connection, as a node does when it goes down; new ones
    /// are forwarded again.
    pub fn drop_connections(&self) {
        self.mode.send_modify(|(mode, generation)| {
            *mode = Mode::Forward;
            *generation += 1;
        });
    }

    /// Stops forwarding on every connection, now and to come, closing none.
    pub fn freeze(&self) {
        self.mode.send_modify(|(mode, _)| *mode = Mode::Freeze);
    }
}

impl Drop for NodeProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        // Closes every connection still open.
        self.mode.send_modify(|(_, generation)| *generation += 1);
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Receiver<(Mode, u64)>,
    live: Arc<AtomicUsize>,
) {
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(forward(client, target, mode.clone(), live.clone()));
    }
}

/// Forwards one connection until either side closes it, the proxy drops
/// its connections, or it freezes (then holds the socket until dropped).
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut mode: watch::Receiver<(Mode, u64)>,
    live: Arc<AtomicUsize>,
) {
    let (start, generation) = *mode.borrow_and_update();
    let mut freezing = mode.clone();
    let dropped = async move {
        let _ = mode.wait_for(|(_, now)| *now != generation).await;
    };
    tokio::pin!(dropped);
    if start == Mode::Forward {
        let Ok(mut broker) = TcpStream::connect(target).await else {
            return;
        };
        live.fetch_add(1, Ordering::SeqCst);
        let frozen = tokio::select! {
            _ = copy_bidirectional(&mut client, &mut broker) => false,
            () = &mut dropped => false,
            _ = freezing.wait_for(|(now, _)| *now == Mode::Freeze) => true,
        };
        live.fetch_sub(1, Ordering::SeqCst);
        if frozen {
            // Hold both sockets, silent: the client must notice by itself.
            dropped.await;
        }
        return;
    }
    dropped.await;
    drop(client);
}
