//! The broker's nodes and connecting to one of them.
//!
//! Which node: the first connection goes to a random node, so a fleet of
//! processes spreads over the cluster and losing one node disconnects only
//! its share. After a loss the process starts at a random node *other than
//! the one it lost* (the lost node's clients spread over the rest instead of
//! all landing on its neighbour), then goes round the list in order, the lost
//! node last, so each node is tried once per round and a dead node costs at
//! most one connect timeout.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

/// The RabbitMQ nodes to connect to, with the heartbeat and connect timeout
/// every connection uses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Broker {
    nodes: Arc<[Node]>,
    heartbeat: Duration,
    connect_timeout: Duration,
}

#[derive(Debug)]
struct Node {
    uri: AMQPUri,
    /// `host:port`, for logs: never the credentials.
    name: String,
}

/// `AMQP_URL` could not be read as a list of broker URLs.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no broker URL given")]
    Empty,
    #[error("URL {position} of the list: {reason}")]
    Url { position: usize, reason: String },
}

/// No node of the broker could be reached; what each said.
#[derive(Debug, thiserror::Error)]
#[error("no message broker node reachable ({})", .failures.iter().map(|(node, why)| format!("{node}: {why}")).collect::<Vec<_>>().join("; "))]
pub struct ConnectError {
    failures: Vec<(String, String)>,
}

impl Broker {
    /// How often each side of a connection proves it is alive when the URL
    /// does not say (`?heartbeat=`): a node that dies silently (power, cable,
    /// a partition) is noticed after two missed beats, 10 s.
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
    /// Longest wait for one node to accept a connection, TCP and AMQP
    /// handshake together: a node that drops packets is left as fast as one
    /// that refuses.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

    /// The nodes in `urls`, comma-separated (a comma inside a password must be
    /// percent-encoded, `%2C`), with the default heartbeat and connect timeout.
    pub fn parse(urls: &str) -> Result<Self, BrokerError> {
        let nodes = urls
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(index, url)| {
                let fail = |reason: String| BrokerError::Url {
                    position: index + 1,
                    reason,
                };
                if url.is_empty() {
                    return Err(fail("empty".into()));
                }
                let uri = AMQPUri::from_str(url).map_err(fail)?;
                let name = format!("{}:{}", uri.authority.host, uri.authority.port);
                Ok(Node { uri, name })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(BrokerError::Empty);
        }
        Ok(Self {
            nodes: nodes.into(),
            heartbeat: Self::DEFAULT_HEARTBEAT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        })
    }

    /// The same nodes with heartbeats every `interval` (whole seconds, at
    /// least one), except where a URL sets its own `?heartbeat=`.
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// The same nodes with another connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The nodes' `host:port`, in the configured order.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|node| node.name.as_str())
    }

    /// `host:port` of node `index`.
    pub fn node(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// What node `index` is asked for: its URL with our heartbeat (whole
    /// seconds; the broker may lower it) and TCP connect timeout filled in
    /// where the URL does not set them.
    fn uri(&self, index: usize) -> AMQPUri {
        let mut uri = self.nodes[index].uri.clone();
        let seconds = u16::try_from(self.heartbeat.as_secs()).unwrap_or(u16::MAX);
        uri.query.heartbeat.get_or_insert(seconds.max(1));
        let millis = u64::try_from(self.connect_timeout.as_millis()).unwrap_or(u64::MAX);
        uri.query.connection_timeout.get_or_insert(millis.max(1));
        uri
    }

    /// Longest wait for one node.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Longest wait for a connection to some node: every node's timeout.
    pub fn failover_timeout(&self) -> Duration {
        self.connect_timeout * u32::try_from(self.nodes.len()).unwrap_or(u32::MAX)
    }

    /// Opens a connection named `name` (in the broker's management UI) to a
    /// node, trying them in the order the module describes; `lost` is the
    /// node the caller just lost, if any. Returns the node's index with it.
    pub(crate) async fn connect(
        &self,
        name: &str,
        lost: Option<usize>,
    ) -> Result<(Connection, usize), ConnectError> {
        let mut failures = Vec::new();
        for index in order(self.nodes.len(), lost, random()) {
            let node = &self.nodes[index];
            let properties = ConnectionProperties::default().with_connection_name(name.into());
            let connecting = Connection::connect_uri(self.uri(index), properties);
            match tokio::time::timeout(self.connect_timeout, connecting).await {
                // The caller logs the node it serves or calls on.
                Ok(Ok(connection)) => return Ok((connection, index)),
                Ok(Err(err)) => failures.push((node.name.clone(), err.to_string())),
                Err(_) => failures.push((
                    node.name.clone(),
                    format!("no answer within {} ms", self.connect_timeout.as_millis()),
                )),
            }
        }
        Err(ConnectError { failures })
    }
}

