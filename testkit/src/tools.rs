//! The Python-installed tools some tests drive (grpcurl, schemathesis, the
//! generated client's interpreter), from the project's `.venv`.

use std::path::PathBuf;

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
