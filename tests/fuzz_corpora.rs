//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/*`) on stable, so that a
//! regression of anything the fuzzers once found is caught by a plain `cargo test`.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
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
