//! Our binaries as child processes, for what only a process shows: signals,
//! exit codes, a replica killed mid-call, CPU time per process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::process::{Child, ChildStderr, Command};

/// The path of workspace binary `name` (`gateway`, `trips`, `airports`),
/// built by Cargo on first use with the profile this code was built with, so
/// a plain `cargo test` needs no build beforehand. Tests of the crate that
/// owns a binary pass `env!("CARGO_BIN_EXE_<name>")` to [`Process::spawn`]
/// instead.
pub fn binary(name: &str) -> PathBuf {
    built(name, |build| build.package(name).bin(name))
}

/// The path of the root package's example `name` (`examples/<name>`), built
/// likewise.
pub fn example(name: &str) -> PathBuf {
    built(&format!("example {name}"), |build| {
        build.package("airbridge").example(name)
    })
}

/// What `target` makes Cargo build, once per test process.
fn built(what: &str, target: impl FnOnce(escargot::CargoBuild) -> escargot::CargoBuild) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Mutex::default).lock().expect("poisoned");
    if let Some(path) = built.get(what) {
        return path.clone();
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let build = escargot::CargoBuild::new().manifest_path(manifest);
    let run = target(build)
        .current_release()
        .run()
        .unwrap_or_else(|err| panic!("cannot build {what}: {err}"));
    let path = run.path().to_owned();
    built.insert(what.to_owned(), path.clone());
    path
}

/// The services' log filter in tests: `TEST_LOG`, else warnings only.
pub fn log_filter() -> String {
    std::env::var("TEST_LOG").unwrap_or_else(|_| "warn,lapin=off".into())
}

/// A running binary of ours, killed (and reaped) when dropped.
pub struct Process {
    name: String,
    child: Child,
    /// Where a backend started with `METRICS_ADDR` serves its metrics.
    metrics_addr: Option<SocketAddr>,
    /// The JSON log lines read so far, when testkit reads its log.
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Process {
    /// Starts the program at `path` with `env` added to the environment
    /// (`RUST_LOG` from [`log_filter`] unless `env` sets it).
    pub fn spawn(path: &Path, env: &[(&str, String)]) -> Self {
        Self::spawn_with(path, &[], env, Stdio::inherit())
    }

    /// Like [`Process::spawn`], with arguments and the child's stderr.
    pub fn spawn_with(path: &Path, args: &[&str], env: &[(&str, String)], stderr: Stdio) -> Self {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut command = Command::new(path);
        command
            .args(args)
            .env("RUST_LOG", log_filter())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stderr(stderr);
        Self::start(name, command)
    }

    /// Starts `command` (any program: the Python services of the original
    /// system too), to be killed when dropped; `name` is what messages call it.
    pub fn start(name: String, mut command: Command) -> Self {
        let child = command
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self {
            name,
            child,
            metrics_addr: None,
            log: Arc::default(),
        }
    }

    /// The JSON log lines it wrote so far, for a process whose log testkit
    /// reads (the gateway, a backend given `METRICS_ADDR`); empty otherwise.
    pub fn json_log(&self) -> Vec<serde_json::Value> {
        self.log.lock().expect("poisoned").clone()
    }

    pub(crate) fn log(&self) -> Arc<Mutex<Vec<serde_json::Value>>> {
        self.log.clone()
    }

    /// `http://<addr>/metrics` of a backend started with `METRICS_ADDR`
    /// (through `StackBuilder::backend_env`).
    pub fn metrics_url(&self) -> String {
        let addr = self
            .metrics_addr
            .unwrap_or_else(|| panic!("{} was started without METRICS_ADDR", self.name));
        format!("http://{addr}/metrics")
    }

    pub(crate) fn set_metrics_addr(&mut self, addr: SocketAddr) {
        self.metrics_addr = Some(addr);
    }

    /// The child's stdout, when it was piped.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The child's stderr, when it was piped.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id().expect("process already reaped")
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`...) with `kill(1)`.
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

impl Drop for Process {
    fn drop(&mut self) {
        // Killed and reaped before anything else is torn down, so a dying
        // service cannot declare its queue again after the namespace is gone.
        if self.child.start_kill().is_ok() {
            for _ in 0..500 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}
