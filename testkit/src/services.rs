//! Our services, run in this process or as child processes: one way to start
//! each, configured the same way in both cases (environment pairs, parsed by
//! the same code the binaries use).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use airbridge::config::{BackendConfig, Env, FromEnv};
use gateway::GatewayConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::process::{Process, binary, log_filter};

/// Where a service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// A task of the test's runtime: quick, and nothing to build or reap.
    InProcess,
    /// A child process of the workspace binary: signals, exit codes, CPU.
    Process,
}

/// A backend service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Trips,
    Airports,
}

impl Backend {
    /// The binary's (and the package's) name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Trips => "trips",
            Backend::Airports => "airports",
        }
    }
}

/// A running service of ours.
pub enum Running {
    /// Served by a task here; stopped (abruptly) when dropped.
    InProcess(Task),
    /// A child process; killed when dropped.
    Process(Box<Process>),
}

/// A service's task in this process.
pub struct Task {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Task {
    /// Runs `serve` on the services' own runtime (not the test's), so a test
    /// that blocks its thread on a tool (grpcurl, schemathesis, a Python
    /// client) still gets its answers.
    fn spawn<F>(serve: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        let runtime = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("testkit-services")
                .enable_all()
                .build()
                .expect("cannot start the services' runtime")
        });
        let stop = CancellationToken::new();
        let handle = runtime.spawn(serve(stop.clone()));
        Self { stop, handle }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Running {
    /// Starts backend `backend` with `env` (the namespace's and `REDIS_URL` at
    /// least). A process given `METRICS_ADDR` (port 0, say) is watched until
    /// it says where it serves its metrics ([`Process::metrics_url`]).
    pub async fn backend(backend: Backend, run: Run, env: &[(&'static str, String)]) -> Self {
        match run {
            Run::Process if env.iter().any(|(name, _)| *name == "METRICS_ADDR") => {
                let (mut process, addrs) =
                    spawn_announcing(backend.name(), env, "airbridge::app", &["metrics_addr"])
                        .await;
                process.set_metrics_addr(addrs[0]);
                Running::Process(Box::new(process))
            }
            Run::Process => {
                Running::Process(Box::new(Process::spawn(&binary(backend.name()), env)))
            }
            Run::InProcess => {
                let config = BackendConfig::from_env(&Env::from_pairs(env.iter().cloned()))
                    .expect("a valid backend configuration");
                Running::InProcess(Task::spawn(|stop| async move {
                    let stopped = stop.cancelled_owned();
                    match backend {
                        Backend::Trips => trips::serve(&config, stopped).await,
                        Backend::Airports => airports::serve(&config, stopped).await,
                    }
                    .expect("the backend failed");
                }))
            }
        }
    }

    /// The child process; panics for a service running in-process.
    pub fn process(&mut self) -> &mut Process {
        match self {
            Running::Process(process) => process,
            Running::InProcess(_) => {
                panic!("start this service with Run::Process to reach its process")
            }
        }
    }

    /// Stops the service gracefully (SIGTERM for a process) and waits until
    /// it has answered what it took.
    pub async fn shut_down(mut self) {
        match &mut self {
            Running::Process(process) => {
                process.signal("TERM");
                assert_eq!(process.wait(Duration::from_secs(10)).await, Some(0));
            }
            Running::InProcess(task) => {
                task.stop.cancel();
                (&mut task.handle).await.expect("the service task panicked");
            }
        }
    }
}

/// The gateway and where it listens.
pub struct Gateway {
    pub running: Running,
    /// `http://127.0.0.1:<port>`
    pub http: String,
    /// `127.0.0.1:<port>`
    pub grpc: String,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
}

impl Gateway {
    /// Starts a gateway on fresh ports with `env` (the namespace's at least).
    pub async fn start(run: Run, env: &[(&'static str, String)]) -> Self {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        Self::start_on(run, env, loopback, loopback).await
    }

    /// Starts it again on the addresses it had (a restart, as clients see it).
    pub async fn restart(&mut self, env: &[(&'static str, String)]) {
        let run = match self.running {
            Running::InProcess(_) => Run::InProcess,
            Running::Process(_) => Run::Process,
        };
        *self = Self::start_on(run, env, self.http_addr, self.grpc_addr).await;
    }

    async fn start_on(
        run: Run,
        env: &[(&'static str, String)],
        http_addr: SocketAddr,
        grpc_addr: SocketAddr,
    ) -> Self {
        let (running, http_addr, grpc_addr) = match run {
            Run::InProcess => {
                // Bound here, registered with the services' runtime there.
                let bind = |addr| {
                    let listener = std::net::TcpListener::bind(addr)
                        .expect("cannot bind the gateway's listeners");
                    listener.set_nonblocking(true).unwrap();
                    listener
                };
                let (http, grpc) = (bind(http_addr), bind(grpc_addr));
                let (http_addr, grpc_addr) =
                    (http.local_addr().unwrap(), grpc.local_addr().unwrap());
                let config = GatewayConfig::from_env(&Env::from_pairs(env.iter().cloned()))
                    .expect("a valid gateway configuration");
                let task = Task::spawn(|stop| async move {
                    let http = TcpListener::from_std(http).unwrap();
                    let grpc = TcpListener::from_std(grpc).unwrap();
                    gateway::serve(config, http, grpc, stop.cancelled_owned())
                        .await
                        .expect("the gateway failed");
                });
                (Running::InProcess(task), http_addr, grpc_addr)
            }
            Run::Process => {
                let mut env = env.to_vec();
                env.extend([
                    ("HTTP_ADDR", http_addr.to_string()),
                    ("GRPC_ADDR", grpc_addr.to_string()),
                ]);
                let (process, addrs) =
                    spawn_announcing("gateway", &env, "gateway", &["http_addr", "grpc_addr"]).await;
                (Running::Process(Box::new(process)), addrs[0], addrs[1])
            }
        };
        Self {
            running,
            http: format!("http://{http_addr}"),
            grpc: grpc_addr.to_string(),
            http_addr,
            grpc_addr,
        }
    }
}

/// Starts binary `name` with JSON logs on a pipe, and waits until a line
/// of `target` names every one of `fields`: the addresses it bound (port 0,
/// so only it knows). Keeps its log lines (`Process::json_log`) and passes
/// its warnings and errors (or everything, with `TEST_LOG`) on to our
/// stderr.
async fn spawn_announcing(
    name: &'static str,
    env: &[(&'static str, String)],
    target: &str,
    fields: &'static [&'static str],
) -> (Process, Vec<SocketAddr>) {
    // Whatever the filter, the line saying where it listens.
    let filter = env
        .iter()
        .find(|(name, _)| *name == "RUST_LOG")
        .map_or_else(log_filter, |(_, filter)| filter.clone());
    let mut env = env.to_vec();
    env.extend([
        ("LOG_FORMAT", "json".into()),
        ("RUST_LOG", format!("{filter},{target}=info")),
    ]);
    let mut process = Process::spawn_with(&binary(name), &[], &env, Stdio::piped());
    let stderr = process.take_stderr().expect("piped");
    let log = process.log();
    let (found, addresses) = oneshot::channel();
    tokio::spawn(async move {
        let verbose = std::env::var_os("TEST_LOG").is_some();
        let mut found = Some(found);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                eprintln!("{line}");
                continue;
            };
            let addr = |field: &str| event[field].as_str()?.parse::<SocketAddr>().ok();
            if found.is_some()
                && let Some(addrs) = fields.iter().map(|field| addr(field)).collect()
            {
                let _ = found.take().expect("checked").send(addrs);
            }
            if verbose || matches!(event["level"].as_str(), Some("WARN" | "ERROR")) {
                eprintln!("{name}: {line}");
            }
            log.lock().expect("poisoned").push(event);
        }
    });
    let addrs = tokio::time::timeout(Duration::from_secs(30), addresses)
        .await
        .unwrap_or_else(|_| panic!("{name} did not say where it listens within 30 s"))
        .unwrap_or_else(|_| panic!("{name} exited before listening"));
    (process, addrs)
}
