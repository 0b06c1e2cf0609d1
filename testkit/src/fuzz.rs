//! How many inputs each fuzzer tries: `FUZZ_CASES`, else what `make test`
//! affords. `FUZZ_CASES=100000 cargo test --release ...` is the long run.

/// The cases `make test` runs per fuzz test.
pub const DEFAULT_FUZZ_CASES: usize = 256;

/// `FUZZ_CASES` (a positive number), else [`DEFAULT_FUZZ_CASES`].
pub fn fuzz_cases() -> usize {
    match std::env::var("FUZZ_CASES") {
        Err(_) => DEFAULT_FUZZ_CASES,
        Ok(value) => value
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("FUZZ_CASES={value:?}: expected a positive number")),
    }
}
