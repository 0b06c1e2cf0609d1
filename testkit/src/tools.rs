//! The command-line tools some tests drive: the Python-installed ones (grpcurl,
//! schemathesis, the generated client's interpreter) from the project's
//! `.venv`, and docker.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ is inside the workspace")
        .to_owned()
}

/// Tool `name` from the project's `.venv` (which `make test` sets up), else
/// from PATH.
pub fn tool(name: &str) -> PathBuf {
    let local = workspace().join(".venv/bin").join(name);
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run `make venv` (make test does) or put it on PATH")
        })
}

/// The `.venv` Python with the client that `make clients` generates from
/// proto/ on its path; generated once per test process.
pub fn python_client() -> Command {
    static GENERATED: Once = Once::new();
    let root = workspace();
    GENERATED.call_once(|| {
        let make = Command::new("make")
            .arg("-C")
            .arg(&root)
            .arg("clients")
            .output()
            .expect("make runs");
        assert!(
            make.status.success(),
            "make clients failed:\n{}{}",
            String::from_utf8_lossy(&make.stdout),
            String::from_utf8_lossy(&make.stderr)
        );
    });
    let mut python = Command::new(tool("python"));
    python.env("PYTHONPATH", root.join("clients/python"));
    python
}

/// Runs `docker ARGS`, which must succeed, and returns what it printed (for
/// the benchmarks and the chaos runs that drive a Compose stack).
pub async fn docker(args: &[&str]) -> String {
    output_of(tokio::process::Command::new("docker").args(args)).await
}

/// Runs `command`, which must succeed, and returns what it printed; panics
/// naming the command and quoting its stderr otherwise.
pub(crate) async fn output_of(command: &mut tokio::process::Command) -> String {
    let shown = format!("{:?}", command.as_std());
    let output = command
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run {shown}: {err}"));
    assert!(
        output.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
