//! Helpers for tests that run the real thing: a real RabbitMQ (shared, each
//! test under its own namespace), real Redis servers (one private
//! `redis-server` process per test, so a test may stop and restart it), and
//! the real binaries.
//!
//! Readiness is always polled against a deadline ([`wait_for`]); nothing here
//! sleeps and hopes.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::config::DEFAULT_AMQP_URL;
use crate::rpc::{RpcConfig, Topology};

/// The broker the tests use: `AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned())
}

/// A namespace no other test run uses, so tests never see each other's queues.
pub fn unique_namespace(test: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("test-{test}-{}", &id[..12])
}

/// RPC settings for the test broker under `namespace`.
pub fn rpc_config(namespace: &str) -> RpcConfig {
    RpcConfig {
        topology: Topology::new(Some(namespace.to_owned())),
        ..RpcConfig::new(amqp_url())
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many messages wait in `queue` (a passive declare; panics when the
/// queue does not exist).
pub async fn message_count(channel: &lapin::Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap_or_else(|err| panic!("{queue} exists: {err}"))
        .message_count()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("no free port")
        .port()
}

/// A private `redis-server` on a free port, with append-only persistence in a
/// temporary directory, killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts the server and waits until it answers `PING`.
    pub async fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("airbridge-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cannot create the redis directory");
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port with the same data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start redis-server: install it (apt-get install redis-server)");
        self.child = Some(child);
        let port = self.port;
        wait_for(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || redis_ping(port),
        )
        .await;
    }

    /// Sends one command in RESP and returns the raw reply (for assertions on
    /// what the services stored).
    pub async fn command(&self, args: &[&str]) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("redis is not reachable");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = vec![0; 64 * 1024];
        let n = stream.read(&mut reply).await.unwrap();
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn redis_ping(port: u16) -> Option<()> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream.write_all(b"PING\r\n").await.ok()?;
    let mut reply = [0; 7];
    stream.read_exact(&mut reply).await.ok()?;
    (&reply == b"+PONG\r\n").then_some(())
}

/// The path of a workspace binary (`gateway`, `trips`, `airports`), built
/// beside the running test (`cargo build --workspace --bins` builds them).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("no current exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary outside target/");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// A running binary of ours, killed when dropped.
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Starts workspace binary `name` with `env` added to the environment.
    pub fn spawn(name: &str, env: &[(&str, String)]) -> Self {
        Self::spawn_path(&binary(name), &[], env)
    }

    /// Starts the program at `path` with `args`, and `env` added to the
    /// environment (`RUST_LOG` from `TEST_LOG`, else warnings only).
    pub fn spawn_path(path: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let child = Command::new(path)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn,lapin=off".into()),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self { name, child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id().expect("process already reaped")
    }

    /// Sends a signal (`TERM`, `KILL`, ...) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// Whether it has exited, without waiting.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits up to `timeout` for the process to exit and returns its exit code.
    pub async fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {timeout:?}", self.name))
            .expect("cannot wait for the process");
        status.code()
    }
}

impl RedisServer {
    /// How many keys match `pattern` (`KEYS`, fine for a test's small data).
    pub async fn count_keys(&self, pattern: &str) -> usize {
        let reply = self.command(&["KEYS", pattern]).await;
        reply
            .strip_prefix('*')
            .and_then(|rest| rest.split("\r\n").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected KEYS reply {reply:?}"))
    }
}

/// The environment that points a backend binary at the test broker under
/// `namespace` and at the Redis at `redis_url`.
pub fn backend_env(namespace: &str, redis_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AMQP_URL", amqp_url()),
        ("AMQP_NAMESPACE", namespace.to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
    ]
}
