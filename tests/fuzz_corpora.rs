//! Replays the committed fuzz corpora (`tests/fuzz_corpus/<target>/*`) on stable, so that a
//! regression of anything the fuzzers once found is caught by a plain `cargo test`. The
//! checks and the corpora live under `tests/` so that they ship in the package and these
//! tests run from the published crate too; the fuzz targets (`fuzz/`, not packaged) include
//! the same checks.

#[path = "support/fuzz_checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "no corpus for {target}");
}

#[test]
fn header_parsing_corpus() {
    replay("header_parsing", checks::header_parsing);
}

#[test]
fn stored_hash_corpus() {
    replay("stored_hash", checks::stored_hash);
}

#[test]
fn request_corpus() {
    replay("request", checks::request);
}
