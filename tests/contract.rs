//! The contract is guarded: `proto/` passes buf's lint, format and
//! breaking-change checks against the released contract (`proto-baseline.txtpb`),
//! and the breaking check bites. In a temporary copy of `proto/`, renaming a
//! field, changing a field's type and deleting a method each fail
//! `buf breaking` with buf's message naming the change, while adding a field
//! and adding a method pass every check.
//!
//! Runs the real buf CLI, which `make venv` (and so `make test`) installs.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use testkit::{tool, workspace};

/// The released contract, written by `make proto-baseline`.
const BASELINE: &str = "proto-baseline.txtpb";
const TRIPS: &str = "trips/v1/trips.proto";
const AIRPORTS: &str = "airports/v1/airports.proto";

/// One change to a `.proto` file: `old`, which must occur exactly once in
/// `file` (relative to `proto/`), becomes `new`.
struct Edit {
    file: &'static str,
    old: &'static str,
    new: &'static str,
}

/// Runs buf with `args` in `dir` (where its `buf.yaml` is); returns whether it
/// succeeded and everything it printed.
fn run_buf(dir: &Path, args: &[&str]) -> (bool, String) {
    let buf = tool("buf");
    let output = Command::new(&buf)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", buf.display()));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// `buf breaking` in `dir` against the released contract.
fn breaking(dir: &Path) -> (bool, String) {
    let baseline = workspace().join(BASELINE);
    run_buf(dir, &["breaking", "--against", baseline.to_str().unwrap()])
}

/// Asserts that `dir` passes lint, format and the breaking check.
fn assert_all_checks_pass(dir: &Path) {
    let checks = [
        ("buf lint", run_buf(dir, &["lint"])),
        (
            "buf format --diff --exit-code",
            run_buf(dir, &["format", "--diff", "--exit-code"]),
        ),
        ("buf breaking", breaking(dir)),
    ];
    for (name, (passed, printed)) in checks {
        assert!(passed, "`{name}` failed in {}:\n{printed}", dir.display());
    }
}

/// A temporary copy of `buf.yaml` and `proto/` with `edits` applied.
fn edited_copy(edits: &[Edit]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::copy(workspace().join("buf.yaml"), dir.path().join("buf.yaml")).unwrap();
    copy_dir(&workspace().join("proto"), &dir.path().join("proto")).unwrap();
    for edit in edits {
        let path = dir.path().join("proto").join(edit.file);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(edit.old).count(),
            1,
            "the edit expects {:?} exactly once in proto/{}; update the test to match proto/",
            edit.old,
            edit.file
        );
        fs::write(&path, text.replacen(edit.old, edit.new, 1)).unwrap();
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Asserts that `edits` make `buf breaking` fail, naming each of `expected`.
fn assert_breaks(edits: &[Edit], expected: &[&str]) {
    let dir = edited_copy(edits);
    let (passed, printed) = breaking(dir.path());
    // Shown with --nocapture: what a developer making this change would read.
    println!("{printed}");
    assert!(!passed, "buf breaking accepted a breaking change");
    for message in expected {
        assert!(
            printed.contains(message),
            "buf breaking should say {message:?}; it said:\n{printed}"
        );
    }
}

#[test]
fn proto_passes_lint_format_and_the_breaking_check_against_the_baseline() {
    assert_all_checks_pass(&workspace());
}

#[test]
fn renaming_a_field_is_breaking() {
    assert_breaks(
        &[Edit {
            file: TRIPS,
            old: "string airport_to = 3;",
            new: "string destination = 3;",
        }],
        &[r#"Field "3" on message "Trip" changed name from "airport_to" to "destination"."#],
    );
}

#[test]
fn changing_a_fields_type_is_breaking() {
    assert_breaks(
        &[Edit {
            file: AIRPORTS,
            old: "bool store_reachable = 2;",
            new: "string store_reachable = 2;",
        }],
        &[
            r#"Field "2" with name "store_reachable" on message "PingResponse" changed type from "bool" to "string"."#,
        ],
    );
}

#[test]
fn deleting_a_method_is_breaking() {
    assert_breaks(
        &[Edit {
            file: TRIPS,
            old: "  // Get returns the trip with the given id, or NOT_FOUND.\n  \
                  rpc Get(GetTripRequest) returns (GetTripResponse) {\n    \
                  option (airbridge.nameko.v1.method) = {\n      \
                  params: [\"trip_id=id\"]\n      \
                  result: \"trip\"\n      \
                  result_keys: [\n        \
                  \"from=airport_from\",\n        \
                  \"to=airport_to\"\n      \
                  ]\n      \
                  not_found_is_null: true\n      \
                  from_request: [\"trip.id=id\"]\n    \
                  };\n  \
                  }\n\n",
            new: "",
        }],
        &[r#"Previously present RPC "Get" on service "Trips" was deleted."#],
    );
}

#[test]
fn adding_a_field_is_compatible() {
    let dir = edited_copy(&[Edit {
        file: TRIPS,
        old: "  string airport_to = 3;\n}",
        new: "  string airport_to = 3;\n  // The airline flying it, e.g. \"AR\".\n  string airline = 4;\n}",
    }]);
    assert_all_checks_pass(dir.path());
}

#[test]
fn adding_a_method_is_compatible() {
    let dir = edited_copy(&[
        Edit {
            file: TRIPS,
            old: "      constants: [\"store_reachable=true\"]\n    };\n  }\n",
            new: "      constants: [\"store_reachable=true\"]\n    };\n  }\n\n  \
                  // Delete removes the trip with the given id (not offered over\n  \
                  // nameko: it has no nameko option).\n  \
                  rpc Delete(DeleteTripRequest) returns (DeleteTripResponse);\n",
        },
        Edit {
            file: TRIPS,
            old: "  bool store_reachable = 2;\n}\n",
            new: "  bool store_reachable = 2;\n}\n\n\
                  // Arguments of Trips.Delete.\n\
                  message DeleteTripRequest {\n  \
                  // The id that Create returned.\n  \
                  string id = 1;\n}\n\n\
                  // Result of Trips.Delete. Empty.\n\
                  message DeleteTripResponse {}\n",
        },
    ]);
    assert_all_checks_pass(dir.path());
}
