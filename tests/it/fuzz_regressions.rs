//! Every input the fuzzers ever found a problem with (tests/fixtures/fuzz/<target>/), replayed
//! through the same checks the fuzz targets run, so a fixed crash or hang stays fixed.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fuzz targets' bodies, shared with `fuzz/fuzz_targets/` (see fuzz/src/lib.rs).
#[path = "../../fuzz/src/lib.rs"]
mod checks;

/// Generous for a debug build on a busy 2-core machine (the alias bomb takes about 1.4 s of CPU
/// unoptimised); optimised builds must stay under [`checks::PLAN_LOAD_LIMIT`], which the
/// `plan_load` fuzz target asserts on every input.
const DEBUG_PLAN_LOAD_LIMIT: Duration = Duration::from_secs(20);

/// The saved inputs of `target`: what the fuzzer found (tests/fixtures/fuzz/<target>/), and
/// the seed corpus it started from (fuzz/seeds/<target>/).
fn fixtures(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in [
        root.join("tests/fixtures/fuzz").join(target),
        root.join("fuzz/seeds").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        paths.extend(
            entries
                .map(|entry| entry.expect("a directory entry").path())
                .filter(|path| path.is_file()),
        );
    }
    paths.sort();
    paths
}

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let paths = fixtures(target);
    for path in &paths {
        let data = std::fs::read(path).expect("a readable fixture");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} panicked", path.display());
        }
    }
    paths.len()
}

#[test]
fn plan_load_fixtures_load_or_fail_with_positions_quickly() {
    let limit = if cfg!(debug_assertions) {
        DEBUG_PLAN_LOAD_LIMIT
    } else {
        checks::PLAN_LOAD_LIMIT
    };
    let paths = fixtures("plan_load");
    assert!(!paths.is_empty());
    for path in &paths {
        let data = std::fs::read(path).expect("a readable fixture");
        let result = match std::panic::catch_unwind(|| checks::plan_load(&data, limit)) {
            Ok(result) => result,
            Err(_) => panic!("{} panicked or was too slow", path.display()),
        };
        // A crasher must now fail with a located diagnostic (or load); seeds may be
        // file-level errors such as an empty plan.
        let found_by_fuzzer = path.components().any(|c| c.as_os_str() == "fixtures");
        if let (Err(error), true) = (&result, found_by_fuzzer) {
            assert!(
                error.diagnostics().iter().any(|d| d.pos.is_some()),
                "{}: no diagnostic has a position: {error}",
                path.display()
            );
        }
    }
}

#[test]
fn release_parse_fixtures_never_panic() {
    assert!(replay("release_parse", checks::release_parse) > 0);
}

#[test]
fn error_parse_fixtures_never_panic() {
    assert!(replay("error_parse", checks::error_parse) > 0);
}

#[test]
fn sign_roundtrip_fixtures_verify() {
    assert!(replay("sign_roundtrip", checks::sign_roundtrip) > 0);
}