fn random() -> usize {
    // uuid's v4 generator is the operating system's randomness, already here.
    uuid::Uuid::new_v4().as_u128() as usize
}

/// The indices of `n` nodes in the order to try them (see the module's doc).
fn order(n: usize, lost: Option<usize>, random: usize) -> Vec<usize> {
    match lost.filter(|&lost| lost < n && n > 1) {
        None => (0..n).map(|i| (random % n + i) % n).collect(),
        Some(lost) => {
            let start = (lost + 1 + random % (n - 1)) % n;
            let mut order: Vec<_> = (0..n)
                .map(|i| (start + i) % n)
                .filter(|&i| i != lost)
                .collect();
            order.push(lost);
            order
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_or_a_list() {
        let one = Broker::parse("amqp://u:p@h:1/%2f").unwrap();
        assert_eq!(one.nodes().collect::<Vec<_>>(), ["h:1"]);
        let three = Broker::parse("amqp://u:p@a:5672/%2f, amqp://u:p@b:5673/%2f,amqp://c").unwrap();
        assert_eq!(
            three.nodes().collect::<Vec<_>>(),
            ["a:5672", "b:5673", "c:5672"]
        );
        assert_eq!(
            three.failover_timeout(),
            Broker::DEFAULT_CONNECT_TIMEOUT * 3
        );
    }

    #[test]
    fn bad_lists_say_which_url() {
        assert!(matches!(
            Broker::parse("amqp://a,,amqp://b"),
            Err(BrokerError::Url { position: 2, .. })
        ));
        assert!(matches!(
            Broker::parse("amqp://a,http://b"),
            Err(BrokerError::Url { position: 2, .. })
        ));
        assert!(matches!(
            Broker::parse(""),
            Err(BrokerError::Url { position: 1, .. })
        ));
    }

    #[test]
    fn heartbeat_and_timeout_are_set_unless_the_url_has_them() {
        let broker =
            Broker::parse("amqp://a,amqp://b?heartbeat=30&connection_timeout=100").unwrap();
        assert_eq!(broker.uri(0).query.heartbeat, Some(5));
        assert_eq!(broker.uri(0).query.connection_timeout, Some(3000));
        assert_eq!(broker.uri(1).query.heartbeat, Some(30));
        assert_eq!(broker.uri(1).query.connection_timeout, Some(100));
        let broker = broker
            .with_heartbeat(Duration::from_secs(2))
            .with_connect_timeout(Duration::from_millis(500));
        assert_eq!(broker.uri(0).query.heartbeat, Some(2));
        assert_eq!(broker.uri(0).query.connection_timeout, Some(500));
    }

    #[test]
    fn names_never_carry_credentials() {
        let broker = Broker::parse("amqp://user:secret@node:5672/%2f").unwrap();
        assert!(!format!("{:?}", broker.nodes().collect::<Vec<_>>()).contains("secret"));
    }

    #[test]
    fn first_connection_starts_anywhere_and_goes_round() {
        assert_eq!(order(3, None, 0), [0, 1, 2]);
        assert_eq!(order(3, None, 4), [1, 2, 0]);
        assert_eq!(order(1, None, 7), [0]);
    }

    #[test]
    fn after_a_loss_the_lost_node_comes_last() {
        for random in 0..10 {
            let order = order(3, Some(1), random);
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 1, "{order:?}");
            assert_ne!(order[0], 1);
        }
        // Both other nodes get to go first.
        assert_eq!(order(3, Some(1), 0)[0], 2);
        assert_eq!(order(3, Some(1), 1)[0], 0);
        // One node: it is all there is.
        assert_eq!(order(1, Some(0), 3), [0]);
    }
}
