//! A private `redis-server` per store, so a test may stop and restart it.
//!
//! It listens on a Unix socket in its own temporary directory, not on a TCP
//! port: no port is picked, given up and hoped to be free still when the
//! server binds it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use crate::wait::wait_for;

/// A running `redis-server` with append-only persistence, killed (and its
/// directory removed) when dropped.
pub struct RedisServer {
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts the server and waits until it answers `PING`.
    pub async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("airbridge-redis-{}", &id[..12]));
        std::fs::create_dir_all(&dir).expect("cannot create the redis directory");
        let mut server = Self { dir, child: None };
        server.restart().await;
        server
    }

    /// The URL the backends use: `redis+unix:///…/redis.sock`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The Unix socket it listens on (`redis-cli -s`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
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

    /// Starts the server again with the same socket and data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start redis-server: install it (apt-get install redis-server)");
        self.child = Some(child);
        wait_for(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || async { (self.command(&["PING"]).await.ok()? == "+PONG\r\n").then_some(()) },
        )
        .await;
    }

    /// Sends one command in RESP and returns the raw reply (for assertions on
    /// what the services stored).
    pub async fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = UnixStream::connect(self.socket()).await?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).await?;
        let mut reply = vec![0; 64 * 1024];
        let n = stream.read(&mut reply).await?;
        Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    }

    /// How many keys match `pattern` (`KEYS`, fine for a test's small data).
    pub async fn count_keys(&self, pattern: &str) -> usize {
        let reply = self
            .command(&["KEYS", pattern])
            .await
            .expect("redis answers");
        reply
            .strip_prefix('*')
            .and_then(|rest| rest.split("\r\n").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected KEYS reply {reply:?}"))
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
